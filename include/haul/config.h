/* ISC licence; see LICENSE. */
#ifndef HAUL_CONFIG_H
#define HAUL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/*
 * haul.conf as plain structs.  The libconfuse cfg_t never leaves
 * lib/config.c: everything else sees only these.  Every string is owned by
 * the struct config and freed by config_free(); a NULL string means "not
 * set".  Lists are NULL-terminated arrays of owned strings.
 */

enum proto { PROTO_POP3, PROTO_IMAP };
enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum auth_mech {
	AUTH_AUTO,		/* best offered: SASL PLAIN, LOGIN, USER/PASS */
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_USER,		/* POP3 USER/PASS, IMAP LOGIN */
	AUTH_APOP,		/* POP3 only, only if configured */
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
};
enum delivery_mode { DELIVER_SMTP, DELIVER_LMTP, DELIVER_LDA };
enum on_error { ON_ERROR_TEMPFAIL, ON_ERROR_ACCEPT };
enum unknown_policy { UNKNOWN_DEFAULT, UNKNOWN_REJECT };
enum envfrom_mode {
	ENVFROM_RETURN_PATH,	/* Return-Path of the message, else <> */
	ENVFROM_NULL,		/* always <> */
	ENVFROM_FIXED,		/* delivery.envelope_from_address */
};
/*
 * What the first session of an IMAP folder the store has never seen
 * takes as already delivered (fetcher/imap_session.c, docs/imap.md).
 */
enum first_fetch {
	FIRST_FETCH_ALL,	/* nothing: fetch every message */
	FIRST_FETCH_UNSEEN,	/* the messages flagged \Seen */
	FIRST_FETCH_NEW,	/* every message present at first contact */
};
/* The queue id of the store records first_fetch writes (no delivery). */
#define FIRST_FETCH_QUEUE_ID	"first_fetch"

struct config_global {
	char		*state_dir;
	char		*key_file;
	char		*previous_key_file;	/* accepted during rotation */
	char		*control_socket;
	unsigned	 control_socket_mode;	/* e.g. 0660 */
	char		*control_group;
	char		*user;			/* drop privileges to */
	char		*group;
	char		*pid_file;
	char		*log_facility;
	int		 log_level;		/* enum log_level */
	char		*metrics_listen;	/* "127.0.0.1:9167" or NULL */
	unsigned	 max_connections_per_host;
	unsigned	 max_tls_handshakes;
	unsigned	 shutdown_timeout;	/* seconds */
	unsigned	 prune_grace_days;
};

struct config_delivery {
	enum delivery_mode mode;
	char		*target;	/* "host:port" or "unix:/path" */
	char	       **lda_command;	/* argv template; %u %a %i */
	char		*helo_name;
	int		 via_milter;
	char		*placeholder_domain;	/* "fetch.invalid" */
	enum envfrom_mode envelope_from;
	char		*envelope_from_address;
	int		 xclient;
	unsigned	 connect_timeout;	/* seconds */
	unsigned	 command_timeout;
	unsigned	 final_timeout;		/* after the final dot: 600 */
	unsigned	 lda_timeout;
	unsigned	 max_connections;
	unsigned	 retry_min;		/* backoff, seconds */
	unsigned	 retry_max;
};

struct config_milter {
	char		*socket;		/* "unix:/path" or "inet:port@host" */
	unsigned	 socket_mode;
	char		*user;
	char		*group;
	enum on_error	 on_error;
	unsigned	 token_max_age;		/* seconds */
	char		*daemon_name;		/* required {daemon_name}, or NULL */
	char		*trace_header;		/* "X-Haul-Trace" */
	unsigned	 timeout;		/* libmilter I/O timeout */
};

