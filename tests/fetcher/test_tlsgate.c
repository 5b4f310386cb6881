/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>

#include "haul/tlsgate.h"

/* A fake connection: records the order in which slots were granted. */
struct fake {
	struct tls_gate_waiter	 w;
	int			 id;
	int			 went;
};

static int	 order[64];
static size_t	 norder;
static struct tls_gate *release_gate;	/* go releases itself when set */

static void
go(void *arg)
{
	struct fake	*f = arg;

	f->went++;
	cr_assert_lt(norder, sizeof(order) / sizeof(order[0]));
	order[norder++] = f->id;
	if (release_gate != NULL)
		tls_gate_release(release_gate, &f->w);
}

static void
reset(struct fake *f, size_t n)
{
	size_t	 i;

	memset(f, 0, n * sizeof(*f));
	for (i = 0; i < n; i++)
		f[i].id = (int)i;
	norder = 0;
	release_gate = NULL;
}

Test(tlsgate, grants_up_to_the_limit_then_queues)
{
	struct tls_gate	 g;
	struct fake	 f[5];
	int		 i;

	reset(f, 5);
	tls_gate_init(&g, 2);
	cr_assert_eq(tls_gate_acquire(&g, &f[0].w, go, &f[0]), 1);
	cr_assert_eq(tls_gate_acquire(&g, &f[1].w, go, &f[1]), 1);
	for (i = 2; i < 5; i++)
		cr_assert_eq(tls_gate_acquire(&g, &f[i].w, go, &f[i]), 0);
	cr_assert_eq(g.active, 2);
	cr_assert_eq(g.waiting, 3);
	/* Immediate grants do not call go. */
	cr_assert_eq(norder, 0);
	cr_assert_eq(f[0].w.state, TG_ACTIVE);
	cr_assert_eq(f[4].w.state, TG_WAITING);
}

Test(tlsgate, release_admits_in_fifo_order)
{
	struct tls_gate	 g;
	struct fake	 f[6];
	int		 i;

	reset(f, 6);
	tls_gate_init(&g, 2);
	for (i = 0; i < 6; i++)
		tls_gate_acquire(&g, &f[i].w, go, &f[i]);
	tls_gate_release(&g, &f[1].w);
	cr_assert_eq(norder, 1);
	cr_assert_eq(order[0], 2);
	tls_gate_release(&g, &f[0].w);
	tls_gate_release(&g, &f[2].w);
	cr_assert_eq(norder, 3);
	cr_assert_eq(order[1], 3);
	cr_assert_eq(order[2], 4);
	cr_assert_eq(g.active, 2);
	cr_assert_eq(g.waiting, 1);
	cr_assert_eq(f[1].w.state, TG_NONE);
	/* Each waiter was told exactly once. */
	for (i = 2; i < 5; i++)
		cr_assert_eq(f[i].went, 1);
	cr_assert_eq(f[5].went, 0);
}

Test(tlsgate, leaving_the_queue_is_not_a_grant)
{
	struct tls_gate	 g;
	struct fake	 f[4];
	int		 i;

	reset(f, 4);
	tls_gate_init(&g, 1);
	for (i = 0; i < 4; i++)
		tls_gate_acquire(&g, &f[i].w, go, &f[i]);
	/* A connection that dies while queued just leaves. */
	tls_gate_release(&g, &f[1].w);
	cr_assert_eq(g.waiting, 2);
	cr_assert_eq(g.active, 1);
	cr_assert_eq(norder, 0);
	tls_gate_release(&g, &f[0].w);
	cr_assert_eq(norder, 1);
	cr_assert_eq(order[0], 2);
	cr_assert_eq(f[1].went, 0);
	/* Releasing what holds nothing is harmless, twice too. */
	tls_gate_release(&g, &f[1].w);
	tls_gate_release(&g, &f[0].w);
	cr_assert_eq(g.active, 1);
	cr_assert_eq(g.waiting, 1);
}

Test(tlsgate, never_more_than_limit_under_churn)
{
	struct tls_gate	 g;
	struct fake	 f[50];
	unsigned	 i, step, maxactive = 0, lcg = 7;

	reset(f, 50);
	tls_gate_init(&g, 3);
	for (i = 0; i < 50; i++)
		tls_gate_acquire(&g, &f[i].w, go, &f[i]);
	/* Release random holders (and some waiters) until all are through. */
	for (step = 0; step < 10000 && (g.active > 0 || g.waiting > 0);
	    step++) {
		lcg = lcg * 1103515245u + 12345u;
		i = (lcg >> 8) % 50;
		tls_gate_release(&g, &f[i].w);
		if (g.active > maxactive)
			maxactive = g.active;
		cr_assert_leq(g.active, 3);
	}
	cr_assert_eq(g.active, 0);
	cr_assert_eq(g.waiting, 0);
	cr_assert_eq(maxactive, 3);
	for (i = 0; i < 50; i++)
		cr_assert_leq(f[i].went, 1);
}

Test(tlsgate, go_may_release_reentrantly)
{
	struct tls_gate	 g;
	struct fake	 f[5];
	int		 i;

	reset(f, 5);
	tls_gate_init(&g, 1);
	for (i = 0; i < 5; i++)
		tls_gate_acquire(&g, &f[i].w, go, &f[i]);
	/* Every waiter's handshake fails at once: the queue drains. */
	release_gate = &g;
	tls_gate_release(&g, &f[0].w);
	cr_assert_eq(norder, 4);
	for (i = 0; i < 4; i++)
		cr_assert_eq(order[i], i + 1);
	cr_assert_eq(g.active, 0);
	cr_assert_eq(g.waiting, 0);
}

Test(tlsgate, fifo_even_at_a_free_slot)
{
	struct tls_gate	 g;
	struct fake	 f[3];

	reset(f, 3);
	tls_gate_init(&g, 1);
	tls_gate_acquire(&g, &f[0].w, go, &f[0]);
	tls_gate_acquire(&g, &f[1].w, go, &f[1]);
	/* Asking twice changes nothing. */
	cr_assert_eq(tls_gate_acquire(&g, &f[1].w, go, &f[1]), 0);
	cr_assert_eq(tls_gate_acquire(&g, &f[0].w, go, &f[0]), 1);
	cr_assert_eq(g.waiting, 1);
	tls_gate_release(&g, &f[0].w);
	cr_assert_eq(order[0], 1);
	cr_assert_eq(tls_gate_acquire(&g, &f[2].w, go, &f[2]), 0);
	cr_assert_eq(g.granted, 2);
	cr_assert_eq(g.queued, 2);
}

Test(tlsgate, raising_the_limit_admits_waiters)
{
	struct tls_gate	 g;
	struct fake	 f[6];
	int		 i;

	reset(f, 6);
	tls_gate_init(&g, 0);		/* taken as 1 */
	cr_assert_eq(g.limit, 1);
	for (i = 0; i < 6; i++)
		tls_gate_acquire(&g, &f[i].w, go, &f[i]);
	tls_gate_set_limit(&g, 4);
	cr_assert_eq(g.active, 4);
	cr_assert_eq(norder, 3);
	cr_assert_eq(order[0], 1);
	cr_assert_eq(order[2], 3);
	/* Lowering takes nothing back; releases then admit no one. */
	tls_gate_set_limit(&g, 2);
	tls_gate_release(&g, &f[0].w);
	tls_gate_release(&g, &f[1].w);
	cr_assert_eq(g.active, 2);
	cr_assert_eq(norder, 3);
	tls_gate_release(&g, &f[2].w);
	cr_assert_eq(norder, 4);
	cr_assert_eq(order[3], 4);
}
