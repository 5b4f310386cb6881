/* ISC licence; see LICENSE. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/log.h"
#include "haul/pop3.h"
#include "haul/proto.h"
#include "haul/sasl.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/* The commands whose replies we wait for, in the order they were sent. */
enum cmd {
	CMD_GREETING,		/* not sent: the server speaks first */
	CMD_CAPA,
	CMD_STLS,
	CMD_USER,
	CMD_PASS,
	CMD_APOP,
	CMD_AUTH,
	CMD_STAT,
	CMD_UIDL,
	CMD_LIST,
	CMD_RETR,
	CMD_DELE,
	CMD_NOOP,
	CMD_QUIT,
};

static const char *cmd_names[] = {
	"greeting", "CAPA", "STLS", "USER", "PASS", "APOP", "AUTH", "STAT",
	"UIDL", "LIST", "RETR", "DELE", "NOOP", "QUIT",
};

/* How the bytes now arriving are read. */
enum rd {
	RD_STATUS,		/* a status line */
	RD_LINES,		/* lines of CAPA, UIDL or LIST up to "." */
	RD_BODY,		/* a RETR body, streamed to the owner */
};

/* Where a SASL exchange stands (what we sent last). */
enum sasl_step {
	SASL_SENT_AUTH,		/* "AUTH mech" alone: a "+" must follow */
	SASL_SENT_USER,		/* LOGIN: user name sent */
	SASL_SENT_FINAL,	/* credentials sent */
	SASL_SENT_CANCEL,	/* answered an error challenge: -ERR next */
};

/* The APOP timestamp: what the greeting gave us. */
enum ts_state {
	TS_NONE,		/* no "<" in the greeting */
	TS_VALID,
	TS_MALFORMED,
	TS_DISCARDED,		/* pre-TLS, dropped at STLS */
};

#define M_AMBIG		0x01	/* UID shared with another message */
#define M_DELE		0x02	/* DELE queued or sent */
#define M_DELE_OK	0x04	/* DELE answered +OK */

struct msg {
	uint64_t	 size;
	uint32_t	 uid_off;	/* into uids */
	uint8_t		 flags;
};

struct pending {
	enum cmd	 cmd;
	unsigned	 msgno;
};

struct pop3 {
	char			*account;
	char			*user;
	char			*host;
	unsigned		 port;
	enum tls_mode		 tls;
	int			 allow_plaintext;
	enum auth_mech		 auth;
	const void		*secret;	/* borrowed; NULL after auth */
	size_t			 secret_len;
	uint64_t		 max_size;
	unsigned		 max_messages;
	unsigned		 window;

	struct pop3_cb		 cb;
	void			*arg;

	enum pop3_state		 state;
	struct buf		 out;
	int			 out_secret;	/* out held a credential */

	char			 line[POP3_LINE_MAX];
	size_t			 linelen;
	enum rd			 rd;
	unsigned		 nlines;
	struct pop3_body	 body;

	struct pending		 pipe[POP3_PIPELINE_MAX];
	unsigned		 phead;
	unsigned		 pcount;

	int			 tls_active;
	int			 capa_ok;
	struct pop3_caps	 caps;
	struct pop3_caps	 ncaps;		/* being read */
	char			 ts[POP3_TIMESTAMP_MAX + 1];
	size_t			 tslen;
	enum ts_state		 ts_state;

	enum auth_mech		 mech;		/* resolved from auth */
	enum sasl_step		 sasl_step;
	char			 oauth_status[64];

	unsigned		 lsent;		/* listing commands sent */
	unsigned		 stat_count;
	uint64_t		 stat_octets;
	struct msg		*msgs;
	unsigned		 nmsgs;
	unsigned		 msgs_cap;
	unsigned		 nlisted;
	unsigned		 nambig;
	struct buf		 uids;		/* NUL-separated pool */

	unsigned		 next;		/* next message to decide */
	unsigned		 retr_inflight;
	unsigned		*delq;
	size_t			 delq_head;
	size_t			 delq_len;
	size_t			 delq_cap;
	int			 finish;
	int			 aborted;
	int			 quit_ok;
	int			 drained;
	int			 in_input;
	int			 in_pump;
	int			 from_owner;	/* pump without callbacks */

	unsigned		 cur;		/* message being received */
	uint64_t		 cur_bytes;
	int			 cur_drop;	/* read it, tell nobody */

	enum err_class		 err;
	char			 errmsg[256];
	char			 code[POP3_CODE_MAX];
};

static void	pump(struct pop3 *);
static void	listing_send(struct pop3 *);

static void
set_state(struct pop3 *p, enum pop3_state s)
{
	if (p->state == s)
		return;
	log_debug(p->account, "pop3: %s -> %s", pop3_state_name(p->state),
	    pop3_state_name(s));
	p->state = s;
}

/* Escape server text for a log line or an error message. */
static const char *
clean(char *dst, size_t dstsz, const char *s, size_t len)
{
	return log_printable(dst, dstsz, s, len);
}

/* Record the first error and stop; later errors are consequences. */
static void __attribute__((format(printf, 3, 4)))
fail(struct pop3 *p, enum err_class c, const char *fmt, ...)
{
	va_list	 ap;

	if (p->state == POP3_FAILED)
		return;
	p->err = c;
	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
	va_end(ap);
	log_debug(p->account, "pop3: %s error: %s", err_class_name(c),
	    p->errmsg);
	set_state(p, POP3_FAILED);
}

/* An owner callback said stop. */
static void
owner_fail(struct pop3 *p, const char *what)
{
	fail(p, ERR_LOCAL, "session aborted by its owner (%s)", what);
}

static const char *
uid_of(const struct pop3 *p, unsigned msgno)
{
	return p->uids.data + p->msgs[msgno - 1].uid_off;
}

/* Pending-reply queue: a ring, bounded by POP3_PIPELINE_MAX. */
static void
push(struct pop3 *p, enum cmd c, unsigned msgno)
{
	struct pending	*e;

	if (p->pcount == POP3_PIPELINE_MAX)
		fatalx("pop3: pipeline overflow");
	e = &p->pipe[(p->phead + p->pcount) % POP3_PIPELINE_MAX];
	e->cmd = c;
	e->msgno = msgno;
	p->pcount++;
}

