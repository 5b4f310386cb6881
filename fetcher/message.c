/* ISC licence; see LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "haul/buf.h"
#include "haul/message.h"
#include "haul/spool.h"
#include "haul/str.h"
#include "haul/token.h"
#include "haul/xmalloc.h"

#define MSGF_OBUF	8192
/* Longest address kept from Return-Path (RFC 5321 path limit). */
#define RP_MAX		254
/* Soft and hard line lengths of RFC 5322 (octets, without CRLF). */
#define LINE_SOFT	78
#define LINE_HARD	997
/* Trace values are cut here before escaping (3x growth stays < 998). */
#define TRACE_VALUE_MAX	200

enum hstate {
	H_START,	/* at the start of a header line */
	H_LINE,		/* inside a header line */
	H_EMPTY_CR,	/* saw the CR of the empty line */
	H_BODY,		/* past the header: pass through */
	H_PASS,		/* a limit was hit: pass through */
};

struct msgf {
	struct spool		*spool;
	struct msgf_limits	 lim;
	struct msgf_info	 info;
	int			 err;		/* sticky errno, 0 if fine */
	int			 finished;

	int			 pending_cr;	/* CR seen, LF may follow */
	unsigned char		 last;		/* last normalised byte */

	enum hstate		 hstate;
	struct buf		 field;		/* raw lines of one field */

	unsigned char		 obuf[MSGF_OBUF];
	size_t			 olen;
};

struct msgf *
msgf_new(struct spool *spool, const struct msgf_limits *lim)
{
	struct msgf	*f;

	f = xcalloc(1, sizeof *f);
	f->spool = spool;
	if (lim != NULL)
		f->lim = *lim;
	if (f->lim.max_field == 0)
		f->lim.max_field = MSGF_MAX_FIELD;
	if (f->lim.max_header == 0)
		f->lim.max_header = MSGF_MAX_HEADER;
	if (f->lim.max_value == 0)
		f->lim.max_value = MSGF_MAX_VALUE;
	if (f->lim.max_received == 0)
		f->lim.max_received = MSGF_MAX_RECEIVED;
	if (f->lim.max_envelope == 0)
		f->lim.max_envelope = MSGF_MAX_ENVELOPE;
	f->hstate = H_START;
	buf_init(&f->field, 0);
	return f;
}

static void
value_free(struct msgf_value *v)
{
	free(v->text);
	v->text = NULL;
}

void
msgf_free(struct msgf **fp)
{
	struct msgf	*f = *fp;
	size_t		 i;

	if (f == NULL)
		return;
	buf_free(&f->field);
	free(f->info.return_path);
	value_free(&f->info.message_id);
	value_free(&f->info.date);
	for (i = 0; i < f->info.nreceived; i++)
		value_free(&f->info.received[i]);
	free(f->info.received);
	for (i = 0; i < f->info.nenvelope; i++)
		value_free(&f->info.envelope[i].value);
	free(f->info.envelope);
	free(f);
	*fp = NULL;
}

const struct msgf_info *
msgf_info(const struct msgf *f)
{
	return &f->info;
}

static void
out_flush(struct msgf *f)
{
	if (f->err == 0 && f->olen > 0 &&
	    spool_write(f->spool, f->obuf, f->olen) == -1)
		f->err = errno != 0 ? errno : EIO;
	f->olen = 0;
}

/* Write one byte of output, counting what delivery needs to know. */
static void
out_byte(struct msgf *f, unsigned char c)
{
	if (c >= 0x80)
		f->info.eightbit++;
	else if (c == 0)
		f->info.nul_count++;
	f->info.size++;
	f->obuf[f->olen++] = c;
	if (f->olen == sizeof f->obuf)
		out_flush(f);
}

static void
out_bytes(struct msgf *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t		 i;

	for (i = 0; i < n; i++)
		out_byte(f, b[i]);
}

/*
 * Copy a field value (the bytes after the colon) into a bounded, unfolded,
 * trimmed copy that is safe to use as a C string and to log.
 */
