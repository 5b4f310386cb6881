/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/log.h"

/*
 * The IMAP client machine against scripted server transcripts, fed at
 * every split position (never across a TLS handshake, which the driver
 * never does either) and byte by byte.  Every run must write exactly
 * the same commands and make exactly the same owner callbacks.
 */

#define MAXEND	64

/* How the fake owner behaves. */
struct policy {
	const char	*list;		/* imap_list() after connecting */
	const char	*status;	/* then imap_status() */
	const char	*mailbox;	/* then imap_select(); NULL: logout */
	int		 readonly;
	uint32_t	 lo;		/* imap_fetch_new() after SELECT */
	uint32_t	 skip[4];	/* want() says SKIP */
	uint32_t	 abort_uid;	/* want() says ABORT */
	int		 delete_on_end;
	int		 seen_on_end;
	const char	*move_on_end;
	int		 delete_after_fetch; /* every ended UID, batched */
	int		 seen_after_fetch;
	int		 passive;	/* op_done only records: tests drive */
	int		 idle;		/* IDLE rounds after fetching */
	int		 noop_after_fetch;
	int		 fail_in_data;
	int		 logout_in_want;
	int		 idle_done_at_once; /* imap_idle_done right after */
};

struct owner {
	const struct policy *pol;
	struct imap	*p;
	struct buf	 ev;
	struct buf	 body;
	uint32_t	 ended[MAXEND];
	unsigned	 nended;
	uint32_t	 maxuid;
	int		 idles;
	int		 nooped;
	int		 listed;
	int		 statused;
};

struct result {
	char		*out;		/* every command, "<TLS>" at handshakes */
	char		*ev;		/* owner callbacks */
	enum proto_status st;
	enum err_class	 err;
	char		 msg[256];
	int		 logout_ok;
	unsigned	 caps;
	int		 rev2;
	int		 bad;		/* a driver contract was broken */
};

struct seg {
	const char	*data;
	size_t		 len;
};
#define SEG(s)	{ (s), sizeof(s) - 1 }

static struct buf	 logbuf = BUF_INIT;

/* Keep the machine's log, at debug level, to grep it for secrets. */
static void
log_capture(enum log_level lvl, const char *line, void *arg)
{
	buf_add_str(&logbuf, line);
	buf_add_byte(&logbuf, '\n');
}

static void
setup(void)
{
	log_set_sink(log_capture, NULL);
	log_set_level(LOG_LVL_DEBUG);
}

static void
teardown(void)
{
	log_set_sink(NULL, NULL);
	log_set_level(LOG_LVL_INFO);
	buf_free(&logbuf);
}

TestSuite(imap_flow, .init = setup, .fini = teardown);
TestSuite(imap_tls, .init = setup, .fini = teardown);
TestSuite(imap_auth, .init = setup, .fini = teardown);
TestSuite(imap_fetch, .init = setup, .fini = teardown);
TestSuite(imap_mailbox, .init = setup, .fini = teardown);
TestSuite(imap_actions, .init = setup, .fini = teardown);
TestSuite(imap_idle, .init = setup, .fini = teardown);

static void __attribute__((format(printf, 2, 3)))
evf(struct owner *o, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[8192];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	buf_add_str(&o->ev, line);
	buf_add_byte(&o->ev, '\n');
}

static void
o_logout(struct owner *o)
{
	if (imap_logout(o->p) == -1)
		evf(o, "logout refused");
}

/* What the owner does next after connecting, LIST and STATUS. */
static void
o_next(struct owner *o)
{
	const struct policy *pol = o->pol;

	if (pol->list != NULL && !o->listed) {
		o->listed = 1;
		if (imap_list(o->p, pol->list) == -1)
			evf(o, "list refused");
	} else if (pol->status != NULL && !o->statused) {
		o->statused = 1;
		if (imap_status(o->p, pol->status) == -1)
			evf(o, "status refused");
	} else if (pol->mailbox != NULL) {
		if (imap_select(o->p, pol->mailbox, pol->readonly) == -1)
			evf(o, "select refused");
	} else
		o_logout(o);
}

static void
o_idle(struct owner *o)
{
	if (imap_idle(o->p) == -1) {
		evf(o, "idle refused");
		o_logout(o);
		return;
	}
	if (o->pol->idle_done_at_once && imap_idle_done(o->p) == -1)
		evf(o, "idle_done refused");
}

static void
o_op_done(void *arg, enum imap_op op, int ok, const char *text)
{
	struct owner	*o = arg;
	const struct policy *pol = o->pol;
	unsigned	 i;

	if (ok)
		evf(o, "op %s ok", imap_op_name(op));
	else
		evf(o, "op %s failed: %s", imap_op_name(op), text);
	if (pol->passive)
		return;
	switch (op) {
	case IMAP_OP_CONNECT:
	case IMAP_OP_LIST:
	case IMAP_OP_STATUS:
		o_next(o);
		break;
	case IMAP_OP_SELECT:
		if (!ok)
			o_logout(o);
		else if (pol->lo != 0) {
			if (imap_fetch_new(o->p, pol->lo) == -1)
				evf(o, "fetch refused");
		} else if (pol->idle > o->idles)
			o_idle(o);
		else
			o_logout(o);
		break;
	case IMAP_OP_FETCH:
		for (i = 0; i < o->nended; i++) {
			if (pol->delete_after_fetch &&
			    imap_delete(o->p, o->ended[i]) == -1)
				evf(o, "delete %u refused", o->ended[i]);
			if (pol->seen_after_fetch &&
			    imap_mark_seen(o->p, o->ended[i]) == -1)
				evf(o, "seen %u refused", o->ended[i]);
		}
		o->nended = 0;
		if (pol->idle > o->idles)
			o_idle(o);
		else if (pol->noop_after_fetch && !o->nooped) {
			o->nooped = 1;
			if (imap_noop(o->p) == -1)
				evf(o, "noop refused");
		} else
			o_logout(o);
		break;
	case IMAP_OP_IDLE:
		o->idles++;
		if (imap_fetch_new(o->p, o->maxuid != 0 ? o->maxuid + 1 :
		    (pol->lo != 0 ? pol->lo : 1)) == -1)
			evf(o, "fetch refused");
		break;
	case IMAP_OP_NOOP:
		o_logout(o);
		break;
	}
}

static int
o_selected(void *arg, uint32_t uv, uint32_t un, uint32_t ex, int ro)
{
	struct owner	*o = arg;

	evf(o, "selected %u %u %u %d", uv, un, ex, ro);
	return 0;
}

static enum imap_want
o_want(void *arg, uint32_t uid, uint64_t size)
{
	struct owner	*o = arg;
	unsigned	 i;

	evf(o, "want %u %llu", uid, (unsigned long long)size);
	if (o->pol->logout_in_want)
		o_logout(o);
	if (uid == o->pol->abort_uid)
		return IMAP_WANT_ABORT;
	for (i = 0; i < 4; i++)
		if (o->pol->skip[i] == uid)
			return IMAP_WANT_SKIP;
	return IMAP_WANT_FETCH;
}

static int
o_too_big(void *arg, uint32_t uid, uint64_t size)
{
	struct owner	*o = arg;

	evf(o, "too_big %u %llu", uid, (unsigned long long)size);
	return 0;
}

static int
o_begin(void *arg, uint32_t uid, uint64_t size)
{
	struct owner	*o = arg;

	evf(o, "begin %u %llu", uid, (unsigned long long)size);
	buf_reset(&o->body);
	return 0;
}

static int
o_data(void *arg, const void *data, size_t len)
{
	struct owner	*o = arg;

	buf_add(&o->body, data, len);
	return o->pol->fail_in_data ? -1 : 0;
}

static int
o_end(void *arg, uint32_t uid)
{
	struct owner	*o = arg;
	const struct policy *pol = o->pol;
	char		 esc[4096];

	log_printable(esc, sizeof(esc), o->body.data == NULL ? "" :
	    o->body.data, o->body.len);
	evf(o, "end %u %s", uid, esc);
	if (o->nended < MAXEND)
		o->ended[o->nended++] = uid;
	if (uid > o->maxuid)
		o->maxuid = uid;
	if (pol->delete_on_end && imap_delete(o->p, uid) == -1)
		evf(o, "delete %u refused", uid);
	if (pol->seen_on_end && imap_mark_seen(o->p, uid) == -1)
		evf(o, "seen %u refused", uid);
	if (pol->move_on_end != NULL &&
	    imap_move(o->p, uid, pol->move_on_end) == -1)
		evf(o, "move %u refused", uid);
	return 0;
}

static int
o_failed(void *arg, uint32_t uid, enum imap_fail why, const char *text)
{
	struct owner	*o = arg;
	static const char *names[] = { "no", "nil", "gone", "too-big" };

	evf(o, "failed %u %s %s", uid, names[why], text);
	return 0;
}

static void
o_exists(void *arg, uint32_t n)
{
	struct owner	*o = arg;
	enum imap_state	 s = imap_state(o->p);

	evf(o, "exists %u", n);
	if ((s == IMAP_IDLING || s == IMAP_IDLE_START) &&
	    imap_idle_done(o->p) == -1)
		evf(o, "idle_done refused");
}

static void
o_action(void *arg, enum imap_action act, uint32_t uid, int ok)
{
	struct owner	*o = arg;
	static const char *names[] = { "seen", "delete", "move" };

	evf(o, "action %s %u %d", names[act], uid, ok);
}

