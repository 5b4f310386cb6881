/* ISC licence; see LICENSE. */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "haul/clock.h"
#include "haul/conn.h"
#include "haul/deliver.h"
#include "haul/imap.h"
#include "haul/imap_session.h"
#include "haul/inject.h"
#include "haul/killpoint.h"
#include "haul/log.h"
#include "haul/message.h"
#include "haul/sched.h"
#include "haul/secret.h"
#include "haul/spool.h"
#include "haul/store.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#define FOLDER_SPOOL_MEM	(256 * 1024)

enum fmsg_state {
	FM_FETCHING,
	FM_DELIVERING,
	FM_ACCEPTED,		/* waiting for the commit */
	FM_DONE,
};

struct fmsg {
	struct folder	*f;
	uint32_t	 uid;
	char		 uidstr[16];
	uint64_t	 listed_size;
	enum fmsg_state	 state;
	struct spool	*spool;
	struct msgf	*filter;
	struct dlv_job	 job;
	struct origin	 origin;
	uint64_t	 seq;
	uint64_t	 started_ms;
	TAILQ_ENTRY(fmsg) entry;
};

TAILQ_HEAD(fmsgq, fmsg);

enum fphase {
	FP_CONNECTING,
	FP_LISTING,		/* LIST for a wildcard entry */
	FP_SELECTING,
	FP_SCANNING,		/* first contact: flags for first_fetch */
	FP_FETCHING,
	FP_IDLE,
	FP_LEAVING,		/* LOGOUT sent */
};

/* One connection: one folder held in IDLE, or several polled in turn. */
struct folder {
	struct imap_account *ia;
	struct account	*acct;
	struct engine	*eng;
	const struct config_account *cf;
	char	       **names;		/* folders this connection serves */
	size_t		 nnames;
	char		*pattern;	/* wildcard entry, resolved by LIST */
	size_t		 cur;
	struct conn	*conn;
	struct imap	*p;
	struct buf	 secret;
	enum fphase	 phase;
	int64_t		 mbox;
	uint32_t	 uidvalidity;
	uint64_t	 hwm;		/* every UID <= hwm is resolved */
	uint64_t	 pushed_ms;	/* EXISTS in IDLE: when (metrics) */
	int		 recovering;	/* UIDVALIDITY changed this pass */
	enum first_fetch first;		/* first contact: what to record */
	uint32_t	 first_below;	/* UIDNEXT at that SELECT, or 0 */
	unsigned	 first_marked;
	uint32_t	 round_max;
	uint32_t	 round_fail;	/* lowest unresolved UID, or 0 */
	int		 fetch_done;
	unsigned	 actions;	/* asked of the server, unanswered */
	struct fmsg	*cur_msg;
	struct fmsgq	 msgs;
	struct event	*refresh;	/* re-IDLE before 29 minutes */
	struct event	*end_ev;
	int		 conn_dead;
	int		 ended;
	int		 reselect;	/* SELECT again after this IDLE */
	int		 more;		/* EXISTS during a round: another */
	unsigned	 fetched;
	enum err_class	 err;
	char		 why[300];
};

struct imap_account {
	struct account	*acct;
	struct folder  **f;
	size_t		 nf;
	size_t		 running;
	int		 stopping;
	enum err_class	 err;
	char		 why[300];
};

