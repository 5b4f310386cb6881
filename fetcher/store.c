/* ISC licence; see LICENSE. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "haul/buf.h"
#include "haul/clock.h"
#include "haul/killpoint.h"
#include "haul/log.h"
#include "haul/store.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/*
 * Two layers.  The generic one (store_*) validates arguments, owns the
 * state machine, numbers writes and decides when a handle is broken; the
 * SQLite backend (sq_*) only reads and writes rows.  A PostgreSQL backend
 * would replace the second layer and keep the first.
 */

/*
 * Sequence numbers are (generation << STORE_SEQ_BITS) | n: every handle
 * gets a fresh generation, so a number from a closed or broken handle can
 * never be mistaken for a durable one by its successor.
 */
#define STORE_SEQ_BITS	40
#define STORE_SEQ_MASK	((UINT64_C(1) << STORE_SEQ_BITS) - 1)
#define STORE_GEN_MASK	((UINT64_C(1) << (64 - STORE_SEQ_BITS)) - 1)

#define STORE_NSTATES	6

/* Account name remembered per mailbox id, so errors name the account. */
struct store_mbname {
	int64_t		 id;
	char		*account;
};

struct store {
	const struct store_ops	*ops;
	void			*be;
	uint64_t		 gen;
	uint64_t		 write_n;	/* writes issued */
	uint64_t		 durable_n;	/* writes committed */
	int			 in_txn;
	int			 broken;
	int			 in_list;
	struct store_mbname	*names;
	size_t			 nnames;
};

static uint64_t	 store_generation;

static const char *const store_state_names[STORE_NSTATES] = {
	[STORE_SEEN] = "seen",
	[STORE_INJECTING] = "injecting",
	[STORE_ACCEPTED] = "accepted",
	[STORE_REMOVED] = "removed",
	[STORE_REFUSED] = "refused",
	[STORE_TOO_BIG] = "too_big",
};

/*
 * The allowed state changes, [from][to].  Nothing goes back from
 * ACCEPTED/REMOVED to a state that would re-inject, and nothing reaches
 * REMOVED without having been accepted (or refused/too big, for opt-in
 * delete policies).  ACCEPTED is reachable from everywhere: recording a
 * delivery must never fail for a bookkeeping reason.
 */
static const unsigned char store_moves[STORE_NSTATES][STORE_NSTATES] = {
	/*		   seen inj acc rem ref big */
	[STORE_SEEN] =      { 1,  1,  1,  0,  1,  1 },
	[STORE_INJECTING] = { 1,  1,  1,  0,  1,  1 },
	[STORE_ACCEPTED] =  { 0,  0,  1,  1,  0,  0 },
	[STORE_REMOVED] =   { 0,  0,  1,  1,  0,  0 },
	[STORE_REFUSED] =   { 1,  0,  1,  1,  1,  0 },
	[STORE_TOO_BIG] =   { 1,  0,  1,  1,  0,  1 },
};

const char *
store_state_name(enum store_state s)
{
	if ((unsigned)s >= STORE_NSTATES)
		return "?";
	return store_state_names[s];
}

/* Parse a state name as stored; -1 if unknown. */
static int
store_state_parse(const char *name)
{
	int	 i;

	for (i = 0; i < STORE_NSTATES; i++) {
		if (strcmp(name, store_state_names[i]) == 0)
			return i;
	}
	return -1;
}

/*
 * Where id is, or would go, in the id-sorted names array.  Every call
 * looks its account up, and one hauld may hold 10^4 mailboxes.
 */
