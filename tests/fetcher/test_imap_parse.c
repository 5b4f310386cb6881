/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/log.h"

/*
 * The IMAP response parser, fed every fixture at every split position and
 * byte by byte: each run must render exactly the same responses, stream
 * exactly the same literal octets and fail (or not) with the same reason.
 */

TestSuite(imap_parse);
TestSuite(imap_helpers);

/* What the test hooks do. */
struct hookcfg {
	int		 stream;	/* stream BODY[]/BINARY[] at depth 1 */
	int		 reject;	/* refuse every literal */
	int		 fail_data;	/* literal_data returns -1 */
};

struct tctx {
	const struct hookcfg *cfg;
	struct buf	*ev;
	struct buf	 data;		/* the current streamed literal */
};

static enum imap_lit
t_literal(void *arg, const struct imap_response *r,
    const struct imap_literal *lit)
{
	struct tctx	*t = arg;
	char		 line[64];

	if (t->cfg->reject)
		return IMAP_LIT_REJECT;
	if (t->cfg->stream && lit->depth == 1 && lit->prev != NULL &&
	    (imap_arg_is(r, lit->prev, "BODY[]") ||
	    imap_arg_is(r, lit->prev, "BINARY[]"))) {
		snprintf(line, sizeof(line), "<begin %llu%s>",
		    (unsigned long long)lit->size,
		    (lit->flags & IMAP_ARGF_LITERAL8) ? " lit8" : "");
		buf_add_str(t->ev, line);
		buf_reset(&t->data);
		return IMAP_LIT_STREAM;
	}
	return IMAP_LIT_BUFFER;
}

static int
t_data(void *arg, const void *d, size_t len)
{
	struct tctx	*t = arg;

	if (t->cfg->fail_data)
		return -1;
	buf_add(&t->data, d, len);
	return 0;
}

static int
t_end(void *arg)
{
	struct tctx	*t = arg;
	char		 esc[1024];

	log_printable(esc, sizeof(esc), t->data.data == NULL ? "" :
	    t->data.data, t->data.len);
	buf_add_str(t->ev, "<data ");
	buf_add_str(t->ev, esc);
	buf_add_str(t->ev, ">");
	return 0;
}

static const struct imap_parser_hooks thooks = {
	.literal = t_literal,
	.literal_data = t_data,
	.literal_end = t_end,
};

struct prun {
	char	*ev;		/* rendered responses, one per line */
	int	 bad;
	char	 err[160];
	size_t	 fed;		/* octets consumed in all */
};

/*
 * Feed in[0..n): cut at split (0 = none), or one byte at a time.  Every
 * complete response is rendered onto a line of r->ev.
 */
static void
prun(const char *in, size_t n, const struct imap_limits *lim,
    const struct hookcfg *cfg, size_t split, int bytewise, struct prun *r)
{
	struct imap_parser	*ps;
	struct buf		 ev = BUF_INIT;
	struct tctx		 t;
	size_t			 a, b, off, used;
	enum imap_parse		 st;
	char			 line[4096];

	memset(r, 0, sizeof(*r));
	memset(&t, 0, sizeof(t));
	t.cfg = cfg;
	t.ev = &ev;
	buf_add_str(&ev, "");
	ps = imap_parser_new(lim, &thooks, &t);
	for (a = 0; a < n; a = b) {
		if (bytewise)
			b = a + 1;
		else if (split > a && split < n)
			b = split;
		else
			b = n;
		for (off = a; off < b; ) {
			st = imap_parse(ps, in + off, b - off, &used);
			cr_assert_leq(used, b - off);
			off += used;
			r->fed += used;
			if (st == IMAP_PARSE_BAD) {
				r->bad = 1;
				snprintf(r->err, sizeof(r->err), "%s",
				    imap_parser_error(ps));
				goto done;
			}
			if (st == IMAP_PARSE_MORE) {
				cr_assert_eq(off, b, "MORE left input");
				break;
			}
			cr_assert_gt(used, 0, "OK without progress");
			imap_render(imap_parser_response(ps), line,
			    sizeof(line));
			buf_add_str(&ev, line);
			buf_add_str(&ev, "\n");
		}
	}
done:
	/* BAD is sticky. */
	if (r->bad)
		cr_assert_eq(imap_parse(ps, "x", 1, NULL), IMAP_PARSE_BAD);
	imap_parser_free(&ps);
	cr_assert_null(ps);
	buf_free(&t.data);
	r->ev = buf_steal(&ev);
}

struct pexpect {
	const char	*ev;
	const char	*err;		/* NULL: must not fail */
};

