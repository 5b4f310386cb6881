/* ISC licence; see LICENSE. */
#ifndef HAUL_METRICS_HTTP_H
#define HAUL_METRICS_HTTP_H

#include <stddef.h>

struct engine;
struct metrics_http;

/*
 * The optional HTTP listener for Prometheus (global.metrics_listen): GET
 * /metrics answers the same text as `haulctl metrics`.  Deliberately
 * small: loopback only (the configuration refuses anything else, since
 * there is no authentication), HTTP/1.0 and 1.1, one request per
 * connection, the request head capped at METRICS_HTTP_HEAD_MAX bytes and
 * METRICS_HTTP_TIMEOUT seconds, at most METRICS_HTTP_CLIENTS at once.
 */
#define METRICS_HTTP_HEAD_MAX	8192
#define METRICS_HTTP_TIMEOUT	5
#define METRICS_HTTP_CLIENTS	16

/*
 * Listen on spec ("127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT",
 * which means 127.0.0.1: no resolver is asked).  NULL, logged, on error.
 */
struct metrics_http *metrics_http_new(struct engine *, const char *spec);
void		 metrics_http_free(struct metrics_http **);

/*
 * Decide on a request head (pure, for the tests): the bytes received so
 * far, len of them.  Returns 0 while the head is incomplete (no blank
 * line yet and len <= METRICS_HTTP_HEAD_MAX), else the status to answer:
 * 200 (GET or HEAD of /metrics, *head_only set for HEAD), 400 (not a
 * request line, or a head over the cap), 404 (another path), 405
 * (another method), 505 (not HTTP/1.x).
 */
int		 metrics_http_parse(const char *data, size_t len,
		    int *head_only);

#endif
