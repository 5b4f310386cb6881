/* ISC licence; see LICENSE. */
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "haul/clock.h"
#include "haul/conn.h"
#include "haul/deliver.h"
#include "haul/log.h"
#include "haul/killpoint.h"
#include "haul/inject.h"
#include "haul/message.h"
#include "haul/pop3.h"
#include "haul/pop3_session.h"
#include "haul/secret.h"
#include "haul/spool.h"
#include "haul/store.h"
#include "haul/str.h"
#include "haul/token.h"
#include "haul/xmalloc.h"

/* Messages up to this size stay in memory; larger ones spill to disk. */
#define SESSION_SPOOL_MEM	(256 * 1024)

enum msg_state {
	PM_FETCHING,		/* RETR under way */
	PM_DELIVERING,		/* handed to delivery */
	PM_ACCEPTED,		/* MTA said 2xx; waiting for the commit */
	PM_DONE,		/* resolved (deleted, kept or failed) */
};

struct pop3_msg {
	struct pop3_session *s;
	unsigned	 msgno;
	char		 uid[POP3_UID_MAX + 1];
	uint64_t	 listed_size;
	enum msg_state	 state;
	struct spool	*spool;
	struct msgf	*filter;
	struct dlv_job	 job;
	struct origin	 origin;	/* for XCLIENT */
	uint64_t	 seq;		/* store write of the acceptance */
	uint64_t	 started_ms;
	TAILQ_ENTRY(pop3_msg) entry;
};

TAILQ_HEAD(pop3_msgq, pop3_msg);

struct pop3_session {
	struct account	*acct;
	struct engine	*eng;
	const struct config_account *cf;
	struct conn	*conn;
	struct pop3	*p;
	struct buf	 secret;
	int64_t		 mbox;
	time_t		 started;
	struct pop3_msg	*cur;		/* being retrieved */
	struct pop3_msgq msgs;		/* delivering or waiting to commit */
	unsigned	*deleted;	/* msgnos we sent DELE for */
	char	       **deleted_uid;
	size_t		 ndeleted;
	int		 drained;
	int		 finish_sent;
	int		 conn_dead;
	int		 stopping;
	int		 ending;
	int		 listed;	/* the listing was complete */
	enum err_class	 err;
	char		 why[300];
	struct event	*end_ev;
	unsigned	 fetched, delivered, refused, skipped;
};

