/* ISC licence; see LICENSE. */
#ifndef HAUL_POP3_H
#define HAUL_POP3_H

#include <stddef.h>
#include <stdint.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/proto.h"

/*
 * The POP3 client (RFC 1939, 2449, 2595, 5034) as a sans-I/O machine.
 *
 * The driver feeds it whatever bytes arrived, in any split:
 *
 *	st = pop3_input(p, data, len, &consumed);
 *
 * then sends everything in pop3_output(p) (draining it with buf_consume)
 * and acts on st:
 *
 *	PS_MORE		keep reading; pop3_waiting() says whether a reply is
 *			outstanding (arm the reply timeout) or whether the
 *			machine waits on its owner (pop3_idle_ok()).
 *	PS_STARTTLS	consumed == len and nothing is buffered: do the TLS
 *			handshake, then call pop3_tls_started().  Any byte
 *			after the STLS +OK in the same input is an injection
 *			(reliability case M4): PS_ERROR/ERR_TLS instead.
 *	PS_DONE		QUIT was answered; see pop3_quit_ok().
 *	PS_ERROR	see pop3_error(); close the connection.
 *
 * consumed == len except after PS_DONE or PS_ERROR.  Timeouts, connection
 * loss and TLS are the driver's: the machine never touches a socket.
 *
 * The owner (the account session) is asked what to do per message through
 * struct pop3_cb and tells the machine what it has durably accepted with
 * pop3_delete(); the machine only QUITs after pop3_finish() or
 * pop3_abort().  pop3_delete(), pop3_finish(), pop3_abort(), pop3_noop()
 * and pop3_tls_started() may append to the output buffer: the caller
 * flushes it afterwards as after pop3_input().
 */

#define POP3_LINE_MAX		512	/* status/listing line incl. CRLF */
#define POP3_CMD_MAX		255	/* command line incl. CRLF */
#define POP3_UID_MAX		70	/* RFC 1939: 1..70 octets 0x21-0x7e */
#define POP3_CODE_MAX		48	/* longest response code we keep */
#define POP3_TIMESTAMP_MAX	128	/* APOP timestamp incl. <> */
#define POP3_CAPA_LINES_MAX	128	/* CAPA reply lines */
#define POP3_MAX_MESSAGES	1000000	/* default cap on the listing */
#define POP3_MAX_MESSAGES_LIMIT	10000000 /* largest cap accepted */
#define POP3_WINDOW_DEFAULT	4	/* RETRs in flight with PIPELINING */
#define POP3_WINDOW_MAX		32
#define POP3_PIPELINE_MAX	64	/* commands in flight with PIPELINING */

#define POP3_NONE		(-1L)	/* LOGIN-DELAY/EXPIRE not announced */
#define POP3_EXPIRE_NEVER	(-2L)	/* "EXPIRE NEVER" */

enum pop3_state {
	POP3_GREETING,		/* waiting for the server's +OK */
	POP3_CAPA,		/* CAPA before authentication */
	POP3_STLS,		/* STLS sent */
	POP3_TLS,		/* driver doing the handshake */
	POP3_USER,		/* USER sent */
	POP3_PASS,		/* PASS sent */
	POP3_APOP,		/* APOP sent */
	POP3_AUTH,		/* SASL exchange */
	POP3_CAPA_AUTHED,	/* CAPA again: user-specific values */
	POP3_STAT,
	POP3_UIDL,
	POP3_LIST,
	POP3_TRANSACTION,	/* RETR/DELE, or waiting on the owner */
	POP3_QUIT,		/* QUIT sent */
	POP3_DONE,
	POP3_FAILED,
};

/* What the owner wants done with one message. */
enum pop3_want {
	POP3_WANT_ABORT = -1,	/* stop the session: PS_ERROR/ERR_LOCAL */
	POP3_WANT_FETCH,	/* RETR it */
	POP3_WANT_SKIP,		/* leave it alone */
	POP3_WANT_DELETE,	/* delivered earlier: DELE it now */
};

/* Why a message could not be retrieved (msg_failed). */
enum pop3_fail {
	POP3_FAIL_ERR,		/* -ERR to RETR; no msg_begin was called */
	POP3_FAIL_TOO_BIG,	/* body passed max_message_size mid-stream,
				   after msg_begin: discard what was given */
};

