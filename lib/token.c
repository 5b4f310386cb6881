/* ISC licence; see LICENSE. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "haul/base64.h"
#include "haul/buf.h"
#include "haul/str.h"
#include "haul/token.h"

/* Domain separation: a token HMAC can never be mistaken for another use. */
#define TOKEN_CANON_PREFIX	"haul-token-v1\n"
/* Year 5138: far enough, and small enough that now + skew cannot wrap. */
#define TOKEN_TIME_MAX		99999999999ULL
/* A key file is one short line; anything bigger is not ours. */
#define KEY_FILE_MAX		512
/* token_make() breaks an encoded mailbox every so many characters. */
#define TOKEN_M_CHUNK		64
/* Number of fields in a token, in their fixed order. */
#define TOKEN_NFIELDS		7

static const char *const field_names[TOKEN_NFIELDS] = {
	"v", "k", "a", "m", "u", "t", "s"
};

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* The bytes that stand for themselves in an encoded mailbox or uid. */
static int
pct_safe(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	    c == '/';
}

static int
account_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int
account_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > TOKEN_ACCOUNT_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!account_char((unsigned char)s[i]))
			return 0;
	return 1;
}

static int
uid_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > TOKEN_UID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int
hexval_upper(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
token_pct_encode(struct buf *out, const void *src, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = src;
	size_t		 i, start = out->len;
	char		 e[3];

	for (i = 0; i < len; i++) {
		if (pct_safe(s[i])) {
			if (buf_add_byte(out, s[i]) == -1)
				goto fail;
			continue;
		}
		e[0] = '%';
		e[1] = hex[s[i] >> 4];
		e[2] = hex[s[i] & 0xf];
		if (buf_add(out, e, 3) == -1)
			goto fail;
	}
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/*
 * Decode src strictly into dst; with skip_ws, spaces and tabs between
 * encoded units are ignored (a folded mailbox).  Every byte sequence has
 * exactly one accepted spelling apart from that whitespace.
 */
static int
pct_decode(const char *src, size_t len, int skip_ws, char *dst, size_t dstsz,
    size_t *outlen)
{
	size_t	 i, n = 0;
	int	 hi, lo;

	if (dstsz == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i], b;

		if (skip_ws && is_wsp(c))
			continue;
		if (pct_safe(c))
			b = c;
		else if (c == '%') {
			if (len - i < 3)
				return -1;
			hi = hexval_upper((unsigned char)src[i + 1]);
			lo = hexval_upper((unsigned char)src[i + 2]);
			if (hi == -1 || lo == -1)
				return -1;
			b = (unsigned char)(hi << 4 | lo);
			/* One spelling only: no %41 for 'A', no %00. */
			if (b == 0 || pct_safe(b))
				return -1;
			i += 2;
		} else
			return -1;
		if (n >= dstsz - 1)
			return -1;
		dst[n++] = (char)b;
	}
	dst[n] = '\0';
	*outlen = n;
	return 0;
}

int
token_pct_decode(const char *src, size_t len, char *dst, size_t dstsz,
    size_t *outlen)
{
	return pct_decode(src, len, 0, dst, dstsz, outlen);
}

/* Parse a canonical decimal (no leading zero unless it is "0"). */
static int
canon_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	if (len > 1 && s[0] == '0')
		return -1;
	return str_to_u64(s, len, max, out);
}

/* Append one length-prefixed field "name=len:value\n" to out. */
static int
canon_field(struct buf *out, const char *name, const char *v, size_t len)
{
	if (buf_addf(out, "%s=%zu:", name, len) == -1 ||
	    buf_add(out, v, len) == -1 || buf_add_byte(out, '\n') == -1)
		return -1;
	return 0;
}

