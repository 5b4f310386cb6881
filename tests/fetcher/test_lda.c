/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "haul/lda.h"

struct src {
	const char	*data;
	size_t		 len, off;
};

static ssize_t
src_read(void *arg, void *dst, size_t n)
{
	struct src	*s = arg;
	size_t		 c = s->len - s->off < n ? s->len - s->off : n;

	memcpy(dst, s->data + s->off, c);
	s->off += c;
	return (ssize_t)c;
}

struct outcome {
	int		 called;
	struct lda_result res;
	struct event_base *base;
};

static void
done(void *arg, const struct lda_result *r)
{
	struct outcome	*o = arg;

	o->called++;
	o->res = *r;
	event_base_loopbreak(o->base);
}

static void
sigchld_cb(evutil_socket_t fd, short ev, void *arg)
{
	lda_reap();
}

/* Run /bin/sh -c script with msg on stdin (the test's argv is ours). */
static struct outcome
run(const char *script, const char *msg, unsigned timeout)
{
	struct outcome	 o;
	struct src	 s = { msg, strlen(msg), 0 };
	char		*argv[] = { "/bin/sh", "-c", (char *)script, "lda",
			    "%u", "%a", "%i", NULL };
	struct lda_params p = {
		.argv_template = argv, .recipient = "alice@local.test",
		.account = "acme", .uid = "U1", .timeout = timeout,
		.read = src_read, .read_arg = &s,
	};
	struct event	*sig;

	memset(&o, 0, sizeof(o));
	signal(SIGPIPE, SIG_IGN);
	o.base = event_base_new();
	sig = evsignal_new(o.base, SIGCHLD, sigchld_cb, NULL);
	event_add(sig, NULL);
	cr_assert_not_null(lda_start(o.base, &p, done, &o));
	event_base_dispatch(o.base);
	event_free(sig);
	event_base_free(o.base);
	return o;
}

Test(lda, delivers_whole_message_and_expands_args)
{
	char		 path[] = "/tmp/haul-lda-XXXXXX", script[256], got[256];
	struct outcome	 o;
	FILE		*f;
	size_t		 n;
	int		 fd;

	fd = mkstemp(path);
	cr_assert_neq(fd, -1);
	close(fd);
	snprintf(script, sizeof(script),
	    "{ echo \"$1 $2 $3\"; cat; } > %s", path);
	o = run(script, "Subject: x\r\n\r\nbody\r\n", 10);
	cr_assert_eq(o.called, 1);
	cr_assert_eq(o.res.outcome, LDA_DELIVERED, "%s", o.res.why);
	f = fopen(path, "r");
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	unlink(path);
	cr_assert_str_eq(got,
	    "alice@local.test acme U1\nSubject: x\r\n\r\nbody\r\n");
}

Test(lda, tempfail_exit_75)
{
	struct outcome o = run("cat >/dev/null; exit 75", "m\r\n", 10);

	cr_assert_eq(o.res.outcome, LDA_TEMPFAIL);
	cr_assert_eq(o.res.status, 75);
}

Test(lda, other_exit_codes_refuse)
{
	struct outcome o = run("cat >/dev/null; echo 'no such user' >&2; "
	    "exit 67", "m\r\n", 10);

	cr_assert_eq(o.res.outcome, LDA_REFUSED);
	cr_assert_eq(o.res.status, 67);
	cr_assert(strstr(o.res.why, "no such user") != NULL, "%s", o.res.why);
}

Test(lda, signal_is_tempfail)
{
	struct outcome o = run("kill -9 $$", "m\r\n", 10);

	cr_assert_eq(o.res.outcome, LDA_TEMPFAIL);
	cr_assert(o.res.signaled);
}

Test(lda, timeout_is_tempfail)
{
	struct outcome o = run("sleep 30", "m\r\n", 1);

	cr_assert_eq(o.res.outcome, LDA_TEMPFAIL);
	cr_assert(strstr(o.res.why, "timed out") != NULL);
}

/* The agent's own children die with it on timeout (its process group). */
Test(lda, timeout_kills_the_agents_children)
{
	time_t		 t0 = time(NULL);
	struct outcome	 o = run("cat >/dev/null; sleep 30; exit 0", "m\r\n", 1);

	cr_assert_eq(o.res.outcome, LDA_TEMPFAIL, "%s", o.res.why);
	cr_assert(strstr(o.res.why, "timed out") != NULL, "%s", o.res.why);
	cr_assert_lt(time(NULL) - t0, 10, "waited for the agent's child");
}

/* An agent that exits 0 but leaves a child holding stderr: delivered. */
Test(lda, exit_status_stands_when_a_child_holds_stderr)
{
	time_t		 t0 = time(NULL);
	struct outcome	 o = run("cat >/dev/null; sleep 30 & exit 0", "m\r\n",
	    20);

	cr_assert_eq(o.called, 1);
	cr_assert_eq(o.res.outcome, LDA_DELIVERED, "%s", o.res.why);
	cr_assert_lt(time(NULL) - t0, 10, "waited for the agent's child");
}

Test(lda, early_stdin_close_uses_exit_status)
{
	static char	 big[1 << 20];
	struct outcome	 o;

	memset(big, 'a', sizeof(big) - 1);
	o = run("exec 0<&-; exit 0", big, 10);
	cr_assert_eq(o.called, 1);
	cr_assert_eq(o.res.outcome, LDA_DELIVERED);
	o = run("head -c 10 >/dev/null; exit 1", big, 10);
	cr_assert_eq(o.res.outcome, LDA_REFUSED);
}

Test(lda, exit_127_refused_and_classification)
{
	struct outcome o = run("exec /nonexistent/lda", "m\r\n", 10);

	cr_assert_eq(o.res.outcome, LDA_REFUSED, "sh reports 127");
	cr_assert_eq(lda_classify(75 << 8), LDA_TEMPFAIL);
	cr_assert_eq(lda_classify(0), LDA_DELIVERED);
	cr_assert_eq(lda_classify(9), LDA_TEMPFAIL, "killed by SIGKILL");
}

Test(lda, expand_placeholders)
{
	char	*s;

	s = lda_expand("-d%u/%a/%i/100%%", "bob", "acct", "7");
	cr_assert_str_eq(s, "-dbob/acct/7/100%");
	free(s);
	cr_assert_null(lda_expand("%x", "bob", "acct", "7"));
	cr_assert_null(lda_expand("trailing%", "bob", "acct", "7"));
}
