/* ISC licence; see LICENSE. */
/* The /metrics request-head parser on hostile bytes (loopback, but any
 * local user can connect). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/metrics_http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	int	 head_only, st;

	st = metrics_http_parse((const char *)d, n, &head_only);
	if (st != 0 && st != 200 && st != 400 && st != 404 && st != 405 &&
	    st != 505)
		abort();
	/* An answer before the cap needs a blank line (a complete head). */
	if (st != 0 && n <= METRICS_HTTP_HEAD_MAX &&
	    memmem(d, n, "\n\n", 2) == NULL &&
	    memmem(d, n, "\n\r\n", 3) == NULL)
		abort();
	/* Incomplete only while under the cap. */
	if (st == 0 && n > METRICS_HTTP_HEAD_MAX)
		abort();
	return 0;
}
