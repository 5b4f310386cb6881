/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/milter_decide.h"
#include "haul/token.h"

/*
 * The pure decision module against an in-memory configuration: no files,
 * no libmilter, a fixed clock.  Tokens are made with token_make(); the
 * integration tests cross-check the format with an independent Python
 * signer.
 */

#define NOW	1700000000
#define MAXAGE	600

static char *acme_to[] = { "alice@local.test", "bob@local.test", NULL };
static char *md_domains[] = { "example.org", "Example.NET", NULL };
static char *solo_to[] = { "carol@local.test", NULL };

static struct config_account	 accts[4];
static struct config		 cf;
static struct haul_key		 keys[2];	/* current, previous */
static struct haul_key		 stranger;
static struct md_policy		 pol;
static struct md_msg		*msg;
static struct md_result		 res;

static void
make_key(struct haul_key *k, unsigned char seed)
{
	unsigned char	 b[32];
	size_t		 i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(seed * 7 + i);
	cr_assert_eq(key_from_bytes(k, b, sizeof(b)), 0);
}

static void
setup(void)
{
	memset(&cf, 0, sizeof(cf));
	memset(accts, 0, sizeof(accts));
	cf.delivery.placeholder_domain = "fetch.invalid";
	cf.milter.token_max_age = MAXAGE;
	cf.milter.trace_header = "X-Haul-Trace";
	cf.milter.on_error = ON_ERROR_TEMPFAIL;
	accts[0].name = "acme";
	accts[0].deliver_to = acme_to;
	accts[1].name = "md";
	accts[1].multidrop = 1;
	accts[1].multidrop_header = "Delivered-To";
	accts[1].multidrop_hop = 1;
	accts[1].multidrop_domains = md_domains;
	accts[1].multidrop_rewrite_domain = "local.test";
	accts[1].multidrop_unknown = UNKNOWN_REJECT;
	accts[2].name = "md-default";
	accts[2].multidrop = 1;
	accts[2].multidrop_header = "X-Original-To";
	accts[2].multidrop_hop = 2;
	accts[2].multidrop_domains = md_domains;
	accts[2].multidrop_default = "postmaster@local.test";
	accts[2].multidrop_unknown = UNKNOWN_DEFAULT;
	accts[3].name = "Zed";
	accts[3].deliver_to = solo_to;
	cf.accounts = accts;
	cf.naccounts = 4;
	make_key(&keys[0], 1);
	make_key(&keys[1], 2);
	make_key(&stranger, 3);
	md_policy_init(&pol, &cf, keys, 2);
	msg = md_msg_new();
	memset(&res, 0, sizeof(res));
}

static void
teardown(void)
{
	md_result_free(&res);
	md_msg_free(&msg);
	md_policy_free(&pol);
}

TestSuite(milter_decide, .init = setup, .fini = teardown);

/* A token value signed with k (heap string). */
static char *
token_full(const struct haul_key *k, const char *account, const char *mbox,
    unsigned uidv, const char *uid, long long t)
{
	struct token_fields	 f;
	struct buf		 b = BUF_INIT;

	memset(&f, 0, sizeof(f));
	snprintf(f.account, sizeof(f.account), "%s", account);
	snprintf(f.mailbox, sizeof(f.mailbox), "%s", mbox);
	f.uidvalidity = uidv;
	snprintf(f.uid, sizeof(f.uid), "%s", uid);
	f.time = t;
	cr_assert_eq(token_make(k, &f, &b), 0);
	return buf_steal(&b);
}

static char *
token(const char *account)
{
	return token_full(&keys[0], account, "INBOX", 0, "UID-1", NOW - 5);
}

static void
hdr(const char *name, const char *value)
{
	md_add_header(msg, &pol, name, value);
}

static void
rcpt(const char *r)
{
	md_add_rcpt(msg, &pol, r);
}

static void
decide(const char *qid)
{
	md_result_free(&res);
	md_decide(&pol, msg, NOW, qid, &res);
}

static size_t
count(enum md_act_kind k)
{
	size_t	 i, n = 0;

	for (i = 0; i < res.nacts; i++)
		n += res.acts[i].kind == k;
	return n;
}