static void	folder_fail(struct folder *, enum err_class, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	folder_continue(struct folder *);
static void	start_round(struct folder *);
static void	first_scan(struct folder *);
static void	first_done(struct folder *, int, const char *);

static const char *
aname(const struct folder *f)
{
	return f->cf->name;
}

static const char *
fname(const struct folder *f)
{
	return f->nnames > 0 ? f->names[f->cur] : "?";
}

static int
has_wildcard(const char *s)
{
	return strpbrk(s, "*%") != NULL;
}

/* Keep nothing on the server but what the account asks for. */
static int
wants_removal(const struct config_account *cf, time_t first_seen)
{
	if (!cf->keep || cf->move_to != NULL)
		return 1;
	return cf->delete_after_days > 0 && clock_wall() - first_seen >
	    (time_t)cf->delete_after_days * 86400;
}

static int
readonly_ok(const struct config_account *cf)
{
	return cf->keep && !cf->mark_seen && cf->move_to == NULL &&
	    cf->delete_after_days == 0;
}

static void
flush(struct folder *f)
{
	struct buf	*out;

	if (f->p == NULL || f->conn == NULL || f->conn_dead)
		return;
	out = imap_output(f->p);
	if (out->len > 0) {
		conn_write(f->conn, out->data, out->len);
		explicit_bzero(out->data, out->len);
		buf_reset(out);
	}
	/* In IDLE nothing is due: dead peers are TCP keepalive's job. */
	conn_set_idle_timeout(f->conn, imap_waiting(f->p) ? f->cf->timeout :
	    0);
}

static void
track_deadline(struct folder *f, size_t got)
{
	if (f->conn == NULL || f->conn_dead || f->p == NULL)
		return;
	conn_track_progress(f->conn, imap_waiting(f->p), got, f->cf->timeout);
}

static enum proto_status
feed(void *m, const void *d, size_t n, size_t *used)
{
	return imap_input(m, d, n, used);
}

static void
msg_release(struct fmsg *m)
{
	msgf_free(&m->filter);
	spool_free(&m->spool);
	dlv_job_clear(&m->job);
}

static void
msg_free(struct folder *f, struct fmsg *m)
{
	if (m->state == FM_DELIVERING)
		dlv_cancel(f->eng->dlv, &m->job);
	msg_release(m);
	free(m);
}

static int
outstanding(const struct folder *f)
{
	const struct fmsg *m;

	TAILQ_FOREACH(m, &f->msgs, entry)
		if (m->state == FM_DELIVERING || m->state == FM_ACCEPTED)
			return 1;
	return 0;
}

static void
folder_end(struct folder *f)
{
	if (f->ended)
		return;
	f->ended = 1;
	event_active(f->end_ev, EV_TIMEOUT, 0);
}

static void
conn_gone(struct folder *f)
{
	f->conn_dead = 1;
	f->acct->idle_connected = 0;
	evtimer_del(f->refresh);
	conn_free(&f->conn);
	if (f->cur_msg != NULL) {
		/* Cut off mid-transfer: never delivered. */
		msg_free(f, f->cur_msg);
		f->cur_msg = NULL;
	}
	if (!outstanding(f))
		folder_end(f);
}

static void
leave(struct folder *f)
{
	if (f->p == NULL || f->conn_dead) {
		conn_gone(f);
		return;
	}
	if (f->phase == FP_LEAVING)
		return;
	f->phase = FP_LEAVING;
	f->acct->idle_connected = 0;
	evtimer_del(f->refresh);
	if (imap_logout(f->p) == -1)
		conn_gone(f);
	else
		flush(f);
}

static void
folder_fail(struct folder *f, enum err_class cls, const char *fmt, ...)
{
	va_list	 ap;

	if (f->err == ERR_NONE) {
		f->err = cls;
		va_start(ap, fmt);
		vsnprintf(f->why, sizeof(f->why), fmt, ap);
		va_end(ap);
	}
	if (!outstanding(f) && f->actions == 0)
		leave(f);
}

/* The messages after acceptance: act on the server, then forget them. */
static void
act(struct folder *f, struct fmsg *m, time_t first_seen)
{
	int	 r = 0;

	if (f->p == NULL || f->conn_dead)
		return;
	if (f->cf->move_to != NULL)
		r = imap_move(f->p, m->uid, f->cf->move_to);
	else if (wants_removal(f->cf, first_seen))
		r = imap_delete(f->p, m->uid);
	else if (f->cf->mark_seen)
		r = imap_mark_seen(f->p, m->uid);
	else
		return;
	if (r == 0)
		f->actions++;
	else
		log_warnx(aname(f), "folder %s: cannot act on uid %s (the "
		    "server lacks UIDPLUS, or the folder is read-only); it "
		    "stays on the server", fname(f), m->uidstr);
}

/* --- delivery ------------------------------------------------------------ */

static void
note_fail(struct folder *f, uint32_t uid)
{
	if (f->round_fail == 0 || uid < f->round_fail)
		f->round_fail = uid;
}

static void
dlv_done(struct dlv_job *j, const struct dlv_result *r)
{
	struct fmsg	*m = j->arg;
	struct folder	*f = m->f;
	struct store	*st = f->eng->store;
	const struct msgf_info *info = msgf_info(m->filter);

	switch (r->outcome) {
	case DLV_ACCEPTED:
		m->seq = store_accepted(st, f->mbox, m->uidstr,
		    strlen(m->uidstr), r->queue_id[0] ? r->queue_id : NULL,
		    info->message_id.text, info->date.text, m->listed_size);
		if (m->seq == 0) {
			m->state = FM_DONE;
			note_fail(f, m->uid);
			folder_fail(f, ERR_LOCAL, "cannot record uid %s",
			    m->uidstr);
			break;
		}
		m->state = FM_ACCEPTED;
		f->acct->delivered++;
		KILLPOINT("store.accepted");
		f->acct->bytes += info->size;
		hist_observe(&f->acct->lat_delivery, clock_mono_ms() -
		    m->started_ms);
		if (f->pushed_ms != 0)
			hist_observe(&f->acct->lat_push, clock_mono_ms() -
			    f->pushed_ms);
		log_info(aname(f), "delivered folder %s uid %s size %llu queue "
		    "id %s delay %llums", fname(f), m->uidstr,
		    (unsigned long long)info->size,
		    r->queue_id[0] ? r->queue_id : "-",
		    (unsigned long long)(clock_mono_ms() - m->started_ms));
		engine_want_commit(f->eng);
		break;
	case DLV_REFUSED:
		m->state = FM_DONE;
		f->acct->refused++;
		log_warnx(aname(f), "the MTA refused folder %s uid %s; it stays "
		    "on the server: %s", fname(f), m->uidstr, r->text);
		if (store_refused(st, f->mbox, m->uidstr, strlen(m->uidstr),
		    r->text) == -1) {
			note_fail(f, m->uid);
			folder_fail(f, ERR_LOCAL, "cannot record a refusal");
		} else
			engine_want_commit(f->eng);
		break;
	case DLV_TEMPFAIL:
		m->state = FM_DONE;
		note_fail(f, m->uid);
		if (inject_record_done(j, f->eng->store, f->mbox,
		    m->uidstr) == 0 && j->nrcpt_final > 0)
			engine_want_commit(f->eng);
		log_warnx(aname(f), "delivery of folder %s uid %s failed "
		    "temporarily%s; it stays on the server: %s", fname(f),
		    m->uidstr, r->unknown ? " (outcome unknown: a duplicate "
		    "is possible)" : "", r->text);
		folder_fail(f, ERR_MTA, "delivery failed: %s", r->text);
		break;
	}
	msg_release(m);
	if (m->state == FM_DONE) {
		TAILQ_REMOVE(&f->msgs, m, entry);
		free(m);
	}
	folder_continue(f);
}

static int
submit(struct folder *f, struct fmsg *m)
{
	struct inject_src src;

	memset(&src, 0, sizeof(src));
	src.proto = "imap";
	src.mailbox = fname(f);
	src.uidvalidity = f->uidvalidity;
	src.uid = m->uidstr;
	src.seq = f->fetched;
	if (inject_build(&m->job, f->eng, f->cf, &src, m->spool,
	    msgf_info(m->filter), &m->origin) == -1)
		return -1;
	m->job.done = dlv_done;
	m->job.arg = m;
	if (inject_skip_done(&m->job, f->eng->store, f->mbox, m->uidstr) == -1 ||
	    store_injecting(f->eng->store, f->mbox, m->uidstr,
	    strlen(m->uidstr), NULL) == -1)
		return -1;
	m->state = FM_DELIVERING;
	m->started_ms = clock_mono_ms();
	dlv_submit(f->eng->dlv, &m->job);
	return 0;
}

/* --- machine callbacks -------------------------------------------------- */

static int
cb_selected(void *arg, uint32_t uv, uint32_t uidnext, uint32_t exists,
    int ro)
{
	struct folder	*f = arg;
	struct store	*st = f->eng->store;
	uint32_t	 olduv;
	uint64_t	 hwm;
	int		 r;

	r = store_folder_get(st, aname(f), fname(f), &olduv, &hwm);
	if (r == -1)
		return -1;
	f->recovering = 0;
	f->first = FIRST_FETCH_ALL;
	if (r == STORE_ABSENT) {
		hwm = 0;
		if (f->cf->first_fetch != FIRST_FETCH_ALL) {
			/* The folder row waits for first_done(). */
			f->first = f->cf->first_fetch;
			f->first_below = uidnext;
		} else if (store_folder_set(st, aname(f), fname(f), uv, 0) ==
		    -1)
			return -1;
	} else if (olduv != uv) {
		/*
		 * The server renumbered the folder.  Every message gets a
		 * new UID; those already delivered are recognised by
		 * Message-ID, size and Date (docs/imap-uidvalidity.md).
		 */
		log_warnx(aname(f), "folder %s: UIDVALIDITY changed from %u "
		    "to %u; matching messages against what was delivered",
		    fname(f), olduv, uv);
		f->recovering = 1;
		hwm = 0;
		if (store_folder_set(st, aname(f), fname(f), uv, 0) == -1)
			return -1;
	} else if (hwm == 0) {
		/*
		 * Known folder, nothing settled yet: possibly a recovery cut
		 * short by a restart.  Keep matching, or a crash mid-recovery
		 * would turn into a flood of re-deliveries.
		 */
		f->recovering = 1;
	}
	f->uidvalidity = uv;
	f->hwm = hwm;
	if (store_mailbox(st, aname(f), fname(f), uv, &f->mbox) == -1)
		return -1;
	engine_want_commit(f->eng);
	KILLPOINT("fetch.mailbox");
	log_debug(aname(f), "folder %s: uidvalidity %u uidnext %u exists %u%s",
	    fname(f), uv, uidnext, exists, ro ? " (read-only)" : "");
	return 0;
}

static enum imap_want
cb_want(void *arg, uint32_t uid, uint64_t size)
{
	struct folder	*f = arg;
	struct store	*st = f->eng->store;
	struct store_msg rec;
	char		 us[16];
	int		 r;

	if (f->err != ERR_NONE || f->ia->stopping)
		return IMAP_WANT_SKIP;
	KILLPOINT("fetch.listed");
	if (uid > f->round_max)
		f->round_max = uid;
	snprintf(us, sizeof(us), "%u", uid);
	r = store_get(st, f->mbox, us, strlen(us), &rec);
	if (r == -1)
		return IMAP_WANT_ABORT;
	if (r == STORE_ABSENT) {
		if (store_seen(st, f->mbox, us, strlen(us), size,
		    clock_wall()) == -1)
			return IMAP_WANT_ABORT;
		f->acct->progress_total++;
		return IMAP_WANT_FETCH;
	}
	store_touch_seen(st, f->mbox, us, strlen(us), clock_wall());
	switch (rec.state) {
	case STORE_SEEN:
	case STORE_INJECTING:
		f->acct->progress_total++;
		return IMAP_WANT_FETCH;
	case STORE_ACCEPTED:
	case STORE_REMOVED:
		/*
		 * Delivered before: finish what the account asks.  Never for
		 * what first_fetch recorded: haul did not deliver that.
		 */
		if (wants_removal(f->cf, rec.first_seen) &&
		    strcmp(rec.queue_id, FIRST_FETCH_QUEUE_ID) != 0) {
			struct fmsg tmp;

			if (store_pending(st) && store_commit(st) == -1)
				return IMAP_WANT_ABORT;
			memset(&tmp, 0, sizeof(tmp));
			tmp.uid = uid;
			str_lcpy(tmp.uidstr, us, sizeof(tmp.uidstr));
			act(f, &tmp, rec.first_seen);
		}
		return IMAP_WANT_SKIP;
	case STORE_REFUSED:
	case STORE_TOO_BIG:
		return IMAP_WANT_SKIP;
	}
	return IMAP_WANT_SKIP;
}

static int
cb_too_big(void *arg, uint32_t uid, uint64_t size)
{
	struct folder	*f = arg;
	char		 us[16];

	snprintf(us, sizeof(us), "%u", uid);
	log_warnx(aname(f), "folder %s uid %s is %llu bytes, above "
	    "max_message_size; left on the server", fname(f), us,
	    (unsigned long long)size);
	if (store_seen(f->eng->store, f->mbox, us, strlen(us), size,
	    clock_wall()) == -1 ||
	    store_too_big(f->eng->store, f->mbox, us, strlen(us)) == -1)
		return -1;
	engine_want_commit(f->eng);
	return 0;
}

static int
cb_msg_begin(void *arg, uint32_t uid, uint64_t size)
{
	struct folder	*f = arg;
	struct fmsg	*m;

	m = xcalloc(1, sizeof(*m));
	m->f = f;
	m->uid = uid;
	snprintf(m->uidstr, sizeof(m->uidstr), "%u", uid);
	m->listed_size = size;
	m->state = FM_FETCHING;
	m->spool = spool_new(f->eng->spool_dir, FOLDER_SPOOL_MEM);
	if (f->cf->max_message_size > 0)
		spool_set_max(m->spool, f->cf->max_message_size * 2 + 2);
	m->filter = msgf_new(m->spool, NULL);
	if (f->cur_msg != NULL)
		msg_free(f, f->cur_msg);
	KILLPOINT("fetch.begin");
	f->cur_msg = m;
	return 0;
}

static int
cb_msg_data(void *arg, const void *data, size_t len)
{
	struct folder	*f = arg;

	if (f->cur_msg == NULL)
		return -1;
	if (msgf_write(f->cur_msg->filter, data, len) == -1) {
		log_warn(aname(f), "spool write for folder %s uid %s",
		    fname(f), f->cur_msg->uidstr);
		return -1;
	}
	return 0;
}

static int
cb_msg_end(void *arg, uint32_t uid)
{
	struct folder	*f = arg;
	struct fmsg	*m = f->cur_msg;
	const struct msgf_info *info;

	f->cur_msg = NULL;
	if (m == NULL || m->uid != uid) {
		if (m != NULL)
			msg_free(f, m);
		return -1;
	}
	if (msgf_finish(m->filter) == -1) {
		log_warn(aname(f), "spool for folder %s uid %s", fname(f),
		    m->uidstr);
		msg_free(f, m);
		return -1;
	}
	f->fetched++;
	KILLPOINT("fetch.spooled");
	f->acct->progress_done++;
	info = msgf_info(m->filter);
	TAILQ_INSERT_TAIL(&f->msgs, m, entry);
	if (f->recovering && store_find_delivered(f->eng->store, aname(f),
	    fname(f), info->message_id.text, m->listed_size,
	    info->date.text) == STORE_FOUND) {
		/* Delivered under the old UIDVALIDITY: record, not resend. */
		m->seq = store_accepted(f->eng->store, f->mbox, m->uidstr,
		    strlen(m->uidstr), NULL, info->message_id.text,
		    info->date.text, m->listed_size);
		if (m->seq == 0) {
			TAILQ_REMOVE(&f->msgs, m, entry);
			msg_free(f, m);
			return -1;
		}
		log_info(aname(f), "folder %s uid %s was delivered before "
		    "the UIDVALIDITY change; not delivered again", fname(f),
		    m->uidstr);
		m->state = FM_ACCEPTED;
		msg_release(m);
		engine_want_commit(f->eng);
		return 0;
	}
	if (submit(f, m) == -1) {
		TAILQ_REMOVE(&f->msgs, m, entry);
		msg_free(f, m);
		return -1;
	}
	return 0;
}

static int
cb_msg_failed(void *arg, uint32_t uid, enum imap_fail why, const char *text)
{
	struct folder	*f = arg;

	if (f->cur_msg != NULL && f->cur_msg->uid == uid) {
		msg_free(f, f->cur_msg);
		f->cur_msg = NULL;
	}
	switch (why) {
	case IMAP_FAIL_GONE:
		/* Expunged by someone else before we got it: nothing lost
		 * by us, nothing to retry. */
		log_info(aname(f), "folder %s uid %u vanished before it was "
		    "fetched", fname(f), uid);
		return 0;
	case IMAP_FAIL_TOO_BIG:
		/*
		 * Its listed size was within max_message_size (or too_big
		 * would have been called): the body's literal contradicts
		 * the listing.  A protocol error; try again later, never
		 * write the message off.
		 */
		note_fail(f, uid);
		folder_fail(f, ERR_PROTOCOL, "folder %s uid %u: body larger "
		    "than the size the server listed", fname(f), uid);
		return 0;
	case IMAP_FAIL_NO:
	case IMAP_FAIL_NIL:
		break;
	}
	note_fail(f, uid);
	log_warnx(aname(f), "folder %s: the server did not send uid %u: %s",
	    fname(f), uid, text);
	return 0;
}

/* First contact under first_fetch: record, do not fetch (docs/imap.md). */
static int
cb_flags(void *arg, uint32_t uid, int seen)
{
	struct folder	*f = arg;
	struct store	*st = f->eng->store;
	struct store_msg rec;
	char		 us[16];
	int		 r;

	if (f->phase != FP_SCANNING || (f->first == FIRST_FETCH_UNSEEN &&
	    !seen))
		return 0;
	snprintf(us, sizeof(us), "%u", uid);
	if ((r = store_get(st, f->mbox, us, strlen(us), &rec)) == -1)
		return -1;
	if (r == STORE_FOUND)
		return 0;	/* recorded by a first contact cut short */
	if (store_accepted(st, f->mbox, us, strlen(us), FIRST_FETCH_QUEUE_ID,
	    NULL, NULL, 0) == 0)
		return -1;
	f->first_marked++;
	return 0;
}

static void
cb_exists(void *arg, uint32_t n)
{
	struct folder	*f = arg;

	/* New mail while idling: leave IDLE, then fetch (op_done). */
	if (f->phase == FP_IDLE && f->p != NULL) {
		if (f->pushed_ms == 0)
			f->pushed_ms = clock_mono_ms();
		imap_idle_done(f->p);
		flush(f);
	} else if (f->phase == FP_FETCHING) {
		/*
		 * Mail that arrives while a round runs may be past what its
		 * UID FETCH asked for: run another round before idling, or
		 * it would wait for the next IDLE refresh (up to 29 min).
		 */
		f->more = 1;
	}
}

static void
cb_warning(void *arg)
{
	struct folder	*f = arg;

	/*
	 * Trouble with the mailbox we idle on (deleted, rebuilt): leave
	 * IDLE and SELECT it again, which also reveals a new UIDVALIDITY.
	 */
	if (f->phase == FP_IDLE && f->p != NULL) {
		f->reselect = 1;
		imap_idle_done(f->p);
		flush(f);
	}
}

static void
cb_action_done(void *arg, enum imap_action a, uint32_t uid, int ok)
{
	struct folder	*f = arg;
	char		 us[16];

	if (f->actions > 0)
		f->actions--;
	if (ok && a != IMAP_ACT_SEEN) KILLPOINT("fetch.delete_committed");
	snprintf(us, sizeof(us), "%u", uid);
	if (!ok)
		log_warnx(aname(f), "folder %s: the server refused to %s uid "
		    "%s; it stays there", fname(f), a == IMAP_ACT_SEEN ?
		    "flag" : a == IMAP_ACT_MOVE ? "move" : "delete", us);
	else if (a != IMAP_ACT_SEEN) {
		if (store_removed(f->eng->store, f->mbox, us, strlen(us)) == 0)
			engine_want_commit(f->eng);
	}
	folder_continue(f);
}

static int
cb_mailbox(void *arg, const char *name, size_t len, char delim)
{
	struct folder	*f = arg;

	if (len == 0 || len > 1000 || memchr(name, '\0', len) != NULL ||
	    str_has_crlf(name))
		return 0;
	f->names = xreallocarray(f->names, f->nnames + 1, sizeof(*f->names));
	f->names[f->nnames++] = xstrndup(name, len);
	return 0;
}

static void
select_current(struct folder *f)
{
	f->phase = FP_SELECTING;
	if (imap_select(f->p, fname(f), readonly_ok(f->cf)) == -1)
		folder_fail(f, ERR_CONFIG, "cannot select folder %s", fname(f));
	flush(f);
}

static void
cb_op_done(void *arg, enum imap_op op, int ok, const char *text)
{
	struct folder	*f = arg;

	switch (op) {
	case IMAP_OP_CONNECT:
		if (f->pattern != NULL) {
			f->phase = FP_LISTING;
			if (imap_list(f->p, f->pattern) == -1)
				folder_fail(f, ERR_CONFIG, "cannot LIST %s",
				    f->pattern);
			flush(f);
			return;
		}
		select_current(f);
		return;
	case IMAP_OP_LIST:
		if (!ok || f->nnames == 0) {
			log_warnx(aname(f), "no folder matches %s%s%s",
			    f->pattern, ok ? "" : ": ", ok ? "" : text);
			leave(f);
			return;
		}
		f->cur = 0;
		select_current(f);
		return;
	case IMAP_OP_SELECT:
		if (!ok) {
			folder_fail(f, ERR_CONFIG, "cannot select folder %s: %s",
			    fname(f), text);
			return;
		}
		if (f->first != FIRST_FETCH_ALL)
			first_scan(f);
		else
			start_round(f);
		return;
	case IMAP_OP_FETCH:
		if (f->phase == FP_SCANNING) {
			first_done(f, ok, text);
			return;
		}
		f->fetch_done = 1;
		folder_continue(f);
		return;
	case IMAP_OP_IDLE:
		f->acct->idle_connected = 0;
		if (f->ia->stopping || f->err != ERR_NONE) {
			leave(f);
			return;
		}
		if (f->reselect) {
			f->reselect = 0;
			select_current(f);
			return;
		}
		start_round(f);
		return;
	case IMAP_OP_NOOP:
	case IMAP_OP_STATUS:
		return;
	}
}

static const struct imap_cb machine_cb = {
	.op_done = cb_op_done,
	.selected = cb_selected,
	.want = cb_want,
	.too_big = cb_too_big,
	.msg_begin = cb_msg_begin,
	.msg_data = cb_msg_data,
	.msg_end = cb_msg_end,
	.msg_failed = cb_msg_failed,
	.exists = cb_exists,
	.warning = cb_warning,
	.action_done = cb_action_done,
	.mailbox = cb_mailbox,
	.status = NULL,
	.flags = cb_flags,
};

/* --- the folder's life ------------------------------------------------- */

static void
start_round(struct folder *f)
{
	uint32_t	 lo;

	f->phase = FP_FETCHING;
	f->fetch_done = 0;
	f->round_max = (uint32_t)f->hwm;
	f->round_fail = 0;
	/*
	 * Keep-mode only needs what is new.  Removal modes list everything
	 * so a message delivered earlier but not yet removed is removed.
	 */
	lo = (uint32_t)(f->hwm + 1);
	if (!readonly_ok(f->cf) && (f->cf->move_to != NULL || !f->cf->keep ||
	    f->cf->delete_after_days > 0))
		lo = 1;
	if (imap_fetch_new(f->p, lo) == -1)
		folder_fail(f, ERR_PROTOCOL, "cannot list folder %s", fname(f));
	flush(f);
}

/*
 * First contact with first_fetch = unseen or new: ask for the flags of
 * every message below the UIDNEXT of the SELECT, so nothing that arrives
 * later can be taken as delivered.
 */
static void
first_scan(struct folder *f)
{
	f->phase = FP_SCANNING;
	f->first_marked = 0;
	if (imap_fetch_flags(f->p, f->first_below) == -1)
		folder_fail(f, ERR_PROTOCOL, "cannot ask for the flags in "
		    "folder %s", fname(f));
	flush(f);
}

/*
 * The records of first_scan() and the folder row that ends first contact
 * become durable together, before anything is fetched.
 */
static void
first_done(struct folder *f, int ok, const char *text)
{
	struct store	*st = f->eng->store;

	if (!ok) {
		folder_fail(f, ERR_PROTOCOL, "folder %s: the flags for "
		    "first_fetch were refused: %s", fname(f), text);
		return;
	}
	if (f->err != ERR_NONE || f->ia->stopping) {
		leave(f);
		return;
	}
	if (store_folder_set(st, aname(f), fname(f), f->uidvalidity, 0) ==
	    -1 || store_commit(st) == -1) {
		engine_want_commit(f->eng);	/* reopens a broken store */
		folder_fail(f, ERR_LOCAL, "folder %s: cannot record what "
		    "first_fetch skips", fname(f));
		return;
	}
	log_info(aname(f), "folder %s: first contact (first_fetch = %s): %u "
	    "messages recorded as delivered, not fetched", fname(f),
	    config_first_fetch_name(f->first), f->first_marked);
	f->first = FIRST_FETCH_ALL;
	start_round(f);
}

static void
refresh_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct folder	*f = arg;

	/*
	 * RFC 2177: leave and re-enter IDLE before the server's 30 min.
	 * SELECT again on the way, so a mailbox rebuilt under us (new
	 * UIDVALIDITY) is noticed at least this often.
	 */
	if (f->phase == FP_IDLE && f->p != NULL) {
		f->reselect = 1;
		imap_idle_done(f->p);
		flush(f);
	}
}

