/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/message.h"
#include "haul/spool.h"
#include "haul/token.h"

/* One filter run over a memory spool; the filter stays for inspection. */
struct run {
	struct spool	*spool;
	struct msgf	*f;
	char		*out;
	size_t		 len;
};

#define WHOLE		SIZE_MAX	/* feed in one write */
#define BYTEWISE	(SIZE_MAX - 1)	/* feed one byte per write */

static void
run_free(struct run *r)
{
	msgf_free(&r->f);
	spool_free(&r->spool);
	free(r->out);
	memset(r, 0, sizeof *r);
}

/* Feed in[0..n) split at k (or WHOLE, BYTEWISE), finish, collect output. */
static void
run(struct run *r, const char *in, size_t n, size_t k,
    const struct msgf_limits *lim)
{
	size_t	 i;
	ssize_t	 got;

	r->spool = spool_new(NULL, 64 * 1024 * 1024);
	r->f = msgf_new(r->spool, lim);
	if (k == BYTEWISE) {
		for (i = 0; i < n; i++)
			cr_assert_eq(msgf_write(r->f, in + i, 1), 0);
	} else if (k == WHOLE)
		cr_assert_eq(msgf_write(r->f, in, n), 0);
	else {
		cr_assert_eq(msgf_write(r->f, in, k), 0);
		cr_assert_eq(msgf_write(r->f, in + k, n - k), 0);
	}
	cr_assert_eq(msgf_finish(r->f), 0);
	r->len = (size_t)spool_size(r->spool);
	r->out = malloc(r->len + 1);
	spool_rewind(r->spool);
	for (i = 0; i < r->len; i += (size_t)got) {
		got = spool_read(r->spool, r->out + i, r->len - i);
		cr_assert_gt(got, 0);
	}
	r->out[r->len] = '\0';
	cr_assert_eq(msgf_info(r->f)->size, r->len);
	cr_assert_eq(msgf_info(r->f)->in_size, n);
}

static int
value_eq(const struct msgf_value *a, const struct msgf_value *b)
{
	if (a->text == NULL || b->text == NULL)
		return a->text == b->text;
	return a->len == b->len && a->flags == b->flags &&
	    memcmp(a->text, b->text, a->len) == 0;
}

/* Everything the filter reports must not depend on the chunking. */
static void
same_info(const struct msgf_info *a, const struct msgf_info *b, size_t k)
{
	size_t	 i;

	cr_assert_eq(a->flags, b->flags, "split %zu: flags %#x vs %#x", k,
	    a->flags, b->flags);
	cr_assert_eq(a->stripped, b->stripped, "split %zu", k);
	cr_assert_eq(a->eightbit, b->eightbit, "split %zu", k);
	cr_assert_eq(a->nul_count, b->nul_count, "split %zu", k);
	cr_assert_eq(a->header_size, b->header_size, "split %zu", k);
	cr_assert_eq(a->rp, b->rp, "split %zu", k);
	cr_assert_eq(a->return_path == NULL, b->return_path == NULL);
	if (a->return_path != NULL)
		cr_assert_str_eq(a->return_path, b->return_path);
	cr_assert(value_eq(&a->message_id, &b->message_id), "split %zu", k);
	cr_assert(value_eq(&a->date, &b->date), "split %zu", k);
	cr_assert_eq(a->nreceived, b->nreceived);
	for (i = 0; i < a->nreceived; i++)
		cr_assert(value_eq(&a->received[i], &b->received[i]));
	cr_assert_eq(a->nenvelope, b->nenvelope);
	for (i = 0; i < a->nenvelope; i++) {
		cr_assert_eq(a->envelope[i].kind, b->envelope[i].kind);
		cr_assert(value_eq(&a->envelope[i].value,
		    &b->envelope[i].value));
	}
}

/*
 * Run in at every split position and byte by byte; each run must give
 * exactly want and the same info as the single write.  Returns flags.
 */
