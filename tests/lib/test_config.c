/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "haul/config.h"
#include "haul/log.h"

/*
 * Every test works in its own temporary directory: configs, fragments
 * and password files are written there at run time (git cannot carry a
 * 0600 mode), and error messages are matched as "DIR/FILE:LINE: ".
 */
static char	 tdir[] = "/tmp/haul-config-XXXXXX";
static char	 realdir[PATH_MAX];

static void
put_mode(const char *rel, const char *text, mode_t mode)
{
	char	 path[PATH_MAX], *slash;
	FILE	*fp;

	snprintf(path, sizeof(path), "%s/%s", tdir, rel);
	/* Create parent directories. */
	for (slash = strchr(path + strlen(tdir) + 1, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			cr_assert_fail("mkdir %s: %s", path, strerror(errno));
		*slash = '/';
	}
	fp = fopen(path, "w");
	cr_assert_not_null(fp, "fopen %s: %s", path, strerror(errno));
	fputs(text, fp);
	fclose(fp);
	cr_assert_eq(chmod(path, mode), 0);
}

static void
put(const char *rel, const char *text)
{
	put_mode(rel, text, 0644);
}

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(tdir));
	cr_assert_not_null(realpath(tdir, realdir));
	put_mode("pw", "secret\n", 0600);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
teardown(void)
{
	nftw(tdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

static struct config *
load(const char *rel, struct config_errors *errs)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tdir, rel);
	return config_load(path, errs);
}

/* All messages, one a line, for assertion failures. */
static const char *
dump(const struct config_errors *e)
{
	static char	 out[8192];
	size_t		 i;

	out[0] = '\0';
	for (i = 0; i < e->n; i++) {
		strncat(out, e->msgs[i], sizeof(out) - strlen(out) - 2);
		strncat(out, "\n", sizeof(out) - strlen(out) - 1);
	}
	return out;
}

/* An error that starts "DIR/rel:line: " and contains needle. */
static int
has_err(const struct config_errors *e, const char *rel, unsigned line,
    const char *needle)
{
	char	 prefix[PATH_MAX + 32];
	size_t	 i, n;

	snprintf(prefix, sizeof(prefix), "%s/%s:%u: ", tdir, rel, line);
	n = strlen(prefix);
	for (i = 0; i < e->n; i++)
		if (strncmp(e->msgs[i], prefix, n) == 0 &&
		    strstr(e->msgs[i] + n, needle) != NULL)
			return 1;
	return 0;
}

#define ASSERT_ERR(e, rel, line, needle)				\
	cr_assert(has_err((e), (rel), (line), (needle)),		\
	    "expected %s:%u: ..%s..; got:\n%s", (rel), (line), (needle), \
	    dump(e))

/* Load text as main.conf; it must load. */
static struct config *
load_ok(const char *text)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;

	put("main.conf", text);
	cf = load("main.conf", &errs);
	cr_assert_not_null(cf, "config failed:\n%s", dump(&errs));
	cr_assert_eq(errs.n, 0);
	config_errors_free(&errs);
	return cf;
}

/* Load text as main.conf; it must fail with exactly one error. */
static void
one_error(const char *text, unsigned line, const char *needle)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;

	put("main.conf", text);
	cf = load("main.conf", &errs);
	cr_assert_null(cf, "expected an error at line %u (%s)", line,
	    needle);
	cr_assert_eq(errs.n, 1, "expected one error (%s); got:\n%s", needle,
	    dump(&errs));
	ASSERT_ERR(&errs, "main.conf", line, needle);
	config_errors_free(&errs);
}

/*
 * A valid IMAP account on lines 1-6; `extra` lands on line 7 onwards and
 * may override anything (the last assignment wins).
 */
#define ACCT(name, extra)						\
	"account \"" name "\" {\n"					\
	"  protocol = imap\n"						\
	"  host = \"imap.example.com\"\n"				\
	"  user = \"u\"\n"						\
	"  password_file = \"pw\"\n"					\
	"  deliver_to = {\"u@example.org\"}\n"				\
	extra								\
	"}\n"

/* The same for POP3 and a password command, lines 1-6. */
#define POP(name, extra)						\
	"account \"" name "\" {\n"					\
	"  protocol = pop3\n"						\
	"  host = \"pop.example.com\"\n"				\
	"  user = \"u\"\n"						\
	"  password_command = {\"/bin/echo\", \"x\"}\n"		\
	"  deliver_to = {\"u@example.org\"}\n"				\
	extra								\
	"}\n"

