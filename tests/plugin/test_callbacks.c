/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/clock.h"
#include "haul/log.h"
#include "haul/milter.h"
#include "haul/milter_shim.h"
#include "haul/token.h"

/*
 * The libmilter callbacks driven through a recording shim: a fake
 * context holds the macros and the private pointer, and every edit the
 * callbacks ask for is written down.  The snapshot comes from a real
 * config and key file in a temp dir, as in the daemon.
 */

#define NOW	1700000000

struct fctx {
	void		*priv;
	const char	*mnames[8];
	const char	*mvalues[8];
	size_t		 nmacros;
	const char	*fail_op;	/* this op returns MI_FAILURE */
};

struct call {
	char		 op[16];
	char		*a;
	int		 n;
	char		*b;
	char		*c;
};

static struct call	 calls[512];
static size_t		 ncalls;
static char		 dir[] = "/tmp/haul-mtest-XXXXXX";
static char		 conf[256], keyf[256];
static struct haul_key	 key;
static struct buf	 logs = BUF_INIT;

static char *
dup0(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int
record(SMFICTX *ctx, const char *op, const char *a, int n, const char *b,
    const char *c)
{
	struct fctx	*f = (struct fctx *)ctx;
	struct call	*k;

	cr_assert_lt(ncalls, sizeof(calls) / sizeof(calls[0]));
	k = &calls[ncalls++];
	snprintf(k->op, sizeof(k->op), "%s", op);
	k->a = dup0(a);
	k->n = n;
	k->b = dup0(b);
	k->c = dup0(c);
	if (f->fail_op != NULL && strcmp(f->fail_op, op) == 0)
		return MI_FAILURE;
	return MI_SUCCESS;
}

/* Forget the recorded calls. */
static void
reset_calls(void)
{
	size_t	 i;

	for (i = 0; i < ncalls; i++) {
		free(calls[i].a);
		free(calls[i].b);
		free(calls[i].c);
	}
	ncalls = 0;
}

static char *
t_getsymval(SMFICTX *ctx, const char *name)
{
	struct fctx	*f = (struct fctx *)ctx;
	size_t		 i;

	for (i = 0; i < f->nmacros; i++)
		if (strcmp(f->mnames[i], name) == 0)
			return (char *)f->mvalues[i];
	return NULL;
}

static int
t_setpriv(SMFICTX *ctx, void *p)
{
	((struct fctx *)ctx)->priv = p;
	return MI_SUCCESS;
}

static void *
t_getpriv(SMFICTX *ctx)
{
	return ((struct fctx *)ctx)->priv;
}

static int
t_setsymlist(SMFICTX *ctx, int stage, const char *macros)
{
	return record(ctx, "setsymlist", NULL, stage, macros, NULL);
}

static int
t_setreply(SMFICTX *ctx, const char *rcode, const char *xcode,
    const char *text)
{
	return record(ctx, "setreply", rcode, 0, xcode, text);
}

static int
t_addheader(SMFICTX *ctx, const char *name, const char *value)
{
	return record(ctx, "addheader", name, 0, value, NULL);
}

static int
t_chgheader(SMFICTX *ctx, const char *name, int index, const char *value)
{
	return record(ctx, "chgheader", name, index, value, NULL);
}

static int
t_addrcpt(SMFICTX *ctx, const char *rcpt)
{
	return record(ctx, "addrcpt", rcpt, 0, NULL, NULL);
}

static int
t_delrcpt(SMFICTX *ctx, const char *rcpt)
{
	return record(ctx, "delrcpt", rcpt, 0, NULL, NULL);
}

static const struct milter_shim test_shim = {
	.getsymval = t_getsymval,
	.setpriv = t_setpriv,
	.getpriv = t_getpriv,
	.setsymlist = t_setsymlist,
	.setreply = t_setreply,
	.addheader = t_addheader,
	.chgheader = t_chgheader,
	.addrcpt = t_addrcpt,
	.delrcpt = t_delrcpt,
};

/* The reloader thread logs too: the capture is locked. */
static pthread_mutex_t	 logs_mu = PTHREAD_MUTEX_INITIALIZER;

static void
sink(enum log_level lvl, const char *line, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&logs_mu);
	buf_addf(&logs, "%d %s\n", (int)lvl, line);
	pthread_mutex_unlock(&logs_mu);
}