static unsigned
check_splits(const char *in, size_t n, const char *want, size_t wlen,
    const struct msgf_limits *lim)
{
	struct run	 whole, r;
	unsigned	 flags;
	size_t		 k;

	run(&whole, in, n, WHOLE, lim);
	cr_assert_eq(whole.len, wlen, "got %zu bytes \"%s\"", whole.len,
	    whole.out);
	cr_assert_eq(memcmp(whole.out, want, wlen), 0, "got \"%s\"",
	    whole.out);
	for (k = 0; k <= n + 1; k++) {
		run(&r, in, n, k <= n ? k : BYTEWISE, lim);
		cr_assert_eq(r.len, wlen, "split %zu", k);
		cr_assert_eq(memcmp(r.out, want, wlen), 0, "split %zu: \"%s\"",
		    k, r.out);
		same_info(msgf_info(whole.f), msgf_info(r.f), k);
		run_free(&r);
	}
	flags = msgf_info(whole.f)->flags;
	run_free(&whole);
	return flags;
}

#define CHECK(in, want, lim)	\
	check_splits(in, sizeof(in) - 1, want, sizeof(want) - 1, lim)

Test(message, strips_x_haul_fields)
{
	unsigned	 fl;

	fl = CHECK("From: a@b\r\nX-Haul-Token: v=1; forged\r\nSubject: s\r\n"
	    "\r\nbody\r\n",
	    "From: a@b\r\nSubject: s\r\n\r\nbody\r\n", NULL);
	cr_assert_eq(fl, 0);
	/* Folded, any case, white space before the colon, first and last. */
	CHECK("x-hAUL-account: evil\r\n\tcontinued\r\nFrom: a\r\n"
	    "X-Haul-Token  : v=1;\r\n k=x;\r\n  s=y\r\nX-Hauler: keep\r\n"
	    "X-Haul: keep\r\nX-Haul-Trace: z\r\n\r\n",
	    "From: a\r\nX-Hauler: keep\r\nX-Haul: keep\r\n\r\n", NULL);
}

Test(message, x_haul_in_body_stays)
{
	struct run	 r;

	CHECK("Subject: s\r\n\r\nX-Haul-Token: v=1; in the body\r\n",
	    "Subject: s\r\n\r\nX-Haul-Token: v=1; in the body\r\n", NULL);
	run(&r, "A: 1\r\nX-Haul-A: 1\r\nX-Haul-B: 2\r\n\r\nX-Haul-C: 3\r\n",
	    48, WHOLE, NULL);
	cr_assert_eq(msgf_info(r.f)->stripped, 2);
	cr_assert_str_eq(r.out, "A: 1\r\n\r\nX-Haul-C: 3\r\n");
	run_free(&r);
}

Test(message, line_ends)
{
	unsigned	 fl;

	fl = CHECK("A: 1\nB: 2\r\rC: 3\r\n\nbody\rline\n\r\n",
	    "A: 1\r\nB: 2\r\n\r\nC: 3\r\n\r\nbody\r\nline\r\n\r\n", NULL);
	cr_assert(fl & MSGF_BARE_EOL);
	/* CR at a chunk end and LF at the next chunk's start: one CRLF. */
	fl = CHECK("A: 1\r\n\r\nx\r\ny\r\n", "A: 1\r\n\r\nx\r\ny\r\n", NULL);
	cr_assert_eq(fl & MSGF_BARE_EOL, 0);
	fl = CHECK("A: 1\r\n\r\nend\r", "A: 1\r\n\r\nend\r\n", NULL);
	cr_assert(fl & MSGF_BARE_EOL);
	CHECK("\n", "\r\n", NULL);
	CHECK("\r", "\r\n", NULL);
	CHECK("\r\r\n\n", "\r\n\r\n\r\n", NULL);
}