/* Every split and byte by byte must give exactly ex. */
static void
pcheck_n(const char *in, size_t n, const struct imap_limits *lim,
    const struct hookcfg *cfg, const struct pexpect *ex)
{
	struct prun	 r;
	size_t		 k;

	for (k = 0; k <= n + 1; k++) {
		prun(in, n, lim, cfg, k == n + 1 ? 0 : k, k == n + 1, &r);
		cr_assert_str_eq(r.ev, ex->ev, "responses differ at split %zu"
		    " of %zu", k, n);
		cr_assert_eq(r.bad, ex->err != NULL, "split %zu: %s", k,
		    r.err);
		if (ex->err != NULL)
			cr_assert_not_null(strstr(r.err, ex->err), "split "
			    "%zu: error '%s' lacks '%s'", k, r.err, ex->err);
		free(r.ev);
	}
}

#define PCHECK(in, lim, cfg, ev, err) do {				\
	const struct pexpect ex_ = { (ev), (err) };			\
	pcheck_n((in), sizeof(in) - 1, (lim), (cfg), &ex_);		\
} while (0)

static const struct hookcfg buffered = { 0 };
static const struct hookcfg streaming = { .stream = 1 };

/* ---- well-formed responses ---- */

Test(imap_parse, greeting_and_status_responses)
{
	static const char in[] =
	    "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"
	    "* PREAUTH [CAPABILITY IMAP4rev2] hello\r\n"
	    "* BYE shutting down\r\n"
	    "h12 OK [READ-WRITE] SELECT completed (0.001 + 0.000 secs).\r\n"
	    "h3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
	    "A.b-9 BAD\r\n"
	    "* OK [ALERT]no space, [brackets] {5} and \"quotes\r\n"
	    "* OK\r\n"
	    "* NO [UNAVAILABLE]\r\n";

	PCHECK(in, NULL, &buffered,
	    "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] Dovecot ready.\n"
	    "* PREAUTH [CAPABILITY IMAP4rev2] hello\n"
	    "* BYE shutting down\n"
	    "h12 OK [READ-WRITE] SELECT completed (0.001 + 0.000 secs).\n"
	    "h3 NO [AUTHENTICATIONFAILED] Authentication failed.\n"
	    "A.b-9 BAD\n"
	    "* OK [ALERT] no space, [brackets] {5} and \"quotes\n"
	    "* OK\n"
	    "* NO [UNAVAILABLE]\n", NULL);
}

Test(imap_parse, continuation_forms)
{
	static const char in[] = "+ idling\r\n+\r\n+ \r\n+ dGVzdA==\r\n";

	PCHECK(in, NULL, &buffered, "+ idling\n+\n+\n+ dGVzdA==\n", NULL);
}

Test(imap_parse, numbered_untagged)
{
	static const char in[] =
	    "* 3 EXISTS\r\n* 0 EXISTS\r\n* 0 RECENT\r\n* 2 EXPUNGE\r\n"
	    "* 4294967295 EXISTS\r\n* 007 EXISTS\r\n";

	PCHECK(in, NULL, &buffered,
	    "* 3 EXISTS\n* 0 EXISTS\n* 0 RECENT\n* 2 EXPUNGE\n"
	    "* 4294967295 EXISTS\n* 7 EXISTS\n", NULL);
}

Test(imap_parse, fetch_quoted_nil_lists)
{
	static const char in[] =
	    "* 1 FETCH (FLAGS (\\Seen \\Answered) UID 5 RFC822.SIZE 1234 "
	    "ENVELOPE (\"Mon, 7 Feb 1994\" \"a \\\"q\\\" \\\\ b\" NIL "
	    "((\"Terry\" NIL \"gray\" \"cac.washington.edu\")) NIL) "
	    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")\r\n"
	    "* 2 FETCH (UID 6 FLAGS ())\r\n";

	PCHECK(in, NULL, &buffered,
	    "* 1 FETCH (FLAGS (\\Seen \\Answered) UID 5 RFC822.SIZE 1234 "
	    "ENVELOPE (\"Mon, 7 Feb 1994\" \"a \\\"q\\\" \\\\ b\" NIL "
	    "((\"Terry\" NIL \"gray\" \"cac.washington.edu\")) NIL) "
	    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")\n"
	    "* 2 FETCH (UID 6 FLAGS ())\n", NULL);
}

Test(imap_parse, bodystructure_lists_without_spaces)
{
	/* body-type-mpart: bodies follow each other without SP. */
	static const char in[] =
	    "* 9 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 3 1)(\"text\" \"html\" NIL NIL "
	    "NIL \"7bit\" 9 1) \"alternative\"))\r\n";

	/* Rendered canonically, with a space. */
	PCHECK(in, NULL, &buffered,
	    "* 9 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
	    "\"us-ascii\") NIL NIL \"7bit\" 3 1) (\"text\" \"html\" NIL NIL "
	    "NIL \"7bit\" 9 1) \"alternative\"))\n", NULL);
}

