/* ISC licence; see LICENSE. */
#ifndef HAUL_LISTENER_H
#define HAUL_LISTENER_H

#include <event2/event.h>
#include <event2/listener.h>

/*
 * When accept fails (EMFILE, ENFILE, ENOBUFS), the pending connection
 * keeps the listening socket readable and libevent would retry at once,
 * forever: the loop spins.  A guard disables the listener on an accept
 * error and enables it again a second later, logging once per pause.
 * The owner's libevent error callback (which gets the owner's argument)
 * calls listener_guard_pause().
 */
struct listener_guard;

struct listener_guard *listener_guard_new(struct event_base *,
		    struct evconnlistener *, const char *what);
void		 listener_guard_pause(struct listener_guard *);
/* Free the guard (before the listener). */
void		 listener_guard_free(struct listener_guard **);

#endif
