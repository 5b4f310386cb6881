/* ISC licence; see LICENSE. */
#include "haul/tlsgate.h"

void
tls_gate_init(struct tls_gate *g, unsigned limit)
{
	g->limit = limit > 0 ? limit : 1;
	g->active = 0;
	g->waiting = 0;
	g->granted = 0;
	g->queued = 0;
	TAILQ_INIT(&g->queue);
}

/*
 * Hand free slots to the head of the queue.  Each waiter is marked as
 * holding its slot before its go runs, so a go that releases (itself or
 * another) finds consistent counts; the loop re-reads them every turn.
 */
static void
admit(struct tls_gate *g)
{
	struct tls_gate_waiter *w;

	while (g->active < g->limit && (w = TAILQ_FIRST(&g->queue)) != NULL) {
		TAILQ_REMOVE(&g->queue, w, entry);
		g->waiting--;
		w->state = TG_ACTIVE;
		g->active++;
		g->granted++;
		w->go(w->arg);
	}
}

int
tls_gate_acquire(struct tls_gate *g, struct tls_gate_waiter *w,
    void (*go)(void *), void *arg)
{
	if (w->state == TG_ACTIVE)
		return 1;
	if (w->state == TG_WAITING)
		return 0;
	w->go = go;
	w->arg = arg;
	/* Strictly FIFO: nobody overtakes a waiter, even at a free slot. */
	if (g->active < g->limit && TAILQ_EMPTY(&g->queue)) {
		w->state = TG_ACTIVE;
		g->active++;
		g->granted++;
		return 1;
	}
	w->state = TG_WAITING;
	TAILQ_INSERT_TAIL(&g->queue, w, entry);
	g->waiting++;
	g->queued++;
	return 0;
}

void
tls_gate_release(struct tls_gate *g, struct tls_gate_waiter *w)
{
	switch (w->state) {
	case TG_NONE:
		return;
	case TG_WAITING:
		TAILQ_REMOVE(&g->queue, w, entry);
		g->waiting--;
		w->state = TG_NONE;
		return;
	case TG_ACTIVE:
		w->state = TG_NONE;
		g->active--;
		admit(g);
		return;
	}
}

void
tls_gate_set_limit(struct tls_gate *g, unsigned limit)
{
	/* Lowering it takes no slot back: holders finish, fewer follow. */
	g->limit = limit > 0 ? limit : 1;
	admit(g);
}
