/* ISC licence; see LICENSE. */
/*
 * imapd: a small event-driven IMAP server for hauld's scale benchmark
 * (bench/scale/run.py).  One process, one libevent loop, implicit TLS (or
 * plain with -p), listening on several loopback addresses so that tens of
 * thousands of client connections do not run out of ports.
 *
 * Accounts user0..user(N-1), one password for all, one INBOX each, empty
 * at start.  It speaks what hauld uses: CAPABILITY, LOGIN, SELECT/EXAMINE,
 * FETCH/UID FETCH (UID, RFC822.SIZE, BODY[]/BODY.PEEK[]), UID SEARCH, IDLE
 * and DONE, NOOP, LOGOUT, and answers OK to the rest of the usual verbs.
 * No expunge: message sequence numbers equal UIDs.
 *
 * A control socket (-C path) takes one command per line:
 *	inject IDX MSGID	append a message to userIDX's INBOX with that
 *				Message-ID and tell idling sessions at once
 *				("* n EXISTS"); answers "ok UID"
 *	drop			close every client connection; "ok N"
 *	stats			"ok sessions=.. idling=.. handshaking=.. ..."
 *	peak-reset		reset the handshake peak; "ok"
 *
 * Not a real server: no mailbox persistence, no SASL, lax parsing of what
 * does not matter to the benchmark.  Lines and literals are bounded.
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define LINE_MAX_LEN	8192		/* a command line, literals included */
#define MAX_LISTEN	64
#define MAX_ACCOUNTS	1000000

struct msg {
	char		*data;
	size_t		 len;
};

struct session;
LIST_HEAD(sesslist, session);

struct account {
	struct msg	*msgs;		/* UID n is msgs[n - 1] */
	uint32_t	 nmsg, cap;
	struct sesslist	 sessions;	/* logged in to this account */
};

enum sstate {
	S_HANDSHAKE,
	S_NOTAUTH,
	S_AUTH,
	S_SELECTED,
	S_IDLE,
	S_CLOSING,
};

struct session {
	struct bufferevent *bev;
	enum sstate	 state;
	long		 acct;		/* -1 before LOGIN */
	uint32_t	 known;		/* EXISTS told */
	char		 idle_tag[64];
	char		 line[LINE_MAX_LEN + 1];
	size_t		 linelen;
	size_t		 lit_left;	/* literal octets still to read */
	LIST_ENTRY(session) in_acct;
	LIST_ENTRY(session) all;
};

static struct event_base *base;
static SSL_CTX	*ssl_ctx;
static struct account *accts;
static long	 naccts;
static const char *password = "pw";
static size_t	 body_size = 512;
static int	 verbose;
static struct sesslist all_sessions = LIST_HEAD_INITIALIZER(all_sessions);
static unsigned long n_sessions, n_handshaking, hs_peak, n_logins,
		 n_accepted, n_idle, n_accept_err;
static unsigned long long n_fetch_bodies;
static const char *caps = "IMAP4rev1 IDLE LITERAL+ UIDPLUS ID ENABLE";

