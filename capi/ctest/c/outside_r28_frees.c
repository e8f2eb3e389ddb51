/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): frees, deferred frees and
 * handles; exact sizes; refused frees counted; stale handles and slabs.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Frees, deferred frees, policies.                                         */

int ctest_r28_frees(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(32, 0);
	vmspace_addr_t x, y;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_free(NULL, B, Q), -EINVAL);
	CHECK_EQ(vmspace_arena_free_deferred(NULL, B, Q), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
	struct vmspace_sizes s0 = sizes_of(a);
	struct vmspace_counters c0 = counters_of(a);
	/* smaller than allocated, in the middle, inside, rounded sizes */
	CHECK_EQ(vmspace_arena_free(a, x, Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q - 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q + 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x + 2 * Q, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, x + 1, 4 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, B + 20 * Q, Q), -ENOENT); /* free space */
	CHECK_EQ(vmspace_arena_free(a, 0x10000000, Q), -ENOENT); /* outside spans */
	CHECK_EQ(vmspace_arena_free(a, x, SMAX), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x + Q, 3 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0), -EMSGSIZE);
	CHECK(same_sizes(s0, sizes_of(a)));
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.bad_frees, c0.bad_frees + 11);
	CHECK_EQ(c1.frees, c0.frees);
	CHECK_EQ(c1.failures, c0.failures);

	/* free_deferred: unflushed until flushed, walks show UNFLUSHED */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q), -ENOENT);
	struct vmspace_sizes s1 = sizes_of(a);
	CHECK_EQ(s1.unflushed, 4 * Q);
	CHECK_EQ(s1.allocated, 0);
	CHECK_EQ(s1.free, 28 * Q);
	CHECK_EQ(s1.total, 32 * Q);
	CHECK_EQ(s1.live, 0);
	struct segs g = walk_of(a, VMSPACE_SEG_UNFLUSHED);
	CHECK_EQ(g.n, 1);
	CHECK_EQ(g.s[0].start, x);
	CHECK_EQ(g.s[0].size, 4 * Q);
	CHECK_EQ(g.s[0].kind, VMSPACE_SEG_UNFLUSHED);
	/* nothing takes it: an exact allocation there fails */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, x, VMSPACE_EXACT, &y), -ENOMEM);
	/* a whole-arena allocation fails (-ENOMEM, not a wait when asked not to) */
	CHECK_EQ(vmspace_arena_alloc(a, 32 * Q, 0, &y), -ENOMEM);
	struct vmspace_counters c2 = counters_of(a);
	CHECK_EQ(c2.deferred_frees, c1.deferred_frees + 1);
	CHECK_EQ(c2.frees, c1.frees + 1);
	CHECK_EQ(c2.flushes, c1.flushes);
	vmspace_size_t freed = 77;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(counters_of(a).flushes, c2.flushes + 1);
	/* a flush that frees nothing is not counted, stores 0 */
	freed = 77;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(counters_of(a).flushes, c2.flushes + 1);
	/* coalesced: one free segment again */
	CHECK_EQ(sizes_of(a).largest_free, 32 * Q);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE).n, 1);
	CHECK_EQ(sizes_of(a).unflushed, 0);

	/* free of a handle allocation by address, and of an address
	 * allocation by handle: -ENOENT, nothing changes */
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 2 * Q, 0, &h), 0);
	CHECK_EQ(vmspace_arena_free(a, h.addr, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, h.addr, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	struct vmspace_handle forged = h;
	forged.addr = y;
	CHECK_EQ(vmspace_arena_free_handle(a, forged, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y, Q), 0);
	vmspace_size_t sz = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h, &sz), 0);
	CHECK_EQ(sz, 2 * Q);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* next fit: a freed ID is not handed out again at once */
	a = mk(8, VMSPACE_NEXTFIT);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	CHECK(y != x);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* best fit: the smallest free segment that fits */
	a = mk(32, 0);
	vmspace_addr_t s[6];
	for (int i = 0; i < 6; i++)
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + (vmspace_addr_t)i * 4 * Q, VMSPACE_EXACT, &s[i]), 0);
	/* free runs between: [B+Q, B+4Q) 3 quanta, [B+5Q,B+8Q) 3 ... ;
	 * make a 2-quantum hole at B+9Q by allocating B+12Q.. */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + 11 * Q, VMSPACE_EXACT, &y), 0);
	/* holes: [B+Q,4Q) 3; [B+5Q,8Q) 3; [B+9Q,11Q) 2; [B+13Q,16Q) 3;
	 * [B+17Q,20Q) 3; [B+21Q, 32Q) 11 */
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, VMSPACE_BESTFIT, &x), 0);
	CHECK_EQ(x, B + 9 * Q);
	/* first fit: the lowest that fits; with TOP the highest */
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, VMSPACE_FIRSTFIT, &x), 0);
	CHECK_EQ(x, B + Q);
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, VMSPACE_FIRSTFIT | VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 29 * Q);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Handles.                                                                 */