static const struct pending *
head(const struct pop3 *p)
{
	return &p->pipe[p->phead];
}

static void
pop(struct pop3 *p)
{
	p->phead = (p->phead + 1) % POP3_PIPELINE_MAX;
	p->pcount--;
}

static int
pipelining(const struct pop3 *p)
{
	return (p->caps.flags & POP3_CAP_PIPELINING) != 0;
}

/* May one more command go out now? Without PIPELINING, one at a time. */
static int
can_send(const struct pop3 *p)
{
	if (pipelining(p))
		return p->pcount < POP3_PIPELINE_MAX - 1;	/* room for QUIT */
	return p->pcount == 0;
}

/* Append a command without secrets and expect its reply. */
static void __attribute__((format(printf, 4, 5)))
send_cmd(struct pop3 *p, enum cmd c, unsigned msgno, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 start = p->out.len;
	char	 tmp[POP3_CMD_MAX];

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (buf_add_str(&p->out, tmp) == -1 || buf_add(&p->out, "\r\n", 2) == -1)
		fatalx("pop3: output buffer full");
	log_debug(p->account, "pop3: C: %.*s", (int)(p->out.len - start - 2),
	    p->out.data + start);
	push(p, c, msgno);
}

/*
 * Append prefix + secret + CRLF.  Room is reserved first so the secret is
 * written once into storage that does not move; trace is what the debug
 * log shows instead.
 */
static void
send_secret(struct pop3 *p, enum cmd c, const char *prefix,
    const void *secret, size_t len, const char *trace)
{
	size_t	 plen = strlen(prefix);

	if (buf_reserve(&p->out, plen + len + 2) == -1)
		fatalx("pop3: output buffer full");
	buf_add(&p->out, prefix, plen);
	buf_add(&p->out, secret, len);
	buf_add(&p->out, "\r\n", 2);
	p->out_secret = 1;
	log_debug(p->account, "pop3: C: %s", trace);
	push(p, c, 0);
}

/*
 * A reply arrived, so the driver has sent what preceded it: wipe the
 * stale bytes beyond out.len that buf_consume() leaves behind.
 */
static void
wipe_out_slack(struct pop3 *p)
{
	if (!p->out_secret || p->out.data == NULL)
		return;
	explicit_bzero(p->out.data + p->out.len, p->out.cap - p->out.len);
	if (p->out.len == 0)
		p->out_secret = 0;
}

static void
send_quit(struct pop3 *p)
{
	send_cmd(p, CMD_QUIT, 0, "QUIT");
	set_state(p, POP3_QUIT);
}

struct pop3 *
pop3_new(const struct pop3_params *prm, const struct pop3_cb *cb, void *arg)
{
	struct pop3	*p;

	if (cb->want == NULL || cb->msg_begin == NULL ||
	    cb->msg_data == NULL || cb->msg_end == NULL)
		fatalx("pop3_new: a required callback is missing");
	p = xcalloc(1, sizeof(*p));
	p->account = prm->account != NULL ? xstrdup(prm->account) : NULL;
	p->user = prm->user != NULL ? xstrdup(prm->user) : NULL;
	p->host = prm->host != NULL ? xstrdup(prm->host) : NULL;
	p->port = prm->port;
	p->tls = prm->tls;
	p->tls_active = prm->tls == TLS_IMPLICIT;
	p->allow_plaintext = prm->allow_plaintext;
	p->auth = prm->auth;
	p->secret = prm->secret;
	p->secret_len = prm->secret_len;
	p->max_size = prm->max_message_size;
	p->max_messages = prm->max_messages;
	if (p->max_messages == 0)
		p->max_messages = POP3_MAX_MESSAGES;
	if (p->max_messages > POP3_MAX_MESSAGES_LIMIT)
		p->max_messages = POP3_MAX_MESSAGES_LIMIT;
	p->window = prm->window;
	if (p->window == 0)
		p->window = POP3_WINDOW_DEFAULT;
	if (p->window > POP3_WINDOW_MAX)
		p->window = POP3_WINDOW_MAX;
	p->cb = *cb;
	p->arg = arg;
	p->state = POP3_GREETING;
	buf_init(&p->out, 0);
	buf_init(&p->uids, 0);
	pop3_caps_init(&p->caps);
	pop3_caps_init(&p->ncaps);
	p->next = 1;
	push(p, CMD_GREETING, 0);
	return p;
}

void
pop3_free(struct pop3 **pp)
{
	struct pop3	*p = *pp;

	if (p == NULL)
		return;
	buf_free_secret(&p->out);
	buf_free(&p->uids);
	free(p->msgs);
	free(p->delq);
	free(p->account);
	free(p->user);
	free(p->host);
	freezero(p, sizeof(*p));
	*pp = NULL;
}

struct buf *
pop3_output(struct pop3 *p)
{
	return &p->out;
}

enum err_class
pop3_error(const struct pop3 *p, const char **msg)
{
	if (msg != NULL)
		*msg = p->errmsg;
	return p->err;
}

const char *
pop3_resp_code(const struct pop3 *p)
{
	return p->code;
}

enum pop3_state
pop3_state(const struct pop3 *p)
{
	return p->state;
}

int
pop3_waiting(const struct pop3 *p)
{
	return p->pcount > 0 && p->state != POP3_FAILED &&
	    p->state != POP3_DONE;
}

int
pop3_idle_ok(const struct pop3 *p)
{
	return p->state == POP3_TRANSACTION && p->pcount == 0;
}

int
pop3_quit_ok(const struct pop3 *p)
{
	return p->quit_ok;
}

long
pop3_login_delay(const struct pop3 *p)
{
	return p->caps.login_delay;
}

long
pop3_expire(const struct pop3 *p)
{
	return p->caps.expire;
}

unsigned
pop3_count(const struct pop3 *p)
{
	return p->nmsgs;
}

