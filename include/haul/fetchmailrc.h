/* ISC licence; see LICENSE. */
#ifndef HAUL_FETCHMAILRC_H
#define HAUL_FETCHMAILRC_H

#include <stddef.h>

/*
 * A reader for fetchmail's run control file (~/.fetchmailrc) and its UID
 * list (~/.fetchids), for `haulctl import-fetchmail`.  Pure: text in,
 * structs out, no I/O, no globals (ctl/fetchmailrc.c, ctl/fetchids.c).
 *
 * The grammar is fetchmail 6.4's (rcfile_l.l / rcfile_y.y): bare words,
 * "double" or 'single' quoted strings (a quote ends at the next quote of
 * its kind; inside, \n \t \r \b \\ \xHH \0ooo \ddd), # comments, the
 * noise words with/and/has/wants/options and the separators , ; : which
 * mean nothing, `no keep` = `nokeep`, keywords in lower case.  After
 * user, pass(word), is, to and = the next word is a name even if it is
 * a keyword.  `set` statements, one `defaults` entry (before any poll),
 * `poll`/`skip` entries with server options, then user clauses with
 * their options; a poll with no user clause has one implicit user.
 *
 * The parse keeps options as (keyword, values, line): the converter
 * decides what each means for haul, so nothing is dropped on the way.
 */

#define FMRC_FILE_MAX	(16 * 1024 * 1024)	/* bytes of rc text */
#define FMRC_TOKEN_MAX	8192			/* bytes of one word/string */
#define FMRC_VALUES_MAX	1024			/* values of one option */
#define FMRC_ENTRIES_MAX 100000			/* accounts in one file */

/* One option as written: "no keep", "port 995", "folder a b". */
struct fmrc_opt {
	const char	*key;		/* canonical keyword (static) */
	int		 neg;		/* written with "no" */
	char		**vals;		/* nvals strings (numbers as text) */
	size_t		 nvals;
	unsigned	 line;
};

struct fmrc_optlist {
	struct fmrc_opt	*v;
	size_t		 n;
};

/* A local name of an is/to clause: "name" or "remote = local". */
struct fmrc_local {
	char		*name;		/* local name (or the remote one if to) */
	char		*to;		/* NULL, or the local name of "a = b" */
};

/*
 * One account: a poll (or skip) entry times one user clause.  Options
 * are searched last-first in user, then server, then defaults, so the
 * most specific setting wins, as in fetchmail.
 */
struct fmrc_entry {
	char		*pollname;
	int		 skip;		/* a `skip` entry */
	unsigned	 line;		/* of the poll keyword */
	unsigned	 uline;		/* of the user clause (line if implicit) */
	char		*remote;	/* remote user name; NULL: implicit */
	struct fmrc_local *locals;	/* is/to names */
	size_t		 nlocals;
	int		 wildcard;	/* "is *" */
	struct fmrc_optlist server;	/* shared by the poll's users (copy) */
	struct fmrc_optlist user;
	const struct fmrc_optlist *defaults;	/* borrowed from struct fmrc */
};

struct fmrc {
	struct fmrc_optlist set;	/* `set` statements */
	struct fmrc_optlist defaults;	/* the `defaults` entry, merged */
	unsigned	 defaults_line;	/* 0: none */
	struct fmrc_entry *entries;
	size_t		 nentries;
};

/*
 * Parse len bytes of rc text.  Returns a parse (free with fmrc_free), or
 * NULL with "LINE: reason" in err (err[0..errsz) always terminated).
 * Like fetchmail, the first syntax error stops the parse.
 */
struct fmrc	*fmrc_parse(const char *text, size_t len, char *err,
		    size_t errsz);
void		 fmrc_free(struct fmrc **);

/*
 * The most specific setting of key for e (user, then server, then
 * defaults), or NULL.  For `set` options pass e = NULL and rc.
 */
const struct fmrc_opt *fmrc_get(const struct fmrc *, const struct fmrc_entry *,
		    const char *key);
/* 1 if key is set and not negated ("keep" vs "no keep"/unset). */
int		 fmrc_flag(const struct fmrc *, const struct fmrc_entry *,
		    const char *key);
/* The first value of key, or NULL. */
const char	*fmrc_str(const struct fmrc *, const struct fmrc_entry *,
		    const char *key);

/* Call cb for every option of e (defaults, server, user), in order. */
typedef void	(*fmrc_opt_cb)(const struct fmrc_opt *, int scope, void *arg);
#define FMRC_SCOPE_DEFAULTS	0
#define FMRC_SCOPE_SERVER	1
#define FMRC_SCOPE_USER		2
void		 fmrc_each(const struct fmrc_entry *, fmrc_opt_cb, void *arg);

/*
 * ~/.fetchids: one "remote@queryname UID" per line, written by fetchmail
 * for POP3 mailboxes it read and left on the server (keep).  queryname
 * is the poll's `via` host if it has one, else the poll name.  The
 * user@host token is split at its last '@' (user names may hold '@');
 * the UID ends at the next blank.  Lines that do not have this shape are
 * counted in bad and otherwise ignored, as fetchmail does.
 */
struct fmids_rec {
	char		*user;
	char		*host;
	char		*uid;
	unsigned	 line;
};

struct fmids {
	struct fmids_rec *v;
	size_t		 n;
	size_t		 bad;		/* lines that were not records */
	unsigned	 first_bad;	/* line of the first of them */
};

/* Parse len bytes; never fails on content (bad lines are counted). */
void		 fmids_parse(const char *text, size_t len, struct fmids *out);
void		 fmids_free(struct fmids *);
/*
 * Call cb for each record of (user, host), compared without regard to
 * ASCII case (as fetchmail does).  Returns the number of matches.
 */
size_t		 fmids_each(const struct fmids *, const char *user,
		    const char *host, void (*cb)(const struct fmids_rec *,
		    void *), void *arg);

#endif