/* 1 if the captured log holds needle. */
static int
logs_has(const char *needle)
{
	int	 r;

	pthread_mutex_lock(&logs_mu);
	r = logs.data != NULL && strstr(logs.data, needle) != NULL;
	pthread_mutex_unlock(&logs_mu);
	return r;
}

static void __attribute__((format(printf, 3, 4)))
write_file(const char *path, int mode, const char *fmt, ...)
{
	va_list	 ap;
	FILE	*fp;
	int	 fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_not_null(fp = fdopen(fd, "w"));
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	cr_assert_eq(fclose(fp), 0);
}

/* haul.conf with one single-drop and one multidrop account. */
static void
write_conf(const char *on_error, const char *deliver_to)
{
	write_file(conf, 0644,
	    "global {\n"
	    "	key_file = \"%s\"\n"
	    "	state_dir = \"%s/state\"\n"
	    "}\n"
	    "delivery {\n"
	    "	via_milter = yes\n"
	    "}\n"
	    "milter {\n"
	    "	daemon_name = \"fetch\"\n"
	    "	on_error = \"%s\"\n"
	    "}\n"
	    "account \"acme\" {\n"
	    "	protocol = \"pop3\"\n"
	    "	host = \"pop.example.net\"\n"
	    "	user = \"u\"\n"
	    "	password_file = \"%s/pw\"\n"
	    "	deliver_to = {\"%s\"}\n"
	    "}\n"
	    "account \"md\" {\n"
	    "	protocol = \"pop3\"\n"
	    "	host = \"pop.example.net\"\n"
	    "	user = \"u\"\n"
	    "	password_file = \"%s/pw\"\n"
	    "	multidrop = true\n"
	    "	multidrop_domains = {\"example.org\"}\n"
	    "	multidrop_rewrite_domain = \"local.test\"\n"
	    "}\n", keyf, dir, on_error, dir, deliver_to, dir);
}

static void
install(void)
{
	struct msnap	*s = msnap_load(conf);

	cr_assert_not_null(s, "%s", logs.data);
	msnap_install(s);
}

static void
setup(void)
{
	char		 pw[300];
	unsigned char	 b[32];
	size_t		 i;
	struct buf	 err = BUF_INIT;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/haul.conf", dir);
	snprintf(keyf, sizeof(keyf), "%s/haul.key", dir);
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 3);
	/* base64 of 0, 3, 6, .. 93 */
	write_file(keyf, 0600, "AAMGCQwPEhUYGx4hJCcqLTAzNjk8P0JFSEtOUVRXWl0=\n");
	write_file(pw, 0600, "secret\n");
	cr_assert_eq(key_load(keyf, &key, &err), 0, "%s", err.data);
	cr_assert_eq(memcmp(key.bytes, b, sizeof(b)), 0);
	buf_free(&err);
	log_set_sink(sink, NULL);
	log_set_level(LOG_LVL_DEBUG);
	write_conf("tempfail", "alice@local.test");
	install();
	milter_set_shim(&test_shim);
	clock_freeze(1000, NOW);
	reset_calls();
}

