/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/imap.h"
#include "haul/log.h"
#include "haul/xmalloc.h"

#include "imap_int.h"

/*
 * The IMAP client's operations: the owner's calls (SELECT, the fetch
 * round, IDLE, NOOP, LIST, STATUS, LOGOUT), its queued actions (\Seen,
 * delete, move), the tagged replies to all of them, and the pump that
 * decides what to send next.  Commands depend only on the responses
 * seen: the pump runs after each whole response (or on an owner call,
 * then without callbacks), never at the end of an input chunk, so a
 * transcript yields the same commands whatever its split.
 */

/* ---- operations ---- */

/* An owner operation is over: free its slot, then tell the owner. */
void
imap_op_end(struct imap *p, enum imap_op op, int ok, const char *text)
{
	log_debug(p->account, "imap: %s %s", imap_op_name(op),
	    ok ? "done" : "failed");
	if (op != IMAP_OP_CONNECT) {
		p->op = OP_NONE;
		p->op_sent = 0;
		p->idle_done = 0;
		free(p->opname);
		p->opname = NULL;
	}
	p->cb.op_done(p->arg, op, ok, text);
}

/* Forget the selected mailbox (a new SELECT, or a failed one). */
static void
mailbox_clear(struct imap *p)
{
	p->uidvalidity = p->uidnext = p->count = 0;
	p->have_uidvalidity = 0;
	p->readonly = 0;
	imap_map_clear(p);
	p->ncand = 0;
	p->listed = 0;
}

/* A command without string arguments. */
static void
send_text(struct imap *p, enum cmd_kind kind, const char *text)
{
	struct cmd	*c = imap_cmd_start(p, kind, 0);

	imap_cmd_add(p, text);
	imap_cmd_finish(p, c, NULL, 0);
}

/* Send the command of the owner's pending operation. */
static void
send_op(struct imap *p)
{
	struct cmd	*c = NULL;
	const char	*n = p->opname;
	int		 rv = 0;

	p->op_sent = 1;
	switch (p->op) {
	case IMAP_OP_SELECT:
		mailbox_clear(p);
		c = imap_cmd_start(p, CMD_SELECT, 0);
		imap_cmd_add(p, p->op_readonly ? "EXAMINE " : "SELECT ");
		imap_cmd_str(p, n, strlen(n));
		rv = imap_cmd_finish(p, c, NULL, 0);
		if (rv == 0)
			imap_set_state(p, IMAP_SELECT);
		break;
	case IMAP_OP_FETCH:
		p->ncand = 0;
		p->next = 0;
		p->listed = 0;
		p->drop_min = 0;
		imap_map_clear(p);
		c = imap_cmd_start(p, CMD_LISTING, 0);
		/* Some servers answer "1:*" in an empty mailbox with BAD. */
		if (p->count == 0 || (p->scan && p->scan_below == 1))
			imap_cmd_add(p, "NOOP");
		else if (p->scan && p->scan_below != 0)
			imap_cmd_addf(p, "UID FETCH 1:%u (UID FLAGS)",
			    p->scan_below - 1);
		else if (p->scan)
			imap_cmd_add(p, "UID FETCH 1:* (UID FLAGS)");
		else
			imap_cmd_addf(p, "UID FETCH %u:* (UID RFC822.SIZE)",
			    p->lo);
		rv = imap_cmd_finish(p, c, NULL, 0);
		break;
	case IMAP_OP_IDLE:
		c = imap_cmd_start(p, CMD_IDLE, 0);
		imap_cmd_add(p, "IDLE");
		if ((rv = imap_cmd_finish(p, c, NULL, 0)) == 0) {
			p->cont = c;
			imap_set_state(p, IMAP_IDLE_START);
		}
		break;
	case IMAP_OP_NOOP:
		send_text(p, CMD_NOOP, "NOOP");
		break;
	case IMAP_OP_LIST:
		c = imap_cmd_start(p, CMD_LIST, 0);
		imap_cmd_add(p, "LIST \"\" ");
		imap_cmd_str(p, n, strlen(n));
		rv = imap_cmd_finish(p, c, NULL, 0);
		break;
	case IMAP_OP_STATUS:
		c = imap_cmd_start(p, CMD_STATUS, 0);
		imap_cmd_add(p, "STATUS ");
		imap_cmd_str(p, n, strlen(n));
		imap_cmd_add(p, " (MESSAGES UIDNEXT UIDVALIDITY)");
		rv = imap_cmd_finish(p, c, NULL, 0);
		break;
	default:
		fatalx("imap: bad operation %d", p->op);
	}
	if (rv == -1)
		imap_fail(p, ERR_LOCAL, "cannot build the %s command",
		    imap_op_name((enum imap_op)p->op));
}

