/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): statistics, counters and
 * walks.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Statistics: sizes, requested, fragmentation, counters.                   */

int ctest_r28_stats(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, VMSPACE_FIRSTFIT);
	vmspace_addr_t x, y, z;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, 0, &z), 0);
	CHECK_EQ(vmspace_arena_free(a, y, Q), 0);
	/* allocated: x (2Q) at B, hole Q, z (3Q), free 10Q */
	struct vmspace_sizes s = sizes_of(a);
	CHECK_EQ(s.allocated, 5 * Q);
	CHECK_EQ(s.free, 11 * Q);
	CHECK_EQ(s.total, 16 * Q);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.largest_free, 10 * Q);
	CHECK_EQ(s.live, 2);
	CHECK_EQ(s.spans, 1);
	CHECK_EQ(s.fragmentation_permille, 1000 - (1000 * 10) / 11);
	CHECK_EQ(s.reserved, 0);
	CHECK_EQ(s.unflushed, 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALL);
	/* span, alloc x, free, alloc z, free */
	CHECK_EQ(g.n, 5);
	CHECK_EQ(g.s[0].kind, VMSPACE_SEG_SPAN);
	CHECK_EQ(g.s[0].start, B);
	CHECK_EQ(g.s[0].size, 16 * Q);
	CHECK_EQ(g.s[0].requested, 16 * Q);
	CHECK_EQ(g.s[1].kind, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.s[1].size, 2 * Q);
	CHECK_EQ(g.s[1].requested, Q + 1); /* the size asked for */
	CHECK_EQ(g.s[1].flags, 0);
	CHECK_EQ(g.s[2].kind, VMSPACE_SEG_FREE);
	CHECK_EQ(g.s[2].requested, g.s[2].size);
	CHECK_EQ(g.s[3].requested, 3 * Q);
	/* address order */
	for (int i = 2; i < g.n && i < 64; i++)
		CHECK(g.s[i].start >= g.s[i - 1].start + (i == 1 ? 0 : g.s[i - 1].size) ||
		      g.s[i - 1].kind == VMSPACE_SEG_SPAN);
	/* masks select */
	CHECK_EQ(walk_of(a, VMSPACE_SEG_SPAN).n, 1);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE).n, 2);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_ALLOCATED).n, 2);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_UNFLUSHED).n, 0);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE | VMSPACE_SEG_ALLOCATED).n, 4);
	/* the free with the size asked for (not rounded) works, and the
	 * rounded one (as the allocation's size)? The header: "with exactly
	 * this size" */
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 1), 0);
	/* a handle allocation: HELD */
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	int held = 0;
	for (int i = 0; i < g.n && i < 64; i++)
		if (g.s[i].start == h.addr)
			held = g.s[i].flags & VMSPACE_SEG_HELD;
	CHECK(held);
	CHECK_EQ(sizes_of(a).live, 2);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	/* counters: failures for a failed alloc, a failed add */
	struct vmspace_counters c0 = counters_of(a);
	CHECK_EQ(vmspace_arena_alloc(a, 64 * Q, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_add(a, B, Q, 0), -EEXIST);
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.failures, c0.failures + 2);
	CHECK_EQ(c1.allocs, c0.allocs);
	CHECK(c1.search_steps >= c0.search_steps);
	/* each try of a timed allocation that found no space */
	CHECK_EQ(vmspace_arena_alloc_timed(a, 64 * Q, 0, 0, &x), -ETIMEDOUT);
	CHECK(counters_of(a).failures >= c1.failures + 1);
	/* a walk stopped by its function returns that value; walking fn
	 * NULL is -EINVAL (r25); a mask with an unknown bit -EINVAL */
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL | 0x100, collect, &g), -EINVAL);
	CHECK_EQ(vmspace_arena_free(a, z, 3 * Q), 0);
	s = sizes_of(a);
	CHECK_EQ(s.fragmentation_permille, 0);
	CHECK_EQ(s.live, 0);
	CHECK_EQ(s.allocated, 0);
	c1 = counters_of(a);
	CHECK_EQ(c1.allocs, c1.frees + 0); /* x, y, z and h: 4 and 4 */
	CHECK_EQ(c1.allocs, 4);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* vmspace.h counters: failures counts "failed ... adds, extends", each
 * once; injected counts "faults injected". One vmem_add that fails is one
 * failed add. */
