/* ISC licence; see LICENSE. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/*
 * The IMAP response parser, after Dovecot's lib-imap/imap-parser.c: a
 * state machine over the bytes of one response, resumable at any byte,
 * no I/O, no globals, no recursion.
 *
 * Non-literal bytes are appended to a pool, but never past the next LF:
 * a literal marker "{n}" can only end a line, so the pool never swallows
 * literal octets or the next response.  The tokenizer walks the pool with
 * a cursor and keeps just enough state (the token being scanned, an
 * escape or bracket flag, the literal size so far) to resume where the
 * input ran out, so every byte is looked at once.  Lists are a flat array
 * of arguments linked by index; nesting depth is a counter checked at
 * each "(", so 10^5 open parentheses fail at depth_max + 1 without
 * touching the stack.
 */

enum phase {
	P_START,		/* first byte of a response */
	P_CONT_SP,		/* after "+" */
	P_STAR_SP,		/* after "*" */
	P_TAG,
	P_FIRST,		/* after "* ": number or word */
	P_WORD,
	P_TEXT_SP,		/* after a status condition */
	P_CODE_OPEN,		/* "[" or text */
	P_CODE,			/* the code atom */
	P_CODE_ARG,		/* up to "]" */
	P_AFTER_CODE,
	P_TEXT,			/* free text up to CRLF */
	P_ARGS_SP,		/* after the word: SP or CRLF */
	P_ARGS,			/* arguments */
	P_EOL,			/* CRLF ends the response */
	P_LITERAL,		/* buffered literal octets */
	P_STREAM,		/* streamed literal octets */
	P_DONE,
	P_FAILED,
};

enum tok {
	TK_NONE,
	TK_ATOM,
	TK_QUOTED,
	TK_TILDE,		/* "~" seen, "{" must follow */
	TK_LITERAL,		/* inside "{...}" */
};

/* Outcome of one tokenizer run. */
enum {
	T_BAD = -1,
	T_MORE,			/* progress made; go on */
	T_DONE,
	T_LITERAL,
	T_WAIT,			/* stuck until more input arrives */
};

/* What may follow the last argument (sep). */
enum {
	SEP_NONE,		/* anything */
	SEP_SPACE,		/* SP, ")" or CRLF */
	SEP_LIST,		/* after ")": also "(" (body lists, addresses) */
};

struct span {
	uint32_t	 off;
	uint32_t	 len;
	int		 set;
};

struct imap_parser {
	struct imap_limits	 lim;
	struct imap_parser_hooks hk;
	void			*arg;

	enum phase		 ph;
	enum tok		 tk;
	size_t			 pos;		/* tokenizer cursor in pool */
	size_t			 tstart;	/* start of the current token */
	int			 esc;		/* quoted: backslash seen */
	int			 bracket;	/* atom: inside "[...]" */
	int			 sep;		/* an argument ended: SP next */
	int			 digits;	/* literal: digits seen */
	unsigned		 litflags;
	uint64_t		 litval;

	struct buf		 pool;
	size_t			 nonlit;	/* non-literal octets so far */
	size_t			 litbuf;	/* buffered literal octets */
	uint64_t		 litleft;

	struct imap_arg		*args;
	uint32_t		 nargs;
	uint32_t		 argcap;
	uint32_t		 open[IMAP_DEPTH_LIMIT + 1];	/* list, +1 */
	uint32_t		 last[IMAP_DEPTH_LIMIT + 1];	/* last arg, +1 */
	unsigned		 depth;

	enum imap_kind		 kind;
	struct span		 tag, word, code, code_arg, text;
	int			 has_num;
	uint32_t		 num;
	enum imap_cond		 cond;

	struct imap_response	 view;
	char			 err[160];
};

/* Keep big buffers only while a big response needs them. */
#define POOL_KEEP	16384
#define ARGS_KEEP	256

static int __attribute__((format(printf, 2, 3)))
bad(struct imap_parser *ps, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(ps->err, sizeof(ps->err), fmt, ap);
	va_end(ap);
	ps->ph = P_FAILED;
	return T_BAD;
}

