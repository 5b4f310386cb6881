/* ISC licence; see LICENSE. */
/*
 * fetchmail's run control file, read the way fetchmail 6.4 reads it
 * (rcfile_l.l, rcfile_y.y): a bounded tokenizer, then a small recursive
 * parser that records every option with its line.  What each option
 * means for haul is ctl/import.c's business.  See haul/fetchmailrc.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/fetchmailrc.h"
#include "haul/xmalloc.h"

/* ---- keywords --------------------------------------------------------- */

enum kscope { KS_STRUCT, KS_SERVER, KS_USER, KS_SET };
enum karg {
	KA_NONE,	/* structural: handled by the parser */
	KA_FLAG,	/* no value; "no" allowed */
	KA_NUM,		/* one number */
	KA_STR,		/* one string (a number is taken as text) */
	KA_NAME,	/* one string read in name mode (password) */
	KA_LIST,	/* one or more strings */
	KA_NUMLIST,	/* one or more numbers (antispam) */
	KA_WORD,	/* one word of a fixed set (protocol, auth) */
	KA_ENVELOPE,	/* [number] string */
	KA_SETSTR,	/* [=] string (set logfile = "x") */
};

struct kw {
	const char	*name;		/* as written */
	const char	*canon;		/* what the option is recorded as */
	enum kscope	 scope;
	enum karg	 arg;
};