static size_t
store_name_slot(const struct store *st, int64_t id)
{
	size_t	 lo = 0, hi = st->nnames, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (st->names[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The account a mailbox id belongs to, for log lines; NULL if unknown. */
static const char *
store_acct(const struct store *st, int64_t mbox)
{
	size_t	 i = store_name_slot(st, mbox);

	if (i < st->nnames && st->names[i].id == mbox)
		return st->names[i].account;
	return NULL;
}

/* Note which account mailbox id belongs to (kept sorted by id). */
static void
store_remember(struct store *st, int64_t id, const char *account)
{
	size_t	 i = store_name_slot(st, id);

	if (i < st->nnames && st->names[i].id == id)
		return;
	st->names = xreallocarray(st->names, st->nnames + 1,
	    sizeof(*st->names));
	memmove(&st->names[i + 1], &st->names[i],
	    (st->nnames - i) * sizeof(*st->names));
	st->names[i].id = id;
	st->names[i].account = xstrdup(account);
	st->nnames++;
}

/* Refuse calls on a broken handle or from inside a store_list callback. */
static int
store_usable(struct store *st, const char *acct, const char *op)
{
	if (st == NULL) {
		log_warnx(acct, "store %s: no store", op);
		return -1;
	}
	if (st->in_list) {
		log_warnx(acct, "store %s: called from a store_list callback",
		    op);
		return -1;
	}
	if (st->broken) {
		log_warnx(acct, "store %s: store broken by a failed commit; "
		    "it must be reopened", op);
		return -1;
	}
	return 0;
}

/* A UID is 1..STORE_UID_MAX opaque bytes; never truncated. */
static int
store_check_uid(const char *acct, const char *op, const void *uid,
    size_t uidlen)
{
	if (uid == NULL || uidlen == 0) {
		log_warnx(acct, "store %s: empty UID", op);
		return -1;
	}
	if (uidlen > STORE_UID_MAX) {
		log_warnx(acct, "store %s: UID of %zu bytes is over the limit "
		    "of %d", op, uidlen, STORE_UID_MAX);
		return -1;
	}
	return 0;
}

/* Account and folder names must fit what the schema promises. */
static int
store_check_names(const char *account, const char *folder, const char *op)
{
	if (account == NULL || *account == '\0' ||
	    strlen(account) > STORE_NAME_MAX) {
		log_warnx(NULL, "store %s: bad account name", op);
		return -1;
	}
	if (folder == NULL || strlen(folder) > STORE_FOLDER_MAX) {
		log_warnx(account, "store %s: bad folder name", op);
		return -1;
	}
	return 0;
}

/* Backends store signed 64-bit integers. */
static int
store_check_u64(const char *acct, const char *op, const char *what,
    uint64_t v)
{
	if (v > INT64_MAX) {
		log_warnx(acct, "store %s: %s %" PRIu64 " out of range", op,
		    what, v);
		return -1;
	}
	return 0;
}

/* Log the backend's last error with the account and operation. */
static void
store_logerr(struct store *st, const char *acct, const char *op)
{
	log_warnx(acct, "store %s: %s", op, st->ops->errmsg(st->be));
}

/*
 * The backend failed.  Inside a write transaction the backend's state is
 * no longer known, so roll back; if that discards writes whose sequence
 * numbers were handed out, the handle is broken for good.
 */
static void
store_fail(struct store *st, const char *acct, const char *op)
{
	store_logerr(st, acct, op);
	if (!st->in_txn)
		return;
	st->ops->rollback(st->be);
	st->in_txn = 0;
	if (st->write_n != st->durable_n) {
		log_warnx(acct, "store: %" PRIu64 " uncommitted writes lost; "
		    "the store must be reopened", st->write_n - st->durable_n);
		st->broken = 1;
	}
}

/* Open the group transaction if it is not open yet. */
static int
store_wbegin(struct store *st, const char *acct, const char *op)
{
	if (st->write_n >= STORE_SEQ_MASK) {
		log_warnx(acct, "store %s: sequence numbers exhausted; "
		    "reopen the store", op);
		return -1;
	}
	if (st->in_txn)
		return 0;
	if (st->ops->begin(st->be) == -1) {
		store_logerr(st, acct, op);
		st->ops->rollback(st->be);
		return -1;
	}
	st->in_txn = 1;
	return 0;
}

/* Count one write; returns its sequence number. */
static uint64_t
store_wrote(struct store *st)
{
	st->write_n++;
	return (st->gen << STORE_SEQ_BITS) | st->write_n;
}

/* Write a whole record inside the group transaction; seq or 0. */
static uint64_t
store_write(struct store *st, int64_t mbox, const struct store_msg *rec,
    const char *op)
{
	const char	*acct = store_acct(st, mbox);

	if (store_wbegin(st, acct, op) == -1)
		return 0;
	if (st->ops->put(st->be, mbox, rec) == -1) {
		store_fail(st, acct, op);
		return 0;
	}
	return store_wrote(st);
}

/*
 * Read uid's record ahead of a change to state `to`, checking the handle,
 * the UID and that the change is allowed.  Returns STORE_FOUND,
 * STORE_ABSENT or -1.
 */
static int
store_load(struct store *st, int64_t mbox, const void *uid, size_t uidlen,
    enum store_state to, const char *op, struct store_msg *rec)
{
	const char	*acct;
	char		 pu[STORE_UID_MAX * 4 + 1];
	int		 rv;

	if (st == NULL)
		return store_usable(st, NULL, op);
	acct = store_acct(st, mbox);
	if (store_usable(st, acct, op) == -1 ||
	    store_check_uid(acct, op, uid, uidlen) == -1)
		return -1;
	rv = st->ops->get(st->be, mbox, uid, uidlen, rec);
	if (rv == -1) {
		store_fail(st, acct, op);
		return -1;
	}
	if (rv == STORE_ABSENT)
		return STORE_ABSENT;
	if (!store_moves[rec->state][to]) {
		log_printable(pu, sizeof(pu), uid, uidlen);
		log_warnx(acct, "store %s: uid %s: %s -> %s not allowed", op,
		    pu, store_state_name(rec->state), store_state_name(to));
		return -1;
	}
	return STORE_FOUND;
}

/* Trace a state change at debug level (old -> new). */
static void
store_trace(struct store *st, int64_t mbox, const struct store_msg *rec,
    enum store_state from, int isnew)
{
	char	 pu[STORE_UID_MAX * 4 + 1];

	if (log_get_level() < LOG_LVL_DEBUG)
		return;
	log_printable(pu, sizeof(pu), rec->uid, rec->uidlen);
	log_debug(store_acct(st, mbox), "store: uid %s: %s -> %s", pu,
	    isnew ? "new" : store_state_name(from),
	    store_state_name(rec->state));
}

/* A fresh record for uid in state s. */
static void
store_newrec(struct store_msg *rec, const void *uid, size_t uidlen,
    enum store_state s, uint64_t size, time_t now)
{
	memset(rec, 0, sizeof(*rec));
	memcpy(rec->uid, uid, uidlen);
	rec->uidlen = uidlen;
	rec->state = s;
	rec->size = size;
	rec->first_seen = rec->last_seen = rec->updated = now;
}

struct store *
store_open_backend(const struct store_ops *ops, const char *where,
    struct buf *err)
{
	struct store	*st;
	void		*be;

	if ((be = ops->open(where, err)) == NULL)
		return NULL;
	st = xcalloc(1, sizeof(*st));
	st->ops = ops;
	st->be = be;
	store_generation = (store_generation + 1) & STORE_GEN_MASK;
	if (store_generation == 0)
		store_generation = 1;
	st->gen = store_generation;
	return st;
}

struct store *
store_open(const char *state_dir, struct buf *err)
{
	return store_open_backend(&store_sqlite_ops, state_dir, err);
}

void
store_close(struct store **stp)
{
	struct store	*st = *stp;
	size_t		 i;

	if (st == NULL)
		return;
	if (st->in_txn) {
		if (st->write_n != st->durable_n)
			log_warnx(NULL, "store: closing with %" PRIu64
			    " uncommitted writes; they are rolled back",
			    st->write_n - st->durable_n);
		st->ops->rollback(st->be);
	}
	st->ops->close(st->be);
	for (i = 0; i < st->nnames; i++)
		free(st->names[i].account);
	free(st->names);
	free(st);
	*stp = NULL;
}

int
store_mailbox(struct store *st, const char *account, const char *folder,
    uint32_t uidvalidity, int64_t *id)
{
	int	 rv;

	if (store_usable(st, account, "mailbox") == -1 ||
	    store_check_names(account, folder, "mailbox") == -1)
		return -1;
	rv = st->ops->mailbox_get(st->be, account, folder, uidvalidity, id);
	if (rv == -1) {
		store_fail(st, account, "mailbox");
		return -1;
	}
	if (rv == STORE_ABSENT) {
		if (store_wbegin(st, account, "mailbox") == -1)
			return -1;
		if (st->ops->mailbox_add(st->be, account, folder, uidvalidity,
		    clock_wall(), id) == -1) {
			store_fail(st, account, "mailbox");
			return -1;
		}
		store_wrote(st);
		log_debug(account, "store: new mailbox %" PRId64 " for folder "
		    "\"%s\" uidvalidity %" PRIu32, *id, folder, uidvalidity);
	}
	store_remember(st, *id, account);
	return 0;
}

int
store_folder_get(struct store *st, const char *account, const char *folder,
    uint32_t *uidvalidity, uint64_t *highest_uid)
{
	int	 rv;

	if (store_usable(st, account, "folder_get") == -1 ||
	    store_check_names(account, folder, "folder_get") == -1)
		return -1;
	rv = st->ops->folder_get(st->be, account, folder, uidvalidity,
	    highest_uid);
	if (rv == -1)
		store_fail(st, account, "folder_get");
	return rv;
}

int
store_folder_set(struct store *st, const char *account, const char *folder,
    uint32_t uidvalidity, uint64_t highest_uid)
{
	if (store_usable(st, account, "folder_set") == -1 ||
	    store_check_names(account, folder, "folder_set") == -1 ||
	    store_check_u64(account, "folder_set", "highest UID",
	    highest_uid) == -1 ||
	    store_wbegin(st, account, "folder_set") == -1)
		return -1;
	if (st->ops->folder_set(st->be, account, folder, uidvalidity,
	    highest_uid, clock_wall()) == -1) {
		store_fail(st, account, "folder_set");
		return -1;
	}
	store_wrote(st);
	return 0;
}

int
store_get(struct store *st, int64_t mbox, const void *uid, size_t uidlen,
    struct store_msg *out)
{
	const char	*acct = st != NULL ? store_acct(st, mbox) : NULL;
	int		 rv;

	if (store_usable(st, acct, "get") == -1 ||
	    store_check_uid(acct, "get", uid, uidlen) == -1)
		return -1;
	rv = st->ops->get(st->be, mbox, uid, uidlen, out);
	if (rv == -1)
		store_fail(st, acct, "get");
	return rv;
}

/* Raise last_seen of an existing record if it is stale enough. */
static int
store_touch_rec(struct store *st, int64_t mbox, const struct store_msg *rec,
    time_t now)
{
	const char	*acct = store_acct(st, mbox);

	/* Not stale, or the clock went back: nothing to write. */
	if (now <= rec->last_seen || now - rec->last_seen <= STORE_TOUCH_SLACK)
		return 0;
	if (store_wbegin(st, acct, "touch") == -1)
		return -1;
	if (st->ops->touch(st->be, mbox, rec->uid, rec->uidlen, now) == -1) {
		store_fail(st, acct, "touch");
		return -1;
	}
	store_wrote(st);
	return 0;
}

int
store_seen(struct store *st, int64_t mbox, const void *uid, size_t uidlen,
    uint64_t size, time_t now)
{
	struct store_msg	 rec;
	int			 rv;

	rv = store_get(st, mbox, uid, uidlen, &rec);
	if (rv == -1)
		return -1;
	if (rv == STORE_FOUND)
		return store_touch_rec(st, mbox, &rec, now);
	if (store_check_u64(store_acct(st, mbox), "seen", "size", size) == -1)
		return -1;
	store_newrec(&rec, uid, uidlen, STORE_SEEN, size, now);
	if (store_write(st, mbox, &rec, "seen") == 0)
		return -1;
	store_trace(st, mbox, &rec, STORE_SEEN, 1);
	return 0;
}

int
store_touch_seen(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, time_t now)
{
	struct store_msg	 rec;
	int			 rv;

	rv = store_get(st, mbox, uid, uidlen, &rec);
	if (rv != STORE_FOUND)
		return rv;
	return store_touch_rec(st, mbox, &rec, now);
}

/* Load a record that must exist and may move to `to`; 0 or -1. */
static int
store_load_existing(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, enum store_state to, const char *op,
    struct store_msg *rec)
{
	char	 pu[STORE_UID_MAX * 4 + 1];
	int	 rv;

	rv = store_load(st, mbox, uid, uidlen, to, op, rec);
	if (rv != STORE_ABSENT)
		return rv;
	log_printable(pu, sizeof(pu), uid, uidlen);
	log_warnx(store_acct(st, mbox), "store %s: uid %s: no record", op, pu);
	return -1;
}

int
store_injecting(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, unsigned *attempts)
{
	struct store_msg	 rec;
	enum store_state	 from;

	if (store_load_existing(st, mbox, uid, uidlen, STORE_INJECTING,
	    "injecting", &rec) == -1)
		return -1;
	from = rec.state;
	if (rec.attempts < UINT_MAX)
		rec.attempts++;
	rec.state = STORE_INJECTING;
	rec.updated = clock_wall();
	if (store_write(st, mbox, &rec, "injecting") == 0)
		return -1;
	store_trace(st, mbox, &rec, from, 0);
	if (attempts != NULL)
		*attempts = rec.attempts;
	return 0;
}

uint64_t
store_accepted(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, const char *queue_id, const char *message_id,
    const char *date, uint64_t size)
{
	struct store_msg	 rec;
	enum store_state	 from = STORE_SEEN;
	const char		*acct;
	char			 pu[STORE_UID_MAX * 4 + 1];
	uint64_t		 seq;
	int			 rv, isnew;

	rv = store_load(st, mbox, uid, uidlen, STORE_ACCEPTED, "accepted",
	    &rec);
	if (rv == -1)
		return 0;
	acct = store_acct(st, mbox);
	if (store_check_u64(acct, "accepted", "size", size) == -1)
		return 0;
	isnew = (rv == STORE_ABSENT);
	if (isnew)
		store_newrec(&rec, uid, uidlen, STORE_ACCEPTED, size,
		    clock_wall());
	else {
		from = rec.state;
		if (from == STORE_ACCEPTED || from == STORE_REMOVED) {
			/* A repeat delivery (lost 250, crash before commit). */
			log_printable(pu, sizeof(pu), uid, uidlen);
			log_notice(acct, "store: uid %s accepted again (was "
			    "%s, queue id %s)", pu, store_state_name(from),
			    rec.queue_id);
		}
	}
	rec.state = STORE_ACCEPTED;
	rec.size = size;
	rec.updated = clock_wall();
	str_lcpy(rec.queue_id, queue_id != NULL ? queue_id : "",
	    sizeof(rec.queue_id));
	str_lcpy(rec.message_id, message_id != NULL ? message_id : "",
	    sizeof(rec.message_id));
	str_lcpy(rec.date, date != NULL ? date : "", sizeof(rec.date));
	if ((seq = store_write(st, mbox, &rec, "accepted")) == 0)
		return 0;
	store_trace(st, mbox, &rec, from, isnew);
	return seq;
}

/* Shared body of the simple state changes. */
static int
store_set_state(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, enum store_state to, const char *op, const char *reply)
{
	struct store_msg	 rec;
	enum store_state	 from;

	if (store_load_existing(st, mbox, uid, uidlen, to, op, &rec) == -1)
		return -1;
	from = rec.state;
	rec.state = to;
	rec.updated = clock_wall();
	if (to == STORE_SEEN)
		rec.attempts = 0;
	if (reply != NULL)
		str_lcpy(rec.reply, reply, sizeof(rec.reply));
	if (store_write(st, mbox, &rec, op) == 0)
		return -1;
	store_trace(st, mbox, &rec, from, 0);
	return 0;
}

int
store_removed(struct store *st, int64_t mbox, const void *uid, size_t uidlen)
{
	return store_set_state(st, mbox, uid, uidlen, STORE_REMOVED, "removed",
	    NULL);
}

int
store_rcpt_is_done(const struct store_msg *rec, const char *addr)
{
	const char	*p = rec->rcpt_done, *nl;
	size_t		 n = strlen(addr);

	while (*p != '\0') {
		nl = strchr(p, '\n');
		if ((size_t)((nl != NULL ? nl : p + strlen(p)) - p) == n &&
		    strncmp(p, addr, n) == 0)
			return 1;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

int
store_rcpt_done(struct store *st, int64_t mbox, const void *uid,
    size_t uidlen, char *const *rcpt, size_t nrcpt)
{
	struct store_msg	 rec;
	size_t			 i, len;

	if (store_load_existing(st, mbox, uid, uidlen, STORE_INJECTING,
	    "rcpt_done", &rec) == -1)
		return -1;
	if (rec.state != STORE_INJECTING)
		return -1;
	for (i = 0; i < nrcpt; i++) {
		if (rcpt[i][0] == '\0' || strchr(rcpt[i], '\n') != NULL)
			return -1;
		if (store_rcpt_is_done(&rec, rcpt[i]))
			continue;
		len = strlen(rec.rcpt_done);
		if (len + (len > 0) + strlen(rcpt[i]) > STORE_RCPT_DONE_MAX)
			return -1;
		if (len > 0)
			rec.rcpt_done[len++] = '\n';
		memcpy(rec.rcpt_done + len, rcpt[i], strlen(rcpt[i]) + 1);
	}
	rec.updated = clock_wall();
	if (store_write(st, mbox, &rec, "rcpt_done") == 0)
		return -1;
	return 0;
}

int
store_refused(struct store *st, int64_t mbox, const void *uid, size_t uidlen,
    const char *reply)
{
	return store_set_state(st, mbox, uid, uidlen, STORE_REFUSED, "refused",
	    reply != NULL ? reply : "");
}

int
store_too_big(struct store *st, int64_t mbox, const void *uid, size_t uidlen)
{
	return store_set_state(st, mbox, uid, uidlen, STORE_TOO_BIG, "too_big",
	    NULL);
}

int
store_reset(struct store *st, int64_t mbox, const void *uid, size_t uidlen)
{
	return store_set_state(st, mbox, uid, uidlen, STORE_SEEN, "reset",
	    NULL);
}

/* Carries the caller's callback and its verdict through the backend. */
struct store_list_ctx {
	store_list_cb	 cb;
	void		*arg;
	int		 rv;
};

/* Hand one record to the caller, keeping its verdict apart from errors. */
static int
store_list_one(const struct store_msg *msg, void *arg)
{
	struct store_list_ctx	*ctx = arg;

	ctx->rv = ctx->cb(msg, ctx->arg);
	return ctx->rv;
}

int
store_list(struct store *st, int64_t mbox, store_list_cb cb, void *arg)
{
	struct store_list_ctx	 ctx = { cb, arg, 0 };
	int			 rv;

	if (store_usable(st, NULL, "list") == -1)
		return -1;
	if (cb == NULL) {
		log_warnx(store_acct(st, mbox), "store list: no callback");
		return -1;
	}
	st->in_list = 1;
	rv = st->ops->list(st->be, mbox, store_list_one, &ctx);
	st->in_list = 0;
	if (rv == -1) {
		store_fail(st, store_acct(st, mbox), "list");
		return -1;
	}
	return ctx.rv;
}

int
store_prune(struct store *st, int64_t mbox, time_t before, uint64_t *npruned)
{
	const char	*acct;
	uint64_t	 n = 0;
	int		 began;

	if (store_usable(st, NULL, "prune") == -1)
		return -1;
	acct = store_acct(st, mbox);
	began = !st->in_txn;
	if (store_wbegin(st, acct, "prune") == -1)
		return -1;
	if (st->ops->prune(st->be, mbox, before, &n) == -1) {
		store_fail(st, acct, "prune");
		return -1;
	}
	if (n == 0 && began) {
		/* Nothing changed: do not sit on the write lock. */
		st->ops->rollback(st->be);
		st->in_txn = 0;
	} else if (n > 0) {
		store_wrote(st);
		log_debug(acct, "store: pruned %" PRIu64 " records of mailbox %"
		    PRId64, n, mbox);
	}
	if (npruned != NULL)
		*npruned = n;
	return 0;
}

int
store_find_delivered(struct store *st, const char *account,
    const char *folder, const char *message_id, uint64_t size,
    const char *date)
{
	char	 mid[STORE_HDR_MAX + 1], dt[STORE_HDR_MAX + 1];
	int	 rv;

	if (store_usable(st, account, "find_delivered") == -1 ||
	    store_check_names(account, folder, "find_delivered") == -1)
		return -1;
	if (message_id == NULL || *message_id == '\0' || size > INT64_MAX)
		return STORE_ABSENT;
	/* Clip exactly as store_accepted() did when it stored them. */
	str_lcpy(mid, message_id, sizeof(mid));
	str_lcpy(dt, date != NULL ? date : "", sizeof(dt));
	rv = st->ops->find(st->be, account, folder, mid, size, dt);
	if (rv == -1)
		store_fail(st, account, "find_delivered");
	return rv;
}

int
store_commit(struct store *st)
{
	if (store_usable(st, NULL, "commit") == -1)
		return -1;
	if (!st->in_txn)
		return 0;
	KILLPOINT("store.commit");
	if (st->ops->commit(st->be) == -1) {
		log_warnx(NULL, "store commit: %s; %" PRIu64 " writes are not "
		    "durable, the store must be reopened",
		    st->ops->errmsg(st->be), st->write_n - st->durable_n);
		st->ops->rollback(st->be);
		st->in_txn = 0;
		st->broken = 1;
		return -1;
	}
	st->in_txn = 0;
	st->durable_n = st->write_n;
	KILLPOINT("store.durable");
	return 0;
}

int
store_pending(const struct store *st)
{
	return st != NULL && st->write_n != st->durable_n;
}

uint64_t
store_durable_seq(const struct store *st)
{
	if (st == NULL || st->durable_n == 0)
		return 0;
	return (st->gen << STORE_SEQ_BITS) | st->durable_n;
}

int
store_durable(const struct store *st, uint64_t seq)
{
	uint64_t	 n = seq & STORE_SEQ_MASK;

	if (st == NULL || seq >> STORE_SEQ_BITS != st->gen)
		return 0;
	return n != 0 && n <= st->durable_n;
}

int
store_broken(const struct store *st)
{
	return st == NULL || st->broken;
}

int
store_check(struct store *st, struct buf *err)
{
	if (store_usable(st, NULL, "check") == -1) {
		buf_add_str(err, "store unusable");
		return -1;
	}
	return st->ops->check(st->be, err);
}

/* ---- SQLite backend ---------------------------------------------------- */

#define SQ_DB_NAME	"haul.db"
#define SQ_BUSY_MS	5000
/* PRAGMA application_id: "HAUL", so a foreign SQLite file is refused. */
#define SQ_APP_ID	0x4841554c
#define SQ_ERR_MAX	1024

#ifndef SQLITE_OPEN_NOFOLLOW	/* SQLite < 3.31: our own O_NOFOLLOW check */
#define SQLITE_OPEN_NOFOLLOW	0
#endif

/*
 * Schema migrations: entry i takes user_version i to i + 1.  A new
 * version appends an entry (ALTER TABLE, new index, data fix-ups); it
 * runs inside the same transaction as the user_version bump.
 */
static const char *const sq_migrations[] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE mailbox ("
	"  id INTEGER PRIMARY KEY,"
	"  account TEXT NOT NULL,"
	"  folder TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL"
	"    CHECK (uidvalidity BETWEEN 0 AND 4294967295),"
	"  created INTEGER NOT NULL,"
	"  UNIQUE (account, folder, uidvalidity));"
	"CREATE TABLE folder ("
	"  account TEXT NOT NULL,"
	"  folder TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL"
	"    CHECK (uidvalidity BETWEEN 0 AND 4294967295),"
	"  highest_uid INTEGER NOT NULL CHECK (highest_uid >= 0),"
	"  updated INTEGER NOT NULL,"
	"  PRIMARY KEY (account, folder)) WITHOUT ROWID;"
	"CREATE TABLE msg ("
	"  mailbox INTEGER NOT NULL REFERENCES mailbox (id),"
	"  uid BLOB NOT NULL CHECK (length(uid) BETWEEN 1 AND 255),"
	/* Not "IN (...)": that builds a temporary index on every insert. */
	"  state TEXT NOT NULL CHECK (state = 'seen' OR state = 'injecting'"
	"    OR state = 'accepted' OR state = 'removed' OR state = 'refused'"
	"    OR state = 'too_big'),"
	"  attempts INTEGER NOT NULL CHECK (attempts >= 0),"
	"  size INTEGER NOT NULL CHECK (size >= 0),"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  message_id TEXT,"
	"  date TEXT,"
	"  queue_id TEXT,"
	"  reply TEXT,"
	"  PRIMARY KEY (mailbox, uid)) WITHOUT ROWID;"
	"CREATE INDEX msg_message_id ON msg (message_id)"
	"  WHERE message_id IS NOT NULL;",
	/* 1 -> 2: recipients done for a partly delivered message. */
	"ALTER TABLE msg ADD COLUMN rcpt_done TEXT;",
};
#define SQ_SCHEMA_VERSION \
	((int)(sizeof(sq_migrations) / sizeof(sq_migrations[0])))

enum sq_stmt {
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_MBOX_GET,
	SQ_MBOX_ADD,
	SQ_FOLDER_GET,
	SQ_FOLDER_SET,
	SQ_GET,
	SQ_PUT,
	SQ_TOUCH,
	SQ_LIST,
	SQ_PRUNE,
	SQ_FIND,
	SQ_NSTMT
};

#define SQ_MSG_COLS \
	"uid, state, attempts, size, first_seen, last_seen, updated, " \
	"message_id, date, queue_id, reply, rcpt_done"

static const char *const sq_sql[SQ_NSTMT] = {
	[SQ_BEGIN] = "BEGIN IMMEDIATE",
	[SQ_COMMIT] = "COMMIT",
	[SQ_MBOX_GET] = "SELECT id FROM mailbox"
	    " WHERE account = ?1 AND folder = ?2 AND uidvalidity = ?3",
	[SQ_MBOX_ADD] = "INSERT INTO mailbox (account, folder, uidvalidity,"
	    " created) VALUES (?1, ?2, ?3, ?4)",
	[SQ_FOLDER_GET] = "SELECT uidvalidity, highest_uid FROM folder"
	    " WHERE account = ?1 AND folder = ?2",
	[SQ_FOLDER_SET] = "INSERT INTO folder (account, folder, uidvalidity,"
	    " highest_uid, updated) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (account, folder) DO UPDATE SET"
	    " uidvalidity = excluded.uidvalidity,"
	    " highest_uid = excluded.highest_uid, updated = excluded.updated",
	[SQ_GET] = "SELECT " SQ_MSG_COLS " FROM msg"
	    " WHERE mailbox = ?1 AND uid = ?2",
	[SQ_PUT] = "INSERT INTO msg (mailbox, " SQ_MSG_COLS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
	    " ON CONFLICT (mailbox, uid) DO UPDATE SET"
	    " state = excluded.state, attempts = excluded.attempts,"
	    " size = excluded.size, first_seen = excluded.first_seen,"
	    " last_seen = excluded.last_seen, updated = excluded.updated,"
	    " message_id = excluded.message_id, date = excluded.date,"
	    " queue_id = excluded.queue_id, reply = excluded.reply,"
	    " rcpt_done = excluded.rcpt_done",
	[SQ_TOUCH] = "UPDATE msg SET last_seen = ?3"
	    " WHERE mailbox = ?1 AND uid = ?2",
	[SQ_LIST] = "SELECT " SQ_MSG_COLS " FROM msg WHERE mailbox = ?1"
	    " ORDER BY uid",
	[SQ_PRUNE] = "DELETE FROM msg WHERE mailbox = ?1 AND last_seen < ?2",
	[SQ_FIND] = "SELECT 1 FROM msg JOIN mailbox ON mailbox.id = msg.mailbox"
	    " WHERE mailbox.account = ?1 AND mailbox.folder = ?2"
	    " AND msg.message_id = ?3 AND msg.size = ?4 AND msg.date IS ?5"
	    " AND (msg.state = 'accepted' OR msg.state = 'removed') LIMIT 1",
};

struct sq {
	sqlite3		*db;
	sqlite3_stmt	*stmt[SQ_NSTMT];
	struct buf	 err;
	char		*path;
};

#ifdef HAUL_TEST_HOOKS
static const char	*sq_fault_vfs(struct buf *);
static void		 sq_fault_commit(int);
#endif

/* Remember the failure of `what` with SQLite's message, for errmsg(). */
static void
sq_fail(struct sq *sq, const char *what)
{
	buf_reset(&sq->err);
	if (buf_addf(&sq->err, "%s: %s (%d)", what, sqlite3_errmsg(sq->db),
	    sqlite3_extended_errcode(sq->db)) == -1)
		buf_add_str(&sq->err, what);
}

static void
sq_failx(struct sq *sq, const char *what)
{
	buf_reset(&sq->err);
	buf_add_str(&sq->err, what);
}

static const char *
sq_errmsg(void *be)
{
	struct sq	*sq = be;

	return sq->err.len > 0 ? sq->err.data : "unknown error";
}

/* The cached statement `which`, prepared on first use; NULL on error. */
static sqlite3_stmt *
sq_stmt(struct sq *sq, enum sq_stmt which)
{
	if (sq->stmt[which] == NULL && sqlite3_prepare_v3(sq->db,
	    sq_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &sq->stmt[which],
	    NULL) != SQLITE_OK) {
		sq_fail(sq, "prepare");
		sq->stmt[which] = NULL;
	}
	return sq->stmt[which];
}

/* Done with a statement: reset it so it holds no snapshot or lock. */
static void
sq_end(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Step a write statement to completion; 0 or -1. */
static int
sq_run(struct sq *sq, sqlite3_stmt *s, const char *what)
{
	if (sqlite3_step(s) != SQLITE_DONE) {
		sq_fail(sq, what);
		sq_end(s);
		return -1;
	}
	sq_end(s);
	return 0;
}

/* Empty strings are stored as NULL, so "no header" has one spelling. */
static int
sq_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL || *v == '\0')
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static void
sq_col_text(sqlite3_stmt *s, int i, char *dst, size_t dstsz)
{
	const unsigned char	*p = sqlite3_column_text(s, i);
	size_t			 n = (size_t)sqlite3_column_bytes(s, i);

	if (p == NULL)
		n = 0;
	if (n > dstsz - 1)
		n = dstsz - 1;
	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

/*
 * Decode the current row into rec.  The file is input too: anything out
 * of range is reported as corruption, never trusted or overflowed.
 */
static int
sq_row(struct sq *sq, sqlite3_stmt *s, struct store_msg *rec)
{
	const void	*uid = sqlite3_column_blob(s, 0);
	int		 uidlen = sqlite3_column_bytes(s, 0);
	const char	*state;
	sqlite3_int64	 attempts, size;
	int		 st;

	/* No memset: ~3 KiB a row adds up over 10^6 rows; all is set below. */
	state = (const char *)sqlite3_column_text(s, 1);
	attempts = sqlite3_column_int64(s, 2);
	size = sqlite3_column_int64(s, 3);
	if (uid == NULL || uidlen <= 0 || uidlen > STORE_UID_MAX ||
	    state == NULL || (st = store_state_parse(state)) == -1 ||
	    attempts < 0 || attempts > UINT_MAX || size < 0) {
		sq_failx(sq, "corrupt record (bad uid, state or count)");
		return -1;
	}
	memcpy(rec->uid, uid, (size_t)uidlen);
	rec->uid[uidlen] = '\0';
	rec->uidlen = (size_t)uidlen;
	rec->state = (enum store_state)st;
	rec->attempts = (unsigned)attempts;
	rec->size = (uint64_t)size;
	rec->first_seen = (time_t)sqlite3_column_int64(s, 4);
	rec->last_seen = (time_t)sqlite3_column_int64(s, 5);
	rec->updated = (time_t)sqlite3_column_int64(s, 6);
	sq_col_text(s, 7, rec->message_id, sizeof(rec->message_id));
	sq_col_text(s, 8, rec->date, sizeof(rec->date));
	sq_col_text(s, 9, rec->queue_id, sizeof(rec->queue_id));
	sq_col_text(s, 10, rec->reply, sizeof(rec->reply));
	sq_col_text(s, 11, rec->rcpt_done, sizeof(rec->rcpt_done));
	return 0;
}

/* Read an integer PRAGMA; 0 or -1. */
static int
sq_pragma_int(struct sq *sq, const char *name, sqlite3_int64 *v)
{
	sqlite3_stmt	*s;
	char		 sql[64];
	int		 rv = -1;

	snprintf(sql, sizeof(sql), "PRAGMA %s", name);
	if (sqlite3_prepare_v2(sq->db, sql, -1, &s, NULL) != SQLITE_OK) {
		sq_fail(sq, name);
		return -1;
	}
	if (sqlite3_step(s) == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rv = 0;
	} else
		sq_fail(sq, name);
	sqlite3_finalize(s);
	return rv;
}

static int
sq_exec(struct sq *sq, const char *sql, const char *what)
{
	if (sqlite3_exec(sq->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sq_fail(sq, what);
		return -1;
	}
	return 0;
}

static void
sq_rollback(void *be)
{
	struct sq	*sq = be;

	/* SQLite may have rolled back by itself (SQLITE_FULL, IOERR). */
	if (!sqlite3_get_autocommit(sq->db))
		(void)sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Bring the schema to SQ_SCHEMA_VERSION, refusing files that belong to
 * something else or to a newer hauld.
 */
static int
sq_migrate(struct sq *sq, struct buf *err)
{
	sqlite3_int64	 ver, app, nobj;
	char		 sql[64];
	int		 i;

	if (sq_pragma_int(sq, "user_version", &ver) == -1)
		goto fail;
	if (ver > SQ_SCHEMA_VERSION) {
		buf_addf(err, "%s: schema version %lld is newer than this "
		    "hauld's (%d)", sq->path, (long long)ver,
		    SQ_SCHEMA_VERSION);
		return -1;
	}
	if (ver == SQ_SCHEMA_VERSION) {
		if (sq_pragma_int(sq, "application_id", &app) == -1)
			goto fail;
		if (app != SQ_APP_ID)
			goto foreign;
		return 0;
	}

	if (sq_exec(sq, "BEGIN IMMEDIATE", "begin migration") == -1)
		goto fail;
	/* Re-read under the write lock: another process may have won. */
	if (sq_pragma_int(sq, "user_version", &ver) == -1 ||
	    sq_pragma_int(sq, "application_id", &app) == -1)
		goto rollback;
	if (ver == 0) {
		sqlite3_stmt	*s;

		if (sqlite3_prepare_v2(sq->db, "SELECT count(*) FROM "
		    "sqlite_master", -1, &s, NULL) != SQLITE_OK) {
			sq_fail(sq, "schema");
			goto rollback;
		}
		nobj = sqlite3_step(s) == SQLITE_ROW ?
		    sqlite3_column_int64(s, 0) : -1;
		sqlite3_finalize(s);
		if (nobj != 0 || app != 0) {
			sq_rollback(sq);
			goto foreign;
		}
	} else if (app != SQ_APP_ID) {
		sq_rollback(sq);
		goto foreign;
	}
	for (i = (int)ver; i < SQ_SCHEMA_VERSION; i++) {
		if (sq_exec(sq, sq_migrations[i], "migration") == -1)
			goto rollback;
		log_info(NULL, "store: %s: schema migrated to version %d",
		    sq->path, i + 1);
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", SQ_APP_ID);
	if (sq_exec(sq, sql, "application_id") == -1)
		goto rollback;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    SQ_SCHEMA_VERSION);
	if (sq_exec(sq, sql, "user_version") == -1 ||
	    sq_exec(sq, "COMMIT", "commit migration") == -1)
		goto rollback;
	return 0;

rollback:
	sq_rollback(sq);
fail:
	buf_addf(err, "%s: %s", sq->path, sq_errmsg(sq));
	return -1;
foreign:
	buf_addf(err, "%s: not a haul UID store", sq->path);
	return -1;
}

/* Check one existing file of ours: regular, one link, our owner, 0600. */
static int
sq_check_fd(int fd, const char *dir, const char *base, int isdb,
    struct buf *err)
{
	struct stat	 sb;
	char		 name[PATH_MAX];

	snprintf(name, sizeof(name), "%s/%s", dir, base);

	if (fstat(fd, &sb) == -1) {
		buf_addf(err, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		buf_addf(err, "%s: not a regular file", name);
		return -1;
	}
	if (isdb && sb.st_nlink != 1) {
		buf_addf(err, "%s: has %ju hard links", name,
		    (uintmax_t)sb.st_nlink);
		return -1;
	}
	if (sb.st_uid != geteuid()) {
		buf_addf(err, "%s: owned by uid %ju, not by us", name,
		    (uintmax_t)sb.st_uid);
		return -1;
	}
	if ((sb.st_mode & 07777) != 0600) {
		if (fchmod(fd, 0600) == -1) {
			buf_addf(err, "%s: chmod: %s", name, strerror(errno));
			return -1;
		}
		log_notice(NULL, "store: %s: mode %03o tightened to 0600", name,
		    (unsigned)(sb.st_mode & 07777));
	}
	return 0;
}

/*
 * Create state_dir/haul.db if needed and vet it and its companions
 * before SQLite opens them by name: no symlinks, owner-only.  A new file
 * is fsync'd with its directory so it survives a crash.
 */
static int
sq_prepare_files(const char *dir, struct buf *err)
{
	static const char *const names[] = {
		SQ_DB_NAME, SQ_DB_NAME "-wal", SQ_DB_NAME "-shm",
		SQ_DB_NAME "-journal",
	};
	struct stat	 sb;
	size_t		 i;
	int		 dfd, fd, created = 0, rv = -1;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1 && errno == ENOENT) {
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			buf_addf(err, "mkdir %s: %s", dir, strerror(errno));
			return -1;
		}
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dfd == -1) {
		buf_addf(err, "%s: %s", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno == ENOENT)
				continue;
			buf_addf(err, "%s/%s: %s", dir, names[i],
			    strerror(errno));
			goto out;
		}
		if (S_ISLNK(sb.st_mode)) {
			buf_addf(err, "%s/%s: is a symlink, refused", dir,
			    names[i]);
			goto out;
		}
		if (i == 0)
			continue;	/* vetted below, through its fd */
		fd = openat(dfd, names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (fd == -1) {
			buf_addf(err, "%s/%s: %s", dir, names[i],
			    strerror(errno));
			goto out;
		}
		if (sq_check_fd(fd, dir, names[i], 0, err) == -1) {
			close(fd);
			goto out;
		}
		close(fd);
	}

	fd = openat(dfd, SQ_DB_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd != -1)
		created = 1;
	else if (errno == EEXIST)
		fd = openat(dfd, SQ_DB_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		buf_addf(err, "%s/%s: %s", dir, SQ_DB_NAME, errno == ELOOP ?
		    "is a symlink, refused" : strerror(errno));
		goto out;
	}
	if (sq_check_fd(fd, dir, SQ_DB_NAME, 1, err) == -1) {
		close(fd);
		goto out;
	}
	if (created && (fsync(fd) == -1 || fsync(dfd) == -1)) {
		buf_addf(err, "%s: fsync: %s", dir, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	rv = 0;
out:
	close(dfd);
	return rv;
}

/* The journal mode as SQLite reports it (after running sql); 0 or -1. */
static int
sq_journal_mode(struct sq *sq, const char *sql, char *mode, size_t modesz)
{
	sqlite3_stmt		*s;
	const unsigned char	*m;
	int			 rc;

	if (sqlite3_prepare_v2(sq->db, sql, -1, &s, NULL) != SQLITE_OK) {
		sq_fail(sq, "journal_mode");
		return -1;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		m = sqlite3_column_text(s, 0);
		str_lcpy(mode, m != NULL ? (const char *)m : "", modesz);
		rc = sqlite3_step(s);
	}
	/* The switch can fail after the row (a failed write or fsync). */
	if (rc != SQLITE_DONE) {
		sq_fail(sq, "journal_mode");
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* Switch to WAL and read the mode back: a failed switch is an error. */
static int
sq_set_wal(struct sq *sq)
{
	char	 mode[16];

	if (sq_journal_mode(sq, "PRAGMA journal_mode = WAL", mode,
	    sizeof(mode)) == -1 ||
	    sq_journal_mode(sq, "PRAGMA journal_mode", mode,
	    sizeof(mode)) == -1)
		return -1;
	if (strcasecmp(mode, "wal") != 0) {
		sq_failx(sq, "journal_mode: WAL not available");
		return -1;
	}
	return 0;
}

/* Finalize the cached statements and close the connection. */
static void
sq_close(void *be)
{
	struct sq	*sq = be;
	int		 i;

	if (sq == NULL)
		return;
	for (i = 0; i < SQ_NSTMT; i++)
		sqlite3_finalize(sq->stmt[i]);
	if (sq->db != NULL && sqlite3_close(sq->db) != SQLITE_OK)
		log_warnx(NULL, "store: close %s: %s", sq->path,
		    sqlite3_errmsg(sq->db));
	buf_free(&sq->err);
	free(sq->path);
	free(sq);
}

/* Vet, open and configure state_dir/haul.db (the backend's open()). */
static void *
sq_open(const char *state_dir, struct buf *err)
{
	struct sq	*sq;
	const char	*vfs = NULL;
	int		 rc;

	if (state_dir == NULL || *state_dir == '\0') {
		buf_add_str(err, "store: no state directory");
		return NULL;
	}
#ifdef HAUL_TEST_HOOKS
	if ((vfs = sq_fault_vfs(err)) == NULL)
		return NULL;
#endif
	if (sq_prepare_files(state_dir, err) == -1)
		return NULL;

	sq = xcalloc(1, sizeof(*sq));
	buf_init(&sq->err, SQ_ERR_MAX);
	xasprintf(&sq->path, "%s/%s", state_dir, SQ_DB_NAME);
	/* No SQLITE_OPEN_CREATE: the file was created and vetted above. */
	rc = sqlite3_open_v2(sq->path, &sq->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOFOLLOW, vfs);
	if (rc != SQLITE_OK) {
		buf_addf(err, "%s: %s", sq->path, sq->db != NULL ?
		    sqlite3_errmsg(sq->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(sq->db, 1);
	sqlite3_busy_timeout(sq->db, SQ_BUSY_MS);
	if (sq_set_wal(sq) == -1 ||
	    sq_exec(sq, "PRAGMA synchronous = FULL;"
	    "PRAGMA foreign_keys = ON;"
	    "PRAGMA trusted_schema = OFF;"
	    "PRAGMA cell_size_check = ON;"
	    "PRAGMA journal_size_limit = 67108864;", "pragmas") == -1) {
		buf_addf(err, "%s: %s", sq->path, sq_errmsg(sq));
		goto fail;
	}
	if (sq_migrate(sq, err) == -1)
		goto fail;
	return sq;
fail:
	sq_close(sq);
	return NULL;
}

static int
sq_begin(void *be)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_BEGIN)) == NULL)
		return -1;
	return sq_run(sq, s, "begin");
}

/* COMMIT; with synchronous=FULL the WAL is fsync'd before it returns. */
static int
sq_commit(void *be)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;
	int		 rv;

	if ((s = sq_stmt(sq, SQ_COMMIT)) == NULL)
		return -1;
#ifdef HAUL_TEST_HOOKS
	sq_fault_commit(1);
#endif
	rv = sq_run(sq, s, "commit");
#ifdef HAUL_TEST_HOOKS
	sq_fault_commit(0);
#endif
	return rv;
}

static int
sq_mailbox_get(void *be, const char *account, const char *folder,
    uint32_t uidvalidity, int64_t *id)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = sq_stmt(sq, SQ_MBOX_GET)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, uidvalidity);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		sq_fail(sq, "mailbox lookup");
	sq_end(s);
	if (rc == SQLITE_ROW)
		return STORE_FOUND;
	return rc == SQLITE_DONE ? STORE_ABSENT : -1;
}

static int
sq_mailbox_add(void *be, const char *account, const char *folder,
    uint32_t uidvalidity, time_t now, int64_t *id)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_MBOX_ADD)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, uidvalidity);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)now);
	if (sq_run(sq, s, "mailbox insert") == -1)
		return -1;
	*id = sqlite3_last_insert_rowid(sq->db);
	return 0;
}

static int
sq_folder_get(void *be, const char *account, const char *folder,
    uint32_t *uidvalidity, uint64_t *highest_uid)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;
	sqlite3_int64	 uv, hi;
	int		 rc, rv = -1;

	if ((s = sq_stmt(sq, SQ_FOLDER_GET)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		uv = sqlite3_column_int64(s, 0);
		hi = sqlite3_column_int64(s, 1);
		if (uv < 0 || uv > UINT32_MAX || hi < 0)
			sq_failx(sq, "corrupt folder record");
		else {
			*uidvalidity = (uint32_t)uv;
			*highest_uid = (uint64_t)hi;
			rv = STORE_FOUND;
		}
	} else if (rc == SQLITE_DONE)
		rv = STORE_ABSENT;
	else
		sq_fail(sq, "folder lookup");
	sq_end(s);
	return rv;
}

static int
sq_folder_set(void *be, const char *account, const char *folder,
    uint32_t uidvalidity, uint64_t highest_uid, time_t now)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_FOLDER_SET)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, uidvalidity);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)highest_uid);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)now);
	return sq_run(sq, s, "folder update");
}