Test(config, defaults)
{
	struct config	*cf = load_ok("");

	cr_assert_str_eq(cf->global.state_dir, "/var/lib/haul");
	cr_assert_str_eq(cf->global.key_file, "/etc/haul/haul.key");
	cr_assert_null(cf->global.previous_key_file);
	cr_assert_str_eq(cf->global.control_socket, "/run/haul/hauld.sock");
	cr_assert_eq(cf->global.control_socket_mode, 0660);
	cr_assert_null(cf->global.control_group);
	cr_assert_null(cf->global.user);
	cr_assert_null(cf->global.pid_file);
	cr_assert_str_eq(cf->global.log_facility, "mail");
	cr_assert_eq(cf->global.log_level, LOG_LVL_INFO);
	cr_assert_null(cf->global.metrics_listen);
	cr_assert_eq(cf->global.max_connections_per_host, 4);
	cr_assert_eq(cf->global.max_tls_handshakes, 64);
	cr_assert_eq(cf->global.shutdown_timeout, 30);
	cr_assert_eq(cf->global.prune_grace_days, 7);

	cr_assert_eq(cf->delivery.mode, DELIVER_SMTP);
	cr_assert_str_eq(cf->delivery.target, "127.0.0.1:25");
	cr_assert_null(cf->delivery.lda_command);
	cr_assert_str_eq(cf->delivery.helo_name, "localhost");
	cr_assert_eq(cf->delivery.via_milter, 0);
	cr_assert_str_eq(cf->delivery.placeholder_domain, "fetch.invalid");
	cr_assert_eq(cf->delivery.envelope_from, ENVFROM_RETURN_PATH);
	cr_assert_null(cf->delivery.envelope_from_address);
	cr_assert_eq(cf->delivery.xclient, 0);
	cr_assert_eq(cf->delivery.connect_timeout, 30);
	cr_assert_eq(cf->delivery.command_timeout, 300);
	cr_assert_eq(cf->delivery.final_timeout, 600);
	cr_assert_eq(cf->delivery.lda_timeout, 600);
	cr_assert_eq(cf->delivery.max_connections, 4);
	cr_assert_eq(cf->delivery.retry_min, 60);
	cr_assert_eq(cf->delivery.retry_max, 3600);

	cr_assert_str_eq(cf->milter.socket, "unix:/run/haul/milter.sock");
	cr_assert_eq(cf->milter.socket_mode, 0660);
	cr_assert_eq(cf->milter.on_error, ON_ERROR_TEMPFAIL);
	cr_assert_eq(cf->milter.token_max_age, 600);
	cr_assert_null(cf->milter.daemon_name);
	cr_assert_str_eq(cf->milter.trace_header, "X-Haul-Trace");
	cr_assert_eq(cf->milter.timeout, 30);

	cr_assert_eq(cf->naccounts, 0);
	cr_assert_not_null(cf->files);
	cr_assert_not_null(strstr(cf->files[0], "main.conf"));
	cr_assert_null(cf->files[1]);
	config_free(&cf);
	cr_assert_null(cf);
	config_free(&cf);	/* NULL is fine */
}

Test(config, account_defaults)
{
	struct config			*cf = load_ok("\n" ACCT("a", ""));
	const struct config_account	*a;
	char				 pw[PATH_MAX + 8];

	cr_assert_eq(cf->naccounts, 1);
	a = config_find_account(cf, "a");
	cr_assert_not_null(a);
	cr_assert_null(config_find_account(cf, "b"));
	cr_assert_eq(a->line, 2);
	cr_assert_eq(a->file, cf->files[0], "file points into files");
	cr_assert_eq(a->enabled, 1);
	cr_assert_eq(a->protocol, PROTO_IMAP);
	cr_assert_str_eq(a->host, "imap.example.com");
	cr_assert_eq(a->port, 0);
	cr_assert_eq(config_account_port(a), 993);
	cr_assert_eq(a->tls, TLS_IMPLICIT);
	cr_assert_eq(a->auth, AUTH_AUTO);
	cr_assert_null(a->ca_file);
	cr_assert_null(a->fingerprint);
	snprintf(pw, sizeof(pw), "%s/pw", realdir);
	cr_assert_str_eq(a->password_file, pw, "resolved against the file");
	cr_assert_null(a->password_command);
	cr_assert_str_eq(a->folders[0], "INBOX");
	cr_assert_null(a->folders[1]);
	cr_assert_eq(a->idle, 1);
	cr_assert_eq(a->poll_interval, 300);
	cr_assert_eq(a->keep, 1);
	cr_assert_eq(a->mark_seen, 0);
	cr_assert_eq(a->delete_after_days, 0);
	cr_assert_null(a->move_to);
	cr_assert_eq(a->allow_expunge_all, 0);
	cr_assert_eq(a->max_message_size, 50ULL << 20);
	cr_assert_eq(a->max_connections, 2);
	cr_assert_eq(a->timeout, 60);
	cr_assert_eq(a->connect_timeout, 30);
	cr_assert_eq(a->idle_refresh, 1740);
	cr_assert_eq(a->keepalive, 120);
	cr_assert_str_eq(a->deliver_to[0], "u@example.org");
	cr_assert_null(a->deliver_to[1]);
	cr_assert_eq(a->multidrop, 0);
	cr_assert_str_eq(a->multidrop_header, "Delivered-To");
	cr_assert_eq(a->multidrop_hop, 1);
	cr_assert_eq(a->multidrop_unknown, UNKNOWN_REJECT);
	cr_assert_eq(a->xclient, 0);
	config_free(&cf);
}

Test(config, default_ports)
{
	struct config	*cf = load_ok(
	    POP("p1", "")
	    POP("p2", "tls = starttls\n")
	    ACCT("i1", "tls = starttls\n")
	    ACCT("i2", "tls = none\nallow_plaintext = yes\n")
	    POP("p3", "tls = none\nallow_plaintext = on\n")
	    ACCT("i3", "port = 10993\n"));

	cr_assert_eq(cf->naccounts, 6);
	cr_assert_eq(config_account_port(config_find_account(cf, "p1")), 995);
	cr_assert_eq(config_account_port(config_find_account(cf, "p2")), 110);
	cr_assert_eq(config_account_port(config_find_account(cf, "p3")), 110);
	cr_assert_eq(config_account_port(config_find_account(cf, "i1")), 143);
	cr_assert_eq(config_account_port(config_find_account(cf, "i2")), 143);
	cr_assert_eq(config_account_port(config_find_account(cf, "i3")),
	    10993);
	cr_assert_eq(config_find_account(cf, "i2")->tls, TLS_NONE);
	config_free(&cf);
}

