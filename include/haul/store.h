/* ISC licence; see LICENSE. */
#ifndef HAUL_STORE_H
#define HAUL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "haul/buf.h"

/*
 * The UID store: what hauld saw and delivered, per mailbox and UID, so
 * that `keep` never re-delivers and a server-side delete happens only
 * after the MTA accepted the message AND that record is durable.
 * docs/uid-store.md has the schema, the states and the durability
 * contract.  The store is opaque; SQLite is the only backend today and no
 * SQLite type or SQL text leaves fetcher/store.c.
 *
 * Conventions for every function below:
 *  - -1 means an error that has been logged (with the account name when
 *    there is one); lookups return STORE_FOUND (0) or STORE_ABSENT (1).
 *  - A UID is an opaque byte string (uid, uidlen), 1..STORE_UID_MAX bytes,
 *    compared bytewise; it may hold any byte, NUL included.  Empty or
 *    longer UIDs are rejected with -1, never truncated.
 *  - Strings (account, folder, queue id, Message-ID, Date, reply) are C
 *    strings; the caller guarantees they hold no NUL.  Header values and
 *    reply text longer than their limit are stored truncated (the same
 *    truncation applies to lookups, so matching stays consistent).
 *  - Writes join one open transaction (group commit).  Nothing is durable
 *    until store_commit() returns 0.  A record read while store_pending()
 *    is 0 is durable.
 *  - The store is single-threaded: one handle, one thread.
 */

#define STORE_UID_MAX		255	/* POP3 UIDL is <= 70; IMAP UIDs ~10 */
#define STORE_NAME_MAX		255	/* account name */
#define STORE_FOLDER_MAX	1000	/* IMAP mailbox name, bytes */
#define STORE_HDR_MAX		998	/* Message-ID, Date: one RFC 5322 line */
#define STORE_QUEUEID_MAX	128
#define STORE_REPLY_MAX		512	/* one SMTP reply line */
#define STORE_RCPT_DONE_MAX	2048	/* recipients done, '\n'-separated */
/*
 * last_seen is only rewritten when it is this many seconds old, so a
 * mailbox of 10^6 UIDs polled every minute does not rewrite 10^6 rows a
 * minute.  Prune grace periods are days, so the lag does not matter.
 */
#define STORE_TOUCH_SLACK	3600

/*
 * POP3 has one maildrop and no UIDVALIDITY: its mailbox is folder "" with
 * uidvalidity 0.  "" is not a selectable IMAP name, so an account switched
 * from POP3 to IMAP never mixes UIDL strings with IMAP UIDs.
 */
#define STORE_POP3_FOLDER	""
#define STORE_POP3_UIDVALIDITY	0

#define STORE_FOUND	0
#define STORE_ABSENT	1

/* Per-message state; transitions are listed in docs/uid-store.md. */
enum store_state {
	STORE_SEEN,		/* listed by the server, not yet handled */
	STORE_INJECTING,	/* handed to the MTA attempts times, no 2xx yet */
	STORE_ACCEPTED,		/* final 2xx from the MTA (queue_id) */
	STORE_REMOVED,		/* accepted, and the server-side delete done */
	STORE_REFUSED,		/* MTA 5xx (reply); never retried by itself */
	STORE_TOO_BIG,		/* above max_message_size; kept on the server */
};

/* One record, as read back.  Text fields are NUL-terminated; "" = unset. */
struct store_msg {
	char		 uid[STORE_UID_MAX + 1];	/* NUL after uidlen */
	size_t		 uidlen;
	enum store_state state;
	unsigned	 attempts;	/* store_injecting() calls */
	uint64_t	 size;		/* bytes, as the server listed it */
	time_t		 first_seen;
	time_t		 last_seen;	/* last listed by the server (+slack) */
	time_t		 updated;	/* last state change (clock_wall) */
	char		 message_id[STORE_HDR_MAX + 1];
	char		 date[STORE_HDR_MAX + 1];
	char		 queue_id[STORE_QUEUEID_MAX + 1];
	char		 reply[STORE_REPLY_MAX + 1];
	/*
	 * A message some recipients have for good (2xx or 5xx) while others
	 * answered 4xx: those recipients, so a later attempt goes only to
	 * the rest (LMTP/SMTP per-recipient replies, one LDA run each).
	 */
	char		 rcpt_done[STORE_RCPT_DONE_MAX + 1];
};

struct store;

/*
 * Open (creating if needed) state_dir/haul.db: mode 0600, refused if it
 * or its -wal/-shm companions are symlinks or not regular files, or if
 * the file is not owned by the effective user.  state_dir is created
 * (0700, one level) when missing.  The schema is migrated to the current
 * version; a newer schema is refused.  Returns a store, or NULL with a
 * message in err.
 *
 * Test builds (HAUL_TEST_HOOKS) read HAUL_FAULT_STORE here to inject
 * storage faults; see docs/uid-store.md.
 */