static void
teardown(void)
{
	char	 cmd[300];

	reloader_stop();
	msnap_clear();
	reset_calls();
	buf_free(&logs);
	milter_set_shim(NULL);
	log_set_sink(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(milter_callbacks, .init = setup, .fini = teardown);

static char *
token(const char *account, long long t)
{
	struct token_fields	 f;
	struct buf		 b = BUF_INIT;

	memset(&f, 0, sizeof(f));
	snprintf(f.account, sizeof(f.account), "%s", account);
	snprintf(f.mailbox, sizeof(f.mailbox), "INBOX");
	snprintf(f.uid, sizeof(f.uid), "U7");
	f.time = t;
	cr_assert_eq(token_make(&key, &f, &b), 0);
	return buf_steal(&b);
}

static void
macro(struct fctx *f, const char *name, const char *value)
{
	f->mnames[f->nmacros] = name;
	f->mvalues[f->nmacros] = value;
	f->nmacros++;
}

static SMFICTX *
ctx(struct fctx *f)
{
	return (SMFICTX *)(void *)f;
}

/* Negotiate as Postfix would (everything offered), then connect. */
static void
open_conn(struct fctx *f, const char *daemon)
{
	unsigned long	 a, p, x, y;

	if (daemon != NULL)
		macro(f, "{daemon_name}", daemon);
	cr_assert_eq(mlt_negotiate(ctx(f), 0x1ff, 0x1fffff, 0, 0, &a, &p,
	    &x, &y), SMFIS_CONTINUE);
	cr_assert_eq(mlt_connect(ctx(f), "localhost", NULL), SMFIS_NOREPLY);
}

/* One message; hdrs is a NULL-terminated name/value list. */
static sfsistat
message(struct fctx *f, const char *rcpt, const char *const *hdrs)
{
	char	*from[] = { "<sender@remote.test>", NULL };
	char	*to[] = { (char *)rcpt, NULL };
	size_t	 i;

	cr_assert_eq(mlt_envfrom(ctx(f), from), SMFIS_NOREPLY);
	cr_assert_eq(mlt_envrcpt(ctx(f), to), SMFIS_NOREPLY);
	for (i = 0; hdrs != NULL && hdrs[i] != NULL; i += 2)
		cr_assert_eq(mlt_header(ctx(f), (char *)hdrs[i],
		    (char *)hdrs[i + 1]), SMFIS_NOREPLY);
	return mlt_eom(ctx(f));
}

static const struct call *
find_call(const char *op, const char *a)
{
	size_t	 i;

	for (i = 0; i < ncalls; i++)
		if (strcmp(calls[i].op, op) == 0 &&
		    (a == NULL || (calls[i].a != NULL &&
		    strcmp(calls[i].a, a) == 0)))
			return &calls[i];
	return NULL;
}

static size_t
count_calls(const char *op)
{
	size_t	 i, n = 0;

	for (i = 0; i < ncalls; i++)
		n += strcmp(calls[i].op, op) == 0;
	return n;
}

Test(milter_callbacks, negotiation_asks_only_for_what_it_uses)
{
	struct fctx	 f = { 0 };
	unsigned long	 a, p, x, y;
	const struct call *c;

	cr_assert_eq(mlt_negotiate(ctx(&f), 0x1ff, 0x1fffff, 0, 0, &a, &p,
	    &x, &y), SMFIS_CONTINUE);
	cr_assert_eq(a, SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_SETSYMLIST);
	cr_assert_eq(p & (SMFIP_NOBODY | SMFIP_NOHELO | SMFIP_NOEOH |
	    SMFIP_NOUNKNOWN | SMFIP_NODATA), SMFIP_NOBODY | SMFIP_NOHELO |
	    SMFIP_NOEOH | SMFIP_NOUNKNOWN | SMFIP_NODATA);
	cr_assert_eq(p & (SMFIP_NR_HDR | SMFIP_NR_RCPT | SMFIP_NR_MAIL |
	    SMFIP_NR_CONN), SMFIP_NR_HDR | SMFIP_NR_RCPT | SMFIP_NR_MAIL |
	    SMFIP_NR_CONN);
	/* Never skip what we need. */
	cr_assert_eq(p & (SMFIP_NOHDRS | SMFIP_NORCPT | SMFIP_NOMAIL |
	    SMFIP_NOCONNECT), 0);
	cr_assert_eq(x, 0);
	cr_assert_eq(y, 0);
	cr_assert_eq(count_calls("setsymlist"), 3);
	cr_assert_not_null(c = find_call("setsymlist", NULL));
	cr_assert_eq(calls[0].n, SMFIM_CONNECT);
	cr_assert_str_eq(calls[0].b, "{daemon_name}");
	cr_assert_eq(calls[1].n, SMFIM_ENVFROM);
	cr_assert_str_eq(calls[1].b, "{daemon_name} {i}");
	cr_assert_eq(calls[2].n, SMFIM_EOM);
	cr_assert_str_eq(calls[2].b, "{i}");
	cr_assert_eq(mlt_close(ctx(&f)), SMFIS_CONTINUE);
	cr_assert_null(f.priv);
}

Test(milter_callbacks, negotiation_over_tcp_answers_every_stage)
{
	struct fctx	 f = { 0 };
	unsigned long	 a, p, x, y;
	char		*from[] = { "<s@r.test>", NULL };

	/* An unanswered packet would wait for a delayed ACK: 40 ms. */
	milter_set_tcp(1);
	cr_assert_eq(mlt_negotiate(ctx(&f), 0x1ff, 0x1fffff, 0, 0, &a, &p,
	    &x, &y), SMFIS_CONTINUE);
	cr_assert_eq(p & (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |
	    SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_HDR | SMFIP_NR_EOH |
	    SMFIP_NR_BODY | SMFIP_NR_UNKN), 0);
	cr_assert_eq(p & SMFIP_NODATA, 0);
	cr_assert_eq(p & (SMFIP_NOBODY | SMFIP_NOHELO), SMFIP_NOBODY |
	    SMFIP_NOHELO);
	cr_assert_eq(mlt_connect(ctx(&f), "h", NULL), SMFIS_CONTINUE);
	cr_assert_eq(mlt_envfrom(ctx(&f), from), SMFIS_CONTINUE);
	cr_assert_eq(mlt_header(ctx(&f), "Subject", "x"), SMFIS_CONTINUE);
	mlt_close(ctx(&f));
	milter_set_tcp(0);
}

Test(milter_callbacks, negotiation_with_a_limited_mta)
{
	struct fctx	 f = { 0 }, g = { 0 };
	unsigned long	 a, p, x, y;

	/* No setsymlist offered: the MTA's default macros must do. */
	cr_assert_eq(mlt_negotiate(ctx(&f), SMFIF_ADDHDRS | SMFIF_CHGHDRS |
	    SMFIF_ADDRCPT | SMFIF_DELRCPT, SMFIP_NOBODY, 0, 0, &a, &p, &x,
	    &y), SMFIS_CONTINUE);
	cr_assert_eq(a & SMFIF_SETSYMLIST, 0);
	cr_assert_eq(p, SMFIP_NOBODY);
	cr_assert_eq(count_calls("setsymlist"), 0);
	/* No NR flags: every stage replies. */
	cr_assert_eq(mlt_connect(ctx(&f), "h", NULL), SMFIS_CONTINUE);
	mlt_close(ctx(&f));
	/* No header changes: refuse the connection. */
	cr_assert_eq(mlt_negotiate(ctx(&g), SMFIF_ADDHDRS | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT, 0x1fffff, 0, 0, &a, &p, &x, &y), SMFIS_REJECT);
	cr_assert(logs_has( "needs"));
	mlt_close(ctx(&g));
}

Test(milter_callbacks, valid_token_mapped_and_tagged)
{
	struct fctx	 f = { 0 };
	char		*t = token("acme", NOW - 1);
	const char	*hdrs[] = {
		"X-Haul-Token", t, "X-Haul-Account", "evil",
		"Subject", "hi", NULL,
	};
	const struct call *c;

	open_conn(&f, "fetch");
	macro(&f, "{i}", "4AbC9");
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_CONTINUE);
	cr_assert_eq(count_calls("setreply"), 0);
	cr_assert_not_null(c = find_call("chgheader", "X-Haul-Token"));
	cr_assert_eq(c->n, 1);
	cr_assert_null(c->b);
	cr_assert_not_null(find_call("chgheader", "X-Haul-Account"));
	cr_assert_not_null(find_call("addrcpt", "<alice@local.test>"));
	cr_assert_not_null(find_call("delrcpt", "<acme@fetch.invalid>"));
	cr_assert_not_null(c = find_call("addheader", "X-Haul-Account"));
	cr_assert_str_eq(c->b, "acme");
	cr_assert_not_null(c = find_call("addheader", "X-Haul-Trace"));
	cr_assert_str_eq(c->b,
	    "account=acme; mailbox=INBOX; uid=0.U7; queue-id=4AbC9");
	/* The placeholder goes only after its replacement is in. */
	cr_assert_lt(find_call("addrcpt", NULL) - calls,
	    find_call("delrcpt", NULL) - calls);
	cr_assert(logs_has(
	    "account=acme: 4AbC9: accepted"), "%s", logs.data);
	cr_assert_eq(milter_busy(), 0);
	mlt_close(ctx(&f));
	free(t);
}

Test(milter_callbacks, forged_token_rejected_with_reason)
{
	struct fctx	 f = { 0 };
	char		*t = token("acme", NOW), *s;
	const char	*hdrs[] = { "X-Haul-Token", t, NULL };
	const struct call *c;

	s = strstr(t, "s=") + 2;
	*s = *s == 'x' ? 'y' : 'x';
	open_conn(&f, "fetch");
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_REJECT);
	cr_assert_not_null(c = find_call("setreply", "550"));
	cr_assert_str_eq(c->b, "5.7.1");
	cr_assert_str_eq(c->c, "haul-milter: X-Haul-Token rejected: bad "
	    "signature");
	cr_assert_eq(count_calls("addrcpt") + count_calls("delrcpt") +
	    count_calls("addheader") + count_calls("chgheader"), 0);
	cr_assert(logs_has( "NOQUEUE: rejected"), "%s",
	    logs.data);
	mlt_close(ctx(&f));
	free(t);
}

