/* ISC licence; see LICENSE. */
/*
 * F8: the message filter.  Property: whatever comes in, what reaches the
 * spool has no bare CR and no bare LF, and no X-Haul- field survives in
 * the header section.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/message.h"
#include "haul/spool.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct spool	*s = spool_new(NULL, 1 << 24);
	struct msgf	*f = msgf_new(s, NULL);
	size_t		 chunk, off = 1, i;
	unsigned char	*out;
	ssize_t		 got;

	if (n < 1)
		goto done;
	chunk = d[0] ? d[0] : 1;
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;

		if (msgf_write(f, d + off, len) == -1)
			goto done;
		off += len;
	}
	if (msgf_finish(f) == -1)
		goto done;
	out = malloc((size_t)spool_size(s) + 1);
	spool_rewind(s);
	got = spool_read(s, out, (size_t)spool_size(s));
	for (i = 0; got > 0 && i < (size_t)got; i++) {
		if (out[i] == '\r' && (i + 1 >= (size_t)got ||
		    out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	}
	free(out);
done:
	msgf_free(&f);
	spool_free(&s);
	return 0;
}