/* Index of the action, or -1: name/value NULL match anything. */
static int
find(enum md_act_kind k, const char *name, int index, const char *value)
{
	size_t	 i;

	for (i = 0; i < res.nacts; i++) {
		const struct md_action *a = &res.acts[i];

		if (a->kind != k)
			continue;
		if (name != NULL && (a->name == NULL ||
		    strcmp(a->name, name) != 0))
			continue;
		if (k == MD_ACT_DELHDR && index != a->index)
			continue;
		if (value != NULL && (a->value == NULL ||
		    strcmp(a->value, value) != 0))
			continue;
		return (int)i;
	}
	return -1;
}

static void
expect_reject(const char *xcode, const char *needle)
{
	cr_assert_eq(res.verdict, MD_REJECT, "verdict %s: %s",
	    md_verdict_name(res.verdict), res.reason);
	cr_assert_str_eq(res.rcode, "550");
	cr_assert_str_eq(res.xcode, xcode);
	cr_assert_not_null(strstr(res.reason, needle), "reason: %s",
	    res.reason);
	cr_assert_eq(res.nacts, 0);
	cr_assert_null(strchr(res.reason, '%'));
}

Test(milter_decide, plain_mail_untouched)
{
	hdr("Subject", "hello");
	hdr("Delivered-To", "x@example.org");
	rcpt("<alice@local.test>");
	decide("Q1");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_eq(res.nacts, 0);
	cr_assert_str_eq(res.account, "");
}

Test(milter_decide, forged_headers_stripped_without_token)
{
	hdr("X-Haul-Account", "evil");
	hdr("Subject", "x");
	hdr("x-haul-account", "evil2");
	hdr("X-HAUL-TRACE", "account=acme; uid=0.1");
	hdr("X-Haul-Whatever", "1");
	hdr("X-Haulage", "not ours");
	rcpt("<alice@local.test>");
	decide("Q1");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_eq(count(MD_ACT_DELHDR), 4);
	cr_assert_eq(res.nacts, 4);
	/* Same name in any case is one series; the last goes first. */
	cr_assert_lt(find(MD_ACT_DELHDR, "X-Haul-Account", 2, NULL),
	    find(MD_ACT_DELHDR, "X-Haul-Account", 1, NULL));
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Haul-Account", 1, NULL), 0);
	cr_assert_geq(find(MD_ACT_DELHDR, "X-HAUL-TRACE", 1, NULL), 0);
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Haul-Whatever", 1, NULL), 0);
	cr_assert_eq(find(MD_ACT_DELHDR, "X-Haulage", 1, NULL), -1);
	cr_assert_eq(count(MD_ACT_ADDHDR), 0);
	cr_assert_eq(md_strip_count(msg), 4);
}

Test(milter_decide, placeholder_without_token_rejected)
{
	hdr("X-Haul-Account", "acme");
	rcpt("<acme@fetch.invalid>");
	decide("Q1");
	expect_reject("5.7.1", "placeholder recipient without");
}

Test(milter_decide, placeholder_spellings_recognised)
{
	static const char *forms[] = {
		"acme@fetch.invalid", "<acme@FETCH.Invalid>",
		"<acme@fetch.invalid.>", "<\"acme\"@fetch.invalid>",
		"<@relay.example:acme@fetch.invalid>",
	};
	size_t	 i;

	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		md_msg_reset(msg);
		rcpt(forms[i]);
		decide(NULL);
		cr_expect_eq(res.verdict, MD_REJECT, "%s", forms[i]);
	}
	md_msg_reset(msg);
	rcpt("<acme@fetch.invalid.example>");
	rcpt("<acme@notfetch.invalid>");
	decide(NULL);
	cr_assert_eq(res.verdict, MD_ACCEPT);
}

Test(milter_decide, valid_token_single_drop)
{
	char	*t = token("acme");

	hdr("Received", "from x");
	hdr("X-Haul-Token", t);
	hdr("X-Haul-Account", "evil");
	hdr("Subject", "s");
	rcpt("<acme@fetch.invalid>");
	decide("4XyZ12");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	cr_assert_str_eq(res.account, "acme");
	/* Order: removals, additions, the placeholder's removal, tags. */
	cr_assert_eq(res.nacts, 7);
	cr_assert_eq(res.acts[0].kind, MD_ACT_DELHDR);
	cr_assert_eq(res.acts[1].kind, MD_ACT_DELHDR);
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Haul-Token", 1, NULL), 0);
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Haul-Account", 1, NULL), 0);
	cr_assert_eq(find(MD_ACT_ADDRCPT, NULL, 0, "<alice@local.test>"), 2);
	cr_assert_eq(find(MD_ACT_ADDRCPT, NULL, 0, "<bob@local.test>"), 3);
	cr_assert_eq(find(MD_ACT_DELRCPT, NULL, 0, "<acme@fetch.invalid>"),
	    4);
	cr_assert_eq(find(MD_ACT_ADDHDR, "X-Haul-Account", 0, "acme"), 5);
	cr_assert_eq(find(MD_ACT_ADDHDR, "X-Haul-Trace", 0,
	    "account=acme; mailbox=INBOX; uid=0.UID-1; queue-id=4XyZ12"), 6);
	cr_assert_not_null(strstr(res.summary, "alice@local.test"));
	free(t);
}

