/* ISC licence; see LICENSE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/engine.h"
#include "haul/log.h"

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

static int
write_pid_file(const char *path)
{
	FILE	*f;

	if (path == NULL)
		return 0;
	if ((f = fopen(path, "w")) == NULL) {
		log_warn(NULL, "pid file %s", path);
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

/* Daemonise unless asked not to, then run the engine until stopped. */
static int
run(struct config *cf, int foreground, int debug, int once)
{
	struct engine	*e;
	char		*pid_file = NULL;
	int		 rc;

	if (log_init("hauld", foreground, cf->global.log_facility) == -1) {
		fprintf(stderr, "hauld: unknown log facility %s\n",
		    cf->global.log_facility);
		config_free(&cf);
		return 1;
	}
	log_set_level(debug ? LOG_LVL_DEBUG :
	    (enum log_level)cf->global.log_level);
	if (!foreground && daemon(0, 0) == -1) {
		log_warn(NULL, "daemon");
		config_free(&cf);
		return 1;
	}
	if (cf->global.pid_file != NULL)
		pid_file = strdup(cf->global.pid_file);
	if ((e = engine_new(cf, once)) == NULL) {
		free(pid_file);
		return 1;
	}
	if (write_pid_file(pid_file) == -1) {
		engine_free(&e);
		free(pid_file);
		return 1;
	}
	rc = engine_run(e);
	engine_free(&e);
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

	if ((cf = load_config(path)) == NULL)
		return 1;
	if (check) {
		printf("configuration OK\n");
		config_free(&cf);
		return 0;
	}
	return run(cf, foreground || once, debug, once);
}