const char *
pop3_uid(const struct pop3 *p, unsigned msgno)
{
	if (msgno == 0 || msgno > p->nmsgs)
		return NULL;
	return uid_of(p, msgno);
}

uint64_t
pop3_size(const struct pop3 *p, unsigned msgno)
{
	if (msgno == 0 || msgno > p->nmsgs)
		return 0;
	return p->msgs[msgno - 1].size;
}

int
pop3_ambiguous(const struct pop3 *p, unsigned msgno)
{
	if (msgno == 0 || msgno > p->nmsgs)
		return 0;
	return (p->msgs[msgno - 1].flags & M_AMBIG) != 0;
}

int
pop3_dele_ok(const struct pop3 *p, unsigned msgno)
{
	if (msgno == 0 || msgno > p->nmsgs)
		return 0;
	return (p->msgs[msgno - 1].flags & M_DELE_OK) != 0;
}

/* ---- authentication ---- */

/*
 * Resolve the configured mechanism against the (post-TLS) capabilities.
 * Returns 0, or -1 after fail().
 */
static int
choose_mech(struct pop3 *p)
{
	int	 m;

	if ((m = pop3_choose_auth(p->auth, &p->caps, p->capa_ok)) != -1) {
		p->mech = (enum auth_mech)m;
		return 0;
	}
	if (p->auth == AUTH_AUTO)
		fail(p, ERR_CONFIG, "server offers no usable authentication "
		    "mechanism");
	else
		fail(p, ERR_CONFIG, "server does not offer SASL %s",
		    pop3_sasl_name(p->auth));
	return -1;
}

/* 1 if the user name can go on a command line. */
static int
user_ok(const struct pop3 *p, int no_space)
{
	size_t	 n;

	if (p->user == NULL || (n = strlen(p->user)) == 0 || n > 200)
		return 0;
	if (str_has_ctl(p->user, n))
		return 0;
	return !no_space || strchr(p->user, ' ') == NULL;
}

/* The base64 SASL response carrying the credentials (not LOGIN). */
static int
sasl_build(struct pop3 *p, struct buf *b)
{
	switch (p->mech) {
	case AUTH_PLAIN:
		return sasl_plain(b, NULL, p->user, p->secret, p->secret_len);
	case AUTH_XOAUTH2:
		return sasl_xoauth2(b, p->user, p->secret, p->secret_len);
	case AUTH_OAUTHBEARER:
		return sasl_oauthbearer(b, p->user, p->host, p->port,
		    p->secret, p->secret_len);
	default:
		return -1;
	}
}

/* Start SASL: with the initial response if the line stays <= 255. */
static void
start_sasl(struct pop3 *p)
{
	struct buf	 b;
	const char	*name = pop3_sasl_name(p->mech);
	char		 prefix[32], trace[64];

	set_state(p, POP3_AUTH);
	if (p->mech == AUTH_LOGIN) {
		send_cmd(p, CMD_AUTH, 0, "AUTH LOGIN");
		p->sasl_step = SASL_SENT_AUTH;
		return;
	}
	buf_init(&b, 0);
	if (sasl_build(p, &b) == -1) {
		buf_free_secret(&b);
		fail(p, ERR_CONFIG, "cannot encode SASL %s credentials "
		    "(invalid user name or secret)", name);
		return;
	}
	snprintf(prefix, sizeof(prefix), "AUTH %s ", name);
	if (strlen(prefix) + b.len + 2 <= POP3_CMD_MAX) {
		snprintf(trace, sizeof(trace), "AUTH %s <redacted>", name);
		send_secret(p, CMD_AUTH, prefix, b.data, b.len, trace);
		p->sasl_step = SASL_SENT_FINAL;
	} else {
		/* RFC 5034 section 4: too long, so wait for "+ ". */
		send_cmd(p, CMD_AUTH, 0, "AUTH %s", name);
		p->sasl_step = SASL_SENT_AUTH;
	}
	buf_free_secret(&b);
}

/*
 * Credentials go out only under TLS, or when the account explicitly
 * allows plaintext; the mechanism comes from the post-TLS capabilities.
 */
static void
start_auth(struct pop3 *p)
{
	const unsigned char *s = p->secret;
	char		 hex[33], prefix[POP3_CMD_MAX], trace[POP3_CMD_MAX];

	if (p->aborted) {
		send_quit(p);
		return;
	}
	if (!p->tls_active && !p->allow_plaintext) {
		fail(p, ERR_CONFIG, "refusing to send credentials without "
		    "TLS (plaintext not allowed for this account)");
		return;
	}
	if (choose_mech(p) == -1)
		return;
	if (p->user == NULL && p->mech != AUTH_OAUTHBEARER) {
		fail(p, ERR_CONFIG, "no user name");
		return;
	}
	if (s == NULL || p->secret_len == 0) {
		fail(p, ERR_CONFIG, "no password or token");
		return;
	}
	switch (p->mech) {
	case AUTH_USER:
		if (!user_ok(p, 0) ||
		    5 + strlen(p->user) + 2 > POP3_CMD_MAX) {
			fail(p, ERR_CONFIG, "user name unusable for USER");
			return;
		}
		if (memchr(s, '\r', p->secret_len) != NULL ||
		    memchr(s, '\n', p->secret_len) != NULL ||
		    memchr(s, '\0', p->secret_len) != NULL ||
		    5 + p->secret_len + 2 > POP3_CMD_MAX) {
			fail(p, ERR_CONFIG, "password unusable for PASS "
			    "(CR, LF or NUL, or longer than the command limit)");
			return;
		}
		send_cmd(p, CMD_USER, 0, "USER %s", p->user);
		set_state(p, POP3_USER);
		return;
	case AUTH_APOP:
		if (p->ts_state != TS_VALID) {
			if (p->ts_state == TS_MALFORMED)
				fail(p, ERR_PROTOCOL, "malformed APOP "
				    "timestamp in the greeting; APOP refused");
			else if (p->ts_state == TS_DISCARDED)
				fail(p, ERR_CONFIG, "APOP unusable with STLS: "
				    "the timestamp came before TLS");
			else
				fail(p, ERR_CONFIG, "server greeting has no "
				    "APOP timestamp");
			return;
		}
		if (!user_ok(p, 1) ||
		    5 + strlen(p->user) + 1 + 32 + 2 > POP3_CMD_MAX) {
			fail(p, ERR_CONFIG, "user name unusable for APOP");
			return;
		}
		if (pop3_apop_digest(p->ts, p->tslen, s, p->secret_len, hex) == -1) {
			fail(p, ERR_CONFIG, "MD5 unavailable for APOP");
			return;
		}
		snprintf(prefix, sizeof(prefix), "APOP %s ", p->user);
		snprintf(trace, sizeof(trace), "APOP %s <redacted>", p->user);
		send_secret(p, CMD_APOP, prefix, hex, 32, trace);
		explicit_bzero(hex, sizeof(hex));
		set_state(p, POP3_APOP);
		return;
	default:
		start_sasl(p);
		return;
	}
}

