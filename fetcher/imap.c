/* ISC licence; see LICENSE. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/imap.h"
#include "haul/log.h"
#include "haul/proto.h"
#include "haul/sasl.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#include "imap_int.h"

/*
 * The IMAP client machine: the input loop, the greeting, capabilities,
 * STARTTLS and authentication.  The selected mailbox's data lives in
 * imap_mbox.c, the operations and the pump in imap_ops.c, command
 * building in imap_cmd.c, the parser in imap_parse.c and imap_proto.c.
 */

static const char *state_names[] = {
	[IMAP_GREETING] = "greeting",
	[IMAP_CAPABILITY] = "capability",
	[IMAP_STARTTLS] = "starttls",
	[IMAP_TLS] = "tls",
	[IMAP_LOGIN] = "login",
	[IMAP_AUTHENTICATE] = "authenticate",
	[IMAP_CAPABILITY_AUTHED] = "capability-authed",
	[IMAP_ENABLE] = "enable",
	[IMAP_AUTHENTICATED] = "authenticated",
	[IMAP_SELECT] = "select",
	[IMAP_SELECTED] = "selected",
	[IMAP_IDLE_START] = "idle-start",
	[IMAP_IDLING] = "idling",
	[IMAP_IDLE_DONE] = "idle-done",
	[IMAP_LOGOUT] = "logout",
	[IMAP_DONE] = "done",
	[IMAP_FAILED] = "failed",
};

static const char *op_names[] = {
	[IMAP_OP_CONNECT] = "connect",
	[IMAP_OP_SELECT] = "select",
	[IMAP_OP_FETCH] = "fetch",
	[IMAP_OP_IDLE] = "idle",
	[IMAP_OP_NOOP] = "noop",
	[IMAP_OP_LIST] = "list",
	[IMAP_OP_STATUS] = "status",
};

const char *
imap_state_name(enum imap_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return "?";
	return state_names[s];
}

const char *
imap_op_name(enum imap_op op)
{
	if ((unsigned)op >= sizeof(op_names) / sizeof(op_names[0]))
		return "?";
	return op_names[op];
}

void
imap_set_state(struct imap *p, enum imap_state s)
{
	if (p->state == s)
		return;
	log_debug(p->account, "imap: %s -> %s", imap_state_name(p->state),
	    imap_state_name(s));
	p->state = s;
}

/* Escape server text for a log line or an error message. */
const char *
imap_clean(char *dst, size_t dstsz, const char *s, size_t len)
{
	if (s == NULL)
		s = "";
	return log_printable(dst, dstsz, s, len);
}

/* Record the first error and stop; later errors are consequences. */
void
imap_fail(struct imap *p, enum err_class c, const char *fmt, ...)
{
	va_list	 ap;

	if (p->state == IMAP_FAILED)
		return;
	p->err = c;
	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
	va_end(ap);
	log_debug(p->account, "imap: %s error: %s", err_class_name(c),
	    p->errmsg);
	imap_set_state(p, IMAP_FAILED);
}

/* An owner callback said stop. */
void
imap_owner_fail(struct imap *p, const char *what)
{
	imap_fail(p, ERR_LOCAL, "session aborted by its owner (%s)", what);
}

struct imap *
imap_new(const struct imap_params *prm, const struct imap_cb *cb, void *arg)
{
	static const struct imap_parser_hooks hooks = {
		.literal = imap_mbox_literal,
		.literal_data = imap_mbox_literal_data,
	};
	struct imap_limits	 lim;
	struct imap		*p;

	if (cb->op_done == NULL || cb->want == NULL || cb->msg_begin == NULL ||
	    cb->msg_data == NULL || cb->msg_end == NULL)
		fatalx("imap_new: a required callback is missing");
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
		p->max_messages = IMAP_MAX_MESSAGES;
	if (p->max_messages > IMAP_MAX_MESSAGES_LIMIT)
		p->max_messages = IMAP_MAX_MESSAGES_LIMIT;
	p->window = prm->window;
	if (p->window == 0)
		p->window = IMAP_WINDOW_DEFAULT;
	if (p->window > IMAP_WINDOW_MAX)
		p->window = IMAP_WINDOW_MAX;
	p->allow_expunge_all = prm->allow_expunge_all;
	p->cb = *cb;
	p->arg = arg;
	p->state = IMAP_GREETING;
	p->op = OP_NONE;
	buf_init(&p->out, 0);
	buf_init(&p->cbuf, 0);
	/*
	 * Default caps: 64 KiB per response outside literals, 64 KiB of
	 * buffered literals.  Message data streams; the literal hook holds
	 * it to max_message_size (imap_mbox_literal()).
	 */
	memset(&lim, 0, sizeof(lim));
	p->ps = imap_parser_new(&lim, &hooks, p);
	return p;
}