int
token_canonical(const struct token_fields *f, struct buf *out)
{
	char	 u[16 + TOKEN_UID_MAX], t[24];
	int	 n;

	n = snprintf(u, sizeof u, "%" PRIu32 ".%s", f->uidvalidity, f->uid);
	if (n < 0 || (size_t)n >= sizeof u)
		return -1;
	snprintf(t, sizeof t, "%" PRId64, f->time);
	if (buf_add_str(out, TOKEN_CANON_PREFIX) == -1 ||
	    canon_field(out, "k", f->key_id, strlen(f->key_id)) == -1 ||
	    canon_field(out, "a", f->account, strlen(f->account)) == -1 ||
	    canon_field(out, "m", f->mailbox, strlen(f->mailbox)) == -1 ||
	    canon_field(out, "u", u, (size_t)n) == -1 ||
	    canon_field(out, "t", t, strlen(t)) == -1)
		return -1;
	return 0;
}

/* HMAC-SHA256 of the canonical string of f under key into mac. */
static int
token_mac(const struct haul_key *key, const struct token_fields *f,
    unsigned char mac[TOKEN_SIG_LEN])
{
	struct buf	 canon;
	unsigned int	 maclen = 0;
	int		 rc = -1;

	buf_init(&canon, 0);
	if (token_canonical(f, &canon) == -1)
		goto out;
	if (HMAC(EVP_sha256(), key->bytes, (int)key->len,
	    (const unsigned char *)canon.data, canon.len, mac, &maclen) == NULL ||
	    maclen != TOKEN_SIG_LEN)
		goto out;
	rc = 0;
out:
	buf_free(&canon);
	return rc;
}

int
key_from_bytes(struct haul_key *out, const void *bytes, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	size_t		 i;

	memset(out, 0, sizeof *out);
	if (len < HAUL_KEY_MIN || len > HAUL_KEY_MAX)
		return -1;
	if (EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < TOKEN_KEYID_LEN / 2)
		return -1;
	memcpy(out->bytes, bytes, len);
	out->len = len;
	for (i = 0; i < TOKEN_KEYID_LEN / 2; i++) {
		out->id[2 * i] = hex[md[i] >> 4];
		out->id[2 * i + 1] = hex[md[i] & 0xf];
	}
	out->id[TOKEN_KEYID_LEN] = '\0';
	return 0;
}

void
key_free(struct haul_key *k)
{
	explicit_bzero(k, sizeof *k);
}

/* Append "key file PATH: why" to err, if there is one. */
static void
key_error(struct buf *err, const char *path, const char *why)
{
	if (err != NULL)
		buf_addf(err, "key file %s: %s", path, why);
}

