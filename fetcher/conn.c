/* ISC licence; see LICENSE. */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <openssl/err.h>

#include "haul/buf.h"
#include "haul/conn.h"
#include "haul/log.h"
#include "haul/tls.h"
#include "haul/tlsgate.h"
#include "haul/xmalloc.h"

/* The longest failure reason passed to the owner (with the NUL). */
#define CONN_WHY_MAX		512

/* Refill the output when less than this is queued (body streaming). */
#define CONN_WRITE_LOWAT	(64 * 1024)

enum conn_state {
	CS_CONNECTING,		/* DNS and TCP */
	CS_TLS_WAIT,		/* connected, waiting for a handshake slot */
	CS_HANDSHAKE,		/* TLS handshake in progress */
	CS_OPEN,
	CS_DEAD,
};

struct conn {
	struct event_base	*base;
	struct bufferevent	*bev;
	SSL			*ssl;
	enum conn_state		 state;
	int			 tls;		/* implicit, or STARTTLS begun */
	int			 starttls;	/* the handshake is an upgrade */
	unsigned		 connect_timeout;
	struct tls_gate_waiter	 gate_slot;
	char			*account;
	char			*host;
	char			*unix_path;
	unsigned		 port;
	char			*ca_file;
	char			*fingerprint;
	int			 keepalive;
	unsigned		 idle_timeout;
	struct event		*deadline;
	int			 progress_armed;
	size_t			 progress;	/* bytes since it was armed */
	struct event		*kick;		/* defers failures to the loop */
	enum err_class		 fail_class;
	char			*fail_why;	/* once dead: CONN_WHY_MAX */
	char			*peer;		/* host:port for messages */
	const struct conn_cb	*cb;
	void			*arg;
};

static struct evdns_base *dns_base;

/*
 * max_tls_handshakes, for the whole loop.  The slot is taken once TCP is
 * up (a server that never answers the SYN holds none) and given back when
 * the handshake ends either way or the connection goes.
 */
static struct tls_gate tls_gate = {
	.limit = 64,
	.queue = TAILQ_HEAD_INITIALIZER(tls_gate.queue),
};

static void	conn_fail(struct conn *, enum err_class, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

static void	tls_wait(struct conn *);
static void	tls_begin(struct conn *);
static SSL	*make_ssl(struct conn *);

void
conn_set_dns(struct evdns_base *dns)
{
	dns_base = dns;
}

void
conn_set_tls_limit(unsigned n)
{
	tls_gate_set_limit(&tls_gate, n);
}

void
conn_tls_gate_stats(unsigned *active, size_t *waiting, uint64_t *queued)
{
	*active = tls_gate.active;
	*waiting = tls_gate.waiting;
	*queued = tls_gate.queued;
}

/* The deferred event: a failure to report, or a handshake slot to use. */
static void
kick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CS_DEAD)
		c->cb->failed(c, c->arg, c->fail_class, c->fail_why);
	else if (c->state == CS_TLS_WAIT && c->gate_slot.state == TG_ACTIVE)
		tls_begin(c);
}

/*
 * Called from inside tls_gate_release() (some other connection's
 * callback): never start the handshake there, only from the loop.
 */
static void
gate_go(void *arg)
{
	struct conn	*c = arg;

	event_active(c->kick, EV_TIMEOUT, 0);
}

/* Mark the connection dead and report it from the loop. */
static void
conn_fail(struct conn *c, enum err_class cls, const char *fmt, ...)
{
	va_list	 ap;

	if (c->state == CS_DEAD)
		return;
	c->state = CS_DEAD;
	c->fail_class = cls;
	va_start(ap, fmt);
	/* Allocated only now: thousands of healthy connections need none. */
	c->fail_why = xmalloc(CONN_WHY_MAX);
	vsnprintf(c->fail_why, CONN_WHY_MAX, fmt, ap);
	va_end(ap);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->deadline != NULL)
		evtimer_del(c->deadline);
	tls_gate_release(&tls_gate, &c->gate_slot);
	event_active(c->kick, EV_TIMEOUT, 0);
}