static void
capture(struct msgf *f, const char *p, size_t len, struct msgf_value *v)
{
	size_t	 i, s = 0, e = len, n = 0, max = f->lim.max_value;
	char	*t;

	while (s < e && (p[s] == ' ' || p[s] == '\t' || p[s] == '\r' ||
	    p[s] == '\n'))
		s++;
	while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t' ||
	    p[e - 1] == '\r' || p[e - 1] == '\n'))
		e--;
	t = xmalloc((e - s < max ? e - s : max) + 1);
	v->flags = 0;
	for (i = s; i < e; i++) {
		unsigned char c = (unsigned char)p[i];

		/* In normalised text CR and LF only occur as line ends. */
		if (c == '\r' || c == '\n')
			continue;
		if (n == max) {
			v->flags |= MSGF_V_TRUNCATED;
			break;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			c = '?';
			v->flags |= MSGF_V_CTL;
		}
		t[n++] = (char)c;
	}
	t[n] = '\0';
	v->text = t;
	v->len = n;
}

/* Take the address out of a Return-Path value: <addr> or <>. */
static void
capture_return_path(struct msgf *f, const char *p, size_t len)
{
	struct msgf_value	 v;
	const char		*a, *colon;
	size_t			 alen, i;
	int			 at = 0;

	capture(f, p, len, &v);
	f->info.rp = MSGF_RP_BAD;
	if (v.flags != 0 || v.len < 2 || v.text[0] != '<' ||
	    v.text[v.len - 1] != '>')
		goto out;
	a = v.text + 1;
	alen = v.len - 2;
	if (alen == 0) {
		f->info.rp = MSGF_RP_NULL;
		goto out;
	}
	/* An obsolete source route "@a,@b:user@dom" is ignored (RFC 5321). */
	if (a[0] == '@' && (colon = memchr(a, ':', alen)) != NULL) {
		alen -= (size_t)(colon + 1 - a);
		a = colon + 1;
	}
	if (alen == 0 || alen > RP_MAX)
		goto out;
	for (i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			goto out;
		if (c == '@')
			at = 1;
	}
	if (!at || a[0] == '@' || a[alen - 1] == '@')
		goto out;
	f->info.rp = MSGF_RP_ADDR;
	f->info.return_path = xstrndup(a, alen);
out:
	value_free(&v);
}

/* Record a field delivery cares about; name is name[0..nlen). */
static void
capture_field(struct msgf *f, const char *name, size_t nlen, const char *val,
    size_t vlen)
{
	struct msgf_info	*in = &f->info;
	enum msgf_env_kind	 kind;

	if (str_ieq_n(name, nlen, "Return-Path")) {
		if (in->rp == MSGF_RP_NONE)
			capture_return_path(f, val, vlen);
		return;
	}
	if (str_ieq_n(name, nlen, "Message-ID")) {
		if (in->message_id.text == NULL)
			capture(f, val, vlen, &in->message_id);
		return;
	}
	if (str_ieq_n(name, nlen, "Date")) {
		if (in->date.text == NULL)
			capture(f, val, vlen, &in->date);
		return;
	}
	if (str_ieq_n(name, nlen, "Received")) {
		if (in->nreceived < f->lim.max_received) {
			in->received = xreallocarray(in->received,
			    in->nreceived + 1, sizeof *in->received);
			capture(f, val, vlen, &in->received[in->nreceived++]);
		}
		return;
	}
	if (str_ieq_n(name, nlen, "Delivered-To"))
		kind = MSGF_DELIVERED_TO;
	else if (str_ieq_n(name, nlen, "X-Original-To"))
		kind = MSGF_X_ORIGINAL_TO;
	else if (str_ieq_n(name, nlen, "Envelope-To"))
		kind = MSGF_ENVELOPE_TO;
	else
		return;
	if (in->nenvelope < f->lim.max_envelope) {
		in->envelope = xreallocarray(in->envelope, in->nenvelope + 1,
		    sizeof *in->envelope);
		in->envelope[in->nenvelope].kind = kind;
		capture(f, val, vlen, &in->envelope[in->nenvelope].value);
		in->nenvelope++;
	}
}

/*
 * A header field is complete (the next line does not continue it):
 * drop it if it is X-Haul-*, else write it unchanged and capture it.
 */
