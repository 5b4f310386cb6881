/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <string.h>

#include "haul/base64.h"

static const char std_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
base64_encode(struct buf *out, const void *src, size_t len, int url)
{
	const unsigned char *s = src;
	const char	*a = url ? url_alpha : std_alpha;
	size_t		 i;
	char		 q[4];

	if (len > (SIZE_MAX / 4) * 3 - 3 ||
	    buf_reserve(out, BASE64_ENCODED_LEN(len)) == -1)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		q[0] = a[v >> 18]; q[1] = a[(v >> 12) & 63];
		q[2] = a[(v >> 6) & 63]; q[3] = a[v & 63];
		buf_add(out, q, 4);
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t	 n = 2;

		if (i + 1 < len) {
			v |= (uint32_t)s[i + 1] << 8;
			n = 3;
		}
		q[0] = a[v >> 18]; q[1] = a[(v >> 12) & 63];
		q[2] = n == 3 ? a[(v >> 6) & 63] : '=';
		q[3] = '=';
		buf_add(out, q, url ? n : 4);
	}
	return 0;
}

static int
dec(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

int
base64_decode(struct buf *out, const char *src, size_t len, int url)
{
	size_t	 start = out->len, i, n = len, pad = 0;
	uint32_t v = 0;
	int	 bits = 0, d;

	/* Padding: at most two '=' and only at the very end. */
	while (n > 0 && src[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (pad > 0 && (len % 4) != 0)
		return -1;
	if (!url && pad == 0 && (len % 4) != 0)
		return -1;
	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = dec((unsigned char)src[i], url)) == -1)
			goto bad;
		v = (v << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (buf_add_byte(out, (unsigned char)(v >> bits)) == -1)
				goto bad;
			v &= (1u << bits) - 1;
		}
	}
	/* Left-over bits must be zero (canonical encoding only). */
	if (v != 0)
		goto bad;
	return 0;
bad:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}