static const struct kw kws[] = {
	{ "set", "set", KS_STRUCT, KA_NONE },
	{ "defaults", "defaults", KS_STRUCT, KA_NONE },
	{ "poll", "poll", KS_STRUCT, KA_NONE },
	{ "server", "poll", KS_STRUCT, KA_NONE },
	{ "skip", "skip", KS_STRUCT, KA_NONE },
	{ "user", "user", KS_STRUCT, KA_NONE },
	{ "username", "user", KS_STRUCT, KA_NONE },
	{ "is", "is", KS_STRUCT, KA_NONE },
	{ "to", "to", KS_STRUCT, KA_NONE },
	{ "here", "here", KS_STRUCT, KA_NONE },
	{ "there", "there", KS_STRUCT, KA_NONE },
	{ "no", "no", KS_STRUCT, KA_NONE },

	/* server options */
	{ "via", "via", KS_SERVER, KA_STR },
	{ "aka", "aka", KS_SERVER, KA_LIST },
	{ "local", "localdomains", KS_SERVER, KA_LIST },
	{ "localdomains", "localdomains", KS_SERVER, KA_LIST },
	{ "proto", "protocol", KS_SERVER, KA_WORD },
	{ "protocol", "protocol", KS_SERVER, KA_WORD },
	{ "service", "service", KS_SERVER, KA_STR },
	{ "port", "port", KS_SERVER, KA_NUM },
	{ "interval", "interval", KS_SERVER, KA_NUM },
	{ "auth", "auth", KS_SERVER, KA_WORD },
	{ "authenticate", "auth", KS_SERVER, KA_WORD },
	{ "preauth", "auth", KS_SERVER, KA_WORD },
	{ "preauthenticate", "auth", KS_SERVER, KA_WORD },
	{ "timeout", "timeout", KS_SERVER, KA_NUM },
	{ "envelope", "envelope", KS_SERVER, KA_ENVELOPE },
	{ "qvirtual", "qvirtual", KS_SERVER, KA_STR },
	{ "principal", "principal", KS_SERVER, KA_STR },
	{ "esmtpname", "esmtpname", KS_SERVER, KA_STR },
	{ "esmtppassword", "esmtppassword", KS_SERVER, KA_STR },
	{ "bad-header", "bad-header", KS_SERVER, KA_WORD },
	{ "interface", "interface", KS_SERVER, KA_STR },
	{ "monitor", "monitor", KS_SERVER, KA_STR },
	{ "plugin", "plugin", KS_SERVER, KA_STR },
	{ "plugout", "plugout", KS_SERVER, KA_STR },
	{ "dns", "dns", KS_SERVER, KA_FLAG },
	{ "uidl", "uidl", KS_SERVER, KA_FLAG },
	{ "checkalias", "checkalias", KS_SERVER, KA_FLAG },
	{ "tracepolls", "tracepolls", KS_SERVER, KA_FLAG },

	/* user options */
	{ "pass", "password", KS_USER, KA_NAME },
	{ "password", "password", KS_USER, KA_NAME },
	{ "passwordfile", "passwordfile", KS_USER, KA_STR },
	{ "folder", "folder", KS_USER, KA_LIST },
	{ "folders", "folder", KS_USER, KA_LIST },
	{ "smtp", "smtphost", KS_USER, KA_LIST },
	{ "smtphost", "smtphost", KS_USER, KA_LIST },
	{ "fetchdomains", "fetchdomains", KS_USER, KA_LIST },
	{ "smtpaddress", "smtpaddress", KS_USER, KA_STR },
	{ "smtpname", "smtpname", KS_USER, KA_STR },
	{ "antispam", "antispam", KS_USER, KA_NUMLIST },
	{ "mda", "mda", KS_USER, KA_STR },
	{ "bsmtp", "bsmtp", KS_USER, KA_STR },
	{ "lmtp", "lmtp", KS_USER, KA_FLAG },
	{ "pre", "preconnect", KS_USER, KA_STR },
	{ "preconnect", "preconnect", KS_USER, KA_STR },
	{ "post", "postconnect", KS_USER, KA_STR },
	{ "postconnect", "postconnect", KS_USER, KA_STR },
	{ "keep", "keep", KS_USER, KA_FLAG },
	{ "flush", "flush", KS_USER, KA_FLAG },
	{ "limitflush", "limitflush", KS_USER, KA_FLAG },
	{ "fetchall", "fetchall", KS_USER, KA_FLAG },
	{ "rewrite", "rewrite", KS_USER, KA_FLAG },
	{ "forcecr", "forcecr", KS_USER, KA_FLAG },
	{ "stripcr", "stripcr", KS_USER, KA_FLAG },
	{ "pass8", "pass8bits", KS_USER, KA_FLAG },
	{ "pass8bits", "pass8bits", KS_USER, KA_FLAG },
	{ "dropstatus", "dropstatus", KS_USER, KA_FLAG },
	{ "dropdelivered", "dropdelivered", KS_USER, KA_FLAG },
	{ "mimedec", "mimedecode", KS_USER, KA_FLAG },
	{ "mimedecode", "mimedecode", KS_USER, KA_FLAG },
	{ "idle", "idle", KS_USER, KA_FLAG },
	{ "limit", "limit", KS_USER, KA_NUM },
	{ "warnings", "warnings", KS_USER, KA_NUM },
	{ "batchlimit", "batchlimit", KS_USER, KA_NUM },
	{ "fetchlimit", "fetchlimit", KS_USER, KA_NUM },
	{ "fetchsizelimit", "fetchsizelimit", KS_USER, KA_NUM },
	{ "fastuidl", "fastuidl", KS_USER, KA_NUM },
	{ "expunge", "expunge", KS_USER, KA_NUM },
	{ "properties", "properties", KS_USER, KA_STR },
	{ "ssl", "ssl", KS_USER, KA_FLAG },
	{ "sslkey", "sslkey", KS_USER, KA_STR },
	{ "sslcert", "sslcert", KS_USER, KA_STR },
	{ "sslproto", "sslproto", KS_USER, KA_STR },
	{ "sslcertck", "sslcertck", KS_USER, KA_FLAG },
	{ "sslcertfile", "sslcertfile", KS_USER, KA_STR },
	{ "sslcertpath", "sslcertpath", KS_USER, KA_STR },
	{ "sslcommonname", "sslcommonname", KS_USER, KA_STR },
	{ "sslfingerprint", "sslfingerprint", KS_USER, KA_STR },

	/* set statements */
	{ "logfile", "logfile", KS_SET, KA_SETSTR },
	{ "idfile", "idfile", KS_SET, KA_SETSTR },
	{ "pidfile", "pidfile", KS_SET, KA_SETSTR },
	{ "daemon", "daemon", KS_SET, KA_NUM },
	{ "syslog", "syslog", KS_SET, KA_FLAG },
	{ "invisible", "invisible", KS_SET, KA_FLAG },
	{ "showdots", "showdots", KS_SET, KA_FLAG },
	{ "postmaster", "postmaster", KS_SET, KA_SETSTR },
	{ "bouncemail", "bouncemail", KS_SET, KA_FLAG },
	{ "spambounce", "spambounce", KS_SET, KA_FLAG },
	{ "softbounce", "softbounce", KS_SET, KA_FLAG },
	{ "fetchmailhost", "fetchmailhost", KS_SET, KA_SETSTR },
};

/* Words of the fixed-set options, matched without regard to case. */
static const char *const protocols[] = {
	"auto", "pop2", "pop3", "imap", "apop", "rpop", "kpop", "sdps",
	"etrn", "odmr", NULL
};
static const char *const authtypes[] = {
	"any", "password", "kerberos", "kerberos_v4", "kerberos_v5",
	"kerberos4", "kerberos5", "gssapi", "cram-md5", "cram", "otp",
	"opie", "ntlm", "msn", "ssh", "external", "oauthbearer", "xoauth2",
	NULL
};
static const char *const badheaders[] = { "accept", "reject", NULL };

static const char *const noise[] = {
	"with", "and", "has", "wants", "options", NULL
};

