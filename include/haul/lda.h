/* ISC licence; see LICENSE. */
#ifndef HAUL_LDA_H
#define HAUL_LDA_H

#include <sys/types.h>

#include <event2/event.h>

/*
 * Delivery through a local delivery agent (dovecot-lda, procmail,
 * maildrop): execve of an argv built from the configured template, never
 * a shell; the message on stdin (a complete file, never a pipe that a
 * dying hauld could cut); the exit status decides.
 */

enum lda_outcome {
	LDA_DELIVERED,		/* exit 0 */
	LDA_TEMPFAIL,		/* EX_TEMPFAIL (75), a signal, a timeout, a
				   failure to start: retry later */
	LDA_REFUSED,		/* any other exit status: permanent */
};

struct lda_result {
	enum lda_outcome outcome;
	int		 status;	/* exit code, or signal number */
	int		 signaled;
	char		 why[512];	/* sanitised, for the log */
};

/* Pulls the message: returns bytes written to dst, 0 at the end, -1. */
typedef ssize_t (*lda_read_fn)(void *arg, void *dst, size_t len);

struct lda_params {
	char * const	*argv_template;	/* %u recipient, %a account, %i uid */
	const char	*recipient;
	const char	*account;
	const char	*uid;
	unsigned	 timeout;	/* seconds for the whole run */
	lda_read_fn	 read;
	void		*read_arg;
};

typedef void (*lda_done_fn)(void *arg, const struct lda_result *);

struct lda_run;

/*
 * Expand one template argument; returns an allocated string or NULL on an
 * unknown placeholder.  Exposed for tests.
 */
char		*lda_expand(const char *tmpl, const char *recipient,
		    const char *account, const char *uid);
/*
 * Start the agent.  done is called exactly once, from the loop (never
 * from inside lda_start).  Returns NULL only if nothing was started and
 * done will not be called (the caller treats it as a temporary failure).
 */
struct lda_run	*lda_start(struct event_base *, const struct lda_params *,
		    lda_done_fn done, void *arg);
/*
 * Directory for the unlinked file that holds the message for the agent's
 * stdin (hauld: state_dir/spool; default /tmp).
 */
void		 lda_set_tmpdir(const char *dir);
/* Kill the agent (SIGKILL) and forget it; done is not called. */
void		 lda_cancel(struct lda_run **);
/* Route a SIGCHLD: reap every exited child that belongs to an lda_run. */
void		 lda_reap(void);
/* Map an exit status (as from waitpid) to an outcome. */
enum lda_outcome lda_classify(int wstatus);

#endif