static void
go_idle(struct folder *f)
{
	struct timeval	 tv;
	uint64_t	 ms = (uint64_t)f->cf->idle_refresh * 1000;

	f->phase = FP_IDLE;
	f->pushed_ms = 0;
	if (imap_idle(f->p) == -1) {
		leave(f);
		return;
	}
	flush(f);
	f->acct->idle_connected = 1;
	{
		size_t	 i;

		for (i = 0; i < f->ia->nf; i++)
			if (f->ia->f[i]->phase != FP_IDLE)
				break;
		if (i == f->ia->nf)
			engine_account_idle(f->acct);
	}
	/* Jittered down by up to 10 % so sessions do not refresh together. */
	ms -= sched_next_delay_ms(f->cf->idle_refresh / 10 + 1,
	    sched_rng_default) % (ms / 10 + 1);
	ms = clock_timer_ms(ms);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(f->refresh, &tv);
}

/* The round is over when every message is resolved and acted upon. */
static void
folder_continue(struct folder *f)
{
	uint64_t	 hwm;

	if (f->conn_dead) {
		if (!outstanding(f))
			folder_end(f);
		return;
	}
	if (f->p == NULL || outstanding(f) || f->actions > 0)
		return;
	if (f->err != ERR_NONE || f->ia->stopping) {
		leave(f);
		return;
	}
	if (f->phase != FP_FETCHING || !f->fetch_done)
		return;
	/* Everything up to the first unresolved UID is done for good. */
	hwm = f->round_fail != 0 ? (uint64_t)f->round_fail - 1 : f->round_max;
	if (hwm > f->hwm) {
		f->hwm = hwm;
		if (store_folder_set(f->eng->store, aname(f), fname(f),
		    f->uidvalidity, hwm) == 0)
			engine_want_commit(f->eng);
	}
	if (f->round_fail == 0) {
		f->recovering = 0;
		/* IDLE sessions do not end: a clean round is the success. */
		f->acct->last_success = clock_wall();
	}
	if (f->cur + 1 < f->nnames) {
		f->cur++;
		select_current(f);
		return;
	}
	if (f->cf->idle && f->nnames == 1 && f->pattern == NULL &&
	    !f->eng->oneshot && (imap_caps(f->p) & IMAP_CAP_IDLE)) {
		if (f->more) {
			f->more = 0;
			start_round(f);
			return;
		}
		go_idle(f);
		return;
	}
	leave(f);
}

