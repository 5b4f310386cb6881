/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <string.h>

#include "haul/fetchmailrc.h"
#include "haul/fmimport.h"

static struct fmrc *
parse_ok(const char *text)
{
	char		 err[256];
	struct fmrc	*rc = fmrc_parse(text, strlen(text), err, sizeof(err));

	cr_assert_not_null(rc, "parse failed: %s\n%s", err, text);
	return rc;
}

static void
parse_err(const char *text, const char *want)
{
	char		 err[256];
	struct fmrc	*rc = fmrc_parse(text, strlen(text), err, sizeof(err));

	cr_assert_null(rc, "accepted: %s", text);
	cr_assert(strncmp(err, want, strlen(want)) == 0,
	    "error '%s' does not start with '%s'", err, want);
}

Test(fmrc, poll_user_options_and_noise)
{
	struct fmrc *rc = parse_ok(
	    "set daemon 600\n"
	    "poll pop.example.com with proto POP3 and port 995\n"
	    "  user 'jdoe' there with password \"s3cr#t\" is jdoe here\n"
	    "  options keep, ssl; nofetchall\n");

	cr_assert_eq(rc->nentries, 1);
	cr_assert_str_eq(rc->entries[0].pollname, "pop.example.com");
	cr_assert_str_eq(rc->entries[0].remote, "jdoe");
	cr_assert_eq(rc->entries[0].nlocals, 1);
	cr_assert_str_eq(rc->entries[0].locals[0].name, "jdoe");
	cr_assert_eq(rc->entries[0].uline, 3);
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "protocol"), "POP3");
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "port"), "995");
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "password"), "s3cr#t");
	cr_assert(fmrc_flag(rc, &rc->entries[0], "keep"));
	cr_assert(fmrc_flag(rc, &rc->entries[0], "ssl"));
	cr_assert(!fmrc_flag(rc, &rc->entries[0], "fetchall"));
	cr_assert_not_null(fmrc_get(rc, &rc->entries[0], "fetchall"));
	cr_assert_eq(fmrc_get(rc, &rc->entries[0], "keep")->line, 4);
	cr_assert_str_eq(fmrc_str(rc, NULL, "daemon"), "600");
	fmrc_free(&rc);
	cr_assert_null(rc);
}

Test(fmrc, several_users_share_server_options)
{
	struct fmrc *rc = parse_ok(
	    "defaults proto pop3 keep smtphost mx1\n"
	    "poll a.example proto imap\n"
	    "  user x there is y here no keep\n"
	    "  user z there is w v here smtphost mx2\n"
	    "skip b.example user q\n"
	    "poll c.example\n");

	cr_assert_eq(rc->nentries, 4);
	/* user beats server beats defaults */
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "protocol"), "imap");
	cr_assert(!fmrc_flag(rc, &rc->entries[0], "keep"));
	cr_assert(fmrc_flag(rc, &rc->entries[1], "keep"));
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "smtphost"), "mx1");
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[1], "smtphost"), "mx2");
	cr_assert_eq(rc->entries[1].nlocals, 2);
	cr_assert(rc->entries[2].skip);
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[2], "protocol"), "pop3");
	/* a poll with no user clause: one implicit user */
	cr_assert_null(rc->entries[3].remote);
	cr_assert_eq(rc->entries[3].line, 6);
	fmrc_free(&rc);
}

Test(fmrc, names_may_be_keywords)
{
	struct fmrc *rc = parse_ok(
	    "poll x user keep there with password with is options here\n"
	    "poll y user joe here is \"remote.joe\" there\n"
	    "poll z username a is b = c * here\n");

	cr_assert_str_eq(rc->entries[0].remote, "keep");
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "password"), "with");
	cr_assert_str_eq(rc->entries[0].locals[0].name, "options");
	cr_assert_null(fmrc_get(rc, &rc->entries[0], "keep"));
	cr_assert_str_eq(rc->entries[1].remote, "remote.joe");
	cr_assert_str_eq(rc->entries[1].locals[0].name, "joe");
	cr_assert_str_eq(rc->entries[2].locals[0].name, "b");
	cr_assert_str_eq(rc->entries[2].locals[0].to, "c");
	cr_assert(rc->entries[2].wildcard);
	fmrc_free(&rc);
}