void
imap_free(struct imap **pp)
{
	struct imap	*p = *pp;
	unsigned	 i;

	if (p == NULL)
		return;
	for (i = 0; i < IMAP_INFLIGHT_MAX; i++)
		imap_cmd_release(p, &p->cmds[i]);
	imap_ops_free(p);
	imap_parser_free(&p->ps);
	buf_free_secret(&p->out);
	buf_free_secret(&p->cbuf);
	free(p->account);
	free(p->user);
	free(p->host);
	freezero(p, sizeof(*p));
	*pp = NULL;
}

struct buf *
imap_output(struct imap *p)
{
	return &p->out;
}

enum err_class
imap_error(const struct imap *p, const char **msg)
{
	if (msg != NULL)
		*msg = p->errmsg;
	return p->err;
}

const char *
imap_resp_code(const struct imap *p)
{
	return p->code;
}

enum imap_state
imap_state(const struct imap *p)
{
	return p->state;
}

unsigned
imap_caps(const struct imap *p)
{
	return p->caps;
}

int
imap_rev2(const struct imap *p)
{
	return p->rev2;
}

int
imap_waiting(const struct imap *p)
{
	switch (p->state) {
	case IMAP_GREETING:
		return 1;
	case IMAP_TLS:
	case IMAP_DONE:
	case IMAP_FAILED:
		return 0;
	case IMAP_IDLING:
		/* Only IDLE itself is open, and it has no deadline. */
		return p->ncmds > 1;
	default:
		return p->ncmds > 0;
	}
}

int
imap_ready(const struct imap *p)
{
	return (p->state == IMAP_AUTHENTICATED ||
	    p->state == IMAP_SELECTED) && p->op == OP_NONE && !p->logout;
}

int
imap_logout_ok(const struct imap *p)
{
	return p->logout_ok;
}

/* ---- capabilities, STARTTLS, authentication ---- */

static void	start_auth(struct imap *);

/* A command without arguments worth hiding. */
static void
send_simple(struct imap *p, enum cmd_kind kind, const char *text)
{
	struct cmd	*c = imap_cmd_start(p, kind, strlen(text));

	imap_cmd_add(p, text);
	imap_cmd_finish(p, c, NULL, 0);
}

/* Ask CAPABILITY; s says what its answer leads to. */
static void
send_capability(struct imap *p, enum imap_state s)
{
	send_simple(p, CMD_CAPABILITY, "CAPABILITY");
	imap_set_state(p, s);
}

/* Authenticated, capabilities known: forget the secret, say ready. */
static void
ready(struct imap *p)
{
	p->secret = NULL;
	p->secret_len = 0;
	imap_set_state(p, IMAP_AUTHENTICATED);
	imap_op_end(p, IMAP_OP_CONNECT, 1, "");
}

/*
 * IMAP4rev2 when offered (RFC 9051 section 2.2.1).  What haul relies on
 * works either way: listing by UID FETCH, no RECENT, no SEARCH.
 */
static void
enable_or_ready(struct imap *p)
{
	p->secret = NULL;
	p->secret_len = 0;
	if ((p->caps & IMAP_CAP_IMAP4REV2) && !p->rev2) {
		send_simple(p, CMD_ENABLE, "ENABLE IMAP4rev2");
		imap_set_state(p, IMAP_ENABLE);
		return;
	}
	ready(p);
}