/* Credentials accepted: forget the secret, then list the mailbox. */
static void
authenticated(struct pop3 *p)
{
	p->secret = NULL;
	p->secret_len = 0;
	log_debug(p->account, "pop3: authenticated (%s)",
	    p->mech == AUTH_USER ? "USER" : p->mech == AUTH_APOP ? "APOP" :
	    pop3_sasl_name(p->mech));
	if (p->aborted) {
		send_quit(p);
		return;
	}
	set_state(p, p->capa_ok ? POP3_CAPA_AUTHED : POP3_STAT);
	p->lsent = p->capa_ok ? 0 : 1;
	listing_send(p);
}

/* A "+" during AUTH: answer it according to where the exchange is. */
static void
sasl_continue(struct pop3 *p, const struct pop3_status *st)
{
	struct buf	 ch, b;
	char		 tmp[128];

	buf_init(&ch, SASL_CHALLENGE_MAX);
	if (sasl_decode_challenge(&ch, st->text, st->textlen,
	    SASL_CHALLENGE_MAX) == -1) {
		buf_free(&ch);
		fail(p, ERR_PROTOCOL, "invalid SASL challenge: %s",
		    clean(tmp, sizeof(tmp), st->text, st->textlen));
		return;
	}
	buf_init(&b, 0);
	switch (p->sasl_step) {
	case SASL_SENT_AUTH:
		if (p->mech == AUTH_LOGIN) {
			if (sasl_login(&b, p->user, strlen(p->user)) == -1)
				fail(p, ERR_CONFIG, "user name unusable");
			else {
				send_secret(p, CMD_AUTH, "", b.data, b.len,
				    "<user name>");
				p->sasl_step = SASL_SENT_USER;
			}
			break;
		}
		if (sasl_build(p, &b) == -1) {
			fail(p, ERR_CONFIG, "cannot encode SASL %s credentials",
			    pop3_sasl_name(p->mech));
			break;
		}
		send_secret(p, CMD_AUTH, "", b.data, b.len, "<redacted>");
		p->sasl_step = SASL_SENT_FINAL;
		break;
	case SASL_SENT_USER:
		if (sasl_login(&b, p->secret, p->secret_len) == -1) {
			fail(p, ERR_CONFIG, "password unusable for LOGIN");
			break;
		}
		send_secret(p, CMD_AUTH, "", b.data, b.len, "<redacted>");
		p->sasl_step = SASL_SENT_FINAL;
		break;
	case SASL_SENT_FINAL:
		if (p->mech == AUTH_XOAUTH2 || p->mech == AUTH_OAUTHBEARER) {
			/*
			 * An error challenge (RFC 7628 3.2.2): acknowledge it
			 * so the server can send its -ERR.
			 */
			if (sasl_oauth_error_status(ch.data, ch.len,
			    p->oauth_status, sizeof(p->oauth_status)) == -1)
				str_lcpy(p->oauth_status, "unknown",
				    sizeof(p->oauth_status));
			if (p->mech == AUTH_OAUTHBEARER)
				send_cmd(p, CMD_AUTH, 0, "%s",
				    SASL_OAUTHBEARER_ABORT);
			else
				send_cmd(p, CMD_AUTH, 0, "%s", "");
			p->sasl_step = SASL_SENT_CANCEL;
			break;
		}
		/* FALLTHROUGH */
	case SASL_SENT_CANCEL:
		fail(p, ERR_PROTOCOL, "unexpected SASL challenge");
		break;
	}
	buf_free_secret(&b);
	buf_free(&ch);
}

/* The final answer to a credential command. */
static void
auth_reply(struct pop3 *p, const struct pop3_status *st)
{
	char	 tmp[160];

	if (st->kind == POP3_OK) {
		if (p->state == POP3_AUTH && p->sasl_step != SASL_SENT_FINAL) {
			fail(p, ERR_PROTOCOL, "+OK to AUTH before credentials");
			return;
		}
		authenticated(p);
		return;
	}
	clean(tmp, sizeof(tmp), st->text, st->textlen);
	if (p->oauth_status[0] != '\0')
		fail(p, pop3_classify(st->code, 1), "authentication failed "
		    "(%s): %s", p->oauth_status, tmp);
	else
		fail(p, pop3_classify(st->code, 1), "authentication failed: "
		    "%s", tmp);
}

/* ---- capabilities, listing ---- */

/* CAPA finished (ok = 0: it was refused, so assume nothing). */
static void
capa_done(struct pop3 *p, int ok)
{
	if (p->state == POP3_CAPA_AUTHED) {
		/* Post-auth values are user-specific (RFC 2449 6.5, 6.7). */
		if (ok)
			p->caps = p->ncaps;
		set_state(p, POP3_STAT);
		listing_send(p);
		return;
	}
	p->capa_ok = ok;
	if (ok)
		p->caps = p->ncaps;
	else
		pop3_caps_init(&p->caps);
	if (p->aborted) {
		send_quit(p);
		return;
	}
	if (p->tls == TLS_STARTTLS && !p->tls_active) {
		/* Required STLS: no fallback, no credential (M1). */
		if ((p->caps.flags & POP3_CAP_STLS) == 0) {
			fail(p, ERR_TLS, ok ? "server does not offer STLS" :
			    "CAPA refused, so STLS cannot be confirmed");
			return;
		}
		send_cmd(p, CMD_STLS, 0, "STLS");
		set_state(p, POP3_STLS);
		return;
	}
	start_auth(p);
}

