/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/log.h"
#include "haul/smtp.h"

/* ---------------------------------------------------------------------- */
/* Reply parser.                                                           */

static enum smtp_reply_status
parse_all(struct smtp_reply_parser *p, const char *s, size_t *used)
{
	smtp_reply_init(p);
	return smtp_reply_parse(p, s, strlen(s), used);
}

Test(smtp_reply, single_line)
{
	struct smtp_reply_parser p;
	size_t	 used;

	cr_assert_eq(parse_all(&p, "250 2.1.0 Ok\r\n", &used), SMTP_REPLY_OK);
	cr_assert_eq(used, 14);
	cr_assert_eq(p.reply.code, 250);
	cr_assert_str_eq(p.reply.esc, "2.1.0");
	cr_assert_str_eq(p.reply.text, "2.1.0 Ok");
	cr_assert_eq(p.reply.nlines, 1);
}

Test(smtp_reply, multi_line)
{
	struct smtp_reply_parser p;
	size_t	 used;
	const char *s = "250-mta.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n";

	cr_assert_eq(parse_all(&p, s, &used), SMTP_REPLY_OK);
	cr_assert_eq(used, strlen(s));
	cr_assert_eq(p.reply.nlines, 3);
	cr_assert_str_eq(p.reply.text, "mta.example\nPIPELINING\nSIZE 10");
	cr_assert_str_eq(p.reply.esc, "");
}

Test(smtp_reply, bare_code)
{
	struct smtp_reply_parser p;
	size_t	 used;

	cr_assert_eq(parse_all(&p, "250\r\n", &used), SMTP_REPLY_OK);
	cr_assert_eq(p.reply.code, 250);
	cr_assert_eq(p.reply.textlen, 0);
	cr_assert_eq(parse_all(&p, "354-\r\n354 \r\n", &used), SMTP_REPLY_OK);
	cr_assert_eq(p.reply.nlines, 2);
}

Test(smtp_reply, mismatched_codes)
{
	struct smtp_reply_parser p;
	size_t	 used;

	/* CVE-2020-8794 class: 2yz continuation, 5yz final. */
	cr_assert_eq(parse_all(&p, "250-ok\r\n550 no\r\n", &used),
	    SMTP_REPLY_BAD);
	cr_assert_not_null(p.error);
	cr_assert_eq(parse_all(&p, "250-ok\r\n251 ok\r\n", &used),
	    SMTP_REPLY_BAD);
	/* Sticky: more input does not resurrect it. */
	cr_assert_eq(smtp_reply_parse(&p, "250 ok\r\n", 8, &used),
	    SMTP_REPLY_BAD);
	cr_assert_eq(used, 0);
}