Test(config, every_enum)
{
	static const char *const auths[] = {
		"auto", "plain", "login", "user", "apop", "xoauth2",
		"OAUTHBEARER"
	};
	char		 text[4096];
	struct config	*cf;
	size_t		 i;
	int		 n = 0;

	for (i = 0; i < 7; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		    POP("a%zu", "auth = \"%s\"\n"), i, auths[i]);
	snprintf(text + n, sizeof(text) - (size_t)n,
	    "milter { on_error = accept }\n"
	    "delivery { mode = LMTP\n target = \"unix:/run/lmtp\"\n"
	    " via_milter = yes }\n"
	    ACCT("m", "multidrop = true\nmultidrop_domains = {\"ex.org\"}\n"
	    "multidrop_unknown = default\n"
	    "multidrop_default = \"postmaster@ex.org\"\n"));
	cf = load_ok(text);
	for (i = 0; i < 7; i++) {
		cr_assert_eq(cf->accounts[i].auth, (enum auth_mech)i);
		cr_assert_eq(strcasecmp(config_auth_name(cf->accounts[i].auth),
		    auths[i]), 0);
	}
	cr_assert_eq(cf->accounts[0].protocol, PROTO_POP3);
	cr_assert_str_eq(config_proto_name(PROTO_IMAP), "imap");
	cr_assert_str_eq(config_tls_name(TLS_STARTTLS), "starttls");
	cr_assert_eq(cf->milter.on_error, ON_ERROR_ACCEPT);
	cr_assert_eq(cf->delivery.mode, DELIVER_LMTP);
	cr_assert_str_eq(config_delivery_name(cf->delivery.mode), "lmtp");
	cr_assert_eq(cf->accounts[7].multidrop_unknown, UNKNOWN_DEFAULT);
	config_free(&cf);
}

Test(config, enum_errors)
{
	one_error(ACCT("a", "tls = ssl\n"), 7, "tls = \"ssl\": expected "
	    "implicit, starttls or none");
	one_error(ACCT("a", "protocol = \"smtp\"\n"), 7,
	    "protocol = \"smtp\": expected pop3 or imap");
	one_error(ACCT("a", "auth = cram-md5\n"), 7, "auth = \"cram-md5\"");
	one_error("delivery {\n mode = pipe\n}\n", 2, "mode = \"pipe\"");
	one_error("milter {\n\n on_error = reject\n}\n", 3, "on_error");
	one_error(ACCT("a", "multidrop_unknown = bounce\n"), 7,
	    "multidrop_unknown");
	/* Multidrop recipients are mapped by the milter. */
	one_error(ACCT("a", "multidrop = true\n"
	    "multidrop_domains = {\"ex.org\"}\n"), 1,
	    "multidrop = true needs delivery.via_milter = yes");
	one_error("global { log_level = loud }\n", 1, "log_level");
	one_error("global { log_facility = \"kern2\" }\n", 1, "log_facility");
	one_error("global {\n use_syslog = yes\n}\n", 2,
	    "global: unknown option 'use_syslog'");
}

Test(config, numeric_ranges)
{
	struct config	*cf;

	one_error(ACCT("a", "poll_interval = 9\n"), 7,
	    "poll_interval = 9: out of range 10..86400");
	one_error(ACCT("a", "poll_interval = 86401\n"), 7, "poll_interval");
	one_error(ACCT("a", "idle_refresh = 1741\n"), 7, "idle_refresh");
	one_error(ACCT("a", "port = 65536\n"), 7, "port = 65536");
	one_error(ACCT("a", "port = -1\n"), 7, "port = -1: out of range");
	one_error(ACCT("a", "port = 0x10\n"), 7,
	    "port = \"0x10\": not a whole number");
	one_error(ACCT("a", "timeout = 99999999999999999999999\n"), 7,
	    "out of range 5..3600");
	one_error(ACCT("a", "multidrop_hop = 21\n"), 7, "multidrop_hop");
	one_error(ACCT("a", "delete_after_days = 36501\n"), 7,
	    "delete_after_days");
	one_error(ACCT("a", "keep = maybe\n"), 7,
	    "keep = \"maybe\": expected true or false");
	one_error("global {\n max_connections_per_host = 0\n}\n", 2,
	    "max_connections_per_host = 0");
	one_error("global { prune_grace_days = 3651 }\n", 1,
	    "prune_grace_days");
	one_error("milter { token_max_age = 9 }\n", 1, "token_max_age");

	cf = load_ok("global { prune_grace_days = 0\n"
	    "max_tls_handshakes = 10000 }\n"
	    ACCT("a", "poll_interval = 010\nidle_refresh = 60\n"
	    "port = 65535\ndelete_after_days = 36500\n"));
	cr_assert_eq(cf->global.prune_grace_days, 0);
	cr_assert_eq(cf->global.max_tls_handshakes, 10000);
	cr_assert_eq(cf->accounts[0].poll_interval, 10, "decimal, not octal");
	cr_assert_eq(cf->accounts[0].idle_refresh, 60);
	cr_assert_eq(cf->accounts[0].port, 65535);
	cr_assert_eq(cf->accounts[0].delete_after_days, 36500);
	config_free(&cf);
}