/* The pre-authentication capabilities are known. */
static void
caps_known(struct imap *p)
{
	if (p->tls == TLS_STARTTLS && !p->tls_active) {
		/* Required STARTTLS: no fallback, no credential (M1). */
		if ((p->caps & IMAP_CAP_STARTTLS) == 0) {
			imap_fail(p, ERR_TLS, "server does not offer STARTTLS");
			return;
		}
		send_simple(p, CMD_STARTTLS, "STARTTLS");
		imap_set_state(p, IMAP_STARTTLS);
		return;
	}
	start_auth(p);
}

/* Take a CAPABILITY response code if there is one. */
static int
code_caps(struct imap *p, const struct imap_response *r)
{
	if (!imap_code_is(r, "CAPABILITY"))
		return 0;
	p->caps = imap_parse_caps(r->code_arg, r->code_arglen);
	p->caps_known = 1;
	return 1;
}

/* The server's first words: OK, PREAUTH or BYE. */
static void
greeting(struct imap *p, const struct imap_response *r)
{
	char	 tmp[160];

	imap_clean(tmp, sizeof(tmp), r->text, r->textlen);
	if (r->kind != IMAP_UNTAGGED || r->cond == IMAP_COND_NONE ||
	    r->cond == IMAP_COND_NO || r->cond == IMAP_COND_BAD) {
		imap_fail(p, ERR_PROTOCOL, "malformed greeting: %s", tmp);
		return;
	}
	if (r->cond == IMAP_COND_BYE) {
		imap_fail(p, ERR_TEMP, "server refused the session: %s", tmp);
		return;
	}
	if (r->cond == IMAP_COND_PREAUTH) {
		/*
		 * Authenticated before STARTTLS could run: a downgrade
		 * (CVE-2021-39272, M3).  Nothing may go over this link.
		 */
		if (p->tls == TLS_STARTTLS && !p->tls_active) {
			imap_fail(p, ERR_TLS, "PREAUTH greeting on a cleartext "
			    "connection that requires STARTTLS");
			return;
		}
		log_debug(p->account, "imap: pre-authenticated by the server");
		if (code_caps(p, r))
			enable_or_ready(p);
		else
			send_capability(p, IMAP_CAPABILITY_AUTHED);
		return;
	}
	if (code_caps(p, r))
		caps_known(p);
	else
		send_capability(p, IMAP_CAPABILITY);
}

/* 1 if a user name or password can go into LOGIN or SASL at all. */
static int
field_ok(const char *s, size_t len)
{
	return len > 0 && len <= SASL_SECRET_MAX && !str_has_ctl(s, len) &&
	    imap_string_form(s, len, 0) != -1;
}

/* LOGIN user password, both quoted or as literals. */
static void
send_login(struct imap *p)
{
	struct cmd	*c;
	size_t		 ulen = strlen(p->user), n;
	char		 trace[128];

	if (memchr(p->secret, '\0', p->secret_len) != NULL ||
	    imap_string_form(p->secret, p->secret_len, p->caps) == -1) {
		imap_fail(p, ERR_CONFIG, "password unusable for LOGIN (NUL, "
		    "CR or LF)");
		return;
	}
	n = 6 + imap_string_size(p->user, ulen, p->caps) + 1 +
	    imap_string_size(p->secret, p->secret_len, p->caps) + 2;
	c = imap_cmd_start(p, CMD_LOGIN, n);
	imap_cmd_add(p, "LOGIN ");
	imap_cmd_str(p, p->user, ulen);
	imap_cmd_add(p, " ");
	imap_cmd_str(p, p->secret, p->secret_len);
	snprintf(trace, sizeof(trace), "LOGIN %s <redacted>", p->user);
	if (imap_cmd_finish(p, c, trace, 1) == -1) {
		imap_fail(p, ERR_CONFIG, "user name or password unusable for "
		    "LOGIN");
		return;
	}
	imap_set_state(p, IMAP_LOGIN);
}

/* The base64 SASL response carrying the credentials (not LOGIN). */
static int
sasl_build(struct imap *p, struct buf *b)
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

/* A SASL response line (after "+"): base64 and CRLF, a secret. */
static void
send_sasl_line(struct imap *p, const struct buf *b, const char *trace)
{
	if (buf_reserve(&p->out, b->len + 2) == -1)
		fatalx("imap: output buffer full");
	imap_out_add(p, b->data, b->len, 1);
	imap_out_add(p, "\r\n", 2, 1);
	log_debug(p->account, "imap: C: %s", trace);
}