Test(smtp_reply, line_length)
{
	struct smtp_reply_parser p;
	char	 line[600];
	size_t	 used;

	/* 512 octets including CRLF: accepted. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	memcpy(line + 510, "\r\n", 3);
	cr_assert_eq(parse_all(&p, line, &used), SMTP_REPLY_OK);
	cr_assert_eq(p.reply.textlen, 506);
	/* 513: refused. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	memcpy(line + 511, "\r\n", 3);
	cr_assert_eq(parse_all(&p, line, &used), SMTP_REPLY_BAD);
}

Test(smtp_reply, bad_codes)
{
	static const char *bad[] = {
		"2x0 ok\r\n", "abc\r\n", "25\r\n", "25 ok\r\n", "600 x\r\n",
		"199 x\r\n", "260 x\r\n", "250x\r\n", "250_x\r\n", " 250 x\r\n",
		"250 a\nb\r\n", "250 a\rb\r\n", "\r\n",
	};
	struct smtp_reply_parser p;
	size_t	 i, used;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse_all(&p, bad[i], &used), SMTP_REPLY_BAD,
		    "accepted %s", bad[i]);
	smtp_reply_init(&p);
	cr_assert_eq(smtp_reply_parse(&p, "250 a\0b\r\n", 9, &used),
	    SMTP_REPLY_BAD);
}

Test(smtp_reply, enhanced_codes)
{
	static const struct {
		const char *in, *esc;
	} t[] = {
		{ "550 5.7.1 Relaying denied\r\n", "5.7.1" },
		{ "452 4.2.2 Mailbox full\r\n", "4.2.2" },
		{ "250 2.0.0\r\n", "2.0.0" },
		{ "250 2.100.999 odd\r\n", "2.100.999" },
		{ "250 5.0.0 class mismatch\r\n", "" },
		{ "250 2.0 short\r\n", "" },
		{ "250 2.0.0x glued\r\n", "" },
		{ "250 2.1000.0 long\r\n", "" },
		{ "250 Ok\r\n", "" },
	};
	struct smtp_reply_parser p;
	size_t	 i, used;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cr_assert_eq(parse_all(&p, t[i].in, &used), SMTP_REPLY_OK);
		cr_assert_str_eq(p.reply.esc, t[i].esc, "for %s", t[i].in);
	}
}

/* A reply of n lines "250-line" ... "250 last". */
static char *
many_lines(unsigned n, size_t width)
{
	struct buf	 b = BUF_INIT;
	unsigned	 i;
	size_t		 j;

	for (i = 0; i < n; i++) {
		buf_add_str(&b, i + 1 < n ? "250-" : "250 ");
		for (j = 0; j < width; j++)
			buf_add_byte(&b, 'a' + (i % 26));
		buf_add_str(&b, "\r\n");
	}
	return buf_steal(&b);
}

Test(smtp_reply, line_count)
{
	struct smtp_reply_parser p;
	size_t	 used;
	char	*s;

	s = many_lines(100, 3);
	cr_assert_eq(parse_all(&p, s, &used), SMTP_REPLY_OK);
	cr_assert_eq(p.reply.nlines, 100);
	free(s);
	s = many_lines(101, 3);
	cr_assert_eq(parse_all(&p, s, &used), SMTP_REPLY_BAD);
	free(s);
}

Test(smtp_reply, text_cap)
{
	struct smtp_reply_parser p;
	size_t	 used;
	char	*s;

	s = many_lines(100, 500);
	cr_assert_eq(parse_all(&p, s, &used), SMTP_REPLY_OK);
	cr_assert(p.reply.truncated);
	cr_assert_leq(p.reply.textlen, SMTP_REPLY_TEXT_MAX);
	cr_assert_eq(strlen(p.reply.text), p.reply.textlen);
	cr_assert(strstr(p.reply.text, SMTP_REPLY_TRUNC_MARK) != NULL);
	free(s);
}

Test(smtp_reply, every_split)
{
	const char *s = "220 mta.example ESMTP\r\n250-a\r\n250-b\r\n"
	    "250 2.0.0 c\r\n451 4.3.0 later\r\n";
	size_t	 len = strlen(s), k;

	for (k = 0; k <= len; k++) {
		struct smtp_reply_parser p;
		int	 codes[8], n = 0;
		size_t	 off = 0, end = k, used;

		smtp_reply_init(&p);
		while (off < len) {
			enum smtp_reply_status st;

			if (end <= off)
				end = len;
			st = smtp_reply_parse(&p, s + off, end - off, &used);
			cr_assert_neq(st, SMTP_REPLY_BAD);
			off += used;
			if (st == SMTP_REPLY_OK) {
				codes[n++] = p.reply.code;
				if (p.reply.code == 250)
					cr_assert_str_eq(p.reply.text,
					    "a\nb\n2.0.0 c");
			}
		}
		cr_assert_eq(n, 3, "split %zu", k);
		cr_assert_eq(codes[0], 220);
		cr_assert_eq(codes[1], 250);
		cr_assert_eq(codes[2], 451);
	}
}

Test(smtp_reply, queue_id)
{
	char	 id[SMTP_QUEUE_ID_MAX + 1];
	char	 longid[80];

	cr_assert_eq(smtp_parse_queue_id("2.0.0 Ok: queued as 4XyZ12", 26, id),
	    0);
	cr_assert_str_eq(id, "4XyZ12");
	cr_assert_eq(smtp_parse_queue_id("Ok: Queued As ABC.def", 21, id), 0);
	cr_assert_str_eq(id, "ABC");
	cr_assert_eq(smtp_parse_queue_id("Ok: queued as ", 14, id), -1);
	cr_assert_str_eq(id, "");
	cr_assert_eq(smtp_parse_queue_id("Ok: queued as <x>", 17, id), -1);
	cr_assert_eq(smtp_parse_queue_id("2.0.0 Ok", 8, id), -1);
	snprintf(longid, sizeof(longid), "queued as %040d", 7);
	cr_assert_eq(smtp_parse_queue_id(longid, strlen(longid), id), -1);
}

Test(smtp_reply, xtext_and_xclient_line)
{
	struct buf	 b = BUF_INIT;
	struct smtp_xclient x = { "192.0.2.7", "", "h\xc3\xa9lo x+y=z" };
	char		 big[400];

	smtp_xtext_encode(&b, "a+b=c d\x01", 8);
	cr_assert_str_eq(b.data, "a+2Bb+3Dc+20d+01");
	cr_assert_eq(smtp_xclient_line(&b, SMTP_XATTR_ADDR | SMTP_XATTR_NAME |
	    SMTP_XATTR_HELO | SMTP_XATTR_PROTO, &x), 0);
	/* A missing value is sent as [UNAVAILABLE]: nothing may linger. */
	cr_assert_str_eq(b.data, "XCLIENT ADDR=192.0.2.7 NAME=[UNAVAILABLE] "
	    "HELO=h+C3+A9lo+20x+2By+3Dz PROTO=ESMTP");
	/* Only attributes the MTA lists are sent; none real: no XCLIENT. */
	cr_assert_eq(smtp_xclient_line(&b, SMTP_XATTR_NAME, &x), -1);
	cr_assert_eq(b.len, 0);
	/* An attribute that does not fit is replaced. */
	memset(big, '+', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	x.helo = big;
	cr_assert_eq(smtp_xclient_line(&b, SMTP_XATTR_ADDR | SMTP_XATTR_HELO,
	    &x), 0);
	cr_assert_str_eq(b.data, "XCLIENT ADDR=192.0.2.7 HELO=[UNAVAILABLE]");
	buf_free(&b);
}

Test(smtp_reply, ehlo_and_addr)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo e;
	size_t	 used;

	cr_assert_eq(parse_all(&p, "250-mta.example PIPELINING\r\n"
	    "250-size 1000\r\n250-chunking\r\n250-XCLIENT NAME  ADDR HELO\r\n"
	    "250-SMTPUTF8\r\n250 X-UNKNOWN\r\n", &used), SMTP_REPLY_OK);
	smtp_ehlo_parse(&p.reply, &e);
	/* The greeting line's "PIPELINING" is the MTA's name, not a keyword. */
	cr_assert_eq(e.ext, SMTP_EXT_SIZE | SMTP_EXT_CHUNKING |
	    SMTP_EXT_XCLIENT | SMTP_EXT_SMTPUTF8);
	cr_assert_eq(e.size_max, 1000);
	cr_assert_eq(e.xattr, SMTP_XATTR_NAME | SMTP_XATTR_ADDR |
	    SMTP_XATTR_HELO);
	cr_assert_eq(parse_all(&p, "250-m\r\n250 SIZE\r\n", &used),
	    SMTP_REPLY_OK);
	smtp_ehlo_parse(&p.reply, &e);
	cr_assert_eq(e.ext, SMTP_EXT_SIZE);
	cr_assert_eq(e.size_max, 0);

	cr_assert(smtp_addr_ok("", 1));
	cr_assert_not(smtp_addr_ok("", 0));
	cr_assert(smtp_addr_ok("\"a b\"@example.org", 0));
	cr_assert_not(smtp_addr_ok("a@b> SIZE=1", 0));
	cr_assert_not(smtp_addr_ok("a@b\r\nRCPT TO:<c@d", 0));
}

/* ---------------------------------------------------------------------- */
/* Client against scripted MTA transcripts.                                */

static size_t	 log_lines;

/* Swallow the log, at debug level so every trace path runs. */
static void
log_count(enum log_level lvl, const char *line, void *arg)
{
	(void)lvl;
	(void)line;
	(void)arg;
	log_lines++;
}

static void
quiet(void)
{
	log_set_sink(log_count, NULL);
	log_set_level(LOG_LVL_DEBUG);
}

TestSuite(smtp_client, .init = quiet);
TestSuite(smtp_property, .init = quiet);

#define GREET		"220 mta.example ESMTP\r\n"
#define EHLO		"EHLO fetch.example\r\n"
#define LHLO		"LHLO fetch.example\r\n"
#define EHLO_BASIC	"250-mta.example\r\n250-SIZE 10000\r\n" \
			"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PIPE	"250-mta.example\r\n250-PIPELINING\r\n" \
			"250-SIZE 10000\r\n250-8BITMIME\r\n" \
			"250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_CHUNK	"250-mta.example\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
#define EHLO_PCHUNK	"250-mta.example\r\n250-PIPELINING\r\n" \
			"250-CHUNKING\r\n250 8BITMIME\r\n"
#define MAIL4		"MAIL FROM:<a@example.org> SIZE=4\r\n"
#define RCPT		"RCPT TO:<u@fetch.invalid>\r\n"
#define PIPE_ENV	MAIL4 RCPT "DATA\r\n"
#define OKS		"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"

/* A message source in memory that hands out at most maxread bytes a call. */
struct src {
	const char	*data;
	size_t		 len, off, maxread;
	int		 rewinds;
	int		 fail_errno;	/* fail once off reaches fail_at */
	size_t		 fail_at;
	int		 eagain;	/* this many EAGAINs first */
};

static ssize_t
src_read(void *arg, void *dst, size_t len)
{
	struct src	*s = arg;
	size_t		 n;

	if (s->eagain > 0) {
		s->eagain--;
		errno = EAGAIN;
		return -1;
	}
	if (s->fail_errno != 0 && s->off >= s->fail_at) {
		errno = s->fail_errno;
		return -1;
	}
	n = s->len - s->off;
	if (n > len)
		n = len;
	if (s->maxread != 0 && n > s->maxread)
		n = s->maxread;
	memcpy(dst, s->data + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static int
src_rewind(void *arg)
{
	struct src	*s = arg;

	s->off = 0;
	s->rewinds++;
	return 0;
}

struct res {
	enum smtp_outcome outcome;
	enum smtp_stage	 stage;
	int		 code, local, unknown;
	char		 esc[12];
	char		 text[SMTP_TEXT_MAX];
	char		 qid[SMTP_QUEUE_ID_MAX + 1];
	size_t		 nrcpt;
	int		 rcode[4], runknown[4];
};

struct cap {
	int		 n;
	struct res	 r[4];
	/* Submitted from inside the callback, to test re-entry. */
	struct smtp_conn *c;
	const struct smtp_txn *next;
	int		 next_rc;
	/* The connection after the script. */
	enum smtp_state	 state;
	enum err_class	 err;
	int		 idle;
};

static void
on_result(void *arg, const struct smtp_result *r)
{
	struct cap	*cap = arg;
	struct res	*o;
	size_t		 i;

	cr_assert_lt(cap->n, 4);
	o = &cap->r[cap->n++];
	memset(o, 0, sizeof(*o));
	o->outcome = r->outcome;
	o->stage = r->stage;
	o->code = r->code;
	o->local = r->local;
	o->unknown = r->unknown;
	snprintf(o->esc, sizeof(o->esc), "%s", r->esc);
	snprintf(o->text, sizeof(o->text), "%s", r->text);
	snprintf(o->qid, sizeof(o->qid), "%s", r->queue_id);
	o->nrcpt = r->nrcpt;
	for (i = 0; i < r->nrcpt && i < 4; i++) {
		o->rcode[i] = r->rcpt[i].code;
		o->runknown[i] = r->rcpt[i].unknown;
	}
	if (cap->next != NULL) {
		const struct smtp_txn *t = cap->next;

		cap->next = NULL;
		cap->next_rc = smtp_submit(cap->c, t);
	}
}

enum act { A_END, A_FEED, A_LOST, A_SUBMIT, A_QUIT };

struct step {
	enum act	 act;
	const char	*in;		/* A_FEED: bytes from the MTA */
	const char	*out;		/* what the client must send next */
	enum proto_status st;		/* status after the step */
	int		 nopump;	/* do not pump message data */
};

struct scen {
	struct smtp_config cfg;
	const char	*from;
	const char *const *rcpt;
	size_t		 nrcpt;
	const char	*body;
	size_t		 maxread;
	int		 eightbit, utf8;
	const struct smtp_xclient *xc;
	int		 resubmit_in_cb;
	const struct step *steps;
};

static const char *const R1[] = { "u@fetch.invalid" };
static const char *const R3[] = { "a@x", "b@x", "c@x" };

/* Drive the message data until the machine wants no more. */
static void
pump_all(struct smtp_conn *c, size_t budget)
{
	int	 guard = 0;

	while (smtp_pump_wanted(c) && guard++ < 100000)
		if (smtp_pump(c, budget) != PS_MORE)
			break;
}

/* Feed s whole (mode 0), split at k (1) or in k-byte pieces (2). */
static enum proto_status
feed(struct smtp_conn *c, const char *s, int mode, size_t k)
{
	size_t	 len = strlen(s), off = 0, n, used;
	enum proto_status st = PS_MORE;

	while (off < len) {
		n = len - off;
		if (mode == 1 && off < k && k < len)
			n = k - off;
		else if (mode == 2 && n > k)
			n = k;
		st = smtp_input(c, s + off, n, &used);
		if (st != PS_MORE)
			return st;
		cr_assert_eq(used, n, "machine left input unconsumed");
		off += n;
	}
	return st;
}

static void
run_once(const struct scen *sc, int mode, size_t k, struct cap *cap)
{
	struct smtp_conn *c;
	struct smtp_txn	 t;
	struct src	 src;
	const struct step *s;
	enum proto_status st;
	size_t		 i;

	memset(cap, 0, sizeof(*cap));
	memset(&src, 0, sizeof(src));
	src.data = sc->body != NULL ? sc->body : "hi\r\n";
	src.len = strlen(src.data);
	src.maxread = sc->maxread;
	memset(&t, 0, sizeof(t));
	t.acct = "test";
	t.from = sc->from != NULL ? sc->from : "a@example.org";
	t.rcpt = sc->rcpt != NULL ? sc->rcpt : R1;
	t.nrcpt = sc->rcpt != NULL ? sc->nrcpt : 1;
	t.body.read = src_read;
	t.body.rewind = src_rewind;
	t.body.arg = &src;
	t.body.size = src.len;
	t.eightbit = sc->eightbit;
	t.utf8 = sc->utf8;
	t.xclient = sc->xc;
	t.result = on_result;
	t.arg = cap;

	c = smtp_new(&sc->cfg);
	cr_assert_not_null(c);
	cap->c = c;
	if (sc->resubmit_in_cb)
		cap->next = &t;
	cr_assert_eq(smtp_submit(c, &t), 0);
	for (i = 0, s = sc->steps; s->act != A_END; i++, s++) {
		st = PS_MORE;
		switch (s->act) {
		case A_FEED:
			st = feed(c, s->in, mode, k);
			break;
		case A_LOST:
			smtp_conn_lost(c, "test");
			st = smtp_state(c) == SMTP_ST_FAILED ? PS_ERROR :
			    PS_DONE;
			break;
		case A_SUBMIT:
			cr_assert_eq(smtp_submit(c, &t), 0);
			break;
		case A_QUIT:
			cr_assert_eq(smtp_quit(c), 0);
			break;
		case A_END:
			break;
		}
		if (!s->nopump)
			pump_all(c, 7);
		cr_assert_eq(st, s->st, "step %zu (mode %d/%zu): status %s",
		    i, mode, k, proto_status_name(st));
		cr_assert_str_eq(smtp_output(c)->len ? smtp_output(c)->data :
		    "", s->out, "step %zu (mode %d/%zu)", i, mode, k);
		buf_consume(smtp_output(c), smtp_output(c)->len);
	}
	cap->state = smtp_state(c);
	cap->err = smtp_error(c);
	cap->idle = smtp_is_idle(c);
	smtp_free(&c);
	cr_assert_null(c);
}

static void
same_result(const struct cap *a, const struct cap *b, int mode, size_t k)
{
	int	 i;

	cr_assert_eq(a->n, b->n, "mode %d/%zu", mode, k);
	cr_assert_eq(a->state, b->state);
	cr_assert_eq(a->err, b->err);
	for (i = 0; i < a->n; i++) {
		cr_assert_eq(a->r[i].outcome, b->r[i].outcome);
		cr_assert_eq(a->r[i].code, b->r[i].code);
		cr_assert_eq(a->r[i].unknown, b->r[i].unknown);
		cr_assert_str_eq(a->r[i].qid, b->r[i].qid);
		cr_assert_str_eq(a->r[i].text, b->r[i].text);
		cr_assert_eq(memcmp(a->r[i].rcode, b->r[i].rcode,
		    sizeof(a->r[i].rcode)), 0);
	}
}

/* Run a scenario whole, split at every position, and in small pieces. */
static void
run(const struct scen *sc, struct cap *out)
{
	const struct step *s;
	struct cap	 other;
	size_t		 k, maxlen = 0;

	if (sc->cfg.helo_name == NULL)
		cr_assert_fail("scenario without helo_name");
	for (s = sc->steps; s->act != A_END; s++)
		if (s->in != NULL && strlen(s->in) > maxlen)
			maxlen = strlen(s->in);
	run_once(sc, 0, 0, out);
	for (k = 0; k <= maxlen; k++) {
		run_once(sc, 1, k, &other);
		same_result(out, &other, 1, k);
	}
	for (k = 1; k <= 3; k++) {
		run_once(sc, 2, k, &other);
		same_result(out, &other, 2, k);
	}
}

#define SMTP_CFG	{ .helo_name = "fetch.example" }
#define LMTP_CFG	{ .helo_name = "fetch.example", .lmtp = 1 }

Test(smtp_client, happy_lockstep)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_BASIC, MAIL4, PS_MORE, 0 },
		{ A_FEED, "250 2.1.0 Ok\r\n", RCPT, PS_MORE, 0 },
		{ A_FEED, "250 2.1.5 Ok\r\n", "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "354 End data with <CR><LF>.<CR><LF>\r\n",
		    "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as 4XyZ12\r\n", "", PS_MORE,
		    0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_FINAL);
	cr_assert_eq(cap.r[0].code, 250);
	cr_assert_str_eq(cap.r[0].esc, "2.0.0");
	cr_assert_str_eq(cap.r[0].qid, "4XyZ12");
	cr_assert_str_eq(cap.r[0].text, "250 2.0.0 Ok: queued as 4XyZ12");
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert(cap.idle);
}

Test(smtp_client, happy_pipelined_8bit)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, "MAIL FROM:<a@example.org> SIZE=4 "
		    "BODY=8BITMIME\r\n" RCPT "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as ABC\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps,
	    .eightbit = 1 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_str_eq(cap.r[0].qid, "ABC");
	cr_assert(cap.idle);
}