/* Noise words are exact (fetchmail's keywords are lower case). */
static int
is_noise(const char *s)
{
	size_t	 i;

	for (i = 0; noise[i] != NULL; i++)
		if (strcmp(noise[i], s) == 0)
			return 1;
	return 0;
}

static const struct kw *
kw_find(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++)
		if (strcmp(kws[i].name, s) == 0)
			return &kws[i];
	return NULL;
}

/* "nokeep" is "no keep" for every flag that fetchmail spells so. */
static const struct kw *
kw_no_prefixed(const char *s)
{
	const struct kw *k;

	if (strncmp(s, "no", 2) != 0 || s[2] == '\0')
		return NULL;
	if ((k = kw_find(s + 2)) == NULL || k->arg != KA_FLAG)
		return NULL;
	return k;
}

static int
in_set(const char *const *set, const char *s)
{
	size_t	 i, j;

	for (i = 0; set[i] != NULL; i++) {
		for (j = 0; set[i][j] != '\0' && s[j] != '\0'; j++) {
			char	 c = s[j];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if (c != set[i][j])
				break;
		}
		if (set[i][j] == '\0' && s[j] == '\0')
			return 1;
	}
	return 0;
}

/* ---- tokenizer -------------------------------------------------------- */

enum rawtok { R_EOF, R_WORD, R_QSTR, R_WILD, R_MAP, R_ERR };

struct lexer {
	const char	*p, *end;
	unsigned	 line;
	/* the current token */
	enum rawtok	 t;
	unsigned	 tline;
	char		 text[FMRC_TOKEN_MAX + 1];
	size_t		 len;
	char		 err[160];
};

static int
is_sep(char c)
{
	return c == '=' || c == ';' || c == ':' || c == ',' || c == ' ' ||
	    c == '\t' || c == '\r' || c == '\n';
}

static int
hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * fetchmail's escapes(), in place: \xHH (two hex digits at most),
 * \0ooo (octal, the 0 counts), \ddd (decimal), \n \t \b \r \\,
 * backslash-newline joins, any other \c is c.  A value that makes a NUL
 * or does not fit a byte is an error (fetchmail would cut the string).
 */
static int
unescape(struct lexer *lx)
{
	char	*s = lx->text, *d = lx->text;
	size_t	 i = 0, n = lx->len;
	int	 v, cnt, x;

	while (i < n) {
		if (s[i] != '\\') {
			*d++ = s[i++];
			continue;
		}
		if (++i >= n)
			break;			/* backslash at the end */
		if (s[i] == 'x' || s[i] == 'X') {
			for (i++, v = 0, cnt = 0; i < n && cnt < 2 &&
			    (x = hexdig(s[i])) != -1; i++, cnt++)
				v = v * 16 + x;
		} else if (s[i] == '0') {
			for (v = 0, cnt = 0; i < n && cnt < 3 && s[i] >= '0' &&
			    s[i] <= '7'; i++, cnt++)
				v = v * 8 + (s[i] - '0');
		} else if (s[i] >= '1' && s[i] <= '9') {
			for (v = 0, cnt = 0; i < n && cnt < 3 && s[i] >= '0' &&
			    s[i] <= '9'; i++, cnt++)
				v = v * 10 + (s[i] - '0');
		} else {
			switch (s[i]) {
			case '\n': i++; continue;
			case 'n': v = '\n'; break;
			case 't': v = '\t'; break;
			case 'b': v = '\b'; break;
			case 'r': v = '\r'; break;
			default: v = (unsigned char)s[i]; break;
			}
			i++;
		}
		if (v == 0 || v > 255) {
			snprintf(lx->err, sizeof(lx->err), "escape gives %s",
			    v == 0 ? "a NUL byte" : "a value above 255");
			return -1;
		}
		*d++ = (char)v;
	}
	*d = '\0';
	lx->len = (size_t)(d - s);
	return 0;
}

static enum rawtok
lex_fail(struct lexer *lx, const char *why)
{
	snprintf(lx->err, sizeof(lx->err), "%s", why);
	lx->t = R_ERR;
	return R_ERR;
}