/*
 * Send the listing commands (CAPA again, STAT, UIDL, LIST): all at once
 * with PIPELINING, else the next one when nothing is outstanding.
 */
static void
listing_send(struct pop3 *p)
{
	while (p->lsent < 4 && p->state != POP3_FAILED) {
		if (p->aborted) {
			if (p->pcount == 0)
				send_quit(p);
			return;
		}
		if (!pipelining(p) && p->pcount > 0)
			return;
		switch (p->lsent++) {
		case 0:
			pop3_caps_init(&p->ncaps);
			p->nlines = 0;
			send_cmd(p, CMD_CAPA, 0, "CAPA");
			break;
		case 1:
			send_cmd(p, CMD_STAT, 0, "STAT");
			break;
		case 2:
			send_cmd(p, CMD_UIDL, 0, "UIDL");
			break;
		case 3:
			send_cmd(p, CMD_LIST, 0, "LIST");
			break;
		}
	}
	if (p->aborted && p->pcount == 0 && p->state != POP3_FAILED)
		send_quit(p);
}

struct uidref {
	const char	*uid;
	unsigned	 msgno;
};

static int
uidref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct uidref *)a)->uid,
	    ((const struct uidref *)b)->uid);
}

/* Flag every message whose UID is not unique (M26). */
static void
mark_duplicates(struct pop3 *p)
{
	struct uidref	*r;
	unsigned	 i;

	if (p->nmsgs < 2)
		return;
	r = xreallocarray(NULL, p->nmsgs, sizeof(*r));
	for (i = 0; i < p->nmsgs; i++) {
		r[i].uid = uid_of(p, i + 1);
		r[i].msgno = i + 1;
	}
	qsort(r, p->nmsgs, sizeof(*r), uidref_cmp);
	for (i = 1; i < p->nmsgs; i++) {
		if (strcmp(r[i - 1].uid, r[i].uid) != 0)
			continue;
		p->msgs[r[i - 1].msgno - 1].flags |= M_AMBIG;
		p->msgs[r[i].msgno - 1].flags |= M_AMBIG;
	}
	for (i = 0; i < p->nmsgs; i++)
		if (p->msgs[i].flags & M_AMBIG)
			p->nambig++;
	free(r);
}

static void
uidl_line(struct pop3 *p, const char *line, size_t len)
{
	const char	*uid;
	size_t		 ulen;
	unsigned	 n;
	char		 tmp[128];

	if (pop3_parse_uidl(line, len, &n, &uid, &ulen) == -1) {
		fail(p, ERR_PROTOCOL, "malformed UIDL line: %s",
		    clean(tmp, sizeof(tmp), line, len));
		return;
	}
	if (n != p->nmsgs + 1 || n > p->stat_count) {
		fail(p, ERR_PROTOCOL, "UIDL: message %u out of sequence "
		    "(expected %u of %u)", n, p->nmsgs + 1, p->stat_count);
		return;
	}
	if (p->nmsgs == p->msgs_cap) {
		p->msgs_cap = p->msgs_cap == 0 ? 64 : p->msgs_cap * 2;
		if (p->msgs_cap > p->stat_count)
			p->msgs_cap = p->stat_count;
		p->msgs = xreallocarray(p->msgs, p->msgs_cap,
		    sizeof(*p->msgs));
	}
	p->msgs[p->nmsgs].size = 0;
	p->msgs[p->nmsgs].flags = 0;
	p->msgs[p->nmsgs].uid_off = (uint32_t)p->uids.len;
	if (buf_add(&p->uids, uid, ulen) == -1 ||
	    buf_add_byte(&p->uids, '\0') == -1)
		fatalx("pop3: UID pool full");
	p->nmsgs++;
}

static void
list_line(struct pop3 *p, const char *line, size_t len)
{
	unsigned	 n;
	uint64_t	 size;
	char		 tmp[128];

	if (pop3_parse_list(line, len, &n, &size) == -1) {
		fail(p, ERR_PROTOCOL, "malformed LIST line: %s",
		    clean(tmp, sizeof(tmp), line, len));
		return;
	}
	if (n != p->nlisted + 1 || n > p->nmsgs) {
		fail(p, ERR_PROTOCOL, "LIST: message %u does not match the "
		    "UIDL listing (expected %u of %u)", n, p->nlisted + 1,
		    p->nmsgs);
		return;
	}
	p->msgs[n - 1].size = size;
	p->nlisted++;
}

/* The listing is complete and consistent: hand over to the owner. */
static void
enter_transaction(struct pop3 *p)
{
	set_state(p, POP3_TRANSACTION);
	log_debug(p->account, "pop3: %u messages, %llu octets, %u ambiguous",
	    p->nmsgs, (unsigned long long)p->stat_octets, p->nambig);
	if (p->nambig > 0)
		log_warnx(p->account, "pop3: %u messages share their UID with "
		    "another; they will be neither fetched nor deleted",
		    p->nambig);
	if (!p->aborted && p->cb.mailbox != NULL &&
	    p->cb.mailbox(p->arg, p->nmsgs, p->stat_octets) == -1) {
		owner_fail(p, "mailbox");
		return;
	}
	pump(p);
}

