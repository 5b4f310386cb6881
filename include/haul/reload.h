/* ISC licence; see LICENSE. */
#ifndef HAUL_RELOAD_H
#define HAUL_RELOAD_H

#include <stddef.h>

#include "haul/buf.h"
#include "haul/config.h"

/*
 * Reloading hauld's configuration (SIGHUP, haulctl reload).  The new
 * file is loaded and checked off to the side; only if it is good is it
 * compared with the running one, account by account (by name):
 *
 *	kept	 every option equal: its sessions, IDLE connections,
 *		 timers, counters and state carry on untouched
 *	changed	 stopped like at shutdown, started again with the new
 *		 settings once the old session has ended
 *	removed	 stopped like at shutdown
 *	added	 started with a first poll spread over its interval
 *
 * The plan is a pure function so it can be tested without a daemon.
 */

enum reload_act {
	RELOAD_ADD,		/* no old account of that name */
	RELOAD_KEEP,		/* equal to old_of[i] */
	RELOAD_CHANGE,		/* differs from old_of[i] */
};

struct reload_plan {
	enum reload_act	*act;		/* per new account */
	size_t		*old_of;	/* per new account; KEEP and CHANGE */
	size_t		*removed;	/* old indexes without a new account */
	size_t		 nremoved;
	size_t		 nadded, nkept, nchanged;
};

/*
 * Match nnew new accounts against nold old ones by name (names are
 * unique within each side, as the loader guarantees).  O(n log n).
 */
void	 reload_plan(const struct config_account *old, size_t nold,
	    const struct config_account *new, size_t nnew,
	    struct reload_plan *);
void	 reload_plan_free(struct reload_plan *);

struct engine;
/*
 * Reload the engine's configuration file.  On success 0 and out gets
 * "N added, N removed, N changed, N unchanged"; on any error -1, the
 * running configuration is left alone, and out gets one line per error
 * (FILE:LINE: text).  Every error and the summary are also logged.
 */
int	 engine_reload(struct engine *, struct buf *out);

#endif