/* The next raw token into lx (text NUL-terminated, escapes done). */
static enum rawtok
lex_next(struct lexer *lx)
{
	const char	*start;
	char		 q;

	for (;;) {
		if (lx->p >= lx->end) {
			lx->tline = lx->line;
			return lx->t = R_EOF;
		}
		switch (*lx->p) {
		case '\n':
			lx->line++;
			/* FALLTHROUGH */
		case ' ': case '\t': case '\r': case ';': case ':': case ',':
			lx->p++;
			continue;
		case '#':
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
			continue;
		case '\\':
			/* a lone backslash before the newline joins lines */
			if (lx->p + 1 < lx->end && lx->p[1] == '\n') {
				lx->p++;
				continue;
			}
			break;
		}
		break;
	}
	lx->tline = lx->line;
	lx->len = 0;
	if (*lx->p == '=') {
		lx->p++;
		lx->text[0] = '\0';
		return lx->t = R_MAP;
	}
	if (*lx->p == '*' && (lx->p + 1 >= lx->end || is_sep(lx->p[1]))) {
		lx->p++;
		strcpy(lx->text, "*");
		return lx->t = R_WILD;
	}
	if (*lx->p == '"' || *lx->p == '\'') {
		q = *lx->p++;
		start = lx->p;
		while (lx->p < lx->end && *lx->p != q) {
			if (*lx->p == '\n')
				lx->line++;
			lx->p++;
		}
		if (lx->p >= lx->end) {
			/*
			 * No closing quote: fetchmail's lexer then reads the
			 * quote as the start of a plain word.  So do we.
			 */
			lx->p = start - 1;
			lx->line = lx->tline;
			goto word;
		}
		if ((size_t)(lx->p - start) > FMRC_TOKEN_MAX)
			return lex_fail(lx, "string too long");
		lx->len = (size_t)(lx->p - start);
		memcpy(lx->text, start, lx->len);
		lx->p++;
		lx->t = R_QSTR;
	} else {
word:
		start = lx->p;
		while (lx->p < lx->end && !is_sep(*lx->p))
			lx->p++;
		if ((size_t)(lx->p - start) > FMRC_TOKEN_MAX)
			return lex_fail(lx, "word too long");
		lx->len = (size_t)(lx->p - start);
		memcpy(lx->text, start, lx->len);
		lx->t = R_WORD;
	}
	lx->text[lx->len] = '\0';
	if (unescape(lx) == -1)
		return lx->t = R_ERR;
	return lx->t;
}

/* ---- parser ----------------------------------------------------------- */

/* A classified token. */
enum tok { T_EOF, T_STR, T_NUM, T_KW, T_NOKW, T_WILD, T_MAP };

struct parser {
	struct lexer	 lx;
	int		 have;		/* lx holds a token not yet consumed */
	const struct kw	*kw;		/* of the last T_KW / T_NOKW */
	struct fmrc	*rc;
	int		 seen_poll;
	char		 err[256];
};

static int
perr(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
perr(struct parser *p, const char *fmt, ...)
{
	char	 msg[200];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, sizeof(p->err), "%u: %s", p->lx.tline, msg);
	return -1;
}

static int
is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int
fetch(struct parser *p)
{
	if (!p->have) {
		if (lex_next(&p->lx) == R_ERR)
			return perr(p, "%s", p->lx.err);
		p->have = 1;
	}
	return 0;
}

/*
 * Classify the buffered raw token.  name: fetchmail's NAME state (after
 * user, pass, is, to, =): a word is a string whatever it spells.
 */
static enum tok
classify(struct parser *p, int name)
{
	const struct kw *k;

	switch (p->lx.t) {
	case R_EOF:	return T_EOF;
	case R_WILD:	return T_WILD;
	case R_MAP:	return T_MAP;
	case R_QSTR:	return T_STR;
	default:	break;
	}
	if (name)
		return T_STR;
	if ((k = kw_find(p->lx.text)) != NULL) {
		p->kw = k;
		return T_KW;
	}
	if ((k = kw_no_prefixed(p->lx.text)) != NULL) {
		p->kw = k;
		return T_NOKW;
	}
	return is_number(p->lx.text) ? T_NUM : T_STR;
}

/* The next token (noise words skipped), or -1 on a lexical error. */
static int
peek(struct parser *p)
{
	for (;;) {
		if (fetch(p) == -1)
			return -1;
		if (p->lx.t == R_WORD && is_noise(p->lx.text)) {
			p->have = 0;
			continue;
		}
		return (int)classify(p, 0);
	}
}

static int
peek_name(struct parser *p)
{
	if (fetch(p) == -1)
		return -1;
	return (int)classify(p, 1);
}

static void
consume(struct parser *p)
{
	p->have = 0;
}

static const char *
shown(struct parser *p)
{
	switch (p->lx.t) {
	case R_EOF:	return "end of file";
	case R_MAP:	return "=";
	default:	return p->lx.text;
	}
}

/* ---- option lists ----------------------------------------------------- */

static void
opt_free(struct fmrc_opt *o)
{
	size_t	 i;

	for (i = 0; i < o->nvals; i++)
		freezero(o->vals[i], strlen(o->vals[i]));
	free(o->vals);
	memset(o, 0, sizeof(*o));
}