Test(smtp_client, pipelining_disabled_by_config)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, MAIL4, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", RCPT, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = { .helo_name = "fetch.example",
	    .no_pipelining = 1 }, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_str_eq(cap.r[0].qid, "");
}

Test(smtp_client, bdat_lockstep_chunk_sizes)
{
	/* "abc\ndef\r\n.gh" normalises to 15 bytes: 4 + 4 + 4 + 3 LAST. */
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_CHUNK, "MAIL FROM:<a@example.org>\r\n", PS_MORE,
		    0 },
		{ A_FEED, "250 ok\r\n", RCPT, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "BDAT 4\r\nabc\r", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "BDAT 4\r\n\ndef", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "BDAT 4\r\n\r\n.g", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "BDAT 3 LAST\r\nh\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as Q1\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = { .helo_name = "fetch.example",
	    .bdat_chunk = 4 }, .steps = steps, .body = "abc\ndef\r\n.gh" };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_str_eq(cap.r[0].qid, "Q1");
}

Test(smtp_client, bdat_pipelined)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PCHUNK, "MAIL FROM:<a@example.org>\r\n" RCPT,
		    PS_MORE, 0 },
		/* Chunks stream; LAST waits for their replies. */
		{ A_FEED, "250 ok\r\n250 ok\r\n",
		    "BDAT 4\r\nabcdBDAT 4\r\nefgh", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 ok\r\n", "BDAT 4 LAST\r\nij\r\n",
		    PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as B1\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = { .helo_name = "fetch.example",
	    .bdat_chunk = 4 }, .steps = steps, .body = "abcdefghij" };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_str_eq(cap.r[0].qid, "B1");
}

Test(smtp_client, bdat_failure_mid_chunks)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PCHUNK, "MAIL FROM:<a@example.org>\r\n" RCPT,
		    PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 ok\r\n",
		    "BDAT 4\r\nabcdBDAT 4\r\nefgh", PS_MORE, 0 },
		/* First chunk fails: no LAST may follow (RFC 3030). */
		{ A_FEED, "554 5.6.0 bad content\r\n", "", PS_MORE, 0 },
		{ A_FEED, "503 5.5.1 no transaction\r\n", "", PS_MORE, 0 },
		/* The next transaction starts with RSET. */
		{ A_SUBMIT, NULL, "RSET\r\nMAIL FROM:<a@example.org>\r\n" RCPT,
		    PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = { .helo_name = "fetch.example",
	    .bdat_chunk = 4 }, .steps = steps, .body = "abcdefghij" };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(cap.r[0].outcome, SMTP_REFUSED);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_BODY);
	cr_assert_eq(cap.r[0].code, 554);
}

Test(smtp_client, bdat_lockstep_tempfail_then_rset)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_CHUNK, "MAIL FROM:<a@example.org>\r\n", PS_MORE,
		    0 },
		{ A_FEED, "250 ok\r\n", RCPT, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "BDAT 4\r\nabcd", PS_MORE, 0 },
		{ A_FEED, "452 4.3.1 no space\r\n", "", PS_MORE, 0 },
		{ A_SUBMIT, NULL, "RSET\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok\r\n", "MAIL FROM:<a@example.org>\r\n",
		    PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = { .helo_name = "fetch.example",
	    .bdat_chunk = 4 }, .steps = steps, .body = "abcdefghij" };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].code, 452);
	cr_assert_str_eq(cap.r[0].esc, "4.3.1");
}