Test(message, missing_final_crlf)
{
	unsigned	 fl;

	fl = CHECK("Subject: x\r\n\r\nbody", "Subject: x\r\n\r\nbody\r\n", NULL);
	cr_assert_eq(fl, MSGF_ADDED_CRLF);
	fl = CHECK("Subject: x\r\nFrom: y", "Subject: x\r\nFrom: y\r\n", NULL);
	cr_assert_eq(fl, MSGF_ADDED_CRLF | MSGF_NO_BODY);
}

Test(message, empty_and_header_only)
{
	struct run	 r;
	unsigned	 fl;

	run(&r, "", 0, WHOLE, NULL);
	cr_assert_eq(r.len, 0);
	cr_assert_eq(msgf_info(r.f)->flags, MSGF_EMPTY | MSGF_NO_BODY);
	run_free(&r);
	fl = CHECK("Subject: x\r\nX-Haul-Token: y\r\n", "Subject: x\r\n", NULL);
	cr_assert_eq(fl, MSGF_NO_BODY);
	/* All header removed: nothing left but that is still a message. */
	fl = CHECK("X-Haul-Token: y\r\n", "", NULL);
	cr_assert_eq(fl, MSGF_NO_BODY);
	fl = CHECK("\r\nbody only\r\n", "\r\nbody only\r\n", NULL);
	cr_assert_eq(fl, 0);
}

Test(message, lines_that_are_not_fields)
{
	unsigned	 fl;

	/* Kept byte for byte; stripping goes on until the empty line. */
	fl = CHECK(" orphan\r\nno colon here\r\n: empty name\r\n"
	    "X-Haul-Token: x\r\n\r\nb\r\n",
	    " orphan\r\nno colon here\r\n: empty name\r\n\r\nb\r\n", NULL);
	cr_assert_eq(fl, MSGF_BAD_HDR_LINE);
}

Test(message, counts_8bit_and_nul)
{
	static const char in[] = "Subject: \xc3\xa4\r\n\r\na\0b\xff\r\n";
	struct run	 r;

	run(&r, in, sizeof in - 1, WHOLE, NULL);
	cr_assert_eq(msgf_info(r.f)->eightbit, 3);
	cr_assert_eq(msgf_info(r.f)->nul_count, 1);
	cr_assert_eq(r.len, sizeof in - 1, "NUL is kept");
	cr_assert_eq(memcmp(r.out, in, r.len), 0);
	run_free(&r);
}

/* Run a single header and return the Return-Path state and address. */
static enum msgf_rp
return_path(const char *hdr, char *addr, size_t addrsz)
{
	struct run	 r;
	enum msgf_rp	 rp;

	run(&r, hdr, strlen(hdr), WHOLE, NULL);
	rp = msgf_info(r.f)->rp;
	snprintf(addr, addrsz, "%s", msgf_info(r.f)->return_path != NULL ?
	    msgf_info(r.f)->return_path : "(null)");
	run_free(&r);
	return rp;
}

