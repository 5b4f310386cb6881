/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/token.h"

/*
 * Known answer, computed independently (Python hmac/hashlib) from the
 * canonical string in docs/token.md: key bytes 0x00..0x1f.
 */
#define KAT_KEYID	"630dcd29"
#define KAT_CANON	"haul-token-v1\nk=8:630dcd29\na=5:alice\n" \
			"m=16:INBOX/Sent Items\nu=7:1234.42\nt=10:1700000000\n"
#define KAT_VALUE	"v=1; k=630dcd29; a=alice; m=INBOX/Sent%20Items; " \
			"u=1234.42; t=1700000000; " \
			"s=XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I"
#define KAT_B64		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NOW		1700000000

static void
make_key(struct haul_key *k, unsigned char seed)
{
	unsigned char	 b[32];
	size_t		 i;

	for (i = 0; i < sizeof b; i++)
		b[i] = (unsigned char)(seed + i);
	cr_assert_eq(key_from_bytes(k, b, sizeof b), 0);
}

static void
kat_fields(struct token_fields *f)
{
	memset(f, 0, sizeof *f);
	strcpy(f->account, "alice");
	strcpy(f->mailbox, "INBOX/Sent Items");
	f->uidvalidity = 1234;
	strcpy(f->uid, "42");
	f->time = NOW;
}

/* Sign f with k into a NUL-terminated heap string. */
static char *
sign(const struct haul_key *k, const struct token_fields *f)
{
	struct buf	 b = BUF_INIT;

	cr_assert_eq(token_make(k, f, &b), 0);
	return buf_steal(&b);
}

static const char *
verify1(const struct haul_key *k, const char *v, time_t now,
    struct token_fields *out)
{
	const char	*reason = NULL;

	if (token_verify(k, 1, v, strlen(v), now, 3600, out, &reason) == 0)
		return NULL;
	cr_assert_not_null(reason);
	return reason;
}

Test(token, known_answer)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	struct buf		 b = BUF_INIT;

	make_key(&k, 0);
	cr_assert_str_eq(k.id, KAT_KEYID);
	kat_fields(&f);
	strcpy(f.key_id, k.id);
	cr_assert_eq(token_canonical(&f, &b), 0);
	cr_assert_str_eq(b.data, KAT_CANON);
	buf_reset(&b);
	cr_assert_eq(token_make(&k, &f, &b), 0);
	cr_assert_str_eq(b.data, KAT_VALUE);
	cr_assert_null(verify1(&k, KAT_VALUE, NOW, &g));
	cr_assert_str_eq(g.key_id, KAT_KEYID);
	cr_assert_str_eq(g.mailbox, "INBOX/Sent Items");
	buf_free(&b);
	key_free(&k);
}

Test(token, round_trip)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	char			*v;

	make_key(&k, 7);
	kat_fields(&f);
	strcpy(f.account, "Bob_1.x-y");
	strcpy(f.mailbox, "Archiv/2024 \xc3\xa4; (old)");
	f.uidvalidity = 4294967295u;
	strcpy(f.uid, "3000000000");
	v = sign(&k, &f);
	cr_assert_null(verify1(&k, v, NOW, &g));
	cr_assert_str_eq(g.account, f.account);
	cr_assert_str_eq(g.mailbox, f.mailbox);
	cr_assert_eq(g.uidvalidity, 4294967295u);
	cr_assert_str_eq(g.uid, f.uid);
	cr_assert_eq(g.time, NOW);
	cr_assert_str_eq(g.key_id, k.id);
	free(v);
}

Test(token, tampered_fields)
{
	static const struct {
		const char	*from, *to, *reason;
	} cases[] = {
		{ "a=alice", "a=alicf", "bad signature" },
		{ "m=INBOX/Sent%20Items", "m=INBOX/Sent%20Itemz", "bad signature" },
		{ "u=1234.42", "u=1234.43", "bad signature" },
		{ "u=1234.42", "u=1235.42", "bad signature" },
		{ "t=1700000000", "t=1700000001", "bad signature" },
		{ "k=630dcd29", "k=630dcd2a", "unknown key" },
		{ "s=XHTE", "s=XHTF", "bad signature" },
		{ "v=1", "v=2", "malformed" },
	};
	struct haul_key	 k;
	char		 v[512], *p;
	size_t		 i;

	make_key(&k, 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		strcpy(v, KAT_VALUE);
		p = strstr(v, cases[i].from);
		cr_assert_not_null(p);
		memmove(p + strlen(cases[i].to), p + strlen(cases[i].from),
		    strlen(p + strlen(cases[i].from)) + 1);
		memcpy(p, cases[i].to, strlen(cases[i].to));
		cr_expect_str_eq(verify1(&k, v, NOW, NULL), cases[i].reason,
		    "case %zu: %s", i, v);
	}
}