Test(smtp_client, lmtp_bdat_per_recipient)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, LHLO, PS_MORE, 0 },
		{ A_FEED, "250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
		    "MAIL FROM:<a@example.org>\r\nRCPT TO:<a@x>\r\n"
		    "RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n",
		    "BDAT 4 LAST\r\nhi\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 a saved\r\n", "", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 c saved\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = LMTP_CFG, .steps = steps, .rcpt = R3,
	    .nrcpt = 3 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_PARTIAL);
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].rcode[1], 550);
	cr_assert_eq(cap.r[0].rcode[2], 250);
}

/* One message through pipelined DATA; returns what went on the wire. */
static char *
data_wire(const char *body, size_t len, size_t maxread, size_t budget,
    size_t *wlen)
{
	struct smtp_config cfg = SMTP_CFG;
	struct smtp_conn *c;
	struct smtp_txn	 t;
	struct src	 src;
	struct cap	 cap;
	struct buf	 wire = BUF_INIT;
	size_t		 used;
	const char	*env = EHLO_PIPE;

	memset(&t, 0, sizeof(t));
	memset(&src, 0, sizeof(src));
	memset(&cap, 0, sizeof(cap));
	src.data = body;
	src.len = len;
	src.maxread = maxread;
	t.from = "";
	t.rcpt = R1;
	t.nrcpt = 1;
	t.body.read = src_read;
	t.body.arg = &src;
	t.body.size = len;
	t.result = on_result;
	t.arg = &cap;
	c = smtp_new(&cfg);
	cr_assert_eq(smtp_input(c, GREET, strlen(GREET), &used), PS_MORE);
	cr_assert_eq(smtp_input(c, env, strlen(env), &used), PS_MORE);
	cr_assert_eq(smtp_submit(c, &t), 0);
	cr_assert(strncmp(smtp_output(c)->data + strlen(EHLO),
	    "MAIL FROM:<> SIZE=", 18) == 0);
	buf_reset(smtp_output(c));
	cr_assert_eq(smtp_input(c, OKS "354 go\r\n", strlen(OKS) + 8, &used),
	    PS_MORE);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_DATA_BLOCK);
	while (smtp_pump_wanted(c)) {
		cr_assert_eq(smtp_pump(c, budget), PS_MORE);
		buf_add(&wire, smtp_output(c)->data, smtp_output(c)->len);
		buf_reset(smtp_output(c));
	}
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_FINAL);
	cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used), PS_MORE);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	smtp_free(&c);
	*wlen = wire.len;
	return buf_steal(&wire);
}

Test(smtp_client, dot_stuffing_cases)
{
	static const struct {
		const char *in, *wire;
	} t[] = {
		{ ".\r\n", "..\r\n.\r\n" },
		{ "..\r\n", "...\r\n.\r\n" },
		{ ".x\r\n", "..x\r\n.\r\n" },
		{ ".hidden", "..hidden\r\n.\r\n" },
		{ "abc", "abc\r\n.\r\n" },
		{ "a\nb\n", "a\r\nb\r\n.\r\n" },
		{ "a\rb\r", "a\r\nb\r\n.\r\n" },
		{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "\r.\r", "\r\n..\r\n.\r\n" },
		{ "\r\r\n", "\r\n\r\n.\r\n" },
		{ "", ".\r\n" },
		{ "x\r\n\r\n", "x\r\n\r\n.\r\n" },
	};
	size_t	 i, mr;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (mr = 1; mr <= 4; mr++) {
			size_t	 wl;
			char	*w = data_wire(t[i].in, strlen(t[i].in), mr, 3,
			    &wl);

			cr_assert_eq(wl, strlen(t[i].wire));
			cr_assert_str_eq(w, t[i].wire, "case %zu maxread %zu",
			    i, mr);
			free(w);
		}
	}
}

Test(smtp_client, crlf_split_across_reads)
{
	const char *body = "ab\r\ncd\r\n.e\r\n";
	size_t	 mr;

	/* A CR ending one read and the LF starting the next is one line end. */
	for (mr = 1; mr <= strlen(body); mr++) {
		size_t	 wl;
		char	*w = data_wire(body, strlen(body), mr, 1, &wl);

		cr_assert_str_eq(w, "ab\r\ncd\r\n..e\r\n.\r\n", "maxread %zu",
		    mr);
		free(w);
	}
}

/* Build the standard no-pipelining script, failing at one stage. */
static void
fail_at(const char *stage, const char *reply, int code,
    enum smtp_outcome want, enum smtp_stage wstage, int pipelined)
{
	struct step	 st[10];
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = st };
	struct cap	 cap;
	int		 n = 0, final = strcmp(stage, "FINAL") == 0;

	memset(st, 0, sizeof(st));
	st[n++] = (struct step){ A_FEED, GREET, EHLO, PS_MORE, 0 };
	if (pipelined) {
		/* One reply string answers the whole MAIL/RCPT/DATA group. */
		st[n++] = (struct step){ A_FEED, EHLO_PIPE, PIPE_ENV,
		    PS_MORE, 0 };
		if (final)
			st[n++] = (struct step){ A_FEED, OKS "354 go\r\n",
			    "hi\r\n.\r\n", PS_MORE, 0 };
	} else {
		st[n++] = (struct step){ A_FEED, EHLO_BASIC, MAIL4, PS_MORE,
		    0 };
		if (strcmp(stage, "MAIL") != 0)
			st[n++] = (struct step){ A_FEED, "250 ok\r\n", RCPT,
			    PS_MORE, 0 };
		if (strcmp(stage, "MAIL") != 0 && strcmp(stage, "RCPT") != 0)
			st[n++] = (struct step){ A_FEED, "250 ok\r\n",
			    "DATA\r\n", PS_MORE, 0 };
		if (final)
			st[n++] = (struct step){ A_FEED, "354 go\r\n",
			    "hi\r\n.\r\n", PS_MORE, 0 };
	}
	st[n++] = (struct step){ A_FEED, reply, "", PS_MORE, 0 };
	/* The session goes on; after an abort the next MAIL gets RSET. */
	if (pipelined)
		st[n++] = (struct step){ A_SUBMIT, NULL, final ? PIPE_ENV :
		    "RSET\r\n" PIPE_ENV, PS_MORE, 0 };
	else
		st[n++] = (struct step){ A_SUBMIT, NULL, final ? MAIL4 :
		    "RSET\r\n", PS_MORE, 0 };
	st[n] = (struct step){ A_END, NULL, NULL, PS_MORE, 0 };
	run(&sc, &cap);
	cr_assert_eq(cap.n, 1, "%s %s", stage, reply);
	cr_assert_eq(cap.r[0].outcome, want, "%s %s: %s", stage, reply,
	    smtp_outcome_name(cap.r[0].outcome));
	cr_assert_eq(cap.r[0].stage, wstage, "%s %s: stage %s", stage, reply,
	    smtp_stage_name(cap.r[0].stage));
	cr_assert_eq(cap.r[0].code, code);
	cr_assert_eq(cap.r[0].rcode[0], code);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert_eq(cap.r[0].local, 0);
	cr_assert_eq(cap.err, ERR_NONE);
}

Test(smtp_client, tempfail_each_stage)
{
	fail_at("MAIL", "451 4.3.0 later\r\n", 451, SMTP_TEMPFAIL,
	    SMTP_STAGE_MAIL, 0);
	fail_at("RCPT", "450 4.2.0 greylisted\r\n", 450, SMTP_TEMPFAIL,
	    SMTP_STAGE_RCPT, 0);
	fail_at("RCPT", "452 4.5.3 too many\r\n", 452, SMTP_TEMPFAIL,
	    SMTP_STAGE_RCPT, 0);
	fail_at("DATA", "451 4.3.0 later\r\n", 451, SMTP_TEMPFAIL,
	    SMTP_STAGE_DATA, 0);
	fail_at("FINAL", "451 4.3.0 queue write error\r\n", 451,
	    SMTP_TEMPFAIL, SMTP_STAGE_FINAL, 0);
	fail_at("FINAL", "452 4.3.1 insufficient storage\r\n", 452,
	    SMTP_TEMPFAIL, SMTP_STAGE_FINAL, 0);
	/* Pipelined: the replies to the rest of the group are drained. */
	fail_at("MAIL", "451 4.3.0 later\r\n503 5.5.1 need MAIL\r\n"
	    "503 5.5.1 need RCPT\r\n", 451, SMTP_TEMPFAIL, SMTP_STAGE_MAIL, 1);
	fail_at("RCPT", "250 ok\r\n450 4.2.0 greylisted\r\n"
	    "554 5.5.1 no valid recipients\r\n", 450, SMTP_TEMPFAIL,
	    SMTP_STAGE_RCPT, 1);
	fail_at("DATA", "250 ok\r\n250 ok\r\n451 4.3.0 later\r\n", 451,
	    SMTP_TEMPFAIL, SMTP_STAGE_DATA, 1);
	fail_at("FINAL", "451 4.7.1 milter tempfail\r\n", 451, SMTP_TEMPFAIL,
	    SMTP_STAGE_FINAL, 1);
}