Test(message, return_path_variants)
{
	char	 a[300];

	cr_assert_eq(return_path("Return-Path: <>\r\n\r\n", a, sizeof a),
	    MSGF_RP_NULL);
	cr_assert_str_eq(a, "(null)");
	cr_assert_eq(return_path("Return-Path: <a@b.example>\r\n\r\n", a,
	    sizeof a), MSGF_RP_ADDR);
	cr_assert_str_eq(a, "a@b.example");
	cr_assert_eq(return_path("return-path:\r\n\t<x.y+z@c>  \r\n\r\n", a,
	    sizeof a), MSGF_RP_ADDR);
	cr_assert_str_eq(a, "x.y+z@c");
	cr_assert_eq(return_path("Return-Path: <@r1,@r2:u@d>\r\n", a,
	    sizeof a), MSGF_RP_ADDR);
	cr_assert_str_eq(a, "u@d");
	cr_assert_eq(return_path("Subject: none\r\n\r\n", a, sizeof a),
	    MSGF_RP_NONE);
	cr_assert_eq(return_path("Return-Path: garbage\r\n\r\n", a, sizeof a),
	    MSGF_RP_BAD);
	cr_assert_eq(return_path("Return-Path: <a b@c>\r\n", a, sizeof a),
	    MSGF_RP_BAD);
	cr_assert_eq(return_path("Return-Path: <nodomain>\r\n", a, sizeof a),
	    MSGF_RP_BAD);
	cr_assert_eq(return_path("Return-Path: <a@b> trailing\r\n", a,
	    sizeof a), MSGF_RP_BAD);
	cr_assert_eq(return_path("Return-Path: <a\0@b>\r\n", a, sizeof a),
	    MSGF_RP_BAD);
	cr_assert_eq(return_path("Return-Path: <\xc3\xa4@b>\r\n", a, sizeof a),
	    MSGF_RP_BAD);
	/* The topmost one counts. */
	cr_assert_eq(return_path("Return-Path: <first@a>\r\n"
	    "Return-Path: <second@b>\r\n\r\n", a, sizeof a), MSGF_RP_ADDR);
	cr_assert_str_eq(a, "first@a");
	/* In the body it is just text. */
	cr_assert_eq(return_path("\r\nReturn-Path: <a@b>\r\n", a, sizeof a),
	    MSGF_RP_NONE);
}

Test(message, return_path_in_a_return_path_with_nul)
{
	static const char in[] = "Return-Path: <a\0@b>\r\n\r\n";
	struct run	 r;

	/* strlen() would see "<a": the length must be what counts. */
	run(&r, in, sizeof in - 1, WHOLE, NULL);
	cr_assert_eq(msgf_info(r.f)->rp, MSGF_RP_BAD);
	run_free(&r);
}

Test(message, captures)
{
	static const char in[] =
	    "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID:\r\n <id.1@example>\r\n"
	    "Delivered-To: one@example\r\n"
	    "message-id: <second@example>\r\n"
	    "Received: from c\r\n\tby d; date\r\n"
	    "X-Original-To: two@example\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Envelope-To: three@example\r\n"
	    "Subject: ctl \x01 and \x7f\r\n"
	    "\r\n"
	    "Received: in body\r\n";
	const struct msgf_info *in_;
	struct run	 r;

	run(&r, in, sizeof in - 1, WHOLE, NULL);
	in_ = msgf_info(r.f);
	cr_assert_str_eq(in_->message_id.text, "<id.1@example>");
	cr_assert_eq(in_->message_id.flags, 0);
	cr_assert_str_eq(in_->date.text, "Mon, 1 Jan 2024 00:00:00 +0000");
	cr_assert_eq(in_->nreceived, 2);
	cr_assert_str_eq(in_->received[0].text,
	    "from a by b; Mon, 1 Jan 2024 00:00:00 +0000");
	cr_assert_str_eq(in_->received[1].text, "from c\tby d; date");
	cr_assert_eq(in_->nenvelope, 3);
	cr_assert_eq(in_->envelope[0].kind, MSGF_DELIVERED_TO);
	cr_assert_str_eq(in_->envelope[0].value.text, "one@example");
	cr_assert_eq(in_->envelope[1].kind, MSGF_X_ORIGINAL_TO);
	cr_assert_str_eq(in_->envelope[1].value.text, "two@example");
	cr_assert_eq(in_->envelope[2].kind, MSGF_ENVELOPE_TO);
	cr_assert_str_eq(in_->envelope[2].value.text, "three@example");
	cr_assert_str_eq(r.out, in, "captured fields are written unchanged");
	run_free(&r);

	/* The same at every split. */
	check_splits(in, sizeof in - 1, in, sizeof in - 1, NULL);
}