static int
o_mailbox(void *arg, const char *name, size_t len, char delim)
{
	struct owner	*o = arg;
	char		 esc[256];

	cr_assert_eq(strlen(name), len);
	log_printable(esc, sizeof(esc), name, len);
	evf(o, "mailbox %s %c", esc, delim != '\0' ? delim : '-');
	return 0;
}

static int
o_status(void *arg, const char *name, size_t len,
    const struct imap_status_info *si)
{
	struct owner	*o = arg;

	evf(o, "status %s messages=%u/%d uidnext=%u/%d uidvalidity=%u/%d",
	    name, si->messages, si->has_messages, si->uidnext,
	    si->has_uidnext, si->uidvalidity, si->has_uidvalidity);
	return 0;
}

static const struct imap_cb owner_cb = {
	.op_done = o_op_done,
	.selected = o_selected,
	.want = o_want,
	.too_big = o_too_big,
	.msg_begin = o_begin,
	.msg_data = o_data,
	.msg_end = o_end,
	.msg_failed = o_failed,
	.exists = o_exists,
	.action_done = o_action,
	.mailbox = o_mailbox,
	.status = o_status,
};

static struct imap_params
params(void)
{
	struct imap_params prm;

	memset(&prm, 0, sizeof(prm));
	prm.account = "test";
	prm.host = "imap.example.org";
	prm.port = 993;
	prm.tls = TLS_IMPLICIT;
	prm.auth = AUTH_AUTO;
	prm.user = "alice";
	prm.secret = "s3cret";
	prm.secret_len = 6;
	return prm;
}

static void
drain(struct imap *p, struct buf *out)
{
	struct buf	*o = imap_output(p);

	buf_add(out, o->data, o->len);
	buf_consume(o, o->len);
}

/*
 * One run.  split: cut the stream at this offset (0 = no cut); bytewise:
 * feed one byte at a time.
 */
static void
run(const struct imap_params *prm, const struct policy *pol,
    const struct seg *segs, size_t nsegs, size_t split, int bytewise,
    struct result *r)
{
	struct owner	 o;
	struct buf	 out = BUF_INIT;
	struct imap	*p;
	enum proto_status st = PS_MORE;
	const char	*msg;
	size_t		 base = 0, i, a, b, used;

	memset(r, 0, sizeof(*r));
	memset(&o, 0, sizeof(o));
	o.pol = pol;
	p = o.p = imap_new(prm, &owner_cb, &o);
	buf_add_str(&out, "");
	buf_add_str(&o.ev, "");
	if (!imap_waiting(p))
		r->bad = 1;		/* the greeting is awaited */
	for (i = 0; i < nsegs; i++) {
		const char	*d = segs[i].data;
		size_t		 len = segs[i].len;

		for (a = 0; a < len; a = b) {
			if (bytewise)
				b = a + 1;
			else if (split > base + a && split < base + len)
				b = split - base;
			else
				b = len;
			st = imap_input(p, d + a, b - a, &used);
			drain(p, &out);
			if (st == PS_ERROR || st == PS_DONE)
				goto done;
			if (used != b - a)
				r->bad = 1;
			if (st == PS_STARTTLS) {
				if (b != len || imap_waiting(p))
					r->bad = 1;
				buf_add_str(&out, "<TLS>\r\n");
				st = imap_tls_started(p);
				drain(p, &out);
				if (st != PS_MORE)
					goto done;
			}
		}
		base += len;
	}
done:
	r->st = st;
	r->err = imap_error(p, &msg);
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	r->logout_ok = imap_logout_ok(p);
	r->caps = imap_caps(p);
	r->rev2 = imap_rev2(p);
	imap_free(&p);
	cr_assert_null(p);
	r->out = buf_steal(&out);
	r->ev = buf_steal(&o.ev);
	buf_free(&o.body);
}

static void
result_free(struct result *r)
{
	free(r->out);
	free(r->ev);
}

struct expect {
	const char	*out;
	const char	*ev;		/* NULL: do not check */
	enum proto_status st;
	enum err_class	 err;
	const char	*msg;		/* substring of the error, or NULL */
};

/*
 * Run the transcript at every split and byte by byte; every run must
 * match.  Returns the unsplit run in *first for further checks.
 */
static void
check_all(const struct imap_params *prm, const struct policy *pol,
    const struct seg *segs, size_t nsegs, const struct expect *ex,
    struct result *first)
{
	struct result	 r;
	size_t		 total = 0, k, i;

	for (i = 0; i < nsegs; i++)
		total += segs[i].len;
	for (k = 0; k <= total + 1; k++) {
		run(prm, pol, segs, nsegs, k == total + 1 ? 0 : k,
		    k == total + 1, &r);
		cr_assert_str_eq(r.out, ex->out, "commands differ at split %zu "
		    "of %zu", k, total);
		if (ex->ev != NULL)
			cr_assert_str_eq(r.ev, ex->ev, "callbacks differ at "
			    "split %zu of %zu", k, total);
		cr_assert_eq(r.st, ex->st, "status %s at split %zu: %s",
		    proto_status_name(r.st), k, r.msg);
		cr_assert_eq(r.err, ex->err, "error class %s at split %zu: %s",
		    err_class_name(r.err), k, r.msg);
		cr_assert_not(r.bad, "driver contract broken at split %zu", k);
		if (ex->msg != NULL)
			cr_assert_not_null(strstr(r.msg, ex->msg), "message "
			    "'%s' lacks '%s'", r.msg, ex->msg);
		if (k == 0 && first != NULL)
			*first = r;
		else
			result_free(&r);
	}
}

#define CHECK(prm, pol, segs, ex, first) \
	check_all((prm), (pol), (segs), sizeof(segs) / sizeof((segs)[0]), \
	    (ex), (first))

/* The log must never show a credential, raw or encoded. */
static void
assert_no_secret(void)
{
	static const char *secrets[] = {
		"s3cret", "czNjcmV0", "AGFsaWNlAHMzY3JldA", "tok3n",
		"dG9rM24", "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2szbgEB",
		"s3cr\\xc3\\xa9t",
	};
	size_t	 i;

	cr_assert_not_null(logbuf.data, "nothing was logged");
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		cr_assert_null(strstr(logbuf.data, secrets[i]), "log shows "
		    "%s", secrets[i]);
}

/* A logged-in session with UIDPLUS, IDLE and MOVE. */
#define CAPS		"IMAP4rev1 UIDPLUS IDLE MOVE"
#define GREET		"* OK [CAPABILITY " CAPS "] ready\r\n"
#define LOGGED		"h1 OK [CAPABILITY " CAPS "] Logged in\r\n"
#define LOGIN_OUT	"h1 LOGIN \"alice\" \"s3cret\"\r\n"
/* INBOX with three messages, UIDs 101..103, selected as h2. */
#define SEL3		"* 3 EXISTS\r\n* 0 RECENT\r\n" \
			"* OK [UIDVALIDITY 42] ok\r\n* OK [UIDNEXT 104] ok\r\n" \
			"h2 OK [READ-WRITE] done\r\n"
#define SEL_OUT		"h2 SELECT \"INBOX\"\r\n"
#define SEL3_EV		"op connect ok\nselected 42 104 3 0\nop select ok\n"
#define LIST3		"* 1 FETCH (UID 101 RFC822.SIZE 3)\r\n" \
			"* 2 FETCH (UID 102 RFC822.SIZE 3)\r\n" \
			"* 3 FETCH (UID 103 RFC822.SIZE 3)\r\nh3 OK\r\n"
#define LIST_OUT	"h3 UID FETCH 101:* (UID RFC822.SIZE)\r\n"
#define WANT3_EV	"want 101 3\nwant 102 3\nwant 103 3\n"
#define BODIES_OUT	"h4 UID FETCH 101 BODY.PEEK[]\r\n" \
			"h5 UID FETCH 102 BODY.PEEK[]\r\n" \
			"h6 UID FETCH 103 BODY.PEEK[]\r\n"

/* ---- whole sessions ---- */

