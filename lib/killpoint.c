/* ISC licence; see LICENSE. */
#include "haul/killpoint.h"

#ifdef HAUL_TEST_HOOKS
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Test builds only.  The environment is read at each hit rather than
 * cached: hits are rare (a few per message), and no lazily set static
 * needs guarding.  Only the per-point counters persist.
 */

#define KP_NAME_MAX	64	/* longest point name */
#define KP_POINTS_MAX	64	/* distinct points counted */

static struct {
	char		 name[KP_NAME_MAX + 1];
	unsigned long	 hits;
} kp_points[KP_POINTS_MAX];
static size_t		 kp_npoints;
static unsigned long	 kp_any;	/* hits of every point together */

/* The hit count of name after this hit; 0 if the table is full. */
static unsigned long
kp_count(const char *name)
{
	size_t	 i;

	for (i = 0; i < kp_npoints; i++)
		if (strcmp(kp_points[i].name, name) == 0)
			return ++kp_points[i].hits;
	if (kp_npoints == KP_POINTS_MAX || strlen(name) > KP_NAME_MAX)
		return 0;
	memcpy(kp_points[kp_npoints].name, name, strlen(name) + 1);
	kp_points[kp_npoints].hits = 1;
	kp_npoints++;
	return 1;
}

/* Append "name n" to the trace file; errors are ignored (test aid). */
static void
kp_trace(const char *path, const char *name, unsigned long n)
{
	char	 line[KP_NAME_MAX + 32];
	int	 fd, len, saved = errno;

	len = snprintf(line, sizeof(line), "%s %lu\n", name, n);
	if (len <= 0 || (size_t)len >= sizeof(line))
		return;
	/* O_APPEND: one write() per line, whole even if we die right after. */
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1) {
		errno = saved;
		return;
	}
	/* A short write leaves a short trace: the harness reports that. */
	if (write(fd, line, (size_t)len) != len)
		errno = saved;
	close(fd);
	errno = saved;
}

void
killpoint_hit(const char *name)
{
	const char	*spec = getenv("HAUL_KILLPOINT");
	const char	*trace = getenv("HAUL_KILLPOINT_TRACE");
	const char	*colon;
	unsigned long	 n, want = 1;
	size_t		 len;
	char		*end;

	n = kp_count(name);
	kp_any++;
	if (trace != NULL && *trace != '\0')
		kp_trace(trace, name, n);
	if (spec == NULL || *spec == '\0')
		return;
	colon = strchr(spec, ':');
	len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	if (colon != NULL) {
		errno = 0;
		want = strtoul(colon + 1, &end, 10);
		if (errno != 0 || end == colon + 1 || *end != '\0' ||
		    want == 0)
			return;		/* malformed: never kill by accident */
	}
	if (len == 1 && spec[0] == '*') {
		if (kp_any == want)
			raise(SIGKILL);
		return;
	}
	if (len == strlen(name) && strncmp(spec, name, len) == 0 &&
	    n == want)
		raise(SIGKILL);
}

void
killpoint_hit2(const char *prefix, const char *name)
{
	char	 full[KP_NAME_MAX + 1];

	snprintf(full, sizeof(full), "%s%s", prefix, name);
	killpoint_hit(full);
}
#else
typedef int haul_killpoint_unused;	/* ISO C: no empty translation unit */
#endif /* HAUL_TEST_HOOKS */
