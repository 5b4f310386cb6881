/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/log.h"
#include "haul/pop3.h"
#include "haul/sasl.h"

/*
 * Scripted transcripts fed to the machine at every split position: for
 * each transcript and each k, bytes [0,k) then [k,n) (never across a TLS
 * handshake, which the driver never does either), and byte by byte.  Each
 * run must write exactly the same commands and make exactly the same
 * owner callbacks.
 */

#define MAXMSG	16

/* The server's bytes before and after each TLS handshake. */
struct seg {
	const char	*data;
	size_t		 len;
};
#define SEG(s)	{ (s), sizeof(s) - 1 }

/* How the fake owner behaves. */
struct policy {
	enum pop3_want	 want[MAXMSG + 1];	/* by msgno; 0 = FETCH */
	int		 delete_on_end;		/* pop3_delete in msg_end */
	int		 delete_on_drained;	/* delete every ended one */
	int		 no_finish;		/* never pop3_finish */
	unsigned	 try_delete;		/* pop3_delete it in drained */
	unsigned	 abort_in_begin;
	unsigned	 fail_in_data;
};

struct owner {
	const struct policy *pol;
	struct pop3	*p;
	struct buf	 ev;
	struct buf	 body;
	unsigned	 cur;
	unsigned	 ended[MAXMSG];
	unsigned	 nended;
	size_t		 data_calls;
};

struct result {
	char		*out;		/* every command, "<TLS>" at handshakes */
	char		*ev;		/* owner callbacks */
	enum proto_status st;
	enum err_class	 err;
	char		 msg[256];
	int		 quit_ok;
	long		 login_delay;
	long		 expire;
	unsigned	 dele_ok;	/* bit n: DELE n answered +OK */
	int		 bad;		/* a driver contract was broken */
};

static struct buf	 logbuf = BUF_INIT;

/* Keep the machine's warnings out of the test output, but keep them. */
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
	log_set_level(LOG_LVL_INFO);
}

static void
teardown(void)
{
	log_set_sink(NULL, NULL);
	buf_free(&logbuf);
}

TestSuite(pop3_flow, .init = setup, .fini = teardown);
TestSuite(pop3_auth, .init = setup, .fini = teardown);
TestSuite(pop3_tls, .init = setup, .fini = teardown);
TestSuite(pop3_listing, .init = setup, .fini = teardown);
TestSuite(pop3_body, .init = setup, .fini = teardown);
TestSuite(pop3_parse, .init = setup, .fini = teardown);

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

static enum pop3_want
o_want(void *arg, unsigned n, const char *uid, uint64_t size)
{
	struct owner	*o = arg;

	evf(o, "want %u %s %llu", n, uid, (unsigned long long)size);
	return n <= MAXMSG ? o->pol->want[n] : POP3_WANT_FETCH;
}

static int
o_begin(void *arg, unsigned n, const char *uid, uint64_t size)
{
	struct owner	*o = arg;

	evf(o, "begin %u %s %llu", n, uid, (unsigned long long)size);
	buf_reset(&o->body);
	o->cur = n;
	if (o->pol->abort_in_begin == n)
		pop3_abort(o->p);
	return 0;
}

static int
o_data(void *arg, const void *data, size_t len)
{
	struct owner	*o = arg;

	o->data_calls++;
	buf_add(&o->body, data, len);
	return o->pol->fail_in_data == o->cur ? -1 : 0;
}

static int
o_end(void *arg, unsigned n, const char *uid)
{
	struct owner	*o = arg;
	char		 esc[4096];

	log_printable(esc, sizeof(esc), o->body.data == NULL ? "" :
	    o->body.data, o->body.len);
	evf(o, "end %u %s %s", n, uid, esc);
	if (o->nended < MAXMSG)
		o->ended[o->nended++] = n;
	if (o->pol->delete_on_end && pop3_delete(o->p, n) == -1)
		evf(o, "delete %u refused", n);
	return 0;
}

static int
o_failed(void *arg, unsigned n, const char *uid, enum pop3_fail why,
    const char *text)
{
	struct owner	*o = arg;

	evf(o, "failed %u %s %s %s", n, uid,
	    why == POP3_FAIL_ERR ? "err" : "too-big", text);
	return 0;
}

static int
o_too_big(void *arg, unsigned n, const char *uid, uint64_t size)
{
	struct owner	*o = arg;

	evf(o, "too_big %u %s %llu", n, uid, (unsigned long long)size);
	return 0;
}

static int
o_mailbox(void *arg, unsigned count, uint64_t octets)
{
	struct owner	*o = arg;

	evf(o, "mailbox %u %llu", count, (unsigned long long)octets);
	return 0;
}

static void
o_ambiguous(void *arg, unsigned n, const char *uid)
{
	struct owner	*o = arg;

	evf(o, "ambiguous %u %s", n, uid);
}

static void
o_drained(void *arg)
{
	struct owner	*o = arg;
	unsigned	 i;

	evf(o, "drained");
	if (o->pol->try_delete != 0 && pop3_delete(o->p, o->pol->try_delete)
	    == -1)
		evf(o, "delete %u refused", o->pol->try_delete);
	if (o->pol->delete_on_drained)
		for (i = 0; i < o->nended; i++)
			pop3_delete(o->p, o->ended[i]);
	if (!o->pol->no_finish)
		pop3_finish(o->p);
}

static const struct pop3_cb owner_cb = {
	.want = o_want,
	.msg_begin = o_begin,
	.msg_data = o_data,
	.msg_end = o_end,
	.msg_failed = o_failed,
	.too_big = o_too_big,
	.mailbox = o_mailbox,
	.ambiguous = o_ambiguous,
	.drained = o_drained,
};

static struct pop3_params
params(void)
{
	struct pop3_params prm;

	memset(&prm, 0, sizeof(prm));
	prm.account = "test";
	prm.tls = TLS_IMPLICIT;
	prm.auth = AUTH_AUTO;
	prm.user = "alice";
	prm.secret = "s3cret";
	prm.secret_len = 6;
	return prm;
}

static void
drain(struct pop3 *p, struct buf *out)
{
	struct buf	*o = pop3_output(p);

	buf_add(out, o->data, o->len);
	buf_consume(o, o->len);
}

/*
 * One run.  split: cut the stream at this offset (0 = no cut); bytewise:
 * feed one byte at a time.
 */
static void
run(const struct pop3_params *prm, const struct policy *pol,
    const struct seg *segs, size_t nsegs, size_t split, int bytewise,
    struct result *r)
{
	struct owner	 o;
	struct buf	 out = BUF_INIT;
	struct pop3	*p;
	enum proto_status st = PS_MORE;
	const char	*msg;
	size_t		 base = 0, i, a, b, used;
	unsigned	 n;

	memset(r, 0, sizeof(*r));
	memset(&o, 0, sizeof(o));
	o.pol = pol;
	p = o.p = pop3_new(prm, &owner_cb, &o);
	buf_add_str(&out, "");
	buf_add_str(&o.ev, "");
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
			st = pop3_input(p, d + a, b - a, &used);
			drain(p, &out);
			if (st == PS_ERROR || st == PS_DONE)
				goto done;
			if (used != b - a)
				r->bad = 1;
			if (st == PS_STARTTLS) {
				if (b != len)
					r->bad = 1;
				buf_add_str(&out, "<TLS>\r\n");
				st = pop3_tls_started(p);
				drain(p, &out);
				if (st != PS_MORE)
					goto done;
			}
		}
		base += len;
	}