Test(imap_flow, happy_path_login_fetch_delete_logout)
{
	static const struct seg segs[] = { SEG(
	    "* OK IMAP4rev1 ready\r\n"
	    "* CAPABILITY IMAP4rev1 UIDPLUS IDLE\r\n"
	    "h1 OK done\r\n"
	    "h2 OK [CAPABILITY IMAP4rev1 UIDPLUS IDLE MOVE] Logged in\r\n"
	    "* 3 EXISTS\r\n"
	    "* 0 RECENT\r\n"
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	    "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
	    "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
	    "* OK [UIDNEXT 104] Predicted next UID\r\n"
	    "h3 OK [READ-WRITE] Select completed\r\n"
	    "* 1 FETCH (UID 101 RFC822.SIZE 12)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 5)\r\n"
	    "* 3 FETCH (RFC822.SIZE 7 UID 103)\r\n"
	    "h4 OK Fetch completed\r\n"
	    "* 1 FETCH (UID 101 BODY[] {12}\r\nSubject: a\r\n)\r\n"
	    "h5 OK Fetch completed\r\n"
	    "* 2 FETCH (UID 102 BODY[] {5}\r\nB\r\nb!)\r\n"
	    "h6 OK\r\n"
	    /* UID after the body: attributed by sequence number. */
	    "* 3 FETCH (BODY[] {7}\r\nC\0\nc..\r UID 103)\r\n"
	    "h7 OK\r\n"
	    "h8 OK Store completed\r\n"
	    "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
	    "h9 OK Expunge completed\r\n"
	    "* BYE Logging out\r\n"
	    "h10 OK Logout completed\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .delete_after_fetch = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 CAPABILITY\r\n"
		    "h2 LOGIN \"alice\" \"s3cret\"\r\n"
		    "h3 SELECT \"INBOX\"\r\n"
		    "h4 UID FETCH 101:* (UID RFC822.SIZE)\r\n"
		    "h5 UID FETCH 101 BODY.PEEK[]\r\n"
		    "h6 UID FETCH 102 BODY.PEEK[]\r\n"
		    "h7 UID FETCH 103 BODY.PEEK[]\r\n"
		    "h8 UID STORE 101:103 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h9 UID EXPUNGE 101:103\r\n"
		    "h10 LOGOUT\r\n",
		.ev = "op connect ok\n"
		    "selected 1700000000 104 3 0\n"
		    "op select ok\n"
		    "want 101 12\nwant 102 5\nwant 103 7\n"
		    "begin 101 12\nend 101 Subject: a\\r\\n\n"
		    "begin 102 5\nend 102 B\\r\\nb!\n"
		    "begin 103 7\nend 103 C\\x00\\nc..\\r\n"
		    "op fetch ok\n"
		    "action delete 101 1\naction delete 102 1\n"
		    "action delete 103 1\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.logout_ok, 1);
	cr_assert(r.caps & IMAP_CAP_MOVE, "post-login capabilities kept");
	cr_assert_not(r.rev2);
	result_free(&r);
	assert_no_secret();
	cr_assert_not_null(strstr(logbuf.data, "imap: authenticated -> "
	    "select"), "transitions are traced");
	cr_assert_not_null(strstr(logbuf.data, "LOGIN alice <redacted>"));
}

Test(imap_flow, keep_sends_no_store_or_expunge)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {3}\r\nabc)\r\nh4 OK\r\n"
	    "* 2 FETCH (UID 102 BODY[] {3}\r\ndef)\r\nh5 OK\r\n"
	    "* 3 FETCH (UID 103 BODY[] {3}\r\nghi)\r\nh6 OK\r\n"
	    "* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT "h7 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV
		    "begin 101 3\nend 101 abc\nbegin 102 3\nend 102 def\n"
		    "begin 103 3\nend 103 ghi\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	/* I3: keep means no flag change and no expunge, ever. */
	cr_assert_null(strstr(r.out, "STORE"));
	cr_assert_null(strstr(r.out, "EXPUNGE"));
	cr_assert_null(strstr(r.out, "BODY[]"), "only BODY.PEEK[]");
	result_free(&r);
}

Test(imap_flow, delete_per_message_interleaves_with_fetches)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {3}\r\nabc)\r\nh4 OK\r\n"
	    "* 2 FETCH (UID 102 BODY[] {3}\r\ndef)\r\nh5 OK\r\n"
	    "h7 OK\r\n* 1 EXPUNGE\r\nh9 OK\r\n"
	    "* 2 FETCH (UID 103 BODY[] {3}\r\nghi)\r\nh6 OK\r\n"
	    "h8 OK\r\n* 1 EXPUNGE\r\nh11 OK\r\n"
	    "h10 OK\r\n* 1 EXPUNGE\r\nh12 OK\r\n"
	    "* BYE\r\nh13 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .delete_on_end = 1 };
	struct imap_params prm = params();
	/* Each UID EXPUNGE waits for its STORE's OK (RFC 3501 5.5). */
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT
		    "h7 UID STORE 101 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h8 UID STORE 102 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h9 UID EXPUNGE 101\r\n"
		    "h10 UID STORE 103 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h11 UID EXPUNGE 102\r\n"
		    "h12 UID EXPUNGE 103\r\n"
		    "h13 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV
		    "begin 101 3\nend 101 abc\nbegin 102 3\nend 102 def\n"
		    "action delete 101 1\n"
		    "begin 103 3\nend 103 ghi\nop fetch ok\n"
		    "action delete 102 1\naction delete 103 1\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_flow, window_limits_bodies_in_flight)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 1)\r\n"
	    "* 3 FETCH (UID 103 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* 2 FETCH (UID 102 BODY[] {1}\r\nb)\r\nh5 OK\r\n"
	    "* 3 FETCH (UID 103 BODY[] {1}\r\nc)\r\nh6 OK\r\n"
	    "h7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\n"
		    "h5 UID FETCH 102 BODY.PEEK[]\r\n"
		    "h6 UID FETCH 103 BODY.PEEK[]\r\n"
		    "h7 LOGOUT\r\n",
		/* The third is decided only when the first is answered. */
		.ev = SEL3_EV "want 101 1\nwant 102 1\n"
		    "begin 101 1\nend 101 a\nwant 103 1\n"
		    "begin 102 1\nend 102 b\nbegin 103 1\nend 103 c\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	prm.window = 2;
	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.logout_ok, 1);
	result_free(&r);
}

Test(imap_flow, greeting_bye_and_garbage)
{
	static const struct seg bye[] = { SEG("* BYE too busy\r\n") };
	static const struct seg tagged[] = { SEG("h1 OK hello\r\n") };
	static const struct seg no[] = { SEG("* NO go away\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = "", .ev = "", .st = PS_ERROR,
	    .err = ERR_TEMP, .msg = "too busy" };

	CHECK(&prm, &pol, bye, &ex, NULL);
	ex.err = ERR_PROTOCOL;
	ex.msg = "malformed greeting";
	CHECK(&prm, &pol, tagged, &ex, NULL);
	CHECK(&prm, &pol, no, &ex, NULL);
}

Test(imap_flow, enable_imap4rev2)
{
	static const struct seg segs[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ENABLE AUTH=PLAIN SASL-IR] "
	    "hi\r\n"
	    "h1 OK logged in\r\n"
	    "* CAPABILITY IMAP4rev1 IMAP4rev2 ENABLE IDLE\r\n"
	    "h2 OK\r\n"
	    "* ENABLED IMAP4rev2\r\n"
	    "h3 OK enabled\r\n"
	    "* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n"
		    "h2 CAPABILITY\r\n"
		    "h3 ENABLE IMAP4rev2\r\n"
		    "h4 LOGOUT\r\n",
		.ev = "op connect ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.rev2, 1);
	cr_assert(r.caps & IMAP_CAP_IDLE, "post-login CAPABILITY used");
	result_free(&r);
	assert_no_secret();
}

Test(imap_flow, unknown_tag_and_stray_continuation)
{
	static const struct seg tag[] = { SEG(GREET "h9 OK who?\r\n") };
	static const struct seg cont[] = { SEG(GREET "+ go on\r\n") };
	static const struct seg bye[] = { SEG(GREET LOGGED SEL3
	    "* BYE server shutting down\r\n") };
	struct policy	 pol = { .mailbox = "INBOX" };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT, .st = PS_ERROR,
	    .err = ERR_PROTOCOL, .msg = "unknown tag h9" };

	CHECK(&prm, &pol, tag, &ex, NULL);
	ex.msg = "unexpected continuation";
	CHECK(&prm, &pol, cont, &ex, NULL);
	/* M36: BYE at any time ends the session (temporary). */
	pol.lo = 0;
	pol.mailbox = NULL;
	ex.out = LOGIN_OUT "h2 LOGOUT\r\n";
	ex.err = ERR_NONE;
	ex.st = PS_DONE;
	ex.msg = NULL;
	{
		static const struct seg ok[] = { SEG(GREET LOGGED
		    "* BYE bye\r\nh2 OK\r\n") };

		CHECK(&prm, &pol, ok, &ex, NULL);
	}
	pol.mailbox = "INBOX";
	pol.idle = 1;
	ex.out = LOGIN_OUT SEL_OUT "h3 IDLE\r\n";
	ex.st = PS_ERROR;
	ex.err = ERR_TEMP;
	ex.msg = "shutting down";
	CHECK(&prm, &pol, bye, &ex, NULL);
}

/* ---- TLS ---- */

Test(imap_tls, starttls_required_then_sasl_ir)
{
	static const struct seg segs[] = {
		SEG("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"
		    "h1 OK Begin TLS negotiation now\r\n"),
		SEG("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n"
		    "h2 OK\r\n"
		    "h3 OK [CAPABILITY IMAP4rev1 IDLE] ok\r\n"
		    "* BYE\r\nh4 OK\r\n"),
	};
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 STARTTLS\r\n<TLS>\r\nh2 CAPABILITY\r\n"
		    "h3 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n"
		    "h4 LOGOUT\r\n",
		.ev = "op connect ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, NULL);
	assert_no_secret();
}

Test(imap_tls, pre_tls_capabilities_and_alerts_discarded)
{
	/* M5: AUTH=PLAIN and SASL-IR came before TLS: not believed. */
	static const struct seg segs[] = {
		SEG("* OK hi\r\n"
		    "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN SASL-IR\r\n"
		    "h1 OK\r\n"
		    "* OK [ALERT] pre-TLS alert\r\n"
		    "h2 OK go\r\n"),
		SEG("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
		    "h3 OK\r\n"
		    "+ \r\n"
		    "h4 OK [CAPABILITY IMAP4rev1] ok\r\n"
		    "* OK [ALERT] post-TLS alert\r\n"
		    "h5 OK\r\n"),
	};
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 CAPABILITY\r\nh2 STARTTLS\r\n<TLS>\r\n"
		    "h3 CAPABILITY\r\nh4 AUTHENTICATE PLAIN\r\n"
		    "AGFsaWNlAHMzY3JldA==\r\nh5 LOGOUT\r\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, NULL);
	cr_assert_null(strstr(logbuf.data, "alert: pre-TLS"));
	cr_assert_not_null(strstr(logbuf.data, "alert: post-TLS alert"));
	assert_no_secret();
}

