/* ISC licence; see LICENSE. */
#ifndef HAUL_IMAP_SESSION_H
#define HAUL_IMAP_SESSION_H

#include "haul/engine.h"

/*
 * The IMAP side of one account: one connection per configured folder up
 * to max_connections (the last one also polls the folders left over, and
 * a wildcard entry is resolved by LIST and polled), each catching up by
 * UID, handing messages to delivery, acting on the server only after the
 * durable record, and then holding IDLE where the server offers it.
 * When every connection has ended, engine_session_done() is called.
 */
struct imap_account;

int	 imap_account_start(struct account *);
/* The store committed: act on what is now durable. */
void	 imap_account_durable(struct imap_account *);
/* The store failed: act on nothing more, end every connection. */
void	 imap_account_store_failed(struct imap_account *);
/* Shut down: leave IDLE, finish deliveries under way, LOGOUT. */
void	 imap_account_stop(struct imap_account *);
void	 imap_account_free(struct imap_account **);
/* Reload: the account's (equal) settings now live at cf. */
void	 imap_account_set_cf(struct imap_account *,
	    const struct config_account *cf);

#endif