static void	sess_free(struct session *);
static void	sess_close_after_flush(struct session *);
static void	die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static void	sendf(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	tagged(struct session *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
die(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	fprintf(stderr, "imapd: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void
sendf(struct session *s, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
}

static void
set_state(struct session *s, enum sstate st)
{
	if (s->state == S_IDLE)
		n_idle--;
	if (st == S_IDLE)
		n_idle++;
	s->state = st;
}

/* New messages since the session last heard: tell it. */
static void
tell_exists(struct session *s)
{
	struct account *a;

	if (s->acct < 0 || (s->state != S_SELECTED && s->state != S_IDLE))
		return;
	a = &accts[s->acct];
	if (a->nmsg > s->known) {
		sendf(s, "* %u EXISTS\r\n", a->nmsg);
		s->known = a->nmsg;
	}
}

static void
tagged(struct session *s, const char *tag, const char *fmt, ...)
{
	va_list	 ap;

	tell_exists(s);
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s ", tag);
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
}

/*
 * Next argument of a command: an atom, a quoted string or a literal
 * (already inlined after its "{n}\r\n").  Returns a pointer to a NUL-ended
 * copy in out, or NULL.
 */
static const char *
next_arg(const char **pp, char *out, size_t outsz)
{
	const char	*p = *pp;
	size_t		 n = 0;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return NULL;
	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (n + 1 < outsz)
				out[n++] = *p;
		}
		if (*p == '"')
			p++;
	} else if (*p == '{') {
		char		*end;
		unsigned long	 len = strtoul(p + 1, &end, 10);

		while (*end != '\0' && *end != '\n')
			end++;
		if (*end == '\n')
			end++;
		p = end;
		while (len-- > 0 && *p != '\0') {
			if (n + 1 < outsz)
				out[n++] = *p;
			p++;
		}
	} else {
		int	 depth = 0;

		/* An atom, or a parenthesised list / section taken whole. */
		for (; *p != '\0' && (depth > 0 || *p != ' '); p++) {
			if (*p == '(' || *p == '[')
				depth++;
			else if ((*p == ')' || *p == ']') && depth > 0)
				depth--;
			if (n + 1 < outsz)
				out[n++] = *p;
		}
	}
	out[n] = '\0';
	*pp = p;
	return out;
}

/* A sequence set over 1..max: calls fn for each member in order. */
static int
for_set(const char *set, uint32_t max, void (*fn)(struct session *, uint32_t,
    const char *), struct session *s, const char *items)
{
	const char	*p = set;

	while (*p != '\0') {
		unsigned long	 lo, hi;
		char		*end;

		if (*p == '*') {
			lo = max;
			end = (char *)p + 1;
		} else {
			lo = strtoul(p, &end, 10);
			if (end == p)
				return -1;
		}
		hi = lo;
		if (*end == ':') {
			p = end + 1;
			if (*p == '*') {
				hi = max;
				end = (char *)p + 1;
			} else {
				hi = strtoul(p, &end, 10);
				if (end == p)
					return -1;
			}
		}
		if (lo > hi) {
			unsigned long t = lo;
			lo = hi;
			hi = t;
		}
		if (hi > max)
			hi = max;
		for (; lo <= hi; lo++)
			if (lo >= 1)
				fn(s, (uint32_t)lo, items);
		p = end;
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return -1;
	}
	return 0;
}

static void
fetch_one(struct session *s, uint32_t n, const char *items)
{
	struct account	*a = &accts[s->acct];
	struct msg	*m = &a->msgs[n - 1];
	int		 body = strstr(items, "BODY[]") != NULL ||
			    strstr(items, "BODY.PEEK[]") != NULL ||
			    strstr(items, "RFC822 ") != NULL;

	sendf(s, "* %u FETCH (UID %u", n, n);
	if (strstr(items, "RFC822.SIZE") != NULL)
		sendf(s, " RFC822.SIZE %zu", m->len);
	if (strstr(items, "FLAGS") != NULL)
		sendf(s, " FLAGS ()");
	if (body) {
		sendf(s, " BODY[] {%zu}\r\n", m->len);
		evbuffer_add_reference(bufferevent_get_output(s->bev), m->data,
		    m->len, NULL, NULL);
		n_fetch_bodies++;
	}
	sendf(s, ")\r\n");
}

static void
search_one(struct session *s, uint32_t n, const char *items)
{
	sendf(s, " %u", n);
}

static void
cmd_fetch(struct session *s, const char *tag, const char *args, int uid)
{
	char		 set[256], items[512];
	const char	*p = args;
	uint32_t	 max = accts[s->acct].nmsg;

	if (next_arg(&p, set, sizeof(set)) == NULL ||
	    next_arg(&p, items, sizeof(items)) == NULL) {
		tagged(s, tag, "BAD FETCH needs a set and items");
		return;
	}
	/* Upper-case the items for the substring checks. */
	for (char *q = items; *q != '\0'; q++)
		if (*q >= 'a' && *q <= 'z')
			*q -= 32;
	strncat(items, " ", sizeof(items) - strlen(items) - 1);
	if (max == 0) {
		tagged(s, tag, "OK FETCH completed");
		return;
	}
	if (for_set(set, max, fetch_one, s, items) == -1) {
		tagged(s, tag, "BAD bad sequence set");
		return;
	}
	tagged(s, tag, "OK %sFETCH completed", uid ? "UID " : "");
}

static void
cmd_search(struct session *s, const char *tag, const char *args)
{
	char		 key[64], set[256];
	const char	*p = args;
	uint32_t	 max = accts[s->acct].nmsg, i;

	sendf(s, "* SEARCH");
	if (next_arg(&p, key, sizeof(key)) != NULL &&
	    strcasecmp(key, "UID") == 0 &&
	    next_arg(&p, set, sizeof(set)) != NULL) {
		if (max > 0)
			for_set(set, max, search_one, s, "");
	} else
		for (i = 1; i <= max; i++)
			sendf(s, " %u", i);
	sendf(s, "\r\n");
	tagged(s, tag, "OK SEARCH completed");
}

static void
cmd_login(struct session *s, const char *tag, const char *args)
{
	char		 user[128], pass[128];
	const char	*p = args;
	char		*end;
	long		 idx;

	if (s->state != S_NOTAUTH) {
		tagged(s, tag, "BAD already logged in");
		return;
	}
	if (next_arg(&p, user, sizeof(user)) == NULL ||
	    next_arg(&p, pass, sizeof(pass)) == NULL) {
		tagged(s, tag, "BAD LOGIN needs a user and a password");
		return;
	}
	if (strncmp(user, "user", 4) != 0 || user[4] == '\0' ||
	    (idx = strtol(user + 4, &end, 10)) < 0 || *end != '\0' ||
	    idx >= naccts || strcmp(pass, password) != 0) {
		tagged(s, tag, "NO [AUTHENTICATIONFAILED] Authentication "
		    "failed.");
		return;
	}
	s->acct = idx;
	LIST_INSERT_HEAD(&accts[idx].sessions, s, in_acct);
	set_state(s, S_AUTH);
	n_logins++;
	tagged(s, tag, "OK [CAPABILITY %s] Logged in", caps);
}

static void
cmd_select(struct session *s, const char *tag, const char *args, int ro)
{
	char		 box[128];
	const char	*p = args;
	struct account	*a;

	if (s->state != S_AUTH && s->state != S_SELECTED) {
		tagged(s, tag, "BAD not authenticated");
		return;
	}
	if (next_arg(&p, box, sizeof(box)) == NULL ||
	    strcasecmp(box, "INBOX") != 0) {
		set_state(s, S_AUTH);
		tagged(s, tag, "NO Mailbox doesn't exist");
		return;
	}
	a = &accts[s->acct];
	sendf(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	    "* %u EXISTS\r\n* 0 RECENT\r\n"
	    "* OK [UIDVALIDITY 1] UIDs valid\r\n"
	    "* OK [UIDNEXT %u] Predicted next UID\r\n", a->nmsg, a->nmsg + 1);
	s->known = a->nmsg;
	set_state(s, S_SELECTED);
	tagged(s, tag, "OK [%s] %s completed", ro ? "READ-ONLY" : "READ-WRITE",
	    ro ? "EXAMINE" : "SELECT");
}

/* One whole command line (literals inlined, CRLF stripped). */
static void
dispatch(struct session *s, char *line)
{
	char		 tag[64], verb[32], sub[32];
	const char	*p = line;

	if (s->state == S_IDLE) {
		if (strcasecmp(line, "DONE") == 0) {
			set_state(s, S_SELECTED);
			tagged(s, s->idle_tag, "OK IDLE terminated");
		} else
			tagged(s, s->idle_tag, "BAD expected DONE");
		return;
	}
	if (next_arg(&p, tag, sizeof(tag)) == NULL ||
	    next_arg(&p, verb, sizeof(verb)) == NULL) {
		sendf(s, "* BAD empty command\r\n");
		return;
	}
	if (verbose)
		fprintf(stderr, "imapd: C: %s %s\n", tag, verb);
	if (strcasecmp(verb, "CAPABILITY") == 0) {
		sendf(s, "* CAPABILITY %s\r\n", caps);
		tagged(s, tag, "OK CAPABILITY completed");
	} else if (strcasecmp(verb, "NOOP") == 0 ||
	    strcasecmp(verb, "CHECK") == 0) {
		tagged(s, tag, "OK %s completed", verb);
	} else if (strcasecmp(verb, "LOGOUT") == 0) {
		sendf(s, "* BYE Logging out\r\n");
		tagged(s, tag, "OK LOGOUT completed");
		sess_close_after_flush(s);
	} else if (strcasecmp(verb, "LOGIN") == 0) {
		cmd_login(s, tag, p);
	} else if (strcasecmp(verb, "ID") == 0 ||
	    strcasecmp(verb, "ENABLE") == 0) {
		tagged(s, tag, "OK %s completed", verb);
	} else if (s->state == S_NOTAUTH) {
		tagged(s, tag, "BAD log in first");
	} else if (strcasecmp(verb, "SELECT") == 0) {
		cmd_select(s, tag, p, 0);
	} else if (strcasecmp(verb, "EXAMINE") == 0) {
		cmd_select(s, tag, p, 1);
	} else if (s->state != S_SELECTED) {
		tagged(s, tag, "BAD select a mailbox first");
	} else if (strcasecmp(verb, "IDLE") == 0) {
		snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", tag);
		set_state(s, S_IDLE);
		sendf(s, "+ idling\r\n");
		tell_exists(s);
	} else if (strcasecmp(verb, "FETCH") == 0) {
		cmd_fetch(s, tag, p, 0);
	} else if (strcasecmp(verb, "SEARCH") == 0) {
		cmd_search(s, tag, p);
	} else if (strcasecmp(verb, "UID") == 0) {
		if (next_arg(&p, sub, sizeof(sub)) == NULL)
			tagged(s, tag, "BAD UID what?");
		else if (strcasecmp(sub, "FETCH") == 0)
			cmd_fetch(s, tag, p, 1);
		else if (strcasecmp(sub, "SEARCH") == 0)
			cmd_search(s, tag, p);
		else	/* STORE, EXPUNGE, COPY, MOVE: accepted, not done */
			tagged(s, tag, "OK UID %s completed", sub);
	} else if (strcasecmp(verb, "CLOSE") == 0 ||
	    strcasecmp(verb, "UNSELECT") == 0) {
		set_state(s, S_AUTH);
		tagged(s, tag, "OK %s completed", verb);
	} else
		tagged(s, tag, "BAD unknown command %s", verb);
}

/* Take whole lines (and the literals inside them) out of the input. */
static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);

	while (s->state != S_CLOSING && evbuffer_get_length(in) > 0) {
		if (s->lit_left > 0) {
			size_t	 n = evbuffer_get_length(in);

			if (n > s->lit_left)
				n = s->lit_left;
			if (s->linelen + n > LINE_MAX_LEN)
				goto toolong;
			evbuffer_remove(in, s->line + s->linelen, n);
			s->linelen += n;
			s->lit_left -= n;
			continue;
		}
		{
			struct evbuffer_ptr eol;
			size_t		 n;
			char		*l;
			size_t		 ll;

			eol = evbuffer_search_eol(in, NULL, &n,
			    EVBUFFER_EOL_CRLF);
			if (eol.pos < 0) {
				if (evbuffer_get_length(in) + s->linelen >
				    LINE_MAX_LEN)
					goto toolong;
				return;
			}
			if (s->linelen + (size_t)eol.pos + 1 > LINE_MAX_LEN)
				goto toolong;
			evbuffer_remove(in, s->line + s->linelen,
			    (size_t)eol.pos);
			evbuffer_drain(in, n);
			s->linelen += (size_t)eol.pos;
			s->line[s->linelen] = '\0';
			l = s->line;
			ll = s->linelen;
			/* A literal at the end: read it, then the rest. */
			if (ll > 2 && l[ll - 1] == '}') {
				char	*open = strrchr(l, '{');
				char	*end;
				unsigned long len;

				if (open != NULL) {
					len = strtoul(open + 1, &end, 10);
					if (len <= LINE_MAX_LEN &&
					    (*end == '}' || (*end == '+' &&
					    end[1] == '}'))) {
						if (*end == '}')
							sendf(s, "+ go "
							    "ahead\r\n");
						s->line[s->linelen++] = '\n';
						s->lit_left = len;
						if (len > 0)
							continue;
					}
				}
			}
			s->linelen = 0;
			dispatch(s, l);
		}
	}
	return;
toolong:
	sendf(s, "* BYE line too long\r\n");
	sess_close_after_flush(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state == S_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sess_free(s);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_HANDSHAKE) {
			n_handshaking--;
			set_state(s, S_NOTAUTH);
		}
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sess_free(s);
}

