/* ISC licence; see LICENSE. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "haul/pop3.h"
#include "haul/str.h"

/*
 * The pure half of the POP3 client: parsers, the dot-unstuffer and the
 * small decisions that need no session state.  No I/O, no globals.
 */

static const char *state_names[] = {
	[POP3_GREETING] = "greeting",
	[POP3_CAPA] = "capa",
	[POP3_STLS] = "stls",
	[POP3_TLS] = "tls",
	[POP3_USER] = "user",
	[POP3_PASS] = "pass",
	[POP3_APOP] = "apop",
	[POP3_AUTH] = "auth",
	[POP3_CAPA_AUTHED] = "capa-authed",
	[POP3_STAT] = "stat",
	[POP3_UIDL] = "uidl",
	[POP3_LIST] = "list",
	[POP3_TRANSACTION] = "transaction",
	[POP3_QUIT] = "quit",
	[POP3_DONE] = "done",
	[POP3_FAILED] = "failed",
};

const char *
pop3_state_name(enum pop3_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "?";
	return state_names[s];
}

/* Body unstuffer states: where in a line the last byte left us. */
enum {
	BODY_BOL,		/* at the start of a line */
	BODY_MID,		/* inside a line */
	BODY_DOT,		/* a line started with "." */
	BODY_DOTCR,		/* a line started with ".\r" */
};

/*
 * A decimal number occupying all of s[0..len): no sign, no leading zero
 * (a server padding numbers is already confused), at most max.
 */
static int
parse_num(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	return str_to_u64(s, len, max, out);
}

/* Case-insensitive compare of a token with a capability name. */
static int
tok_is(const char *t, size_t n, const char *name)
{
	return str_ieq_n(t, n, name);
}

/* Is code name or a sub-level of it ("SYS/TEMP" under "SYS")? */
static int
code_is(const char *code, const char *name)
{
	size_t	 n = strlen(name);

	return strncmp(code, name, n) == 0 &&
	    (code[n] == '\0' || code[n] == '/');
}

/*
 * Pick out "[resp-code]" (RFC 2449 section 8) at the start of the text.
 * rchar is printable except "/" and "]"; levels are separated by "/".
 * Anything else is just text.
 */
static void
parse_code(struct pop3_status *st)
{
	const char	*t = st->text;
	size_t		 i, n = st->textlen;
	int		 level = 0;

	st->code[0] = '\0';
	if (n < 3 || t[0] != '[')
		return;
	for (i = 1; i < n && t[i] != ']'; i++) {
		unsigned char c = (unsigned char)t[i];

		if (i > POP3_CODE_MAX - 1)
			return;
		if (c == '/') {
			if (level == 0)
				return;		/* empty level */
			level = 0;
			continue;
		}
		if (c < 0x21 || c > 0x7e)
			return;
		level++;
	}
	if (i >= n || level == 0)
		return;
	for (n = 1; n < i; n++) {
		char	 c = t[n];

		st->code[n - 1] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
	}
	st->code[i - 1] = '\0';
}

int
pop3_parse_status(const char *line, size_t len, int cont,
    struct pop3_status *st)
{
	size_t	 off;

	st->text = "";
	st->textlen = 0;
	st->code[0] = '\0';
	if (len >= 3 && memcmp(line, "+OK", 3) == 0 &&
	    (len == 3 || line[3] == ' ')) {
		st->kind = POP3_OK;
		off = 3;
	} else if (len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    (len == 4 || line[4] == ' ')) {
		st->kind = POP3_ERR;
		off = 4;
	} else if (cont && len >= 1 && line[0] == '+' &&
	    (len == 1 || line[1] == ' ')) {
		st->kind = POP3_CONT;
		off = 1;
	} else
		return -1;
	if (off < len)
		off++;			/* the SP */
	st->text = line + off;
	st->textlen = len - off;
	if (st->kind != POP3_CONT)
		parse_code(st);
	return 0;
}

enum err_class
pop3_classify(const char *code, int auth)
{
	if (code == NULL || *code == '\0')
		return auth ? ERR_AUTH : ERR_PROTOCOL;
	if (code_is(code, "AUTH"))
		return ERR_AUTH;
	if (code_is(code, "IN-USE") || code_is(code, "LOGIN-DELAY") ||
	    code_is(code, "SYS/TEMP"))
		return ERR_TEMP;
	if (code_is(code, "SYS/PERM"))
		return ERR_PROTOCOL;
	/*
	 * A code we do not know on a login failure says "not your
	 * password" (RFC 3206 reserves that for [AUTH]); treat it as a
	 * server problem, so one odd code cannot lock accounts out.
	 */
	return auth ? ERR_TEMP : ERR_PROTOCOL;
}

void
pop3_caps_init(struct pop3_caps *c)
{
	c->flags = 0;
	c->sasl = 0;
	c->login_delay = POP3_NONE;
	c->expire = POP3_NONE;
}