static void
optlist_free(struct fmrc_optlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		opt_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static struct fmrc_opt *
optlist_add(struct fmrc_optlist *l, const char *key, int neg, unsigned line)
{
	struct fmrc_opt *o;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	o = &l->v[l->n++];
	memset(o, 0, sizeof(*o));
	o->key = key;
	o->neg = neg;
	o->line = line;
	return o;
}

static void
optlist_copy(struct fmrc_optlist *dst, const struct fmrc_optlist *src)
{
	size_t	 i, j;

	dst->v = src->n ? xcalloc(src->n, sizeof(*dst->v)) : NULL;
	dst->n = src->n;
	for (i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].vals = src->v[i].nvals ?
		    xcalloc(src->v[i].nvals, sizeof(char *)) : NULL;
		for (j = 0; j < src->v[i].nvals; j++)
			dst->v[i].vals[j] = xstrdup(src->v[i].vals[j]);
	}
}

static int
val_add(struct parser *p, struct fmrc_opt *o)
{
	if (o->nvals >= FMRC_VALUES_MAX)
		return perr(p, "too many values for '%s'", o->key);
	o->vals = xreallocarray(o->vals, o->nvals + 1, sizeof(char *));
	o->vals[o->nvals++] = xstrndup(p->lx.text, p->lx.len);
	consume(p);
	return 0;
}

/* The value(s) of option k (its keyword consumed) into o. */
static int
parse_value(struct parser *p, const struct kw *k, struct fmrc_opt *o)
{
	const char *const *set;
	int	 t;

	switch (k->arg) {
	case KA_NONE:
	case KA_FLAG:
		return 0;
	case KA_NUM:
		if ((t = peek(p)) == -1)
			return -1;
		if (t != T_NUM)
			return perr(p, "'%s' needs a number, not '%s'",
			    k->name, shown(p));
		return val_add(p, o);
	case KA_STR:
		if ((t = peek(p)) == -1)
			return -1;
		if (t != T_STR && t != T_NUM)
			return perr(p, "'%s' needs a value, not '%s'",
			    k->name, shown(p));
		return val_add(p, o);
	case KA_NAME:
		if ((t = peek_name(p)) == -1)
			return -1;
		if (t != T_STR)
			return perr(p, "'%s' needs a value, not '%s'",
			    k->name, shown(p));
		return val_add(p, o);
	case KA_SETSTR:
		if ((t = peek(p)) == -1)
			return -1;
		if (t == T_MAP)
			consume(p);
		if ((t = peek_name(p)) == -1)
			return -1;
		if (t != T_STR)
			return perr(p, "'%s' needs a value, not '%s'",
			    k->name, shown(p));
		return val_add(p, o);
	case KA_LIST:
	case KA_NUMLIST:
		for (;;) {
			if ((t = peek(p)) == -1)
				return -1;
			if (k->arg == KA_LIST ? t != T_STR : t != T_NUM)
				break;
			if (val_add(p, o) == -1)
				return -1;
		}
		if (o->nvals == 0)
			return perr(p, "'%s' needs a value, not '%s'",
			    k->name, shown(p));
		return 0;
	case KA_WORD:
		if ((t = peek_name(p)) == -1)
			return -1;
		set = strcmp(k->canon, "protocol") == 0 ? protocols :
		    strcmp(k->canon, "auth") == 0 ? authtypes : badheaders;
		if (t != T_STR || !in_set(set, p->lx.text))
			return perr(p, "unknown %s '%s'", k->canon, shown(p));
		return val_add(p, o);
	case KA_ENVELOPE:
		/* envelope [skip] header: stored as {header, skip} */
		if ((t = peek(p)) == -1)
			return -1;
		if (t == T_NUM) {
			char	*skip = xstrdup(p->lx.text);

			consume(p);
			if ((t = peek(p)) == -1 || t != T_STR) {
				free(skip);
				return t == -1 ? -1 : perr(p, "'envelope' "
				    "needs a header name, not '%s'", shown(p));
			}
			if (val_add(p, o) == -1) {
				free(skip);
				return -1;
			}
			o->vals = xreallocarray(o->vals, 2, sizeof(char *));
			o->vals[o->nvals++] = skip;
			return 0;
		}
		if (t != T_STR)
			return perr(p, "'envelope' needs a header name, not "
			    "'%s'", shown(p));
		return val_add(p, o);
	}
	return 0;
}

/*
 * One option of the given scope at the current token, if there is one:
 * 1 parsed, 0 not an option of that scope (nothing consumed), -1 error.
 */