static int
sq_get(void *be, int64_t mbox, const void *uid, size_t uidlen,
    struct store_msg *out)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;
	int		 rc, rv = -1;

	if ((s = sq_stmt(sq, SQ_GET)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, mbox);
	sqlite3_bind_blob(s, 2, uid, (int)uidlen, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sq_row(sq, s, out) == 0)
			rv = STORE_FOUND;
	} else if (rc == SQLITE_DONE)
		rv = STORE_ABSENT;
	else
		sq_fail(sq, "lookup");
	sq_end(s);
	return rv;
}

static int
sq_put(void *be, int64_t mbox, const struct store_msg *rec)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_PUT)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, mbox);
	sqlite3_bind_blob(s, 2, rec->uid, (int)rec->uidlen, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, store_state_name(rec->state), -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, rec->attempts);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)rec->size);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)rec->first_seen);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)rec->last_seen);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)rec->updated);
	sq_bind_text(s, 9, rec->message_id);
	sq_bind_text(s, 10, rec->date);
	sq_bind_text(s, 11, rec->queue_id);
	sq_bind_text(s, 12, rec->reply);
	sq_bind_text(s, 13, rec->rcpt_done);
	return sq_run(sq, s, "record write");
}

static int
sq_touch(void *be, int64_t mbox, const void *uid, size_t uidlen, time_t now)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_TOUCH)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, mbox);
	sqlite3_bind_blob(s, 2, uid, (int)uidlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)now);
	if (sq_run(sq, s, "touch") == -1)
		return -1;
	return sqlite3_changes(sq->db) == 0 ? STORE_ABSENT : 0;
}