Test(imap_parse, section_atoms_keep_brackets_and_spaces)
{
	static const char in[] =
	    "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {4}\r\nab\r\n "
	    "BODY[]<0> \"x\" UID 3)\r\n";

	PCHECK(in, NULL, &buffered,
	    "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {4}\"ab\\x0d\\x0a\""
	    " BODY[]<0> \"x\" UID 3)\n", NULL);
}

Test(imap_parse, buffered_literals_in_list_and_status)
{
	/* Literal names may hold quotes, spaces and 8-bit octets. */
	static const char in[] =
	    "* LIST (\\HasNoChildren) \"/\" {7}\r\nIN \"B\xc3\xa4\r\n"
	    "* LIST (\\Noselect) NIL {0}\r\n\r\n"
	    "* STATUS {5+}\r\nLists (MESSAGES 2 UIDNEXT 9)\r\n";

	PCHECK(in, NULL, &buffered,
	    "* LIST (\\HasNoChildren) \"/\" {7}\"IN \\\"B\\xc3\\xa4\"\n"
	    "* LIST (\\Noselect) NIL {0}\"\"\n"
	    "* STATUS {5}\"Lists\" (MESSAGES 2 UIDNEXT 9)\n", NULL);
}

Test(imap_parse, several_responses_in_one_input)
{
	static const char in[] =
	    "* CAPABILITY IMAP4rev1 IDLE\r\nh1 OK done\r\n* SEARCH\r\n"
	    "* ENABLED IMAP4rev2\r\n* CAPABILITY \r\n";

	PCHECK(in, NULL, &buffered,
	    "* CAPABILITY IMAP4rev1 IDLE\nh1 OK done\n* SEARCH\n"
	    "* ENABLED IMAP4rev2\n* CAPABILITY\n", NULL);
}

Test(imap_parse, body_literal_streamed_not_buffered)
{
	/* NUL, bare LF and CR inside the literal pass through. */
	static const char in[] =
	    "* 3 FETCH (UID 7 BODY[] {12}\r\nhi\0\n\r\r\n)x\r\n.)\r\n"
	    "* 4 FETCH (BODY[] {0}\r\n UID 8)\r\n"
	    "* 5 FETCH (BINARY[] ~{3}\r\n\0\1\2)\r\n"
	    "h9 OK done\r\n";
	/* A literal far over the buffered cap streams fine. */
	struct imap_limits lim = { .literal_max = 4 };

	PCHECK(in, &lim, &streaming,
	    "<begin 12><data hi\\x00\\n\\r\\r\\n)x\\r\\n.>"
	    "* 3 FETCH (UID 7 BODY[] {12}<streamed>)\n"
	    "<begin 0><data >* 4 FETCH (BODY[] {0}<streamed> UID 8)\n"
	    "<begin 3 lit8><data \\x00\\x01\\x02>"
	    "* 5 FETCH (BINARY[] ~{3}<streamed>)\n"
	    "h9 OK done\n", NULL);
}

Test(imap_parse, depth_limit_exactly_allowed)
{
	char	 in[256];
	size_t	 n = 0;
	int	 i;
	struct pexpect ex = { NULL, NULL };
	char	 want[256];
	size_t	 w = 0;

	n += (size_t)snprintf(in, sizeof(in), "* X ");
	w += (size_t)snprintf(want, sizeof(want), "* X ");
	for (i = 0; i < IMAP_DEPTH_MAX; i++) {
		in[n++] = '(';
		want[w++] = '(';
	}
	in[n++] = 'a';
	want[w++] = 'a';
	for (i = 0; i < IMAP_DEPTH_MAX; i++) {
		in[n++] = ')';
		want[w++] = ')';
	}
	memcpy(in + n, "\r\n", 2);
	n += 2;
	want[w++] = '\n';
	want[w] = '\0';
	ex.ev = want;
	pcheck_n(in, n, NULL, &buffered, &ex);
}

/* ---- malformed input ---- */

