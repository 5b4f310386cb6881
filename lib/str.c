/* ISC licence; see LICENSE. */
#include <string.h>

#include "haul/str.h"

size_t
str_lcpy(char *dst, const char *src, size_t dstsz)
{
	size_t	 n = strlen(src);

	if (dstsz > 0) {
		size_t	 c = n < dstsz - 1 ? n : dstsz - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

size_t
str_lcat(char *dst, const char *src, size_t dstsz)
{
	size_t	 d = strnlen(dst, dstsz);

	if (d == dstsz)
		return d + strlen(src);
	return d + str_lcpy(dst + d, src, dstsz - d);
}

int
str_has_ctl(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 1;
	}
	return 0;
}

int
str_has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

int
str_to_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t	 i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int
str_ieq_n(const char *a, size_t n, const char *b)
{
	size_t	 i;

	if (strlen(b) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
str_iprefix(const char *s, size_t len, const char *prefix)
{
	size_t	 n = strlen(prefix), i;

	if (len < n)
		return 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)prefix[i]))
			return 0;
	return 1;
}

int
str_ct_eq(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	unsigned char	 d = 0;
	size_t		 i;

	for (i = 0; i < len; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}
