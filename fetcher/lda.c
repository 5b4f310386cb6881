/* ISC licence; see LICENSE. */
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/lda.h"
#include "haul/killpoint.h"
#include "haul/log.h"
#include "haul/xmalloc.h"

#define LDA_MAX_ARGS	64
#define LDA_STDERR_MAX	400	/* kept for the log line */
#define LDA_STDERR_GRACE 2	/* s to wait for stderr after the agent exits */
#define LDA_CHUNK	(64 * 1024)

struct lda_run {
	struct event_base *base;
	pid_t		 pid;
	int		 msg_fd;	/* the child's stdin: the whole message */
	off_t		 msg_size;
	int		 err_fd;	/* our end of the child's stderr */
	struct event	*err_ev;
	struct event	*timer;
	struct event	*finish_ev;
	int		 exited;
	int		 wstatus;
	int		 timed_out;
	char		 err_text[LDA_STDERR_MAX + 1];
	size_t		 err_len;
	char		*account;
	lda_done_fn	 done;
	void		*done_arg;
	struct lda_run	*next;
};

/* Children still running, for lda_reap(). */
static struct lda_run *runs;
/* Where the message file for the agent's stdin is made (lda_set_tmpdir). */
static char	*msg_dir;

void
lda_set_tmpdir(const char *dir)
{
	free(msg_dir);
	msg_dir = dir != NULL ? xstrdup(dir) : NULL;
}

char *
lda_expand(const char *t, const char *rcpt, const char *acct,
    const char *uid)
{
	struct buf	 b = BUF_INIT;

	for (; *t != '\0'; t++) {
		if (*t != '%') {
			buf_add_byte(&b, (unsigned char)*t);
			continue;
		}
		switch (*++t) {
		case 'u': buf_add_str(&b, rcpt != NULL ? rcpt : ""); break;
		case 'a': buf_add_str(&b, acct != NULL ? acct : ""); break;
		case 'i': buf_add_str(&b, uid != NULL ? uid : ""); break;
		case '%': buf_add_byte(&b, '%'); break;
		default:
			buf_free(&b);
			return NULL;
		}
	}
	return buf_steal(&b);
}

enum lda_outcome
lda_classify(int ws)
{
	if (WIFEXITED(ws)) {
		if (WEXITSTATUS(ws) == 0)
			return LDA_DELIVERED;
		if (WEXITSTATUS(ws) == EX_TEMPFAIL)
			return LDA_TEMPFAIL;
		return LDA_REFUSED;
	}
	/* Killed by a signal (OOM, a crash): the message may be fine. */
	return LDA_TEMPFAIL;
}

static void
unlink_run(struct lda_run *r)
{
	struct lda_run **pp;

	for (pp = &runs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void
free_run(struct lda_run *r)
{
	if (r->msg_fd != -1)
		close(r->msg_fd);
	if (r->err_ev != NULL)
		event_free(r->err_ev);
	if (r->err_fd != -1)
		close(r->err_fd);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->finish_ev != NULL)
		event_free(r->finish_ev);
	free(r->account);
	free(r);
}

/* Report once both the child has exited and its stderr is drained. */
static void
maybe_finish(struct lda_run *r)
{
	if (r->exited && r->err_fd == -1)
		event_active(r->finish_ev, EV_TIMEOUT, 0);
}

static void
finish_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lda_run	*r = arg;
	struct lda_result res;
	char		 errtxt[LDA_STDERR_MAX];

	memset(&res, 0, sizeof(res));
	KILLPOINT("lda.exited");
	log_printable(errtxt, sizeof(errtxt), r->err_text, r->err_len);
	if (r->timed_out) {
		res.outcome = LDA_TEMPFAIL;
		snprintf(res.why, sizeof(res.why), "delivery agent timed out");
	} else if (WIFSIGNALED(r->wstatus)) {
		res.outcome = LDA_TEMPFAIL;
		res.signaled = 1;
		res.status = WTERMSIG(r->wstatus);
		snprintf(res.why, sizeof(res.why),
		    "delivery agent killed by signal %d%s%s", res.status,
		    r->err_len ? ": " : "", errtxt);
	} else {
		res.status = WEXITSTATUS(r->wstatus);
		res.outcome = lda_classify(r->wstatus);
		/*
		 * An agent that exits 0 without reading the whole message
		 * may have stored a truncated copy; we cannot know, so
		 * trust its word (as every MDA caller does) but say so.
		 * It shares our file offset, which tells how far it read.
		 */
		if (res.outcome == LDA_DELIVERED &&
		    lseek(r->msg_fd, 0, SEEK_CUR) < r->msg_size)
			log_warnx(r->account, "delivery agent exited 0 "
			    "before reading the whole message");
		snprintf(res.why, sizeof(res.why),
		    "delivery agent exited %d%s%s", res.status,
		    r->err_len ? ": " : "", errtxt);
	}
	unlink_run(r);
	r->done(r->done_arg, &res);
	free_run(r);
}