static void	session_fail(struct pop3_session *, enum err_class,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void	maybe_finish(struct pop3_session *);

static const char *
acct_name(const struct pop3_session *s)
{
	return s->cf->name;
}

static void
flush(struct pop3_session *s)
{
	struct buf	*out;

	if (s->p == NULL || s->conn == NULL || s->conn_dead)
		return;
	out = pop3_output(s->p);
	if (out->len == 0)
		return;
	conn_write(s->conn, out->data, out->len);
	/* Commands may carry credentials: wipe what was sent. */
	explicit_bzero(out->data, out->len);
	buf_reset(out);
	conn_set_idle_timeout(s->conn, s->cf->timeout);
}

/* Keep the operation deadline in step with what the machine awaits. */
static void
track_deadline(struct pop3_session *s, size_t got)
{
	if (s->conn == NULL || s->conn_dead || s->p == NULL)
		return;
	conn_track_progress(s->conn, pop3_waiting(s->p), got,
	    s->cf->timeout);
}

static enum proto_status
feed(void *m, const void *d, size_t n, size_t *used)
{
	return pop3_input(m, d, n, used);
}

static void
msg_release(struct pop3_msg *m)
{
	msgf_free(&m->filter);
	spool_free(&m->spool);
	dlv_job_clear(&m->job);
}

static void
msg_free(struct pop3_session *s, struct pop3_msg *m)
{
	if (m->state == PM_DELIVERING)
		dlv_cancel(s->eng->dlv, &m->job);
	msg_release(m);
	free(m);
}

/* Everything resolved: let the session end (deferred to the loop). */
static void
session_end(struct pop3_session *s)
{
	if (s->ending)
		return;
	s->ending = 1;
	event_active(s->end_ev, EV_TIMEOUT, 0);
}

static int
outstanding(const struct pop3_session *s)
{
	const struct pop3_msg *m;

	TAILQ_FOREACH(m, &s->msgs, entry)
		if (m->state == PM_DELIVERING || m->state == PM_ACCEPTED)
			return 1;
	return 0;
}

static void
session_fail(struct pop3_session *s, enum err_class cls, const char *fmt,
    ...)
{
	va_list	 ap;

	if (s->err == ERR_NONE) {
		s->err = cls;
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
	}
	if (s->p != NULL && !s->conn_dead)
		pop3_abort(s->p);
	flush(s);
	maybe_finish(s);
}

/*
 * The connection is gone or unusable.  Deliveries already under way are
 * left to finish so their acceptance is recorded (no DELE can follow:
 * that is the next session's job), then the session ends.
 */
static void
conn_gone(struct pop3_session *s)
{
	s->conn_dead = 1;
	conn_free(&s->conn);
	if (!outstanding(s))
		session_end(s);
}

static void
maybe_finish(struct pop3_session *s)
{
	if (s->conn_dead) {
		if (!outstanding(s))
			session_end(s);
		return;
	}
	if (s->p == NULL || outstanding(s))
		return;
	if (s->stopping && s->cur != NULL) {
		/*
		 * Shutting down mid-transfer: the message is neither
		 * delivered nor deleted, so dropping the connection loses
		 * nothing (and DELEs not yet committed by a QUIT are simply
		 * sent again next time).
		 */
		msg_free(s, s->cur);
		s->cur = NULL;
		conn_gone(s);
		return;
	}
	if (s->finish_sent)
		return;
	if (s->drained || s->err != ERR_NONE || s->stopping) {
		s->finish_sent = 1;
		pop3_finish(s->p);
		flush(s);
		KILLPOINT("fetch.quit_sent");
	}
}

/* --- delivery ------------------------------------------------------------ */

static void
dlv_done(struct dlv_job *j, const struct dlv_result *r)
{
	struct pop3_msg	*m = j->arg;
	struct pop3_session *s = m->s;
	struct store	*st = s->eng->store;
	const struct msgf_info *info = msgf_info(m->filter);
	uint64_t	 ms = clock_mono_ms() - m->started_ms;

	switch (r->outcome) {
	case DLV_ACCEPTED:
		m->seq = store_accepted(st, s->mbox, m->uid, strlen(m->uid),
		    r->queue_id[0] ? r->queue_id : NULL,
		    info->message_id.text, info->date.text, m->listed_size);
		if (m->seq == 0) {
			/* Not recorded: never delete it; a later session
			 * will deliver it again (duplicate, not loss). */
			m->state = PM_DONE;
			session_fail(s, ERR_LOCAL, "cannot record uid %s as "
			    "delivered", m->uid);
			break;
		}
		m->state = PM_ACCEPTED;
		KILLPOINT("store.accepted");
		s->delivered++;
		s->acct->delivered++;
		s->acct->bytes += info->size;
		hist_observe(&s->acct->lat_delivery, ms);
		log_info(acct_name(s), "delivered uid %s size %llu queue id %s "
		    "delay %llums", m->uid, (unsigned long long)info->size,
		    r->queue_id[0] ? r->queue_id : "-",
		    (unsigned long long)ms);
		engine_want_commit(s->eng);
		break;
	case DLV_REFUSED:
		m->state = PM_DONE;
		s->refused++;
		s->acct->refused++;
		log_warnx(acct_name(s), "the MTA refused uid %s; it stays on "
		    "the server and will not be retried until reset: %s",
		    m->uid, r->text);
		if (store_refused(st, s->mbox, m->uid, strlen(m->uid),
		    r->text) == -1)
			session_fail(s, ERR_LOCAL, "cannot record refusal");
		else
			engine_want_commit(s->eng);
		break;
	case DLV_TEMPFAIL:
		m->state = PM_DONE;
		if (inject_record_done(j, st, s->mbox, m->uid) == 0 &&
		    j->nrcpt_final > 0)
			engine_want_commit(s->eng);
		log_warnx(acct_name(s), "delivery of uid %s failed "
		    "temporarily%s; it stays on the server: %s", m->uid,
		    r->unknown ? " (outcome unknown: a duplicate is "
		    "possible)" : "", r->text);
		/* The MTA is failing: stop fetching, retry later. */
		session_fail(s, ERR_MTA, "delivery failed: %s", r->text);
		break;
	}
	msg_release(m);
	if (m->state == PM_DONE) {
		TAILQ_REMOVE(&s->msgs, m, entry);
		free(m);
	}
	maybe_finish(s);
}

/* Build the envelope and headers and hand the message to delivery. */
static int
submit(struct pop3_session *s, struct pop3_msg *m)
{
	struct inject_src src = { "pop3", "INBOX", 0, m->uid, s->fetched };

	if (inject_build(&m->job, s->eng, s->cf, &src, m->spool,
	    msgf_info(m->filter), &m->origin) == -1)
		return -1;
	m->job.done = dlv_done;
	m->job.arg = m;
	if (inject_skip_done(&m->job, s->eng->store, s->mbox, m->uid) == -1 ||
	    store_injecting(s->eng->store, s->mbox, m->uid, strlen(m->uid),
	    NULL) == -1)
		return -1;
	m->state = PM_DELIVERING;
	m->started_ms = clock_mono_ms();
	dlv_submit(s->eng->dlv, &m->job);
	return 0;
}

/* --- POP3 machine callbacks ------------------------------------------- */

static int
older_than_days(time_t first_seen, unsigned days)
{
	return days > 0 &&
	    clock_wall() - first_seen > (time_t)days * 86400;
}

static void
note_deleted(struct pop3_session *s, unsigned msgno, const char *uid)
{
	s->deleted = xreallocarray(s->deleted, s->ndeleted + 1,
	    sizeof(*s->deleted));
	s->deleted_uid = xreallocarray(s->deleted_uid, s->ndeleted + 1,
	    sizeof(*s->deleted_uid));
	s->deleted[s->ndeleted] = msgno;
	s->deleted_uid[s->ndeleted] = xstrdup(uid);
	s->ndeleted++;
}

static enum pop3_want
cb_want(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	struct pop3_session *s = arg;
	struct store	*st = s->eng->store;
	struct store_msg rec;
	size_t		 ul = strlen(uid);
	int		 r;

	if (s->stopping || s->err != ERR_NONE)
		return POP3_WANT_SKIP;
	KILLPOINT("fetch.listed");
	r = store_get(st, s->mbox, uid, ul, &rec);
	if (r == -1)
		return POP3_WANT_ABORT;
	if (r == STORE_ABSENT) {
		if (store_seen(st, s->mbox, uid, ul, size, clock_wall()) == -1)
			return POP3_WANT_ABORT;
		s->acct->progress_total++;
		return POP3_WANT_FETCH;
	}
	if (store_touch_seen(st, s->mbox, uid, ul, clock_wall()) == -1)
		return POP3_WANT_ABORT;
	switch (rec.state) {
	case STORE_SEEN:
	case STORE_INJECTING:
		s->acct->progress_total++;
		return POP3_WANT_FETCH;
	case STORE_ACCEPTED:
	case STORE_REMOVED:
		/*
		 * Delivered in an earlier session.  A REMOVED UID still
		 * listed means that session's QUIT did not commit.
		 */
		if (!s->cf->keep ||
		    older_than_days(rec.first_seen, s->cf->delete_after_days)) {
			/* The record must be on disk before any DELE. */
			if (store_pending(st) && store_commit(st) == -1)
				return POP3_WANT_ABORT;
			note_deleted(s, msgno, uid);
			return POP3_WANT_DELETE;
		}
		s->skipped++;
		return POP3_WANT_SKIP;
	case STORE_REFUSED:
	case STORE_TOO_BIG:
		s->skipped++;
		return POP3_WANT_SKIP;
	}
	return POP3_WANT_SKIP;
}

static int
cb_too_big(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	struct pop3_session *s = arg;
	struct store_msg rec;

	if (store_get(s->eng->store, s->mbox, uid, strlen(uid), &rec) ==
	    STORE_FOUND && rec.state == STORE_TOO_BIG)
		return 0;
	log_warnx(acct_name(s), "uid %s is %llu bytes, above "
	    "max_message_size %llu; left on the server", uid,
	    (unsigned long long)size,
	    (unsigned long long)s->cf->max_message_size);
	if (store_seen(s->eng->store, s->mbox, uid, strlen(uid), size,
	    clock_wall()) == -1 ||
	    store_too_big(s->eng->store, s->mbox, uid, strlen(uid)) == -1)
		return -1;
	engine_want_commit(s->eng);
	return 0;
}

static int
cb_msg_begin(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	struct pop3_session *s = arg;
	struct pop3_msg	*m;

	m = xcalloc(1, sizeof(*m));
	m->s = s;
	m->msgno = msgno;
	str_lcpy(m->uid, uid, sizeof(m->uid));
	m->listed_size = size;
	m->state = PM_FETCHING;
	m->spool = spool_new(s->eng->spool_dir, SESSION_SPOOL_MEM);
	/* The filter only ever adds line-end bytes: allow for those. */
	if (s->cf->max_message_size > 0)
		spool_set_max(m->spool, s->cf->max_message_size * 2 + 2);
	m->filter = msgf_new(m->spool, NULL);
	KILLPOINT("fetch.begin");
	s->cur = m;
	return 0;
}

static int
cb_msg_data(void *arg, const void *data, size_t len)
{
	struct pop3_session *s = arg;

	if (s->cur == NULL)
		return -1;
	if (msgf_write(s->cur->filter, data, len) == -1) {
		log_warn(acct_name(s), "spool write for uid %s", s->cur->uid);
		return -1;
	}
	return 0;
}

static int
cb_msg_end(void *arg, unsigned msgno, const char *uid)
{
	struct pop3_session *s = arg;
	struct pop3_msg	*m = s->cur;

	s->cur = NULL;
	if (m == NULL)
		return -1;
	if (msgf_finish(m->filter) == -1) {
		log_warn(acct_name(s), "spool for uid %s", uid);
		msg_free(s, m);
		return -1;
	}
	s->fetched++;
	KILLPOINT("fetch.spooled");
	s->acct->progress_done++;
	TAILQ_INSERT_TAIL(&s->msgs, m, entry);
	if (submit(s, m) == -1) {
		TAILQ_REMOVE(&s->msgs, m, entry);
		msg_free(s, m);
		return -1;
	}
	return 0;
}

static int
cb_msg_failed(void *arg, unsigned msgno, const char *uid,
    enum pop3_fail why, const char *text)
{
	struct pop3_session *s = arg;

	if (s->cur != NULL) {
		msg_free(s, s->cur);
		s->cur = NULL;
	}
	if (why == POP3_FAIL_TOO_BIG)
		return cb_too_big(arg, msgno, uid, s->cf->max_message_size + 1);
	log_warnx(acct_name(s), "server refused to send uid %s: %s", uid,
	    text);
	return 0;
}

static int
cb_mailbox(void *arg, unsigned count, uint64_t octets)
{
	struct pop3_session *s = arg;

	s->listed = 1;
	KILLPOINT("fetch.mailbox");
	if (s->cf->keep && pop3_expire(s->p) == 0)
		log_warnx(acct_name(s), "the server announces EXPIRE 0: it "
		    "deletes messages once retrieved, whatever keep says");
	log_debug(acct_name(s), "%u messages, %llu octets", count,
	    (unsigned long long)octets);
	return 0;
}

static void
cb_ambiguous(void *arg, unsigned msgno, const char *uid)
{
	struct pop3_session *s = arg;

	log_warnx(acct_name(s), "message %u shares uid %s with another "
	    "message; neither is fetched or deleted", msgno, uid);
	/* Keep any record of it from being pruned while it is listed. */
	store_touch_seen(s->eng->store, s->mbox, uid, strlen(uid),
	    clock_wall());
}

static void
cb_drained(void *arg)
{
	struct pop3_session *s = arg;

	s->drained = 1;
	maybe_finish(s);
}

static const struct pop3_cb machine_cb = {
	.want = cb_want,
	.msg_begin = cb_msg_begin,
	.msg_data = cb_msg_data,
	.msg_end = cb_msg_end,
	.msg_failed = cb_msg_failed,
	.too_big = cb_too_big,
	.mailbox = cb_mailbox,
	.ambiguous = cb_ambiguous,
	.drained = cb_drained,
};

/* --- connection driver -------------------------------------------------- */

static void
handle_status(struct pop3_session *s, enum proto_status st)
{
	enum err_class	 cls;
	const char	*msg;

	switch (st) {
	case PS_MORE:
		flush(s);
		track_deadline(s, 0);
		break;
	case PS_STARTTLS:
		flush(s);
		if (conn_starttls(s->conn) == -1)
			break;	/* the conn reports the failure */
		break;
	case PS_DONE:
		flush(s);
		conn_gone(s);
		break;
	case PS_ERROR:
		cls = pop3_error(s->p, &msg);
		if (s->err == ERR_NONE) {
			s->err = cls;
			snprintf(s->why, sizeof(s->why), "%s", msg);
		}
		flush(s);
		conn_gone(s);
		break;
	}
}

static void
on_ready(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;
	struct pop3_params pp;

	memset(&pp, 0, sizeof(pp));
	pp.account = s->cf->name;
	pp.host = s->cf->host;
	pp.port = config_account_port(s->cf);
	pp.tls = s->cf->tls;
	pp.allow_plaintext = s->cf->allow_plaintext;
	pp.auth = s->cf->auth;
	pp.user = s->cf->user;
	pp.secret = s->secret.data;
	pp.secret_len = s->secret.len;
	pp.max_message_size = s->cf->max_message_size;
	s->p = pop3_new(&pp, &machine_cb, s);
	KILLPOINT("fetch.connected");
	conn_set_idle_timeout(c, s->cf->timeout);
	track_deadline(s, 0);
}

static void
on_readable(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;
	enum proto_status st;

	if (s->p == NULL)
		return;
	track_deadline(s, evbuffer_get_length(conn_input(c)));
	st = conn_feed(c, feed, s->p);
	/* A STARTTLS reply with bytes behind it is refused by the machine
	 * (and by conn_starttls, which checks the buffer again). */
	handle_status(s, st);
}

static void
on_writable(struct conn *c, void *arg)
{
}

static void
on_tls_ready(struct conn *c, void *arg)
{
	struct pop3_session *s = arg;

	handle_status(s, pop3_tls_started(s->p));
}

static void
on_failed(struct conn *c, void *arg, enum err_class cls, const char *why)
{
	struct pop3_session *s = arg;

	if (s->err == ERR_NONE && !(s->p != NULL &&
	    pop3_state(s->p) == POP3_DONE)) {
		s->err = cls;
		snprintf(s->why, sizeof(s->why), "%s", why);
	}
	if (s->cur != NULL) {
		/* A message cut off mid-transfer is never delivered. */
		msg_free(s, s->cur);
		s->cur = NULL;
	}
	conn_gone(s);
}

static const struct conn_cb conn_callbacks = {
	.ready = on_ready,
	.readable = on_readable,
	.writable = on_writable,
	.tls_ready = on_tls_ready,
	.failed = on_failed,
};

/* --- session end -------------------------------------------------------- */

static void
end_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pop3_session *s = arg;
	struct store	*st = s->eng->store;
	size_t		 i;
	int		 quit_ok = s->p != NULL && pop3_quit_ok(s->p);

	/* QUIT +OK committed the DELEs: record the removals. */
	if (quit_ok && engine_store_ok(s->eng)) {
		KILLPOINT("fetch.delete_committed");
		for (i = 0; i < s->ndeleted; i++)
			if (pop3_dele_ok(s->p, s->deleted[i]))
				store_removed(st, s->mbox, s->deleted_uid[i],
				    strlen(s->deleted_uid[i]));
		/*
		 * Forget UIDs the server stopped listing, after the grace
		 * period.  Every UID listed now was touched during this
		 * session, so cutting below its start minus the touch slack
		 * can never prune a message still on the server.
		 */
		if (s->listed && s->err == ERR_NONE) {
			time_t	 before = s->started -
			    (time_t)s->eng->cf->global.prune_grace_days * 86400 -
			    STORE_TOUCH_SLACK - 60;
			uint64_t n = 0;

			if (store_prune(st, s->mbox, before, &n) == 0 && n > 0)
				log_info(acct_name(s), "forgot %llu uids no "
				    "longer on the server",
				    (unsigned long long)n);
		}
		engine_want_commit(s->eng);
	}
	if (s->p != NULL) {
		long	 ld = pop3_login_delay(s->p);

		if (ld > 0)
			s->acct->min_delay_s = (unsigned)ld;
	}
	log_info(acct_name(s), "session ended: %u fetched, %u delivered, "
	    "%u refused, %zu deleted%s%s", s->fetched, s->delivered,
	    s->refused, quit_ok ? s->ndeleted : 0,
	    s->err != ERR_NONE ? "; error: " : "",
	    s->err != ERR_NONE ? s->why : "");
	engine_session_done(s->acct, s->err, s->why);
}

