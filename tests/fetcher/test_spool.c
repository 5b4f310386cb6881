/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/spool.h"

static char spooldir[64];

static void
mk_dir(void)
{
	strcpy(spooldir, "/tmp/haul-spool-XXXXXX");
	cr_assert_not_null(mkdtemp(spooldir));
}

static void
rm_dir(void)
{
	char	 cmd[128];

#ifdef HAUL_TEST_HOOKS
	spool_test_no_tmpfile = 0;
#endif
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", spooldir);
	cr_assert_eq(system(cmd), 0);
}

/* Number of names in spooldir besides . and .. */
static int
dir_entries(void)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	cr_assert_not_null(d = opendir(spooldir));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Read everything from the start in pieces of step bytes. */
static size_t
read_all(struct spool *s, unsigned char *dst, size_t cap, size_t step)
{
	size_t	 n = 0;
	ssize_t	 r;

	spool_rewind(s);
	for (;;) {
		r = spool_read(s, dst + n, cap - n < step ? cap - n : step);
		cr_assert_geq(r, 0, "spool_read: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return n;
}

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 31 + seed) ^ (i >> 8));
}

Test(spool, memory_round_trip, .init = mk_dir, .fini = rm_dir)
{
	struct spool	*s;
	unsigned char	 out[64];

	s = spool_new(spooldir, 1024);
	cr_assert_eq(spool_read(s, out, sizeof out), 0, "empty spool");
	cr_assert_eq(spool_write(s, "hello ", 6), 0);
	cr_assert_eq(spool_write(s, "world", 5), 0);
	cr_assert_eq(spool_write(s, "", 0), 0);
	cr_assert_eq(spool_size(s), 11);
	cr_assert_not(spool_on_disk(s));
	cr_assert_eq(dir_entries(), 0);
	cr_assert_eq(read_all(s, out, sizeof out, 4), 11);
	cr_assert_eq(memcmp(out, "hello world", 11), 0);
	/* A second delivery attempt reads the same bytes. */
	cr_assert_eq(read_all(s, out, sizeof out, 64), 11);
	cr_assert_eq(memcmp(out, "hello world", 11), 0);
	cr_assert_eq(spool_sync(s), 0);
	spool_free(&s);
	cr_assert_null(s);
	spool_free(&s);
}

/* Spill at threshold and compare a re-read with what was written. */
static void
spill_case(size_t threshold, size_t total, size_t chunk)
{
	struct spool	*s;
	unsigned char	*in, *out;
	size_t		 off, n;

	in = malloc(total);
	out = malloc(total + 1);
	fill(in, total, (unsigned)threshold);
	s = spool_new(spooldir, threshold);
	for (off = 0; off < total; off += n) {
		n = total - off < chunk ? total - off : chunk;
		cr_assert_eq(spool_write(s, in + off, n), 0, "%s",
		    strerror(errno));
		cr_assert_eq(spool_on_disk(s), off + n > threshold);
	}
	cr_assert_eq(spool_size(s), total);
	cr_assert_eq(dir_entries(), 0, "the temporary file has no name");
	cr_assert_eq(spool_sync(s), 0);
	cr_assert_eq(read_all(s, out, total + 1, 4093), total);
	cr_assert_eq(memcmp(in, out, total), 0);
	memset(out, 0, total);
	cr_assert_eq(read_all(s, out, total + 1, 1 << 20), total);
	cr_assert_eq(memcmp(in, out, total), 0);
	/* Appending after reading still works. */
	cr_assert_eq(spool_write(s, "xyz", 3), 0);
	cr_assert_eq(spool_size(s), total + 3);
	spool_free(&s);
	free(in);
	free(out);
}

Test(spool, spills_to_unlinked_file, .init = mk_dir, .fini = rm_dir)
{
	spill_case(16, 100, 7);
	spill_case(0, 10, 3);
	spill_case(SPOOL_MEM_DEFAULT, 3 * SPOOL_MEM_DEFAULT + 5, 65536);
	spill_case(SPOOL_MEM_DEFAULT, SPOOL_MEM_DEFAULT, 4096);
}

Test(spool, mkstemp_fallback, .init = mk_dir, .fini = rm_dir)
{
#ifdef HAUL_TEST_HOOKS
	spool_test_no_tmpfile = 1;
	spill_case(8, 1000, 100);
#else
	cr_skip_test("needs HAUL_TEST_HOOKS");
#endif
}

Test(spool, size_cap, .init = mk_dir, .fini = rm_dir)
{
	struct spool	*s;
	unsigned char	 out[32];

	s = spool_new(spooldir, 4);
	spool_set_max(s, 10);
	cr_assert_eq(spool_write(s, "0123456", 7), 0);
	errno = 0;
	cr_assert_eq(spool_write(s, "7890", 4), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(spool_size(s), 7, "nothing of a refused chunk is kept");
	cr_assert_eq(spool_write(s, "789", 3), 0);
	cr_assert_eq(spool_write(s, "x", 1), -1);
	cr_assert_eq(read_all(s, out, sizeof out, 3), 10);
	cr_assert_eq(memcmp(out, "0123456789", 10), 0);
	spool_free(&s);
}

Test(spool, memory_only)
{
	struct spool	*s;
	unsigned char	 out[8];

	s = spool_new(NULL, 5);
	cr_assert_eq(spool_write(s, "abcde", 5), 0);
	errno = 0;
	cr_assert_eq(spool_write(s, "f", 1), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(read_all(s, out, sizeof out, 2), 5);
	cr_assert_eq(memcmp(out, "abcde", 5), 0);
	spool_free(&s);
}

Test(spool, unusable_directory, .init = mk_dir, .fini = rm_dir)
{
	struct spool	*s;
	unsigned char	 out[8];
	char		 missing[128];

	snprintf(missing, sizeof missing, "%s/no/such/dir", spooldir);
	s = spool_new(missing, 4);
	cr_assert_eq(spool_write(s, "abc", 3), 0);
	errno = 0;
	cr_assert_eq(spool_write(s, "defg", 4), -1);
	cr_assert_eq(errno, ENOENT);
	/* What was stored stays readable; the owner decides. */
	cr_assert_eq(spool_size(s), 3);
	cr_assert_eq(read_all(s, out, sizeof out, 8), 3);
	cr_assert_eq(memcmp(out, "abc", 3), 0);
	spool_free(&s);
}
