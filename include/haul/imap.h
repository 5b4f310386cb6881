/* ISC licence; see LICENSE. */
#ifndef HAUL_IMAP_H
#define HAUL_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/proto.h"

/*
 * The IMAP client (RFC 3501, 9051, 2177 IDLE, 4315 UIDPLUS, 6851 MOVE,
 * 7888 LITERAL+/-, 4959 SASL-IR, 5161 ENABLE) in two layers:
 *
 * 1. A pure response parser (fetcher/imap_parse.c; pure helpers in
 *    imap_proto.c): bytes + state in, IMAP_PARSE_OK | MORE | BAD out,
 *    resumable at any byte, no I/O, no globals.  Literal sizes are
 *    checked against caller-given caps before a byte of them is stored,
 *    and a caller hook may have a literal streamed to it in chunks
 *    instead of buffered (message bodies).
 *
 * 2. The client machine (fetcher/imap.c, imap_mbox.c, imap_ops.c,
 *    imap_cmd.c), sans I/O like pop3.h.  The driver feeds it whatever
 *    bytes arrived:
 *
 *	st = imap_input(p, data, len, &consumed);
 *
 *    then sends everything in imap_output(p) (draining it with
 *    buf_consume) and acts on st:
 *
 *	PS_MORE		keep reading; imap_waiting() says whether a reply is
 *			outstanding (arm the reply timeout).  In IDLE it is 0:
 *			the driver runs its own re-IDLE and keepalive timers.
 *	PS_STARTTLS	consumed == len and nothing is buffered: do the TLS
 *			handshake, then call imap_tls_started().  Any byte
 *			after the tagged OK to STARTTLS in the same input is
 *			an injection (M4): PS_ERROR/ERR_TLS instead.
 *	PS_DONE		LOGOUT was answered.
 *	PS_ERROR	see imap_error(); close the connection.
 *
 *    consumed == len except after PS_DONE or PS_ERROR.  Timeouts, TLS and
 *    connection loss are the driver's: the machine never touches a socket.
 *
 * The owner (the account session) drives the mailbox work: after the
 * op_done(IMAP_OP_CONNECT) callback it calls imap_select(),
 * imap_fetch_new(), imap_idle(), imap_list(), imap_status(), imap_noop()
 * or imap_logout() (one such operation at a time; each ends with an
 * op_done callback), and, after its durable record, imap_mark_seen(),
 * imap_delete() and imap_move() (queued, batched, reported through
 * action_done).  Nothing is ever flagged, expunged or moved unless the
 * owner asks.  Every function that starts something may append to the
 * output buffer: the caller flushes it afterwards as after imap_input().
 */

/* ---- limits ---- */

#define IMAP_LINE_MAX		65536	/* non-literal octets of one response */
#define IMAP_LITERAL_MAX	65536	/* buffered literal octets per response */
#define IMAP_DEPTH_MAX		32	/* nesting of parenthesised lists */
#define IMAP_DEPTH_LIMIT	64	/* largest depth_max a caller may ask */
#define IMAP_ARGS_MAX		8192	/* atoms, strings, lists per response */
#define IMAP_TAG_MAX		64	/* octets of a tag */
#define IMAP_NUMBER_MAX		4294967295ULL	/* number, nz-number */
#define IMAP_NUMBER64_MAX	9223372036854775807ULL /* number64, literals */
#define IMAP_COUNT_MAX		2147483647U	/* EXISTS, sequence numbers */
#define IMAP_WINDOW_DEFAULT	4	/* body fetches in flight */
#define IMAP_WINDOW_MAX		32
#define IMAP_INFLIGHT_MAX	64	/* tagged commands in flight */
#define IMAP_MAX_MESSAGES	1000000	/* listing entries kept per round */
#define IMAP_MAX_MESSAGES_LIMIT	10000000
#define IMAP_LITERAL_MINUS_MAX	4096	/* RFC 7888: LITERAL- {n+} bound */
#define IMAP_BATCH_MAX		256	/* UIDs per batched STORE/EXPUNGE */
#define IMAP_NAME_MAX		1024	/* mailbox names, patterns: octets */

