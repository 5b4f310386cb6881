/* ISC licence; see LICENSE. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "haul/clock.h"
#include "haul/log.h"
#include "haul/secret.h"
#include "haul/xmalloc.h"

/* Keep the first line only; a secret never spans lines. */
static void
first_line(struct buf *b)
{
	char	*nl = memchr(b->data, '\n', b->len);

	if (nl != NULL) {
		size_t	 cut = (size_t)(nl - b->data);

		explicit_bzero(nl, b->len - cut);
		b->len = cut;
	}
	if (b->len > 0 && b->data[b->len - 1] == '\r')
		b->data[--b->len] = '\0';
	if (b->data != NULL)
		b->data[b->len] = '\0';
}

static int
read_file(const struct config_account *a, struct buf *out)
{
	char		 tmp[512];
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(a->password_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC))
	    == -1) {
		log_warn(a->name, "cannot open password file %s",
		    a->password_file);
		return -1;
	}
	/* Checked at load too, but the file may have changed since. */
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		log_warnx(a->name, "password file %s must be a regular file "
		    "with mode 0600 or stricter", a->password_file);
		close(fd);
		return -1;
	}
	while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
		if (buf_add(out, tmp, (size_t)n) == -1) {
			log_warnx(a->name, "password file %s is larger than "
			    "%d bytes", a->password_file, SECRET_MAX);
			explicit_bzero(tmp, sizeof(tmp));
			close(fd);
			return -1;
		}
	}
	explicit_bzero(tmp, sizeof(tmp));
	close(fd);
	if (n == -1) {
		log_warn(a->name, "read %s", a->password_file);
		return -1;
	}
	return 0;
}

static int
run_command(const struct config_account *a, struct buf *out)
{
	char		 tmp[512];
	struct pollfd	 pfd;
	uint64_t	 deadline;
	pid_t		 pid;
	int		 p[2], ws, rc = 0;
	ssize_t		 n;

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_warn(a->name, "pipe");
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn(a->name, "fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int	 devnull = open("/dev/null", O_RDWR);

		if (devnull == -1 || dup2(devnull, STDIN_FILENO) == -1 ||
		    dup2(p[1], STDOUT_FILENO) == -1)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execv(a->password_command[0], a->password_command);
		_exit(127);
	}
	close(p[1]);
	deadline = clock_mono_ms() + SECRET_CMD_TIMEOUT * 1000;
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		uint64_t now = clock_mono_ms();
		int	 r;

		if (now >= deadline) {
			log_warnx(a->name, "password_command timed out");
			rc = -1;
			break;
		}
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = read(p[0], tmp, sizeof(tmp));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf_add(out, tmp, (size_t)n) == -1) {
			log_warnx(a->name, "password_command printed more "
			    "than %d bytes", SECRET_MAX);
			rc = -1;
			break;
		}
	}
	explicit_bzero(tmp, sizeof(tmp));
	close(p[0]);
	if (rc == -1)
		kill(pid, SIGKILL);
	while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
		;
	if (rc == 0 && (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)) {
		log_warnx(a->name, "password_command %s failed (status %d)",
		    a->password_command[0],
		    WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
		rc = -1;
	}
	return rc;
}

int
secret_get(const struct config_account *a, struct buf *out)
{
	int	 rc;

	buf_init(out, SECRET_MAX);
	/* Allocate once: a realloc would leave an unwiped copy behind. */
	buf_reserve(out, SECRET_MAX);
	if (a->password_file != NULL)
		rc = read_file(a, out);
	else if (a->password_command != NULL)
		rc = run_command(a, out);
	else {
		log_warnx(a->name, "no password_file or password_command");
		rc = -1;
	}
	if (rc == 0) {
		first_line(out);
		if (out->len == 0) {
			log_warnx(a->name, "the secret is empty");
			rc = -1;
		}
	}
	if (rc == -1)
		buf_free_secret(out);
	return rc;
}

void
secret_copy(struct buf *dst, const struct buf *src)
{
	buf_init(dst, SECRET_MAX);
	buf_reserve(dst, src->len);
	buf_add(dst, src->data != NULL ? src->data : "", src->len);
}

