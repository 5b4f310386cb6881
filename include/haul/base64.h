/* ISC licence; see LICENSE. */
#ifndef HAUL_BASE64_H
#define HAUL_BASE64_H

#include <stddef.h>

#include "haul/buf.h"

/* Output length of encoding n bytes (with padding), not counting the NUL. */
#define BASE64_ENCODED_LEN(n)	((((n) + 2) / 3) * 4)

/*
 * Append the base64 (RFC 4648 section 4) encoding of src to out; url
 * selects the URL-safe alphabet without padding (section 5).
 * Returns 0, or -1 if out's cap would be passed.
 */
int	 base64_encode(struct buf *out, const void *src, size_t len, int url);
/*
 * Decode src[0..len) and append the bytes to out.  Strict: only the
 * chosen alphabet, padding only at the end (optional when url), no
 * whitespace, no trailing bits set.  Returns 0, or -1 on bad input or
 * when out's cap would be passed (out is then left as it was).
 */
int	 base64_decode(struct buf *out, const char *src, size_t len, int url);

#endif
