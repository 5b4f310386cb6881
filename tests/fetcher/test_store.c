/* ISC licence; see LICENSE. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "haul/buf.h"
#include "haul/clock.h"
#include "haul/log.h"
#include "haul/store.h"
#include "haul/str.h"

#define T0	((time_t)1700000000)
#define ACCT	"acct1"
#define U(s)	(s), strlen(s)

static char	 top[256];		/* per-test temporary directory */
static char	 sdir[300];	/* state_dir inside it, not created */
static char	 dbpath[320];
static struct buf logged;

static void
capture(enum log_level lvl, const char *line, void *arg)
{
	(void)buf_add_str(&logged, line);
	(void)buf_add_byte(&logged, '\n');
}

static void
setup(void)
{
	char	*d;

	snprintf(top, sizeof(top), "%s/haul-store-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	d = mkdtemp(top);
	cr_assert_not_null(d);
	snprintf(sdir, sizeof(sdir), "%s/state", top);
	snprintf(dbpath, sizeof(dbpath), "%s/haul.db", sdir);
	buf_init(&logged, 1 << 20);
	log_set_sink(capture, NULL);
	log_set_level(LOG_LVL_INFO);
	clock_freeze(0, T0);
	unsetenv("HAUL_FAULT_STORE");
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown(void)
{
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	log_set_sink(NULL, NULL);
	buf_free(&logged);
	clock_thaw();
}

TestSuite(store, .init = setup, .fini = teardown);

static struct store *
open_ok(void)
{
	struct buf	 err = BUF_INIT;
	struct store	*st;

	st = store_open(sdir, &err);
	cr_assert_not_null(st, "store_open: %s", err.len ? err.data : "?");
	buf_free(&err);
	return st;
}

/* store_open must fail; returns the error text (static). */
static const char *
open_fails(void)
{
	static char	 msg[1024];
	struct buf	 err = BUF_INIT;
	struct store	*st;

	st = store_open(sdir, &err);
	cr_assert_null(st, "store_open unexpectedly worked");
	cr_assert_gt(err.len, 0, "no error message");
	str_lcpy(msg, err.data, sizeof(msg));
	buf_free(&err);
	return msg;
}

static int64_t
mbox_ok(struct store *st, const char *acct, const char *folder, uint32_t uv)
{
	int64_t	 id = -1;

	cr_assert_eq(store_mailbox(st, acct, folder, uv, &id), 0);
	return id;
}

static enum store_state
state_of(struct store *st, int64_t mb, const char *uid)
{
	struct store_msg m;

	cr_assert_eq(store_get(st, mb, U(uid), &m), STORE_FOUND,
	    "uid %s missing", uid);
	return m.state;
}

static int
count_cb(const struct store_msg *m, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static size_t
count(struct store *st, int64_t mb)
{
	size_t	 n = 0;

	cr_assert_eq(store_list(st, mb, count_cb, &n), 0);
	return n;
}

static int
count_or_error(struct store *st, int64_t mb)
{
	size_t	 n = 0;

	return store_list(st, mb, count_cb, &n);
}

static mode_t
mode_of(const char *path)
{
	struct stat	 sb;

	cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
	return sb.st_mode & 07777;
}

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* Run raw SQL on the file, as an outside tool (or an attacker) would. */
static void
raw_sql(const char *sql)
{
	sqlite3	*db;
	char	*msg = NULL;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK,
	    "%s: %s", sql, msg != NULL ? msg : "");
	sqlite3_close(db);
}

/* ---- opening: files, modes, refusals ---------------------------------- */

Test(store, creates_private_files)
{
	struct store	*st;
	char		 wal[PATH_MAX + 8];
	int64_t		 mb;

	umask(0);	/* the store, not the umask, must make it private */
	st = open_ok();
	cr_assert_eq(mode_of(sdir), 0700);
	cr_assert_eq(mode_of(dbpath), 0600);
	mb = mbox_ok(st, ACCT, "INBOX", 1);
	cr_assert_eq(store_seen(st, mb, U("1"), 10, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	cr_assert_eq(mode_of(wal), 0600);
	store_close(&st);
	cr_assert_null(st);
	store_close(&st);	/* NULL is fine */
}

Test(store, tightens_loose_mode)
{
	struct store	*st;

	cr_assert_eq(mkdir(sdir, 0700), 0);
	write_file(dbpath, "", 0, 0644);
	st = open_ok();
	cr_assert_eq(mode_of(dbpath), 0600);
	cr_assert_not_null(strstr(logged.data, "tightened"));
	store_close(&st);
}

Test(store, symlink_refused)
{
	char	 victim[PATH_MAX + 8], buf[16] = "";
	int	 fd;

	cr_assert_eq(mkdir(sdir, 0700), 0);
	snprintf(victim, sizeof(victim), "%s/victim", top);
	write_file(victim, "precious", 8, 0644);
	cr_assert_eq(symlink(victim, dbpath), 0);
	cr_assert_not_null(strstr(open_fails(), "symlink"));
	fd = open(victim, O_RDONLY);
	cr_assert_eq(read(fd, buf, sizeof(buf) - 1), 8);
	close(fd);
	cr_assert_str_eq(buf, "precious");
	cr_assert_eq(mode_of(victim), 0644);
}

Test(store, wal_symlink_refused)
{
	char	 victim[PATH_MAX + 8], wal[PATH_MAX + 8];

	cr_assert_eq(mkdir(sdir, 0700), 0);
	snprintf(victim, sizeof(victim), "%s/victim", top);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	write_file(victim, "", 0, 0644);
	cr_assert_eq(symlink(victim, wal), 0);
	cr_assert_not_null(strstr(open_fails(), "symlink"));
}

Test(store, garbage_file_refused)
{
	char	 junk[8192], back[8192];
	int	 fd;

	memset(junk, 'x', sizeof(junk));
	cr_assert_eq(mkdir(sdir, 0700), 0);
	write_file(dbpath, junk, sizeof(junk), 0600);
	open_fails();
	fd = open(dbpath, O_RDONLY);
	cr_assert_eq(read(fd, back, sizeof(back)), (ssize_t)sizeof(back));
	close(fd);
	cr_assert_eq(memcmp(junk, back, sizeof(junk)), 0, "file modified");
}

Test(store, foreign_database_refused)
{
	cr_assert_eq(mkdir(sdir, 0700), 0);
	raw_sql("CREATE TABLE other (x)");
	cr_assert_not_null(strstr(open_fails(), "not a haul UID store"));
}

Test(store, newer_schema_refused)
{
	struct store	*st = open_ok();

	store_close(&st);
	raw_sql("PRAGMA user_version = 99");
	cr_assert_not_null(strstr(open_fails(), "newer"));
}

Test(store, reopen_keeps_schema_and_data)
{
	struct store	*st = open_ok();
	struct buf	 err = BUF_INIT;
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 5);

	cr_assert_eq(store_seen(st, mb, U("9"), 1, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	st = open_ok();
	cr_assert_eq(mbox_ok(st, ACCT, "INBOX", 5), mb);
	cr_assert_eq(state_of(st, mb, "9"), STORE_SEEN);
	cr_assert_eq(store_check(st, &err), 0, "%s", err.data);
	cr_assert_eq(store_pending(st), 0, "reading must not write");
	buf_free(&err);
	store_close(&st);
}

/* Partly delivered: the recipients that have it survive a reopen. */
Test(store, rcpt_done_set_survives_reopen)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	char			*a[] = { "a@x.test", "b@x.test" };
	char			*b[] = { "b@x.test", "c@x.test" };
	char			*bad[] = { "evil@x.test\nd@x.test" };
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("7"), 10, T0), 0);
	cr_assert_eq(store_rcpt_done(st, mb, U("7"), a, 2), -1,
	    "only an injecting record has recipients done");
	cr_assert_eq(store_injecting(st, mb, U("7"), NULL), 0);
	cr_assert_eq(store_rcpt_done(st, mb, U("7"), a, 2), 0);
	cr_assert_eq(store_rcpt_done(st, mb, U("7"), b, 2), 0);
	cr_assert_eq(store_rcpt_done(st, mb, U("7"), bad, 1), -1);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	st = open_ok();
	cr_assert_eq(store_get(st, mb, U("7"), &m), STORE_FOUND);
	cr_assert_str_eq(m.rcpt_done, "a@x.test\nb@x.test\nc@x.test");
	cr_assert(store_rcpt_is_done(&m, "a@x.test"));
	cr_assert(store_rcpt_is_done(&m, "c@x.test"));
	cr_assert(!store_rcpt_is_done(&m, "x.test"));
	cr_assert(!store_rcpt_is_done(&m, "a@x.tes"));
	cr_assert(!store_rcpt_is_done(&m, "d@x.test"));
	/* a retry keeps the set; acceptance keeps it too (harmless) */
	cr_assert_eq(store_injecting(st, mb, U("7"), NULL), 0);
	cr_assert_eq(store_get(st, mb, U("7"), &m), STORE_FOUND);
	cr_assert(store_rcpt_is_done(&m, "b@x.test"));
	store_close(&st);
}

/* A store of schema 1 (before rcpt_done) is migrated on open. */
Test(store, schema_1_migrated)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	char			*a[] = { "a@x.test" };
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("1"), 10, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	raw_sql("ALTER TABLE msg DROP COLUMN rcpt_done; "
	    "PRAGMA user_version = 1");
	st = open_ok();
	cr_assert_eq(store_get(st, mb, U("1"), &m), STORE_FOUND);
	cr_assert_str_eq(m.rcpt_done, "");
	cr_assert_eq(store_injecting(st, mb, U("1"), NULL), 0);
	cr_assert_eq(store_rcpt_done(st, mb, U("1"), a, 1), 0);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
}

/* ---- UIDs are opaque bounded byte strings ------------------------------ */

Test(store, uid_length_limits)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	char			 u[STORE_UID_MAX + 2];
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	memset(u, 'a', sizeof(u));
	cr_assert_eq(store_seen(st, mb, u, 0, 1, T0), -1);
	cr_assert_eq(store_seen(st, mb, NULL, 3, 1, T0), -1);
	cr_assert_eq(store_seen(st, mb, u, STORE_UID_MAX, 1, T0), 0);
	cr_assert_eq(store_seen(st, mb, u, STORE_UID_MAX + 1, 1, T0), -1);
	cr_assert_eq(store_get(st, mb, u, STORE_UID_MAX + 1, &m), -1);
	cr_assert_eq(store_accepted(st, mb, u, STORE_UID_MAX + 1, NULL, NULL,
	    NULL, 1), 0);
	cr_assert_eq(store_get(st, mb, u, STORE_UID_MAX, &m), STORE_FOUND);
	cr_assert_eq(m.uidlen, STORE_UID_MAX);
	cr_assert_eq(memcmp(m.uid, u, STORE_UID_MAX), 0);
	/* Nothing was truncated into a 255-byte twin. */
	cr_assert_eq(count(st, mb), 1);
	store_close(&st);
}

