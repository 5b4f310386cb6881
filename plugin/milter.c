/* ISC licence; see LICENSE. */
#include <sys/socket.h>

#include <libmilter/mfapi.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/clock.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/milter.h"
#include "haul/milter_decide.h"
#include "haul/milter_shim.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/*
 * The libmilter callbacks: thin glue between the MTA and plugin/decide.c.
 * libmilter may run the callbacks of one connection on different threads,
 * so everything per connection hangs off the context (setpriv), and the
 * configuration is a reference-counted snapshot held for one whole
 * message.  Every decision is taken at end of message; the earlier stages
 * only collect (over a unix socket without even a reply).
 */

/* State of one MTA connection. */
struct mconn {
	unsigned long	 pflags;	/* negotiated protocol flags */
	struct msnap	*snap;		/* held from MAIL FROM to the end */
	struct md_msg	*msg;
	int		 in_msg;
	char		 qid[MD_QUEUE_ID_MAX + 1];	/* {i} at MAIL */
};

static const struct milter_shim	*shim = &milter_shim_libmilter;
static atomic_uint		 busy;
static int			 over_tcp;

void
milter_set_shim(const struct milter_shim *s)
{
	shim = s != NULL ? s : &milter_shim_libmilter;
}

void
milter_set_tcp(int on)
{
	over_tcp = on;
}

unsigned
milter_busy(void)
{
	return atomic_load(&busy);
}

static struct mconn *
conn_get(SMFICTX *ctx)
{
	struct mconn	*c;

	if ((c = shim->getpriv(ctx)) != NULL)
		return c;
	c = xcalloc(1, sizeof(*c));
	c->msg = md_msg_new();
	if (shim->setpriv(ctx, c) != MI_SUCCESS) {
		log_warnx(NULL, "cannot attach connection state");
		md_msg_free(&c->msg);
		free(c);
		return NULL;
	}
	return c;
}

/* End the current message, if any: release what it held. */
static void
msg_end(struct mconn *c)
{
	if (c->in_msg) {
		atomic_fetch_sub(&busy, 1);
		c->in_msg = 0;
	}
	msnap_release(&c->snap);
	md_msg_reset(c->msg);
	c->qid[0] = '\0';
}

/* CONTINUE, or no reply at all if the MTA agreed to that for the stage. */
static sfsistat
go_on(const struct mconn *c, unsigned long noreply)
{
	return (c->pflags & noreply) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat
mlt_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
    unsigned long f2, unsigned long f3, unsigned long *pf0,
    unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	struct mconn	*c;

	(void)f2;
	(void)f3;
	if ((f0 & MILTER_ACTIONS) != MILTER_ACTIONS) {
		log_warnx(NULL, "the MTA offers actions 0x%lx, haul-milter "
		    "needs 0x%lx (add/change headers, add/delete recipients)",
		    f0, (unsigned long)MILTER_ACTIONS);
		return SMFIS_REJECT;
	}
	if ((c = conn_get(ctx)) == NULL)
		return SMFIS_REJECT;
	/*
	 * Only what we use: no body, no HELO, no replies before the end.
	 * Over TCP, though, every packet the MTA sends must be answered
	 * (so DATA stays, and no "no reply" stages): an unanswered packet
	 * is ACKed late, and the MTA's Nagle algorithm holds its next one
	 * until then, 40 ms a message.
	 */
	*pf0 = MILTER_ACTIONS | (f0 & SMFIF_SETSYMLIST);
	*pf1 = f1 & (over_tcp ? MILTER_NOSTEPS & ~SMFIP_NODATA :
	    MILTER_NOSTEPS | MILTER_NOREPLY);
	*pf2 = 0;
	*pf3 = 0;
	c->pflags = *pf1;
	if ((f0 & SMFIF_SETSYMLIST) &&
	    (shim->setsymlist(ctx, SMFIM_CONNECT, "{daemon_name}") !=
	    MI_SUCCESS ||
	    shim->setsymlist(ctx, SMFIM_ENVFROM, "{daemon_name} {i}") !=
	    MI_SUCCESS ||
	    shim->setsymlist(ctx, SMFIM_EOM, "{i}") != MI_SUCCESS))
		log_warnx(NULL, "cannot request macros: relying on the MTA's "
		    "default macro lists");
	return SMFIS_CONTINUE;
}