/* Stream mbox's records to cb; 0 also when cb stopped early. */
static int
sq_list(void *be, int64_t mbox, store_list_cb cb, void *arg)
{
	struct sq		*sq = be;
	struct store_msg	 rec;
	sqlite3_stmt		*s;
	int			 rc, rv = 0;

	if ((s = sq_stmt(sq, SQ_LIST)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, mbox);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sq_row(sq, s, &rec) == -1) {
			rv = -1;
			break;
		}
		if (cb(&rec, arg) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sq_fail(sq, "list");
		rv = -1;
	}
	sq_end(s);
	return rv;
}

static int
sq_prune(void *be, int64_t mbox, time_t before, uint64_t *n)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;

	if ((s = sq_stmt(sq, SQ_PRUNE)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, mbox);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)before);
	if (sq_run(sq, s, "prune") == -1)
		return -1;
	*n = (uint64_t)sqlite3_changes(sq->db);
	return 0;
}

static int
sq_find(void *be, const char *account, const char *folder,
    const char *message_id, uint64_t size, const char *date)
{
	struct sq	*sq = be;
	sqlite3_stmt	*s;
	int		 rc;

	if ((s = sq_stmt(sq, SQ_FIND)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, folder, -1, SQLITE_STATIC);
	sq_bind_text(s, 3, message_id);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)size);
	sq_bind_text(s, 5, date);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		sq_fail(sq, "find");
	sq_end(s);
	if (rc == SQLITE_ROW)
		return STORE_FOUND;
	return rc == SQLITE_DONE ? STORE_ABSENT : -1;
}

