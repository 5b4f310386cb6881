/* ISC licence; see LICENSE. */

/*
 * The SMTP/LMTP delivery client state machine (sans I/O).  Every command
 * sent leaves an entry in a queue of expected replies; replies are matched
 * to it in order, which serves lock-step and PIPELINING (RFC 2920) alike.
 * The per-answer behaviour is specified in docs/delivery-protocol.md.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/log.h"
#include "haul/smtp.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#define SMTP_CHUNK_DEFAULT	65536
#define SMTP_CHUNK_LIMIT	(16 * 1024 * 1024)
#define SMTP_READ_MAX		16384	/* source bytes per read() call */
#define SMTP_BDAT_INFLIGHT	8	/* pipelined chunks awaiting replies */
#define SMTP_CMD_MAX		512	/* command line incl. CRLF */
#define SMTP_HELO_MAX		255

/* Session commands first: handle_reply() tells them apart by order. */
enum cmd {
	CMD_GREETING, CMD_EHLO, CMD_HELO, CMD_XCLIENT, CMD_RSET, CMD_MAIL,
	CMD_RCPT, CMD_DATA, CMD_DOT, CMD_BDAT, CMD_LAST, CMD_QUIT,
};

static const char *cmd_names[] = {
	"greeting", "EHLO", "HELO", "XCLIENT", "RSET", "MAIL", "RCPT",
	"DATA", "end of data", "BDAT", "BDAT LAST", "QUIT",
};

struct pending {
	enum cmd	 cmd;
	size_t		 idx;	/* recipient index for RCPT and LMTP finals */
};

/* Where each recipient stands. */
enum rstate {
	RS_NONE,	/* no RCPT reply yet */
	RS_ACCEPTED,	/* RCPT 2xx: its fate depends on the data phase */
	RS_AWAIT,	/* end of data sent, its final reply outstanding */
	RS_DONE,	/* decided: rs[i] holds the final code */
};

struct txn {
	char		 *acct;
	char		 *from;
	char		**rcpt;
	size_t		  nrcpt;
	struct smtp_body  body;
	int		  eightbit;
	int		  utf8;
	int		  want_xclient;
	char		 *x_addr, *x_name, *x_helo;
	void		(*cb)(void *, const struct smtp_result *);
	void		 *cbarg;

	struct smtp_rcpt_result *rs;
	enum rstate	 *rst;
	size_t		  nacc;		/* recipients accepted at RCPT */
	size_t		  nreplied;	/* RCPT replies seen */

	int		  xclient_done;
	int		  pipe;		/* PIPELINING used for this one */
	int		  bdat;		/* CHUNKING used for this one */
	int		  mail_sent;
	int		  data_pipelined;
	int		  end_sent;	/* final dot / BDAT LAST handed out */
	int		  clean_end;	/* ... and every reply to it came */
	enum smtp_stage	  where;	/* how far it got */

	/* The deciding reply (first failure wins, else latest success). */
	int		  dcode;
	int		  dlocal;
	enum smtp_stage	  dstage;
	char		  desc[12];
	char		  dtext[SMTP_TEXT_MAX];
	char		  queue_id[SMTP_QUEUE_ID_MAX + 1];

	struct smtp_norm  norm;
	uint64_t	  left;		/* source bytes not read yet */
	int		  src_done;	/* source read and normaliser flushed */
	struct buf	  chunk;	/* normalised bytes for the next BDAT */
	size_t		  inflight;	/* BDAT chunks awaiting a reply */
};

struct smtp_conn {
	enum smtp_state	 state;
	int		 lmtp;
	char		*helo;
	size_t		 chunk;
	int		 no_pipe;
	int		 no_chunk;

	struct smtp_reply_parser rp;
	struct buf	 out;
	struct pending	*pq;
	size_t		 pq_head, pq_len, pq_cap;

	unsigned int	 ext;
	unsigned int	 xattr;
	uint64_t	 size_max;
	int		 need_rset;	/* last transaction ended mid-way */
	int		 xclient_set;	/* XCLIENT attributes are in effect */
	int		 xclient_off;	/* MTA refused XCLIENT: stop asking */

	struct txn	*txn;
	enum err_class	 err;
	char		 errtext[SMTP_TEXT_MAX];
	char		*scratch;
};

static const char *state_names[] = {
	"GREETING", "EHLO", "HELO", "READY", "RSET", "XCLIENT", "ENVELOPE",
	"DATA", "BODY", "FINAL", "DRAIN", "QUIT", "CLOSED", "FAILED",
};

static void	 txn_next(struct smtp_conn *);
static void	 txn_finish(struct smtp_conn *);