/* ==== 1. The response parser ==== */

enum imap_parse {
	IMAP_PARSE_OK,		/* a whole response is ready */
	IMAP_PARSE_MORE,	/* all input consumed; feed more */
	IMAP_PARSE_BAD,		/* malformed; imap_parser_error() says why */
};

enum imap_kind {
	IMAP_TAGGED,		/* "tag OK|NO|BAD ..." */
	IMAP_UNTAGGED,		/* "* ..." */
	IMAP_CONTINUE,		/* "+ text" */
};

/* The condition of a status response (resp-cond-*). */
enum imap_cond {
	IMAP_COND_NONE,		/* not a status response ("* 3 EXISTS") */
	IMAP_COND_OK,
	IMAP_COND_NO,
	IMAP_COND_BAD,
	IMAP_COND_BYE,
	IMAP_COND_PREAUTH,
};

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* also numbers and flags ("\Seen") */
	IMAP_ARG_QUOTED,	/* unescaped content */
	IMAP_ARG_LITERAL,	/* buffered literal content */
	IMAP_ARG_STREAMED,	/* literal handed to the stream hooks */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
};

#define IMAP_ARGF_LITERAL8	0x01	/* "~{n}" (RFC 3516) */
#define IMAP_ARGF_NONSYNC	0x02	/* "{n+}" */

/*
 * One argument.  Strings point into the response (imap_arg_data()) and
 * are not NUL-terminated.  next and child are indexes + 1 into the
 * response's args (0: none), so the tree is walked without recursion.
 */
struct imap_arg {
	uint8_t		 type;		/* enum imap_arg_type */
	uint8_t		 flags;		/* IMAP_ARGF_* */
	uint32_t	 next;		/* next sibling */
	uint32_t	 child;		/* LIST: first element */
	uint32_t	 off;		/* content: offset into the response */
	uint32_t	 len;
	uint64_t	 size;		/* LITERAL, STREAMED: declared size */
};

/*
 * A parsed response, borrowed from the parser and valid until the next
 * imap_parse() call.  Spans (pointer + length) are not NUL-terminated;
 * a NULL pointer means absent.  For IMAP_CONTINUE only text is set.  For
 * status responses (cond != NONE) code/code_arg/text hold
 * "[code code_arg] text"; otherwise the arguments after word are args.
 */
struct imap_response {
	enum imap_kind	 kind;
	const char	*tag;		/* IMAP_TAGGED */
	size_t		 taglen;
	int		 has_num;	/* "* n word" */
	uint32_t	 num;
	const char	*word;		/* "OK", "FETCH", "CAPABILITY".. as sent */
	size_t		 wordlen;
	enum imap_cond	 cond;
	const char	*code;		/* "UIDVALIDITY", or NULL */
	size_t		 codelen;
	const char	*code_arg;	/* after the code and SP, up to "]" */
	size_t		 code_arglen;
	const char	*text;
	size_t		 textlen;
	const struct imap_arg *args;	/* args[0] is the first top-level arg */
	uint32_t	 nargs;
	const char	*pool;		/* what off in struct imap_arg is into */
};

/* Limits; a zero field takes the default. */
struct imap_limits {
	size_t		 line_max;	/* IMAP_LINE_MAX */
	size_t		 literal_max;	/* IMAP_LITERAL_MAX (buffered) */
	uint64_t	 stream_max;	/* IMAP_NUMBER64_MAX (streamed) */
	unsigned	 depth_max;	/* IMAP_DEPTH_MAX, at most ..._LIMIT */
};

/* What the literal hook wants done with a literal. */
enum imap_lit {
	IMAP_LIT_BUFFER,	/* keep it in the response (literal_max) */
	IMAP_LIT_STREAM,	/* hand it to literal_data (stream_max) */
	IMAP_LIT_REJECT,	/* IMAP_PARSE_BAD */
};

/* A literal about to be read. */
struct imap_literal {
	uint64_t	 size;		/* declared, <= IMAP_NUMBER64_MAX */
	unsigned	 depth;		/* list nesting: 0 = top level */
	const struct imap_arg *prev;	/* sibling before it, or NULL */
	unsigned	 flags;		/* IMAP_ARGF_* */
};

