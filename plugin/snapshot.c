/* ISC licence; see LICENSE. */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/milter.h"
#include "haul/token.h"
#include "haul/xmalloc.h"

/*
 * The current snapshot and its reference counts live under one mutex:
 * taking a reference is a pointer copy and an increment, so the lock is
 * held for nanoseconds and a reload (which builds the new snapshot before
 * taking it) never stalls a message.
 */
static pthread_mutex_t	 snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct msnap	*snap_current;
static unsigned long	 snap_generation;

static void
msnap_free(struct msnap *s)
{
	size_t	 i;

	md_policy_free(&s->policy);
	mwatch_free(&s->watch);
	for (i = 0; i < 2; i++)
		key_free(&s->keys[i]);
	config_free(&s->cf);
	free(s);
}

struct msnap *
msnap_new(struct config *cf, struct buf *err)
{
	struct msnap	*s;

	s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->cf = cf;
	/* Before the keys are read, so a key replaced meanwhile shows. */
	mwatch_scan(&s->watch, cf);
	if (key_load(cf->global.key_file, &s->keys[0], err) == -1)
		goto fail;
	s->nkeys = 1;
	if (cf->global.previous_key_file != NULL) {
		if (key_load(cf->global.previous_key_file, &s->keys[1],
		    err) == -1)
			goto fail;
		s->nkeys = 2;
	}
	md_policy_init(&s->policy, cf, s->keys, s->nkeys);
	return s;
fail:
	msnap_free(s);
	return NULL;
}

struct msnap *
msnap_load(const char *path)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	struct msnap		*s;
	struct buf		 err = BUF_INIT;
	size_t			 i;

	cf = config_load(path, &errs);
	for (i = 0; i < errs.n; i++)
		log_warnx(NULL, "%s", errs.msgs[i]);
	config_errors_free(&errs);
	if (cf == NULL)
		return NULL;
	if ((s = msnap_new(cf, &err)) == NULL)
		log_warnx(NULL, "%s", err.data != NULL ? err.data :
		    "cannot load the keys");
	buf_free(&err);
	return s;
}

void
msnap_install(struct msnap *s)
{
	struct msnap	*old;

	pthread_mutex_lock(&snap_lock);
	s->generation = ++snap_generation;
	old = snap_current;
	snap_current = s;
	pthread_mutex_unlock(&snap_lock);
	msnap_release(&old);
}

struct msnap *
msnap_acquire(void)
{
	struct msnap	*s;

	pthread_mutex_lock(&snap_lock);
	if ((s = snap_current) != NULL)
		s->refs++;
	pthread_mutex_unlock(&snap_lock);
	return s;
}

void
msnap_release(struct msnap **sp)
{
	struct msnap	*s = *sp;
	unsigned	 left;

	if (s == NULL)
		return;
	*sp = NULL;
	pthread_mutex_lock(&snap_lock);
	left = --s->refs;
	pthread_mutex_unlock(&snap_lock);
	if (left == 0)
		msnap_free(s);
}

void
msnap_clear(void)
{
	struct msnap	*old;

	pthread_mutex_lock(&snap_lock);
	old = snap_current;
	snap_current = NULL;
	pthread_mutex_unlock(&snap_lock);
	msnap_release(&old);
}

static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* Settings that only a restart applies: say so rather than ignore them. */
static void
warn_restart(const struct config *o, const struct config *n)
{
	const struct config_milter *a = &o->milter, *b = &n->milter;

	if (str_differs(a->socket, b->socket))
		log_warnx(NULL, "milter.socket changed: restart to apply");
	if (a->socket_mode != b->socket_mode)
		log_warnx(NULL, "milter.socket_mode changed: restart to apply");
	if (str_differs(a->user, b->user) || str_differs(a->group, b->group))
		log_warnx(NULL, "milter.user/group changed: restart to apply");
	if (a->timeout != b->timeout)
		log_warnx(NULL, "milter.timeout changed: restart to apply");
	if (str_differs(o->global.log_facility, n->global.log_facility))
		log_warnx(NULL, "global.log_facility changed: restart to "
		    "apply");
}

int
msnap_reload(const char *path)
{
	struct msnap	*s, *old;

	if ((s = msnap_load(path)) == NULL) {
		log_warnx(NULL, "reload of %s failed: keeping the running "
		    "configuration", path);
		return -1;
	}
	if ((old = msnap_acquire()) != NULL) {
		warn_restart(old->cf, s->cf);
		msnap_release(&old);
	}
	msnap_install(s);
	log_info(NULL, "configuration reloaded from %s: %zu account(s), %zu "
	    "key(s)", path, s->cf->naccounts, s->nkeys);
	return 0;
}

static void
add_id(struct mwatch *w, const char *path)
{
	struct mfile_id	*f;
	struct stat	 st;

	w->f = xreallocarray(w->f, w->n + 1, sizeof(*w->f));
	f = &w->f[w->n++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	if (stat(path, &st) == -1)
		return;
	f->exists = 1;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
}

void
mwatch_scan(struct mwatch *w, const struct config *cf)
{
	size_t	 i;

	memset(w, 0, sizeof(*w));
	for (i = 0; cf->files != NULL && cf->files[i] != NULL; i++)
		add_id(w, cf->files[i]);
	if (cf->global.key_file != NULL)
		add_id(w, cf->global.key_file);
	if (cf->global.previous_key_file != NULL)
		add_id(w, cf->global.previous_key_file);
}

void
mwatch_free(struct mwatch *w)
{
	size_t	 i;

	for (i = 0; i < w->n; i++)
		free(w->f[i].path);
	free(w->f);
	w->f = NULL;
	w->n = 0;
}

int
mwatch_equal(const struct mwatch *a, const struct mwatch *b)
{
	const struct mfile_id *x, *y;
	size_t	 i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		x = &a->f[i];
		y = &b->f[i];
		if (strcmp(x->path, y->path) != 0 || x->exists != y->exists ||
		    x->dev != y->dev || x->ino != y->ino ||
		    x->size != y->size ||
		    x->mtime.tv_sec != y->mtime.tv_sec ||
		    x->mtime.tv_nsec != y->mtime.tv_nsec)
			return 0;
	}
	return 1;
}

void
mwatch_copy(struct mwatch *dst, const struct mwatch *src)
{
	size_t	 i;

	dst->n = src->n;
	dst->f = xcalloc(src->n + 1, sizeof(*dst->f));
	for (i = 0; i < src->n; i++) {
		dst->f[i] = src->f[i];
		dst->f[i].path = xstrdup(src->f[i].path);
	}
}