int
pop3_session_start(struct account *acct)
{
	struct pop3_session *s;
	struct conn_params cp;
	const struct config_account *cf = acct->cf;
	struct store	*st = acct->eng->store;

	s = xcalloc(1, sizeof(*s));
	s->acct = acct;
	s->eng = acct->eng;
	s->cf = cf;
	s->started = clock_wall();
	TAILQ_INIT(&s->msgs);
	s->end_ev = event_new(s->eng->base, -1, 0, end_cb, s);
	if (store_mailbox(st, cf->name, STORE_POP3_FOLDER,
	    STORE_POP3_UIDVALIDITY, &s->mbox) == -1) {
		pop3_session_free(&s);
		return -1;
	}
	secret_copy(&s->secret, &acct->secret);
	memset(&cp, 0, sizeof(cp));
	cp.account = cf->name;
	cp.host = cf->host;
	cp.port = config_account_port(cf);
	cp.tls = cf->tls == TLS_IMPLICIT;
	cp.ca_file = cf->ca_file;
	cp.fingerprint = cf->fingerprint;
	cp.connect_timeout = cf->connect_timeout;
	cp.keepalive = (int)cf->keepalive;
	if ((s->conn = conn_new(s->eng->base, &cp, &conn_callbacks, s)) ==
	    NULL) {
		pop3_session_free(&s);
		return -1;
	}
	acct->pop3 = s;
	return 0;
}