/* AUTHENTICATE mech, with the initial response when SASL-IR allows. */
static void
send_authenticate(struct imap *p)
{
	struct cmd	*c;
	struct buf	 b;
	const char	*name = imap_sasl_name(p->mech);
	char		 trace[64];

	imap_set_state(p, IMAP_AUTHENTICATE);
	buf_init(&b, 0);
	if (p->mech != AUTH_LOGIN && (p->caps & IMAP_CAP_SASL_IR)) {
		if (sasl_build(p, &b) == -1) {
			buf_free_secret(&b);
			imap_fail(p, ERR_CONFIG, "cannot encode SASL %s "
			    "credentials (invalid user name or secret)", name);
			return;
		}
		c = imap_cmd_start(p, CMD_AUTHENTICATE, 13 + strlen(name) +
		    1 + b.len + 2);
		imap_cmd_addf(p, "AUTHENTICATE %s ", name);
		if (buf_add(&p->cbuf, b.data, b.len) == -1)
			p->cbad = 1;
		snprintf(trace, sizeof(trace), "AUTHENTICATE %s <redacted>",
		    name);
		imap_cmd_finish(p, c, trace, 1);
		p->sasl_step = SASL_SENT_FINAL;
	} else {
		c = imap_cmd_start(p, CMD_AUTHENTICATE, 13 + strlen(name));
		imap_cmd_addf(p, "AUTHENTICATE %s", name);
		imap_cmd_finish(p, c, NULL, 0);
		p->sasl_step = SASL_SENT_AUTH;
	}
	buf_free_secret(&b);
	/* A "+" may come at any point until the tagged reply. */
	p->cont = c;
}

/*
 * Credentials go out only under TLS, or when the account explicitly
 * allows plaintext; the mechanism comes from the post-TLS capabilities.
 */
static void
start_auth(struct imap *p)
{
	int	 m;

	if (!p->tls_active && !p->allow_plaintext) {
		imap_fail(p, ERR_CONFIG, "refusing to send credentials without "
		    "TLS (plaintext not allowed for this account)");
		return;
	}
	if ((m = imap_choose_auth(p->auth, p->caps)) == -1) {
		if (p->auth == AUTH_AUTO || p->auth == AUTH_USER)
			imap_fail(p, ERR_CONFIG, "server disables LOGIN "
			    "(LOGINDISABLED)%s", p->auth == AUTH_AUTO ?
			    " and offers no AUTH=PLAIN" : "");
		else if (p->auth == AUTH_APOP)
			imap_fail(p, ERR_CONFIG, "APOP is not an IMAP "
			    "mechanism");
		else
			imap_fail(p, ERR_CONFIG, "server does not offer "
			    "AUTH=%s", imap_sasl_name(p->auth));
		return;
	}
	p->mech = (enum auth_mech)m;
	if (p->user == NULL ? p->mech != AUTH_OAUTHBEARER :
	    !field_ok(p->user, strlen(p->user))) {
		imap_fail(p, ERR_CONFIG, "no usable user name");
		return;
	}
	if (p->secret == NULL || p->secret_len == 0 ||
	    p->secret_len > SASL_SECRET_MAX) {
		imap_fail(p, ERR_CONFIG, "no usable password or token");
		return;
	}
	if (p->mech == AUTH_USER)
		send_login(p);
	else
		send_authenticate(p);
}