Test(imap_tls, starttls_missing_or_refused)
{
	static const struct seg missing[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n") };
	static const struct seg missing2[] = { SEG(
	    "* OK hi\r\n* CAPABILITY IMAP4rev1\r\nh1 OK\r\n") };
	static const struct seg no[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"
	    "h1 NO TLS unavailable\r\n") };
	static const struct seg bad[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"
	    "h1 BAD what\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = "", .ev = "", .st = PS_ERROR,
	    .err = ERR_TLS, .msg = "does not offer STARTTLS" };

	prm.tls = TLS_STARTTLS;
	/* M1: no credential, not even a command. */
	CHECK(&prm, &pol, missing, &ex, NULL);
	ex.out = "h1 CAPABILITY\r\n";
	CHECK(&prm, &pol, missing2, &ex, NULL);
	/* M2. */
	ex.out = "h1 STARTTLS\r\n";
	ex.msg = "STARTTLS refused: TLS unavailable";
	CHECK(&prm, &pol, no, &ex, NULL);
	ex.msg = "STARTTLS refused";
	CHECK(&prm, &pol, bad, &ex, NULL);
}

Test(imap_tls, preauth_on_cleartext_aborts)
{
	static const struct seg segs[] = { SEG(
	    "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n") };
	static const struct seg ok[] = { SEG(
	    "* PREAUTH welcome\r\n* CAPABILITY IMAP4rev1 IDLE\r\nh1 OK\r\n"
	    "* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = "", .ev = "", .st = PS_ERROR,
	    .err = ERR_TLS, .msg = "PREAUTH" };

	/* M3 (CVE-2021-39272): nothing at all is sent. */
	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, NULL);
	/* Under implicit TLS, PREAUTH is fine and needs no credential. */
	prm.tls = TLS_IMPLICIT;
	ex.out = "h1 CAPABILITY\r\nh2 LOGOUT\r\n";
	ex.ev = "op connect ok\n";
	ex.st = PS_DONE;
	ex.err = ERR_NONE;
	ex.msg = NULL;
	CHECK(&prm, &pol, ok, &ex, NULL);
}

/* M4: a response injected behind the STARTTLS OK, in the same input. */
Test(imap_tls, bytes_after_starttls_ok_are_an_injection)
{
	static const char pre[] = "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n";
	static const char ok[] = "h1 OK Begin TLS\r\n";
	static const char inj[] = "h2 OK LOGIN completed\r\n";
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	char		 all[256];
	size_t		 n, k, cut = sizeof(pre) - 1 + sizeof(ok) - 1;

	prm.tls = TLS_STARTTLS;
	n = (size_t)snprintf(all, sizeof(all), "%s%s%s", pre, ok, inj);
	/* Every split that leaves the injected byte(s) with the OK. */
	for (k = 0; k < cut; k++) {
		struct owner	 o;
		struct imap	*p;
		struct buf	 out = BUF_INIT;
		enum proto_status st;
		const char	*msg;

		memset(&o, 0, sizeof(o));
		o.pol = &pol;
		p = o.p = imap_new(&prm, &owner_cb, &o);
		st = k == 0 ? PS_MORE : imap_input(p, all, k, NULL);
		cr_assert_eq(st, PS_MORE);
		st = imap_input(p, all + k, n - k, NULL);
		drain(p, &out);
		cr_assert_eq(st, PS_ERROR, "split %zu", k);
		cr_assert_eq(imap_error(p, &msg), ERR_TLS);
		cr_assert_not_null(strstr(msg, "injection"));
		cr_assert_str_eq(out.data, "h1 STARTTLS\r\n");
		cr_assert_eq(imap_tls_started(p), PS_ERROR);
		imap_free(&p);
		buf_free(&out);
		buf_free(&o.ev);
	}
}

Test(imap_tls, tls_started_when_not_expected)
{
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct owner	 o;
	struct imap	*p;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = imap_new(&prm, &owner_cb, &o);
	cr_assert_eq(imap_tls_started(p), PS_ERROR);
	cr_assert_eq(imap_error(p, NULL), ERR_TLS);
	cr_assert_eq(imap_input(p, "* OK\r\n", 6, NULL), PS_ERROR);
	imap_free(&p);
	buf_free(&o.ev);
}

/* ---- authentication ---- */

