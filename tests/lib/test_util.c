/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "haul/base64.h"
#include "haul/buf.h"
#include "haul/clock.h"
#include "haul/log.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

Test(buf, append_and_nul_terminated)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_add(&b, "ab\0c", 4), 0);
	cr_assert_eq(b.len, 4);
	cr_assert_eq(b.data[4], '\0');
	cr_assert_eq(memcmp(b.data, "ab\0c", 4), 0);
	cr_assert_eq(buf_addf(&b, "%d-%s", 42, "x"), 0);
	cr_assert_eq(b.len, 8);
	cr_assert_str_eq(b.data + 5, "2-x");
	buf_free(&b);
	cr_assert_null(b.data);
}

Test(buf, cap_is_hard)
{
	struct buf b;

	buf_init(&b, 8);
	cr_assert_eq(buf_add(&b, "12345678", 8), 0);
	cr_assert_eq(buf_add(&b, "9", 1), -1);
	cr_assert_eq(b.len, 8, "a failed append must not change the buffer");
	cr_assert_eq(buf_addf(&b, "%s", "x"), -1);
	cr_assert_eq(memcmp(b.data, "12345678", 8), 0);
	buf_free(&b);
}

Test(buf, consume_and_steal)
{
	struct buf b = BUF_INIT;
	char	*s;

	buf_add_str(&b, "hello world");
	buf_consume(&b, 6);
	cr_assert_str_eq(b.data, "world");
	buf_consume(&b, 100);
	cr_assert_eq(b.len, 0);
	buf_add_str(&b, "z");
	s = buf_steal(&b);
	cr_assert_str_eq(s, "z");
	cr_assert_null(b.data);
	free(s);
}

