/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <string.h>

#include "haul/origin.h"

static int
parse(const char *v, struct origin *o)
{
	return origin_parse(v, strlen(v), o);
}

Test(origin, postfix_shape)
{
	struct origin o;

	cr_assert_eq(parse("from mail.example.com (mail.example.com "
	    "[198.51.100.7])\r\n\tby mx.provider.net (Postfix) with ESMTPS "
	    "id 4Abc; Sun, 22 Nov 2026 00:00:00 +0000", &o), 0);
	cr_assert_str_eq(o.addr, "198.51.100.7");
	cr_assert_str_eq(o.name, "mail.example.com");
	cr_assert_str_eq(o.helo, "mail.example.com");
}

Test(origin, unknown_rdns_and_ipv6)
{
	struct origin o;

	cr_assert_eq(parse("from helo.test (unknown [IPv6:2a00:1450::5])",
	    &o), 0);
	cr_assert_str_eq(o.addr, "IPV6:2a00:1450::5");
	cr_assert_str_eq(o.name, "[UNAVAILABLE]");
	cr_assert_str_eq(o.helo, "helo.test");
}

Test(origin, exim_shape)
{
	struct origin o;

	cr_assert_eq(parse("from [203.0.113.9] (helo=client.test)\n by "
	    "mx.test with esmtp", &o), -1, "no comment after the HELO word");
	cr_assert_eq(parse("from client.test ([203.0.113.9] helo=x) by y",
	    &o), 0);
	cr_assert_str_eq(o.addr, "203.0.113.9");
	cr_assert_str_eq(o.name, "[UNAVAILABLE]");
}

Test(origin, rejects_garbage)
{
	struct origin o;

	cr_assert_eq(parse("by mx.test with LMTP", &o), -1);
	cr_assert_eq(parse("from x (y [999.1.1.1])", &o), -1);
	cr_assert_eq(parse("from x (y [1.2.3.4", &o), -1);
	cr_assert_eq(parse("from x (y)", &o), -1);
	cr_assert_eq(parse("", &o), -1);
	/* Hostile characters never reach XCLIENT. */
	cr_assert_eq(parse("from a\"b (c=d [198.51.100.1])", &o), 0);
	cr_assert_str_eq(o.helo, "");
	cr_assert_str_eq(o.name, "[UNAVAILABLE]");
}

Test(origin, public_ranges)
{
	cr_assert(origin_is_public("198.51.100.7"));
	cr_assert_not(origin_is_public("127.0.0.1"));
	cr_assert_not(origin_is_public("10.1.2.3"));
	cr_assert_not(origin_is_public("172.20.0.1"));
	cr_assert(origin_is_public("172.32.0.1"));
	cr_assert_not(origin_is_public("192.168.1.1"));
	cr_assert_not(origin_is_public("100.64.0.1"));
	cr_assert_not(origin_is_public("IPV6:::1"));
	cr_assert_not(origin_is_public("IPV6:fe80::1"));
	cr_assert(origin_is_public("IPV6:2a00:1450::5"));
}

Test(origin, find_skips_internal_hops)
{
	const char *v[] = {
		"from localhost (localhost [127.0.0.1]) by mx",
		"from relay.internal (relay.internal [10.0.0.5]) by mx",
		"from sender.test (sender.test [198.51.100.20]) by relay",
	};
	size_t	 l[] = { strlen(v[0]), strlen(v[1]), strlen(v[2]) };
	struct origin o;

	cr_assert_eq(origin_find(v, l, 3, &o), 0);
	cr_assert_str_eq(o.addr, "198.51.100.20");
	cr_assert_eq(origin_find(v, l, 2, &o), -1);
	cr_assert_str_eq(o.addr, "");
}