/*
 * ATOM-CHAR, loosely: anything visible but the specials that start or
 * end other tokens.  8-bit octets are let through (UTF-8 names from
 * servers that do not quote them); the owner treats names as bytes.
 */
static int
atom_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' &&
	    c != '"';
}

/* Words and response codes: no brackets, no 8-bit. */
static int
word_char(unsigned char c)
{
	return atom_char(c) && c < 0x80 && c != '[' && c != ']';
}

/* ASTRING-CHAR except "+" (a tag), 7-bit. */
static int
tag_char(unsigned char c)
{
	return atom_char(c) && c < 0x80 && c != '+' && c != '%' && c != '*';
}

static void
span_set(struct span *s, size_t off, size_t len)
{
	s->off = (uint32_t)off;
	s->len = (uint32_t)len;
	s->set = 1;
}

static int
span_is(const struct imap_parser *ps, const struct span *s, const char *w)
{
	return s->set && str_ieq_n(ps->pool.data + s->off, s->len, w);
}

/* Refresh the borrowed view; pool may have moved since the last one. */
static void
expose(struct imap_parser *ps)
{
	struct imap_response	*v = &ps->view;
	const char		*b = ps->pool.data;

#define SPAN(f, s) do {						\
	v->f = (s).set ? b + (s).off : NULL;			\
	v->f##len = (s).set ? (s).len : 0;			\
} while (0)
	memset(v, 0, sizeof(*v));
	v->kind = ps->kind;
	SPAN(tag, ps->tag);
	SPAN(word, ps->word);
	SPAN(code, ps->code);
	SPAN(code_arg, ps->code_arg);
	SPAN(text, ps->text);
#undef SPAN
	v->has_num = ps->has_num;
	v->num = ps->num;
	v->cond = ps->cond;
	v->args = ps->args;
	v->nargs = ps->nargs;
	v->pool = b;
}

/* Append an argument at the current depth.  Returns its index, or -1. */
static long
arg_add(struct imap_parser *ps, enum imap_arg_type type, size_t off,
    size_t len)
{
	struct imap_arg	*a;
	uint32_t	 idx;

	if (ps->nargs >= IMAP_ARGS_MAX) {
		bad(ps, "more than %d arguments in a response", IMAP_ARGS_MAX);
		return -1;
	}
	if (ps->nargs == ps->argcap) {
		ps->argcap = ps->argcap == 0 ? 32 : ps->argcap * 2;
		ps->args = xreallocarray(ps->args, ps->argcap,
		    sizeof(*ps->args));
	}
	idx = ps->nargs++;
	a = &ps->args[idx];
	memset(a, 0, sizeof(*a));
	a->type = (uint8_t)type;
	a->off = (uint32_t)off;
	a->len = (uint32_t)len;
	if (ps->last[ps->depth] != 0)
		ps->args[ps->last[ps->depth] - 1].next = idx + 1;
	else if (ps->depth > 0)
		ps->args[ps->open[ps->depth] - 1].child = idx + 1;
	ps->last[ps->depth] = idx + 1;
	return idx;
}

static void
reset(struct imap_parser *ps)
{
	ps->ph = P_START;
	ps->tk = TK_NONE;
	ps->pos = ps->tstart = 0;
	ps->esc = ps->bracket = ps->sep = ps->digits = 0;
	ps->litflags = 0;
	ps->litval = 0;
	if (ps->pool.cap > POOL_KEEP)
		buf_free(&ps->pool);
	buf_reset(&ps->pool);
	ps->nonlit = ps->litbuf = 0;
	ps->litleft = 0;
	if (ps->argcap > ARGS_KEEP) {
		free(ps->args);
		ps->args = NULL;
		ps->argcap = 0;
	}
	ps->nargs = 0;
	ps->depth = 0;
	ps->last[0] = 0;
	memset(&ps->tag, 0, sizeof(ps->tag));
	ps->word = ps->code = ps->code_arg = ps->text = ps->tag;
	ps->has_num = 0;
	ps->num = 0;
	ps->cond = IMAP_COND_NONE;
	ps->kind = IMAP_UNTAGGED;
}