Test(smtp_client, refused_each_stage)
{
	fail_at("MAIL", "550 5.7.1 sender rejected\r\n", 550, SMTP_REFUSED,
	    SMTP_STAGE_MAIL, 0);
	fail_at("RCPT", "550 5.1.1 no such user\r\n", 550, SMTP_REFUSED,
	    SMTP_STAGE_RCPT, 0);
	fail_at("RCPT", "553 5.1.3 bad address\r\n", 553, SMTP_REFUSED,
	    SMTP_STAGE_RCPT, 0);
	fail_at("DATA", "554 5.5.1 no\r\n", 554, SMTP_REFUSED,
	    SMTP_STAGE_DATA, 0);
	fail_at("FINAL", "552 5.3.4 message too big\r\n", 552, SMTP_REFUSED,
	    SMTP_STAGE_FINAL, 0);
	fail_at("FINAL", "554 5.7.1 milter reject\r\n", 554, SMTP_REFUSED,
	    SMTP_STAGE_FINAL, 0);
	fail_at("MAIL", "550 5.7.1 no\r\n503 5.5.1 need MAIL\r\n"
	    "503 5.5.1 need RCPT\r\n", 550, SMTP_REFUSED, SMTP_STAGE_MAIL, 1);
	fail_at("RCPT", "250 ok\r\n550 5.1.1 no\r\n"
	    "554 5.5.1 no valid recipients\r\n", 550, SMTP_REFUSED,
	    SMTP_STAGE_RCPT, 1);
	fail_at("DATA", "250 ok\r\n250 ok\r\n554 5.7.1 no\r\n", 554,
	    SMTP_REFUSED, SMTP_STAGE_DATA, 1);
	fail_at("FINAL", "554 5.7.1 rejected by milter\r\n", 554,
	    SMTP_REFUSED, SMTP_STAGE_FINAL, 1);
}

Test(smtp_client, rcpt_refused_but_data_354)
{
	/* RFC 2920 3.1: 354 though nobody was accepted: a bare "." ends it. */
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
		    ".\r\n", PS_MORE, 0 },
		{ A_FEED, "554 5.5.1 no valid recipients\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_REFUSED);
	cr_assert_eq(cap.r[0].code, 550);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_RCPT);
	cr_assert(cap.idle);
}

Test(smtp_client, session_failures)
{
	static const struct {
		const char *ehlo, *reply;
		int lmtp;
		enum err_class err;
	} t[] = {
		{ NULL, "450 4.3.2 busy\r\n", 0, ERR_MTA },
		{ NULL, "421 4.3.2 shutting down\r\n", 0, ERR_MTA },
		/* 5xx greeting: the MTA, not the message: still TEMPFAIL. */
		{ NULL, "554 5.3.2 go away\r\n", 0, ERR_MTA },
		{ NULL, "250 hi\r\n", 0, ERR_MTA },
		{ NULL, "220-a\r\n550 b\r\n", 0, ERR_PROTOCOL },
		{ EHLO, "451 4.3.0 later\r\n", 0, ERR_MTA },
		{ LHLO, "500 5.5.1 what\r\n", 1, ERR_MTA },
		{ EHLO, "354 what\r\n", 0, ERR_PROTOCOL },
	};
	size_t	 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct step	 st[3];
		struct scen	 sc = { .cfg = SMTP_CFG, .steps = st };
		struct cap	 cap;

		sc.cfg.lmtp = t[i].lmtp;
		memset(st, 0, sizeof(st));
		if (t[i].ehlo != NULL) {
			st[0] = (struct step){ A_FEED, GREET, t[i].ehlo,
			    PS_MORE, 0 };
			st[1] = (struct step){ A_FEED, t[i].reply, "",
			    PS_ERROR, 0 };
		} else
			st[0] = (struct step){ A_FEED, t[i].reply, "",
			    PS_ERROR, 0 };
		run(&sc, &cap);
		cr_assert_eq(cap.n, 1, "case %zu", i);
		cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL, "case %zu", i);
		cr_assert_eq(cap.r[0].stage, SMTP_STAGE_SESSION);
		cr_assert_eq(cap.r[0].rcode[0], 421);
		cr_assert_eq(cap.err, t[i].err, "case %zu: %s", i,
		    err_class_name(cap.err));
		cr_assert_eq(cap.state, SMTP_ST_FAILED);
	}
}

Test(smtp_client, ehlo_refused_falls_back_to_helo)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, "502 5.5.2 what\r\n", "HELO fetch.example\r\n",
		    PS_MORE, 0 },
		/* No extensions after HELO: no SIZE, lock-step. */
		{ A_FEED, "250 mta.example\r\n",
		    "MAIL FROM:<a@example.org>\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", RCPT, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
}

Test(smtp_client, lmtp_mixed_final_replies)
{
	/* D3: 250 / 452 / 550 for three recipients. */
	static const struct step steps[] = {
		{ A_FEED, GREET, LHLO, PS_MORE, 0 },
		{ A_FEED, "250-lmtp.example\r\n250-PIPELINING\r\n"
		    "250 ENHANCEDSTATUSCODES\r\n",
		    "MAIL FROM:<a@example.org>\r\n"
		    "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n"
		    "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
		    "250 2.1.5 ok\r\n354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 <a@x> saved\r\n452 4.2.2 <b@x> full\r\n"
		    "550 5.1.1 <c@x> gone\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = LMTP_CFG, .steps = steps, .rcpt = R3,
	    .nrcpt = 3 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_PARTIAL);
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].rcode[1], 452);
	cr_assert_eq(cap.r[0].rcode[2], 550);
	cr_assert_eq(cap.r[0].code, 452);
	cr_assert(cap.idle);
}

Test(smtp_client, lmtp_mixed_rcpt_replies_lockstep)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, LHLO, PS_MORE, 0 },
		{ A_FEED, "250 lmtp.example\r\n",
		    "MAIL FROM:<a@example.org>\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "RCPT TO:<a@x>\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "RCPT TO:<b@x>\r\n", PS_MORE, 0 },
		{ A_FEED, "452 4.2.2 full\r\n", "RCPT TO:<c@x>\r\n", PS_MORE,
		    0 },
		{ A_FEED, "550 5.1.1 gone\r\n", "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 saved\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = LMTP_CFG, .steps = steps, .rcpt = R3,
	    .nrcpt = 3 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_PARTIAL);
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].rcode[1], 452);
	cr_assert_eq(cap.r[0].rcode[2], 550);
}

Test(smtp_client, smtp_multi_rcpt_policy)
{
	/* SMTP: 2xx + 5xx delivers to the accepted ones: PARTIAL. */
	static const struct step partial[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, MAIL4 "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
		    "RCPT TO:<c@x>\r\n", PS_MORE, 0 },
		/* Several recipients: DATA waits for the RCPT verdicts. */
		{ A_FEED, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n",
		    "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as P1\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	/* SMTP: any 4xx aborts the whole message: TEMPFAIL, then RSET. */
	static const struct step abort4[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, MAIL4 "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
		    "RCPT TO:<c@x>\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n"
		    "451 4.3.0 lookup failure\r\n", "", PS_MORE, 0 },
		{ A_SUBMIT, NULL, "RSET\r\n" MAIL4 "RCPT TO:<a@x>\r\n"
		    "RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = partial, .rcpt = R3,
	    .nrcpt = 3 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_PARTIAL);
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].rcode[1], 550);
	cr_assert_eq(cap.r[0].rcode[2], 250);
	cr_assert_str_eq(cap.r[0].qid, "P1");

	sc.steps = abort4;
	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].rcode[0], 451);
	cr_assert_eq(cap.r[0].rcode[1], 550);
	cr_assert_eq(cap.r[0].rcode[2], 451);
	cr_assert_eq(cap.r[0].code, 451);
}

Test(smtp_client, lost_before_final_dot)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "", PS_MORE, 1 },
		{ A_LOST, NULL, "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_BODY);
	cr_assert_eq(cap.r[0].local, 1);
	cr_assert_eq(cap.err, ERR_NETWORK);
}

Test(smtp_client, lost_after_final_dot_is_unknown)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_LOST, NULL, "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 1);
	cr_assert_eq(cap.r[0].runknown[0], 1);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_FINAL);
	cr_assert(strstr(cap.r[0].text, "unknown") != NULL);
}