/*
 * The owner's callbacks.  uid strings are borrowed and valid until
 * pop3_free().  Callbacks returning int return 0, or -1 to abort the
 * session (e.g. the spool write failed): pop3_input() then returns
 * PS_ERROR with ERR_LOCAL.  Callbacks may call pop3_delete(),
 * pop3_finish() and pop3_abort(), never pop3_input() or pop3_free().
 */
struct pop3_cb {
	/* Required: asked once per message, in message-number order. */
	enum pop3_want (*want)(void *arg, unsigned msgno, const char *uid,
			    uint64_t size);
	/* Required: a message starts; size is the LIST size. */
	int	(*msg_begin)(void *arg, unsigned msgno, const char *uid,
		    uint64_t size);
	/*
	 * Required: message bytes, dot-unstuffed, lines as received with
	 * their CRLF (a bare LF stays bare, NULs pass through: normalising
	 * is the owner's job).  A long line arrives in pieces.
	 */
	int	(*msg_data)(void *arg, const void *data, size_t len);
	/* Required: the terminating "." arrived. */
	int	(*msg_end)(void *arg, unsigned msgno, const char *uid);
	/* Optional: RETR failed (see enum pop3_fail); text is sanitised. */
	int	(*msg_failed)(void *arg, unsigned msgno, const char *uid,
		    enum pop3_fail why, const char *text);
	/*
	 * Optional: size > max_message_size; the message is not fetched and
	 * not a byte of it is buffered.  NULL: skipped with a warning.
	 */
	int	(*too_big)(void *arg, unsigned msgno, const char *uid,
		    uint64_t size);
	/*
	 * Optional: the listing is complete and valid, before the first
	 * want().  The owner may read pop3_expire(), pop3_login_delay()
	 * here (EXPIRE 0 with keep: its policy) and pop3_abort().
	 */
	int	(*mailbox)(void *arg, unsigned count, uint64_t octets);
	/*
	 * Optional: msgno shares its UID with another message (M26).  It is
	 * never offered to want(), fetched or deleted; the owner warns.
	 */
	void	(*ambiguous)(void *arg, unsigned msgno, const char *uid);
	/*
	 * Optional: every message has been decided and every RETR answered;
	 * the machine now waits for pop3_delete()s and pop3_finish().
	 */
	void	(*drained)(void *arg);
};

/*
 * Session parameters.  Strings are copied by pop3_new() except secret,
 * which is borrowed: it must stay valid until authentication is over
 * (pop3_state() past POP3_AUTH) or pop3_free().  The machine never keeps
 * a copy of it beyond the command it is sent in, and wipes those.
 */
struct pop3_params {
	const char	*account;	/* for logs; may be NULL */
	const char	*host;		/* OAUTHBEARER host=; may be NULL */
	unsigned	 port;		/* OAUTHBEARER port=; 0 omits it */
	enum tls_mode	 tls;		/* IMPLICIT: already active */
	int		 allow_plaintext; /* credentials without TLS */
	enum auth_mech	 auth;
	const char	*user;
	const void	*secret;	/* password or bearer token */
	size_t		 secret_len;
	uint64_t	 max_message_size; /* 0 = no limit */
	unsigned	 max_messages;	/* 0 = POP3_MAX_MESSAGES */
	unsigned	 window;	/* 0 = POP3_WINDOW_DEFAULT */
};

struct pop3;

/*
 * A new machine waiting for the greeting.  cb is copied; want, msg_begin,
 * msg_data and msg_end are required (fatal otherwise).  Never NULL.
 */
struct pop3	*pop3_new(const struct pop3_params *, const struct pop3_cb *,
		    void *arg);
/* Free, wiping every buffer that may have held a credential; NULLs *pp. */
void		 pop3_free(struct pop3 **pp);

/*
 * Feed len bytes from the server (see the top of this file).  *consumed
 * is set to the number of bytes used; it may be NULL.
 */
enum proto_status pop3_input(struct pop3 *, const void *data, size_t len,
		    size_t *consumed);
/* Bytes to send; borrowed.  The driver drains it with buf_consume(). */
struct buf	*pop3_output(struct pop3 *);
/*
 * The STARTTLS handshake succeeded: drop every pre-TLS capability (and
 * the APOP timestamp) and query CAPA again.  PS_ERROR if not expected.
 */
enum proto_status pop3_tls_started(struct pop3 *);

