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

#include "haul/clock.h"
#include "haul/log.h"
#include "haul/secret.h"

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
