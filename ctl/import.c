/* ISC licence; see LICENSE. */
/*
 * fetchmailrc -> haul.conf: one account fragment per (poll, user), the
 * delivery block, and a warning for everything haul does not express.
 * See haul/fmimport.h and docs/migrating-from-fetchmail.md.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/fmimport.h"
#include "haul/xmalloc.h"

#define NAME_MAX_LEN	64
#define POLL_DEFAULT	300

/* What a fetchmail option becomes when haul has no equivalent. */
struct unmapped {
	const char	*key;
	const char	*why;
};

static const struct unmapped unmapped[] = {
	{ "aka", "haul-milter's multidrop_domains decide what is local" },
	{ "dns", "haul does no DNS lookups of envelope addresses" },
	{ "checkalias", "haul does no DNS lookups of envelope addresses" },
	{ "interface", "not supported" },
	{ "monitor", "not supported" },
	{ "plugin", "not supported: haul connects directly" },
	{ "plugout", "not supported: haul connects directly" },
	{ "principal", "Kerberos is not supported" },
	{ "esmtpname", "SMTP AUTH to the MTA is not supported" },
	{ "esmtppassword", "SMTP AUTH to the MTA is not supported" },
	{ "qvirtual", "not supported" },
	{ "bad-header", "haul passes messages on unchanged" },
	{ "tracepolls", "not supported (haul adds its own trace header)" },
	{ "preconnect", "not supported: run it from a systemd unit" },
	{ "postconnect", "not supported: run it from a systemd unit" },
	{ "fetchdomains", "not supported" },
	{ "antispam", "haul never bounces; an MTA 5xx keeps the message on the "
	    "server, marked refused" },
	{ "bsmtp", "not supported: use smtp, lmtp or an LDA" },
	{ "rewrite", "haul never rewrites headers" },
	{ "forcecr", "ignored: haul sends CRLF to the MTA" },
	{ "stripcr", "ignored: haul's LDA input has LF line ends" },
	{ "pass8bits", "ignored: haul passes 8-bit data as is" },
	{ "mimedecode", "haul passes messages on unchanged" },
	{ "dropstatus", "haul passes messages on unchanged" },
	{ "dropdelivered", "haul passes messages on unchanged" },
	{ "limitflush", "oversized messages stay on the server, marked too_big" },
	{ "warnings", "ignored: haul logs each oversized message once" },
	{ "batchlimit", "ignored: haul's MTA connections are managed for you" },
	{ "fetchlimit", "not supported: haul fetches every new message" },
	{ "fetchsizelimit", "ignored" },
	{ "fastuidl", "ignored: haul keeps every UID in its store" },
	{ "expunge", "ignored: haul expunges after each batch it delivered" },
	{ "properties", "ignored" },
	{ "sslkey", "TLS client certificates are not supported" },
	{ "sslcert", "TLS client certificates are not supported" },
	{ "sslcertpath", "not supported: use ca_file (a bundle) or the system "
	    "CA store" },
	{ "sslcommonname", "haul checks the certificate against the host name; "
	    "pin it with fingerprint if the name differs" },
	{ "fetchall", "haul fetches each message once; re-fetching kept mail "
	    "is not supported (it would re-deliver it)" },
	{ "flush", "haul never deletes a message it did not deliver; with "
	    "keep = no it deletes what it delivered (also what fetchmail left "
	    "there and the UID store says was delivered)" },
	{ NULL, NULL }
};

/* Options the conversion reads (no warning for them). */
static const char *const mapped[] = {
	"via", "localdomains", "protocol", "service", "port", "interval",
	"auth", "timeout", "envelope", "uidl", "password", "passwordfile",
	"folder", "smtphost", "smtpaddress", "smtpname", "mda", "lmtp",
	"keep", "idle", "limit", "ssl", "sslproto", "sslcertck",
	"sslcertfile", "sslfingerprint", NULL
};

struct conv {
	const struct fmrc *rc;
	const struct fmi_opts *o;
	struct fmi_result *res;
	struct fmi_account *a;
	const struct fmrc_entry *e;
	struct buf	 body;		/* option lines */
	int		 disable;	/* write enabled = false */
	int		 fatal;		/* not expressible: no fragment */
};

static void
warn_add(struct fmi_warn **, size_t *, unsigned, const char *, va_list)
	__attribute__((format(printf, 4, 0)));

static void
warn_add(struct fmi_warn **v, size_t *n, unsigned line, const char *fmt,
    va_list ap)
{
	char	*t;

	if (vasprintf(&t, fmt, ap) == -1)
		t = xstrdup("(out of memory)");
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].line = line;
	(*v)[*n].text = t;
	(*n)++;
}