Test(token, wrong_key)
{
	struct haul_key	 k, other, clash;
	char		*v;

	make_key(&k, 0);
	make_key(&other, 99);
	v = sign(&k, &(struct token_fields){ .account = "a", .mailbox = "INBOX",
	    .uid = "1", .time = NOW });
	cr_assert_str_eq(verify1(&other, v, NOW, NULL), "unknown key");
	/* Same id, different bytes: the MAC decides. */
	clash = other;
	memcpy(clash.id, k.id, sizeof clash.id);
	cr_assert_str_eq(verify1(&clash, v, NOW, NULL), "bad signature");
	free(v);
}

Test(token, rotation_accepts_previous_key)
{
	struct haul_key		 keys[2];
	struct token_fields	 f;
	const char		*reason = NULL;
	char			*v;

	make_key(&keys[0], 50);		/* current */
	make_key(&keys[1], 0);		/* previous */
	kat_fields(&f);
	v = sign(&keys[1], &f);
	cr_assert_eq(token_verify(keys, 2, v, strlen(v), NOW, 60, NULL,
	    &reason), 0);
	cr_assert_eq(token_verify(keys, 1, v, strlen(v), NOW, 60, NULL,
	    &reason), -1);
	cr_assert_str_eq(reason, "unknown key");
	free(v);
	v = sign(&keys[0], &f);
	cr_assert_eq(token_verify(keys, 2, v, strlen(v), NOW, 60, NULL,
	    &reason), 0);
	free(v);
}

Test(token, age_and_skew)
{
	struct haul_key		 k;
	struct token_fields	 f;
	char			*v;

	make_key(&k, 0);
	kat_fields(&f);
	v = sign(&k, &f);
	cr_assert_null(verify1(&k, v, NOW + 3600, NULL));
	cr_assert_str_eq(verify1(&k, v, NOW + 3601, NULL), "expired");
	cr_assert_null(verify1(&k, v, NOW - TOKEN_SKEW, NULL));
	cr_assert_str_eq(verify1(&k, v, NOW - TOKEN_SKEW - 1, NULL),
	    "from the future");
	free(v);
}

Test(token, folded_header)
{
	struct haul_key		 k;
	struct token_fields	 g;
	char			 v[600];

	make_key(&k, 0);
	/* As an MTA may fold it: CRLF or LF followed by a space or tab. */
	snprintf(v, sizeof v, " v=1;\r\n k=%s;\r\n\ta=alice; m=INBOX/Sent\r\n"
	    " %%20Items;\n u=1234.42 ; t=1700000000;\r\n  s=%s \r\n ",
	    KAT_KEYID, strrchr(KAT_VALUE, '=') + 1);
	cr_assert_null(verify1(&k, v, NOW, &g), "%s", v);
	cr_assert_str_eq(g.mailbox, "INBOX/Sent Items");
	/* A line break not followed by white space is not folding. */
	snprintf(v, sizeof v, "v=1;\r\n%s", &KAT_VALUE[5]);
	cr_assert_str_eq(verify1(&k, v, NOW, NULL), "malformed");
	snprintf(v, sizeof v, "v=1;\r %s", &KAT_VALUE[5]);
	cr_assert_str_eq(verify1(&k, v, NOW, NULL), "malformed");
	snprintf(v, sizeof v, "%s\r\n", KAT_VALUE);
	cr_assert_str_eq(verify1(&k, v, NOW, NULL), "malformed");
	/* Whitespace inside any field but m is not allowed. */
	cr_assert_str_eq(verify1(&k, "v=1; k=630dcd29; a=ali ce; m=INBOX; "
	    "u=1.1; t=1; s=XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I",
	    NOW, NULL), "malformed");
}

/* token_parse() on v, returning its reason or NULL. */
static const char *
parse_reason(const char *v)
{
	struct token_fields	 f;
	const char		*reason = NULL;

	if (token_parse(v, strlen(v), &f, &reason) == 0)
		return NULL;
	cr_assert_not_null(reason);
	return reason;
}

#define SIG	"s=XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I"

