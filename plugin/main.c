/* ISC licence; see LICENSE. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/clock.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/milter.h"
#include "haul/priv.h"
#include "haul/str.h"
#include "haul/token.h"

#define DEFAULT_CONFIG	"/etc/haul/haul.conf"
#define WATCH_MS	1000	/* config files are polled this often */
#define DRAIN_MS	10000	/* at most this long for messages in flight */
#define FD_SCAN_MAX	1024	/* where to look for libmilter's listener */

static int	 opt_debug;
/* Our unix socket, to remove at exit (libmilter leaves it behind). */
static char	 sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static dev_t	 sock_dev;
static ino_t	 sock_ino;

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

/*
 * The log level is a plain global read by every thread: write it only
 * when a reload really changes it.
 */
static void
apply_log_level(const struct msnap *s)
{
	enum log_level	 lvl = opt_debug ? LOG_LVL_DEBUG :
	    (enum log_level)s->cf->global.log_level;

	if (log_get_level() != lvl)
		log_set_level(lvl);
}

/* -n: the configuration must load; the keys are checked as a courtesy. */
static int
check_only(const char *path)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	struct haul_key		 k;
	struct buf		 err = BUF_INIT;
	const char		*files[2];
	size_t			 i;

	memset(&k, 0, sizeof(k));
	cf = config_load(path, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "haul-milter: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (cf == NULL)
		return 1;
	/*
	 * The keys are often only readable by the daemon's user, so a
	 * check run by someone else reports them without failing.
	 */
	files[0] = cf->global.key_file;
	files[1] = cf->global.previous_key_file;
	for (i = 0; i < 2; i++) {
		if (files[i] == NULL)
			continue;
		buf_reset(&err);
		if (key_load(files[i], &k, &err) == -1)
			fprintf(stderr, "haul-milter: warning: %s\n",
			    err.data != NULL ? err.data : files[i]);
		key_free(&k);
	}
	buf_free(&err);
	printf("configuration OK\n");
	config_free(&cf);
	return 0;
}

/* The path of a unix: or local: socket spec, or NULL for inet. */
static const char *
unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

/* 1 if something accepts connections on the unix socket path. */
static int
socket_in_use(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, rv;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_lcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		return 0;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	rv = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rv == 0;
}

/*
 * libmilter keeps its listening socket to itself and has no hook for
 * accepted connections, so TCP_NODELAY goes on the listener: Linux and
 * the BSDs copy it to every accepted socket.  Without it our several
 * small end-of-message packets wait for the MTA's delayed ACK: 40 ms a
 * message on loopback.  (milter_set_tcp() handles the other direction.)
 */
static int
nodelay_on_listener(void)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 fd, acc, on = 1, n = 0;

	for (fd = 0; fd < FD_SCAN_MAX; fd++) {
		len = sizeof(acc);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) ==
		    -1 || !acc)
			continue;
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)) == 0)
			n++;
	}
	return n;
}

/* Open the socket libmilter will listen on, with the configured access. */
static int
open_socket(const struct config_milter *mc, const struct priv_ids *ids)
{
	const char	*path = unix_path(mc->socket);
	struct stat	 st;
	mode_t		 old;
	int		 rv;

	if (smfi_setconn((char *)mc->socket) == MI_FAILURE) {
		log_warnx(NULL, "milter.socket %s: not usable", mc->socket);
		return -1;
	}
	if (path != NULL && socket_in_use(path)) {
		log_warnx(NULL, "%s: another milter is listening there",
		    path);
		return -1;
	}
	/* Never a moment with wider access than socket_mode. */
	old = umask(0777 & ~(mode_t)mc->socket_mode);
	rv = smfi_opensocket(1);
	umask(old);
	if (rv == MI_FAILURE) {
		log_warnx(NULL, "cannot listen on %s (libmilter logs the "
		    "reason to syslog)", mc->socket);
		return -1;
	}
	if (path == NULL) {
		milter_set_tcp(1);
		if (nodelay_on_listener() == 0)
			log_warnx(NULL, "%s: cannot set TCP_NODELAY; expect "
			    "40 ms per message (use a unix socket)",
			    mc->socket);
		return 0;
	}
	if (lstat(path, &st) == 0) {
		str_lcpy(sock_path, path, sizeof(sock_path));
		sock_dev = st.st_dev;
		sock_ino = st.st_ino;
	}
	/*
	 * The mode came from the umask at bind.  The socket's group is the
	 * configured one, else the user's; lchown, because a chown by path
	 * would follow a symlink swapped in by whoever can write the
	 * directory (the milter user may).
	 */
	if ((ids->has_user || ids->has_group) &&
	    lchown(path, ids->has_user ? ids->uid : (uid_t)-1,
	    ids->gid) == -1) {
		log_warn(NULL, "chown %s", path);
		return -1;
	}
	return 0;
}