int
key_load(const char *path, struct haul_key *out, struct buf *err)
{
	struct stat	 st;
	struct buf	 raw;
	char		 text[KEY_FILE_MAX + 1];
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd, rc = -1;
	char		 why[64];

	memset(out, 0, sizeof *out);
	buf_init(&raw, 0);
	/* O_NONBLOCK: a FIFO planted at path must not hang the daemon. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP && lstat(path, &st) == 0 &&
		    S_ISLNK(st.st_mode))
			key_error(err, path, "is a symbolic link (refused)");
		else
			key_error(err, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		key_error(err, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		key_error(err, path, "not a regular file");
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(why, sizeof why, "mode %04o gives group or other "
		    "access (chmod 600)", (unsigned)(st.st_mode & 07777));
		key_error(err, path, why);
		goto out;
	}
	while (len < sizeof text) {
		n = read(fd, text + len, sizeof text - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			key_error(err, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > KEY_FILE_MAX) {
		key_error(err, path, "too long (expected one line of "
		    "base64)");
		goto out;
	}
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len == 0) {
		key_error(err, path, "empty");
		goto out;
	}
	if (base64_decode(&raw, text, len, 0) == -1) {
		key_error(err, path, "malformed (expected one line of "
		    "standard base64)");
		goto out;
	}
	if (raw.len < HAUL_KEY_MIN) {
		key_error(err, path, "key too short (need at least 32 "
		    "bytes)");
		goto out;
	}
	if (raw.len > HAUL_KEY_MAX) {
		key_error(err, path, "key too long (at most 64 bytes)");
		goto out;
	}
	if (key_from_bytes(out, raw.data, raw.len) == -1) {
		key_error(err, path, "cannot compute the key id");
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(text, sizeof text);
	buf_free_secret(&raw);
	close(fd);
	return rc;
}

/* write(2) all of p, retrying on EINTR and short writes. */
static int
write_all(int fd, const void *p, size_t n)
{
	const char	*s = p;
	ssize_t		 w;

	while (n > 0) {
		w = write(fd, s, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
haul_key_generate(const char *path, struct haul_key *out, struct buf *err)
{
	unsigned char	 bytes[HAUL_KEY_GEN_LEN];
	struct buf	 text;
	int		 fd, rc = -1;

	buf_init(&text, 0);
	if (RAND_priv_bytes(bytes, sizeof bytes) != 1) {
		key_error(err, path, "no random bytes from OpenSSL");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		key_error(err, path, strerror(errno));
		goto out;
	}
	/* The umask may only have removed bits; make it exactly 0600. */
	if (fchmod(fd, 0600) == -1 ||
	    base64_encode(&text, bytes, sizeof bytes, 0) == -1 ||
	    buf_add_byte(&text, '\n') == -1 ||
	    write_all(fd, text.data, text.len) == -1 ||
	    fsync(fd) == -1) {
		key_error(err, path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	if (close(fd) == -1) {
		key_error(err, path, strerror(errno));
		unlink(path);
		goto out;
	}
	if (out != NULL && key_from_bytes(out, bytes, sizeof bytes) == -1)
		goto out;
	rc = 0;
out:
	explicit_bzero(bytes, sizeof bytes);
	buf_free_secret(&text);
	return rc;
}

/* Check the fields token_make() signs; 0 if they fit the format. */
static int
fields_ok(const struct token_fields *f)
{
	size_t	 mlen = strnlen(f->mailbox, sizeof f->mailbox);

	if (!account_ok(f->account, strnlen(f->account, sizeof f->account)))
		return 0;
	if (mlen == 0 || mlen > TOKEN_MAILBOX_MAX)
		return 0;
	if (!uid_ok(f->uid, strnlen(f->uid, sizeof f->uid)))
		return 0;
	return f->time >= 0 && (uint64_t)f->time <= TOKEN_TIME_MAX;
}

/* Append the encoded mailbox, a space after every TOKEN_M_CHUNK chars. */
static int
add_mailbox(struct buf *out, const char *m)
{
	struct buf	 enc;
	size_t		 i, col = 0, unit;
	int		 rc = -1;

	buf_init(&enc, 0);
	if (token_pct_encode(&enc, m, strlen(m)) == -1)
		goto out;
	for (i = 0; i < enc.len; i += unit) {
		unit = enc.data[i] == '%' ? 3 : 1;
		if (col + unit > TOKEN_M_CHUNK) {
			if (buf_add_byte(out, ' ') == -1)
				goto out;
			col = 0;
		}
		if (buf_add(out, enc.data + i, unit) == -1)
			goto out;
		col += unit;
	}
	rc = 0;
out:
	buf_free(&enc);
	return rc;
}

int
token_make(const struct haul_key *key, const struct token_fields *f,
    struct buf *out)
{
	struct token_fields	 sf;
	unsigned char		 mac[TOKEN_SIG_LEN];
	size_t			 start = out->len;

	if (key->len < HAUL_KEY_MIN || key->len > HAUL_KEY_MAX ||
	    !fields_ok(f)) {
		errno = EINVAL;
		return -1;
	}
	sf = *f;
	memcpy(sf.key_id, key->id, sizeof sf.key_id);
	if (token_mac(key, &sf, mac) == -1)
		goto fail;
	if (buf_addf(out, "v=1; k=%s; a=%s; m=", sf.key_id, sf.account) == -1 ||
	    add_mailbox(out, sf.mailbox) == -1 ||
	    buf_addf(out, "; u=%" PRIu32 ".", sf.uidvalidity) == -1 ||
	    token_pct_encode(out, sf.uid, strlen(sf.uid)) == -1 ||
	    buf_addf(out, "; t=%" PRId64 "; s=", sf.time) == -1 ||
	    base64_encode(out, mac, sizeof mac, 1) == -1)
		goto fail;
	explicit_bzero(mac, sizeof mac);
	return 0;
fail:
	explicit_bzero(mac, sizeof mac);
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/*
 * Undo header folding (CRLF or LF before a space or tab) into dst and
 * check that what is left is printable ASCII or tab.  Returns the new
 * length, or -1.
 */
static ssize_t
unfold(const char *v, size_t len, char *dst)
{
	size_t	 i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\r') {
			if (i + 2 >= len || v[i + 1] != '\n' ||
			    !is_wsp((unsigned char)v[i + 2]))
				return -1;
			i++;
			continue;
		}
		if (c == '\n') {
			if (i + 1 >= len || !is_wsp((unsigned char)v[i + 1]))
				return -1;
			continue;
		}
		if (c != '\t' && (c < 0x20 || c > 0x7e))
			return -1;
		dst[n++] = (char)c;
	}
	return (ssize_t)n;
}

/* 1 if s[0..len) names a token field at all (for a better reason). */
static int
known_field(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < TOKEN_NFIELDS; i++)
		if (len == 1 && s[0] == field_names[i][0])
			return 1;
	return 0;
}

static int
parse_keyid(const char *s, size_t len, struct token_fields *out)
{
	size_t	 i;

	if (len != TOKEN_KEYID_LEN)
		return -1;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
	memcpy(out->key_id, s, len);
	out->key_id[len] = '\0';
	return 0;
}

static int
parse_uid(const char *s, size_t len, struct token_fields *out)
{
	const char	*dot;
	uint64_t	 v;
	size_t		 n;

	if ((dot = memchr(s, '.', len)) == NULL ||
	    canon_u64(s, (size_t)(dot - s), UINT32_MAX, &v) == -1)
		return -1;
	out->uidvalidity = (uint32_t)v;
	dot++;
	if (pct_decode(dot, len - (size_t)(dot - s), 0, out->uid,
	    sizeof out->uid, &n) == -1 || !uid_ok(out->uid, n))
		return -1;
	return 0;
}

/* Check one "name=value" field (already trimmed) at position idx. */
static int
parse_field(size_t idx, const char *s, size_t len, struct token_fields *out,
    const char **reason)
{
	const char	*eq, *v;
	size_t		 vlen, n;
	uint64_t	 t;
	struct buf	 sig;
	int		 rc;

	if ((eq = memchr(s, '=', len)) == NULL) {
		*reason = "field without '='";
		return -1;
	}
	if ((size_t)(eq - s) != 1 || s[0] != field_names[idx][0]) {
		*reason = known_field(s, (size_t)(eq - s)) ?
		    "field repeated or out of order" : "unknown field";
		return -1;
	}
	v = eq + 1;
	vlen = len - (size_t)(v - s);
	switch (idx) {
	case 0:
		if (vlen != 1 || v[0] != '1') {
			*reason = "unsupported version";
			return -1;
		}
		return 0;
	case 1:
		if (parse_keyid(v, vlen, out) == -1) {
			*reason = "bad key id";
			return -1;
		}
		return 0;
	case 2:
		if (!account_ok(v, vlen)) {
			*reason = "bad account";
			return -1;
		}
		memcpy(out->account, v, vlen);
		out->account[vlen] = '\0';
		return 0;
	case 3:
		if (pct_decode(v, vlen, 1, out->mailbox, sizeof out->mailbox,
		    &n) == -1 || n == 0) {
			*reason = "bad mailbox";
			return -1;
		}
		return 0;
	case 4:
		if (parse_uid(v, vlen, out) == -1) {
			*reason = "bad uid";
			return -1;
		}
		return 0;
	case 5:
		if (canon_u64(v, vlen, TOKEN_TIME_MAX, &t) == -1) {
			*reason = "bad time";
			return -1;
		}
		out->time = (int64_t)t;
		return 0;
	default:
		if (vlen != TOKEN_SIG_B64_LEN) {
			*reason = "bad signature encoding";
			return -1;
		}
		buf_init(&sig, TOKEN_SIG_LEN);
		rc = base64_decode(&sig, v, vlen, 1);
		if (rc == 0 && sig.len == TOKEN_SIG_LEN)
			memcpy(out->sig, sig.data, TOKEN_SIG_LEN);
		else
			rc = -1;
		buf_free(&sig);
		if (rc == -1)
			*reason = "bad signature encoding";
		return rc;
	}
}

int
token_parse(const char *value, size_t len, struct token_fields *out,
    const char **reason)
{
	char		 u[TOKEN_MAX_LEN];
	const char	*dummy, *p, *end, *semi, *s, *e;
	ssize_t		 ulen;
	size_t		 idx;

	if (reason == NULL)
		reason = &dummy;
	memset(out, 0, sizeof *out);
	if (len > TOKEN_MAX_LEN) {
		*reason = "too long";
		return -1;
	}
	if ((ulen = unfold(value, len, u)) == -1) {
		*reason = "bad character or line break";
		return -1;
	}
	p = u;
	end = u + ulen;
	for (idx = 0; p <= end; idx++) {
		if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
			semi = end;
		if (idx >= TOKEN_NFIELDS) {
			*reason = "data after the signature";
			goto bad;
		}
		/* Optional whitespace around each ';'. */
		for (s = p; s < semi && is_wsp((unsigned char)*s); s++)
			;
		for (e = semi; e > s && is_wsp((unsigned char)e[-1]); e--)
			;
		if (s == e) {
			*reason = "empty field";
			goto bad;
		}
		if (parse_field(idx, s, (size_t)(e - s), out, reason) == -1)
			goto bad;
		p = semi + 1;
	}
	if (idx != TOKEN_NFIELDS) {
		*reason = "missing field";
		goto bad;
	}
	return 0;
bad:
	memset(out, 0, sizeof *out);
	return -1;
}

int
token_verify(const struct haul_key *keys, size_t nkeys, const char *value,
    size_t len, time_t now, unsigned max_age, struct token_fields *out,
    const char **reason)
{
	struct token_fields	 f;
	unsigned char		 mac[TOKEN_SIG_LEN];
	const char		*dummy;
	size_t			 i;
	int			 known = 0, good = 0;

	if (reason == NULL)
		reason = &dummy;
	if (out != NULL)
		memset(out, 0, sizeof *out);
	if (token_parse(value, len, &f, NULL) == -1) {
		*reason = "malformed";
		return -1;
	}
	/* Two keys may share an id only by accident; try every match. */
	for (i = 0; i < nkeys && !good; i++) {
		if (strcmp(keys[i].id, f.key_id) != 0)
			continue;
		known = 1;
		if (token_mac(&keys[i], &f, mac) == 0 &&
		    CRYPTO_memcmp(mac, f.sig, TOKEN_SIG_LEN) == 0)
			good = 1;
	}
	explicit_bzero(mac, sizeof mac);
	if (!known) {
		*reason = "unknown key";
		return -1;
	}
	if (!good) {
		*reason = "bad signature";
		return -1;
	}
	/* Only a genuine token gets as far as the clock checks. */
	if ((int64_t)now < INT64_MAX - TOKEN_SKEW &&
	    f.time > (int64_t)now + TOKEN_SKEW) {
		*reason = "from the future";
		return -1;
	}
	if ((int64_t)now - f.time > (int64_t)max_age) {
		*reason = "expired";
		return -1;
	}
	if (out != NULL)
		*out = f;
	return 0;
}