/* Ask the owner about one listed message and act on the answer. */
static void
decide(struct imap *p, const struct cand *m)
{
	struct cmd	*c;
	enum imap_want	 w;

	if (p->max_size != 0 && m->size > p->max_size) {
		if (p->cb.too_big == NULL)
			log_warnx(p->account, "imap: UID %u (%llu octets) "
			    "exceeds max_message_size; skipped", m->uid,
			    (unsigned long long)m->size);
		else if (p->cb.too_big(p->arg, m->uid, m->size) == -1)
			imap_owner_fail(p, "too_big");
		return;
	}
	w = p->cb.want(p->arg, m->uid, m->size);
	if (p->state == IMAP_FAILED)
		return;
	switch (w) {
	case IMAP_WANT_FETCH:
		if (p->logout)
			break;
		c = imap_cmd_start(p, CMD_BODY, 0);
		c->uid = m->uid;
		imap_cmd_addf(p, "UID FETCH %u BODY.PEEK[]", m->uid);
		imap_cmd_finish(p, c, NULL, 0);
		p->nbodies++;
		break;
	case IMAP_WANT_SKIP:
		break;
	default:
		imap_owner_fail(p, "want");
		break;
	}
}

/*
 * Delete-stage entries: imap_delete(), and a COPY-move's second half;
 * they get STORE \Deleted.  Expunge-stage entries (stage 2) are queued
 * when that STORE succeeded: RFC 3501 5.5 forbids pipelining a command
 * that depends on another's result, and Dovecot does run a pipelined
 * UID EXPUNGE beside the STORE (a few messages per thousand stayed on
 * the server, each reported removed).
 */
#define ACT_EXPUNGE_STAGE	2

static int
is_delete(const struct act *a)
{
	return (a->act == IMAP_ACT_DELETE && a->stage == 0) ||
	    (a->act == IMAP_ACT_MOVE && a->stage == 1);
}

static int
is_expunge(const struct act *a)
{
	return a->stage == ACT_EXPUNGE_STAGE;
}

enum run_kind { RUN_SEEN, RUN_DELETE, RUN_EXPUNGE };

static int
in_run(const struct act *a, enum run_kind k)
{
	switch (k) {
	case RUN_SEEN:
		return a->act == IMAP_ACT_SEEN;
	case RUN_DELETE:
		return is_delete(a);
	case RUN_EXPUNGE:
		return is_expunge(a);
	}
	return 0;
}

/* Items for the run of like actions at the head of the queue. */
static struct item *
take_run(struct imap *p, enum run_kind kind, uint32_t *np)
{
	struct item	*it;
	size_t		 n = 0, i;

	while (p->acthead + n < p->nacts && n < IMAP_BATCH_MAX &&
	    in_run(&p->acts[p->acthead + n], kind))
		n++;
	it = xreallocarray(NULL, n, sizeof(*it));
	for (i = 0; i < n; i++) {
		it[i].uid = p->acts[p->acthead + i].uid;
		it[i].act = (uint8_t)p->acts[p->acthead + i].act;
	}
	p->acthead += n;
	*np = (uint32_t)n;
	return it;
}

