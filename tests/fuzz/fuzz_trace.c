/* ISC licence; see LICENSE. */
/*
 * F8: the header/trace builder and the wire form of a message, end to end
 * as hauld injects it: msg_trace_headers() (account, mailbox, UID, hosts,
 * id and token from the input), the message filter (msgf) over the
 * message bytes, then the SMTP body normaliser with dot-stuffing (DATA)
 * and without (BDAT), fed in chunks.
 *
 * Input: byte 0 = chunk size; then up to 7 NUL-terminated strings
 * (from_host, account, mailbox, uid, by_host, id, token; a missing one is
 * NULL); the rest is the message.
 *
 * Properties (abort() on violation):
 * - trace headers: only printable ASCII, SP and HT plus CRLF line ends;
 *   no bare CR or LF, no NUL, no empty line, every line under 998 octets;
 *   the added values hold no CR, LF or NUL;
 * - DATA wire: no bare CR or LF; "CRLF.CRLF" only as the terminator at the
 *   very end; un-stuffing it gives back exactly trace + filtered message;
 * - BDAT wire: no bare CR or LF, and equal to trace + filtered message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/message.h"
#include "haul/smtp.h"
#include "haul/spool.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define NFIELDS	7

static void
check_crlf(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			abort();
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
	}
}

static void
check_trace(const struct buf *t)
{
	size_t	 i, col = 0;

	check_crlf(t->data, t->len);
	if (t->len > 0 && (t->len < 2 || t->data[t->len - 1] != '\n'))
		abort();
	for (i = 0; i < t->len; i++) {
		unsigned char c = (unsigned char)t->data[i];

		if (c == '\r')
			continue;
		if (c == '\n') {
			if (col == 0)
				abort();		/* empty line */
			col = 0;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c > 0x7e)
			abort();
		if (++col >= 998)
			abort();
	}
}

/* Un-dot-stuff a DATA wire (without its terminator) into out. */
static void
unstuff(const char *p, size_t n, struct buf *out)
{
	size_t	 i = 0;

	while (i < n) {
		const char *e = memchr(p + i, '\n', n - i);
		size_t	 len = e != NULL ? (size_t)(e - (p + i)) + 1 : n - i;

		if (p[i] == '.')
			buf_add(out, p + i + 1, len - 1);
		else
			buf_add(out, p + i, len);
		i += len;
	}
}

static void
wire(const struct buf *in, size_t chunk, int stuff)
{
	struct smtp_norm n;
	struct buf	 w, back;
	size_t		 off = 0;

	buf_init(&w, 0);
	smtp_norm_init(&n, stuff);
	while (off < in->len) {
		size_t	 len = in->len - off < chunk ? in->len - off : chunk;

		if (smtp_norm_feed(&n, in->data + off, len, &w) == -1)
			abort();
		off += len;
	}
	if (smtp_norm_finish(&n, &w) == -1)
		abort();
	check_crlf(w.data, w.len);
	buf_init(&back, 0);
	if (stuff) {
		void	*hit;

		/* the terminator the client appends */
		buf_add(&w, ".\r\n", 3);
		if (w.len >= 5 && (hit = memmem(w.data, w.len - 3, "\r\n.\r\n",
		    5)) != NULL && (char *)hit + 5 != w.data + w.len)
			abort();
		if (w.len >= 3 && w.len > 3 && memcmp(w.data, ".\r\n", 3) == 0)
			abort();
		unstuff(w.data, w.len - 3, &back);
	} else
		buf_add(&back, w.data, w.len);
	if (back.len != in->len || (in->len > 0 &&
	    memcmp(back.data, in->data, in->len) != 0))
		abort();
	buf_free(&back);
	buf_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	const char	*f[NFIELDS] = { NULL };
	char		*copy;
	size_t		 chunk, off = 1, k = 0, i;
	struct trace_info ti;
	struct buf	 trace, all;
	struct spool	*s;
	struct msgf	*m;
	unsigned char	*body;
	ssize_t		 got;

	if (n < 1)
		return 0;
	chunk = d[0] ? d[0] : 1;
	copy = malloc(n + 1);
	memcpy(copy, d, n);
	copy[n] = '\0';
	while (k < NFIELDS && off < n) {
		const char *z = memchr(copy + off, '\0', n - off);

		if (z == NULL)
			break;
		f[k++] = copy + off;
		off = (size_t)(z - copy) + 1;
	}
	memset(&ti, 0, sizeof(ti));
	ti.from_host = f[0];
	ti.proto = "pop3";
	ti.account = f[1];
	ti.mailbox = f[2];
	ti.uid = f[3];
	ti.by_host = f[4];
	ti.id = f[5];
	ti.token = f[6];
	ti.date = 1700000000;

	buf_init(&trace, 0);
	if (msg_trace_headers(&trace, &ti) == 0)
		check_trace(&trace);
	else {
		ti.token = NULL;
		buf_reset(&trace);
		if (msg_trace_headers(&trace, &ti) != 0)
			abort();		/* only the token may be refused */
		check_trace(&trace);
	}

	s = spool_new(NULL, 1 << 24);
	m = msgf_new(s, NULL);
	for (i = off; i < n; i += chunk) {
		size_t	 len = n - i < chunk ? n - i : chunk;

		if (msgf_write(m, d + i, len) == -1)
			goto done;
	}
	if (msgf_finish(m) == -1)
		goto done;
	buf_init(&all, 0);
	buf_add(&all, trace.data, trace.len);
	body = malloc((size_t)spool_size(s) + 1);
	spool_rewind(s);
	got = spool_read(s, body, (size_t)spool_size(s));
	if (got > 0)
		buf_add(&all, body, (size_t)got);
	free(body);
	check_crlf(all.data, all.len);
	wire(&all, chunk, 1);
	wire(&all, chunk, 0);
	buf_free(&all);
done:
	msgf_free(&m);
	spool_free(&s);
	buf_free(&trace);
	free(copy);
	return 0;
}