Test(milter_callbacks, wrong_listener_rejected)
{
	struct fctx	 f = { 0 };
	char		*t = token("acme", NOW);
	const char	*hdrs[] = { "X-Haul-Token", t, NULL };

	open_conn(&f, "smtpd");
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_REJECT);
	cr_assert_not_null(strstr(find_call("setreply", "550")->c,
	    "not accepted on this listener"));
	mlt_close(ctx(&f));
	free(t);
}

Test(milter_callbacks, untrusted_mail_stripped_and_placeholder_refused)
{
	struct fctx	 f = { 0 };
	const char	*hdrs[] = {
		"X-Haul-Account", "evil", "X-Haul-Trace", "account=acme",
		NULL,
	};

	open_conn(&f, "smtpd");
	cr_assert_eq(message(&f, "<bob@local.test>", hdrs), SMFIS_CONTINUE);
	cr_assert_eq(count_calls("chgheader"), 2);
	cr_assert_eq(count_calls("addheader"), 0);
	cr_assert(logs_has( "removed 2 X-Haul-*"));
	reset_calls();
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", NULL),
	    SMFIS_REJECT);
	cr_assert_not_null(strstr(find_call("setreply", "550")->c,
	    "placeholder recipient without an X-Haul-Token"));
	mlt_close(ctx(&f));
}