static int
sq_check(void *be, struct buf *err)
{
	struct sq		*sq = be;
	sqlite3_stmt		*s;
	const unsigned char	*res;
	int			 rv = -1;

	if (sqlite3_prepare_v2(sq->db, "PRAGMA quick_check", -1, &s, NULL) !=
	    SQLITE_OK) {
		buf_addf(err, "%s: %s", sq->path, sqlite3_errmsg(sq->db));
		return -1;
	}
	if (sqlite3_step(s) != SQLITE_ROW)
		buf_addf(err, "%s: %s", sq->path, sqlite3_errmsg(sq->db));
	else if ((res = sqlite3_column_text(s, 0)) == NULL ||
	    strcmp((const char *)res, "ok") != 0)
		buf_addf(err, "%s: %s", sq->path, res != NULL ?
		    (const char *)res : "check failed");
	else
		rv = 0;
	sqlite3_finalize(s);
	return rv;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.errmsg = sq_errmsg,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.mailbox_get = sq_mailbox_get,
	.mailbox_add = sq_mailbox_add,
	.folder_get = sq_folder_get,
	.folder_set = sq_folder_set,
	.get = sq_get,
	.put = sq_put,
	.touch = sq_touch,
	.list = sq_list,
	.prune = sq_prune,
	.find = sq_find,
	.check = sq_check,
};

