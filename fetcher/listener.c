/* ISC licence; see LICENSE. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "haul/listener.h"
#include "haul/log.h"
#include "haul/xmalloc.h"

#define LISTENER_PAUSE_MS	1000

struct listener_guard {
	struct evconnlistener	*listener;
	struct event		*timer;
	char			*what;
};

static void
resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct listener_guard	*g = arg;

	evconnlistener_enable(g->listener);
}

void
listener_guard_pause(struct listener_guard *g)
{
	struct timeval		 tv = { LISTENER_PAUSE_MS / 1000,
				    (LISTENER_PAUSE_MS % 1000) * 1000 };
	int			 err = EVUTIL_SOCKET_ERROR();

	log_warnx(NULL, "%s: accept: %s; not accepting for %d ms", g->what,
	    strerror(err), LISTENER_PAUSE_MS);
	evconnlistener_disable(g->listener);
	evtimer_add(g->timer, &tv);
}

struct listener_guard *
listener_guard_new(struct event_base *base, struct evconnlistener *l,
    const char *what)
{
	struct listener_guard	*g = xcalloc(1, sizeof(*g));

	g->listener = l;
	g->what = xstrdup(what);
	g->timer = evtimer_new(base, resume_cb, g);
	return g;
}

void
listener_guard_free(struct listener_guard **gp)
{
	struct listener_guard	*g = *gp;

	if (g == NULL)
		return;
	*gp = NULL;
	event_free(g->timer);
	free(g->what);
	free(g);
}