Test(milter_callbacks, edit_failure_follows_on_error)
{
	struct fctx	 f = { 0 }, g = { 0 };
	char		*t = token("acme", NOW);
	const char	*hdrs[] = { "X-Haul-Token", t, NULL };
	const struct call *c;

	f.fail_op = "addrcpt";
	open_conn(&f, "fetch");
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_TEMPFAIL);
	cr_assert_not_null(c = find_call("setreply", "451"));
	cr_assert_str_eq(c->b, "4.3.0");
	/* It stopped at the failure: the placeholder was not removed. */
	cr_assert_eq(count_calls("delrcpt"), 0);
	cr_assert(logs_has( "smfi_addrcpt"));
	mlt_close(ctx(&f));

	write_conf("accept", "alice@local.test");
	install();
	reset_calls();
	g.fail_op = "addrcpt";
	open_conn(&g, "fetch");
	cr_assert_eq(message(&g, "<acme@fetch.invalid>", hdrs),
	    SMFIS_CONTINUE);
	cr_assert_eq(count_calls("setreply"), 0);
	cr_assert_eq(count_calls("delrcpt"), 0);
	mlt_close(ctx(&g));
	free(t);
}

Test(milter_callbacks, missing_daemon_name_is_an_internal_error)
{
	struct fctx	 f = { 0 }, g = { 0 };
	char		*t = token("acme", NOW);
	const char	*hdrs[] = {
		"X-Haul-Token", t, "X-Haul-Account", "evil", NULL,
	};

	open_conn(&f, NULL);
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_TEMPFAIL);
	cr_assert_not_null(strstr(find_call("setreply", "451")->c,
	    "{daemon_name}"));
	mlt_close(ctx(&f));

	/* accept: the message goes on untrusted: stripped, not mapped. */
	write_conf("accept", "alice@local.test");
	install();
	reset_calls();
	open_conn(&g, NULL);
	cr_assert_eq(message(&g, "<acme@fetch.invalid>", hdrs),
	    SMFIS_CONTINUE);
	cr_assert_eq(count_calls("chgheader"), 2);
	cr_assert_eq(count_calls("addrcpt") + count_calls("delrcpt") +
	    count_calls("addheader"), 0);
	cr_assert(logs_has( "passed on untrusted"));
	mlt_close(ctx(&g));
	free(t);
}