Test(imap_parse, literal_sizes_checked_before_storage)
{
	static const char big[] = "* LIST () \"/\" {4294967296}\r\nxx";
	static const char huge[] = "* LIST () \"/\" {99999999999999999999}\r\n";
	static const char neg[] = "* LIST () \"/\" {-1}\r\n";
	static const char empty[] = "* LIST () \"/\" {}\r\n";
	static const char plus[] = "* LIST () \"/\" {+}\r\n";
	static const char notend[] = "* LIST () \"/\" {5} x\r\nabcde\r\n";
	static const char over[] = "* LIST () \"/\" {11}\r\nabcdefghijk\r\n";
	static const char two[] = "* X {6}\r\nabcdef {6}\r\nabcdef\r\n";
	static const char n64[] = "* X {9223372036854775808}\r\n";
	static const char body[] = "* 1 FETCH (BODY[] {1025}\r\nabc";
	struct imap_limits lim = { .literal_max = 10 };
	struct imap_limits slim = { .stream_max = 1024 };

	PCHECK(big, NULL, &buffered, "", "exceeds the cap of 65536");
	PCHECK(huge, NULL, &buffered, "", "literal size out of range");
	PCHECK(neg, NULL, &buffered, "", "malformed literal size");
	PCHECK(empty, NULL, &buffered, "", "literal without a size");
	PCHECK(plus, NULL, &buffered, "", "malformed literal");
	PCHECK(notend, NULL, &buffered, "", "not at the end of a line");
	PCHECK(over, &lim, &buffered, "", "exceeds the cap of 10");
	/* The cap is per response: 6 + 6 > 10. */
	PCHECK(two, &lim, &buffered, "", "literal of 6 octets exceeds the "
	    "cap of 4");
	PCHECK(n64, NULL, &buffered, "", "literal size out of range");
	/* The hook decides to stream, then the stream cap applies. */
	PCHECK(body, &slim, &streaming, "<begin 1025>",
	    "exceeds the cap of 1024");
}

Test(imap_parse, huge_literal_fails_before_its_octets)
{
	static const char in[] = "* 1 FETCH (RFC822 {4294967296}\r\n";
	struct prun	 r;

	/* The bytes after "}CRLF" are never reached: nothing was stored. */
	prun(in, sizeof(in) - 1, NULL, &buffered, 0, 0, &r);
	cr_assert(r.bad);
	cr_assert_eq(r.fed, sizeof(in) - 1);
	free(r.ev);
}

Test(imap_parse, number_ranges)
{
	PCHECK("* 4294967296 EXISTS\r\n", NULL, &buffered, "",
	    "message number out of range");
	PCHECK("* 99999999999999999999999 EXISTS\r\n", NULL, &buffered, "",
	    "message number out of range");
	PCHECK("* 0 EXPUNGE\r\n", NULL, &buffered, "", "EXPUNGE of message 0");
	PCHECK("* 0 FETCH (UID 1)\r\n", NULL, &buffered, "",
	    "FETCH of message 0");
	PCHECK("* 3 EXISTS extra\r\n", NULL, &buffered, "",
	    "unexpected data after EXISTS");
	PCHECK("* 3 OK hi\r\n", NULL, &buffered, "", "status response with");
	PCHECK("* 3\r\n", NULL, &buffered, "", "malformed untagged");
}

Test(imap_parse, nesting_deeper_than_the_limit)
{
	char	 in[128];
	size_t	 n = 0;
	int	 i;

	n += (size_t)snprintf(in, sizeof(in), "* X ");
	for (i = 0; i <= IMAP_DEPTH_MAX; i++)
		in[n++] = '(';
	memcpy(in + n, "a\r\n", 3);
	n += 3;
	{
		struct pexpect ex = { "", "nested deeper than 32" };

		pcheck_n(in, n, NULL, &buffered, &ex);
	}
}

Test(imap_parse, hundred_thousand_levels_fail_fast)
{
	size_t		 n = 100000, i, k;
	char		*in = malloc(2 * n + 16);
	struct prun	 r;

	memcpy(in, "* 1 FETCH ", 10);
	for (i = 0; i < n; i++)
		in[10 + i] = '(';
	for (i = 0; i < n; i++)
		in[10 + n + i] = ')';
	memcpy(in + 10 + 2 * n, "\r\n", 2);
	/* In 4 KiB reads: the 33rd "(" fails, in the first read. */
	{
		struct imap_parser *ps = imap_parser_new(NULL, NULL, NULL);
		size_t used;

		cr_assert_eq(imap_parse(ps, in, 4096, &used), IMAP_PARSE_BAD);
		cr_assert_not_null(strstr(imap_parser_error(ps),
		    "nested deeper than 32"));
		imap_parser_free(&ps);
	}
	/* Byte by byte: nothing past the 33rd "(" is read. */
	prun(in, 2 * n + 12, NULL, &buffered, 0, 1, &r);
	cr_assert(r.bad);
	cr_assert_eq(r.fed, 10 + IMAP_DEPTH_MAX + 1, "fed %zu", r.fed);
	free(r.ev);
	/* All at once: the line cap stops it before any scanning. */
	prun(in, 2 * n + 12, NULL, &buffered, 0, 0, &r);
	cr_assert(r.bad);
	cr_assert_not_null(strstr(r.err, "longer than 65536"));
	free(r.ev);
	/* And at a few split points. */
	for (k = 1; k < 200; k += 37) {
		prun(in, 2 * n + 12, NULL, &buffered, k, 0, &r);
		cr_assert(r.bad, "split %zu", k);
		free(r.ev);
	}
	free(in);
}