/* A line of a CAPA/UIDL/LIST listing, or its terminating ".". */
static void
listing_line(struct pop3 *p, const char *line, size_t len)
{
	enum cmd	 c = head(p)->cmd;
	char		 tmp[128];

	if (len == 1 && line[0] == '.') {
		p->rd = RD_STATUS;
		pop(p);
		switch (c) {
		case CMD_CAPA:
			capa_done(p, 1);
			break;
		case CMD_UIDL:
			if (p->nmsgs != p->stat_count) {
				fail(p, ERR_PROTOCOL, "UIDL listed %u "
				    "messages, STAT said %u", p->nmsgs,
				    p->stat_count);
				break;
			}
			log_debug(p->account, "pop3: S: UIDL, %u entries",
			    p->nmsgs);
			mark_duplicates(p);
			set_state(p, POP3_LIST);
			listing_send(p);
			break;
		case CMD_LIST:
			if (p->nlisted != p->nmsgs) {
				fail(p, ERR_PROTOCOL, "LIST listed %u "
				    "messages, UIDL %u", p->nlisted, p->nmsgs);
				break;
			}
			enter_transaction(p);
			break;
		default:
			fatalx("pop3: listing for %s", cmd_names[c]);
		}
		return;
	}
	/* Byte-stuffed lines (RFC 1939 3); none is expected here. */
	if (line[0] == '.') {
		line++;
		len--;
	}
	switch (c) {
	case CMD_CAPA:
		if (++p->nlines > POP3_CAPA_LINES_MAX) {
			fail(p, ERR_PROTOCOL, "CAPA reply too long");
			return;
		}
		log_debug(p->account, "pop3: S: %s",
		    clean(tmp, sizeof(tmp), line, len));
		pop3_parse_capa(&p->ncaps, line, len);
		break;
	case CMD_UIDL:
		uidl_line(p, line, len);
		break;
	case CMD_LIST:
		list_line(p, line, len);
		break;
	default:
		fatalx("pop3: listing for %s", cmd_names[c]);
	}
}

/* ---- transaction ---- */

static void
queue_dele(struct pop3 *p, unsigned msgno)
{
	p->msgs[msgno - 1].flags |= M_DELE;
	if (p->delq_head == p->delq_len)
		p->delq_head = p->delq_len = 0;
	if (p->delq_len == p->delq_cap) {
		p->delq_cap = p->delq_cap == 0 ? 64 : p->delq_cap * 2;
		p->delq = xreallocarray(p->delq, p->delq_cap,
		    sizeof(*p->delq));
	}
	p->delq[p->delq_len++] = msgno;
}

/* Ask the owner about one message and act on the answer. */
static void
decide(struct pop3 *p, unsigned n)
{
	struct msg	*m = &p->msgs[n - 1];
	const char	*uid = uid_of(p, n);
	enum pop3_want	 w;

	if (m->flags & M_DELE)
		return;			/* the owner already deleted it */
	if (m->flags & M_AMBIG) {
		if (p->cb.ambiguous != NULL)
			p->cb.ambiguous(p->arg, n, uid);
		return;
	}
	if (p->max_size != 0 && m->size > p->max_size) {
		if (p->cb.too_big == NULL)
			log_warnx(p->account, "pop3: message %u (%llu "
			    "octets) exceeds max_message_size; skipped", n,
			    (unsigned long long)m->size);
		else if (p->cb.too_big(p->arg, n, uid, m->size) == -1)
			owner_fail(p, "too_big");
		return;
	}
	w = p->cb.want(p->arg, n, uid, m->size);
	if (p->state != POP3_TRANSACTION)
		return;
	switch (w) {
	case POP3_WANT_FETCH:
		if (p->aborted)
			break;
		send_cmd(p, CMD_RETR, n, "RETR %u", n);
		p->retr_inflight++;
		break;
	case POP3_WANT_SKIP:
		break;
	case POP3_WANT_DELETE:
		if ((m->flags & M_DELE) == 0)
			queue_dele(p, n);
		break;
	default:
		owner_fail(p, "want");
		break;
	}
}

/*
 * Send whatever can go out now, in a fixed order (queued DELEs, then the
 * next decisions, then QUIT), so the commands depend only on the replies
 * seen, never on how the input was split.  Called from the owner's API
 * (from_owner) it makes no callback: decisions wait for the next reply,
 * which is always outstanding when any are left.
 */
static void
pump(struct pop3 *p)
{
	unsigned	 window = pipelining(p) ? p->window : 1;

	if (p->in_pump)
		return;
	p->in_pump = 1;
	while (p->state == POP3_TRANSACTION) {
		if (p->delq_head < p->delq_len && can_send(p)) {
			unsigned n = p->delq[p->delq_head++];

			send_cmd(p, CMD_DELE, n, "DELE %u", n);
			continue;
		}
		if (!p->aborted && !p->from_owner && p->next <= p->nmsgs &&
		    p->retr_inflight < window && can_send(p)) {
			decide(p, p->next++);
			continue;
		}
		if (!p->aborted && !p->from_owner && !p->drained &&
		    p->next > p->nmsgs && p->retr_inflight == 0) {
			p->drained = 1;
			if (p->cb.drained != NULL)
				p->cb.drained(p->arg);
			continue;
		}
		if (p->delq_head == p->delq_len &&
		    (pipelining(p) ? p->pcount < POP3_PIPELINE_MAX :
		    p->pcount == 0) &&
		    (p->aborted || (p->finish && p->next > p->nmsgs &&
		    p->retr_inflight == 0)))
			send_quit(p);
		break;
	}
	p->in_pump = 0;
}

/* Message bytes from the unstuffer, checked against the size limit. */
static int
body_emit(void *arg, const void *data, size_t len)
{
	struct pop3	*p = arg;

	if (p->cur_drop)
		return 0;
	if (p->max_size != 0 && len > p->max_size - p->cur_bytes) {
		/* The LIST size lied; never pass more than the cap (M13). */
		p->cur_drop = 1;
		log_warnx(p->account, "pop3: message %u grew past "
		    "max_message_size while being read; dropped", p->cur);
		if (p->cb.msg_failed != NULL &&
		    p->cb.msg_failed(p->arg, p->cur, uid_of(p, p->cur),
		    POP3_FAIL_TOO_BIG, "message larger than max_message_size")
		    == -1) {
			owner_fail(p, "msg_failed");
			return -1;
		}
		return 0;
	}
	p->cur_bytes += len;
	if (p->cb.msg_data(p->arg, data, len) == -1) {
		owner_fail(p, "msg_data");
		return -1;
	}
	return 0;
}

