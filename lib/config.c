/* ISC licence; see LICENSE. */
/*
 * haul.conf loader.  libconfuse parses; this file drives it one file at
 * a time, turns every problem into a "file:line: ..." message and
 * converts the result into the plain structs of haul/config.h.  The
 * cfg_t never leaves this file.
 *
 * libconfuse stops at the first syntax error, so everything that is not
 * syntax is kept out of its way: numbers and booleans are parsed by our
 * callbacks (which report a bad value and go on), enums are plain strings
 * checked afterwards, unknown keys are kept as free-form values
 * (CFGF_KEYSTRVAL) once libconfuse has reported them, duplicate account
 * names are found here rather than with CFGF_NO_TITLE_DUPES (which
 * aborts the parse), and values are validated per section once it is
 * closed.  Callbacks therefore always return 0: non-zero aborts.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <confuse.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#include "config_int.h"

#define MAX_INCLUDE_DEPTH	8
#define MAX_FILE_SIZE		(64 * 1024 * 1024)
#define SCOPE_MAX		256

/* An include() seen while parsing a file, expanded once it is done. */
struct pending {
	char		*pattern;	/* resolved against the file's dir */
	int		 literal;	/* no wildcard: the file must exist */
	struct loc	 at;		/* the include() */
};

struct fileid {
	dev_t		 dev;
	ino_t		 ino;
};

/*
 * One load.  sec[] tracks where options were set: global, delivery and
 * milter for the whole load (their blocks may repeat and merge), the
 * account entry for the account being parsed.
 */
struct lctx {
	struct cload	 base;
	cfg_t		*root;
	struct fileid	*ids;
	int		 cur_file;
	struct pending	*pend;
	size_t		 npend;
	struct seclocs	 sec[SEC_COUNT];
	cfg_t		*cur_sec[SEC_COUNT];	/* section sec[] describes */
	struct config_account *accts;
	int		*acctfile;
	size_t		 naccts;
	const cfg_t	*unknown_cfg;	/* last "unknown option" report */
	int		 unknown_line;
	struct loc	 glob_at;	/* the include glob() is expanding */
};

/*
 * libconfuse callbacks carry no user pointer, so they reach the load in
 * progress through this.  libconfuse's scanner is global state anyway:
 * config_load() is not reentrant.
 */
static struct lctx	*cur;

static struct loc
here(const cfg_t *cfg)
{
	struct loc	 at;

	at.file = cur->cur_file;
	at.line = cfg->line > 0 ? (unsigned)cfg->line : 0;
	return at;
}

/* "account \"name\"", "global", .. or NULL at the top level. */
static const char *
scope_of(const cfg_t *sec, char *dst, size_t len)
{
	char	 t[SCOPE_MAX - 16];

	if (sec == NULL || strcmp(sec->name, "root") == 0)
		return NULL;
	if (sec->title == NULL)
		return sec->name;
	snprintf(dst, len, "%s \"%s\"", sec->name, config_shown(sec->title,
	    t, sizeof(t)));
	return dst;
}

static int
section_kind(const cfg_t *sec)
{
	int	 k;

	for (k = 0; k < SEC_COUNT; k++)
		if (strcmp(sec->name, config_sections[k].name) == 0)
			return k;
	return -1;
}

/*
 * The location record for the section a callback fires in.  While an
 * account is parsed the root's line counter stays on the line of its
 * opening brace: that is where the account starts.
 */
static struct seclocs *
track(struct lctx *c, cfg_t *sec)
{
	struct seclocs	*sl;
	int		 k;

	if ((k = section_kind(sec)) == -1)
		return NULL;
	sl = &c->sec[k];
	if (c->cur_sec[k] != sec) {
		if (k == SEC_ACCOUNT) {
			memset(sl->loc, 0, sizeof(sl->loc));
			memset(sl->bad, 0, sizeof(sl->bad));
		}
		if (k == SEC_ACCOUNT || sl->start.line == 0) {
			sl->start.file = c->cur_file;
			sl->start.line = (unsigned)c->root->line;
		}
		c->cur_sec[k] = sec;
	}
	return sl;
}