static void
set_sockopts(struct conn *c)
{
	evutil_socket_t	 fd;
	int		 one = 1;

	if (c->bev == NULL || (fd = bufferevent_getfd(c->bev)) < 0)
		return;
	if (c->unix_path != NULL)
		return;
	/* Whole commands are written at once; never wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->keepalive > 0) {
		int	 idle = c->keepalive, intvl = c->keepalive / 3 + 1,
			 cnt = 3;

		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
		    sizeof(intvl));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
}

static void
apply_timeouts(struct conn *c)
{
	struct timeval	 tv;

	if (c->bev == NULL)
		return;
	if (c->idle_timeout == 0) {
		bufferevent_set_timeouts(c->bev, NULL, NULL);
		return;
	}
	tv.tv_sec = c->idle_timeout;
	tv.tv_usec = 0;
	/* The same bound for a server that stops reading (zero window). */
	bufferevent_set_timeouts(c->bev, &tv, &tv);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CS_OPEN)
		c->cb->readable(c, c->arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->state == CS_OPEN && c->cb->writable != NULL)
		c->cb->writable(c, c->arg);
}

/* After a TLS handshake: verification result and the optional pin. */
static int
check_tls(struct conn *c)
{
	struct buf	 err = BUF_INIT;

	if (tls_check_peer(c->ssl, c->fingerprint, &err) == -1) {
		conn_fail(c, ERR_TLS, "%s: %s", c->peer, err.data);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	return 0;
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;
	enum conn_state	 was = c->state;

	if (c->state == CS_DEAD)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (was == CS_CONNECTING) {
			set_sockopts(c);
			/* TCP is up; implicit TLS queues for its handshake. */
			if (c->tls) {
				tls_wait(c);
				return;
			}
		} else if (c->ssl != NULL && check_tls(c) == -1)
			return;
		tls_gate_release(&tls_gate, &c->gate_slot);
		evtimer_del(c->deadline);
		c->state = CS_OPEN;
		apply_timeouts(c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		if (was == CS_HANDSHAKE && c->starttls)
			c->cb->tls_ready(c, c->arg);
		else
			c->cb->ready(c, c->arg);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_fail(c, ERR_NETWORK, "%s: timed out waiting for the "
		    "server", c->peer);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long	 e = bufferevent_get_openssl_error(bev);
		int		 dnserr = bufferevent_socket_get_dns_error(bev);
		int		 serr = EVUTIL_SOCKET_ERROR();

		if (dnserr != 0) {
			conn_fail(c, ERR_NETWORK, "%s: cannot resolve: %s",
			    c->peer, evutil_gai_strerror(dnserr));
			return;
		}
		/*
		 * A refused or unreachable peer is a network error even
		 * under implicit TLS, where libevent reports it through the
		 * TLS layer (as a "system library" error).
		 */
		log_debug(c->account, "conn error in state %d: ssl=%lu "
		    "errno=%d", (int)was, e, serr);
		if ((e == 0 || e == SSL_ERROR_SYSCALL ||
		    ERR_GET_LIB(e) == ERR_LIB_SYS) &&
		    (serr == ECONNREFUSED || serr == ECONNRESET ||
		    serr == ETIMEDOUT || serr == EHOSTUNREACH ||
		    serr == ENETUNREACH || serr == EPIPE)) {
			conn_fail(c, ERR_NETWORK, "%s: %s", c->peer,
			    strerror(serr));
			return;
		}
		if (c->ssl != NULL && was == CS_OPEN) {
			char	 s[256];

			/* Mid-session: a truncated or broken stream, not a
			 * handshake problem. */
			ERR_error_string_n(e, s, sizeof(s));
			conn_fail(c, ERR_NETWORK, "%s: connection lost: %s",
			    c->peer, e != 0 ? s : "TLS stream ended");
			return;
		}
		if (c->ssl != NULL) {
			struct buf	 why = BUF_INIT;

			tls_describe_failure(c->ssl, e, &why);
			conn_fail(c, ERR_TLS, "%s: %s", c->peer, why.data);
			buf_free(&why);
			return;
		}
		conn_fail(c, ERR_NETWORK, "%s: %s", c->peer,
		    errno != 0 ? strerror(errno) : "connection error");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_fail(c, was == CS_OPEN ? ERR_NETWORK : ERR_TLS,
		    "%s: connection closed by the peer", c->peer);
		return;
	}
}

static void
deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct conn	*c = arg;

	conn_fail(c, c->state == CS_OPEN ? ERR_NETWORK :
	    (c->ssl != NULL ? ERR_TLS : ERR_NETWORK),
	    "%s: deadline passed (%s timed out)", c->peer,
	    c->state == CS_CONNECTING ? "connecting" :
	    c->state == CS_HANDSHAKE ? "TLS handshake" : "operation");
}

