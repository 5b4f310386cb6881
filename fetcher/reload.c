/* ISC licence; see LICENSE. */
#include <stdlib.h>
#include <string.h>

#include "haul/conn.h"
#include "haul/engine.h"
#include "haul/log.h"
#include "haul/reload.h"
#include "haul/sched.h"
#include "haul/xmalloc.h"

/*
 * Configuration reload, the way Postfix and OpenSMTPD do it: the new
 * file is loaded and checked completely before anything changes; a bad
 * file changes nothing.  A good one is merged into the running
 * configuration object (e->cf keeps its address: the delivery side and
 * the sessions hold pointers into it):
 *
 *  - an unchanged account keeps its struct account, sessions, IDLE
 *    connections and counters.  The strings its sessions point to move
 *    into the new account table (the fresh, equal copies go out with the
 *    old one), and the sessions are re-pointed at the new entry.
 *  - a removed or changed account is stopped like at shutdown.  Its old
 *    settings move into a private copy that lives until its session has
 *    ended, so nothing it still reads is freed under it.
 *  - global and [delivery] options that are read at the moment of use
 *    take effect now; the others need a restart and keep their old
 *    value with a warning.
 */

/* At most this many errors are copied into the control answer. */
#define RELOAD_ERRORS_SHOWN	50
/* More than any section has options. */
#define DIFF_MAX		64

/* Options that take effect on reload; all others need a restart. */
static const char *const global_live[] = {
	"log_level", "max_connections_per_host", "max_tls_handshakes",
	"shutdown_timeout", "prune_grace_days", NULL,
};
static const char *const delivery_live[] = {
	"connect_timeout", "command_timeout", "final_timeout", "lda_timeout",
	"max_connections", "retry_min", "retry_max", NULL,
};

struct byname {
	const char	*name;
	size_t		 idx;
};

static int
cmp_byname(const void *a, const void *b)
{
	return strcmp(((const struct byname *)a)->name,
	    ((const struct byname *)b)->name);
}

void
reload_plan(const struct config_account *old, size_t nold,
    const struct config_account *new, size_t nnew, struct reload_plan *p)
{
	struct byname	*idx, key, *hit;
	unsigned char	*matched;
	size_t		 i;

	memset(p, 0, sizeof(*p));
	p->act = xcalloc(nnew + 1, sizeof(*p->act));
	p->old_of = xcalloc(nnew + 1, sizeof(*p->old_of));
	p->removed = xcalloc(nold + 1, sizeof(*p->removed));
	idx = xcalloc(nold + 1, sizeof(*idx));
	matched = xcalloc(nold + 1, 1);
	for (i = 0; i < nold; i++) {
		idx[i].name = old[i].name;
		idx[i].idx = i;
	}
	qsort(idx, nold, sizeof(*idx), cmp_byname);
	for (i = 0; i < nnew; i++) {
		key.name = new[i].name;
		hit = nold > 0 ? bsearch(&key, idx, nold, sizeof(*idx),
		    cmp_byname) : NULL;
		if (hit == NULL) {
			p->act[i] = RELOAD_ADD;
			p->nadded++;
			continue;
		}
		matched[hit->idx] = 1;
		p->old_of[i] = hit->idx;
		if (config_account_equal(&old[hit->idx], &new[i])) {
			p->act[i] = RELOAD_KEEP;
			p->nkept++;
		} else {
			p->act[i] = RELOAD_CHANGE;
			p->nchanged++;
		}
	}
	for (i = 0; i < nold; i++)
		if (!matched[i])
			p->removed[p->nremoved++] = i;
	free(matched);
	free(idx);
}

void
reload_plan_free(struct reload_plan *p)
{
	free(p->act);
	free(p->old_of);
	free(p->removed);
	memset(p, 0, sizeof(*p));
}

static int
in_list(const char *const *list, const char *name)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

/*
 * Take the new values of the options that may change now; leave the
 * others at their running value and say so.
 */
static void
merge_settings(struct engine *e, struct config *n, struct buf *out)
{
	const char	*names[DIFF_MAX];
	size_t		 k, nd;
	int		 old_level = e->cf->global.log_level;

	nd = config_global_diff(&e->cf->global, &n->global, names, DIFF_MAX);
	for (k = 0; k < nd && k < DIFF_MAX; k++) {
		if (in_list(global_live, names[k])) {
			config_global_swap(&e->cf->global, &n->global,
			    names[k]);
			log_info(NULL, "reload: %s changed", names[k]);
			continue;
		}
		log_warnx(NULL, "reload: %s changed; restart hauld to apply",
		    names[k]);
		buf_addf(out, "warning: %s changed; restart hauld to apply\n",
		    names[k]);
	}
	if (e->cf->global.log_level != old_level)
		log_set_level((enum log_level)e->cf->global.log_level);
	conn_set_tls_limit(e->cf->global.max_tls_handshakes);

	nd = config_delivery_diff(&e->cf->delivery, &n->delivery, names,
	    DIFF_MAX);
	for (k = 0; k < nd && k < DIFF_MAX; k++) {
		if (in_list(delivery_live, names[k])) {
			config_delivery_swap(&e->cf->delivery, &n->delivery,
			    names[k]);
			log_info(NULL, "reload: delivery %s changed", names[k]);
			continue;
		}
		log_warnx(NULL, "reload: delivery %s changed; restart hauld "
		    "to apply", names[k]);
		buf_addf(out, "warning: delivery %s changed; restart hauld to "
		    "apply\n", names[k]);
	}
}