Test(fmrc, quoting_and_escapes)
{
	struct fmrc *rc = parse_ok(
	    "poll 'q.example' user \"a\\x41\\101\\0773\" pass 'x\\ty\"z'\n"
	    "  is \"multi\nline\" here # a comment with 'quotes\n"
	    "poll r.example user b\\\n"
	    "  pass \"unterminated\n");

	cr_assert_str_eq(rc->entries[0].pollname, "q.example");
	/* \x41 = A, \101 = e (decimal), \077 = ? (octal: the 0 counts) */
	cr_assert_str_eq(rc->entries[0].remote, "aAe?3");
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[0], "password"),
	    "x\ty\"z");
	cr_assert_str_eq(rc->entries[0].locals[0].name, "multi\nline");
	cr_assert_eq(rc->entries[1].line, 4);	/* the string spans a line */
	/* backslash-newline inside a word joins the lines */
	cr_assert_str_eq(rc->entries[1].remote, "b");
	/* no closing quote: fetchmail reads the quote as part of a word */
	cr_assert_str_eq(fmrc_str(rc, &rc->entries[1], "password"),
	    "\"unterminated");
	fmrc_free(&rc);
}

Test(fmrc, envelope_and_lists)
{
	struct fmrc *rc = parse_ok(
	    "poll m proto pop3 localdomains a.org b.org envelope 1 "
	    "X-Original-To aka m2\n"
	    "  user c there is * here folder INBOX 'Sent Items' antispam 571 "
	    "550\n");
	const struct fmrc_opt *o;

	o = fmrc_get(rc, &rc->entries[0], "localdomains");
	cr_assert_eq(o->nvals, 2);
	cr_assert_str_eq(o->vals[1], "b.org");
	o = fmrc_get(rc, &rc->entries[0], "envelope");
	cr_assert_eq(o->nvals, 2);
	cr_assert_str_eq(o->vals[0], "X-Original-To");
	cr_assert_str_eq(o->vals[1], "1");
	cr_assert_eq(fmrc_get(rc, &rc->entries[0], "folder")->nvals, 2);
	cr_assert_eq(fmrc_get(rc, &rc->entries[0], "antispam")->nvals, 2);
	fmrc_free(&rc);
}

Test(fmrc, errors_carry_the_line)
{
	parse_err("poll x\n  user a there\n  proto pop3\n", "3: ");
	parse_err("poll x user a\ndefaults keep\n", "2: ");
	parse_err("poll x\n\n proto smtp user a\n", "3: unknown protocol");
	parse_err("poll x port abc\n", "1: 'port' needs a number");
	parse_err("poll x keep user a\n", "1: user options before");
	parse_err("set frobnicate\n", "1: unknown 'set'");
	parse_err("keep\n", "1: syntax error");
	parse_err("poll x user a pass \"\\0\"\n", "1: escape gives a NUL");
	{
		char	 err[64];

		cr_assert_null(fmrc_parse("poll x\0", 7, err, sizeof(err)));
		cr_assert_str_eq(err, "1: the file contains a NUL byte");
	}
}

Test(fmrc, bounded)
{
	static char big[FMRC_TOKEN_MAX + 64];
	char	 err[128];

	memcpy(big, "poll ", 5);
	memset(big + 5, 'a', FMRC_TOKEN_MAX + 10);
	cr_assert_null(fmrc_parse(big, strlen(big), err, sizeof(err)));
	cr_assert(strstr(err, "too long") != NULL, "%s", err);
	/* a 1-byte error buffer still terminates */
	cr_assert_null(fmrc_parse("keep", 4, err, 1));
	cr_assert_eq(err[0], '\0');
}

Test(fmids, records_and_junk)
{
	const char *t =
	    "jdoe@pop.example.com 000000016b025a05\n"
	    "  jane@x.org@imap.example.com <id@with@ats>  trailing\n"
	    "nohost 123\n"
	    "user@host\n"
	    "\n"
	    "JDOE@POP.EXAMPLE.COM 2\r\n";
	struct fmids ids;

	fmids_parse(t, strlen(t), &ids);
	cr_assert_eq(ids.n, 3);
	cr_assert_str_eq(ids.v[1].user, "jane@x.org");
	cr_assert_str_eq(ids.v[1].host, "imap.example.com");
	cr_assert_str_eq(ids.v[1].uid, "<id@with@ats>");
	cr_assert_str_eq(ids.v[2].uid, "2");
	cr_assert_eq(ids.bad, 2);
	cr_assert_eq(ids.first_bad, 3);
	cr_assert_eq(fmids_each(&ids, "jdoe", "pop.example.com", NULL, NULL),
	    2);
	cr_assert_eq(fmids_each(&ids, "jdoe", "other", NULL, NULL), 0);
	fmids_free(&ids);
}