static void
handle_status(struct folder *f, enum proto_status st)
{
	enum err_class	 cls;
	const char	*msg;

	switch (st) {
	case PS_MORE:
		flush(f);
		track_deadline(f, 0);
		break;
	case PS_STARTTLS:
		flush(f);
		conn_starttls(f->conn);
		break;
	case PS_DONE:
		flush(f);
		conn_gone(f);
		break;
	case PS_ERROR:
		cls = imap_error(f->p, &msg);
		if (f->err == ERR_NONE) {
			f->err = cls;
			snprintf(f->why, sizeof(f->why), "%s", msg);
		}
		flush(f);
		conn_gone(f);
		break;
	}
}

static void
on_ready(struct conn *c, void *arg)
{
	struct folder	*f = arg;
	struct imap_params ip;

	memset(&ip, 0, sizeof(ip));
	ip.account = f->cf->name;
	ip.host = f->cf->host;
	ip.port = config_account_port(f->cf);
	ip.tls = f->cf->tls;
	ip.allow_plaintext = f->cf->allow_plaintext;
	ip.auth = f->cf->auth;
	ip.user = f->cf->user;
	ip.secret = f->secret.data;
	ip.secret_len = f->secret.len;
	ip.max_message_size = f->cf->max_message_size;
	ip.allow_expunge_all = f->cf->allow_expunge_all;
	f->p = imap_new(&ip, &machine_cb, f);
	KILLPOINT("fetch.connected");
	conn_set_idle_timeout(c, f->cf->timeout);
	track_deadline(f, 0);
}