Test(message, capture_bounds)
{
	struct msgf_limits	 lim = { .max_value = 8, .max_received = 2,
	    .max_envelope = 1 };
	static const char in[] =
	    "Message-ID: <0123456789@x>\r\n"
	    "Date: a\0b\r\n"
	    "Received: 1\r\nReceived: 2\r\nReceived: 3\r\n"
	    "Delivered-To: a\r\nDelivered-To: b\r\n\r\n";
	const struct msgf_info *i;
	struct run	 r;

	run(&r, in, sizeof in - 1, WHOLE, &lim);
	i = msgf_info(r.f);
	cr_assert_str_eq(i->message_id.text, "<0123456");
	cr_assert_eq(i->message_id.len, 8);
	cr_assert_eq(i->message_id.flags, MSGF_V_TRUNCATED);
	cr_assert_str_eq(i->date.text, "a?b");
	cr_assert_eq(i->date.flags, MSGF_V_CTL);
	cr_assert_eq(i->nreceived, 2);
	cr_assert_str_eq(i->received[1].text, "2");
	cr_assert_eq(i->nenvelope, 1);
	cr_assert_eq(r.len, sizeof in - 1);
	run_free(&r);
}

/* Build a message with a header of about hdr bytes of small fields. */
static char *
big_header(size_t hdr, size_t *lenp)
{
	struct buf	 b = BUF_INIT;
	size_t		 i;

	buf_add_str(&b, "X-Haul-Token: early\r\nSubject: big\r\n");
	for (i = 0; b.len < hdr; i++)
		buf_addf(&b, "X-Pad-%zu: %s\r\n", i,
		    "0123456789012345678901234567890123456789");
	buf_add_str(&b, "X-Haul-Token: late\r\n\r\nbody\r\n");
	*lenp = b.len;
	return buf_steal(&b);
}

Test(message, header_over_limit_passes_through)
{
	struct run	 r, r2;
	char		*in;
	size_t		 n, early = strlen("X-Haul-Token: early\r\n");

	in = big_header(2 * 1024 * 1024, &n);
	run(&r, in, n, WHOLE, NULL);
	cr_assert(msgf_info(r.f)->flags & MSGF_HDR_LIMIT);
	cr_assert_eq(msgf_info(r.f)->stripped, 1);
	cr_assert_eq(r.len, n - early);
	cr_assert_eq(memcmp(r.out, in + early, r.len), 0,
	    "nothing but the early token removed");
	cr_assert_eq(msgf_info(r.f)->header_size, MSGF_MAX_HEADER + 1);
	/* A few splits (every split would be quadratic here). */
	run(&r2, in, n, BYTEWISE, NULL);
	cr_assert_eq(r2.len, r.len);
	cr_assert_eq(memcmp(r2.out, r.out, r.len), 0);
	same_info(msgf_info(r.f), msgf_info(r2.f), BYTEWISE);
	run_free(&r2);
	run(&r2, in, n, MSGF_MAX_HEADER + 1, NULL);
	cr_assert_eq(memcmp(r2.out, r.out, r.len), 0);
	run_free(&r2);
	run_free(&r);
	free(in);
}

Test(message, long_field_passes_through)
{
	struct run	 r;
	struct buf	 b = BUF_INIT;
	size_t		 i;

	/* One 2 MiB folded X-Haul field: past 64 KiB it is not ours to cut. */
	buf_add_str(&b, "Subject: s\r\nX-Haul-Token: x");
	for (i = 0; i < 2 * 1024 * 1024 / 64; i++)
		buf_add_str(&b, "\r\n 012345678901234567890123456789012345678"
		    "90123456789012345678");
	buf_add_str(&b, "\r\nX-Haul-After: y\r\n\r\nbody\r\n");
	run(&r, b.data, b.len, WHOLE, NULL);
	cr_assert_eq(msgf_info(r.f)->flags, MSGF_HDR_LIMIT);
	cr_assert_eq(msgf_info(r.f)->stripped, 0);
	cr_assert_eq(r.len, b.len);
	cr_assert_eq(memcmp(r.out, b.data, b.len), 0);
	run_free(&r);

	/* Small limits, every split. */
	{
		struct msgf_limits lim = { .max_field = 16 };
		static const char in[] = "A: 1\r\nX-Haul-Long: 0123456789\r\n"
		    "X-Haul-B: 2\r\n\r\n";

		cr_assert_eq(CHECK(in, in, &lim), MSGF_HDR_LIMIT);
	}
	buf_free(&b);
}

