/* ISC licence; see LICENSE. */

/*
 * The pure, byte-level half of the SMTP/LMTP client: the reply parser, the
 * body normaliser (CRLF + dot-stuffing), EHLO keywords, XCLIENT and xtext,
 * address checks and the queue id scanner.
 * No I/O, no globals: each is fuzzable on its own (F6, F8).
 */

#include <string.h>

#include "haul/buf.h"
#include "haul/smtp.h"
#include "haul/str.h"

void
smtp_reply_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* Start accumulating a fresh reply (the previous one was handed out). */
static void
reply_reset(struct smtp_reply_parser *p)
{
	p->reply.code = 0;
	p->reply.esc[0] = '\0';
	p->reply.nlines = 0;
	p->reply.truncated = 0;
	p->reply.textlen = 0;
	p->reply.text[0] = '\0';
	p->linelen = 0;
	p->cr = 0;
	p->complete = 0;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Recognise an RFC 3463 code "class.subject.detail" at the start of s,
 * followed by a space or the end; the class must match the reply's first
 * digit (a mismatch is ignored, not an error: the code is advisory).
 */
static void
reply_esc(struct smtp_reply *r, const char *s, size_t len)
{
	size_t	 i = 0, n, part;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[0] - '0' != r->code / 100 || s[1] != '.')
		return;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && is_digit(s[i]); i++)
			n++;
		if (n < 1 || n > 3)
			return;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return;
	memcpy(r->esc, s, i);
	r->esc[i] = '\0';
}

/* Add one line's text, dropping whole lines once the cap is reached. */
static void
reply_add_text(struct smtp_reply *r, const char *s, size_t len)
{
	size_t	 mark = sizeof(SMTP_REPLY_TRUNC_MARK) - 1;
	size_t	 need = len + (r->nlines > 1 ? 1 : 0);

	if (r->truncated)
		return;
	if (r->textlen + need > SMTP_REPLY_TEXT_MAX - mark) {
		r->truncated = 1;
		memcpy(r->text + r->textlen, SMTP_REPLY_TRUNC_MARK, mark);
		r->textlen += mark;
		r->text[r->textlen] = '\0';
		return;
	}
	if (r->nlines > 1)
		r->text[r->textlen++] = '\n';
	memcpy(r->text + r->textlen, s, len);
	r->textlen += len;
	r->text[r->textlen] = '\0';
}

/*
 * Judge one complete line (without its CRLF).  Returns 1 when it was the
 * last line of the reply, 0 for a continuation, -1 with p->error set.
 */