struct imap_parser *
imap_parser_new(const struct imap_limits *lim,
    const struct imap_parser_hooks *hk, void *arg)
{
	struct imap_parser	*ps;

	ps = xcalloc(1, sizeof(*ps));
	if (lim != NULL)
		ps->lim = *lim;
	if (ps->lim.line_max == 0 || ps->lim.line_max > 16 * 1024 * 1024)
		ps->lim.line_max = IMAP_LINE_MAX;
	if (ps->lim.literal_max > 16 * 1024 * 1024)
		ps->lim.literal_max = 16 * 1024 * 1024;
	if (ps->lim.literal_max == 0)
		ps->lim.literal_max = IMAP_LITERAL_MAX;
	if (ps->lim.stream_max == 0 || ps->lim.stream_max > IMAP_NUMBER64_MAX)
		ps->lim.stream_max = IMAP_NUMBER64_MAX;
	if (ps->lim.depth_max == 0)
		ps->lim.depth_max = IMAP_DEPTH_MAX;
	if (ps->lim.depth_max > IMAP_DEPTH_LIMIT)
		ps->lim.depth_max = IMAP_DEPTH_LIMIT;
	if (hk != NULL)
		ps->hk = *hk;
	ps->arg = arg;
	/* The pool's own cap is a second fence behind the checks below. */
	buf_init(&ps->pool, ps->lim.line_max + ps->lim.literal_max + 1);
	reset(ps);
	return ps;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser	*ps = *pp;

	if (ps == NULL)
		return;
	buf_free(&ps->pool);
	free(ps->args);
	free(ps);
	*pp = NULL;
}

const struct imap_response *
imap_parser_response(const struct imap_parser *ps)
{
	return &ps->view;
}

const char *
imap_parser_error(const struct imap_parser *ps)
{
	return ps->err;
}

/* The word just read decides how the rest of the line is read. */
static int
after_word(struct imap_parser *ps, unsigned char c)
{
	static const struct {
		const char	*w;
		enum imap_cond	 c;
	} conds[] = {
		{ "OK", IMAP_COND_OK }, { "NO", IMAP_COND_NO },
		{ "BAD", IMAP_COND_BAD }, { "BYE", IMAP_COND_BYE },
		{ "PREAUTH", IMAP_COND_PREAUTH },
	};
	size_t	 i;

	for (i = 0; i < sizeof(conds) / sizeof(conds[0]); i++)
		if (span_is(ps, &ps->word, conds[i].w))
			ps->cond = conds[i].c;
	if (ps->kind == IMAP_TAGGED) {
		if (ps->cond != IMAP_COND_OK && ps->cond != IMAP_COND_NO &&
		    ps->cond != IMAP_COND_BAD)
			return bad(ps, "tagged response is not OK, NO or BAD");
		ps->ph = P_TEXT_SP;
	} else if (ps->has_num) {
		if (ps->cond != IMAP_COND_NONE)
			return bad(ps, "status response with a number");
		if (span_is(ps, &ps->word, "EXISTS") ||
		    span_is(ps, &ps->word, "RECENT") ||
		    span_is(ps, &ps->word, "EXPUNGE")) {
			if (ps->num == 0 && span_is(ps, &ps->word, "EXPUNGE"))
				return bad(ps, "EXPUNGE of message 0");
			ps->ph = P_EOL;
		} else {
			if (ps->num == 0 && span_is(ps, &ps->word, "FETCH"))
				return bad(ps, "FETCH of message 0");
			ps->ph = P_ARGS_SP;
		}
	} else if (ps->cond != IMAP_COND_NONE)
		ps->ph = P_TEXT_SP;
	else
		ps->ph = P_ARGS_SP;
	if (ps->ph == P_EOL && c != '\r')
		return bad(ps, "unexpected data after %.*s", (int)ps->word.len,
		    ps->pool.data + ps->word.off);
	return T_MORE;
}

