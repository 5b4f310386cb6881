/* ISC licence; see LICENSE. */
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/dns.h>

#include "haul/clock.h"
#include "haul/conn.h"
#include "haul/control.h"
#include "haul/deliver.h"
#include "haul/engine.h"
#include "haul/imap_session.h"
#include "haul/lda.h"
#include "haul/log.h"
#include "haul/metrics_http.h"
#include "haul/pop3_session.h"
#include "haul/priv.h"
#include "haul/reload.h"
#include "haul/sched.h"
#include "haul/secret.h"
#include "haul/store.h"
#include "haul/str.h"
#include "haul/tls.h"
#include "haul/xmalloc.h"

/* Event priorities: group commit runs after everything else in a turn. */
#define PRIO_NORMAL	1
#define PRIO_COMMIT	2
#define PRIO_COUNT	3

static void	account_schedule(struct account *, uint64_t delay_ms);
static void	session_start(struct account *);
static void	secret_done(void *, int);
static void	commit_cb(evutil_socket_t, short, void *);
static void	retired(struct account *);

static struct host_load *
host_load(struct engine *e, const char *host)
{
	size_t	 i;

	for (i = 0; i < e->nhosts; i++)
		if (strcasecmp(e->hosts[i].host, host) == 0)
			return &e->hosts[i];
	e->hosts = xreallocarray(e->hosts, e->nhosts + 1, sizeof(*e->hosts));
	e->hosts[e->nhosts].host = xstrdup(host);
	e->hosts[e->nhosts].active = 0;
	return &e->hosts[e->nhosts++];
}

static void
host_release(struct account *a)
{
	struct host_load *h;

	if (!a->host_slot)
		return;
	a->host_slot = 0;
	h = host_load(a->eng, a->cf->host);
	sched_host_leave(&h->active);
}

void
engine_account_idle(struct account *a)
{
	host_release(a);
}

static void
account_run(evutil_socket_t fd, short ev, void *arg)
{
	struct account	*a = arg;
	struct engine	*e = a->eng;

	if (a->retiring) {
		/* Its session has ended (see engine_session_done). */
		retired(a);
		return;
	}
	if (e->stopping || a->state == ACCT_RUNNING ||
	    a->state == ACCT_DISABLED || a->paused || a->waits_for != NULL)
		return;
	if (!engine_store_ok(e)) {
		account_schedule(a, 10000);
		return;
	}
	{
		struct host_load *h = host_load(e, a->cf->host);
		uint64_t	 wait;

		/* At the host's cap: try again shortly; not a failure. */
		if (!sched_host_admit(&h->active,
		    e->cf->global.max_connections_per_host, &wait,
		    sched_rng_default)) {
			account_schedule(a, wait);
			return;
		}
		a->host_slot = 1;
	}
	a->state = ACCT_RUNNING;
	a->progress_done = a->progress_total = 0;
	a->last_attempt = clock_wall();
	a->sessions++;
	a->session_start_ms = clock_mono_ms();
	if (a->cf->password_command != NULL) {
		/* The command runs while the loop serves everyone else. */
		if ((a->sreq = secret_fetch(e->base, a->cf, &a->secret,
		    secret_done, a)) == NULL)
			engine_session_done(a, ERR_LOCAL,
			    "cannot run password_command");
		return;
	}
	if (secret_get(a->cf, &a->secret) == -1) {
		engine_session_done(a, ERR_CONFIG, "cannot read the secret");
		return;
	}
	session_start(a);
}

/* The secret is in a->secret: start the protocol session(s). */
static void
session_start(struct account *a)
{
	int	 r;

	r = a->cf->protocol == PROTO_IMAP ? imap_account_start(a) :
	    pop3_session_start(a);
	/* Sessions took their copies. */
	buf_free_secret(&a->secret);
	if (r == -1)
		engine_session_done(a, ERR_LOCAL, "cannot start a session");
}