Test(imap_parse, line_cap_without_crlf)
{
	size_t		 n = 1024 * 1024;
	char		*in = malloc(n);
	struct imap_parser *ps = imap_parser_new(NULL, NULL, NULL);
	size_t		 used, off = 0;
	enum imap_parse	 st = IMAP_PARSE_MORE;

	memcpy(in, "* OK ", 5);
	memset(in + 5, 'a', n - 5);
	/* 1 MiB in 1000-octet reads: fails at the cap, holds no more. */
	while (off < n && st == IMAP_PARSE_MORE) {
		size_t	 m = n - off < 1000 ? n - off : 1000;

		st = imap_parse(ps, in + off, m, &used);
		off += used;
	}
	cr_assert_eq(st, IMAP_PARSE_BAD);
	cr_assert_leq(off, IMAP_LINE_MAX);
	cr_assert_not_null(strstr(imap_parser_error(ps), "longer than"));
	imap_parser_free(&ps);
	free(in);
}

Test(imap_parse, line_cap_counts_all_non_literal_parts)
{
	struct imap_limits lim = { .line_max = 40 };

	/* 19 + 23 = 42 non-literal octets around the literal: over. */
	PCHECK("* LIST () \"/\" {5}\r\nabcde (\"aaaaaaaaaaaaaaaa\")\r\n", &lim,
	    &buffered, "", "longer than 40");
	PCHECK("* OK 34 octets, exactly the cap.\r\n", &(struct imap_limits){
	    .line_max = 34 }, &buffered, "* OK 34 octets, exactly the cap.\n",
	    NULL);
}

Test(imap_parse, framing_errors)
{
	PCHECK("* OK hi\n", NULL, &buffered, "", "not terminated by CRLF");
	PCHECK("* OK hi\rthere\r\n", NULL, &buffered, "",
	    "not terminated by CRLF");
	PCHECK("* 1 FETCH (UID 1)\n", NULL, &buffered, "",
	    "not terminated by CRLF");
	PCHECK("* OK a\0b\r\n", NULL, &buffered, "", "NUL in a response");
	PCHECK("\r\n", NULL, &buffered, "", "malformed response start");
	PCHECK("*OK\r\n", NULL, &buffered, "", "malformed untagged");
	PCHECK("* \r\n", NULL, &buffered, "", "missing response keyword");
	PCHECK("+x\r\n", NULL, &buffered, "", "malformed continuation");
	PCHECK("h1 BYE now\r\n", NULL, &buffered, "", "not OK, NO or BAD");
	PCHECK("h1 FETCH x\r\n", NULL, &buffered, "", "not OK, NO or BAD");
	PCHECK("h1\r\n", NULL, &buffered, "", "malformed tag");
	PCHECK("* OK [ALERT text\r\n", NULL, &buffered, "",
	    "unterminated response code");
	PCHECK("* OK []\r\n", NULL, &buffered, "", "malformed response code");
	PCHECK("* OKAY\"x\r\n", NULL, &buffered, "",
	    "malformed response keyword");
}

Test(imap_parse, token_errors)
{
	PCHECK("* X \"abc\r\n", NULL, &buffered, "", "unterminated quoted");
	PCHECK("* X \"a\\bc\"\r\n", NULL, &buffered, "", "bad escape");
	PCHECK("* X (a)b\r\n", NULL, &buffered, "", "missing space");
	PCHECK("* X a\"b\"\r\n", NULL, &buffered, "", "missing space");
	PCHECK("* X \"a\"\"b\"\r\n", NULL, &buffered, "", "missing space");
	PCHECK("* X {3}\r\nabc{3}\r\nabc\r\n", NULL, &buffered, "",
	    "missing space");
	PCHECK("* X a)\r\n", NULL, &buffered, "", "unbalanced");
	PCHECK("* X (a\r\n", NULL, &buffered, "", "unterminated list");
	PCHECK("* X BODY[x\r\n", NULL, &buffered, "", "unterminated \"[\"");
	PCHECK("* X ~3\r\n", NULL, &buffered, "", "malformed literal8");
	PCHECK("* X \x7f\r\n", NULL, &buffered, "", "unexpected octet");
	PCHECK("* X {5}\n", NULL, &buffered, "", "not at the end of a line");
}