Test(store, uid_bytes_are_opaque)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	int64_t			 mb = mbox_ok(st, ACCT, "", 0);

	cr_assert_eq(store_seen(st, mb, "a\0b", 3, 1, T0), 0);
	cr_assert_eq(store_seen(st, mb, "a", 1, 2, T0), 0);
	cr_assert_eq(store_seen(st, mb, "\xff\x00", 2, 3, T0), 0);
	cr_assert_eq(count(st, mb), 3);
	cr_assert_eq(store_get(st, mb, "a\0b", 3, &m), STORE_FOUND);
	cr_assert_eq(m.uidlen, 3);
	cr_assert_eq(memcmp(m.uid, "a\0b", 3), 0);
	cr_assert_eq(m.size, 1);
	cr_assert_eq(store_get(st, mb, "a\0c", 3, &m), STORE_ABSENT);
	cr_assert_eq(store_get(st, mb, "\xff\x00", 2, &m), STORE_FOUND);
	cr_assert_eq(m.size, 3);
	store_close(&st);
}

Test(store, size_out_of_range)
{
	struct store	*st = open_ok();
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("1"), UINT64_MAX, T0), -1);
	cr_assert_eq(store_accepted(st, mb, U("1"), NULL, NULL, NULL,
	    (uint64_t)INT64_MAX + 1), 0);
	cr_assert_eq(count(st, mb), 0);
	store_close(&st);
}