Test(milter_callbacks, queue_id_from_mail_stage_or_unknown)
{
	struct fctx	 f = { 0 }, g = { 0 };
	char		*t = token("acme", NOW);
	const char	*hdrs[] = { "X-Haul-Token", t, NULL };
	char		*from[] = { "<s@r.test>", NULL };
	char		*to[] = { "<acme@fetch.invalid>", NULL };

	/* Sendmail style: {i} known at MAIL, not repeated at the end. */
	open_conn(&f, "fetch");
	macro(&f, "{i}", "SM123");
	cr_assert_eq(mlt_envfrom(ctx(&f), from), SMFIS_NOREPLY);
	f.nmacros--;
	mlt_envrcpt(ctx(&f), to);
	mlt_header(ctx(&f), "X-Haul-Token", t);
	cr_assert_eq(mlt_eom(ctx(&f)), SMFIS_CONTINUE);
	cr_assert_str_eq(find_call("addheader", "X-Haul-Trace")->b,
	    "account=acme; mailbox=INBOX; uid=0.U7; queue-id=SM123");
	mlt_close(ctx(&f));

	reset_calls();
	open_conn(&g, "fetch");
	cr_assert_eq(message(&g, "<acme@fetch.invalid>", hdrs),
	    SMFIS_CONTINUE);
	cr_assert_str_eq(find_call("addheader", "X-Haul-Trace")->b,
	    "account=acme; mailbox=INBOX; uid=0.U7; queue-id=unknown");
	mlt_close(ctx(&g));
	free(t);
}

Test(milter_callbacks, abort_forgets_the_message)
{
	struct fctx	 f = { 0 };
	char		*from[] = { "<s@r.test>", NULL };
	char		*to[] = { "<acme@fetch.invalid>", NULL };

	open_conn(&f, "fetch");
	mlt_envfrom(ctx(&f), from);
	mlt_envrcpt(ctx(&f), to);
	mlt_header(ctx(&f), "X-Haul-Account", "evil");
	cr_assert_eq(milter_busy(), 1);
	cr_assert_eq(mlt_abort(ctx(&f)), SMFIS_CONTINUE);
	cr_assert_eq(milter_busy(), 0);
	/* The next message has neither the placeholder nor the header. */
	cr_assert_eq(message(&f, "<bob@local.test>", NULL), SMFIS_CONTINUE);
	cr_assert_eq(ncalls - count_calls("setsymlist"), 0);
	mlt_close(ctx(&f));
}

Test(milter_callbacks, connections_do_not_mix)
{
	struct fctx	 f = { 0 }, g = { 0 };
	char		*t = token("acme", NOW);
	char		*from[] = { "<s@r.test>", NULL };
	char		*to1[] = { "<acme@fetch.invalid>", NULL };
	char		*to2[] = { "<bob@local.test>", NULL };

	open_conn(&f, "fetch");
	open_conn(&g, "other");
	mlt_envfrom(ctx(&f), from);
	mlt_envfrom(ctx(&g), from);
	mlt_envrcpt(ctx(&f), to1);
	mlt_envrcpt(ctx(&g), to2);
	mlt_header(ctx(&g), "X-Haul-Account", "evil");
	mlt_header(ctx(&f), "X-Haul-Token", t);
	cr_assert_eq(milter_busy(), 2);
	cr_assert_eq(mlt_eom(ctx(&g)), SMFIS_CONTINUE);
	cr_assert_eq(count_calls("chgheader"), 1);
	cr_assert_eq(mlt_eom(ctx(&f)), SMFIS_CONTINUE);
	cr_assert_not_null(find_call("addrcpt", "<alice@local.test>"));
	mlt_close(ctx(&f));
	mlt_close(ctx(&g));
	cr_assert_eq(milter_busy(), 0);
	free(t);
}