static void
sess_close_after_flush(struct session *s)
{
	set_state(s, S_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		sess_free(s);
}

static void
sess_free(struct session *s)
{
	if (s->state == S_HANDSHAKE)
		n_handshaking--;
	set_state(s, S_CLOSING);
	if (s->acct >= 0)
		LIST_REMOVE(s, in_acct);
	LIST_REMOVE(s, all);
	bufferevent_free(s->bev);
	n_sessions--;
	free(s);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct session	*s;
	int		 one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	s->acct = -1;
	if (ssl_ctx != NULL) {
		SSL	*ssl = SSL_new(ssl_ctx);

		if (ssl == NULL) {
			free(s);
			close(fd);
			return;
		}
		s->bev = bufferevent_openssl_socket_new(base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		s->state = S_HANDSHAKE;
		n_handshaking++;
		if (n_handshaking > hs_peak)
			hs_peak = n_handshaking;
	} else {
		s->bev = bufferevent_socket_new(base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
		s->state = S_NOTAUTH;
	}
	if (s->bev == NULL) {
		if (ssl_ctx != NULL)
			n_handshaking--;
		free(s);
		close(fd);
		return;
	}
	LIST_INSERT_HEAD(&all_sessions, s, all);
	n_sessions++;
	n_accepted++;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	sendf(s, "* OK [CAPABILITY %s] imapd ready.\r\n", caps);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	int	 e = EVUTIL_SOCKET_ERROR();

	n_accept_err++;
	if (n_accept_err < 10 || n_accept_err % 1000 == 0)
		fprintf(stderr, "imapd: accept: %s (%lu errors)\n",
		    evutil_socket_error_to_string(e), n_accept_err);
}

/* Append a message with the given Message-ID; push to idlers. */
static long
inject(long idx, const char *msgid)
{
	struct account	*a = &accts[idx];
	struct session	*s;
	struct msg	*m;
	char		 hdr[1024], when[64];
	int		 hl;
	time_t		 now = time(NULL);
	size_t		 i;

	if (a->nmsg == a->cap) {
		uint32_t ncap = a->cap ? a->cap * 2 : 4;
		struct msg *nm = realloc(a->msgs, ncap * sizeof(*nm));

		if (nm == NULL)
			return -1;
		a->msgs = nm;
		a->cap = ncap;
	}
	strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S +0000",
	    gmtime(&now));
	hl = snprintf(hdr, sizeof(hdr), "Return-Path: <bench@scale.test>\r\n"
	    "Message-ID: <%s>\r\nDate: %s\r\nFrom: bench@scale.test\r\n"
	    "To: user%ld@scale.test\r\nSubject: scale push %s\r\n\r\n",
	    msgid, when, idx, msgid);
	if (hl < 0 || (size_t)hl >= sizeof(hdr))
		return -1;
	m = &a->msgs[a->nmsg];
	m->len = (size_t)hl + body_size;
	if ((m->data = malloc(m->len)) == NULL)
		return -1;
	memcpy(m->data, hdr, (size_t)hl);
	for (i = 0; i < body_size; i++)
		m->data[hl + i] = (i % 72 == 70) ? '\r' : (i % 72 == 71) ?
		    '\n' : (char)('a' + i % 26);
	if (body_size >= 2) {
		m->data[m->len - 2] = '\r';
		m->data[m->len - 1] = '\n';
	}
	a->nmsg++;
	LIST_FOREACH(s, &a->sessions, in_acct)
		if (s->state == S_IDLE)
			tell_exists(s);
	return a->nmsg;
}

static void
ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct evbuffer	*out = bufferevent_get_output(bev);
	char		*line;
	size_t		 n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		char	 id[256];
		long	 idx, uid;

		if (sscanf(line, "inject %ld %255s", &idx, id) == 2) {
			if (idx < 0 || idx >= naccts)
				evbuffer_add_printf(out, "err no account\n");
			else if ((uid = inject(idx, id)) < 0)
				evbuffer_add_printf(out, "err out of memory\n");
			else
				evbuffer_add_printf(out, "ok %ld\n", uid);
		} else if (strcmp(line, "drop") == 0) {
			unsigned long	 k = 0;
			struct session	*s;

			while ((s = LIST_FIRST(&all_sessions)) != NULL) {
				sess_free(s);
				k++;
			}
			evbuffer_add_printf(out, "ok %lu\n", k);
		} else if (strcmp(line, "stats") == 0) {
			evbuffer_add_printf(out, "ok sessions=%lu idling=%lu "
			    "handshaking=%lu handshake_peak=%lu logins=%lu "
			    "accepted=%lu accept_errors=%lu bodies=%llu\n",
			    n_sessions, n_idle, n_handshaking, hs_peak,
			    n_logins, n_accepted, n_accept_err,
			    n_fetch_bodies);
		} else if (strcmp(line, "peak-reset") == 0) {
			hs_peak = n_handshaking;
			evbuffer_add_printf(out, "ok\n");
		} else
			evbuffer_add_printf(out, "err unknown command\n");
		free(line);
	}
	if (evbuffer_get_length(in) > 4096)
		bufferevent_free(bev);
}