static void
secret_done(void *arg, int ok)
{
	struct account	*a = arg;

	a->sreq = NULL;
	if (!ok) {
		engine_session_done(a, ERR_CONFIG, "password_command failed");
		return;
	}
	session_start(a);
}

static void
account_schedule(struct account *a, uint64_t delay_ms)
{
	struct timeval	 tv;

	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	a->next_run_ms = clock_mono_ms() + delay_ms;
	evtimer_add(a->timer, &tv);
}

static int
all_idle(const struct engine *e)
{
	size_t	 i;

	if (e->nretiring > 0)
		return 0;
	for (i = 0; i < e->naccounts; i++)
		if (e->accounts[i]->state == ACCT_RUNNING)
			return 0;
	return 1;
}

void
engine_session_done(struct account *a, enum err_class cls, const char *why)
{
	struct engine	*e = a->eng;
	uint64_t	 delay;
	char		 reason[sizeof(a->last_error)];

	/* why may point into the session, which goes now. */
	str_lcpy(reason, why != NULL ? why : "", sizeof(reason));
	why = reason;
	pop3_session_free(&a->pop3);
	imap_account_free(&a->imap);
	host_release(a);
	a->idle_connected = 0;
	a->state = ACCT_WAITING;
	if (a->session_start_ms != 0)
		hist_observe(&a->lat_session, clock_mono_ms() -
		    a->session_start_ms);
	a->session_start_ms = 0;
	if (cls != ERR_NONE && (size_t)cls < sizeof(a->errors) /
	    sizeof(a->errors[0]))
		a->errors[cls]++;
	if (a->retiring) {
		/* Freed from its own timer, not under the session's feet. */
		if (cls != ERR_NONE)
			log_info(a->cf->name, "reload: the old session ended: "
			    "%s", why);
		account_schedule(a, 0);
		return;
	}
	/* Counts failures in a row (a success resets); LOGIN-DELAY floor. */
	delay = sched_after_session(cls, &a->failures, a->cf->poll_interval,
	    e->cf->delivery.retry_min, e->cf->delivery.retry_max,
	    a->min_delay_s, sched_rng_default);
	if (cls == ERR_NONE) {
		a->last_class = ERR_NONE;
		a->last_error[0] = '\0';
		a->last_success = clock_wall();
	} else {
		a->last_class = cls;
		str_lcpy(a->last_error, why != NULL ? why : "",
		    sizeof(a->last_error));
		a->state = ACCT_BACKOFF;
		if (sched_alerts(cls))
			log_warnx(a->cf->name, "ALERT: the server refused the "
			    "credentials; backing off %llus so the provider "
			    "does not lock the account",
			    (unsigned long long)delay / 1000);
		else
			log_warnx(a->cf->name, "%s error (%u in a row), retry "
			    "in %llus: %s", err_class_name(cls), a->failures,
			    (unsigned long long)delay / 1000, a->last_error);
	}
	if (e->oneshot && !e->stopping) {
		size_t	 i;

		if (cls != ERR_NONE)
			e->exit_code = 1;
		a->state = cls == ERR_NONE ? ACCT_WAITING : ACCT_BACKOFF;
		a->ran_once = 1;
		/* Accounts still waiting (e.g. for a host slot) keep us. */
		for (i = 0; i < e->naccounts; i++)
			if (e->accounts[i]->state != ACCT_DISABLED &&
			    !e->accounts[i]->ran_once)
				return;
		/* Record the last acceptances before leaving. */
		commit_cb(-1, 0, e);
		event_base_loopexit(e->base, NULL);
		return;
	}
	if (e->stopping) {
		if (all_idle(e))
			event_base_loopexit(e->base, NULL);
		return;
	}
	account_schedule(a, delay);
}

int
engine_fetch_now(struct account *a)
{
	if (a->state == ACCT_RUNNING || a->state == ACCT_DISABLED ||
	    a->eng->stopping)
		return -1;
	evtimer_del(a->timer);
	account_schedule(a, 0);
	return 0;
}