#ifdef HAUL_TEST_HOOKS
/*
 * ---- Storage fault injection (test builds only) ------------------------
 *
 * HAUL_FAULT_STORE=POINT:KIND[:N], read by each store_open():
 *   POINT  write   the Nth xWrite on any store file
 *          sync    the Nth xSync
 *          commit  the Nth store_commit(): EIO fails its fsync, ENOSPC its
 *                  first write, kill strikes at its second write (some
 *                  WAL frames written, the commit frame not)
 *   KIND   eio     SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC
 *          enospc  SQLITE_FULL
 *          kill    SIGKILL this process before the I/O
 * N defaults to 1; the fault fires once.  A VFS shim wraps the default
 * VFS, so SQLite sees the error exactly where a real disk would give it
 * and the real rollback path runs.
 */

enum fault_point { FP_NONE, FP_WRITE, FP_SYNC, FP_COMMIT };
enum fault_kind { FK_EIO, FK_ENOSPC, FK_KILL };

static struct {
	enum fault_point point;
	enum fault_kind	 kind;
	unsigned long	 left;		/* eligible events until it fires */
	int		 in_commit;	/* this commit is the chosen one */
	unsigned	 commit_writes;
} fault;

struct fault_file {
	sqlite3_file	 base;
	sqlite3_file	*real;		/* follows this struct in memory */
};

