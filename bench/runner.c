/* ISC License; see LICENSE. */
/*
 * runner: run a program and report what wait4(2) says about it.
 *
 *   runner OUTFILE PROGRAM [ARG...]
 *
 * Writes "rc=N utime=S stime=S maxrss_kb=K" to OUTFILE once PROGRAM has
 * ended and exits with its status.  The benchmark starts every fetcher
 * through it because ru_maxrss of a child includes the RSS its parent
 * had when it forked: a child of the Python harness would never show
 * less than the harness's own 30 MB.  This process is small, so the peak
 * RSS it reports is the program's (and that of the children the program
 * waited for).  SIGTERM and SIGINT are ignored here (not in the child),
 * so a harness that stops the whole session still gets the numbers.
 */

#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct rusage	 ru;
	struct sigaction sa;
	FILE		*out;
	pid_t		 pid;
	int		 status, rc;

	if (argc < 3) {
		fprintf(stderr, "usage: runner OUTFILE PROGRAM [ARG...]\n");
		return 127;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((pid = fork()) == -1) {
		perror("runner: fork");
		return 127;
	}
	if (pid == 0) {
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		execv(argv[2], argv + 2);
		fprintf(stderr, "runner: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) == -1)
		if (errno != EINTR) {
			perror("runner: wait4");
			return 127;
		}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else
		rc = 128 + WTERMSIG(status);
	if ((out = fopen(argv[1], "w")) == NULL) {
		perror(argv[1]);
		return 127;
	}
	fprintf(out, "rc=%d utime=%ld.%06ld stime=%ld.%06ld maxrss_kb=%ld\n",
	    rc, (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
	    (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
	fclose(out);
	return rc;
}