/*
 * Optional hooks.  literal is called once the "{n}CRLF" has arrived and n
 * is known to be in range, with the response parsed so far (valid during
 * the call only); NULL buffers every literal.  A streamed literal's
 * octets go to literal_data in chunks as they arrive (never buffered),
 * then literal_end is called (also for size 0).  Returning -1 from
 * literal_data or literal_end makes imap_parse() return BAD.  Hooks must
 * not call back into the parser.
 */
struct imap_parser_hooks {
	enum imap_lit	(*literal)(void *arg, const struct imap_response *,
			    const struct imap_literal *);
	int		(*literal_data)(void *arg, const void *data,
			    size_t len);
	int		(*literal_end)(void *arg);
};

struct imap_parser;

/* A parser waiting for the start of a response.  Never NULL. */
struct imap_parser *imap_parser_new(const struct imap_limits *,
		    const struct imap_parser_hooks *, void *arg);
/* Free; NULLs *pp.  NULL is fine. */
void		 imap_parser_free(struct imap_parser **pp);

/*
 * Feed len bytes.  *consumed (may be NULL) says how many were used:
 * on OK, the bytes up to the end of the response (the rest belongs to the
 * next one: call again with it after handling the response); on MORE,
 * all of them.  After BAD the parser stays failed.
 */
enum imap_parse	 imap_parse(struct imap_parser *, const void *data,
		    size_t len, size_t *consumed);
/* The response after IMAP_PARSE_OK (borrowed, see struct imap_response). */
const struct imap_response *imap_parser_response(const struct imap_parser *);
/* Why the parser failed (borrowed), or "". */
const char	*imap_parser_error(const struct imap_parser *);

/* Walking the arguments.  Each returns NULL at the end. */
const struct imap_arg *imap_arg_first(const struct imap_response *);
const struct imap_arg *imap_arg_next(const struct imap_response *,
		    const struct imap_arg *);
const struct imap_arg *imap_arg_child(const struct imap_response *,
		    const struct imap_arg *);
/* The content of an ATOM, QUOTED or LITERAL argument. */
const char	*imap_arg_data(const struct imap_response *,
		    const struct imap_arg *);
/* 1 if a is an atom equal to s, ignoring ASCII case. */
int		 imap_arg_is(const struct imap_response *,
		    const struct imap_arg *a, const char *s);
/* An atom of digits only, at most max.  Returns 0 and sets *v, or -1. */
int		 imap_arg_number(const struct imap_response *,
		    const struct imap_arg *, uint64_t max, uint64_t *v);
/* An astring (atom, quoted or buffered literal).  0, or -1. */
int		 imap_arg_string(const struct imap_response *,
		    const struct imap_arg *, const char **s, size_t *len);

/*
 * Render a response canonically for traces and tests, escaped (control
 * and 8-bit octets as \xHH), truncated with "..." to fit dstsz: atoms
 * as sent, quoted strings re-quoted, a buffered literal as {n}"content",
 * a streamed one as {n}<streamed>, literal8 with "~".  Returns dst.
 */
char		*imap_render(const struct imap_response *, char *dst,
		    size_t dstsz);

/* 1 if the response's word (or code) equals s, ignoring ASCII case. */
int		 imap_word_is(const struct imap_response *, const char *s);
int		 imap_code_is(const struct imap_response *, const char *s);

/* ==== pure helpers (imap_proto.c), public for the tests and fuzzers ==== */

