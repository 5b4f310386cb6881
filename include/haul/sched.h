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
 * min * 2^(n-1), capped at max ("full jitter" in [cap/2, cap]).
 * Credential failures start at 8 * min so a provider does not lock the
 * account after a burst of bad logins.  Seconds in, milliseconds out.
 */
uint64_t	 sched_backoff_ms(enum err_class cls, unsigned n,
		    unsigned min_s, unsigned max_s, sched_rng);

#endif