static void
retr_reply(struct pop3 *p, const struct pop3_status *st)
{
	unsigned	 n = head(p)->msgno;
	char		 tmp[160];

	if (st->kind == POP3_ERR) {
		pop(p);
		p->retr_inflight--;
		clean(tmp, sizeof(tmp), st->text, st->textlen);
		log_warnx(p->account, "pop3: RETR %u refused: %s", n, tmp);
		if (!p->aborted && p->cb.msg_failed != NULL &&
		    p->cb.msg_failed(p->arg, n, uid_of(p, n), POP3_FAIL_ERR,
		    tmp) == -1)
			owner_fail(p, "msg_failed");
		return;
	}
	p->cur = n;
	p->cur_bytes = 0;
	p->cur_drop = p->aborted;
	pop3_body_init(&p->body);
	p->rd = RD_BODY;
	if (!p->cur_drop && p->cb.msg_begin(p->arg, n, uid_of(p, n),
	    p->msgs[n - 1].size) == -1)
		owner_fail(p, "msg_begin");
}

static void
retr_end(struct pop3 *p)
{
	unsigned	 n = p->cur;

	p->rd = RD_STATUS;
	pop(p);
	p->retr_inflight--;
	log_debug(p->account, "pop3: S: message %u, %llu octets", n,
	    (unsigned long long)p->cur_bytes);
	if (!p->cur_drop && !p->aborted &&
	    p->cb.msg_end(p->arg, n, uid_of(p, n)) == -1)
		owner_fail(p, "msg_end");
}

/* ---- replies ---- */

/* One status line, answering the command at the head of the queue. */
static void
status_line(struct pop3 *p, const char *line, size_t len)
{
	struct pop3_status	 st;
	enum cmd		 c = head(p)->cmd;
	unsigned		 msgno = head(p)->msgno, count;
	const char		*ts;
	size_t			 tslen;
	char			 tmp[160];

	if (pop3_parse_status(line, len, c == CMD_AUTH, &st) == -1) {
		fail(p, ERR_PROTOCOL, "malformed reply to %s: %s",
		    cmd_names[c], clean(tmp, sizeof(tmp), line, len));
		return;
	}
	if (log_get_level() >= LOG_LVL_DEBUG)
		log_debug(p->account, "pop3: S: %s", clean(tmp, sizeof(tmp),
		    line, len));
	if (st.kind == POP3_ERR)
		str_lcpy(p->code, st.code, sizeof(p->code));
	wipe_out_slack(p);
	clean(tmp, sizeof(tmp), st.text, st.textlen);

	switch (c) {
	case CMD_GREETING:
		pop(p);
		if (st.kind == POP3_ERR) {
			fail(p, st.code[0] != '\0' ?
			    pop3_classify(st.code, 0) : ERR_TEMP,
			    "server refused the session: %s", tmp);
			return;
		}
		switch (pop3_apop_timestamp(st.text, st.textlen, &ts, &tslen)) {
		case 1:
			memcpy(p->ts, ts, tslen);
			p->ts[tslen] = '\0';
			p->tslen = tslen;
			p->ts_state = TS_VALID;
			break;
		case -1:
			p->ts_state = TS_MALFORMED;
			break;
		default:
			p->ts_state = TS_NONE;
			break;
		}
		p->nlines = 0;
		pop3_caps_init(&p->ncaps);
		send_cmd(p, CMD_CAPA, 0, "CAPA");
		set_state(p, POP3_CAPA);
		return;
	case CMD_CAPA:
		if (st.kind == POP3_OK) {
			p->rd = RD_LINES;
			return;
		}
		pop(p);
		capa_done(p, 0);
		return;
	case CMD_STLS:
		pop(p);
		if (st.kind == POP3_ERR) {
			fail(p, ERR_TLS, "STLS refused: %s", tmp);
			return;
		}
		set_state(p, POP3_TLS);
		return;
	case CMD_USER:
		pop(p);
		if (st.kind == POP3_ERR) {
			fail(p, pop3_classify(st.code, 1), "USER refused: %s",
			    tmp);
			return;
		}
		if (p->aborted) {
			send_quit(p);
			return;
		}
		send_secret(p, CMD_PASS, "PASS ", p->secret, p->secret_len,
		    "PASS <redacted>");
		set_state(p, POP3_PASS);
		return;
	case CMD_PASS:
	case CMD_APOP:
		pop(p);
		auth_reply(p, &st);
		return;
	case CMD_AUTH:
		pop(p);
		if (st.kind == POP3_CONT)
			sasl_continue(p, &st);
		else
			auth_reply(p, &st);
		return;
	case CMD_STAT:
		pop(p);
		if (st.kind == POP3_ERR ||
		    pop3_parse_stat(st.text, st.textlen, &count,
		    &p->stat_octets) == -1) {
			fail(p, ERR_PROTOCOL, "bad STAT reply: %s", tmp);
			return;
		}
		if (count > p->max_messages) {
			fail(p, ERR_CONFIG, "mailbox holds %u messages, more "
			    "than the limit of %u", count, p->max_messages);
			return;
		}
		p->stat_count = count;
		set_state(p, POP3_UIDL);
		listing_send(p);
		return;
	case CMD_UIDL:
		if (st.kind == POP3_OK) {
			p->rd = RD_LINES;
			return;
		}
		pop(p);
		fail(p, ERR_CONFIG, "server has no UIDL; cannot keep mail "
		    "safely: %s", tmp);
		return;
	case CMD_LIST:
		if (st.kind == POP3_OK) {
			p->rd = RD_LINES;
			return;
		}
		pop(p);
		fail(p, ERR_PROTOCOL, "LIST refused: %s", tmp);
		return;
	case CMD_RETR:
		retr_reply(p, &st);
		return;
	case CMD_DELE:
		pop(p);
		if (st.kind == POP3_OK)
			p->msgs[msgno - 1].flags |= M_DELE_OK;
		else
			log_warnx(p->account, "pop3: DELE %u refused: %s",
			    msgno, tmp);
		return;
	case CMD_NOOP:
		pop(p);
		return;
	case CMD_QUIT:
		pop(p);
		p->quit_ok = st.kind == POP3_OK;
		if (!p->quit_ok)
			log_warnx(p->account, "pop3: QUIT refused, deletions "
			    "not committed: %s", tmp);
		set_state(p, POP3_DONE);
		return;
	}
}