Test(token, strict_grammar)
{
	cr_assert_null(parse_reason(KAT_VALUE));
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; a=alice; "
	    "m=INBOX; u=1.1; t=1; " SIG), "field repeated or out of order");
	cr_expect_str_eq(parse_reason("v=1; a=alice; k=630dcd29; m=INBOX; "
	    "u=1.1; t=1; " SIG), "field repeated or out of order");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; x=1; a=alice; "
	    "m=INBOX; u=1.1; t=1; " SIG), "unknown field");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1; " SIG "; x=1"), "data after the signature");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1; " SIG ";"), "data after the signature");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1"), "missing field");
	cr_expect_str_eq(parse_reason("v=1;; k=630dcd29"), "empty field");
	cr_expect_str_eq(parse_reason(""), "empty field");
	cr_expect_str_eq(parse_reason("v=1; K=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1; " SIG), "unknown field");
	cr_expect_str_eq(parse_reason("v=1; k =630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1; " SIG), "unknown field");
	cr_expect_str_eq(parse_reason("v=1; k=630DCD29; a=alice; m=INBOX; "
	    "u=1.1; t=1; " SIG), "bad key id");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=al%41ce; m=INBOX; "
	    "u=1.1; t=1; " SIG), "bad account");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=; "
	    "u=1.1; t=1; " SIG), "bad mailbox");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=01.1; t=1; " SIG), "bad uid");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=4294967296.1; t=1; " SIG), "bad uid");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1; t=1; " SIG), "bad uid");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.; t=1; " SIG), "bad uid");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=01; " SIG), "bad time");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=-1; " SIG), "bad time");
	cr_expect_str_eq(parse_reason("v=1; k=630dcd29; a=alice; m=INBOX; "
	    "u=1.1; t=1; v=1"), "field repeated or out of order");
	cr_expect_str_eq(parse_reason("v=1\x01; k=630dcd29"),
	    "bad character or line break");
}

Test(token, bad_signature_encoding)
{
	static const char *sigs[] = {
		"XHTEur5e+r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I",	/* std alphabet */
		"XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I=",	/* padding */
		"XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5",	/* 42 chars */
		"XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5J",	/* low bits set */
		"XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I5I", /* 45 chars */
		"",
	};
	char	 v[256];
	size_t	 i;

	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		snprintf(v, sizeof v, "v=1; k=630dcd29; a=alice; m=INBOX; "
		    "u=1.1; t=1; s=%s", sigs[i]);
		cr_expect_str_eq(parse_reason(v), "bad signature encoding",
		    "%s", sigs[i]);
	}
}

Test(token, overlong)
{
	char	*v;

	v = malloc(TOKEN_MAX_LEN + 2);
	memset(v, ' ', TOKEN_MAX_LEN + 1);
	memcpy(v, KAT_VALUE, strlen(KAT_VALUE));
	v[TOKEN_MAX_LEN + 1] = '\0';
	cr_assert_str_eq(parse_reason(v), "too long");
	/* Trailing white space up to the cap is fine. */
	v[TOKEN_MAX_LEN] = '\0';
	cr_assert_null(parse_reason(v));
	free(v);
}

Test(token, pct_every_uid_byte)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	struct buf		 b = BUF_INIT;
	char			 all[95], dec[300], *v;
	size_t			 i, n;

	for (i = 0; i < 94; i++)
		all[i] = (char)(0x21 + i);
	all[94] = '\0';
	cr_assert_eq(token_pct_encode(&b, all, 94), 0);
	cr_assert_null(strchr(b.data, ';'));
	cr_assert_null(strchr(b.data, '='));
	cr_assert_not_null(strstr(b.data, "%3B"));
	cr_assert_eq(token_pct_decode(b.data, b.len, dec, sizeof dec, &n), 0);
	cr_assert_eq(n, 94);
	cr_assert_eq(memcmp(dec, all, 94), 0);
	buf_free(&b);

	/* Through a token: the uid holds at most 70 bytes, so two halves. */
	make_key(&k, 0);
	kat_fields(&f);
	for (i = 0; i < 94; i += 47) {
		memcpy(f.uid, all + i, 47);
		f.uid[47] = '\0';
		v = sign(&k, &f);
		cr_assert_null(verify1(&k, v, NOW, &g), "%s", v);
		cr_assert_str_eq(g.uid, f.uid);
		free(v);
	}
}