static void
awarn(struct conv *c, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
awarn(struct conv *c, unsigned line, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	warn_add(&c->a->warns, &c->a->nwarns, line, fmt, ap);
	va_end(ap);
}

static void
gwarn(struct fmi_result *r, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
gwarn(struct fmi_result *r, unsigned line, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	warn_add(&r->warns, &r->nwarns, line, fmt, ap);
	va_end(ap);
}

/* A value as a libconfuse single-quoted string (no ${} expansion). */
static void
add_quoted(struct buf *b, const char *s)
{
	buf_add_byte(b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '\\')
			buf_add_byte(b, '\\');
		buf_add_byte(b, (unsigned char)*s);
	}
	buf_add_byte(b, '\'');
}

/* Text inside a # comment: control bytes would end it early. */
static void
add_comment_text(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		buf_add_byte(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' :
		    (unsigned char)*s);
}

static void
set_str(struct conv *c, const char *key, const char *val)
{
	buf_addf(&c->body, "\t%s = ", key);
	add_quoted(&c->body, val);
	buf_add_byte(&c->body, '\n');
}

static void
set_word(struct conv *c, const char *key, const char *val)
{
	buf_addf(&c->body, "\t%s = %s\n", key, val);
}

static void
set_list(struct buf *b, const char *key, char *const *vals, size_t n)
{
	size_t	 i;

	buf_addf(b, "\t%s = {", key);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_add_str(b, ", ");
		add_quoted(b, vals[i]);
	}
	buf_add_str(b, "}\n");
}

static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static unsigned
opt_line(const struct conv *c, const char *key)
{
	const struct fmrc_opt *o = fmrc_get(c->rc, c->e, key);

	return o != NULL ? o->line : c->e->uline;
}

static int
num(const char *s, long *v)
{
	char	*end;

	if (s == NULL || *s == '\0')
		return -1;
	*v = strtol(s, &end, 10);
	return *end == '\0' ? 0 : -1;
}

/* LDH labels, as haul's config check wants them. */
static int
valid_domain(const char *s)
{
	size_t	 i, label = 0, len = strlen(s);

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] == '-' && label > 0)))
			return 0;
		if (++label > 63)
			return 0;
	}
	return s[len - 1] != '-';
}

static int
valid_address(const char *s)
{
	const char	*at = strrchr(s, '@');
	const char	*p;

	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' ||
		    *p == '>')
			return 0;
	return at != NULL && at != s && valid_domain(at + 1);
}

/* A value haul would refuse even in a disabled account: no fragment. */
static int
check_value(struct conv *c, unsigned line, const char *what, const char *v,
    int ok)
{
	if (ok)
		return 0;
	awarn(c, line, "%s '%s' is not valid in haul.conf; the account is "
	    "not converted", what, v);
	c->fatal = 1;
	return -1;
}

/* ---- names ------------------------------------------------------------ */

static int
name_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

void
fmi_account_name(const char *user, const char *host, char dst[65])
{
	struct buf	 b = BUF_INIT;
	uint32_t	 h = 2166136261u;
	const char	*p;
	size_t		 i;

	buf_add_str(&b, user);
	buf_add_byte(&b, '@');
	buf_add_str(&b, host);
	for (i = 0; i < b.len; i++) {
		h = (h ^ (unsigned char)b.data[i]) * 16777619u;
		if (!name_ok(b.data[i]))
			b.data[i] = '_';
	}
	p = b.len > 0 ? b.data : "account";
	if (b.len <= NAME_MAX_LEN)
		snprintf(dst, 65, "%s", p);
	else
		snprintf(dst, 65, "%.55s-%08x", p, (unsigned)h);
	buf_free(&b);
}

static void
unique_name(struct fmi_result *r, char name[65])
{
	char	 base[65], t[65];
	size_t	 i;
	int	 n = 1, clash;

	memcpy(base, name, sizeof(base));
	do {
		clash = 0;
		for (i = 0; i < r->n; i++)
			if (r->v[i].name != NULL &&
			    strcmp(r->v[i].name, name) == 0)
				clash = 1;
		if (clash) {
			size_t	 keep;

			snprintf(t, sizeof(t), "-%d", ++n);
			keep = strlen(base);
			if (keep > NAME_MAX_LEN - strlen(t))
				keep = NAME_MAX_LEN - strlen(t);
			memcpy(name, base, keep);
			memcpy(name + keep, t, strlen(t) + 1);
		}
	} while (clash);
}

/* ---- one account ------------------------------------------------------ */

static int
service_port(const char *s)
{
	static const struct { const char *n; int p; } svc[] = {
		{ "pop3", 110 }, { "pop3s", 995 }, { "imap", 143 },
		{ "imap2", 143 }, { "imaps", 993 }, { NULL, 0 }
	};
	long	 v;
	int	 i;

	if (num(s, &v) == 0)
		return v > 0 && v <= 65535 ? (int)v : -1;
	for (i = 0; svc[i].n != NULL; i++)
		if (strcasecmp(svc[i].n, s) == 0)
			return svc[i].p;
	return -1;
}

/* A fetchmail fingerprint ("AB:CD:..") as haul's SHA-256 form, or -1. */
static int
conv_fingerprint(struct conv *c, const char *fp)
{
	size_t	 len = strlen(fp), pairs;

	if (strncasecmp(fp, "sha256:", 7) == 0) {
		fp += 7;
		len -= 7;
	}
	pairs = (len + 1) / 3;
	if (len == 95 && pairs == 32) {
		set_str(c, "fingerprint", fp);
		return 0;
	}
	awarn(c, opt_line(c, "sslfingerprint"), "sslfingerprint: %s; haul "
	    "pins SHA-256 only: get it with `openssl x509 -noout "
	    "-fingerprint -sha256` and set fingerprint", len == 47 ?
	    "an MD5 fingerprint" : "not a fingerprint haul can read");
	return -1;
}

