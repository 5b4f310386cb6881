/* ISC licence; see LICENSE. */
#ifndef HAUL_ENGINE_H
#define HAUL_ENGINE_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/metrics.h"
#include "haul/proto.h"
#include "haul/token.h"

/*
 * hauld's runtime: one event loop, the UID store, the delivery side, and
 * one struct account per configured account.  Sessions (pop3_session.c)
 * run inside it; this file schedules them and owns group commit.
 */

struct store;
struct delivery;
struct pop3_session;
struct imap_account;
struct secret_req;
struct metrics_http;

enum account_state {
	ACCT_WAITING,		/* next poll scheduled */
	ACCT_RUNNING,		/* a session is under way */
	ACCT_BACKOFF,		/* last session failed; retry scheduled */
	ACCT_DISABLED,		/* enabled = no, or cannot work as set up */
};

struct account {
	struct engine		*eng;
	const struct config_account *cf;
	enum account_state	 state;
	struct event		*timer;
	struct pop3_session	*pop3;
	struct imap_account	*imap;
	struct secret_req	*sreq;		/* password_command running */
	struct buf		 secret;	/* for the session starting */
	int			 paused;
	int			 host_slot;	/* counts toward its host's cap */
	int			 ran_once;	/* -1: its one session is over */
	int			 idle_connected;
	unsigned		 progress_done;	/* this session */
	unsigned		 progress_total;
	unsigned		 failures;	/* consecutive */
	enum err_class		 last_class;
	char			 last_error[256];
	time_t			 last_success;
	time_t			 last_attempt;
	uint64_t		 next_run_ms;
	unsigned		 min_delay_s;	/* LOGIN-DELAY from the server */
	/* counters since start */
	uint64_t		 delivered, refused, bytes, sessions;
	uint64_t		 errors[ERR_LOCAL + 1];	/* sessions failed, by class */
	uint64_t		 session_start_ms;
	struct hist		 lat_delivery;	/* fetched -> MTA accepted */
	struct hist		 lat_session;	/* one session, start to end */
	struct hist		 lat_push;	/* IMAP EXISTS in IDLE -> accepted */
	/*
	 * Reload: a removed or changed account is retired (its session
	 * stops like at shutdown) and owns its settings (own_cf) until it
	 * has ended.  The account that replaces a changed one waits for it,
	 * so one mailbox never has two sessions at once.
	 */
	int			 retiring;
	struct config_account	*own_cf;
	struct account		*successor;	/* waits for this one */
	struct account		*waits_for;	/* retiring predecessor */
};

/* Sessions (not idle connections) under way per upstream host. */
struct host_load {
	char			*host;
	unsigned		 active;
};

struct engine {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct config		*cf;
	struct store		*store;
	struct haul_key		 key;
	struct delivery		*dlv;
	struct control		*ctl;
	struct metrics_http	*mhttp;		/* metrics_listen, or NULL */
	struct account	       **accounts;	/* in configuration order */
	size_t			 naccounts;
	struct account	       **retiring;	/* removed, session ending */
	size_t			 nretiring;
	struct host_load	*hosts;
	size_t			 nhosts;
	char			*spool_dir;
	struct event		*ev_term, *ev_int, *ev_chld, *ev_hup, *ev_commit;
	struct event		*ev_shutdown;
	int			 stopping;
	int			 oneshot;	/* -1: each account once */
	int			 commit_failed;
	int			 exit_code;
};

/*
 * Set up everything that can fail at start (store, key, spool directory)
 * and print the reason if it does.  Returns NULL on failure.  Takes
 * ownership of cf.  oneshot: poll each account once and stop (no control
 * socket).
 */
struct engine	*engine_new(struct config *cf, int oneshot);
/* Run until SIGTERM/SIGINT and every session has ended; exit status. */
int		 engine_run(struct engine *);
void		 engine_free(struct engine **);

/* Ask for a group commit at the end of this loop iteration. */
void		 engine_want_commit(struct engine *);
/* A session ended: schedule the account's next run (or its backoff). */
void		 engine_session_done(struct account *, enum err_class,
		    const char *why);
/* Poll now: -1 if a session is running or the account is disabled. */
int		 engine_fetch_now(struct account *);
/* Stop (1) or restart (0) scheduling an account. */
void		 engine_pause(struct account *, int);
/*
 * Every folder of an IMAP account is idling: its connections stop
 * counting toward the host's max_connections_per_host, which bounds the
 * sessions that log in and fetch, not the ones that wait for push.
 */
void		 engine_account_idle(struct account *);
/* The store is unusable; sessions must not delete anything now. */
int		 engine_store_ok(const struct engine *);

/*
 * For the reload (fetcher/reload.c).  engine_account_new: a new account
 * for cf (borrowed), not yet scheduled.  engine_account_begin: schedule
 * its first poll after delay_ms (unless it is disabled or waits for a
 * retiring predecessor).  engine_account_retire: stop it like at
 * shutdown and free it once its session has ended; cf_own (taken) holds
 * the settings its session still reads.  Returns 1 if it is still
 * running (on e->retiring), 0 if it is gone already.  engine_account_repoint: cf is
 * equal to the account's settings but lives elsewhere now.
 */
struct account	*engine_account_new(struct engine *,
		    const struct config_account *cf);
void		 engine_account_begin(struct account *, uint64_t delay_ms);
/* Counters, histograms, pause and backoff state of from, onto to. */
void		 engine_account_carry(struct account *to,
		    const struct account *from);
int		 engine_account_retire(struct account *,
		    struct config_account *cf_own);
void		 engine_account_repoint(struct account *,
		    const struct config_account *cf);

#endif