/* A value libconfuse could not even store: report, keep the default. */
static void
parse_failed(cfg_t *sec, cfg_opt_t *opt, const char *value,
    const char *reason)
{
	struct seclocs	*sl;
	char		 scope[SCOPE_MAX];
	size_t		 i;

	if (cur == NULL)
		return;
	if ((sl = track(cur, sec)) != NULL) {
		i = (size_t)(opt - sec->opts);
		if (i < sl->tab->nopts)
			sl->bad[i] = 1;
	}
	config_value_error(&cur->base, here(sec), scope_of(sec, scope,
	    sizeof(scope)), opt->name, value, reason);
}

/* Decimal only: libconfuse's strtol(.., 0) reads "010" as 8. */
static int
parse_uint(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
	const char	*p = value;
	long		 v = 0;
	int		 neg = 0;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (*p == '\0')
		goto bad;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		/* Saturate: the range check reports it. */
		v = v < LONG_MAX / 10 ? v * 10 + (*p - '0') : LONG_MAX;
	}
	*(long *)result = neg ? -v : v;
	return 0;
bad:
	parse_failed(sec, opt, value, "not a whole number");
	*(long *)result = opt->def.number;
	return 0;
}

static int
parse_bool(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
	int	 b;

	if ((b = cfg_parse_boolean(value)) == -1) {
		parse_failed(sec, opt, value, "expected true or false");
		b = opt->def.boolean == cfg_true;
	}
	*(int *)result = b;
	return 0;
}

/*
 * Called after every value is stored: remember where.  For a list, keep
 * the line of the first element of the last "=" (libconfuse calls again
 * for every element and at the closing brace).
 */
static int
on_value(cfg_t *sec, cfg_opt_t *opt)
{
	struct seclocs	*sl;
	size_t		 i;

	if (cur == NULL || (sl = track(cur, sec)) == NULL)
		return 0;
	i = (size_t)(opt - sec->opts);
	if (i < sl->tab->nopts && (opt->nvalues <= 1 || sl->loc[i].line == 0))
		sl->loc[i] = here(sec);
	return 0;
}

/*
 * libconfuse's own messages carry the file and line already; add the
 * scope, and reword "no such option".  When an unknown option's value
 * cannot be skipped (a list, a section) libconfuse stops with a second
 * message on the same line that says nothing new: drop it.
 */
static void __attribute__((format(printf, 2, 0)))
on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	static const char unknown[] = "no such option ";
	char		 msg[512], scopebuf[SCOPE_MAX];
	const char	*scope;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (cur == NULL)
		return;
	scope = scope_of(cfg, scopebuf, sizeof(scopebuf));
	if (strncmp(msg, unknown, sizeof(unknown) - 1) == 0) {
		cur->unknown_cfg = cfg;
		cur->unknown_line = cfg->line;
		if (scope != NULL &&
		    strcmp(msg, "no such option 'include'") == 0)
			config_error(&cur->base, here(cfg), scope,
			    "include() is only allowed at the top level");
		else
			config_error(&cur->base, here(cfg), scope,
			    "unknown option %s", msg + sizeof(unknown) - 1);
		return;
	}
	if (cur->unknown_cfg == cfg && cur->unknown_line == cfg->line &&
	    (strcmp(fmt, "missing equal sign after option '%s'") == 0 ||
	    strcmp(fmt, "unexpected token '%s'") == 0 ||
	    strcmp(fmt, "attempt to append to non-list option '%s'") == 0))
		return;
	config_error(&cur->base, here(cfg), scope, "%s", msg);
}

/* Backslash-escape glob metacharacters so a directory matches itself. */
static void
add_glob_escaped(struct buf *b, const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (strchr("*?[]\\", s[i]) != NULL)
			buf_add_byte(b, '\\');
		buf_add_byte(b, (unsigned char)s[i]);
	}
}

/*
 * include("a/ *.conf", ..): remember the patterns, to be read after the
 * current file.  A libconfuse parse must never nest inside another (its
 * scanner is global), and its own include stack holds ten files at most
 * where accounts.d may hold thousands.
 */