sfsistat
mlt_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	struct mconn	*c;

	(void)host;
	(void)sa;
	if ((c = conn_get(ctx)) == NULL)
		return SMFIS_TEMPFAIL;
	md_set_daemon_name(c->msg, shim->getsymval(ctx, "{daemon_name}"));
	return go_on(c, SMFIP_NR_CONN);
}

sfsistat
mlt_envfrom(SMFICTX *ctx, char **argv)
{
	struct mconn	*c;
	const char	*v;

	(void)argv;
	if ((c = conn_get(ctx)) == NULL)
		return SMFIS_TEMPFAIL;
	msg_end(c);
	c->snap = msnap_acquire();
	c->in_msg = 1;
	atomic_fetch_add(&busy, 1);
	/* Sendmail may only say it here; Postfix already did at connect. */
	if ((v = shim->getsymval(ctx, "{daemon_name}")) != NULL)
		md_set_daemon_name(c->msg, v);
	if ((v = shim->getsymval(ctx, "{i}")) != NULL)
		str_lcpy(c->qid, v, sizeof(c->qid));
	return go_on(c, SMFIP_NR_MAIL);
}

sfsistat
mlt_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mconn	*c;

	if ((c = conn_get(ctx)) == NULL)
		return SMFIS_TEMPFAIL;
	if (c->snap != NULL && argv != NULL && argv[0] != NULL)
		md_add_rcpt(c->msg, &c->snap->policy, argv[0]);
	return go_on(c, SMFIP_NR_RCPT);
}

sfsistat
mlt_header(SMFICTX *ctx, char *name, char *value)
{
	struct mconn	*c;

	if ((c = conn_get(ctx)) == NULL)
		return SMFIS_TEMPFAIL;
	if (c->snap != NULL && name != NULL)
		md_add_header(c->msg, &c->snap->policy, name, value);
	return go_on(c, SMFIP_NR_HDR);
}

static const char *
act_name(enum md_act_kind k)
{
	switch (k) {
	case MD_ACT_DELHDR:
		return "chgheader";
	case MD_ACT_ADDRCPT:
		return "addrcpt";
	case MD_ACT_DELRCPT:
		return "delrcpt";
	case MD_ACT_ADDHDR:
		return "addheader";
	}
	return "?";
}

/* Ask the MTA for every edit, in order; -1 at the first it refuses. */
static int
apply(SMFICTX *ctx, const struct md_result *r, const char *acct,
    const char *qid)
{
	const struct md_action *a;
	size_t	 i;
	int	 rv = MI_FAILURE;

	for (i = 0; i < r->nacts; i++) {
		a = &r->acts[i];
		switch (a->kind) {
		case MD_ACT_DELHDR:
			rv = shim->chgheader(ctx, a->name, a->index, NULL);
			break;
		case MD_ACT_ADDRCPT:
			rv = shim->addrcpt(ctx, a->value);
			break;
		case MD_ACT_DELRCPT:
			rv = shim->delrcpt(ctx, a->value);
			break;
		case MD_ACT_ADDHDR:
			rv = shim->addheader(ctx, a->name, a->value);
			break;
		}
		if (rv != MI_SUCCESS) {
			log_warnx(acct, "%s: smfi_%s(%s) failed", qid,
			    act_name(a->kind), a->name != NULL ? a->name :
			    a->value);
			return -1;
		}
	}
	return 0;
}

static void
set_reply(SMFICTX *ctx, const char *rcode, const char *xcode,
    const char *reason)
{
	char	 text[MD_REASON_MAX + 32];

	snprintf(text, sizeof(text), "haul-milter: %s", reason);
	if (shim->setreply(ctx, rcode, xcode, text) != MI_SUCCESS)
		log_warnx(NULL, "smfi_setreply(%s %s) failed", rcode, xcode);
}