Test(milter_callbacks, message_keeps_its_snapshot_across_a_reload)
{
	struct fctx	 f = { 0 };
	char		*t = token("acme", NOW);
	char		*from[] = { "<s@r.test>", NULL };
	char		*to[] = { "<acme@fetch.invalid>", NULL };
	const char	*hdrs[] = { "X-Haul-Token", t, NULL };

	open_conn(&f, "fetch");
	mlt_envfrom(ctx(&f), from);
	mlt_envrcpt(ctx(&f), to);
	mlt_header(ctx(&f), "X-Haul-Token", t);
	/* Reload in the middle: the message in flight is not affected. */
	write_conf("tempfail", "carol@local.test");
	cr_assert_eq(msnap_reload(conf), 0);
	cr_assert_eq(mlt_eom(ctx(&f)), SMFIS_CONTINUE);
	cr_assert_not_null(find_call("addrcpt", "<alice@local.test>"));
	cr_assert_null(find_call("addrcpt", "<carol@local.test>"));
	reset_calls();
	cr_assert_eq(message(&f, "<acme@fetch.invalid>", hdrs),
	    SMFIS_CONTINUE);
	cr_assert_not_null(find_call("addrcpt", "<carol@local.test>"));
	mlt_close(ctx(&f));
	free(t);
}

Test(milter_callbacks, bad_reload_keeps_the_running_config)
{
	struct msnap	*s;

	write_file(conf, 0644, "milter { on_error = \"sometimes\" }\n");
	cr_assert_eq(msnap_reload(conf), -1);
	cr_assert(logs_has( "keeping the running"));
	s = msnap_acquire();
	cr_assert_not_null(s);
	cr_assert_not_null(md_find_account(&s->policy, "acme"));
	msnap_release(&s);
	/* A missing key is as bad as a broken file. */
	write_conf("tempfail", "alice@local.test");
	unlink(keyf);
	cr_assert_eq(msnap_reload(conf), -1);
}

static unsigned long
generation(void)
{
	struct msnap	*s = msnap_acquire();
	unsigned long	 g = s->generation;

	msnap_release(&s);
	return g;
}

static int
wait_generation(unsigned long old, int ms)
{
	struct timespec	 ts = { 0, 10 * 1000000L };

	for (; ms > 0; ms -= 10) {
		if (generation() != old)
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

Test(milter_callbacks, reloader_follows_file_changes)
{
	struct msnap	*s;
	unsigned long	 g0 = generation();

	cr_assert_eq(reloader_start(conf, 30, NULL), 0);
	write_conf("tempfail", "carol@local.test");
	cr_assert(wait_generation(g0, 3000), "no reload: %s", logs.data);
	s = msnap_acquire();
	cr_assert_str_eq(md_find_account(&s->policy, "acme")->deliver_to[0],
	    "carol@local.test");
	msnap_release(&s);
	cr_assert(logs_has( "configuration files changed"));

	/* A broken edit is logged once and the old config stays. */
	g0 = generation();
	write_file(conf, 0644, "account \"acme\" {\n");
	cr_assert_not(wait_generation(g0, 400));
	cr_assert(logs_has( "keeping the running"));
	reloader_stop();
}

Test(milter_callbacks, reloader_on_request)
{
	unsigned long	 g0 = generation();
	struct timespec	 ts = { 0, 200 * 1000000L };

	cr_assert_eq(reloader_start(conf, 60000, NULL), 0);
	nanosleep(&ts, NULL);
	cr_assert_eq(generation(), g0);
	reloader_kick();
	cr_assert(wait_generation(g0, 3000), "%s", logs.data);
	cr_assert(logs_has( "SIGUSR1: reloading"));
	reloader_stop();
}

Test(milter_callbacks, snapshot_outlives_its_replacement)
{
	struct msnap	*old = msnap_acquire(), *cur;

	write_conf("tempfail", "carol@local.test");
	cr_assert_eq(msnap_reload(conf), 0);
	cur = msnap_acquire();
	cr_assert_neq(old, cur);
	cr_assert_gt(cur->generation, old->generation);
	/* Still whole: the old holder can finish its message. */
	cr_assert_str_eq(md_find_account(&old->policy, "acme")->deliver_to[0],
	    "alice@local.test");
	cr_assert_eq(old->refs, 1);
	msnap_release(&old);
	cr_assert_null(old);
	msnap_release(&cur);
}
