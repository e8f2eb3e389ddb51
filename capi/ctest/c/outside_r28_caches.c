/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): quantum caches; the fit
 * policies' corners and their agreement.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Quantum caches: TOP bypasses them, deferred frees of slab objects,       */
/* frees of a slab by address.                                              */

int ctest_r28_qcache(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-qc", B, 1024 * Q, Q, 4 * Q, 0);
	vmspace_addr_t x, y, t;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct vmspace_counters c = counters_of(a);
	CHECK_EQ(c.qcache_slabs, 1);
	CHECK(c.qcache_misses >= 1);
	CHECK_EQ(c.allocs, 1); /* the slab */
	struct vmspace_sizes s = sizes_of(a);
	CHECK(s.allocated > Q); /* slab counted */
	CHECK_EQ(s.live, 1);
	/* the slab: an allocated segment flagged HELD */
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].flags & VMSPACE_SEG_HELD);
	CHECK(x >= g.s[0].start && x < g.s[0].start + g.s[0].size);
	vmspace_addr_t slab = g.s[0].start;
	vmspace_size_t slabsz = g.s[0].size;
	/* a free of the slab by address (a size above qcache_max reaches the
	 * arena): refused, nothing changes */
	CHECK_EQ(vmspace_arena_free(a, slab, slabsz), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, slab, slabsz), -ENOENT);
	CHECK(same_sizes(s, sizes_of(a)));
	/* free_deferred of an object of a slab: -ENOENT, nothing changes */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, Q), -ENOENT);
	CHECK(same_sizes(s, sizes_of(a)));
	/* TOP: not from the caches, at the top */
	CHECK_EQ(vmspace_arena_alloc(a, Q, VMSPACE_TOP, &t), 0);
	CHECK_EQ(t, B + 1023 * Q);
	CHECK_EQ(vmspace_arena_free(a, t, Q), 0);
	/* a cache object freed with a size of another class, or too large */
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &y), 0);
	int r1 = vmspace_arena_free(a, x, 2 * Q);
	int r2 = vmspace_arena_free(a, x, 8 * Q);
	CHECK(r1 == -EMSGSIZE || r1 == -ENOENT);
	CHECK(r2 == -EMSGSIZE || r2 == -ENOENT);
	CHECK_EQ(r1, -EMSGSIZE); /* the header: a size other than the one allocated */
	CHECK_EQ(vmspace_arena_free(a, x + Q / 2, Q), -ENOENT);
	/* good frees, then double frees */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 2 * Q), -ENOENT);
	/* live: the slabs (objects wait in magazines) */
	CHECK_EQ(sizes_of(a).live, counters_of(a).qcache_slabs);
	CHECK(counters_of(a).bad_frees >= 6);
	CHECK_EQ(vmspace_arena_check(a), 0);

	/* set_mtbf: every arena allocation fails -EAGAIN and is counted, a
	 * magazine's objects do not reach the arena */
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* warm the magazine */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 42, 1), 0);
	uint64_t inj = counters_of(a).injected;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_add(a, 0x40000000, Q, 0), -EAGAIN);
	CHECK_EQ(counters_of(a).injected, inj + 3);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* from the magazine */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 8 * Q), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK(vmspace_arena_reclaim(a) >= 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Quantum caches past 32 slabs a class; reclaim.                          */

struct big {
	int n, held_q, plain_q;
};

static int count_big(void *arg, const struct vmspace_segment *s)
{
	struct big *b = arg;
	b->n++;
	if (s->kind == VMSPACE_SEG_ALLOCATED && s->size == Q)
		b->plain_q += !(s->flags & VMSPACE_SEG_HELD);
	if (s->kind == VMSPACE_SEG_ALLOCATED && (s->flags & VMSPACE_SEG_HELD))
		b->held_q++;
	return 0;
}

int ctest_r28_qcache_many(void)
{
	int failures = 0;
	enum { N = 2300 };
	static vmspace_addr_t objs[N];
	vmspace_arena_t *a = vmspace_arena_create("r28-qcm", B, 8192 * Q, Q, Q, 0);
	CHECK(a != NULL);
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &objs[i]), 0);
	struct vmspace_counters c = counters_of(a);
	CHECK(c.qcache_slabs <= 32);
	/* the objects outside slabs: arena allocations of their own */
	int direct = 0, inslab = 0, bad = 0;
	struct big bg = { 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALLOCATED, count_big, &bg), 0);
	CHECK_EQ((uint64_t)bg.held_q, c.qcache_slabs);
	CHECK(bg.plain_q > 0);
	/* free_deferred: refused for slab objects, taken for the others */
	for (int i = 0; i < N; i++) {
		int r = vmspace_arena_free_deferred(a, objs[i], Q);
		if (r == 0) {
			direct++;
			objs[i] = 0;
		} else if (r == -ENOENT) {
			inslab++;
		} else {
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(direct, bg.plain_q);
	CHECK_EQ(inslab + direct, N);
	CHECK_EQ(sizes_of(a).unflushed, (vmspace_size_t)direct * Q);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	for (int i = 0; i < N; i++)
		if (objs[i])
			CHECK_EQ(vmspace_arena_free(a, objs[i], Q), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* reclaim: slabs wholly free go back; the count returned */
	struct vmspace_counters c1 = counters_of(a);
	struct vmspace_sizes s1 = sizes_of(a);
	int freed = vmspace_arena_reclaim(a);
	CHECK(freed > 0);
	struct vmspace_counters c2 = counters_of(a);
	struct vmspace_sizes s2 = sizes_of(a);
	CHECK_EQ(c2.qcache_slabs, c1.qcache_slabs - (uint64_t)freed);
	CHECK_EQ(s2.live, s1.live - (vmspace_size_t)freed);
	CHECK(c2.qcache_reclaims > c1.qcache_reclaims);
	CHECK_EQ(c2.frees, c1.frees + (uint64_t)freed);
	CHECK_EQ(vmspace_arena_reclaim(a), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* qcache_max rounded down to whole quanta, at most 8 classes */
	a = vmspace_arena_create("r28-qc8", B, 4096 * Q, Q, 100 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_alloc(a, 9 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	a = vmspace_arena_create("r28-qc1", B, 4096 * Q, Q, Q + Q / 2, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Corners: instant fit, next fit wrap, quantum 1, caches bypassed.        */

int ctest_r28_corners(void)
{
	int failures = 0;
	vmspace_addr_t x, y, z;
	/* instant fit: a free segment that fits is found even when the size is
	 * not a power of two ("-ENOMEM: no free segment fits") */
	for (size_t n = 3; n <= 7; n += 2) {
		vmspace_arena_t *a = mk(n, 0);
		CHECK_EQ(vmspace_arena_alloc(a, n * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_free(a, x, n * Q), 0);
		CHECK_EQ(vmspace_arena_alloc(a, n * Q, VMSPACE_INSTANTFIT, &x), 0);
		CHECK_EQ(vmspace_arena_free(a, x, n * Q), 0);
		CHECK_EQ(vmspace_arena_alloc_handle(a, n * Q, 0, &(struct vmspace_handle){ 0 }), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		vmem_t *vm = vmem_create("r28-if", B, n * Q, Q, 0, M_FIRSTFIT);
		CHECK_EQ(vmem_alloc(vm, n * Q, M_FIRSTFIT | M_NOWAIT, &x), 0);
		vmem_destroy(vm);
	}
	/* instant fit with a 3-quantum hole among smaller ones */
	{
		vmspace_arena_t *a = mk(16, 0);
		vmspace_addr_t e;
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + Q, VMSPACE_EXACT, &e), 0);
		CHECK_EQ(vmspace_arena_xalloc(a, 12 * Q, 0, 0, 0, 0, 0, B + 4 * Q, VMSPACE_EXACT, &e), 0);
		/* free: [B, B+Q) and [B+2Q, B+4Q) */
		CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
		CHECK_EQ(x, B + 2 * Q);
		CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
		CHECK_EQ(vmspace_arena_free(a, e, 12 * Q), 0);
		/* free: [B, B+Q), [B+2Q, B+16Q) = 14 quanta: 13 of them */
		CHECK_EQ(vmspace_arena_alloc(a, 13 * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* next fit wraps around */
	{
		vmspace_arena_t *a = mk(4, VMSPACE_NEXTFIT);
		vmspace_addr_t v[4];
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[0]), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[1]), 0);
		CHECK_EQ(vmspace_arena_free(a, v[0], Q), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[2]), 0);
		CHECK_EQ(v[2], B + 2 * Q);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[3]), 0);
		CHECK_EQ(v[3], B + 3 * Q);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
		CHECK_EQ(y, B);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* quantum 1: the top of the address space; sizes do not overflow */
	{
		vmspace_arena_t *a = vmspace_arena_create("r28-q1", AMAX - 100, 100, 1, 8, 0);
		CHECK(a != NULL);
		CHECK_EQ(vmspace_arena_add(a, AMAX, 1, 0), -EOVERFLOW);
		CHECK_EQ(vmspace_arena_contains(a, AMAX - 100, 100), 1);
		CHECK_EQ(vmspace_arena_alloc(a, SMAX, 0, &x), -ENOMEM);
		CHECK_EQ(vmspace_arena_alloc(a, 3, 0, &x), 0); /* cached */
		CHECK(x >= AMAX - 100 && x + 3 <= AMAX);
		CHECK_EQ(vmspace_arena_xalloc(a, 1, 0, 0, 0, 0, 0, AMAX - 1, VMSPACE_EXACT, &z), 0);
		CHECK_EQ(vmspace_arena_free(a, z, 1), 0);
		CHECK_EQ(vmspace_arena_alloc(a, 9, VMSPACE_TOP | VMSPACE_FIRSTFIT, &y), 0);
		CHECK_EQ(y, AMAX - 9);
		CHECK_EQ(vmspace_arena_xalloc(a, 5, 8, 3, 0, 0, 0, 0, 0, &z), 0);
		CHECK_EQ(z % 8, 3);
		CHECK_EQ(vmspace_arena_xalloc(a, 2, 0, 0, 0, 0, 0, AMAX - 1, VMSPACE_EXACT, &z), -EOVERFLOW);
		CHECK_EQ(vmspace_arena_free(a, y, 9), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 3), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* caches: xalloc and TOP bypass them; frees of those by address work
	 * at cache sizes, and deferred frees too */
	{
		vmspace_arena_t *a = vmspace_arena_create("r28-byp", B, 1024 * Q, Q, 4 * Q, 0);
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
		CHECK_EQ(counters_of(a).qcache_misses, 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, VMSPACE_TOP, &y), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
		CHECK_EQ(vmspace_arena_free(a, x, Q), -ENOENT);
		CHECK_EQ(vmspace_arena_free_deferred(a, y, 2 * Q), 0);
		CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
		/* handles: never from the caches */
		struct vmspace_handle h;
		CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_free(a, h.addr, Q), -ENOENT);
		CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		CHECK_EQ(sizes_of(a).allocated, 0);
		/* a vmem arena over the same: vmem_xalloc bypasses, vmem_free frees */
		CHECK_EQ(vmem_xalloc((vmem_t *)a, 10, 0, 0, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &z), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		r28_hook_calls = 0;
		vmem_set_error_hook((vmem_t *)a, r28_hook, NULL);
		vmem_free((vmem_t *)a, z, 10);
		CHECK_EQ(r28_hook_calls, 0);
		CHECK_EQ(sizes_of(a).allocated, 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* contains: inside one span, not across two adjacent native spans;
	 * vmem_add merges them, so then it is one */
	{
		vmspace_arena_t *a = mk(4, 0);
		CHECK_EQ(vmspace_arena_add(a, B + 4 * Q, 4 * Q, 0), 0);
		CHECK_EQ(vmspace_arena_contains(a, B + 2 * Q, 4 * Q), 0);
		CHECK_EQ(vmspace_arena_contains(a, B + 4 * Q, 4 * Q), 1);
		CHECK_EQ(vmspace_arena_alloc(a, 6 * Q, 0, &x), -ENOMEM);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		vmem_t *vm = vmem_create("r28-c", B, 4 * Q, Q, 0, 0);
		CHECK_EQ(vmem_add(vm, B + 4 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(vmspace_arena_contains((vmspace_arena_t *)vm, B + 2 * Q, 4 * Q), 1);
		/* a bridge between two spans makes one */
		CHECK_EQ(vmem_add(vm, B + 12 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(vmem_add(vm, B + 8 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(sizes_of((vmspace_arena_t *)vm).spans, 1);
		CHECK_EQ(vmem_alloc(vm, 16 * Q, M_NOWAIT, &x), 0);
		vmem_free(vm, x, 16 * Q);
		CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 16 * Q);
		CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
		vmem_destroy(vm);
	}
	/* histogram: unflushed ranges are not free segments */
	{
		vmspace_arena_t *a = mk(16, VMSPACE_FIRSTFIT);
		CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &y), 0);
		CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), 0);
		uint64_t bins[VMSPACE_HISTOGRAM_BINS];
		CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
		uint64_t sum = 0;
		for (int i = 0; i < VMSPACE_HISTOGRAM_BINS; i++)
			sum += bins[i];
		CHECK_EQ(sum, 1);
		CHECK_EQ(bins[15], 1); /* 8 quanta: 0x8000 */
		struct vmspace_sizes s = sizes_of(a);
		CHECK_EQ(s.total, s.allocated + s.free + s.unflushed);
		CHECK_EQ(s.largest_free, 8 * Q);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* Quantum caches up to a quantum of 2^22, none above; racing vmem_frees
 * of one allocation: one frees, the other reaches the error hook once. */
static atomic_int race_hooks;
static void race_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
		      int error)
{
	(void)arg;
	(void)vm;
	(void)what;
	(void)addr;
	(void)size;
	(void)error;
	atomic_fetch_add(&race_hooks, 1);
}

struct vrace {
	vmem_t *vm;
	pthread_barrier_t *bar;
	vmem_addr_t x;
	vmem_size_t size;
};

static void *vracer(void *arg)
{
	struct vrace *r = arg;
	pthread_barrier_wait(r->bar);
	vmem_free(r->vm, r->x, r->size);
	return NULL;
}

int ctest_r28_qcache_quanta_and_vmem_races(void)
{
	int failures = 0;
	vmspace_addr_t x;
	vmspace_arena_t *a = vmspace_arena_create("r28-q22", 0, (vmspace_size_t)1 << 32, (vmspace_size_t)1 << 22, (vmspace_size_t)1 << 23, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)1 << 22, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	a = vmspace_arena_create("r28-q23", 0, (vmspace_size_t)1 << 33, (vmspace_size_t)1 << 23, (vmspace_size_t)1 << 24, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)1 << 23, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	for (int cached = 0; cached < 2; cached++) {
		vmem_t *vm = vmem_create("r28-vr", B, 1024 * Q, Q, cached ? 2 * Q : 0, 0);
		vmem_set_error_hook(vm, race_hook, NULL);
		atomic_store(&race_hooks, 0);
		for (int round = 0; round < 200; round++) {
			vmem_addr_t v;
			vmem_size_t size = (vmem_size_t)(1 + round % 2) * Q - 5;
			CHECK_EQ(vmem_alloc(vm, size, M_NOWAIT, &v), 0);
			pthread_barrier_t bar;
			pthread_barrier_init(&bar, NULL, 2);
			struct vrace r = { vm, &bar, v, size };
			pthread_t t[2];
			pthread_create(&t[0], NULL, vracer, &r);
			pthread_create(&t[1], NULL, vracer, &r);
			pthread_join(t[0], NULL);
			pthread_join(t[1], NULL);
			pthread_barrier_destroy(&bar);
			CHECK_EQ(atomic_load(&race_hooks), round + 1);
		}
		CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
		vmem_destroy(vm);
	}
	return failures;
}

/* Every policy finds a fit when one exists ("-ENOMEM: no free segment
 * fits"): on fragmented arenas, random constrained requests succeed under
 * each policy (with and without TOP) exactly when first fit's does. */
int ctest_r28_policies_agree(void)
{
	int failures = 0;
	uint64_t rng = 0x28;
	static const int pol[] = { VMSPACE_FIRSTFIT, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_NEXTFIT };
	int reported = 0;
	for (int round = 0; round < 40; round++) {
		vmspace_arena_t *a = mk(256, 0);
		/* fragment: random exact allocations */
		for (int i = 0; i < 40; i++) {
			vmspace_addr_t at = B + (vmspace_addr_t)ct_below(&rng, 256) * Q;
			vmspace_size_t sz = (vmspace_size_t)(1 + ct_below(&rng, 6)) * Q;
			vmspace_addr_t x;
			(void)vmspace_arena_xalloc(a, sz, 0, 0, 0, 0, 0, at, VMSPACE_EXACT, &x);
		}
		for (int q = 0; q < 60; q++) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 12)) * Q;
			vmspace_size_t align = ct_below(&rng, 2) ? (Q << ct_below(&rng, 5)) : 0;
			vmspace_size_t ea = align ? align : Q;
			vmspace_size_t phase = (vmspace_size_t)ct_below(&rng, ea / Q) * Q;
			vmspace_size_t nocross = ct_below(&rng, 3) == 0 ? (Q << (4 + ct_below(&rng, 4))) : 0;
			vmspace_addr_t min = ct_below(&rng, 3) == 0 ? B + (vmspace_addr_t)ct_below(&rng, 128) * Q + ct_below(&rng, 2) : 0;
			vmspace_addr_t max = ct_below(&rng, 3) == 0 ? B + (vmspace_addr_t)(128 + ct_below(&rng, 128)) * Q : 0;
			int want = 2;
			for (int k = 0; k < 8; k++) {
				int flags = pol[k % 4] | (k >= 4 ? VMSPACE_TOP : 0);
				vmspace_addr_t x;
				int r = vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, 0, flags, &x);
				if (r == 0) {
					CHECK_EQ(x % ea, phase);
					if (nocross)
						CHECK_EQ(x / nocross, (x + size - 1) / nocross);
					if (min)
						CHECK(x >= min);
					if (max)
						CHECK(x + size <= max);
					CHECK_EQ(vmspace_arena_free(a, x, size), 0);
				}
				int got = r == 0 ? 1 : (r == -ENOMEM ? 0 : -1);
				if (got < 0)
					CHECK(r == -ERANGE);
				if (want == 2)
					want = got;
				else if (got != want && got >= 0 && want >= 0) {
					if (reported++ < 5)
						fprintf(stderr,
							"r28: policy %#x: %d, first fit: %d (size %#lx align %#lx phase %#lx nocross %#lx min %#lx max %#lx)\n",
							flags, r, want, (unsigned long)size, (unsigned long)align,
							(unsigned long)phase, (unsigned long)nocross, (unsigned long)min,
							(unsigned long)max);
					failures++;
				}
			}
		}
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}