/* Send the action(s) at the head of the queue.  1 if sent, else 0. */
static int
send_action(struct imap *p)
{
	struct act	*a = &p->acts[p->acthead];
	struct cmd	*c, *e;
	struct item	*it;
	uint32_t	 n;

	if (a->act == IMAP_ACT_SEEN) {
		if (!imap_cmd_room(p, 1))
			return 0;
		it = take_run(p, RUN_SEEN, &n);
		c = imap_cmd_start(p, CMD_SEEN, 0);
		c->items = it;
		c->nitems = n;
		imap_cmd_add(p, "UID STORE ");
		imap_cmd_uidset(p, it, n);
		imap_cmd_add(p, " +FLAGS.SILENT (\\Seen)");
		imap_cmd_finish(p, c, NULL, 0);
		p->nactions++;
	} else if (is_delete(a)) {
		if (!imap_cmd_room(p, 1))
			return 0;
		it = take_run(p, RUN_DELETE, &n);
		c = imap_cmd_start(p, CMD_DELETED, 0);
		c->items = it;
		c->nitems = n;
		imap_cmd_add(p, "UID STORE ");
		imap_cmd_uidset(p, it, n);
		imap_cmd_add(p, " +FLAGS.SILENT (\\Deleted)");
		imap_cmd_finish(p, c, NULL, 0);
		p->nactions++;
	} else if (is_expunge(a)) {
		if (!imap_cmd_room(p, 1))
			return 0;
		it = take_run(p, RUN_EXPUNGE, &n);
		/*
		 * UID EXPUNGE touches only these (RFC 4315); a plain
		 * EXPUNGE also removes whatever another client flagged
		 * (M31), so it is only sent when the account allows it.
		 */
		e = imap_cmd_start(p, CMD_EXPUNGE, 0);
		e->items = it;
		e->nitems = n;
		if (p->caps & IMAP_CAP_UIDPLUS) {
			imap_cmd_add(p, "UID EXPUNGE ");
			imap_cmd_uidset(p, it, n);
		} else
			imap_cmd_add(p, "EXPUNGE");
		imap_cmd_finish(p, e, NULL, 0);
		p->nactions++;
	} else {
		if (!imap_cmd_room(p, 1))
			return 0;
		p->acthead++;
		if (p->caps & IMAP_CAP_MOVE) {
			c = imap_cmd_start(p, CMD_MOVE, 0);
			c->items = xmalloc(sizeof(*c->items));
			c->items[0].uid = a->uid;
			c->items[0].act = IMAP_ACT_MOVE;
			c->nitems = 1;
			imap_cmd_addf(p, "UID MOVE %u ", a->uid);
		} else {
			c = imap_cmd_start(p, CMD_COPY, 0);
			imap_cmd_addf(p, "UID COPY %u ", a->uid);
		}
		c->uid = a->uid;
		imap_cmd_str(p, a->folder, strlen(a->folder));
		free(a->folder);
		a->folder = NULL;
		if (imap_cmd_finish(p, c, NULL, 0) == 0)
			p->nactions++;
		else if (p->cb.action_done != NULL)
			p->cb.action_done(p->arg, IMAP_ACT_MOVE, a->uid, 0);
	}
	if (p->acthead == p->nacts)
		p->acthead = p->nacts = 0;
	return 1;
}

/*
 * Send whatever can go out now, in a fixed order: the owner's operation,
 * queued actions, the next decisions, LOGOUT.  From an owner call
 * (from_owner) it makes no callback: decisions and completions wait for
 * the next response, which is always outstanding when any are left.
 */
void
imap_pump(struct imap *p)
{
	if (p->in_pump)
		return;
	p->in_pump = 1;
	while (p->cont == NULL && (p->state == IMAP_AUTHENTICATED ||
	    p->state == IMAP_SELECTED)) {
		if (p->op != OP_NONE && !p->op_sent) {
			if (p->op != IMAP_OP_IDLE) {
				if (!imap_cmd_room(p, 1))
					break;
				send_op(p);
				continue;
			}
			if (p->idle_done) {
				/* Ended before it started. */
				if (p->from_owner)
					break;
				imap_op_end(p, IMAP_OP_IDLE, 1, "");
				continue;
			}
			/* IDLE goes out alone, once everything else is in. */
			if (p->ncmds == 0 && p->acthead == p->nacts) {
				send_op(p);
				continue;
			}
		}
		if (p->state == IMAP_SELECTED && p->acthead < p->nacts &&
		    send_action(p))
			continue;
		if (p->op == IMAP_OP_FETCH && p->listed && !p->from_owner) {
			if (!p->logout && p->next < p->ncand &&
			    p->nbodies < p->window && imap_cmd_room(p, 1)) {
				decide(p, &p->cands[p->next++]);
				continue;
			}
			if ((p->logout || p->next >= p->ncand) &&
			    p->nbodies == 0) {
				imap_op_end(p, IMAP_OP_FETCH, !p->logout,
				    p->logout ? "stopped for logout" : "");
				continue;
			}
		}
		/*
		 * LOGOUT once every action is answered: a COPY's delete half
		 * is only queued when the COPY succeeds.
		 */
		if (p->logout && p->op == OP_NONE && p->acthead == p->nacts &&
		    p->nactions == 0) {
			send_text(p, CMD_LOGOUT, "LOGOUT");
			imap_set_state(p, IMAP_LOGOUT);
		}
		break;
	}
	p->in_pump = 0;
}

