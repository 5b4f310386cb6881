/* ISC licence; see LICENSE. */
#ifndef HAUL_MILTER_H
#define HAUL_MILTER_H

#include <sys/types.h>

#include <stddef.h>
#include <time.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/milter_decide.h"
#include "haul/milter_shim.h"
#include "haul/token.h"

/*
 * haul-milter's moving parts besides the pure decisions: the immutable
 * configuration snapshot that reloads swap in (plugin/snapshot.c) and the
 * libmilter callbacks (plugin/milter.c).
 */

/* What the watcher compares to notice a changed file. */
struct mfile_id {
	char		*path;
	int		 exists;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
};

struct mwatch {
	struct mfile_id	*f;
	size_t		 n;
};

/*
 * One loaded configuration with its keys.  Immutable once built; threads
 * hold it by reference (msnap_acquire/msnap_release), so a reload never
 * changes what a message in progress sees, and the last holder frees it.
 */
struct msnap {
	unsigned		 refs;		/* under the snapshot lock */
	unsigned long		 generation;
	struct config		*cf;
	struct haul_key		 keys[2];	/* current, previous */
	size_t			 nkeys;
	struct md_policy	 policy;
	struct mwatch		 watch;		/* the files, just after loading */
};

/*
 * Build a snapshot from a loaded config (ownership passes to it; freed on
 * failure): reads key_file and previous_key_file.  Returns NULL with the
 * reasons appended to err.
 */
struct msnap	*msnap_new(struct config *, struct buf *err);
/*
 * Load path and build a snapshot; every problem is logged.  NULL on
 * failure.
 */
struct msnap	*msnap_load(const char *path);
/* Make s current, taking the caller's reference.  The old one is released. */
void		 msnap_install(struct msnap *s);
/* A reference to the current snapshot (NULL before the first install). */
struct msnap	*msnap_acquire(void);
void		 msnap_release(struct msnap **);
/* Uninstall the current snapshot (at exit). */
void		 msnap_clear(void);
/*
 * Reload: load path, and install it if it is sound; settings that need a
 * restart (socket, user, ...) are logged when they change.  Returns 0 or
 * -1 (the old snapshot stays).
 */
int		 msnap_reload(const char *path);

/* Stat every file the configuration came from, plus the key files. */
void		 mwatch_scan(struct mwatch *, const struct config *);
void		 mwatch_free(struct mwatch *);
void		 mwatch_copy(struct mwatch *dst, const struct mwatch *src);
int		 mwatch_equal(const struct mwatch *, const struct mwatch *);

/*
 * The reloader thread: reloads path on SIGUSR1, or when a watched file
 * (every config file read, the key files) has changed and then stayed
 * the same for one more interval of interval_ms, so a half-written file
 * is not read.  SIGUSR1 must be blocked in every thread: reloader_start()
 * blocks it in the caller, so call it before any other thread exists.
 * applied (may be NULL) runs after every successful reload.
 */
int		 reloader_start(const char *path, unsigned interval_ms,
		     void (*applied)(const struct msnap *));
void		 reloader_stop(void);
/* Ask for a reload now, as SIGUSR1 does (tests). */
void		 reloader_kick(void);

/*
 * The callbacks.  milter_desc() fills the libmilter registration;
 * milter_set_shim() swaps the backend (tests).  milter_busy() counts
 * messages between MAIL FROM and their end, for a clean shutdown.
 */
void		 milter_desc(struct smfiDesc *);
void		 milter_set_shim(const struct milter_shim *);
/*
 * The MTA connects over TCP (inet: socket).  Then every stage the MTA
 * sends gets a reply: a packet left unanswered is ACKed only after the
 * delayed-ACK timeout, and the MTA's Nagle algorithm holds its next
 * packet until then (40 ms a message).  Over unix sockets the milter
 * skips DATA and asks for no replies before end of message.
 */
void		 milter_set_tcp(int);
unsigned	 milter_busy(void);

#define MILTER_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT | \
			 SMFIF_DELRCPT)
#define MILTER_NOSTEPS	(SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOEOH | \
			 SMFIP_NOUNKNOWN | SMFIP_NODATA)
#define MILTER_NOREPLY	(SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
			 SMFIP_NR_HDR)

sfsistat	 mlt_negotiate(SMFICTX *, unsigned long, unsigned long,
		     unsigned long, unsigned long, unsigned long *,
		     unsigned long *, unsigned long *, unsigned long *);
sfsistat	 mlt_connect(SMFICTX *, char *, struct sockaddr *);
sfsistat	 mlt_envfrom(SMFICTX *, char **);
sfsistat	 mlt_envrcpt(SMFICTX *, char **);
sfsistat	 mlt_header(SMFICTX *, char *, char *);
sfsistat	 mlt_eom(SMFICTX *);
sfsistat	 mlt_abort(SMFICTX *);
sfsistat	 mlt_close(SMFICTX *);

#endif
