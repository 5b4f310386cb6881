/* ISC licence; see LICENSE. */
/*
 * F7: SASL client challenge handling.  The first byte picks the target:
 *
 *   0  sasl_decode_challenge() on the rest, with a cap from byte 1;
 *      property: never more than the cap is appended, and a failed
 *      decode leaves the buffer as it was
 *   1  sasl_oauth_error_status() on the rest; property: the status comes
 *      out NUL-terminated, within dstsz, printable ASCII only
 *   2  the encoders: the rest split at NUL bytes into user, secret,
 *      host; property: what PLAIN/LOGIN/XOAUTH2/OAUTHBEARER produce
 *      decodes back to exactly the fields given
 *   3  the POP3 machine (mechanism from byte 1), fed the rest as the
 *      server transcript in chunks: AUTH continuations in every state
 *   4  the same for the IMAP machine (AUTHENTICATE)
 *   5, 6  the POP3 / IMAP machine with tls = starttls and no TLS ever
 *      started (the transcript may offer STLS/STARTTLS, refuse it, send
 *      PREAUTH, challenges ...)
 *
 * Properties: for 3 and 4, with a SASL mechanism (or APOP) the secret
 * never leaves the machine in the clear; for 5 and 6 (I5) no credential
 * leaves it at all: neither the secret nor its base64 form, nor any of
 * the authentication commands.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/base64.h"
#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/pop3.h"
#include "haul/sasl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char SECRET[] = "Fz-secret-token.42";

static void
decode(const uint8_t *d, size_t n, size_t cap)
{
	struct buf	 b;
	size_t		 before;

	buf_init(&b, 0);
	buf_add(&b, "x", 1);
	before = b.len;
	if (sasl_decode_challenge(&b, (const char *)d, n, cap) == 0) {
		if (b.len - before > cap)
			abort();
	} else if (b.len != before)
		abort();
	buf_free(&b);
}

static void
oauth_status(const uint8_t *d, size_t n, size_t dstsz)
{
	char	 dst[64];
	size_t	 i;

	memset(dst, 'Z', sizeof(dst));
	if (dstsz == 0 || dstsz > sizeof(dst))
		dstsz = sizeof(dst);
	if (sasl_oauth_error_status(d, n, dst, dstsz) != 0)
		return;
	if (memchr(dst, '\0', dstsz) == NULL)
		abort();
	for (i = 0; dst[i] != '\0'; i++)
		if (dst[i] < 0x20 || dst[i] > 0x7e)
			abort();
}

/* base64 in b decodes to exactly want[0..wlen). */
static void
check_b64(const struct buf *b, const void *want, size_t wlen)
{
	struct buf	 raw;

	buf_init(&raw, 0);
	if (base64_decode(&raw, b->data, b->len, 0) == -1 ||
	    raw.len != wlen || memcmp(raw.data, want, wlen) != 0)
		abort();
	buf_free(&raw);
}

static void
encoders(const uint8_t *d, size_t n)
{
	char		*f[3] = { NULL, NULL, NULL };
	char		*copy, *p, *want;
	size_t		 i, k = 0, wl;
	struct buf	 b;

	copy = malloc(n + 1);
	memcpy(copy, d, n);
	copy[n] = '\0';
	for (p = copy, i = 0; k < 3; i++) {
		if (i == n || copy[i] == '\0') {
			f[k++] = p;
			if (i >= n)
				break;
			p = copy + i + 1;
		}
	}
	while (k < 3)
		f[k++] = "";
	/* f[0] user, f[1] secret, f[2] host */
	buf_init(&b, 0);
	if (sasl_plain(&b, NULL, f[0], f[1], strlen(f[1])) == 0) {
		wl = strlen(f[0]) + strlen(f[1]) + 2;
		want = malloc(wl);
		want[0] = '\0';
		memcpy(want + 1, f[0], strlen(f[0]));
		want[1 + strlen(f[0])] = '\0';
		memcpy(want + 2 + strlen(f[0]), f[1], strlen(f[1]));
		check_b64(&b, want, wl);
		free(want);
	}
	buf_free_secret(&b);
	buf_init(&b, 0);
	if (sasl_login(&b, f[1], strlen(f[1])) == 0)
		check_b64(&b, f[1], strlen(f[1]));
	buf_free_secret(&b);
	buf_init(&b, 0);
	if (sasl_xoauth2(&b, f[0], f[1], strlen(f[1])) == 0) {
		if (!sasl_bearer_valid(f[1], strlen(f[1])))
			abort();
	}
	buf_free_secret(&b);
	buf_init(&b, 0);
	if (sasl_oauthbearer(&b, f[0][0] ? f[0] : NULL, f[2][0] ? f[2] : NULL,
	    993, f[1], strlen(f[1])) == 0) {
		struct buf	 raw;

		buf_init(&raw, 0);
		if (base64_decode(&raw, b.data, b.len, 0) == -1 ||
		    raw.len < 4 || memcmp(raw.data, "n,", 2) != 0 ||
		    raw.data[raw.len - 1] != '\001' ||
		    raw.data[raw.len - 2] != '\001')
			abort();
		buf_free(&raw);
	}
	buf_free_secret(&b);
	free(copy);
}

