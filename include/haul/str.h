/* ISC licence; see LICENSE. */
#ifndef HAUL_STR_H
#define HAUL_STR_H

#include <stddef.h>
#include <stdint.h>

/* Copy with truncation like strlcpy; returns strlen(src). */
size_t	 str_lcpy(char *dst, const char *src, size_t dstsz);
size_t	 str_lcat(char *dst, const char *src, size_t dstsz);
/* 1 if s[0..len) holds a byte < 0x20 or 0x7f (CR, LF, NUL included). */
int	 str_has_ctl(const char *s, size_t len);
/* 1 if s contains CR or LF. */
int	 str_has_crlf(const char *s);
/*
 * Parse a decimal unsigned number occupying exactly s[0..len): no sign, no
 * space, no leading "+"; fails on overflow or a value above max.
 * Returns 0 and sets *out, or -1.
 */
int	 str_to_u64(const char *s, size_t len, uint64_t max, uint64_t *out);
/* Case-insensitive ASCII compare of a[0..n) with the C string b (all of it). */
int	 str_ieq_n(const char *a, size_t n, const char *b);
/* Case-insensitive ASCII prefix test. */
int	 str_iprefix(const char *s, size_t len, const char *prefix);
/* Constant-time compare of two equal-length byte strings; 1 if equal. */
int	 str_ct_eq(const void *a, const void *b, size_t len);

#endif