/* ---- the state machine ------------------------------------------------- */

Test(store, lifecycle)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	unsigned		 attempts = 0;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_get(st, mb, U("42"), &m), STORE_ABSENT);
	cr_assert_eq(store_seen(st, mb, U("42"), 1234, T0), 0);
	cr_assert_eq(store_get(st, mb, U("42"), &m), STORE_FOUND);
	cr_assert_eq(m.state, STORE_SEEN);
	cr_assert_eq(m.size, 1234);
	cr_assert_eq(m.first_seen, T0);
	cr_assert_eq(m.last_seen, T0);
	cr_assert_eq(m.attempts, 0);
	cr_assert_str_eq(m.message_id, "");

	cr_assert_eq(store_injecting(st, mb, U("42"), &attempts), 0);
	cr_assert_eq(attempts, 1);
	clock_advance_ms(60000);
	cr_assert_eq(store_injecting(st, mb, U("42"), &attempts), 0);
	cr_assert_eq(attempts, 2);
	cr_assert_eq(state_of(st, mb, "42"), STORE_INJECTING);

	cr_assert_neq(store_accepted(st, mb, U("42"), "4XyZ1", "<m1@ex>",
	    "Mon, 1 Jan 2024 10:00:00 +0000", 1234), 0);
	cr_assert_eq(store_get(st, mb, U("42"), &m), STORE_FOUND);
	cr_assert_eq(m.state, STORE_ACCEPTED);
	cr_assert_eq(m.attempts, 2);
	cr_assert_str_eq(m.queue_id, "4XyZ1");
	cr_assert_str_eq(m.message_id, "<m1@ex>");
	cr_assert_str_eq(m.date, "Mon, 1 Jan 2024 10:00:00 +0000");
	cr_assert_eq(m.updated, T0 + 60);
	cr_assert_eq(m.first_seen, T0);

	cr_assert_eq(store_removed(st, mb, U("42")), 0);
	cr_assert_eq(state_of(st, mb, "42"), STORE_REMOVED);
	cr_assert_eq(store_removed(st, mb, U("42")), 0, "idempotent");
	cr_assert_str_eq(store_state_name(STORE_TOO_BIG), "too_big");
	cr_assert_str_eq(store_state_name((enum store_state)99), "?");
	store_close(&st);
}

Test(store, forbidden_transitions)
{
	struct store	*st = open_ok();
	int64_t		 mb = mbox_ok(st, "acct-log", "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("1"), 10, T0), 0);
	/* Never "removed" without an acceptance: that would lose mail. */
	cr_assert_eq(store_removed(st, mb, U("1")), -1);
	cr_assert_eq(state_of(st, mb, "1"), STORE_SEEN);
	cr_assert_not_null(strstr(logged.data, "account=acct-log:"));
	cr_assert_not_null(strstr(logged.data, "seen -> removed not allowed"));
	cr_assert_eq(store_injecting(st, mb, U("1"), NULL), 0);
	cr_assert_eq(store_removed(st, mb, U("1")), -1);

	cr_assert_neq(store_accepted(st, mb, U("1"), "Q", NULL, NULL, 10), 0);
	/* Once accepted, nothing may lead to a re-injection. */
	cr_assert_eq(store_injecting(st, mb, U("1"), NULL), -1);
	cr_assert_eq(store_refused(st, mb, U("1"), "550 no"), -1);
	cr_assert_eq(store_too_big(st, mb, U("1")), -1);
	cr_assert_eq(store_reset(st, mb, U("1")), -1);
	cr_assert_eq(state_of(st, mb, "1"), STORE_ACCEPTED);

	/* Operations on unknown UIDs (except acceptance) fail. */
	cr_assert_eq(store_injecting(st, mb, U("nope"), NULL), -1);
	cr_assert_eq(store_removed(st, mb, U("nope")), -1);
	cr_assert_eq(store_refused(st, mb, U("nope"), NULL), -1);
	store_close(&st);
}

Test(store, refused_too_big_and_reset)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	unsigned		 attempts;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("r"), 10, T0), 0);
	cr_assert_eq(store_injecting(st, mb, U("r"), NULL), 0);
	cr_assert_eq(store_refused(st, mb, U("r"), "550 5.7.1 rejected"), 0);
	cr_assert_eq(store_get(st, mb, U("r"), &m), STORE_FOUND);
	cr_assert_eq(m.state, STORE_REFUSED);
	cr_assert_str_eq(m.reply, "550 5.7.1 rejected");
	/* Refused mail is never retried by itself. */
	cr_assert_eq(store_injecting(st, mb, U("r"), NULL), -1);
	cr_assert_eq(store_reset(st, mb, U("r")), 0);
	cr_assert_eq(store_get(st, mb, U("r"), &m), STORE_FOUND);
	cr_assert_eq(m.state, STORE_SEEN);
	cr_assert_eq(m.attempts, 0);
	cr_assert_eq(store_injecting(st, mb, U("r"), &attempts), 0);
	cr_assert_eq(attempts, 1);

	cr_assert_eq(store_seen(st, mb, U("big"), 1 << 30, T0), 0);
	cr_assert_eq(store_too_big(st, mb, U("big")), 0);
	cr_assert_eq(store_injecting(st, mb, U("big"), NULL), -1);
	/* An opt-in policy may delete it; the store records that. */
	cr_assert_eq(store_removed(st, mb, U("big")), 0);
	store_close(&st);
}