static void
on_readable(struct conn *c, void *arg)
{
	struct folder	*f = arg;
	enum proto_status st;

	if (f->p == NULL)
		return;
	track_deadline(f, evbuffer_get_length(conn_input(c)));
	st = conn_feed(c, feed, f->p);
	if (!f->conn_dead)
		handle_status(f, st);
}

static void
on_writable(struct conn *c, void *arg)
{
}

static void
on_tls_ready(struct conn *c, void *arg)
{
	struct folder	*f = arg;

	handle_status(f, imap_tls_started(f->p));
}

static void
on_failed(struct conn *c, void *arg, enum err_class cls, const char *why)
{
	struct folder	*f = arg;

	if (f->err == ERR_NONE && f->phase != FP_LEAVING) {
		f->err = cls;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
	conn_gone(f);
}

static const struct conn_cb conn_callbacks = {
	.ready = on_ready,
	.readable = on_readable,
	.writable = on_writable,
	.tls_ready = on_tls_ready,
	.failed = on_failed,
};

static void
folder_free(struct folder **fp)
{
	struct folder	*f = *fp;
	struct fmsg	*m;
	size_t		 i;

	if (f == NULL)
		return;
	*fp = NULL;
	if (f->cur_msg != NULL)
		msg_free(f, f->cur_msg);
	while ((m = TAILQ_FIRST(&f->msgs)) != NULL) {
		TAILQ_REMOVE(&f->msgs, m, entry);
		msg_free(f, m);
	}
	conn_free(&f->conn);
	imap_free(&f->p);
	buf_free_secret(&f->secret);
	for (i = 0; i < f->nnames; i++)
		free(f->names[i]);
	free(f->names);
	free(f->pattern);
	if (f->refresh != NULL)
		event_free(f->refresh);
	if (f->end_ev != NULL)
		event_free(f->end_ev);
	free(f);
}

static void
end_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct folder		*f = arg;
	struct imap_account	*ia = f->ia;
	struct account		*a = ia->acct;

	log_info(aname(f), "folder connection ended: %u fetched%s%s",
	    f->fetched, f->err != ERR_NONE ? "; error: " : "",
	    f->err != ERR_NONE ? f->why : "");
	if (f->err != ERR_NONE && ia->err == ERR_NONE) {
		ia->err = f->err;
		str_lcpy(ia->why, f->why, sizeof(ia->why));
	}
	ia->running--;
	if (ia->running == 0) {
		char	 why[sizeof(ia->why)];

		str_lcpy(why, ia->why, sizeof(why));
		engine_session_done(a, ia->err, why);
	}
}

