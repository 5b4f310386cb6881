/* ISC licence; see LICENSE. */
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

uint64_t
sched_backoff_ms(enum err_class cls, unsigned n, unsigned min_s,
    unsigned max_s, sched_rng rng)
{
	uint64_t cap = (uint64_t)max_s * 1000;
	uint64_t d = (uint64_t)(min_s > 0 ? min_s : 1) * 1000;
	unsigned i;

	if (cls == ERR_AUTH)
		d *= 8;
	for (i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Jitter in [d/2, d]: retries of many accounts spread out. */
	return d / 2 + uniform(d / 2 + 1, rng);
}
