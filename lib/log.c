/* ISC licence; see LICENSE. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "haul/log.h"

/* A log line is capped: network text is escaped and may be long. */
#define LOG_LINE_MAX	2048

static const char	*log_ident = "haul";
static int		 log_foreground = 1;
/* Atomic: haul-milter's callbacks read it on libmilter's threads. */
static _Atomic int	 log_level = LOG_LVL_INFO;
static log_sink_fn	 log_sink;
static void		*log_sink_arg;

static const struct {
	const char	*name;
	int		 value;
} facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

static const char *level_names[] = {
	[LOG_LVL_ERR] = "error", [LOG_LVL_WARNING] = "warning",
	[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

int
log_facility_parse(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcasecmp(name, facilities[i].name) == 0)
			return facilities[i].value;
	return -1;
}

int
log_level_parse(const char *name)
{
	int	 i;

	for (i = LOG_LVL_ERR; i <= LOG_LVL_DEBUG; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "warn") == 0)
		return LOG_LVL_WARNING;
	return -1;
}

int
log_init(const char *ident, int foreground, const char *facility)
{
	int	 fac = LOG_MAIL;

	if (facility != NULL && (fac = log_facility_parse(facility)) == -1)
		return -1;
	log_ident = ident;
	log_foreground = foreground;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, fac);
	return 0;
}

void
log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level
log_get_level(void)
{
	return (enum log_level)log_level;
}

void
log_set_sink(log_sink_fn fn, void *arg)
{
	log_sink = fn;
	log_sink_arg = arg;
}

/* The escaper; keep_bs leaves backslashes alone (text already escaped). */
static char *
escape(char *dst, size_t dstsz, const void *src, size_t srclen, int keep_bs)
{
	const unsigned char *s = src;
	size_t	 i, o = 0;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		char	 tmp[5];
		size_t	 n;

		switch (s[i]) {
		case '\r': memcpy(tmp, "\\r", 3); break;
		case '\n': memcpy(tmp, "\\n", 3); break;
		case '\t': memcpy(tmp, "\\t", 3); break;
		case '\\':
			if (keep_bs) {
				tmp[0] = '\\';
				tmp[1] = '\0';
			} else
				memcpy(tmp, "\\\\", 3);
			break;
		default:
			if (s[i] < 0x20 || s[i] >= 0x7f)
				snprintf(tmp, sizeof(tmp), "\\x%02x", s[i]);
			else {
				tmp[0] = (char)s[i];
				tmp[1] = '\0';
			}
		}
		n = strlen(tmp);
		if (o + n + 1 > dstsz || (i + 1 < srclen && o + n + 4 > dstsz)) {
			/* Truncate, marking it, if anything is left out. */
			if (dstsz >= 4) {
				if (o + 4 > dstsz)
					o = dstsz - 4;
				memcpy(dst + o, "...", 4);
			} else
				dst[o < dstsz ? o : dstsz - 1] = '\0';
			return dst;
		}
		memcpy(dst + o, tmp, n);
		o += n;
	}
	dst[o] = '\0';
	return dst;
}

char *
log_printable(char *dst, size_t dstsz, const void *src, size_t srclen)
{
	return escape(dst, dstsz, src, srclen, 0);
}

void
log_vmsg(enum log_level lvl, const char *acct, const char *fmt, va_list ap)
{
	char	 line[LOG_LINE_MAX + 256], msg[LOG_LINE_MAX], clean[LOG_LINE_MAX];

	if ((int)lvl > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/*
	 * Messages are printf'd by our own code, but may embed text that came
	 * from elsewhere: escape control bytes once more so a line never
	 * splits or carries terminal escapes.
	 */
	escape(clean, sizeof(clean), msg, strlen(msg), 1);
	if (acct != NULL) {
		char	 a[128];

		log_printable(a, sizeof(a), acct, strlen(acct));
		snprintf(line, sizeof(line), "account=%s: %s", a, clean);
	} else
		snprintf(line, sizeof(line), "%s", clean);

	if (log_sink != NULL) {
		log_sink(lvl, line, log_sink_arg);
		return;
	}
	if (log_foreground) {
		fprintf(stderr, "%s: %s: %s\n", log_ident, level_names[lvl], line);
		fflush(stderr);
	} else
		syslog((int)lvl, "%s", line);
}

void
log_msg(enum log_level lvl, const char *acct, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vmsg(lvl, acct, fmt, ap);
	va_end(ap);
}

#define LOG_FN(fn, lvl) \
void \
fn(const char *acct, const char *fmt, ...) \
{ \
	va_list	 ap; \
	va_start(ap, fmt); \
	log_vmsg(lvl, acct, fmt, ap); \
	va_end(ap); \
}

LOG_FN(log_warnx, LOG_LVL_WARNING)
LOG_FN(log_notice, LOG_LVL_NOTICE)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
log_warn(const char *acct, const char *fmt, ...)
{
	char	 buf[LOG_LINE_MAX];
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_WARNING, acct, "%s: %s", buf, strerror(saved));
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	char	 buf[LOG_LINE_MAX];
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERR, NULL, "fatal: %s: %s", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[LOG_LINE_MAX];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERR, NULL, "fatal: %s", buf);
	exit(1);
}
