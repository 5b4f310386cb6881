/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/log.h"
#include "../../lib/config_int.h"

/*
 * The reload's "is this account unchanged?" test.  Every option the
 * loader knows is changed in turn and must make the accounts differ; the
 * struct sizes are checked against what the option tables describe, so a
 * field added to a struct without a table row (and so without a
 * comparison) fails here.
 */

static char	 tdir[] = "/tmp/haul-cfeq-XXXXXX";

static void
setup(void)
{
	char	 p[PATH_MAX];
	FILE	*fp;

	cr_assert_not_null(mkdtemp(tdir));
	snprintf(p, sizeof(p), "%s/pw", tdir);
	cr_assert_not_null(fp = fopen(p, "w"));
	fputs("secret\n", fp);
	fclose(fp);
	chmod(p, 0600);
}

static void
teardown(void)
{
	char	 p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/pw", tdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/main.conf", tdir);
	unlink(p);
	rmdir(tdir);
}

TestSuite(config_equal, .init = setup, .fini = teardown);

static struct config *
load_text(const char *text)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	char			 p[PATH_MAX];
	FILE			*fp;

	snprintf(p, sizeof(p), "%s/main.conf", tdir);
	cr_assert_not_null(fp = fopen(p, "w"));
	fputs(text, fp);
	fclose(fp);
	cf = config_load(p, &errs);
	cr_assert_not_null(cf, "load failed: %s", errs.n ? errs.msgs[0] : "");
	config_errors_free(&errs);
	return cf;
}

#define ACCT(extra) \
	"account a {\n protocol = imap\n host = \"mail.example\"\n" \
	" user = \"u\"\n password_file = \"pw\"\n folders = {\"INBOX\", \"x\"}\n" \
	" deliver_to = {\"u@example.org\"}\n" extra "}\n"

static const struct optdef *
account_opt(size_t i)
{
	return &config_sections[SEC_ACCOUNT].opts[i];
}

Test(config_equal, same_file_twice_is_equal_and_position_does_not_count)
{
	struct config	*a = load_text(ACCT(""));
	struct config	*b = load_text("\n\n# moved down\n" ACCT(""));

	cr_assert_eq(a->naccounts, 1);
	cr_assert_neq(a->accounts[0].line, b->accounts[0].line);
	cr_assert(config_account_equal(&a->accounts[0], &b->accounts[0]));
	cr_assert(config_delivery_equal(&a->delivery, &b->delivery));
	cr_assert_eq(config_global_diff(&a->global, &b->global, NULL, 0), 0);
	config_free(&a);
	config_free(&b);
}

Test(config_equal, real_option_changes_differ)
{
	static const char *const variants[] = {
		ACCT(" poll_interval = 60\n"),
		ACCT(" idle = no\n"),
		ACCT(" keep = no\n"),
		ACCT(" max_message_size = 1M\n"),
		ACCT(" enabled = no\n"),
		ACCT(" move_to = \"Archive\"\n"),
		ACCT(" tls = starttls\n"),
	};
	struct config	*base = load_text(ACCT(""));
	size_t		 i;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		struct config *v = load_text(variants[i]);

		cr_assert_not(config_account_equal(&base->accounts[0],
		    &v->accounts[0]), "variant %zu compared equal", i);
		config_free(&v);
	}
	config_free(&base);
}

Test(config_equal, list_order_and_length_count)
{
	struct config	*a = load_text(ACCT(""));
	struct config	*b = load_text(
	    "account a {\n protocol = imap\n host = \"mail.example\"\n"
	    " user = \"u\"\n password_file = \"pw\"\n"
	    " folders = {\"x\", \"INBOX\"}\n"
	    " deliver_to = {\"u@example.org\"}\n}\n");
	struct config	*c = load_text(
	    "account a {\n protocol = imap\n host = \"mail.example\"\n"
	    " user = \"u\"\n password_file = \"pw\"\n"
	    " folders = {\"INBOX\"}\n deliver_to = {\"u@example.org\"}\n}\n");

	cr_assert_not(config_account_equal(&a->accounts[0], &b->accounts[0]));
	cr_assert_not(config_account_equal(&a->accounts[0], &c->accounts[0]));
	cr_assert_not(config_account_equal(&c->accounts[0], &a->accounts[0]));
	config_free(&a);
	config_free(&b);
	config_free(&c);
}