/*
 * Queue for a handshake slot (max_tls_handshakes).  The wait is not the
 * server's doing, so no deadline runs while it lasts: connect_timeout
 * bounded DNS + TCP and bounds the handshake again once it starts.  The
 * wait itself ends because every slot holder is bounded the same way.
 * Nothing is read meanwhile: any byte the server sends early reaches the
 * handshake, which fails on it.
 */
static void
tls_wait(struct conn *c)
{
	c->state = CS_TLS_WAIT;
	evtimer_del(c->deadline);
	c->progress_armed = 0;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (tls_gate_acquire(&tls_gate, &c->gate_slot, gate_go, c))
		tls_begin(c);
	else
		log_debug(c->account, "%s: waiting for a TLS handshake slot "
		    "(%zu waiting, %u in progress)", c->peer, tls_gate.waiting,
		    tls_gate.active);
}

/*
 * Holding a slot: start the handshake.  The TLS bufferevent takes over
 * the plain one's socket (one bufferevent per connection, lighter than a
 * filter stacked on the plain one: it matters with thousands idling).
 */
static void
tls_begin(struct conn *c)
{
	struct bufferevent *tb;
	struct timeval	 tv;
	evutil_socket_t	 fd;

	/* Bytes from before our handshake could have been injected. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) != 0) {
		conn_fail(c, ERR_TLS, "%s: data arrived between the STARTTLS "
		    "reply and the handshake (possible injection)", c->peer);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) != 0) {
		conn_fail(c, ERR_LOCAL, "%s: unsent data before the TLS "
		    "handshake", c->peer);
		return;
	}
	if ((c->ssl = make_ssl(c)) == NULL) {
		conn_fail(c, ERR_TLS, "%s: cannot set up TLS", c->peer);
		return;
	}
	fd = bufferevent_getfd(c->bev);
	tb = bufferevent_openssl_socket_new(c->base, fd, c->ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		conn_fail(c, ERR_TLS, "%s: cannot start TLS", c->peer);
		return;
	}
	/* Detach the socket so freeing the plain bufferevent keeps it. */
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = tb;
	c->state = CS_HANDSHAKE;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_WRITE_LOWAT, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	tv.tv_sec = c->connect_timeout;
	tv.tv_usec = 0;
	evtimer_add(c->deadline, &tv);
}

static SSL *
make_ssl(struct conn *c)
{
	struct buf	 err = BUF_INIT;
	SSL_CTX		*ctx;
	SSL		*ssl = NULL;

	if ((ctx = tls_client_ctx(c->ca_file, &err)) != NULL)
		ssl = tls_client_ssl(ctx, c->host, &err);
	if (ssl == NULL)
		log_warnx(c->account, "%s: %s", c->peer, err.data);
	buf_free(&err);
	return ssl;
}

struct conn *
conn_new(struct event_base *base, const struct conn_params *p,
    const struct conn_cb *cb, void *arg)
{
	struct conn	*c;
	struct timeval	 tv;
	int		 opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	c->account = p->account != NULL ? xstrdup(p->account) : NULL;
	c->host = p->host != NULL ? xstrdup(p->host) : NULL;
	c->unix_path = p->unix_path != NULL ? xstrdup(p->unix_path) : NULL;
	c->port = p->port;
	c->ca_file = p->ca_file != NULL ? xstrdup(p->ca_file) : NULL;
	c->fingerprint = p->fingerprint != NULL ? xstrdup(p->fingerprint) :
	    NULL;
	c->keepalive = p->keepalive;
	c->connect_timeout = p->connect_timeout > 0 ? p->connect_timeout : 30;
	c->state = CS_CONNECTING;
	if (c->unix_path != NULL)
		xasprintf(&c->peer, "unix:%s", c->unix_path);
	else
		xasprintf(&c->peer, "%s:%u", c->host, c->port);
	c->kick = event_new(base, -1, 0, kick_cb, c);
	c->deadline = evtimer_new(base, deadline_cb, c);

	if (p->tls && c->unix_path == NULL) {
		struct buf	 err = BUF_INIT;

		/*
		 * TCP first, TLS once a handshake slot is free; a CA file
		 * that cannot be loaded fails here, not on every connect.
		 */
		if (tls_client_ctx(c->ca_file, &err) == NULL) {
			log_warnx(c->account, "%s: %s", c->peer, err.data);
			buf_free(&err);
			goto fail;
		}
		buf_free(&err);
		c->tls = 1;
	}
	if ((c->bev = bufferevent_socket_new(base, -1, opts)) == NULL)
		goto fail;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_WRITE_LOWAT, 0);

	tv.tv_sec = c->connect_timeout;
	tv.tv_usec = 0;
	evtimer_add(c->deadline, &tv);

	if (c->unix_path != NULL) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(c->unix_path) >= sizeof(sun.sun_path)) {
			log_warnx(c->account, "unix socket path too long: %s",
			    c->unix_path);
			goto fail;
		}
		strcpy(sun.sun_path, c->unix_path);
		if (bufferevent_socket_connect(c->bev,
		    (struct sockaddr *)&sun, sizeof(sun)) == -1)
			conn_fail(c, ERR_NETWORK, "%s: %s", c->peer,
			    strerror(errno));
	} else if (bufferevent_socket_connect_hostname(c->bev, dns_base,
	    AF_UNSPEC, c->host, (int)c->port) == -1)
		conn_fail(c, ERR_NETWORK, "%s: cannot connect", c->peer);
	return c;