Test(imap_auth, logindisabled_and_plaintext_refused)
{
	static const struct seg dis[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n") };
	static const struct seg plain[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] hi\r\n") };
	static const struct seg clear[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n") };
	static const struct seg apop[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = "", .ev = "", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "LOGINDISABLED" };

	CHECK(&prm, &pol, dis, &ex, NULL);
	/* An explicit LOGIN is never sent under LOGINDISABLED. */
	prm.auth = AUTH_USER;
	CHECK(&prm, &pol, plain, &ex, NULL);
	/* I5: nothing secret on a cleartext link without allow_plaintext. */
	prm.auth = AUTH_AUTO;
	prm.tls = TLS_NONE;
	ex.msg = "without TLS";
	CHECK(&prm, &pol, clear, &ex, NULL);
	prm.tls = TLS_IMPLICIT;
	prm.auth = AUTH_XOAUTH2;
	ex.msg = "does not offer AUTH=XOAUTH2";
	CHECK(&prm, &pol, clear, &ex, NULL);
	prm.auth = AUTH_APOP;
	ex.msg = "APOP";
	CHECK(&prm, &pol, apop, &ex, NULL);
}

Test(imap_auth, plaintext_allowed_when_configured)
{
	static const struct seg segs[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT "h2 LOGOUT\r\n",
	    .ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	prm.tls = TLS_NONE;
	prm.allow_plaintext = 1;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_auth, plain_without_sasl_ir_uses_continuation)
{
	static const struct seg segs[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "+ \r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 AUTHENTICATE PLAIN\r\nAGFsaWNlAHMzY3JldA==\r\n"
		    "h2 LOGOUT\r\n",
		.ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	CHECK(&prm, &pol, segs, &ex, NULL);
	assert_no_secret();
	cr_assert_not_null(strstr(logbuf.data, "imap: C: <redacted>"));
}

Test(imap_auth, xoauth2_sasl_ir_and_error_challenge)
{
	static const struct seg ok[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	static const struct seg err[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n"
	    "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJ"
	    "odHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n"
	    "h1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 AUTHENTICATE XOAUTH2 "
		    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2szbgEB\r\nh2 LOGOUT\r\n",
		.ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	prm.auth = AUTH_XOAUTH2;
	prm.secret = "tok3n";
	prm.secret_len = 5;
	CHECK(&prm, &pol, ok, &ex, NULL);
	/* The error challenge is answered with an empty line. */
	ex.out = "h1 AUTHENTICATE XOAUTH2 "
	    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2szbgEB\r\n\r\n";
	ex.ev = "";
	ex.st = PS_ERROR;
	ex.err = ERR_AUTH;
	ex.msg = "authentication failed (401): Invalid credentials";
	CHECK(&prm, &pol, err, &ex, NULL);
	assert_no_secret();
}

Test(imap_auth, oauthbearer_continuation_and_error_challenge)
{
	static const struct seg err[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] hi\r\n"
	    "+ \r\n"
	    "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Nj"
	    "b3BlIn0=\r\n"
	    "h1 NO [AUTHENTICATIONFAILED] no\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 AUTHENTICATE OAUTHBEARER\r\n"
		    "bixhPWFsaWNlLAFob3N0PWltYXAuZXhhbXBsZS5vcmcBcG9ydD05OTMBYX"
		    "V0aD1CZWFyZXIgdG9rM24BAQ==\r\nAQ==\r\n",
		.ev = "", .st = PS_ERROR, .err = ERR_AUTH,
		.msg = "(invalid_token)" };

	prm.auth = AUTH_OAUTHBEARER;
	prm.secret = "tok3n";
	prm.secret_len = 5;
	CHECK(&prm, &pol, err, &ex, NULL);
	assert_no_secret();
}

Test(imap_auth, sasl_login_two_steps)
{
	static const struct seg segs[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=LOGIN SASL-IR] hi\r\n"
	    "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 AUTHENTICATE LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n"
		    "h2 LOGOUT\r\n",
		.ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	prm.auth = AUTH_LOGIN;
	CHECK(&prm, &pol, segs, &ex, NULL);
	assert_no_secret();
}

Test(imap_auth, failures_classified)
{
	static const struct seg failed[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n") };
	static const struct seg unavail[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 NO [UNAVAILABLE] Backend down\r\n") };
	static const struct seg bad[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 BAD syntax\r\n") };
	static const struct seg early[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "h1 OK what\r\n") };
	static const struct seg again[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n"
	    "+ \r\n") };
	static const struct seg b64[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"
	    "+ not*base64\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT, .ev = "", .st = PS_ERROR,
	    .err = ERR_AUTH, .msg = "Authentication failed." };

	CHECK(&prm, &pol, failed, &ex, NULL);
	/* M34: a server problem is not a credential failure. */
	ex.err = ERR_TEMP;
	ex.msg = "Backend down";
	CHECK(&prm, &pol, unavail, &ex, NULL);
	ex.err = ERR_PROTOCOL;
	ex.msg = "malformed";
	CHECK(&prm, &pol, bad, &ex, NULL);
	ex.out = "h1 AUTHENTICATE PLAIN\r\n";
	ex.msg = "before the credentials";
	CHECK(&prm, &pol, early, &ex, NULL);
	/* M22: a "+" after PLAIN's response. */
	ex.out = "h1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n";
	ex.msg = "unexpected SASL challenge";
	CHECK(&prm, &pol, again, &ex, NULL);
	ex.out = "h1 AUTHENTICATE PLAIN\r\n";
	ex.msg = "invalid SASL challenge";
	CHECK(&prm, &pol, b64, &ex, NULL);
}

Test(imap_auth, login_strings_quoted_or_literal)
{
	static const struct seg sync[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "+ go ahead\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	static const struct seg plus[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	static const struct seg refused[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 NO [AUTHENTICATIONFAILED] no\r\n") };
	static const struct seg quoted[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = "h1 LOGIN \"alice\" {7}\r\ns3cr\xc3\xa9t\r\n"
		    "h2 LOGOUT\r\n",
		.ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	/* 8-bit: a synchronizing literal, the rest only after "+". */
	prm.secret = "s3cr\xc3\xa9t";
	prm.secret_len = 7;
	CHECK(&prm, &pol, sync, &ex, NULL);
	/* LITERAL+: no wait. */
	ex.out = "h1 LOGIN \"alice\" {7+}\r\ns3cr\xc3\xa9t\r\nh2 LOGOUT\r\n";
	CHECK(&prm, &pol, plus, &ex, NULL);
	/* NO instead of "+": the literal is never sent. */
	ex.out = "h1 LOGIN \"alice\" {7}\r\n";
	ex.ev = "";
	ex.st = PS_ERROR;
	ex.err = ERR_AUTH;
	CHECK(&prm, &pol, refused, &ex, NULL);
	assert_no_secret();
	/* Quotes and backslashes escaped, never raw. */
	prm.secret = "a\"b\\c d";
	prm.secret_len = 7;
	ex.out = "h1 LOGIN \"alice\" \"a\\\"b\\\\c d\"\r\nh2 LOGOUT\r\n";
	ex.ev = "op connect ok\n";
	ex.st = PS_DONE;
	ex.err = ERR_NONE;
	CHECK(&prm, &pol, quoted, &ex, NULL);
	/* CR, LF or NUL cannot be sent at all. */
	prm.secret = "a\r\nb";
	prm.secret_len = 4;
	ex.out = "";
	ex.ev = "";
	ex.st = PS_ERROR;
	ex.err = ERR_CONFIG;
	ex.msg = "password unusable";
	CHECK(&prm, &pol, quoted, &ex, NULL);
}

/* ---- fetching ---- */

Test(imap_fetch, literal_size_caps_fail_before_allocation)
{
	static const struct seg big[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {4294967296}\r\nabc") };
	static const struct seg huge[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {99999999999999999999}\r\n") };
	static const struct seg neg[] = { SEG(
	    GREET LOGGED SEL3 LIST3 "* 1 FETCH (UID 101 BODY[] {-1}\r\n") };
	static const struct seg list[] = { SEG(
	    GREET LOGGED "* LIST () \"/\" {4294967296}\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT,
	    .ev = SEL3_EV WANT3_EV "failed 101 too-big literal of 4294967296 "
	    "octets exceeds max_message_size\n",
	    .st = PS_ERROR, .err = ERR_PROTOCOL,
	    .msg = "UID 101: literal of 4294967296 octets exceeds" };

	prm.max_message_size = 1024 * 1024;
	CHECK(&prm, &pol, big, &ex, NULL);
	ex.ev = SEL3_EV WANT3_EV;
	ex.msg = "literal size out of range";
	CHECK(&prm, &pol, huge, &ex, NULL);
	ex.msg = "malformed literal size";
	CHECK(&prm, &pol, neg, &ex, NULL);
	/* Not message data: the 64 KiB buffered cap. */
	pol.mailbox = NULL;
	ex.out = LOGIN_OUT "h2 LOGOUT\r\n";
	ex.ev = "op connect ok\n";
	ex.msg = "exceeds the cap of 65536";
	CHECK(&prm, &pol, list, &ex, NULL);
}

Test(imap_fetch, body_nil_and_vanished_and_no)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] NIL)\r\nh4 OK\r\n"
	    "h5 OK\r\n"
	    "h6 NO [SERVERBUG] broken\r\n"
	    "h7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT "h7 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV
		    "failed 101 nil the server sent BODY[] NIL\n"
		    "failed 102 gone message vanished before its body came\n"
		    "failed 103 no broken\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, fetch_for_uids_not_asked_is_never_misattributed)
{
	/* M20 (fdm #149). */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 3)\r\nh3 OK\r\n"
	    /* Another UID's body, and a body without UID for seq 2. */
	    "* 2 FETCH (UID 102 BODY[] {3}\r\nxyz)\r\n"
	    "* 3 FETCH (BODY[] {3}\r\nuvw FLAGS (\\Seen))\r\n"
	    "* 1 FETCH (FLAGS (\\Seen) UID 101)\r\n"
	    "* 1 FETCH (UID 101 BODY[] {3}\r\nabc)\r\n"
	    /* A second copy of it: dropped, not delivered twice. */
	    "* 1 FETCH (UID 101 BODY[] {3}\r\nabc)\r\n"
	    "h4 OK\r\nh5 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\nh5 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 3\nbegin 101 3\nend 101 abc\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, body_uid_contradicting_attribution)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 3)\r\nh3 OK\r\n"
	    "* 1 FETCH (BODY[] {3}\r\nabc UID 102)\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\n",
		.ev = SEL3_EV "want 101 3\nbegin 101 3\n",
		.st = PS_ERROR, .err = ERR_PROTOCOL,
		.msg = "body for UID 101 arrived with UID 102",
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, unsolicited_expunge_during_uid_fetch)
{
	/* M30: the sequence map follows EXPUNGE; mutations are by UID. */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 EXPUNGE\r\n"
	    /* Message 2 is now UID 103; this FETCH has no UID item. */
	    "* 2 FETCH (BODY[] {3}\r\nghi)\r\n"
	    "h6 OK\r\n"
	    "* 1 FETCH (BODY[] {3}\r\ndef)\r\n"
	    "h5 OK\r\n"
	    "* 2 FETCH (FLAGS ())\r\n"
	    "h4 OK\r\n"
	    "* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT "h7 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV
		    "begin 103 3\nend 103 ghi\nbegin 102 3\nend 102 def\n"
		    "failed 101 gone message vanished before its body came\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, sequence_numbers_out_of_range)
{
	/* M18. */
	static const struct seg exists[] = { SEG(
	    GREET LOGGED "* 4294967295 EXISTS\r\n") };
	static const struct seg bigger[] = { SEG(
	    GREET LOGGED "* 4294967296 EXISTS\r\n") };
	static const struct seg expunge[] = { SEG(
	    GREET LOGGED SEL3 "* 4 EXPUNGE\r\n") };
	static const struct seg zero[] = { SEG(
	    GREET LOGGED SEL3 "* 0 EXPUNGE\r\n") };
	static const struct seg fetch[] = { SEG(
	    GREET LOGGED SEL3 "* 4 FETCH (FLAGS ())\r\n") };
	static const struct seg vanished[] = { SEG(
	    GREET LOGGED SEL3 "* VANISHED 101\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT SEL_OUT, .st = PS_ERROR,
	    .err = ERR_PROTOCOL, .msg = "EXISTS count 4294967295 out of range" };

	CHECK(&prm, &pol, exists, &ex, NULL);
	ex.msg = "message number out of range";
	CHECK(&prm, &pol, bigger, &ex, NULL);
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT;
	ex.msg = "EXPUNGE of message 4, only 3 exist";
	CHECK(&prm, &pol, expunge, &ex, NULL);
	ex.msg = "EXPUNGE of message 0";
	CHECK(&prm, &pol, zero, &ex, NULL);
	ex.msg = "FETCH for message 4, only 3 exist";
	CHECK(&prm, &pol, fetch, &ex, NULL);
	ex.msg = "VANISHED";
	CHECK(&prm, &pol, vanished, &ex, NULL);
}

Test(imap_fetch, uidnext_n_star_quirk)
{
	/* Nothing new: "104:*" still returns the last message, UID 103. */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 3 FETCH (UID 103 RFC822.SIZE 3)\r\nh3 OK\r\n"
	    "* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 104 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT
		    "h3 UID FETCH 104:* (UID RFC822.SIZE)\r\nh4 LOGOUT\r\n",
		.ev = SEL3_EV "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, empty_mailbox_sends_noop)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\nh2 OK\r\n"
	    "h3 OK\r\n* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT "h3 NOOP\r\nh4 LOGOUT\r\n",
		.ev = "op connect ok\nselected 42 0 0 0\nop select ok\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, too_big_skip_and_duplicates_in_listing)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 3 FETCH (UID 103 RFC822.SIZE 2)\r\n"
	    "* 1 FETCH (UID 101 RFC822.SIZE 5000)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 10)\r\n"
	    "* 3 FETCH (UID 103 RFC822.SIZE 2)\r\n"
	    "* 2 FETCH (FLAGS (\\Seen))\r\nh3 OK\r\n"
	    "* 3 FETCH (UID 103 BODY[] \"hi\")\r\nh4 OK\r\n"
	    "* BYE\r\nh5 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .skip = { 102 } };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 103 BODY.PEEK[]\r\nh5 LOGOUT\r\n",
		.ev = SEL3_EV "too_big 101 5000\nwant 102 10\nwant 103 2\n"
		    "begin 103 2\nend 103 hi\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	prm.max_message_size = 1000;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, listing_capped_round_stops_below_the_first_left_out)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 3 FETCH (UID 103 RFC822.SIZE 1)\r\n"
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* BYE\r\nh5 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\nh5 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 1\nbegin 101 1\nend 101 a\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	/* Two kept (103, 101); 102 left out: the round ends below it. */
	prm.max_messages = 2;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, bye_mid_fetch_and_owner_failures)
{
	/* M36: no msg_end for a body cut short. */
	static const struct seg bye[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {3}\r\nab") };
	static const struct seg bye2[] = { SEG(
	    GREET LOGGED SEL3 LIST3 "* BYE going down\r\n") };
	static const struct seg data[] = { SEG(
	    GREET LOGGED SEL3 LIST3 "* 1 FETCH (UID 101 BODY[] {3}\r\nabc)") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT,
	    .ev = SEL3_EV WANT3_EV "begin 101 3\n", .st = PS_MORE,
	    .err = ERR_NONE };

	CHECK(&prm, &pol, bye, &ex, NULL);
	ex.ev = SEL3_EV WANT3_EV;
	ex.st = PS_ERROR;
	ex.err = ERR_TEMP;
	ex.msg = "going down";
	CHECK(&prm, &pol, bye2, &ex, NULL);
	pol.fail_in_data = 1;
	ex.ev = SEL3_EV WANT3_EV "begin 101 3\n";
	ex.err = ERR_LOCAL;
	ex.msg = "msg_data";
	CHECK(&prm, &pol, data, &ex, NULL);
	pol.fail_in_data = 0;
	pol.abort_uid = 102;
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT "h4 UID FETCH 101 BODY.PEEK[]\r\n";
	ex.ev = SEL3_EV "want 101 3\nwant 102 3\n";
	ex.msg = "want";
	CHECK(&prm, &pol, bye2, &ex, NULL);
}

Test(imap_fetch, logout_during_fetch_stops_decisions)
{
	/* want() asks for logout: no body fetch, no further want(). */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .logout_in_want = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT "h4 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 1\n"
		    "op fetch failed: stopped for logout\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* ---- mailbox ---- */

Test(imap_mailbox, uidvalidity_missing_malformed_or_changing)
{
	static const struct seg missing[] = { SEG(
	    GREET LOGGED "* 3 EXISTS\r\nh2 OK\r\n") };
	static const struct seg bad[] = { SEG(
	    GREET LOGGED "* OK [UIDVALIDITY abc] x\r\n") };
	static const struct seg change[] = { SEG(
	    GREET LOGGED SEL3 "* OK [UIDVALIDITY 43] changed\r\n") };
	static const struct seg same[] = { SEG(
	    GREET LOGGED SEL3 "* OK [UIDVALIDITY 42] same\r\n"
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* OK [APPENDUID x] ignored\r\n* OK [COPYUID 1 1 1] fine\r\n"
	    "* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX" };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT SEL_OUT,
	    .ev = "op connect ok\n", .st = PS_ERROR, .err = ERR_PROTOCOL,
	    .msg = "SELECT without UIDVALIDITY" };

	CHECK(&prm, &pol, missing, &ex, NULL);
	/* M21. */
	ex.msg = "malformed UIDVALIDITY: abc";
	CHECK(&prm, &pol, bad, &ex, NULL);
	/* M25: every UID plan is void; the session stops. */
	pol.lo = 101;
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT;
	ex.ev = SEL3_EV;
	ex.msg = "UIDVALIDITY changed from 42 to 43";
	CHECK(&prm, &pol, change, &ex, NULL);
	pol.skip[0] = 101;
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT "h4 LOGOUT\r\n";
	ex.ev = SEL3_EV "want 101 1\nop fetch ok\n";
	ex.st = PS_DONE;
	ex.err = ERR_NONE;
	ex.msg = NULL;
	CHECK(&prm, &pol, same, &ex, NULL);
}

Test(imap_mailbox, select_refused_and_examine)
{
	static const struct seg no[] = { SEG(
	    GREET LOGGED "h2 NO [NONEXISTENT] Unknown Mailbox: Lists\r\n"
	    "* BYE\r\nh3 OK\r\n") };
	static const struct seg ro[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "h5 OK\r\nh6 OK\r\n* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "Lists" };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT "h2 SELECT \"Lists\"\r\nh3 LOGOUT\r\n",
		.ev = "op connect ok\n"
		    "op select failed: Unknown Mailbox: Lists\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, no, &ex, NULL);
	/* EXAMINE: read-only; actions refused, nothing flagged (I3). */
	pol.mailbox = "INBOX";
	pol.readonly = 1;
	pol.lo = 101;
	pol.seen_on_end = 1;
	pol.delete_on_end = 1;
	ex.out = LOGIN_OUT "h2 EXAMINE \"INBOX\"\r\n" LIST_OUT BODIES_OUT
	    "h7 LOGOUT\r\n";
	ex.ev = "op connect ok\nselected 42 104 3 1\nop select ok\n"
	    WANT3_EV "begin 101 1\nend 101 a\n"
	    "delete 101 refused\nseen 101 refused\n"
	    "failed 102 gone message vanished before its body came\n"
	    "failed 103 gone message vanished before its body came\n"
	    "op fetch ok\n";
	CHECK(&prm, &pol, ro, &ex, NULL);
}

Test(imap_mailbox, select_read_only_code_and_names)
{
	/* An 8-bit name goes as a synchronizing literal. */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "+ ready for literal\r\n"
	    "* OK [CLOSED] previous mailbox closed\r\n"
	    "* 2 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n"
	    "h2 OK [READ-ONLY] done\r\n* BYE\r\nh3 OK\r\n") };
	static const struct seg plus[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1 LITERAL+] in\r\n"
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 9] x\r\n"
	    "h2 OK done\r\n* BYE\r\nh3 OK\r\n") };
	struct policy	 pol = { .mailbox = "B\xc3\xa4r" };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT "h2 SELECT {4}\r\nB\xc3\xa4r\r\n"
		    "h3 LOGOUT\r\n",
		.ev = "op connect ok\nselected 9 0 2 1\nop select ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
	/* With LITERAL+ it goes at once. */
	ex.out = LOGIN_OUT "h2 SELECT {4+}\r\nB\xc3\xa4r\r\nh3 LOGOUT\r\n";
	ex.ev = "op connect ok\nselected 9 0 0 0\nop select ok\n";
	CHECK(&prm, &pol, plus, &ex, NULL);
}

Test(imap_mailbox, owner_calls_checked)
{
	static const char sel[] = "* 1 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n"
	    "h3 OK\r\n";
	struct policy	 pol = { .passive = 1 };
	struct imap_params prm = params();
	struct owner	 o;
	struct imap	*p;
	struct buf	 out = BUF_INIT;
	char		 longname[IMAP_NAME_MAX + 2];

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = imap_new(&prm, &owner_cb, &o);
	cr_assert(imap_waiting(p), "the greeting is awaited");
	cr_assert_not(imap_ready(p));
	cr_assert_eq(imap_select(p, "INBOX", 0), -1, "not ready yet");
	cr_assert_eq(imap_logout(p), -1, "not authenticated yet");
	cr_assert_eq(imap_input(p, GREET, sizeof(GREET) - 1, NULL), PS_MORE);
	cr_assert_eq(imap_state(p), IMAP_LOGIN);
	cr_assert_str_eq(imap_state_name(imap_state(p)), "login");
	cr_assert(imap_waiting(p), "LOGIN is outstanding");
	cr_assert_eq(imap_delete(p, 1), -1, "nothing selected");
	cr_assert_eq(imap_idle(p), -1);
	cr_assert_eq(imap_fetch_new(p, 1), -1);
	cr_assert_eq(imap_input(p, LOGGED, sizeof(LOGGED) - 1, NULL), PS_MORE);
	cr_assert_eq(imap_state(p), IMAP_AUTHENTICATED);
	cr_assert(imap_ready(p));
	cr_assert_not(imap_waiting(p));
	/* Names: never CR, LF, empty or overlong; nothing is sent. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_assert_eq(imap_select(p, "a\r\nb", 0), -1);
	cr_assert_eq(imap_select(p, "", 0), -1);
	cr_assert_eq(imap_select(p, NULL, 0), -1);
	cr_assert_eq(imap_select(p, longname, 0), -1);
	cr_assert_eq(imap_list(p, "x\ny"), -1);
	cr_assert_eq(imap_status(p, "a\rb"), -1);
	cr_assert_eq(imap_fetch_new(p, 1), -1, "nothing selected");
	cr_assert_eq(imap_mark_seen(p, 1), -1);
	drain(p, &out);
	cr_assert_str_eq(out.data, LOGIN_OUT);
	/* One operation at a time. */
	cr_assert_eq(imap_noop(p), 0);
	cr_assert_not(imap_ready(p));
	cr_assert_eq(imap_noop(p), -1);
	cr_assert_eq(imap_list(p, "*"), -1);
	drain(p, &out);
	cr_assert_str_eq(out.data, LOGIN_OUT "h2 NOOP\r\n");
	cr_assert_eq(imap_input(p, "h2 OK\r\n", 7, NULL), PS_MORE);
	cr_assert_str_eq(o.ev.data, "op connect ok\nop noop ok\n");
	cr_assert_eq(imap_select(p, "INBOX", 0), 0);
	cr_assert_eq(imap_input(p, sel, sizeof(sel) - 1, NULL), PS_MORE);
	cr_assert_eq(imap_state(p), IMAP_SELECTED);
	cr_assert_eq(imap_exists(p), 1);
	cr_assert_eq(imap_fetch_new(p, 0), -1, "UIDs start at 1");
	cr_assert_eq(imap_delete(p, 0), -1);
	cr_assert_eq(imap_move(p, 7, "a\nb"), -1);
	cr_assert_eq(imap_logout(p), 0);
	cr_assert_eq(imap_logout(p), -1, "LOGOUT already sent");
	drain(p, &out);
	cr_assert_not_null(strstr(out.data, "h3 SELECT \"INBOX\"\r\n"
	    "h4 LOGOUT\r\n"));
	cr_assert_eq(imap_input(p, "* BYE\r\nh4 OK\r\n", 14, NULL), PS_DONE);
	cr_assert(imap_logout_ok(p));
	cr_assert_eq(imap_input(p, "x", 1, NULL), PS_DONE);
	cr_assert_str_eq(imap_op_name(IMAP_OP_STATUS), "status");
	cr_assert_str_eq(imap_state_name(IMAP_IDLING), "idling");
	imap_free(&p);
	cr_assert_null(p);
	buf_free(&out);
	buf_free(&o.ev);
}

Test(imap_mailbox, list_and_status)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
	    "* LIST (\\Noselect \\HasChildren) \"/\" Lists\r\n"
	    "* LIST (\\HasNoChildren) \"/\" \"Lists/haul dev\"\r\n"
	    "* LIST (\\NonExistent) \"/\" Gone\r\n"
	    "* LIST () NIL {6}\r\nB\xc3\xa4r\"x\r\n"
	    "* LIST () \"/\" {3}\r\na\0b\r\n"
	    "h2 OK List completed\r\n"
	    "* STATUS \"Lists/haul dev\" (MESSAGES 12 UIDNEXT 300 "
	    "UIDVALIDITY 7 UNSEEN 1)\r\n"
	    "h3 OK\r\n* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .list = "*", .status = "Lists/haul dev" };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT "h2 LIST \"\" \"*\"\r\n"
		    "h3 STATUS \"Lists/haul dev\" (MESSAGES UIDNEXT "
		    "UIDVALIDITY)\r\nh4 LOGOUT\r\n",
		.ev = "op connect ok\n"
		    "mailbox INBOX /\nmailbox Lists/haul dev /\n"
		    "mailbox B\\xc3\\xa4r\"x -\n"
		    "op list ok\n"
		    "status Lists/haul dev messages=12/1 uidnext=300/1 "
		    "uidvalidity=7/1\n"
		    "op status ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_mailbox, malformed_list_and_status)
{
	static const struct seg list[] = { SEG(
	    GREET LOGGED "* LIST \"/\" INBOX\r\n") };
	static const struct seg status[] = { SEG(
	    GREET LOGGED "* STATUS INBOX (UIDNEXT 0)\r\n") };
	struct policy	 pol = { .list = "*" };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT "h2 LIST \"\" \"*\"\r\n",
	    .st = PS_ERROR, .err = ERR_PROTOCOL, .msg = "malformed LIST" };

	CHECK(&prm, &pol, list, &ex, NULL);
	pol.list = NULL;
	pol.status = "INBOX";
	ex.out = LOGIN_OUT "h2 STATUS \"INBOX\" (MESSAGES UIDNEXT "
	    "UIDVALIDITY)\r\n";
	ex.msg = "malformed STATUS";
	CHECK(&prm, &pol, status, &ex, NULL);
}

/* ---- actions ---- */

Test(imap_actions, no_uidplus_refuses_delete)
{
	static const struct seg segs[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] ready\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n" SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* BYE\r\nh5 OK\r\n") };
	static const struct seg all[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] ready\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1] in\r\n" SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "h5 OK\r\n* 1 EXPUNGE\r\nh6 OK\r\n* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .delete_after_fetch = 1, .move_on_end = "Archive" };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\nh5 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 1\nbegin 101 1\nend 101 a\n"
		    "move 101 refused\nop fetch ok\ndelete 101 refused\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
	cr_assert_not_null(strstr(logbuf.data, "no UIDPLUS"));
	/* allow_expunge_all: \Deleted, then a plain EXPUNGE. */
	pol.move_on_end = NULL;
	prm.allow_expunge_all = 1;
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT "h4 UID FETCH 101 BODY.PEEK[]\r\n"
	    "h5 UID STORE 101 +FLAGS.SILENT (\\Deleted)\r\nh6 EXPUNGE\r\n"
	    "h7 LOGOUT\r\n";
	ex.ev = SEL3_EV "want 101 1\nbegin 101 1\nend 101 a\nop fetch ok\n"
	    "action delete 101 1\n";
	CHECK(&prm, &pol, all, &ex, NULL);
}

Test(imap_actions, seen_batched_or_per_message)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\n"
	    "* 2 FETCH (UID 102 BODY[] {1}\r\nb)\r\n"
	    "h4 OK\r\nh5 OK\r\n"
	    "* 3 FETCH (UID 103 BODY[] {1}\r\nc)\r\nh6 OK\r\n"
	    "h7 NO [CANNOT] flags are read-only\r\n"
	    "* BYE\r\nh8 OK\r\n") };
	static const struct seg each[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\n"
	    "* 2 FETCH (UID 102 BODY[] {1}\r\nb)\r\n"
	    "h4 OK\r\nh5 OK\r\n"
	    "* 3 FETCH (UID 103 BODY[] {1}\r\nc)\r\nh6 OK\r\n"
	    "h7 OK\r\nh8 OK\r\nh9 NO no\r\n"
	    "* BYE\r\nh10 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .seen_after_fetch = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT
		    "h7 UID STORE 101:103 +FLAGS.SILENT (\\Seen)\r\n"
		    "h8 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV
		    "begin 101 1\nend 101 a\nbegin 102 1\nend 102 b\n"
		    "begin 103 1\nend 103 c\nop fetch ok\n"
		    "action seen 101 0\naction seen 102 0\n"
		    "action seen 103 0\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	/* Asked together (in one callback): one STORE. */
	CHECK(&prm, &pol, segs, &ex, NULL);
	/* Asked as each body ends: one STORE each, in order. */
	pol.seen_after_fetch = 0;
	pol.seen_on_end = 1;
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT
	    "h7 UID STORE 101 +FLAGS.SILENT (\\Seen)\r\n"
	    "h8 UID STORE 102 +FLAGS.SILENT (\\Seen)\r\n"
	    "h9 UID STORE 103 +FLAGS.SILENT (\\Seen)\r\n"
	    "h10 LOGOUT\r\n";
	ex.ev = SEL3_EV WANT3_EV
	    "begin 101 1\nend 101 a\nbegin 102 1\nend 102 b\n"
	    "begin 103 1\nend 103 c\nop fetch ok\n"
	    "action seen 101 1\naction seen 102 1\naction seen 103 0\n";
	CHECK(&prm, &pol, each, &ex, NULL);
}