/* Capabilities, as far as the machine uses them. */
#define IMAP_CAP_IMAP4REV1	0x00000001u
#define IMAP_CAP_IMAP4REV2	0x00000002u
#define IMAP_CAP_STARTTLS	0x00000004u
#define IMAP_CAP_LOGINDISABLED	0x00000008u
#define IMAP_CAP_SASL_IR	0x00000010u
#define IMAP_CAP_LITERAL_PLUS	0x00000020u
#define IMAP_CAP_LITERAL_MINUS	0x00000040u
#define IMAP_CAP_IDLE		0x00000080u
#define IMAP_CAP_UIDPLUS	0x00000100u
#define IMAP_CAP_MOVE		0x00000200u
#define IMAP_CAP_ENABLE		0x00000400u
#define IMAP_CAP_AUTH_PLAIN	0x00010000u
#define IMAP_CAP_AUTH_LOGIN	0x00020000u
#define IMAP_CAP_AUTH_XOAUTH2	0x00040000u
#define IMAP_CAP_AUTH_OAUTHBEARER 0x00080000u

/* The flag for one capability atom (case-insensitive), or 0. */
unsigned	 imap_cap_flag(const char *atom, size_t len);
/* The flags of a space-separated list ("[CAPABILITY ...]" code text). */
unsigned	 imap_parse_caps(const char *s, size_t len);

/* nz-number (1..4294967295) occupying all of s[0..len).  0, or -1. */
int		 imap_parse_nz32(const char *s, size_t len, uint32_t *v);
/*
 * A uid-set / sequence-set of nz-numbers ("1:3,7,9:*" without "*":
 * the form of APPENDUID and COPYUID).  Returns the number of elements
 * (ranges count once), or -1.
 */
long		 imap_parse_uidset(const char *s, size_t len);
/*
 * Validate the argument of [APPENDUID v uidset] or [COPYUID v set set]
 * (the code given by name).  Sets *uidvalidity.  0, or -1 if malformed.
 */
int		 imap_parse_uid_code(const char *code, size_t codelen,
		    const char *arg, size_t arglen, uint32_t *uidvalidity);

/*
 * Map a tagged NO's response code to an error class.  auth: it answered
 * LOGIN/AUTHENTICATE.  AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED,
 * CONTACTADMIN -> ERR_AUTH; UNAVAILABLE, INUSE, LIMIT, SERVERBUG ->
 * ERR_TEMP; PRIVACYREQUIRED -> ERR_TLS; none or other -> ERR_AUTH if
 * auth, else ERR_PROTOCOL.
 */
enum err_class	 imap_classify(const char *code, size_t len, int auth);

/*
 * The mechanism to use for the configured one, given the (post-TLS)
 * capabilities.  AUTO: AUTHENTICATE PLAIN if AUTH=PLAIN is listed, else
 * LOGIN unless LOGINDISABLED.  USER means the LOGIN command and is never
 * chosen under LOGINDISABLED; an explicit SASL mechanism must be listed;
 * APOP is POP3's.  Returns an enum auth_mech other than AUTH_AUTO, or -1.
 */
int		 imap_choose_auth(enum auth_mech, unsigned caps);
/* "PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"; "?" for the others. */
const char	*imap_sasl_name(enum auth_mech);

/*
 * Command building (imap_cmd.c).  A string argument (mailbox name,
 * pattern, user, password) is never sent raw: as a quoted string when it
 * holds only 7-bit octets other than NUL, CR and LF, else as a literal:
 * "{n+}" with LITERAL+ (or LITERAL- when n <= 4096), else the
 * synchronizing "{n}" after which the client must wait for "+".
 * NUL, CR and LF cannot be sent at all.
 */
enum imap_strform {
	IMAP_STR_QUOTED,
	IMAP_STR_NONSYNC,	/* "{n+}" */
	IMAP_STR_SYNC,		/* "{n}": wait for "+" after it */
};

/* The form for s under caps (LITERAL+/-), or -1 if it cannot be sent. */
int		 imap_string_form(const void *s, size_t len, unsigned caps);
/* Octets imap_put_string() will append for s. */
size_t		 imap_string_size(const void *s, size_t len, unsigned caps);
/*
 * Append s as a quoted string or a literal.  *split is set to the offset
 * in out just after a synchronizing literal's "{n}CRLF" (where sending
 * must pause for "+"), or 0 if none.  Returns 0, or -1 (nothing appended).
 */
int		 imap_put_string(struct buf *out, const void *s, size_t len,
		    unsigned caps, size_t *split);