void
engine_pause(struct account *a, int on)
{
	a->paused = on;
	if (on) {
		evtimer_del(a->timer);
		/* An IDLE session never ends by itself: end it now. */
		if (a->imap != NULL)
			imap_account_stop(a->imap);
	}
	else if (a->state != ACCT_RUNNING && a->state != ACCT_DISABLED)
		account_schedule(a, 0);
}

void
engine_want_commit(struct engine *e)
{
	event_active(e->ev_commit, EV_TIMEOUT, 0);
}

int
engine_store_ok(const struct engine *e)
{
	return e->store != NULL && !store_broken(e->store);
}

/* Reopen the store after a failed commit: nothing is trusted before. */
static void
store_reopen(struct engine *e)
{
	struct buf	 err = BUF_INIT;

	store_close(&e->store);
	if ((e->store = store_open(e->cf->global.state_dir, &err)) == NULL)
		log_warnx(NULL, "cannot reopen the UID store: %s; retrying",
		    err.data);
	buf_free(&err);
}

static void
commit_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct engine	*e = arg;
	size_t		 i;
	int		 ok;

	if (e->store == NULL) {
		store_reopen(e);
		return;
	}
	if (!store_pending(e->store) && !store_broken(e->store))
		ok = 1;
	else
		ok = store_commit(e->store) == 0;
	/* Retiring accounts too: their last deliveries await this. */
	for (i = 0; i < e->naccounts + e->nretiring; i++) {
		struct account *a = i < e->naccounts ? e->accounts[i] :
		    e->retiring[i - e->naccounts];

		if (a->pop3 != NULL) {
			if (ok)
				pop3_session_durable(a->pop3);
			else
				pop3_session_store_failed(a->pop3);
		}
		if (a->imap != NULL) {
			if (ok)
				imap_account_durable(a->imap);
			else
				imap_account_store_failed(a->imap);
		}
	}
	if (!ok) {
		log_warnx(NULL, "the UID store could not commit; nothing it "
		    "held unsaved is deleted on any server");
		store_reopen(e);
	}
}

static void
shutdown_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct engine	*e = arg;

	log_warnx(NULL, "shutdown timeout: abandoning sessions still "
	    "running (nothing unrecorded is deleted)");
	event_base_loopexit(e->base, NULL);
}

/*
 * Stop an account's work the way shutdown does: no new poll, a password
 * command is abandoned, sessions finish the deliveries under way (and
 * delete only what the store holds durably), then log out.
 */
static void
account_stop(struct account *a)
{
	evtimer_del(a->timer);
	if (a->sreq != NULL) {
		secret_cancel(&a->sreq);
		buf_free_secret(&a->secret);
		a->state = ACCT_WAITING;
		host_release(a);
	}
	if (a->pop3 != NULL)
		pop3_session_stop(a->pop3);
	if (a->imap != NULL)
		imap_account_stop(a->imap);
}

static void
account_free(struct account *a)
{
	secret_cancel(&a->sreq);
	buf_free_secret(&a->secret);
	pop3_session_free(&a->pop3);
	imap_account_free(&a->imap);
	if (a->timer != NULL)
		event_free(a->timer);
	if (a->successor != NULL)
		a->successor->waits_for = NULL;
	if (a->waits_for != NULL)
		a->waits_for->successor = NULL;
	if (a->own_cf != NULL) {
		config_account_clear(a->own_cf);
		free(a->own_cf);
	}
	free(a);
}

struct account *
engine_account_new(struct engine *e, const struct config_account *cf)
{
	struct account	*a;

	a = xcalloc(1, sizeof(*a));
	a->eng = e;
	a->cf = cf;
	a->timer = evtimer_new(e->base, account_run, a);
	a->state = cf->enabled ? ACCT_WAITING : ACCT_DISABLED;
	return a;
}

