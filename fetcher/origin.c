/* ISC licence; see LICENSE. */
#include <arpa/inet.h>
#include <string.h>

#include "haul/origin.h"
#include "haul/str.h"

static int
is_word_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '[' &&
	    c != ']' && c != ';';
}

/* Copy a host-name-like word: letters, digits, '.', '-', '_', ':'. */
static int
copy_name(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t	 i;

	if (n == 0 || n >= dstsz)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || c == ':'))
			return -1;
		dst[i] = (char)c;
	}
	dst[n] = '\0';
	return 0;
}

/* "[192.0.2.1]", "[IPv6:2001:db8::1]" or "[2001:db8::1]" -> o->addr. */
static int
parse_addr(const char *s, size_t n, struct origin *o)
{
	char		 tmp[ORIGIN_ADDR_MAX];
	unsigned char	 bin[16];

	if (n >= 5 && str_iprefix(s, n, "IPv6:")) {
		s += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(tmp) - 5)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, bin) == 1) {
		str_lcpy(o->addr, tmp, sizeof(o->addr));
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, bin) == 1) {
		str_lcpy(o->addr, "IPV6:", sizeof(o->addr));
		str_lcat(o->addr, tmp, sizeof(o->addr));
		return 0;
	}
	return -1;
}

int
origin_parse(const char *v, size_t len, struct origin *o)
{
	size_t	 i = 0, start, depth;

	memset(o, 0, sizeof(*o));
	while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
	    v[i] == '\n'))
		i++;
	if (len - i < 5 || !str_iprefix(v + i, len - i, "from "))
		return -1;
	i += 5;
	while (i < len && v[i] == ' ')
		i++;
	start = i;
	while (i < len && is_word_char((unsigned char)v[i]))
		i++;
	if (copy_name(o->helo, sizeof(o->helo), v + start, i - start) == -1)
		o->helo[0] = '\0';
	while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
	    v[i] == '\n'))
		i++;
	if (i >= len || v[i] != '(')
		return -1;
	/* Inside the comment: an optional name, then [addr] somewhere. */
	i++;
	depth = 1;
	start = i;
	while (i < len && is_word_char((unsigned char)v[i]))
		i++;
	if (i > start && copy_name(o->name, sizeof(o->name), v + start,
	    i - start) == -1)
		o->name[0] = '\0';
	for (; i < len && depth > 0; i++) {
		if (v[i] == '(')
			depth++;
		else if (v[i] == ')')
			depth--;
		else if (v[i] == '[' && o->addr[0] == '\0') {
			const char *end = memchr(v + i, ']', len - i);

			if (end == NULL)
				return -1;
			if (parse_addr(v + i + 1, (size_t)(end - v - i - 1),
			    o) == -1)
				return -1;
			i = (size_t)(end - v);
		}
	}
	if (o->addr[0] == '\0')
		return -1;
	if (o->name[0] == '\0' || strcmp(o->name, "unknown") == 0)
		str_lcpy(o->name, "[UNAVAILABLE]", sizeof(o->name));
	return 0;
}

int
origin_is_public(const char *addr)
{
	unsigned char	 b[16];

	if (strncmp(addr, "IPV6:", 5) == 0) {
		if (inet_pton(AF_INET6, addr + 5, b) != 1)
			return 0;
		if ((b[0] & 0xe0) != 0x20)	/* only 2000::/3 is global */
			return 0;
		if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d &&
		    b[3] == 0xb8)		/* 2001:db8::/32 documentation */
			return 0;
		return 1;
	}
	if (inet_pton(AF_INET, addr, b) != 1)
		return 0;
	if (b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224)
		return 0;
	if (b[0] == 172 && (b[1] & 0xf0) == 16)
		return 0;
	if (b[0] == 192 && b[1] == 168)
		return 0;
	if (b[0] == 169 && b[1] == 254)
		return 0;
	if (b[0] == 100 && (b[1] & 0xc0) == 64)	/* CGNAT 100.64/10 */
		return 0;
	return 1;
}

int
origin_find(const char *const *values, const size_t *lens, size_t n,
    struct origin *o)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (values[i] == NULL)
			continue;
		if (origin_parse(values[i], lens[i], o) == 0 &&
		    origin_is_public(o->addr))
			return 0;
	}
	memset(o, 0, sizeof(*o));
	return -1;
}
