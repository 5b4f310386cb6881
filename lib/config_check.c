/* ISC licence; see LICENSE. */
/*
 * Configuration checks that look at more than one value, and the error
 * list they report into.  Everything here works on the converted structs
 * of haul/config.h plus where each option was set; libconfuse stays in
 * lib/config.c.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/xmalloc.h"

#include "config_int.h"

#define SHOWN_MAX	200	/* bytes of a value quoted in a message */

void
config_error(struct cload *c, struct loc at, const char *scope,
    const char *fmt, ...)
{
	struct buf	 b = BUF_INIT;
	va_list		 ap;
	char		*msg;
	int		 rc;

	buf_add_str(&b, at.file >= 0 ? c->files[at.file] : c->mainpath);
	if (at.line > 0)
		buf_addf(&b, ":%u", at.line);
	buf_add_str(&b, ": ");
	if (scope != NULL)
		buf_addf(&b, "%s: ", scope);
	va_start(ap, fmt);
	rc = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc == -1)
		fatal("vasprintf");
	buf_add_str(&b, msg);
	free(msg);

	c->errs = xreallocarray(c->errs, c->nerrs + 1, sizeof(*c->errs));
	c->errs[c->nerrs].at = at;
	c->errs[c->nerrs].seq = c->nerrs;
	c->errs[c->nerrs].text = buf_steal(&b);
	c->nerrs++;
}

const char *
config_shown(const char *s, char *dst, size_t len)
{
	return log_printable(dst, len, s, strlen(s));
}

void
config_value_error(struct cload *c, struct loc at, const char *scope,
    const char *key, const char *value, const char *reason)
{
	char	 v[SHOWN_MAX];

	config_error(c, at, scope, "%s = \"%s\": %s", key,
	    config_shown(value, v, sizeof(v)), reason);
}

int
config_check_value(struct cload *c, const struct optdef *d, const char *s,
    unsigned idx, struct loc at, const char *scope)
{
	struct buf	 why = BUF_INIT;
	int		 rc = 0;

	if (d->check != NULL && d->check(s, idx, &why) == -1) {
		config_value_error(c, at, scope, d->name, s, why.data);
		rc = -1;
	}
	buf_free(&why);
	return rc;
}

void
config_enum_error(struct cload *c, const struct optdef *d, const char *s,
    struct loc at, const char *scope)
{
	struct buf	 why = BUF_INIT;
	size_t		 i;

	buf_add_str(&why, "expected ");
	for (i = 0; d->names[i] != NULL; i++)
		buf_addf(&why, "%s%s", i == 0 ? "" : d->names[i + 1] == NULL ?
		    " or " : ", ", d->names[i]);
	config_value_error(c, at, scope, d->name, s, why.data);
	buf_free(&why);
}

struct loc
config_where(const struct seclocs *sl, const char *name)
{
	int	 i = config_opt_index(sl->tab, name);

	if (i >= 0 && sl->loc[i].line != 0)
		return sl->loc[i];
	return sl->start;
}

static int
isbad(const struct seclocs *sl, const char *name)
{
	int	 i = config_opt_index(sl->tab, name);

	return i >= 0 && sl->bad[i];
}

static int
listset(const struct seclocs *sl, const char *name)
{
	int	 i = config_opt_index(sl->tab, name);

	return i >= 0 && sl->listset[i];
}

/* The real directory of a file, for relative paths inside it. */
static const char *
basedir(struct cload *c, int file)
{
	const char	*slash;
	char		*dir, *real;

	if (c->basedirs[file] == NULL) {
		slash = strrchr(c->files[file], '/');
		if (slash == NULL)
			dir = xstrdup(".");
		else if (slash == c->files[file])
			dir = xstrdup("/");
		else
			dir = xstrndup(c->files[file],
			    (size_t)(slash - c->files[file]));
		if ((real = realpath(dir, NULL)) != NULL) {
			free(dir);
			dir = real;
		}
		c->basedirs[file] = dir;
	}
	return c->basedirs[file];
}

static void
resolve_path(struct cload *c, int file, char **path)
{
	char	*abs;

	if (*path == NULL || (*path)[0] == '/')
		return;
	xasprintf(&abs, "%s/%s", basedir(c, file), *path);
	free(*path);
	*path = abs;
}

/*
 * A file named by an account must be a regular file we can open.  A
 * secret must also have no permission bits for group or others (whoever
 * else can read it has the mailbox) and must not be a symbolic link.
 */