Test(smtp_client, lmtp_lost_after_some_finals)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, LHLO, PS_MORE, 0 },
		{ A_FEED, "250-lmtp\r\n250 PIPELINING\r\n",
		    "MAIL FROM:<a@example.org>\r\nRCPT TO:<a@x>\r\n"
		    "RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 no\r\n"
		    "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 saved\r\n", "", PS_MORE, 0 },
		{ A_LOST, NULL, "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = LMTP_CFG, .steps = steps, .rcpt = R3,
	    .nrcpt = 3 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_PARTIAL);
	cr_assert_eq(cap.r[0].unknown, 1);
	cr_assert_eq(cap.r[0].rcode[0], 250);
	cr_assert_eq(cap.r[0].runknown[0], 0);
	cr_assert_eq(cap.r[0].runknown[1], 1);
	cr_assert_eq(cap.r[0].rcode[2], 550);
	cr_assert_eq(cap.r[0].runknown[2], 0);
}

Test(smtp_client, malformed_final_reply_is_unknown)
{
	/* D6 on the final dot: a parser error cannot mean "accepted". */
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250-2.0.0 ok\r\n550 5.0.0 no\r\n", "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 1);
	cr_assert_eq(cap.err, ERR_PROTOCOL);
}

Test(smtp_client, final_421_is_known_tempfail)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "421 4.4.2 timeout\r\n", "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert_eq(cap.r[0].code, 421);
	cr_assert_eq(cap.err, ERR_MTA);
}

Test(smtp_client, reply_421_mid_envelope)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n421 4.3.2 shutting down\r\n", "", PS_ERROR,
		    0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].code, 421);
	cr_assert_eq(cap.r[0].local, 0);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_RCPT);
	cr_assert_eq(cap.err, ERR_MTA);
}

Test(smtp_client, pipelining_reply_mismatch)
{
	/* D7: the RCPT reply is missing, so 354 lands on RCPT. */
	static const struct step fewer[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n354 go\r\n", "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	/* ... or an extra reply arrives after the transaction. */
	static const struct step extra[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n250 again\r\n", "", PS_ERROR, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = fewer };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert_eq(cap.err, ERR_PROTOCOL);
	sc.steps = extra;
	run(&sc, &cap);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	cr_assert_eq(cap.err, ERR_PROTOCOL);
}

Test(smtp_client, size_exceeded_before_mail)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, "250-mta.example\r\n250 SIZE 3\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_REFUSED);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_LOCAL);
	cr_assert_eq(cap.r[0].code, 552);
	cr_assert_eq(cap.r[0].local, 1);
	cr_assert(cap.idle);
}

Test(smtp_client, smtputf8)
{
	static const char *const ru[] = { "j\xc3\xb6rg@example.org" };
	static const struct step none[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_BASIC, "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	static const struct step offered[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, "250-mta\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n",
		    "MAIL FROM:<a@example.org> SMTPUTF8\r\n"
		    "RCPT TO:<j\xc3\xb6rg@example.org>\r\nDATA\r\n", PS_MORE,
		    0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = none, .rcpt = ru,
	    .nrcpt = 1 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_REFUSED);
	cr_assert_eq(cap.r[0].code, 553);
	cr_assert_str_eq(cap.r[0].esc, "5.6.7");
	cr_assert(strstr(cap.r[0].text, "SMTPUTF8") != NULL);
	sc.steps = offered;
	run(&sc, &cap);
	cr_assert_eq(cap.n, 0);
}

Test(smtp_client, invalid_address_refused_locally)
{
	static const char *const bad[] = { "u@x>\r\nRSET" };
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps, .rcpt = bad,
	    .nrcpt = 1 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_REFUSED);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_LOCAL);
}

static const struct smtp_xclient xc = {
	"192.0.2.7", "mail.sender.example", "mx.sender.example"
};
static const struct smtp_xclient xc_odd = {
	"IPV6:2001:db8::1", NULL, "h\xc3\xa9lo x+y"
};

Test(smtp_client, xclient_and_re_ehlo)
{
#define XC_EHLO	"250-mta.example\r\n250-PIPELINING\r\n" \
		"250 XCLIENT NAME ADDR PROTO HELO LOGIN\r\n"
#define XC_LINE	"XCLIENT ADDR=192.0.2.7 NAME=mail.sender.example " \
		"HELO=mx.sender.example PROTO=ESMTP\r\n"
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, XC_EHLO, XC_LINE, PS_MORE, 0 },
		/* A new session: EHLO again, with the origin's HELO name. */
		{ A_FEED, "220 mta.example ESMTP\r\n",
		    "EHLO mx.sender.example\r\n", PS_MORE, 0 },
		{ A_FEED, XC_EHLO, "MAIL FROM:<a@example.org>\r\n" RCPT
		    "DATA\r\n", PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "", PS_MORE, 0 },
		/* Next message, next origin: XCLIENT again. */
		{ A_SUBMIT, NULL, XC_LINE, PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	static const struct step odd[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, "250-mta.example\r\n250 XCLIENT NAME ADDR HELO\r\n",
		    "XCLIENT ADDR=IPV6:2001:db8::1 NAME=[UNAVAILABLE] "
		    "HELO=h+C3+A9lo+20x+2By\r\n", PS_MORE, 0 },
		/* That HELO cannot be an EHLO argument: ours instead. */
		{ A_FEED, "220 mta.example ESMTP\r\n", EHLO, PS_MORE, 0 },
		{ A_FEED, "250 mta.example\r\n",
		    "MAIL FROM:<a@example.org>\r\n", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	static const struct step refused[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, "250-mta.example\r\n250-PIPELINING\r\n"
		    "250 XCLIENT NAME ADDR\r\n", "XCLIENT ADDR=192.0.2.7 "
		    "NAME=mail.sender.example\r\n", PS_MORE, 0 },
		{ A_FEED, "550 5.7.0 insufficient authorization\r\n",
		    "MAIL FROM:<a@example.org>\r\n" RCPT "DATA\r\n", PS_MORE,
		    0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 ok\r\n", "", PS_MORE, 0 },
		/* Refused once: not asked again on this connection. */
		{ A_SUBMIT, NULL, "MAIL FROM:<a@example.org>\r\n" RCPT
		    "DATA\r\n", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	/* XCLIENT 4xx: this message waits, the session goes on. */
	static const struct step temp[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, XC_EHLO, XC_LINE, PS_MORE, 0 },
		{ A_FEED, "451 4.3.0 try later\r\n", "", PS_MORE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps, .xc = &xc };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	sc.steps = refused;
	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
	sc.steps = temp;
	run(&sc, &cap);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].stage, SMTP_STAGE_SESSION);
	cr_assert(cap.idle);
	sc.steps = odd;
	sc.xc = &xc_odd;
	run(&sc, &cap);
	cr_assert_eq(cap.n, 0);
#undef XC_EHLO
#undef XC_LINE
}

Test(smtp_client, xclient_sticks_to_connection)
{
	struct smtp_config cfg = SMTP_CFG;
	struct smtp_conn *c = smtp_new(&cfg);
	struct smtp_txn	 t;
	struct src	 src = { .data = "x\r\n", .len = 3 };
	struct cap	 cap;
	size_t		 used;
	const char	*in = GREET "250-m\r\n250-PIPELINING\r\n"
	    "250 XCLIENT ADDR\r\n";

	memset(&t, 0, sizeof(t));
	memset(&cap, 0, sizeof(cap));
	t.from = "";
	t.rcpt = R1;
	t.nrcpt = 1;
	t.body = (struct smtp_body){ src_read, src_rewind, &src, 3 };
	t.xclient = &xc;
	t.result = on_result;
	t.arg = &cap;
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	cr_assert_eq(smtp_submit(c, &t), 0);
	cr_assert_eq(smtp_state(c), SMTP_ST_XCLIENT);
	in = "220 again\r\n250-m\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n"
	    "354 go\r\n";
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	pump_all(c, 100);
	cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used), PS_MORE);
	cr_assert_eq(cap.n, 1);
	/* Without an origin this message would inherit the last one's. */
	t.xclient = NULL;
	cr_assert_eq(smtp_submit(c, &t), -1);
	/* XCLIENT no longer offered: the old origin cannot be replaced. */
	t.xclient = &xc;
	cr_assert_eq(smtp_submit(c, &t), 0);
	cr_assert_eq(cap.n, 2);
	cr_assert_eq(cap.r[1].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(smtp_error(c), ERR_MTA);
	cr_assert_eq(smtp_output(c)->len, 0);
	smtp_free(&c);
}