/*
 * After PS_ERROR: the class and a sanitised message (borrowed, valid
 * until pop3_free).  ERR_NONE and "" before any error.
 */
enum err_class	 pop3_error(const struct pop3 *, const char **msg);
/* The last response code seen on -ERR ("AUTH", "SYS/TEMP"), or "". */
const char	*pop3_resp_code(const struct pop3 *);

/* 1 if a server reply is outstanding (the driver's reply timeout runs). */
int		 pop3_waiting(const struct pop3 *);
/*
 * 1 if the machine is in the transaction state with nothing outstanding:
 * it waits on the owner (the driver may send pop3_noop() against the
 * server's autologout timer).
 */
int		 pop3_idle_ok(const struct pop3 *);
/* Send NOOP if pop3_idle_ok(); 0, or -1 if not idle. */
int		 pop3_noop(struct pop3 *);

/*
 * The owner has durably recorded msgno as accepted: queue DELE msgno
 * (pipelined when the server allows).  Valid in the transaction state
 * before QUIT is sent, once per message, never for ambiguous messages.
 * Returns 0, or -1 (nothing queued).
 */
int		 pop3_delete(struct pop3 *, unsigned msgno);
/*
 * The owner will not call pop3_delete() again: once every message has
 * been decided and answered and every DELE sent, send QUIT.
 */
void		 pop3_finish(struct pop3 *);
/*
 * Stop: no further want() or RETR; bytes of RETRs already in flight are
 * read and dropped without callbacks; queued DELEs still go out, then
 * QUIT.  Before authentication ends, QUIT follows the current exchange.
 */
void		 pop3_abort(struct pop3 *);

/*
 * 1 only if QUIT was answered +OK: the DELEs are committed (M33).  -ERR
 * to QUIT, or a drop before its answer, means they are not.
 */
int		 pop3_quit_ok(const struct pop3 *);
/* 1 if DELE msgno was answered +OK (committed only with pop3_quit_ok). */
int		 pop3_dele_ok(const struct pop3 *, unsigned msgno);

/* LOGIN-DELAY seconds (latest CAPA, post-auth if any), or POP3_NONE. */
long		 pop3_login_delay(const struct pop3 *);
/* EXPIRE days, POP3_EXPIRE_NEVER, or POP3_NONE.  The owner decides. */
long		 pop3_expire(const struct pop3 *);

/* Listing: message count, a message's UID (borrowed) and flags. */
unsigned	 pop3_count(const struct pop3 *);
const char	*pop3_uid(const struct pop3 *, unsigned msgno);
uint64_t	 pop3_size(const struct pop3 *, unsigned msgno);
int		 pop3_ambiguous(const struct pop3 *, unsigned msgno);

enum pop3_state	 pop3_state(const struct pop3 *);
const char	*pop3_state_name(enum pop3_state);

/*
 * The pure parsers (fetcher/pop3_parse.c), public for the unit tests and
 * the fuzz targets.  They take a line without its CRLF, have no state
 * beyond their arguments and never allocate.
 */

enum pop3_kind {
	POP3_OK,		/* "+OK" */
	POP3_ERR,		/* "-ERR" */
	POP3_CONT,		/* "+" SASL continuation */
};

struct pop3_status {
	enum pop3_kind	 kind;
	const char	*text;		/* after the indicator and SP */
	size_t		 textlen;
	char		 code[POP3_CODE_MAX]; /* "SYS/TEMP", upper case, or "" */
};

/*
 * Parse a status line.  cont: whether "+" / "+ base64" is acceptable.
 * Strict: "+OK" and "-ERR" in upper case, followed by nothing or SP.  A
 * malformed response code is kept as text, not as a code.
 * Returns 0, or -1.
 */
int		 pop3_parse_status(const char *line, size_t len, int cont,
		    struct pop3_status *);

/*
 * Map a response code to an error class.  auth: the -ERR answered a
 * credential (USER/PASS/APOP/AUTH), where no code means bad credentials.
 * [AUTH] -> ERR_AUTH; [IN-USE], [LOGIN-DELAY], [SYS/TEMP] -> ERR_TEMP;
 * [SYS/PERM] -> ERR_PROTOCOL; other or none -> ERR_AUTH if auth, else
 * ERR_PROTOCOL.
 */
enum err_class	 pop3_classify(const char *code, int auth);

