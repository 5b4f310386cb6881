/* ISC licence; see LICENSE. */
#ifndef HAUL_ORIGIN_H
#define HAUL_ORIGIN_H

#include <stddef.h>

/*
 * Where a fetched message really came from, read from the provider's
 * Received: trace fields, for XCLIENT: so SPF, DKIM and spam milters in
 * the local MTA see the true client instead of 127.0.0.1.
 */

#define ORIGIN_ADDR_MAX		64
#define ORIGIN_NAME_MAX		255

struct origin {
	char	 addr[ORIGIN_ADDR_MAX];	/* "192.0.2.1" or "IPV6:2001:db8::1" */
	char	 name[ORIGIN_NAME_MAX + 1];	/* reverse name or "[UNAVAILABLE]" */
	char	 helo[ORIGIN_NAME_MAX + 1];	/* "" if none */
};

/*
 * Parse one Received: field value ("from HELO (NAME [ADDR]) by ...", the
 * Postfix, Sendmail and Exim shapes).  Returns 0 and fills o, or -1 if the
 * value names no usable address.  Pure.
 */
int	 origin_parse(const char *value, size_t len, struct origin *o);

/*
 * From the Received: fields of a message, topmost first: the first hop
 * whose client address is public (not loopback, private, link-local or
 * documentation-free ranges): the provider's MX talking to the sender.
 * Returns 0, or -1 when no field qualifies (no XCLIENT is sent then).
 */
int	 origin_find(const char *const *values, const size_t *lens, size_t n,
	     struct origin *o);

/* 1 if addr (as in struct origin) is a public unicast address. */
int	 origin_is_public(const char *addr);

#endif