static sqlite3_vfs	*fault_real;

#define FAULT_REAL(f)	(((struct fault_file *)(f))->real)

/* The error a faulted write or sync returns (or never returns: kill). */
static int
fault_fire(int is_sync)
{
	fault.point = FP_NONE;
	switch (fault.kind) {
	case FK_KILL:
		kill(getpid(), SIGKILL);
		_exit(137);
	case FK_ENOSPC:
		return SQLITE_FULL;
	case FK_EIO:
		break;
	}
	return is_sync ? SQLITE_IOERR_FSYNC : SQLITE_IOERR_WRITE;
}

/* Bracket store_commit() so that commit: faults strike only inside it. */
static void
sq_fault_commit(int entering)
{
	if (!entering) {
		fault.in_commit = 0;
		return;
	}
	if (fault.point == FP_COMMIT && --fault.left == 0) {
		fault.in_commit = 1;
		fault.commit_writes = 0;
	}
}

static int
fault_close(sqlite3_file *f)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xClose(r);
}

static int
fault_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xRead(r, p, n, off);
}

/* xWrite, failing (or killing) when a write or commit fault is due. */
static int
fault_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (fault.point == FP_WRITE && --fault.left == 0)
		return fault_fire(0);
	if (fault.point == FP_COMMIT && fault.in_commit) {
		fault.commit_writes++;
		if ((fault.kind == FK_ENOSPC && fault.commit_writes == 1) ||
		    (fault.kind == FK_KILL && fault.commit_writes == 2))
			return fault_fire(0);
	}
	return r->pMethods->xWrite(r, p, n, off);
}

static int
fault_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xTruncate(r, size);
}

/* xSync, failing (or killing) when a sync or commit fault is due. */
static int
fault_sync(sqlite3_file *f, int flags)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (fault.point == FP_SYNC && --fault.left == 0)
		return fault_fire(1);
	if (fault.point == FP_COMMIT && fault.in_commit &&
	    fault.kind == FK_EIO)
		return fault_fire(1);
	return r->pMethods->xSync(r, flags);
}

static int
fault_size(sqlite3_file *f, sqlite3_int64 *size)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xFileSize(r, size);
}