Test(milter_decide, valid_token_without_placeholder_keeps_recipients)
{
	char	*t = token("acme");

	hdr("X-Haul-Token", t);
	rcpt("<someone@local.test>");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_eq(count(MD_ACT_ADDRCPT), 0);
	cr_assert_eq(count(MD_ACT_DELRCPT), 0);
	cr_assert_eq(count(MD_ACT_ADDHDR), 2);
	cr_assert_eq(count(MD_ACT_DELHDR), 1);
	free(t);
}

Test(milter_decide, duplicated_token_rejected)
{
	char	*t = token("acme");

	hdr("X-Haul-Token", t);
	hdr("x-haul-token", t);
	rcpt("<acme@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "2 copies");
	free(t);
}

Test(milter_decide, token_name_with_blank_before_colon_counts)
{
	char	*t = token("acme");

	hdr("X-Haul-Token", t);
	hdr("X-Haul-Token \t", "v=1; junk");
	decide("Q");
	expect_reject("5.7.1", "2 copies");
	free(t);
}

Test(milter_decide, folded_token_accepted)
{
	char		*t = token("acme"), *folded, *p;
	const char	*folds[] = { "\r\n ", "\n\t", "\n " };
	size_t		 i;

	for (i = 0; i < 3; i++) {
		/* Fold before the signature, as an MTA at 78 columns would. */
		p = strstr(t, " s=");
		cr_assert_not_null(p);
		cr_assert_gt(asprintf(&folded, "%.*s;%s%s",
		    (int)(p - t - 1), t, folds[i], p + 1), 0);
		md_msg_reset(msg);
		hdr("X-Haul-Token", folded);
		rcpt("<acme@fetch.invalid>");
		decide("Q");
		cr_expect_eq(res.verdict, MD_ACCEPT, "fold %zu: %s", i,
		    res.reason);
		free(folded);
	}
	/* A line break that is not a fold makes it malformed. */
	p = strstr(t, " s=");
	cr_assert_gt(asprintf(&folded, "%.*s\ns=%s", (int)(p - t), t, p + 3),
	    0);
	md_msg_reset(msg);
	hdr("X-Haul-Token", folded);
	decide("Q");
	expect_reject("5.7.1", "malformed");
	free(folded);
	free(t);
}

Test(milter_decide, stale_and_future_tokens_rejected)
{
	char	*old = token_full(&keys[0], "acme", "INBOX", 0, "1",
	    NOW - MAXAGE - 1);
	char	*edge = token_full(&keys[0], "acme", "INBOX", 0, "1",
	    NOW - MAXAGE);
	char	*future = token_full(&keys[0], "acme", "INBOX", 0, "1",
	    NOW + TOKEN_SKEW + 1);

	hdr("X-Haul-Token", old);
	decide("Q");
	expect_reject("5.7.1", "expired");
	md_msg_reset(msg);
	hdr("X-Haul-Token", edge);
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	md_msg_reset(msg);
	hdr("X-Haul-Token", future);
	decide("Q");
	expect_reject("5.7.1", "from the future");
	free(old);
	free(edge);
	free(future);
}

Test(milter_decide, forged_and_malformed_tokens_rejected)
{
	char	*t = token("acme"), *s;
	char	*other = token_full(&stranger, "acme", "INBOX", 0, "1", NOW);
	char	 big[TOKEN_MAX_LEN + 2];

	/* Flip one signature character. */
	s = strstr(t, "s=") + 2;
	*s = *s == 'A' ? 'B' : 'A';
	hdr("X-Haul-Token", t);
	rcpt("<acme@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "bad signature");

	md_msg_reset(msg);
	hdr("X-Haul-Token", other);
	decide("Q");
	expect_reject("5.7.1", "unknown key");

	md_msg_reset(msg);
	hdr("X-Haul-Token", "v=1; a=acme; forged=yes");
	decide("Q");
	expect_reject("5.7.1", "malformed");

	md_msg_reset(msg);
	hdr("X-Haul-Token", "");
	decide("Q");
	expect_reject("5.7.1", "malformed");

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	md_msg_reset(msg);
	hdr("X-Haul-Token", big);
	decide("Q");
	expect_reject("5.7.1", "malformed");
	free(t);
	free(other);
}

Test(milter_decide, key_rotation)
{
	char	*prev = token_full(&keys[1], "acme", "INBOX", 0, "1", NOW);
	char	*cur = token_full(&keys[0], "acme", "INBOX", 0, "1", NOW);

	hdr("X-Haul-Token", prev);
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	/* After the rotation ends only the current key is held. */
	md_policy_free(&pol);
	md_policy_init(&pol, &cf, keys, 1);
	decide("Q");
	expect_reject("5.7.1", "unknown key");
	md_msg_reset(msg);
	hdr("X-Haul-Token", cur);
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	free(prev);
	free(cur);
}

Test(milter_decide, unknown_account_rejected)
{
	char	*t = token("ghost");

	hdr("X-Haul-Token", t);
	rcpt("<ghost@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "unknown account ghost");
	free(t);
}

Test(milter_decide, placeholder_of_other_account_rejected)
{
	char	*t = token("acme");

	hdr("X-Haul-Token", t);
	rcpt("<acme@fetch.invalid>");
	rcpt("<Zed@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "does not match");
	/* Account names are case-sensitive, like the config's. */
	md_msg_reset(msg);
	hdr("X-Haul-Token", t);
	rcpt("<ACME@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "does not match");
	free(t);
}

Test(milter_decide, daemon_name_check)
{
	char	*t = token("acme");

	cf.milter.daemon_name = "fetch";
	md_set_daemon_name(msg, "fetch");
	hdr("X-Haul-Token", t);
	rcpt("<acme@fetch.invalid>");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);

	md_set_daemon_name(msg, "smtpd");
	decide("Q");
	expect_reject("5.7.1", "not accepted on this listener");

	/* Missing macro: a configuration problem, not the message's. */
	md_set_daemon_name(msg, NULL);
	hdr("X-Haul-Account", "x");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ERROR);
	cr_assert_str_eq(res.rcode, "451");
	cr_assert_eq(count(MD_ACT_DELHDR), 2);
	cr_assert_eq(res.nacts, 2);

	/* Without a token the listener does not matter. */
	md_msg_reset(msg);
	md_set_daemon_name(msg, "smtpd");
	hdr("X-Haul-Account", "x");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	free(t);
}

Test(milter_decide, reset_keeps_listener)
{
	md_set_daemon_name(msg, "fetch");
	rcpt("<acme@fetch.invalid>");
	hdr("X-Haul-Account", "x");
	md_msg_reset(msg);
	cr_assert_str_eq(md_daemon_name(msg), "fetch");
	cr_assert_eq(md_strip_count(msg), 0);
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_eq(res.nacts, 0);
}

Test(milter_decide, multidrop_mapping)
{
	char	*t = token("md");

	hdr("X-Haul-Token", t);
	hdr("Delivered-To", "<Jane.Doe@EXAMPLE.org>");
	hdr("Delivered-To", "other@example.org");
	rcpt("<md@fetch.invalid>");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	cr_assert_geq(find(MD_ACT_ADDRCPT, NULL, 0, "<Jane.Doe@local.test>"),
	    0);
	cr_assert_eq(count(MD_ACT_ADDRCPT), 1);
	cr_assert_geq(find(MD_ACT_DELRCPT, NULL, 0, "<md@fetch.invalid>"), 0);

	/* Hop 2, and without a rewrite domain the original one stays. */
	accts[1].multidrop_hop = 2;
	accts[1].multidrop_rewrite_domain = NULL;
	decide("Q");
	cr_assert_geq(find(MD_ACT_ADDRCPT, NULL, 0, "<other@example.org>"),
	    0);

	/* Domain matching is case-insensitive; the config spelling wins. */
	md_msg_reset(msg);
	accts[1].multidrop_hop = 1;
	hdr("X-Haul-Token", t);
	hdr("Delivered-To", "x@example.net");
	rcpt("<md@fetch.invalid>");
	decide("Q");
	cr_assert_geq(find(MD_ACT_ADDRCPT, NULL, 0, "<x@Example.NET>"), 0);
	free(t);
}

Test(milter_decide, multidrop_unknown_rejected_by_policy)
{
	char		*t = token("md");
	const char	*bad[] = {
		"x@elsewhere.org", "bob%evil.com@example.org",
		"a!b@example.org", "two@example.org, three@example.org",
		"\"quoted\"@example.org", "", "no-at-sign",
	};
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		md_msg_reset(msg);
		hdr("X-Haul-Token", t);
		hdr("Delivered-To", bad[i]);
		rcpt("<md@fetch.invalid>");
		decide("Q");
		cr_expect_eq(res.verdict, MD_REJECT, "%s", bad[i]);
		cr_expect_str_eq(res.xcode, "5.1.1");
	}
	/* Missing header. */
	md_msg_reset(msg);
	hdr("X-Haul-Token", t);
	hdr("X-Original-To", "x@example.org");
	rcpt("<md@fetch.invalid>");
	decide("Q");
	expect_reject("5.1.1", "missing");
	free(t);
}

Test(milter_decide, multidrop_unknown_to_default)
{
	char	*t = token("md-default");

	/* md-default reads the second X-Original-To. */
	hdr("X-Haul-Token", t);
	hdr("X-Original-To", "first@example.org");
	hdr("X-Original-To", "second@example.org");
	rcpt("<md-default@fetch.invalid>");
	decide("Q");
	cr_assert_geq(find(MD_ACT_ADDRCPT, NULL, 0, "<second@example.org>"),
	    0);

	md_msg_reset(msg);
	hdr("X-Haul-Token", t);
	hdr("X-Original-To", "first@example.org");
	rcpt("<md-default@fetch.invalid>");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_geq(find(MD_ACT_ADDRCPT, NULL, 0,
	    "<postmaster@local.test>"), 0);
	free(t);
}

Test(milter_decide, parse_addr)
{
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "a@b.c", "a@b.c" },
		{ "  <a.b+c@ex-ample.org>\t", "a.b+c@ex-ample.org" },
		{ "<a@b.c>\r\n ", "a@b.c" },
		{ "first.last@sub.example.org", "first.last@sub.example.org" },
		{ "a@b", "a@b" },
		{ ".a@b.c", NULL }, { "a.@b.c", NULL }, { "a..b@c.d", NULL },
		{ "a@-b.c", NULL }, { "a@b-.c", NULL }, { "a@b..c", NULL },
		{ "a@b.c.", NULL }, { "a b@c.d", NULL }, { "<a@b.c", NULL },
		{ "a@b@c", NULL }, { "a@b.c\nx", NULL }, { "a/b@c.d", NULL },
		{ "a|b@c.d", NULL }, { "a@b_c.d", NULL }, { "@b.c", NULL },
		{ "a@", NULL },
	};
	char	 out[64], long_local[80];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int	 rv = md_parse_addr(cases[i].in, out, sizeof(out));

		if (cases[i].out == NULL)
			cr_expect_eq(rv, -1, "%s", cases[i].in);
		else {
			cr_expect_eq(rv, 0, "%s", cases[i].in);
			if (rv == 0)
				cr_expect_str_eq(out, cases[i].out);
		}
	}
	memset(long_local, 'x', 65);
	strcpy(long_local + 65, "@b.c");
	cr_assert_eq(md_parse_addr(long_local, out, sizeof(out)), -1);
	cr_assert_eq(md_parse_addr("abcdef@example.org", out, 8), -1);
}