/* Pump on behalf of an owner call, unless a response is being handled. */
void
imap_owner_pump(struct imap *p)
{
	if (p->in_input || p->in_pump)
		return;
	p->from_owner = 1;
	imap_pump(p);
	p->from_owner = 0;
}

static void
send_done(struct imap *p)
{
	imap_out_add(p, "DONE\r\n", 6, 0);
	log_debug(p->account, "imap: C: DONE");
	imap_set_state(p, IMAP_IDLE_DONE);
}

/* "+" to IDLE: idling; DONE at once if it was asked for meanwhile. */
void
imap_idle_continue(struct imap *p)
{
	if (p->state != IMAP_IDLE_START) {
		imap_fail(p, ERR_PROTOCOL, "unexpected continuation request");
		return;
	}
	p->cont = NULL;
	imap_set_state(p, IMAP_IDLING);
	if (p->idle_done)
		send_done(p);
}

/* action_done() for every UID a command carried. */
static void
report(struct imap *p, const struct cmd *c, int ok)
{
	uint32_t	 i;

	for (i = 0; i < c->nitems; i++)
		if (p->cb.action_done != NULL)
			p->cb.action_done(p->arg, (enum imap_action)
			    c->items[i].act, c->items[i].uid, ok);
}

/* Append an owner action to the FIFO. */
static void
queue_act(struct imap *p, enum imap_action act, uint32_t uid,
    const char *folder, int stage)
{
	struct act	*a;

	if (p->nacts == p->actcap) {
		p->actcap = p->actcap == 0 ? 16 : p->actcap * 2;
		p->acts = xreallocarray(p->acts, p->actcap, sizeof(*p->acts));
	}
	a = &p->acts[p->nacts++];
	a->act = act;
	a->uid = uid;
	a->folder = folder != NULL ? xstrdup(folder) : NULL;
	a->stage = stage;
}

