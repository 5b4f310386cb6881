/* ISC licence; see LICENSE. */
/*
 * The haul.conf schema: one row per option (name, type, default, range,
 * check, where it lands in the struct) and the pure checks and
 * conversions the rows name.  Nothing here knows about libconfuse or
 * files; lib/config.c feeds values through these rows.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/log.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#include "config_int.h"

/* Enums are stored through an int; make sure that is their size. */
_Static_assert(sizeof(enum proto) == sizeof(int), "enum size");
_Static_assert(sizeof(enum tls_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum auth_mech) == sizeof(int), "enum size");
_Static_assert(sizeof(enum delivery_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum on_error) == sizeof(int), "enum size");
_Static_assert(sizeof(enum unknown_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum envfrom_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum first_fetch) == sizeof(int), "enum size");

/* Tables indexed by the enum values of haul/config.h. */
const char *const config_proto_names[] = { "pop3", "imap", NULL };
const char *const config_tls_names[] = {
	"implicit", "starttls", "none", NULL
};
const char *const config_auth_names[] = {
	"auto", "plain", "login", "user", "apop", "xoauth2", "oauthbearer",
	NULL
};
const char *const config_delivery_names[] = { "smtp", "lmtp", "lda", NULL };
const char *const config_on_error_names[] = { "tempfail", "accept", NULL };
const char *const config_unknown_names[] = { "default", "reject", NULL };
static const char *const config_first_fetch_names[] = {
	"all", "unseen", "new", NULL
};

/* The multidrop headers we understand, in their canonical spelling. */
static const char *const mdheaders[] = {
	"Delivered-To", "X-Original-To", "Envelope-To", NULL
};

#define SUN_PATH_MAX	(sizeof(((struct sockaddr_un *)0)->sun_path))
#define FOLDER_MAX	1000	/* bytes; IMAP mailbox names are short */
#define SIZE_MIN	1024ULL
#define SIZE_MAX_MSG	(2ULL << 30)

static int
fail(struct buf *why, const char *text)
{
	buf_add_str(why, text);
	return -1;
}

static int
has_ctl(const char *s)
{
	return str_has_ctl(s, strlen(s));
}

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

int
config_enum_lookup(const char *const *names, const char *s)
{
	int	 i;

	for (i = 0; names[i] != NULL; i++)
		if (strcasecmp(names[i], s) == 0)
			return i;
	return -1;
}