static int
on_include(cfg_t *cfg, cfg_opt_t *opt, int argc, const char **argv)
{
	struct pending	*p;
	struct buf	 b = BUF_INIT;
	const char	*file, *slash;
	int		 i;

	if (cur == NULL)
		return 0;
	if (argc == 0)
		config_error(&cur->base, here(cfg), NULL, "include() needs at "
		    "least one file name or pattern");
	file = cur->base.files[cur->cur_file];
	for (i = 0; i < argc; i++) {
		if (argv[i][0] == '\0' || str_has_ctl(argv[i],
		    strlen(argv[i]))) {
			config_error(&cur->base, here(cfg), NULL,
			    "include: invalid file name or pattern");
			continue;
		}
		cur->pend = xreallocarray(cur->pend, cur->npend + 1,
		    sizeof(*cur->pend));
		p = &cur->pend[cur->npend++];
		p->literal = strpbrk(argv[i], "*?[") == NULL;
		p->at = here(cfg);
		/* Relative to the including file's directory. */
		if (argv[i][0] != '/' && (slash = strrchr(file, '/')) != NULL) {
			if (p->literal)
				buf_add(&b, file, (size_t)(slash - file) + 1);
			else
				add_glob_escaped(&b, file,
				    (size_t)(slash - file) + 1);
		}
		buf_add_str(&b, argv[i]);
		p->pattern = buf_steal(&b);
	}
	return 0;
}

static int
on_glob_error(const char *path, int error)
{
	/* A directory that does not exist simply matches nothing. */
	if (cur == NULL || error == ENOENT || error == ENOTDIR)
		return 0;
	config_error(&cur->base, cur->glob_at, NULL, "include: %s: cannot "
	    "read directory: %s", path, strerror(error));
	return 0;
}

/*
 * Values of one closed section: check what a file set (defaults are
 * valid by construction), at the line where it was set, and store every
 * value, defaults included, into obj.
 */
static void
convert_section(struct lctx *c, struct seclocs *sl, cfg_t *sec, void *obj,
    const char *scope)
{
	const struct optdef	*d;
	cfg_opt_t		*o;
	struct loc		 at;
	const char		*s;
	char			*field, **list;
	size_t			 i;
	unsigned		 k, n;
	long			 v;
	int			 set, e, b, ok;

	for (i = 0; i < sl->tab->nopts; i++) {
		d = &sl->tab->opts[i];
		o = &sec->opts[i];
		field = (char *)obj + d->off;
		set = sl->loc[i].line != 0;
		at = set ? sl->loc[i] : sl->start;
		sl->listset[i] = (o->flags & CFGF_MODIFIED) != 0;
		if (sl->bad[i])
			continue;
		switch (d->kind) {
		case OK_STR:
		case OK_ENUM:
			if ((s = cfg_opt_getnstr(o, 0)) == NULL) {
				if (d->flags & OPT_REQUIRED) {
					config_error(&c->base, at, scope,
					    "%s is required", d->name);
					sl->bad[i] = 1;
				}
				break;
			}
			if (d->kind == OK_ENUM) {
				e = config_enum_lookup(d->names, s);
				if (e == -1) {
					config_enum_error(&c->base, d, s, at,
					    scope);
					sl->bad[i] = 1;
				} else
					memcpy(field, &e, sizeof(e));
				break;
			}
			if (set && config_check_value(&c->base, d, s, 0, at,
			    scope) == -1) {
				sl->bad[i] = 1;
				break;
			}
			if (d->conv != NULL)
				d->conv(s, obj, d->off);
			else
				*(char **)(void *)field = xstrdup(s);
			break;
		case OK_UINT:
			v = cfg_opt_getnint(o, 0);
			if (set && (v < d->min || v > d->max)) {
				config_error(&c->base, at, scope, "%s = %ld: "
				    "out of range %ld..%ld", d->name, v,
				    d->min, d->max);
				sl->bad[i] = 1;
				break;
			}
			*(unsigned *)(void *)field = (unsigned)v;
			break;
		case OK_BOOL:
			b = cfg_opt_getnbool(o, 0) == cfg_true;
			memcpy(field, &b, sizeof(b));
			break;
		case OK_LIST:
			n = cfg_opt_size(o);
			ok = 1;
			for (k = 0; k < n; k++)
				if (config_check_value(&c->base, d,
				    cfg_opt_getnstr(o, k), k, at, scope) == -1)
					ok = 0;
			if (!ok) {
				sl->bad[i] = 1;
				break;
			}
			if (n == 0)
				break;
			list = xcalloc(n + 1, sizeof(*list));
			for (k = 0; k < n; k++)
				list[k] = xstrdup(cfg_opt_getnstr(o, k));
			*(char ***)(void *)field = list;
			break;
		}
	}
}