Test(imap_parse, too_many_arguments)
{
	size_t		 n = IMAP_ARGS_MAX + 10, i, len = 0;
	char		*in = malloc(4 + 2 * n + 3);
	struct prun	 r;

	memcpy(in, "* X", 3);
	len = 3;
	for (i = 0; i < n; i++) {
		in[len++] = ' ';
		in[len++] = 'a';
	}
	memcpy(in + len, "\r\n", 2);
	len += 2;
	prun(in, len, NULL, &buffered, 0, 0, &r);
	cr_assert(r.bad);
	cr_assert_not_null(strstr(r.err, "more than 8192 arguments"));
	free(r.ev);
	free(in);
}

Test(imap_parse, hooks_can_refuse)
{
	static const struct hookcfg rej = { .reject = 1 };
	static const struct hookcfg fail = { .stream = 1, .fail_data = 1 };

	PCHECK("* LIST () \"/\" {3}\r\nabc\r\n", NULL, &rej, "",
	    "literal of 3 octets refused");
	PCHECK("* 1 FETCH (BODY[] {3}\r\nabc)\r\n", NULL, &fail, "<begin 3>",
	    "literal consumer failed");
}

Test(imap_parse, consumed_stops_at_the_response_end)
{
	static const char in[] = "h1 OK a\r\nh2 OK b\r\n";
	struct imap_parser *ps = imap_parser_new(NULL, NULL, NULL);
	const struct imap_response *r;
	size_t		 used;

	cr_assert_eq(imap_parse(ps, in, sizeof(in) - 1, &used), IMAP_PARSE_OK);
	cr_assert_eq(used, 9);
	r = imap_parser_response(ps);
	cr_assert_eq(r->kind, IMAP_TAGGED);
	cr_assert_eq(r->cond, IMAP_COND_OK);
	cr_assert_eq(r->taglen, 2);
	cr_assert_eq(memcmp(r->tag, "h1", 2), 0);
	cr_assert_eq(imap_parse(ps, in + 9, sizeof(in) - 10, &used),
	    IMAP_PARSE_OK);
	cr_assert_eq(used, 9);
	cr_assert_eq(memcmp(imap_parser_response(ps)->text, "b", 1), 0);
	imap_parser_free(&ps);
}

Test(imap_parse, accessors)
{
	static const char in[] =
	    "* 7 FETCH (UID 4294967295 RFC822.SIZE 9223372036854775807 "
	    "X \"q\" Y {2}\r\nab Z NIL W (1))\r\n";
	struct imap_parser *ps = imap_parser_new(NULL, NULL, NULL);
	const struct imap_response *r;
	const struct imap_arg *l, *a;
	const char	*s;
	size_t		 len, used;
	uint64_t	 v;

	cr_assert_eq(imap_parse(ps, in, sizeof(in) - 1, &used), IMAP_PARSE_OK);
	r = imap_parser_response(ps);
	cr_assert(r->has_num);
	cr_assert_eq(r->num, 7);
	cr_assert(imap_word_is(r, "fetch"));
	l = imap_arg_first(r);
	cr_assert_eq(l->type, IMAP_ARG_LIST);
	cr_assert_null(imap_arg_next(r, l));
	a = imap_arg_child(r, l);
	cr_assert(imap_arg_is(r, a, "uid"));
	a = imap_arg_next(r, a);
	cr_assert_eq(imap_arg_number(r, a, IMAP_NUMBER_MAX, &v), 0);
	cr_assert_eq(v, 4294967295ULL);
	cr_assert_eq(imap_arg_number(r, a, 100, &v), -1);
	a = imap_arg_next(r, imap_arg_next(r, a));
	cr_assert_eq(imap_arg_number(r, a, IMAP_NUMBER64_MAX, &v), 0);
	cr_assert_eq(v, 9223372036854775807ULL);
	a = imap_arg_next(r, imap_arg_next(r, a));
	cr_assert_eq(imap_arg_string(r, a, &s, &len), 0);
	cr_assert_eq(len, 1);
	cr_assert_eq(s[0], 'q');
	cr_assert_eq(imap_arg_number(r, a, 100, &v), -1, "quoted is no number");
	a = imap_arg_next(r, imap_arg_next(r, a));
	cr_assert_eq(a->type, IMAP_ARG_LITERAL);
	cr_assert_eq(imap_arg_string(r, a, &s, &len), 0);
	cr_assert_eq(len, 2);
	a = imap_arg_next(r, imap_arg_next(r, a));
	cr_assert_eq(a->type, IMAP_ARG_NIL);
	cr_assert_eq(imap_arg_string(r, a, &s, &len), -1);
	a = imap_arg_next(r, imap_arg_next(r, a));
	cr_assert_eq(a->type, IMAP_ARG_LIST);
	cr_assert_eq(imap_arg_string(r, a, &s, &len), -1);
	cr_assert_null(imap_arg_next(r, a));
	imap_parser_free(&ps);
}

