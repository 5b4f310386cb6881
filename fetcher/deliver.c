/* ISC licence; see LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "haul/conn.h"
#include "haul/deliver.h"
#include "haul/killpoint.h"
#include "haul/lda.h"
#include "haul/log.h"
#include "haul/spool.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/* Bytes of message data queued per pump; the conn refills below 64 KiB. */
#define DLV_PUMP_BUDGET		(256 * 1024)
/* An unused MTA connection is closed (QUIT) after this long. */
#define DLV_IDLE_SECS		30
/* LMTP recipients that got 4xx are retried this often in one job. */
#define DLV_RCPT_RETRIES	2

TAILQ_HEAD(dlv_jobq, dlv_job);

struct dlv_link {
	struct delivery	*dlv;
	struct conn	*conn;
	struct smtp_conn *smtp;
	struct dlv_job	*job;		/* in flight, or NULL */
	struct event	*idle_ev;
	int		 ready;		/* greeting/EHLO done at least once */
	int		 dead;
	TAILQ_ENTRY(dlv_link) entry;
};

TAILQ_HEAD(dlv_linkq, dlv_link);

struct delivery {
	struct event_base	*base;
	const struct config_delivery *cf;
	char			*host;
	unsigned		 port;
	char			*unix_path;
	struct dlv_jobq		 queue;		/* waiting for a link */
	struct dlv_jobq		 finished;	/* results to report */
	struct dlv_linkq	 links;
	size_t			 nlinks;
	struct event		*report_ev;
	struct event		*kick_ev;
	size_t			 inflight;
	size_t			 nlda;		/* jobs inside the LDA now */
};

static void	link_free(struct dlv_link *);
static void	dispatch(struct delivery *);
static void	fail_queue(struct delivery *, const char *);

/* Parse delivery.target: "unix:/path", "host:port" or "[v6]:port". */
static int
parse_target(struct delivery *d, const char *t)
{
	const char	*colon;
	uint64_t	 port;

	if (strncmp(t, "unix:", 5) == 0) {
		d->unix_path = xstrdup(t + 5);
		return 0;
	}
	if (t[0] == '[') {
		const char *end = strchr(t, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		d->host = xstrndup(t + 1, (size_t)(end - t - 1));
		colon = end + 1;
	} else {
		if ((colon = strrchr(t, ':')) == NULL)
			return -1;
		d->host = xstrndup(t, (size_t)(colon - t));
	}
	if (str_to_u64(colon + 1, strlen(colon + 1), 65535, &port) == -1 ||
	    port == 0)
		return -1;
	d->port = (unsigned)port;
	return 0;
}

/* Report finished jobs from the loop (never inside dlv_submit). */
static void
report_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct delivery	*d = arg;
	struct dlv_job	*j;

	while ((j = TAILQ_FIRST(&d->finished)) != NULL) {
		TAILQ_REMOVE(&d->finished, j, entry);
		j->queued = 0;
		j->done(j, &j->result);
	}
}

static void
kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	dispatch(arg);
}

static void
finish_job(struct dlv_job *j, enum dlv_outcome o, int code, int unknown,
    const char *queue_id, const char *text)
{
	struct delivery	*d = j->dlv;

	if (j->finished)
		return;
	j->finished = 1;
	if (o == DLV_ACCEPTED) KILLPOINT("deliver.accepted");
	j->link = NULL;
	if (j->lda_active) {
		j->lda_active = 0;
		d->nlda--;
		event_active(d->kick_ev, EV_TIMEOUT, 0);
	}
	j->result.outcome = o;
	j->result.code = code;
	j->result.unknown = unknown;
	str_lcpy(j->result.queue_id, queue_id != NULL ? queue_id : "",
	    sizeof(j->result.queue_id));
	str_lcpy(j->result.text, text != NULL ? text : "",
	    sizeof(j->result.text));
	d->inflight--;
	TAILQ_INSERT_TAIL(&d->finished, j, entry);
	j->queued = 1;
	event_active(d->report_ev, EV_TIMEOUT, 0);
}