Test(imap_actions, seen_and_failed_delete_at_every_split)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* 2 FETCH (UID 102 BODY[] {1}\r\nb)\r\nh5 OK\r\n"
	    "h6 NO [CANNOT] no\r\nh7 OK\r\n"
	    "h8 OK\r\n"
	    "* BYE\r\nh9 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .delete_on_end = 1 };
	struct imap_params prm = params();
	/* The expunge waits for its STORE's OK (RFC 3501 5.5). */
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\n"
		    "h5 UID FETCH 102 BODY.PEEK[]\r\n"
		    "h6 UID STORE 101 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h7 UID STORE 102 +FLAGS.SILENT (\\Deleted)\r\n"
		    "h8 UID EXPUNGE 102\r\n"
		    "h9 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 1\nwant 102 1\n"
		    "begin 101 1\nend 101 a\nbegin 102 1\nend 102 b\n"
		    "op fetch ok\n"
		    /* STORE refused: the expunge is not reported ok. */
		    "action delete 101 0\naction delete 102 1\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_actions, move_with_and_without_move)
{
	static const struct seg mv[] = { SEG(
	    GREET LOGGED SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* OK [COPYUID 7 101 9]\r\n* 1 EXPUNGE\r\nh5 OK moved\r\n"
	    "* BYE\r\nh6 OK\r\n") };
	static const struct seg cp[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"
	    "h1 OK [CAPABILITY IMAP4rev1 UIDPLUS] in\r\n" SEL3
	    "* 1 FETCH (UID 101 RFC822.SIZE 1)\r\n"
	    "* 2 FETCH (UID 102 RFC822.SIZE 1)\r\nh3 OK\r\n"
	    "* 1 FETCH (UID 101 BODY[] {1}\r\na)\r\nh4 OK\r\n"
	    "* 2 FETCH (UID 102 BODY[] {1}\r\nb)\r\nh5 OK\r\n"
	    "h6 OK [COPYUID 7 101 9] copied\r\n"
	    "h7 NO [TRYCREATE] no such folder\r\n"
	    "h8 OK\r\n* 1 EXPUNGE\r\nh9 OK\r\n"
	    "* BYE\r\nh10 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101,
	    .move_on_end = "Archive/2024" };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT
		    "h4 UID FETCH 101 BODY.PEEK[]\r\n"
		    "h5 UID MOVE 101 \"Archive/2024\"\r\nh6 LOGOUT\r\n",
		.ev = SEL3_EV "want 101 1\nbegin 101 1\nend 101 a\n"
		    "op fetch ok\naction move 101 1\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, mv, &ex, NULL);
	/* COPY, then \Deleted + UID EXPUNGE only once the copy is done. */
	ex.out = LOGIN_OUT SEL_OUT LIST_OUT
	    "h4 UID FETCH 101 BODY.PEEK[]\r\nh5 UID FETCH 102 BODY.PEEK[]\r\n"
	    "h6 UID COPY 101 \"Archive/2024\"\r\n"
	    "h7 UID COPY 102 \"Archive/2024\"\r\n"
	    "h8 UID STORE 101 +FLAGS.SILENT (\\Deleted)\r\n"
	    "h9 UID EXPUNGE 101\r\nh10 LOGOUT\r\n";
	ex.ev = SEL3_EV "want 101 1\nwant 102 1\n"
	    "begin 101 1\nend 101 a\nbegin 102 1\nend 102 b\nop fetch ok\n"
	    "action move 102 0\naction move 101 1\n";
	CHECK(&prm, &pol, cp, &ex, NULL);
}

