/* ISC licence; see LICENSE. */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/priv.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

enum priv_plan
priv_plan(uid_t euid, int has_user, uid_t uid)
{
	if (euid == 0)
		return has_user && uid != 0 ? PRIV_DROP : PRIV_REFUSE_ROOT;
	if (!has_user || uid == euid)
		return PRIV_STAY;
	return PRIV_REFUSE_OTHER;
}

int
priv_setup(const char *user, const char *group, const char *what,
    struct priv_ids *ids, struct buf *err)
{
	struct passwd	*pw;
	struct group	*gr;
	uid_t		 euid = geteuid();

	memset(ids, 0, sizeof(*ids));
	ids->uid = euid;
	ids->gid = getegid();
	if (user != NULL) {
		if ((pw = getpwnam(user)) == NULL) {
			buf_addf(err, "%s %s: no such user", what, user);
			return -1;
		}
		if (str_lcpy(ids->user, user, sizeof(ids->user)) >=
		    sizeof(ids->user)) {
			buf_addf(err, "%s %s: name too long", what, user);
			return -1;
		}
		ids->uid = pw->pw_uid;
		ids->gid = pw->pw_gid;
		ids->has_user = 1;
	}
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			buf_addf(err, "%s group %s: no such group", what, group);
			return -1;
		}
		ids->gid = gr->gr_gid;
		ids->has_group = 1;
	}
	ids->plan = priv_plan(euid, ids->has_user, ids->uid);
	/* Group 0 owns much of /etc and /var: as good as root to keep. */
	if (ids->plan == PRIV_DROP && ids->gid == 0) {
		buf_addf(err, "%s%s%s: group 0 (root) is not an unprivileged "
		    "group; set a group", what, ids->has_group ? " group " :
		    " ", ids->has_group ? group : user);
		return -1;
	}
	switch (ids->plan) {
	case PRIV_REFUSE_ROOT:
		if (ids->has_user)
			buf_addf(err, "%s %s is root: name an unprivileged "
			    "user", what, user);
		else
			buf_addf(err, "refusing to run as root: set %s to the "
			    "unprivileged user to become", what);
		return -1;
	case PRIV_REFUSE_OTHER:
		buf_addf(err, "%s is %s but we run as uid %u and are not root, "
		    "so cannot become %s", what, user, (unsigned)euid, user);
		return -1;
	case PRIV_STAY:
	case PRIV_DROP:
		break;
	}
	return 0;
}

int
priv_own_dir(const struct priv_ids *ids, const char *dir, int created,
    struct buf *err)
{
	struct stat	 st;
	int		 fd;

	if (ids->plan != PRIV_DROP)
		return 0;
	/* The directory itself, never what a symbolic link points to. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		buf_addf(err, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		buf_addf(err, "%s: %s", dir, strerror(errno));
		close(fd);
		return -1;
	}
	if (st.st_uid == ids->uid) {
		close(fd);
		return 0;
	}
	if (!created) {
		buf_addf(err, "%s belongs to uid %u, not to %s (uid %u) whom "
		    "we run as: chown -R %s %s", dir, (unsigned)st.st_uid,
		    ids->user, (unsigned)ids->uid, ids->user, dir);
		close(fd);
		return -1;
	}
	if (fchown(fd, ids->uid, ids->gid) == -1) {
		buf_addf(err, "chown %s to %s: %s", dir, ids->user,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
priv_drop(const struct priv_ids *ids, struct buf *err)
{
	uid_t	 ruid, euid, suid;
	gid_t	 rgid, egid, sgid;

	if (ids->plan != PRIV_DROP)
		return 0;
	/* Groups first: once the uid is gone we may no longer set them. */
	if (initgroups(ids->user, ids->gid) == -1) {
		buf_addf(err, "initgroups %s: %s", ids->user, strerror(errno));
		return -1;
	}
	{
		/* initgroups may have added group 0 from /etc/group. */
		int	 i, n = getgroups(0, NULL), root = 0;
		gid_t	*g;

		if (n < 0 || n > NGROUPS_MAX) {
			buf_addf(err, "getgroups: %s", strerror(errno));
			return -1;
		}
		g = xcalloc((size_t)n + 1, sizeof(*g));
		n = getgroups(n, g);
		for (i = 0; i < n; i++)
			if (g[i] == 0)
				root = 1;
		free(g);
		if (n < 0 || root) {
			buf_addf(err, "%s is a member of group 0 (root), or its "
			    "groups cannot be read: refusing", ids->user);
			return -1;
		}
	}
	if (setresgid(ids->gid, ids->gid, ids->gid) == -1) {
		buf_addf(err, "setresgid %u: %s", (unsigned)ids->gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(ids->uid, ids->uid, ids->uid) == -1) {
		buf_addf(err, "setresuid %s: %s", ids->user, strerror(errno));
		return -1;
	}
	/* Trust, but verify: none of the ids may still be root's. */
	if (getresuid(&ruid, &euid, &suid) == -1 ||
	    getresgid(&rgid, &egid, &sgid) == -1 ||
	    ruid != ids->uid || euid != ids->uid || suid != ids->uid ||
	    rgid != ids->gid || egid != ids->gid || sgid != ids->gid) {
		buf_addf(err, "the user or group did not change as asked");
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		buf_addf(err, "could regain root after dropping it");
		return -1;
	}
	if (ids->gid != 0 && (setgid(0) != -1 || setegid(0) != -1)) {
		buf_addf(err, "could regain group 0 after dropping it");
		return -1;
	}
	return 0;
}