done:
	r->st = st;
	r->err = pop3_error(p, &msg);
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	r->quit_ok = pop3_quit_ok(p);
	r->login_delay = pop3_login_delay(p);
	r->expire = pop3_expire(p);
	for (n = 1; n <= MAXMSG && n <= pop3_count(p); n++)
		if (pop3_dele_ok(p, n))
			r->dele_ok |= 1u << n;
	pop3_free(&p);
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
check_all(const struct pop3_params *prm, const struct policy *pol,
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

/* An empty mailbox after authentication (post-auth CAPA first). */
#define EMPTY_TAIL \
	"+OK\r\nUIDL\r\n.\r\n" "+OK 0 0\r\n" "+OK\r\n.\r\n" "+OK\r\n.\r\n" \
	"+OK bye\r\n"
#define EMPTY_OUT	"CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\nQUIT\r\n"
/* The same without a post-auth CAPA (CAPA was refused). */
#define EMPTY_TAIL_NOCAPA \
	"+OK 0 0\r\n" "+OK\r\n.\r\n" "+OK\r\n.\r\n" "+OK bye\r\n"
#define EMPTY_OUT_NOCAPA	"STAT\r\nUIDL\r\nLIST\r\nQUIT\r\n"
#define EMPTY_EV	"mailbox 0 0\ndrained\n"

/* ---- whole sessions ---- */

Test(pop3_flow, happy_path_pipelined)
{
	static const struct seg segs[] = { SEG(
	    "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	    "+OK Capability list follows\r\nUSER\r\nPIPELINING\r\nUIDL\r\n"
	    "RESP-CODES\r\nEXPIRE NEVER\r\nLOGIN-DELAY 900 USER\r\n.\r\n"
	    "+OK\r\n"
	    "+OK maildrop locked\r\n"
	    "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\nEXPIRE NEVER\r\n"
	    "LOGIN-DELAY 300\r\n.\r\n"
	    "+OK 3 330\r\n"
	    "+OK\r\n1 uid-a\r\n2 uid-b\r\n3 uid-c\r\n.\r\n"
	    "+OK 3 messages\r\n1 100\r\n2 110\r\n3 120\r\n.\r\n"
	    "+OK 100 octets\r\nSubject: a\r\n\r\nbody a\r\n..dot\r\n.\r\n"
	    "+OK deleted\r\n"
	    "+OK\r\nSubject: c\r\n\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n"
	    "+OK bye\r\n") };
	struct policy	 pol = { .delete_on_end = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nDELE 2\r\nRETR 3\r\n"
		    "DELE 1\r\nDELE 3\r\nQUIT\r\n",
		.ev = "mailbox 3 330\n"
		    "want 1 uid-a 100\nwant 2 uid-b 110\nwant 3 uid-c 120\n"
		    "begin 1 uid-a 100\n"
		    "end 1 uid-a Subject: a\\r\\n\\r\\nbody a\\r\\n.dot\\r\\n\n"
		    "begin 3 uid-c 120\n"
		    "end 3 uid-c Subject: c\\r\\n\\r\\n\n"
		    "drained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	pol.want[2] = POP3_WANT_DELETE;
	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.quit_ok, 1);
	cr_assert_eq(r.dele_ok, (1u << 1) | (1u << 2) | (1u << 3));
	cr_assert_eq(r.login_delay, 300, "post-auth LOGIN-DELAY wins");
	cr_assert_eq(r.expire, POP3_EXPIRE_NEVER);
	result_free(&r);
}

Test(pop3_flow, no_pipelining_one_command_at_a_time)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n"
	    "+OK\r\nUSER\r\nUIDL\r\nEXPIRE 0\r\n.\r\n"
	    "+OK 3 30\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n"
	    "+OK\r\nC\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { .delete_on_end = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nDELE 1\r\nDELE 2\r\nRETR 3\r\nDELE 3\r\n"
		    "QUIT\r\n",
		.ev = "mailbox 3 30\n"
		    "want 1 a 10\nbegin 1 a 10\nend 1 a A\\r\\n\n"
		    "want 2 b 10\nwant 3 c 10\nbegin 3 c 10\n"
		    "end 3 c C\\r\\n\ndrained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	pol.want[2] = POP3_WANT_DELETE;
	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.expire, 0, "EXPIRE 0 is exposed for the owner");
	cr_assert_eq(r.login_delay, POP3_NONE);
	result_free(&r);
}

Test(pop3_flow, no_delete_without_pop3_delete)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK\r\nPIPELINING\r\n.\r\n"
	    "+OK 2 20\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n"
	    "+OK\r\nB\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nRETR 2\r\nQUIT\r\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_null(strstr(r.out, "DELE"), "keep: no DELE ever");
	cr_assert_eq(r.dele_ok, 0);
	result_free(&r);
}

Test(pop3_flow, deletes_after_everything_was_received)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK\r\nPIPELINING\r\n.\r\n"
	    "+OK 2 20\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n"
	    "+OK\r\nB\r\n.\r\n"
	    "+OK\r\n+OK\r\n+OK\r\n") };
	struct policy	 pol = { .delete_on_drained = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nRETR 2\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.dele_ok, (1u << 1) | (1u << 2));
	cr_assert_eq(r.quit_ok, 1);
	result_free(&r);
}

Test(pop3_flow, quit_refused_means_not_committed)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 1 10\r\n"
	    "+OK\r\n1 a\r\n.\r\n"
	    "+OK\r\n1 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n"
	    "+OK\r\n"
	    "-ERR [SYS/TEMP] some deleted messages not removed\r\n") };
	struct policy	 pol = { .delete_on_end = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.quit_ok, 0, "-ERR to QUIT: deletions not committed");
	cr_assert_eq(r.dele_ok, 1u << 1);
	result_free(&r);
}

Test(pop3_flow, retr_err_calls_msg_failed_and_goes_on)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 2 20\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n.\r\n"
	    "-ERR [SYS/TEMP] message locked\r\n"
	    "+OK\r\nB\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\nQUIT\r\n",
		.ev = "mailbox 2 20\nwant 1 a 10\n"
		    "failed 1 a err [SYS/TEMP] message locked\n"
		    "want 2 b 10\nbegin 2 b 10\nend 2 b B\\r\\n\ndrained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_flow, too_big_is_never_fetched)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 2 5010\r\n"
	    "+OK\r\n1 big\r\n2 small\r\n.\r\n"
	    "+OK\r\n1 5000\r\n2 10\r\n.\r\n"
	    "+OK\r\nS\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 2\r\nQUIT\r\n",
		.ev = "mailbox 2 5010\ntoo_big 1 big 5000\n"
		    "want 2 small 10\nbegin 2 small 10\nend 2 small S\\r\\n\n"
		    "drained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	prm.max_message_size = 1000;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_flow, body_growing_past_the_limit_is_dropped)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 2 20\r\n"
	    "+OK\r\n1 liar\r\n2 ok\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n.\r\n"
	    "+OK\r\n0123456789\r\n0123456789\r\n0123456789\r\n.\r\n"
	    "+OK\r\nfine\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { .delete_on_end = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\nDELE 2\r\n"
		    "QUIT\r\n",
		.ev = "mailbox 2 20\nwant 1 liar 10\nbegin 1 liar 10\n"
		    "failed 1 liar too-big message larger than "
		    "max_message_size\n"
		    "want 2 ok 10\nbegin 2 ok 10\nend 2 ok fine\\r\\n\n"
		    "drained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};
	struct result	 r;

	/* LIST said 10 octets; the body is 36, the limit 20 (M13). */
	prm.max_message_size = 20;
	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_eq(r.dele_ok, 1u << 2, "only the intact message");
	result_free(&r);
}

