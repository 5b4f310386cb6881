/* ISC licence; see LICENSE. */
#ifndef HAUL_SMTP_H
#define HAUL_SMTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "haul/buf.h"
#include "haul/proto.h"

/*
 * The SMTP/LMTP delivery client, as a sans-I/O machine.  It never touches
 * a socket: the driver feeds it what the MTA sent (smtp_input), writes out
 * what it produced (smtp_output), lets it produce message bytes when the
 * connection has room (smtp_pump) and tells it when the connection died
 * (smtp_conn_lost).  Timers are the driver's too: smtp_timeout_kind says
 * which one applies.  One machine serves one connection and any number of
 * transactions, one at a time.  The exact behaviour per MTA answer is in
 * docs/delivery-protocol.md.
 */

/* ---------------------------------------------------------------------- */
/* Reply parser (pure; fed bytes, resumable at any byte).                  */

#define SMTP_REPLY_LINE_MAX	512	/* incl. CRLF, RFC 5321 4.5.3.1.5 */
#define SMTP_REPLY_LINES_MAX	100	/* more lines is an error */
#define SMTP_REPLY_TEXT_MAX	4096	/* text kept; truncated past it */
#define SMTP_REPLY_TRUNC_MARK	"\n[...truncated]"

enum smtp_reply_status {
	SMTP_REPLY_MORE,	/* everything consumed, no complete reply yet */
	SMTP_REPLY_OK,		/* one reply complete: see parser.reply */
	SMTP_REPLY_BAD,		/* malformed: see parser.error; sticky */
};

/*
 * One complete reply.  text holds the text of each line (after "ddd-" or
 * "ddd "), lines separated by a single '\n'; it never holds CR, LF (other
 * than the separators) or NUL, but may hold other control or 8-bit bytes,
 * so escape it before logging.  When the lines do not fit, whole lines are
 * dropped and SMTP_REPLY_TRUNC_MARK is appended.  esc is the enhanced
 * status code (RFC 3463, "x.y.z") of the first line when it has one whose
 * class matches the reply code, else "".
 */
struct smtp_reply {
	int		 code;
	char		 esc[12];
	unsigned	 nlines;
	int		 truncated;
	size_t		 textlen;
	char		 text[SMTP_REPLY_TEXT_MAX + 1];
};

struct smtp_reply_parser {
	struct smtp_reply reply;	/* valid after SMTP_REPLY_OK */
	char		 line[SMTP_REPLY_LINE_MAX];
	size_t		 linelen;
	int		 cr;		/* the previous byte was CR */
	int		 complete;	/* done: the next byte starts anew */
	const char	*error;		/* static string after SMTP_REPLY_BAD */
};

void	 smtp_reply_init(struct smtp_reply_parser *);
/*
 * Parse data[0..len).  Stops right after the last line of one reply, so
 * pipelined replies come out one per call: *consumed says how much was
 * used (all of it on MORE).  On OK, p->reply stays valid until the next
 * call.  Grammar: lines of exactly three digits (2-5, 0-5, 0-9), then SP,
 * '-' or CRLF; CRLF only (bare CR, bare LF and NUL are errors); at most
 * SMTP_REPLY_LINE_MAX octets a line and SMTP_REPLY_LINES_MAX lines; every
 * line of a reply carries the same code.
 */
enum smtp_reply_status smtp_reply_parse(struct smtp_reply_parser *,
	    const void *data, size_t len, size_t *consumed);

/* ---------------------------------------------------------------------- */
/* Pure helpers (exposed for the tests and the F8 fuzz target).            */

/*
 * The body normaliser: bare CR, bare LF and CRLF all become CRLF, and with
 * stuff set a '.' that starts a line is doubled (RFC 5321 4.5.2).  It is
 * fed the body in arbitrary pieces; a CR ending one piece and the LF
 * starting the next make one line end.
 */
struct smtp_norm {
	int		 bol;		/* next byte starts a line */
	int		 cr;		/* a CR is held back */
	int		 stuff;		/* dot-stuff (DATA), not for BDAT */
	uint64_t	 out;		/* bytes produced so far */
};

void	 smtp_norm_init(struct smtp_norm *, int stuff);
/* Append the normalised form of src[0..len) to out; -1 if out is full. */
int	 smtp_norm_feed(struct smtp_norm *, const void *src, size_t len,
	    struct buf *out);
/*
 * End of body: flush a held CR and end a last line that has no line end,
 * so a non-empty body always ends with CRLF (the DATA terminator ".CRLF"
 * is not added here).  -1 if out is full.
 */