Test(config, message_sizes)
{
	struct config	*cf = load_ok(
	    ACCT("a", "max_message_size = 1K\n")
	    ACCT("b", "max_message_size = \"2G\"\n")
	    ACCT("c", "max_message_size = 512k\n")
	    ACCT("d", "max_message_size = 2048\n"));

	cr_assert_eq(cf->accounts[0].max_message_size, 1024);
	cr_assert_eq(cf->accounts[1].max_message_size, 2ULL << 30);
	cr_assert_eq(cf->accounts[2].max_message_size, 512 * 1024);
	cr_assert_eq(cf->accounts[3].max_message_size, 2048);
	config_free(&cf);
	one_error(ACCT("a", "max_message_size = 1023\n"), 7, "between 1K");
	one_error(ACCT("a", "max_message_size = 3G\n"), 7, "between 1K");
	one_error(ACCT("a", "max_message_size = 5X\n"), 7, "50M");
}

Test(config, fingerprint_normalised)
{
	struct config	*cf = load_ok(
	    ACCT("a", "fingerprint = \"sha256:AB:CD:EF:01:23:45:67:89:AB:CD:"
	    "EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:"
	    "89\"\n")
	    ACCT("b", "fingerprint = \"ABCDEF0123456789ABCDEF0123456789ABCDEF"
	    "0123456789ABCDEF0123456789\"\n")
	    ACCT("c", "fingerprint = \"SHA256:abcdef0123456789abcdef01234567"
	    "89abcdef0123456789abcdef0123456789\"\n"));
	const char	*want = "abcdef0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789";
	size_t		 i;

	for (i = 0; i < 3; i++)
		cr_assert_str_eq(cf->accounts[i].fingerprint, want);
	config_free(&cf);
	one_error(ACCT("a", "fingerprint = \"abcdef\"\n"), 7, "SHA-256");
	one_error(ACCT("a", "fingerprint = \"ZZCDEF0123456789ABCDEF0123456789"
	    "ABCDEF0123456789ABCDEF0123456789\"\n"), 7, "fingerprint");
	one_error(ACCT("a", "fingerprint = \"AB:CDEF:01:23:45:67:89:AB:CD:"
	    "EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:"
	    "89:1\"\n"), 7, "fingerprint");
}

Test(config, include_glob_order_and_lines)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;

	put("main.conf", "include(\"d/*.conf\")\n" ACCT("m", ""));
	put_mode("d/pw", "x\n", 0600);
	put("d/20-b.conf", "\n\n" ACCT("b", ""));
	put("d/10-a.conf", ACCT("a", ""));
	put("d/ignored.txt", "this is not parsed {{{");
	cf = load("main.conf", &errs);
	cr_assert_not_null(cf, "%s", dump(&errs));
	cr_assert_eq(cf->naccounts, 3);
	/* The including file first, then the matches in sorted order. */
	cr_assert_str_eq(cf->accounts[0].name, "m");
	cr_assert_str_eq(cf->accounts[1].name, "a");
	cr_assert_str_eq(cf->accounts[2].name, "b");
	cr_assert_eq(cf->accounts[0].line, 2);
	cr_assert_eq(cf->accounts[2].line, 3);
	cr_assert_not_null(strstr(cf->accounts[1].file, "/d/10-a.conf"));
	cr_assert_not_null(strstr(cf->accounts[2].file, "/d/20-b.conf"));
	cr_assert_null(cf->files[3]);
	config_free(&cf);
}

Test(config, fragment_errors_name_the_fragment)
{
	struct config_errors	 errs = { NULL, 0 };

	put("main.conf", "global {\n  log_level = chatty\n}\n"
	    "include(\"d/*.conf\")\n");
	put_mode("d/pw", "x\n", 0600);
	put("d/1.conf", "# a comment\n" ACCT("a", "poll_interval = 1\n"));
	put("d/2.conf", "\n" ACCT("b", "bogus_key = 1\n"));
	cr_assert_null(load("main.conf", &errs));
	cr_assert_eq(errs.n, 3, "%s", dump(&errs));
	ASSERT_ERR(&errs, "main.conf", 2, "global: log_level = \"chatty\"");
	ASSERT_ERR(&errs, "d/1.conf", 8,
	    "account \"a\": poll_interval = 1: out of range");
	ASSERT_ERR(&errs, "d/2.conf", 8,
	    "account \"b\": unknown option 'bogus_key'");
	config_errors_free(&errs);
	cr_assert_eq(errs.n, 0);
	cr_assert_null(errs.msgs);
}

Test(config, include_rules)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;

	/* Nothing matching a pattern is fine; a named file must exist. */
	cf = load_ok("include(\"none/*.conf\", \"empty/*.conf\")\n");
	config_free(&cf);
	one_error("\ninclude(\"missing.conf\")\n", 2,
	    "missing.conf: cannot open: No such file");

	/* Nested includes resolve against the including file. */
	put("main.conf", "include(\"sub/a.conf\")\n");
	put("sub/a.conf", "include(\"more/*.conf\")\n");
	put("sub/more/x.conf", ACCT("x", ""));
	put_mode("sub/more/pw", "x\n", 0600);
	cf = load("main.conf", &errs);
	cr_assert_not_null(cf, "%s", dump(&errs));
	cr_assert_eq(cf->naccounts, 1);
	cr_assert_not_null(strstr(cf->accounts[0].file, "sub/more/x.conf"));
	config_free(&cf);

	/* A file read twice (here: the main file itself) is an error. */
	one_error("include(\"*.conf\")\n", 1, "already read");
	/* A directory is not a config file. */
	put("dir.conf/x", "");
	put("main.conf", "include(\"dir.*\")\n");
	cr_assert_null(load("main.conf", &errs));
	ASSERT_ERR(&errs, "main.conf", 1, "not a regular file");
	config_errors_free(&errs);
	/* include() belongs at the top level. */
	one_error("account \"a\" {\n include(\"x\")\n}\n", 2,
	    "only allowed at the top level");
}

