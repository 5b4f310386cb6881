/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/metrics.h"
#include "haul/metrics_http.h"

/* The value of the sample line that starts with prefix, or -1. */
static double
sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t	 n = strlen(prefix);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

Test(metrics, histogram_buckets_are_upper_inclusive)
{
	struct hist h;

	memset(&h, 0, sizeof(h));
	hist_observe(&h, 0);		/* <= 5 ms */
	hist_observe(&h, 5);		/* <= 5 ms: le is inclusive */
	hist_observe(&h, 6);		/* <= 10 ms */
	hist_observe(&h, 60000);	/* <= 60 s */
	hist_observe(&h, 60001);	/* +Inf only */
	cr_assert_eq(h.bucket[0], 2);
	cr_assert_eq(h.bucket[1], 1);
	cr_assert_eq(h.bucket[HIST_NBOUNDS - 1], 1);
	cr_assert_eq(h.bucket[HIST_NBOUNDS], 1);
	cr_assert_eq(h.count, 5);
	cr_assert_eq(h.sum_ms, 0 + 5 + 6 + 60000 + 60001);
}

Test(metrics, bounds_ascend)
{
	size_t	 i;

	for (i = 1; i < HIST_NBOUNDS; i++)
		cr_assert_gt(hist_bounds_ms[i], hist_bounds_ms[i - 1]);
	cr_assert_eq(hist_bounds_ms[0], 5);
	cr_assert_eq(hist_bounds_ms[HIST_NBOUNDS - 1], 60000);
}

Test(metrics, histogram_text_is_cumulative)
{
	struct hist h;
	struct buf out = BUF_INIT;
	double	 prev = 0, v;
	size_t	 i;
	char	 key[128];
	static const char *const le[HIST_NBOUNDS] = {
		"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
		"2.5", "5", "10", "30", "60"
	};

	memset(&h, 0, sizeof(h));
	for (i = 0; i < 100; i++)
		hist_observe(&h, i * 37);	/* 0 .. 3663 ms */
	hist_observe(&h, 120000);
	prom_head(&out, "lat_seconds", "histogram", "Latency.");
	prom_hist(&out, "lat_seconds", "a\"b\\c\nd", &h);
	cr_assert(strncmp(out.data, "# HELP lat_seconds Latency.\n"
	    "# TYPE lat_seconds histogram\n", 57) == 0, "%s", out.data);
	for (i = 0; i < HIST_NBOUNDS; i++) {
		snprintf(key, sizeof(key), "lat_seconds_bucket{account="
		    "\"a\\\"b\\\\c\\nd\",le=\"%s\"}", le[i]);
		v = sample(out.data, key);
		cr_assert_geq(v, prev, "%s: %g < %g\n%s", key, v, prev,
		    out.data);
		prev = v;
	}
	/* 0, 37 ms: two at or below 50 ms; 1 s: 0..999 -> 28 values. */
	cr_assert_eq(sample(out.data, "lat_seconds_bucket{account="
	    "\"a\\\"b\\\\c\\nd\",le=\"0.05\"}"), 2);
	cr_assert_eq(sample(out.data, "lat_seconds_bucket{account="
	    "\"a\\\"b\\\\c\\nd\",le=\"1\"}"), 28);
	cr_assert_eq(sample(out.data, "lat_seconds_bucket{account="
	    "\"a\\\"b\\\\c\\nd\",le=\"+Inf\"}"), 101);
	cr_assert_eq(sample(out.data, "lat_seconds_count{account="
	    "\"a\\\"b\\\\c\\nd\"}"), 101);
	/* sum 37 * 4950 ms + 120 s = 303.15 s, written exactly */
	cr_assert(strstr(out.data, "lat_seconds_sum{account=\"a\\\"b\\\\c"
	    "\\nd\"} 303.15\n") != NULL, "%s", out.data);
	buf_free(&out);
}

Test(metrics, sample_line)
{
	struct buf out = BUF_INIT;

	prom_sample(&out, "haul_x_total", "acme", 18446744073709551615ULL);
	cr_assert_str_eq(out.data,
	    "haul_x_total{account=\"acme\"} 18446744073709551615\n");
	buf_free(&out);
}

static int
parse(const char *req, int *head_only)
{
	return metrics_http_parse(req, strlen(req), head_only);
}

Test(metrics_http, requests)
{
	int	 h;

	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &h),
	    200);
	cr_assert_eq(h, 0);
	cr_assert_eq(parse("HEAD /metrics HTTP/1.0\r\n\r\n", &h), 200);
	cr_assert_eq(h, 1);
	cr_assert_eq(parse("GET /metrics?x=1 HTTP/1.1\n\n", &h), 200);
	cr_assert_eq(parse("GET / HTTP/1.1\r\n\r\n", &h), 404);
	cr_assert_eq(parse("GET /metricsx HTTP/1.1\r\n\r\n", &h), 404);
	cr_assert_eq(parse("POST /metrics HTTP/1.1\r\n\r\n", &h), 405);
	cr_assert_eq(parse("GET /metrics HTTP/2.0\r\n\r\n", &h), 505);
	cr_assert_eq(parse("GET /metrics\r\n\r\n", &h), 400);
	cr_assert_eq(parse("GET  /metrics HTTP/1.1\r\n\r\n", &h), 400);
	cr_assert_eq(parse("GET /metrics HTTP/1.1 x\r\n\r\n", &h), 400);
	cr_assert_eq(parse("GET metrics HTTP/1.1\r\n\r\n", &h), 400);
	cr_assert_eq(parse("GET /met\x01rics HTTP/1.1\r\n\r\n", &h), 400);
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", &h),
	    400);
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
	    &h), 400);
	cr_assert_eq(parse("\r\n\r\n", &h), 400);
}

Test(metrics_http, incomplete_until_blank_line_or_cap)
{
	const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t	 i, n = strlen(req);
	char	*big;
	int	 h;

	/* Every proper prefix is incomplete; the whole is an answer. */
	for (i = 0; i < n; i++)
		cr_assert_eq(metrics_http_parse(req, i, &h), 0, "at %zu", i);
	cr_assert_eq(metrics_http_parse(req, n, &h), 200);

	/* A head that never ends: incomplete up to the cap, 400 beyond. */
	big = malloc(METRICS_HTTP_HEAD_MAX + 2);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	memset(big + 26, 'a', METRICS_HTTP_HEAD_MAX + 2 - 26);
	cr_assert_eq(metrics_http_parse(big, METRICS_HTTP_HEAD_MAX, &h), 0);
	cr_assert_eq(metrics_http_parse(big, METRICS_HTTP_HEAD_MAX + 1, &h),
	    400);
	/* A complete head past the cap is refused too. */
	memcpy(big + METRICS_HTTP_HEAD_MAX - 2, "\r\n\r\n", 4);
	cr_assert_eq(metrics_http_parse(big, METRICS_HTTP_HEAD_MAX + 2, &h),
	    400);
	free(big);
}
