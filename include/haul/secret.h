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

#endif