Test(token, pct_mailbox_all_bytes)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	char			*v;
	size_t			 i;

	make_key(&k, 0);
	kat_fields(&f);
	for (i = 1; i < 256; i++)
		f.mailbox[i - 1] = (char)i;
	f.mailbox[255] = '\0';
	v = sign(&k, &f);
	cr_assert_null(verify1(&k, v, NOW, &g));
	cr_assert_eq(memcmp(g.mailbox, f.mailbox, 256), 0);
	free(v);

	/* The longest mailbox, every byte encoded, stays under the cap. */
	memset(f.mailbox, ';', TOKEN_MAILBOX_MAX);
	f.mailbox[TOKEN_MAILBOX_MAX] = '\0';
	memset(f.uid, '=', TOKEN_UID_MAX);
	f.uid[TOKEN_UID_MAX] = '\0';
	strcpy(f.account, "0123456789012345678901234567890123456789"
	    "012345678901234567890123");
	v = sign(&k, &f);
	cr_assert_lt(strlen(v), TOKEN_MAX_LEN);
	cr_assert_null(verify1(&k, v, NOW, &g));
	cr_assert_str_eq(g.mailbox, f.mailbox);
	free(v);
}

Test(token, pct_one_spelling)
{
	char	 d[16];
	size_t	 n;

	cr_assert_eq(token_pct_decode("a%3Bb", 5, d, sizeof d, &n), 0);
	cr_assert_str_eq(d, "a;b");
	cr_assert_eq(token_pct_decode("a%3bb", 5, d, sizeof d, &n), -1,
	    "lower-case hex");
	cr_assert_eq(token_pct_decode("%41", 3, d, sizeof d, &n), -1,
	    "a safe byte encoded");
	cr_assert_eq(token_pct_decode("%2F", 3, d, sizeof d, &n), -1,
	    "'/' is safe");
	cr_assert_eq(token_pct_decode("%00", 3, d, sizeof d, &n), -1);
	cr_assert_eq(token_pct_decode("%3", 2, d, sizeof d, &n), -1);
	cr_assert_eq(token_pct_decode("a b", 3, d, sizeof d, &n), -1);
	cr_assert_eq(token_pct_decode("a;b", 3, d, sizeof d, &n), -1);
	cr_assert_eq(token_pct_decode("abcd", 4, d, 4, &n), -1, "too long");
	cr_assert_eq(token_pct_decode("abc", 3, d, 4, &n), 0);
}

Test(token, make_refuses_bad_fields)
{
	struct haul_key		 k;
	struct token_fields	 f;
	struct buf		 b = BUF_INIT;

	make_key(&k, 0);
	kat_fields(&f);
	strcpy(f.account, "bad name");
	cr_assert_eq(token_make(&k, &f, &b), -1);
	kat_fields(&f);
	f.account[0] = '\0';
	cr_assert_eq(token_make(&k, &f, &b), -1);
	kat_fields(&f);
	f.mailbox[0] = '\0';
	cr_assert_eq(token_make(&k, &f, &b), -1);
	kat_fields(&f);
	strcpy(f.uid, "a b");
	cr_assert_eq(token_make(&k, &f, &b), -1);
	kat_fields(&f);
	memset(f.uid, 'x', TOKEN_UID_MAX + 1);	/* not terminated in range */
	cr_assert_eq(token_make(&k, &f, &b), -1);
	kat_fields(&f);
	f.time = -1;
	cr_assert_eq(token_make(&k, &f, &b), -1);
	cr_assert_eq(b.len, 0, "nothing appended on failure");
	buf_free(&b);
}

/* xorshift: a seeded generator, so a failure can be replayed. */
static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

Test(token, mutations_never_verify_other_fields)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	char			*v, m[1024];
	uint32_t		 seed = 12345;
	size_t			 len, i, j, n;
	int			 ok = 0;

	make_key(&k, 0);
	kat_fields(&f);
	v = sign(&k, &f);
	len = strlen(v);
	for (i = 0; i < 5000; i++) {
		memcpy(m, v, len);
		n = len;
		for (j = 1 + rnd(&seed) % 3; j > 0; j--) {
			size_t	 at = rnd(&seed) % n;

			switch (rnd(&seed) % 3) {
			case 0:
				m[at] = (char)rnd(&seed);
				break;
			case 1:
				memmove(m + at, m + at + 1, n - at - 1);
				n--;
				break;
			default:
				memmove(m + at + 1, m + at, n - at);
				m[at] = " ;=%\r\n\t"[rnd(&seed) % 7];
				n++;
				break;
			}
		}
		if (token_verify(&k, 1, m, n, NOW, 60, &g, NULL) == 0) {
			/* Only a change that does not matter may pass. */
			ok++;
			cr_assert_str_eq(g.account, f.account);
			cr_assert_str_eq(g.mailbox, f.mailbox);
			cr_assert_str_eq(g.uid, f.uid);
			cr_assert_eq(g.time, f.time);
			cr_assert_eq(g.uidvalidity, f.uidvalidity);
		}
	}
	cr_assert_lt(ok, 5000);
	free(v);
}