Test(milter_decide, custom_trace_header_is_stripped_and_added)
{
	char	*t = token("acme");

	cf.milter.trace_header = "X-Fetch-Trace";
	hdr("X-Fetch-Trace", "account=acme; mailbox=INBOX; uid=0.UID-1");
	hdr("X-Haul-Token", t);
	decide("Q9");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Fetch-Trace", 1, NULL), 0);
	cr_assert_geq(find(MD_ACT_ADDHDR, "X-Fetch-Trace", 0,
	    "account=acme; mailbox=INBOX; uid=0.UID-1; queue-id=Q9"), 0);

	/* Without a token a forged trace would make Sieve drop the real one. */
	md_msg_reset(msg);
	hdr("X-Fetch-Trace", "account=acme; mailbox=INBOX; uid=0.UID-2");
	decide("Q");
	cr_assert_geq(find(MD_ACT_DELHDR, "X-Fetch-Trace", 1, NULL), 0);
	free(t);
}

Test(milter_decide, trace_encodes_and_folds)
{
	char		 mbox[TOKEN_MAILBOX_MAX + 1], *t, *v, *line, *save;
	struct buf	 unfolded = BUF_INIT;
	int		 a;

	/* Odd mailbox and uid: encoded, never raw. */
	t = token_full(&keys[0], "acme", "Sent Items; x", 4294967295u,
	    "a;b%c", NOW);
	hdr("X-Haul-Token", t);
	decide("junk!id");
	cr_assert_geq(find(MD_ACT_ADDHDR, "X-Haul-Trace", 0,
	    "account=acme; mailbox=Sent%20Items%3B%20x; "
	    "uid=4294967295.a%3Bb%25c; queue-id=unknown"), 0);
	free(t);

	/* A 1000-byte mailbox of encoded bytes: folded, lines < 998. */
	memset(mbox, 0xe9, TOKEN_MAILBOX_MAX);
	mbox[TOKEN_MAILBOX_MAX] = '\0';
	t = token_full(&keys[0], "acme", mbox, 1, "9", NOW);
	md_msg_reset(msg);
	hdr("X-Haul-Token", t);
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT, "%s", res.reason);
	a = find(MD_ACT_ADDHDR, "X-Haul-Trace", 0, NULL);
	cr_assert_geq(a, 0);
	v = strdup(res.acts[a].value);
	for (line = strtok_r(v, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		cr_assert_lt(strlen(line), 998);
		if (line != v)
			cr_assert_eq(line[0], '\t');
		buf_add_str(&unfolded, line[0] == '\t' ? line + 1 : line);
	}
	free(v);
	cr_assert_not_null(strstr(unfolded.data, ";mailbox=%E9%E9"));
	cr_assert_not_null(strstr(unfolded.data, ";uid=1.9;queue-id=Q"));
	/* No %XX was cut in two. */
	cr_assert_eq(strstr(res.acts[a].value, "%\n"), NULL);
	cr_assert_eq(strstr(res.acts[a].value, "%E\n"), NULL);
	buf_free(&unfolded);
	free(t);
}