struct delivery *
dlv_new(struct event_base *base, const struct config_delivery *cf)
{
	struct delivery	*d;

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->cf = cf;
	TAILQ_INIT(&d->queue);
	TAILQ_INIT(&d->finished);
	TAILQ_INIT(&d->links);
	if (cf->mode != DELIVER_LDA && parse_target(d, cf->target) == -1) {
		log_warnx(NULL, "delivery target %s: not host:port or "
		    "unix:/path", cf->target);
		free(d);
		return NULL;
	}
	d->report_ev = event_new(base, -1, 0, report_cb, d);
	d->kick_ev = event_new(base, -1, 0, kick_cb, d);
	return d;
}

void
dlv_free(struct delivery **dp)
{
	struct delivery	*d = *dp;
	struct dlv_link	*l;

	if (d == NULL)
		return;
	*dp = NULL;
	while ((l = TAILQ_FIRST(&d->links)) != NULL)
		link_free(l);
	event_free(d->report_ev);
	event_free(d->kick_ev);
	free(d->host);
	free(d->unix_path);
	free(d);
}

void
dlv_job_clear(struct dlv_job *j)
{
	size_t	 i;

	free(j->from);
	j->from = NULL;
	if (j->rcpt != NULL) {
		for (i = 0; i < j->nrcpt; i++)
			free(j->rcpt[i]);
		free(j->rcpt);
		j->rcpt = NULL;
	}
	j->nrcpt = 0;
	for (i = 0; i < j->nrcpt_final; i++)
		free(j->rcpt_final[i]);
	free(j->rcpt_final);
	j->rcpt_final = NULL;
	j->nrcpt_final = 0;
	buf_free(&j->prefix);
}

/* A recipient's outcome is final (its string moves to rcpt_final). */
static void
rcpt_final(struct dlv_job *j, char *addr)
{
	j->rcpt_final = xreallocarray(j->rcpt_final, j->nrcpt_final + 1,
	    sizeof(*j->rcpt_final));
	j->rcpt_final[j->nrcpt_final++] = addr;
}

/* The message as the MTA sees it: the prepended headers, then the spool. */
static ssize_t
body_read(void *arg, void *dst, size_t len)
{
	struct dlv_job	*j = arg;

	if (j->prefix_off < j->prefix.len) {
		size_t	 n = j->prefix.len - j->prefix_off;

		if (n > len)
			n = len;
		memcpy(dst, j->prefix.data + j->prefix_off, n);
		j->prefix_off += n;
		return (ssize_t)n;
	}
	return spool_read(j->spool, dst, len);
}

static int
body_rewind(void *arg)
{
	struct dlv_job	*j = arg;

	j->prefix_off = 0;
	spool_rewind(j->spool);
	return 0;
}

static uint64_t
job_size(const struct dlv_job *j)
{
	return j->prefix.len + spool_size(j->spool);
}

/* --- SMTP / LMTP ------------------------------------------------------ */

static void
link_flush(struct dlv_link *l)
{
	struct buf	*out = smtp_output(l->smtp);

	if (out->len == 0 || l->dead)
		return;
	conn_write(l->conn, out->data, out->len);
	KILLPOINT2("smtp.queued.", smtp_state_name(smtp_state(l->smtp)));
	buf_reset(out);
}

static void
link_timeouts(struct dlv_link *l)
{
	const struct config_delivery *cf = l->dlv->cf;

	switch (smtp_timeout_kind(l->smtp)) {
	case SMTP_TIMEOUT_NONE:
		conn_set_idle_timeout(l->conn, 0);
		break;
	case SMTP_TIMEOUT_COMMAND:
	case SMTP_TIMEOUT_DATA_BLOCK:
		conn_set_idle_timeout(l->conn, cf->command_timeout);
		break;
	case SMTP_TIMEOUT_FINAL:
		conn_set_idle_timeout(l->conn, cf->final_timeout);
		break;
	}
}