int
config_opt_index(const struct sectab *t, const char *name)
{
	size_t	 i;

	for (i = 0; i < t->nopts; i++)
		if (strcmp(t->opts[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
config_valid_account_name(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' &&
		    s[i] != '-')
			return 0;
	return i >= 1 && i <= 64;
}

/* A port: decimal 1..65535 occupying all of s[0..len). */
static int
valid_port(const char *s, size_t len)
{
	uint64_t v;

	return str_to_u64(s, len, 65535, &v) == 0 && v > 0;
}

/* An RFC 1035 style domain name: LDH labels of 1..63, 253 at most. */
static int
valid_domain(const char *s, size_t len)
{
	size_t	 i, label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_alnum(s[i]) && (s[i] != '-' || label == 0))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

/*
 * A bare envelope address local@domain.  It goes into MAIL FROM / RCPT TO
 * between angle brackets, so CR, LF, spaces and <> would let a config
 * value inject SMTP syntax.
 */
static int
valid_address(const char *s)
{
	const char	*at;
	size_t		 i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f ||
		    s[i] == '<' || s[i] == '>')
			return 0;
	if ((at = strrchr(s, '@')) == NULL || at == s)
		return 0;
	return valid_domain(at + 1, strlen(at + 1));
}

static int
valid_abspath(const char *s)
{
	return s[0] == '/' && !has_ctl(s);
}

/* Octal permission bits, "0660" or "660"; no setuid/setgid/sticky. */
static int
parse_octal_mode(const char *s, unsigned *out)
{
	size_t	 i, len = strlen(s);
	unsigned v = 0;

	if (len < 3 || len > 4)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	if (v > 0777)
		return -1;
	*out = v;
	return 0;
}

/* "50M": decimal with an optional K, M or G (powers of 1024). */
static int
parse_size(const char *s, uint64_t *out)
{
	size_t	 len = strlen(s);
	unsigned shift = 0;
	uint64_t v;

	if (len > 0) {
		switch (s[len - 1]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		}
		if (shift != 0)
			len--;
	}
	/* Capping the digits first keeps the shift from overflowing. */
	if (str_to_u64(s, len, UINT64_C(1) << 33, &v) == -1)
		return -1;
	*out = v << shift;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A SHA-256 fingerprint as "AB:CD:.." (what openssl x509 -fingerprint
 * prints) or 64 hex digits, optionally after "sha256:"; out gets 64
 * lower-case hex digits.
 */
static int
parse_fingerprint(const char *s, char out[65])
{
	size_t	 i, n = 0, len;
	int	 colons;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	len = strlen(s);
	colons = strchr(s, ':') != NULL;
	if (len != (colons ? 95 : 64))
		return -1;
	for (i = 0; i < len; i++) {
		if (colons && i % 3 == 2) {
			if (s[i] != ':')
				return -1;
			continue;
		}
		if (hexval(s[i]) == -1)
			return -1;
		out[n++] = "0123456789abcdef"[hexval(s[i])];
	}
	out[n] = '\0';
	return 0;
}

/* "host:port", "[v6]:port" or "unix:/abs/path". */
static int
chk_target(const char *s, unsigned idx, struct buf *why)
{
	const char	*colon, *host = s;
	size_t		 hlen;

	if (strncmp(s, "unix:", 5) == 0) {
		if (!valid_abspath(s + 5))
			return fail(why, "unix: needs an absolute path");
		if (strlen(s + 5) >= SUN_PATH_MAX)
			return fail(why, "socket path is too long");
		return 0;
	}
	if (s[0] == '[') {
		if ((colon = strstr(s, "]:")) == NULL || colon == s + 1)
			goto bad;
		host = s + 1;
		hlen = (size_t)(colon - host);
		colon++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL || colon == s)
			goto bad;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL)
			return fail(why, "write IPv6 addresses as [addr]:port");
	}
	if (str_has_ctl(host, hlen) || memchr(host, ' ', hlen) != NULL ||
	    memchr(host, '[', hlen) != NULL || memchr(host, ']', hlen) != NULL)
		goto bad;
	if (!valid_port(colon + 1, strlen(colon + 1)))
		return fail(why, "port must be 1..65535");
	return 0;
bad:
	return fail(why, "expected \"host:port\", \"[ipv6]:port\" or "
	    "\"unix:/path\"");
}

/* Only loopback: the metrics endpoint has no authentication. */
static int
chk_metrics(const char *s, unsigned idx, struct buf *why)
{
	static const char *const hosts[] = {
		"127.0.0.1:", "[::1]:", "localhost:", NULL
	};
	size_t	 i, n;

	for (i = 0; hosts[i] != NULL; i++) {
		n = strlen(hosts[i]);
		if (strncmp(s, hosts[i], n) == 0) {
			if (!valid_port(s + n, strlen(s + n)))
				return fail(why, "port must be 1..65535");
			return 0;
		}
	}
	return fail(why, "must be 127.0.0.1:PORT, [::1]:PORT or "
	    "localhost:PORT (loopback only: metrics are not authenticated)");
}

/* libmilter socket specs: unix:/path, local:/path, inet[6]:port@host. */
static int
chk_milter_socket(const char *s, unsigned idx, struct buf *why)
{
	const char	*p, *at;

	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		p = strchr(s, ':') + 1;
		if (!valid_abspath(p))
			return fail(why, "unix: needs an absolute path");
		if (strlen(p) >= SUN_PATH_MAX)
			return fail(why, "socket path is too long");
		return 0;
	}
	if (strncmp(s, "inet:", 5) == 0 || strncmp(s, "inet6:", 6) == 0) {
		p = strchr(s, ':') + 1;
		if ((at = strchr(p, '@')) == NULL || at[1] == '\0' ||
		    has_ctl(at + 1) || strchr(at + 1, ' ') != NULL)
			return fail(why, "expected inet:PORT@HOST");
		if (!valid_port(p, (size_t)(at - p)))
			return fail(why, "port must be 1..65535");
		return 0;
	}
	return fail(why, "expected \"unix:/path\" or \"inet:PORT@HOST\"");
}

