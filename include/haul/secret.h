/* ISC licence; see LICENSE. */
#ifndef HAUL_SECRET_H
#define HAUL_SECRET_H

#include "haul/buf.h"
#include "haul/config.h"

/* Largest password or bearer token accepted (OAuth tokens run to ~2 KiB). */
#define SECRET_MAX		8192
/* A password_command gets this long to print its token. */
#define SECRET_CMD_TIMEOUT	20

/*
 * Fetch the account's secret into out (a secret buffer: free it with
 * buf_free_secret): the first line of password_file, or the first line
 * that password_command (execve, no shell) prints.  The trailing newline
 * is removed.  Returns 0, or -1 with the reason logged for the account.
 */
int	 secret_get(const struct config_account *, struct buf *out);

/*
 * The same for password_command without blocking the event loop: the
 * command runs while every other account goes on.  done is called
 * exactly once, from the loop, with ok = 1 and the secret in out, or
 * ok = 0 (reason logged).  Returns NULL if nothing could be started
 * (logged; done is not called).
 */
struct event_base;
struct secret_req;
typedef void (*secret_done_fn)(void *arg, int ok);
struct secret_req *secret_fetch(struct event_base *,
		    const struct config_account *, struct buf *out,
		    secret_done_fn done, void *arg);
/* Kill the command and forget the request; done is not called. */
void	 secret_cancel(struct secret_req **);
/* A copy of a secret buffer (allocated once, wiped by buf_free_secret). */
void	 secret_copy(struct buf *dst, const struct buf *src);

#endif
