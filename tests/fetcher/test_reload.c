/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/config.h"
#include "haul/reload.h"

/*
 * The reload plan: which accounts are added, removed, changed or kept.
 * Accounts are built in memory (only the fields the test varies); the
 * comparison itself is covered by tests/lib/test_config_equal.c.
 */

static char	*folders_inbox[] = { "INBOX", NULL };

static void
mk(struct config_account *a, const char *name, unsigned interval)
{
	memset(a, 0, sizeof(*a));
	a->name = (char *)name;
	a->host = "mail.example";
	a->user = "u";
	a->folders = folders_inbox;
	a->enabled = 1;
	a->poll_interval = interval;
}

static size_t
act_of(const struct reload_plan *p, size_t i)
{
	return (size_t)p->act[i];
}

Test(reload_plan, add_remove_change_keep)
{
	struct config_account old[4], new[4];
	struct reload_plan p;

	mk(&old[0], "keep", 300);
	mk(&old[1], "gone", 300);
	mk(&old[2], "change", 300);
	mk(&old[3], "moved", 300);
	/* Different order, one added, one removed, one changed. */
	mk(&new[0], "moved", 300);
	mk(&new[1], "fresh", 300);
	mk(&new[2], "change", 60);
	mk(&new[3], "keep", 300);
	reload_plan(old, 4, new, 4, &p);
	cr_assert_eq(p.nadded, 1);
	cr_assert_eq(p.nremoved, 1);
	cr_assert_eq(p.nchanged, 1);
	cr_assert_eq(p.nkept, 2);
	cr_assert_eq(act_of(&p, 0), RELOAD_KEEP);
	cr_assert_eq(p.old_of[0], 3);
	cr_assert_eq(act_of(&p, 1), RELOAD_ADD);
	cr_assert_eq(act_of(&p, 2), RELOAD_CHANGE);
	cr_assert_eq(p.old_of[2], 2);
	cr_assert_eq(act_of(&p, 3), RELOAD_KEEP);
	cr_assert_eq(p.old_of[3], 0);
	cr_assert_eq(p.removed[0], 1);
	reload_plan_free(&p);
}

Test(reload_plan, empty_sides)
{
	struct config_account a[2];
	struct reload_plan p;

	mk(&a[0], "x", 300);
	mk(&a[1], "y", 300);
	reload_plan(NULL, 0, a, 2, &p);
	cr_assert_eq(p.nadded, 2);
	cr_assert_eq(p.nremoved + p.nkept + p.nchanged, 0);
	reload_plan_free(&p);
	reload_plan(a, 2, NULL, 0, &p);
	cr_assert_eq(p.nremoved, 2);
	cr_assert_eq(p.removed[0], 0);
	cr_assert_eq(p.removed[1], 1);
	cr_assert_eq(p.nadded + p.nkept + p.nchanged, 0);
	reload_plan_free(&p);
	reload_plan(NULL, 0, NULL, 0, &p);
	cr_assert_eq(p.nadded + p.nremoved + p.nkept + p.nchanged, 0);
	reload_plan_free(&p);
}

/* The design point: 10,000 accounts; every one classified exactly once. */
Test(reload_plan, ten_thousand_accounts)
{
	enum { N = 10000 };
	struct config_account *old, *new;
	struct reload_plan p;
	char		(*on)[16], (*nn)[16];
	size_t		 i, seen_removed = 0;

	old = calloc(N, sizeof(*old));
	new = calloc(N, sizeof(*new));
	on = calloc(N, sizeof(*on));
	nn = calloc(N, sizeof(*nn));
	cr_assert(old && new && on && nn);
	for (i = 0; i < N; i++) {
		/* old: acct0..acct9999; new: acct500..acct10499, reversed */
		snprintf(on[i], sizeof(on[i]), "acct%zu", i);
		mk(&old[i], on[i], 300);
		snprintf(nn[i], sizeof(nn[i]), "acct%zu", N + 499 - i);
		mk(&new[i], nn[i], (N + 499 - i) % 100 == 0 ? 600 : 300);
	}
	reload_plan(old, N, new, N, &p);
	cr_assert_eq(p.nadded, 500);
	cr_assert_eq(p.nremoved, 500);
	/* acct500..acct9999 stay: those divisible by 100 changed. */
	cr_assert_eq(p.nchanged, 95);
	cr_assert_eq(p.nkept, 9500 - 95);
	for (i = 0; i < N; i++) {
		if (p.act[i] == RELOAD_ADD)
			continue;
		cr_assert_str_eq(old[p.old_of[i]].name, new[i].name);
	}
	for (i = 0; i < p.nremoved; i++) {
		cr_assert_lt(p.removed[i], 500);
		seen_removed += p.removed[i];
	}
	cr_assert_eq(seen_removed, 499 * 500 / 2);
	reload_plan_free(&p);
	free(old);
	free(new);
	free(on);
	free(nn);
}