Test(store, accepted_without_record_and_twice)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	uint64_t		 s1, s2;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	s1 = store_accepted(st, mb, U("x"), "Q1", "<a@b>", NULL, 77);
	cr_assert_neq(s1, 0);
	cr_assert_eq(store_get(st, mb, U("x"), &m), STORE_FOUND);
	cr_assert_eq(m.state, STORE_ACCEPTED);
	cr_assert_eq(m.size, 77);
	cr_assert_eq(m.first_seen, T0);
	s2 = store_accepted(st, mb, U("x"), "Q2", "<a@b>", NULL, 77);
	cr_assert_gt(s2, s1);
	cr_assert_eq(store_get(st, mb, U("x"), &m), STORE_FOUND);
	cr_assert_str_eq(m.queue_id, "Q2");
	cr_assert_not_null(strstr(logged.data, "accepted again"));
	store_close(&st);
}

Test(store, last_seen_slack)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("s"), 5, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	/* Within the slack: no write at all. */
	cr_assert_eq(store_touch_seen(st, mb, U("s"), T0 + 600), 0);
	cr_assert_eq(store_seen(st, mb, U("s"), 5, T0 + 700), 0);
	cr_assert_eq(store_pending(st), 0);
	cr_assert_eq(store_get(st, mb, U("s"), &m), STORE_FOUND);
	cr_assert_eq(m.last_seen, T0);
	/* Past it: last_seen moves, first_seen and state do not. */
	cr_assert_eq(store_seen(st, mb, U("s"), 5, T0 + 7200), 0);
	cr_assert_eq(store_pending(st), 1);
	cr_assert_eq(store_get(st, mb, U("s"), &m), STORE_FOUND);
	cr_assert_eq(m.last_seen, T0 + 7200);
	cr_assert_eq(m.first_seen, T0);
	cr_assert_eq(m.state, STORE_SEEN);
	/* A clock that went back never lowers it. */
	cr_assert_eq(store_touch_seen(st, mb, U("s"), T0), 0);
	cr_assert_eq(store_get(st, mb, U("s"), &m), STORE_FOUND);
	cr_assert_eq(m.last_seen, T0 + 7200);
	cr_assert_eq(store_touch_seen(st, mb, U("unknown"), T0), STORE_ABSENT);
	store_close(&st);
}

/* ---- group commit and sequence numbers --------------------------------- */

Test(store, durable_sequence_numbers)
{
	struct store	*st = open_ok();
	uint64_t	 s1, s2;
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_pending(st), 0);
	s1 = store_accepted(st, mb, U("1"), "Q", NULL, NULL, 1);
	cr_assert_neq(s1, 0);
	cr_assert_eq(store_pending(st), 1);
	cr_assert_eq(store_durable(st, s1), 0, "durable before commit");
	cr_assert_lt(store_durable_seq(st), s1);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_pending(st), 0);
	cr_assert_eq(store_durable(st, s1), 1);
	cr_assert_eq(store_durable_seq(st), s1);
	s2 = store_accepted(st, mb, U("2"), "Q", NULL, NULL, 1);
	cr_assert_gt(s2, s1);
	cr_assert_eq(store_durable(st, s2), 0);
	cr_assert_eq(store_durable(st, s1), 1);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_durable(st, s2), 1);
	cr_assert_eq(store_durable(st, 0), 0);
	cr_assert_eq(store_durable(st, s2 + 1), 0, "future seq");
	cr_assert_eq(store_commit(st), 0, "empty commit");
	store_close(&st);
}

Test(store, sequence_numbers_belong_to_one_handle)
{
	struct store	*st = open_ok();
	uint64_t	 old;
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);
	int		 i;
	char		 u[16];

	old = store_accepted(st, mb, U("1"), "Q", NULL, NULL, 1);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_durable(st, old), 1);
	store_close(&st);
	st = open_ok();
	for (i = 0; i < 5; i++) {
		snprintf(u, sizeof(u), "n%d", i);
		cr_assert_eq(store_seen(st, mb, U(u), 1, T0), 0);
	}
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_durable(st, old), 0);
	cr_assert_neq(store_durable_seq(st), 0);
	store_close(&st);
}

Test(store, uncommitted_writes_invisible_to_others)
{
	struct store		*a = open_ok(), *b = open_ok();
	struct store_msg	 m;
	int64_t			 mb = mbox_ok(a, ACCT, "INBOX", 1);

	cr_assert_eq(store_commit(a), 0);
	cr_assert_eq(store_seen(a, mb, U("u"), 1, T0), 0);
	cr_assert_eq(store_get(b, mb, U("u"), &m), STORE_ABSENT);
	cr_assert_eq(store_commit(a), 0);
	cr_assert_eq(store_get(b, mb, U("u"), &m), STORE_FOUND);
	store_close(&a);
	store_close(&b);
}

Test(store, close_rolls_back)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_commit(st), 0);
	cr_assert_neq(store_accepted(st, mb, U("u"), "Q", NULL, NULL, 1), 0);
	store_close(&st);
	cr_assert_not_null(strstr(logged.data, "uncommitted"));
	st = open_ok();
	cr_assert_eq(store_get(st, mb, U("u"), &m), STORE_ABSENT);
	store_close(&st);
}

/* ---- mailboxes, UIDVALIDITY, pruning ----------------------------------- */