static int
parse_opt(struct parser *p, enum kscope scope, struct fmrc_optlist *l)
{
	const struct kw	*k;
	struct fmrc_opt	*o;
	unsigned	 line;
	int		 t, neg = 0;

	if ((t = peek(p)) == -1)
		return -1;
	if (t != T_KW && t != T_NOKW)
		return 0;
	k = p->kw;
	line = p->lx.tline;
	if (t == T_NOKW) {
		if (k->scope != scope)
			return 0;
		neg = 1;
		consume(p);
	} else if (strcmp(k->name, "no") == 0) {
		/* "no KEYWORD": only a flag (or envelope) may follow */
		struct lexer	 save = p->lx;

		consume(p);
		if ((t = peek(p)) == -1)
			return -1;
		if (t != T_KW || (p->kw->arg != KA_FLAG &&
		    p->kw->arg != KA_ENVELOPE))
			return perr(p, "'no' must be followed by an option "
			    "such as keep, not '%s'", shown(p));
		if (p->kw->scope != scope) {
			/* not ours: put the "no" back for the caller */
			p->lx = save;
			p->have = 1;
			return 0;
		}
		k = p->kw;
		neg = 1;
		consume(p);
	} else {
		if (k->scope != scope || k->arg == KA_NONE)
			return 0;
		consume(p);
	}
	o = optlist_add(l, k->canon, neg, line);
	if (neg)
		return 1;
	return parse_value(p, k, o) == -1 ? -1 : 1;
}

/* ---- entries ---------------------------------------------------------- */

static void
entry_free(struct fmrc_entry *e)
{
	size_t	 i;

	free(e->pollname);
	free(e->remote);
	for (i = 0; i < e->nlocals; i++) {
		free(e->locals[i].name);
		free(e->locals[i].to);
	}
	free(e->locals);
	optlist_free(&e->server);
	optlist_free(&e->user);
	memset(e, 0, sizeof(*e));
}

static int
is_kw(struct parser *p, int t, const char *name)
{
	return t == T_KW && strcmp(p->kw->canon, name) == 0;
}

static void
local_add(struct fmrc_entry *e, const char *name)
{
	e->locals = xreallocarray(e->locals, e->nlocals + 1,
	    sizeof(*e->locals));
	e->locals[e->nlocals].name = xstrdup(name);
	e->locals[e->nlocals].to = NULL;
	e->nlocals++;
}

/*
 * The names after is/to (keyword consumed): STRING [= STRING] .. or *,
 * then an optional `here`; `is NAME there` names the remote user.
 */
static int
parse_locals(struct parser *p, struct fmrc_entry *e)
{
	size_t	 first = e->nlocals;
	int	 t, name = 1, mapped = 0, n = 0;

	for (;;) {
		if ((t = name ? peek_name(p) : peek(p)) == -1)
			return -1;
		name = 0;
		if (t == T_WILD) {
			e->wildcard = 1;
			consume(p);
			n++;
			continue;
		}
		if (t == T_MAP) {
			if (e->nlocals == first)
				return perr(p, "'=' without a name before it");
			consume(p);
			if ((t = peek_name(p)) == -1)
				return -1;
			if (t != T_STR)
				return perr(p, "'=' needs a name after it");
			free(e->locals[e->nlocals - 1].to);
			e->locals[e->nlocals - 1].to = xstrdup(p->lx.text);
			consume(p);
			mapped = 1;
			continue;
		}
		if (t != T_STR && t != T_NUM)
			break;
		if (e->nlocals >= FMRC_VALUES_MAX)
			return perr(p, "too many local names");
		local_add(e, p->lx.text);
		consume(p);
		n++;
	}
	if (n == 0)
		return perr(p, "'is' needs a name, not '%s'", shown(p));
	if (is_kw(p, t, "here")) {
		consume(p);
	} else if (is_kw(p, t, "there")) {
		/* is NAME there: NAME is the remote user */
		if (n != 1 || mapped || e->nlocals != first + 1)
			return perr(p, "'there' after more than one name");
		consume(p);
		free(e->remote);
		e->remote = e->locals[first].name;
		e->nlocals--;
	}
	return 0;
}

/* user NAME [there] | user NAME.. here (the keyword consumed). */
static int
parse_userdef(struct parser *p, struct fmrc_entry *e)
{
	int	 t;

	if ((t = peek_name(p)) == -1)
		return -1;
	if (t != T_STR)
		return perr(p, "'user' needs a name, not '%s'", shown(p));
	local_add(e, p->lx.text);
	consume(p);
	for (;;) {
		if ((t = peek(p)) == -1)
			return -1;
		if (t == T_MAP) {
			consume(p);
			if ((t = peek_name(p)) == -1)
				return -1;
			if (t != T_STR)
				return perr(p, "'=' needs a name after it");
			free(e->locals[e->nlocals - 1].to);
			e->locals[e->nlocals - 1].to = xstrdup(p->lx.text);
			consume(p);
			continue;
		}
		if (t != T_STR)
			break;
		if (e->nlocals >= FMRC_VALUES_MAX)
			return perr(p, "too many local names");
		local_add(e, p->lx.text);
		consume(p);
	}
	if (is_kw(p, t, "here")) {
		consume(p);		/* local names; `is X there` follows */
		return 0;
	}
	if (e->nlocals != 1 || e->locals[0].to != NULL)
		return perr(p, "several names after 'user' need 'here'");
	if (is_kw(p, t, "there"))
		consume(p);
	e->remote = e->locals[0].name;
	free(e->locals);
	e->locals = NULL;
	e->nlocals = 0;
	return 0;
}