/* Move an account's settings into a heap copy that the account owns. */
static struct config_account *
steal(struct config_account *slot)
{
	struct config_account *own = xmalloc(sizeof(*own));

	*own = *slot;
	own->file = NULL;	/* that string belongs to the old file list */
	memset(slot, 0, sizeof(*slot));
	return own;
}

/*
 * The running account and the new entry are equal: give the new entry
 * the strings the sessions point to, and the old entry the new copies
 * (freed with it).  Where they were defined comes from the new file.
 */
static void
keep(struct config_account *oldslot, struct config_account *newslot)
{
	struct config_account tmp = *newslot;

	*newslot = *oldslot;
	*oldslot = tmp;
	newslot->file = tmp.file;
	newslot->line = tmp.line;
}

/*
 * A new account of a name whose old session is still ending (changed
 * now, or removed by an earlier reload) waits for it: one mailbox never
 * has two sessions at once.  At most one retiring account per name has
 * no successor, since a waiting account never runs.
 */
static void
wait_for_old(struct engine *e, struct account *b)
{
	struct account	*r;
	size_t		 i;

	for (i = 0; i < e->nretiring; i++) {
		r = e->retiring[i];
		if (r->successor == NULL &&
		    strcmp(r->cf->name, b->cf->name) == 0) {
			r->successor = b;
			b->waits_for = r;
			return;
		}
	}
}

static void
load_failed(struct engine *e, const struct config_errors *errs,
    struct buf *out)
{
	size_t	 i;

	for (i = 0; i < errs->n; i++)
		log_warnx(NULL, "reload: %s", errs->msgs[i]);
	log_warnx(NULL, "reload failed: %zu error%s in %s; still running the "
	    "previous configuration", errs->n, errs->n == 1 ? "" : "s",
	    e->cf->path);
	buf_addf(out, "configuration not reloaded: %zu error%s in %s; still "
	    "running the previous one\n", errs->n, errs->n == 1 ? "" : "s",
	    e->cf->path);
	for (i = 0; i < errs->n && i < RELOAD_ERRORS_SHOWN; i++)
		buf_addf(out, "%s\n", errs->msgs[i]);
	if (errs->n > RELOAD_ERRORS_SHOWN)
		buf_addf(out, "(%zu more in the log)\n",
		    errs->n - RELOAD_ERRORS_SHOWN);
}

int
engine_reload(struct engine *e, struct buf *out)
{
	struct config_errors errs = { NULL, 0 };
	struct reload_plan plan;
	struct config	*n;
	struct account **accts, *a, *b;
	struct buf	 warn = BUF_INIT;
	size_t		 i, nn;
	char	       **files;

	log_info(NULL, "reload: reading %s", e->cf->path);
	if ((n = config_load(e->cf->path, &errs)) == NULL) {
		load_failed(e, &errs, out);
		config_errors_free(&errs);
		return -1;
	}
	config_errors_free(&errs);
	merge_settings(e, n, &warn);

	reload_plan(e->cf->accounts, e->cf->naccounts, n->accounts,
	    n->naccounts, &plan);
	nn = n->naccounts;
	accts = xcalloc(nn + 1, sizeof(*accts));
	/*
	 * e->accounts[i] runs e->cf->accounts[i]: the loop below relies on
	 * that order, which engine_new() and every reload keep.
	 */
	for (i = 0; i < plan.nremoved; i++) {
		size_t	 o = plan.removed[i];

		a = e->accounts[o];
		log_info(a->cf->name, "reload: removed; stopping");
		engine_account_retire(a, steal(&e->cf->accounts[o]));
	}
	for (i = 0; i < nn; i++) {
		size_t	 o = plan.old_of[i];

		switch (plan.act[i]) {
		case RELOAD_KEEP:
			a = e->accounts[o];
			keep(&e->cf->accounts[o], &n->accounts[i]);
			engine_account_repoint(a, &n->accounts[i]);
			accts[i] = a;
			break;
		case RELOAD_CHANGE:
			a = e->accounts[o];
			b = engine_account_new(e, &n->accounts[i]);
			engine_account_carry(b, a);
			log_info(a->cf->name, "reload: settings changed; "
			    "restarting the account");
			engine_account_retire(a, steal(&e->cf->accounts[o]));
			wait_for_old(e, b);
			accts[i] = b;
			break;
		case RELOAD_ADD:
			accts[i] = engine_account_new(e, &n->accounts[i]);
			wait_for_old(e, accts[i]);
			log_info(n->accounts[i].name, "reload: added");
			break;
		}
	}
	for (i = 0; i < nn; i++)
		if (plan.act[i] != RELOAD_KEEP)
			engine_account_begin(accts[i], sched_first_delay_ms(
			    accts[i]->cf->poll_interval, sched_rng_default));

	/* The new account table moves into the running configuration. */
	{
		struct config_account *t = e->cf->accounts;

		e->cf->accounts = n->accounts;
		n->accounts = t;
		n->naccounts = e->cf->naccounts;
		e->cf->naccounts = nn;
		files = e->cf->files;
		e->cf->files = n->files;
		n->files = files;
	}
	free(e->accounts);
	e->accounts = accts;
	e->naccounts = nn;
	config_free(&n);

	log_info(NULL, "reload: %zu added, %zu removed, %zu changed, %zu "
	    "unchanged", plan.nadded, plan.nremoved, plan.nchanged,
	    plan.nkept);
	buf_addf(out, "reload: %zu added, %zu removed, %zu changed, %zu "
	    "unchanged\n", plan.nadded, plan.nremoved, plan.nchanged,
	    plan.nkept);
	if (warn.len > 0)
		buf_add(out, warn.data, warn.len);
	buf_free(&warn);
	reload_plan_free(&plan);
	return 0;
}