static void
check_file(struct cload *c, struct loc at, const char *scope,
    const char *key, const char *path, int secret)
{
	struct stat	 st;
	char		 reason[256];
	int		 fd;

	/* Like hauld when it reads the secret: no symlink as last part. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
	    (secret ? O_NOFOLLOW : 0))) == -1 || fstat(fd, &st) == -1) {
		if (secret && errno == ELOOP)
			snprintf(reason, sizeof(reason), "is a symbolic link; "
			    "name the file itself");
		else
			snprintf(reason, sizeof(reason), "cannot open: %s",
			    strerror(errno));
		config_value_error(c, at, scope, key, path, reason);
		if (fd != -1)
			close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode))
		config_value_error(c, at, scope, key, path,
		    "not a regular file");
	else if (secret && (st.st_mode & 077) != 0) {
		snprintf(reason, sizeof(reason), "mode %04o lets group or "
		    "others access it; it must be 0600 or stricter",
		    (unsigned)(st.st_mode & 07777));
		config_value_error(c, at, scope, key, path, reason);
	}
	close(fd);
}

static void
check_password(struct cload *c, struct seclocs *sl,
    struct config_account *a, const char *scope)
{
	struct loc	 at, at2;
	int		 cmd, file;

	cmd = listset(sl, "password_command");
	file = a->password_file != NULL || isbad(sl, "password_file");
	if (!isbad(sl, "auth") && (a->auth == AUTH_XOAUTH2 ||
	    a->auth == AUTH_OAUTHBEARER) && !cmd)
		config_error(c, config_where(sl, "auth"), scope, "auth = %s "
		    "needs password_command (to print a fresh access token)",
		    config_auth_name(a->auth));
	if (cmd && file) {
		at = config_where(sl, "password_file");
		at2 = config_where(sl, "password_command");
		if (at2.file > at.file || (at2.file == at.file &&
		    at2.line > at.line))
			at = at2;
		config_error(c, at, scope, "password_file and "
		    "password_command are mutually exclusive");
	} else if (!cmd && !file)
		config_error(c, sl->start, scope, "password_file or "
		    "password_command is required");
	/*
	 * "= {}" runs no libconfuse callback, so an emptied list has no line
	 * of its own: report it at the account.
	 */
	if (cmd && a->password_command == NULL &&
	    !isbad(sl, "password_command"))
		config_error(c, sl->start, scope,
		    "password_command must not be empty");
}

static void
check_multidrop(struct cload *c, struct seclocs *sl,
    struct config_account *a, const char *scope)
{
	if (!a->multidrop) {
		if (a->deliver_to == NULL && !isbad(sl, "deliver_to"))
			config_error(c, config_where(sl, "multidrop"), scope,
			    "deliver_to is required (or set multidrop = true)");
	} else if (a->multidrop_domains == NULL &&
	    !isbad(sl, "multidrop_domains"))
		config_error(c, config_where(sl, "multidrop"), scope,
		    "multidrop = true needs multidrop_domains");
	if (!isbad(sl, "multidrop_unknown") &&
	    a->multidrop_unknown == UNKNOWN_DEFAULT &&
	    a->multidrop_default == NULL && !isbad(sl, "multidrop_default"))
		config_error(c, config_where(sl, "multidrop_unknown"), scope,
		    "multidrop_unknown = default needs multidrop_default");
}

void
config_check_account(struct cload *c, struct seclocs *sl,
    struct config_account *a, const char *scope)
{
	int	 pop3, imap;

	if (!config_valid_account_name(a->name))
		config_error(c, sl->start, scope, "invalid account name: use "
		    "1 to 64 characters from A-Z a-z 0-9 . _ -");

	pop3 = !isbad(sl, "protocol") && a->protocol == PROTO_POP3;
	imap = !isbad(sl, "protocol") && a->protocol == PROTO_IMAP;

	if (!isbad(sl, "tls") && a->tls == TLS_NONE && !a->allow_plaintext)
		config_error(c, config_where(sl, "tls"), scope, "tls = none "
		    "sends the password in clear text; set allow_plaintext = "
		    "true to allow it");
	if (!isbad(sl, "auth") && a->auth == AUTH_APOP && imap)
		config_error(c, config_where(sl, "auth"), scope,
		    "auth = apop is only for protocol = pop3");
	check_password(c, sl, a, scope);