/*
 * The agent runs in a process group of its own, so a timeout or a cancel
 * also ends whatever it started (a shell's `sleep`, a filter): otherwise
 * such a child keeps stderr open and the job never finishes.
 */
static void
kill_agent(struct lda_run *r)
{
	/* Only while the leader is unreaped: its id cannot be reused. */
	if (r->exited)
		return;
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL);
}

static void
timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lda_run	*r = arg;

	if (!r->exited) {
		r->timed_out = 1;
		kill_agent(r);
	} else if (r->err_fd != -1) {
		/*
		 * The agent has exited (its status stands) but something it
		 * left behind still holds stderr open: stop waiting for it.
		 * No kill: that child may still be writing the message the
		 * agent reported delivered, and the group id may be reused
		 * now that the agent is reaped.
		 */
		event_free(r->err_ev);
		r->err_ev = NULL;
		close(r->err_fd);
		r->err_fd = -1;
		maybe_finish(r);
	}
}

static void
err_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct lda_run	*r = arg;
	char		 tmp[512];
	ssize_t		 n;

	n = read(r->err_fd, tmp, sizeof(tmp));
	if (n > 0) {
		size_t	 room = LDA_STDERR_MAX - r->err_len;
		size_t	 c = (size_t)n < room ? (size_t)n : room;

		memcpy(r->err_text + r->err_len, tmp, c);
		r->err_len += c;
		return;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	event_free(r->err_ev);
	r->err_ev = NULL;
	close(r->err_fd);
	r->err_fd = -1;
	maybe_finish(r);
}

/*
 * Write the whole message to an unlinked file that becomes the agent's
 * stdin.  Through a pipe, an agent whose hauld was killed mid-message read
 * EOF where the message was cut and could deliver the truncated copy
 * (found by the crash tests); a file it holds open is complete whatever
 * happens to us.  Returns the descriptor at offset 0, or -1.
 */
static int
message_file(const struct lda_params *p, off_t *sizep)
{
	const char	*dir = msg_dir != NULL ? msg_dir : "/tmp";
	char		*path = NULL, *buf;
	ssize_t		 n, w, off;
	off_t		 size = 0;
	int		 fd = -1;

#ifdef O_TMPFILE
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
	if (fd == -1) {
		xasprintf(&path, "%s/lda.XXXXXX", dir);
		if ((fd = mkostemp(path, O_CLOEXEC)) == -1) {
			log_warn(p->account, "delivery agent: temporary file "
			    "in %s", dir);
			free(path);
			return -1;
		}
		unlink(path);
		free(path);
	}
	buf = xmalloc(LDA_CHUNK);
	for (;;) {
		if ((n = p->read(p->read_arg, buf, LDA_CHUNK)) == 0)
			break;
		if (n < 0) {
			log_warnx(p->account, "cannot read the spooled message "
			    "for the delivery agent");
			goto fail;
		}
		for (off = 0; off < n; off += w)
			if ((w = write(fd, buf + off, (size_t)(n - off))) == -1) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				log_warn(p->account, "delivery agent: writing "
				    "the message file in %s", dir);
				goto fail;
			}
		size += n;
	}
	free(buf);
	if (lseek(fd, 0, SEEK_SET) == -1) {
		log_warn(p->account, "delivery agent: lseek");
		close(fd);
		return -1;
	}
	*sizep = size;
	return fd;
fail:
	free(buf);
	close(fd);
	return -1;
}