/* Capabilities (RFC 2449), as far as the machine uses them. */
#define POP3_CAP_STLS		0x01
#define POP3_CAP_USER		0x02
#define POP3_CAP_PIPELINING	0x04
#define POP3_CAP_UIDL		0x08
#define POP3_CAP_RESP_CODES	0x10
#define POP3_CAP_SASL		0x20	/* a SASL line was seen */

#define POP3_SASL_PLAIN		0x01
#define POP3_SASL_LOGIN		0x02
#define POP3_SASL_XOAUTH2	0x04
#define POP3_SASL_OAUTHBEARER	0x08

struct pop3_caps {
	unsigned	 flags;
	unsigned	 sasl;
	long		 login_delay;	/* POP3_NONE if absent */
	long		 expire;	/* POP3_NONE, POP3_EXPIRE_NEVER, days */
};

/* Reset to "nothing announced". */
void		 pop3_caps_init(struct pop3_caps *);
/*
 * Add one CAPA line.  Unknown capabilities and malformed arguments of
 * known ones are ignored (they only ever disable a feature).
 */
void		 pop3_parse_capa(struct pop3_caps *, const char *line,
		    size_t len);

/*
 * "msgno SP uid": msgno 1..UINT_MAX without leading zeros, exactly one
 * SP, uid 1..70 octets of 0x21-0x7e, nothing after.  Returns 0, or -1.
 */
int		 pop3_parse_uidl(const char *line, size_t len,
		    unsigned *msgno, const char **uid, size_t *uidlen);
/*
 * "msgno SP size [SP anything]" (RFC 1939 leaves the rest open).
 * Returns 0, or -1.
 */
int		 pop3_parse_list(const char *line, size_t len,
		    unsigned *msgno, uint64_t *size);
/* STAT's "+OK" text: "count SP octets [SP anything]".  0, or -1. */
int		 pop3_parse_stat(const char *text, size_t len,
		    unsigned *count, uint64_t *octets);
/*
 * Find the APOP timestamp in the greeting text: "<" local "@" domain ">",
 * printable ASCII without SP, "<" or ">", exactly one "@", at most
 * POP3_TIMESTAMP_MAX octets (CVE-2007-1558).  Returns 1 and sets
 * *ts and *tslen (pointing into text), 0 if the greeting has no "<", or -1
 * if the timestamp is malformed.
 */
int		 pop3_apop_timestamp(const char *text, size_t len,
		    const char **ts, size_t *tslen);

/* "PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"; "?" for the others. */
const char	*pop3_sasl_name(enum auth_mech);

/*
 * The mechanism to use for the configured one, given the capabilities
 * (post-TLS only) and whether CAPA was answered at all.  AUTO: SASL
 * PLAIN if listed; else USER/PASS if CAPA lists USER or CAPA failed;
 * else SASL LOGIN if listed.  An explicit SASL mechanism must be listed
 * when CAPA worked; USER and APOP are always tried.  Returns an enum
 * auth_mech other than AUTH_AUTO, or -1 if nothing is usable.
 */
int		 pop3_choose_auth(enum auth_mech, const struct pop3_caps *,
		    int capa_ok);

/*
 * APOP (RFC 1939 section 7): MD5(timestamp || secret) as 32 lower-case
 * hex digits plus NUL in hex.  The caller wipes hex.  Returns 0, or -1
 * if MD5 is unavailable (e.g. a FIPS-only OpenSSL).
 */
int		 pop3_apop_digest(const char *ts, size_t tslen,
		    const void *secret, size_t len, char hex[33]);

/*
 * The dot-unstuffer for multi-line bodies: resumable at every byte and
 * buffering nothing, so a 1 MiB line without LF streams through.
 */
struct pop3_body {
	int		 state;
	int		 cr;		/* the last byte of a line was CR */
};
typedef int (*pop3_emit_fn)(void *arg, const void *data, size_t len);

void		 pop3_body_init(struct pop3_body *);
/*
 * Feed len bytes; content (unstuffed) goes to emit in as few calls as the
 * input allows.  Returns the bytes consumed and sets *end to 1 if the
 * terminating ".CRLF" was consumed (input after it is left), 0 if more is
 * needed, -1 if emit returned -1.
 */
size_t		 pop3_body_feed(struct pop3_body *, const void *data,
		    size_t len, pop3_emit_fn emit, void *arg, int *end);

#endif