static void
conv_tls(struct conv *c, int imap, int *port)
{
	const struct fmrc_opt *proto = fmrc_get(c->rc, c->e, "sslproto");
	const char	*v;
	int		 ssl = fmrc_flag(c->rc, c->e, "ssl");

	if (ssl) {
		set_word(c, "tls", "implicit");
		if (*port == 143 || *port == 110)
			awarn(c, opt_line(c, "ssl"), "ssl on port %d: haul "
			    "speaks TLS from the first byte there too", *port);
	} else if (proto != NULL && !proto->neg && proto->nvals > 0 &&
	    proto->vals[0][0] == '\0') {
		set_word(c, "tls", "none");
		set_word(c, "allow_plaintext", "yes");
		awarn(c, proto->line, "sslproto '': no TLS; the password "
		    "crosses the network in clear text (tls = none, "
		    "allow_plaintext = yes)");
	} else {
		/*
		 * fetchmail 6.4 uses STARTTLS when the server offers it;
		 * haul requires it (never falls back to plain text).
		 */
		set_word(c, "tls", "starttls");
		if (*port == 993 || *port == 995)
			awarn(c, opt_line(c, "port"), "port %d without ssl: "
			    "written as tls = starttls; set tls = implicit if "
			    "the server speaks TLS at once", *port);
	}
	if (proto != NULL && !proto->neg && proto->nvals > 0 &&
	    proto->vals[0][0] != '\0' &&
	    strcasecmp(proto->vals[0], "auto") != 0 &&
	    strcasecmp(proto->vals[0], "tls1.2+") != 0 &&
	    strcasecmp(proto->vals[0], "tls1.3+") != 0 &&
	    strcasecmp(proto->vals[0], "tls1.3") != 0 &&
	    strcasecmp(proto->vals[0], "tls1.2") != 0)
		awarn(c, proto->line, "sslproto '%s': haul always uses TLS "
		    "1.2 or later", proto->vals[0]);
	if (fmrc_get(c->rc, c->e, "sslcertck") != NULL &&
	    !fmrc_flag(c->rc, c->e, "sslcertck"))
		awarn(c, opt_line(c, "sslcertck"), "no sslcertck: haul always "
		    "verifies the server certificate (add its CA with "
		    "ca_file, or pin it with fingerprint)");
	if ((v = fmrc_str(c->rc, c->e, "sslcertfile")) != NULL) {
		if (v[0] != '/')
			awarn(c, opt_line(c, "sslcertfile"), "sslcertfile "
			    "'%s' is relative: it is now relative to the "
			    "fragment's directory", v);
		set_str(c, "ca_file", v);
	}
	if ((v = fmrc_str(c->rc, c->e, "sslfingerprint")) != NULL)
		conv_fingerprint(c, v);
	(void)imap;
}

static void
conv_auth(struct conv *c, int apop)
{
	const char	*v = fmrc_str(c->rc, c->e, "auth");

	if (apop) {
		set_word(c, "auth", "apop");
		return;
	}
	if (v == NULL || strcasecmp(v, "any") == 0 ||
	    strcasecmp(v, "password") == 0)
		return;
	if (strcasecmp(v, "xoauth2") == 0 ||
	    strcasecmp(v, "oauthbearer") == 0) {
		awarn(c, opt_line(c, "auth"), "auth %s: haul needs a "
		    "password_command that prints a fresh token; the account "
		    "is written disabled", v);
		c->disable = 1;
		return;
	}
	awarn(c, opt_line(c, "auth"), "auth %s is not supported; haul uses "
	    "auth = auto (SASL PLAIN, LOGIN or USER/PASS over TLS)", v);
}

/* The local part or address for one local name. */
static char *
local_address(struct conv *c, const char *name)
{
	const char	*dom = fmrc_str(c->rc, c->e, "smtpaddress");
	char		*s;

	if (strchr(name, '@') != NULL)
		return xstrdup(name);
	if (dom == NULL)
		dom = c->o->domain != NULL ? c->o->domain : "localhost";
	xasprintf(&s, "%s@%s", name, dom);
	return s;
}

static int
is_multidrop(const struct fmrc_entry *e)
{
	size_t	 i;

	if (e->wildcard || e->nlocals > 1)
		return 1;
	for (i = 0; i < e->nlocals; i++)
		if (e->locals[i].to != NULL)
			return 1;
	return 0;
}