const char *
smtp_state_name(enum smtp_state s)
{
	if ((size_t)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "?";
}

const char *
smtp_outcome_name(enum smtp_outcome o)
{
	switch (o) {
	case SMTP_ACCEPTED: return "accepted";
	case SMTP_TEMPFAIL: return "tempfail";
	case SMTP_REFUSED: return "refused";
	case SMTP_PARTIAL: return "partial";
	}
	return "?";
}

const char *
smtp_stage_name(enum smtp_stage s)
{
	switch (s) {
	case SMTP_STAGE_SESSION: return "session";
	case SMTP_STAGE_LOCAL: return "local";
	case SMTP_STAGE_MAIL: return "MAIL";
	case SMTP_STAGE_RCPT: return "RCPT";
	case SMTP_STAGE_DATA: return "DATA";
	case SMTP_STAGE_BODY: return "body";
	case SMTP_STAGE_FINAL: return "end of data";
	}
	return "?";
}

static void
set_state(struct smtp_conn *c, enum smtp_state s)
{
	if (c->state == s)
		return;
	log_debug(NULL, "smtp: %s -> %s", state_names[c->state],
	    state_names[s]);
	c->state = s;
}

static const char *
acct_of(const struct smtp_conn *c)
{
	return c->txn != NULL ? c->txn->acct : NULL;
}

static int
cls(int code)
{
	return code / 100;
}

/* "ddd text" of a reply, escaped to printable ASCII and capped. */
static void
reply_str(char *dst, size_t dstsz, const struct smtp_reply *r)
{
	int	 n;

	n = snprintf(dst, dstsz, "%d ", r->code);
	if (n < 0 || (size_t)n >= dstsz)
		return;
	log_printable(dst + n, dstsz - (size_t)n, r->text, r->textlen);
}

static void
pq_push(struct smtp_conn *c, enum cmd cmd, size_t idx)
{
	if (c->pq_head + c->pq_len == c->pq_cap) {
		if (c->pq_head > 0) {
			memmove(c->pq, c->pq + c->pq_head,
			    c->pq_len * sizeof(*c->pq));
			c->pq_head = 0;
		} else {
			c->pq_cap = c->pq_cap == 0 ? 16 : c->pq_cap * 2;
			c->pq = xreallocarray(c->pq, c->pq_cap,
			    sizeof(*c->pq));
		}
	}
	c->pq[c->pq_head + c->pq_len].cmd = cmd;
	c->pq[c->pq_head + c->pq_len].idx = idx;
	c->pq_len++;
}

static struct pending
pq_pop(struct smtp_conn *c)
{
	struct pending	 p = c->pq[c->pq_head++];

	if (--c->pq_len == 0)
		c->pq_head = 0;
	return p;
}

/* Append one command line and expect one reply to it. */
static void
send_line(struct smtp_conn *c, enum cmd cmd, size_t idx, const char *line,
    size_t len)
{
	if (len + 2 > SMTP_CMD_MAX)
		fatalx("smtp: %s command too long", cmd_names[cmd]);
	if (log_get_level() >= LOG_LVL_DEBUG) {
		char	 esc[SMTP_CMD_MAX * 4];

		log_debug(acct_of(c), "smtp: >>> %s",
		    log_printable(esc, sizeof(esc), line, len));
	}
	if (buf_add(&c->out, line, len) == -1 ||
	    buf_add(&c->out, "\r\n", 2) == -1)
		fatalx("smtp: output buffer full");
	pq_push(c, cmd, idx);
}

static void
send_cmd(struct smtp_conn *c, enum cmd cmd, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
send_cmd(struct smtp_conn *c, enum cmd cmd, size_t idx, const char *fmt, ...)
{
	char	 line[SMTP_CMD_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Callers check lengths first; reaching this is a bug. */
	if (n < 0 || (size_t)n >= sizeof(line))
		fatalx("smtp: %s command too long", cmd_names[cmd]);
	send_line(c, cmd, idx, line, (size_t)n);
}

/*
 * Record the reply that explains the outcome: the first failure, or when
 * nothing failed, the latest success (it carries the queue id).
 */
static void
txn_note(struct txn *t, int code, const char *esc, const char *text,
    int local)
{
	if (t->dcode != 0 && (cls(t->dcode) != 2 || cls(code) == 2))
		return;
	t->dcode = code;
	t->dlocal = local;
	t->dstage = t->where;
	str_lcpy(t->desc, esc, sizeof(t->desc));
	str_lcpy(t->dtext, text, sizeof(t->dtext));
}

static void
rcpt_set(struct txn *t, size_t i, int code, const char *esc,
    const char *text)
{
	t->rs[i].code = code;
	str_lcpy(t->rs[i].esc, esc, sizeof(t->rs[i].esc));
	str_lcpy(t->rs[i].text, text, sizeof(t->rs[i].text));
	t->rst[i] = RS_DONE;
}

/*
 * Give every recipient whose fate is still open this code.  lost: no
 * reply will come; a recipient whose end of data was sent may have been
 * delivered, so it is marked unknown.
 */
static void
txn_apply(struct txn *t, int code, const char *esc, const char *text,
    int lost)
{
	size_t	 i;

	for (i = 0; i < t->nrcpt; i++) {
		if (t->rst[i] == RS_DONE)
			continue;
		if (lost && t->rst[i] == RS_AWAIT)
			t->rs[i].unknown = 1;
		rcpt_set(t, i, code, esc, text);
	}
}

static void
txn_fail_reply(struct txn *t, const struct smtp_reply *r)
{
	char	 text[SMTP_TEXT_MAX];

	reply_str(text, sizeof(text), r);
	txn_note(t, r->code, r->esc, text, 0);
	txn_apply(t, r->code, r->esc, text, 0);
}

/*
 * The session is unusable: drop anything not yet written (a half-sent
 * message must never be terminated), and fail the transaction.  r is the
 * MTA reply that caused it, if any.
 */
static void
session_fail(struct smtp_conn *c, enum err_class err,
    const struct smtp_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
session_fail(struct smtp_conn *c, enum err_class err,
    const struct smtp_reply *r, const char *fmt, ...)
{
	struct txn	*t = c->txn;
	va_list		 ap;
	int		 code = 421;
	const char	*esc = "4.4.2";

	va_start(ap, fmt);
	vsnprintf(c->errtext, sizeof(c->errtext), fmt, ap);
	va_end(ap);
	c->err = err;
	buf_reset(&c->out);
	c->pq_head = c->pq_len = 0;
	set_state(c, SMTP_ST_FAILED);
	log_debug(acct_of(c), "smtp: session failed (%s): %s",
	    err_class_name(err), c->errtext);
	if (t == NULL)
		return;
	if (err == ERR_LOCAL) {
		code = 451;
		esc = "4.3.0";
	} else if (err == ERR_PROTOCOL)
		esc = "4.5.0";
	if (r != NULL)
		txn_note(t, r->code, r->esc, c->errtext, 0);
	else
		txn_note(t, code, esc, c->errtext, 1);
	txn_apply(t, code, esc, c->errtext, 1);
	txn_finish(c);
}

/* A reply that no command may get: the stream cannot be trusted. */
static void
bad_reply(struct smtp_conn *c, enum cmd cmd, const struct smtp_reply *r)
{
	char	 text[SMTP_TEXT_MAX];

	reply_str(text, sizeof(text), r);
	session_fail(c, ERR_PROTOCOL, NULL, "unexpected reply to %s: %s",
	    cmd_names[cmd], text);
}

static void
txn_free(struct txn *t)
{
	size_t	 i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
	free(t->rcpt);
	free(t->acct);
	free(t->from);
	free(t->x_addr);
	free(t->x_name);
	free(t->x_helo);
	free(t->rs);
	free(t->rst);
	buf_free(&t->chunk);
	free(t);
}

/* Report the transaction to its owner and get ready for the next one. */
static void
txn_finish(struct smtp_conn *c)
{
	struct txn	*t = c->txn;
	struct smtp_result r;
	size_t		 i, n2 = 0, n5 = 0;
	int		 unknown = 0;

	c->txn = NULL;
	if (t->mail_sent && !t->clean_end)
		c->need_rset = 1;
	if (c->state != SMTP_ST_FAILED && c->state != SMTP_ST_CLOSED)
		set_state(c, SMTP_ST_READY);

	for (i = 0; i < t->nrcpt; i++) {
		if (cls(t->rs[i].code) == 2)
			n2++;
		else if (cls(t->rs[i].code) == 5)
			n5++;
		unknown |= t->rs[i].unknown;
	}
	memset(&r, 0, sizeof(r));
	if (n2 == t->nrcpt)
		r.outcome = SMTP_ACCEPTED;
	else if (n2 > 0)
		r.outcome = SMTP_PARTIAL;
	else if (n5 == t->nrcpt)
		r.outcome = SMTP_REFUSED;
	else
		r.outcome = SMTP_TEMPFAIL;
	r.stage = t->dcode != 0 ? t->dstage : t->where;
	r.code = t->dcode;
	r.esc = t->desc;
	r.text = t->dtext;
	r.local = t->dlocal;
	r.unknown = unknown;
	r.queue_id = t->queue_id;
	r.nrcpt = t->nrcpt;
	r.rcpt = t->rs;
	log_debug(t->acct, "smtp: transaction %s at %s%s: %s",
	    smtp_outcome_name(r.outcome), smtp_stage_name(r.stage),
	    unknown ? " (outcome unknown)" : "", r.text);
	t->cb(t->cbarg, &r);
	txn_free(t);
}

/* Fail the transaction, waiting first for replies still in the pipeline. */
static void
txn_settle(struct smtp_conn *c)
{
	if (c->pq_len > 0)
		set_state(c, SMTP_ST_DRAIN);
	else
		txn_finish(c);
}

/* The client refuses the message itself, before MAIL. */
static void
txn_refuse(struct smtp_conn *c, int code, const char *esc, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
txn_refuse(struct smtp_conn *c, int code, const char *esc, const char *fmt,
    ...)
{
	struct txn	*t = c->txn;
	char		 text[SMTP_TEXT_MAX];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	t->where = SMTP_STAGE_LOCAL;
	txn_note(t, code, esc, text, 1);
	txn_apply(t, code, esc, text, 0);
	txn_finish(c);
}

/* Greeting and EHLO/HELO done: go idle or carry on with a transaction. */
static void
hello_done(struct smtp_conn *c)
{
	set_state(c, SMTP_ST_READY);
	if (c->txn != NULL)
		txn_next(c);
}

/* A name that can stand as the EHLO/HELO argument. */
static int
helo_ok(const char *s)
{
	size_t	 i, len;

	if (s == NULL || (len = strlen(s)) == 0 || len > SMTP_HELO_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * Send XCLIENT with this message's origin.  Returns 0 when sent, -1 when
 * there was nothing the MTA would take.
 */
static int
xclient_send(struct smtp_conn *c)
{
	struct txn		*t = c->txn;
	struct smtp_xclient	 x = { t->x_addr, t->x_name, t->x_helo };
	struct buf		 line = BUF_INIT;
	int			 rc;

	if ((rc = smtp_xclient_line(&line, c->xattr, &x)) == 0) {
		send_line(c, CMD_XCLIENT, 0, line.data, line.len);
		set_state(c, SMTP_ST_XCLIENT);
	}
	buf_free(&line);
	return rc;
}

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Decide locally what the MTA would refuse anyway (D8), then send the
 * envelope: MAIL, and when pipelining all RCPTs and DATA in one write.
 */
static void
txn_envelope(struct smtp_conn *c)
{
	struct txn	*t = c->txn;
	char		 size[32] = "";
	size_t		 i;
	int		 utf8 = t->utf8 || has_8bit(t->from);

	if (!smtp_addr_ok(t->from, 1)) {
		txn_refuse(c, 553, "5.1.7", "invalid envelope sender address");
		return;
	}
	for (i = 0; i < t->nrcpt; i++) {
		if (!smtp_addr_ok(t->rcpt[i], 0)) {
			txn_refuse(c, 553, "5.1.3",
			    "invalid recipient address (#%zu)", i + 1);
			return;
		}
		utf8 |= has_8bit(t->rcpt[i]);
	}
	if (utf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		txn_refuse(c, 553, "5.6.7",
		    "message needs SMTPUTF8 and the MTA does not offer it");
		return;
	}
	if ((c->ext & SMTP_EXT_SIZE) && c->size_max > 0 &&
	    t->body.size > c->size_max) {
		txn_refuse(c, 552, "5.3.4", "message size %llu exceeds the "
		    "MTA's SIZE limit %llu", (unsigned long long)t->body.size,
		    (unsigned long long)c->size_max);
		return;
	}

	t->pipe = (c->ext & SMTP_EXT_PIPELINING) && !c->no_pipe;
	t->bdat = (c->ext & SMTP_EXT_CHUNKING) && !c->no_chunk;
	if (c->need_rset) {
		send_cmd(c, CMD_RSET, 0, "RSET");
		if (!t->pipe) {
			set_state(c, SMTP_ST_RSET);
			return;
		}
		c->need_rset = 0;
	}
	if (c->ext & SMTP_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)t->body.size);
	send_cmd(c, CMD_MAIL, 0, "MAIL FROM:<%s>%s%s%s", t->from, size,
	    t->eightbit && (c->ext & SMTP_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
	    utf8 ? " SMTPUTF8" : "");
	t->mail_sent = 1;
	t->where = SMTP_STAGE_MAIL;
	set_state(c, SMTP_ST_ENVELOPE);
	if (!t->pipe)
		return;
	for (i = 0; i < t->nrcpt; i++)
		send_cmd(c, CMD_RCPT, i, "RCPT TO:<%s>", t->rcpt[i]);
	/*
	 * DATA joins the group only when no RCPT answer can make us want
	 * out of the data phase: LMTP (partial delivery is the norm) or a
	 * single recipient (if it fails, nothing was accepted and a bare
	 * "." delivers nothing).  BDAT always waits for the RCPT replies.
	 */
	if (!t->bdat && (c->lmtp || t->nrcpt == 1)) {
		send_cmd(c, CMD_DATA, 0, "DATA");
		t->data_pipelined = 1;
	}
}

/* Run the transaction from wherever the session let it start. */
static void
txn_next(struct smtp_conn *c)
{
	struct txn	*t = c->txn;

	if (t->want_xclient && !t->xclient_done) {
		if ((c->ext & SMTP_EXT_XCLIENT) && !c->xclient_off) {
			/* XCLIENT is not allowed inside a transaction. */
			if (c->need_rset) {
				send_cmd(c, CMD_RSET, 0, "RSET");
				set_state(c, SMTP_ST_RSET);
				return;
			}
			if (xclient_send(c) == 0)
				return;
		}
		if (c->xclient_set) {
			/* The last message's origin would stick to this one. */
			session_fail(c, ERR_MTA, NULL, "cannot replace the "
			    "XCLIENT origin set on this connection");
			return;
		}
		log_debug(t->acct, "smtp: XCLIENT not usable; sending "
		    "without origin");
		t->xclient_done = 1;
	}
	txn_envelope(c);
}

/* Start the message data: rewind the source, pick DATA or BDAT framing. */
static void
body_begin(struct smtp_conn *c)
{
	struct txn	*t = c->txn;

	t->where = SMTP_STAGE_BODY;
	t->left = t->body.size;
	t->src_done = 0;
	buf_reset(&t->chunk);
	smtp_norm_init(&t->norm, !t->bdat);
	set_state(c, SMTP_ST_BODY);
	if (t->body.rewind != NULL && t->body.rewind(t->body.arg) == -1)
		session_fail(c, ERR_LOCAL, NULL,
		    "cannot rewind the message source");
}

/* All RCPT replies are in: go on to the data phase or give up. */
static void
rcpts_done(struct smtp_conn *c)
{
	struct txn	*t = c->txn;
	size_t		 i;

	if (!c->lmtp) {
		/* SMTP: one 4xx fails the whole message (see docs). */
		for (i = 0; i < t->nrcpt; i++) {
			if (cls(t->rs[i].code) != 4)
				continue;
			txn_note(t, t->rs[i].code, t->rs[i].esc,
			    t->rs[i].text, 0);
			txn_apply(t, t->rs[i].code, t->rs[i].esc,
			    t->rs[i].text, 0);
			txn_settle(c);
			return;
		}
	}
	if (t->nacc == 0) {
		/* Explain with the first 4xx (it means TEMPFAIL), else #1. */
		for (i = 0; i < t->nrcpt; i++)
			if (cls(t->rs[i].code) == 4)
				break;
		if (i == t->nrcpt)
			i = 0;
		txn_note(t, t->rs[i].code, t->rs[i].esc, t->rs[i].text, 0);
		txn_settle(c);
		return;
	}
	t->where = SMTP_STAGE_DATA;
	if (t->data_pipelined)
		set_state(c, SMTP_ST_DATA);
	else if (t->bdat)
		body_begin(c);
	else {
		send_cmd(c, CMD_DATA, 0, "DATA");
		set_state(c, SMTP_ST_DATA);
	}
}

/* The end of data is out: every accepted recipient now awaits its verdict. */
static void
end_data(struct smtp_conn *c, enum cmd cmd)
{
	struct txn	*t = c->txn;
	size_t		 i;
	int		 pushed = 0;

	t->end_sent = 1;
	t->where = SMTP_STAGE_FINAL;
	for (i = 0; i < t->nrcpt; i++) {
		if (t->rst[i] != RS_ACCEPTED)
			continue;
		t->rst[i] = RS_AWAIT;
		/* LMTP: one reply per accepted recipient (RFC 2033 4.2). */
		if (c->lmtp || !pushed)
			pq_push(c, cmd, i);
		pushed = 1;
	}
	set_state(c, SMTP_ST_FINAL);
}

/* A final reply (to "." or BDAT LAST) for one recipient or, SMTP, all. */
static void
final_reply(struct smtp_conn *c, struct pending *pe,
    const struct smtp_reply *r)
{
	struct txn	*t = c->txn;
	char		 text[SMTP_TEXT_MAX];
	size_t		 i;

	if (cls(r->code) != 2 && cls(r->code) != 4 && cls(r->code) != 5) {
		bad_reply(c, pe->cmd, r);
		return;
	}
	reply_str(text, sizeof(text), r);
	for (i = 0; i < t->nrcpt; i++)
		if (t->rst[i] == RS_AWAIT && (!c->lmtp || i == pe->idx))
			rcpt_set(t, i, r->code, r->esc, text);
	txn_note(t, r->code, r->esc, text, 0);
	if (cls(r->code) == 2 && t->queue_id[0] == '\0')
		smtp_parse_queue_id(r->text, r->textlen, t->queue_id);
	if (c->pq_len == 0) {
		t->clean_end = 1;
		txn_finish(c);
	}
}

/* Replies still in the pipeline after the transaction failed. */
static void
drain_reply(struct smtp_conn *c, struct pending *pe,
    const struct smtp_reply *r)
{
	struct txn	*t = c->txn;

	if (pe->cmd == CMD_DATA && r->code == 354) {
		/*
		 * RFC 2920 3.1: DATA got 354 though no recipient was
		 * accepted; an empty message ends it and delivers nothing.
		 */
		if (buf_add(&c->out, ".\r\n", 3) == -1)
			fatalx("smtp: output buffer full");
		log_debug(t->acct, "smtp: >>> . (no recipient accepted)");
		if (!c->lmtp)
			pq_push(c, CMD_DOT, 0);
	} else if (pe->cmd == CMD_BDAT)
		t->inflight--;
	if (c->pq_len == 0)
		txn_finish(c);
}

/* The MTA said 421: it is closing the connection. */
static void
reply_421(struct smtp_conn *c, struct pending *pe, const struct smtp_reply *r)
{
	struct txn	*t = c->txn;
	char		 text[SMTP_TEXT_MAX];
	size_t		 i;

	reply_str(text, sizeof(text), r);
	/* A definite "no" to the end of data is not an unknown outcome. */
	if (t != NULL && pe != NULL && (pe->cmd == CMD_DOT ||
	    pe->cmd == CMD_LAST)) {
		for (i = 0; i < t->nrcpt; i++)
			if (t->rst[i] == RS_AWAIT && (!c->lmtp || i == pe->idx))
				rcpt_set(t, i, r->code, r->esc, text);
	}
	session_fail(c, ERR_MTA, r, "MTA closing the connection: %s", text);
}

/* The MTA refused a session command: the session is over. */
static void
session_refused(struct smtp_conn *c, const struct smtp_reply *r,
    const char *what)
{
	char	 text[SMTP_TEXT_MAX];

	reply_str(text, sizeof(text), r);
	session_fail(c, ERR_MTA, r, "%s: %s", what, text);
}

/* The reply to XCLIENT: the origin is set, refused, or must wait. */
static void
xclient_reply(struct smtp_conn *c, const struct smtp_reply *r)
{
	struct txn	*t = c->txn;
	char		 text[SMTP_TEXT_MAX];

	t->xclient_done = 1;
	if (r->code == 220) {
		/*
		 * A new session: forget the old extensions.  The EHLO
		 * argument becomes the HELO name the MTA records, so give
		 * the origin's when it is usable.
		 */
		c->xclient_set = 1;
		c->need_rset = 0;
		c->ext = c->xattr = 0;
		send_cmd(c, CMD_EHLO, 0, "%s %s", c->lmtp ? "LHLO" : "EHLO",
		    helo_ok(t->x_helo) ? t->x_helo : c->helo);
		set_state(c, SMTP_ST_EHLO);
		return;
	}
	switch (cls(r->code)) {
	case 2:
		/* Before Postfix 2.3: 250 and no new session. */
		c->xclient_set = 1;
		break;
	case 4:
		txn_fail_reply(t, r);
		txn_finish(c);
		return;
	case 5:
		if (c->xclient_set) {
			/* The previous message's origin would stick. */
			session_refused(c, r, "MTA refused XCLIENT");
			return;
		}
		reply_str(text, sizeof(text), r);
		log_warnx(t->acct, "smtp: MTA refused XCLIENT, delivering "
		    "without origin: %s", text);
		c->xclient_off = 1;
		break;
	default:
		bad_reply(c, CMD_XCLIENT, r);
		return;
	}
	set_state(c, SMTP_ST_READY);
	txn_envelope(c);
}

/* Replies to the commands that set up the session. */
static void
session_reply(struct smtp_conn *c, enum cmd cmd, const struct smtp_reply *r)
{
	int	 k = cls(r->code);

	if (cmd == CMD_XCLIENT) {
		xclient_reply(c, r);
		return;
	}
	if (k != 2 && k != 4 && k != 5) {
		bad_reply(c, cmd, r);
		return;
	}
	switch (cmd) {
	case CMD_GREETING:
		if (r->code != 220) {
			session_refused(c, r, "MTA greeting");
			return;
		}
		send_cmd(c, CMD_EHLO, 0, "%s %s", c->lmtp ? "LHLO" : "EHLO",
		    c->helo);
		set_state(c, SMTP_ST_EHLO);
		return;
	case CMD_EHLO:
		if (k == 2) {
			struct smtp_ehlo e;

			smtp_ehlo_parse(r, &e);
			c->ext = e.ext;
			c->xattr = e.xattr;
			c->size_max = e.size_max;
			hello_done(c);
		} else if (k == 5 && !c->lmtp) {
			/* RFC 5321 3.2: an old server; no extensions. */
			send_cmd(c, CMD_HELO, 0, "HELO %s", c->helo);
			set_state(c, SMTP_ST_HELO);
		} else
			session_refused(c, r, c->lmtp ? "LHLO refused" :
			    "EHLO refused");
		return;
	case CMD_HELO:
		if (k != 2) {
			session_refused(c, r, "HELO refused");
			return;
		}
		c->ext = c->xattr = 0;
		c->size_max = 0;
		hello_done(c);
		return;
	case CMD_RSET:
		if (k != 2) {
			session_refused(c, r, "RSET refused");
			return;
		}
		c->need_rset = 0;
		if (c->state == SMTP_ST_RSET) {
			set_state(c, SMTP_ST_READY);
			txn_next(c);
		}
		return;
	default:
		fatalx("smtp: %s is not a session command", cmd_names[cmd]);
	}
}

/* Replies to MAIL, RCPT, DATA, BDAT and the end of data. */
static void
txn_reply(struct smtp_conn *c, struct pending *pe, const struct smtp_reply *r)
{
	struct txn	*t = c->txn;
	char		 text[SMTP_TEXT_MAX];
	int		 k = cls(r->code);

	if (pe->cmd == CMD_DATA && r->code == 354) {
		body_begin(c);
		return;
	}
	/* Every command here takes 2xx, 4xx or 5xx; DATA no 2xx. */
	if ((k != 2 && k != 4 && k != 5) || (pe->cmd == CMD_DATA && k == 2)) {
		bad_reply(c, pe->cmd, r);
		return;
	}
	switch (pe->cmd) {
	case CMD_MAIL:
		if (k != 2)
			break;
		t->where = SMTP_STAGE_RCPT;
		if (!t->pipe)
			send_cmd(c, CMD_RCPT, 0, "RCPT TO:<%s>", t->rcpt[0]);
		return;
	case CMD_RCPT:
		reply_str(text, sizeof(text), r);
		rcpt_set(t, pe->idx, r->code, r->esc, text);
		if (k == 2) {
			t->rst[pe->idx] = RS_ACCEPTED;
			t->nacc++;
		}
		t->nreplied++;
		if (!t->pipe && t->nreplied < t->nrcpt)
			send_cmd(c, CMD_RCPT, t->nreplied, "RCPT TO:<%s>",
			    t->rcpt[t->nreplied]);
		if (t->nreplied == t->nrcpt)
			rcpts_done(c);
		return;
	case CMD_DATA:
		break;
	case CMD_BDAT:
		t->inflight--;
		if (k == 2)
			return;
		/* RFC 3030 2: no further chunk after a failure. */
		break;
	case CMD_DOT:
	case CMD_LAST:
		final_reply(c, pe, r);
		return;
	default:
		fatalx("smtp: %s is not a transaction command",
		    cmd_names[pe->cmd]);
	}
	txn_fail_reply(t, r);
	txn_settle(c);
}

static void
handle_reply(struct smtp_conn *c, const struct smtp_reply *r)
{
	struct pending	 pe;

	if (log_get_level() >= LOG_LVL_DEBUG) {
		char	 text[SMTP_TEXT_MAX];

		reply_str(text, sizeof(text), r);
		log_debug(acct_of(c), "smtp: <<< %s", text);
	}
	if (c->pq_len == 0) {
		if (r->code == 421)
			reply_421(c, NULL, r);
		else
			session_fail(c, ERR_PROTOCOL, NULL,
			    "reply %d without a command in %s", r->code,
			    state_names[c->state]);
		return;
	}
	pe = pq_pop(c);
	if (pe.cmd == CMD_QUIT)
		set_state(c, SMTP_ST_CLOSED);
	else if (r->code == 421)
		reply_421(c, &pe, r);
	else if (c->state == SMTP_ST_DRAIN)
		drain_reply(c, &pe, r);
	else if (pe.cmd <= CMD_RSET)
		session_reply(c, pe.cmd, r);
	else
		txn_reply(c, &pe, r);
}

struct smtp_conn *
smtp_new(const struct smtp_config *cfg)
{
	struct smtp_conn *c;

	if (!helo_ok(cfg->helo_name))
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->lmtp = cfg->lmtp;
	c->helo = xstrdup(cfg->helo_name);
	c->chunk = cfg->bdat_chunk == 0 ? SMTP_CHUNK_DEFAULT : cfg->bdat_chunk;
	if (c->chunk > SMTP_CHUNK_LIMIT)
		c->chunk = SMTP_CHUNK_LIMIT;
	c->no_pipe = cfg->no_pipelining;
	c->no_chunk = cfg->no_chunking;
	smtp_reply_init(&c->rp);
	buf_init(&c->out, 0);
	c->scratch = xmalloc(SMTP_READ_MAX);
	c->state = SMTP_ST_GREETING;
	pq_push(c, CMD_GREETING, 0);
	return c;
}

void
smtp_free(struct smtp_conn **cp)
{
	struct smtp_conn *c = *cp;

	if (c == NULL)
		return;
	txn_free(c->txn);
	buf_free(&c->out);
	free(c->pq);
	free(c->helo);
	free(c->scratch);
	free(c);
	*cp = NULL;
}

static enum proto_status
status_of(const struct smtp_conn *c)
{
	if (c->state == SMTP_ST_FAILED)
		return PS_ERROR;
	if (c->state == SMTP_ST_CLOSED)
		return PS_DONE;
	return PS_MORE;
}

enum proto_status
smtp_input(struct smtp_conn *c, const void *data, size_t len,
    size_t *consumed)
{
	const char		*p = data;
	size_t			 off = 0, used;
	enum smtp_reply_status	 st;

	*consumed = 0;
	while (off < len && status_of(c) == PS_MORE) {
		st = smtp_reply_parse(&c->rp, p + off, len - off, &used);
		off += used;
		if (st == SMTP_REPLY_MORE)
			break;
		if (st == SMTP_REPLY_BAD) {
			session_fail(c, ERR_PROTOCOL, NULL,
			    "malformed reply: %s", c->rp.error);
			break;
		}
		handle_reply(c, &c->rp.reply);
	}
	*consumed = off;
	return status_of(c);
}

struct buf *
smtp_output(struct smtp_conn *c)
{
	return &c->out;
}

int
smtp_pump_wanted(const struct smtp_conn *c)
{
	const struct txn *t = c->txn;

	if (t == NULL || c->state != SMTP_ST_BODY)
		return 0;
	if (!t->bdat || t->inflight == 0)
		return 1;
	/* The LAST chunk waits until every earlier chunk was answered. */
	return t->pipe && t->inflight < SMTP_BDAT_INFLIGHT && t->left > 0;
}

/*
 * Read up to want source bytes and append them, normalised, to dst.
 * Returns 0, 1 when the source has nothing right now, or -1 when it failed
 * (the session has then failed).
 */
static int
body_read(struct smtp_conn *c, struct buf *dst, size_t want)
{
	struct txn	*t = c->txn;
	ssize_t		 n;

	if (want > SMTP_READ_MAX)
		want = SMTP_READ_MAX;
	if (want > t->left)
		want = (size_t)t->left;
	if (want == 0)
		want = 1;
	n = t->body.read(t->body.arg, c->scratch, want);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	if (n < 0) {
		session_fail(c, ERR_LOCAL, NULL,
		    "message source read error: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		session_fail(c, ERR_LOCAL, NULL, "message source ended %llu "
		    "bytes early", (unsigned long long)t->left);
		return -1;
	}
	if ((size_t)n > want) {
		session_fail(c, ERR_LOCAL, NULL, "message source overran");
		return -1;
	}
	t->left -= (uint64_t)n;
	if (smtp_norm_feed(&t->norm, c->scratch, (size_t)n, dst) == -1)
		fatalx("smtp: output buffer full");
	return 0;
}

/* DATA: stream dot-stuffed lines, then the terminator. */
static void
pump_data(struct smtp_conn *c, size_t budget)
{
	struct txn	*t = c->txn;
	size_t		 start = c->out.len;

	while (t->left > 0 && c->out.len - start < budget)
		if (body_read(c, &c->out, budget - (c->out.len - start)) != 0)
			return;
	if (t->left > 0)
		return;
	if (smtp_norm_finish(&t->norm, &c->out) == -1 ||
	    buf_add(&c->out, ".\r\n", 3) == -1)
		fatalx("smtp: output buffer full");
	log_debug(t->acct, "smtp: >>> [%llu message bytes] .",
	    (unsigned long long)t->norm.out);
	end_data(c, CMD_DOT);
}

/* BDAT: whole chunks of normalised bytes; LAST once all others are answered. */
static void
pump_bdat(struct smtp_conn *c, size_t budget)
{
	struct txn	*t = c->txn;
	size_t		 start = c->out.len, n;
	char		 hdr[64];
	int		 last;

	while (smtp_pump_wanted(c)) {
		while (t->chunk.len < c->chunk && t->left > 0)
			if (body_read(c, &t->chunk,
			    c->chunk - t->chunk.len) != 0)
				return;
		if (t->left == 0 && !t->src_done) {
			if (smtp_norm_finish(&t->norm, &t->chunk) == -1)
				fatalx("smtp: chunk buffer full");
			t->src_done = 1;
		}
		last = t->src_done && t->chunk.len <= c->chunk;
		if (last && t->inflight > 0)
			return;
		n = last ? t->chunk.len : c->chunk;
		snprintf(hdr, sizeof(hdr), "BDAT %zu%s", n,
		    last ? " LAST" : "");
		if (last) {
			if (log_get_level() >= LOG_LVL_DEBUG)
				log_debug(t->acct, "smtp: >>> %s", hdr);
			if (buf_add_str(&c->out, hdr) == -1 ||
			    buf_add(&c->out, "\r\n", 2) == -1)
				fatalx("smtp: output buffer full");
		} else {
			send_line(c, CMD_BDAT, 0, hdr, strlen(hdr));
			t->inflight++;
		}
		if (buf_add(&c->out, t->chunk.data, n) == -1)
			fatalx("smtp: output buffer full");
		buf_consume(&t->chunk, n);
		if (last) {
			end_data(c, CMD_LAST);
			return;
		}
		if (c->out.len - start >= budget)
			return;
	}
}

enum proto_status
smtp_pump(struct smtp_conn *c, size_t budget)
{
	if (!smtp_pump_wanted(c))
		return status_of(c);
	if (c->txn->bdat)
		pump_bdat(c, budget);
	else
		pump_data(c, budget);
	return status_of(c);
}

enum smtp_timeout
smtp_timeout_kind(const struct smtp_conn *c)
{
	switch (c->state) {
	case SMTP_ST_FAILED:
	case SMTP_ST_CLOSED:
		return SMTP_TIMEOUT_NONE;
	case SMTP_ST_BODY:
		return SMTP_TIMEOUT_DATA_BLOCK;
	case SMTP_ST_FINAL:
		return SMTP_TIMEOUT_FINAL;
	default:
		return c->pq_len > 0 ? SMTP_TIMEOUT_COMMAND : SMTP_TIMEOUT_NONE;
	}
}

unsigned int
smtp_timeout_default(enum smtp_timeout k)
{
	switch (k) {
	case SMTP_TIMEOUT_NONE: return 0;
	case SMTP_TIMEOUT_COMMAND: return 300;
	case SMTP_TIMEOUT_DATA_BLOCK: return 180;
	case SMTP_TIMEOUT_FINAL: return 600;
	}
	return 0;
}

static char *
dup_nonempty(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

int
smtp_submit(struct smtp_conn *c, const struct smtp_txn *in)
{
	struct txn	*t;
	size_t		 i;
	int		 xc;

	if (!smtp_can_submit(c) || in == NULL || in->from == NULL ||
	    in->rcpt == NULL || in->nrcpt == 0 || in->nrcpt > SMTP_RCPT_MAX ||
	    in->body.read == NULL || in->result == NULL)
		return -1;
	for (i = 0; i < in->nrcpt; i++)
		if (in->rcpt[i] == NULL)
			return -1;
	xc = in->xclient != NULL && ((in->xclient->addr != NULL &&
	    *in->xclient->addr != '\0') || (in->xclient->name != NULL &&
	    *in->xclient->name != '\0') || (in->xclient->helo != NULL &&
	    *in->xclient->helo != '\0'));
	if (!xc && c->xclient_set)
		return -1;

	t = xcalloc(1, sizeof(*t));
	t->acct = in->acct != NULL ? xstrdup(in->acct) : NULL;
	t->from = xstrdup(in->from);
	t->nrcpt = in->nrcpt;
	t->rcpt = xcalloc(in->nrcpt, sizeof(*t->rcpt));
	for (i = 0; i < in->nrcpt; i++)
		t->rcpt[i] = xstrdup(in->rcpt[i]);
	t->rs = xcalloc(in->nrcpt, sizeof(*t->rs));
	t->rst = xcalloc(in->nrcpt, sizeof(*t->rst));
	t->body = in->body;
	t->eightbit = in->eightbit;
	t->utf8 = in->utf8;
	if (xc) {
		t->want_xclient = 1;
		t->x_addr = dup_nonempty(in->xclient->addr);
		t->x_name = dup_nonempty(in->xclient->name);
		t->x_helo = dup_nonempty(in->xclient->helo);
	}
	t->cb = in->result;
	t->cbarg = in->arg;
	t->where = SMTP_STAGE_SESSION;
	buf_init(&t->chunk, 0);
	c->txn = t;
	if (c->state == SMTP_ST_READY)
		txn_next(c);
	return 0;
}

int
smtp_quit(struct smtp_conn *c)
{
	if (c->txn != NULL || c->state != SMTP_ST_READY)
		return -1;
	send_cmd(c, CMD_QUIT, 0, "QUIT");
	set_state(c, SMTP_ST_QUIT);
	return 0;
}

void
smtp_conn_lost(struct smtp_conn *c, const char *why)
{
	const char	*what;

	if (c->state == SMTP_ST_FAILED || c->state == SMTP_ST_CLOSED)
		return;
	if (c->state == SMTP_ST_QUIT) {
		set_state(c, SMTP_ST_CLOSED);
		return;
	}
	if (why == NULL)
		why = "connection lost";
	if (c->txn == NULL)
		what = "";
	else if (c->txn->end_sent)
		what = " after the end of data: outcome unknown";
	else
		what = " before the end of data";
	session_fail(c, ERR_NETWORK, NULL, "%s%s", why, what);
}

int
smtp_is_idle(const struct smtp_conn *c)
{
	return c->state == SMTP_ST_READY && c->txn == NULL && c->pq_len == 0;
}

int
smtp_can_submit(const struct smtp_conn *c)
{
	if (c->txn != NULL)
		return 0;
	switch (c->state) {
	case SMTP_ST_GREETING:
	case SMTP_ST_EHLO:
	case SMTP_ST_HELO:
	case SMTP_ST_READY:
		return 1;
	default:
		return 0;
	}
}

enum smtp_state
smtp_state(const struct smtp_conn *c)
{
	return c->state;
}

unsigned int
smtp_extensions(const struct smtp_conn *c)
{
	return c->ext;
}

uint64_t
smtp_size_limit(const struct smtp_conn *c)
{
	return (c->ext & SMTP_EXT_SIZE) ? c->size_max : 0;
}

enum err_class
smtp_error(const struct smtp_conn *c)
{
	return c->err;
}

const char *
smtp_error_text(const struct smtp_conn *c)
{
	return c->errtext;
}