Test(store, mailboxes)
{
	struct store	*st = open_ok();
	uint32_t	 uv;
	uint64_t	 hi;
	int64_t		 pop, inbox, other;

	pop = mbox_ok(st, ACCT, STORE_POP3_FOLDER, STORE_POP3_UIDVALIDITY);
	inbox = mbox_ok(st, ACCT, "INBOX", 0);
	other = mbox_ok(st, "acct2", STORE_POP3_FOLDER, 0);
	cr_assert_neq(pop, inbox);
	cr_assert_neq(pop, other);
	cr_assert_eq(mbox_ok(st, ACCT, "", 0), pop, "get, not create");
	cr_assert_eq(store_mailbox(st, "", "INBOX", 1, &pop), -1);
	cr_assert_eq(store_folder_get(st, ACCT, "INBOX", &uv, &hi),
	    STORE_ABSENT);
	cr_assert_eq(store_seen(st, pop, U("UIDL-1"), 1, T0), 0);
	cr_assert_eq(count(st, pop), 1);
	cr_assert_eq(count(st, inbox), 0);
	cr_assert_eq(count(st, other), 0);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);

	/* A new handle learns the ids in another order; errors still name
	 * the right account. */
	st = open_ok();
	cr_assert_eq(mbox_ok(st, "acct2", "", 0), other);
	cr_assert_eq(mbox_ok(st, ACCT, "INBOX", 0), inbox);
	cr_assert_eq(mbox_ok(st, ACCT, "", 0), pop);
	buf_reset(&logged);
	cr_assert_eq(store_removed(st, other, U("UIDL-1")), -1);
	cr_assert_not_null(strstr(logged.data, "account=acct2:"));
	buf_reset(&logged);
	cr_assert_eq(store_removed(st, pop, U("UIDL-1")), -1);
	cr_assert_not_null(strstr(logged.data, "account=" ACCT ":"));
	store_close(&st);
}

Test(store, uidvalidity_switch)
{
	struct store	*st = open_ok();
	const char	*date = "Tue, 2 Jan 2024 08:00:00 +0100";
	uint32_t	 uv = 0;
	uint64_t	 hi = 0;
	int64_t		 old, new;

	old = mbox_ok(st, ACCT, "INBOX", 100);
	cr_assert_neq(store_accepted(st, old, U("7"), "Q", "<m7@ex>", date,
	    900), 0);
	cr_assert_eq(store_seen(st, old, U("8"), 500, T0), 0);
	cr_assert_neq(store_accepted(st, old, U("9"), "Q", "<m9@ex>", NULL,
	    300), 0);
	cr_assert_eq(store_seen(st, old, U("10"), 444, T0), 0);
	cr_assert_eq(store_refused(st, old, U("10"), "554 no"), 0);
	cr_assert_eq(store_folder_set(st, ACCT, "INBOX", 100, 9), 0);
	cr_assert_eq(store_commit(st), 0);
	cr_assert_eq(store_folder_get(st, ACCT, "INBOX", &uv, &hi),
	    STORE_FOUND);
	cr_assert_eq(uv, 100);
	cr_assert_eq(hi, 9);

	/* The server now says UIDVALIDITY 200. */
	new = mbox_ok(st, ACCT, "INBOX", 200);
	cr_assert_neq(new, old);
	cr_assert_eq(store_folder_set(st, ACCT, "INBOX", 200, 0), 0);
	cr_assert_eq(store_folder_get(st, ACCT, "INBOX", &uv, &hi),
	    STORE_FOUND);
	cr_assert_eq(uv, 200);
	cr_assert_eq(hi, 0);
	cr_assert_eq(count(st, new), 0);
	cr_assert_eq(state_of(st, old, "7"), STORE_ACCEPTED, "old kept");

	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<m7@ex>", 900,
	    date), STORE_FOUND);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<m9@ex>", 300,
	    NULL), STORE_FOUND);
	/* Any difference means "not the same message". */
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<m7@ex>", 901,
	    date), STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<m7@ex>", 900,
	    NULL), STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<m9@ex>", 300,
	    "x"), STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, ACCT, "Other", "<m7@ex>", 900,
	    date), STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, "acct2", "INBOX", "<m7@ex>",
	    900, date), STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", NULL, 900, date),
	    STORE_ABSENT);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "", 900, date),
	    STORE_ABSENT);
	store_close(&st);
}

Test(store, find_delivered_ignores_undelivered)
{
	struct store	*st = open_ok();
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_neq(store_accepted(st, mb, U("1"), NULL, "<r@x>", "d", 5),
	    0);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<r@x>", 5, "d"),
	    STORE_FOUND);
	/* A refused message with the same headers is not "delivered". */
	cr_assert_eq(store_seen(st, mb, U("2"), 6, T0), 0);
	cr_assert_eq(store_refused(st, mb, U("2"), "550"), 0);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<r@x>", 6, "d"),
	    STORE_ABSENT);
	cr_assert_eq(store_removed(st, mb, U("1")), 0);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", "<r@x>", 5, "d"),
	    STORE_FOUND, "removed still counts as delivered");
	store_close(&st);
}

Test(store, long_text_is_clipped_consistently)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	char			 mid[1500], reply[2000];
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	memset(mid, 'm', sizeof(mid) - 1);
	mid[sizeof(mid) - 1] = '\0';
	memset(reply, 'r', sizeof(reply) - 1);
	reply[sizeof(reply) - 1] = '\0';
	cr_assert_neq(store_accepted(st, mb, U("1"), NULL, mid, NULL, 1), 0);
	cr_assert_eq(store_get(st, mb, U("1"), &m), STORE_FOUND);
	cr_assert_eq(strlen(m.message_id), STORE_HDR_MAX);
	cr_assert_eq(store_find_delivered(st, ACCT, "INBOX", mid, 1, NULL),
	    STORE_FOUND);
	cr_assert_eq(store_seen(st, mb, U("2"), 1, T0), 0);
	cr_assert_eq(store_refused(st, mb, U("2"), reply), 0);
	cr_assert_eq(store_get(st, mb, U("2"), &m), STORE_FOUND);
	cr_assert_eq(strlen(m.reply), STORE_REPLY_MAX);
	store_close(&st);
}