/*
 * An account's closing brace: convert and check it, keep the result and
 * forget the cfg_t.
 */
static void
account_end(struct lctx *c, cfg_opt_t *opt)
{
	struct seclocs		*sl = &c->sec[SEC_ACCOUNT];
	struct config_account	*a;
	cfg_t			*sec = c->cur_sec[SEC_ACCOUNT], *s;
	char			 scope[SCOPE_MAX];
	unsigned		 i;

	if (sec == NULL) {
		/*
		 * No option callback ran (an empty body): the account is
		 * the one that ends where the root's line counter is now.
		 */
		for (i = cfg_opt_size(opt); i-- > 0;) {
			s = cfg_opt_getnsec(opt, i);
			if (s != NULL && s->line == c->root->line &&
			    s->filename != NULL &&
			    strcmp(s->filename, c->root->filename) == 0) {
				sec = s;
				break;
			}
		}
		if (sec == NULL || track(c, sec) == NULL)
			return;
	}
	c->cur_sec[SEC_ACCOUNT] = NULL;

	c->accts = xreallocarray(c->accts, c->naccts + 1, sizeof(*c->accts));
	c->acctfile = xreallocarray(c->acctfile, c->naccts + 1,
	    sizeof(*c->acctfile));
	a = &c->accts[c->naccts];
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(sec->title != NULL ? sec->title : "");
	a->line = sl->start.line;
	c->acctfile[c->naccts] = sl->start.file;
	c->naccts++;

	scope_of(sec, scope, sizeof(scope));
	convert_section(c, sl, sec, a, scope);
	config_check_account(&c->base, sl, a, scope);

	/*
	 * Done with it: drop it from the tree.  Before adding a titled
	 * section libconfuse compares the title with every section it
	 * holds, which is quadratic over thousands of accounts.
	 */
	for (i = cfg_opt_size(opt); i-- > 0;) {
		if (cfg_opt_getnsec(opt, i) == sec) {
			cfg_opt_rmnsec(opt, i);
			break;
		}
	}
}

static int
on_section_end(cfg_t *cfg, cfg_opt_t *opt)
{
	/* global, delivery, milter may repeat: done after all files. */
	if (cur != NULL && opt - cfg->opts == SEC_ACCOUNT)
		account_end(cur, opt);
	return 0;
}

/* The libconfuse option array for one section table. */
static cfg_opt_t *
build_opts(const struct sectab *t)
{
	const struct optdef	*d;
	cfg_opt_t		*o;
	size_t			 i;

	o = xcalloc(t->nopts + 1, sizeof(*o));
	for (i = 0; i < t->nopts; i++) {
		d = &t->opts[i];
		switch (d->kind) {
		case OK_STR:
		case OK_ENUM:
			o[i] = (cfg_opt_t)CFG_STR(d->name, d->def,
			    d->def != NULL ? CFGF_NONE : CFGF_NODEFAULT);
			break;
		case OK_UINT:
			o[i] = (cfg_opt_t)CFG_INT_CB(d->name, d->num,
			    CFGF_NONE, parse_uint);
			break;
		case OK_BOOL:
			o[i] = (cfg_opt_t)CFG_BOOL_CB(d->name,
			    d->num ? cfg_true : cfg_false, CFGF_NONE,
			    parse_bool);
			break;
		case OK_LIST:
			/*
			 * No list defaults: libconfuse would parse them with
			 * our callbacks and they would look set by a file.
			 */
			o[i] = (cfg_opt_t)CFG_STR_LIST(d->name, NULL,
			    CFGF_NONE);
			break;
		}
		o[i].validcb = on_value;
	}
	o[i] = (cfg_opt_t)CFG_END();
	return o;
}