void
engine_account_begin(struct account *a, uint64_t delay_ms)
{
	uint64_t	 now = clock_mono_ms();

	/*
	 * A backoff carried over from the account this one replaces still
	 * holds: a changed setting must not re-poll an account that a
	 * provider is about to lock for failed logins.
	 */
	if (a->failures > 0 && a->next_run_ms > now &&
	    a->next_run_ms - now > delay_ms)
		delay_ms = a->next_run_ms - now;
	if (a->state == ACCT_WAITING && a->waits_for == NULL &&
	    !a->eng->stopping)
		account_schedule(a, delay_ms);
}

void
engine_account_carry(struct account *to, const struct account *from)
{
	to->delivered = from->delivered;
	to->refused = from->refused;
	to->bytes = from->bytes;
	to->sessions = from->sessions;
	to->last_success = from->last_success;
	to->last_attempt = from->last_attempt;
	memcpy(to->errors, from->errors, sizeof(to->errors));
	to->lat_delivery = from->lat_delivery;
	to->lat_session = from->lat_session;
	to->lat_push = from->lat_push;
	to->paused = from->paused;
	/* Backoff and alerts: engine_account_begin honours next_run_ms. */
	to->failures = from->failures;
	to->last_class = from->last_class;
	memcpy(to->last_error, from->last_error, sizeof(to->last_error));
	to->min_delay_s = from->min_delay_s;
	to->next_run_ms = from->failures > 0 ? from->next_run_ms : 0;
}

void
engine_account_repoint(struct account *a, const struct config_account *cf)
{
	a->cf = cf;
	if (a->pop3 != NULL)
		pop3_session_set_cf(a->pop3, cf);
	if (a->imap != NULL)
		imap_account_set_cf(a->imap, cf);
	/*
	 * A password command under way holds the old settings: abandon it
	 * and poll again in a moment (no session has started yet).
	 */
	if (a->sreq != NULL) {
		secret_cancel(&a->sreq);
		buf_free_secret(&a->secret);
		host_release(a);
		a->state = ACCT_WAITING;
		a->sessions--;
		a->session_start_ms = 0;
		if (!a->retiring)
			account_schedule(a, 1000);
	}
}

int
engine_account_retire(struct account *a, struct config_account *cf_own)
{
	struct engine	*e = a->eng;

	a->retiring = 1;
	a->own_cf = cf_own;
	engine_account_repoint(a, cf_own);
	account_stop(a);
	if (a->state != ACCT_RUNNING) {
		account_free(a);
		return 0;
	}
	e->retiring = xreallocarray(e->retiring, e->nretiring + 1,
	    sizeof(*e->retiring));
	e->retiring[e->nretiring++] = a;
	return 1;
}

/* A retiring account's session has ended: let its successor start. */
static void
retired(struct account *a)
{
	struct engine	*e = a->eng;
	struct account	*next = a->successor;
	size_t		 i;

	for (i = 0; i < e->nretiring; i++)
		if (e->retiring[i] == a) {
			e->retiring[i] = e->retiring[--e->nretiring];
			break;
		}
	log_debug(a->cf->name, "old session ended");
	/* What the old session did since the reload counts too. */
	if (next != NULL)
		engine_account_carry(next, a);
	account_free(a);
	if (next != NULL)
		engine_account_begin(next, sched_first_delay_ms(
		    next->cf->poll_interval, sched_rng_default));
	if (e->stopping && all_idle(e))
		event_base_loopexit(e->base, NULL);
}

static void
stop_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct engine	*e = arg;
	struct timeval	 tv;
	size_t		 i;

	if (e->stopping) {
		log_notice(NULL, "second signal: exiting now");
		event_base_loopexit(e->base, NULL);
		return;
	}
	log_notice(NULL, "signal %d: stopping", (int)sig);
	e->stopping = 1;
	tv.tv_sec = e->cf->global.shutdown_timeout;
	tv.tv_usec = 0;
	evtimer_add(e->ev_shutdown, &tv);
	for (i = 0; i < e->naccounts; i++)
		account_stop(e->accounts[i]);
	if (all_idle(e))
		event_base_loopexit(e->base, NULL);
}