Test(pop3_flow, abort_stops_fetching_and_quits)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK\r\nPIPELINING\r\n.\r\n"
	    "+OK 3 30\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n"
	    "+OK\r\nB\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { .abort_in_begin = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "CAPA\r\nSTAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nRETR 2\r\nQUIT\r\n",
		.ev = "mailbox 3 30\nwant 1 a 10\nwant 2 b 10\n"
		    "begin 1 a 10\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	prm.window = 2;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_flow, owner_failure_is_err_local)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 1 10\r\n"
	    "+OK\r\n1 a\r\n.\r\n"
	    "+OK\r\n1 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n") };
	struct policy	 pol = { .fail_in_data = 1 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\n",
		.st = PS_ERROR, .err = ERR_LOCAL, .msg = "msg_data",
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* The owner deletes long after msg_end, outside any callback. */
Test(pop3_flow, asynchronous_delete_noop_and_finish)
{
	static const char script[] =
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+OK\r\n+OK\r\n"
	    "+OK 1 10\r\n"
	    "+OK\r\n1 a\r\n.\r\n"
	    "+OK\r\n1 10\r\n.\r\n"
	    "+OK\r\nA\r\n.\r\n";
	struct policy	 pol = { .no_finish = 1 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct buf	 out = BUF_INIT;
	struct pop3	*p;
	size_t		 used;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, script, sizeof(script) - 1, &used),
	    PS_MORE);
	cr_assert_eq(used, sizeof(script) - 1);
	drain(p, &out);
	cr_assert_str_eq(out.data, "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
	    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\n");
	cr_assert_eq(pop3_idle_ok(p), 1, "waiting on the owner only");
	cr_assert_eq(pop3_waiting(p), 0);
	cr_assert_eq(pop3_state(p), POP3_TRANSACTION);

	cr_assert_eq(pop3_noop(p), 0);
	cr_assert_eq(pop3_noop(p), -1, "one NOOP at a time");
	cr_assert_eq(pop3_waiting(p), 1);
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, &used), PS_MORE);

	buf_reset(&out);
	cr_assert_eq(pop3_delete(p, 0), -1);
	cr_assert_eq(pop3_delete(p, 2), -1);
	cr_assert_eq(pop3_delete(p, 1), 0);
	cr_assert_eq(pop3_delete(p, 1), -1, "once per message");
	drain(p, &out);
	cr_assert_str_eq(out.data, "NOOP\r\nDELE 1\r\n");
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, &used), PS_MORE);
	cr_assert_eq(pop3_dele_ok(p, 1), 1);

	buf_reset(&out);
	pop3_finish(p);
	drain(p, &out);
	cr_assert_str_eq(out.data, "QUIT\r\n");
	cr_assert_eq(pop3_delete(p, 1), -1, "no DELE after QUIT");
	cr_assert_eq(pop3_input(p, "+OK bye\r\n", 9, &used), PS_DONE);
	cr_assert_eq(pop3_quit_ok(p), 1);
	cr_assert_eq(pop3_state(p), POP3_DONE);
	pop3_free(&p);
	buf_free(&out);
	buf_free(&o.ev);
	buf_free(&o.body);
}

Test(pop3_flow, unsolicited_data_is_an_error)
{
	static const char script[] =
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n"
	    "+OK 0 0\r\n+OK\r\n.\r\n+OK\r\n.\r\n";
	struct policy	 pol = { .no_finish = 1 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct pop3	*p;
	const char	*msg;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, script, sizeof(script) - 1, NULL), PS_MORE);
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, NULL), PS_ERROR);
	cr_assert_eq(pop3_error(p, &msg), ERR_PROTOCOL);
	cr_assert_not_null(strstr(msg, "unexpected"));
	cr_assert_eq(pop3_input(p, "x", 1, NULL), PS_ERROR, "stays failed");
	pop3_free(&p);
	buf_free(&o.ev);
}

Test(pop3_flow, state_names)
{
	cr_assert_str_eq(pop3_state_name(POP3_GREETING), "greeting");
	cr_assert_str_eq(pop3_state_name(POP3_TRANSACTION), "transaction");
	cr_assert_str_eq(pop3_state_name(POP3_FAILED), "failed");
	cr_assert_str_eq(pop3_state_name((enum pop3_state)99), "?");
}

/* ---- authentication ---- */

Test(pop3_auth, sasl_plain_initial_response)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL LOGIN PLAIN\r\nUSER\r\n.\r\n"
	    "+OK welcome\r\n"
	    EMPTY_TAIL) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n" EMPTY_OUT,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, sasl_plain_too_long_waits_for_continuation)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL PLAIN\r\n.\r\n"
	    "+ \r\n"
	    "+OK welcome\r\n"
	    EMPTY_TAIL) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .ev = EMPTY_EV, .st = PS_DONE };
	struct buf	 want = BUF_INIT;
	char		 secret[250];

	memset(secret, 'x', sizeof(secret));
	prm.secret = secret;
	prm.secret_len = sizeof(secret);
	prm.auth = AUTH_PLAIN;
	buf_add_str(&want, "CAPA\r\nAUTH PLAIN\r\n");
	cr_assert_eq(sasl_plain(&want, NULL, "alice", secret, sizeof(secret)),
	    0);
	buf_add_str(&want, "\r\n" EMPTY_OUT);
	ex.out = want.data;
	CHECK(&prm, &pol, segs, &ex, NULL);
	buf_free(&want);
}

