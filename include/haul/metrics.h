/* ISC licence; see LICENSE. */
#ifndef HAUL_METRICS_H
#define HAUL_METRICS_H

#include <stdint.h>

#include "haul/buf.h"

/*
 * Prometheus text exposition (version 0.0.4) building blocks: latency
 * histograms with fixed buckets, and the writers for HELP/TYPE lines,
 * label values and histogram series.  Pure: no engine, no I/O, so the
 * arithmetic and the format are unit-tested.  hauld's metrics page is
 * rendered by control.c (served by haulctl metrics and by the optional
 * HTTP listener in metrics_http.c).
 */

/* Upper bounds, in milliseconds: 5 ms .. 60 s, then +Inf. */
#define HIST_NBOUNDS	13

struct hist {
	uint64_t	 bucket[HIST_NBOUNDS + 1];	/* not cumulative;
							   last: above all */
	uint64_t	 count;
	uint64_t	 sum_ms;
};

/* The bucket bounds in milliseconds (HIST_NBOUNDS of them, ascending). */
extern const uint64_t hist_bounds_ms[HIST_NBOUNDS];

/* Count one observation of ms milliseconds. */
void	 hist_observe(struct hist *, uint64_t ms);

/* "# HELP name help\n# TYPE name type\n" */
void	 prom_head(struct buf *, const char *name, const char *type,
	    const char *help);
/* A label value, escaped: backslash, double quote and newline. */
void	 prom_label(struct buf *, const char *value);
/* name{account="acct"} value */
void	 prom_sample(struct buf *, const char *name, const char *acct,
	    uint64_t value);
/*
 * The series of one histogram for one account: name_bucket{account=..,
 * le=..} (cumulative, le="+Inf" equal to the count), name_sum (seconds)
 * and name_count.  Call prom_head(.., "histogram", ..) once before.
 */
void	 prom_hist(struct buf *, const char *name, const char *acct,
	    const struct hist *);

#endif