/* A "+" during AUTHENTICATE: answer it according to where we are. */
static void
sasl_continue(struct imap *p, const struct imap_response *r)
{
	struct buf	 ch, b;
	char		 tmp[128];

	buf_init(&ch, SASL_CHALLENGE_MAX);
	if (sasl_decode_challenge(&ch, r->text, r->textlen,
	    SASL_CHALLENGE_MAX) == -1) {
		buf_free(&ch);
		imap_fail(p, ERR_PROTOCOL, "invalid SASL challenge: %s",
		    imap_clean(tmp, sizeof(tmp), r->text, r->textlen));
		return;
	}
	buf_init(&b, 0);
	switch (p->sasl_step) {
	case SASL_SENT_AUTH:
		if (p->mech == AUTH_LOGIN) {
			if (sasl_login(&b, p->user, strlen(p->user)) == -1)
				imap_fail(p, ERR_CONFIG, "user name unusable");
			else {
				send_sasl_line(p, &b, "<user name>");
				p->sasl_step = SASL_SENT_USER;
			}
			break;
		}
		if (sasl_build(p, &b) == -1) {
			imap_fail(p, ERR_CONFIG, "cannot encode SASL %s "
			    "credentials", imap_sasl_name(p->mech));
			break;
		}
		send_sasl_line(p, &b, "<redacted>");
		p->sasl_step = SASL_SENT_FINAL;
		break;
	case SASL_SENT_USER:
		if (sasl_login(&b, p->secret, p->secret_len) == -1) {
			imap_fail(p, ERR_CONFIG, "password unusable for "
			    "SASL LOGIN");
			break;
		}
		send_sasl_line(p, &b, "<redacted>");
		p->sasl_step = SASL_SENT_FINAL;
		break;
	case SASL_SENT_FINAL:
		if (p->mech == AUTH_XOAUTH2 || p->mech == AUTH_OAUTHBEARER) {
			/*
			 * An error challenge (RFC 7628 3.2.2): acknowledge it
			 * so the server sends its tagged NO.
			 */
			if (sasl_oauth_error_status(ch.data, ch.len,
			    p->oauth_status, sizeof(p->oauth_status)) == -1)
				str_lcpy(p->oauth_status, "unknown",
				    sizeof(p->oauth_status));
			imap_out_add(p, p->mech == AUTH_OAUTHBEARER ?
			    SASL_OAUTHBEARER_ABORT "\r\n" : "\r\n",
			    p->mech == AUTH_OAUTHBEARER ? 6 : 2, 0);
			log_debug(p->account, "imap: C: %s",
			    p->mech == AUTH_OAUTHBEARER ?
			    SASL_OAUTHBEARER_ABORT : "(empty line)");
			p->sasl_step = SASL_SENT_CANCEL;
			break;
		}
		/* FALLTHROUGH */
	case SASL_SENT_CANCEL:
		imap_fail(p, ERR_PROTOCOL, "unexpected SASL challenge");
		break;
	}
	buf_free_secret(&b);
	buf_free(&ch);
}

/* The tagged reply to LOGIN or AUTHENTICATE. */
static void
auth_reply(struct imap *p, struct cmd *c, const struct imap_response *r,
    const char *text)
{
	if (r->cond == IMAP_COND_OK) {
		if (c->kind == CMD_AUTHENTICATE &&
		    p->sasl_step != SASL_SENT_FINAL) {
			imap_fail(p, ERR_PROTOCOL, "OK to AUTHENTICATE before "
			    "the credentials");
			return;
		}
		p->secret = NULL;
		p->secret_len = 0;
		log_debug(p->account, "imap: authenticated (%s)",
		    p->mech == AUTH_USER ? "LOGIN" : imap_sasl_name(p->mech));
		/* Capabilities may change with login (RFC 9051 6.2.3). */
		if (code_caps(p, r))
			enable_or_ready(p);
		else
			send_capability(p, IMAP_CAPABILITY_AUTHED);
		return;
	}
	if (r->cond == IMAP_COND_BAD) {
		imap_fail(p, ERR_PROTOCOL, "%s rejected as malformed: %s",
		    c->kind == CMD_LOGIN ? "LOGIN" : "AUTHENTICATE", text);
		return;
	}
	if (p->oauth_status[0] != '\0')
		imap_fail(p, imap_classify(r->code, r->codelen, 1),
		    "authentication failed (%s): %s", p->oauth_status, text);
	else
		imap_fail(p, imap_classify(r->code, r->codelen, 1),
		    "authentication failed: %s", text);
}

/* ---- responses ---- */

/* Tags are "h" and a number; anything else is not ours. */
static uint32_t
tag_number(const struct imap_response *r)
{
	uint32_t	 v;

	if (r->taglen < 2 || r->tag[0] != 'h' ||
	    imap_parse_nz32(r->tag + 1, r->taglen - 1, &v) == -1 ||
	    r->tag[1] == '0')
		return 0;
	return v;
}

