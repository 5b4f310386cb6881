/* ISC licence; see LICENSE. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/log.h"
#include "haul/xmalloc.h"

#include "imap_int.h"

/*
 * Command building: strings are quoted or sent as literals, never raw;
 * tags and the table of commands in flight; commands held back at a
 * synchronizing literal until the server's "+".
 */

/* ---- pure builders ---- */

int
imap_string_form(const void *s, size_t len, unsigned caps)
{
	const unsigned char	*b = s;
	size_t			 i;
	int			 eight = 0;

	for (i = 0; i < len; i++) {
		if (b[i] == '\0' || b[i] == '\r' || b[i] == '\n')
			return -1;
		if (b[i] >= 0x80)
			eight = 1;
	}
	/* RFC 3501 quoted strings are 7-bit; 8-bit octets need a literal. */
	if (!eight)
		return IMAP_STR_QUOTED;
	if ((caps & IMAP_CAP_LITERAL_PLUS) || ((caps &
	    IMAP_CAP_LITERAL_MINUS) && len <= IMAP_LITERAL_MINUS_MAX))
		return IMAP_STR_NONSYNC;
	return IMAP_STR_SYNC;
}

size_t
imap_string_size(const void *s, size_t len, unsigned caps)
{
	const unsigned char	*b = s;
	char			 num[32];
	size_t			 i, n;
	int			 form;

	if ((form = imap_string_form(s, len, caps)) == -1)
		return 0;
	if (form == IMAP_STR_QUOTED) {
		for (i = 0, n = 2 + len; i < len; i++)
			if (b[i] == '"' || b[i] == '\\')
				n++;
		return n;
	}
	n = (size_t)snprintf(num, sizeof(num), "%zu", len);
	return 1 + n + (form == IMAP_STR_NONSYNC) + 3 + len;
}

