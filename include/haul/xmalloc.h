/* ISC licence; see LICENSE. */
#ifndef HAUL_XMALLOC_H
#define HAUL_XMALLOC_H

#include <stddef.h>

/* Allocation wrappers: they never return NULL (they call fatal instead). */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	     __attribute__((format(printf, 2, 3)));
/* Wipe len bytes of p, then free it.  For credentials. */
void	 freezero(void *p, size_t len);

/* Free *pp and set it to NULL, so a stale pointer cannot be reused. */
#define xfree(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

#endif
