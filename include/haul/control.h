/* ISC licence; see LICENSE. */
#ifndef HAUL_CONTROL_H
#define HAUL_CONTROL_H

#include "haul/buf.h"

struct engine;
struct control;

/*
 * hauld's control socket: a unix socket (mode and group from the
 * configuration) that takes one command line per connection, answers and
 * closes.  Commands (also documented in haulctl(8)):
 *
 *	status		a table, one row per account
 *	status-json	the same as JSON
 *	fetch NAME	poll NAME now
 *	pause NAME	stop scheduling NAME (a running session finishes)
 *	resume NAME	schedule NAME again
 *	metrics		Prometheus text exposition
 *	reload		re-read the configuration (like SIGHUP); the body
 *			has the counts, or the errors if it was not taken
 *
 * The answer's first line is "ok" or "error: reason"; the body follows.
 */
#define CONTROL_LINE_MAX	512

struct control	*control_new(struct engine *, const char *path,
		    unsigned mode, const char *group);
void		 control_free(struct control **);

/*
 * Run one command and append the answer to out (used by the socket and
 * by the tests).  Returns 0, or -1 for an error answer.
 */
int		 control_command(struct engine *, const char *line,
		    struct buf *out);
/*
 * Append the Prometheus text exposition (the metrics command's body; the
 * HTTP listener serves the same).
 */
void		 control_metrics(struct engine *, struct buf *out);

#endif
