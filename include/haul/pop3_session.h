/* ISC licence; see LICENSE. */
#ifndef HAUL_POP3_SESSION_H
#define HAUL_POP3_SESSION_H

#include "haul/engine.h"

/*
 * One POP3 session of one account: connect, list, fetch into the spool,
 * hand each message to delivery, record acceptance, and DELE only what
 * the store holds durably as accepted.  It ends by calling
 * engine_session_done(); the engine then frees it.
 */
struct pop3_session;

/* Start a session for acct; -1 if it could not even start (logged). */
int	 pop3_session_start(struct account *acct);
/* The store committed: DELE what is now durable. */
void	 pop3_session_durable(struct pop3_session *);
/* The store failed: delete nothing more, end the session. */
void	 pop3_session_store_failed(struct pop3_session *);
/* Shut down: stop fetching, QUIT after in-flight deliveries resolve. */
void	 pop3_session_stop(struct pop3_session *);
void	 pop3_session_free(struct pop3_session **);
/* Reload: the account's (equal) settings now live at cf. */
void	 pop3_session_set_cf(struct pop3_session *,
	    const struct config_account *cf);

#endif