/*
 * Append UIDs as a sequence-set, sorted, duplicates dropped, runs folded
 * into ranges ("1:3,7").  n must be at least 1.  Returns 0, or -1.
 */
int		 imap_put_uidset(struct buf *out, const uint32_t *uids,
		    size_t n);

/* ==== 2. The client machine ==== */

enum imap_state {
	IMAP_GREETING,		/* waiting for the server's greeting */
	IMAP_CAPABILITY,	/* CAPABILITY before authentication */
	IMAP_STARTTLS,		/* STARTTLS sent */
	IMAP_TLS,		/* the driver is doing the handshake */
	IMAP_LOGIN,		/* LOGIN sent */
	IMAP_AUTHENTICATE,	/* SASL exchange */
	IMAP_CAPABILITY_AUTHED,	/* CAPABILITY after authentication */
	IMAP_ENABLE,		/* ENABLE IMAP4rev2 sent */
	IMAP_AUTHENTICATED,	/* no mailbox selected; owner's turn */
	IMAP_SELECT,		/* SELECT/EXAMINE sent */
	IMAP_SELECTED,		/* a mailbox is selected */
	IMAP_IDLE_START,	/* IDLE sent, waiting for "+" */
	IMAP_IDLING,
	IMAP_IDLE_DONE,		/* DONE sent */
	IMAP_LOGOUT,		/* LOGOUT sent */
	IMAP_DONE,
	IMAP_FAILED,
};

/* The owner's operations; op_done reports each one's end. */
enum imap_op {
	IMAP_OP_CONNECT,	/* greeting..authentication..ENABLE */
	IMAP_OP_SELECT,
	IMAP_OP_FETCH,		/* imap_fetch_new: listing and bodies */
	IMAP_OP_IDLE,
	IMAP_OP_NOOP,
	IMAP_OP_LIST,
	IMAP_OP_STATUS,
};

/* What the owner wants done with one listed message. */
enum imap_want {
	IMAP_WANT_ABORT = -1,	/* stop the session: PS_ERROR/ERR_LOCAL */
	IMAP_WANT_FETCH,	/* UID FETCH uid BODY.PEEK[] */
	IMAP_WANT_SKIP,		/* leave it alone */
};

/* Why a wanted message was not delivered (msg_failed). */
enum imap_fail {
	IMAP_FAIL_NO,		/* tagged NO to its UID FETCH */
	IMAP_FAIL_NIL,		/* "BODY[] NIL" */
	IMAP_FAIL_GONE,		/* OK without its body: expunged meanwhile */
	IMAP_FAIL_TOO_BIG,	/* the literal is above max_message_size;
				   the session then fails (see docs) */
};

/* Owner actions after a durable record (action_done). */
enum imap_action {
	IMAP_ACT_SEEN,		/* UID STORE +FLAGS.SILENT (\Seen) */
	IMAP_ACT_DELETE,	/* \Deleted, then UID EXPUNGE */
	IMAP_ACT_MOVE,		/* UID MOVE, or UID COPY + delete */
};

/* STATUS values; has_* say which the server gave. */
struct imap_status_info {
	uint32_t	 messages;
	uint32_t	 uidnext;
	uint32_t	 uidvalidity;
	int		 has_messages;
	int		 has_uidnext;
	int		 has_uidvalidity;
};

/*
 * The owner's callbacks.  Those returning int return 0, or -1 to abort
 * the session (e.g. the spool write failed): imap_input() then returns
 * PS_ERROR with ERR_LOCAL.  Callbacks may call the owner functions below
 * (imap_select(), imap_delete(), ...: their commands go out once the
 * current response is handled), never imap_input() or imap_free().
 * Names passed to callbacks are borrowed, NUL-terminated and free of NUL.
 */