static void
link_pump(struct dlv_link *l)
{
	if (l->dead)
		return;
	if (smtp_pump_wanted(l->smtp) &&
	    conn_output_pending(l->conn) < DLV_PUMP_BUDGET) {
		if (smtp_pump(l->smtp, DLV_PUMP_BUDGET) == PS_ERROR) {
			/* Our spool failed mid-message: the connection must
			 * go, so the half message is never terminated. */
			link_flush(l);
			link_free(l);
			return;
		}
	}
	link_flush(l);
	link_timeouts(l);
}

static void
link_idle_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct dlv_link	*l = arg;

	if (l->job == NULL && smtp_quit(l->smtp) == 0)
		link_flush(l);
	else
		link_free(l);
}

/* A link has nothing to do: take the next job, or start the idle timer. */
static void
link_idle(struct dlv_link *l)
{
	struct timeval	 tv = { DLV_IDLE_SECS, 0 };

	l->job = NULL;
	if (!TAILQ_EMPTY(&l->dlv->queue)) {
		event_active(l->dlv->kick_ev, EV_TIMEOUT, 0);
		return;
	}
	evtimer_add(l->idle_ev, &tv);
}

static void
smtp_result_cb(void *arg, const struct smtp_result *r)
{
	struct dlv_link	*l = arg;
	struct dlv_job	*j = l->job;
	enum dlv_outcome o;
	size_t		 i, keep = 0;

	if (j == NULL)
		return;
	switch (r->outcome) {
	case SMTP_ACCEPTED:
		o = DLV_ACCEPTED;
		break;
	case SMTP_REFUSED:
		o = DLV_REFUSED;
		break;
	case SMTP_PARTIAL:
		/*
		 * Some recipients have it.  Recipients that got 4xx are
		 * retried on this job (only they); 2xx and 5xx ones are
		 * final.  If any 4xx remains, the message stays TEMPFAIL
		 * and the final ones are handed back (rcpt_final) for the
		 * owner to record, so a later session sends only to the
		 * rest.
		 */
		for (i = 0; i < r->nrcpt; i++)
			if (r->rcpt[i].code >= 400 && r->rcpt[i].code < 500)
				keep++;
		if (keep == 0) {
			o = DLV_ACCEPTED;
			log_warnx(j->account, "uid %s: some recipients refused "
			    "the message: %s", j->uid, r->text);
			break;
		}
		if (!r->unknown && j->rcpt_retries < DLV_RCPT_RETRIES) {
			char	**nr = xcalloc(keep + 1, sizeof(*nr));
			size_t	  k = 0;

			for (i = 0; i < r->nrcpt; i++) {
				if (r->rcpt[i].code >= 400 &&
				    r->rcpt[i].code < 500)
					nr[k++] = j->rcpt[i];
				else
					rcpt_final(j, j->rcpt[i]);
			}
			free(j->rcpt);
			j->rcpt = nr;
			j->nrcpt = keep;
			j->rcpt_retries++;
			l->job = NULL;
			j->link = NULL;
			TAILQ_INSERT_HEAD(&l->dlv->queue, j, entry);
			j->queued = 1;
			link_idle(l);
			return;
		}
		/* The recipients whose fate is known and final. */
		for (i = 0; i < r->nrcpt; i++)
			if (!r->rcpt[i].unknown && (r->rcpt[i].code < 400 ||
			    r->rcpt[i].code >= 500))
				rcpt_final(j, xstrdup(j->rcpt[i]));
		o = DLV_TEMPFAIL;
		break;
	case SMTP_TEMPFAIL:
	default:
		o = DLV_TEMPFAIL;
		break;
	}
	l->job = NULL;
	finish_job(j, o, r->code, r->unknown, r->queue_id, r->text);
	if (!l->dead)
		link_idle(l);
}