/* A quoted string ended at pos: unescape it in place, add it. */
static int
quoted_end(struct imap_parser *ps)
{
	char	*d = ps->pool.data;
	size_t	 i, o = ps->tstart + 1;

	for (i = ps->tstart + 1; i < ps->pos; i++) {
		if (d[i] == '\\')
			i++;
		d[o++] = d[i];
	}
	if (arg_add(ps, IMAP_ARG_QUOTED, ps->tstart + 1,
	    o - (ps->tstart + 1)) == -1)
		return T_BAD;
	return T_MORE;
}

static int
atom_end(struct imap_parser *ps)
{
	size_t	 len = ps->pos - ps->tstart;

	if (str_ieq_n(ps->pool.data + ps->tstart, len, "NIL"))
		return arg_add(ps, IMAP_ARG_NIL, ps->tstart, 0) == -1 ?
		    T_BAD : T_MORE;
	return arg_add(ps, IMAP_ARG_ATOM, ps->tstart, len) == -1 ?
	    T_BAD : T_MORE;
}

/* "{n}CRLF" is complete: ask the hook, check the caps, start reading. */
static int
literal_start(struct imap_parser *ps)
{
	struct imap_literal	 lit;
	enum imap_lit		 how = IMAP_LIT_BUFFER;
	long			 idx;

	lit.size = ps->litval;
	lit.depth = ps->depth;
	lit.prev = ps->last[ps->depth] != 0 ?
	    &ps->args[ps->last[ps->depth] - 1] : NULL;
	lit.flags = ps->litflags;
	/* Beyond both caps: refused before anyone sees it. */
	if (lit.size > ps->lim.stream_max &&
	    lit.size > ps->lim.literal_max - ps->litbuf)
		return bad(ps, "literal of %llu octets exceeds the cap of %llu",
		    (unsigned long long)lit.size, (unsigned long long)
		    (ps->lim.stream_max > ps->lim.literal_max - ps->litbuf ?
		    ps->lim.stream_max : ps->lim.literal_max - ps->litbuf));
	if (ps->hk.literal != NULL) {
		expose(ps);
		how = ps->hk.literal(ps->arg, &ps->view, &lit);
	}
	switch (how) {
	case IMAP_LIT_BUFFER:
		if (lit.size > ps->lim.literal_max - ps->litbuf)
			return bad(ps, "literal of %llu octets exceeds the "
			    "cap of %zu", (unsigned long long)lit.size,
			    ps->lim.literal_max - ps->litbuf);
		idx = arg_add(ps, IMAP_ARG_LITERAL, ps->pool.len,
		    (size_t)lit.size);
		ps->litbuf += (size_t)lit.size;
		ps->ph = P_LITERAL;
		break;
	case IMAP_LIT_STREAM:
		if (lit.size > ps->lim.stream_max)
			return bad(ps, "literal of %llu octets exceeds the "
			    "cap of %llu", (unsigned long long)lit.size,
			    (unsigned long long)ps->lim.stream_max);
		idx = arg_add(ps, IMAP_ARG_STREAMED, 0, 0);
		ps->ph = P_STREAM;
		break;
	default:
		return bad(ps, "literal of %llu octets refused",
		    (unsigned long long)lit.size);
	}
	if (idx == -1)
		return T_BAD;
	ps->args[idx].size = lit.size;
	ps->args[idx].flags = (uint8_t)ps->litflags;
	ps->litleft = lit.size;
	ps->tk = TK_NONE;
	ps->sep = SEP_SPACE;
	return T_LITERAL;
}