void
pop3_session_durable(struct pop3_session *s)
{
	struct pop3_msg	*m, *next;

	for (m = TAILQ_FIRST(&s->msgs); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->state != PM_ACCEPTED ||
		    !store_durable(s->eng->store, m->seq))
			continue;
		/* Durable: now, and only now, may the server delete it. */
		if (!s->cf->keep && !s->conn_dead && s->p != NULL &&
		    !s->finish_sent && pop3_delete(s->p, m->msgno) == 0)
			note_deleted(s, m->msgno, m->uid);
		KILLPOINT("fetch.durable");
		m->state = PM_DONE;
		TAILQ_REMOVE(&s->msgs, m, entry);
		msg_release(m);
		free(m);
	}
	flush(s);
	maybe_finish(s);
	if (s->ndeleted > 0) KILLPOINT("fetch.delete_sent");
}

void
pop3_session_store_failed(struct pop3_session *s)
{
	struct pop3_msg	*m, *next;

	/*
	 * Nothing accepted in the failed transaction may be deleted (DELEs
	 * already sent were durable before the failure and stay).
	 */
	for (m = TAILQ_FIRST(&s->msgs); m != NULL; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (m->state != PM_ACCEPTED)
			continue;
		TAILQ_REMOVE(&s->msgs, m, entry);
		msg_release(m);
		free(m);
	}
	session_fail(s, ERR_LOCAL, "the UID store failed");
}