static int
chk_abspath(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] != '/')
		return fail(why, "must be an absolute path");
	if (has_ctl(s))
		return fail(why, "contains a control character");
	return 0;
}

static int
chk_sockpath(const char *s, unsigned idx, struct buf *why)
{
	if (chk_abspath(s, idx, why) == -1)
		return -1;
	if (strlen(s) >= SUN_PATH_MAX)
		return fail(why, "socket path is too long");
	return 0;
}

/* A file name that may be relative (resolved later). */
static int
chk_path(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] == '\0')
		return fail(why, "must not be empty");
	if (has_ctl(s))
		return fail(why, "contains a control character");
	return 0;
}

/* User and group names. */
static int
chk_name(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] == '\0')
		return fail(why, "must not be empty");
	if (has_ctl(s) || strpbrk(s, " :/") != NULL)
		return fail(why, "is not a valid user or group name");
	return 0;
}

static int
chk_octal(const char *s, unsigned idx, struct buf *why)
{
	unsigned v;

	if (parse_octal_mode(s, &v) == -1)
		return fail(why, "expected an octal mode such as \"0660\"");
	return 0;
}

static int
chk_facility(const char *s, unsigned idx, struct buf *why)
{
	if (log_facility_parse(s) == -1)
		return fail(why, "unknown syslog facility (mail, daemon, "
		    "local0..local7, ..)");
	return 0;
}

static int
chk_loglevel(const char *s, unsigned idx, struct buf *why)
{
	if (log_level_parse(s) == -1)
		return fail(why, "expected debug, info, notice, warning or "
		    "error");
	return 0;
}

/* A host name or address to connect to, or to announce in HELO. */
static int
chk_host(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] == '\0')
		return fail(why, "must not be empty");
	if (has_ctl(s) || strchr(s, ' ') != NULL)
		return fail(why, "must not contain spaces or control "
		    "characters");
	if (strlen(s) > 255)
		return fail(why, "is longer than 255 bytes");
	return 0;
}

static int
chk_domain(const char *s, unsigned idx, struct buf *why)
{
	if (!valid_domain(s, strlen(s)))
		return fail(why, "is not a valid domain name");
	return 0;
}

static int
chk_address(const char *s, unsigned idx, struct buf *why)
{
	if (!valid_address(s))
		return fail(why, "is not a valid address (local@domain, no "
		    "spaces, CR, LF or <>)");
	return 0;
}

static int
chk_envfrom(const char *s, unsigned idx, struct buf *why)
{
	if (strcmp(s, "return-path") == 0 || strcmp(s, "null") == 0)
		return 0;
	if (!valid_address(s))
		return fail(why, "expected \"return-path\", \"null\" or an "
		    "address (local@domain, no spaces, CR, LF or <>)");
	return 0;
}

/*
 * LDA argv template: element 0 is the program (absolute: we execve, no
 * shell, no PATH search); %u %a %i %% are the only placeholders.
 */
static int
chk_lda_arg(const char *s, unsigned idx, struct buf *why)
{
	const char	*p;

	if (idx == 0 && s[0] != '/')
		return fail(why, "the program must be an absolute path");
	for (p = s; (p = strchr(p, '%')) != NULL; p += 2) {
		if (p[1] == '\0')
			return fail(why, "ends with a lone %");
		if (strchr("uai%", p[1]) == NULL) {
			buf_addf(why, "unknown placeholder %%%c (use %%u, %%a, "
			    "%%i or %%%%)", p[1]);
			return -1;
		}
	}
	return 0;
}

static int
chk_command(const char *s, unsigned idx, struct buf *why)
{
	if (idx == 0 && s[0] != '/')
		return fail(why, "the program must be an absolute path");
	return 0;
}

/* IMAP mailbox names go on the wire quoted: no control bytes. */
static int
chk_mailbox(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] == '\0')
		return fail(why, "must not be empty");
	if (has_ctl(s))
		return fail(why, "contains a control character (CR, LF, ..)");
	if (strlen(s) > FOLDER_MAX)
		return fail(why, "is longer than 1000 bytes");
	return 0;
}

static int
chk_text(const char *s, unsigned idx, struct buf *why)
{
	if (s[0] == '\0')
		return fail(why, "must not be empty");
	if (has_ctl(s))
		return fail(why, "contains a control character");
	return 0;
}