Test(fmimport, account_names)
{
	char	 n[65], longuser[100];

	fmi_account_name("jane@x.org", "pop.example.com", n);
	cr_assert_str_eq(n, "jane_x.org_pop.example.com");
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	fmi_account_name(longuser, "h", n);
	cr_assert_eq(strlen(n), 64);
}

static const struct fmi_account *
acct(const struct fmi_result *r, const char *name)
{
	size_t	 i;

	for (i = 0; i < r->n; i++)
		if (r->v[i].name != NULL && strcmp(r->v[i].name, name) == 0)
			return &r->v[i];
	cr_assert_fail("no account %s", name);
	return NULL;
}

static int
has_warning(const struct fmi_account *a, const char *s)
{
	size_t	 i;

	for (i = 0; i < a->nwarns; i++)
		if (strstr(a->warns[i].text, s) != NULL)
			return 1;
	return 0;
}

Test(fmimport, never_redeliver_rules)
{
	const char *ids_text = "p1@pop.example 1\np1@pop.example 2\n";
	struct fmrc *rc = parse_ok(
	    "set daemon 300\n"
	    "poll pop.example proto pop3 user p1 pass 'Pw-1' is me here "
	    "ssl keep\n"
	    "poll pop.example proto pop3 user p2 pass 'Pw-2' is me here keep\n"
	    "poll imap.example proto imap user i1 pass 'Pw-3' is me here "
	    "keep ssl\n"
	    "poll imap.example proto imap user i2 pass 'Pw-4' is me here ssl\n"
	    "poll imap.example proto imap user i3 pass 'Pw-5' is me here "
	    "keep fetchall\n"
	    "poll etrn.example proto etrn user e\n");
	struct fmids	 ids;
	struct fmi_opts	 o;
	struct fmi_result r;
	const struct fmi_account *a;
	char		 err[64];

	fmids_parse(ids_text, strlen(ids_text), &ids);
	memset(&o, 0, sizeof(o));
	o.rcname = "rc";
	o.login = "root";
	o.domain = "example.org";
	o.ids = &ids;
	cr_assert_eq(fmi_convert(rc, &o, &r, err, sizeof(err)), 0);

	/* POP3 + keep with UIDs: enabled, seeded */
	a = acct(&r, "p1_pop.example");
	cr_assert(a->enabled);
	cr_assert_eq(a->nseed, 2);
	cr_assert_str_eq(a->seed_user, "p1");
	cr_assert_str_eq(a->seed_host, "pop.example");
	cr_assert_str_eq(a->password, "Pw-1");
	cr_assert_null(strstr(a->conf, "Pw-1"), "password in the config");
	cr_assert_not_null(strstr(a->conf, "keep = yes"));
	cr_assert_not_null(strstr(a->conf, "tls = implicit"));
	cr_assert_not_null(strstr(a->conf,
	    "deliver_to = {'me@example.org'}"));
	cr_assert_not_null(strstr(a->conf, "poll_interval = 300"));
	/* POP3 + keep without UIDs: disabled */
	a = acct(&r, "p2_pop.example");
	cr_assert(!a->enabled);
	cr_assert(has_warning(a, "no UIDs"));
	cr_assert_not_null(strstr(a->conf, "tls = starttls"));
	/* IMAP + keep: \Seen is what fetchmail delivered: enabled */
	a = acct(&r, "i1_imap.example");
	cr_assert(a->enabled);
	cr_assert(has_warning(a, "first_fetch = unseen"));
	cr_assert(has_warning(a, "read elsewhere before"));
	cr_assert_not_null(strstr(a->conf, "first_fetch = unseen"));
	cr_assert_not_null(strstr(a->conf, "keep = yes"));
	/* the same with fetchall: still unseen (new could lose mail) */
	a = acct(&r, "i3_imap.example");
	cr_assert(a->enabled);
	cr_assert_not_null(strstr(a->conf, "first_fetch = unseen"));
	cr_assert(has_warning(a, "every message at each poll"));
	/* IMAP without keep: fetchmail deleted what it delivered */
	a = acct(&r, "i2_imap.example");
	cr_assert(a->enabled);
	cr_assert_null(strstr(a->conf, "first_fetch"));
	/* POP3 never gets first_fetch: .fetchids seeds it */
	cr_assert_null(strstr(acct(&r, "p1_pop.example")->conf,
	    "first_fetch"));
	/* unsupported protocol: no fragment, a warning */
	a = acct(&r, "e_etrn.example");
	cr_assert_null(a->conf);
	cr_assert(has_warning(a, "not supported"));
	cr_assert_not_null(strstr(r.delivery, "target = 'localhost:25'"));
	fmi_result_free(&r);
	fmids_free(&ids);
	fmrc_free(&rc);
}

