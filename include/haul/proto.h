/* ISC licence; see LICENSE. */
#ifndef HAUL_PROTO_H
#define HAUL_PROTO_H

/*
 * The small vocabulary shared by the sans-I/O protocol machines (POP3,
 * IMAP, SMTP/LMTP).  A machine is fed the bytes that arrived and appends
 * what to send to its output buffer; it never touches a socket.  The
 * driver (fetcher/conn.c + the session owner) interprets the status.
 */
enum proto_status {
	PS_MORE,	/* consumed what it could; wants more input */
	PS_STARTTLS,	/* start TLS now; no further input may be buffered */
	PS_DONE,	/* session over (QUIT answered, or nothing left) */
	PS_ERROR,	/* session failed; see the machine's error */
};

/*
 * Error classes by blast radius and by what the scheduler does next
 * (different backoff per class; only ERR_AUTH may alert on credentials).
 */
enum err_class {
	ERR_NONE,
	ERR_NETWORK,	/* connect, reset, timeout */
	ERR_TLS,	/* handshake, verification, STARTTLS missing/refused */
	ERR_PROTOCOL,	/* malformed or unexpected server bytes */
	ERR_AUTH,	/* credentials refused ([AUTH], AUTHENTICATIONFAILED) */
	ERR_TEMP,	/* server busy: [IN-USE], [SYS/TEMP], [LOGIN-DELAY] */
	ERR_MTA,	/* local delivery failing */
	ERR_CONFIG,	/* account cannot work as configured (e.g. no UIDL) */
	ERR_LOCAL,	/* local resource: disk, store */
};

const char	*proto_status_name(enum proto_status);
const char	*err_class_name(enum err_class);

#endif
