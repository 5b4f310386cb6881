/* ISC licence; see LICENSE. */
#ifndef HAUL_PRIV_H
#define HAUL_PRIV_H

#include <sys/types.h>

#include "haul/buf.h"

/*
 * Who hauld and haul-milter run as.  Neither runs as root: started as
 * root they need a configured user, open what needs privileges (sockets,
 * listeners, pid file, state directory), then become that user for good
 * before they touch anything a server or an MTA can influence.
 */

/* What to do at start, decided by priv_plan(). */
enum priv_plan {
	PRIV_STAY,		/* not root; no user, or already that user */
	PRIV_DROP,		/* root with a user: open, then drop */
	PRIV_REFUSE_ROOT,	/* root and no user (or the user is root) */
	PRIV_REFUSE_OTHER,	/* not root and the user is someone else */
};

/* A configured user and group, resolved. */
struct priv_ids {
	char	 user[64];	/* "" if none is configured */
	uid_t	 uid;		/* meaningful if has_user */
	gid_t	 gid;		/* the group's, else the user's primary */
	int	 has_user;
	int	 has_group;
	enum priv_plan plan;
};

/*
 * The pure decision: euid is the process's, has_user says whether a user
 * is configured and uid is that user's.
 */
enum priv_plan	 priv_plan(uid_t euid, int has_user, uid_t uid);

/*
 * Resolve user and group (either may be NULL) and decide the plan for
 * this process.  what names the options in messages ("user", or
 * "milter.user").  Returns -1 with a message in err if a name does not
 * exist or the plan is a refusal; ids is filled in either way.
 */
int		 priv_setup(const char *user, const char *group,
		    const char *what, struct priv_ids *ids, struct buf *err);

/*
 * PRIV_DROP: make sure the user we will become owns dir, so the store can
 * be opened after the drop.  A directory we just created (created != 0)
 * is given to the user; an existing one must already be theirs (we never
 * chown a directory someone else chose: state_dir = /var would be a
 * disaster).  Refuses a symbolic link.  Other plans: nothing.
 */
int		 priv_own_dir(const struct priv_ids *, const char *dir,
		    int created, struct buf *err);

/*
 * PRIV_DROP: set the supplementary groups, the gid and the uid (real,
 * effective and saved), then check that root cannot be regained.  Any
 * other plan: nothing.  -1 with err set on failure (the caller exits).
 */
int		 priv_drop(const struct priv_ids *, struct buf *err);

#endif