struct store	*store_open(const char *state_dir, struct buf *err);
/*
 * Close and NULL *stp (NULL is fine).  Uncommitted writes are rolled
 * back, not committed: only store_commit() makes anything durable.
 */
void		 store_close(struct store **stp);

/* "seen", "injecting", ...; "?" for a value out of range. */
const char	*store_state_name(enum store_state);

/*
 * Get or create the mailbox (account, folder, uidvalidity); *id is its
 * handle for the record functions.  A created mailbox is a write (it is
 * durable after store_commit()).  Returns 0 or -1.
 */
int		 store_mailbox(struct store *, const char *account,
		    const char *folder, uint32_t uidvalidity, int64_t *id);

/*
 * The folder's current UIDVALIDITY and IMAP high-water mark (the highest
 * UID handled).  Returns STORE_FOUND, STORE_ABSENT if this folder was
 * never recorded, or -1.
 */
int		 store_folder_get(struct store *, const char *account,
		    const char *folder, uint32_t *uidvalidity,
		    uint64_t *highest_uid);
/*
 * Record the folder's UIDVALIDITY and high-water mark (replacing the old
 * ones; on a UIDVALIDITY switch pass the new value and 0).  Old mailboxes
 * and their records stay, for store_find_delivered().  Returns 0 or -1.
 */
int		 store_folder_set(struct store *, const char *account,
		    const char *folder, uint32_t uidvalidity,
		    uint64_t highest_uid);

/* Fetch one record into *out.  STORE_FOUND, STORE_ABSENT or -1. */
int		 store_get(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen, struct store_msg *out);

/*
 * The server listed uid: create it as STORE_SEEN (first_seen = last_seen
 * = now) if absent, else as store_touch_seen().  Returns 0 or -1.
 */
int		 store_seen(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen, uint64_t size, time_t now);
/*
 * The server listed uid again: raise last_seen to now if it is more than
 * STORE_TOUCH_SLACK older (otherwise nothing is written).  Returns 0,
 * STORE_ABSENT if there is no record, or -1.
 */
int		 store_touch_seen(struct store *, int64_t mbox,
		    const void *uid, size_t uidlen, time_t now);
/*
 * About to hand uid to the MTA: state INJECTING, attempts + 1 (stored in
 * *attempts if not NULL).  Allowed from SEEN and INJECTING only; an
 * accepted, removed, refused or too-big UID is never re-injected (-1).
 */
int		 store_injecting(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen, unsigned *attempts);
/*
 * The MTA gave a final 2xx.  Allowed from every state, creating the
 * record if missing, because failing to record a delivery would only
 * cause a re-delivery.  message_id and date (header values, NULL if the
 * message has none) and size (as the server listed it: LIST,
 * RFC822.SIZE) feed store_find_delivered(); queue_id may be NULL.
 * Returns the write's sequence number (never 0), or 0 on error.  The
 * server-side delete of uid is allowed only once store_durable() says
 * that sequence number is durable.
 */
uint64_t	 store_accepted(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen, const char *queue_id, const char *message_id,
		    const char *date, uint64_t size);
/*
 * The server-side delete of uid completed (QUIT +OK, UID EXPUNGE OK).
 * Allowed from ACCEPTED and REMOVED, and from REFUSED/TOO_BIG for opt-in
 * delete policies; never from SEEN or INJECTING (-1).  Returns 0 or -1.
 */
int		 store_removed(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen);
/* The MTA refused uid with a 5xx (reply text, may be NULL).  From SEEN,
 * INJECTING or REFUSED.  Returns 0 or -1. */
/*
 * Add recipients to the record's rcpt_done set (state injecting).  0, or
 * -1 (no record, the set would not fit, a recipient holds a newline).
 */
int		 store_rcpt_done(struct store *, int64_t mbox,
		    const void *uid, size_t uidlen, char *const *rcpt,
		    size_t nrcpt);
/* Whether addr is in a record's rcpt_done set. */
int		 store_rcpt_is_done(const struct store_msg *, const char *addr);
int		 store_refused(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen, const char *reply);
/* uid exceeds max_message_size.  From SEEN, INJECTING or TOO_BIG.
 * Returns 0 or -1. */
int		 store_too_big(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen);
/*
 * Operator retry: back to SEEN with attempts 0.  From INJECTING, REFUSED
 * or TOO_BIG; never from ACCEPTED/REMOVED (that would re-deliver).
 * Returns 0 or -1.
 */
int		 store_reset(struct store *, int64_t mbox, const void *uid,
		    size_t uidlen);

/*
 * Call cb for every record of mbox, in UID byte order, with one prepared
 * statement (no per-UID round trip).  *msg is valid during the call only.
 * cb must not call any store function (they fail with -1).  Returns 0
 * after the last record, -1 on error, or cb's return value if it was not
 * 0 (iteration stops there).
 */
