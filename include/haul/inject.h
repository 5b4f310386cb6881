/* ISC licence; see LICENSE. */
#ifndef HAUL_INJECT_H
#define HAUL_INJECT_H

#include <stdint.h>

#include "haul/deliver.h"
#include "haul/origin.h"

struct engine;
struct config_account;
struct msgf_info;
struct spool;

/*
 * What a fetched message is injected as: the envelope (sender from the
 * message's Return-Path or the configured policy; the account's
 * recipients, or the placeholder that haul-milter rewrites), the
 * prepended Received: and X-Haul-Token headers, and the XCLIENT origin.
 * Shared by the POP3 and IMAP sessions.
 */
struct store;

struct inject_src {
	const char	*proto;		/* "pop3", "imap" */
	const char	*mailbox;	/* "INBOX" for POP3 */
	uint32_t	 uidvalidity;	/* 0 for POP3 */
	const char	*uid;
	unsigned	 seq;		/* per-session counter, for the id */
};

/*
 * Fill j (zeroing it first) for spool/info; origin is storage the job's
 * XCLIENT strings point into and must live as long as the job.  The
 * caller sets j->done and j->arg.  Returns 0, or -1 (logged).
 */
int	 inject_build(struct dlv_job *j, struct engine *,
	    const struct config_account *, const struct inject_src *,
	    struct spool *, const struct msgf_info *, struct origin *origin);
/*
 * Partly delivered messages (some recipients 2xx/5xx, some 4xx): drop
 * from j the recipients the store records as done for (mbox, uid), so a
 * retry reaches only the rest; all of them done (the configuration
 * changed) keeps every recipient.  inject_record_done records a job's
 * rcpt_final after a temporary failure.  0, or -1 (logged: the store).
 */
int	 inject_skip_done(struct dlv_job *j, struct store *, int64_t mbox,
	    const char *uid);
int	 inject_record_done(const struct dlv_job *j, struct store *,
	    int64_t mbox, const char *uid);

#endif