static void
hup_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct engine	*e = arg;
	struct buf	 out = BUF_INIT;

	if (e->stopping || e->oneshot) {
		log_notice(NULL, "SIGHUP: ignored while %s", e->stopping ?
		    "stopping" : "polling once");
		return;
	}
	/* engine_reload() logs the outcome itself. */
	engine_reload(e, &out);
	buf_free(&out);
}

static void
chld_cb(evutil_socket_t sig, short ev, void *arg)
{
	lda_reap();
}

/* A private directory: 1 if we created it, 0 if it was there, -1. */
static int
make_dir(const char *path)
{
	struct stat	 st;
	int		 created = 1;

	if (mkdir(path, 0700) == -1) {
		if (errno != EEXIST)
			return -1;
		created = 0;
	}
	if (lstat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return created;
}

struct engine *
engine_new(struct config *cf, int oneshot)
{
	struct event_config *ec;
	struct engine	*e;
	struct buf	 err = BUF_INIT;
	struct priv_ids	 ids;
	size_t		 i;
	int		 created;

	e = xcalloc(1, sizeof(*e));
	e->cf = cf;
	e->oneshot = oneshot;
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Started as root, we open what needs root (the key, the control
	 * socket, the metrics listener, the state directory given to the
	 * user), then become the user before the store and anything a
	 * server or an MTA can influence.
	 */
	if (priv_setup(cf->global.user, cf->global.group, "user", &ids,
	    &err) == -1) {
		log_warnx(NULL, "%s", err.data);
		goto fail;
	}
	if ((created = make_dir(cf->global.state_dir)) == -1) {
		log_warn(NULL, "state_dir %s", cf->global.state_dir);
		goto fail;
	}
	if (priv_own_dir(&ids, cf->global.state_dir, created, &err) == -1) {
		log_warnx(NULL, "state_dir: %s", err.data);
		goto fail;
	}
	if (key_load(cf->global.key_file, &e->key, &err) == -1) {
		if (cf->delivery.via_milter) {
			log_warnx(NULL, "via_milter needs the signing key: %s",
			    err.data);
			goto fail;
		}
		log_notice(NULL, "no signing key (%s): messages carry no "
		    "X-Haul-Token", err.data);
		key_free(&e->key);
		e->key.len = 0;
	}

	ec = event_config_new();
	e->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (e->base == NULL) {
		log_warnx(NULL, "cannot create the event loop");
		goto fail;
	}
	event_base_priority_init(e->base, PRIO_COUNT);
	e->dns = evdns_base_new(e->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	conn_set_dns(e->dns);
	conn_set_tls_limit(cf->global.max_tls_handshakes);
	if ((e->dlv = dlv_new(e->base, &cf->delivery)) == NULL)
		goto fail;

	e->ev_commit = event_new(e->base, -1, 0, commit_cb, e);
	event_priority_set(e->ev_commit, PRIO_COMMIT);
	e->ev_shutdown = evtimer_new(e->base, shutdown_cb, e);
	e->ev_term = evsignal_new(e->base, SIGTERM, stop_cb, e);
	e->ev_int = evsignal_new(e->base, SIGINT, stop_cb, e);
	e->ev_chld = evsignal_new(e->base, SIGCHLD, chld_cb, e);
	e->ev_hup = evsignal_new(e->base, SIGHUP, hup_cb, e);
	event_add(e->ev_hup, NULL);
	event_add(e->ev_term, NULL);
	event_add(e->ev_int, NULL);
	event_add(e->ev_chld, NULL);

	e->accounts = xcalloc(cf->naccounts, sizeof(*e->accounts));
	if (!oneshot && cf->global.control_socket != NULL &&
	    cf->global.control_socket[0] != '\0' && (e->ctl = control_new(e, cf->global.control_socket,
	    cf->global.control_socket_mode, cf->global.control_group)) ==
	    NULL)
		goto fail;
	if (!oneshot && cf->global.metrics_listen != NULL &&
	    (e->mhttp = metrics_http_new(e, cf->global.metrics_listen)) ==
	    NULL)
		goto fail;
	buf_reset(&err);
	if (priv_drop(&ids, &err) == -1) {
		log_warnx(NULL, "cannot drop privileges: %s", err.data);
		goto fail;
	}
	if (ids.plan == PRIV_DROP)
		log_info(NULL, "running as user %s (uid %u, gid %u)", ids.user,
		    (unsigned)ids.uid, (unsigned)ids.gid);
	/* As the user: store.c wants files owned by whoever runs it. */
	xasprintf(&e->spool_dir, "%s/spool", cf->global.state_dir);
	if (make_dir(e->spool_dir) == -1) {
		log_warn(NULL, "spool directory %s", e->spool_dir);
		goto fail;
	}
	lda_set_tmpdir(e->spool_dir);
	buf_reset(&err);
	if ((e->store = store_open(cf->global.state_dir, &err)) == NULL) {
		log_warnx(NULL, "cannot open the UID store: %s", err.data);
		goto fail;
	}
	for (i = 0; i < cf->naccounts; i++)
		e->accounts[e->naccounts++] = engine_account_new(e,
		    &cf->accounts[i]);
	buf_free(&err);
	return e;
fail:
	buf_free(&err);
	engine_free(&e);
	return NULL;
}

static int
all_waiting_disabled(const struct engine *e)
{
	size_t	 i;

	for (i = 0; i < e->naccounts; i++)
		if (e->accounts[i]->state != ACCT_DISABLED)
			return 0;
	return 1;
}

int
engine_run(struct engine *e)
{
	size_t	 i;

	log_info(NULL, "hauld %s started: %zu accounts", HAUL_VERSION,
	    e->naccounts);
	for (i = 0; i < e->naccounts; i++) {
		struct account *a = e->accounts[i];

		if (a->state == ACCT_WAITING)
			account_schedule(a, e->oneshot ? 0 : sched_first_delay_ms(
			    a->cf->poll_interval, sched_rng_default));
	}
	if (e->oneshot && all_waiting_disabled(e))
		return 0;
	event_base_dispatch(e->base);
	/* Whatever was accepted is recorded before we go. */
	if (e->store != NULL && store_pending(e->store))
		store_commit(e->store);
	log_info(NULL, "hauld stopped");
	return e->exit_code;
}

void
engine_free(struct engine **ep)
{
	struct engine	*e = *ep;
	size_t		 i;

	if (e == NULL)
		return;
	*ep = NULL;
	for (i = 0; i < e->naccounts; i++)
		account_free(e->accounts[i]);
	free(e->accounts);
	for (i = 0; i < e->nretiring; i++)
		account_free(e->retiring[i]);
	free(e->retiring);
	for (i = 0; i < e->nhosts; i++)
		free(e->hosts[i].host);
	free(e->hosts);
	control_free(&e->ctl);
	metrics_http_free(&e->mhttp);
	dlv_free(&e->dlv);
	if (e->ev_commit != NULL)
		event_free(e->ev_commit);
	if (e->ev_shutdown != NULL)
		event_free(e->ev_shutdown);
	if (e->ev_term != NULL)
		event_free(e->ev_term);
	if (e->ev_int != NULL)
		event_free(e->ev_int);
	if (e->ev_chld != NULL)
		event_free(e->ev_chld);
	if (e->ev_hup != NULL)
		event_free(e->ev_hup);
	if (e->dns != NULL)
		evdns_base_free(e->dns, 0);
	if (e->base != NULL)
		event_base_free(e->base);
	store_close(&e->store);
	key_free(&e->key);
	tls_shutdown();
	free(e->spool_dir);
	config_free(&e->cf);
	free(e);
}