static void
conv_recipients(struct conv *c)
{
	const struct fmrc_opt *env, *dom;
	const char	*name, *smtpname, *pm;
	char		*addr;
	long		 skip = 0;
	size_t		 i;

	if (!is_multidrop(c->e)) {
		if ((smtpname = fmrc_str(c->rc, c->e, "smtpname")) != NULL) {
			name = smtpname;
		} else if (c->e->nlocals == 1) {
			name = c->e->locals[0].name;
		} else {
			name = c->o->login;
			awarn(c, c->e->uline, "no 'is' name: delivering to "
			    "'%s', the user running the import (as fetchmail "
			    "did); check deliver_to", name);
		}
		addr = local_address(c, name);
		check_value(c, c->e->uline, "deliver_to", addr,
		    valid_address(addr));
		set_list(&c->body, "deliver_to", &addr, 1);
		free(addr);
		return;
	}

	c->res->multidrop = 1;
	set_word(c, "multidrop", "yes");
	env = fmrc_get(c->rc, c->e, "envelope");
	if (env != NULL && !env->neg && env->nvals > 0 &&
	    (strcasecmp(env->vals[0], "Delivered-To") == 0 ||
	    strcasecmp(env->vals[0], "X-Original-To") == 0 ||
	    strcasecmp(env->vals[0], "Envelope-To") == 0)) {
		set_str(c, "multidrop_header", env->vals[0]);
		if (env->nvals > 1 && num(env->vals[1], &skip) == 0 &&
		    skip > 0 && skip < 20)
			buf_addf(&c->body, "\tmultidrop_hop = %ld\n", skip + 1);
	} else {
		set_str(c, "multidrop_header", "Delivered-To");
		awarn(c, env != NULL ? env->line : c->e->uline, "multidrop: "
		    "fetchmail read the envelope from %s%s; haul reads "
		    "Delivered-To, X-Original-To or Envelope-To: check what "
		    "the server adds", env != NULL && !env->neg &&
		    env->nvals > 0 ? env->vals[0] : "Received lines",
		    env == NULL ? " (its default)" : "");
	}
	dom = fmrc_get(c->rc, c->e, "localdomains");
	if (dom != NULL && !dom->neg && dom->nvals > 0) {
		for (i = 0; i < dom->nvals; i++)
			check_value(c, dom->line, "localdomains", dom->vals[i],
			    valid_domain(dom->vals[i]));
		set_list(&c->body, "multidrop_domains", dom->vals, dom->nvals);
	} else {
		char	*host = c->e->pollname;

		if (!valid_domain(host))
			host = "invalid";
		set_list(&c->body, "multidrop_domains", &host, 1);
		awarn(c, c->e->uline, "multidrop without localdomains: "
		    "multidrop_domains set to the server name '%s'; list the "
		    "domains whose mail this mailbox collects; the account is "
		    "written disabled", host);
		c->disable = 1;
	}
	if (!c->e->wildcard || c->e->nlocals > 0) {
		struct buf	 names = BUF_INIT;

		for (i = 0; i < c->e->nlocals; i++)
			buf_addf(&names, "%s%s%s%s", i ? " " : "",
			    c->e->locals[i].name, c->e->locals[i].to ? "=" :
			    "", c->e->locals[i].to ? c->e->locals[i].to : "");
		awarn(c, c->e->uline, "multidrop local names (%s): haul-milter "
		    "delivers every recipient in multidrop_domains as "
		    "addressed; fetchmail's name list and mappings are not "
		    "enforced", names.data ? names.data : "");
		buf_free(&names);
	}
	if ((pm = fmrc_str(c->rc, NULL, "postmaster")) != NULL) {
		addr = local_address(c, pm);
		check_value(c, fmrc_get(c->rc, NULL, "postmaster")->line,
		    "postmaster", addr, valid_address(addr));
		set_str(c, "multidrop_default", addr);
		set_word(c, "multidrop_unknown", "default");
		free(addr);
	} else
		awarn(c, c->e->uline, "multidrop: recipients outside "
		    "multidrop_domains are rejected (left on the server); "
		    "fetchmail sent them to the postmaster (set postmaster "
		    "to have them go to multidrop_default)");
}

/* Split an mda command line like a simple shell: words and quotes. */
static int
split_words(const char *s, char ***out, size_t *n, int *needs_shell)
{
	struct buf	 w = BUF_INIT;
	char		 q = 0;
	int		 inword = 0;

	*out = NULL;
	*n = 0;
	*needs_shell = 0;
	for (;; s++) {
		if (*s == '\0' || (!q && (*s == ' ' || *s == '\t'))) {
			if (q)
				goto bad;
			if (inword) {
				*out = xreallocarray(*out, *n + 1,
				    sizeof(char *));
				(*out)[(*n)++] = buf_steal(&w);
				inword = 0;
			}
			if (*s == '\0')
				break;
			continue;
		}
		inword = 1;
		if (q) {
			if (*s == q)
				q = 0;
			else
				buf_add_byte(&w, (unsigned char)*s);
		} else if (*s == '\'' || *s == '"') {
			q = *s;
			if (w.data == NULL)
				buf_add_str(&w, "");
		} else {
			if (strchr("|&;<>()$`\\*?[]~{}!#", *s) != NULL)
				*needs_shell = 1;
			buf_add_byte(&w, (unsigned char)*s);
		}
	}
	buf_free(&w);
	return 0;
bad:
	buf_free(&w);
	*needs_shell = 1;
	return 0;
}