Test(fmimport, unmapped_options_warn_with_lines)
{
	struct fmrc *rc = parse_ok(
	    "poll pop.example proto pop3 plugin 'nc %h %p'\n"
	    "  user u pass 'x' is me here nokeep\n"
	    "  mimedecode fetchlimit 5 no rewrite\n"
	    "  mda \"/usr/bin/procmail -f %F -d %T\"\n");
	struct fmi_opts	 o;
	struct fmi_result r;
	const struct fmi_account *a;
	size_t		 i;
	int		 plugin = 0, mime = 0, limit = 0, rewrite = 0;
	char		 err[64];

	memset(&o, 0, sizeof(o));
	o.login = "root";
	cr_assert_eq(fmi_convert(rc, &o, &r, err, sizeof(err)), 0);
	a = acct(&r, "u_pop.example");
	for (i = 0; i < a->nwarns; i++) {
		if (strncmp(a->warns[i].text, "plugin", 6) == 0)
			plugin = a->warns[i].line;
		if (strncmp(a->warns[i].text, "mimedecode", 10) == 0)
			mime = a->warns[i].line;
		if (strncmp(a->warns[i].text, "fetchlimit", 10) == 0)
			limit = a->warns[i].line;
		if (strstr(a->warns[i].text, "rewrite") != NULL)
			rewrite = 1;
	}
	cr_assert_eq(plugin, 1);
	cr_assert_eq(mime, 3);
	cr_assert_eq(limit, 3);
	cr_assert_eq(rewrite, 0, "no rewrite is what haul does: no warning");
	/* the warnings are in the fragment too */
	cr_assert_not_null(strstr(a->conf, "# warning (rc line 3): "
	    "mimedecode"));
	/* %T -> %u; "-f %F" dropped */
	cr_assert_not_null(strstr(a->delivery, "lda_command = "
	    "{'/usr/bin/procmail', '-d', '%u'}"), "%s", a->delivery);
	cr_assert(has_warning(a, "%F"));
	fmi_result_free(&r);
	fmrc_free(&rc);
}

Test(fmimport, multidrop)
{
	struct fmrc *rc = parse_ok(
	    "set postmaster admin\n"
	    "poll mx.isp proto pop3 localdomains example.org envelope "
	    "'Delivered-To'\n"
	    "  user box pass 'x' to * here nokeep\n");
	struct fmi_opts	 o;
	struct fmi_result r;
	const struct fmi_account *a;
	char		 err[64];

	memset(&o, 0, sizeof(o));
	o.login = "root";
	o.domain = "example.org";
	cr_assert_eq(fmi_convert(rc, &o, &r, err, sizeof(err)), 0);
	a = acct(&r, "box_mx.isp");
	cr_assert(a->enabled);
	cr_assert_not_null(strstr(a->conf, "multidrop = yes"));
	cr_assert_not_null(strstr(a->conf,
	    "multidrop_domains = {'example.org'}"));
	cr_assert_not_null(strstr(a->conf,
	    "multidrop_default = 'admin@example.org'"));
	cr_assert(r.multidrop);
	cr_assert_not_null(strstr(r.delivery, "via_milter = yes"));
	fmi_result_free(&r);
	fmrc_free(&rc);
}