struct config_account {
	char		*name;
	const char	*file;		/* where it was defined (owned by config) */
	unsigned	 line;		/* of its opening brace */
	int		 enabled;
	enum proto	 protocol;
	char		*host;
	unsigned	 port;		/* 0 in the file -> protocol/TLS default */
	enum tls_mode	 tls;
	int		 allow_plaintext;
	char		*ca_file;
	char		*fingerprint;	/* normalised lower-case hex, 64 chars */
	enum auth_mech	 auth;
	char		*user;
	char		*password_file;
	char	       **password_command;	/* argv, no shell */
	char	       **folders;		/* IMAP; {"INBOX"} by default */
	int		 idle;
	unsigned	 poll_interval;		/* seconds */
	int		 keep;
	int		 mark_seen;
	enum first_fetch first_fetch;
	unsigned	 delete_after_days;
	char		*move_to;
	int		 allow_expunge_all;
	uint64_t	 max_message_size;	/* bytes */
	unsigned	 max_connections;
	unsigned	 timeout;		/* per command, seconds */
	unsigned	 connect_timeout;
	unsigned	 idle_refresh;		/* seconds, <= 1740 */
	unsigned	 keepalive;		/* dead-peer bound, seconds */
	char	       **deliver_to;
	int		 multidrop;
	char		*multidrop_header;	/* "Delivered-To" */
	unsigned	 multidrop_hop;		/* 1 = topmost header */
	char	       **multidrop_domains;
	char		*multidrop_rewrite_domain;
	char		*multidrop_default;
	enum unknown_policy multidrop_unknown;
	int		 xclient;
};

struct config {
	char		*path;
	char	       **files;		/* every file read, for error context */
	struct config_global	global;
	struct config_delivery	delivery;
	struct config_milter	milter;
	struct config_account  *accounts;
	size_t			naccounts;
};

/*
 * Collected error messages, each "file:line: text".  The loader reports
 * every problem it can find, not just the first.
 */
struct config_errors {
	char	**msgs;
	size_t	  n;
};

/*
 * Load and validate path and every file it include()s.  Returns a config
 * or NULL; on NULL, errs holds at least one message.  Messages are
 * appended to errs (which may be NULL), sorted by file then line.  Not
 * reentrant and not thread-safe: libconfuse's scanner is global state.
 * Relative password_file and ca_file values come back absolute, resolved
 * against the directory of the file that set them; folders is never NULL
 * ({"INBOX"} unless set; POP3 accounts always get {"INBOX"}).
 */
struct config	*config_load(const char *path, struct config_errors *errs);
/* Free everything and set the pointer to NULL; NULL is fine. */
void		 config_free(struct config **);
/* Free the messages and reset errs to empty. */
void		 config_errors_free(struct config_errors *);
/* Find an account by name; NULL if none.  Borrowed pointer. */
const struct config_account *config_find_account(const struct config *,
		    const char *name);
/* Port to connect to: the configured one or the protocol/TLS default. */
unsigned	 config_account_port(const struct config_account *);
/*
 * For a reload (lib/config_equal.c).  Both walk the loader's option
 * tables, so every option is covered without a list to keep up to date.
 *
 * config_account_equal: 1 if the two accounts have the same name and the
 * same value for every option (file and line are where, not what).
 * config_delivery_equal: 1 if every [delivery] option is equal.
 * config_global_diff: the names of the global options that differ, at
 * most max of them into names (borrowed, static); returns how many differ.
 * config_global_swap: exchange the value of one global option between a
 * and b (ownership moves with it); -1 for an unknown name.
 * config_account_clear: free what the account owns and zero it.
 * config_*_field_bytes: the bytes the option tables describe (tests check
 * them against the struct size, so no field escapes the comparison).
 */
int		 config_account_equal(const struct config_account *,
		    const struct config_account *);
int		 config_delivery_equal(const struct config_delivery *,
		    const struct config_delivery *);
size_t		 config_global_diff(const struct config_global *,
		    const struct config_global *, const char **names,
		    size_t max);
int		 config_global_swap(struct config_global *,
		    struct config_global *, const char *name);
/* The same for [delivery] (envelope_from carries its address along). */
size_t		 config_delivery_diff(const struct config_delivery *,
		    const struct config_delivery *, const char **names,
		    size_t max);
int		 config_delivery_swap(struct config_delivery *,
		    struct config_delivery *, const char *name);
void		 config_account_clear(struct config_account *);
size_t		 config_account_field_bytes(void);
size_t		 config_global_field_bytes(void);
size_t		 config_delivery_field_bytes(void);
/* Names for enums (for logs, status, tests). */
const char	*config_proto_name(enum proto);
const char	*config_tls_name(enum tls_mode);
const char	*config_auth_name(enum auth_mech);
const char	*config_delivery_name(enum delivery_mode);
const char	*config_first_fetch_name(enum first_fetch);

#endif
