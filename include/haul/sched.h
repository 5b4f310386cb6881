/* ISC licence; see LICENSE. */
#ifndef HAUL_SCHED_H
#define HAUL_SCHED_H

#include <stdint.h>

#include "haul/proto.h"

/*
 * Pure scheduling arithmetic: when an account polls next.  No timers, no
 * I/O; the random source is passed in so tests are deterministic.
 */

/* A uniformly distributed 32-bit random number. */
typedef uint32_t (*sched_rng)(void);
uint32_t	 sched_rng_default(void);

/*
 * Delay before an account's first poll after start or reload: spread
 * uniformly over [0, min(interval, 60 s)) so a thousand accounts do not
 * connect in the same second.
 */
uint64_t	 sched_first_delay_ms(unsigned interval_s, sched_rng);

/* The next regular poll: interval +- 10 %, never below one second. */
uint64_t	 sched_next_delay_ms(unsigned interval_s, sched_rng);

/*
 * Backoff after the n-th consecutive failure (n >= 1) of class cls:
 * start * min * 2^(n-1), capped at the class's cap, then drawn in
 * [d/2, d] so the retries of many accounts spread out.  start is 8 for
 * refused credentials (a provider must not lock the account after a
 * burst of bad logins), 4 for TLS, 2 for protocol errors, else 1.  Seconds
 * in, milliseconds out.  A success resets n (the engine's count).
 */
uint64_t	 sched_backoff_ms(enum err_class cls, unsigned n,
		    unsigned min_s, unsigned max_s, sched_rng);

/*
 * The class's cap: max_s, but at most 15 minutes for a busy server
 * (ERR_TEMP) and 5 for a failing MTA or local resource, which tend to
 * come back soon while mail waits on the server.  Milliseconds.
 */
uint64_t	 sched_backoff_cap_ms(enum err_class cls, unsigned max_s);

/* 1 if a failure of this class is an operator alert (ERR_AUTH only). */
int		 sched_alerts(enum err_class cls);

/*
 * POP3 LOGIN-DELAY (RFC 2449): the server allows a login only every
 * login_delay_s seconds, so no next session is scheduled sooner.
 */
uint64_t	 sched_login_delay_ms(uint64_t delay_ms, unsigned login_delay_s);

/*
 * The delay before an account's next session, once one ended with cls
 * (ERR_NONE: success).  *failures counts failures in a row: a success
 * resets it, a failure adds one and backs off by class; a configuration
 * error waits max_s.  Never sooner than the server's LOGIN-DELAY.
 */
uint64_t	 sched_after_session(enum err_class cls, unsigned *failures,
		    unsigned interval_s, unsigned min_s, unsigned max_s,
		    unsigned login_delay_s, sched_rng);

/*
 * The per-host session cap (max_connections_per_host), shared by every
 * account on one server host: *active sessions log in or fetch there.
 * Returns 1 and counts one more if the host is under cap; else 0 and
 * *wait_ms, when to ask again (200..999 ms at random: being at the cap is
 * not a failure and costs no backoff).  sched_host_leave() gives the slot
 * back.
 */
int		 sched_host_admit(unsigned *active, unsigned cap,
		    uint64_t *wait_ms, sched_rng);
void		 sched_host_leave(unsigned *active);

#endif
