/* ISC licence; see LICENSE. */
#ifndef HAUL_CLOCK_H
#define HAUL_CLOCK_H

#include <stdint.h>
#include <time.h>

/*
 * The injectable clock.  All of haul reads time through these, so tests
 * can freeze it and move it forward (29-minute IDLE refresh, backoff)
 * without sleeping.
 */

/* Milliseconds on a monotonic clock (for deadlines and intervals). */
uint64_t clock_mono_ms(void);
/* Wall-clock seconds since the epoch (for tokens and the UID store). */
time_t	 clock_wall(void);

/*
 * The length to arm a long protocol timer with (the 29-minute IDLE
 * refresh).  Test builds divide it by HAUL_TEST_TIME_SCALE so the
 * integration tests see a refresh without waiting half an hour; release
 * builds return ms unchanged.
 */
uint64_t clock_timer_ms(uint64_t ms);

/* Test control: freeze both clocks at the given values. */
void	 clock_freeze(uint64_t mono_ms, time_t wall);
/* Move frozen clocks forward by ms (wall moves by ms / 1000). */
void	 clock_advance_ms(uint64_t ms);
/* Back to the real clocks. */
void	 clock_thaw(void);
int	 clock_is_frozen(void);

#endif