static cfg_t *
schema_init(void)
{
	cfg_opt_t	 root[SEC_COUNT + 2], *sub[SEC_COUNT];
	cfg_t		*cfg;
	int		 k;

	for (k = 0; k < SEC_COUNT; k++) {
		sub[k] = build_opts(&config_sections[k]);
		root[k] = (cfg_opt_t)CFG_SEC(config_sections[k].name, sub[k],
		    k == SEC_ACCOUNT ? CFGF_MULTI | CFGF_TITLE : CFGF_NONE);
		root[k].validcb = on_section_end;
	}
	root[SEC_COUNT] = (cfg_opt_t)CFG_FUNC("include", on_include);
	root[SEC_COUNT + 1] = (cfg_opt_t)CFG_END();
	/* KEYSTRVAL: an unknown key is reported but does not stop parsing. */
	cfg = cfg_init(root, CFGF_KEYSTRVAL);
	for (k = 0; k < SEC_COUNT; k++)
		free(sub[k]);
	if (cfg == NULL)
		fatalx("cfg_init failed");
	cfg_set_error_function(cfg, on_cfg_error);
	return cfg;
}

/*
 * libconfuse keeps its flex scanner in globals: a file that ends inside
 * a string or after a scanner error leaves it in that state for the next
 * file.  Freeing a root cfg_t calls cfg_yylex_destroy(), which resets it;
 * a throwaway root is the only public way there.
 */
static void
lexer_reset(void)
{
	cfg_opt_t	 none[] = { CFG_END() };
	cfg_t		*t;

	if ((t = cfg_init(none, 0)) != NULL)
		cfg_free(t);
}

/* Run libconfuse over one comment-free file held in memory. */
static void
parse_buffer(struct lctx *c, int file, char *buf, size_t len)
{
	struct errmsg	*e;
	FILE		*fp;
	size_t		 before = c->base.nerrs;
	struct loc	 at;
	char		*text;
	int		 rc;

	free(c->root->filename);
	c->root->filename = xstrdup(c->base.files[file]);
	c->cur_file = file;
	c->cur_sec[SEC_ACCOUNT] = NULL;
	c->unknown_cfg = NULL;
	if (len == 0)
		return;
	if ((fp = fmemopen(buf, len, "r")) == NULL)
		fatal("fmemopen");
	rc = cfg_parse_fp(c->root, fp);
	fclose(fp);
	lexer_reset();
	if (rc == CFG_SUCCESS)
		return;
	if (c->base.nerrs == before) {
		at.file = file;
		at.line = 0;
		config_error(&c->base, at, NULL, "syntax error");
		return;
	}
	/* The syntax error is the last message: say what it cost. */
	e = &c->base.errs[c->base.nerrs - 1];
	xasprintf(&text, "%s (the rest of this file was not read)", e->text);
	free(e->text);
	e->text = text;
}

/* A file that cannot be read, reported at the include() naming it. */
static void
open_error(struct lctx *c, const char *path, struct loc from,
    const char *reason)
{
	if (from.file < 0)
		config_error(&c->base, from, NULL, "%s", reason);
	else
		config_error(&c->base, from, NULL, "include: %s: %s", path,
		    reason);
}

static int
add_file(struct lctx *c, const char *path, const struct stat *st)
{
	struct cload	*b = &c->base;
	size_t		 n = b->nfiles;

	b->files = xreallocarray(b->files, n + 2, sizeof(*b->files));
	b->basedirs = xreallocarray(b->basedirs, n + 1, sizeof(*b->basedirs));
	c->ids = xreallocarray(c->ids, n + 1, sizeof(*c->ids));
	b->files[n] = xstrdup(path);
	b->files[n + 1] = NULL;
	b->basedirs[n] = NULL;
	c->ids[n].dev = st->st_dev;
	c->ids[n].ino = st->st_ino;
	b->nfiles++;
	return (int)n;
}