struct lda_run *
lda_start(struct event_base *base, const struct lda_params *p,
    lda_done_fn done, void *arg)
{
	struct lda_run	*r;
	struct timeval	 tv;
	char		*argv[LDA_MAX_ARGS + 1];
	int		 msg_fd = -1, err_pipe[2] = { -1, -1 };
	off_t		 msg_size = 0;
	size_t		 i, n;
#ifdef __linux__
	pid_t		 parent = getpid();
#endif

	for (n = 0; p->argv_template[n] != NULL; n++)
		if (n == LDA_MAX_ARGS) {
			log_warnx(p->account, "delivery command has too many "
			    "arguments");
			return NULL;
		}
	for (i = 0; i < n; i++) {
		argv[i] = lda_expand(p->argv_template[i], p->recipient,
		    p->account, p->uid);
		if (argv[i] == NULL) {
			log_warnx(p->account, "delivery command: unknown "
			    "placeholder in %s", p->argv_template[i]);
			while (i > 0)
				free(argv[--i]);
			return NULL;
		}
	}
	argv[n] = NULL;

	if ((msg_fd = message_file(p, &msg_size)) == -1)
		goto fail;
	if (pipe2(err_pipe, O_CLOEXEC) == -1) {
		log_warn(p->account, "pipe");
		goto fail;
	}
	r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->msg_fd = msg_fd;
	r->msg_size = msg_size;
	r->err_fd = err_pipe[0];
	r->done = done;
	r->done_arg = arg;
	r->account = p->account != NULL ? xstrdup(p->account) : NULL;

	switch (r->pid = fork()) {
	case -1:
		log_warn(p->account, "fork");
		close(err_pipe[1]);
		free_run(r);		/* closes msg_fd and err_pipe[0] */
		msg_fd = err_pipe[0] = err_pipe[1] = -1;
		goto fail;
	case 0:
		setpgid(0, 0);
#ifdef __linux__
		/*
		 * Die with hauld: its restart delivers the message again, so
		 * an agent finishing on its own would be a duplicate.  Only a
		 * narrowing: the flag is cleared by a set-id exec and is not
		 * inherited; what makes a cut copy impossible is the whole
		 * message file on stdin.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(EX_TEMPFAIL);
#endif
		/* Child: stdin from the message file, stdout to /dev/null,
		 * stderr to us; default signal dispositions; then execve. */
		if (dup2(msg_fd, STDIN_FILENO) == -1 ||
		    dup2(err_pipe[1], STDERR_FILENO) == -1)
			_exit(EX_TEMPFAIL);
		{
			int	 devnull = open("/dev/null", O_WRONLY);

			if (devnull == -1 ||
			    dup2(devnull, STDOUT_FILENO) == -1)
				_exit(EX_TEMPFAIL);
		}
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		{
			sigset_t	 none;

			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
		}
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "cannot execute %s: %s", argv[0],
		    strerror(errno));
		_exit(EX_TEMPFAIL);
	}
	/* Also in the parent, so no kill can race the child's setpgid. */
	setpgid(r->pid, r->pid);
	close(err_pipe[1]);
	KILLPOINT("lda.started");
	for (i = 0; i < n; i++)
		free(argv[i]);
	fcntl(r->err_fd, F_SETFL, fcntl(r->err_fd, F_GETFL) | O_NONBLOCK);
	r->err_ev = event_new(base, r->err_fd, EV_READ | EV_PERSIST, err_cb,
	    r);
	r->timer = evtimer_new(base, timeout_cb, r);
	r->finish_ev = event_new(base, -1, 0, finish_cb, r);
	event_add(r->err_ev, NULL);
	tv.tv_sec = p->timeout > 0 ? p->timeout : 600;
	tv.tv_usec = 0;
	evtimer_add(r->timer, &tv);
	r->next = runs;
	runs = r;
	return r;
fail:
	for (i = 0; i < n; i++)
		free(argv[i]);
	if (msg_fd != -1)
		close(msg_fd);
	for (i = 0; i < 2; i++)
		if (err_pipe[i] != -1)
			close(err_pipe[i]);
	return NULL;
}

void
lda_cancel(struct lda_run **rp)
{
	struct lda_run	*r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (!r->exited) {
		kill_agent(r);
		waitpid(r->pid, NULL, 0);
	}
	unlink_run(r);
	free_run(r);
}

void
lda_reap(void)
{
	struct lda_run	*r;
	int		 ws;

	for (r = runs; r != NULL; r = r->next) {
		if (r->exited)
			continue;
		if (waitpid(r->pid, &ws, WNOHANG) == r->pid) {
			r->exited = 1;
			r->wstatus = ws;
			if (r->err_fd != -1) {
				/* Give stderr a moment to drain, then stop
				 * waiting for children the agent left. */
				struct timeval	 grace = { LDA_STDERR_GRACE, 0 };

				evtimer_add(r->timer, &grace);
			}
			maybe_finish(r);
		}
	}
}
