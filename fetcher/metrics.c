/* ISC licence; see LICENSE. */
#include <inttypes.h>

#include "haul/metrics.h"

/*
 * From a fast loopback MTA (milliseconds) to a slow content filter or a
 * big message over a busy link (a minute).
 */
const uint64_t hist_bounds_ms[HIST_NBOUNDS] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};

void
hist_observe(struct hist *h, uint64_t ms)
{
	size_t	 i;

	for (i = 0; i < HIST_NBOUNDS && ms > hist_bounds_ms[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum_ms += ms;
}

/* Milliseconds as decimal seconds, exactly ("0.005", "60", "1.25"). */
static void
add_seconds(struct buf *out, uint64_t ms)
{
	uint64_t frac = ms % 1000;

	buf_addf(out, "%" PRIu64, ms / 1000);
	if (frac == 0)
		return;
	if (frac % 100 == 0)
		buf_addf(out, ".%" PRIu64, frac / 100);
	else if (frac % 10 == 0)
		buf_addf(out, ".%02" PRIu64, frac / 10);
	else
		buf_addf(out, ".%03" PRIu64, frac);
}

void
prom_head(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
prom_label(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			buf_addf(out, "\\%c", *s);
		else if (*s == '\n')
			buf_add_str(out, "\\n");
		else
			buf_add_byte(out, (unsigned char)*s);
	}
}

void
prom_sample(struct buf *out, const char *name, const char *acct,
    uint64_t v)
{
	buf_addf(out, "%s{account=\"", name);
	prom_label(out, acct);
	buf_addf(out, "\"} %" PRIu64 "\n", v);
}

void
prom_hist(struct buf *out, const char *name, const char *acct,
    const struct hist *h)
{
	uint64_t cum = 0;
	size_t	 i;

	for (i = 0; i <= HIST_NBOUNDS; i++) {
		cum += h->bucket[i];
		buf_addf(out, "%s_bucket{account=\"", name);
		prom_label(out, acct);
		buf_add_str(out, "\",le=\"");
		if (i < HIST_NBOUNDS)
			add_seconds(out, hist_bounds_ms[i]);
		else
			buf_add_str(out, "+Inf");
		buf_addf(out, "\"} %" PRIu64 "\n", cum);
	}
	buf_addf(out, "%s_sum{account=\"", name);
	prom_label(out, acct);
	buf_add_str(out, "\"} ");
	add_seconds(out, h->sum_ms);
	buf_addf(out, "\n%s_count{account=\"", name);
	prom_label(out, acct);
	buf_addf(out, "\"} %" PRIu64 "\n", h->count);
}
