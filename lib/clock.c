/* ISC licence; see LICENSE. */
#include <stdlib.h>
#include <time.h>

#include "haul/clock.h"

static int	 frozen;
static uint64_t	 frozen_mono;
static time_t	 frozen_wall;
static uint64_t	 frozen_wall_ms;	/* sub-second remainder */

uint64_t
clock_mono_ms(void)
{
	struct timespec ts;

	if (frozen)
		return frozen_mono;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

time_t
clock_wall(void)
{
	if (frozen)
		return frozen_wall;
#ifdef HAUL_TEST_HOOKS
	/*
	 * Integration tests move a whole hauld forward in time (say, past
	 * delete_after_days) with HAUL_TEST_WALL_OFFSET seconds.  Test
	 * builds only.
	 */
	{
		/* Read each time: no lazily set static that threads race on. */
		const char *e = getenv("HAUL_TEST_WALL_OFFSET");
		long	 offset = e != NULL ? strtol(e, NULL, 10) : 0;

		return time(NULL) + (offset > 0 ? offset : 0);
	}
#else
	return time(NULL);
#endif
}

void
clock_freeze(uint64_t mono_ms, time_t wall)
{
	frozen = 1;
	frozen_mono = mono_ms;
	frozen_wall = wall;
	frozen_wall_ms = 0;
}

void
clock_advance_ms(uint64_t ms)
{
	if (!frozen)
		return;
	frozen_mono += ms;
	frozen_wall_ms += ms;
	frozen_wall += (time_t)(frozen_wall_ms / 1000);
	frozen_wall_ms %= 1000;
}

void
clock_thaw(void)
{
	frozen = 0;
}

int
clock_is_frozen(void)
{
	return frozen;
}

uint64_t
clock_timer_ms(uint64_t ms)
{
#ifdef HAUL_TEST_HOOKS
	const char	*e = getenv("HAUL_TEST_TIME_SCALE");
	long		 scale = e != NULL ? strtol(e, NULL, 10) : 1;

	if (scale > 1) {
		ms /= (uint64_t)scale;
		if (ms == 0)
			ms = 1;
	}
#endif
	return ms;
}