struct secret_req {
	const struct config_account *cf;
	struct buf	*out;
	pid_t		 pid;
	int		 fd;
	int		 failed;
	struct event	*rd;
	struct event	*timer;		/* deadline, then reaping */
	uint64_t	 deadline;
	secret_done_fn	 done;
	void		*arg;
};

static void
req_free(struct secret_req *r)
{
	if (r->rd != NULL)
		event_free(r->rd);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->fd != -1)
		close(r->fd);
	free(r);
}

static void
req_finish(struct secret_req *r, int ok)
{
	secret_done_fn	 done = r->done;
	void		*arg = r->arg;

	if (ok) {
		first_line(r->out);
		if (r->out->len == 0) {
			log_warnx(r->cf->name, "the secret is empty");
			ok = 0;
		}
	}
	if (!ok)
		buf_free_secret(r->out);
	req_free(r);
	done(arg, ok);
}

/* The output is in: wait (without blocking) for the exit status. */
static void
reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct secret_req *r = arg;
	struct timeval	 tv = { 0, 10000 };
	int		 ws;
	pid_t		 w;

	if (r->pid > 0 && clock_mono_ms() > r->deadline && !r->failed) {
		log_warnx(r->cf->name, "password_command timed out");
		r->failed = 1;
		kill(r->pid, SIGKILL);
	}
	w = waitpid(r->pid, &ws, WNOHANG);
	if (w == 0) {
		evtimer_add(r->timer, &tv);
		return;
	}
	if (w == r->pid && !r->failed &&
	    (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)) {
		log_warnx(r->cf->name, "password_command %s failed (status "
		    "%d)", r->cf->password_command[0],
		    WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
		r->failed = 1;
	}
	r->pid = -1;
	req_finish(r, !r->failed);
}

static void
read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct secret_req *r = arg;
	char		 tmp[512];
	ssize_t		 n;

	if (ev & EV_TIMEOUT) {
		log_warnx(r->cf->name, "password_command timed out");
		r->failed = 1;
		kill(r->pid, SIGKILL);
		n = 0;
	} else if ((n = read(r->fd, tmp, sizeof(tmp))) > 0) {
		if (buf_add(r->out, tmp, (size_t)n) == -1) {
			log_warnx(r->cf->name, "password_command printed more "
			    "than %d bytes", SECRET_MAX);
			r->failed = 1;
			kill(r->pid, SIGKILL);
			n = 0;
		}
		explicit_bzero(tmp, sizeof(tmp));
		if (n > 0)
			return;
	} else if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	/* End of output (or given up): stop reading, reap the child. */
	event_del(r->rd);
	close(r->fd);
	r->fd = -1;
	reap_cb(-1, 0, r);
}

struct secret_req *
secret_fetch(struct event_base *base, const struct config_account *a,
    struct buf *out, secret_done_fn done, void *arg)
{
	struct secret_req *r;
	struct timeval	 tv = { SECRET_CMD_TIMEOUT, 0 };
	int		 p[2];
	pid_t		 pid;

	buf_init(out, SECRET_MAX);
	buf_reserve(out, SECRET_MAX);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_warn(a->name, "pipe");
		return NULL;
	}
	if ((pid = fork()) == -1) {
		log_warn(a->name, "fork");
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		int	 devnull = open("/dev/null", O_RDWR);
		sigset_t none;

		if (devnull == -1 || dup2(devnull, STDIN_FILENO) == -1 ||
		    dup2(p[1], STDOUT_FILENO) == -1)
			_exit(127);
		/* The pipe is non-blocking on our side only. */
		fcntl(STDOUT_FILENO, F_SETFL, 0);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(a->password_command[0], a->password_command);
		_exit(127);
	}
	close(p[1]);
	r = xcalloc(1, sizeof(*r));
	r->cf = a;
	r->out = out;
	r->pid = pid;
	r->fd = p[0];
	r->done = done;
	r->arg = arg;
	r->deadline = clock_mono_ms() + SECRET_CMD_TIMEOUT * 1000;
	r->rd = event_new(base, r->fd, EV_READ | EV_PERSIST, read_cb, r);
	r->timer = evtimer_new(base, reap_cb, r);
	event_add(r->rd, &tv);
	return r;
}

void
secret_cancel(struct secret_req **rp)
{
	struct secret_req *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	buf_free_secret(r->out);
	req_free(r);
}