/* Scan the digits of "{n}", "{n+}" or "~{n}" and the closing CRLF. */
static int
literal_scan(struct imap_parser *ps, const unsigned char *d, size_t end)
{
	while (ps->pos < end) {
		unsigned char c = d[ps->pos];

		if (c >= '0' && c <= '9') {
			unsigned dig = (unsigned)(c - '0');

			if (ps->litflags & IMAP_ARGF_NONSYNC)
				return bad(ps, "malformed literal");
			/* Fail on the digit that overflows, not at "}". */
			if (ps->litval > (IMAP_NUMBER64_MAX - dig) / 10)
				return bad(ps, "literal size out of range");
			ps->litval = ps->litval * 10 + dig;
			ps->digits++;
			ps->pos++;
		} else if (c == '+') {
			if (ps->digits == 0 ||
			    (ps->litflags & IMAP_ARGF_NONSYNC))
				return bad(ps, "malformed literal");
			ps->litflags |= IMAP_ARGF_NONSYNC;
			ps->pos++;
		} else if (c == '}') {
			if (ps->digits == 0)
				return bad(ps, "literal without a size");
			if ((end - ps->pos >= 2 && d[ps->pos + 1] != '\r') ||
			    (end - ps->pos >= 3 && d[ps->pos + 2] != '\n'))
				return bad(ps, "literal not at the end of "
				    "a line");
			if (end - ps->pos < 3)
				return T_WAIT;	/* "}" stays: seen again */
			ps->pos += 3;
			return literal_start(ps);
		} else
			return bad(ps, "malformed literal size");
	}
	return T_MORE;
}

/* One step of argument parsing: a separator, a bracket, a token. */
static int
args_step(struct imap_parser *ps, const unsigned char *d, size_t end)
{
	unsigned char	 c = d[ps->pos];
	long		 idx;

	switch (ps->tk) {
	case TK_ATOM:
		for (; ps->pos < end; ps->pos++) {
			c = d[ps->pos];
			if (c == '\r' || c == '\n') {
				if (ps->bracket)
					return bad(ps, "unterminated \"[\"");
				break;
			}
			if (ps->bracket) {
				if (c == ']')
					ps->bracket = 0;
				else if (c < 0x20 || c == 0x7f)
					return bad(ps, "control octet in an "
					    "atom");
				continue;
			}
			if (c == '[') {
				ps->bracket = 1;
				continue;
			}
			if (!atom_char(c))
				break;
		}
		if (ps->pos == end)
			return T_MORE;
		ps->tk = TK_NONE;
		ps->sep = SEP_SPACE;
		return atom_end(ps);
	case TK_QUOTED:
		for (; ps->pos < end; ps->pos++) {
			c = d[ps->pos];
			if (ps->esc) {
				if (c != '"' && c != '\\')
					return bad(ps, "bad escape in a "
					    "quoted string");
				ps->esc = 0;
			} else if (c == '\\')
				ps->esc = 1;
			else if (c == '"')
				break;
			else if (c == '\r' || c == '\n')
				return bad(ps, "unterminated quoted string");
		}
		if (ps->pos == end)
			return T_MORE;
		ps->tk = TK_NONE;
		ps->sep = SEP_SPACE;
		if (quoted_end(ps) == T_BAD)
			return T_BAD;
		ps->pos++;
		return T_MORE;
	case TK_TILDE:
		if (end - ps->pos < 2)
			return T_WAIT;
		if (d[ps->pos + 1] != '{')
			return bad(ps, "malformed literal8");
		ps->pos += 2;
		ps->tk = TK_LITERAL;
		return literal_scan(ps, d, end);
	case TK_LITERAL:
		return literal_scan(ps, d, end);
	case TK_NONE:
		break;
	}

	if (c == ' ') {
		ps->sep = SEP_NONE;
		ps->pos++;
		return T_MORE;
	}
	if (c == '\n')
		return bad(ps, "line not terminated by CRLF");
	if (c == '\r') {
		if (ps->depth > 0)
			return bad(ps, "unterminated list");
		ps->ph = P_EOL;
		return T_MORE;
	}
	if (c == ')') {
		if (ps->depth == 0)
			return bad(ps, "unbalanced \")\"");
		ps->depth--;
		ps->sep = SEP_LIST;
		ps->pos++;
		return T_MORE;
	}
	if (ps->sep == SEP_SPACE || (ps->sep == SEP_LIST && c != '('))
		return bad(ps, "missing space between arguments");
	ps->tstart = ps->pos;
	switch (c) {
	case '(':
		if (ps->depth >= ps->lim.depth_max)
			return bad(ps, "lists nested deeper than %u",
			    ps->lim.depth_max);
		if ((idx = arg_add(ps, IMAP_ARG_LIST, 0, 0)) == -1)
			return T_BAD;
		ps->depth++;
		ps->open[ps->depth] = (uint32_t)idx + 1;
		ps->last[ps->depth] = 0;
		ps->sep = SEP_NONE;
		ps->pos++;
		return T_MORE;
	case '"':
		ps->tk = TK_QUOTED;
		ps->esc = 0;
		ps->pos++;
		return T_MORE;
	case '{':
		ps->tk = TK_LITERAL;
		ps->litval = 0;
		ps->digits = 0;
		ps->litflags = 0;
		ps->pos++;
		return T_MORE;
	case '~':
		ps->tk = TK_TILDE;
		ps->litval = 0;
		ps->digits = 0;
		ps->litflags = IMAP_ARGF_LITERAL8;
		return T_MORE;
	}
	if (!atom_char(c))
		return bad(ps, "unexpected octet 0x%02x", c);
	ps->tk = TK_ATOM;
	ps->bracket = 0;
	return T_MORE;
}

