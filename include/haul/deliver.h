/* ISC licence; see LICENSE. */
#ifndef HAUL_DELIVER_H
#define HAUL_DELIVER_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/smtp.h"

/*
 * The delivery side of hauld: jobs in, one result per job out.  It hides
 * whether messages go to an SMTP or LMTP server (a pool of reused
 * connections) or to an LDA.  Results are always reported from the event
 * loop, never from inside dlv_submit(), so callers need not be reentrant.
 */

enum dlv_outcome {
	DLV_ACCEPTED,		/* final 2xx for every recipient */
	DLV_TEMPFAIL,		/* keep on the server, retry later */
	DLV_REFUSED,		/* 5xx: keep on the server, never retry alone */
};

struct dlv_result {
	enum dlv_outcome outcome;
	int		 unknown;	/* lost after the end of data: the MTA
					   may hold a copy (duplicate risk) */
	int		 code;		/* deciding reply code, 0 for LDA */
	char		 queue_id[SMTP_QUEUE_ID_MAX + 1];
	char		 text[SMTP_TEXT_MAX];
};

struct spool;
struct dlv_job;
typedef void (*dlv_done_fn)(struct dlv_job *, const struct dlv_result *);

/*
 * One message to deliver.  The submitter fills the public part and keeps
 * the job (and the spool) alive until done runs or dlv_cancel() returns.
 */
struct dlv_job {
	const char	*account;
	const char	*uid;		/* for the LDA's %i */
	char		*from;		/* "" = <> (owned by the job) */
	char	       **rcpt;		/* owned, NULL-terminated */
	size_t		 nrcpt;
	/*
	 * Recipients whose outcome is final (2xx or 5xx) while others got
	 * 4xx: filled by delivery when a job ends DLV_TEMPFAIL with some
	 * recipients done, so the owner records them (store_rcpt_done) and
	 * a later attempt goes only to the rest.  Owned; freed by clear.
	 */
	char	       **rcpt_final;
	size_t		 nrcpt_final;
	unsigned	 lda_delivered;	/* LDA: recipients that took it */
	struct buf	 prefix;	/* headers to prepend (owned) */
	struct spool	*spool;		/* the message (borrowed) */
	int		 eightbit;
	int		 use_xclient;	/* announce xclient to the MTA */
	struct smtp_xclient xclient;	/* strings borrowed from the owner */
	dlv_done_fn	 done;
	void		*arg;

	/* Private to deliver.c. */
	struct delivery	*dlv;
	struct dlv_link	*link;
	struct lda_run	*lda;
	size_t		 lda_next;	/* next recipient for the LDA */
	size_t		 prefix_off;
	int		 queued;
	int		 finished;
	int		 lda_active;
	int		 requeued;	/* a fresh connection was tried */
	unsigned	 rcpt_retries;	/* LMTP: 4xx recipients retried */
	struct dlv_result result;
	TAILQ_ENTRY(dlv_job) entry;
};

struct delivery;

struct delivery	*dlv_new(struct event_base *, const struct config_delivery *);
void		 dlv_free(struct delivery **);
/* Queue a job; its done callback runs later, exactly once. */
void		 dlv_submit(struct delivery *, struct dlv_job *);
/*
 * Withdraw a job (its session is going away).  If the job is already on
 * the wire its connection is closed, so no half-sent message is ever
 * completed; done is not called.
 */
void		 dlv_cancel(struct delivery *, struct dlv_job *);
/* Release the job's owned fields (not the spool). */
void		 dlv_job_clear(struct dlv_job *);
/* Connections open now (for status). */
size_t		 dlv_links(const struct delivery *);
/* Close idle connections (at shutdown). */
void		 dlv_close_idle(struct delivery *);
/* 1 while any job is queued or in flight. */
int		 dlv_busy(const struct delivery *);

#endif
