/* ISC licence; see LICENSE. */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/fmimport.h"

#define DEFAULT_SOCKET	"/run/haul/hauld.sock"
#define DEFAULT_CONFIG	"/etc/haul/haul.conf"
/* hauld answers at once; this only bounds a wedged daemon. */
#define CTL_TIMEOUT_MS	15000

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: haulctl [-hV] [-c config] [-s socket] command [args]\n"
	    "commands:\n"
	    "  status [--json]   one line per account (or JSON)\n"
	    "  fetch NAME        poll NAME now\n"
	    "  pause NAME        stop polling NAME\n"
	    "  resume NAME       poll NAME again\n"
	    "  metrics           Prometheus text exposition\n"
	    "  import-fetchmail [--rc F] [--ids F] [--out DIR] [...]\n"
	    "                    convert ~/.fetchmailrc (see haulctl(8))\n"
	    "  reload            re-read hauld's configuration\n"
	    "options:\n"
	    "  -c config  read the control socket path from this file\n"
	    "  -s socket  hauld control socket (default " DEFAULT_SOCKET ")\n"
	    "  -h         this help\n"
	    "  -V         print the version\n");
	exit(code);
}

/* The socket path from the configuration, or NULL (errors printed). */
static char *
socket_from_config(const char *path)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	char			*s = NULL;
	size_t			 i;

	cf = config_load(path, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "haulctl: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (cf == NULL)
		return NULL;
	if (cf->global.control_socket != NULL)
		s = strdup(cf->global.control_socket);
	config_free(&cf);
	return s;
}

/* Send one command line and copy the answer; the exit code follows it. */
static int
talk(const char *sock, const char *line)
{
	struct sockaddr_un sun;
	struct pollfd	 pfd;
	char		 buf[8192];
	size_t		 len = strlen(line), off = 0;
	ssize_t		 n;
	int		 fd, first = 1, rc = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "haulctl: socket path too long\n");
		return 2;
	}
	strcpy(sun.sun_path, sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "haulctl: cannot reach hauld at %s: %s\n",
		    sock, strerror(errno));
		if (fd != -1)
			close(fd);
		return 2;
	}
	if (write(fd, line, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "haulctl: write: %s\n", strerror(errno));
		close(fd);
		return 2;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "haulctl: no answer from hauld\n");
			rc = 2;
			break;
		}
		if ((n = read(fd, buf, sizeof(buf))) <= 0)
			break;
		off = 0;
		if (first) {
			char	*nl = memchr(buf, '\n', (size_t)n);
			size_t	 hl = nl ? (size_t)(nl - buf) + 1 : (size_t)n;

			first = 0;
			if (strncmp(buf, "ok", 2) != 0) {
				fprintf(stderr, "haulctl: %.*s", (int)hl, buf);
				rc = 1;
			}
			off = hl;
		}
		fwrite(buf + off, 1, (size_t)n - off, stdout);
	}
	close(fd);
	if (first && rc == 0) {
		fprintf(stderr, "haulctl: hauld closed without answering\n");
		rc = 2;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	const char	*sock = NULL, *conf = NULL, *cmd;
	char		*fromconf = NULL, line[600];
	int		 ch, rc, json = 0, i;

	while ((ch = getopt(argc, argv, "+c:hs:V")) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'h': usage(0);
		case 's': sock = optarg; break;
		case 'V':
			printf("haulctl %s\n", HAUL_VERSION);
			return 0;
		default: usage(2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage(2);
	cmd = argv[0];
	if (strcmp(cmd, "import-fetchmail") == 0)
		return import_fetchmail(conf, argc, argv);
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") == 0)
			json = 1;

	if (strcmp(cmd, "reload") == 0) {
		if (argc != 1)
			usage(2);
		snprintf(line, sizeof(line), "reload");
	} else if (strcmp(cmd, "status") == 0 ||
	    strcmp(cmd, "metrics") == 0) {
		snprintf(line, sizeof(line), "%s",
		    json && cmd[0] == 's' ? "status-json" : cmd);
	} else if (strcmp(cmd, "fetch") == 0 || strcmp(cmd, "pause") == 0 ||
	    strcmp(cmd, "resume") == 0) {
		if (argc != 2 || strpbrk(argv[1], " \r\n") != NULL)
			usage(2);
		snprintf(line, sizeof(line), "%s %s", cmd, argv[1]);
	} else {
		fprintf(stderr, "haulctl: unknown command: %s\n", cmd);
		return 2;
	}
	if (sock == NULL && conf != NULL) {
		if ((fromconf = socket_from_config(conf)) == NULL)
			return 2;
		sock = fromconf;
	}
	if (sock == NULL)
		sock = access(DEFAULT_CONFIG, R_OK) == 0 &&
		    (fromconf = socket_from_config(DEFAULT_CONFIG)) != NULL ?
		    fromconf : DEFAULT_SOCKET;
	rc = talk(sock, line);
	free(fromconf);
	return rc;
}