static int
reply_line(struct smtp_reply_parser *p)
{
	struct smtp_reply *r = &p->reply;
	const char	*l = p->line;
	size_t		 len = p->linelen;
	int		 code, last;

	if (len < 3 || !is_digit(l[0]) || !is_digit(l[1]) ||
	    !is_digit(l[2])) {
		p->error = "reply line does not start with three digits";
		return -1;
	}
	if (l[0] < '2' || l[0] > '5' || l[1] > '5') {
		p->error = "reply code out of range";
		return -1;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (len == 3)
		last = 1;
	else if (l[3] == ' ')
		last = 1;
	else if (l[3] == '-')
		last = 0;
	else {
		p->error = "reply code not followed by space, '-' or CRLF";
		return -1;
	}
	if (r->nlines == 0)
		r->code = code;
	else if (code != r->code) {
		/* CVE-2020-8794 class: never let a line change the verdict. */
		p->error = "reply lines carry different codes";
		return -1;
	}
	if (++r->nlines > SMTP_REPLY_LINES_MAX) {
		p->error = "reply has too many lines";
		return -1;
	}
	if (r->nlines == 1 && len > 4)
		reply_esc(r, l + 4, len - 4);
	reply_add_text(r, len > 4 ? l + 4 : "", len > 4 ? len - 4 : 0);
	return last;
}

enum smtp_reply_status
smtp_reply_parse(struct smtp_reply_parser *p, const void *data, size_t len,
    size_t *consumed)
{
	const unsigned char *d = data;
	size_t		 i;
	int		 rc;

	*consumed = 0;
	if (p->error != NULL)
		return SMTP_REPLY_BAD;
	if (p->complete)
		reply_reset(p);
	for (i = 0; i < len; i++) {
		unsigned char ch = d[i];

		if (p->cr) {
			if (ch != '\n') {
				p->error = "bare CR in reply";
				break;
			}
			p->cr = 0;
			rc = reply_line(p);
			p->linelen = 0;
			if (rc == -1)
				break;
			if (rc == 1) {
				p->complete = 1;
				*consumed = i + 1;
				return SMTP_REPLY_OK;
			}
			continue;
		}
		if (ch == '\r') {
			p->cr = 1;
			continue;
		}
		if (ch == '\n') {
			p->error = "bare LF in reply";
			break;
		}
		if (ch == '\0') {
			p->error = "NUL in reply";
			break;
		}
		/* The line plus CRLF must fit in SMTP_REPLY_LINE_MAX octets. */
		if (p->linelen >= SMTP_REPLY_LINE_MAX - 2) {
			p->error = "reply line longer than 512 octets";
			break;
		}
		p->line[p->linelen++] = (char)ch;
	}
	*consumed = i;
	return p->error != NULL ? SMTP_REPLY_BAD : SMTP_REPLY_MORE;
}

void
smtp_norm_init(struct smtp_norm *n, int stuff)
{
	n->bol = 1;
	n->cr = 0;
	n->stuff = stuff;
	n->out = 0;
}

int
smtp_norm_feed(struct smtp_norm *n, const void *src, size_t len,
    struct buf *out)
{
	const unsigned char *s = src;
	char		*d, *start;
	size_t		 i;

	/*
	 * Each input byte yields at most two output bytes, and a CR held
	 * from the previous piece two more, so reserve once and write
	 * straight into the buffer: this loop carries every message byte.
	 */
	if (len > (SIZE_MAX - 4) / 2 || buf_reserve(out, 2 * len + 4) == -1)
		return -1;
	start = d = out->data + out->len;
	for (i = 0; i < len; i++) {
		unsigned char ch = s[i];

		/*
		 * Inside a line with no CR held: copy up to the next CR or
		 * LF in one go (memchr), and a CRLF right after it too.
		 */
		if (!n->cr && !n->bol) {
			const unsigned char *e, *lf;
			size_t run;

			e = memchr(s + i, '\r', len - i);
			lf = memchr(s + i, '\n', (e != NULL ? (size_t)(e - s) :
			    len) - i);
			if (lf != NULL)
				e = lf;
			run = (e != NULL ? (size_t)(e - s) : len) - i;
			memcpy(d, s + i, run);
			d += run;
			i += run;
			if (i == len)
				break;
			ch = s[i];
			if (ch == '\r' && i + 1 < len && s[i + 1] == '\n') {
				*d++ = '\r';
				*d++ = '\n';
				n->bol = 1;
				i++;
				continue;
			}
		}
		if (n->cr) {
			*d++ = '\r';
			*d++ = '\n';
			n->cr = 0;
			n->bol = 1;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			n->cr = 1;
			continue;
		}
		if (ch == '\n') {
			*d++ = '\r';
			*d++ = '\n';
			n->bol = 1;
			continue;
		}
		if (n->bol && ch == '.' && n->stuff)
			*d++ = '.';
		*d++ = (char)ch;
		n->bol = 0;
	}
	out->len += (size_t)(d - start);
	out->data[out->len] = '\0';
	n->out += (uint64_t)(d - start);
	return 0;
}

int
smtp_norm_finish(struct smtp_norm *n, struct buf *out)
{
	if (n->cr || !n->bol) {
		if (buf_add(out, "\r\n", 2) == -1)
			return -1;
		n->out += 2;
	}
	n->cr = 0;
	n->bol = 1;
	return 0;
}

int
smtp_xtext_encode(struct buf *out, const char *value, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c >= '!' && c <= '~' && c != '+' && c != '=') {
			if (buf_add_byte(out, c) == -1)
				return -1;
		} else if (buf_addf(out, "+%c%c", hex[c >> 4],
		    hex[c & 0xf]) == -1)
			return -1;
	}
	return 0;
}

static int
is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int
smtp_parse_queue_id(const char *text, size_t len, char *dst)
{
	static const char key[] = "queued as ";
	size_t		 klen = sizeof(key) - 1, i, j, n;

	dst[0] = '\0';
	for (i = 0; i + klen <= len; i++) {
		for (j = 0; j < klen; j++) {
			char c = text[i + j];

			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (c != key[j])
				break;
		}
		if (j != klen)
			continue;
		for (n = 0; i + klen + n < len && is_alnum(text[i + klen + n]);
		    n++)
			;
		/* An id cut short would name another message: take none. */
		if (n == 0 || n > SMTP_QUEUE_ID_MAX)
			return -1;
		memcpy(dst, text + i + klen, n);
		dst[n] = '\0';
		return 0;
	}
	return -1;
}