static int
daemonize(void)
{
	int	 fd;

	switch (fork()) {
	case -1:
		return -1;
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1 || chdir("/") == -1)
		return -1;
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		return -1;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

static pthread_t	 main_thread;
static int		 listener_rv = MI_FAILURE;
static atomic_int	 listener_done;

/*
 * libmilter's loop, in a thread of its own: the main thread waits for
 * SIGTERM so it can stop the loop at once, where libmilter alone would
 * notice only at its next 5-second poll timeout.  Whichever thread gets
 * the signal (Linux prefers the main one), the daemon stops.
 */
static void *
run_listener(void *arg)
{
	(void)arg;
	listener_rv = smfi_main();
	atomic_store(&listener_done, 1);
	/* Stopped by libmilter itself (its signal thread, an error). */
	pthread_kill(main_thread, SIGUSR2);
	return NULL;
}

/*
 * smfi_stop() sets the stop flag and then waits for the lock the
 * listener holds across its select(): run it aside while the main
 * thread wakes the select() up.
 */
static void *
run_stop(void *arg)
{
	(void)arg;
	smfi_stop();
	return NULL;
}

/* Connect to our own socket so the listener's select() returns now. */
static void
wake_listener(const char *spec)
{
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_un	 sun;
	const char		*path = unix_path(spec), *p, *at;
	char			 host[256], port[16];
	int			 fd;

	if (path != NULL) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		str_lcpy(sun.sun_path, path, sizeof(sun.sun_path));
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return;
		(void)connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		close(fd);
		return;
	}
	/* inet:PORT@HOST or inet6:PORT@[HOST] (checked by the config). */
	p = strchr(spec, ':') + 1;
	if ((at = strchr(p, '@')) == NULL || (size_t)(at - p) >= sizeof(port))
		return;
	memcpy(port, p, (size_t)(at - p));
	port[at - p] = '\0';
	str_lcpy(host, at + 1, sizeof(host));
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return;
	if ((fd = socket(res->ai_family, SOCK_STREAM, 0)) != -1) {
		(void)connect(fd, res->ai_addr, res->ai_addrlen);
		close(fd);
	}
	freeaddrinfo(res);
}

/* Remove the socket if it is still the one we made (not a successor's). */
static void
remove_socket(void)
{
	struct stat	 st;

	if (sock_path[0] == '\0' || lstat(sock_path, &st) == -1)
		return;
	if (S_ISSOCK(st.st_mode) && st.st_dev == sock_dev &&
	    st.st_ino == sock_ino && unlink(sock_path) == -1)
		log_warn(NULL, "unlink %s", sock_path);
}

/* Let messages in progress finish (bounded) before the process goes. */
static void
drain(void)
{
	struct timespec	 ts = { 0, 50 * 1000000L };
	unsigned	 waited = 0;

	while (milter_busy() > 0 && waited < DRAIN_MS) {
		nanosleep(&ts, NULL);
		waited += 50;
	}
	if (milter_busy() > 0)
		log_warnx(NULL, "exiting with %u message(s) in progress: the "
		    "MTA applies milter_default_action", milter_busy());
}

/*
 * Run until a stop signal: the reloader thread, libmilter's loop in a
 * thread of its own, and this thread waiting for the signals.  Returns
 * the exit status.
 */