/*
 * Walk the pool from the cursor.  Returns T_DONE at the end of the
 * response, T_LITERAL when a literal starts, T_MORE when the pool ran
 * out, T_BAD.
 */
static int
tokenize(struct imap_parser *ps)
{
	const unsigned char	*d = (const unsigned char *)ps->pool.data;
	size_t			 end = ps->pool.len;
	uint64_t		 v;
	unsigned char		 c;
	int			 r;

	while (ps->pos < end) {
		c = d[ps->pos];
		switch (ps->ph) {
		case P_START:
			if (c == '+') {
				ps->kind = IMAP_CONTINUE;
				ps->ph = P_CONT_SP;
				ps->pos++;
			} else if (c == '*') {
				ps->kind = IMAP_UNTAGGED;
				ps->ph = P_STAR_SP;
				ps->pos++;
			} else if (tag_char(c)) {
				ps->kind = IMAP_TAGGED;
				ps->tstart = ps->pos;
				ps->ph = P_TAG;
			} else
				return bad(ps, "malformed response start");
			break;
		case P_CONT_SP:
			/* "+" CRLF happens; take it as empty text. */
			if (c == ' ')
				ps->pos++;
			else if (c != '\r')
				return bad(ps, "malformed continuation");
			ps->tstart = ps->pos;
			ps->ph = P_TEXT;
			break;
		case P_STAR_SP:
			if (c != ' ')
				return bad(ps, "malformed untagged response");
			ps->pos++;
			ps->tstart = ps->pos;
			ps->ph = P_FIRST;
			break;
		case P_TAG:
			while (ps->pos < end && tag_char(d[ps->pos]))
				ps->pos++;
			if (ps->pos == end)
				break;
			if (ps->pos - ps->tstart > IMAP_TAG_MAX)
				return bad(ps, "tag too long");
			if (d[ps->pos] != ' ')
				return bad(ps, "malformed tag");
			span_set(&ps->tag, ps->tstart, ps->pos - ps->tstart);
			ps->pos++;
			ps->tstart = ps->pos;
			ps->ph = P_WORD;
			break;
		case P_FIRST:
		case P_WORD:
			while (ps->pos < end && word_char(d[ps->pos]))
				ps->pos++;
			if (ps->pos == end)
				break;
			c = d[ps->pos];
			if (ps->pos == ps->tstart)
				return bad(ps, "missing response keyword");
			if (ps->ph == P_FIRST && d[ps->tstart] >= '0' &&
			    d[ps->tstart] <= '9') {
				if (str_to_u64((const char *)d + ps->tstart,
				    ps->pos - ps->tstart, IMAP_NUMBER_MAX,
				    &v) == -1)
					return bad(ps, "message number out "
					    "of range");
				if (c != ' ')
					return bad(ps, "malformed untagged "
					    "response");
				ps->has_num = 1;
				ps->num = (uint32_t)v;
				ps->pos++;
				ps->tstart = ps->pos;
				ps->ph = P_WORD;
				break;
			}
			if (c != ' ' && c != '\r')
				return bad(ps, "malformed response keyword");
			span_set(&ps->word, ps->tstart, ps->pos - ps->tstart);
			if ((r = after_word(ps, c)) == T_BAD)
				return r;
			break;
		case P_TEXT_SP:
			if (c == '\r') {
				ps->ph = P_EOL;
				break;
			}
			if (c != ' ')
				return bad(ps, "malformed status response");
			ps->pos++;
			ps->ph = P_CODE_OPEN;
			break;
		case P_CODE_OPEN:
			if (c == '[') {
				ps->pos++;
				ps->tstart = ps->pos;
				ps->ph = P_CODE;
			} else {
				ps->tstart = ps->pos;
				ps->ph = P_TEXT;
			}
			break;
		case P_CODE:
			while (ps->pos < end && word_char(d[ps->pos]))
				ps->pos++;
			if (ps->pos == end)
				break;
			c = d[ps->pos];
			if (ps->pos == ps->tstart || (c != ' ' && c != ']'))
				return bad(ps, "malformed response code");
			span_set(&ps->code, ps->tstart, ps->pos - ps->tstart);
			ps->pos++;
			ps->tstart = ps->pos;
			ps->ph = c == ' ' ? P_CODE_ARG : P_AFTER_CODE;
			break;
		case P_CODE_ARG:
			while (ps->pos < end && d[ps->pos] != ']' &&
			    d[ps->pos] != '\r' && d[ps->pos] != '\n')
				ps->pos++;
			if (ps->pos == end)
				break;
			if (d[ps->pos] != ']')
				return bad(ps, "unterminated response code");
			span_set(&ps->code_arg, ps->tstart,
			    ps->pos - ps->tstart);
			ps->pos++;
			ps->ph = P_AFTER_CODE;
			break;
		case P_AFTER_CODE:
			/* "[ALERT]text" without SP: take the text anyway. */
			if (c == ' ')
				ps->pos++;
			ps->tstart = ps->pos;
			ps->ph = P_TEXT;
			break;
		case P_TEXT:
			while (ps->pos < end && d[ps->pos] != '\r' &&
			    d[ps->pos] != '\n')
				ps->pos++;
			if (ps->pos == end)
				break;
			if (d[ps->pos] == '\n')
				return bad(ps, "line not terminated by CRLF");
			span_set(&ps->text, ps->tstart, ps->pos - ps->tstart);
			ps->ph = P_EOL;
			break;
		case P_ARGS_SP:
			if (c == '\r')
				ps->ph = P_EOL;
			else if (c == ' ') {
				ps->pos++;
				ps->ph = P_ARGS;
			} else
				return bad(ps, "missing space after %.*s",
				    (int)ps->word.len,
				    ps->pool.data + ps->word.off);
			break;
		case P_ARGS:
			if ((r = args_step(ps, d, end)) == T_WAIT)
				return T_MORE;
			if (r != T_MORE)
				return r;
			break;
		case P_EOL:
			if (end - ps->pos < 2)
				return T_MORE;
			if (d[ps->pos] != '\r' || d[ps->pos + 1] != '\n')
				return bad(ps, "line not terminated by CRLF");
			ps->pos += 2;
			return T_DONE;
		default:
			return bad(ps, "parser in a bad state");
		}
	}
	return T_MORE;
}

