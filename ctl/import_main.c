/* ISC licence; see LICENSE. */
/*
 * haulctl import-fetchmail: read ~/.fetchmailrc and ~/.fetchids, seed
 * the UID store with what fetchmail already delivered, then write one
 * account fragment per mailbox (0644), its password file (0600) and the
 * delivery block.  Nothing is written unless everything can be: the
 * output names are checked first, the store is seeded and committed
 * before any fragment exists (an account never runs unseeded), and
 * files are created beside their final name and linked (or, with
 * --force, renamed) into place.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/fetchmailrc.h"
#include "haul/fmimport.h"
#include "haul/log.h"
#include "haul/store.h"
#include "haul/xmalloc.h"

#define IDS_MAX		(256 * 1024 * 1024)
#define DELIVERY_FILE	"fetchmail-delivery.inc"
#define SEED_QUEUE_ID	"fetchmail-import"

struct imp {
	const char	*conf;		/* haul.conf (-c) */
	const char	*rc;
	const char	*ids;
	int		 ids_given;
	const char	*out;
	const char	*state_dir;
	const char	*domain;
	int		 force, dry_run, no_seed;
	struct fmrc	*parsed;
	struct fmids	 idl;
	struct fmi_result res;
	char		*alloc[8];	/* strings to free at the end */
	size_t		 nalloc;
};

static const char *
keep_str(struct imp *m, char *s)
{
	if (m->nalloc < sizeof(m->alloc) / sizeof(m->alloc[0]))
		m->alloc[m->nalloc++] = s;
	return s;
}

/* Read a whole regular file of at most max bytes.  0, or -1 (errno). */
static int
slurp(const char *path, size_t max, struct buf *out)
{
	struct stat	 st;
	char		 tmp[65536];
	ssize_t		 n;
	int		 fd;

	buf_init(out, max);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	/* a regular file, or /dev/null for "none" */
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		close(fd);
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		return -1;
	}
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		if (buf_add(out, tmp, (size_t)n) == -1) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	close(fd);
	explicit_bzero(tmp, sizeof(tmp));
	if (n == -1)
		return -1;
	if (out->data == NULL)
		buf_add_str(out, "");
	return 0;
}

static void
usage_import(void)
{
	fprintf(stderr, "usage: haulctl [-c config] import-fetchmail "
	    "[--rc FILE] [--ids FILE] [--out DIR]\n"
	    "\t[--state-dir DIR] [--domain DOMAIN] [--force] [--dry-run] "
	    "[--no-seed]\n");
}

static const char *
fm_home(void)
{
	const char	*h = getenv("FETCHMAILHOME");

	if (h != NULL && *h != '\0')
		return h;
	h = getenv("HOME");
	return h != NULL && *h != '\0' ? h : "/";
}

static void
print_warnings(const struct imp *m)
{
	size_t	 i, j;

	for (i = 0; i < m->res.nwarns; i++) {
		if (m->res.warns[i].line > 0)
			fprintf(stderr, "%s:%u: warning: %s\n", m->rc,
			    m->res.warns[i].line, m->res.warns[i].text);
		else
			fprintf(stderr, "%s: warning: %s\n", m->rc,
			    m->res.warns[i].text);
	}
	for (i = 0; i < m->res.n; i++)
		for (j = 0; j < m->res.v[i].nwarns; j++)
			fprintf(stderr, "%s:%u: warning: account %s: %s\n", m->rc,
			    m->res.v[i].warns[j].line, m->res.v[i].name,
			    m->res.v[i].warns[j].text);
}

/* The state_dir of the haul configuration, or NULL (reason printed). */
static char *
state_dir_from(const char *conf)
{
	struct config_errors errs = { NULL, 0 };
	struct config	*cf;
	char		*s = NULL;
	size_t		 i;

	cf = config_load(conf, &errs);
	for (i = 0; i < errs.n && i < 20; i++)
		fprintf(stderr, "haulctl: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (cf == NULL) {
		fprintf(stderr, "haulctl: cannot read state_dir from %s; pass "
		    "--state-dir\n", conf);
		return NULL;
	}
	if (cf->global.state_dir != NULL)
		s = xstrdup(cf->global.state_dir);
	config_free(&cf);
	return s;
}

struct seed_ctx {
	struct store	*st;
	int64_t		 mbox;
	const char	*account;
	size_t		 added, already, bad;
	int		 failed;
};