/* Record the XCLIENT attribute names we know in a space-separated list. */
static unsigned int
ehlo_xattrs(const char *p, const char *end)
{
	unsigned int	 x = 0;

	while (p < end) {
		const char	*w = p;
		size_t		 n;

		while (p < end && *p != ' ')
			p++;
		n = (size_t)(p - w);
		if (str_ieq_n(w, n, "ADDR"))
			x |= SMTP_XATTR_ADDR;
		else if (str_ieq_n(w, n, "NAME"))
			x |= SMTP_XATTR_NAME;
		else if (str_ieq_n(w, n, "HELO"))
			x |= SMTP_XATTR_HELO;
		else if (str_ieq_n(w, n, "PROTO"))
			x |= SMTP_XATTR_PROTO;
		while (p < end && *p == ' ')
			p++;
	}
	return x;
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	static const struct {
		const char	*kw;
		unsigned int	 bit;
	} kws[] = {
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "XCLIENT", SMTP_EXT_XCLIENT },
	};
	const char	*p, *end = r->text + r->textlen, *nl, *sp, *arg;
	size_t		 i, kwlen;
	uint64_t	 v;

	memset(e, 0, sizeof(*e));
	/* The first line is the MTA's name and greeting. */
	if ((p = memchr(r->text, '\n', r->textlen)) == NULL)
		return;
	for (p++; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((sp = memchr(p, ' ', (size_t)(nl - p))) == NULL)
			sp = nl;
		kwlen = (size_t)(sp - p);
		arg = sp < nl ? sp + 1 : nl;
		for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++)
			if (str_ieq_n(p, kwlen, kws[i].kw))
				break;
		if (i == sizeof(kws) / sizeof(kws[0]))
			continue;
		e->ext |= kws[i].bit;
		if (kws[i].bit == SMTP_EXT_SIZE &&
		    str_to_u64(arg, (size_t)(nl - arg), UINT64_MAX, &v) == 0)
			e->size_max = v;
		else if (kws[i].bit == SMTP_EXT_XCLIENT)
			e->xattr = ehlo_xattrs(arg, nl);
	}
}

/*
 * Append " NAME=xtext".  A missing value, or one that would push the line
 * past 512 octets, is sent as [UNAVAILABLE] so that no attribute of an
 * earlier message survives on the connection.  Returns 1 if the real
 * value went out.
 */
static int
xclient_attr(struct buf *out, const char *name, const char *value)
{
	struct buf	 v = BUF_INIT;
	int		 real = 0;

	if (value != NULL && *value != '\0' &&
	    smtp_xtext_encode(&v, value, strlen(value)) == 0 &&
	    out->len + 1 + strlen(name) + 1 + v.len + 2 <= SMTP_REPLY_LINE_MAX)
		real = 1;
	buf_addf(out, " %s=%s", name, real ? v.data : "[UNAVAILABLE]");
	buf_free(&v);
	return real;
}

int
smtp_xclient_line(struct buf *out, unsigned int xattr,
    const struct smtp_xclient *x)
{
	int	 real = 0;

	buf_reset(out);
	buf_add_str(out, "XCLIENT");
	if (xattr & SMTP_XATTR_ADDR)
		real += xclient_attr(out, "ADDR", x->addr);
	if (xattr & SMTP_XATTR_NAME)
		real += xclient_attr(out, "NAME", x->name);
	if (xattr & SMTP_XATTR_HELO)
		real += xclient_attr(out, "HELO", x->helo);
	if (real == 0) {
		buf_reset(out);
		return -1;
	}
	if (xattr & SMTP_XATTR_PROTO)
		xclient_attr(out, "PROTO", "ESMTP");
	return 0;
}

int
smtp_addr_ok(const char *a, int empty_ok)
{
	size_t	 len = strlen(a), i;

	if (len > SMTP_ADDR_MAX || (len == 0 && !empty_ok))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)a[i];

		if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			return 0;
	}
	return 1;
}