/* Read a whole regular file; NULL (reported) if it cannot be. */
static char *
read_file(struct lctx *c, const char *path, struct loc from, size_t *lenp,
    struct stat *st)
{
	char	*buf, reason[PATH_MAX + 64];
	size_t	 len = 0, cap, i;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1 || fstat(fd, st) == -1) {
		snprintf(reason, sizeof(reason), "cannot open: %s",
		    strerror(errno));
		open_error(c, path, from, reason);
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st->st_mode) || st->st_size > MAX_FILE_SIZE) {
		open_error(c, path, from, S_ISREG(st->st_mode) ?
		    "larger than 64 MiB" : "not a regular file");
		close(fd);
		return NULL;
	}
	for (i = 0; i < c->base.nfiles; i++) {
		if (c->ids[i].dev == st->st_dev &&
		    c->ids[i].ino == st->st_ino) {
			snprintf(reason, sizeof(reason), "already read as %s",
			    c->base.files[i]);
			open_error(c, path, from, reason);
			close(fd);
			return NULL;
		}
	}

	cap = (size_t)st->st_size + 1;
	buf = xmalloc(cap);
	while ((n = read(fd, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len < cap)
			continue;
		if (cap > MAX_FILE_SIZE) {	/* it grew meanwhile */
			n = -1;
			errno = EFBIG;
			break;
		}
		cap *= 2;
		buf = xreallocarray(buf, cap, 1);
	}
	close(fd);
	if (n == -1) {
		snprintf(reason, sizeof(reason), "cannot read: %s",
		    strerror(errno));
		open_error(c, path, from, reason);
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

static void expand_include(struct lctx *, size_t, int);

/*
 * Read, clean and parse one file, then what it includes.  from is the
 * include() that named it (file -1 for the main file).
 */
static void
load_file(struct lctx *c, const char *path, int depth, struct loc from)
{
	struct prescan	 scan;
	struct stat	 st;
	struct loc	 at;
	const char	*nul;
	char		*buf;
	size_t		 len, i, first, last;

	if ((buf = read_file(c, path, from, &len, &st)) == NULL)
		return;
	at.file = add_file(c, path, &st);
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		at.line = config_line_at(buf, (size_t)(nul - buf));
		config_error(&c->base, at, NULL, "NUL byte in file (not read)");
		free(buf);
		return;
	}
	config_prescan(buf, len, &scan);
	if ((at.line = scan.comment_line) != 0)
		config_error(&c->base, at, NULL, "unterminated /* comment");
	if ((at.line = scan.brace_line) != 0)
		config_error(&c->base, at, NULL, "this '{' is never closed");

	first = c->npend;
	parse_buffer(c, at.file, buf, len);
	free(buf);
	last = c->npend;
	for (i = first; i < last; i++)
		expand_include(c, i, depth);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read what include() number i named: its glob matches, sorted. */
static void
expand_include(struct lctx *c, size_t i, int depth)
{
	struct loc	 at = c->pend[i].at;
	glob_t		 g;
	char		*pattern;
	size_t		 k;
	int		 rc;

	if (depth + 1 > MAX_INCLUDE_DEPTH) {
		config_error(&c->base, at, NULL, "include: nested more than "
		    "%d levels deep", MAX_INCLUDE_DEPTH);
		return;
	}
	/* Copied: c->pend moves as the files read add includes. */
	pattern = xstrdup(c->pend[i].pattern);
	if (c->pend[i].literal) {
		load_file(c, pattern, depth + 1, at);
		free(pattern);
		return;
	}
	memset(&g, 0, sizeof(g));
	c->glob_at = at;
	rc = glob(pattern, GLOB_NOSORT, on_glob_error, &g);
	if (rc == 0) {
		/* glob's own order follows the locale; ours must not. */
		qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv), cmp_str);
		for (k = 0; k < g.gl_pathc; k++)
			load_file(c, g.gl_pathv[k], depth + 1, at);
	} else if (rc == GLOB_NOSPACE)
		fatalx("glob: out of memory");
	globfree(&g);
	free(pattern);
}

/* global, delivery, milter: after every file, as blocks may repeat. */
static void
convert_globals(struct lctx *c, struct config *cf)
{
	void	*objs[SEC_ACCOUNT];
	int	 k;

	objs[SEC_GLOBAL] = &cf->global;
	objs[SEC_DELIVERY] = &cf->delivery;
	objs[SEC_MILTER] = &cf->milter;
	for (k = 0; k < SEC_ACCOUNT; k++)
		convert_section(c, &c->sec[k],
		    cfg_getsec(c->root, config_sections[k].name), objs[k],
		    config_sections[k].name);
	config_check_delivery(&c->base, &c->sec[SEC_DELIVERY], &cf->delivery);
}