Test(milter_decide, limits_reject_hostile_mail)
{
	char	 name[32];
	int	 i;

	for (i = 0; i <= MD_MAX_STRIP_NAMES; i++) {
		snprintf(name, sizeof(name), "X-Haul-F%d", i);
		hdr(name, "x");
	}
	decide("Q");
	expect_reject("5.7.1", "distinct X-Haul-*");

	md_msg_reset(msg);
	for (i = 0; i <= MD_MAX_PLACEHOLDERS; i++)
		rcpt("<acme@fetch.invalid>");
	decide("Q");
	expect_reject("5.7.1", "placeholder recipients");

	/* Many fields of one name are fine: one series. */
	md_msg_reset(msg);
	for (i = 0; i < 5000; i++)
		hdr("X-Haul-Account", "x");
	decide("Q");
	cr_assert_eq(res.verdict, MD_ACCEPT);
	cr_assert_eq(res.nacts, 5000);
	cr_assert_eq(res.acts[0].index, 5000);
	cr_assert_eq(res.acts[4999].index, 1);
}

Test(milter_decide, account_index_with_many_accounts)
{
	static struct config_account many[2000];
	static char	 names[2000][16];
	struct md_policy p;
	size_t		 i;

	for (i = 0; i < 2000; i++) {
		snprintf(names[1999 - i], sizeof(names[0]), "acct%04zu", i);
		many[i].name = names[1999 - i];
	}
	cf.accounts = many;
	cf.naccounts = 2000;
	md_policy_init(&p, &cf, keys, 1);
	for (i = 0; i < 2000; i++)
		cr_assert_eq(md_find_account(&p, many[i].name), &many[i]);
	cr_assert_null(md_find_account(&p, "acct2000"));
	cr_assert_null(md_find_account(&p, ""));
	md_policy_free(&p);
	cf.accounts = accts;
	cf.naccounts = 4;
}

Test(milter_decide, long_multidrop_value_is_unknown)
{
	char	*t = token("md"), big[MD_VALUE_MAX + 10];

	memset(big, 'a', sizeof(big));
	strcpy(big + sizeof(big) - 13, "@example.org");
	hdr("X-Haul-Token", t);
	hdr("Delivered-To", big);
	rcpt("<md@fetch.invalid>");
	decide("Q");
	expect_reject("5.1.1", "multidrop_domains");
	free(t);
}
