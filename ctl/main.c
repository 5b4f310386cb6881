/* ISC licence; see LICENSE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: haulctl [-hV] [-s socket] command [args]\n"
	    "  -s socket  hauld control socket\n"
	    "  -h         this help\n"
	    "  -V         print the version\n");
	exit(code);
}

int
main(int argc, char **argv)
{
	int	 ch;

	while ((ch = getopt(argc, argv, "hs:V")) != -1) {
		switch (ch) {
		case 'h': usage(0);
		case 's': break;
		case 'V':
			printf("haulctl %s\n", HAUL_VERSION);
			return 0;
		default: usage(2);
		}
	}
	if (optind == argc)
		usage(2);
	fprintf(stderr, "haulctl: unknown command: %s\n", argv[optind]);
	return 2;
}