/* The internal-failure policy: tempfail, or let the message go on. */
static sfsistat
on_error(SMFICTX *ctx, const struct msnap *s, const char *why)
{
	if (s == NULL || s->cf->milter.on_error == ON_ERROR_TEMPFAIL) {
		set_reply(ctx, "451", "4.3.0", why);
		return SMFIS_TEMPFAIL;
	}
	return SMFIS_CONTINUE;
}

/* The verdict for one finished message. */
static sfsistat
finish(SMFICTX *ctx, struct mconn *c, const char *qid)
{
	struct md_result r;
	const char	*acct;
	sfsistat	 rc = SMFIS_CONTINUE;

	if (c->snap == NULL) {
		log_warnx(NULL, "%s: no configuration loaded", qid);
		return on_error(ctx, NULL, "no configuration loaded");
	}
	md_decide(&c->snap->policy, c->msg, clock_wall(),
	    strcmp(qid, "NOQUEUE") == 0 ? NULL : qid, &r);
	acct = r.account[0] != '\0' ? r.account : NULL;
	switch (r.verdict) {
	case MD_REJECT:
		log_notice(acct, "%s: rejected: %s", qid, r.reason);
		set_reply(ctx, r.rcode, r.xcode, r.reason);
		rc = SMFIS_REJECT;
		break;
	case MD_ERROR:
		log_warnx(acct, "%s: %s (on_error %s)", qid, r.reason,
		    c->snap->cf->milter.on_error == ON_ERROR_TEMPFAIL ?
		    "tempfail" : "accept: passed on untrusted");
		if ((rc = on_error(ctx, c->snap, r.reason)) == SMFIS_CONTINUE)
			(void)apply(ctx, &r, acct, qid);
		break;
	case MD_ACCEPT:
		if (apply(ctx, &r, acct, qid) == -1) {
			rc = on_error(ctx, c->snap, "cannot edit the message");
			break;
		}
		if (acct != NULL)
			log_info(acct, "%s: %s", qid, r.summary);
		else if (md_strip_count(c->msg) > 0)
			log_notice(NULL, "%s: %s", qid, r.summary);
		else
			log_debug(NULL, "%s: %s", qid, r.summary);
		break;
	}
	md_result_free(&r);
	return rc;
}

sfsistat
mlt_eom(SMFICTX *ctx)
{
	struct mconn	*c;
	const char	*v;
	char		 qid[MD_QUEUE_ID_MAX + 1];
	sfsistat	 rc;

	if ((c = conn_get(ctx)) == NULL) {
		set_reply(ctx, "451", "4.3.0", "no connection state");
		return SMFIS_TEMPFAIL;
	}
	/* Postfix knows the queue id only after the first RCPT: ask late. */
	if ((v = shim->getsymval(ctx, "{i}")) != NULL && v[0] != '\0')
		str_lcpy(qid, v, sizeof(qid));
	else if (c->qid[0] != '\0')
		str_lcpy(qid, c->qid, sizeof(qid));
	else
		str_lcpy(qid, "NOQUEUE", sizeof(qid));
	rc = finish(ctx, c, qid);
	msg_end(c);
	return rc;
}

sfsistat
mlt_abort(SMFICTX *ctx)
{
	struct mconn	*c;

	if ((c = shim->getpriv(ctx)) != NULL)
		msg_end(c);
	return SMFIS_CONTINUE;
}

sfsistat
mlt_close(SMFICTX *ctx)
{
	struct mconn	*c;

	if ((c = shim->getpriv(ctx)) == NULL)
		return SMFIS_CONTINUE;
	msg_end(c);
	md_msg_free(&c->msg);
	free(c);
	shim->setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

void
milter_desc(struct smfiDesc *d)
{
	memset(d, 0, sizeof(*d));
	d->xxfi_name = "haul-milter";
	d->xxfi_version = SMFI_VERSION;
	d->xxfi_flags = MILTER_ACTIONS;
	d->xxfi_connect = mlt_connect;
	d->xxfi_envfrom = mlt_envfrom;
	d->xxfi_envrcpt = mlt_envrcpt;
	d->xxfi_header = mlt_header;
	d->xxfi_eom = mlt_eom;
	d->xxfi_abort = mlt_abort;
	d->xxfi_close = mlt_close;
	d->xxfi_negotiate = mlt_negotiate;
}
