/* ISC licence; see LICENSE. */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/engine.h"
#include "haul/log.h"
#include "haul/priv.h"

#define DEFAULT_CONFIG	"/etc/haul/haul.conf"

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: hauld [-1dfhnV] [-c file]\n"
	    "  -1       poll every enabled account once, then exit\n"
	    "  -c file  configuration (default " DEFAULT_CONFIG ")\n"
	    "  -d       debug logging\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -n       check the configuration and exit\n"
	    "  -h       this help\n"
	    "  -V       print the version\n");
	exit(code);
}

/* Print every config error and return the config, or NULL. */
static struct config *
load_config(const char *path)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	size_t			 i;

	cf = config_load(path, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "hauld: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	return cf;
}

/*
 * Written as root: never through a symbolic link, a FIFO or a hard link
 * someone left there, and locked for our lifetime so that a second hauld
 * neither overwrites nor (on its way out) removes a running one's file.
 * The descriptor stays open (close-on-exec) to hold the lock.
 */
static int
write_pid_file(const char *path)
{
	struct stat	 st;
	char		 line[32];
	int		 fd, n;

	if (path == NULL)
		return 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC, 0644)) == -1) {
		log_warn(NULL, "pid file %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_warnx(NULL, "pid file %s: not a plain file of its own",
		    path);
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx(NULL, "pid file %s is locked: another hauld "
			    "is running", path);
		else
			log_warn(NULL, "pid file %s: lock", path);
		close(fd);
		return -2;
	}
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || write(fd, line, (size_t)n) != n) {
		log_warn(NULL, "pid file %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Daemonise unless asked not to, then run the engine until stopped. */
static int
run(struct config *cf, int foreground, int debug, int once)
{
	struct engine	*e;
	char		*pid_file = NULL;
	int		 rc, pid_fd;

	if (log_init("hauld", foreground, cf->global.log_facility) == -1) {
		fprintf(stderr, "hauld: unknown log facility %s\n",
		    cf->global.log_facility);
		config_free(&cf);
		return 1;
	}
	log_set_level(debug ? LOG_LVL_DEBUG :
	    (enum log_level)cf->global.log_level);
	/*
	 * Refuse root without a user while the reason can still reach the
	 * terminal; engine_new() drops privileges once it has opened what
	 * needs them.
	 */
	{
		struct priv_ids	 ids;
		struct buf	 err = BUF_INIT;

		if (priv_setup(cf->global.user, cf->global.group, "user",
		    &ids, &err) == -1) {
			fprintf(stderr, "hauld: %s\n", err.data);
			if (!foreground)
				log_warnx(NULL, "%s", err.data);
			buf_free(&err);
			config_free(&cf);
			return 1;
		}
		buf_free(&err);
	}
	if (!foreground && daemon(0, 0) == -1) {
		log_warn(NULL, "daemon");
		config_free(&cf);
		return 1;
	}
	/* Before engine_new(): /run is root's, and we will not be. */
	if (cf->global.pid_file != NULL)
		pid_file = strdup(cf->global.pid_file);
	if ((pid_fd = write_pid_file(pid_file)) < 0) {
		free(pid_file);
		config_free(&cf);
		return 1;
	}
	if ((e = engine_new(cf, once)) == NULL) {
		if (pid_file != NULL)
			unlink(pid_file);
		free(pid_file);
		return 1;
	}
	rc = engine_run(e);
	engine_free(&e);
	/* Removing needs a writable directory; the lock ends with us. */
	if (pid_file != NULL)
		unlink(pid_file);
	free(pid_file);
	return rc;
}

int
main(int argc, char **argv)
{
	const char	*path = DEFAULT_CONFIG;
	struct config	*cf;
	char		 cwd[PATH_MAX], abspath[PATH_MAX];
	int		 ch, check = 0, foreground = 0, debug = 0, once = 0;

	while ((ch = getopt(argc, argv, "1c:dfhnV")) != -1) {
		switch (ch) {
		case '1': once = 1; break;
		case 'c': path = optarg; break;
		case 'd': debug = 1; break;
		case 'f': foreground = 1; break;
		case 'n': check = 1; break;
		case 'h': usage(0);
		case 'V':
			printf("hauld %s\n", HAUL_VERSION);
			return 0;
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	/* A reload re-reads it after daemon() has moved to "/". */
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL &&
	    (size_t)snprintf(abspath, sizeof(abspath), "%s/%s", cwd, path) <
	    sizeof(abspath))
		path = abspath;

	if ((cf = load_config(path)) == NULL)
		return 1;
	if (check) {
		printf("configuration OK\n");
		config_free(&cf);
		return 0;
	}
	return run(cf, foreground || once, debug, once);
}
