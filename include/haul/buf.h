/* ISC licence; see LICENSE. */
#ifndef HAUL_BUF_H
#define HAUL_BUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * A length-carrying byte buffer (after Postfix VSTRING).  data is always
 * NUL-terminated one past len so it can be printed, but may hold NULs.
 * max is a hard cap on len (0 = SIZE_MAX/2): appends past it fail with -1
 * and leave the buffer unchanged, so untrusted input cannot grow it freely.
 */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
};

#define BUF_INIT { NULL, 0, 0, 0 }

void	 buf_init(struct buf *, size_t max);
/* Free storage (wiping it if secret is set) and reset to empty. */
void	 buf_free(struct buf *);
void	 buf_free_secret(struct buf *);
void	 buf_reset(struct buf *);
/* Make room for n more bytes. -1 if that would pass max. */
int	 buf_reserve(struct buf *, size_t n);
int	 buf_add(struct buf *, const void *, size_t);
int	 buf_add_str(struct buf *, const char *);
int	 buf_add_byte(struct buf *, unsigned char);
int	 buf_addf(struct buf *, const char *, ...)
	     __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len). */
void	 buf_consume(struct buf *, size_t n);
/* Detach the storage: caller owns the returned string (never NULL). */
char	*buf_steal(struct buf *);

#endif
