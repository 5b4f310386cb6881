/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include "haul/sched.h"

static uint32_t fixed_value;

static uint32_t
rng_fixed(void)
{
	return fixed_value;
}

static uint32_t lcg_state = 12345;

static uint32_t
rng_lcg(void)
{
	lcg_state = lcg_state * 1664525u + 1013904223u;
	return lcg_state;
}

Test(sched, first_delay_spread_bounded)
{
	fixed_value = 0;
	cr_assert_eq(sched_first_delay_ms(300, rng_fixed), 0);
	fixed_value = UINT32_MAX;
	cr_assert_lt(sched_first_delay_ms(300, rng_fixed), 60000);
	cr_assert_geq(sched_first_delay_ms(300, rng_fixed), 59990);
	cr_assert_lt(sched_first_delay_ms(10, rng_fixed), 10000);
}

Test(sched, first_delay_is_spread_not_herded)
{
	unsigned buckets[10] = { 0 }, i;

	for (i = 0; i < 10000; i++)
		buckets[sched_first_delay_ms(600, rng_lcg) / 6000]++;
	/* Uniform over 60 s: each 6-s bucket near 1000, none empty. */
	for (i = 0; i < 10; i++) {
		cr_assert_gt(buckets[i], 800, "bucket %u: %u", i, buckets[i]);
		cr_assert_lt(buckets[i], 1200, "bucket %u: %u", i, buckets[i]);
	}
}

Test(sched, next_delay_within_ten_percent)
{
	fixed_value = 0;
	cr_assert_eq(sched_next_delay_ms(300, rng_fixed), 270000);
	fixed_value = UINT32_MAX;
	cr_assert_eq(sched_next_delay_ms(300, rng_fixed), 330000);
	fixed_value = 0;
	cr_assert_eq(sched_next_delay_ms(0, rng_fixed), 1000);
}

Test(sched, backoff_doubles_and_caps)
{
	fixed_value = UINT32_MAX;	/* top of the jitter range */
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 1, 60, 3600, rng_fixed),
	    60000);
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 2, 60, 3600, rng_fixed),
	    120000);
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 6, 60, 3600, rng_fixed),
	    1920000);
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 7, 60, 3600, rng_fixed),
	    3600000);
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 500, 60, 3600, rng_fixed),
	    3600000);
	fixed_value = 0;		/* bottom: half */
	cr_assert_eq(sched_backoff_ms(ERR_NETWORK, 1, 60, 3600, rng_fixed),
	    30000);
}

Test(sched, auth_failures_back_off_harder)
{
	fixed_value = UINT32_MAX;
	cr_assert_eq(sched_backoff_ms(ERR_AUTH, 1, 60, 3600, rng_fixed),
	    480000);
	cr_assert_gt(sched_backoff_ms(ERR_AUTH, 1, 60, 3600, rng_fixed),
	    sched_backoff_ms(ERR_TEMP, 1, 60, 3600, rng_fixed));
}