int ctest_r28_handles(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	struct vmspace_handle h, h2;
	vmspace_size_t sz;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc_handle(NULL, Q, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, VMSPACE_EXACT, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0x100, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, SMAX, 0, &h), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 17 * Q, 0, &h), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, 0, VMSPACE_WAIT, &h), -EOPNOTSUPP);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0, 0, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 3 * Q, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 2 * Q, 2 * Q, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 4 * Q, 0, 0, 2 * Q, 0, 0, 0, 0, &h), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B + 1, VMSPACE_EXACT, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(NULL, Q, 0, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(sizes_of(a).allocated, 0);
	/* xalloc_handle with every constraint */
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 4 * Q, Q, 0, B + 2 * Q, B + 12 * Q, 0, 0, &h), 0);
	CHECK_EQ(h.addr, B + 5 * Q);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 2 * Q, 0, 0, 0, 0, 0, B + 8 * Q, VMSPACE_EXACT, &h2), 0);
	CHECK_EQ(h2.addr, B + 8 * Q);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, VMSPACE_FIRSTFIT | VMSPACE_TOP, &h2), 0);
	CHECK_EQ(h2.addr, B + 15 * Q);
	/* misaligned sizep: -EINVAL and nothing changes (the handle still frees) */
	{
		alignas(16) unsigned char buf[32];
		CHECK_EQ(vmspace_arena_free_handle(a, h2, (vmspace_size_t *)(buf + 1)), -EINVAL);
		CHECK_EQ(vmspace_arena_free_handle_deferred(a, h2, (vmspace_size_t *)(buf + 1)), -EINVAL);
	}
	CHECK_EQ(vmspace_arena_free_handle(NULL, h2, NULL), -EINVAL);
	/* forged: another tag, another address, another fingerprint */
	struct vmspace_handle f = h2;
	f.tag ^= 1;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.addr += Q;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.arena ^= 0x80000000u;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.tag = 0xffffffffu;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	sz = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h2, &sz), 0);
	CHECK_EQ(sz, Q);
	/* deferred by handle: unflushed until flushed; then stale */
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &sz), 0);
	CHECK_EQ(sz, Q);
	CHECK_EQ(sizes_of(a).unflushed, Q);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_UNFLUSHED).n, 1);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &sz), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h, &sz), -ENOENT);
	struct vmspace_counters c = counters_of(a);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, Q);
	CHECK(c.deferred_frees >= 1);
	/* a stale handle whose tag was reused for a new handle allocation at
	 * the same address frees that allocation (documented) */
	struct vmspace_handle old, fresh;
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &old), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), 0);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &fresh), 0);
	if (fresh.tag == old.tag && fresh.arena == old.arena) {
		CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), 0);
		CHECK_EQ(vmspace_arena_free_handle(a, fresh, NULL), -ENOENT);
	} else {
		CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), -ENOENT);
		CHECK_EQ(vmspace_arena_free_handle(a, fresh, NULL), 0);
	}
	CHECK_EQ(vmspace_arena_free_handle(a, h2, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h2, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a handle of a destroyed arena is foreign to an arena made after it
	 * in the same memory (vmem_init storage: surely the same memory) */
	static vmem_t store;
	for (int round = 0; round < 8; round++) {
		vmspace_arena_t *v = (vmspace_arena_t *)vmem_init(&store, "r28-h", B, 16 * Q, Q, 0, 0);
		CHECK(v != NULL);
		struct vmspace_handle hh;
		CHECK_EQ(vmspace_arena_xalloc_handle(v, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &hh), 0);
		vmem_destroy((vmem_t *)v);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -EBADF);
		v = (vmspace_arena_t *)vmem_init(&store, "r28-h", B, 16 * Q, Q, 0, 0);
		CHECK(v != NULL);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -ENOENT);
		/* also once the same tag holds the same address again */
		struct vmspace_handle h3;
		CHECK_EQ(vmspace_arena_xalloc_handle(v, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &h3), 0);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -ENOENT);
		CHECK_EQ(sizes_of(v).live, 1);
		CHECK_EQ(vmspace_arena_free_handle(v, h3, NULL), 0);
		CHECK_EQ(vmspace_arena_check(v), 0);
		vmem_destroy((vmem_t *)v);
	}
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Probes: exact sizes through the caches; bad handle frees counted.       */

