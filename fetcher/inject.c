/* ISC licence; see LICENSE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/clock.h"
#include "haul/config.h"
#include "haul/engine.h"
#include "haul/inject.h"
#include "haul/log.h"
#include "haul/message.h"
#include "haul/smtp.h"
#include "haul/store.h"
#include "haul/str.h"
#include "haul/token.h"
#include "haul/xmalloc.h"

static int
recipients(struct dlv_job *j, const struct config_delivery *dc,
    const struct config_account *cf, const char *uid)
{
	size_t	 i, n;

	if (dc->via_milter) {
		j->rcpt = xcalloc(2, sizeof(*j->rcpt));
		xasprintf(&j->rcpt[0], "%s@%s", cf->name,
		    dc->placeholder_domain);
		j->nrcpt = 1;
		return 0;
	}
	for (n = 0; cf->deliver_to != NULL && cf->deliver_to[n] != NULL; n++)
		;
	if (n == 0) {
		log_warnx(cf->name, "no deliver_to and via_milter is off: "
		    "nowhere to deliver uid %s", uid);
		return -1;
	}
	j->rcpt = xcalloc(n + 1, sizeof(*j->rcpt));
	for (i = 0; i < n; i++)
		j->rcpt[i] = xstrdup(cf->deliver_to[i]);
	j->nrcpt = n;
	return 0;
}

static void
xclient(struct dlv_job *j, const struct msgf_info *info, struct origin *o)
{
	const char	*vals[MSGF_MAX_RECEIVED];
	size_t		 lens[MSGF_MAX_RECEIVED], n;

	for (n = 0; n < info->nreceived && n < MSGF_MAX_RECEIVED; n++) {
		vals[n] = info->received[n].text;
		lens[n] = info->received[n].len;
	}
	if (origin_find(vals, lens, n, o) == 0) {
		j->use_xclient = 1;
		j->xclient.addr = o->addr;
		j->xclient.name = o->name;
		j->xclient.helo = o->helo[0] ? o->helo : NULL;
	}
}

int
inject_build(struct dlv_job *j, struct engine *e,
    const struct config_account *cf, const struct inject_src *src,
    struct spool *spool, const struct msgf_info *info, struct origin *origin)
{
	const struct config_delivery *dc = &e->cf->delivery;
	struct token_fields tf;
	struct trace_info ti;
	struct buf	 tok = BUF_INIT;
	const char	*from = "";
	char		 id[48];

	memset(j, 0, sizeof(*j));
	switch (dc->envelope_from) {
	case ENVFROM_RETURN_PATH:
		if (info->rp == MSGF_RP_ADDR && info->return_path != NULL &&
		    smtp_addr_ok(info->return_path, 0))
			from = info->return_path;
		break;
	case ENVFROM_NULL:
		break;
	case ENVFROM_FIXED:
		from = dc->envelope_from_address;
		break;
	}
	j->from = xstrdup(from);
	if (recipients(j, dc, cf, src->uid) == -1)
		goto fail;

	if (e->key.len > 0) {
		memset(&tf, 0, sizeof(tf));
		str_lcpy(tf.account, cf->name, sizeof(tf.account));
		str_lcpy(tf.mailbox, src->mailbox, sizeof(tf.mailbox));
		tf.uidvalidity = src->uidvalidity;
		str_lcpy(tf.uid, src->uid, sizeof(tf.uid));
		tf.time = (int64_t)clock_wall();
		if (token_make(&e->key, &tf, &tok) == -1) {
			log_warnx(cf->name, "cannot sign uid %s", src->uid);
			goto fail;
		}
	}
	snprintf(id, sizeof(id), "%llx.%u", (unsigned long long)clock_wall(),
	    src->seq);
	memset(&ti, 0, sizeof(ti));
	ti.from_host = cf->host;
	ti.proto = src->proto;
	ti.account = cf->name;
	ti.mailbox = src->uidvalidity != 0 ? src->mailbox : NULL;
	ti.uid = src->uid;
	ti.by_host = dc->helo_name;
	ti.id = id;
	ti.date = clock_wall();
	ti.token = tok.len > 0 ? tok.data : NULL;
	buf_init(&j->prefix, 0);
	if (msg_trace_headers(&j->prefix, &ti) == -1) {
		log_warnx(cf->name, "cannot build trace headers for uid %s",
		    src->uid);
		goto fail;
	}
	buf_free(&tok);

	if (info->nul_count > 0)
		log_warnx(cf->name, "uid %s holds %llu NUL bytes; delivered "
		    "as they are", src->uid,
		    (unsigned long long)info->nul_count);
	if ((dc->xclient || cf->xclient) && info->nreceived > 0)
		xclient(j, info, origin);
	j->account = cf->name;
	j->uid = src->uid;
	j->spool = spool;
	j->eightbit = info->eightbit > 0;
	return 0;
fail:
	buf_free(&tok);
	dlv_job_clear(j);
	return -1;
}

int
inject_skip_done(struct dlv_job *j, struct store *st, int64_t mbox,
    const char *uid)
{
	struct store_msg	 rec;
	size_t			 i, k, left = 0;
	int			 rv;

	if ((rv = store_get(st, mbox, uid, strlen(uid), &rec)) == -1)
		return -1;
	if (rv != STORE_FOUND || rec.rcpt_done[0] == '\0')
		return 0;
	for (i = 0; i < j->nrcpt; i++)
		if (!store_rcpt_is_done(&rec, j->rcpt[i]))
			left++;
	if (left == 0 || left == j->nrcpt)
		return 0;
	for (i = k = 0; i < j->nrcpt; i++) {
		if (store_rcpt_is_done(&rec, j->rcpt[i])) {
			log_info(j->account, "uid %s: %s already has it; not "
			    "sent again", uid, j->rcpt[i]);
			free(j->rcpt[i]);
		} else
			j->rcpt[k++] = j->rcpt[i];
	}
	j->rcpt[k] = NULL;
	j->nrcpt = k;
	return 0;
}

int
inject_record_done(const struct dlv_job *j, struct store *st, int64_t mbox,
    const char *uid)
{
	if (j->nrcpt_final == 0)
		return 0;
	if (store_rcpt_done(st, mbox, uid, strlen(uid), j->rcpt_final,
	    j->nrcpt_final) == -1) {
		log_warnx(j->account, "uid %s: cannot record which recipients "
		    "have it; a retry sends it to all of them again", uid);
		return -1;
	}
	return 0;
}
