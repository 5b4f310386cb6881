/* ISC licence; see LICENSE. */
/* F12: the X-Haul-Token parser and verifier on hostile header values. */
#include <stdint.h>
#include <string.h>

#include "haul/token.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct haul_key key;
	struct token_fields f;
	const char	*why;

	if (key.len == 0) {
		unsigned char raw[32];

		memset(raw, 7, sizeof(raw));
		key_from_bytes(&key, raw, sizeof(raw));
	}
	token_parse((const char *)d, n, &f, &why);
	token_verify(&key, 1, (const char *)d, n, 1700000000, 600, &f, &why);
	return 0;
}
