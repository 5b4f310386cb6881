/* ISC licence; see LICENSE. */
/* F1: the IMAP response parser, fed in chunks (first byte: chunk size). */
#include <stdint.h>
#include <string.h>

#include "haul/imap.h"

static enum imap_lit
lit(void *arg, const struct imap_response *r, const struct imap_literal *l)
{
	return l->size > 4096 ? IMAP_LIT_STREAM : IMAP_LIT_BUFFER;
}

static int
data(void *arg, const void *p, size_t n)
{
	return 0;
}

static int
end(void *arg)
{
	return 0;
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct imap_parser_hooks h = { lit, data, end };
	struct imap_limits lim = { 0 };
	struct imap_parser *p;
	size_t		 chunk, off = 1, used;
	char		 out[512];

	if (n < 1)
		return 0;
	chunk = d[0] ? d[0] : 1;
	p = imap_parser_new(&lim, &h, NULL);
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;
		enum imap_parse r = imap_parse(p, d + off, len, &used);

		if (r == IMAP_PARSE_BAD)
			break;
		if (r == IMAP_PARSE_OK)
			imap_render(imap_parser_response(p), out, sizeof(out));
		off += used;
		if (used == 0 && r != IMAP_PARSE_OK)
			break;
	}
	imap_parser_free(&p);
	return 0;
}