static void
field_done(struct msgf *f)
{
	const char	*p = f->field.data;
	size_t		 len = f->field.len, i = 0, nlen;

	if (len == 0)
		return;
	/* field-name, optional white space (obsolete syntax), colon. */
	while (i < len && (unsigned char)p[i] > 0x20 &&
	    (unsigned char)p[i] < 0x7f && p[i] != ':')
		i++;
	nlen = i;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (nlen == 0 || i == len || p[i] != ':') {
		f->info.flags |= MSGF_BAD_HDR_LINE;
		out_bytes(f, p, len);
	} else if (str_iprefix(p, nlen, "X-Haul-"))
		f->info.stripped++;
	else {
		out_bytes(f, p, len);
		capture_field(f, p, nlen, p + i + 1, len - i - 1);
	}
	buf_reset(&f->field);
}

/* Stop interpreting: what is buffered goes out as it is. */
static void
hdr_give_up(struct msgf *f)
{
	f->info.flags |= MSGF_HDR_LIMIT;
	out_bytes(f, f->field.data, f->field.len);
	buf_reset(&f->field);
	f->hstate = H_PASS;
}

/* The header stage: one normalised byte (CR is always followed by LF). */
static void
hdr_byte(struct msgf *f, unsigned char c)
{
	switch (f->hstate) {
	case H_BODY:
	case H_PASS:
		out_byte(f, c);
		return;
	case H_EMPTY_CR:
		/* Normalised input: this is the LF of the empty line. */
		f->info.header_size++;
		out_byte(f, '\r');
		out_byte(f, c);
		f->hstate = H_BODY;
		return;
	case H_START:
		if (c != ' ' && c != '\t')
			field_done(f);
		if (c == '\r') {
			f->info.header_size++;
			f->hstate = H_EMPTY_CR;
			return;
		}
		f->hstate = H_LINE;
		break;
	case H_LINE:
		break;
	}
	if (++f->info.header_size > f->lim.max_header ||
	    f->field.len >= f->lim.max_field) {
		hdr_give_up(f);
		out_byte(f, c);
		return;
	}
	buf_add_byte(&f->field, c);
	if (c == '\n')
		f->hstate = H_START;
}

/* The normaliser: every line end becomes CRLF, whatever the chunking. */
static void
norm_byte(struct msgf *f, unsigned char c)
{
	if (f->pending_cr) {
		f->pending_cr = 0;
		hdr_byte(f, '\r');
		hdr_byte(f, '\n');
		f->last = '\n';
		if (c == '\n')
			return;
		f->info.flags |= MSGF_BARE_EOL;
	}
	if (c == '\r') {
		f->pending_cr = 1;
		return;
	}
	if (c == '\n') {
		f->info.flags |= MSGF_BARE_EOL;
		hdr_byte(f, '\r');
	}
	hdr_byte(f, c);
	f->last = c;
}

#define ONES	0x0101010101010101ULL
#define LOWS	0x7f7f7f7f7f7f7f7fULL
#define HIGHS	0x8080808080808080ULL

/* The high bit of each byte of w that is zero (exact, no false hits). */
static uint64_t
zero_bytes(uint64_t w)
{
	return ~(((w & LOWS) + LOWS) | w) & HIGHS;
}

/*
 * The mask of CRs moved onto the byte after each: where LFs must be for
 * every CR in the word to start a CRLF pair (bytes in memory order).
 */
static uint64_t
next_byte(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return m >> 8;
#else
	return m << 8;
#endif
}

/* The mask bit of the word's last byte in memory. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LAST_BYTE	0x80ULL
#else
#define LAST_BYTE	(0x80ULL << 56)
#endif

/* Bits set in the high-bit mask m (one per byte), without popcnt. */
static unsigned
high_count(uint64_t m)
{
	m >>= 7;		/* one bit at the bottom of each byte */
	return (unsigned)((m * ONES) >> 56);
}

/*
 * The body's fast path: the longest prefix of b that the normaliser and
 * the header stage would pass through unchanged (no CR or LF other than
 * CRLF pairs, which stay), written out at once and counted as out_byte()
 * would.  Returns its length; the byte after it (a bare CR or LF, or a CR
 * that ends the chunk) is for norm_byte().
 */