Test(smtp_client, two_transactions_resubmit_in_callback)
{
	static const struct step steps[] = {
		{ A_FEED, GREET, EHLO, PS_MORE, 0 },
		{ A_FEED, EHLO_PIPE, PIPE_ENV, PS_MORE, 0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		/* The callback submits the next: no RSET after a clean end. */
		{ A_FEED, "250 2.0.0 Ok: queued as Q1\r\n", PIPE_ENV, PS_MORE,
		    0 },
		{ A_FEED, OKS "354 go\r\n", "hi\r\n.\r\n", PS_MORE, 0 },
		{ A_FEED, "250 2.0.0 Ok: queued as Q2\r\n", "", PS_MORE, 0 },
		{ A_QUIT, NULL, "QUIT\r\n", PS_MORE, 0 },
		{ A_FEED, "221 2.0.0 Bye\r\n", "", PS_DONE, 0 },
		{ A_END, NULL, NULL, PS_MORE, 0 },
	};
	struct scen	 sc = { .cfg = SMTP_CFG, .steps = steps,
	    .resubmit_in_cb = 1 };
	struct cap	 cap;

	run(&sc, &cap);
	cr_assert_eq(cap.n, 2);
	cr_assert_eq(cap.next_rc, 0);
	cr_assert_str_eq(cap.r[0].qid, "Q1");
	cr_assert_str_eq(cap.r[1].qid, "Q2");
	cr_assert_eq(cap.r[1].outcome, SMTP_ACCEPTED);
	cr_assert_eq(cap.state, SMTP_ST_CLOSED);
}

Test(smtp_client, idle_421_and_unsolicited)
{
	struct smtp_config cfg = SMTP_CFG;
	struct smtp_conn *c;
	size_t		 used;
	const char	*in = GREET EHLO_PIPE;

	c = smtp_new(&cfg);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_COMMAND);
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	cr_assert(smtp_is_idle(c));
	cr_assert(smtp_can_submit(c));
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_NONE);
	cr_assert_eq(smtp_extensions(c), SMTP_EXT_PIPELINING | SMTP_EXT_SIZE |
	    SMTP_EXT_8BITMIME | SMTP_EXT_ENHANCED);
	cr_assert_eq(smtp_size_limit(c), 10000);
	cr_assert_eq(smtp_input(c, "421 4.4.2 idle\r\n", 16, &used), PS_ERROR);
	cr_assert_eq(smtp_error(c), ERR_MTA);
	cr_assert_not(smtp_can_submit(c));
	cr_assert_eq(smtp_quit(c), -1);
	smtp_free(&c);

	c = smtp_new(&cfg);
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	cr_assert_eq(smtp_input(c, "250 what\r\n", 10, &used), PS_ERROR);
	cr_assert_eq(smtp_error(c), ERR_PROTOCOL);
	cr_assert(strstr(smtp_error_text(c), "without a command") != NULL);
	smtp_free(&c);

	cfg.helo_name = "bad name";
	cr_assert_null(smtp_new(&cfg));
}

Test(smtp_client, timeout_kinds)
{
	struct smtp_config cfg = SMTP_CFG;
	struct smtp_conn *c = smtp_new(&cfg);
	struct smtp_txn	 t;
	struct src	 src = { .data = "x\r\n", .len = 3 };
	struct cap	 cap;
	size_t		 used;
	const char	*in = GREET EHLO_BASIC;

	memset(&t, 0, sizeof(t));
	memset(&cap, 0, sizeof(cap));
	t.from = "";
	t.rcpt = R1;
	t.nrcpt = 1;
	t.body = (struct smtp_body){ src_read, src_rewind, &src, 3 };
	t.result = on_result;
	t.arg = &cap;
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	cr_assert_eq(smtp_submit(c, &t), 0);
	cr_assert_eq(smtp_submit(c, &t), -1);	/* one at a time */
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_COMMAND);
	cr_assert_eq(smtp_input(c, "250 ok\r\n250 ok\r\n", 16, &used),
	    PS_MORE);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_COMMAND);
	cr_assert_eq(smtp_input(c, "354 go\r\n", 8, &used), PS_MORE);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_DATA_BLOCK);
	cr_assert_eq(smtp_quit(c), -1);
	pump_all(c, 100);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_FINAL);
	cr_assert_eq(src.rewinds, 1);
	cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used), PS_MORE);
	cr_assert_eq(smtp_timeout_kind(c), SMTP_TIMEOUT_NONE);
	cr_assert_eq(smtp_timeout_default(SMTP_TIMEOUT_COMMAND), 300);
	cr_assert_eq(smtp_timeout_default(SMTP_TIMEOUT_DATA_BLOCK), 180);
	cr_assert_eq(smtp_timeout_default(SMTP_TIMEOUT_FINAL), 600);
	smtp_free(&c);
}

/* A machine in the data phase of a pipelined one-recipient DATA message. */
static struct smtp_conn *
in_data(struct smtp_txn *t, struct src *src, struct cap *cap)
{
	struct smtp_config cfg = SMTP_CFG;
	struct smtp_conn *c = smtp_new(&cfg);
	size_t		 used;
	const char	*in = GREET EHLO_PIPE;

	memset(t, 0, sizeof(*t));
	memset(cap, 0, sizeof(*cap));
	t->from = "";
	t->rcpt = R1;
	t->nrcpt = 1;
	t->body = (struct smtp_body){ src_read, src_rewind, src, src->len };
	t->result = on_result;
	t->arg = cap;
	cr_assert_eq(smtp_input(c, in, strlen(in), &used), PS_MORE);
	cr_assert_eq(smtp_submit(c, t), 0);
	cr_assert_eq(smtp_input(c, OKS "354 go\r\n", strlen(OKS) + 8, &used),
	    PS_MORE);
	buf_reset(smtp_output(c));
	return c;
}

Test(smtp_client, source_failures)
{
	struct smtp_txn	 t;
	struct src	 src = { .data = "line one\r\nline two\r\n", .len = 20,
	    .maxread = 5, .fail_errno = EIO, .fail_at = 10 };
	struct cap	 cap;
	struct smtp_conn *c;

	/* A read error mid-message: never terminate what was not read. */
	c = in_data(&t, &src, &cap);
	cr_assert_eq(smtp_pump(c, 2), PS_MORE);
	cr_assert_gt(smtp_output(c)->len, 0);
	while (smtp_pump_wanted(c) && smtp_pump(c, 2) == PS_MORE)
		;
	cr_assert_eq(smtp_state(c), SMTP_ST_FAILED);
	cr_assert_eq(smtp_error(c), ERR_LOCAL);
	cr_assert_eq(smtp_output(c)->len, 0);
	cr_assert_eq(cap.n, 1);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	cr_assert_eq(cap.r[0].unknown, 0);
	cr_assert_eq(cap.r[0].rcode[0], 451);
	smtp_free(&c);

	/* The source ends before its announced size. */
	src = (struct src){ .data = "abc", .len = 3 };
	c = in_data(&t, &src, &cap);
	t.body.size = 0;	/* already copied: size stays 3 */
	src.len = 2;
	cr_assert_eq(smtp_pump(c, 100), PS_ERROR);
	cr_assert_eq(smtp_output(c)->len, 0);
	cr_assert(strstr(smtp_error_text(c), "early") != NULL);
	cr_assert_eq(cap.r[0].outcome, SMTP_TEMPFAIL);
	smtp_free(&c);

	/* EAGAIN: nothing now, the rest later. */
	src = (struct src){ .data = "abc", .len = 3, .eagain = 1 };
	c = in_data(&t, &src, &cap);
	cr_assert_eq(smtp_pump(c, 100), PS_MORE);
	cr_assert_eq(smtp_output(c)->len, 0);
	cr_assert(smtp_pump_wanted(c));
	cr_assert_eq(smtp_pump(c, 100), PS_MORE);
	cr_assert_str_eq(smtp_output(c)->data, "abc\r\n.\r\n");
	smtp_free(&c);
	cr_assert_eq(cap.n, 0);	/* freed mid-transaction: no callback */
}

/* ---------------------------------------------------------------------- */
/* Property: random bodies through DATA and BDAT.                          */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

/* The reference: every CRLF, bare CR and bare LF becomes CRLF; end in CRLF. */
static void
ref_norm(const unsigned char *in, size_t len, struct buf *out)
{
	size_t	 i;

	buf_reset(out);
	for (i = 0; i < len; i++) {
		if (in[i] == '\r') {
			buf_add(out, "\r\n", 2);
			if (i + 1 < len && in[i + 1] == '\n')
				i++;
		} else if (in[i] == '\n')
			buf_add(out, "\r\n", 2);
		else
			buf_add_byte(out, in[i]);
	}
	if (out->len > 0 && (out->len < 2 ||
	    memcmp(out->data + out->len - 2, "\r\n", 2) != 0))
		buf_add(out, "\r\n", 2);
}

static void
random_body(unsigned char *b, size_t len)
{
	static const char alpha[] = "..\r\r\n\nab x";
	size_t	 i;

	for (i = 0; i < len; i++)
		b[i] = rnd() % 8 == 0 ? (unsigned char)rnd() :
		    (unsigned char)alpha[rnd() % (sizeof(alpha) - 1)];
}

