/* ISC licence; see LICENSE. */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "haul/control.h"
#include "haul/engine.h"
#include "haul/listener.h"
#include "haul/log.h"
#include "haul/metrics_http.h"
#include "haul/xmalloc.h"

struct mclient {
	struct metrics_http	*mh;
	struct bufferevent	*bev;
	struct event		*deadline;	/* whole request and answer */
	TAILQ_ENTRY(mclient)	 entry;
};

struct metrics_http {
	struct engine		*eng;
	struct evconnlistener	*listener;
	struct listener_guard	*guard;
	unsigned		 clients;
	TAILQ_HEAD(, mclient)	 list;
};

/* Bytes allowed in a request line or header line: visible ASCII and SP. */
static int
line_ok(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e) {
			if (p[i] == '\t' && i > 0)
				continue;
			return 0;
		}
	return 1;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x, nothing else. */
static int
request_line(const char *p, size_t n, int *head_only)
{
	const char	*sp1, *sp2, *end = p + n;
	size_t		 mlen, tlen, vlen;

	if (n == 0 || !line_ok(p, n) || memchr(p, '\t', n) != NULL)
		return 400;
	if ((sp1 = memchr(p, ' ', n)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) == NULL ||
	    memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)) != NULL)
		return 400;
	mlen = (size_t)(sp1 - p);
	tlen = (size_t)(sp2 - sp1 - 1);
	vlen = (size_t)(end - sp2 - 1);
	if (mlen == 0 || tlen == 0 || vlen == 0 || sp1[1] != '/')
		return 400;
	if (vlen != 8 || (memcmp(sp2 + 1, "HTTP/1.0", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.1", 8) != 0))
		return vlen > 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0 ? 505 :
		    400;
	/* The path, without a query string (Prometheus adds none). */
	if (!(tlen == 8 && memcmp(sp1 + 1, "/metrics", 8) == 0) &&
	    !(tlen > 8 && memcmp(sp1 + 1, "/metrics?", 9) == 0))
		return 404;
	if (mlen == 3 && memcmp(p, "GET", 3) == 0)
		*head_only = 0;
	else if (mlen == 4 && memcmp(p, "HEAD", 4) == 0)
		*head_only = 1;
	else
		return 405;
	return 200;
}

int
metrics_http_parse(const char *data, size_t len, int *head_only)
{
	const char	*p = data, *nl, *end;
	size_t		 avail = len > METRICS_HTTP_HEAD_MAX ?
			    METRICS_HTTP_HEAD_MAX : len;
	size_t		 n;
	int		 status = 0, first = 1;

	*head_only = 0;
	end = data + avail;
	for (;;) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return len > METRICS_HTTP_HEAD_MAX ? 400 : 0;
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (first) {
			status = request_line(p, n, head_only);
			first = 0;
		} else if (n == 0) {
			return status;		/* the blank line: complete */
		} else if (status == 200 && (!line_ok(p, n) ||
		    memchr(p, ':', n) == NULL || p[0] == ' ' ||
		    p[0] == '\t' || p[0] == ':'))
			status = 400;
		p = nl + 1;
	}
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}

static void
client_free(struct mclient *c)
{
	c->mh->clients--;
	TAILQ_REMOVE(&c->mh->list, c, entry);
	if (c->deadline != NULL)
		event_free(c->deadline);
	bufferevent_free(c->bev);
	free(c);
}

/* A client that trickles its request (or reads no answer) is dropped. */
static void
client_expired(evutil_socket_t fd, short ev, void *arg)
{
	client_free(arg);
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	client_free(arg);
}

/* After the answer: whatever else the client sends is thrown away. */
static void
client_discard(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * The answer is out: half-close and read until the client closes (or the
 * deadline).  Closing with unread request bytes would make the kernel
 * send a reset, which can destroy the answer before the client read it.
 */
static void
client_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (shutdown(bufferevent_getfd(bev), SHUT_WR) == -1) {
		client_free(arg);
		return;
	}
	client_discard(bev, arg);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_setcb(bev, client_discard, NULL, client_event, arg);
	bufferevent_enable(bev, EV_READ);
}


/* Answer and close: one request per connection. */
static void
respond(struct mclient *c, int status, int head_only)
{
	struct buf	 body = BUF_INIT, head = BUF_INIT;

	if (status == 200)
		control_metrics(c->mh->eng, &body);
	else
		buf_addf(&body, "%d %s\n", status, reason(status));
	buf_addf(&head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
	    reason(status), status == 200 ?
	    "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
	    body.len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, client_written, client_event, c);
	bufferevent_write(c->bev, head.data, head.len);
	if (!head_only && body.len > 0)
		bufferevent_write(c->bev, body.data, body.len);
	buf_free(&head);
	buf_free(&body);
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct mclient	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 len = evbuffer_get_length(in);
	size_t		 take = len > METRICS_HTTP_HEAD_MAX + 1 ?
			    METRICS_HTTP_HEAD_MAX + 1 : len;
	unsigned char	*data;
	int		 status, head_only;

	/* Contiguous bytes of at most the cap (plus one to see it passed). */
	if ((data = evbuffer_pullup(in, (ev_ssize_t)take)) == NULL) {
		client_free(c);
		return;
	}
	status = metrics_http_parse((const char *)data, take, &head_only);
	if (status == 0)
		return;
	respond(c, status, head_only);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct metrics_http	*mh = arg;

	listener_guard_pause(mh->guard);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct metrics_http *mh = arg;
	struct mclient	*c;
	struct timeval	 tv = { METRICS_HTTP_TIMEOUT, 0 };

	if (mh->clients >= METRICS_HTTP_CLIENTS) {
		/* A scraper is at most one or two connections. */
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->mh = mh;
	if ((c->bev = bufferevent_socket_new(mh->eng->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		free(c);
		return;
	}
	mh->clients++;
	TAILQ_INSERT_TAIL(&mh->list, c, entry);
	bufferevent_setcb(c->bev, client_read, NULL, client_event, c);
	/* A deadline, not an idle timeout: a trickle does not extend it. */
	c->deadline = evtimer_new(mh->eng->base, client_expired, c);
	evtimer_add(c->deadline, &tv);
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    METRICS_HTTP_HEAD_MAX + 1);
	bufferevent_enable(c->bev, EV_READ);
}

/* "127.0.0.1:P", "localhost:P" or "[::1]:P" as a socket address. */
static int
parse_spec(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	const char		*colon = strrchr(spec, ':');
	char			*end;
	long			 port;

	if (colon == NULL)
		return -1;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "127.0.0.1:", 10) == 0 ||
	    strncmp(spec, "localhost:", 10) == 0) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*sin);
		return 0;
	}
	if (strncmp(spec, "[::1]:", 6) == 0) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