static void
link_start_job(struct dlv_link *l, struct dlv_job *j)
{
	struct smtp_txn	 t;

	memset(&t, 0, sizeof(t));
	evtimer_del(l->idle_ev);
	l->job = j;
	j->link = l;
	t.acct = j->account;
	t.from = j->from;
	t.rcpt = (const char *const *)j->rcpt;
	t.nrcpt = j->nrcpt;
	t.body.read = body_read;
	t.body.rewind = body_rewind;
	t.body.arg = j;
	t.body.size = job_size(j);
	t.eightbit = j->eightbit;
	t.xclient = j->use_xclient ? &j->xclient : NULL;
	t.result = smtp_result_cb;
	t.arg = l;
	if (smtp_submit(l->smtp, &t) == -1) {
		/*
		 * This connection cannot take it (XCLIENT attributes of an
		 * earlier message would stick): once, try a fresh one.
		 */
		l->job = NULL;
		j->link = NULL;
		if (!j->requeued) {
			j->requeued = 1;
			TAILQ_INSERT_HEAD(&l->dlv->queue, j, entry);
			j->queued = 1;
		} else
			finish_job(j, DLV_TEMPFAIL, 451, 0, NULL, "local "
			    "error: the MTA session cannot take a message");
		link_free(l);
		return;
	}
	link_pump(l);
}

static enum proto_status
feed(void *m, const void *d, size_t n, size_t *used)
{
	return smtp_input(m, d, n, used);
}

static void
link_ready_cb(struct conn *c, void *arg)
{
	struct dlv_link	*l = arg;

	link_timeouts(l);
}

static void
link_readable_cb(struct conn *c, void *arg)
{
	struct dlv_link	*l = arg;
	KILLPOINT2("smtp.reply.", smtp_state_name(smtp_state(l->smtp)));
	enum proto_status st = conn_feed(c, feed, l->smtp);

	if (st == PS_ERROR || st == PS_DONE) {
		if (st == PS_ERROR)
			log_warnx(NULL, "delivery connection %s: %s",
			    conn_peer(l->conn), smtp_error_text(l->smtp));
		/*
		 * An MTA that refuses the session itself (greeting or EHLO)
		 * would refuse every new connection too: fail the waiting
		 * jobs instead of reconnecting in a loop.
		 */
		if (st == PS_ERROR && !l->ready && l->job == NULL)
			fail_queue(l->dlv, smtp_error_text(l->smtp));
		link_flush(l);
		link_free(l);
		return;
	}
	if (smtp_is_idle(l->smtp)) {
		l->ready = 1;
		if (l->job == NULL)
			link_idle(l);
	}
	link_pump(l);
}

static void
link_writable_cb(struct conn *c, void *arg)
{
	KILLPOINT2("smtp.sent.",
	    smtp_state_name(smtp_state(((struct dlv_link *)arg)->smtp)));
	link_pump(arg);
}

static void
link_failed_cb(struct conn *c, void *arg, enum err_class cls,
    const char *why)
{
	struct dlv_link	*l = arg;
	struct delivery	*d = l->dlv;
	int		 was_ready = l->ready;

	l->dead = 1;
	if (l->job != NULL)
		smtp_conn_lost(l->smtp, why);
	if (!was_ready && l->job == NULL) {
		/*
		 * The MTA could not even be reached: every waiting job
		 * would meet the same fate, so fail them now rather than
		 * loop on reconnects.
		 */
		log_warnx(NULL, "delivery to %s failed: %s", conn_peer(c), why);
		fail_queue(d, why);
	}
	link_free(l);
}