enum imap_parse
imap_parse(struct imap_parser *ps, const void *data, size_t len,
    size_t *consumed)
{
	const unsigned char	*d = data;
	const unsigned char	*lf;
	size_t			 off = 0, n;
	int			 r;

	if (consumed != NULL)
		*consumed = 0;
	if (ps->ph == P_FAILED)
		return IMAP_PARSE_BAD;
	if (ps->ph == P_DONE) {
		reset(ps);
		ps->err[0] = '\0';
	}
	for (;;) {
		if (ps->ph == P_LITERAL || ps->ph == P_STREAM) {
			n = len - off;
			if (n > ps->litleft)
				n = (size_t)ps->litleft;
			if (n > 0 && ps->ph == P_LITERAL &&
			    buf_add(&ps->pool, d + off, n) == -1) {
				bad(ps, "literal buffer full");
				break;
			}
			if (n > 0 && ps->ph == P_STREAM &&
			    ps->hk.literal_data != NULL &&
			    ps->hk.literal_data(ps->arg, d + off, n) == -1) {
				bad(ps, "literal consumer failed");
				break;
			}
			off += n;
			ps->litleft -= n;
			if (ps->litleft > 0)
				break;
			if (ps->ph == P_STREAM && ps->hk.literal_end != NULL &&
			    ps->hk.literal_end(ps->arg) == -1) {
				bad(ps, "literal consumer failed");
				break;
			}
			ps->ph = P_ARGS;
			ps->pos = ps->pool.len;
			continue;
		}
		if (off == len)
			break;
		n = len - off;
		if ((lf = memchr(d + off, '\n', n)) != NULL)
			n = (size_t)(lf - (d + off)) + 1;
		if (n > ps->lim.line_max - ps->nonlit) {
			bad(ps, "response longer than %zu octets outside "
			    "literals", ps->lim.line_max);
			break;
		}
		if (memchr(d + off, '\0', n) != NULL) {
			bad(ps, "NUL in a response line");
			break;
		}
		if (buf_add(&ps->pool, d + off, n) == -1) {
			bad(ps, "response buffer full");
			break;
		}
		ps->nonlit += n;
		off += n;
		r = tokenize(ps);
		if (r == T_BAD)
			break;
		if (r == T_DONE) {
			ps->ph = P_DONE;
			expose(ps);
			if (consumed != NULL)
				*consumed = off;
			return IMAP_PARSE_OK;
		}
		if (r == T_MORE && lf != NULL) {
			/* A whole line must end, fail or start a literal. */
			bad(ps, "incomplete response line");
			break;
		}
	}
	if (consumed != NULL)
		*consumed = off;
	return ps->ph == P_FAILED ? IMAP_PARSE_BAD : IMAP_PARSE_MORE;
}