struct imap_cb {
	/*
	 * Required: an operation ended.  ok: it succeeded; text: the
	 * server's (sanitised) text or "".  For IMAP_OP_CONNECT ok is
	 * always 1 (failures end the session instead).
	 */
	void	(*op_done)(void *arg, enum imap_op, int ok, const char *text);
	/*
	 * Optional: SELECT/EXAMINE succeeded.  uidnext 0: not announced
	 * (IMAP4rev1 allows that).  The owner compares uidvalidity with its
	 * store and may change its plan before imap_fetch_new().
	 */
	int	(*selected)(void *arg, uint32_t uidvalidity, uint32_t uidnext,
		    uint32_t exists, int readonly);
	/* Required: asked once per listed message, in UID order. */
	enum imap_want (*want)(void *arg, uint32_t uid, uint64_t size);
	/*
	 * Optional: size > max_message_size; the message is not fetched.
	 * NULL: skipped with a warning.
	 */
	int	(*too_big)(void *arg, uint32_t uid, uint64_t size);
	/* Required: a body starts; size is the literal's. */
	int	(*msg_begin)(void *arg, uint32_t uid, uint64_t size);
	/* Required: body octets as received (NUL, bare LF pass through). */
	int	(*msg_data)(void *arg, const void *data, size_t len);
	/* Required: the FETCH response carrying the body ended cleanly. */
	int	(*msg_end)(void *arg, uint32_t uid);
	/* Optional: a wanted message was not delivered; text sanitised. */
	int	(*msg_failed)(void *arg, uint32_t uid, enum imap_fail,
		    const char *text);
	/* Optional: EXISTS in the selected mailbox (new mail, in IDLE too). */
	void	(*exists)(void *arg, uint32_t n);
	/*
	 * Optional: an untagged NO or BAD (after TLS, if any): the server
	 * reports trouble, e.g. with the selected mailbox (Dovecot when it
	 * is deleted under an IDLE session).  May call imap_idle_done().
	 */
	void	(*warning)(void *arg);
	/* Optional: an imap_mark_seen/delete/move finished. */
	void	(*action_done)(void *arg, enum imap_action, uint32_t uid,
		    int ok);
	/* Optional: a selectable mailbox from imap_list(). */
	int	(*mailbox)(void *arg, const char *name, size_t len,
		    char delim);
	/* Optional: the answer to imap_status(). */
	int	(*status)(void *arg, const char *name, size_t len,
		    const struct imap_status_info *);
	/*
	 * Optional (required by imap_fetch_flags()): a message's flags;
	 * seen: \Seen is among them.
	 */
	int	(*flags)(void *arg, uint32_t uid, int seen);
};

/*
 * Session parameters.  Strings are copied by imap_new() except secret,
 * which is borrowed: it must stay valid until authentication is over
 * (op_done(IMAP_OP_CONNECT)) or imap_free().  The machine keeps no copy
 * beyond the command it is sent in, and wipes those.
 */
struct imap_params {
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
	unsigned	 max_messages;	/* 0 = IMAP_MAX_MESSAGES */
	unsigned	 window;	/* 0 = IMAP_WINDOW_DEFAULT */
	int		 allow_expunge_all; /* plain EXPUNGE without UIDPLUS */
};

struct imap;

/*
 * A new machine waiting for the greeting.  cb is copied; op_done, want,
 * msg_begin, msg_data and msg_end are required (fatal otherwise).
 */
struct imap	*imap_new(const struct imap_params *, const struct imap_cb *,
		    void *arg);
/* Free, wiping every buffer that may have held a credential; NULLs *pp. */
void		 imap_free(struct imap **pp);

/* Feed len bytes from the server (see the top of this file). */
enum proto_status imap_input(struct imap *, const void *data, size_t len,
		    size_t *consumed);
/* Bytes to send; borrowed.  The driver drains it with buf_consume(). */
struct buf	*imap_output(struct imap *);
/*
 * The STARTTLS handshake succeeded: forget every pre-TLS capability and
 * ask CAPABILITY again.  PS_ERROR if not expected.
 */
enum proto_status imap_tls_started(struct imap *);

/* After PS_ERROR: the class and a sanitised message (borrowed). */
enum err_class	 imap_error(const struct imap *, const char **msg);
/* The code of the last tagged response ("NONEXISTENT"), or "". */
const char	*imap_resp_code(const struct imap *);