int ctest_r28_vmem_add_failures(void)
{
	int failures = 0;
	/* vmem_add that touches a span and overlaps another: one failure */
	vmem_t *vm = vmem_create("r28-va", B, 4 * Q, Q, 0, 0);
	CHECK_EQ(vmem_add(vm, B + 8 * Q, 4 * Q, M_NOWAIT), 0);
	uint64_t f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_add(vm, B + 4 * Q, 6 * Q, M_NOWAIT), EEXIST);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	CHECK_EQ(sizes_of((vmspace_arena_t *)vm).total, 8 * Q);

	/* an injected fault: one failure, one injected fault, for one call */
	CHECK_EQ(vmspace_arena_set_mtbf((vmspace_arena_t *)vm, 7, 1), 0);
	struct vmspace_counters k0 = counters_of((vmspace_arena_t *)vm);
	CHECK_EQ(vmem_add(vm, B + 12 * Q, 4 * Q, M_NOWAIT), EAGAIN);
	struct vmspace_counters k1 = counters_of((vmspace_arena_t *)vm);
	CHECK_EQ(k1.failures, k0.failures + 1);
	CHECK_EQ(k1.injected, k0.injected + 1);
	CHECK_EQ(vmspace_arena_set_mtbf((vmspace_arena_t *)vm, 0, 0), 0);
	vmem_destroy(vm);
	return failures;
}

/* largest_free and VMEM_MAXFREE: the largest free segment, exactly, with
 * several in one power-of-two bin, in either order */
int ctest_r28_largest_free(void)
{
	int failures = 0;
	for (int order = 0; order < 2; order++) {
		vmspace_arena_t *a = mk(64, 0);
		vmspace_addr_t e;
		/* free runs of 7 and 5 (or 5 and 7) quanta, separated */
		vmspace_size_t first = order ? 5 * Q : 7 * Q, second = order ? 7 * Q : 5 * Q;
		vmspace_addr_t p = B + first;
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, p, VMSPACE_EXACT, &e), 0);
		p += Q + second;
		CHECK_EQ(vmspace_arena_xalloc(a, B + 64 * Q - p, 0, 0, 0, 0, 0, p, VMSPACE_EXACT, &e), 0);
		struct vmspace_sizes s = sizes_of(a);
		CHECK_EQ(s.free, 12 * Q);
		CHECK_EQ(s.largest_free, 7 * Q);
		CHECK_EQ(vmem_size((vmem_t *)a, VMEM_MAXFREE), 7 * Q);
		CHECK_EQ(s.fragmentation_permille, 1000 - (1000 * 7) / 12);
		/* and then 6 quanta: instant fit must still find the 7 */
		vmspace_addr_t x;
		CHECK_EQ(vmspace_arena_alloc(a, 6 * Q, VMSPACE_INSTANTFIT, &x), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* Walks: span markers before their segments, in address order over
 * several spans; requested is the size asked for only for allocated
 * segments ("else size"), unflushed ones included. */
int ctest_r28_walk_order(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(8, VMSPACE_FIRSTFIT);
	CHECK_EQ(vmspace_arena_add(a, B + 64 * Q, 8 * Q, 0), 0);
	CHECK_EQ(vmspace_arena_add(a, B - 32 * Q, 8 * Q, 0), 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_xalloc(a, Q + 1, 0, 0, 0, 0, 0, B + 64 * Q, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q + 7, 0, 0, 0, 0, 0, B + 66 * Q, VMSPACE_EXACT, &y), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, y, 2 * Q + 7), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALL);
	/* span(B-32Q) free; span(B) free; span(B+64Q) alloc unflushed free */
	CHECK_EQ(g.n, 8);
	int kinds[8] = { VMSPACE_SEG_SPAN, VMSPACE_SEG_FREE, VMSPACE_SEG_SPAN, VMSPACE_SEG_FREE,
			 VMSPACE_SEG_SPAN, VMSPACE_SEG_ALLOCATED, VMSPACE_SEG_UNFLUSHED, VMSPACE_SEG_FREE };
	vmspace_addr_t starts[8] = { B - 32 * Q, B - 32 * Q, B, B, B + 64 * Q, B + 64 * Q, B + 66 * Q, B + 69 * Q };
	for (int i = 0; i < 8 && i < g.n; i++) {
		CHECK_EQ(g.s[i].kind, kinds[i]);
		CHECK_EQ(g.s[i].start, starts[i]);
	}
	if (g.n == 8) {
		CHECK_EQ(g.s[5].requested, Q + 1);
		CHECK_EQ(g.s[6].size, 3 * Q);
		CHECK_EQ(g.s[6].requested, g.s[6].size); /* "else size" */
		CHECK_EQ(g.s[7].requested, g.s[7].size);
	}
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* failures: "failed allocations ..., each try counted": a plain failed
 * allocation is one; a cache-sized one that finds no space two (the
 * cache's try for a slab, then the arena's own); a vmem_alloc with a
 * reclaim function two when it fails (before and after the reclaim) and
 * one when it succeeds after it. */
int ctest_r28_failure_counts(void)
{
	int failures = 0;
	vmspace_addr_t x, y;
	/* no caches */
	vmspace_arena_t *a = mk(8, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), 0);
	uint64_t f0 = counters_of(a).failures;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 1);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 2);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 3);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* with caches: a cache-sized allocation that finds no space */
	a = vmspace_arena_create("r28-fc", B, 8 * Q, Q, 2 * Q, 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 8 * Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
	f0 = counters_of(a).failures;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 2);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* vmem_alloc with M_NOWAIT and a reclaim function that frees nothing:
	 * tried twice, before and after the reclaim: two failures */
	vmem_t *vm = vmem_create("r28-fv", B, 8 * Q, Q, 0, 0);
	CHECK_EQ(vmem_alloc(vm, 8 * Q, M_NOWAIT, &x), 0);
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), ENOMEM);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	vmem_set_reclaim(vm, r28_reclaimer);
	r28_reclaim_addr = 0;
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), ENOMEM);
	uint64_t df = counters_of((vmspace_arena_t *)vm).failures - f0;
	if (df != 2)
		fprintf(stderr, "r28: vmem_alloc M_NOWAIT with a reclaim function: %llu failures\n",
			(unsigned long long)df);
	CHECK_EQ(df, 2);
	/* one that succeeds after the reclaim function freed: the try
	 * before it is the one failure */
	vmem_addr_t q1;
	vmem_free(vm, x, 8 * Q);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &q1), 0);
	CHECK_EQ(vmem_alloc(vm, 7 * Q, M_NOWAIT, &x), 0);
	r28_reclaim_addr = q1;
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), 0);
	CHECK_EQ(y, q1);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	vmem_set_reclaim(vm, NULL);
	vmem_destroy(vm);
	return failures;
}