/* RFC 5322 field name: printable ASCII except ':'. */
static int
chk_header_name(const char *s, unsigned idx, struct buf *why)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':')
			return fail(why, "is not a valid header field name");
	if (i == 0 || i > 76)
		return fail(why, "is not a valid header field name");
	return 0;
}

static int
chk_fingerprint(const char *s, unsigned idx, struct buf *why)
{
	char	 hex[65];

	if (parse_fingerprint(s, hex) == -1)
		return fail(why, "expected a SHA-256 fingerprint: 64 hex "
		    "digits, or 32 hex pairs separated by ':'");
	return 0;
}

static int
chk_size(const char *s, unsigned idx, struct buf *why)
{
	uint64_t v;

	if (parse_size(s, &v) == -1)
		return fail(why, "expected a size such as 512K, 50M or 1G");
	if (v < SIZE_MIN || v > SIZE_MAX_MSG)
		return fail(why, "must be between 1K and 2G");
	return 0;
}

static int
chk_mdheader(const char *s, unsigned idx, struct buf *why)
{
	if (config_enum_lookup(mdheaders, s) == -1)
		return fail(why, "expected Delivered-To, X-Original-To or "
		    "Envelope-To");
	return 0;
}

/* Conversions for values that are not stored as the plain string. */

static void
conv_octal(const char *s, void *obj, size_t off)
{
	unsigned v = 0;

	(void)parse_octal_mode(s, &v);
	memcpy((char *)obj + off, &v, sizeof(v));
}

static void
conv_loglevel(const char *s, void *obj, size_t off)
{
	int	 v = log_level_parse(s);

	memcpy((char *)obj + off, &v, sizeof(v));
}

static void
conv_size(const char *s, void *obj, size_t off)
{
	uint64_t v = 0;

	(void)parse_size(s, &v);
	memcpy((char *)obj + off, &v, sizeof(v));
}

static void
conv_fingerprint(const char *s, void *obj, size_t off)
{
	char	 hex[65];
	char	*v;

	if (parse_fingerprint(s, hex) == -1)
		return;
	v = xstrdup(hex);
	memcpy((char *)obj + off, &v, sizeof(v));
}

static void
conv_mdheader(const char *s, void *obj, size_t off)
{
	int	 i = config_enum_lookup(mdheaders, s);
	char	*v;

	if (i == -1)
		return;
	v = xstrdup(mdheaders[i]);
	memcpy((char *)obj + off, &v, sizeof(v));
}

static void
conv_envfrom(const char *s, void *obj, size_t off)
{
	struct config_delivery *d = obj;

	free(d->envelope_from_address);
	d->envelope_from_address = NULL;
	if (strcmp(s, "return-path") == 0)
		d->envelope_from = ENVFROM_RETURN_PATH;
	else if (strcmp(s, "null") == 0)
		d->envelope_from = ENVFROM_NULL;
	else {
		d->envelope_from = ENVFROM_FIXED;
		d->envelope_from_address = xstrdup(s);
	}
}

/*
 * Row constructors.  S is the struct the current table fills; each table
 * defines it before its rows.
 */
#define STR(n, d, chk, f, fl) { .name = n, .kind = OK_STR, .def = d,	\
	.check = chk, .ftype = F_STR, .off = offsetof(S, f), .flags = fl }
#define CONV(n, d, chk, cv, ft, f) { .name = n, .kind = OK_STR, .def = d, \
	.check = chk, .conv = cv, .ftype = ft, .off = offsetof(S, f) }
#define ENUM(n, d, tab, f, fl) { .name = n, .kind = OK_ENUM, .def = d,	\
	.names = tab, .ftype = F_ENUM, .off = offsetof(S, f), .flags = fl }
#define UINT(n, d, lo, hi, f) { .name = n, .kind = OK_UINT, .num = d,	\
	.min = lo, .max = hi, .ftype = F_UINT, .off = offsetof(S, f) }
#define BOOL(n, d, f) { .name = n, .kind = OK_BOOL, .num = d,		\
	.ftype = F_INT, .off = offsetof(S, f) }
#define LIST(n, chk, f) { .name = n, .kind = OK_LIST, .check = chk,	\
	.ftype = F_LIST, .off = offsetof(S, f) }

