/* ISC licence; see LICENSE. */
#ifndef HAUL_CONN_H
#define HAUL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "haul/proto.h"

/*
 * One outgoing connection on the event loop: TCP (or a unix socket),
 * optionally TLS from the start (implicit) or upgraded later (STARTTLS),
 * with deadlines.  The protocol machines never see it; their owner moves
 * bytes between the two.
 */
struct conn;

struct conn_cb {
	/* Connected (and, with implicit TLS, handshake done and verified). */
	void	(*ready)(struct conn *, void *arg);
	/* Bytes are waiting in conn_input(). */
	void	(*readable)(struct conn *, void *arg);
	/* The output buffer fell below the low-water mark: pump more. */
	void	(*writable)(struct conn *, void *arg);
	/* STARTTLS handshake finished and verified. */
	void	(*tls_ready)(struct conn *, void *arg);
	/*
	 * The connection failed or closed (timeout, reset, EOF, TLS or
	 * verification failure).  It is dead: the owner must conn_free() it
	 * (it may do so inside this callback).
	 */
	void	(*failed)(struct conn *, void *arg, enum err_class,
		    const char *why);
};

struct conn_params {
	const char	*account;	/* for logs; may be NULL */
	const char	*host;		/* name or address; NULL with unix_path */
	unsigned	 port;
	const char	*unix_path;	/* connect to a unix socket instead */
	int		 tls;		/* implicit TLS from the first byte */
	const char	*ca_file;	/* NULL = system CAs */
	const char	*fingerprint;	/* SHA-256 pin or NULL */
	unsigned	 connect_timeout;	/* seconds: DNS + TCP, then TLS */
	int		 keepalive;	/* seconds for TCP keepalive, 0 = off */
};

/* The loop-wide DNS resolver; set once by the engine (may be NULL). */
struct evdns_base;
void		 conn_set_dns(struct evdns_base *);

/*
 * max_tls_handshakes: TLS handshakes in progress at once, loop-wide
 * (default 64).  A TLS connection takes a slot once TCP is up (or its
 * STARTTLS was accepted) and gives it back when the handshake succeeds,
 * fails or the connection is freed; the others wait in FIFO order.
 * connect_timeout bounds DNS + TCP, and then the handshake on its own:
 * the time spent waiting for a slot counts against neither, so a storm
 * of reconnects does not fail healthy connections by the queue alone.
 */
void		 conn_set_tls_limit(unsigned);
/* Slots held now, connections waiting now, waits since start. */
void		 conn_tls_gate_stats(unsigned *active, size_t *waiting,
		    uint64_t *queued);

/*
 * Start connecting.  Callbacks arrive from the loop, never from inside
 * this call.  Returns NULL (and logs) only if the request cannot even be
 * made (bad CA file, out of descriptors).
 */
struct conn	*conn_new(struct event_base *, const struct conn_params *,
		    const struct conn_cb *, void *arg);
/* Close and free; safe in any callback.  Sets *cp to NULL. */
void		 conn_free(struct conn **cp);

struct evbuffer	*conn_input(struct conn *);
/* Queue bytes; returns -1 if the connection is already dead. */
int		 conn_write(struct conn *, const void *, size_t);
int		 conn_write_buffer(struct conn *, struct evbuffer *);
size_t		 conn_output_pending(struct conn *);
/*
 * Upgrade to TLS now (after a STARTTLS/STLS OK).  Fails if any byte is
 * already buffered from the server: those bytes were sent before the
 * handshake and could have been injected (CVE-2020-14954 class).
 */
int		 conn_starttls(struct conn *);
int		 conn_tls_active(const struct conn *);
/*
 * Deadlines.  The idle timeout fails the connection when nothing arrives
 * for secs while a reply is awaited (0 = none); the deadline bounds a
 * whole operation however slowly bytes trickle in (slowloris).
 */
void		 conn_set_idle_timeout(struct conn *, unsigned secs);
void		 conn_set_deadline(struct conn *, unsigned secs);
void		 conn_clear_deadline(struct conn *);
const char	*conn_peer(const struct conn *);

/*
 * The operation deadline for a protocol session: while waiting (a reply
 * is due) at least CONN_PROGRESS_MIN bytes must arrive every secs
 * seconds, so a server trickling a byte at a time (M38) cannot hold the
 * session however long its idle timeout; when not waiting the deadline
 * is off.  Call it after every flush (got 0) and on every read (got =
 * bytes that arrived).
 */
#define CONN_PROGRESS_MIN	4096
void		 conn_track_progress(struct conn *, int waiting, size_t got,
		    unsigned secs);

/*
 * Feed what arrived into a sans-I/O protocol machine, one contiguous
 * chunk at a time, draining what it consumed, until it stops wanting
 * more (PS_MORE) or the input is used up.  Bytes it leaves (after
 * PS_STARTTLS, PS_DONE or PS_ERROR) stay in the input buffer, where
 * conn_starttls() refuses them.
 */
typedef enum proto_status (*conn_feed_fn)(void *machine, const void *data,
		    size_t len, size_t *consumed);
enum proto_status conn_feed(struct conn *, conn_feed_fn, void *machine);

#endif