/* The tagged reply to an operation's or an action's command. */
void
imap_ops_tagged(struct imap *p, struct cmd *c, const struct imap_response *r,
    const char *text)
{
	int		 ok = r->cond == IMAP_COND_OK;

	if (r->cond == IMAP_COND_BAD && c->kind != CMD_LOGOUT) {
		imap_fail(p, ERR_PROTOCOL, "command rejected as malformed: %s",
		    text);
		return;
	}
	switch (c->kind) {
	case CMD_SELECT:
		if (!ok) {
			mailbox_clear(p);
			imap_set_state(p, IMAP_AUTHENTICATED);
			imap_op_end(p, IMAP_OP_SELECT, 0, text);
			break;
		}
		if (!p->have_uidvalidity) {
			imap_fail(p, ERR_PROTOCOL, "SELECT without UIDVALIDITY");
			break;
		}
		p->readonly = p->op_readonly || imap_code_is(r, "READ-ONLY");
		imap_set_state(p, IMAP_SELECTED);
		if (p->cb.selected != NULL && p->cb.selected(p->arg,
		    p->uidvalidity, p->uidnext, p->count, p->readonly) == -1) {
			imap_owner_fail(p, "selected");
			break;
		}
		imap_op_end(p, IMAP_OP_SELECT, 1, text);
		break;
	case CMD_LISTING:
		if (p->scan)
			imap_op_end(p, IMAP_OP_FETCH, ok, text);
		else if (ok)
			imap_cand_finish(p);
		else
			imap_op_end(p, IMAP_OP_FETCH, 0, text);
		break;
	case CMD_BODY:
		p->nbodies--;
		if (!c->got)
			imap_msg_failed(p, c->uid, ok ? IMAP_FAIL_GONE : IMAP_FAIL_NO,
			    ok ? "message vanished before its body came" :
			    text);
		break;
	case CMD_SEEN:
	case CMD_MOVE:
		p->nactions--;
		if (!ok)
			log_warnx(p->account, "imap: %s refused: %s",
			    c->kind == CMD_SEEN ? "STORE \\Seen" : "MOVE",
			    text);
		report(p, c, ok);
		break;
	case CMD_DELETED:
		p->nactions--;
		if (!ok) {
			log_warnx(p->account, "imap: STORE \\Deleted refused: "
			    "%s", text);
			report(p, c, 0);
		} else {
			/* Flagged: now, and only now, the expunge. */
			uint32_t	 i;

			for (i = 0; i < c->nitems; i++)
				queue_act(p, (enum imap_action)c->items[i].act,
				    c->items[i].uid, NULL, ACT_EXPUNGE_STAGE);
		}
		break;
	case CMD_EXPUNGE:
		p->nactions--;
		if (!ok)
			log_warnx(p->account, "imap: EXPUNGE refused: %s", text);
		report(p, c, ok);
		break;
	case CMD_COPY:
		p->nactions--;
		if (ok)
			queue_act(p, IMAP_ACT_MOVE, c->uid, NULL, 1);
		else {
			log_warnx(p->account, "imap: COPY refused: %s", text);
			if (p->cb.action_done != NULL)
				p->cb.action_done(p->arg, IMAP_ACT_MOVE,
				    c->uid, 0);
		}
		break;
	case CMD_IDLE:
		imap_set_state(p, IMAP_SELECTED);
		imap_op_end(p, IMAP_OP_IDLE, ok, text);
		break;
	case CMD_NOOP:
		imap_op_end(p, IMAP_OP_NOOP, ok, text);
		break;
	case CMD_LIST:
		imap_op_end(p, IMAP_OP_LIST, ok, text);
		break;
	case CMD_STATUS:
		imap_op_end(p, IMAP_OP_STATUS, ok, text);
		break;
	case CMD_LOGOUT:
		p->logout_ok = ok;
		imap_set_state(p, IMAP_DONE);
		break;
	default:
		fatalx("imap: reply to command kind %d", c->kind);
	}
}

/* Free the operation and mailbox state (imap_free()). */
void
imap_ops_free(struct imap *p)
{
	size_t	 i;

	for (i = 0; i < p->nacts; i++)
		free(p->acts[i].folder);
	free(p->acts);
	free(p->cands);
	free(p->map);
	free(p->opname);
}

/* ---- the owner's calls ---- */

/* 1 if name can be sent (quoted or as a literal) and is bounded. */
static int
name_ok(const char *name)
{
	size_t	 len;

	if (name == NULL)
		return 0;
	len = strnlen(name, IMAP_NAME_MAX + 1);
	return len > 0 && len <= IMAP_NAME_MAX &&
	    imap_string_form(name, len, 0) != -1;
}

/* Take the operation slot and send what can go out now. */
static int
start_op(struct imap *p, enum imap_op op, const char *name)
{
	if (!imap_ready(p))
		return -1;
	p->op = op;
	p->op_sent = 0;
	p->idle_done = 0;
	p->opname = name != NULL ? xstrdup(name) : NULL;
	imap_owner_pump(p);
	return 0;
}

int
imap_select(struct imap *p, const char *mailbox, int readonly)
{
	if (!name_ok(mailbox) || p->acthead < p->nacts || p->nactions > 0)
		return -1;
	p->op_readonly = readonly != 0;
	return start_op(p, IMAP_OP_SELECT, mailbox);
}

