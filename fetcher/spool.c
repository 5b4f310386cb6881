/* ISC licence; see LICENSE. */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/spool.h"
#include "haul/xmalloc.h"

struct spool {
	char		*dir;		/* NULL: memory only */
	size_t		 threshold;
	uint64_t	 max;		/* 0: no cap */

	unsigned char	*mem;		/* in memory while fd == -1 */
	size_t		 memcap;

	int		 fd;		/* the unlinked file once spilled */
	uint64_t	 size;
	uint64_t	 rpos;
};

#ifdef HAUL_TEST_HOOKS
int	 spool_test_no_tmpfile;
#endif

struct spool *
spool_new(const char *dir, size_t mem_threshold)
{
	struct spool	*s;

	s = xcalloc(1, sizeof *s);
	s->dir = dir != NULL ? xstrdup(dir) : NULL;
	s->threshold = mem_threshold;
	s->fd = -1;
	return s;
}

void
spool_set_max(struct spool *s, uint64_t max)
{
	s->max = max;
}

uint64_t
spool_size(const struct spool *s)
{
	return s->size;
}

int
spool_on_disk(const struct spool *s)
{
	return s->fd != -1;
}

/* Open an anonymous file in dir: no name survives us, even a crash. */
static int
spool_open_tmp(const char *dir)
{
	char	*path;
	int	 fd, use_tmpfile = 1, saved;

#ifdef HAUL_TEST_HOOKS
	use_tmpfile = !spool_test_no_tmpfile;
#endif
	/* O_TMPFILE is Linux-only and not every filesystem has it. */
	if (use_tmpfile) {
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd != -1)
			return fd;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -1;
	}
	xasprintf(&path, "%s/haul-spool.XXXXXX", dir);
	/* mkstemp creates the file 0600. */
	if ((fd = mkstemp(path)) == -1) {
		saved = errno;
		free(path);
		errno = saved;
		return -1;
	}
	if (unlink(path) == -1 || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		saved = errno;
		unlink(path);
		close(fd);
		free(path);
		errno = saved;
		return -1;
	}
	free(path);
	return fd;
}

/* pwrite(2) all of p at off, retrying on EINTR and short writes. */
static int
pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const unsigned char *b = p;
	ssize_t		 w;

	while (n > 0) {
		w = pwrite(fd, b, n, (off_t)off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Move the in-memory bytes to a new temporary file. */
static int
spool_spill(struct spool *s)
{
	int	 fd, saved;

	if (s->dir == NULL) {
		errno = EFBIG;
		return -1;
	}
	if ((fd = spool_open_tmp(s->dir)) == -1)
		return -1;
	if (s->size > 0 && pwrite_all(fd, s->mem, (size_t)s->size, 0) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	s->fd = fd;
	free(s->mem);
	s->mem = NULL;
	s->memcap = 0;
	return 0;
}

/* Grow the memory buffer to hold need bytes, never past the threshold. */
static void
spool_grow(struct spool *s, size_t need)
{
	size_t	 ncap;

	if (need <= s->memcap)
		return;
	ncap = s->memcap < 4096 ? 4096 : s->memcap;
	while (ncap < need)
		ncap = ncap > s->threshold / 2 ? s->threshold : ncap * 2;
	if (ncap > s->threshold)
		ncap = s->threshold;
	s->mem = xreallocarray(s->mem, ncap, 1);
	s->memcap = ncap;
}

int
spool_write(struct spool *s, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if ((uint64_t)n > UINT64_MAX - s->size ||
	    (s->max != 0 && s->size + n > s->max)) {
		errno = EFBIG;
		return -1;
	}
	if (s->fd == -1 && s->size + n > s->threshold &&
	    spool_spill(s) == -1)
		return -1;
	if (s->fd == -1) {
		spool_grow(s, (size_t)s->size + n);
		memcpy(s->mem + s->size, p, n);
	} else if (pwrite_all(s->fd, p, n, s->size) == -1)
		return -1;
	/* A failed pwrite leaves size alone: the next write overwrites. */
	s->size += n;
	return 0;
}

void
spool_rewind(struct spool *s)
{
	s->rpos = 0;
}

ssize_t
spool_read(struct spool *s, void *dst, size_t n)
{
	uint64_t	 left = s->size - s->rpos;
	ssize_t		 r;

	if (n > left)
		n = (size_t)left;
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (n == 0)
		return 0;
	if (s->fd == -1) {
		memcpy(dst, s->mem + s->rpos, n);
		s->rpos += n;
		return (ssize_t)n;
	}
	do {
		r = pread(s->fd, dst, n, (off_t)s->rpos);
	} while (r == -1 && errno == EINTR);
	if (r == -1)
		return -1;
	if (r == 0) {
		/* Someone truncated the file: the message is damaged. */
		errno = EIO;
		return -1;
	}
	s->rpos += (uint64_t)r;
	return r;
}

int
spool_sync(struct spool *s)
{
	if (s->fd == -1)
		return 0;
	return fsync(s->fd);
}

void
spool_free(struct spool **sp)
{
	struct spool	*s = *sp;

	if (s == NULL)
		return;
	if (s->fd != -1)
		close(s->fd);
	free(s->mem);
	free(s->dir);
	free(s);
	*sp = NULL;
}
