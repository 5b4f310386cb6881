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
	    "usage: haul-milter [-dfhnV] [-c file]\n"
	    "  -c file  configuration (default " DEFAULT_CONFIG ")\n"
	    "  -d       debug logging\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -n       check the configuration and exit\n"
	    "  -h       this help\n"
	    "  -V       print the version\n");
	exit(code);
}

int
main(int argc, char **argv)
{
	struct config_errors	 errs = { NULL, 0 };
	const char		*path = DEFAULT_CONFIG;
	struct config		*cf;
	size_t			 i;
	int			 ch, check = 0;

	while ((ch = getopt(argc, argv, "c:dfhnV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'd': case 'f': break;
		case 'n': check = 1; break;
		case 'h': usage(0);
		case 'V':
			printf("haul-milter %s\n", HAUL_VERSION);
			return 0;
		default: usage(2);
		}
	}
	if (optind != argc)
		usage(2);

	cf = config_load(path, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "haul-milter: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (cf == NULL)
		return 1;
	if (check) {
		printf("configuration OK\n");
		config_free(&cf);
		return 0;
	}
	fprintf(stderr, "haul-milter: the milter is not built yet\n");
	config_free(&cf);
	return 1;
}