/* No bare CR or LF anywhere in the bytes. */
static int
crlf_clean(const char *w, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (w[i] == '\r' && (i + 1 >= len || w[i + 1] != '\n'))
			return 0;
		if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

Test(smtp_property, data_dot_stuffing, .timeout = 60)
{
	unsigned char	 body[400];
	struct buf	 ref = BUF_INIT, un = BUF_INIT;
	int		 iter;

	for (iter = 0; iter < 500; iter++) {
		size_t	 len = rnd() % sizeof(body), wlen, i, bol;
		char	*w;

		random_body(body, len);
		w = data_wire((char *)body, len, 1 + rnd() % 20,
		    1 + rnd() % 64, &wlen);
		ref_norm(body, len, &ref);
		cr_assert_geq(wlen, 3);
		cr_assert(crlf_clean(w, wlen), "iter %d: bare CR/LF", iter);
		cr_assert(memcmp(w + wlen - 3, ".\r\n", 3) == 0);
		cr_assert(wlen == 3 || memcmp(w + wlen - 5, "\r\n", 2) == 0);
		/* No early end of data: no line of just "." before the end. */
		for (i = 0, bol = 1; i + 3 < wlen; i++) {
			cr_assert(!(bol && memcmp(w + i, ".\r\n", 3) == 0),
			    "iter %d: early terminator at %zu", iter, i);
			bol = w[i] == '\n';
		}
		/* Un-stuff: drop the terminator, un-double leading dots. */
		buf_reset(&un);
		for (i = 0, bol = 1; i < wlen - 3; i++) {
			if (bol && w[i] == '.') {
				cr_assert_eq(w[i + 1], '.', "iter %d", iter);
				i++;
			}
			buf_add_byte(&un, (unsigned char)w[i]);
			bol = w[i] == '\n';
		}
		cr_assert_eq(un.len, ref.len, "iter %d", iter);
		cr_assert(memcmp(un.data, ref.data, ref.len) == 0, "iter %d",
		    iter);
		free(w);
	}
	buf_free(&ref);
	buf_free(&un);
}

Test(smtp_property, bdat_chunks, .timeout = 60)
{
	unsigned char	 body[400];
	struct buf	 ref = BUF_INIT, pay = BUF_INIT, wire = BUF_INIT;
	int		 iter;

	for (iter = 0; iter < 300; iter++) {
		struct smtp_config cfg = { .helo_name = "h",
		    .bdat_chunk = 1 + rnd() % 32 };
		const char	*ehlo = rnd() % 2 ? GREET EHLO_PCHUNK :
		    GREET EHLO_CHUNK;
		struct smtp_conn *c = smtp_new(&cfg);
		struct src	 src = { 0 };
		struct smtp_txn	 t;
		struct cap	 cap;
		size_t		 len = rnd() % sizeof(body), used, off, fed = 0;
		size_t		 nonlast;
		int		 last, guard = 0;

		random_body(body, len);
		ref_norm(body, len, &ref);
		src.data = (char *)body;
		src.len = len;
		src.maxread = 1 + rnd() % 20;
		memset(&t, 0, sizeof(t));
		memset(&cap, 0, sizeof(cap));
		t.from = "";
		t.rcpt = R1;
		t.nrcpt = 1;
		t.body = (struct smtp_body){ src_read, src_rewind, &src, len };
		t.result = on_result;
		t.arg = &cap;
		cr_assert_eq(smtp_input(c, ehlo, strlen(ehlo), &used), PS_MORE);
		cr_assert_eq(smtp_submit(c, &t), 0);
		if (strstr(ehlo, "PIPELINING") != NULL)
			cr_assert_eq(smtp_input(c, "250 ok\r\n250 ok\r\n", 16,
			    &used), PS_MORE);
		else {
			cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used),
			    PS_MORE);
			cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used),
			    PS_MORE);
		}
		buf_reset(smtp_output(c));
		buf_reset(&wire);
		/* Answer every chunk until LAST went out. */
		do {
			pump_all(c, 1 + rnd() % 100);
			buf_add(&wire, smtp_output(c)->data,
			    smtp_output(c)->len);
			buf_reset(smtp_output(c));
			buf_reset(&pay);
			nonlast = 0;
			last = 0;
			for (off = 0; off < wire.len;) {
				char	*end;
				unsigned long n;

				cr_assert(strncmp(wire.data + off, "BDAT ", 5)
				    == 0, "iter %d", iter);
				n = strtoul(wire.data + off + 5, &end, 10);
				cr_assert_leq(n, cfg.bdat_chunk);
				if (strncmp(end, " LAST\r\n", 7) == 0) {
					last = 1;
					end += 7;
				} else {
					cr_assert(strncmp(end, "\r\n", 2) == 0);
					/* Non-last chunks are exactly full. */
					cr_assert_eq(n, cfg.bdat_chunk);
					nonlast++;
					end += 2;
				}
				off = (size_t)(end - wire.data);
				cr_assert_leq(off + n, wire.len);
				buf_add(&pay, wire.data + off, n);
				off += n;
			}
			for (; fed < nonlast; fed++)
				cr_assert_eq(smtp_input(c, "250 ok\r\n", 8,
				    &used), PS_MORE);
		} while (!last && guard++ < 10000);
		cr_assert(last, "iter %d: no LAST", iter);
		cr_assert_eq(pay.len, ref.len, "iter %d", iter);
		cr_assert(memcmp(pay.data, ref.data, ref.len) == 0);
		cr_assert(crlf_clean(pay.data, pay.len));
		cr_assert_eq(smtp_input(c, "250 ok\r\n", 8, &used), PS_MORE);
		cr_assert_eq(cap.n, 1);
		cr_assert_eq(cap.r[0].outcome, SMTP_ACCEPTED);
		smtp_free(&c);
	}
	buf_free(&ref);
	buf_free(&pay);
	buf_free(&wire);
}

Test(smtp_property, normaliser_any_split)
{
	unsigned char	 body[200];
	struct buf	 ref = BUF_INIT, out = BUF_INIT;
	int		 iter;

	for (iter = 0; iter < 500; iter++) {
		struct smtp_norm n;
		size_t	 len = rnd() % sizeof(body), off = 0, k;

		random_body(body, len);
		ref_norm(body, len, &ref);
		buf_reset(&out);
		smtp_norm_init(&n, 0);
		while (off < len) {
			k = 1 + rnd() % 9;
			if (k > len - off)
				k = len - off;
			cr_assert_eq(smtp_norm_feed(&n, body + off, k, &out),
			    0);
			off += k;
		}
		cr_assert_eq(smtp_norm_finish(&n, &out), 0);
		cr_assert_eq(out.len, ref.len);
		cr_assert_eq(n.out, ref.len);
		cr_assert(memcmp(out.data, ref.data, ref.len) == 0);
	}
	buf_free(&ref);
	buf_free(&out);
}

/*
 * Long lines with rare bare CR/LF and dots at line starts, fed in chunks
 * of any size (the normaliser copies runs inside a line with memchr):
 * the output is the byte-by-byte reference, dot-stuffed when asked.
 */
Test(smtp_property, normaliser_long_lines)
{
	unsigned char	 body[4000];
	struct buf	 ref = BUF_INIT, stuffed = BUF_INIT, out = BUF_INIT;
	const struct buf *want;
	struct smtp_norm n;
	int		 iter, stuff;
	size_t		 i;

	for (iter = 0; iter < 400; iter++) {
		size_t	 len = rnd() % sizeof(body), off = 0, k;

		for (i = 0; i < len; i++) {
			uint32_t x = rnd() % 200;

			body[i] = x < 3 ? "\r\n\r"[x] : x < 8 ? '.' :
			    x < 12 && i + 1 < len ? '\r' : (unsigned char)x;
			if (x >= 8 && x < 12 && i + 1 < len)
				body[++i] = '\n';
		}
		ref_norm(body, len, &ref);
		/* Dot-stuffing of the normalised text: a '.' at a line start. */
		buf_reset(&stuffed);
		for (i = 0; i < ref.len; i++) {
			if (ref.data[i] == '.' && (i == 0 ||
			    ref.data[i - 1] == '\n'))
				buf_add_byte(&stuffed, '.');
			buf_add_byte(&stuffed, (unsigned char)ref.data[i]);
		}
		stuff = iter % 2;
		buf_reset(&out);
		smtp_norm_init(&n, stuff);
		while (off < len) {
			k = 1 + rnd() % (iter % 3 == 0 ? 7 : 1500);
			if (k > len - off)
				k = len - off;
			cr_assert_eq(smtp_norm_feed(&n, body + off, k, &out),
			    0);
			off += k;
		}
		cr_assert_eq(smtp_norm_finish(&n, &out), 0);
		want = stuff ? &stuffed : &ref;
		cr_assert_eq(out.len, want->len, "iter %d", iter);
		cr_assert_eq(n.out, want->len);
		cr_assert(memcmp(out.data, want->data, want->len) == 0,
		    "iter %d", iter);
	}
	buf_free(&ref);
	buf_free(&stuffed);
	buf_free(&out);
}