int	 smtp_norm_finish(struct smtp_norm *, struct buf *out);

/* Append value as RFC 3461 xtext ("+HH" for '+', '=', controls, 8-bit). */
int	 smtp_xtext_encode(struct buf *out, const char *value, size_t len);

#define SMTP_QUEUE_ID_MAX	32
/*
 * Find "queued as ID" (Postfix) in a reply text and copy ID ([0-9A-Za-z],
 * 1..SMTP_QUEUE_ID_MAX characters) to dst, which must hold
 * SMTP_QUEUE_ID_MAX + 1 bytes.  Returns 0, or -1 (dst is then "").
 */
int	 smtp_parse_queue_id(const char *text, size_t len, char *dst);

/* EHLO extensions the client uses (smtp_extensions()). */
#define SMTP_EXT_PIPELINING	0x01
#define SMTP_EXT_CHUNKING	0x02
#define SMTP_EXT_SIZE		0x04
#define SMTP_EXT_8BITMIME	0x08
#define SMTP_EXT_SMTPUTF8	0x10
#define SMTP_EXT_XCLIENT	0x20
#define SMTP_EXT_ENHANCED	0x40	/* ENHANCEDSTATUSCODES */

/* XCLIENT attributes the MTA accepts (of those we may send). */
#define SMTP_XATTR_ADDR		0x1
#define SMTP_XATTR_NAME		0x2
#define SMTP_XATTR_HELO		0x4
#define SMTP_XATTR_PROTO	0x8

struct smtp_ehlo {
	unsigned int	 ext;		/* SMTP_EXT_* */
	unsigned int	 xattr;		/* SMTP_XATTR_* from "XCLIENT a b" */
	uint64_t	 size_max;	/* SIZE n; 0 = none announced */
};

/*
 * Read the extensions from a 2xx EHLO/LHLO reply (keywords are case-
 * insensitive; the first line, the MTA's name, is skipped; a SIZE with no
 * or a malformed number announces no limit).
 */
void	 smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);

/*
 * A message's origin for XCLIENT (Postfix).  A NULL or empty value is sent
 * as [UNAVAILABLE].  helo is also the EHLO argument after XCLIENT (that
 * EHLO resets the MTA's HELO name) when it is a plain token, else ours.
 */
struct smtp_xclient {
	const char	*addr;	/* "192.0.2.1" or "IPV6:2001:db8::1" */
	const char	*name;	/* verified client hostname */
	const char	*helo;
};

/*
 * Build "XCLIENT ADDR=.. NAME=.. HELO=.. PROTO=ESMTP" (no CRLF) into out
 * from the attributes the MTA accepts, values xtext-encoded.  Each of
 * ADDR, NAME and HELO the MTA accepts is always sent, as [UNAVAILABLE]
 * when missing or too long for the 512-octet line, so nothing of an
 * earlier message's origin survives.  Returns 0, or -1 (out reset) when
 * no real value would be sent.
 */
int	 smtp_xclient_line(struct buf *out, unsigned int xattr,
	    const struct smtp_xclient *);

/*
 * 1 if a fits between the angle brackets of MAIL FROM/RCPT TO without
 * changing the command: at most SMTP_ADDR_MAX octets, no control byte, no
 * '<' or '>'; empty only when empty_ok (the null sender).
 */
#define SMTP_ADDR_MAX		254
int	 smtp_addr_ok(const char *a, int empty_ok);

/* ---------------------------------------------------------------------- */
/* The client.                                                             */

enum smtp_state {
	SMTP_ST_GREETING,	/* connected, waiting for the 220 */
	SMTP_ST_EHLO,		/* EHLO/LHLO sent */
	SMTP_ST_HELO,		/* EHLO refused, HELO sent (SMTP only) */
	SMTP_ST_READY,		/* session up, no command outstanding */
	SMTP_ST_RSET,		/* lock-step RSET ahead of a transaction */
	SMTP_ST_XCLIENT,	/* XCLIENT sent, waiting for the new 220 */
	SMTP_ST_ENVELOPE,	/* MAIL/RCPT (+ pipelined DATA) outstanding */
	SMTP_ST_DATA,		/* DATA sent, waiting for 354 */
	SMTP_ST_BODY,		/* message bytes being pumped (DATA or BDAT) */
	SMTP_ST_FINAL,		/* end of data sent, awaiting final reply(s) */
	SMTP_ST_DRAIN,		/* txn failed; draining pipelined replies */
	SMTP_ST_QUIT,		/* QUIT sent */
	SMTP_ST_CLOSED,		/* session over */
	SMTP_ST_FAILED,		/* session failed: see smtp_error() */
};