#define S struct config_global
static const struct optdef global_opts[] = {
	STR("state_dir", "/var/lib/haul", chk_abspath, state_dir, 0),
	STR("key_file", "/etc/haul/haul.key", chk_abspath, key_file, 0),
	STR("previous_key_file", NULL, chk_abspath, previous_key_file, 0),
	STR("control_socket", "/run/haul/hauld.sock", chk_sockpath,
	    control_socket, 0),
	CONV("control_socket_mode", "0660", chk_octal, conv_octal, F_UINT,
	    control_socket_mode),
	STR("control_group", NULL, chk_name, control_group, 0),
	STR("user", NULL, chk_name, user, 0),
	STR("group", NULL, chk_name, group, 0),
	STR("pid_file", NULL, chk_abspath, pid_file, 0),
	STR("log_facility", "mail", chk_facility, log_facility, 0),
	CONV("log_level", "info", chk_loglevel, conv_loglevel, F_INT,
	    log_level),
	STR("metrics_listen", NULL, chk_metrics, metrics_listen, 0),
	UINT("max_connections_per_host", 4, 1, 1000,
	    max_connections_per_host),
	UINT("max_tls_handshakes", 64, 1, 10000, max_tls_handshakes),
	UINT("shutdown_timeout", 30, 1, 3600, shutdown_timeout),
	UINT("prune_grace_days", 7, 0, 3650, prune_grace_days),
};
#undef S

#define S struct config_delivery
static const struct optdef delivery_opts[] = {
	ENUM("mode", "smtp", config_delivery_names, mode, 0),
	STR("target", "127.0.0.1:25", chk_target, target, 0),
	LIST("lda_command", chk_lda_arg, lda_command),
	STR("helo_name", "localhost", chk_host, helo_name, 0),
	BOOL("via_milter", 0, via_milter),
	STR("placeholder_domain", "fetch.invalid", chk_domain,
	    placeholder_domain, 0),
	CONV("envelope_from", "return-path", chk_envfrom, conv_envfrom,
	    F_ENUM, envelope_from),
	BOOL("xclient", 0, xclient),
	UINT("connect_timeout", 30, 1, 600, connect_timeout),
	UINT("command_timeout", 300, 1, 3600, command_timeout),
	UINT("final_timeout", 600, 1, 3600, final_timeout),
	UINT("lda_timeout", 600, 1, 86400, lda_timeout),
	UINT("max_connections", 4, 1, 1000, max_connections),
	UINT("retry_min", 60, 1, 86400, retry_min),
	UINT("retry_max", 3600, 1, 604800, retry_max),
};
#undef S

#define S struct config_milter
static const struct optdef milter_opts[] = {
	STR("socket", "unix:/run/haul/milter.sock", chk_milter_socket,
	    socket, 0),
	CONV("socket_mode", "0660", chk_octal, conv_octal, F_UINT,
	    socket_mode),
	STR("user", NULL, chk_name, user, 0),
	STR("group", NULL, chk_name, group, 0),
	ENUM("on_error", "tempfail", config_on_error_names, on_error, 0),
	UINT("token_max_age", 600, 10, 86400, token_max_age),
	STR("daemon_name", NULL, chk_text, daemon_name, 0),
	STR("trace_header", "X-Haul-Trace", chk_header_name, trace_header, 0),
	UINT("timeout", 30, 1, 3600, timeout),
};
#undef S

