/* ISC licence; see LICENSE. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/log.h"

#define DEFAULT_CONFIG	"/etc/haul/haul.conf"

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: hauld [-dfhnV] [-c file]\n"
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

int
main(int argc, char **argv)
{
	const char	*path = DEFAULT_CONFIG;
	struct config	*cf;
	int		 ch, check = 0, foreground = 0, debug = 0;

	while ((ch = getopt(argc, argv, "c:dfhnV")) != -1) {
		switch (ch) {
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
	(void)foreground;
	(void)debug;
	fprintf(stderr, "hauld: the fetch engine is not built yet\n");
	config_free(&cf);
	return 1;
}