static int
serve(const char *path, const char *sockname)
{
	pthread_t	 listener, stopper;
	struct timespec	 ts = { 0, 20 * 1000000L };
	sigset_t	 set;
	int		 rv, sig, waited = 0;

	/*
	 * Every thread blocks the signals; libmilter's signal thread and
	 * this one wait for them, the reloader waits for SIGUSR1.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (reloader_start(path, WATCH_MS, apply_log_level) == -1) {
		remove_socket();
		return 1;
	}
	main_thread = pthread_self();
	if ((rv = pthread_create(&listener, NULL, run_listener, NULL)) != 0) {
		errno = rv;
		log_warn(NULL, "cannot start the listener thread");
		reloader_stop();
		remove_socket();
		return 1;
	}
	log_info(NULL, "haul-milter %s listening on %s", HAUL_VERSION,
	    sockname);
	if (sigwait(&set, &sig) == 0 && sig != SIGUSR2) {
		log_info(NULL, "%s: stopping%s", sig == SIGTERM ? "SIGTERM" :
		    sig == SIGINT ? "SIGINT" : "SIGHUP", sig == SIGHUP ?
		    " (SIGUSR1 reloads)" : "");
		if (pthread_create(&stopper, NULL, run_stop, NULL) == 0) {
			/* Until it has seen the flag; it may be between polls. */
			while (!atomic_load(&listener_done) && waited++ < 500) {
				wake_listener(sockname);
				nanosleep(&ts, NULL);
			}
			pthread_join(stopper, NULL);
		}
	}
	pthread_join(listener, NULL);
	log_info(NULL, "stopped listening");
	remove_socket();
	reloader_stop();
	drain();
	msnap_clear();
	return listener_rv == MI_SUCCESS ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct smfiDesc	 desc;
	struct msnap	*snap;
	struct priv_ids	 ids;
	struct buf	 err = BUF_INIT;
	const struct config_milter *mc;
	const char	*path = DEFAULT_CONFIG;
	char		 sockname[256];
	int		 ch, check = 0, foreground = 0;

	while ((ch = getopt(argc, argv, "c:dfhnV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			opt_debug = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("haul-milter %s\n", HAUL_VERSION);
			return 0;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (check)
		return check_only(path);

	log_init("haul-milter", 1, NULL);
	if (opt_debug)
		log_set_level(LOG_LVL_DEBUG);
	/* Keys and config first, while we may still read root's files. */
	if ((snap = msnap_load(path)) == NULL)
		return 1;
	apply_log_level(snap);
	mc = &snap->cf->milter;
	/*
	 * Root only with milter.user: opened as root are the socket (and
	 * before it the configuration and keys); everything after, the
	 * reloads included, runs as the user.
	 */
	if (priv_setup(mc->user, mc->group, "milter.user", &ids, &err) ==
	    -1) {
		log_warnx(NULL, "%s", err.data);
		goto fail;
	}

	milter_desc(&desc);
	if (smfi_register(desc) == MI_FAILURE) {
		log_warnx(NULL, "smfi_register failed");
		goto fail;
	}
	smfi_settimeout((int)mc->timeout);
	if (open_socket(mc, &ids) == -1)
		goto fail;
	if (priv_drop(&ids, &err) == -1) {
		log_warnx(NULL, "cannot drop privileges: %s", err.data);
		goto fail;
	}
	if (ids.plan == PRIV_DROP)
		log_info(NULL, "running as user %s (uid %u, gid %u)", ids.user,
		    (unsigned)ids.uid, (unsigned)ids.gid);
	buf_free(&err);
	/* mc dies with its snapshot once a reload replaces it. */
	str_lcpy(sockname, mc->socket, sizeof(sockname));
	mc = NULL;
	if (!foreground) {
		if (daemonize() == -1) {
			log_warn(NULL, "cannot become a daemon");
			goto fail;
		}
		log_init("haul-milter", 0, snap->cf->global.log_facility);
	}
	umask(027);
	signal(SIGPIPE, SIG_IGN);
	/* Test builds set up the clock lazily: do it before any thread. */
	(void)clock_wall();
	msnap_install(snap);
	snap = NULL;

	return serve(path, sockname);
fail:
	buf_free(&err);
	remove_socket();
	msnap_release(&snap);
	return 1;
}