/* Change every option of the table in turn: each must be noticed. */
Test(config_equal, every_account_option_is_compared)
{
	struct config	*cf = load_text(ACCT(""));
	const struct sectab *t = &config_sections[SEC_ACCOUNT];
	struct config_account a = cf->accounts[0], b;
	char		 other[] = "changed-value";
	char		*list1[] = { other, NULL };
	size_t		 i;

	cr_assert(config_account_equal(&a, &a));
	for (i = 0; i < t->nopts; i++) {
		const struct optdef *o = account_opt(i);
		char	*p;

		b = a;
		p = (char *)&b + o->off;
		switch (o->ftype) {
		case F_STR:
			*(char **)(void *)p = other;
			break;
		case F_LIST:
			*(char ***)(void *)p = list1;
			break;
		case F_UINT:
			(*(unsigned *)(void *)p)++;
			break;
		case F_INT:
		case F_ENUM:
			(*(int *)(void *)p)++;
			break;
		case F_U64:
			(*(uint64_t *)(void *)p)++;
			break;
		}
		cr_assert_not(config_account_equal(&a, &b),
		    "option %s is not compared", o->name);
		/* NULL against a value differs too. */
		if (o->ftype == F_STR || o->ftype == F_LIST) {
			*(char **)(void *)p = NULL;
			cr_assert_not(config_account_equal(&a, &b) &&
			    *(char **)(void *)((char *)&a + o->off) != NULL,
			    "option %s: NULL compared equal", o->name);
		}
	}
	b = a;
	b.name = other;
	cr_assert_not(config_account_equal(&a, &b), "the name is compared");
	config_free(&cf);
}

/*
 * A struct field the tables do not describe is never compared.  The
 * options cover every byte but the ones listed here and the padding;
 * when this fails, add the new field to the option table (or, if it is
 * not a setting, here) and update the expected padding.
 */
Test(config_equal, struct_sizes_match_the_option_tables)
{
	size_t	 acct_extra = sizeof(char *) /* name */ +
		    sizeof(const char *) /* file */ + sizeof(unsigned);
	size_t	 acct_pad = sizeof(struct config_account) -
		    config_account_field_bytes() - acct_extra;
	size_t	 glob_pad = sizeof(struct config_global) -
		    config_global_field_bytes();
	size_t	 dlv_pad = sizeof(struct config_delivery) -
		    config_delivery_field_bytes() -
		    sizeof(char *) /* envelope_from_address */;

	if (sizeof(void *) != 8 || sizeof(unsigned) != 4 ||
	    sizeof(int) != 4)
		cr_skip_test("the expected padding is for LP64");
	cr_assert_eq(acct_pad, 28, "struct config_account: %zu bytes not "
	    "covered by the option table (expected 28 of padding)", acct_pad);
	cr_assert_eq(glob_pad, 8, "struct config_global: %zu bytes not "
	    "covered by the option table (expected 8 of padding)", glob_pad);
	cr_assert_eq(dlv_pad, 12, "struct config_delivery: %zu bytes not "
	    "covered by the option table (expected 12 of padding)", dlv_pad);
}

Test(config_equal, global_diff_names_and_swap)
{
	struct config	*a = load_text("global {\n log_level = info\n"
	    " state_dir = \"/tmp/a\"\n}\n" ACCT(""));
	struct config	*b = load_text("global {\n log_level = debug\n"
	    " state_dir = \"/tmp/b\"\n}\n" ACCT(""));
	const char	*names[8];
	size_t		 n;

	n = config_global_diff(&a->global, &b->global, names, 8);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(names[0], "state_dir");
	cr_assert_str_eq(names[1], "log_level");
	cr_assert_eq(config_global_swap(&a->global, &b->global, "log_level"),
	    0);
	cr_assert_eq(a->global.log_level, LOG_LVL_DEBUG);
	cr_assert_eq(b->global.log_level, LOG_LVL_INFO);
	cr_assert_str_eq(a->global.state_dir, "/tmp/a");
	cr_assert_eq(config_global_swap(&a->global, &b->global, "nosuch"),
	    -1);
	/* Ownership moved with the swap: both free cleanly. */
	config_global_swap(&a->global, &b->global, "state_dir");
	cr_assert_str_eq(a->global.state_dir, "/tmp/b");
	cr_assert_str_eq(b->global.state_dir, "/tmp/a");
	config_free(&a);
	config_free(&b);
}

Test(config_equal, delivery_envelope_from_address_counts)
{
	struct config	*a = load_text("delivery {\n envelope_from = "
	    "\"bounce@example.org\"\n}\n" ACCT(""));
	struct config	*b = load_text("delivery {\n envelope_from = "
	    "\"other@example.org\"\n retry_min = 5\n}\n" ACCT(""));
	const char	*names[8];

	cr_assert_not(config_delivery_equal(&a->delivery, &b->delivery));
	cr_assert_eq(config_delivery_diff(&a->delivery, &b->delivery, names,
	    8), 2);
	cr_assert_str_eq(names[0], "retry_min");
	cr_assert_str_eq(names[1], "envelope_from");
	config_delivery_swap(&a->delivery, &b->delivery, "envelope_from");
	cr_assert_str_eq(a->delivery.envelope_from_address,
	    "other@example.org");
	cr_assert_str_eq(b->delivery.envelope_from_address,
	    "bounce@example.org");
	config_delivery_swap(&a->delivery, &b->delivery, "retry_min");
	cr_assert_eq(a->delivery.retry_min, 5);
	config_free(&a);
	config_free(&b);
}