static struct folder *
folder_new(struct imap_account *ia)
{
	struct account	*a = ia->acct;
	struct folder	*f;

	f = xcalloc(1, sizeof(*f));
	f->ia = ia;
	f->acct = a;
	f->eng = a->eng;
	f->cf = a->cf;
	TAILQ_INIT(&f->msgs);
	f->refresh = evtimer_new(f->eng->base, refresh_cb, f);
	f->end_ev = event_new(f->eng->base, -1, 0, end_cb, f);
	return f;
}

static int
folder_connect(struct folder *f)
{
	struct conn_params cp;

	secret_copy(&f->secret, &f->acct->secret);
	memset(&cp, 0, sizeof(cp));
	cp.account = f->cf->name;
	cp.host = f->cf->host;
	cp.port = config_account_port(f->cf);
	cp.tls = f->cf->tls == TLS_IMPLICIT;
	cp.ca_file = f->cf->ca_file;
	cp.fingerprint = f->cf->fingerprint;
	cp.connect_timeout = f->cf->connect_timeout;
	cp.keepalive = (int)f->cf->keepalive;
	if ((f->conn = conn_new(f->eng->base, &cp, &conn_callbacks, f)) ==
	    NULL)
		return -1;
	return 0;
}

int
imap_account_start(struct account *a)
{
	struct imap_account *ia;
	char	       **names = a->cf->folders;
	size_t		 n, i, maxc = a->cf->max_connections;
	struct folder	*f = NULL, *last = NULL;

	for (n = 0; names != NULL && names[n] != NULL; n++)
		;
	if (n == 0)
		return -1;
	if (maxc == 0)
		maxc = 1;
	ia = xcalloc(1, sizeof(*ia));
	ia->acct = a;
	a->imap = ia;
	/*
	 * One connection per literal folder up to max_connections; the
	 * last of them also polls the folders left over.  A wildcard entry
	 * gets a connection of its own that LISTs and polls what matches.
	 */
	for (i = 0; i < n; i++) {
		if (has_wildcard(names[i]) && ia->nf < maxc) {
			f = folder_new(ia);
			f->pattern = xstrdup(names[i]);
		} else if (!has_wildcard(names[i]) && ia->nf < maxc) {
			f = folder_new(ia);
			last = f;
		} else if (last != NULL) {
			f = last;
		} else {
			log_warnx(a->cf->name, "folder %s: over "
			    "max_connections; not fetched", names[i]);
			continue;
		}
		if (f->pattern == NULL) {
			f->names = xreallocarray(f->names, f->nnames + 1,
			    sizeof(*f->names));
			f->names[f->nnames++] = xstrdup(names[i]);
		}
		if (f != last || f->nnames == 1) {
			ia->f = xreallocarray(ia->f, ia->nf + 1,
			    sizeof(*ia->f));
			ia->f[ia->nf++] = f;
		}
	}
	for (i = 0; i < ia->nf; i++) {
		if (folder_connect(ia->f[i]) == -1) {
			ia->f[i]->err = ERR_LOCAL;
			str_lcpy(ia->f[i]->why, "cannot start a connection",
			    sizeof(ia->f[i]->why));
			ia->running++;
			folder_end(ia->f[i]);
			continue;
		}
		ia->running++;
	}
	return ia->nf > 0 ? 0 : -1;
}