static int
cmp_err(const void *a, const void *b)
{
	const struct errmsg	*x = a, *y = b;

	if (x->at.file != y->at.file)
		return x->at.file < y->at.file ? -1 : 1;
	if (x->at.line != y->at.line)
		return x->at.line < y->at.line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand the messages over in file order, then line order. */
static void
flush_errors(struct cload *b, struct config_errors *errs)
{
	size_t	 i;

	qsort(b->errs, b->nerrs, sizeof(*b->errs), cmp_err);
	for (i = 0; i < b->nerrs; i++) {
		if (errs == NULL) {
			free(b->errs[i].text);
			continue;
		}
		errs->msgs = xreallocarray(errs->msgs, errs->n + 1,
		    sizeof(*errs->msgs));
		errs->msgs[errs->n++] = b->errs[i].text;
	}
	free(b->errs);
	b->errs = NULL;
	b->nerrs = 0;
}

static void
free_account(struct config_account *a)
{
	config_free_fields(&config_sections[SEC_ACCOUNT], a);
	free(a->name);
	a->name = NULL;
}

static void
free_ctx(struct lctx *c)
{
	size_t	 i;

	for (i = 0; i < c->npend; i++)
		free(c->pend[i].pattern);
	free(c->pend);
	for (i = 0; i < c->base.nfiles; i++) {
		if (c->base.files != NULL)
			free(c->base.files[i]);
		free(c->base.basedirs[i]);
	}
	free(c->base.files);
	free(c->base.basedirs);
	free(c->ids);
	for (i = 0; i < c->naccts; i++)
		free_account(&c->accts[i]);
	free(c->accts);
	free(c->acctfile);
}

struct config *
config_load(const char *path, struct config_errors *errs)
{
	struct lctx	 c;
	struct config	*cf;
	struct loc	 top = { -1, 0 };
	size_t		 i;
	int		 k;

	memset(&c, 0, sizeof(c));
	c.base.mainpath = path;
	for (k = 0; k < SEC_COUNT; k++)
		c.sec[k].tab = &config_sections[k];
	c.root = schema_init();
	cur = &c;
	load_file(&c, path, 0, top);
	cf = xcalloc(1, sizeof(*cf));
	if (c.base.nfiles > 0) {
		config_check_duplicates(&c.base, c.accts, c.acctfile,
		    c.naccts);
		convert_globals(&c, cf);
		config_check_multidrop_route(&c.base, &cf->delivery, c.accts,
		    c.acctfile, c.naccts);
	}
	cur = NULL;
	cfg_free(c.root);

	if (c.base.nerrs > 0 || c.base.nfiles == 0) {
		if (c.base.nerrs == 0)
			config_error(&c.base, top, NULL, "cannot load");
		flush_errors(&c.base, errs);
		config_free(&cf);
		free_ctx(&c);
		return NULL;
	}

	cf->path = xstrdup(path);
	cf->files = c.base.files;
	c.base.files = NULL;
	cf->accounts = c.accts;
	cf->naccounts = c.naccts;
	for (i = 0; i < c.naccts; i++)
		cf->accounts[i].file = cf->files[c.acctfile[i]];
	c.accts = NULL;
	c.naccts = 0;
	free_ctx(&c);
	return cf;
}

void
config_free(struct config **cfp)
{
	struct config	*cf = *cfp;
	size_t		 i;

	if (cf == NULL)
		return;
	config_free_fields(&config_sections[SEC_GLOBAL], &cf->global);
	config_free_fields(&config_sections[SEC_DELIVERY], &cf->delivery);
	free(cf->delivery.envelope_from_address);
	config_free_fields(&config_sections[SEC_MILTER], &cf->milter);
	for (i = 0; i < cf->naccounts; i++)
		free_account(&cf->accounts[i]);
	free(cf->accounts);
	if (cf->files != NULL) {
		for (i = 0; cf->files[i] != NULL; i++)
			free(cf->files[i]);
		free(cf->files);
	}
	free(cf->path);
	free(cf);
	*cfp = NULL;
}

void
config_errors_free(struct config_errors *errs)
{
	size_t	 i;

	for (i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

const struct config_account *
config_find_account(const struct config *cf, const char *name)
{
	size_t	 i;

	for (i = 0; i < cf->naccounts; i++)
		if (strcmp(cf->accounts[i].name, name) == 0)
			return &cf->accounts[i];
	return NULL;
}

unsigned
config_account_port(const struct config_account *a)
{
	if (a->port != 0)
		return a->port;
	if (a->protocol == PROTO_POP3)
		return a->tls == TLS_IMPLICIT ? 995 : 110;
	return a->tls == TLS_IMPLICIT ? 993 : 143;
}