Test(config, unreadable_fragment)
{
	struct config_errors	 errs = { NULL, 0 };

	if (geteuid() == 0) {
		teardown();	/* a skipped test does not get .fini */
		cr_skip_test("root can read any file");
	}
	put_mode("d/a.conf", ACCT("a", ""), 0);
	put("main.conf", "\ninclude(\"d/*.conf\")\n");
	cr_assert_null(load("main.conf", &errs));
	ASSERT_ERR(&errs, "main.conf", 2, "Permission denied");
	config_errors_free(&errs);
}

Test(config, duplicate_account_across_fragments)
{
	struct config_errors	 errs = { NULL, 0 };
	char			 first[PATH_MAX + 32];

	put("main.conf", "include(\"d/*.conf\")\n");
	put_mode("d/pw", "x\n", 0600);
	put("d/a.conf", "\n" ACCT("same", "") ACCT("other", ""));
	put("d/b.conf", "\n\n\n" ACCT("same", ""));
	cr_assert_null(load("main.conf", &errs));
	cr_assert_eq(errs.n, 1, "%s", dump(&errs));
	snprintf(first, sizeof(first), "first defined at %s/d/a.conf:2",
	    tdir);
	ASSERT_ERR(&errs, "d/b.conf", 4, "account \"same\": duplicate");
	ASSERT_ERR(&errs, "d/b.conf", 4, first);
	config_errors_free(&errs);
}

Test(config, missing_main_file)
{
	struct config_errors	 errs = { NULL, 0 };
	char			 want[PATH_MAX + 64];

	cr_assert_null(load("nope.conf", &errs));
	cr_assert_eq(errs.n, 1);
	snprintf(want, sizeof(want), "%s/nope.conf: cannot open: %s", tdir,
	    strerror(ENOENT));
	cr_assert_str_eq(errs.msgs[0], want);
	config_errors_free(&errs);
}

Test(config, syntax_error_stops_only_its_file)
{
	struct config_errors	 errs = { NULL, 0 };

	put("main.conf", "include(\"d/*.conf\")\n");
	put_mode("d/pw", "x\n", 0600);
	/* A scanner error inside a string ... */
	put("d/1.conf", "account \"a\" {\n  host = \"x\\9\"\n}\n"
	    ACCT("never", "port = 99999\n"));
	/* ... must not leak into the next file's scanning. */
	put("d/2.conf", ACCT("b", "port = 70000\n"));
	put("d/3.conf", "\n" ACCT("c", "folders = {\"x\"\n"));
	cr_assert_null(load("main.conf", &errs));
	cr_assert_eq(errs.n, 3, "%s", dump(&errs));
	ASSERT_ERR(&errs, "d/1.conf", 2, "the rest of this file was not read");
	ASSERT_ERR(&errs, "d/2.conf", 7, "port = 70000");
	/* libconfuse itself accepts a file that ends inside a section. */
	ASSERT_ERR(&errs, "d/3.conf", 2, "this '{' is never closed");
	config_errors_free(&errs);
}

Test(config, unknown_keys_do_not_stop_parsing)
{
	struct config_errors	 errs = { NULL, 0 };

	put("main.conf", ACCT("a", "colour = blue\nport = 99999\n")
	    "top_level_typo = 1\n"
	    "global {\n  logfile = \"/x\"\n  state_dir = \"rel\"\n}\n");
	cr_assert_null(load("main.conf", &errs));
	cr_assert_eq(errs.n, 5, "%s", dump(&errs));
	ASSERT_ERR(&errs, "main.conf", 7, "unknown option 'colour'");
	ASSERT_ERR(&errs, "main.conf", 8, "port = 99999");
	ASSERT_ERR(&errs, "main.conf", 10, "unknown option 'top_level_typo'");
	ASSERT_ERR(&errs, "main.conf", 12, "global: unknown option 'logfile'");
	ASSERT_ERR(&errs, "main.conf", 13, "must be an absolute path");
	config_errors_free(&errs);

	/* A list value cannot be skipped: one message, then the file stops. */
	one_error(ACCT("a", "foldrs = {\"x\"}\nport = 99999\n"), 7,
	    "unknown option 'foldrs' (the rest of this file was not read)");
	one_error("\nacount \"x\" {\n}\n", 2, "unknown option 'acount'");
}

Test(config, comments_keep_line_numbers)
{
	struct config	*cf;

	/* libconfuse 3.3 alone would report line 19 here. */
	one_error("# one\n"
	    "// two\n"
	    "/* three\n"
	    "   four */\n"
	    "global { # five\n"
	    "  /* six */ state_dir = \"/s\" // six\n"
	    "}\n"
	    "## eight\n"
	    "/**/\n"
	    "global { prune_grace_days = 9999 }\n", 10, "prune_grace_days");
	one_error("# x\n\n/* never closed\n global {}\n", 3,
	    "unterminated /* comment");
	one_error("global {\n}\nmilter {\n  socket_mode = \"0600\"\n"
	    "  # }\n", 3, "never closed");
	/* Comment characters inside strings and words are data. */
	cf = load_ok(ACCT("a", "user = \"a#b//c/*d*/\"\n"
	    "move_to = 'x # y'\n"
	    "host = imap//example\n"));
	cr_assert_str_eq(cf->accounts[0].user, "a#b//c/*d*/");
	cr_assert_str_eq(cf->accounts[0].move_to, "x # y");
	cr_assert_str_eq(cf->accounts[0].host, "imap//example");
	config_free(&cf);
}