/* ---- IDLE ---- */

Test(imap_idle, idle_exists_done_then_fetch)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK [READ-WRITE] ok\r\n"
	    "h3 OK noop\r\n"
	    "+ idling\r\n"
	    "* 1 EXISTS\r\n"
	    "h4 OK IDLE terminated\r\n"
	    "* 1 FETCH (UID 1 RFC822.SIZE 3)\r\nh5 OK\r\n"
	    "* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\nh6 OK\r\n"
	    "* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 1, .idle = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT "h3 NOOP\r\nh4 IDLE\r\nDONE\r\n"
		    "h5 UID FETCH 1:* (UID RFC822.SIZE)\r\n"
		    "h6 UID FETCH 1 BODY.PEEK[]\r\nh7 LOGOUT\r\n",
		.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
		    "op fetch ok\nexists 1\nop idle ok\nwant 1 3\n"
		    "begin 1 3\nend 1 abc\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_idle, done_before_the_continuation)
{
	/* EXISTS before "+": DONE goes out as soon as "+" comes. */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK ok\r\n"
	    "* 1 EXISTS\r\n+ idling\r\nh3 OK done\r\n"
	    "h4 OK\r\n* BYE\r\nh5 OK\r\n") };
	static const struct seg cancel[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK ok\r\n"
	    "h3 OK\r\n* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .idle = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT "h3 IDLE\r\nDONE\r\n"
		    "h4 UID FETCH 1:* (UID RFC822.SIZE)\r\nh5 LOGOUT\r\n",
		.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
		    "exists 1\nop idle ok\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
	/* imap_idle_done before IDLE went out: it never does. */
	pol.idle_done_at_once = 1;
	ex.out = LOGIN_OUT SEL_OUT "h3 NOOP\r\nh4 LOGOUT\r\n";
	ex.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
	    "op idle ok\nop fetch ok\n";
	CHECK(&prm, &pol, cancel, &ex, NULL);
}