/* A tagged reply: finish the command it answers. */
static void
tagged(struct imap *p, const struct imap_response *r)
{
	struct cmd	*c = imap_cmd_find(p, tag_number(r));
	char		 tmp[64], text[256];

	if (c == NULL) {
		imap_fail(p, ERR_PROTOCOL, "reply with an unknown tag %s",
		    imap_clean(tmp, sizeof(tmp), r->tag, r->taglen));
		return;
	}
	imap_out_wipe_slack(p);
	p->code[0] = '\0';
	if (r->code != NULL)
		imap_clean(p->code, sizeof(p->code), r->code, r->codelen);
	imap_clean(text, sizeof(text), r->text, r->textlen);
	if (p->cont == c)
		p->cont = NULL;
	switch (c->kind) {
	case CMD_CAPABILITY:
		code_caps(p, r);
		if (r->cond != IMAP_COND_OK) {
			imap_fail(p, ERR_PROTOCOL, "CAPABILITY failed: %s",
			    text);
			break;
		}
		/* An untagged CAPABILITY must have come first. */
		if (!p->caps_known) {
			imap_fail(p, ERR_PROTOCOL, "CAPABILITY answered "
			    "without capabilities");
			break;
		}
		if (p->state == IMAP_CAPABILITY)
			caps_known(p);
		else
			enable_or_ready(p);
		break;
	case CMD_STARTTLS:
		if (r->cond != IMAP_COND_OK) {
			imap_fail(p, ERR_TLS, "STARTTLS refused: %s", text);
			break;
		}
		imap_set_state(p, IMAP_TLS);
		break;
	case CMD_LOGIN:
	case CMD_AUTHENTICATE:
		auth_reply(p, c, r, text);
		break;
	case CMD_ENABLE:
		if (r->cond != IMAP_COND_OK)
			log_debug(p->account, "imap: ENABLE refused: %s", text);
		ready(p);
		break;
	default:
		imap_ops_tagged(p, c, r, text);
		break;
	}
	imap_cmd_release(p, c);
}

/* Response codes that matter wherever they come. */
static void
untagged_status(struct imap *p, const struct imap_response *r)
{
	char	 tmp[256];

	imap_clean(tmp, sizeof(tmp), r->text, r->textlen);
	if (r->cond == IMAP_COND_BYE) {
		if (p->state == IMAP_LOGOUT)
			return;
		imap_fail(p, ERR_TEMP, "server closed the session: %s", tmp);
		return;
	}
	if (r->cond == IMAP_COND_PREAUTH) {
		imap_fail(p, ERR_PROTOCOL, "PREAUTH after the greeting");
		return;
	}
	if (code_caps(p, r))
		return;
	/* Pre-TLS text is an attacker's until TLS runs (M5). */
	if (p->tls == TLS_STARTTLS && !p->tls_active)
		return;
	if (imap_code_is(r, "ALERT"))
		log_warnx(p->account, "imap: server alert: %s", tmp);
	else if (r->cond == IMAP_COND_NO || r->cond == IMAP_COND_BAD) {
		log_warnx(p->account, "imap: server warning: %s", tmp);
		/* The mailbox may be gone or rebuilt: let the owner look. */
		if (p->cb.warning != NULL)
			p->cb.warning(p->arg);
	}
}

/* Untagged data: capabilities here, mailbox data in imap_mbox.c. */
static void
untagged(struct imap *p, const struct imap_response *r)
{
	const struct imap_arg	*a;
	unsigned		 caps = 0;

	if (r->cond != IMAP_COND_NONE) {
		untagged_status(p, r);
		if (p->state != IMAP_FAILED)
			imap_mbox_untagged(p, r);
		return;
	}
	if (!r->has_num && imap_word_is(r, "CAPABILITY")) {
		for (a = imap_arg_first(r); a != NULL; a = imap_arg_next(r, a))
			if (a->type == IMAP_ARG_ATOM)
				caps |= imap_cap_flag(imap_arg_data(r, a),
				    a->len);
		p->caps = caps;
		p->caps_known = 1;
		return;
	}
	if (!r->has_num && imap_word_is(r, "ENABLED")) {
		for (a = imap_arg_first(r); a != NULL; a = imap_arg_next(r, a))
			if (imap_arg_is(r, a, "IMAP4rev2"))
				p->rev2 = 1;
		return;
	}
	imap_mbox_untagged(p, r);
}

