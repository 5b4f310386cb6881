/* ISC licence; see LICENSE. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "haul/log.h"
#include "haul/milter.h"
#include "haul/xmalloc.h"

/*
 * libmilter owns SIGHUP, SIGTERM and SIGINT (its signal thread stops the
 * daemon on any of them), so reloading needs a signal of its own and a
 * thread to wait for it: this one, which also polls the config files so
 * an edit takes effect without any signal.
 */

static pthread_t	 rl_thread;
static int		 rl_running;
static atomic_int	 rl_stop;
static char		*rl_path;
static unsigned		 rl_interval_ms;
static void		(*rl_applied)(const struct msnap *);

/* The watched files as they are now, per the running configuration. */
static void
scan_now(struct mwatch *w)
{
	struct msnap	*s;

	memset(w, 0, sizeof(*w));
	if ((s = msnap_acquire()) == NULL)
		return;
	mwatch_scan(w, s->cf);
	msnap_release(&s);
}

/* The watched files as the running snapshot saw them when it loaded. */
static void
loaded(struct mwatch *w)
{
	struct msnap	*s;

	memset(w, 0, sizeof(*w));
	if ((s = msnap_acquire()) == NULL)
		return;
	mwatch_copy(w, &s->watch);
	msnap_release(&s);
}

/* Reload; afterwards base is what the next change is measured against. */
static void
reload(struct mwatch *base)
{
	struct msnap	*s;
	int		 ok;

	ok = msnap_reload(rl_path) == 0;
	if (ok && rl_applied != NULL && (s = msnap_acquire()) != NULL) {
		rl_applied(s);
		msnap_release(&s);
	}
	mwatch_free(base);
	/*
	 * A failed load is not retried until a file changes again: the
	 * error was logged once, and an identical attempt would only repeat
	 * it every interval.
	 */
	if (ok)
		loaded(base);
	else
		scan_now(base);
}

static void *
reloader(void *arg)
{
	struct mwatch	 base, now, pending;
	struct timespec	 ts;
	sigset_t	 set;
	int		 sig, have_pending = 0;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	loaded(&base);
	memset(&pending, 0, sizeof(pending));
	while (!atomic_load(&rl_stop)) {
		ts.tv_sec = rl_interval_ms / 1000;
		ts.tv_nsec = (long)(rl_interval_ms % 1000) * 1000000L;
		sig = sigtimedwait(&set, NULL, &ts);
		if (atomic_load(&rl_stop))
			break;
		if (sig == SIGUSR1) {
			log_info(NULL, "SIGUSR1: reloading %s", rl_path);
			reload(&base);
			mwatch_free(&pending);
			have_pending = 0;
			continue;
		}
		if (sig == -1 && errno != EAGAIN && errno != EINTR)
			log_warn(NULL, "sigtimedwait");
		scan_now(&now);
		if (mwatch_equal(&now, &base)) {
			mwatch_free(&now);
			mwatch_free(&pending);
			have_pending = 0;
			continue;
		}
		if (!have_pending || !mwatch_equal(&now, &pending)) {
			/* Changed: wait until it holds still for a round. */
			mwatch_free(&pending);
			pending = now;
			have_pending = 1;
			continue;
		}
		mwatch_free(&now);
		mwatch_free(&pending);
		have_pending = 0;
		log_info(NULL, "configuration files changed: reloading %s",
		    rl_path);
		reload(&base);
	}
	mwatch_free(&base);
	mwatch_free(&pending);
	return NULL;
}

int
reloader_start(const char *path, unsigned interval_ms,
    void (*applied)(const struct msnap *))
{
	sigset_t	 set;
	int		 rv;

	if (rl_running)
		return -1;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if ((rv = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
		errno = rv;
		log_warn(NULL, "pthread_sigmask");
		return -1;
	}
	rl_path = xstrdup(path);
	rl_interval_ms = interval_ms > 0 ? interval_ms : 1000;
	rl_applied = applied;
	atomic_store(&rl_stop, 0);
	if ((rv = pthread_create(&rl_thread, NULL, reloader, NULL)) != 0) {
		errno = rv;
		log_warn(NULL, "cannot start the reloader thread");
		xfree(&rl_path);
		return -1;
	}
	rl_running = 1;
	return 0;
}

void
reloader_stop(void)
{
	if (!rl_running)
		return;
	atomic_store(&rl_stop, 1);
	/* Wake it now rather than at the end of its wait. */
	pthread_kill(rl_thread, SIGUSR1);
	pthread_join(rl_thread, NULL);
	rl_running = 0;
	xfree(&rl_path);
}

void
reloader_kick(void)
{
	if (rl_running)
		pthread_kill(rl_thread, SIGUSR1);
}