enum imap_state	 imap_state(const struct imap *);
const char	*imap_state_name(enum imap_state);
const char	*imap_op_name(enum imap_op);
/* Current capabilities (IMAP_CAP_*); post-TLS only after STARTTLS. */
unsigned	 imap_caps(const struct imap *);
/* 1 if IMAP4rev2 was enabled. */
int		 imap_rev2(const struct imap *);

/* 1 if a server reply is outstanding (the driver's reply timeout runs). */
int		 imap_waiting(const struct imap *);
/*
 * 1 if an owner operation may start now: authenticated or selected, no
 * operation in progress, not logging out.
 */
int		 imap_ready(const struct imap *);

/*
 * SELECT (EXAMINE if readonly: nothing can be flagged or expunged) a
 * mailbox, sent quoted or as a literal per its octets (modified UTF-7 is
 * the owner's concern; CR, LF and NUL are refused).  Refused (-1) while
 * an operation runs or actions are queued or in flight.  The previous
 * mailbox's state is dropped at the server's [CLOSED] or the new
 * mailbox's first data.  Returns 0, or -1.
 */
int		 imap_select(struct imap *, const char *mailbox, int readonly);
/*
 * List and fetch new mail: "UID FETCH lo:* (UID RFC822.SIZE)" (lo is the
 * lowest UID of interest, >= 1; UIDs below it that n:* returns are
 * dropped), then per message too_big or want, and "UID FETCH uid
 * BODY.PEEK[]" for each FETCH, up to window in flight.  An empty mailbox
 * sends NOOP instead.  op_done(IMAP_OP_FETCH) when every body is in.
 * Returns 0, or -1.
 */
int		 imap_fetch_new(struct imap *, uint32_t lo);
/*
 * Ask for the flags of the messages whose UID is below `below` (0: no
 * bound, e.g. no UIDNEXT was announced): "UID FETCH 1:below-1 (UID
 * FLAGS)" ("1:*" for 0; NOOP if the mailbox or the range is empty).  flags() is called for each FETCH
 * response that carries both UID and FLAGS, with a UID under the bound,
 * while the command runs (a message may be reported twice if another
 * client changes its flags meanwhile).  Nothing is fetched or changed.
 * Ends with op_done(IMAP_OP_FETCH).  Returns 0, or -1.
 */
int		 imap_fetch_flags(struct imap *, uint32_t below);
/*
 * Owner actions on the selected mailbox, after the owner's durable
 * record; queued, batched, reported by action_done.  Refused (-1) when
 * read-only, or for delete/move when the server has no UIDPLUS and the
 * account does not allow a plain EXPUNGE (move with MOVE is fine).
 * Queued actions wait while IDLE runs.
 */
int		 imap_mark_seen(struct imap *, uint32_t uid);
int		 imap_delete(struct imap *, uint32_t uid);
int		 imap_move(struct imap *, uint32_t uid, const char *folder);
/*
 * IDLE (only when offered, selected, nothing in flight): exists() reports
 * new mail; imap_idle_done() sends DONE (at once, or when the "+"
 * arrives); op_done(IMAP_OP_IDLE) follows the tagged OK.  0, or -1.
 */
int		 imap_idle(struct imap *);
int		 imap_idle_done(struct imap *);
/* NOOP (keepalive, polling without IDLE).  0, or -1. */
int		 imap_noop(struct imap *);
/* LIST "" pattern: mailbox() per selectable name.  0, or -1. */
int		 imap_list(struct imap *, const char *pattern);
/* STATUS folder (MESSAGES UIDNEXT UIDVALIDITY).  0, or -1. */
int		 imap_status(struct imap *, const char *folder);
/*
 * Stop: no further want(); bodies in flight still arrive; queued actions
 * go out; an IDLE is ended; then LOGOUT.  0, or -1 before authentication.
 */
int		 imap_logout(struct imap *);
/* 1 only if LOGOUT was answered OK. */
int		 imap_logout_ok(const struct imap *);

/* The selected mailbox: EXISTS count, UIDVALIDITY, read-only. */
uint32_t	 imap_exists(const struct imap *);
uint32_t	 imap_uidvalidity(const struct imap *);
int		 imap_readonly(const struct imap *);

#endif