/* "+": the literal, SASL exchange or IDLE that asked for it. */
static void
continuation(struct imap *p, const struct imap_response *r)
{
	struct cmd	*c = p->cont;

	if (c == NULL) {
		/* M22: a "+" nobody asked for. */
		imap_fail(p, ERR_PROTOCOL, "unexpected continuation request");
		return;
	}
	if (c->rest.len > 0) {
		imap_cmd_continue(p, c);
		return;
	}
	switch (c->kind) {
	case CMD_AUTHENTICATE:
		sasl_continue(p, r);
		break;
	case CMD_IDLE:
		imap_idle_continue(p);
		break;
	default:
		imap_fail(p, ERR_PROTOCOL, "unexpected continuation request");
		break;
	}
}

/* Trace one response at debug level, rendered and escaped. */
static void
trace(struct imap *p, const struct imap_response *r)
{
	char	 line[512];

	if (log_get_level() < LOG_LVL_DEBUG)
		return;
	imap_render(r, line, sizeof(line));
	log_debug(p->account, "imap: S: %s", line);
}

/* Dispatch one complete response. */
static void
handle(struct imap *p, const struct imap_response *r)
{
	trace(p, r);
	if (p->state == IMAP_GREETING) {
		greeting(p, r);
		return;
	}
	switch (r->kind) {
	case IMAP_CONTINUE:
		continuation(p, r);
		break;
	case IMAP_TAGGED:
		tagged(p, r);
		break;
	case IMAP_UNTAGGED:
		untagged(p, r);
		break;
	}
}

enum proto_status
imap_input(struct imap *p, const void *data, size_t len, size_t *consumed)
{
	const unsigned char	*d = data;
	size_t			 off = 0, used;
	enum proto_status	 st = PS_MORE;
	enum imap_parse		 r;

	if (consumed != NULL)
		*consumed = 0;
	if (p->state == IMAP_FAILED)
		return PS_ERROR;
	if (p->state == IMAP_DONE)
		return PS_DONE;
	p->in_input = 1;
	while (off < len && p->state != IMAP_FAILED &&
	    p->state != IMAP_DONE) {
		if (p->state == IMAP_TLS) {
			imap_fail(p, ERR_TLS, "data from the server while TLS "
			    "was being started");
			break;
		}
		r = imap_parse(p->ps, d + off, len - off, &used);
		off += used;
		if (p->state == IMAP_FAILED)
			break;		/* a hook failed first */
		if (r == IMAP_PARSE_MORE)
			break;
		if (r == IMAP_PARSE_BAD) {
			imap_fail(p, ERR_PROTOCOL, "%s",
			    imap_parser_error(p->ps));
			break;
		}
		handle(p, imap_parser_response(p->ps));
		imap_mbox_reset_cur(p);
		if (p->state == IMAP_TLS) {
			/*
			 * Anything after the tagged OK was sent in clear
			 * before the handshake: an injection (M4).
			 */
			if (off != len) {
				imap_fail(p, ERR_TLS, "%zu octets after the "
				    "STARTTLS OK before TLS (injection?)",
				    len - off);
				break;
			}
			st = PS_STARTTLS;
			break;
		}
		imap_pump(p);
	}
	p->in_input = 0;
	if (consumed != NULL)
		*consumed = off;
	if (p->state == IMAP_FAILED)
		return PS_ERROR;
	if (p->state == IMAP_DONE)
		return PS_DONE;
	return st;
}

enum proto_status
imap_tls_started(struct imap *p)
{
	if (p->state != IMAP_TLS) {
		imap_fail(p, ERR_TLS, "TLS started in state %s",
		    imap_state_name(p->state));
		return PS_ERROR;
	}
	/* Nothing learnt before TLS can be trusted (M5). */
	p->tls_active = 1;
	p->caps = 0;
	p->caps_known = 0;
	send_capability(p, IMAP_CAPABILITY);
	return PS_MORE;
}
