/* ISC licence; see LICENSE. */
#include <limits.h>
#include <stdlib.h>

#include "haul/sched.h"

uint32_t
sched_rng_default(void)
{
	return arc4random();
}

/* A uniform value in [0, n) from one 32-bit draw (n <= 2^32). */
static uint64_t
uniform(uint64_t n, sched_rng rng)
{
	if (n == 0)
		return 0;
	return ((uint64_t)rng() * n) >> 32;
}

uint64_t
sched_first_delay_ms(unsigned interval_s, sched_rng rng)
{
	uint64_t span = (uint64_t)interval_s * 1000;

	if (span > 60000)
		span = 60000;
	return uniform(span, rng);
}

uint64_t
sched_next_delay_ms(unsigned interval_s, sched_rng rng)
{
	uint64_t base = (uint64_t)interval_s * 1000;
	uint64_t spread = base / 5;		/* +- 10 % */
	uint64_t d = base - spread / 2 + uniform(spread + 1, rng);

	return d < 1000 ? 1000 : d;
}

/*
 * Per error class: where the backoff starts (a multiple of retry_min) and
 * where it stops (at most retry_max).  A network blip or a busy server
 * clears up by itself, so those retry soonest; a failing local MTA is
 * retried within minutes, since mail waits on the server meanwhile; TLS
 * and protocol failures rarely fix themselves in a minute; refused
 * credentials start high, because every retry with a wrong password
 * brings the provider closer to locking the account.
 */
static const struct {
	enum err_class	 cls;
	unsigned	 start;		/* x retry_min */
	unsigned	 cap_s;		/* 0: retry_max */
} policy[] = {
	{ ERR_NETWORK,	1, 0 },
	{ ERR_TLS,	4, 0 },
	{ ERR_PROTOCOL,	2, 0 },
	{ ERR_AUTH,	8, 0 },
	{ ERR_TEMP,	1, 900 },
	{ ERR_MTA,	1, 300 },
	{ ERR_CONFIG,	1, 0 },
	{ ERR_LOCAL,	1, 300 },
};

static unsigned
class_start(enum err_class cls)
{
	size_t	 i;

	for (i = 0; i < sizeof(policy) / sizeof(policy[0]); i++)
		if (policy[i].cls == cls)
			return policy[i].start;
	return 1;
}

uint64_t
sched_backoff_cap_ms(enum err_class cls, unsigned max_s)
{
	uint64_t cap = (uint64_t)max_s * 1000;
	size_t	 i;

	for (i = 0; i < sizeof(policy) / sizeof(policy[0]); i++)
		if (policy[i].cls == cls && policy[i].cap_s != 0 &&
		    (uint64_t)policy[i].cap_s * 1000 < cap)
			cap = (uint64_t)policy[i].cap_s * 1000;
	return cap;
}

uint64_t
sched_backoff_ms(enum err_class cls, unsigned n, unsigned min_s,
    unsigned max_s, sched_rng rng)
{
	uint64_t cap = sched_backoff_cap_ms(cls, max_s);
	uint64_t d = (uint64_t)(min_s > 0 ? min_s : 1) * 1000;
	unsigned i;

	d *= class_start(cls);
	for (i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Jitter in [d/2, d]: retries of many accounts spread out. */
	return d / 2 + uniform(d / 2 + 1, rng);
}

int
sched_alerts(enum err_class cls)
{
	return cls == ERR_AUTH;
}

uint64_t
sched_login_delay_ms(uint64_t delay_ms, unsigned login_delay_s)
{
	uint64_t floor = (uint64_t)login_delay_s * 1000;

	return delay_ms < floor ? floor : delay_ms;
}

uint64_t
sched_after_session(enum err_class cls, unsigned *failures,
    unsigned interval_s, unsigned min_s, unsigned max_s,
    unsigned login_delay_s, sched_rng rng)
{
	uint64_t d;

	if (cls == ERR_NONE) {
		*failures = 0;
		d = sched_next_delay_ms(interval_s, rng);
	} else {
		if (*failures < UINT_MAX)
			(*failures)++;
		/* Fixing the configuration takes a person: no hurry. */
		if (cls == ERR_CONFIG)
			d = (uint64_t)max_s * 1000;
		else
			d = sched_backoff_ms(cls, *failures, min_s, max_s, rng);
	}
	return sched_login_delay_ms(d, login_delay_s);
}

int
sched_host_admit(unsigned *active, unsigned cap, uint64_t *wait_ms,
    sched_rng rng)
{
	if (*active >= cap) {
		/* Jitter, so the accounts waiting do not all retry at once. */
		*wait_ms = 200 + uniform(800, rng);
		return 0;
	}
	(*active)++;
	*wait_ms = 0;
	return 1;
}

void
sched_host_leave(unsigned *active)
{
	if (*active > 0)
		(*active)--;
}