Test(pop3_auth, sasl_login_two_prompts)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL LOGIN\r\n.\r\n"
	    "+ VXNlcm5hbWU6\r\n"
	    "+ UGFzc3dvcmQ6\r\n"
	    "+OK\r\n"
	    EMPTY_TAIL) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH LOGIN\r\nYWxpY2U=\r\nczNjcmV0\r\n"
		    EMPTY_OUT,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	/* AUTO: no PLAIN, no USER capability, so LOGIN. */
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, sasl_login_invalid_challenge)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL LOGIN\r\n.\r\n"
	    "+ VXNlcm5hbWU6!\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH LOGIN\r\n",
		.st = PS_ERROR, .err = ERR_PROTOCOL, .msg = "challenge",
	};

	prm.auth = AUTH_LOGIN;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, sasl_challenge_in_the_wrong_state)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL PLAIN\r\n.\r\n"
	    "+ \r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n",
		.st = PS_ERROR, .err = ERR_PROTOCOL, .msg = "unexpected",
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, continuation_outside_auth_is_malformed)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+ \r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\n",
		.st = PS_ERROR, .err = ERR_PROTOCOL, .msg = "USER",
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, xoauth2_success)
{
	static const struct seg segs[] = { SEG(
	    "+OK Gpop ready\r\n"
	    "+OK\r\nSASL PLAIN XOAUTH2\r\n.\r\n"
	    "+OK Welcome.\r\n"
	    EMPTY_TAIL) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH XOAUTH2 "
		    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n"
		    EMPTY_OUT,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	prm.auth = AUTH_XOAUTH2;
	prm.secret = "ya29.tok";
	prm.secret_len = 8;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, xoauth2_error_challenge)
{
	static const struct seg segs[] = { SEG(
	    "+OK Gpop ready\r\n"
	    "+OK\r\nSASL XOAUTH2\r\n.\r\n"
	    "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJo"
	    "dHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n"
	    "-ERR [AUTH] Invalid credentials.\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH XOAUTH2 "
		    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB5YTI5LnRvawEB\r\n\r\n",
		.st = PS_ERROR, .err = ERR_AUTH, .msg = "(401)",
	};

	prm.auth = AUTH_XOAUTH2;
	prm.secret = "ya29.tok";
	prm.secret_len = 8;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, oauthbearer_error_challenge_answered_with_x01)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "+OK\r\nSASL OAUTHBEARER\r\n.\r\n"
	    "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJ4In0=\r\n"
	    "-ERR [AUTH] denied\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH OAUTHBEARER "
		    "bixhPWFsaWNlLAFob3N0PXBvcC5leGFtcGxlLmNvbQFwb3J0PTk5NQFh"
		    "dXRoPUJlYXJlciB5YTI5LnRvawEB\r\nAQ==\r\n",
		.st = PS_ERROR, .err = ERR_AUTH, .msg = "invalid_token",
	};

	prm.auth = AUTH_OAUTHBEARER;
	prm.host = "pop.example.com";
	prm.port = 995;
	prm.secret = "ya29.tok";
	prm.secret_len = 8;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, oauthbearer_ok_after_error_challenge_is_refused)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n"
	    "-ERR\r\n"
	    "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJ4In0=\r\n"
	    "+OK what\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAUTH OAUTHBEARER biwsAWF1dGg9QmVhcmVyIHQBAQ=="
		    "\r\nAQ==\r\n",
		.st = PS_ERROR, .err = ERR_PROTOCOL,
	};

	/* No user, host or port: the minimal GS2 header "n,,". */
	prm.auth = AUTH_OAUTHBEARER;
	prm.user = NULL;
	prm.secret = "t";
	prm.secret_len = 1;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, apop_rfc1939_example)
{
	static const struct seg segs[] = { SEG(
	    "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"
	    "-ERR\r\n"
	    "+OK maildrop has 0 messages\r\n"
	    EMPTY_TAIL_NOCAPA) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
		    EMPTY_OUT_NOCAPA,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	prm.auth = AUTH_APOP;
	prm.user = "mrose";
	prm.secret = "tanstaaf";
	prm.secret_len = 8;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, apop_malformed_timestamps_refused)
{
	static const char *greetings[] = {
		"+OK <1896.697170952dbc.mtview.ca.us>\r\n",	/* no @ */
		"+OK <a@b@c>\r\n",				/* two @ */
		"+OK <@b>\r\n",
		"+OK <a@>\r\n",
		"+OK <a\xff@b>\r\n",				/* 8-bit */
		"+OK <a b@c>\r\n",				/* space */
		"+OK <a@b\r\n",					/* no > */
		"+OK <>\r\n",
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	size_t		 i;

	prm.auth = AUTH_APOP;
	for (i = 0; i < sizeof(greetings) / sizeof(greetings[0]); i++) {
		struct seg	 segs[1];
		char		 buf[256];
		struct expect	 ex = {
			.out = "CAPA\r\n", .st = PS_ERROR,
			.err = ERR_PROTOCOL, .msg = "APOP",
		};

		snprintf(buf, sizeof(buf), "%s-ERR\r\n", greetings[i]);
		segs[0].data = buf;
		segs[0].len = strlen(buf);
		check_all(&prm, &pol, segs, 1, &ex, NULL);
	}
}

Test(pop3_auth, apop_without_timestamp_or_after_stls)
{
	static const struct seg plain[] = { SEG("+OK ready\r\n-ERR\r\n") };
	static const struct seg tls[] = {
		SEG("+OK <1@x>\r\n+OK\r\nSTLS\r\n.\r\n+OK go\r\n"),
		SEG("-ERR\r\n"),
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex1 = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "no APOP timestamp" };
	struct expect	 ex2 = { .out = "CAPA\r\nSTLS\r\n<TLS>\r\nCAPA\r\n",
	    .st = PS_ERROR, .err = ERR_CONFIG, .msg = "before TLS" };

	prm.auth = AUTH_APOP;
	CHECK(&prm, &pol, plain, &ex1, NULL);
	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, tls, &ex2, NULL);
}

Test(pop3_auth, auto_without_capa_uses_user_pass)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n-ERR unknown command\r\n+OK\r\n+OK\r\n"
	    EMPTY_TAIL_NOCAPA) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n" EMPTY_OUT_NOCAPA,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_auth, configured_mechanism_not_offered)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n+OK\r\nSASL PLAIN\r\nUSER\r\n.\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "XOAUTH2" };
	struct expect	 ex2 = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "no usable" };
	static const struct seg none[] = { SEG(
	    "+OK ready\r\n+OK\r\nSASL CRAM-MD5\r\n.\r\n") };

	prm.auth = AUTH_XOAUTH2;
	CHECK(&prm, &pol, segs, &ex, NULL);
	prm.auth = AUTH_AUTO;
	CHECK(&prm, &pol, none, &ex2, NULL);
}

Test(pop3_auth, no_credentials_in_clear)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n") };
	static const struct seg ok[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n" EMPTY_TAIL_NOCAPA) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "without TLS" };
	struct expect	 ex2 = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n" EMPTY_OUT_NOCAPA,
		.st = PS_DONE, .err = ERR_NONE,
	};

	/* M42: only PLAIN/LOGIN on a cleartext connection. */
	prm.tls = TLS_NONE;
	CHECK(&prm, &pol, segs, &ex, NULL);
	prm.allow_plaintext = 1;
	CHECK(&prm, &pol, ok, &ex2, NULL);
}