Test(config, account_rules)
{
	one_error(ACCT("a", "tls = none\n"), 7, "allow_plaintext");
	one_error(ACCT("a", "auth = apop\n"), 7, "apop is only for");
	one_error(ACCT("a", "auth = xoauth2\n"), 7, "needs password_command");
	one_error(ACCT("a", "password_command = {\"/bin/echo\"}\n"), 7,
	    "mutually exclusive");
	one_error("account \"a\" {\n protocol = imap\n host = h\n user = u\n"
	    " deliver_to = {\"u@example.org\"}\n}\n", 1,
	    "password_file or password_command is required");
	one_error(POP("a", "password_command = {\"echo\", \"x\"}\n"), 7,
	    "absolute path");
	/* "= {}" runs no callback: the account's line is the best we have. */
	one_error(POP("a", "password_command = {}\n"), 1, "must not be empty");
	one_error(POP("a", "folders = {\"INBOX\"}\n"), 7, "folders is only");
	one_error(ACCT("a", "folders = {}\n"), 1, "folders must not be empty");
	one_error(ACCT("a", "folders = {\"INBOX\", \"\"}\n"), 7,
	    "must not be empty");
	one_error(POP("a", "move_to = \"Archive\"\n"), 7, "move_to is only");
	one_error(ACCT("a", "move_to = \"a\\nb\"\n"), 7, "control character");
	one_error(ACCT("a", "keep = false\ndelete_after_days = 3\n"), 8,
	    "delete_after_days needs keep = true");
	one_error("account \"a\" {\n protocol = imap\n host = h\n user = u\n"
	    " password_file = pw\n}\n", 1, "deliver_to is required");
	one_error("delivery { via_milter = yes }\n"
	    ACCT("a", "multidrop = true\n"), 8, "needs multidrop_domains");
	one_error(ACCT("a", "\nmultidrop_unknown = default\n"), 8,
	    "needs multidrop_default");
	one_error(ACCT("a", "multidrop_header = \"Received\"\n"), 7,
	    "multidrop_header");
	one_error(ACCT("a",
	    "deliver_to = {\"ok@example.org\", \"a b@x.org\"}\n"), 7,
	    "\"a b@x.org\": is not a valid address");
	one_error(ACCT("a", "deliver_to = \"<u@example.org>\"\n"), 7,
	    "valid address");
	one_error(ACCT("a", "deliver_to = \"nobody\"\n"), 7, "valid address");
	one_error(ACCT("a", "multidrop_domains = {\"ex..org\"}\n"), 7,
	    "domain");
	one_error(ACCT("a", "host = \"imap example.com\"\n"), 7, "spaces");
	one_error(ACCT("bad name", ""), 1, "invalid account name");
	one_error(ACCT("a12345678901234567890123456789012345678901234567890"
	    "12345678901234", ""), 1, "invalid account name");
	one_error("\naccount \"a\" {\n host = h\n user = u\n"
	    " password_file = pw\n deliver_to = {\"u@example.org\"}\n}\n", 2,
	    "protocol is required");
	one_error("account \"a\" {\n protocol = pop3\n password_file = pw\n"
	    " user = u\n deliver_to = {\"u@example.org\"}\n}\n", 1,
	    "host is required");
}

Test(config, account_rules_that_pass)
{
	struct config			*cf;
	const struct config_account	*a;

	cf = load_ok("delivery { via_milter = yes }\n"
	    POP("a", "auth = apop\n")
	    ACCT("b", "multidrop = true\nmultidrop_domains = {\"ex.org\"}\n"
	    "multidrop_header = \"x-original-to\"\nmultidrop_hop = 2\n"
	    "multidrop_rewrite_domain = \"local.test\"\n")
	    ACCT("c", "keep = false\nmove_to = \"Trash\"\n"
	    "folders = {\"INBOX\", \"Lists/haul\"}\n"));
	a = config_find_account(cf, "b");
	cr_assert_str_eq(a->multidrop_header, "X-Original-To",
	    "stored in canonical spelling");
	cr_assert_eq(a->multidrop_hop, 2);
	cr_assert_str_eq(a->multidrop_domains[0], "ex.org");
	a = config_find_account(cf, "c");
	cr_assert_eq(a->keep, 0);
	cr_assert_str_eq(a->folders[1], "Lists/haul");
	cr_assert_null(a->folders[2]);
	a = config_find_account(cf, "a");
	cr_assert_str_eq(a->password_command[0], "/bin/echo");
	cr_assert_null(a->password_file);
	config_free(&cf);
}