/* Histogram with fewer bins than 64; a cache-sized object an arena too
 * small for a slab gave out directly is freed deferred like any other. */
int ctest_r28_small_bits(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	uint64_t bins[8];
	for (int i = 0; i < 8; i++)
		bins[i] = 77;
	CHECK_EQ(vmspace_arena_histogram(a, bins, 3), 3);
	CHECK_EQ(bins[0], 0);
	CHECK_EQ(bins[2], 0);
	CHECK_EQ(bins[3], 77);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	a = vmspace_arena_create("r28-small", B, 64 * Q, Q, 2 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0); /* no room for a slab */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(a).unflushed, 2 * Q);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* A cache-sized allocation that succeeds straight from the arena (no
 * room for a slab) counts one failure, the cache's failed try for a slab
 * (vmspace.h, failures), and one allocation. */
int ctest_r28_success_is_no_failure(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-snf", B, 64 * Q, Q, 2 * Q, 0);
	vmspace_addr_t x;
	struct vmspace_counters c0 = counters_of(a);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.qcache_slabs, 0);
	CHECK_EQ(c1.failures, c0.failures + 1);
	CHECK_EQ(c1.allocs, c0.allocs + 1);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* An allocation that succeeds after reclaiming the caches (tried,
 * reclaimed, tried again) counts the try before the reclaim as its one
 * failure (vmspace.h, failures), by handle, by address or constrained. */
int ctest_r28_handle_after_reclaim(void)
{
	int failures = 0;
	enum { N = 2048 };
	static vmspace_addr_t objs[N];
	for (int kind = 0; kind < 3; kind++) {
		vmspace_arena_t *a = vmspace_arena_create("r28-har", B, 2048 * Q, Q, Q, 0);
		int n = 0;
		for (; n < N; n++)
			if (vmspace_arena_alloc(a, Q, 0, &objs[n]) != 0)
				break;
		CHECK_EQ(sizes_of(a).free, 0);
		for (int i = 0; i < n; i++)
			CHECK_EQ(vmspace_arena_free(a, objs[i], Q), 0);
		CHECK_EQ(sizes_of(a).free, 0); /* all still in slabs */
		struct vmspace_counters c0 = counters_of(a);
		struct vmspace_handle h;
		vmspace_addr_t x = 0;
		int r;
		if (kind == 0)
			r = vmspace_arena_alloc_handle(a, 64 * Q, 0, &h);
		else if (kind == 1)
			r = vmspace_arena_alloc(a, 64 * Q, 0, &x);
		else
			r = vmspace_arena_xalloc(a, 64 * Q, 0, 0, 0, 0, 0, 0, 0, &x);
		CHECK_EQ(r, 0);
		struct vmspace_counters c1 = counters_of(a);
		CHECK(c1.qcache_reclaims > c0.qcache_reclaims);
		if (c1.failures != c0.failures + 1)
			fprintf(stderr, "r28: kind %d (0 handle, 1 alloc, 2 xalloc): %llu failures for a success\n",
				kind, (unsigned long long)(c1.failures - c0.failures));
		CHECK_EQ(c1.failures, c0.failures + 1);
		if (r == 0 && kind == 0)
			CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		if (r == 0 && kind != 0)
			CHECK_EQ(vmspace_arena_free(a, x, 64 * Q), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}