Test(imap_parse, render_truncates)
{
	static const char in[] = "* OK 0123456789012345678901234567890\r\n";
	struct imap_parser *ps = imap_parser_new(NULL, NULL, NULL);
	char		 out[20];

	cr_assert_eq(imap_parse(ps, in, sizeof(in) - 1, NULL), IMAP_PARSE_OK);
	imap_render(imap_parser_response(ps), out, sizeof(out));
	cr_assert_lt(strlen(out), sizeof(out));
	cr_assert_not_null(strstr(out, "..."));
	imap_parser_free(&ps);
}

/* ---- pure helpers ---- */

Test(imap_helpers, capabilities)
{
	static const char caps[] = "IMAP4rev1 literal+ SASL-IR  AUTH=PLAIN "
	    "AUTH=XOAUTH2 auth=oauthbearer IDLE UIDPLUS MOVE X-GM-EXT-1 "
	    "LOGINDISABLED STARTTLS LITERAL- ENABLE IMAP4rev2";

	cr_assert_eq(imap_parse_caps(caps, sizeof(caps) - 1),
	    IMAP_CAP_IMAP4REV1 | IMAP_CAP_LITERAL_PLUS | IMAP_CAP_SASL_IR |
	    IMAP_CAP_AUTH_PLAIN | IMAP_CAP_AUTH_XOAUTH2 |
	    IMAP_CAP_AUTH_OAUTHBEARER | IMAP_CAP_IDLE | IMAP_CAP_UIDPLUS |
	    IMAP_CAP_MOVE | IMAP_CAP_LOGINDISABLED | IMAP_CAP_STARTTLS |
	    IMAP_CAP_LITERAL_MINUS | IMAP_CAP_ENABLE | IMAP_CAP_IMAP4REV2);
	cr_assert_eq(imap_cap_flag("AUTH=PLAINX", 11), 0);
	cr_assert_eq(imap_parse_caps("", 0), 0);
}

Test(imap_helpers, nz32_and_uidsets)
{
	uint32_t	 v;

	cr_assert_eq(imap_parse_nz32("4294967295", 10, &v), 0);
	cr_assert_eq(v, 4294967295U);
	cr_assert_eq(imap_parse_nz32("4294967296", 10, &v), -1);
	cr_assert_eq(imap_parse_nz32("0", 1, &v), -1);
	cr_assert_eq(imap_parse_nz32("abc", 3, &v), -1);
	cr_assert_eq(imap_parse_nz32("", 0, &v), -1);
	cr_assert_eq(imap_parse_uidset("1:3,7,9:12", 10), 3);
	cr_assert_eq(imap_parse_uidset("5", 1), 1);
	cr_assert_eq(imap_parse_uidset("1:2:3", 5), -1);
	cr_assert_eq(imap_parse_uidset("1,", 2), -1);
	cr_assert_eq(imap_parse_uidset("0", 1), -1);
	cr_assert_eq(imap_parse_uidset("1:*", 3), -1);
	cr_assert_eq(imap_parse_uid_code("APPENDUID", 9, "38505 3955", 10,
	    &v), 0);
	cr_assert_eq(v, 38505);
	cr_assert_eq(imap_parse_uid_code("COPYUID", 7, "38505 304,319:320 "
	    "3956:3958", 27, &v), 0);
	cr_assert_eq(imap_parse_uid_code("COPYUID", 7, "abc 1 2", 7, &v), -1);
	cr_assert_eq(imap_parse_uid_code("COPYUID", 7, "1 2", 3, &v), -1);
	cr_assert_eq(imap_parse_uid_code("APPENDUID", 9, NULL, 0, &v), -1);
}

Test(imap_helpers, classify)
{
	cr_assert_eq(imap_classify("AUTHENTICATIONFAILED", 20, 1), ERR_AUTH);
	cr_assert_eq(imap_classify("UNAVAILABLE", 11, 1), ERR_TEMP);
	cr_assert_eq(imap_classify("unavailable", 11, 0), ERR_TEMP);
	cr_assert_eq(imap_classify("PRIVACYREQUIRED", 15, 1), ERR_TLS);
	cr_assert_eq(imap_classify(NULL, 0, 1), ERR_AUTH);
	cr_assert_eq(imap_classify(NULL, 0, 0), ERR_PROTOCOL);
	cr_assert_eq(imap_classify("ALERT", 5, 1), ERR_AUTH);
}