Test(pop3_auth, bad_password_characters_refused_before_sending)
{
	static const struct seg segs[] = { SEG("+OK ready\r\n-ERR\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "PASS" };

	prm.secret = "a\r\nDELE 1";
	prm.secret_len = 9;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* Which -ERR counts as bad credentials (M34). */
Test(pop3_auth, error_classification)
{
	static const struct {
		const char	*reply;
		enum err_class	 err;
	} cases[] = {
		{ "-ERR [AUTH] invalid password\r\n", ERR_AUTH },
		{ "-ERR invalid password\r\n", ERR_AUTH },
		{ "-ERR [auth] lower case\r\n", ERR_AUTH },
		{ "-ERR [IN-USE] mailbox locked\r\n", ERR_TEMP },
		{ "-ERR [SYS/TEMP] try later\r\n", ERR_TEMP },
		{ "-ERR [LOGIN-DELAY] too soon\r\n", ERR_TEMP },
		{ "-ERR [SYS/PERM] mailbox corrupt\r\n", ERR_PROTOCOL },
		{ "-ERR [SOMETHING-NEW] eh\r\n", ERR_TEMP },
		{ "-ERR\r\n", ERR_AUTH },
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char		 buf[256];
		struct seg	 segs[1];
		struct expect	 ex = {
			.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n",
			.st = PS_ERROR, .err = cases[i].err,
			.msg = "authentication failed",
		};

		snprintf(buf, sizeof(buf), "+OK ready\r\n-ERR\r\n+OK\r\n%s",
		    cases[i].reply);
		segs[0].data = buf;
		segs[0].len = strlen(buf);
		check_all(&prm, &pol, segs, 1, &ex, NULL);
	}
}

Test(pop3_auth, greeting_err_is_temporary)
{
	static const struct seg segs[] = { SEG(
	    "-ERR too many connections\r\n") };
	static const struct seg coded[] = { SEG(
	    "-ERR [SYS/PERM] go away\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "", .st = PS_ERROR, .err = ERR_TEMP,
	    .msg = "too many connections" };
	struct expect	 ex2 = { .out = "", .st = PS_ERROR,
	    .err = ERR_PROTOCOL };

	CHECK(&prm, &pol, segs, &ex, NULL);
	CHECK(&prm, &pol, coded, &ex2, NULL);
}

Test(pop3_auth, secrets_never_logged)
{
	static const struct seg plain[] = { SEG(
	    "+OK ready\r\n+OK\r\nSASL PLAIN\r\n.\r\n+OK\r\n" EMPTY_TAIL) };
	static const struct seg user[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n" EMPTY_TAIL_NOCAPA) };
	static const struct seg login[] = { SEG(
	    "+OK ready\r\n+OK\r\nSASL LOGIN\r\n.\r\n"
	    "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK\r\n" EMPTY_TAIL) };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct result	 r;

	log_set_level(LOG_LVL_DEBUG);
	run(&prm, &pol, plain, 1, 0, 0, &r);
	cr_assert_eq(r.st, PS_DONE);
	result_free(&r);
	run(&prm, &pol, user, 1, 0, 0, &r);
	cr_assert_eq(r.st, PS_DONE);
	result_free(&r);
	run(&prm, &pol, login, 1, 0, 0, &r);
	cr_assert_eq(r.st, PS_DONE);
	result_free(&r);
	cr_assert_not_null(logbuf.data);
	cr_assert_not_null(strstr(logbuf.data, "PASS <redacted>"),
	    "the wire trace ran");
	cr_assert_not_null(strstr(logbuf.data, "AUTH PLAIN <redacted>"));
	cr_assert_not_null(strstr(logbuf.data, "capa -> "),
	    "state transitions are traced");
	cr_assert_null(strstr(logbuf.data, "s3cret"));
	cr_assert_null(strstr(logbuf.data, "AGFsaWNlAHMzY3JldA"));
	cr_assert_null(strstr(logbuf.data, "czNjcmV0"));
}

/* ---- STLS ---- */

Test(pop3_tls, stls_then_capabilities_requeried)
{
	static const struct seg segs[] = {
		SEG("+OK ready <1@x>\r\n"
		    "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\nPIPELINING\r\n.\r\n"
		    "+OK Begin TLS negotiation\r\n"),
		SEG("+OK\r\nSASL LOGIN\r\nUIDL\r\n.\r\n"
		    "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK\r\n"
		    EMPTY_TAIL),
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		/* Pre-TLS PLAIN, USER and PIPELINING are all forgotten. */
		.out = "CAPA\r\nSTLS\r\n<TLS>\r\nCAPA\r\nAUTH LOGIN\r\n"
		    "YWxpY2U=\r\nczNjcmV0\r\n" EMPTY_OUT,
		.ev = EMPTY_EV, .st = PS_DONE, .err = ERR_NONE,
	};

	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_tls, stls_missing_aborts_before_credentials)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n+OK\r\n") };
	static const struct seg refused[] = { SEG(
	    "+OK ready\r\n-ERR what\r\n+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "CAPA\r\n", .st = PS_ERROR,
	    .err = ERR_TLS, .msg = "STLS" };
	struct result	 r;

	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_null(strstr(r.out, "USER"));
	cr_assert_null(strstr(r.out, "PASS"));
	cr_assert_null(strstr(r.out, "AUTH"));
	result_free(&r);
	/* CAPA refused: STLS cannot be confirmed either. */
	CHECK(&prm, &pol, refused, &ex, NULL);
}

Test(pop3_tls, stls_refused)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n+OK\r\nSTLS\r\n.\r\n-ERR not now\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "CAPA\r\nSTLS\r\n", .st = PS_ERROR,
	    .err = ERR_TLS, .msg = "not now" };

	prm.tls = TLS_STARTTLS;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* M4: a reply injected behind the STLS +OK, in the same input. */
Test(pop3_tls, bytes_after_stls_ok_are_an_injection)
{
	static const char pre[] = "+OK ready\r\n+OK\r\nSTLS\r\n.\r\n";
	static const char ok[] = "+OK begin\r\n";
	static const char inj[] = "+OK\r\n";
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	char		 all[128];
	size_t		 n, k, cut = sizeof(pre) - 1 + sizeof(ok) - 1;

	prm.tls = TLS_STARTTLS;
	n = (size_t)snprintf(all, sizeof(all), "%s%s%s", pre, ok, inj);
	/* Every split that leaves the injected byte(s) with the +OK. */
	for (k = 0; k < cut; k++) {
		struct owner	 o;
		struct pop3	*p;
		struct buf	 out = BUF_INIT;
		enum proto_status st;
		const char	*msg;

		memset(&o, 0, sizeof(o));
		o.pol = &pol;
		p = o.p = pop3_new(&prm, &owner_cb, &o);
		st = k == 0 ? PS_MORE : pop3_input(p, all, k, NULL);
		cr_assert_eq(st, PS_MORE);
		st = pop3_input(p, all + k, n - k, NULL);
		drain(p, &out);
		cr_assert_eq(st, PS_ERROR, "split %zu", k);
		cr_assert_eq(pop3_error(p, &msg), ERR_TLS);
		cr_assert_not_null(strstr(msg, "injection"));
		cr_assert_str_eq(out.data, "CAPA\r\nSTLS\r\n");
		cr_assert_eq(pop3_tls_started(p), PS_ERROR);
		pop3_free(&p);
		buf_free(&out);
		buf_free(&o.ev);
	}
}

Test(pop3_tls, tls_started_when_not_expected)
{
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct pop3	*p;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_tls_started(p), PS_ERROR);
	cr_assert_eq(pop3_error(p, NULL), ERR_TLS);
	pop3_free(&p);
}

/* ---- listings ---- */

/* The login and STAT of a two-message mailbox, no pipelining. */
#define LOGIN2	"+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 2 20\r\n"
#define OUT2	"CAPA\r\nUSER alice\r\nPASS s3cret\r\nSTAT\r\nUIDL\r\n"

Test(pop3_listing, uidl_missing_refuses_the_account)
{
	static const struct seg segs[] = { SEG(
	    LOGIN2 "-ERR command not supported\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = OUT2, .st = PS_ERROR,
	    .err = ERR_CONFIG, .msg = "no UIDL" };
	struct result	 r;

	CHECK(&prm, &pol, segs, &ex, &r);
	cr_assert_null(strstr(r.out, "RETR"));
	result_free(&r);
}

Test(pop3_listing, malformed_uidl_lines)
{
	static const char *bad[] = {
		"1 uid a\r\n",					/* space */
		("1 0123456789012345678901234567890123456789"
		    "0123456789012345678901234567890\r\n"),	/* 71 */
		"1 ab\001c\r\n",				/* ctl */
		"1 a\177\r\n",					/* DEL */
		"1 \xc3\xa9\r\n",				/* 8-bit */
		"0 a\r\n",					/* msgno 0 */
		"3 a\r\n",					/* > count */
		"x a\r\n",					/* number */
		"-1 a\r\n",
		"01 a\r\n",					/* leading 0 */
		"2 b\r\n1 a\r\n",				/* order */
		"1 a\r\n1 b\r\n",				/* repeat */
		"1 \r\n",					/* empty */
		"1\r\n",
		"1 a\r\n.\r\n",					/* < STAT */
		"1 a\r\n2 b\r\n3 c\r\n",			/* > STAT */
		"1 a\0b\r\n",					/* NUL */
		"1 a\n",					/* bare LF */
		"99999999999 a\r\n",				/* overflow */
	};
	static const size_t badlen[] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0,
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char		 buf[512];
		size_t		 n, l = badlen[i] ? badlen[i] : strlen(bad[i]);
		struct seg	 segs[1];
		struct expect	 ex = { .out = OUT2, .st = PS_ERROR,
		    .err = ERR_PROTOCOL };

		n = (size_t)snprintf(buf, sizeof(buf), "%s+OK\r\n", LOGIN2);
		memcpy(buf + n, bad[i], l);
		n += l;
		memcpy(buf + n, ".\r\n+OK\r\n", 8);
		n += 8;
		segs[0].data = buf;
		segs[0].len = n;
		check_all(&prm, &pol, segs, 1, &ex, NULL);
	}
}

Test(pop3_listing, uid_of_70_printable_octets_is_fine)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 1 5\r\n"
	    "+OK\r\n1 !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUV"
	    "WXYZ[\\]^_`abcdef\r\n.\r\n"
	    "+OK\r\n1 5\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nQUIT\r\n",
		.ev = "mailbox 1 5\n"
		    "want 1 !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZ[\\]^_`abcdef 5\ndrained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	pol.want[1] = POP3_WANT_SKIP;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_listing, malformed_list_lines)
{
	static const char *bad[] = {
		"1 10\r\n3 10\r\n",		/* gap */
		"1 10\r\n.\r\n",		/* fewer than UIDL */
		"1 -5\r\n",
		"1 10x\r\n",
		"1\r\n",
		"0 10\r\n",
		"2 10\r\n1 10\r\n",
		"1 10\r\n2 10\r\n3 10\r\n",	/* more than UIDL */
	};
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char		 buf[512];
		struct seg	 segs[1];
		struct expect	 ex = { .out = OUT2 "LIST\r\n",
		    .st = PS_ERROR, .err = ERR_PROTOCOL, .ev = "" };

		snprintf(buf, sizeof(buf), "%s+OK\r\n1 a\r\n2 b\r\n.\r\n"
		    "+OK\r\n%s.\r\n+OK\r\n", LOGIN2, bad[i]);
		segs[0].data = buf;
		segs[0].len = strlen(buf);
		check_all(&prm, &pol, segs, 1, &ex, NULL);
	}
}

Test(pop3_listing, list_may_carry_extra_information)
{
	static const struct seg segs[] = { SEG(
	    LOGIN2 "+OK\r\n1 a\r\n2 b\r\n.\r\n"
	    "+OK\r\n1 10 extra\r\n2 20 more stuff\r\n.\r\n+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = OUT2 "LIST\r\nQUIT\r\n",
	    .ev = "mailbox 2 20\nwant 1 a 10\nwant 2 b 20\ndrained\n",
	    .st = PS_DONE, .err = ERR_NONE };

	pol.want[1] = pol.want[2] = POP3_WANT_SKIP;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

Test(pop3_listing, duplicate_uids_are_ambiguous)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 3 30\r\n"
	    "+OK\r\n1 same\r\n2 other\r\n3 same\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n3 10\r\n.\r\n"
	    "+OK\r\nB\r\n.\r\n"
	    "+OK\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { .delete_on_end = 1, .try_delete = 3 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\nRETR 2\r\nDELE 2\r\nQUIT\r\n",
		.ev = "mailbox 3 30\nambiguous 1 same\nwant 2 other 10\n"
		    "begin 2 other 10\nend 2 other B\\r\\n\nambiguous 3 same\n"
		    "drained\ndelete 3 refused\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
	cr_assert_not_null(strstr(logbuf.data, "share their UID"));
}

Test(pop3_listing, message_cap)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 3 30\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nSTAT\r\n",
		.st = PS_ERROR, .err = ERR_CONFIG, .msg = "limit of 2",
	};

	prm.max_messages = 2;
	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* M17: a listing that never ends is cut at the STAT count. */
Test(pop3_listing, endless_listing_is_bounded)
{
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct pop3	*p;
	char		 line[32];
	unsigned	 i;
	enum proto_status st = PS_MORE;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, LOGIN2 "+OK\r\n", sizeof(LOGIN2) + 4,
	    NULL), PS_MORE);
	for (i = 1; i <= 100000 && st == PS_MORE; i++) {
		int n = snprintf(line, sizeof(line), "%u u%u\r\n", i, i);

		st = pop3_input(p, line, (size_t)n, NULL);
	}
	cr_assert_eq(st, PS_ERROR);
	cr_assert_eq(i, 4, "stopped at the first line past STAT's count");
	cr_assert_eq(pop3_error(p, NULL), ERR_PROTOCOL);
	pop3_free(&p);
	buf_free(&o.ev);
}