/* Which timer the driver should run now (smtp_timeout_kind()). */
enum smtp_timeout {
	SMTP_TIMEOUT_NONE,	/* nothing outstanding (idle connection) */
	SMTP_TIMEOUT_COMMAND,	/* waiting for a command reply: 5 min */
	SMTP_TIMEOUT_DATA_BLOCK,/* sending message data: 3 min per write */
	SMTP_TIMEOUT_FINAL,	/* after the final dot / BDAT LAST: 10 min */
};

/* Overall outcome of a transaction; see the per-recipient codes too. */
enum smtp_outcome {
	SMTP_ACCEPTED,		/* every recipient accepted (final 2xx) */
	SMTP_TEMPFAIL,		/* nobody got it; some 4xx or lost: retry */
	SMTP_REFUSED,		/* nobody got it; every recipient 5xx */
	SMTP_PARTIAL,		/* some recipients got it, some did not */
};

/* Where the transaction ended. */
enum smtp_stage {
	SMTP_STAGE_SESSION,	/* greeting, EHLO, XCLIENT, RSET, connection */
	SMTP_STAGE_LOCAL,	/* decided by the client before MAIL */
	SMTP_STAGE_MAIL,
	SMTP_STAGE_RCPT,
	SMTP_STAGE_DATA,	/* the DATA command itself */
	SMTP_STAGE_BODY,	/* while sending data (incl. BDAT chunks) */
	SMTP_STAGE_FINAL,	/* reply to the final dot / BDAT LAST */
};

/*
 * Where the message bytes come from.  read() fills up to len bytes and
 * returns how many (0 = end of data), or -1 with errno set; EAGAIN means
 * "nothing now, call smtp_pump again later".  rewind() (may be NULL)
 * restarts at the first byte; it is called before the first read of each
 * transaction.  size is the exact byte count read() will deliver: ending
 * early is an error (a truncated message is never terminated), and bytes
 * past size are never read.
 */
struct smtp_body {
	ssize_t	 (*read)(void *arg, void *dst, size_t len);
	int	 (*rewind)(void *arg);
	void	*arg;
	uint64_t size;
};

#define SMTP_RCPT_MAX		1000
#define SMTP_TEXT_MAX		512	/* sanitised result text, incl. NUL */
#define SMTP_RCPT_TEXT_MAX	200

struct smtp_result;

/*
 * A transaction.  smtp_submit copies every string and array; the body
 * source and the callback argument must stay valid until the callback has
 * run.  from "" is the null sender <>.  eightbit: the body has 8-bit bytes
 * (BODY=8BITMIME is sent when offered; when not, the message is sent
 * anyway).  utf8: the message needs SMTPUTF8 (UTF-8 addresses or headers);
 * also implied by any 8-bit byte in from or rcpt.  xclient: announce the
 * message's origin when the MTA offers XCLIENT (else sent without).
 */
struct smtp_txn {
	const char		 *acct;		/* log label; may be NULL */
	const char		 *from;
	const char *const	 *rcpt;
	size_t			  nrcpt;	/* 1..SMTP_RCPT_MAX */
	struct smtp_body	  body;
	int			  eightbit;
	int			  utf8;
	const struct smtp_xclient *xclient;	/* NULL: none */
	void			(*result)(void *, const struct smtp_result *);
	void			 *arg;
};

/*
 * The fate of one recipient.  code is the MTA's reply that decided it (LMTP:
 * its own reply to the end of data) or a synthetic one when the client
 * decided (421 connection lost or protocol error, 451 local error, 552
 * SIZE, 553 SMTPUTF8/address); unknown is set when the end of data was
 * sent and no reply came: the MTA may have committed it (see docs).
 */
struct smtp_rcpt_result {
	int		 code;
	char		 esc[12];
	int		 unknown;
	char		 text[SMTP_RCPT_TEXT_MAX];
};

/*
 * Passed to the result callback, valid only during the call.  code, esc
 * and text are those of the deciding reply (text: "ddd text", escaped to
 * printable ASCII, capped) or the client's own reason when local is set.
 * unknown: some recipient's outcome is unknown (lost after the end of
 * data); the outcome is then TEMPFAIL or PARTIAL.  queue_id: from a 2xx
 * final reply, "" if none.  rcpt has nrcpt entries in submission order.
 */
struct smtp_result {
	enum smtp_outcome		 outcome;
	enum smtp_stage			 stage;
	int				 code;
	const char			*esc;
	const char			*text;
	int				 local;
	int				 unknown;
	const char			*queue_id;
	size_t				 nrcpt;
	const struct smtp_rcpt_result	*rcpt;
};

