/* ISC licence; see LICENSE. */
#ifndef HAUL_LOG_H
#define HAUL_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Levels follow syslog priorities so they map 1:1. */
enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/*
 * Start logging as ident.  foreground: lines go to stderr, else to syslog
 * with the given facility name ("mail", "local0".. ; NULL means mail).
 * Returns -1 on an unknown facility name.
 */
int	 log_init(const char *ident, int foreground, const char *facility);
void	 log_set_level(enum log_level);
enum log_level log_get_level(void);
/* Parse "debug|info|notice|warning|error"; -1 if unknown. */
int	 log_level_parse(const char *);
/* Parse a syslog facility name; -1 if unknown. */
int	 log_facility_parse(const char *);

/*
 * Tests capture log output: every formatted line is handed to fn instead
 * of stderr/syslog.  NULL restores normal output.
 */
typedef void (*log_sink_fn)(enum log_level, const char *line, void *arg);
void	 log_set_sink(log_sink_fn fn, void *arg);

/*
 * acct may be NULL; when set, every line starts with `account=NAME:` so an
 * operator can grep one account.  The _warn variants append strerror(errno).
 */
void	 log_msg(enum log_level, const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 3, 4)));
void	 log_vmsg(enum log_level, const char *acct, const char *fmt, va_list)
	     __attribute__((format(printf, 3, 0)));

void	 log_warn(const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 2, 3)));
void	 log_warnx(const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 2, 3)));
void	 log_notice(const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 2, 3)));
void	 log_info(const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 2, 3)));
void	 log_debug(const char *acct, const char *fmt, ...)
	     __attribute__((format(printf, 2, 3)));
/* For broken invariants only: log and exit(1). */
void	 fatal(const char *fmt, ...)
	     __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *fmt, ...)
	     __attribute__((format(printf, 1, 2), noreturn));

/*
 * Escape bytes from the network for logging: printable ASCII stays,
 * everything else becomes \r \n \t or \xHH.  Writes at most dstsz bytes
 * including the NUL, truncating with "..." when src does not fit.
 * Returns dst.
 */
char	*log_printable(char *dst, size_t dstsz, const void *src, size_t srclen);

#endif