int
imap_put_string(struct buf *out, const void *s, size_t len, unsigned caps,
    size_t *split)
{
	const unsigned char	*b = s;
	size_t			 i;
	int			 form;

	*split = 0;
	if ((form = imap_string_form(s, len, caps)) == -1)
		return -1;
	/* Reserve first: the string may be a password. */
	if (buf_reserve(out, imap_string_size(s, len, caps)) == -1)
		return -1;
	if (form == IMAP_STR_QUOTED) {
		buf_add_byte(out, '"');
		for (i = 0; i < len; i++) {
			if (b[i] == '"' || b[i] == '\\')
				buf_add_byte(out, '\\');
			buf_add_byte(out, b[i]);
		}
		buf_add_byte(out, '"');
		return 0;
	}
	buf_addf(out, "{%zu%s}\r\n", len, form == IMAP_STR_NONSYNC ? "+" : "");
	if (form == IMAP_STR_SYNC)
		*split = out->len;
	buf_add(out, s, len);
	return 0;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
imap_put_uidset(struct buf *out, const uint32_t *uids, size_t n)
{
	uint32_t	*u;
	size_t		 i, j, start = out->len;
	int		 rv = 0;

	if (n == 0)
		return -1;
	u = xreallocarray(NULL, n, sizeof(*u));
	memcpy(u, uids, n * sizeof(*u));
	qsort(u, n, sizeof(*u), uid_cmp);
	for (i = 0; i < n && rv == 0; i = j) {
		if (u[i] == 0) {
			rv = -1;
			break;
		}
		/* The run u[i] .. u[j - 1] of consecutive (or equal) UIDs. */
		for (j = i + 1; j < n && (u[j] == u[j - 1] ||
		    u[j] == u[j - 1] + 1); j++)
			;
		if (i > 0)
			rv = buf_add_byte(out, ',');
		if (rv == 0 && u[j - 1] != u[i])
			rv = buf_addf(out, "%u:%u", u[i], u[j - 1]);
		else if (rv == 0)
			rv = buf_addf(out, "%u", u[i]);
	}
	free(u);
	if (rv == -1) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rv;
}

/* ---- the output buffer ---- */

/*
 * Append to the output.  A credential is written once into room reserved
 * first, so no realloc leaves a copy behind.
 */
void
imap_out_add(struct imap *p, const void *data, size_t len, int secret)
{
	if (buf_reserve(&p->out, len) == -1 ||
	    buf_add(&p->out, data, len) == -1)
		fatalx("imap: output buffer full");
	if (secret)
		p->out_secret = 1;
}

/*
 * A reply arrived, so the driver has sent what preceded it: wipe the
 * stale bytes beyond out.len that buf_consume() leaves behind.
 */
void
imap_out_wipe_slack(struct imap *p)
{
	if (!p->out_secret || p->out.data == NULL)
		return;
	explicit_bzero(p->out.data + p->out.len, p->out.cap - p->out.len);
	if (p->out.len == 0)
		p->out_secret = 0;
}

/* ---- commands in flight ---- */

int
imap_cmd_room(const struct imap *p, unsigned n)
{
	return p->ncmds + n <= IMAP_INFLIGHT_MAX;
}

struct cmd *
imap_cmd_find(struct imap *p, uint32_t tag)
{
	unsigned	 i;

	if (tag == 0)
		return NULL;
	for (i = 0; i < IMAP_INFLIGHT_MAX; i++)
		if (p->cmds[i].tag == tag)
			return &p->cmds[i];
	return NULL;
}

struct cmd *
imap_cmd_find_body(struct imap *p, uint32_t uid)
{
	unsigned	 i;

	for (i = 0; i < IMAP_INFLIGHT_MAX; i++)
		if (p->cmds[i].tag != 0 && p->cmds[i].kind == CMD_BODY &&
		    p->cmds[i].uid == uid)
			return &p->cmds[i];
	return NULL;
}

void
imap_cmd_release(struct imap *p, struct cmd *c)
{
	if (c->tag == 0)
		return;
	free(c->items);
	if (c->secret)
		buf_free_secret(&c->rest);
	else
		buf_free(&c->rest);
	if (p->cont == c)
		p->cont = NULL;
	memset(c, 0, sizeof(*c));
	p->ncmds--;
}

/*
 * Take a slot and a tag and start the command text ("tag ") in cbuf,
 * with room for reserve more octets so a credential never moves.
 */
struct cmd *
imap_cmd_start(struct imap *p, enum cmd_kind kind, size_t reserve)
{
	struct cmd	*c = NULL;
	unsigned	 i;

	for (i = 0; i < IMAP_INFLIGHT_MAX; i++)
		if (p->cmds[i].tag == 0) {
			c = &p->cmds[i];
			break;
		}
	if (c == NULL)
		fatalx("imap: too many commands in flight");
	memset(c, 0, sizeof(*c));
	do {
		p->tagseq++;
	} while (p->tagseq == 0 || imap_cmd_find(p, p->tagseq) != NULL);
	c->tag = p->tagseq;
	c->kind = kind;
	buf_init(&c->rest, 0);
	p->ncmds++;
	buf_reset(&p->cbuf);
	p->ncsplits = 0;
	p->cbad = 0;
	if (buf_reserve(&p->cbuf, reserve + 16) == -1)
		fatalx("imap: command too long");
	buf_addf(&p->cbuf, "h%u ", c->tag);
	return c;
}

void
imap_cmd_add(struct imap *p, const char *s)
{
	if (buf_add_str(&p->cbuf, s) == -1)
		p->cbad = 1;
}

void
imap_cmd_addf(struct imap *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 tmp[512];
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		p->cbad = 1;
	else
		imap_cmd_add(p, tmp);
}

/* A string argument: quoted or a literal, never raw. */
void
imap_cmd_str(struct imap *p, const char *s, size_t len)
{
	size_t	 split;

	if (imap_put_string(&p->cbuf, s, len, p->caps, &split) == -1) {
		p->cbad = 1;
		return;
	}
	if (split == 0)
		return;
	if (p->ncsplits == SPLITS_MAX)
		p->cbad = 1;
	else
		p->csplits[p->ncsplits++] = split;
}

void
imap_cmd_uidset(struct imap *p, const struct item *it, size_t n)
{
	uint32_t	*u;
	size_t		 i;

	u = xreallocarray(NULL, n, sizeof(*u));
	for (i = 0; i < n; i++)
		u[i] = it[i].uid;
	if (imap_put_uidset(&p->cbuf, u, n) == -1)
		p->cbad = 1;
	free(u);
}

/*
 * End the command with CRLF and send it: all of it, or up to its first
 * synchronizing literal, holding the rest until "+" (p->cont).  trace is
 * what the debug log shows after the tag instead of the command (for
 * credentials); NULL shows the command.  Returns 0, or -1 if a string
 * could not be sent (nothing was; the slot is released).
 */
int
imap_cmd_finish(struct imap *p, struct cmd *c, const char *trace,
    int secret)
{
	size_t		 first, i;

	if (p->cbad || buf_add(&p->cbuf, "\r\n", 2) == -1) {
		if (secret)
			explicit_bzero(p->cbuf.data, p->cbuf.cap);
		buf_reset(&p->cbuf);
		imap_cmd_release(p, c);
		return -1;
	}
	if (trace != NULL)
		log_debug(p->account, "imap: C: h%u %s", c->tag, trace);
	else
		log_debug(p->account, "imap: C: %.*s",
		    (int)(p->cbuf.len - 2), p->cbuf.data);
	first = p->ncsplits > 0 ? p->csplits[0] : p->cbuf.len;
	imap_out_add(p, p->cbuf.data, first, secret);
	if (first < p->cbuf.len) {
		if (buf_reserve(&c->rest, p->cbuf.len - first) == -1)
			fatalx("imap: command too long");
		buf_add(&c->rest, p->cbuf.data + first, p->cbuf.len - first);
		c->secret = secret;
		for (i = 1; i < p->ncsplits; i++)
			c->splits[i - 1] = p->csplits[i] - first;
		c->nsplits = p->ncsplits - 1;
		p->cont = c;
	}
	if (secret)
		explicit_bzero(p->cbuf.data, p->cbuf.cap);
	buf_reset(&p->cbuf);
	return 0;
}

/* "+" for a command held at a literal: send the next part of it. */
void
imap_cmd_continue(struct imap *p, struct cmd *c)
{
	size_t	 n = c->nsplits > 0 ? c->splits[0] : c->rest.len;
	size_t	 old = c->rest.len, i;

	imap_out_add(p, c->rest.data, n, c->secret);
	if (c->secret)
		log_debug(p->account, "imap: C: <redacted literal>");
	else
		log_debug(p->account, "imap: C: %.*s", (int)(n > 2 ? n - 2 : 0),
		    c->rest.data);
	buf_consume(&c->rest, n);
	if (c->secret && c->rest.data != NULL)
		explicit_bzero(c->rest.data + c->rest.len, old - c->rest.len);
	if (c->nsplits > 0) {
		for (i = 1; i < c->nsplits; i++)
			c->splits[i - 1] = c->splits[i] - n;
		c->nsplits--;
	}
	if (c->rest.len == 0) {
		if (c->secret)
			buf_free_secret(&c->rest);
		else
			buf_free(&c->rest);
		if (p->cont == c)
			p->cont = NULL;
	}
}