int
imap_fetch_new(struct imap *p, uint32_t lo)
{
	if (lo == 0 || p->state != IMAP_SELECTED)
		return -1;
	p->lo = lo;
	p->scan = 0;
	return start_op(p, IMAP_OP_FETCH, NULL);
}

int
imap_fetch_flags(struct imap *p, uint32_t below)
{
	if (p->cb.flags == NULL || p->state != IMAP_SELECTED ||
	    !imap_ready(p))
		return -1;
	p->lo = 1;
	p->scan = 1;
	p->scan_below = below;
	return start_op(p, IMAP_OP_FETCH, NULL);
}

int
imap_idle(struct imap *p)
{
	if (p->state != IMAP_SELECTED || (p->caps & IMAP_CAP_IDLE) == 0)
		return -1;
	return start_op(p, IMAP_OP_IDLE, NULL);
}

int
imap_idle_done(struct imap *p)
{
	if (p->op != IMAP_OP_IDLE)
		return -1;
	p->idle_done = 1;
	if (p->state == IMAP_IDLING)
		send_done(p);
	return 0;
}

int
imap_noop(struct imap *p)
{
	return start_op(p, IMAP_OP_NOOP, NULL);
}

int
imap_list(struct imap *p, const char *pattern)
{
	if (!name_ok(pattern))
		return -1;
	return start_op(p, IMAP_OP_LIST, pattern);
}

int
imap_status(struct imap *p, const char *folder)
{
	if (!name_ok(folder))
		return -1;
	return start_op(p, IMAP_OP_STATUS, folder);
}

/* May an action be queued now? */
static int
action_ok(const struct imap *p, uint32_t uid)
{
	return uid != 0 && !p->readonly && !p->logout &&
	    (p->state == IMAP_SELECTED || p->state == IMAP_IDLE_START ||
	    p->state == IMAP_IDLING || p->state == IMAP_IDLE_DONE);
}

/* Deleting needs UID EXPUNGE, unless the account accepts EXPUNGE. */
static int
can_expunge(const struct imap *p)
{
	return (p->caps & IMAP_CAP_UIDPLUS) || p->allow_expunge_all;
}

int
imap_mark_seen(struct imap *p, uint32_t uid)
{
	if (!action_ok(p, uid))
		return -1;
	queue_act(p, IMAP_ACT_SEEN, uid, NULL, 0);
	imap_owner_pump(p);
	return 0;
}

int
imap_delete(struct imap *p, uint32_t uid)
{
	if (!action_ok(p, uid))
		return -1;
	if (!can_expunge(p)) {
		log_warnx(p->account, "imap: no UIDPLUS and allow_expunge_all "
		    "is off: UID %u not deleted", uid);
		return -1;
	}
	queue_act(p, IMAP_ACT_DELETE, uid, NULL, 0);
	imap_owner_pump(p);
	return 0;
}

int
imap_move(struct imap *p, uint32_t uid, const char *folder)
{
	if (!action_ok(p, uid) || !name_ok(folder))
		return -1;
	if ((p->caps & IMAP_CAP_MOVE) == 0 && !can_expunge(p)) {
		log_warnx(p->account, "imap: no MOVE, no UIDPLUS and "
		    "allow_expunge_all is off: UID %u not moved", uid);
		return -1;
	}
	queue_act(p, IMAP_ACT_MOVE, uid, folder, 0);
	imap_owner_pump(p);
	return 0;
}

int
imap_logout(struct imap *p)
{
	switch (p->state) {
	case IMAP_AUTHENTICATED:
	case IMAP_SELECT:
	case IMAP_SELECTED:
	case IMAP_IDLE_START:
	case IMAP_IDLING:
	case IMAP_IDLE_DONE:
		break;
	default:
		return -1;
	}
	p->logout = 1;
	if (p->op == IMAP_OP_IDLE) {
		p->idle_done = 1;
		if (p->state == IMAP_IDLING)
			send_done(p);
	}
	imap_owner_pump(p);
	return 0;
}

uint32_t
imap_exists(const struct imap *p)
{
	return p->count;
}

uint32_t
imap_uidvalidity(const struct imap *p)
{
	return p->uidvalidity;
}

int
imap_readonly(const struct imap *p)
{
	return p->readonly;
}