Test(store, prune)
{
	struct store	*st = open_ok();
	uint64_t	 n = 99;
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);
	int64_t		 keep = mbox_ok(st, ACCT, "Other", 1);

	cr_assert_eq(store_seen(st, mb, U("a"), 1, T0), 0);
	cr_assert_eq(store_seen(st, mb, U("b"), 1, T0), 0);
	cr_assert_neq(store_accepted(st, mb, U("c"), "Q", NULL, NULL, 1), 0);
	cr_assert_eq(store_seen(st, keep, U("c"), 1, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	/* Two days on the server lists only a and b. */
	cr_assert_eq(store_touch_seen(st, mb, U("a"), T0 + 2 * 86400), 0);
	cr_assert_eq(store_seen(st, mb, U("b"), 1, T0 + 2 * 86400), 0);
	cr_assert_eq(store_prune(st, mb, T0 + 86400, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(count(st, mb), 2);
	cr_assert_eq(count(st, keep), 1, "other mailbox untouched");
	cr_assert_eq(store_prune(st, mb, T0 + 86400, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	st = open_ok();
	cr_assert_eq(count(st, mb), 2, "prune is durable after commit");
	store_close(&st);
}

/* ---- bulk listing ------------------------------------------------------ */

#define BULK	100000

struct bulk {
	unsigned char	*seen;
	size_t		 n, dups, bad;
	char		 prev[STORE_UID_MAX + 1];
	size_t		 prevlen;
	size_t		 unordered;
};

static int
bulk_cb(const struct store_msg *m, void *arg)
{
	struct bulk	*b = arg;
	uint64_t	 v;
	size_t		 min;

	if (str_to_u64(m->uid, m->uidlen, BULK - 1, &v) == -1 ||
	    m->state != STORE_SEEN || m->size != v) {
		b->bad++;
		return 0;
	}
	if (b->seen[v]++)
		b->dups++;
	/* Byte order: memcmp, then the shorter first. */
	min = m->uidlen < b->prevlen ? m->uidlen : b->prevlen;
	if (b->n > 0 && (memcmp(b->prev, m->uid, min) > 0 ||
	    (memcmp(b->prev, m->uid, min) == 0 && b->prevlen >= m->uidlen)))
		b->unordered++;
	memcpy(b->prev, m->uid, m->uidlen);
	b->prevlen = m->uidlen;
	b->n++;
	return 0;
}

static int
stop_cb(const struct store_msg *m, void *arg)
{
	return ++*(int *)arg == 10 ? 42 : 0;
}

Test(store, list_100k)
{
	struct store	*st = open_ok();
	struct bulk	 b;
	char		 u[16];
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);
	int		 i, calls = 0;

	for (i = 0; i < BULK; i++) {
		snprintf(u, sizeof(u), "%d", i);
		cr_assert_eq(store_seen(st, mb, U(u), (uint64_t)i, T0), 0);
	}
	cr_assert_eq(store_commit(st), 0);
	memset(&b, 0, sizeof(b));
	b.seen = calloc(BULK, 1);
	cr_assert_eq(store_list(st, mb, bulk_cb, &b), 0);
	cr_assert_eq(b.n, BULK);
	cr_assert_eq(b.bad, 0);
	cr_assert_eq(b.dups, 0);
	cr_assert_eq(b.unordered, 0);
	for (i = 0; i < BULK; i++)
		cr_assert(b.seen[i], "uid %d not listed", i);
	free(b.seen);
	cr_assert_eq(store_list(st, mb, stop_cb, &calls), 42);
	cr_assert_eq(calls, 10);
	store_close(&st);
}

struct reenter {
	struct store	*st;
	int64_t		 mb;
	int		 rv;
};

static int
reenter_cb(const struct store_msg *m, void *arg)
{
	struct reenter		*r = arg;
	struct store_msg	 m2;

	r->rv = store_get(r->st, r->mb, m->uid, m->uidlen, &m2);
	return 0;
}

Test(store, list_callback_cannot_reenter)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	struct reenter		 r;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_seen(st, mb, U("1"), 1, T0), 0);
	r.st = st;
	r.mb = mb;
	r.rv = 0;
	cr_assert_eq(store_list(st, mb, reenter_cb, &r), 0);
	cr_assert_eq(r.rv, -1);
	cr_assert_eq(store_get(st, mb, U("1"), &m), STORE_FOUND);
	cr_assert_eq(store_list(st, mb, NULL, NULL), -1);
	store_close(&st);
}

/* ---- storage faults ---------------------------------------------------- */

#ifdef HAUL_TEST_HOOKS
/* After a failed commit: the handle refuses work, the file is sound. */
static void
check_after_failed_commit(struct store **stp, int64_t mb, uint64_t good,
    uint64_t lost, int lost_may_survive)
{
	struct store		*st = *stp;
	struct store_msg	 m;
	struct buf		 err = BUF_INIT;
	int			 rv;

	cr_assert_eq(store_durable(st, lost), 0, "failed commit trusted");
	cr_assert_eq(store_durable(st, good), 1);
	cr_assert_eq(store_broken(st), 1);
	cr_assert_eq(store_pending(st), 1);
	cr_assert_eq(store_seen(st, mb, U("after"), 1, T0), -1);
	cr_assert_eq(store_commit(st), -1);
	store_close(stp);
	unsetenv("HAUL_FAULT_STORE");

	st = open_ok();
	cr_assert_eq(store_check(st, &err), 0, "%s", err.data);
	cr_assert_eq(state_of(st, mb, "good"), STORE_ACCEPTED);
	rv = store_get(st, mb, U("lost"), &m);
	if (lost_may_survive && rv == STORE_FOUND)
		cr_assert_eq(m.state, STORE_ACCEPTED);
	else
		cr_assert_eq(rv, STORE_ABSENT);
	cr_assert_eq(store_get(st, mb, U("after"), &m), STORE_ABSENT);
	/* And it works again. */
	cr_assert_eq(store_seen(st, mb, U("again"), 1, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	buf_free(&err);
	store_close(&st);
}

Test(store, commit_fsync_eio)
{
	struct store	*st;
	uint64_t	 good, lost;
	int64_t		 mb;

	setenv("HAUL_FAULT_STORE", "commit:eio:2", 1);
	st = open_ok();
	mb = mbox_ok(st, ACCT, "INBOX", 1);
	good = store_accepted(st, mb, U("good"), "Q1", NULL, NULL, 1);
	cr_assert_eq(store_commit(st), 0);
	lost = store_accepted(st, mb, U("lost"), "Q2", NULL, NULL, 1);
	cr_assert_neq(lost, 0);
	cr_assert_eq(store_commit(st), -1);
	cr_assert_not_null(strstr(logged.data, "not durable"));
	/*
	 * fsync failed after the frames were written: whether a later
	 * recovery finds them is up to SQLite, either outcome is consistent.
	 */
	check_after_failed_commit(&st, mb, good, lost, 1);
}

Test(store, commit_enospc)
{
	struct store	*st;
	uint64_t	 good, lost;
	int64_t		 mb;

	setenv("HAUL_FAULT_STORE", "commit:enospc:2", 1);
	st = open_ok();
	mb = mbox_ok(st, ACCT, "INBOX", 1);
	good = store_accepted(st, mb, U("good"), "Q1", NULL, NULL, 1);
	cr_assert_eq(store_commit(st), 0);
	lost = store_accepted(st, mb, U("lost"), "Q2", NULL, NULL, 1);
	cr_assert_eq(store_commit(st), -1);
	check_after_failed_commit(&st, mb, good, lost, 0);
}

Test(store, write_enospc)
{
	struct store	*st = open_ok();
	uint64_t	 good, lost;
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);

	good = store_accepted(st, mb, U("good"), "Q1", NULL, NULL, 1);
	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	cr_assert_eq(store_durable(st, good), 0, "closed handle");

	/* The next write to any store file fails: the WAL append. */
	setenv("HAUL_FAULT_STORE", "write:enospc", 1);
	st = open_ok();
	lost = store_accepted(st, mb, U("lost"), "Q2", NULL, NULL, 1);
	cr_assert_neq(lost, 0);
	cr_assert_eq(store_commit(st), -1);
	cr_assert_eq(store_durable(st, lost), 0);
	cr_assert_eq(store_broken(st), 1);
	store_close(&st);
	unsetenv("HAUL_FAULT_STORE");
	st = open_ok();
	cr_assert_eq(state_of(st, mb, "good"), STORE_ACCEPTED);
	cr_assert_eq(count(st, mb), 1, "lost write came back");
	store_close(&st);
}

Test(store, fault_during_creation)
{
	struct store	*st;
	struct buf	 err = BUF_INIT;

	setenv("HAUL_FAULT_STORE", "sync:eio", 1);
	open_fails();
	unsetenv("HAUL_FAULT_STORE");
	st = open_ok();
	cr_assert_eq(store_check(st, &err), 0, "%s", err.data);
	cr_assert_gt(mbox_ok(st, ACCT, "INBOX", 1), 0);
	cr_assert_eq(store_commit(st), 0);
	buf_free(&err);
	store_close(&st);
}

Test(store, bad_fault_spec_refused)
{
	setenv("HAUL_FAULT_STORE", "commit:bogus", 1);
	cr_assert_not_null(strstr(open_fails(), "HAUL_FAULT_STORE"));
	setenv("HAUL_FAULT_STORE", "write:eio:0", 1);
	open_fails();
}

#endif /* HAUL_TEST_HOOKS */

/* ---- crashes ----------------------------------------------------------- */

/*
 * Run fn in a child that must die by SIGKILL (its own).  The child never
 * returns into Criterion: any failure is an ordinary exit, which the
 * parent's assertion catches.
 */
static void
in_child_killed(void (*fn)(int64_t), int64_t mb)
{
	pid_t	 pid;
	int	 status;

	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		fn(mb);
		_exit(3);	/* should have been killed */
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "child status %#x", status);
}

/* Kept reachable so valgrind does not call the killed child's store lost. */
static struct store *volatile child_store;

static struct store *
child_open(void)
{
	struct buf	 err = BUF_INIT;

	if ((child_store = store_open(sdir, &err)) == NULL)
		_exit(4);
	return child_store;
}

static void
child_seen_many(struct store *st, int64_t mb, int n)
{
	char	 u[16];
	int	 i;

	for (i = 0; i < n; i++) {
		snprintf(u, sizeof(u), "new%d", i);
		if (store_seen(st, mb, U(u), 1, T0) == -1)
			_exit(5);
	}
}

static void
child_uncommitted(int64_t mb)
{
	struct store	*st = child_open();

	if (store_accepted(st, mb, U("good"), "Q", NULL, NULL, 1) == 0 ||
	    store_commit(st) == -1)
		_exit(6);
	child_seen_many(st, mb, 2000);
	kill(getpid(), SIGKILL);
}

#ifdef HAUL_TEST_HOOKS
static void
child_mid_commit(int64_t mb)
{
	struct store	*st;

	setenv("HAUL_FAULT_STORE", "commit:kill:2", 1);
	st = child_open();
	if (store_accepted(st, mb, U("good"), "Q", NULL, NULL, 1) == 0 ||
	    store_commit(st) == -1)
		_exit(6);
	child_seen_many(st, mb, 3000);
	store_commit(st);	/* killed half-way through its WAL writes */
}

static void
child_before_fsync(int64_t mb)
{
	struct store	*st;

	/* Sync 1 is the header of the fresh WAL, 2 the commit's. */
	setenv("HAUL_FAULT_STORE", "sync:kill:2", 1);
	st = child_open();
	if (store_accepted(st, mb, U("good"), "Q", NULL, NULL, 1) == 0)
		_exit(6);
	store_commit(st);	/* killed just before the WAL fsync */
}

#endif

/* Make the store and a mailbox, then close it: the child reopens it. */
static int64_t
prepare_mailbox(void)
{
	struct store	*st = open_ok();
	int64_t		 mb = mbox_ok(st, ACCT, "INBOX", 1);

	cr_assert_eq(store_commit(st), 0);
	store_close(&st);
	return mb;
}

static void
check_recovered(int64_t mb, size_t expect)
{
	struct store	*st = open_ok();
	struct buf	 err = BUF_INIT;

	cr_assert_eq(store_check(st, &err), 0, "%s", err.data);
	cr_assert_eq(state_of(st, mb, "good"), STORE_ACCEPTED);
	cr_assert_eq(count(st, mb), expect);
	cr_assert_eq(store_seen(st, mb, U("later"), 1, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	buf_free(&err);
	store_close(&st);
}

Test(store, kill9_with_uncommitted_writes)
{
	int64_t	 mb = prepare_mailbox();

	in_child_killed(child_uncommitted, mb);
	check_recovered(mb, 1);
}

#ifdef HAUL_TEST_HOOKS
Test(store, kill9_mid_commit)
{
	int64_t	 mb = prepare_mailbox();

	in_child_killed(child_mid_commit, mb);
	check_recovered(mb, 1);
}

Test(store, kill9_before_fsync)
{
	int64_t	 mb = prepare_mailbox();

	/*
	 * A process crash (not a power cut) after the WAL writes: the page
	 * cache still has them, so recovery finds the commit.  That is
	 * consistent; the engine simply never learnt it was durable.
	 */
	in_child_killed(child_before_fsync, mb);
	check_recovered(mb, 1);
}

#endif /* HAUL_TEST_HOOKS */

/* ---- a damaged file is reported, never trusted --------------------------- */

Test(store, corrupt_record_reported)
{
	struct store		*st = open_ok();
	struct store_msg	 m;
	int64_t			 mb = mbox_ok(st, ACCT, "INBOX", 1);
	char			 sql[256];

	cr_assert_eq(store_seen(st, mb, U("ok"), 1, T0), 0);
	cr_assert_eq(store_commit(st), 0);
	snprintf(sql, sizeof(sql), "PRAGMA ignore_check_constraints = ON;"
	    "INSERT INTO msg (mailbox, uid, state, attempts, size, first_seen,"
	    " last_seen, updated) VALUES (%lld, X'62', 'bogus', 0, 1, 0, 0, 0)",
	    (long long)mb);
	raw_sql(sql);
	cr_assert_eq(store_get(st, mb, U("b"), &m), -1);
	cr_assert_eq(count_or_error(st, mb), -1);
	cr_assert_not_null(strstr(logged.data, "corrupt record"));
	/* Not in a transaction: nothing lost, the handle still works. */
	cr_assert_eq(store_broken(st), 0);
	cr_assert_eq(store_get(st, mb, U("ok"), &m), STORE_FOUND);
	store_close(&st);
}

#ifdef HAUL_TEST_HOOKS
/*
 * Every early write or fsync failing in turn, on a fresh store: opening
 * may fail, a commit may fail, but a clean reopen always works, the file
 * checks out, and whatever was reported durable is there.
 */
Test(store, fault_sweep)
{
	static const char *const kinds[] = {
		"write:eio", "write:enospc", "sync:eio",
	};
	struct store		*st;
	struct store_msg	 m;
	struct buf		 err = BUF_INIT;
	char			 spec[64];
	size_t			 k;
	int64_t			 mb;
	int			 n, committed, opened = 0, failed = 0;

	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (n = 1; n <= 16; n++) {
			snprintf(sdir, sizeof(sdir), "%s/s%zu-%d", top, k, n);
			snprintf(dbpath, sizeof(dbpath), "%s/haul.db", sdir);
			snprintf(spec, sizeof(spec), "%s:%d", kinds[k], n);
			setenv("HAUL_FAULT_STORE", spec, 1);
			committed = 0;
			buf_reset(&err);
			if ((st = store_open(sdir, &err)) != NULL) {
				opened++;
				if (store_mailbox(st, ACCT, "INBOX", 1,
				    &mb) == 0 && store_accepted(st, mb,
				    U("u"), "Q", NULL, NULL, 1) != 0 &&
				    store_commit(st) == 0)
					committed = 1;
				else
					failed++;
				store_close(&st);
			} else
				failed++;
			unsetenv("HAUL_FAULT_STORE");
			st = open_ok();
			buf_reset(&err);
			cr_assert_eq(store_check(st, &err), 0, "%s: %s", spec,
			    err.data);
			mb = mbox_ok(st, ACCT, "INBOX", 1);
			if (committed)
				cr_assert_eq(store_get(st, mb, U("u"), &m),
				    STORE_FOUND, "%s: committed, then lost",
				    spec);
			cr_assert_eq(store_seen(st, mb, U("v"), 1, T0), 0);
			cr_assert_eq(store_commit(st), 0, "%s", spec);
			store_close(&st);
		}
	}
	/* The sweep reached both the open path and the commit path. */
	cr_assert_gt(opened, 0);
	cr_assert_gt(failed, 0);
	buf_free(&err);
}
#endif /* HAUL_TEST_HOOKS */