/* Every queued job fails temporarily (the MTA is unusable right now). */
static void
fail_queue(struct delivery *d, const char *why)
{
	struct dlv_job	*j;

	while ((j = TAILQ_FIRST(&d->queue)) != NULL) {
		TAILQ_REMOVE(&d->queue, j, entry);
		j->queued = 0;
		finish_job(j, DLV_TEMPFAIL, 421, 0, NULL, why);
	}
}

static const struct conn_cb link_cb = {
	.ready = link_ready_cb,
	.readable = link_readable_cb,
	.writable = link_writable_cb,
	.tls_ready = NULL,
	.failed = link_failed_cb,
};

static struct dlv_link *
link_new(struct delivery *d)
{
	struct smtp_config sc;
	struct conn_params cp;
	struct dlv_link	*l;

	memset(&sc, 0, sizeof(sc));
	sc.lmtp = d->cf->mode == DELIVER_LMTP;
	sc.helo_name = d->cf->helo_name;
	memset(&cp, 0, sizeof(cp));
	cp.host = d->host;
	cp.port = d->port;
	cp.unix_path = d->unix_path;
	cp.connect_timeout = d->cf->connect_timeout;

	l = xcalloc(1, sizeof(*l));
	l->dlv = d;
	if ((l->smtp = smtp_new(&sc)) == NULL) {
		free(l);
		return NULL;
	}
	l->idle_ev = evtimer_new(d->base, link_idle_cb, l);
	if ((l->conn = conn_new(d->base, &cp, &link_cb, l)) == NULL) {
		smtp_free(&l->smtp);
		event_free(l->idle_ev);
		free(l);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&d->links, l, entry);
	d->nlinks++;
	return l;
}

static void
link_free(struct dlv_link *l)
{
	struct delivery	*d = l->dlv;
	struct dlv_job	*j = l->job;

	if (j != NULL) {
		/* Still unresolved: the connection is gone mid-job. */
		l->job = NULL;
		j->link = NULL;
		finish_job(j, DLV_TEMPFAIL, 421, 1, NULL,
		    "connection to the MTA lost");
	}
	TAILQ_REMOVE(&d->links, l, entry);
	d->nlinks--;
	conn_free(&l->conn);
	smtp_free(&l->smtp);
	event_free(l->idle_ev);
	free(l);
	if (!TAILQ_EMPTY(&d->queue))
		event_active(d->kick_ev, EV_TIMEOUT, 0);
}

/* --- LDA ---------------------------------------------------------------- */

static void	lda_next(struct dlv_job *);

static ssize_t
lda_body_read(void *arg, void *dst, size_t len)
{
	return body_read(arg, dst, len);
}

static void
lda_done_cb(void *arg, const struct lda_result *r)
{
	struct dlv_job	*j = arg;

	j->lda = NULL;
	/*
	 * One run per recipient: a refusal is final for that recipient
	 * only (as a 5xx to one RCPT); a temporary failure stops the job,
	 * handing back the recipients done so far (rcpt_final).
	 */
	switch (r->outcome) {
	case LDA_DELIVERED:
		j->lda_delivered++;
		/* FALLTHROUGH */
	case LDA_REFUSED:
		if (r->outcome == LDA_REFUSED && j->nrcpt > 1)
			log_warnx(j->account, "uid %s: the delivery agent "
			    "refused it for %s: %s", j->uid,
			    j->rcpt[j->lda_next - 1], r->why);
		rcpt_final(j, xstrdup(j->rcpt[j->lda_next - 1]));
		if (j->lda_next < j->nrcpt) {
			lda_next(j);
			return;
		}
		if (j->lda_delivered > 0)
			finish_job(j, DLV_ACCEPTED, 0, 0, NULL, r->why);
		else
			finish_job(j, DLV_REFUSED, 0, 0, NULL, r->why);
		break;
	case LDA_TEMPFAIL:
		finish_job(j, DLV_TEMPFAIL, 0, 0, NULL, r->why);
		break;
	}
}