static int
fault_lock(sqlite3_file *f, int lock)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xLock(r, lock);
}

static int
fault_unlock(sqlite3_file *f, int lock)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xUnlock(r, lock);
}

static int
fault_reserved(sqlite3_file *f, int *out)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xCheckReservedLock(r, out);
}

static int
fault_fcntl(sqlite3_file *f, int op, void *arg)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xFileControl(r, op, arg);
}

static int
fault_sector(sqlite3_file *f)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xSectorSize(r);
}

static int
fault_devchar(sqlite3_file *f)
{
	sqlite3_file	*r = FAULT_REAL(f);

	return r->pMethods->xDeviceCharacteristics(r);
}

static int
fault_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
    void volatile **pp)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion < 2 || r->pMethods->xShmMap == NULL)
		return SQLITE_IOERR_SHMMAP;
	return r->pMethods->xShmMap(r, pg, pgsz, extend, pp);
}

static int
fault_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion < 2 || r->pMethods->xShmLock == NULL)
		return SQLITE_IOERR_SHMLOCK;
	return r->pMethods->xShmLock(r, off, n, flags);
}

static void
fault_shm_barrier(sqlite3_file *f)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion >= 2 && r->pMethods->xShmBarrier != NULL)
		r->pMethods->xShmBarrier(r);
}

static int
fault_shm_unmap(sqlite3_file *f, int del)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion < 2 || r->pMethods->xShmUnmap == NULL)
		return SQLITE_OK;
	return r->pMethods->xShmUnmap(r, del);
}

static int
fault_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion < 3 || r->pMethods->xFetch == NULL) {
		*pp = NULL;
		return SQLITE_OK;
	}
	return r->pMethods->xFetch(r, off, n, pp);
}

static int
fault_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	sqlite3_file	*r = FAULT_REAL(f);

	if (r->pMethods->iVersion < 3 || r->pMethods->xUnfetch == NULL)
		return SQLITE_OK;
	return r->pMethods->xUnfetch(r, off, p);
}

static const sqlite3_io_methods fault_io = {
	.iVersion = 3,
	.xClose = fault_close,
	.xRead = fault_read,
	.xWrite = fault_write,
	.xTruncate = fault_truncate,
	.xSync = fault_sync,
	.xFileSize = fault_size,
	.xLock = fault_lock,
	.xUnlock = fault_unlock,
	.xCheckReservedLock = fault_reserved,
	.xFileControl = fault_fcntl,
	.xSectorSize = fault_sector,
	.xDeviceCharacteristics = fault_devchar,
	.xShmMap = fault_shm_map,
	.xShmLock = fault_shm_lock,
	.xShmBarrier = fault_shm_barrier,
	.xShmUnmap = fault_shm_unmap,
	.xFetch = fault_fetch,
	.xUnfetch = fault_unfetch,
};

/* Open through the real VFS; our methods wrap its file. */
static int
fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *outflags)
{
	struct fault_file	*ff = (struct fault_file *)f;
	int			 rc;

	ff->real = (sqlite3_file *)(ff + 1);
	ff->real->pMethods = NULL;
	rc = fault_real->xOpen(fault_real, name, ff->real, flags, outflags);
	/* SQLite calls xClose iff pMethods is set, even after a failure. */
	ff->base.pMethods = ff->real->pMethods != NULL ? &fault_io : NULL;
	return rc;
}

static int
fault_delete(sqlite3_vfs *vfs, const char *name, int syncdir)
{
	return fault_real->xDelete(fault_real, name, syncdir);
}

static int
fault_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return fault_real->xAccess(fault_real, name, flags, out);
}

static int
fault_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return fault_real->xFullPathname(fault_real, name, n, out);
}

static void *
fault_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return fault_real->xDlOpen(fault_real, name);
}

static void
fault_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	fault_real->xDlError(fault_real, n, msg);
}

static void
(*fault_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return fault_real->xDlSym(fault_real, h, sym);
}

static void
fault_dlclose(sqlite3_vfs *vfs, void *h)
{
	fault_real->xDlClose(fault_real, h);
}

static int
fault_random(sqlite3_vfs *vfs, int n, char *out)
{
	return fault_real->xRandomness(fault_real, n, out);
}

static int
fault_sleep(sqlite3_vfs *vfs, int us)
{
	return fault_real->xSleep(fault_real, us);
}

static int
fault_time(sqlite3_vfs *vfs, double *out)
{
	return fault_real->xCurrentTime(fault_real, out);
}

static int
fault_lasterr(sqlite3_vfs *vfs, int n, char *out)
{
	return fault_real->xGetLastError(fault_real, n, out);
}

static int
fault_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	if (fault_real->iVersion < 2 || fault_real->xCurrentTimeInt64 == NULL) {
		double	 d;
		int	 rc = fault_real->xCurrentTime(fault_real, &d);

		*out = (sqlite3_int64)(d * 86400000.0);
		return rc;
	}
	return fault_real->xCurrentTimeInt64(fault_real, out);
}

static sqlite3_vfs fault_vfs = {
	.iVersion = 2,
	.zName = "haul-fault",
	.xOpen = fault_open,
	.xDelete = fault_delete,
	.xAccess = fault_access,
	.xFullPathname = fault_fullpath,
	.xDlOpen = fault_dlopen,
	.xDlError = fault_dlerror,
	.xDlSym = fault_dlsym,
	.xDlClose = fault_dlclose,
	.xRandomness = fault_random,
	.xSleep = fault_sleep,
	.xCurrentTime = fault_time,
	.xGetLastError = fault_lasterr,
	.xCurrentTimeInt64 = fault_time64,
};

/* Parse "POINT:KIND[:N]" into the fault state; 0 or -1. */
static int
fault_parse(const char *spec)
{
	static const struct {
		const char	*name;
		int		 value;
	} points[] = {
		{ "write", FP_WRITE }, { "sync", FP_SYNC },
		{ "commit", FP_COMMIT },
	}, kinds[] = {
		{ "eio", FK_EIO }, { "enospc", FK_ENOSPC }, { "kill", FK_KILL },
	};
	const char	*p = spec, *colon;
	uint64_t	 n = 1;
	size_t		 i, len;
	int		 point = -1, kind = -1;

	if ((colon = strchr(p, ':')) == NULL)
		return -1;
	len = (size_t)(colon - p);
	for (i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		if (strlen(points[i].name) == len &&
		    strncmp(p, points[i].name, len) == 0)
			point = points[i].value;
	}
	p = colon + 1;
	colon = strchr(p, ':');
	len = colon != NULL ? (size_t)(colon - p) : strlen(p);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].name) == len &&
		    strncmp(p, kinds[i].name, len) == 0)
			kind = kinds[i].value;
	}
	if (colon != NULL && str_to_u64(colon + 1, strlen(colon + 1),
	    UINT32_MAX, &n) == -1)
		return -1;
	if (point == -1 || kind == -1 || n == 0)
		return -1;
	fault.point = (enum fault_point)point;
	fault.kind = (enum fault_kind)kind;
	fault.left = (unsigned long)n;
	fault.in_commit = 0;
	return 0;
}

/*
 * Arm the fault from HAUL_FAULT_STORE and return the shim VFS name; NULL
 * with a message in err if the spec is malformed.
 */
static const char *
sq_fault_vfs(struct buf *err)
{
	const char	*spec = getenv("HAUL_FAULT_STORE");

	if (fault_real == NULL) {
		if ((fault_real = sqlite3_vfs_find(NULL)) == NULL) {
			buf_add_str(err, "store: no default SQLite VFS");
			return NULL;
		}
		fault_vfs.szOsFile = (int)sizeof(struct fault_file) +
		    fault_real->szOsFile;
		fault_vfs.mxPathname = fault_real->mxPathname;
		if (sqlite3_vfs_register(&fault_vfs, 0) != SQLITE_OK) {
			buf_add_str(err, "store: cannot register fault VFS");
			return NULL;
		}
	}
	fault.point = FP_NONE;
	if (spec != NULL && *spec != '\0' && fault_parse(spec) == -1) {
		buf_addf(err, "HAUL_FAULT_STORE: bad spec \"%s\"", spec);
		return NULL;
	}
	return fault_vfs.zName;
}
#endif /* HAUL_TEST_HOOKS */