typedef int	(*store_list_cb)(const struct store_msg *msg, void *arg);
int		 store_list(struct store *, int64_t mbox, store_list_cb cb,
		    void *arg);
/*
 * Delete mbox's records whose last_seen is before `before` (UIDs the
 * server stopped listing, after a grace period; remember last_seen lags
 * by up to STORE_TOUCH_SLACK).  *npruned (if not NULL) gets the count.
 * Returns 0 or -1.
 */
int		 store_prune(struct store *, int64_t mbox, time_t before,
		    uint64_t *npruned);
/*
 * The UIDVALIDITY recovery rule: was a message with this Message-ID,
 * size and Date (NULL = no Date header) accepted from (account, folder)
 * under any UIDVALIDITY?  A NULL or empty message_id is never found: a
 * false match would skip an undelivered message, a miss only duplicates.
 * STORE_FOUND, STORE_ABSENT or -1.
 */
int		 store_find_delivered(struct store *, const char *account,
		    const char *folder, const char *message_id, uint64_t size,
		    const char *date);

/*
 * Group commit: make every write since the last commit durable (for
 * SQLite: COMMIT with synchronous=FULL, i.e. the WAL is fsync'd).
 * Returns 0 (durable; also when nothing was pending) or -1.  After -1
 * the transaction is rolled back, its writes must be treated as NOT
 * durable (delete nothing on their account), and the handle is broken:
 * every later call fails until it is closed and the store reopened,
 * because nothing is trusted after a failed fsync.
 */
int		 store_commit(struct store *);
/* 1 if writes are waiting for store_commit(), else 0. */
int		 store_pending(const struct store *);
/*
 * Sequence numbers: every write gets one, increasing per handle and never
 * shared between handles (a number from a closed handle is never durable
 * for a new one).  store_durable_seq() is the highest committed one (0 if
 * none); store_durable() is 1 if seq was issued by this handle and is
 * committed, else 0.
 */
uint64_t	 store_durable_seq(const struct store *);
int		 store_durable(const struct store *, uint64_t seq);
/* 1 if a failed commit (or lost transaction) means: close and reopen. */
int		 store_broken(const struct store *);
/*
 * Consistency check of the whole file (SQLite quick_check).  Returns 0,
 * or -1 with the first problem in err.
 */
int		 store_check(struct store *, struct buf *err);

/*
 * Backend interface, for a second implementation (PostgreSQL with
 * account leases, see docs/uid-store.md).  The generic layer in store.c
 * validates arguments, applies the state machine, numbers writes and
 * decides when a transaction is broken; a backend only stores records.
 * All functions return -1 on error with a message for errmsg(); lookups
 * return STORE_FOUND/STORE_ABSENT.  Writes are only called between begin
 * and commit/rollback.  rollback must be safe to call when the backend
 * already rolled back by itself.
 */
struct store_ops {
	const char	*name;
	void		*(*open)(const char *where, struct buf *err);
	void		 (*close)(void *be);
	const char	*(*errmsg)(void *be);
	int		 (*begin)(void *be);
	int		 (*commit)(void *be);
	void		 (*rollback)(void *be);
	int		 (*mailbox_get)(void *be, const char *account,
			    const char *folder, uint32_t uidvalidity,
			    int64_t *id);
	int		 (*mailbox_add)(void *be, const char *account,
			    const char *folder, uint32_t uidvalidity,
			    time_t now, int64_t *id);
	int		 (*folder_get)(void *be, const char *account,
			    const char *folder, uint32_t *uidvalidity,
			    uint64_t *highest_uid);
	int		 (*folder_set)(void *be, const char *account,
			    const char *folder, uint32_t uidvalidity,
			    uint64_t highest_uid, time_t now);
	int		 (*get)(void *be, int64_t mbox, const void *uid,
			    size_t uidlen, struct store_msg *out);
	/* Insert or replace the whole record (uid from rec). */
	int		 (*put)(void *be, int64_t mbox,
			    const struct store_msg *rec);
	/* Set last_seen; STORE_ABSENT if no such record. */
	int		 (*touch)(void *be, int64_t mbox, const void *uid,
			    size_t uidlen, time_t now);
	int		 (*list)(void *be, int64_t mbox, store_list_cb cb,
			    void *arg);
	int		 (*prune)(void *be, int64_t mbox, time_t before,
			    uint64_t *n);
	int		 (*find)(void *be, const char *account,
			    const char *folder, const char *message_id,
			    uint64_t size, const char *date);
	int		 (*check)(void *be, struct buf *err);
};

extern const struct store_ops store_sqlite_ops;

/* store_open() with an explicit backend; where is backend-specific. */
struct store	*store_open_backend(const struct store_ops *,
		    const char *where, struct buf *err);

#endif