Test(imap_idle, idle_refused_or_not_offered)
{
	static const struct seg no[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK ok\r\n"
	    "h3 NO not now\r\nh4 OK\r\n* BYE\r\nh5 OK\r\n") };
	static const struct seg none[] = { SEG(
	    "* OK [CAPABILITY IMAP4rev1] hi\r\nh1 OK in\r\n"
	    "* CAPABILITY IMAP4rev1\r\nh2 OK\r\n"
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh3 OK ok\r\n"
	    "* BYE\r\nh4 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .idle = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT "h3 IDLE\r\nh4 NOOP\r\nh5 LOGOUT\r\n",
		.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
		    "op idle failed: not now\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, no, &ex, NULL);
	ex.out = LOGIN_OUT "h2 CAPABILITY\r\nh3 SELECT \"INBOX\"\r\n"
	    "h4 LOGOUT\r\n";
	ex.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
	    "idle refused\n";
	CHECK(&prm, &pol, none, &ex, NULL);
}

Test(imap_idle, waiting_is_off_while_idling)
{
	static const char pre[] = GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK ok\r\n";
	struct policy	 pol = { .mailbox = "INBOX", .idle = 1 };
	struct imap_params prm = params();
	struct owner	 o;
	struct imap	*p;
	struct buf	 out = BUF_INIT;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = imap_new(&prm, &owner_cb, &o);
	cr_assert_eq(imap_input(p, pre, sizeof(pre) - 1, NULL), PS_MORE);
	cr_assert_eq(imap_state(p), IMAP_IDLE_START);
	cr_assert(imap_waiting(p), "the \"+\" is awaited");
	cr_assert_eq(imap_exists(p), 0);
	cr_assert_eq(imap_uidvalidity(p), 7);
	cr_assert_not(imap_readonly(p));
	cr_assert_eq(imap_input(p, "+ idling\r\n", 10, NULL), PS_MORE);
	cr_assert_eq(imap_state(p), IMAP_IDLING);
	cr_assert_not(imap_waiting(p), "the driver's IDLE timer runs");
	cr_assert_not(imap_ready(p));
	cr_assert_eq(imap_noop(p), -1, "busy idling");
	/* An action waits for IDLE to end. */
	cr_assert_eq(imap_mark_seen(p, 5), 0);
	drain(p, &out);
	cr_assert_null(strstr(out.data, "STORE"));
	/* A logout ends IDLE first. */
	cr_assert_eq(imap_logout(p), 0);
	drain(p, &out);
	cr_assert_not_null(strstr(out.data, "DONE\r\n"));
	cr_assert(imap_waiting(p));
	cr_assert_eq(imap_input(p, "h3 OK\r\n", 7, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_not_null(strstr(out.data, "DONE\r\nh4 UID STORE 5 "
	    "+FLAGS.SILENT (\\Seen)\r\n"));
	cr_assert_null(strstr(out.data, "LOGOUT"), "not before the STORE's "
	    "reply");
	cr_assert_eq(imap_input(p, "h4 OK\r\n", 7, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_not_null(strstr(out.data, "h5 LOGOUT\r\n"));
	cr_assert_not_null(strstr(o.ev.data, "action seen 5 1\n"));
	cr_assert_eq(imap_input(p, "* BYE\r\nh5 OK\r\n", 14, NULL),
	    PS_DONE);
	cr_assert(imap_logout_ok(p));
	imap_free(&p);
	buf_free(&out);
	buf_free(&o.ev);
}

Test(imap_idle, server_ends_idle_on_its_own)
{
	static const struct seg segs[] = { SEG(
	    GREET LOGGED
	    "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\nh2 OK ok\r\n"
	    "+ idling\r\n* OK still here\r\nh3 OK IDLE timed out\r\n"
	    "h4 OK\r\n* BYE\r\nh5 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .idle = 1 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT "h3 IDLE\r\nh4 NOOP\r\nh5 LOGOUT\r\n",
		.ev = "op connect ok\nselected 7 0 0 0\nop select ok\n"
		    "op idle ok\nop fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(imap_fetch, exists_going_down_drops_the_sequence_map)
{
	/* M32: after it, a body without UID can no longer be attributed. */
	static const struct seg segs[] = { SEG(
	    GREET LOGGED SEL3 LIST3
	    "* 1 EXISTS\r\n"
	    "* 1 FETCH (BODY[] {1}\r\na)\r\n"
	    "h4 OK\r\n"
	    "* 1 FETCH (UID 102 BODY[] {1}\r\nb)\r\n"
	    "h5 OK\r\nh6 OK\r\n* BYE\r\nh7 OK\r\n") };
	struct policy	 pol = { .mailbox = "INBOX", .lo = 101 };
	struct imap_params prm = params();
	struct expect	 ex = {
		.out = LOGIN_OUT SEL_OUT LIST_OUT BODIES_OUT "h7 LOGOUT\r\n",
		.ev = SEL3_EV WANT3_EV "exists 1\n"
		    "failed 101 gone message vanished before its body came\n"
		    "begin 102 1\nend 102 b\n"
		    "failed 103 gone message vanished before its body came\n"
		    "op fetch ok\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
	cr_assert_not_null(strstr(logbuf.data, "EXISTS went down from 3 to 1"));
}

Test(imap_flow, unknown_untagged_responses_are_ignored)
{
	static const struct seg segs[] = { SEG(
	    GREET
	    "* ID (\"name\" \"Dovecot\")\r\n"
	    "* XAPPLEPUSHSERVICE {3}\r\nabc (1 2 (3))\r\n"
	    "* 7 XWEIRD ((a) \"b\")\r\n"
	    "* NO [ALERT] quota almost full\r\n"
	    "* BAD noise\r\n"
	    LOGGED
	    "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
	    "* FLAGS (\\Seen)\r\n* SEARCH 1 2\r\n* 3 RECENT\r\n"
	    "* STATUS INBOX (MESSAGES 1)\r\n"
	    "* LIST () \"/\" INBOX\r\n"
	    "* 2 EXPUNGE\r\n* 1 FETCH (FLAGS ())\r\n"
	    "* BYE\r\nh2 OK\r\n") };
	struct policy	 pol = { 0 };
	struct imap_params prm = params();
	struct expect	 ex = { .out = LOGIN_OUT "h2 LOGOUT\r\n",
	    .ev = "op connect ok\n", .st = PS_DONE, .err = ERR_NONE };

	CHECK(&prm, &pol, segs, &ex, NULL);
	cr_assert_not_null(strstr(logbuf.data, "server alert: quota almost "
	    "full"));
	cr_assert_not_null(strstr(logbuf.data, "server warning: noise"));
}