/* M16: 512 octets with CRLF are fine, 513 are not, 1 MiB never buffered. */
Test(pop3_listing, status_line_length_limit)
{
	char		 g[600];
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct seg	 segs[1];
	static const char tail[] = "\r\n-ERR\r\n+OK\r\n-ERR [AUTH] no\r\n";
	struct expect	 ok = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n",
		.st = PS_ERROR, .err = ERR_AUTH,
	};
	struct expect	 bad = { .out = "", .st = PS_ERROR,
	    .err = ERR_PROTOCOL, .msg = "longer than 512" };

	memset(g, 'x', sizeof(g));
	memcpy(g, "+OK ", 4);
	memcpy(g + 510, tail, sizeof(tail) - 1);
	segs[0].data = g;
	segs[0].len = 510 + sizeof(tail) - 1;
	check_all(&prm, &pol, segs, 1, &ok, NULL);

	memset(g, 'x', sizeof(g));
	memcpy(g, "+OK ", 4);
	memcpy(g + 511, "\r\n-ERR\r\n", 9);
	segs[0].len = 511 + 8;
	check_all(&prm, &pol, segs, 1, &bad, NULL);
}

Test(pop3_listing, megabyte_status_line)
{
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct pop3	*p;
	size_t		 n = 1024 * 1024, used;
	char		*big = malloc(n);

	cr_assert_not_null(big);
	memset(big, 'A', n);
	memcpy(big, "+OK ", 4);
	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, big, n, &used), PS_ERROR);
	cr_assert_leq(used, POP3_LINE_MAX, "gave up after %zu octets", used);
	cr_assert_eq(pop3_error(p, NULL), ERR_PROTOCOL);
	pop3_free(&p);
	free(big);
}

Test(pop3_listing, bare_lf_and_nul_in_status_lines)
{
	static const struct seg lf[] = { SEG("+OK ready\n") };
	static const struct seg nul[] = { SEG("+OK re\0ady\r\n") };
	static const struct seg okay[] = { SEG("+OKAY\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = { .out = "", .st = PS_ERROR,
	    .err = ERR_PROTOCOL };

	CHECK(&prm, &pol, lf, &ex, NULL);
	CHECK(&prm, &pol, nul, &ex, NULL);
	CHECK(&prm, &pol, okay, &ex, NULL);
}

/* ---- message bodies ---- */

Test(pop3_body, unstuffing_bare_lf_and_nul)
{
	static const struct seg segs[] = { SEG(
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 4 40\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n3 c\r\n4 d\r\n.\r\n"
	    "+OK\r\n1 10\r\n2 10\r\n3 10\r\n4 0\r\n.\r\n"
	    /* stuffed dots, a dot line of two, ".\r" then more */
	    "+OK\r\n..\r\n...x\r\n.y\r\n.\rz\r\nend.\r\n.\r\n"
	    /* bare LF lines, passed as they are: a dot after a bare LF
	     * is content (only CRLF frames lines), even ".CRLF" */
	    "+OK\r\nbare\nlf\n..dot\n.\r\nstill\r\n.\r\n"
	    /* NUL and 8-bit bytes pass through */
	    "+OK\r\na\0b\xff\r\n.\r\n"
	    /* an empty message */
	    "+OK\r\n.\r\n"
	    "+OK\r\n") };
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct expect	 ex = {
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "STAT\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nQUIT\r\n",
		.ev = "mailbox 4 40\n"
		    "want 1 a 10\nbegin 1 a 10\n"
		    "end 1 a .\\r\\n..x\\r\\ny\\r\\n\\rz\\r\\nend.\\r\\n\n"
		    "want 2 b 10\nbegin 2 b 10\n"
		    "end 2 b bare\\nlf\\n..dot\\n.\\r\\nstill\\r\\n\n"
		    "want 3 c 10\nbegin 3 c 10\n"
		    "end 3 c a\\x00b\\xff\\r\\n\n"
		    "want 4 d 0\nbegin 4 d 0\nend 4 d \n"
		    "drained\n",
		.st = PS_DONE, .err = ERR_NONE,
	};

	CHECK(&prm, &pol, segs, &ex, NULL);
}

/* A 1 MiB line without LF streams through; nothing waits for the LF. */
Test(pop3_body, long_line_is_streamed)
{
	static const char head[] =
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 1 10\r\n"
	    "+OK\r\n1 a\r\n.\r\n+OK\r\n1 10\r\n.\r\n+OK\r\n";
	struct policy	 pol = { .no_finish = 1 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct pop3	*p;
	char		 chunk[4096];
	size_t		 i, total = 1024 * 1024;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, head, sizeof(head) - 1, NULL), PS_MORE);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < total; i += sizeof(chunk))
		cr_assert_eq(pop3_input(p, chunk, sizeof(chunk), NULL),
		    PS_MORE);
	cr_assert_eq(o.body.len, total, "all of it reached the owner");
	cr_assert_geq(o.data_calls, total / sizeof(chunk));
	cr_assert_eq(pop3_input(p, "\r\n.\r\n", 5, NULL), PS_MORE);
	cr_assert_eq(o.body.len, total + 2);
	cr_assert_not_null(strstr(o.ev.data, "end 1 a"));
	pop3_free(&p);
	buf_free(&o.ev);
	buf_free(&o.body);
}