/*
 * Record one UID fetchmail delivered as accepted, unless the store has
 * it handled already: the record that makes hauld skip it (keep) or
 * only delete it (keep = no), as if hauld had delivered it.
 */
static void
seed_one(const struct fmids_rec *r, void *arg)
{
	struct seed_ctx	*s = arg;
	struct store_msg rec;
	size_t		 len = strlen(r->uid);
	int		 g;

	if (s->failed)
		return;
	if (len == 0 || len > STORE_UID_MAX) {
		fprintf(stderr, "haulctl: account %s: UID on line %u of the "
		    "ids file is longer than %d bytes; not seeded\n",
		    s->account, r->line, STORE_UID_MAX);
		s->bad++;
		return;
	}
	if ((g = store_get(s->st, s->mbox, r->uid, len, &rec)) == -1) {
		s->failed = 1;
		return;
	}
	if (g == STORE_FOUND && rec.state != STORE_SEEN &&
	    rec.state != STORE_INJECTING) {
		s->already++;
		return;
	}
	if (store_accepted(s->st, s->mbox, r->uid, len, SEED_QUEUE_ID, NULL,
	    NULL, 0) == 0) {
		s->failed = 1;
		return;
	}
	s->added++;
}

static int
seed_store(struct imp *m)
{
	struct store	*st;
	struct buf	 err = BUF_INIT;
	char		*sd = NULL;
	size_t		 i, need = 0;
	int		 rc = 0;

	for (i = 0; i < m->res.n; i++)
		if (m->res.v[i].conf != NULL && m->res.v[i].nseed > 0)
			need++;
	if (need == 0 || m->no_seed || m->dry_run)
		return 0;
	if (m->state_dir == NULL) {
		if ((sd = state_dir_from(m->conf)) == NULL)
			return -1;
		m->state_dir = sd;
	}
	if ((st = store_open(m->state_dir, &err)) == NULL) {
		fprintf(stderr, "haulctl: UID store in %s: %s\n", m->state_dir,
		    err.data ? err.data : "cannot open");
		buf_free(&err);
		free(sd);
		return -1;
	}
	for (i = 0; i < m->res.n && rc == 0; i++) {
		struct fmi_account *a = &m->res.v[i];
		struct seed_ctx	 s;

		if (a->conf == NULL || a->nseed == 0)
			continue;
		memset(&s, 0, sizeof(s));
		s.st = st;
		s.account = a->name;
		if (store_mailbox(st, a->name, STORE_POP3_FOLDER,
		    STORE_POP3_UIDVALIDITY, &s.mbox) == -1) {
			rc = -1;
			break;
		}
		fmids_each(&m->idl, a->seed_user, a->seed_host, seed_one, &s);
		if (s.failed) {
			rc = -1;
			break;
		}
		printf("%s: seeded %zu UIDs from %s (%zu already in the "
		    "store)\n", a->name, s.added, m->ids, s.already);
	}
	if (rc == 0 && store_commit(st) == -1)
		rc = -1;
	if (rc == -1)
		fprintf(stderr, "haulctl: seeding the UID store in %s failed; "
		    "nothing was written\n", m->state_dir);
	store_close(&st);
	buf_free(&err);
	if (sd != NULL) {
		m->state_dir = NULL;
		free(sd);
	}
	return rc;
}

static char *
out_path(const struct imp *m, const char *name, const char *suffix)
{
	char	*p;

	xasprintf(&p, "%s/%s%s", m->out, name, suffix);
	return p;
}

/*
 * Write data to path with mode: a new file beside it (O_EXCL,
 * O_NOFOLLOW), fsync'd, then linked into place (refusing an existing
 * file) or, with force, renamed over it.
 */