/* Next SP/TAB-separated token of s[*off..len); 0 at the end. */
static size_t
next_tok(const char *s, size_t len, size_t *off, const char **tok)
{
	size_t	 i = *off, start;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	start = i;
	while (i < len && s[i] != ' ' && s[i] != '\t')
		i++;
	*off = i;
	*tok = s + start;
	return i - start;
}

void
pop3_parse_capa(struct pop3_caps *c, const char *line, size_t len)
{
	const char	*t;
	size_t		 off = 0, n;
	uint64_t	 v;

	if ((n = next_tok(line, len, &off, &t)) == 0)
		return;
	if (tok_is(t, n, "STLS"))
		c->flags |= POP3_CAP_STLS;
	else if (tok_is(t, n, "USER"))
		c->flags |= POP3_CAP_USER;
	else if (tok_is(t, n, "PIPELINING"))
		c->flags |= POP3_CAP_PIPELINING;
	else if (tok_is(t, n, "UIDL"))
		c->flags |= POP3_CAP_UIDL;
	else if (tok_is(t, n, "RESP-CODES"))
		c->flags |= POP3_CAP_RESP_CODES;
	else if (tok_is(t, n, "SASL")) {
		c->flags |= POP3_CAP_SASL;
		while ((n = next_tok(line, len, &off, &t)) != 0) {
			if (tok_is(t, n, "PLAIN"))
				c->sasl |= POP3_SASL_PLAIN;
			else if (tok_is(t, n, "LOGIN"))
				c->sasl |= POP3_SASL_LOGIN;
			else if (tok_is(t, n, "XOAUTH2"))
				c->sasl |= POP3_SASL_XOAUTH2;
			else if (tok_is(t, n, "OAUTHBEARER"))
				c->sasl |= POP3_SASL_OAUTHBEARER;
		}
	} else if (tok_is(t, n, "LOGIN-DELAY")) {
		n = next_tok(line, len, &off, &t);
		if (parse_num(t, n, INT32_MAX, &v) == 0)
			c->login_delay = (long)v;
	} else if (tok_is(t, n, "EXPIRE")) {
		n = next_tok(line, len, &off, &t);
		if (tok_is(t, n, "NEVER"))
			c->expire = POP3_EXPIRE_NEVER;
		else if (parse_num(t, n, INT32_MAX, &v) == 0)
			c->expire = (long)v;
	}
}

int
pop3_parse_uidl(const char *line, size_t len, unsigned *msgno,
    const char **uid, size_t *uidlen)
{
	const char	*sp;
	size_t		 nlen, i;
	uint64_t	 v;

	if ((sp = memchr(line, ' ', len)) == NULL)
		return -1;
	nlen = (size_t)(sp - line);
	if (parse_num(line, nlen, UINT_MAX, &v) == -1 || v == 0)
		return -1;
	*uid = sp + 1;
	*uidlen = len - nlen - 1;
	if (*uidlen == 0 || *uidlen > POP3_UID_MAX)
		return -1;
	for (i = 0; i < *uidlen; i++) {
		unsigned char c = (unsigned char)(*uid)[i];

		if (c < 0x21 || c > 0x7e)
			return -1;
	}
	*msgno = (unsigned)v;
	return 0;
}

/* "a SP b [SP anything]" with a in 0..amax and b in 0..INT64_MAX. */
static int
parse_pair(const char *s, size_t len, uint64_t amax, uint64_t *a,
    uint64_t *b)
{
	const char	*sp, *end;
	size_t		 blen;

	if ((sp = memchr(s, ' ', len)) == NULL)
		return -1;
	if (parse_num(s, (size_t)(sp - s), amax, a) == -1)
		return -1;
	sp++;
	blen = len - (size_t)(sp - s);
	if ((end = memchr(sp, ' ', blen)) != NULL)
		blen = (size_t)(end - sp);
	return parse_num(sp, blen, INT64_MAX, b);
}

int
pop3_parse_list(const char *line, size_t len, unsigned *msgno,
    uint64_t *size)
{
	uint64_t	 n;

	if (parse_pair(line, len, UINT_MAX, &n, size) == -1 || n == 0)
		return -1;
	*msgno = (unsigned)n;
	return 0;
}

int
pop3_parse_stat(const char *text, size_t len, unsigned *count,
    uint64_t *octets)
{
	uint64_t	 n;

	if (parse_pair(text, len, UINT_MAX, &n, octets) == -1)
		return -1;
	*count = (unsigned)n;
	return 0;
}

int
pop3_apop_timestamp(const char *text, size_t len, const char **ts,
    size_t *tslen)
{
	const char	*lt, *gt;
	size_t		 rest, i, at = 0, atpos = 0;

	if ((lt = memchr(text, '<', len)) == NULL)
		return 0;
	rest = len - (size_t)(lt - text);
	if (rest > POP3_TIMESTAMP_MAX)
		rest = POP3_TIMESTAMP_MAX;
	if ((gt = memchr(lt, '>', rest)) == NULL)
		return -1;
	for (i = 1; lt + i < gt; i++) {
		unsigned char c = (unsigned char)lt[i];

		if (c < 0x21 || c > 0x7e || c == '<')
			return -1;
		if (c == '@') {
			at++;
			atpos = i;
		}
	}
	/* Exactly one "@", with something on both sides. */
	if (at != 1 || atpos == 1 || lt + atpos + 1 == gt)
		return -1;
	*ts = lt;
	*tslen = (size_t)(gt - lt) + 1;
	return 1;
}