struct smtp_config {
	int		 lmtp;		/* LHLO; a final reply per recipient */
	const char	*helo_name;	/* EHLO/LHLO/HELO argument (copied) */
	size_t		 bdat_chunk;	/* BDAT chunk size; 0 = 64 KiB */
	int		 no_pipelining;	/* ignore PIPELINING even if offered */
	int		 no_chunking;	/* ignore CHUNKING even if offered */
};

struct smtp_conn;

/*
 * New machine for a connection that was just opened: it waits for the
 * greeting.  Returns NULL only on a bad config (no helo_name, or one with
 * a space or control byte).
 */
struct smtp_conn *smtp_new(const struct smtp_config *);
/* Free the machine and NULL *cp; a pending transaction gets no callback. */
void	 smtp_free(struct smtp_conn **cp);

/*
 * Result callbacks run inside smtp_input, smtp_pump, smtp_conn_lost and
 * smtp_submit.  A callback may call smtp_submit (smtp_can_submit() says
 * whether the session survived) but must not free the machine.
 */

/*
 * Feed bytes from the MTA (any split).  *consumed says how many were used;
 * after PS_DONE or PS_ERROR the rest must be discarded with the
 * connection.  Returns PS_MORE, PS_DONE (QUIT answered) or PS_ERROR (close
 * the connection; smtp_error() says why).  Result callbacks may run inside.
 */
enum proto_status smtp_input(struct smtp_conn *, const void *data, size_t len,
	    size_t *consumed);
/* The bytes to write (borrowed): write them and buf_consume what went. */
struct buf *smtp_output(struct smtp_conn *);
/*
 * 1 if smtp_pump would produce message bytes now.  Check it after every
 * smtp_input (a 354 or a BDAT reply can make it true) and whenever the
 * output has drained.
 */
int	 smtp_pump_wanted(const struct smtp_conn *);
/*
 * Append up to about budget bytes of message data to the output: DATA
 * lines (dot-stuffed, terminated) or whole BDAT chunks (at least one when
 * one may be sent, so a chunk may pass budget).  Returns PS_MORE, or
 * PS_ERROR when the body source failed (the transaction is then TEMPFAIL
 * and the connection must be closed: it is mid-message).
 */
enum proto_status smtp_pump(struct smtp_conn *, size_t budget);

/* The timer that applies now, and its RFC 5321 4.5.3.2 default in seconds. */
enum smtp_timeout smtp_timeout_kind(const struct smtp_conn *);
unsigned int smtp_timeout_default(enum smtp_timeout);

/*
 * Start a transaction (now if the session is ready, else once it is).
 * Returns 0, then the callback runs exactly once, possibly before
 * smtp_submit returns (local refusals); or -1 (nothing happens) when
 * !smtp_can_submit(), t is malformed (no recipient, more than
 * SMTP_RCPT_MAX, NULL pointers), or t has no xclient but an earlier one
 * set XCLIENT attributes on this connection: they would stick to this
 * message, so open a new connection for it.
 */
int	 smtp_submit(struct smtp_conn *, const struct smtp_txn *t);
/* Send QUIT; -1 if a transaction is in progress or the session is down. */
int	 smtp_quit(struct smtp_conn *);
/*
 * The connection is gone (reset, EOF, or the driver's timer fired): the
 * transaction in progress gets TEMPFAIL (with unknown set if the end of
 * data was already handed out).  why is for the result text; may be NULL.
 */
void	 smtp_conn_lost(struct smtp_conn *, const char *why);

/* Session up, no transaction, nothing outstanding. */
int	 smtp_is_idle(const struct smtp_conn *);
/* smtp_submit would accept a transaction now. */
int	 smtp_can_submit(const struct smtp_conn *);
enum smtp_state smtp_state(const struct smtp_conn *);
const char *smtp_state_name(enum smtp_state);
const char *smtp_outcome_name(enum smtp_outcome);
const char *smtp_stage_name(enum smtp_stage);
/* SMTP_EXT_* offered by the MTA (after the EHLO/LHLO reply). */
unsigned int smtp_extensions(const struct smtp_conn *);
/* The MTA's SIZE limit; 0 when none is announced. */
uint64_t smtp_size_limit(const struct smtp_conn *);
/* Why the session failed (ERR_NONE if it did not), and a text (borrowed). */
enum err_class smtp_error(const struct smtp_conn *);
const char *smtp_error_text(const struct smtp_conn *);

#endif