/* User options (and is/to clauses) into e; 1 if any was read. */
static int
parse_user_opts(struct parser *p, struct fmrc_entry *e)
{
	int	 t, r, any = 0;

	for (;;) {
		if ((t = peek(p)) == -1)
			return -1;
		if (is_kw(p, t, "is") || is_kw(p, t, "to")) {
			consume(p);
			if (parse_locals(p, e) == -1)
				return -1;
			any = 1;
			continue;
		}
		if ((r = parse_opt(p, KS_USER, &e->user)) == -1)
			return -1;
		if (r == 0)
			return any;
		any = 1;
	}
}

static int
record(struct parser *p, struct fmrc_entry *e, const char *pollname,
    int skip, unsigned line, const struct fmrc_optlist *server)
{
	struct fmrc	*rc = p->rc;

	if (rc->nentries >= FMRC_ENTRIES_MAX) {
		entry_free(e);
		return perr(p, "too many accounts");
	}
	e->pollname = xstrdup(pollname);
	e->skip = skip;
	e->line = line;
	if (e->uline == 0)
		e->uline = line;
	optlist_copy(&e->server, server);
	rc->entries = xreallocarray(rc->entries, rc->nentries + 1,
	    sizeof(*rc->entries));
	rc->entries[rc->nentries++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

/* poll/skip NAME server-options user-clauses (the keyword consumed). */
static int
parse_poll(struct parser *p, int skip, unsigned line)
{
	struct fmrc_optlist server = { NULL, 0 };
	struct fmrc_entry e;
	char		*name = NULL;
	int		 t, r, users = 0;

	memset(&e, 0, sizeof(e));
	if ((t = peek(p)) == -1)
		goto fail;
	if (t != T_STR && t != T_NUM) {
		perr(p, "'%s' needs a server name, not '%s'",
		    skip ? "skip" : "poll", shown(p));
		goto fail;
	}
	name = xstrdup(p->lx.text);
	consume(p);
	while ((r = parse_opt(p, KS_SERVER, &server)) == 1)
		;
	if (r == -1)
		goto fail;

	/* Options with no user clause: fetchmail's implicit user. */
	e.uline = 0;
	if ((r = parse_user_opts(p, &e)) == -1)
		goto fail;
	if ((t = peek(p)) == -1)
		goto fail;
	if (r == 1 && is_kw(p, t, "user")) {
		perr(p, "user options before the first 'user' clause "
		    "(fetchmail refuses this too)");
		goto fail;
	}
	while (is_kw(p, t, "user")) {
		if (r == 1 || users > 0 || e.remote != NULL || e.nlocals) {
			if (record(p, &e, name, skip, line, &server) == -1)
				goto fail;
		}
		memset(&e, 0, sizeof(e));
		e.uline = p->lx.tline;
		consume(p);
		if (parse_userdef(p, &e) == -1 ||
		    parse_user_opts(p, &e) == -1)
			goto fail;
		users++;
		r = 0;
		if ((t = peek(p)) == -1)
			goto fail;
	}
	if (record(p, &e, name, skip, line, &server) == -1)
		goto fail;
	free(name);
	optlist_free(&server);
	return 0;
fail:
	entry_free(&e);
	free(name);
	optlist_free(&server);
	return -1;
}

/* defaults server-options user-options (the keyword consumed). */
static int
parse_defaults(struct parser *p)
{
	struct fmrc_entry e;
	int	 r, t;

	if (p->seen_poll || p->rc->defaults_line != 0)
		return perr(p, "\"defaults\" must be the first entry and "
		    "appear once (fetchmail refuses this too)");
	p->rc->defaults_line = p->lx.tline ? p->lx.tline : 1;
	while ((r = parse_opt(p, KS_SERVER, &p->rc->defaults)) == 1)
		;
	if (r == -1)
		return -1;
	memset(&e, 0, sizeof(e));
	if (parse_user_opts(p, &e) == -1) {
		entry_free(&e);
		return -1;
	}
	if (e.nlocals > 0 || e.remote != NULL || e.wildcard) {
		entry_free(&e);
		return perr(p, "is/to names in \"defaults\" are not "
		    "supported; give them per user");
	}
	/* user options follow the server ones in the merged list */
	for (r = 0; (size_t)r < e.user.n; r++) {
		struct fmrc_opt *o = optlist_add(&p->rc->defaults,
		    e.user.v[r].key, e.user.v[r].neg, e.user.v[r].line);

		o->vals = e.user.v[r].vals;
		o->nvals = e.user.v[r].nvals;
		e.user.v[r].vals = NULL;
		e.user.v[r].nvals = 0;
	}
	entry_free(&e);
	if ((t = peek(p)) == -1)
		return -1;
	if (is_kw(p, t, "user"))
		return perr(p, "a 'user' clause in \"defaults\" is not "
		    "supported");
	return 0;
}

/* set [no] NAME [value] (the keyword consumed). */
static int
parse_set(struct parser *p)
{
	int	 r;

	if ((r = parse_opt(p, KS_SET, &p->rc->set)) == -1)
		return -1;
	if (r == 0)
		return perr(p, "unknown 'set' statement '%s'", shown(p));
	return 0;
}

struct fmrc *
fmrc_parse(const char *text, size_t len, char *err, size_t errsz)
{
	struct parser	*p;
	struct fmrc	*rc;
	unsigned	 line;
	int		 t, rv = 0;

	if (errsz > 0)
		err[0] = '\0';
	if (len > FMRC_FILE_MAX || memchr(text, '\0', len) != NULL) {
		snprintf(err, errsz, "1: %s", len > FMRC_FILE_MAX ?
		    "file too large" : "the file contains a NUL byte");
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	rc = xcalloc(1, sizeof(*rc));
	p->rc = rc;
	p->lx.p = text;
	p->lx.end = text + len;
	p->lx.line = 1;
	for (;;) {
		if ((t = peek(p)) == -1) {
			rv = -1;
			break;
		}
		if (t == T_EOF)
			break;
		line = p->lx.tline;
		if (is_kw(p, t, "set")) {
			consume(p);
			rv = parse_set(p);
		} else if (is_kw(p, t, "poll") || is_kw(p, t, "skip")) {
			int	 skip = strcmp(p->kw->canon, "skip") == 0;

			consume(p);
			rv = parse_poll(p, skip, line);
			p->seen_poll = 1;
		} else if (is_kw(p, t, "defaults")) {
			consume(p);
			rv = parse_defaults(p);
		} else
			rv = perr(p, "syntax error at '%s' (expected set, poll, "
			    "skip or defaults%s)", shown(p), t == T_KW ?
			    "; an option in the wrong place?" : "");
		if (rv == -1)
			break;
	}
	if (rv == -1) {
		snprintf(err, errsz, "%s", p->err);
		fmrc_free(&rc);
	}
	explicit_bzero(p->lx.text, sizeof(p->lx.text));
	free(p);
	if (rc != NULL) {
		size_t	 i;

		for (i = 0; i < rc->nentries; i++)
			rc->entries[i].defaults = &rc->defaults;
	}
	return rc;
}

void
fmrc_free(struct fmrc **rcp)
{
	struct fmrc	*rc = *rcp;
	size_t		 i;

	if (rc == NULL)
		return;
	for (i = 0; i < rc->nentries; i++)
		entry_free(&rc->entries[i]);
	free(rc->entries);
	optlist_free(&rc->set);
	optlist_free(&rc->defaults);
	free(rc);
	*rcp = NULL;
}

static const struct fmrc_opt *
list_last(const struct fmrc_optlist *l, const char *key)
{
	size_t	 i;

	for (i = l->n; i > 0; i--)
		if (strcmp(l->v[i - 1].key, key) == 0)
			return &l->v[i - 1];
	return NULL;
}

const struct fmrc_opt *
fmrc_get(const struct fmrc *rc, const struct fmrc_entry *e, const char *key)
{
	const struct fmrc_opt *o;

	if (e == NULL)
		return list_last(&rc->set, key);
	if ((o = list_last(&e->user, key)) != NULL ||
	    (o = list_last(&e->server, key)) != NULL)
		return o;
	return list_last(&rc->defaults, key);
}

int
fmrc_flag(const struct fmrc *rc, const struct fmrc_entry *e, const char *key)
{
	const struct fmrc_opt *o = fmrc_get(rc, e, key);

	return o != NULL && !o->neg;
}

const char *
fmrc_str(const struct fmrc *rc, const struct fmrc_entry *e, const char *key)
{
	const struct fmrc_opt *o = fmrc_get(rc, e, key);

	return o != NULL && !o->neg && o->nvals > 0 ? o->vals[0] : NULL;
}

void
fmrc_each(const struct fmrc_entry *e, fmrc_opt_cb cb, void *arg)
{
	size_t	 i;

	if (e->defaults != NULL)
		for (i = 0; i < e->defaults->n; i++)
			cb(&e->defaults->v[i], FMRC_SCOPE_DEFAULTS, arg);
	for (i = 0; i < e->server.n; i++)
		cb(&e->server.v[i], FMRC_SCOPE_SERVER, arg);
	for (i = 0; i < e->user.n; i++)
		cb(&e->user.v[i], FMRC_SCOPE_USER, arg);
}
