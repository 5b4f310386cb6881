/* ISC licence; see LICENSE. */
#ifndef HAUL_TLSGATE_H
#define HAUL_TLSGATE_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

/*
 * The loop-wide cap on TLS handshakes in progress (max_tls_handshakes).
 * Pure bookkeeping, no I/O and no timers: a connection asks for a slot
 * before it starts a handshake and gives it back when the handshake is
 * done, failed, or the connection went away.  Those that find every slot
 * taken wait in FIFO order and are told (go callback) when theirs comes.
 * A reconnect storm of thousands of accounts then costs at most limit
 * handshakes' worth of CPU at any moment instead of all of them at once.
 */

enum tls_gate_state {
	TG_NONE,		/* neither waiting nor holding a slot */
	TG_WAITING,		/* queued */
	TG_ACTIVE,		/* holds a slot */
};

/* Embedded in its owner (a connection); zero-initialised it is TG_NONE. */
struct tls_gate_waiter {
	TAILQ_ENTRY(tls_gate_waiter) entry;
	enum tls_gate_state	 state;
	void			(*go)(void *arg);
	void			*arg;
};

TAILQ_HEAD(tls_gate_queue, tls_gate_waiter);

struct tls_gate {
	unsigned		 limit;		/* >= 1 */
	unsigned		 active;
	size_t			 waiting;
	uint64_t		 granted;	/* slots handed out, ever */
	uint64_t		 queued;	/* of those, after a wait */
	struct tls_gate_queue	 queue;
};

/* limit 0 is taken as 1: the gate never blocks everyone for good. */
void	tls_gate_init(struct tls_gate *, unsigned limit);

/*
 * Ask for a slot.  Returns 1 if the waiter holds one now (go is not
 * called), 0 if it was queued: go(arg) is called once, from inside a
 * later tls_gate_release() or tls_gate_set_limit(), when it holds one.
 * go must not block; it may call tls_gate_release() (for itself or
 * others).  Asking again while waiting or holding changes nothing and
 * returns 1 if holding, 0 if waiting.
 */
int	tls_gate_acquire(struct tls_gate *, struct tls_gate_waiter *,
	    void (*go)(void *), void *arg);

/*
 * Give the slot back, or leave the queue; a no-op for a waiter in
 * neither.  Freed slots go to the longest waiters at once.
 */
void	tls_gate_release(struct tls_gate *, struct tls_gate_waiter *);

/* Change the cap (reload); a higher one admits waiters at once. */
void	tls_gate_set_limit(struct tls_gate *, unsigned limit);

#endif
