/* ISC licence; see LICENSE. */
#ifndef HAUL_SPOOL_H
#define HAUL_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A message body store that grows with what was actually received, never
 * with a size a server announced.  Bytes stay in memory up to a threshold,
 * then move to an unlinked temporary file (O_TMPFILE, else mkstemp +
 * unlink; mode 0600) in the spool directory, so nothing is left behind
 * after a crash.  The content can be read back from the start any number
 * of times (one pass per delivery attempt).
 */

struct spool;

/* Default threshold for callers without a configured one. */
#define SPOOL_MEM_DEFAULT	(256 * 1024)

/*
 * New empty spool.  dir is copied; NULL means memory only: writes past
 * mem_threshold then fail with EFBIG.  mem_threshold 0 spills at the first
 * byte.  Never returns NULL; no file is created until it is needed.
 */
struct spool	*spool_new(const char *dir, size_t mem_threshold);
/* Hard cap on the total size (0 = none, the default). */
void		 spool_set_max(struct spool *, uint64_t max);
/*
 * Append n bytes.  Returns 0, or -1 with errno: EFBIG if the cap would be
 * passed (nothing of p is then stored), or the error of creating or
 * writing the temporary file (what was stored before stays readable).
 */
int		 spool_write(struct spool *, const void *p, size_t n);
/* Bytes stored so far. */
uint64_t	 spool_size(const struct spool *);
/* 1 once the content lives in a file. */
int		 spool_on_disk(const struct spool *);
/* Start reading from the first byte again. */
void		 spool_rewind(struct spool *);
/*
 * Copy up to n bytes at the read position to dst.  Returns the count,
 * 0 at the end, or -1 with errno (EIO if the file shrank under us).
 */
ssize_t		 spool_read(struct spool *, void *dst, size_t n);
/* fsync the temporary file if there is one (reliability.md S3). 0 or -1. */
int		 spool_sync(struct spool *);
/* Close the file, free memory, set *sp to NULL.  NULL is fine. */
void		 spool_free(struct spool **sp);

#ifdef HAUL_TEST_HOOKS
/* Tests: force the mkstemp + unlink path instead of O_TMPFILE. */
extern int	 spool_test_no_tmpfile;
#endif

#endif