void
imap_account_durable(struct imap_account *ia)
{
	size_t	 i;

	for (i = 0; i < ia->nf; i++) {
		struct folder	*f = ia->f[i];
		struct fmsg	*m, *next;

		/* Nothing here waited for the commit (most idling folders). */
		if (TAILQ_EMPTY(&f->msgs))
			continue;
		for (m = TAILQ_FIRST(&f->msgs); m != NULL; m = next) {
			next = TAILQ_NEXT(m, entry);
			if (m->state != FM_ACCEPTED ||
			    !store_durable(f->eng->store, m->seq))
				continue;
			/* Durable: now the server may be changed. */
			act(f, m, clock_wall());
			KILLPOINT("fetch.durable");
			m->state = FM_DONE;
			TAILQ_REMOVE(&f->msgs, m, entry);
			msg_release(m);
			free(m);
		}
		flush(f);
		folder_continue(f);
		if (f->actions > 0) KILLPOINT("fetch.delete_sent");
	}
}

void
imap_account_store_failed(struct imap_account *ia)
{
	size_t	 i;

	for (i = 0; i < ia->nf; i++) {
		struct folder	*f = ia->f[i];
		struct fmsg	*m, *next;

		for (m = TAILQ_FIRST(&f->msgs); m != NULL; m = next) {
			next = TAILQ_NEXT(m, entry);
			if (m->state != FM_ACCEPTED)
				continue;
			note_fail(f, m->uid);
			TAILQ_REMOVE(&f->msgs, m, entry);
			msg_release(m);
			free(m);
		}
		folder_fail(f, ERR_LOCAL, "the UID store failed");
	}
}

void
imap_account_stop(struct imap_account *ia)
{
	size_t	 i;

	ia->stopping = 1;
	for (i = 0; i < ia->nf; i++) {
		struct folder *f = ia->f[i];

		if (f->ended)
			continue;
		if (f->p == NULL) {
			conn_gone(f);
			continue;
		}
		if (f->phase == FP_IDLE) {
			imap_idle_done(f->p);
			flush(f);
		} else if (f->cur_msg != NULL && !outstanding(f)) {
			/* Mid-transfer: nothing is lost by dropping it. */
			conn_gone(f);
		} else
			folder_continue(f);
	}
}

void
imap_account_set_cf(struct imap_account *ia, const struct config_account *cf)
{
	size_t	 i;

	for (i = 0; i < ia->nf; i++)
		ia->f[i]->cf = cf;
}

void
imap_account_free(struct imap_account **iap)
{
	struct imap_account *ia = *iap;
	size_t		 i;

	if (ia == NULL)
		return;
	*iap = NULL;
	for (i = 0; i < ia->nf; i++)
		folder_free(&ia->f[i]);
	free(ia->f);
	free(ia);
}