/* ---- walking a response ---- */

const struct imap_arg *
imap_arg_first(const struct imap_response *r)
{
	return r->nargs > 0 ? &r->args[0] : NULL;
}

const struct imap_arg *
imap_arg_next(const struct imap_response *r, const struct imap_arg *a)
{
	return a != NULL && a->next != 0 ? &r->args[a->next - 1] : NULL;
}

const struct imap_arg *
imap_arg_child(const struct imap_response *r, const struct imap_arg *a)
{
	if (a == NULL || a->type != IMAP_ARG_LIST || a->child == 0)
		return NULL;
	return &r->args[a->child - 1];
}

const char *
imap_arg_data(const struct imap_response *r, const struct imap_arg *a)
{
	return r->pool + a->off;
}

int
imap_arg_is(const struct imap_response *r, const struct imap_arg *a,
    const char *s)
{
	return a != NULL && a->type == IMAP_ARG_ATOM &&
	    str_ieq_n(r->pool + a->off, a->len, s);
}

int
imap_arg_number(const struct imap_response *r, const struct imap_arg *a,
    uint64_t max, uint64_t *v)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM || a->len > 20)
		return -1;
	return str_to_u64(r->pool + a->off, a->len, max, v);
}

int
imap_arg_string(const struct imap_response *r, const struct imap_arg *a,
    const char **s, size_t *len)
{
	if (a == NULL || (a->type != IMAP_ARG_ATOM &&
	    a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL))
		return -1;
	*s = r->pool + a->off;
	*len = a->len;
	return 0;
}

int
imap_word_is(const struct imap_response *r, const char *s)
{
	return r->word != NULL && str_ieq_n(r->word, r->wordlen, s);
}

int
imap_code_is(const struct imap_response *r, const char *s)
{
	return r->code != NULL && str_ieq_n(r->code, r->codelen, s);
}