static void
ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void
ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_read_cb, NULL, ctl_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
stop_cb(evutil_socket_t sig, short ev, void *arg)
{
	event_base_loopexit(base, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: imapd -n ACCOUNTS -C CONTROL_SOCKET "
	    "-l ADDR:PORT [-l ...]\n\t[-c CERT -k KEY | -p] [-P PASSWORD] "
	    "[-s BODY_SIZE] [-t TLS13_TICKETS] [-v]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char	*listen_on[MAX_LISTEN], *cert = NULL, *key = NULL,
			*ctl_path = NULL;
	int		 nlisten = 0, plain = 0, ch, i;
	long		 tickets = -1;
	struct rlimit	 rl;
	struct sockaddr_un sun;
	struct event	*ev_term, *ev_int;

	while ((ch = getopt(argc, argv, "c:k:n:l:C:P:ps:t:v")) != -1) {
		switch (ch) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'n': naccts = strtol(optarg, NULL, 10); break;
		case 'l':
			if (nlisten == MAX_LISTEN)
				die("too many -l");
			listen_on[nlisten++] = optarg;
			break;
		case 'C': ctl_path = optarg; break;
		case 'P': password = optarg; break;
		case 'p': plain = 1; break;
		case 's': body_size = strtoul(optarg, NULL, 10); break;
		case 't': tickets = strtol(optarg, NULL, 10); break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (naccts <= 0 || naccts > MAX_ACCOUNTS || nlisten == 0 ||
	    ctl_path == NULL || (!plain && (cert == NULL || key == NULL)) ||
	    body_size > 10 * 1024 * 1024)
		usage();
	signal(SIGPIPE, SIG_IGN);
	/* Thousands of sessions: as many descriptors as we may have. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((accts = calloc((size_t)naccts, sizeof(*accts))) == NULL)
		die("out of memory");
	for (i = 0; i < naccts; i++)
		LIST_INIT(&accts[i].sessions);
	if (!plain) {
		if ((ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL)
			die("SSL_CTX_new failed");
		SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
		if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ssl_ctx, key,
		    SSL_FILETYPE_PEM) != 1)
			die("cannot load %s / %s", cert, key);
		if (tickets >= 0)
			SSL_CTX_set_num_tickets(ssl_ctx, (size_t)tickets);
	}
	if ((base = event_base_new()) == NULL)
		die("event_base_new failed");
	for (i = 0; i < nlisten; i++) {
		struct sockaddr_in sin;
		char	 addr[64], *colon;

		snprintf(addr, sizeof(addr), "%s", listen_on[i]);
		if ((colon = strrchr(addr, ':')) == NULL)
			die("-l %s: ADDR:PORT", listen_on[i]);
		*colon = '\0';
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)atoi(colon + 1));
		if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
			die("-l %s: bad address", listen_on[i]);
		struct evconnlistener *l = evconnlistener_new_bind(base,
		    accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
		    4096, (struct sockaddr *)&sin, sizeof(sin));
		if (l == NULL)
			die("cannot listen on %s: %s", listen_on[i],
			    strerror(errno));
		evconnlistener_set_error_cb(l, accept_error_cb);
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctl_path) >= sizeof(sun.sun_path))
		die("control socket path too long");
	strcpy(sun.sun_path, ctl_path);
	unlink(ctl_path);
	if (evconnlistener_new_bind(base, ctl_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 16, (struct sockaddr *)&sun,
	    sizeof(sun)) == NULL)
		die("cannot listen on %s: %s", ctl_path, strerror(errno));
	ev_term = evsignal_new(base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(base, SIGINT, stop_cb, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	fprintf(stderr, "imapd: %ld accounts, %d listeners, %s\n", naccts,
	    nlisten, plain ? "plain" : "implicit TLS");
	event_base_dispatch(base);
	unlink(ctl_path);
	return 0;
}
