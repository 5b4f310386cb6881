/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include <string.h>

#include "haul/clock.h"
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

/* A good deterministic generator (splitmix64), so the statistics below
 * test the scheduler's arithmetic, not a weak test RNG. */
static uint64_t sm_state;

static uint32_t
rng_splitmix(void)
{
	uint64_t z = (sm_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/*
 * Pearson's chi-square of counts against a uniform expectation.  With 20
 * buckets (19 degrees of freedom) a uniform sample stays below 43.8 in
 * 999 of 1000 cases; a herd (say, half the accounts in the first second)
 * is in the thousands.
 */
static double
chi_square(const unsigned *counts, unsigned nb, unsigned total)
{
	double	 expect = (double)total / nb, x = 0;
	unsigned i;

	for (i = 0; i < nb; i++)
		x += ((double)counts[i] - expect) * ((double)counts[i] - expect) /
		    expect;
	return x;
}

Test(sched, first_polls_of_10000_accounts_are_uniform)
{
	static const unsigned intervals[] = { 30, 60, 300, 3600 };
	unsigned counts[20], i, k;
	uint64_t span, d;

	for (k = 0; k < sizeof(intervals) / sizeof(intervals[0]); k++) {
		span = intervals[k] < 60 ? intervals[k] * 1000ULL : 60000;
		memset(counts, 0, sizeof(counts));
		sm_state = 42 + k;
		for (i = 0; i < 10000; i++) {
			d = sched_first_delay_ms(intervals[k], rng_splitmix);
			cr_assert_lt(d, span);
			counts[d * 20 / span]++;
		}
		cr_assert_lt(chi_square(counts, 20, 10000), 43.8,
		    "interval %u: chi-square %.1f", intervals[k],
		    chi_square(counts, 20, 10000));
	}
	/* The check has teeth: a herd in the first second fails it. */
	memset(counts, 0, sizeof(counts));
	for (i = 0; i < 10000; i++)
		counts[i < 5000 ? 0 : i % 20]++;
	cr_assert_gt(chi_square(counts, 20, 10000), 1000);
}

Test(sched, next_polls_spread_over_plus_minus_ten_percent)
{
	unsigned counts[20] = { 0 }, i;
	uint64_t d, lo = UINT64_MAX, hi = 0;
	double	 sum = 0;

	sm_state = 7;
	for (i = 0; i < 10000; i++) {
		d = sched_next_delay_ms(300, rng_splitmix);
		cr_assert_geq(d, 270000);
		cr_assert_leq(d, 330000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		sum += (double)d;
		counts[(d - 270000) * 20 / 60001]++;
	}
	/* The whole range is used, evenly, around the interval. */
	cr_assert_lt(lo, 271000);
	cr_assert_gt(hi, 329000);
	cr_assert_lt(chi_square(counts, 20, 10000), 43.8);
	cr_assert_lt(sum / 10000 - 300000, 1000);
	cr_assert_gt(sum / 10000 - 300000, -1000);
}

Test(sched, backoff_start_and_cap_per_class)
{
	static const struct {
		enum err_class	 cls;
		uint64_t	 first_ms;	/* n = 1, top of the jitter */
		uint64_t	 cap_ms;	/* retry_max 3600 */
	} t[] = {
		{ ERR_NETWORK,	 60000, 3600000 },
		{ ERR_TLS,	240000, 3600000 },
		{ ERR_PROTOCOL,	120000, 3600000 },
		{ ERR_AUTH,	480000, 3600000 },
		{ ERR_TEMP,	 60000,  900000 },
		{ ERR_MTA,	 60000,  300000 },
		{ ERR_LOCAL,	 60000,  300000 },
	};
	size_t	 i;
	unsigned n;
	uint64_t prev, d;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		fixed_value = UINT32_MAX;
		cr_assert_eq(sched_backoff_ms(t[i].cls, 1, 60, 3600,
		    rng_fixed), t[i].first_ms, "%s", err_class_name(t[i].cls));
		cr_assert_eq(sched_backoff_cap_ms(t[i].cls, 3600), t[i].cap_ms);
		/* Doubles until the cap, then stays there. */
		prev = 0;
		for (n = 1; n < 40; n++) {
			d = sched_backoff_ms(t[i].cls, n, 60, 3600, rng_fixed);
			cr_assert(d == t[i].cap_ms || d == 2 * prev || n == 1,
			    "%s n=%u: %llu after %llu", err_class_name(t[i].cls),
			    n, (unsigned long long)d, (unsigned long long)prev);
			cr_assert_leq(d, t[i].cap_ms);
			prev = d;
		}
		cr_assert_eq(prev, t[i].cap_ms);
		/* The jitter's floor is half the cap. */
		fixed_value = 0;
		cr_assert_eq(sched_backoff_ms(t[i].cls, 1000, 60, 3600,
		    rng_fixed), t[i].cap_ms / 2);
		/* A smaller retry_max wins over the class cap. */
		cr_assert_eq(sched_backoff_cap_ms(t[i].cls, 120), 120000);
	}
}

Test(sched, backoff_jitter_spreads_retries)
{
	unsigned counts[20] = { 0 }, i;
	uint64_t d;

	sm_state = 99;
	for (i = 0; i < 10000; i++) {
		d = sched_backoff_ms(ERR_NETWORK, 50, 60, 3600, rng_splitmix);
		cr_assert_geq(d, 1800000);
		cr_assert_leq(d, 3600000);
		counts[(d - 1800000) * 20 / 1800001]++;
	}
	cr_assert_lt(chi_square(counts, 20, 10000), 43.8);
}

Test(sched, success_resets_the_backoff)
{
	unsigned failures = 0;
	uint64_t d;

	fixed_value = UINT32_MAX;
	d = sched_after_session(ERR_NETWORK, &failures, 300, 60, 3600, 0,
	    rng_fixed);
	cr_assert_eq(failures, 1);
	cr_assert_eq(d, 60000);
	sched_after_session(ERR_NETWORK, &failures, 300, 60, 3600, 0,
	    rng_fixed);
	d = sched_after_session(ERR_NETWORK, &failures, 300, 60, 3600, 0,
	    rng_fixed);
	cr_assert_eq(failures, 3);
	cr_assert_eq(d, 240000);
	/* A success: back to the poll interval, count reset ... */
	d = sched_after_session(ERR_NONE, &failures, 300, 60, 3600, 0,
	    rng_fixed);
	cr_assert_eq(failures, 0);
	cr_assert_eq(d, 330000);
	/* ... so the next failure starts at the bottom again. */
	d = sched_after_session(ERR_NETWORK, &failures, 300, 60, 3600, 0,
	    rng_fixed);
	cr_assert_eq(failures, 1);
	cr_assert_eq(d, 60000);
	/* A configuration error waits retry_max, no jitter. */
	fixed_value = 0;
	cr_assert_eq(sched_after_session(ERR_CONFIG, &failures, 300, 60,
	    3600, 0, rng_fixed), 3600000);
}

Test(sched, auth_backs_off_hard_and_alerts)
{
	unsigned failures = 0, n;
	uint64_t auth, net;

	fixed_value = UINT32_MAX;
	for (n = 1; n <= 3; n++) {
		auth = sched_backoff_ms(ERR_AUTH, n, 60, 86400, rng_fixed);
		net = sched_backoff_ms(ERR_NETWORK, n, 60, 86400, rng_fixed);
		cr_assert_eq(auth, 8 * net, "n=%u", n);
	}
	/* Even at the bottom of its jitter: four times a network retry. */
	fixed_value = 0;
	cr_assert_geq(sched_after_session(ERR_AUTH, &failures, 300, 60, 3600,
	    0, rng_fixed), 240000);
	cr_assert(sched_alerts(ERR_AUTH));
	for (n = ERR_NONE; n <= ERR_LOCAL; n++)
		if (n != ERR_AUTH)
			cr_assert(!sched_alerts((enum err_class)n), "%s",
			    err_class_name((enum err_class)n));
}

Test(sched, login_delay_is_honoured)
{
	unsigned failures = 0;

	fixed_value = 0;
	/* A success would poll again in 9 s; the server allows one login
	 * per 900 s. */
	cr_assert_eq(sched_after_session(ERR_NONE, &failures, 10, 60, 3600,
	    900, rng_fixed), 900000);
	/* [LOGIN-DELAY] refusals (ERR_TEMP) too. */
	cr_assert_eq(sched_after_session(ERR_TEMP, &failures, 10, 60, 3600,
	    900, rng_fixed), 900000);
	/* A longer delay of our own stands. */
	fixed_value = UINT32_MAX;
	cr_assert_eq(sched_after_session(ERR_NONE, &failures, 3600, 60, 3600,
	    900, rng_fixed), 3960000);
	cr_assert_eq(sched_login_delay_ms(5000, 0), 5000);
	cr_assert_eq(sched_login_delay_ms(5000, 6), 6000);
}

Test(sched, host_admit_and_leave)
{
	unsigned active = 0;
	uint64_t wait = 12345;

	fixed_value = 0;
	cr_assert(sched_host_admit(&active, 2, &wait, rng_fixed));
	cr_assert_eq(wait, 0);
	cr_assert(sched_host_admit(&active, 2, &wait, rng_fixed));
	cr_assert_eq(active, 2);
	cr_assert(!sched_host_admit(&active, 2, &wait, rng_fixed));
	cr_assert_eq(active, 2);
	cr_assert_eq(wait, 200);
	fixed_value = UINT32_MAX;
	cr_assert(!sched_host_admit(&active, 2, &wait, rng_fixed));
	cr_assert_eq(wait, 999);
	sched_host_leave(&active);
	cr_assert(sched_host_admit(&active, 2, &wait, rng_fixed));
	sched_host_leave(&active);
	sched_host_leave(&active);
	sched_host_leave(&active);		/* never below zero */
	cr_assert_eq(active, 0);
}

/*
 * 300 accounts on one host with max_connections_per_host = 4, their
 * first polls spread over 10 s, sessions of 250 ms, run on the frozen
 * clock in 10 ms steps the way the engine drives it: the cap is never
 * passed, it is reached, nobody starves, and the retries keep the host
 * busy (the work is 300 x 250 ms / 4 = 18.75 s).
 */
Test(sched, host_cap_shared_by_300_accounts)
{
	enum { N = 300, CAP = 4, SESSION_MS = 250 };
	static uint64_t next[N], ends[N];
	unsigned active = 0, peak = 0, done = 0, i;
	uint64_t now, wait;

	clock_freeze(0, 1700000000);
	sm_state = 5;
	for (i = 0; i < N; i++) {
		next[i] = sched_first_delay_ms(10, rng_splitmix);
		ends[i] = 0;
	}
	while (done < N) {
		now = clock_mono_ms();
		for (i = 0; i < N; i++)
			if (ends[i] != 0 && ends[i] <= now) {
				sched_host_leave(&active);
				ends[i] = 0;
				done++;
			}
		for (i = 0; i < N; i++) {
			if (ends[i] != 0 || next[i] > now)
				continue;
			if (sched_host_admit(&active, CAP, &wait,
			    rng_splitmix)) {
				ends[i] = now + SESSION_MS;
				next[i] = UINT64_MAX;
				peak = active > peak ? active : peak;
			} else {
				cr_assert(wait >= 200 && wait < 1000);
				next[i] = now + wait;
			}
		}
		cr_assert_leq(active, CAP, "at %llu ms",
		    (unsigned long long)now);
		clock_advance_ms(10);
		cr_assert_lt(clock_mono_ms(), 120000, "starved: %u of %u done",
		    done, N);
	}
	cr_assert_eq(peak, CAP);
	cr_assert_lt(clock_mono_ms(), 18750 * 14 / 10, "took %llu ms",
	    (unsigned long long)clock_mono_ms());
	clock_thaw();
}