	if (listset(sl, "folders")) {
		if (pop3)
			config_error(c, config_where(sl, "folders"), scope,
			    "folders is only for protocol = imap (POP3 has a "
			    "single mailbox)");
		else if (a->folders == NULL && !isbad(sl, "folders"))
			config_error(c, sl->start, scope,
			    "folders must not be empty");
	}
	if (a->folders == NULL) {
		/* POP3 gets INBOX too: it names the one mailbox it has. */
		a->folders = xcalloc(2, sizeof(*a->folders));
		a->folders[0] = xstrdup("INBOX");
	}
	if (pop3 && (a->move_to != NULL || isbad(sl, "move_to")))
		config_error(c, config_where(sl, "move_to"), scope,
		    "move_to is only for protocol = imap");
	if (pop3 && !isbad(sl, "first_fetch") &&
	    a->first_fetch != FIRST_FETCH_ALL)
		config_error(c, config_where(sl, "first_fetch"), scope,
		    "first_fetch is only for protocol = imap (for POP3, "
		    "haulctl import-fetchmail records what fetchmail kept)");
	if (a->delete_after_days > 0 && !a->keep)
		config_error(c, config_where(sl, "delete_after_days"), scope,
		    "delete_after_days needs keep = true (with keep = false "
		    "mail is deleted as soon as it is delivered)");
	check_multidrop(c, sl, a, scope);

	resolve_path(c, sl->start.file, &a->password_file);
	resolve_path(c, sl->start.file, &a->ca_file);
	/*
	 * Files are checked for enabled accounts only, so that a shipped or
	 * parked account need not have its secret on this machine.
	 */
	if (a->enabled) {
		if (a->password_file != NULL)
			check_file(c, config_where(sl, "password_file"), scope,
			    "password_file", a->password_file, 1);
		if (a->ca_file != NULL)
			check_file(c, config_where(sl, "ca_file"), scope,
			    "ca_file", a->ca_file, 0);
	}
}

void
config_check_delivery(struct cload *c, struct seclocs *sl,
    struct config_delivery *d)
{
	struct loc	 at;
	int		 lda;

	if (!isbad(sl, "retry_min") && !isbad(sl, "retry_max") &&
	    d->retry_min > d->retry_max) {
		at = config_where(sl, "retry_min");
		if (config_where(sl, "retry_max").line > at.line)
			at = config_where(sl, "retry_max");
		config_error(c, at, "delivery", "retry_min (%u) must not "
		    "exceed retry_max (%u)", d->retry_min, d->retry_max);
	}
	lda = !isbad(sl, "mode") && d->mode == DELIVER_LDA;
	if (lda && d->lda_command == NULL && !isbad(sl, "lda_command"))
		config_error(c, config_where(sl, "mode"), "delivery",
		    "mode = lda needs a non-empty lda_command");
	if (lda && d->via_milter)
		config_error(c, config_where(sl, "via_milter"), "delivery",
		    "via_milter needs mode = smtp or lmtp (an LDA does not "
		    "pass through the MTA)");
	if (lda && d->xclient)
		config_error(c, config_where(sl, "xclient"), "delivery",
		    "xclient needs mode = smtp or lmtp");
}

struct named {
	const char	*name;
	size_t		 idx;
};

static int
cmp_named(const void *a, const void *b)
{
	const struct named	*x = a, *y = b;
	int			 r = strcmp(x->name, y->name);

	if (r != 0)
		return r;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorting instead of comparing pairs: thousands of accounts are normal. */
void
config_check_duplicates(struct cload *c, const struct config_account *accts,
    const int *files, size_t n)
{
	struct named	*v;
	struct loc	 at;
	size_t		 i, first = 0;
	char		 t[SHOWN_MAX], scope[SHOWN_MAX + 16];

	if (n < 2)
		return;
	v = xcalloc(n, sizeof(*v));
	for (i = 0; i < n; i++) {
		v[i].name = accts[i].name;
		v[i].idx = i;
	}
	qsort(v, n, sizeof(*v), cmp_named);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i].name, v[first].name) != 0) {
			first = i;
			continue;
		}
		snprintf(scope, sizeof(scope), "account \"%s\"",
		    config_shown(v[i].name, t, sizeof(t)));
		at.file = files[v[i].idx];
		at.line = accts[v[i].idx].line;
		config_error(c, at, scope, "duplicate account name (first "
		    "defined at %s:%u)", c->files[files[v[first].idx]],
		    accts[v[first].idx].line);
	}
	free(v);
}

void
config_check_multidrop_route(struct cload *c, const struct config_delivery *d,
    const struct config_account *accts, const int *files, size_t n)
{
	struct loc	 at;
	size_t		 i;
	char		 t[SHOWN_MAX], scope[SHOWN_MAX + 16];

	if (d->via_milter)
		return;
	for (i = 0; i < n; i++) {
		if (!accts[i].multidrop || !accts[i].enabled)
			continue;
		snprintf(scope, sizeof(scope), "account \"%s\"",
		    config_shown(accts[i].name, t, sizeof(t)));
		at.file = files[i];
		at.line = accts[i].line;
		config_error(c, at, scope, "multidrop = true needs "
		    "delivery.via_milter = yes (haul-milter maps the "
		    "recipients)");
	}
}