void
pop3_body_init(struct pop3_body *b)
{
	b->state = BODY_BOL;
	b->cr = 0;
}

size_t
pop3_body_feed(struct pop3_body *b, const void *data, size_t len,
    pop3_emit_fn emit, void *arg, int *end)
{
	const unsigned char	*d = data, *span = NULL, *lf;
	size_t			 i = 0;

	*end = 0;
	while (i < len) {
		switch (b->state) {
		case BODY_BOL:
			if (d[i] == '.') {
				/* Flush what precedes the dot; drop the dot. */
				if (span != NULL &&
				    emit(arg, span, (size_t)(d + i - span)) == -1)
					goto fail;
				span = NULL;
				b->state = BODY_DOT;
				i++;
				break;
			}
			b->state = BODY_MID;
			b->cr = 0;
			/* FALLTHROUGH */
		case BODY_MID: {
			int	 crlf;

			if (span == NULL)
				span = d + i;
			if ((lf = memchr(d + i, '\n', len - i)) == NULL) {
				b->cr = d[len - 1] == '\r';
				i = len;
				break;
			}
			/*
			 * RFC 1939 frames lines by CRLF only: after a bare LF
			 * the server did not dot-stuff, so a '.' there is
			 * content, and ".CRLF" there does not end the message.
			 */
			crlf = lf > d + i ? lf[-1] == '\r' : b->cr;
			i = (size_t)(lf - d) + 1;
			b->cr = 0;
			if (crlf)
				b->state = BODY_BOL;
			break;
		}
		case BODY_DOT:
			if (d[i] == '\r') {
				b->state = BODY_DOTCR;
				i++;
				break;
			}
			/* A stuffed line (RFC 1939: strip the first octet). */
			b->state = BODY_MID;
			break;
		case BODY_DOTCR:
			if (d[i] == '\n') {
				b->state = BODY_BOL;
				*end = 1;
				return i + 1;
			}
			/* ".\r" then more: the dot was stuffing, keep the CR. */
			if (emit(arg, "\r", 1) == -1)
				goto fail;
			b->state = BODY_MID;
			b->cr = 1;
			break;
		}
	}
	if (span != NULL && emit(arg, span, (size_t)(d + len - span)) == -1)
		goto fail;
	return len;
fail:
	*end = -1;
	return i;
}

const char *
pop3_sasl_name(enum auth_mech m)
{
	switch (m) {
	case AUTH_PLAIN:
		return "PLAIN";
	case AUTH_LOGIN:
		return "LOGIN";
	case AUTH_XOAUTH2:
		return "XOAUTH2";
	case AUTH_OAUTHBEARER:
		return "OAUTHBEARER";
	default:
		return "?";
	}
}

/* The CAPA SASL bit of a mechanism; 0 for non-SASL ones. */
static unsigned
sasl_bit(enum auth_mech m)
{
	switch (m) {
	case AUTH_PLAIN:
		return POP3_SASL_PLAIN;
	case AUTH_LOGIN:
		return POP3_SASL_LOGIN;
	case AUTH_XOAUTH2:
		return POP3_SASL_XOAUTH2;
	case AUTH_OAUTHBEARER:
		return POP3_SASL_OAUTHBEARER;
	default:
		return 0;
	}
}

int
pop3_choose_auth(enum auth_mech want, const struct pop3_caps *c,
    int capa_ok)
{
	unsigned	 bit;

	switch (want) {
	case AUTH_AUTO:
		if (c->sasl & POP3_SASL_PLAIN)
			return AUTH_PLAIN;
		/* RFC 2449: without CAPA, USER/PASS is all one can assume. */
		if (!capa_ok || (c->flags & POP3_CAP_USER))
			return AUTH_USER;
		if (c->sasl & POP3_SASL_LOGIN)
			return AUTH_LOGIN;
		return -1;
	case AUTH_USER:
	case AUTH_APOP:
		return want;
	default:
		if ((bit = sasl_bit(want)) == 0)
			return -1;
		/* A server that answered CAPA must list the mechanism. */
		if (capa_ok && (c->sasl & bit) == 0)
			return -1;
		return want;
	}
}

int
pop3_apop_digest(const char *ts, size_t tslen, const void *secret,
    size_t len, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	int		 ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	/* Fed in two pieces, so the secret is never copied. */
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, ts, tslen) == 1 &&
	    EVP_DigestUpdate(ctx, secret, len) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (ok) {
		for (i = 0; i < 16; i++) {
			hex[2 * i] = digits[md[i] >> 4];
			hex[2 * i + 1] = digits[md[i] & 15];
		}
		hex[32] = '\0';
	}
	explicit_bzero(md, sizeof(md));
	return ok ? 0 : -1;
}