static size_t
body_run(struct msgf *f, const unsigned char *b, size_t n)
{
	const uint64_t	 cr = ONES * '\r', lf = ONES * '\n';
	uint64_t	 w, eight = 0, nul = 0;
	size_t		 i = 0, room;

	while (i < n) {
		if (i + 8 <= n) {
			uint64_t mcr, mlf;

			memcpy(&w, b + i, 8);
			mcr = zero_bytes(w ^ cr);
			mlf = zero_bytes(w ^ lf);
			/* No NUL; every CR and LF a CRLF pair inside. */
			if (zero_bytes(w) == 0 && mlf == next_byte(mcr) &&
			    (mcr & LAST_BYTE) == 0) {
				if (w & HIGHS)
					eight += high_count(w & HIGHS);
				i += 8;
				continue;
			}
		}
		/* A word with a line end or a NUL (or the tail): bytewise. */
		for (room = i + 8 < n ? i + 8 : n; i < room; i++) {
			unsigned char c = b[i];

			if (c == '\r') {
				if (i + 1 < n && b[i + 1] == '\n') {
					i++;
					continue;
				}
				goto out;
			}
			if (c == '\n')
				goto out;
			if (c >= 0x80)
				eight++;
			else if (c == 0)
				nul++;
		}
	}
out:
	if (i == 0)
		return 0;
	f->info.eightbit += eight;
	f->info.nul_count += nul;
	f->info.size += i;
	f->last = b[i - 1];
	if (f->olen + i <= sizeof f->obuf) {
		memcpy(f->obuf + f->olen, b, i);
		f->olen += i;
	} else {
		out_flush(f);
		if (f->err == 0 && spool_write(f->spool, b, i) == -1)
			f->err = errno != 0 ? errno : EIO;
	}
	return i;
}

/*
 * The header's fast path: inside a header line, the bytes up to the next
 * CR or LF go into the field buffer at once, as hdr_byte() would add them
 * one by one; stops short of either limit so that hdr_byte() still sees
 * the byte that crosses it.  Returns how many bytes it took.
 */
static size_t
hdr_run(struct msgf *f, const unsigned char *b, size_t n)
{
	size_t	 lim = n, k = 0;

	if (f->info.header_size >= f->lim.max_header ||
	    f->field.len >= f->lim.max_field)
		return 0;
	if (lim > f->lim.max_header - f->info.header_size)
		lim = (size_t)(f->lim.max_header - f->info.header_size);
	if (lim > f->lim.max_field - f->field.len)
		lim = f->lim.max_field - f->field.len;
	while (k < lim && b[k] != '\r' && b[k] != '\n')
		k++;
	if (k == 0)
		return 0;
	buf_add(&f->field, b, k);
	f->info.header_size += k;
	f->last = b[k - 1];
	return k;
}

int
msgf_write(struct msgf *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t		 i;

	if (f->finished) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < n && f->err == 0; i++) {
		if ((f->hstate == H_BODY || f->hstate == H_PASS) &&
		    !f->pending_cr) {
			i += body_run(f, b + i, n - i);
			if (i == n || f->err != 0)
				break;
		} else if (f->hstate == H_LINE && !f->pending_cr) {
			i += hdr_run(f, b + i, n - i);
			if (i == n)
				break;
		}
		norm_byte(f, b[i]);
	}
	f->info.in_size += i;
	out_flush(f);
	if (f->err != 0) {
		errno = f->err;
		return -1;
	}
	return 0;
}

int
msgf_finish(struct msgf *f)
{
	if (f->finished) {
		errno = EINVAL;
		return -1;
	}
	f->finished = 1;
	if (f->err == 0) {
		if (f->pending_cr) {
			f->pending_cr = 0;
			f->info.flags |= MSGF_BARE_EOL;
			hdr_byte(f, '\r');
			hdr_byte(f, '\n');
		} else if (f->info.in_size > 0 && f->last != '\n') {
			f->info.flags |= MSGF_ADDED_CRLF;
			hdr_byte(f, '\r');
			hdr_byte(f, '\n');
		}
		if (f->hstate == H_START || f->hstate == H_LINE) {
			field_done(f);
			f->info.flags |= MSGF_NO_BODY;
		}
		if (f->info.in_size == 0)
			f->info.flags |= MSGF_EMPTY;
		out_flush(f);
	}
	if (f->err != 0) {
		errno = f->err;
		return -1;
	}
	return 0;
}