void
pop3_session_stop(struct pop3_session *s)
{
	s->stopping = 1;
	if (s->p == NULL || s->conn_dead) {
		if (s->conn != NULL)
			conn_gone(s);	/* not even connected yet */
		return;
	}
	if (!outstanding(s) && (s->cur != NULL || pop3_waiting(s->p))) {
		/*
		 * Nothing of ours is in flight, but the server is busy (a
		 * RETR under way): waiting would only stretch the shutdown.
		 * Dropping loses nothing; DELEs not committed by a QUIT are
		 * sent again next time.
		 */
		if (s->cur != NULL) {
			msg_free(s, s->cur);
			s->cur = NULL;
		}
		conn_gone(s);
		return;
	}
	pop3_abort(s->p);
	flush(s);
	maybe_finish(s);
}

void
pop3_session_set_cf(struct pop3_session *s, const struct config_account *cf)
{
	s->cf = cf;
}

void
pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;
	struct pop3_msg	*m;
	size_t		 i;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->cur != NULL)
		msg_free(s, s->cur);
	while ((m = TAILQ_FIRST(&s->msgs)) != NULL) {
		TAILQ_REMOVE(&s->msgs, m, entry);
		msg_free(s, m);
	}
	conn_free(&s->conn);
	pop3_free(&s->p);
	buf_free_secret(&s->secret);
	for (i = 0; i < s->ndeleted; i++)
		free(s->deleted_uid[i]);
	free(s->deleted_uid);
	free(s->deleted);
	if (s->end_ev != NULL)
		event_free(s->end_ev);
	free(s);
}