/*
 * Collect bytes up to LF into the line buffer.  Returns 1 with a whole
 * line, 0 when the input ran out first, -1 when 512 octets came without
 * LF (RFC 2449 section 4; M16).
 */
static int
take_line(struct pop3 *p, const unsigned char *d, size_t len, size_t *off)
{
	size_t			 n = len - *off;
	const unsigned char	*lf;

	if (n > POP3_LINE_MAX - p->linelen)
		n = POP3_LINE_MAX - p->linelen;
	if ((lf = memchr(d + *off, '\n', n)) != NULL)
		n = (size_t)(lf - (d + *off)) + 1;
	memcpy(p->line + p->linelen, d + *off, n);
	p->linelen += n;
	*off += n;
	if (lf != NULL)
		return 1;
	return p->linelen == POP3_LINE_MAX ? -1 : 0;
}

/* A complete line in p->line: check the framing, then dispatch it. */
static void
handle_line(struct pop3 *p)
{
	size_t	 n = p->linelen;

	p->linelen = 0;
	if (n < 2 || p->line[n - 2] != '\r') {
		fail(p, ERR_PROTOCOL, "server line not terminated by CRLF");
		return;
	}
	n -= 2;
	if (memchr(p->line, '\0', n) != NULL) {
		fail(p, ERR_PROTOCOL, "NUL in a server line");
		return;
	}
	if (p->rd == RD_LINES)
		listing_line(p, p->line, n);
	else
		status_line(p, p->line, n);
}

enum proto_status
pop3_input(struct pop3 *p, const void *data, size_t len, size_t *consumed)
{
	const unsigned char	*d = data;
	size_t			 off = 0;
	enum proto_status	 st = PS_MORE;
	int			 r, end;

	if (consumed != NULL)
		*consumed = 0;
	if (p->state == POP3_FAILED)
		return PS_ERROR;
	if (p->state == POP3_DONE)
		return PS_DONE;
	p->in_input = 1;
	while (off < len && p->state != POP3_FAILED &&
	    p->state != POP3_DONE) {
		if (p->state == POP3_TLS) {
			fail(p, ERR_TLS, "data from the server while TLS "
			    "was being started");
			break;
		}
		if (p->pcount == 0) {
			/* POP3 has no unsolicited replies. */
			fail(p, ERR_PROTOCOL, "unexpected data from the server");
			break;
		}
		if (p->rd == RD_BODY) {
			off += pop3_body_feed(&p->body, d + off, len - off,
			    body_emit, p, &end);
			if (end == -1)
				break;
			if (end == 1) {
				retr_end(p);
				pump(p);
			}
			continue;
		}
		if ((r = take_line(p, d, len, &off)) == 0)
			break;
		if (r == -1) {
			fail(p, ERR_PROTOCOL, "server line longer than %d "
			    "octets", POP3_LINE_MAX);
			break;
		}
		handle_line(p);
		if (p->state == POP3_TLS) {
			/*
			 * Anything after the STLS +OK was sent in clear
			 * before the handshake: an injection (M4).
			 */
			if (off != len) {
				fail(p, ERR_TLS, "%zu octets after the STLS "
				    "+OK before TLS (injection?)", len - off);
				break;
			}
			st = PS_STARTTLS;
			break;
		}
		if (p->rd == RD_STATUS)
			pump(p);
	}
	p->in_input = 0;
	if (consumed != NULL)
		*consumed = off;
	if (p->state == POP3_FAILED)
		return PS_ERROR;
	if (p->state == POP3_DONE)
		return PS_DONE;
	return st;
}

enum proto_status
pop3_tls_started(struct pop3 *p)
{
	if (p->state != POP3_TLS) {
		fail(p, ERR_TLS, "TLS started in state %s",
		    pop3_state_name(p->state));
		return PS_ERROR;
	}
	/* Nothing learnt before TLS can be trusted (M5). */
	p->tls_active = 1;
	p->capa_ok = 0;
	pop3_caps_init(&p->caps);
	pop3_caps_init(&p->ncaps);
	explicit_bzero(p->ts, sizeof(p->ts));
	p->tslen = 0;
	p->ts_state = TS_DISCARDED;
	if (p->aborted) {
		send_quit(p);
		return PS_MORE;
	}
	p->nlines = 0;
	send_cmd(p, CMD_CAPA, 0, "CAPA");
	set_state(p, POP3_CAPA);
	return PS_MORE;
}

/* Pump on behalf of an owner call, unless a reply is being handled. */
static void
owner_pump(struct pop3 *p)
{
	if (p->in_input || p->in_pump)
		return;
	p->from_owner = 1;
	pump(p);
	p->from_owner = 0;
}

int
pop3_delete(struct pop3 *p, unsigned msgno)
{
	if (p->state != POP3_TRANSACTION || msgno == 0 || msgno > p->nmsgs)
		return -1;
	if (p->msgs[msgno - 1].flags & (M_AMBIG | M_DELE))
		return -1;
	queue_dele(p, msgno);
	owner_pump(p);
	return 0;
}

void
pop3_finish(struct pop3 *p)
{
	p->finish = 1;
	owner_pump(p);
}

void
pop3_abort(struct pop3 *p)
{
	p->aborted = 1;
	if (p->rd == RD_BODY)
		p->cur_drop = 1;
	owner_pump(p);
}

int
pop3_noop(struct pop3 *p)
{
	if (!pop3_idle_ok(p))
		return -1;
	send_cmd(p, CMD_NOOP, 0, "NOOP");
	return 0;
}