Test(imap_helpers, choose_auth)
{
	cr_assert_eq(imap_choose_auth(AUTH_AUTO, IMAP_CAP_AUTH_PLAIN),
	    AUTH_PLAIN);
	cr_assert_eq(imap_choose_auth(AUTH_AUTO, 0), AUTH_USER);
	cr_assert_eq(imap_choose_auth(AUTH_AUTO, IMAP_CAP_LOGINDISABLED), -1);
	cr_assert_eq(imap_choose_auth(AUTH_USER, IMAP_CAP_LOGINDISABLED |
	    IMAP_CAP_AUTH_PLAIN), -1);
	cr_assert_eq(imap_choose_auth(AUTH_XOAUTH2, IMAP_CAP_AUTH_PLAIN), -1);
	cr_assert_eq(imap_choose_auth(AUTH_OAUTHBEARER,
	    IMAP_CAP_AUTH_OAUTHBEARER), AUTH_OAUTHBEARER);
	cr_assert_eq(imap_choose_auth(AUTH_APOP, ~0u), -1);
}

Test(imap_helpers, strings_quoted_or_literal_never_raw)
{
	struct buf	 b = BUF_INIT;
	size_t		 split;

	cr_assert_eq(imap_put_string(&b, "INBOX", 5, 0, &split), 0);
	cr_assert_str_eq(b.data, "\"INBOX\"");
	cr_assert_eq(split, 0);
	buf_reset(&b);
	cr_assert_eq(imap_put_string(&b, "a \"b\" \\c", 8, 0, &split), 0);
	cr_assert_str_eq(b.data, "\"a \\\"b\\\" \\\\c\"");
	cr_assert_eq(b.len, imap_string_size("a \"b\" \\c", 8, 0));
	buf_reset(&b);
	cr_assert_eq(imap_put_string(&b, "", 0, 0, &split), 0);
	cr_assert_str_eq(b.data, "\"\"");
	buf_reset(&b);
	/* 8-bit: a literal; synchronizing unless LITERAL+/-. */
	cr_assert_eq(imap_put_string(&b, "B\xc3\xa4r", 4, 0, &split), 0);
	cr_assert_str_eq(b.data, "{4}\r\nB\xc3\xa4r");
	cr_assert_eq(split, 5);
	buf_reset(&b);
	cr_assert_eq(imap_put_string(&b, "B\xc3\xa4r", 4,
	    IMAP_CAP_LITERAL_PLUS, &split), 0);
	cr_assert_str_eq(b.data, "{4+}\r\nB\xc3\xa4r");
	cr_assert_eq(split, 0);
	cr_assert_eq(imap_string_form("\xff", 1, IMAP_CAP_LITERAL_MINUS),
	    IMAP_STR_NONSYNC);
	{
		char	 big[IMAP_LITERAL_MINUS_MAX + 1];

		memset(big, 0xe9, sizeof(big));
		cr_assert_eq(imap_string_form(big, sizeof(big),
		    IMAP_CAP_LITERAL_MINUS), IMAP_STR_SYNC);
		cr_assert_eq(imap_string_form(big, sizeof(big) - 1,
		    IMAP_CAP_LITERAL_MINUS), IMAP_STR_NONSYNC);
	}
	/* CR, LF and NUL cannot be sent in any form. */
	buf_reset(&b);
	cr_assert_eq(imap_put_string(&b, "a\r\nb", 4, IMAP_CAP_LITERAL_PLUS,
	    &split), -1);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(imap_string_form("a\0b", 3, 0), -1);
	cr_assert_eq(imap_string_form("a\nb", 3, 0), -1);
	buf_free(&b);
}

Test(imap_helpers, uidsets_sorted_folded)
{
	struct buf	 b = BUF_INIT;
	uint32_t	 u[] = { 9, 3, 1, 2, 3, 7, 8, 4294967295U };

	cr_assert_eq(imap_put_uidset(&b, u, 8), 0);
	cr_assert_str_eq(b.data, "1:3,7:9,4294967295");
	buf_reset(&b);
	cr_assert_eq(imap_put_uidset(&b, u, 1), 0);
	cr_assert_str_eq(b.data, "9");
	buf_reset(&b);
	u[0] = 0;
	cr_assert_eq(imap_put_uidset(&b, u, 2), -1);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(imap_put_uidset(&b, u, 0), -1);
	buf_free(&b);
}