#define S struct config_account
static const struct optdef account_opts[] = {
	BOOL("enabled", 1, enabled),
	ENUM("protocol", NULL, config_proto_names, protocol, OPT_REQUIRED),
	STR("host", NULL, chk_host, host, OPT_REQUIRED),
	UINT("port", 0, 0, 65535, port),
	ENUM("tls", "implicit", config_tls_names, tls, 0),
	BOOL("allow_plaintext", 0, allow_plaintext),
	STR("ca_file", NULL, chk_path, ca_file, 0),
	CONV("fingerprint", NULL, chk_fingerprint, conv_fingerprint, F_STR,
	    fingerprint),
	ENUM("auth", "auto", config_auth_names, auth, 0),
	STR("user", NULL, chk_text, user, OPT_REQUIRED),
	STR("password_file", NULL, chk_path, password_file, 0),
	LIST("password_command", chk_command, password_command),
	LIST("folders", chk_mailbox, folders),
	BOOL("idle", 1, idle),
	UINT("poll_interval", 300, 10, 86400, poll_interval),
	BOOL("keep", 1, keep),
	BOOL("mark_seen", 0, mark_seen),
	ENUM("first_fetch", "all", config_first_fetch_names, first_fetch, 0),
	UINT("delete_after_days", 0, 0, 36500, delete_after_days),
	STR("move_to", NULL, chk_mailbox, move_to, 0),
	BOOL("allow_expunge_all", 0, allow_expunge_all),
	CONV("max_message_size", "50M", chk_size, conv_size, F_U64,
	    max_message_size),
	UINT("max_connections", 2, 1, 100, max_connections),
	UINT("timeout", 60, 5, 3600, timeout),
	UINT("connect_timeout", 30, 1, 600, connect_timeout),
	UINT("idle_refresh", 1740, 60, 1740, idle_refresh),
	UINT("keepalive", 120, 10, 3600, keepalive),
	LIST("deliver_to", chk_address, deliver_to),
	BOOL("multidrop", 0, multidrop),
	CONV("multidrop_header", "Delivered-To", chk_mdheader, conv_mdheader,
	    F_STR, multidrop_header),
	UINT("multidrop_hop", 1, 1, 20, multidrop_hop),
	LIST("multidrop_domains", chk_domain, multidrop_domains),
	STR("multidrop_rewrite_domain", NULL, chk_domain,
	    multidrop_rewrite_domain, 0),
	STR("multidrop_default", NULL, chk_address, multidrop_default, 0),
	ENUM("multidrop_unknown", "reject", config_unknown_names,
	    multidrop_unknown, 0),
	BOOL("xclient", 0, xclient),
};
#undef S

#define NOPTS(a)	(sizeof(a) / sizeof((a)[0]))
_Static_assert(NOPTS(global_opts) <= CONFIG_MAXOPTS, "CONFIG_MAXOPTS");
_Static_assert(NOPTS(delivery_opts) <= CONFIG_MAXOPTS, "CONFIG_MAXOPTS");
_Static_assert(NOPTS(milter_opts) <= CONFIG_MAXOPTS, "CONFIG_MAXOPTS");
_Static_assert(NOPTS(account_opts) <= CONFIG_MAXOPTS, "CONFIG_MAXOPTS");

const struct sectab config_sections[SEC_COUNT] = {
	[SEC_GLOBAL] = { "global", global_opts, NOPTS(global_opts) },
	[SEC_DELIVERY] = { "delivery", delivery_opts, NOPTS(delivery_opts) },
	[SEC_MILTER] = { "milter", milter_opts, NOPTS(milter_opts) },
	[SEC_ACCOUNT] = { "account", account_opts, NOPTS(account_opts) },
};

void
config_free_fields(const struct sectab *t, void *obj)
{
	size_t	 i;
	char	*p, **list, ***lp;

	for (i = 0; i < t->nopts; i++) {
		p = (char *)obj + t->opts[i].off;
		switch (t->opts[i].ftype) {
		case F_STR:
			free(*(char **)(void *)p);
			*(char **)(void *)p = NULL;
			break;
		case F_LIST:
			lp = (char ***)(void *)p;
			if (*lp != NULL) {
				for (list = *lp; *list != NULL; list++)
					free(*list);
				free(*lp);
				*lp = NULL;
			}
			break;
		default:
			break;
		}
	}
}

static const char *
enum_name(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return "unknown";
	return names[v];
}

const char *
config_proto_name(enum proto v)
{
	return enum_name(config_proto_names,
	    NOPTS(config_proto_names) - 1, (int)v);
}

const char *
config_tls_name(enum tls_mode v)
{
	return enum_name(config_tls_names,
	    NOPTS(config_tls_names) - 1, (int)v);
}

const char *
config_auth_name(enum auth_mech v)
{
	return enum_name(config_auth_names,
	    NOPTS(config_auth_names) - 1, (int)v);
}

const char *
config_delivery_name(enum delivery_mode v)
{
	return enum_name(config_delivery_names,
	    NOPTS(config_delivery_names) - 1, (int)v);
}

const char *
config_first_fetch_name(enum first_fetch v)
{
	return enum_name(config_first_fetch_names,
	    NOPTS(config_first_fetch_names) - 1, (int)v);
}