/* ---- the pure parsers ---- */

Test(pop3_parse, status_lines)
{
	struct pop3_status st;

	cr_assert_eq(pop3_parse_status("+OK", 3, 0, &st), 0);
	cr_assert_eq(st.kind, POP3_OK);
	cr_assert_eq(st.textlen, 0);
	cr_assert_eq(pop3_parse_status("-ERR [SYS/TEMP] busy", 20, 0, &st), 0);
	cr_assert_eq(st.kind, POP3_ERR);
	cr_assert_str_eq(st.code, "SYS/TEMP");
	cr_assert_eq(st.textlen, 15);
	cr_assert_eq(pop3_parse_status("-ERR [in-use/x] a", 17, 0, &st), 0);
	cr_assert_str_eq(st.code, "IN-USE/X");
	cr_assert_eq(pop3_parse_status("-ERR [AUTH busy", 15, 0, &st), 0);
	cr_assert_str_eq(st.code, "", "unterminated code is text");
	cr_assert_eq(pop3_parse_status("-ERR [A//B] x", 13, 0, &st), 0);
	cr_assert_str_eq(st.code, "", "empty level");
	cr_assert_eq(pop3_parse_status("+ abc=", 6, 1, &st), 0);
	cr_assert_eq(st.kind, POP3_CONT);
	cr_assert_eq(pop3_parse_status("+", 1, 1, &st), 0);
	cr_assert_eq(pop3_parse_status("+ abc", 5, 0, &st), -1);
	cr_assert_eq(pop3_parse_status("+ok", 3, 0, &st), -1);
	cr_assert_eq(pop3_parse_status("+OKAY", 5, 0, &st), -1);
	cr_assert_eq(pop3_parse_status("-ERROR", 6, 0, &st), -1);
	cr_assert_eq(pop3_parse_status("", 0, 1, &st), -1);
}

Test(pop3_parse, classification)
{
	cr_assert_eq(pop3_classify("AUTH", 1), ERR_AUTH);
	cr_assert_eq(pop3_classify("AUTH", 0), ERR_AUTH);
	cr_assert_eq(pop3_classify("", 1), ERR_AUTH);
	cr_assert_eq(pop3_classify("", 0), ERR_PROTOCOL);
	cr_assert_eq(pop3_classify("IN-USE", 1), ERR_TEMP);
	cr_assert_eq(pop3_classify("LOGIN-DELAY", 1), ERR_TEMP);
	cr_assert_eq(pop3_classify("SYS/TEMP", 0), ERR_TEMP);
	cr_assert_eq(pop3_classify("SYS/TEMP/DISK", 1), ERR_TEMP);
	cr_assert_eq(pop3_classify("SYS/PERM", 1), ERR_PROTOCOL);
	cr_assert_eq(pop3_classify("AUTHX", 1), ERR_TEMP, "not AUTH");
	cr_assert_eq(pop3_classify("SYS", 1), ERR_TEMP);
}

Test(pop3_parse, capabilities)
{
	struct pop3_caps c;

	pop3_caps_init(&c);
	pop3_parse_capa(&c, "STLS", 4);
	pop3_parse_capa(&c, "sasl  plain\tXOAUTH2 CRAM-MD5", 28);
	pop3_parse_capa(&c, "LOGIN-DELAY 900 USER", 20);
	pop3_parse_capa(&c, "EXPIRE NEVER", 12);
	pop3_parse_capa(&c, "PIPELINING", 10);
	pop3_parse_capa(&c, "IMPLEMENTATION \001weird", 21);
	cr_assert_eq(c.flags, POP3_CAP_STLS | POP3_CAP_SASL |
	    POP3_CAP_PIPELINING);
	cr_assert_eq(c.sasl, POP3_SASL_PLAIN | POP3_SASL_XOAUTH2);
	cr_assert_eq(c.login_delay, 900);
	cr_assert_eq(c.expire, POP3_EXPIRE_NEVER);
	pop3_parse_capa(&c, "EXPIRE 31", 9);
	cr_assert_eq(c.expire, 31);
	pop3_parse_capa(&c, "LOGIN-DELAY -1", 14);
	pop3_parse_capa(&c, "EXPIRE 99999999999", 18);
	cr_assert_eq(c.login_delay, 900, "a bad value changes nothing");
	cr_assert_eq(c.expire, 31);
	pop3_parse_capa(&c, "", 0);
	pop3_parse_capa(&c, "   ", 3);
}