fail:
	conn_free(&c);
	return NULL;
}

void
conn_free(struct conn **cp)
{
	struct conn	*c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	tls_gate_release(&tls_gate, &c->gate_slot);
	if (c->bev != NULL)
		bufferevent_free(c->bev);	/* frees the SSL too */
	else if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->deadline != NULL)
		event_free(c->deadline);
	if (c->kick != NULL)
		event_free(c->kick);
	free(c->account);
	free(c->host);
	free(c->unix_path);
	free(c->ca_file);
	free(c->fingerprint);
	free(c->peer);
	free(c->fail_why);
	free(c);
}

struct evbuffer *
conn_input(struct conn *c)
{
	return bufferevent_get_input(c->bev);
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->state == CS_DEAD)
		return -1;
	return bufferevent_write(c->bev, p, n);
}

int
conn_write_buffer(struct conn *c, struct evbuffer *b)
{
	if (c->state == CS_DEAD)
		return -1;
	return bufferevent_write_buffer(c->bev, b);
}

size_t
conn_output_pending(struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

int
conn_starttls(struct conn *c)
{
	if (c->state != CS_OPEN || c->ssl != NULL)
		return -1;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) != 0) {
		conn_fail(c, ERR_TLS, "%s: data arrived between the STARTTLS "
		    "reply and the handshake (possible injection)", c->peer);
		return -1;
	}
	c->tls = 1;
	c->starttls = 1;
	/* Through the same gate as implicit TLS; tls_ready when done. */
	tls_wait(c);
	return c->state == CS_DEAD ? -1 : 0;
}

int
conn_tls_active(const struct conn *c)
{
	return c->tls && c->state == CS_OPEN;
}

void
conn_set_idle_timeout(struct conn *c, unsigned secs)
{
	/*
	 * Sessions call this after every flush; re-arming unchanged
	 * timeouts costs an event_del/event_add pair each time, which adds
	 * up over thousands of idling connections.  libevent restarts the
	 * read timeout on every read anyway.
	 */
	if (secs == c->idle_timeout)
		return;
	c->idle_timeout = secs;
	if (c->state == CS_OPEN)
		apply_timeouts(c);
}

void
conn_set_deadline(struct conn *c, unsigned secs)
{
	struct timeval	 tv;

	if (c->state == CS_DEAD)
		return;
	tv.tv_sec = secs;
	tv.tv_usec = 0;
	evtimer_add(c->deadline, &tv);
}

void
conn_clear_deadline(struct conn *c)
{
	if (c->state == CS_OPEN)
		evtimer_del(c->deadline);
}

const char *
conn_peer(const struct conn *c)
{
	return c->peer;
}

void
conn_track_progress(struct conn *c, int waiting, size_t got, unsigned secs)
{
	if (c->state != CS_OPEN)
		return;
	if (!waiting) {
		if (c->progress_armed)
			evtimer_del(c->deadline);
		c->progress_armed = 0;
		return;
	}
	c->progress += got;
	if (!c->progress_armed || c->progress >= CONN_PROGRESS_MIN) {
		conn_set_deadline(c, secs);
		c->progress_armed = 1;
		c->progress = 0;
	}
}

enum proto_status
conn_feed(struct conn *c, conn_feed_fn fn, void *machine)
{
	struct evbuffer	*in = conn_input(c);
	enum proto_status st = PS_MORE;
	size_t		 used;

	while (evbuffer_get_length(in) > 0) {
		size_t	 n = evbuffer_get_contiguous_space(in);
		unsigned char *d = evbuffer_pullup(in, (ev_ssize_t)n);

		used = 0;
		st = fn(machine, d, n, &used);
		evbuffer_drain(in, used);
		if (st != PS_MORE)
			break;
	}
	return st;
}