/* One LDA run per recipient, one after the other. */
static void
lda_next(struct dlv_job *j)
{
	struct delivery	*d = j->dlv;
	struct lda_params p;

	body_rewind(j);
	memset(&p, 0, sizeof(p));
	p.argv_template = d->cf->lda_command;
	p.recipient = j->rcpt[j->lda_next++];
	p.account = j->account;
	p.uid = j->uid;
	p.timeout = d->cf->lda_timeout;
	p.read = lda_body_read;
	p.read_arg = j;
	if ((j->lda = lda_start(d->base, &p, lda_done_cb, j)) == NULL)
		finish_job(j, DLV_TEMPFAIL, 0, 0, NULL,
		    "cannot start the delivery agent");
}

/* --- queue -------------------------------------------------------------- */

static void
dispatch(struct delivery *d)
{
	struct dlv_link	*l;
	struct dlv_job	*j;

	while ((j = TAILQ_FIRST(&d->queue)) != NULL) {
		if (d->cf->mode == DELIVER_LDA) {
			if (d->nlda >= d->cf->max_connections)
				return;
			TAILQ_REMOVE(&d->queue, j, entry);
			j->queued = 0;
			j->lda_active = 1;
			d->nlda++;
			lda_next(j);
			continue;
		}
		TAILQ_FOREACH(l, &d->links, entry)
			if (!l->dead && l->job == NULL && l->ready &&
			    smtp_can_submit(l->smtp))
				break;
		if (l == NULL) {
			/* Open another connection if allowed and none is
			 * already on its way up. */
			int	 connecting = 0;

			TAILQ_FOREACH(l, &d->links, entry)
				if (!l->ready && !l->dead)
					connecting++;
			if (connecting == 0 && d->nlinks < d->cf->max_connections)
				if (link_new(d) == NULL) {
					TAILQ_REMOVE(&d->queue, j, entry);
					j->queued = 0;
					finish_job(j, DLV_TEMPFAIL, 451, 0,
					    NULL, "cannot open a connection "
					    "to the MTA");
					continue;
				}
			return;
		}
		TAILQ_REMOVE(&d->queue, j, entry);
		j->queued = 0;
		link_start_job(l, j);
	}
}

void
dlv_submit(struct delivery *d, struct dlv_job *j)
{
	j->dlv = d;
	j->link = NULL;
	j->lda = NULL;
	j->lda_next = 0;
	j->finished = 0;
	j->rcpt_retries = 0;
	j->lda_delivered = 0;
	j->lda_active = 0;
	j->requeued = 0;
	memset(&j->result, 0, sizeof(j->result));
	d->inflight++;
	TAILQ_INSERT_TAIL(&d->queue, j, entry);
	j->queued = 1;
	event_active(d->kick_ev, EV_TIMEOUT, 0);
}

void
dlv_cancel(struct delivery *d, struct dlv_job *j)
{
	if (j->finished) {
		if (j->queued) {
			TAILQ_REMOVE(&d->finished, j, entry);
			j->queued = 0;
		}
		return;
	}
	if (j->lda != NULL)
		lda_cancel(&j->lda);
	if (j->lda_active) {
		j->lda_active = 0;
		d->nlda--;
	}
	if (j->link != NULL) {
		struct dlv_link *l = j->link;

		/* Mid-transaction: drop the connection, never finish it. */
		l->job = NULL;
		j->link = NULL;
		link_free(l);
	} else if (j->queued) {
		TAILQ_REMOVE(&d->queue, j, entry);
		j->queued = 0;
	}
	j->finished = 1;
	d->inflight--;
}

size_t
dlv_links(const struct delivery *d)
{
	return d->nlinks;
}

void
dlv_close_idle(struct delivery *d)
{
	struct dlv_link	*l, *next;

	for (l = TAILQ_FIRST(&d->links); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (l->job == NULL)
			link_free(l);
	}
}

int
dlv_busy(const struct delivery *d)
{
	return d->inflight > 0;
}