Test(config, secret_files)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;
	char			 link[PATH_MAX + 16];

	put_mode("open.pw", "x\n", 0640);
	one_error(ACCT("a", "password_file = \"open.pw\"\n"), 7,
	    "mode 0640 lets group or others access it");
	put_mode("world.pw", "x\n", 0604);
	one_error(ACCT("a", "password_file = \"world.pw\"\n"), 7, "mode 0604");
	one_error(ACCT("a", "password_file = \"gone.pw\"\n"), 7,
	    "cannot open: No such file");
	one_error(ACCT("a", "ca_file = \"nope.pem\"\n"), 7, "ca_file");
	cr_assert_eq(symlink("pw", strcat(strcpy(link, tdir), "/link.pw")), 0);
	one_error(ACCT("a", "password_file = \"link.pw\"\n"), 7,
	    "is a symbolic link");

	/* Disabled accounts are parsed and checked, but not their files. */
	cf = load_ok(ACCT("a", "enabled = false\npassword_file = \"gone\"\n"
	    "ca_file = \"/nonexistent/ca.pem\"\n"));
	cr_assert_eq(cf->accounts[0].enabled, 0);
	config_free(&cf);
	one_error(ACCT("a", "enabled = false\nport = 0x1\n"), 8, "port");

	/* Relative to the file that names it, not to the main file. */
	put("main.conf", "include(\"d/a.conf\")\n");
	put_mode("d/pw", "x\n", 0600);
	put("d/a.conf", ACCT("a", "ca_file = \"pw\"\n"));
	cf = load("main.conf", &errs);
	cr_assert_not_null(cf, "%s", dump(&errs));
	cr_assert_not_null(strstr(cf->accounts[0].password_file, "/d/pw"));
	cr_assert_not_null(strstr(cf->accounts[0].ca_file, "/d/pw"));
	config_free(&cf);
}

Test(config, delivery_rules)
{
	struct config	*cf;

	cf = load_ok("delivery {\n mode = lda\n"
	    " lda_command = {\"/usr/lib/dovecot/dovecot-lda\", \"-d\", \"%u\","
	    " \"-a\", \"%a+%i%%\"}\n"
	    " envelope_from = \"bounces@example.org\"\n"
	    " retry_min = 5\n retry_max = 5\n}\n");
	cr_assert_eq(cf->delivery.mode, DELIVER_LDA);
	cr_assert_str_eq(cf->delivery.lda_command[4], "%a+%i%%");
	cr_assert_null(cf->delivery.lda_command[5]);
	cr_assert_eq(cf->delivery.envelope_from, ENVFROM_FIXED);
	cr_assert_str_eq(cf->delivery.envelope_from_address,
	    "bounces@example.org");
	config_free(&cf);
	cf = load_ok("delivery { envelope_from = null\n"
	    "target = \"[::1]:24\" }\n");
	cr_assert_eq(cf->delivery.envelope_from, ENVFROM_NULL);
	cr_assert_null(cf->delivery.envelope_from_address);
	config_free(&cf);

	one_error("delivery {\n mode = lda\n}\n", 2, "needs a non-empty "
	    "lda_command");
	one_error("delivery {\n mode = lda\n lda_command = {\"lda\"}\n}\n", 3,
	    "absolute path");
	one_error("delivery {\n mode = lda\n"
	    " lda_command = {\"/x\", \"%r\"}\n}\n", 3,
	    "unknown placeholder %r");
	one_error("delivery {\n mode = lda\n"
	    " lda_command = {\"/x\", \"50%\"}\n}\n", 3, "lone %");
	one_error("delivery {\n mode = lda\n lda_command = {\"/x\"}\n"
	    " via_milter = true\n}\n", 4, "via_milter needs");
	one_error("delivery {\n mode = lda\n lda_command = {\"/x\"}\n"
	    " xclient = yes\n}\n", 4, "xclient needs");
	one_error("delivery {\n retry_min = 100\n retry_max = 50\n}\n", 3,
	    "retry_min (100) must not exceed retry_max (50)");
	one_error("delivery { target = \"localhost\" }\n", 1, "host:port");
	one_error("delivery { target = \"::1:25\" }\n", 1, "[addr]:port");
	one_error("delivery { target = \"h:0\" }\n", 1, "1..65535");
	one_error("delivery { target = \"unix:run/lmtp\" }\n", 1, "absolute");
	one_error("delivery { envelope_from = \"a@b\\r\\nRCPT TO:<x@y>\" }\n",
	    1, "envelope_from");
	one_error("delivery { placeholder_domain = \"-bad.invalid\" }\n", 1,
	    "domain");
}

Test(config, global_and_milter_rules)
{
	struct config	*cf;

	cf = load_ok("global {\n metrics_listen = \"[::1]:9167\"\n"
	    " control_socket_mode = \"0600\"\n log_level = debug\n"
	    " log_facility = local3\n user = haul\n}\n"
	    "milter {\n socket = \"inet:8891@127.0.0.1\"\n socket_mode = 660\n"
	    " daemon_name = \"fetch\"\n}\n");
	cr_assert_str_eq(cf->global.metrics_listen, "[::1]:9167");
	cr_assert_eq(cf->global.control_socket_mode, 0600);
	cr_assert_eq(cf->global.log_level, LOG_LVL_DEBUG);
	cr_assert_str_eq(cf->global.user, "haul");
	cr_assert_eq(cf->milter.socket_mode, 0660);
	cr_assert_str_eq(cf->milter.daemon_name, "fetch");
	config_free(&cf);

	one_error("global { metrics_listen = \"0.0.0.0:9167\" }\n", 1,
	    "loopback only");
	one_error("global { metrics_listen = \"localhost:99999\" }\n", 1,
	    "1..65535");
	one_error("global { control_socket_mode = \"0668\" }\n", 1, "octal");
	one_error("global { control_socket_mode = \"4755\" }\n", 1, "octal");
	one_error("global { pid_file = \"hauld.pid\" }\n", 1, "absolute");
	one_error("milter { socket = \"inet:8891\" }\n", 1, "inet:PORT@HOST");
	one_error("milter { socket = \"tcp:1@h\" }\n", 1, "unix:/path");
	one_error("milter { trace_header = \"X-Bad:\" }\n", 1, "header");
}