/* An absolute path for a program name, as the shell would find it. */
static char *
find_program(const char *prog, int *found)
{
	static const char *const dirs[] = {
		"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
		"/sbin", "/bin", "/usr/lib/dovecot", NULL
	};
	char	*p;
	int	 i;

	*found = 1;
	if (prog[0] == '/')
		return xstrdup(prog);
	for (i = 0; dirs[i] != NULL; i++) {
		xasprintf(&p, "%s/%s", dirs[i], prog);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	*found = 0;
	xasprintf(&p, "/usr/bin/%s", prog);
	return p;
}

/* fetchmail's %T (recipient) is haul's %u; %F (sender) has no match. */
static char *
conv_placeholders(struct conv *c, const char *w, unsigned line, int *drop)
{
	struct buf	 b = BUF_INIT;

	*drop = 0;
	for (; *w != '\0'; w++) {
		if (*w == '%' && w[1] == 'T') {
			buf_add_str(&b, "%u");
			w++;
		} else if (*w == '%' && w[1] == 'F') {
			*drop = 1;
			w++;
		} else if (*w == '%' && w[1] == '%') {
			buf_add_str(&b, "%%");
			w++;
		} else if (*w == '%') {
			buf_add_str(&b, "%%");
		} else
			buf_add_byte(&b, (unsigned char)*w);
	}
	if (b.data == NULL)
		buf_add_str(&b, "");
	return buf_steal(&b);
}

static void
conv_mda(struct conv *c, const char *mda, struct buf *d)
{
	unsigned	 line = opt_line(c, "mda");
	char		**w = NULL, **argv;
	size_t		 n = 0, i, argc = 0;
	int		 shell, drop, found, dropped = 0, pct_t;

	pct_t = strstr(mda, "%T") != NULL;
	split_words(mda, &w, &n, &shell);
	if (shell || n == 0) {
		for (i = 0; i < n; i++)
			free(w[i]);
		free(w);
		w = xcalloc(3, sizeof(char *));
		w[0] = xstrdup("/bin/sh");
		w[1] = xstrdup("-c");
		w[2] = xstrdup(mda);
		n = 3;
		awarn(c, line, "mda '%s' needs a shell: written as /bin/sh -c; "
		    "haul puts %%u (the recipient) into it unquoted: review it",
		    mda);
	}
	argv = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		char	*a = conv_placeholders(c, w[i], line, &drop);

		if (drop) {
			/* "-f %F": drop the option with its value */
			free(a);
			if (argc > 1 && argv[argc - 1][0] == '-') {
				free(argv[--argc]);
				argv[argc] = NULL;
			}
			dropped = 1;
			continue;
		}
		if (argc == 0) {
			char	*abs = find_program(a, &found);

			if (!found)
				awarn(c, line, "mda program '%s' is not "
				    "installed here; written as %s", a, abs);
			free(a);
			a = abs;
		}
		argv[argc++] = a;
	}
	if (dropped)
		awarn(c, line, "mda: %%F (the envelope sender) has no haul "
		    "equivalent and was removed with its option; the LDA sees "
		    "the sender in the Return-Path header");
	if (pct_t)
		awarn(c, line, "mda: fetchmail's %%T (local name) became %%u, "
		    "which is the full address (name@domain)");
	set_list(d, "lda_command", argv, argc);
	for (i = 0; i < n; i++)
		free(w[i]);
	free(w);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

/* This account's delivery block body (compared across accounts). */
static void
conv_delivery(struct conv *c)
{
	const struct fmrc_opt *hunt = fmrc_get(c->rc, c->e, "smtphost");
	const char	*mda = fmrc_str(c->rc, c->e, "mda");
	struct buf	 d = BUF_INIT, t = BUF_INIT;
	int		 lmtp = fmrc_flag(c->rc, c->e, "lmtp");

	if (mda != NULL) {
		buf_add_str(&d, "\tmode = lda\n");
		conv_mda(c, mda, &d);
		if (hunt != NULL)
			awarn(c, hunt->line, "smtphost is unused: fetchmail "
			    "delivers through the mda when both are set");
	} else {
		const char	*h = hunt != NULL && hunt->nvals > 0 ?
		    hunt->vals[0] : "localhost";

		if (hunt != NULL && hunt->nvals > 1)
			awarn(c, hunt->line, "smtphost lists %zu hosts; haul "
			    "delivers to the first only (%s)", hunt->nvals,
			    hunt->vals[0]);
		buf_addf(&d, "\tmode = %s\n", lmtp ? "lmtp" : "smtp");
		buf_add_str(&d, "\ttarget = ");
		if (h[0] == '/') {
			buf_addf(&t, "unix:%s", h);
		} else {
			const char *slash = strrchr(h, '/');
			size_t	 hl = slash ? (size_t)(slash - h) : strlen(h);
			const char *port = slash ? slash + 1 : lmtp ? "24" :
			    "25";

			if (slash == NULL && lmtp)
				awarn(c, hunt != NULL ? hunt->line :
				    c->e->uline, "lmtp without a port: "
				    "fetchmail needs one too; check target");
			/* an IPv6 literal is written [addr]:port */
			if (memchr(h, ':', hl) != NULL && h[0] != '[')
				buf_addf(&t, "[%.*s]:%s", (int)hl, h, port);
			else
				buf_addf(&t, "%.*s:%s", (int)hl, h, port);
		}
		add_quoted(&d, t.data);
		buf_free(&t);
		buf_add_byte(&d, '\n');
	}
	c->a->delivery = buf_steal(&d);
}

static void
unmapped_cb(const struct fmrc_opt *o, int scope, void *arg)
{
	struct conv	*c = arg;
	size_t		 i;

	if (fmrc_get(c->rc, c->e, o->key) != o)
		return;			/* overridden: the winner is judged */
	for (i = 0; mapped[i] != NULL; i++)
		if (strcmp(mapped[i], o->key) == 0)
			return;
	if (o->neg && (strcmp(o->key, "rewrite") == 0 ||
	    strcmp(o->key, "fetchall") == 0 || strcmp(o->key, "flush") == 0 ||
	    strcmp(o->key, "dns") == 0 || strcmp(o->key, "mimedecode") == 0 ||
	    strcmp(o->key, "dropstatus") == 0 ||
	    strcmp(o->key, "dropdelivered") == 0 ||
	    strcmp(o->key, "forcecr") == 0 || strcmp(o->key, "stripcr") == 0 ||
	    strcmp(o->key, "pass8bits") == 0 ||
	    strcmp(o->key, "limitflush") == 0 ||
	    strcmp(o->key, "checkalias") == 0 ||
	    strcmp(o->key, "tracepolls") == 0))
		return;			/* "no X" is what haul does anyway */
	for (i = 0; unmapped[i].key != NULL; i++)
		if (strcmp(unmapped[i].key, o->key) == 0) {
			awarn(c, o->line, "%s%s: %s", o->neg ? "no " : "",
			    o->key, unmapped[i].why);
			return;
		}
	awarn(c, o->line, "%s%s: not converted", o->neg ? "no " : "", o->key);
}

static unsigned
poll_interval(const struct conv *c)
{
	long	 daemon = 0, every = 1;
	const char *d = fmrc_str(c->rc, NULL, "daemon");
	const char *iv = fmrc_str(c->rc, c->e, "interval");
	long	 v;

	if (d != NULL && num(d, &daemon) == 0 && daemon > 0) {
		if (iv != NULL && num(iv, &every) == 0 && every < 1)
			every = 1;
		v = daemon * every;
		if (v < 10)
			v = 10;
		if (v > 86400)
			v = 86400;
		return (unsigned)v;
	}
	return 0;
}

static void
convert_one(struct conv *c)
{
	const struct fmrc_entry *e = c->e;
	const char	*proto, *host, *v, *pass, *remote;
	char		 name[65];
	struct buf	 out = BUF_INIT;
	unsigned	 iv;
	long		 n;
	int		 imap, apop = 0, port = 0, keep;
	size_t		 i;

	remote = e->remote != NULL ? e->remote : c->o->login;
	host = fmrc_str(c->rc, e, "via");
	if (host == NULL)
		host = e->pollname;
	fmi_account_name(remote, e->pollname, name);
	unique_name(c->res, name);
	c->a->name = xstrdup(name);
	c->a->line = e->uline;

	proto = fmrc_str(c->rc, e, "protocol");
	if (proto == NULL || strcasecmp(proto, "auto") == 0) {
		/* fetchmail tries IMAP, then POP3: UIDs say it was POP3 */
		size_t	 nids = c->o->ids != NULL ? fmids_each(c->o->ids,
		    remote, host, NULL, NULL) : 0;

		imap = nids == 0;
		awarn(c, proto != NULL ? opt_line(c, "protocol") : e->line,
		    "protocol %s: written as %s%s", proto ? proto : "not set",
		    imap ? "imap" : "pop3", nids ? " (fetchmail kept POP3 "
		    "UIDs for it)" : "; set protocol = pop3 if the server "
		    "has no IMAP");
	} else if (strcasecmp(proto, "pop3") == 0) {
		imap = 0;
	} else if (strcasecmp(proto, "apop") == 0) {
		imap = 0;
		apop = 1;
	} else if (strcasecmp(proto, "imap") == 0) {
		imap = 1;
	} else {
		awarn(c, opt_line(c, "protocol"), "protocol %s is not supported "
		    "by haul (POP3 and IMAP only): no account written", proto);
		c->a->conf = NULL;
		return;
	}
	c->a->imap = imap;

	if ((v = fmrc_str(c->rc, e, "port")) != NULL && num(v, &n) == 0 &&
	    n > 0 && n <= 65535)
		port = (int)n;
	else if ((v = fmrc_str(c->rc, e, "service")) != NULL) {
		if ((port = service_port(v)) == -1) {
			awarn(c, opt_line(c, "service"), "service '%s' is not "
			    "a port haul knows; the default port is used", v);
			port = 0;
		}
	}

	set_word(c, "protocol", imap ? "imap" : "pop3");
	check_value(c, e->line, "server name", host, host[0] != '\0' &&
	    strlen(host) <= 255 && !has_ctl(host) && strchr(host, ' ') == NULL);
	set_str(c, "host", host);
	if (port != 0)
		buf_addf(&c->body, "\tport = %d\n", port);
	conv_tls(c, imap, &port);
	conv_auth(c, apop);
	check_value(c, e->uline, "user name", remote, !has_ctl(remote) &&
	    remote[0] != '\0');
	set_str(c, "user", remote);

	pass = fmrc_str(c->rc, e, "password");
	if ((v = fmrc_str(c->rc, e, "passwordfile")) != NULL) {
		set_str(c, "password_file", v);
		awarn(c, opt_line(c, "passwordfile"), "passwordfile: haul "
		    "reads %s itself (first line); it must be mode 0600 and "
		    "readable by hauld", v);
	} else {
		char	*pf;

		xasprintf(&pf, "%s.pass", name);
		set_str(c, "password_file", pf);
		free(pf);
		if (pass != NULL && strchr(pass, '\n') == NULL &&
		    strchr(pass, '\r') == NULL)
			c->a->password = xstrdup(pass);
		else {
			awarn(c, e->uline, pass != NULL ? "the password holds "
			    "a line break, which a password file cannot; "
			    "write %s.pass yourself; the account is written "
			    "disabled" : "no password in the rc (fetchmail "
			    "asked for it or read ~/.netrc): write it to "
			    "%s.pass (mode 0600); the account is written "
			    "disabled", name);
			c->disable = 1;
		}
	}

	if (imap) {
		const struct fmrc_opt *f = fmrc_get(c->rc, e, "folder");

		if (f != NULL && f->nvals > 0)
			set_list(&c->body, "folders", f->vals, f->nvals);
		set_word(c, "idle", fmrc_flag(c->rc, e, "idle") ? "yes" : "no");
	} else {
		if (fmrc_get(c->rc, e, "folder") != NULL)
			awarn(c, opt_line(c, "folder"), "folder: POP3 has one "
			    "mailbox; ignored");
		if (fmrc_flag(c->rc, e, "idle"))
			awarn(c, opt_line(c, "idle"), "idle: POP3 has no IDLE; "
			    "haul polls every poll_interval");
	}

	if ((iv = poll_interval(c)) != 0)
		buf_addf(&c->body, "\tpoll_interval = %u\n", iv);
	else if (fmrc_get(c->rc, e, "interval") != NULL)
		awarn(c, opt_line(c, "interval"), "interval without 'set "
		    "daemon': haul polls every 300 s (poll_interval)");

	keep = fmrc_flag(c->rc, e, "keep");
	c->a->keep = keep;
	set_word(c, "keep", keep ? "yes" : "no");
	if (keep && fmrc_flag(c->rc, e, "flush"))
		awarn(c, opt_line(c, "flush"), "keep and flush together: haul "
		    "keeps mail (keep = yes)");

	if ((v = fmrc_str(c->rc, e, "limit")) != NULL && num(v, &n) == 0 &&
	    n > 0) {
		if (n < 1024) {
			awarn(c, opt_line(c, "limit"), "limit %ld: haul's "
			    "smallest max_message_size is 1K", n);
			n = 1024;
		}
		if (n > 2L * 1024 * 1024 * 1024)
			n = 2L * 1024 * 1024 * 1024;
		buf_addf(&c->body, "\tmax_message_size = '%ld'\n", n);
	}
	if ((v = fmrc_str(c->rc, e, "timeout")) != NULL && num(v, &n) == 0) {
		if (n < 5 || n > 3600)
			awarn(c, opt_line(c, "timeout"), "timeout %ld: haul "
			    "takes 5..3600; clamped", n);
		buf_addf(&c->body, "\ttimeout = %ld\n", n < 5 ? 5 : n > 3600 ?
		    3600 : n);
	}
	conv_recipients(c);
	conv_delivery(c);
	fmrc_each(e, unmapped_cb, c);

	/* Never re-deliver: keep needs a seed haul can use. */
	if (!imap) {
		c->a->seed_user = xstrdup(remote);
		c->a->seed_host = xstrdup(host);
		c->a->nseed = c->o->ids != NULL ? fmids_each(c->o->ids, remote,
		    host, NULL, NULL) : 0;
		if (keep && c->a->nseed == 0) {
			awarn(c, e->uline, "keep, but %s has no UIDs for "
			    "%s@%s: if the mailbox is not empty haul would "
			    "deliver all of it again; the account is written "
			    "disabled (enable it if the mailbox is empty or "
			    "pass the right --ids)", c->o->idsname ?
			    c->o->idsname : "no .fetchids", remote, host);
			c->disable = 1;
		} else if (!keep && c->a->nseed > 0)
			awarn(c, e->uline, "keep = no: the %zu messages "
			    "fetchmail delivered and left on the server are "
			    "deleted by haul's first poll", c->a->nseed);
	} else if (keep) {
		/*
		 * fetchmail fetched what had no \Seen and flagged it; with
		 * fetchall it fetched everything, every poll, and flagged it
		 * too.  Either way \Seen covers what it delivered, and an
		 * unseen message is fetched: a duplicate at worst, never a
		 * loss (first_fetch = new would lose what arrived since
		 * fetchmail's last poll).
		 */
		set_word(c, "first_fetch", "unseen");
		awarn(c, e->uline, "IMAP with keep: fetchmail remembers "
		    "fetched mail by the \\Seen flag, not by UID; written with "
		    "first_fetch = unseen: haul's first session records every "
		    "\\Seen message as delivered without fetching it and "
		    "delivers the rest%s", fmrc_flag(c->rc, e, "fetchall") ?
		    " (with fetchall fetchmail delivered every message at each "
		    "poll: one it delivered that was marked unseen since "
		    "arrives once more)" : " (a message read elsewhere before "
		    "fetchmail fetched it was never delivered, by fetchmail "
		    "or by haul)");
	} else if (!fmrc_flag(c->rc, e, "fetchall"))
		awarn(c, e->uline, "IMAP: fetchmail skipped messages marked "
		    "\\Seen (read elsewhere); haul fetches every message "
		    "left in the folder, and with keep = no deletes it");
	if (e->skip)
		c->disable = 1;

	c->a->enabled = !c->disable;
	if (c->fatal) {
		c->a->conf = NULL;
		return;
	}
	buf_addf(&out, "# Imported by haulctl import-fetchmail from %s:%u\n",
	    c->o->rcname != NULL ? c->o->rcname : "fetchmailrc", e->uline);
	buf_addf(&out, "# (fetchmail %s ", e->skip ? "skip" : "poll");
	add_comment_text(&out, e->pollname);
	buf_add_str(&out, ", user ");
	add_comment_text(&out, remote);
	buf_add_str(&out, ")\n");
	for (i = 0; i < c->a->nwarns; i++) {
		const char *t = c->a->warns[i].text;

		buf_addf(&out, "# warning (rc line %u): ", c->a->warns[i].line);
		/* a comment must stay one line */
		add_comment_text(&out, t);
		buf_add_byte(&out, '\n');
	}
	buf_add_str(&out, "account ");
	add_quoted(&out, name);
	buf_add_str(&out, " {\n");
	if (e->skip)
		buf_add_str(&out, "\t# a fetchmail 'skip' entry\n");
	buf_addf(&out, "\tenabled = %s\n", c->disable ? "no" : "yes");
	buf_add(&out, c->body.data, c->body.len);
	buf_add_str(&out, "}\n");
	c->a->conf = buf_steal(&out);
}

static void
set_cb_warn(struct fmi_result *r, const struct fmrc *rc, const char *rcname)
{
	size_t	 i;

	for (i = 0; i < rc->set.n; i++) {
		const struct fmrc_opt *o = &rc->set.v[i];
		const char	*k = o->key;

		if (fmrc_get(rc, NULL, k) != o)
			continue;
		if (strcmp(k, "daemon") == 0 || strcmp(k, "idfile") == 0 ||
		    strcmp(k, "postmaster") == 0)
			continue;	/* used */
		if (strcmp(k, "syslog") == 0)
			gwarn(r, o->line, "set %ssyslog: hauld logs to syslog "
			    "(facility mail, global log_facility) when it runs "
			    "as a daemon, to stderr in the foreground",
			    o->neg ? "no " : "");
		else if (strcmp(k, "logfile") == 0)
			gwarn(r, o->line, "set logfile: hauld logs to syslog "
			    "or stderr (journald), not to a file");
		else if (strcmp(k, "pidfile") == 0)
			gwarn(r, o->line, "set pidfile: use global pid_file in "
			    "haul.conf");
		else if (strcmp(k, "bouncemail") == 0 ||
		    strcmp(k, "spambounce") == 0 ||
		    strcmp(k, "softbounce") == 0)
			gwarn(r, o->line, "set %s%s: haul never bounces; an MTA "
			    "5xx leaves the message on the server, marked "
			    "refused", o->neg ? "no " : "", k);
		else if (strcmp(k, "invisible") == 0)
			gwarn(r, o->line, "set invisible: haul always adds its "
			    "Received trace header");
		else
			gwarn(r, o->line, "set %s%s: not converted",
			    o->neg ? "no " : "", k);
	}
	(void)rcname;
}

int
fmi_convert(const struct fmrc *rc, const struct fmi_opts *o,
    struct fmi_result *r, char *err, size_t errsz)
{
	struct conv	 c;
	struct buf	 d = BUF_INIT;
	size_t		 i, first = (size_t)-1;

	memset(r, 0, sizeof(*r));
	if (errsz > 0)
		err[0] = '\0';
	set_cb_warn(r, rc, o->rcname);
	for (i = 0; i < rc->nentries; i++) {
		memset(&c, 0, sizeof(c));
		c.rc = rc;
		c.o = o;
		c.res = r;
		c.e = &rc->entries[i];
		r->v = xreallocarray(r->v, r->n + 1, sizeof(*r->v));
		c.a = &r->v[r->n];
		memset(c.a, 0, sizeof(*c.a));
		r->n++;
		convert_one(&c);
		buf_free(&c.body);
	}
	/* One delivery for all: the first account's; others are compared. */
	for (i = 0; i < r->n; i++) {
		if (r->v[i].conf == NULL || r->v[i].delivery == NULL)
			continue;
		if (first == (size_t)-1)
			first = i;
		else if (strcmp(r->v[i].delivery, r->v[first].delivery) != 0)
			gwarn(r, r->v[i].line, "account %s: fetchmail delivered "
			    "it differently from %s; haul has one delivery "
			    "for all accounts (the first one's is written)",
			    r->v[i].name, r->v[first].name);
	}
	buf_add_str(&d, "# Delivery converted by haulctl import-fetchmail\n"
	    "delivery {\n");
	if (r->multidrop && first != (size_t)-1 &&
	    strstr(r->v[first].delivery, "mode = lda") != NULL) {
		/* via_milter needs the MTA: an LDA cannot do multidrop */
		gwarn(r, 0, "multidrop needs delivery through the MTA, not an "
		    "mda: the delivery block uses smtp to localhost:25 "
		    "instead of %s's mda", r->v[first].name);
		buf_add_str(&d, "\tmode = smtp\n\ttarget = 'localhost:25'\n");
	} else if (first != (size_t)-1)
		buf_add_str(&d, r->v[first].delivery);
	if (r->multidrop) {
		buf_add_str(&d, "\t# multidrop accounts: haul-milter maps the "
		    "recipients\n\tvia_milter = yes\n");
		gwarn(r, 0, "multidrop accounts need haul-milter in the MTA "
		    "(delivery.via_milter = yes; see docs/milter.md)");
	}
	buf_add_str(&d, "}\n");
	r->delivery = buf_steal(&d);
	return 0;
}

void
fmi_result_free(struct fmi_result *r)
{
	size_t	 i, j;

	for (i = 0; i < r->n; i++) {
		struct fmi_account *a = &r->v[i];

		free(a->name);
		free(a->conf);
		if (a->password != NULL)
			freezero(a->password, strlen(a->password));
		free(a->seed_user);
		free(a->seed_host);
		free(a->delivery);
		for (j = 0; j < a->nwarns; j++)
			free(a->warns[j].text);
		free(a->warns);
	}
	free(r->v);
	for (j = 0; j < r->nwarns; j++)
		free(r->warns[j].text);
	free(r->warns);
	free(r->delivery);
	memset(r, 0, sizeof(*r));
}
