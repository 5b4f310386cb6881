/* ISC licence; see LICENSE. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "haul/clock.h"
#include "haul/control.h"
#include "haul/deliver.h"
#include "haul/engine.h"
#include "haul/listener.h"
#include "haul/log.h"
#include "haul/reload.h"
#include "haul/metrics.h"
#include "haul/sched.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

/* A client that says nothing for this long is dropped. */
#define CONTROL_TIMEOUT		10

struct control {
	struct engine		*eng;
	struct evconnlistener	*listener;
	struct listener_guard	*guard;
	char			*path;
};

static const char *
state_name(const struct account *a)
{
	if (a->paused)
		return "paused";
	switch (a->state) {
	case ACCT_WAITING: return "idle";
	case ACCT_RUNNING: return a->idle_connected ? "idling" : "fetching";
	case ACCT_BACKOFF: return "backoff";
	case ACCT_DISABLED: return a->last_error[0] ? "error" : "disabled";
	}
	return "?";
}

static struct account *
find_account(struct engine *e, const char *name)
{
	size_t	 i;

	for (i = 0; i < e->naccounts; i++)
		if (strcmp(e->accounts[i]->cf->name, name) == 0)
			return e->accounts[i];
	return NULL;
}

static void
fmt_time(char *dst, size_t sz, time_t t)
{
	struct tm tm;

	if (t == 0) {
		str_lcpy(dst, "-", sz);
		return;
	}
	gmtime_r(&t, &tm);
	strftime(dst, sz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Seconds until the next poll, or -1 if none is scheduled. */
static long
next_in(const struct account *a)
{
	uint64_t now = clock_mono_ms();

	if (a->state == ACCT_RUNNING || a->state == ACCT_DISABLED ||
	    a->paused || a->next_run_ms == 0)
		return -1;
	return a->next_run_ms > now ? (long)((a->next_run_ms - now) / 1000) :
	    0;
}

/* JSON string: escape quotes, backslashes and every control byte. */
static void
json_str(struct buf *out, const char *s)
{
	buf_add_byte(out, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			buf_addf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_addf(out, "\\u%04x", c);
		else
			buf_add_byte(out, c);
	}
	buf_add_byte(out, '"');
}

static void
status_table(struct engine *e, struct buf *out)
{
	char	 last[32], err[160];
	size_t	 i;

	buf_addf(out, "%-20s %-5s %-9s %-20s %6s %9s %8s %12s %9s  %s\n",
	    "ACCOUNT", "PROTO", "STATE", "LAST-SUCCESS", "NEXT", "DELIVERED",
	    "REFUSED", "BYTES", "PROGRESS", "LAST-ERROR");
	for (i = 0; i < e->naccounts; i++) {
		const struct account *a = e->accounts[i];
		char	 next[24], prog[24];
		long	 n = next_in(a);

		fmt_time(last, sizeof(last), a->last_success);
		if (n < 0)
			str_lcpy(next, "-", sizeof(next));
		else
			snprintf(next, sizeof(next), "%lds", n);
		if (a->state == ACCT_RUNNING)
			snprintf(prog, sizeof(prog), "%u/%u", a->progress_done,
			    a->progress_total);
		else
			str_lcpy(prog, "-", sizeof(prog));
		log_printable(err, sizeof(err), a->last_error,
		    strlen(a->last_error));
		buf_addf(out, "%-20s %-5s %-9s %-20s %6s %9llu %8llu %12llu "
		    "%9s  %s\n", a->cf->name,
		    config_proto_name(a->cf->protocol), state_name(a), last,
		    next, (unsigned long long)a->delivered,
		    (unsigned long long)a->refused,
		    (unsigned long long)a->bytes, prog, err[0] ? err : "-");
	}
}

static void
status_json(struct engine *e, struct buf *out)
{
	char	 last[32];
	size_t	 i;

	buf_add_str(out, "{\"accounts\":[");
	for (i = 0; i < e->naccounts; i++) {
		const struct account *a = e->accounts[i];

		if (i > 0)
			buf_add_byte(out, ',');
		fmt_time(last, sizeof(last), a->last_success);
		buf_add_str(out, "{\"name\":");
		json_str(out, a->cf->name);
		buf_addf(out, ",\"protocol\":\"%s\",\"state\":\"%s\","
		    "\"last_success\":", config_proto_name(a->cf->protocol),
		    state_name(a));
		if (a->last_success == 0)
			buf_add_str(out, "null");
		else
			json_str(out, last);
		buf_addf(out, ",\"next_poll_in\":%ld,\"failures\":%u,"
		    "\"last_error_class\":\"%s\",\"last_error\":", next_in(a),
		    a->failures, err_class_name(a->last_class));
		json_str(out, a->last_error);
		buf_addf(out, ",\"delivered\":%llu,\"refused\":%llu,"
		    "\"bytes\":%llu,\"sessions\":%llu,\"progress_done\":%u,"
		    "\"progress_total\":%u,\"idle_connected\":%s}",
		    (unsigned long long)a->delivered,
		    (unsigned long long)a->refused,
		    (unsigned long long)a->bytes,
		    (unsigned long long)a->sessions, a->progress_done,
		    a->progress_total, a->idle_connected ? "true" : "false");
	}
	buf_addf(out, "],\"delivery_connections\":%zu}\n",
	    e->dlv != NULL ? dlv_links(e->dlv) : 0);
}

/* What metric() reports for each account. */
enum mval {
	MV_DELIVERED, MV_REFUSED, MV_BYTES, MV_SESSIONS, MV_ERRORS,
	MV_FAILURES, MV_LAST_SUCCESS, MV_RUNNING, MV_IDLE, MV_BACKOFF,
	MV_PENDING, MV_AUTH_ALERT, MV_LAT_DELIVERY, MV_LAT_PUSH,
	MV_LAT_SESSION,
};

/* The error classes a session can end with (ERR_NONE excluded). */
static const enum err_class err_classes[] = {
	ERR_NETWORK, ERR_TLS, ERR_PROTOCOL, ERR_AUTH, ERR_TEMP, ERR_MTA,
	ERR_CONFIG, ERR_LOCAL,
};

static uint64_t
mval(const struct account *a, enum mval which)
{
	switch (which) {
	case MV_DELIVERED: return a->delivered;
	case MV_REFUSED: return a->refused;
	case MV_BYTES: return a->bytes;
	case MV_SESSIONS: return a->sessions;
	case MV_FAILURES: return a->failures;
	case MV_LAST_SUCCESS: return (uint64_t)a->last_success;
	case MV_RUNNING: return a->state == ACCT_RUNNING;
	case MV_IDLE: return a->state == ACCT_RUNNING && a->idle_connected;
	case MV_BACKOFF: return a->state == ACCT_BACKOFF;
	case MV_AUTH_ALERT:
		return a->failures > 0 && sched_alerts(a->last_class);
	case MV_PENDING:
		return a->state == ACCT_RUNNING &&
		    a->progress_total > a->progress_done ?
		    a->progress_total - a->progress_done : 0;
	case MV_ERRORS:
	case MV_LAT_DELIVERY:
	case MV_LAT_PUSH:
	case MV_LAT_SESSION:
		break;
	}
	return 0;
}

/* One metric family: HELP, TYPE and a series per account. */
static void
metric(struct engine *e, struct buf *out, const char *name,
    const char *type, const char *help, enum mval which)
{
	size_t	 i, k;

	prom_head(out, name, type, help);
	for (i = 0; i < e->naccounts; i++) {
		const struct account *a = e->accounts[i];

		switch (which) {
		case MV_LAT_DELIVERY:
			prom_hist(out, name, a->cf->name, &a->lat_delivery);
			break;
		case MV_LAT_PUSH:
			prom_hist(out, name, a->cf->name, &a->lat_push);
			break;
		case MV_LAT_SESSION:
			prom_hist(out, name, a->cf->name, &a->lat_session);
			break;
		case MV_ERRORS:
			for (k = 0; k < sizeof(err_classes) /
			    sizeof(err_classes[0]); k++) {
				buf_addf(out, "%s{account=\"", name);
				prom_label(out, a->cf->name);
				buf_addf(out, "\",class=\"%s\"} %llu\n",
				    err_class_name(err_classes[k]),
				    (unsigned long long)
				    a->errors[err_classes[k]]);
			}
			break;
		default:
			prom_sample(out, name, a->cf->name, mval(a, which));
			break;
		}
	}
}

void
control_metrics(struct engine *e, struct buf *out)
{
	metric(e, out, "haul_messages_delivered_total", "counter",
	    "Messages the MTA accepted.", MV_DELIVERED);
	metric(e, out, "haul_messages_refused_total", "counter",
	    "Messages the MTA refused permanently.", MV_REFUSED);
	metric(e, out, "haul_bytes_delivered_total", "counter",
	    "Bytes of accepted messages.", MV_BYTES);
	metric(e, out, "haul_sessions_total", "counter",
	    "Sessions started.", MV_SESSIONS);
	metric(e, out, "haul_session_errors_total", "counter",
	    "Sessions that failed, by error class.", MV_ERRORS);
	metric(e, out, "haul_consecutive_failures", "gauge",
	    "Failed sessions in a row.", MV_FAILURES);
	metric(e, out, "haul_last_success_timestamp_seconds", "gauge",
	    "End of the last successful session.", MV_LAST_SUCCESS);
	metric(e, out, "haul_session_running", "gauge",
	    "1 while a session runs.", MV_RUNNING);
	metric(e, out, "haul_idle_connected", "gauge",
	    "1 while every folder waits in IMAP IDLE.", MV_IDLE);
	metric(e, out, "haul_backoff", "gauge",
	    "1 while the account backs off after a failure.", MV_BACKOFF);
	metric(e, out, "haul_auth_failing", "gauge",
	    "1 while the server refuses the credentials (alert on it).",
	    MV_AUTH_ALERT);
	metric(e, out, "haul_messages_pending", "gauge",
	    "Messages the running session has yet to deliver.", MV_PENDING);
	metric(e, out, "haul_delivery_latency_seconds", "histogram",
	    "From a message fetched to the MTA accepting it.",
	    MV_LAT_DELIVERY);
	metric(e, out, "haul_push_latency_seconds", "histogram",
	    "From the IMAP server announcing new mail in IDLE to the MTA "
	    "accepting it.", MV_LAT_PUSH);
	metric(e, out, "haul_session_duration_seconds", "histogram",
	    "From a session's start to its end.", MV_LAT_SESSION);
	prom_head(out, "haul_delivery_connections", "gauge",
	    "Connections to the MTA open now.");
	buf_addf(out, "haul_delivery_connections %zu\n",
	    e->dlv != NULL ? dlv_links(e->dlv) : 0);
}

int
control_command(struct engine *e, const char *line, struct buf *out)
{
	char		 cmd[32], arg[CONTROL_LINE_MAX];
	struct account	*a;
	int		 n;

	cmd[0] = arg[0] = '\0';
	n = sscanf(line, "%31s %511s", cmd, arg);
	if (n < 1) {
		buf_add_str(out, "error: empty command\n");
		return -1;
	}
	if (strcmp(cmd, "status") == 0) {
		buf_add_str(out, "ok\n");
		status_table(e, out);
		return 0;
	}
	if (strcmp(cmd, "reload") == 0) {
		struct buf	 res = BUF_INIT;
		int		 rc;

		if (e->stopping) {
			buf_add_str(out, "error: hauld is stopping\n");
			return -1;
		}
		rc = engine_reload(e, &res);
		buf_add_str(out, rc == 0 ? "ok\n" : "error: ");
		if (res.len > 0)
			buf_add(out, res.data, res.len);
		buf_free(&res);
		return rc;
	}
	if (strcmp(cmd, "status-json") == 0) {
		buf_add_str(out, "ok\n");
		status_json(e, out);
		return 0;
	}
	if (strcmp(cmd, "metrics") == 0) {
		buf_add_str(out, "ok\n");
		control_metrics(e, out);
		return 0;
	}
	if (strcmp(cmd, "fetch") == 0 || strcmp(cmd, "pause") == 0 ||
	    strcmp(cmd, "resume") == 0) {
		if (n < 2 || (a = find_account(e, arg)) == NULL) {
			buf_add_str(out, "error: no such account\n");
			return -1;
		}
		if (strcmp(cmd, "pause") == 0)
			engine_pause(a, 1);
		else if (strcmp(cmd, "resume") == 0)
			engine_pause(a, 0);
		else if (engine_fetch_now(a) == -1) {
			buf_addf(out, "error: account %s is %s\n", a->cf->name,
			    state_name(a));
			return -1;
		}
		buf_add_str(out, "ok\n");
		return 0;
	}
	buf_add_str(out, "error: unknown command\n");
	return -1;
}

static void
client_write_done(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct control	*ctl = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct buf	 out = BUF_INIT;
	char		*line;
	size_t		 n;

	line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	if (n > CONTROL_LINE_MAX || str_has_ctl(line, n))
		buf_add_str(&out, "error: bad command line\n");
	else
		control_command(ctl->eng, line, &out);
	free(line);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, client_write_done, client_event, ctl);
	bufferevent_write(bev, out.data, out.len);
	buf_free(&out);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct control	*ctl = arg;

	listener_guard_pause(ctl->guard);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct control	*ctl = arg;
	struct bufferevent *bev;
	struct timeval	 tv = { CONTROL_TIMEOUT, 0 };

	bev = bufferevent_socket_new(ctl->eng->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, client_read, NULL, client_event, ctl);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

struct control *
control_new(struct engine *e, const char *path, unsigned mode,
    const char *group)
{
	struct control	*ctl;
	struct sockaddr_un sun;
	struct stat	 st;
	mode_t		 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx(NULL, "control socket path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	/* Create the directory (e.g. /run/haul) if it is missing. */
	{
		char	*dir = xstrdup(path), *slash = strrchr(dir, '/');

		if (slash != NULL && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) == -1 && errno != EEXIST)
				log_warn(NULL, "mkdir %s", dir);
		}
		free(dir);
	}
	/* Replace a stale socket, never any other kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx(NULL, "%s exists and is not a socket", path);
			return NULL;
		}
		unlink(path);
	}
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->eng = e;
	ctl->path = xstrdup(path);
	/*
	 * The mode comes from the umask at bind: a chmod or chown by path
	 * afterwards would follow a symlink that whoever can write the
	 * directory put there in the meantime.
	 */
	old = umask(0777 & ~(mode_t)mode);
	ctl->listener = evconnlistener_new_bind(e->base, accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ctl->listener == NULL) {
		log_warn(NULL, "control socket %s", path);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	ctl->guard = listener_guard_new(e->base, ctl->listener,
	    "control socket");
	evconnlistener_set_error_cb(ctl->listener, accept_error_cb);
	if (group != NULL) {
		struct group *gr = getgrnam(group);

		if (gr == NULL || lchown(path, (uid_t)-1, gr->gr_gid) == -1)
			log_warnx(NULL, "control socket %s: cannot set group "
			    "%s", path, group);
	}
	return ctl;
}

void
control_free(struct control **cp)
{
	struct control	*ctl = *cp;

	if (ctl == NULL)
		return;
	*cp = NULL;
	listener_guard_free(&ctl->guard);
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