Test(str, to_u64_strict)
{
	uint64_t v;

	cr_assert_eq(str_to_u64("123", 3, 1000, &v), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq(str_to_u64("", 0, 1000, &v), -1);
	cr_assert_eq(str_to_u64("-1", 2, 1000, &v), -1);
	cr_assert_eq(str_to_u64("+1", 2, 1000, &v), -1);
	cr_assert_eq(str_to_u64(" 1", 2, 1000, &v), -1);
	cr_assert_eq(str_to_u64("1001", 4, 1000, &v), -1);
	cr_assert_eq(str_to_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(str_to_u64("18446744073709551616", 20, UINT64_MAX, &v), -1);
	cr_assert_eq(str_to_u64("4294967296", 10, UINT32_MAX, &v), -1);
}

Test(str, lcpy_truncates)
{
	char	 d[4];

	cr_assert_eq(str_lcpy(d, "abcdef", sizeof(d)), 6);
	cr_assert_str_eq(d, "abc");
	cr_assert_eq(str_lcat(d, "x", sizeof(d)), 4);
	cr_assert_str_eq(d, "abc");
}

Test(str, ctl_and_case)
{
	cr_assert(str_has_ctl("a\rb", 3));
	cr_assert(str_has_ctl("a\0b", 3));
	cr_assert_not(str_has_ctl("a b~", 4));
	cr_assert(str_has_crlf("x\n"));
	cr_assert_not(str_has_crlf("x"));
	cr_assert(str_ieq_n("UIDL", 4, "uidl"));
	cr_assert_not(str_ieq_n("UIDL", 3, "uidl"));
	cr_assert(str_iprefix("+OK Ready", 9, "+ok"));
	cr_assert(str_ct_eq("abc", "abc", 3));
	cr_assert_not(str_ct_eq("abc", "abd", 3));
}

Test(base64, round_trip_and_strict)
{
	struct buf b = BUF_INIT, d = BUF_INIT;
	const unsigned char bin[] = { 0, 0xff, 0x10, 'a', 'b' };

	cr_assert_eq(base64_encode(&b, "foobar", 6, 0), 0);
	cr_assert_str_eq(b.data, "Zm9vYmFy");
	buf_reset(&b);
	cr_assert_eq(base64_encode(&b, "fo", 2, 0), 0);
	cr_assert_str_eq(b.data, "Zm8=");
	buf_reset(&b);
	cr_assert_eq(base64_encode(&b, "fo", 2, 1), 0);
	cr_assert_str_eq(b.data, "Zm8");
	buf_reset(&b);
	cr_assert_eq(base64_encode(&b, bin, sizeof(bin), 1), 0);
	cr_assert_eq(base64_decode(&d, b.data, b.len, 1), 0);
	cr_assert_eq(d.len, sizeof(bin));
	cr_assert_eq(memcmp(d.data, bin, sizeof(bin)), 0);
	buf_reset(&d);
	cr_assert_eq(base64_decode(&d, "Zm8", 3, 0), -1, "std needs padding");
	cr_assert_eq(base64_decode(&d, "Zm9=", 4, 0), -1, "non-zero trailing bits");
	cr_assert_eq(base64_decode(&d, "Zm 8=", 5, 0), -1);
	cr_assert_eq(base64_decode(&d, "Z===", 4, 0), -1);
	cr_assert_eq(d.len, 0);
	cr_assert_eq(base64_decode(&d, "", 0, 0), 0);
	buf_free(&b);
	buf_free(&d);
}

Test(clock, freeze_and_advance)
{
	clock_freeze(1000, 1700000000);
	cr_assert_eq(clock_mono_ms(), 1000);
	clock_advance_ms(29 * 60 * 1000);
	cr_assert_eq(clock_mono_ms(), 1000 + 29 * 60 * 1000);
	cr_assert_eq(clock_wall(), 1700000000 + 29 * 60);
	clock_advance_ms(500);
	clock_advance_ms(500);
	cr_assert_eq(clock_wall(), 1700000000 + 29 * 60 + 1);
	clock_thaw();
	cr_assert_not(clock_is_frozen());
	cr_assert_gt(clock_wall(), 1700000000);
}

struct captured {
	char	 line[4096];
	int	 n;
	enum log_level lvl;
};

static void
capture(enum log_level lvl, const char *line, void *arg)
{
	struct captured *c = arg;

	str_lcpy(c->line, line, sizeof(c->line));
	c->lvl = lvl;
	c->n++;
}

Test(log, names_account_and_escapes)
{
	struct captured c = { .n = 0 };

	log_set_sink(capture, &c);
	log_set_level(LOG_LVL_INFO);
	log_warnx("acme", "server said: %s", "bad\r\nINJECTED\x1b[31m");
	cr_assert_eq(c.n, 1);
	cr_assert_eq(c.lvl, LOG_LVL_WARNING);
	cr_assert_str_eq(c.line,
	    "account=acme: server said: bad\\r\\nINJECTED\\x1b[31m");
	log_debug("acme", "hidden");
	cr_assert_eq(c.n, 1, "debug is below the level");
	errno = ENOENT;
	log_warn(NULL, "open %s", "x");
	cr_assert_str_eq(c.line, "open x: No such file or directory");
	log_set_sink(NULL, NULL);
}

Test(log, printable_truncates)
{
	char	 d[8];

	log_printable(d, sizeof(d), "abcdefghij", 10);
	cr_assert_str_eq(d, "abcd...");
	log_printable(d, sizeof(d), "\x01", 1);
	cr_assert_str_eq(d, "\\x01");
	cr_assert_eq(log_level_parse("warning"), LOG_LVL_WARNING);
	cr_assert_eq(log_level_parse("loud"), -1);
	cr_assert_eq(log_facility_parse("local3") >= 0, 1);
	cr_assert_eq(log_facility_parse("nope"), -1);
}

Test(log, escaped_text_is_not_escaped_twice)
{
	struct captured c = { .n = 0 };
	char	 esc[64];

	log_set_sink(capture, &c);
	log_printable(esc, sizeof(esc), "a\\b\r", 4);
	cr_assert_str_eq(esc, "a\\\\b\\r");
	log_warnx(NULL, "server said: %s", esc);
	cr_assert_str_eq(c.line, "server said: a\\\\b\\r");
	log_set_sink(NULL, NULL);
}