static char tmpdir[64];

static void
mk_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/haul-token-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void
rm_tmpdir(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_neq(fd, -1);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* key_load() of path must fail with an error naming path and saying why. */
static void
load_fails(const char *path, const char *why)
{
	struct haul_key	 k;
	struct buf	 err = BUF_INIT;

	cr_assert_eq(key_load(path, &k, &err), -1, "%s", path);
	cr_assert_not_null(err.data);
	cr_assert_not_null(strstr(err.data, path), "%s", err.data);
	cr_assert_not_null(strstr(err.data, why), "%s", err.data);
	cr_assert_eq(k.len, 0);
	buf_free(&err);
}

Test(token, key_files, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct haul_key	 k, kat;
	struct buf	 err = BUF_INIT;
	char		 p[128], q[128];

	snprintf(p, sizeof p, "%s/good", tmpdir);
	write_file(p, KAT_B64 "\n", 0600);
	cr_assert_eq(key_load(p, &k, &err), 0, "%s", err.data);
	make_key(&kat, 0);
	cr_assert_str_eq(k.id, KAT_KEYID);
	cr_assert_eq(memcmp(k.bytes, kat.bytes, 32), 0);
	key_free(&k);

	snprintf(p, sizeof p, "%s/nonl", tmpdir);
	write_file(p, KAT_B64, 0400);
	cr_assert_eq(key_load(p, &k, &err), 0, "%s", err.data);

	snprintf(q, sizeof q, "%s/link", tmpdir);
	cr_assert_eq(symlink(p, q), 0);
	load_fails(q, "symbolic link");

	snprintf(p, sizeof p, "%s/open", tmpdir);
	write_file(p, KAT_B64 "\n", 0640);
	load_fails(p, "mode 0640");
	chmod(p, 0604);
	load_fails(p, "mode 0604");

	load_fails(tmpdir, "not a regular file");

	snprintf(p, sizeof p, "%s/short", tmpdir);
	write_file(p, "AAECAwQFBgcICQoLDA0ODw==\n", 0600);	/* 16 bytes */
	load_fails(p, "too short");

	snprintf(p, sizeof p, "%s/bad", tmpdir);
	write_file(p, "not base64 at all!\n", 0600);
	load_fails(p, "malformed");
	write_file(p, KAT_B64 "\n\n", 0600);
	load_fails(p, "malformed");
	write_file(p, "", 0600);
	load_fails(p, "empty");

	snprintf(p, sizeof p, "%s/missing", tmpdir);
	load_fails(p, "No such file");
	buf_free(&err);
}

Test(token, key_generate, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct haul_key	 gen, k;
	struct buf	 err = BUF_INIT;
	struct stat	 st;
	char		 p[128], q[128];

	umask(022);
	snprintf(p, sizeof p, "%s/key", tmpdir);
	cr_assert_eq(haul_key_generate(p, &gen, &err), 0, "%s", err.data);
	cr_assert_eq(lstat(p, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(gen.len, HAUL_KEY_GEN_LEN);
	cr_assert_eq(key_load(p, &k, &err), 0, "%s", err.data);
	cr_assert_str_eq(k.id, gen.id);
	cr_assert_eq(memcmp(k.bytes, gen.bytes, gen.len), 0);

	/* Never replaces a file, never follows a link. */
	cr_assert_eq(haul_key_generate(p, NULL, &err), -1);
	cr_assert_not_null(strstr(err.data, "exists"), "%s", err.data);
	snprintf(q, sizeof q, "%s/link", tmpdir);
	cr_assert_eq(symlink("target", q), 0);
	cr_assert_eq(haul_key_generate(q, NULL, NULL), -1);
	snprintf(q, sizeof q, "%s/target", tmpdir);
	cr_assert_eq(access(q, F_OK), -1, "nothing created through the link");

	key_free(&k);
	cr_assert_eq(k.len, 0);
	cr_assert_eq(k.bytes[0] | k.bytes[31], 0, "key material wiped");
	buf_free(&err);
}