/* Bytes that may appear as themselves in a trace domain or id. */
static int
atom_safe(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	    c == ':' || c == '[' || c == ']';
}

/*
 * Append s as one word: cut at TRACE_VALUE_MAX bytes ("..." marks the
 * cut), bytes outside the safe set as %XX.  comment selects the token's
 * encoding (no parentheses or backslashes can appear in a comment).
 */
static void
add_word(struct buf *out, const char *s, int comment)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 len, i;

	if (s == NULL || *s == '\0')
		s = "unknown";
	len = strnlen(s, TRACE_VALUE_MAX + 1);
	if (len > TRACE_VALUE_MAX)
		len = TRACE_VALUE_MAX;
	if (comment)
		token_pct_encode(out, s, len);
	else {
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (atom_safe(c))
				buf_add_byte(out, c);
			else {
				buf_add_byte(out, '%');
				buf_add_byte(out, (unsigned char)hex[c >> 4]);
				buf_add_byte(out, (unsigned char)hex[c & 0xf]);
			}
		}
	}
	if (s[len] != '\0')
		buf_add_str(out, "...");
}

/* RFC 5322 date-time in UTC, without the locale's say. */
static void
add_date(struct buf *out, time_t t)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_year < -1900 ||
	    tm.tm_year > 9999 - 1900) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	buf_addf(out, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

/*
 * Append "name: value" with CRLF, folding before a space so lines stay
 * within LINE_SOFT where a fold can help and always within LINE_HARD.
 * value is words separated by spaces (runs of spaces count as one).
 */
static int
add_folded(struct buf *out, const char *name, const char *v, size_t len)
{
	size_t	 col, i = 0, w, start = out->len;
	int	 words = 0, bad;

	bad = buf_addf(out, "%s:", name);
	col = strlen(name) + 1;
	for (;;) {
		while (i < len && v[i] == ' ')
			i++;
		if (i == len)
			break;
		for (w = 0; i + w < len && v[i + w] != ' '; w++)
			;
		if (words > 0 && col + 1 + w > LINE_SOFT) {
			bad |= buf_add_str(out, "\r\n");
			col = 0;
		}
		if (col + 1 + w > LINE_HARD)
			goto fail;
		bad |= buf_add_byte(out, ' ');
		bad |= buf_add(out, v + i, w);
		col += 1 + w;
		i += w;
		words++;
	}
	/* out's cap: a header with a hole in it must not go out. */
	if (words == 0 || bad != 0 || buf_add_str(out, "\r\n") == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

int
msg_trace_headers(struct buf *out, const struct trace_info *ti)
{
	struct buf	 v;
	size_t		 start = out->len, i, tlen;
	int		 rc = -1;

	buf_init(&v, 0);
	if (ti->token != NULL) {
		/* The token is ours, but check it: a header must stay sound. */
		tlen = strlen(ti->token);
		for (i = 0; i < tlen; i++)
			if ((unsigned char)ti->token[i] < 0x20 ||
			    (unsigned char)ti->token[i] > 0x7e)
				goto out;
	}
	buf_add_str(&v, "from ");
	add_word(&v, ti->from_host, 0);
	buf_add_str(&v, " (via ");
	add_word(&v, ti->proto, 0);
	buf_add_str(&v, " account ");
	add_word(&v, ti->account, 1);
	if (ti->mailbox != NULL) {
		buf_add_str(&v, " mailbox ");
		add_word(&v, ti->mailbox, 1);
	}
	buf_add_str(&v, " uid ");
	add_word(&v, ti->uid, 1);
	buf_add_str(&v, ") by ");
	add_word(&v, ti->by_host, 0);
	buf_add_str(&v, " with haul id ");
	add_word(&v, ti->id, 0);
	buf_add_str(&v, "; ");
	add_date(&v, ti->date);
	if (add_folded(out, "Received", v.data, v.len) == -1)
		goto out;
	if (ti->token != NULL &&
	    add_folded(out, TOKEN_HEADER, ti->token, strlen(ti->token)) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
		errno = EINVAL;
	}
	buf_free(&v);
	return rc;
}