Test(pop3_parse, uidl_list_stat)
{
	unsigned	 n;
	uint64_t	 sz, oct;
	const char	*uid;
	size_t		 ul;

	cr_assert_eq(pop3_parse_uidl("12 QhdPYR:00WBw1Ph7x7", 21, &n, &uid,
	    &ul), 0);
	cr_assert_eq(n, 12);
	cr_assert_eq(ul, 18);
	cr_assert_eq(pop3_parse_uidl("4294967296 a", 12, &n, &uid, &ul), -1);
	cr_assert_eq(pop3_parse_uidl("1  a", 4, &n, &uid, &ul), -1);
	cr_assert_eq(pop3_parse_list("7 1234", 6, &n, &sz), 0);
	cr_assert_eq(sz, 1234);
	cr_assert_eq(pop3_parse_list("7 99999999999999999999", 22, &n, &sz),
	    -1);
	cr_assert_eq(pop3_parse_list("7 0", 3, &n, &sz), 0);
	cr_assert_eq(pop3_parse_stat("0 0", 3, &n, &oct), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(pop3_parse_stat("2 320 extra", 11, &n, &oct), 0);
	cr_assert_eq(oct, 320);
	cr_assert_eq(pop3_parse_stat("", 0, &n, &oct), -1);
	cr_assert_eq(pop3_parse_stat("2", 1, &n, &oct), -1);
}

Test(pop3_parse, apop_timestamp)
{
	static const char g[] =
	    "POP3 ready <1896.697170952@dbc.mtview.ca.us> hi";
	const char	*ts;
	size_t		 n;
	char		 longts[200];

	cr_assert_eq(pop3_apop_timestamp(g, sizeof(g) - 1, &ts, &n), 1);
	cr_assert_eq(n, 33);
	cr_assert_eq(memcmp(ts, "<1896.697170952@dbc.mtview.ca.us>", n), 0);
	cr_assert_eq(pop3_apop_timestamp("ready", 5, &ts, &n), 0);
	memset(longts, 'a', sizeof(longts));
	longts[0] = '<';
	longts[100] = '@';
	longts[sizeof(longts) - 1] = '>';
	cr_assert_eq(pop3_apop_timestamp(longts, sizeof(longts), &ts, &n), -1,
	    "bounded length");
}

/* Collect emitted bytes for the unstuffer tests. */
static int
collect(void *arg, const void *data, size_t len)
{
	return buf_add(arg, data, len);
}

Test(pop3_parse, body_unstuffer_every_split)
{
	static const char in[] =
	    "a\r\n..b\r\n.\rc\r\n\r\n.\nx\r\n.\r\nTAIL";
	static const char want[] = "a\r\n.b\r\n\rc\r\n\r\n\nx\r\n";
	size_t		 n = sizeof(in) - 1, k, used;
	int		 end;

	for (k = 0; k <= n; k++) {
		struct pop3_body b;
		struct buf	 out = BUF_INIT;

		buf_add_str(&out, "");
		pop3_body_init(&b);
		used = pop3_body_feed(&b, in, k, collect, &out, &end);
		cr_assert_eq(used, k < n - 4 ? k : n - 4);
		if (end == 0) {
			used += pop3_body_feed(&b, in + k, n - k, collect,
			    &out, &end);
		}
		cr_assert_eq(end, 1, "split %zu", k);
		cr_assert_eq(used, n - 4, "TAIL is left over (split %zu)", k);
		cr_assert_eq(out.len, sizeof(want) - 1, "split %zu", k);
		cr_assert_eq(memcmp(out.data, want, out.len), 0, "split %zu",
		    k);
		buf_free(&out);
	}
}

/*
 * A message may not end, or lose a dot, after a bare LF: "\n.\r\n" inside
 * a body once let a hostile message end early and smuggle a forged
 * "+OK" reply that shifted every later message to the wrong UID.
 */
Test(pop3_parse, bare_lf_never_frames_a_line)
{
	static const char in[] =
	    "first\n.\r\n+OK 60 octets\r\nSubject: FORGED\r\n\r\n"
	    "x\n..y\r\nrest\r\n.\r\nNEXT";
	static const char want[] =
	    "first\n.\r\n+OK 60 octets\r\nSubject: FORGED\r\n\r\n"
	    "x\n..y\r\nrest\r\n";
	size_t		 n = sizeof(in) - 1, k, used;
	int		 end;

	for (k = 0; k <= n; k++) {
		struct pop3_body b;
		struct buf	 out = BUF_INIT;

		buf_add_str(&out, "");
		pop3_body_init(&b);
		used = pop3_body_feed(&b, in, k, collect, &out, &end);
		if (end == 0)
			used += pop3_body_feed(&b, in + k, n - k, collect,
			    &out, &end);
		cr_assert_eq(end, 1, "split %zu", k);
		cr_assert_eq(used, n - 4, "split %zu", k);
		cr_assert_eq(out.len, sizeof(want) - 1, "split %zu", k);
		cr_assert_eq(memcmp(out.data, want, out.len), 0, "split %zu",
		    k);
		buf_free(&out);
	}
}

Test(pop3_parse, mechanism_choice)
{
	struct pop3_caps c;

	pop3_caps_init(&c);
	cr_assert_eq(pop3_choose_auth(AUTH_AUTO, &c, 0), AUTH_USER,
	    "no CAPA: USER/PASS");
	cr_assert_eq(pop3_choose_auth(AUTH_AUTO, &c, 1), -1);
	cr_assert_eq(pop3_choose_auth(AUTH_PLAIN, &c, 0), AUTH_PLAIN,
	    "no CAPA: try what was configured");
	cr_assert_eq(pop3_choose_auth(AUTH_PLAIN, &c, 1), -1);
	c.sasl = POP3_SASL_LOGIN;
	cr_assert_eq(pop3_choose_auth(AUTH_AUTO, &c, 1), AUTH_LOGIN);
	c.flags = POP3_CAP_USER;
	cr_assert_eq(pop3_choose_auth(AUTH_AUTO, &c, 1), AUTH_USER);
	c.sasl |= POP3_SASL_PLAIN;
	cr_assert_eq(pop3_choose_auth(AUTH_AUTO, &c, 1), AUTH_PLAIN);
	cr_assert_eq(pop3_choose_auth(AUTH_APOP, &c, 1), AUTH_APOP,
	    "APOP only when configured");
	cr_assert_eq(pop3_choose_auth(AUTH_OAUTHBEARER, &c, 1), -1);
	c.sasl |= POP3_SASL_OAUTHBEARER;
	cr_assert_eq(pop3_choose_auth(AUTH_OAUTHBEARER, &c, 1),
	    AUTH_OAUTHBEARER);
	cr_assert_str_eq(pop3_sasl_name(AUTH_XOAUTH2), "XOAUTH2");
}

Test(pop3_parse, apop_digest_rfc1939)
{
	static const char ts[] = "<1896.697170952@dbc.mtview.ca.us>";
	char	 hex[33];

	cr_assert_eq(pop3_apop_digest(ts, sizeof(ts) - 1, "tanstaaf", 8, hex),
	    0);
	cr_assert_str_eq(hex, "c4c9334bac560ecc979e58001b3e22fb");
}

/* pop3_abort() before the transaction: QUIT as soon as it may be sent. */
Test(pop3_flow, abort_during_login)
{
	struct policy	 pol = { 0 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct buf	 out = BUF_INIT;
	struct pop3	*p;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, "+OK hi\r\n-ERR\r\n", 14, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_str_eq(out.data, "CAPA\r\nUSER alice\r\n");
	pop3_abort(p);
	drain(p, &out);
	cr_assert_str_eq(out.data, "CAPA\r\nUSER alice\r\n",
	    "nothing while USER is outstanding");
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_str_eq(out.data, "CAPA\r\nUSER alice\r\nQUIT\r\n",
	    "no password after an abort");
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, NULL), PS_DONE);
	pop3_free(&p);
	buf_free(&out);
	buf_free(&o.ev);
}

/* An owner call never calls the owner back. */
Test(pop3_flow, owner_calls_make_no_callbacks)
{
	static const char script[] =
	    "+OK ready\r\n-ERR\r\n+OK\r\n+OK\r\n+OK 2 20\r\n"
	    "+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n1 10\r\n2 10\r\n.\r\n";
	struct policy	 pol = { .no_finish = 1 };
	struct pop3_params prm = params();
	struct owner	 o;
	struct buf	 out = BUF_INIT;
	struct pop3	*p;

	memset(&o, 0, sizeof(o));
	o.pol = &pol;
	p = o.p = pop3_new(&prm, &owner_cb, &o);
	cr_assert_eq(pop3_input(p, script, sizeof(script) - 1, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_str_eq(o.ev.data, "mailbox 2 20\nwant 1 a 10\n");
	/* RETR 1 is outstanding; delete 2 before it was even offered. */
	cr_assert_eq(pop3_delete(p, 2), 0);
	pop3_finish(p);
	drain(p, &out);
	cr_assert_str_eq(o.ev.data, "mailbox 2 20\nwant 1 a 10\n");
	cr_assert_null(strstr(out.data, "DELE 2"), "no pipelining: wait");
	cr_assert_eq(pop3_input(p, "+OK\r\nA\r\n.\r\n", 11, NULL), PS_MORE);
	drain(p, &out);
	cr_assert_str_eq(out.data, "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"
	    "STAT\r\nUIDL\r\nLIST\r\nRETR 1\r\nDELE 2\r\n");
	cr_assert_eq(pop3_input(p, "+OK\r\n", 5, NULL), PS_MORE);
	drain(p, &out);
	/* 2 was deleted, so it is never offered; then QUIT. */
	cr_assert_str_eq(o.ev.data, "mailbox 2 20\nwant 1 a 10\n"
	    "begin 1 a 10\nend 1 a A\\r\\n\ndrained\n");
	cr_assert_not_null(strstr(out.data, "DELE 2\r\nQUIT\r\n"));
	pop3_free(&p);
	buf_free(&out);
	buf_free(&o.ev);
	buf_free(&o.body);
}
