/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "haul/priv.h"

Test(priv, plan)
{
	/* Root: only with an unprivileged user to become. */
	cr_assert_eq(priv_plan(0, 0, 0), PRIV_REFUSE_ROOT);
	cr_assert_eq(priv_plan(0, 1, 0), PRIV_REFUSE_ROOT);
	cr_assert_eq(priv_plan(0, 1, 999), PRIV_DROP);
	/* Not root: run as we are, or as the user if that is us. */
	cr_assert_eq(priv_plan(1000, 0, 0), PRIV_STAY);
	cr_assert_eq(priv_plan(1000, 1, 1000), PRIV_STAY);
	cr_assert_eq(priv_plan(1000, 1, 999), PRIV_REFUSE_OTHER);
	cr_assert_eq(priv_plan(1000, 1, 0), PRIV_REFUSE_OTHER);
}

Test(priv, setup_refuses_root_without_user)
{
	struct priv_ids	 ids;
	struct buf	 err = BUF_INIT;
	int		 rv = priv_setup(NULL, NULL, "user", &ids, &err);

	if (geteuid() == 0) {
		cr_assert_eq(rv, -1);
		cr_assert_eq(ids.plan, PRIV_REFUSE_ROOT);
		cr_assert(strstr(err.data, "refusing to run as root") != NULL,
		    "%s", err.data);
	} else {
		cr_assert_eq(rv, 0);
		cr_assert_eq(ids.plan, PRIV_STAY);
	}
	buf_free(&err);
}

Test(priv, setup_unknown_names)
{
	struct priv_ids	 ids;
	struct buf	 err = BUF_INIT;

	cr_assert_eq(priv_setup("no-such-user-h7q", NULL, "milter.user",
	    &ids, &err), -1);
	cr_assert(strstr(err.data, "milter.user no-such-user-h7q: no such "
	    "user") != NULL, "%s", err.data);
	buf_reset(&err);
	cr_assert_eq(priv_setup("root", "no-such-group-h7q", "user", &ids,
	    &err), -1);
	cr_assert(strstr(err.data, "no such group") != NULL, "%s", err.data);
	buf_free(&err);
}

Test(priv, drop_does_nothing_unless_planned)
{
	struct priv_ids	 ids;
	struct buf	 err = BUF_INIT;

	memset(&ids, 0, sizeof(ids));
	ids.plan = PRIV_STAY;
	cr_assert_eq(priv_drop(&ids, &err), 0);
	cr_assert_eq(priv_own_dir(&ids, "/nonexistent-h7q", 0, &err), 0);
	buf_free(&err);
}

/* Criterion runs each test in a process of its own: this one may drop. */
Test(priv, drop_for_real_when_root)
{
	struct priv_ids	 ids;
	struct buf	 err = BUF_INIT;
	struct passwd	*pw = getpwnam("nobody");
	uid_t		 r, e, s;

	if (geteuid() != 0 || pw == NULL)
		cr_skip_test("needs root and the user nobody");
	cr_assert_eq(priv_setup("nobody", NULL, "user", &ids, &err), 0,
	    "%s", err.data);
	cr_assert_eq(ids.plan, PRIV_DROP);
	cr_assert_eq(priv_drop(&ids, &err), 0, "%s", err.data);
	cr_assert_eq(getresuid(&r, &e, &s), 0);
	cr_assert(r == pw->pw_uid && e == pw->pw_uid && s == pw->pw_uid);
	cr_assert_eq(getegid(), pw->pw_gid);
	cr_assert_eq(setuid(0), -1);
	buf_free(&err);
}
