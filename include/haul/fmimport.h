/* ISC licence; see LICENSE. */
#ifndef HAUL_FMIMPORT_H
#define HAUL_FMIMPORT_H

#include <stddef.h>

#include "haul/fetchmailrc.h"

/*
 * fetchmailrc -> haul.conf conversion for `haulctl import-fetchmail`
 * (ctl/import.c; the command itself is ctl/import_main.c).  Pure: a
 * parsed rc and the parsed .fetchids in, account fragments (text), the
 * passwords and every warning out.  docs/migrating-from-fetchmail.md has
 * the option mapping; the rules that keep mail safe:
 *  - an account is written enabled only if haul will not deliver again
 *    what fetchmail delivered: POP3 with keep needs its UIDs in
 *    .fetchids (they are seeded into the UID store); IMAP with keep
 *    cannot be seeded from fetchmail's state (it uses \Seen flags), so
 *    it is written with enabled = false and a warning;
 *  - nothing is dropped silently: every option haul does not express
 *    gives a warning naming the rc line, in the output and as a comment
 *    in the fragment.
 */

struct fmi_opts {
	const char	*rcname;	/* for messages: "FILE" of FILE:LINE */
	const char	*domain;	/* for bare local names (default "localhost") */
	const char	*login;		/* fetchmail's default user name */
	const struct fmids *ids;	/* may be NULL (no .fetchids) */
	const char	*idsname;	/* for messages */
};

struct fmi_warn {
	unsigned	 line;		/* rc line; 0: none */
	char		*text;
};

struct fmi_account {
	char		*name;		/* haul account name (unique) */
	int		 imap;		/* else POP3 */
	int		 enabled;
	int		 keep;
	unsigned	 line;		/* of the user clause */
	char		*conf;		/* the fragment, ready to write */
	char		*password;	/* NULL: none in the rc (secret) */
	char		*seed_user;	/* .fetchids key (POP3 only), or NULL */
	char		*seed_host;
	size_t		 nseed;		/* matching .fetchids records */
	char		*delivery;	/* this account's delivery, as text */
	struct fmi_warn	*warns;
	size_t		 nwarns;
};

struct fmi_result {
	struct fmi_account *v;
	size_t		 n;
	struct fmi_warn	*warns;		/* set statements, delivery, ids */
	size_t		 nwarns;
	char		*delivery;	/* the delivery { } block to use */
	int		 multidrop;	/* some account needs via_milter */
};

/* Convert every entry.  Returns 0 (the result is filled) or -1 (err). */
int		 fmi_convert(const struct fmrc *, const struct fmi_opts *,
		    struct fmi_result *, char *err, size_t errsz);
void		 fmi_result_free(struct fmi_result *);

/*
 * A haul account name for remote user and server: [A-Za-z0-9._-], at
 * most 64 bytes (a longer one ends in a hash of the whole).  dst must
 * hold 65 bytes.
 */
void		 fmi_account_name(const char *user, const char *host,
		    char dst[65]);

/*
 * The command: argv[0] is "import-fetchmail", then its options; conf is
 * haulctl's -c (NULL: /etc/haul/haul.conf).  Returns the exit status.
 */
int		 import_fetchmail(const char *conf, int argc, char **argv);

#endif