int ctest_r28_exact_sizes(void)
{
	int failures = 0;
	vmspace_addr_t x, y;
	/* without caches: a free must give exactly the size asked for */
	vmspace_arena_t *a = mk(64, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 2), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 1), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* with caches, the same allocation: the same contract */
	a = vmspace_arena_create("r28-qx", B, 1024 * Q, Q, 4 * Q, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	uint64_t bad = counters_of(a).bad_frees;
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 2), -EMSGSIZE);
	CHECK_EQ(counters_of(a).bad_frees, bad + 2);
	int r = vmspace_arena_free(a, x, Q + 1);
	CHECK(r == 0 || r == -ENOENT); /* 0 unless freed above */
	/* and the walk's requested for it is... a slab; nothing to see */
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q - 5, 0, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 3 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_r28_bad_handles_counted(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	uint64_t bad = counters_of(a).bad_frees;
	struct vmspace_handle f = h;
	f.tag ^= 1;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(counters_of(a).bad_frees, bad + 1);
	f = h;
	f.tag = 0; /* a forged handle with tag 0 */
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	CHECK_EQ(counters_of(a).bad_frees, bad + 3); /* "frees refused" */
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* A stale handle whose tag and address now hold a quantum-cache slab (a  */
/* held segment, but no handle allocation of the caller's).               */

int ctest_r28_stale_handle_vs_slab(void)
{
	int failures = 0;
	/* the slab size of class 1 */
	vmspace_arena_t *a = vmspace_arena_create("r28-sl", B, 4096 * Q, Q, Q, VMSPACE_FIRSTFIT);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	vmspace_size_t S = g.s[0].size;
	vmspace_addr_t at = g.s[0].start;
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	int hit = 0;
	for (int round = 0; round < 16; round++) {
		a = vmspace_arena_create("r28-sl", B, 4096 * Q, Q, Q, VMSPACE_FIRSTFIT);
		struct vmspace_handle h;
		CHECK_EQ(vmspace_arena_xalloc_handle(a, S, 0, 0, 0, 0, 0, at, VMSPACE_EXACT, &h), 0);
		CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* a slab at `at` */
		g = walk_of(a, VMSPACE_SEG_ALLOCATED);
		int slab_there = g.n == 1 && g.s[0].start == h.addr && (g.s[0].flags & VMSPACE_SEG_HELD);
		struct vmspace_sizes s0 = sizes_of(a);
		int r = vmspace_arena_free_handle(a, h, NULL);
		if (slab_there && r == 0)
			hit++;
		if (round == 0 && getenv("R28_VERBOSE"))
			fprintf(stderr, "r28: slab at the stale handle's address: %d (S %#lx)\n", slab_there, (unsigned long)S);
		/* "a foreign or stale one is -ENOENT", except a tag reused "for a
		 * new handle allocation": a slab is none of the caller's */
		CHECK_EQ(r, -ENOENT);
		if (r == 0) {
			CHECK(!same_sizes(s0, sizes_of(a)));
			/* the cache still hands out objects of the freed slab */
			vmspace_addr_t y;
			CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
			struct vmspace_handle h2;
			int r2 = vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, y, VMSPACE_EXACT, &h2);
			if (r2 == 0) {
				fprintf(stderr, "r28: object %#lx handed out by the cache and by xalloc_handle\n", (unsigned long)y);
				CHECK(0 && "one range handed out twice");
			}
			CHECK_EQ(vmspace_arena_check(a), 0);
			/* leak: the arena is broken */
			break;
		}
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	if (hit)
		fprintf(stderr, "r28: a stale handle freed a quantum-cache slab (%d times)\n", hit);
	return failures;
}

/* A live cache-served object freed with size 0 or a size above
 * qcache_max: it is allocated and starts there, so -EMSGSIZE (a size
 * other than the one allocated), as without caches. */
int ctest_r28_cached_wrong_sizes(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-cw", B, 1024 * Q, Q, 4 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_free(a, x, 0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 8 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* the same without caches */
	vmspace_arena_t *b = mk(16, 0);
	CHECK_EQ(vmspace_arena_alloc(b, Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(b, x, 0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(b, x, 8 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(b, x, Q), 0);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* A handle free refused because its address is a quantum-cache slab's is
 * a refused free too (bad_frees: "frees refused (arena and caches)"). */
int ctest_r28_slab_handle_counted(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-shc", B, 1024 * Q, Q, Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	struct vmspace_handle f = h;
	f.addr = g.s[0].start; /* the slab's address, this arena's fingerprint */
	uint64_t bad = counters_of(a).bad_frees;
	struct vmspace_sizes s0 = sizes_of(a);
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	CHECK(same_sizes(s0, sizes_of(a)));
	CHECK_EQ(counters_of(a).bad_frees, bad + 2);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