struct metrics_http *
metrics_http_new(struct engine *e, const char *spec)
{
	struct metrics_http	*mh;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;

	if (parse_spec(spec, &ss, &sslen) == -1) {
		log_warnx(NULL, "metrics_listen %s: not a loopback address "
		    "and port", spec);
		return NULL;
	}
	mh = xcalloc(1, sizeof(*mh));
	mh->eng = e;
	TAILQ_INIT(&mh->list);
	mh->listener = evconnlistener_new_bind(e->base, accept_cb, mh,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	    LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&ss, (int)sslen);
	if (mh->listener == NULL) {
		log_warn(NULL, "metrics_listen %s", spec);
		free(mh);
		return NULL;
	}
	mh->guard = listener_guard_new(e->base, mh->listener, "metrics_listen");
	evconnlistener_set_error_cb(mh->listener, accept_error_cb);
	log_info(NULL, "metrics on http://%s/metrics", spec);
	return mh;
}

void
metrics_http_free(struct metrics_http **mp)
{
	struct metrics_http *mh = *mp;

	if (mh == NULL)
		return;
	*mp = NULL;
	while (!TAILQ_EMPTY(&mh->list))
		client_free(TAILQ_FIRST(&mh->list));
	listener_guard_free(&mh->guard);
	evconnlistener_free(mh->listener);
	free(mh);
}