static const enum auth_mech mechs[] = {
	AUTH_AUTO, AUTH_PLAIN, AUTH_LOGIN, AUTH_USER, AUTH_APOP,
	AUTH_XOAUTH2, AUTH_OAUTHBEARER,
};

/* Set per run: 1 = the secret may go out verbatim (USER/PASS, LOGIN
 * under TLS), 2 = no TLS yet: nothing of the credential may go out. */
static int	 verbatim_ok;
static int	 no_tls;

static int
has(const struct buf *out, const char *s)
{
	size_t	 n = strlen(s);

	return out->len >= n && memmem(out->data, out->len, s, n) != NULL;
}

static void
check_out(struct buf *out)
{
	static const char *cmds[] = { "PASS ", "AUTH ", "APOP ", " LOGIN ",
	    " AUTHENTICATE " };
	struct buf	 b64;
	size_t		 i;

	if (!verbatim_ok && has(out, SECRET))
		abort();
	if (no_tls) {
		if (has(out, SECRET))
			abort();
		buf_init(&b64, 0);
		base64_encode(&b64, SECRET, sizeof(SECRET) - 1, 0);
		/* a prefix: the secret's base64 inside a longer blob shifts */
		if (b64.len > 12) {
			b64.data[12] = '\0';
			if (has(out, b64.data))
				abort();
		}
		buf_free(&b64);
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (has(out, cmds[i]))
				abort();
	}
	buf_reset(out);
}

/* ---- POP3 ---- */

static enum pop3_want
p_want(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	return POP3_WANT_SKIP;
}

static int
p_begin(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	return 0;
}

static int
p_data(void *arg, const void *p, size_t n)
{
	return 0;
}

static int
p_end(void *arg, unsigned msgno, const char *uid)
{
	return 0;
}

static void
pop3_run(const uint8_t *d, size_t n, enum auth_mech m, size_t chunk)
{
	struct pop3_cb	 cb = { .want = p_want, .msg_begin = p_begin,
			    .msg_data = p_data, .msg_end = p_end };
	struct pop3_params pp = { .account = "fuzz", .host = "pop.example",
			    .port = 995, .tls = no_tls ? TLS_STARTTLS :
			    TLS_IMPLICIT, .auth = m,
			    .user = "user@example", .secret = SECRET,
			    .secret_len = sizeof(SECRET) - 1,
			    .max_message_size = 1 << 16 };
	struct pop3	*p;
	size_t		 off = 0, used;

	p = pop3_new(&pp, &cb, NULL);
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;
		enum proto_status st = pop3_input(p, d + off, len, &used);

		check_out(pop3_output(p));
		if (st != PS_MORE)
			break;
		off += len;
	}
	check_out(pop3_output(p));
	pop3_free(&p);
}

/* ---- IMAP ---- */

static void
i_done(void *arg, enum imap_op op, int ok, const char *text)
{
}

static enum imap_want
i_want(void *arg, uint32_t uid, uint64_t size)
{
	return IMAP_WANT_SKIP;
}

static int
i_begin(void *arg, uint32_t uid, uint64_t size)
{
	return 0;
}

static int
i_data(void *arg, const void *p, size_t n)
{
	return 0;
}

static int
i_end(void *arg, uint32_t uid)
{
	return 0;
}

static void
imap_run(const uint8_t *d, size_t n, enum auth_mech m, size_t chunk)
{
	struct imap_cb	 cb = { .op_done = i_done, .want = i_want,
			    .msg_begin = i_begin, .msg_data = i_data,
			    .msg_end = i_end };
	struct imap_params ip = { .account = "fuzz", .host = "imap.example",
			    .port = 993, .tls = no_tls ? TLS_STARTTLS :
			    TLS_IMPLICIT, .auth = m,
			    .user = "user@example", .secret = SECRET,
			    .secret_len = sizeof(SECRET) - 1,
			    .max_message_size = 1 << 16 };
	struct imap	*p;
	size_t		 off = 0, used;

	if (m == AUTH_APOP)
		m = ip.auth = AUTH_AUTO;
	p = imap_new(&ip, &cb, NULL);
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;
		enum proto_status st = imap_input(p, d + off, len, &used);

		check_out(imap_output(p));
		if (st != PS_MORE)
			break;
		off += len;
	}
	check_out(imap_output(p));
	imap_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	enum auth_mech	 m;

	if (n < 2)
		return 0;
	m = mechs[d[1] % 7];
	no_tls = d[0] % 7 >= 5;
	verbatim_ok = !no_tls && (m == AUTH_USER || m == AUTH_AUTO ||
	    (m == AUTH_APOP && d[0] % 7 == 4));	/* IMAP: APOP -> AUTO */
	switch (d[0] % 7) {
	case 0:
		decode(d + 2, n - 2, (size_t)d[1] * 37);
		break;
	case 1:
		oauth_status(d + 2, n - 2, d[1] % 70);
		break;
	case 2:
		encoders(d + 1, n - 1);
		break;
	case 3:
	case 5:
		pop3_run(d + 2, n - 2, m, 1 + (d[1] >> 3));
		break;
	default:
		imap_run(d + 2, n - 2, m, 1 + (d[1] >> 3));
		break;
	}
	return 0;
}