Test(message, spool_errors_are_sticky)
{
	struct spool	*s;
	struct msgf	*f;

	s = spool_new(NULL, 1024);
	spool_set_max(s, 10);
	f = msgf_new(s, NULL);
	errno = 0;
	cr_assert_eq(msgf_write(f, "Subject: much too long\r\n\r\n", 26), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(msgf_write(f, "x", 1), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(msgf_finish(f), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(msgf_finish(f), -1);
	cr_assert_eq(errno, EINVAL);
	msgf_free(&f);
	cr_assert_null(f);
	spool_free(&s);

	s = spool_new(NULL, 1024);
	f = msgf_new(s, NULL);
	cr_assert_eq(msgf_finish(f), 0);
	cr_assert_eq(msgf_write(f, "x", 1), -1, "no input after finish");
	cr_assert_eq(errno, EINVAL);
	msgf_free(&f);
	spool_free(&s);
}

static const struct trace_info basic_trace = {
	.from_host = "imap.example.com",
	.proto = "imap",
	.account = "alice",
	.mailbox = "INBOX",
	.uid = "42",
	.by_host = "mx.local",
	.id = "0001",
	.date = 0,
};

Test(message, trace_basic)
{
	struct buf	 b = BUF_INIT;

	cr_assert_eq(msg_trace_headers(&b, &basic_trace), 0);
	cr_assert_str_eq(b.data,
	    "Received: from imap.example.com (via imap account alice mailbox "
	    "INBOX uid 42)\r\n by mx.local with haul id 0001; Thu, 1 Jan 1970 "
	    "00:00:00 +0000\r\n");
	buf_free(&b);
}

Test(message, trace_sanitises)
{
	struct trace_info	 t = basic_trace;
	struct buf		 b = BUF_INIT;

	t.from_host = "evil\r\nX-Haul-Token: forged";
	t.uid = "a(b)c\\d";
	t.mailbox = NULL;
	t.account = "";
	t.id = NULL;
	cr_assert_eq(msg_trace_headers(&b, &t), 0);
	cr_assert_null(strstr(b.data, "\r\nX-Haul"));
	cr_assert_not_null(strstr(b.data, "from evil%0D%0AX-Haul-Token:%20"
	    "forged"), "%s", b.data);
	cr_assert_not_null(strstr(b.data, " a%28b%29c%5Cd)"), "%s", b.data);
	cr_assert_not_null(strstr(b.data, "account unknown"), "%s", b.data);
	cr_assert_null(strstr(b.data, "mailbox"));
	buf_free(&b);

	/* A token that is not one line of printable ASCII is refused. */
	buf_add_str(&b, "keep");
	t = basic_trace;
	t.token = "v=1;\r\nX: y";
	errno = 0;
	cr_assert_eq(msg_trace_headers(&b, &t), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_str_eq(b.data, "keep", "out unchanged on failure");
	t.token = "";
	cr_assert_eq(msg_trace_headers(&b, &t), -1);
	buf_free(&b);
}

/* xorshift: seeded so any failure replays. */
static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* A random C string of up to max bytes, any byte but NUL. */
static char *
rnd_str(uint32_t *seed, size_t max)
{
	size_t	 n = rnd(seed) % (max + 1), i;
	char	*s = malloc(n + 1);

	for (i = 0; i < n; i++) {
		/* Mostly the troublesome bytes. */
		if (rnd(seed) % 2)
			s[i] = "\r\n\t ()\\;:%\x7f\x80\xff"[rnd(seed) % 13];
		else
			s[i] = (char)(1 + rnd(seed) % 255);
	}
	s[n] = '\0';
	return s;
}

/* F8: the header lines hauld adds are always sound, whatever the input. */
static void
check_header_block(const char *p, size_t len)
{
	size_t	 i, line = 0;

	cr_assert_gt(len, 2);
	cr_assert_eq(strlen(p), len, "no NUL");
	cr_assert(p[len - 2] == '\r' && p[len - 1] == '\n');
	cr_assert(strncmp(p, "Received: ", 10) == 0);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r') {
			cr_assert_eq(p[i + 1], '\n', "bare CR at %zu", i);
			cr_assert_leq(line, 997, "line of %zu octets", line);
			i++;
			line = 0;
			if (i + 1 < len) {
				/* A continuation, or one of our two fields. */
				cr_assert(p[i + 1] == ' ' ||
				    strncmp(p + i + 1, "X-Haul-Token: ", 14) == 0,
				    "unexpected line at %zu", i + 1);
				cr_assert(p[i + 2] != '\r' && p[i + 2] != ' ',
				    "empty or blank line at %zu", i + 1);
			}
			continue;
		}
		cr_assert_neq(c, '\n', "bare LF at %zu", i);
		cr_assert(c >= 0x20 && c < 0x7f, "byte %#x at %zu", c, i);
		line++;
	}
}

Test(message, trace_property_f8)
{
	struct haul_key		 k;
	struct token_fields	 f, g;
	struct trace_info	 t;
	struct buf		 b = BUF_INIT, tok = BUF_INIT;
	unsigned char		 kb[32] = { 1, 2, 3 };
	uint32_t		 seed = 0x8badf00d;
	char			*s[7], *v, *e;
	size_t			 i, j, n;
	int			 rc;

	cr_assert_eq(key_from_bytes(&k, kb, sizeof kb), 0);
	for (i = 0; i < 1000; i++) {
		for (j = 0; j < 7; j++)
			s[j] = rnd_str(&seed, j == 3 ? 1200 : 300);
		t = (struct trace_info){ .from_host = s[0], .proto = s[1],
		    .account = s[2], .mailbox = s[3], .uid = s[4],
		    .by_host = s[5], .id = s[6],
		    .date = (time_t)(int32_t)rnd(&seed) * (i % 3 ? 1 : 4096) };

		/* A real token for random fields. */
		memset(&f, 0, sizeof f);
		for (j = 0; j < 1 + rnd(&seed) % TOKEN_ACCOUNT_MAX; j++)
			f.account[j] = "abcXYZ019._-"[rnd(&seed) % 12];
		n = strlen(s[3]) > TOKEN_MAILBOX_MAX ? TOKEN_MAILBOX_MAX :
		    strlen(s[3]);
		memcpy(f.mailbox, s[3], n);
		if (n == 0)
			strcpy(f.mailbox, "INBOX");
		for (j = 0; j < 1 + rnd(&seed) % TOKEN_UID_MAX; j++)
			f.uid[j] = (char)(0x21 + rnd(&seed) % 94);
		f.uidvalidity = rnd(&seed);
		f.time = rnd(&seed);
		buf_reset(&tok);
		cr_assert_eq(token_make(&k, &f, &tok), 0);
		t.token = i % 10 == 9 ? s[6] : tok.data;

		buf_reset(&b);
		rc = msg_trace_headers(&b, &t);
		if (t.token == tok.data)
			cr_assert_eq(rc, 0, "iteration %zu", i);
		if (rc == 0) {
			check_header_block(b.data, b.len);
		} else
			cr_assert_eq(b.len, 0);
		if (rc == 0 && t.token == tok.data) {
			/* The folded token still verifies as itself. */
			v = strstr(b.data, "\r\nX-Haul-Token:");
			cr_assert_not_null(v);
			v += strlen("\r\nX-Haul-Token:");
			e = b.data + b.len - 2;
			cr_assert_eq(token_verify(&k, 1, v, (size_t)(e - v),
			    (time_t)f.time, 0, &g, NULL), 0, "%s", v);
			cr_assert_str_eq(g.mailbox, f.mailbox);
			cr_assert_str_eq(g.uid, f.uid);
		}
		for (j = 0; j < 7; j++)
			free(s[j]);
	}
	buf_free(&b);
	buf_free(&tok);
	key_free(&k);
}

/*
 * Bodies with long runs of plain text and, here and there, a bare CR or
 * LF, a NUL, an 8-bit byte or a CR that a chunk boundary separates from
 * its LF: the word-at-a-time body path must give exactly what feeding one
 * byte at a time gives, for any chunking.
 */
Test(message, body_fast_path_property)
{
	static const char rare[] = "\r\n\0\x80\xff\r\n";
	static const char *const fields[] = {
		"Subject: a long subject line that goes on and on\r\n",
		"X-Haul-Token: v=1; forged\r\n\tcontinued here\r\n",
		"Received: from x\r\n by y\r\n",
		"Message-ID: <a@b>\r\n", "Bare: lf\n", "Bare: cr\r",
		"no colon line\r\n", "Return-Path: <r@s>\r\n",
	};
	struct msgf_limits lim;
	uint32_t	 seed = 12345;
	struct run	 whole, bytewise, r;
	char		*in;
	size_t		 iter, n, i, k, h;

	for (iter = 0; iter < 300; iter++) {
		char	 head[2048];

		/* A random header; small limits now and then. */
		h = 0;
		for (k = rnd(&seed) % 8; k > 0; k--) {
			const char *fl = fields[rnd(&seed) % 8];

			memcpy(head + h, fl, strlen(fl));
			h += strlen(fl);
		}
		memcpy(head + h, "\r\n", 2);
		h += 2;
		memset(&lim, 0, sizeof(lim));
		if (iter % 3 == 1) {
			lim.max_field = 10 + rnd(&seed) % 60;
			lim.max_header = 20 + rnd(&seed) % 300;
		}
		n = h + rnd(&seed) % 3000;
		in = malloc(n + 1);
		memcpy(in, head, h);
		for (i = h; i < n; i++) {
			uint32_t x = rnd(&seed) % 1000;

			if (x < 25)
				in[i] = rare[x % (sizeof(rare) - 1)];
			else if (x < 60 && i + 1 < n) {
				in[i++] = '\r';
				in[i] = '\n';
			} else
				in[i] = (char)('a' + x % 26);
		}
		run(&whole, in, n, WHOLE, &lim);
		run(&bytewise, in, n, BYTEWISE, &lim);
		cr_assert_eq(whole.len, bytewise.len, "iter %zu", iter);
		cr_assert(memcmp(whole.out, bytewise.out, whole.len) == 0,
		    "iter %zu", iter);
		same_info(msgf_info(whole.f), msgf_info(bytewise.f), 0);
		for (k = 0; k < 4; k++) {
			run(&r, in, n, rnd(&seed) % (n + 1), &lim);
			cr_assert_eq(r.len, whole.len);
			cr_assert(memcmp(r.out, whole.out, r.len) == 0);
			same_info(msgf_info(r.f), msgf_info(whole.f), k);
			run_free(&r);
		}
		/* Nothing but CRLF line ends in the output. */
		for (i = 0; i < whole.len; i++) {
			if (whole.out[i] == '\r')
				cr_assert_eq(whole.out[i + 1], '\n');
			if (whole.out[i] == '\n')
				cr_assert(i > 0 && whole.out[i - 1] == '\r');
		}
		run_free(&whole);
		run_free(&bytewise);
		free(in);
	}
}