static int
write_file(const struct imp *m, const char *path, const char *data,
    mode_t mode)
{
	char	*tmp;
	size_t	 len = strlen(data), off = 0;
	ssize_t	 n;
	int	 fd, rc = -1;

	xasprintf(&tmp, "%s.tmp%ld", path, (long)getpid());
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) == -1) {
		fprintf(stderr, "haulctl: %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (off < len) {
		if ((n = write(fd, data + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (m->force) {
		if (rename(tmp, path) == -1)
			goto fail;
	} else {
		if (link(tmp, path) == -1)
			goto fail;
		(void)unlink(tmp);
	}
	rc = 0;
fail:
	if (rc == -1) {
		fprintf(stderr, "haulctl: %s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		(void)unlink(tmp);
	}
	free(tmp);
	return rc;
}

/* Every output name, checked before anything is written. */
static int
check_outputs(const struct imp *m)
{
	struct stat	 st;
	size_t		 i;
	char		*p;
	int		 bad = 0;

	if (stat(m->out, &st) == -1) {
		if (errno == ENOENT && mkdir(m->out, 0755) == 0)
			return 0;
		fprintf(stderr, "haulctl: --out %s: %s\n", m->out,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "haulctl: --out %s: not a directory\n", m->out);
		return -1;
	}
	if (m->force)
		return 0;
	for (i = 0; i < m->res.n; i++) {
		const struct fmi_account *a = &m->res.v[i];
		const char *sfx[2] = { ".conf", ".pass" };
		int	 k;

		if (a->conf == NULL)
			continue;
		for (k = 0; k < (a->password != NULL ? 2 : 1); k++) {
			p = out_path(m, a->name, sfx[k]);
			if (lstat(p, &st) == 0) {
				fprintf(stderr, "haulctl: %s exists; not "
				    "overwritten (use --force)\n", p);
				bad = 1;
			}
			free(p);
		}
	}
	p = out_path(m, DELIVERY_FILE, "");
	if (lstat(p, &st) == 0) {
		fprintf(stderr, "haulctl: %s exists; not overwritten (use "
		    "--force)\n", p);
		bad = 1;
	}
	free(p);
	return bad ? -1 : 0;
}

static int
write_outputs(const struct imp *m)
{
	size_t	 i;
	char	*p, *pw;
	int	 rc = 0, dfd;

	/* password files first: a fragment never names a missing one */
	for (i = 0; i < m->res.n && rc == 0; i++) {
		const struct fmi_account *a = &m->res.v[i];

		if (a->conf == NULL || a->password == NULL)
			continue;
		p = out_path(m, a->name, ".pass");
		xasprintf(&pw, "%s\n", a->password);
		rc = write_file(m, p, pw, 0600);
		freezero(pw, strlen(pw));
		free(p);
	}
	if (rc == 0) {
		p = out_path(m, DELIVERY_FILE, "");
		rc = write_file(m, p, m->res.delivery, 0644);
		free(p);
	}
	for (i = 0; i < m->res.n && rc == 0; i++) {
		const struct fmi_account *a = &m->res.v[i];

		if (a->conf == NULL)
			continue;
		p = out_path(m, a->name, ".conf");
		rc = write_file(m, p, a->conf, 0644);
		free(p);
	}
	if ((dfd = open(m->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return rc;
}

static void
summary(const struct imp *m)
{
	size_t	 i, written = 0, disabled = 0;

	for (i = 0; i < m->res.n; i++) {
		const struct fmi_account *a = &m->res.v[i];

		if (a->conf == NULL) {
			printf("line %u: not converted (see the warnings)\n",
			    a->line);
			continue;
		}
		written++;
		if (!a->enabled)
			disabled++;
		printf("%s: %s/%s.conf (%s, keep = %s, %s%s)\n", a->name,
		    m->out, a->name, a->imap ? "imap" : "pop3",
		    a->keep ? "yes" : "no", a->enabled ? "enabled" :
		    "DISABLED: see the warnings", !a->imap && a->nseed ?
		    ", fetchmail's UIDs seeded" : a->imap && a->keep ?
		    ", first_fetch = unseen" : "");
	}
	printf("%zu account%s written (%zu disabled); delivery: %s/%s\n",
	    written, written == 1 ? "" : "s", disabled, m->out, DELIVERY_FILE);
	printf("next: merge %s/%s into haul.conf's delivery block (or "
	    "include it), check with `hauld -n`, stop fetchmail, start "
	    "hauld\n", m->out, DELIVERY_FILE);
}

static void
dry_run_print(const struct imp *m)
{
	size_t	 i;

	for (i = 0; i < m->res.n; i++) {
		const struct fmi_account *a = &m->res.v[i];

		if (a->conf == NULL)
			continue;
		printf("==> %s/%s.conf <==\n%s", m->out, a->name, a->conf);
		if (a->password != NULL)
			printf("==> %s/%s.pass <== (mode 0600, not shown)\n",
			    m->out, a->name);
		if (!a->imap)
			printf("(would seed %zu UIDs)\n", a->nseed);
	}
	printf("==> %s/%s <==\n%s", m->out, DELIVERY_FILE, m->res.delivery);
}

static void
imp_free(struct imp *m)
{
	size_t	 i;

	fmrc_free(&m->parsed);
	fmids_free(&m->idl);
	fmi_result_free(&m->res);
	for (i = 0; i < m->nalloc; i++)
		free(m->alloc[i]);
}

int
import_fetchmail(const char *conf, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "rc", required_argument, NULL, 'r' },
		{ "ids", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "domain", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-seed", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct imp	 m;
	struct buf	 text = BUF_INIT;
	struct fmi_opts	 o;
	struct passwd	*pw;
	char		 err[300], *s;
	const char	*v;
	int		 ch, rc = 1;

	memset(&m, 0, sizeof(m));
	m.conf = conf != NULL ? conf : "/etc/haul/haul.conf";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'r': m.rc = optarg; break;
		case 'i': m.ids = optarg; m.ids_given = 1; break;
		case 'o': m.out = optarg; break;
		case 's': m.state_dir = optarg; break;
		case 'd': m.domain = optarg; break;
		case 'f': m.force = 1; break;
		case 'n': m.dry_run = 1; break;
		case 'N': m.no_seed = 1; break;
		case 'h': usage_import(); return 0;
		default: usage_import(); return 2;
		}
	}
	if (optind != argc) {
		usage_import();
		return 2;
	}
	log_init("haulctl", 1, NULL);
	if (m.rc == NULL) {
		xasprintf(&s, "%s/%s", fm_home(), getenv("FETCHMAILHOME") ?
		    "fetchmailrc" : ".fetchmailrc");
		m.rc = keep_str(&m, s);
	}
	if (m.out == NULL) {
		const char *slash = strrchr(m.conf, '/');

		xasprintf(&s, "%.*saccounts.d", slash ?
		    (int)(slash - m.conf + 1) : 0, m.conf);
		m.out = keep_str(&m, s);
	}
	if (m.domain != NULL && (strchr(m.domain, '@') != NULL ||
	    strpbrk(m.domain, " \t\r\n<>") != NULL)) {
		fprintf(stderr, "haulctl: --domain %s: not a domain\n",
		    m.domain);
		return 2;
	}

	if (slurp(m.rc, FMRC_FILE_MAX, &text) == -1) {
		fprintf(stderr, "haulctl: %s: %s\n", m.rc, strerror(errno));
		goto done;
	}
	m.parsed = fmrc_parse(text.data, text.len, err, sizeof(err));
	buf_free_secret(&text);
	if (m.parsed == NULL) {
		fprintf(stderr, "%s:%s\n", m.rc, err);
		goto done;
	}

	if (m.ids == NULL) {
		if ((v = fmrc_str(m.parsed, NULL, "idfile")) != NULL)
			m.ids = v;
		else {
			xasprintf(&s, "%s/.fetchids", fm_home());
			m.ids = keep_str(&m, s);
		}
	}
	if (slurp(m.ids, IDS_MAX, &text) == -1) {
		if (errno != ENOENT || m.ids_given) {
			fprintf(stderr, "haulctl: %s: %s\n", m.ids,
			    strerror(errno));
			goto done;
		}
		fprintf(stderr, "haulctl: %s does not exist: no UIDs to "
		    "seed\n", m.ids);
		fmids_parse("", 0, &m.idl);
	} else {
		fmids_parse(text.data, text.len, &m.idl);
		if (m.idl.bad > 0)
			fprintf(stderr, "%s:%u: warning: %zu line%s that are "
			    "not \"user@host UID\" ignored\n", m.ids,
			    m.idl.first_bad, m.idl.bad, m.idl.bad == 1 ? "" :
			    "s");
	}
	buf_free(&text);

	memset(&o, 0, sizeof(o));
	o.rcname = m.rc;
	o.domain = m.domain;
	o.ids = &m.idl;
	o.idsname = m.ids;
	pw = getpwuid(getuid());
	o.login = pw != NULL ? pw->pw_name : getenv("USER") ? getenv("USER") :
	    "root";
	o.login = keep_str(&m, xstrdup(o.login));
	if (fmi_convert(m.parsed, &o, &m.res, err, sizeof(err)) == -1) {
		fprintf(stderr, "haulctl: %s\n", err);
		goto done;
	}
	print_warnings(&m);
	if (m.dry_run) {
		dry_run_print(&m);
		rc = 0;
		goto done;
	}
	if (check_outputs(&m) == -1 || seed_store(&m) == -1 ||
	    write_outputs(&m) == -1)
		goto done;
	summary(&m);
	rc = 0;
done:
	imp_free(&m);
	return rc;
}