/*
 * The example: five kinds of mistakes (seven in all) in one
 * configuration, every one reported at its own file:line in one run.
 */
Test(config, many_mistakes_reported_together)
{
	struct config_errors	 errs = { NULL, 0 };

	put_mode("group.pw", "x\n", 0640);
	put("main.conf",
	    "include(\"accounts.d/*.conf\")\n"			/* 1 */
	    "account \"one\" {\n"				/* 2 */
	    "  protocol = imap\n"				/* 3 */
	    "  host = \"imap.example.com\"\n"			/* 4 */
	    "  tls = \"ssl\"\n"					/* 5 */
	    "  user = \"u\"\n"					/* 6 */
	    "  password_file = \"group.pw\"\n"			/* 7 */
	    "  poll_interval = 5\n"				/* 8 */
	    "  deliver_to = {\"u@example.org\"}\n"		/* 9 */
	    "  folders = {\"INBOX\", \"Bad\\r\\nName\"}\n"	/* 10 */
	    "}\n");
	put("accounts.d/a.conf",
	    "# generated\n"					/* 1 */
	    "account \"two\" {\n"				/* 2 */
	    "  protocol = pop3\n"				/* 3 */
	    "  host = \"pop.example.com\"\n"			/* 4 */
	    "  user = \"u\"\n"					/* 5 */
	    "  password_file = \"../pw\"\n"			/* 6 */
	    "  deliver_to = {\"u@example.org\"}\n"		/* 7 */
	    "  keep = false\n"					/* 8 */
	    "  delete_after_days = 7\n"				/* 9 */
	    "  poll_intervall = 60\n"				/* 10 */
	    "}\n"
	    "account \"one\" {\n"				/* 12 */
	    "  protocol = imap\n"
	    "  host = \"imap.example.com\"\n"
	    "  user = \"u\"\n"
	    "  password_file = \"../pw\"\n"
	    "  deliver_to = {\"u@example.org\"}\n"
	    "}\n");
	cr_assert_null(load("main.conf", &errs));
	cr_assert_eq(errs.n, 7, "one error per mistake; got:\n%s", dump(&errs));
	ASSERT_ERR(&errs, "main.conf", 5, "account \"one\": tls = \"ssl\"");
	ASSERT_ERR(&errs, "main.conf", 7, "password_file");
	ASSERT_ERR(&errs, "main.conf", 7, "mode 0640");
	ASSERT_ERR(&errs, "main.conf", 8, "poll_interval = 5: out of range");
	ASSERT_ERR(&errs, "main.conf", 10,
	    "folders = \"Bad\\r\\nName\": contains a control character");
	ASSERT_ERR(&errs, "accounts.d/a.conf", 9,
	    "account \"two\": delete_after_days needs keep = true");
	ASSERT_ERR(&errs, "accounts.d/a.conf", 10,
	    "unknown option 'poll_intervall'");
	ASSERT_ERR(&errs, "accounts.d/a.conf", 12,
	    "account \"one\": duplicate account name");
	/* Sorted: main file first, in line order. */
	cr_assert_not_null(strstr(errs.msgs[0], "main.conf:5:"));
	cr_assert_not_null(strstr(errs.msgs[6], "a.conf:12:"));
	config_errors_free(&errs);
}

Test(config, nul_byte_rejected)
{
	struct config_errors	 errs = { NULL, 0 };
	char			 path[PATH_MAX];
	FILE			*fp;

	snprintf(path, sizeof(path), "%s/main.conf", tdir);
	fp = fopen(path, "w");
	cr_assert_not_null(fp);
	fwrite("global {\n}\n\0\n", 1, 13, fp);
	fclose(fp);
	cr_assert_null(load("main.conf", &errs));
	ASSERT_ERR(&errs, "main.conf", 3, "NUL byte");
	config_errors_free(&errs);
}

Test(config, shipped_sample_is_valid)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cf;

	if (access("etc/haul.conf", R_OK) == -1) {
		teardown();
		cr_skip_test("run from the source tree to check etc/haul.conf");
	}
	cf = config_load("etc/haul.conf", &errs);
	cr_assert_not_null(cf, "%s", dump(&errs));
	cr_assert_eq(cf->naccounts, 2);
	cr_assert_not_null(config_find_account(cf, "isp-pop3"));
	cr_assert_not_null(config_find_account(cf, "work-imap"));
	cr_assert_eq(config_find_account(cf, "work-imap")->delete_after_days,
	    30);
	config_free(&cf);
}

Test(config, include_depth_is_bounded)
{
	struct config_errors	 errs = { NULL, 0 };
	char			 name[32], text[64];
	int			 i;

	/* n0 includes n1 includes n2 ... : a loop by any other name. */
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d.conf", i);
		snprintf(text, sizeof(text), "\ninclude(\"n%d.conf\")\n",
		    i + 1);
		put(name, text);
	}
	put("n10.conf", "");
	cr_assert_null(load("n0.conf", &errs));
	cr_assert_eq(errs.n, 1, "%s", dump(&errs));
	ASSERT_ERR(&errs, "n8.conf", 2, "nested more than 8 levels");
	config_errors_free(&errs);
}

Test(config, errors_may_be_discarded)
{
	put("main.conf", "global { log_level = nope }\n");
	cr_assert_null(load("main.conf", NULL));
	cr_assert_null(load("absent.conf", NULL));
}
