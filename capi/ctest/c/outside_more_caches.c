/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Another outside reviewer (see outside_more.c): forged handles, what
 * bypasses the quantum caches, mtbf, vmem_size against the native sizes.
 */
#include "outside_more.h"

/* --------------------------------------------------------------- forged */

int more_forged(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x200000;
	vmspace_arena_t *a = vmspace_arena_create("forged", B, 0x10000, 16, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x;
	/* a by-address allocation at B, a handle at B + 0x100, free after */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x40, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &x), 0);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0x40, 0, 0, 0, 0, 0, B + 0x100, VMSPACE_EXACT, &h), 0);
	struct vmspace_sizes before, after;
	CHECK_EQ(vmspace_arena_sizes(a, &before), 0);
	/* every small tag at the span's start (also the by-address allocation),
	 * the free segment after it, and past the handle */
	static const vmspace_addr_t at[] = { B, B + 0x40, B + 0x140, B + 0x10000 - 16, 0 };
	int bad = 0;
	for (unsigned i = 0; i < sizeof at / sizeof at[0]; i++)
		for (uint32_t tag = 0; tag < 256; tag++) {
			struct vmspace_handle f = { at[i], tag, 0 };
			if (f.addr == h.addr && tag == h.tag)
				continue;
			vmspace_size_t got = 0;
			int e = vmspace_arena_free_handle(a, f, &got);
			if (e != -ENOENT && !bad) {
				fprintf(stderr, "forged handle {%#lx, %u}: %d\n", (unsigned long)f.addr,
					tag, e);
				bad = 1;
			}
			e = vmspace_arena_free_handle_deferred(a, f, &got);
			if (e != -ENOENT && !bad) {
				fprintf(stderr, "forged deferred handle {%#lx, %u}: %d\n",
					(unsigned long)f.addr, tag, e);
				bad = 1;
			}
		}
	CHECK_EQ(bad, 0);
	/* the right tag at another address */
	struct vmspace_handle f = h;
	f.addr = B;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_sizes(a, &after), 0);
	CHECK(memcmp(&before, &after, sizeof before) == 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	vmspace_size_t got = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h, &got), 0);
	CHECK_EQ(got, 0x40);
	CHECK_EQ(vmspace_arena_free(a, B, 0x40), 0);
	/* a handle of a twin arena (same spans, same steps) is foreign */
	vmspace_arena_t *twin = vmspace_arena_create("forged", B, 0x10000, 16, 0, 0);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, VMSPACE_FIRSTFIT, &h), 0);
	CHECK_EQ(vmspace_arena_free_handle(twin, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_check(twin), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_destroy(twin), 0);
	CHECK_EQ(vmspace_arena_sizes(a, &after), 0);
	CHECK_EQ(after.allocated, 0);
	CHECK_EQ(after.free, 0x10000);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* --------------------------------------------------------------- caches */

int more_caches(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x1000000, S = 0x100000;
	/* qcache_max 1000 with quantum 16: at most 8 quanta, 128 */
	vmspace_arena_t *a = vmspace_arena_create("caches", B, S, 16, 1000, VMSPACE_FIRSTFIT);
	CHECK(a != NULL);
	if (!a)
		return failures;
	struct vmspace_counters c0, c1;
	struct vmspace_sizes s;
	vmspace_addr_t x = 0, y = 0, t = 0;
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 129, 0, &x), 0); /* past the caches */
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.qcache_hits + c1.qcache_misses, 0);
	CHECK_EQ(c1.qcache_slabs, 0);
	CHECK_EQ(x, B);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 129), 0); /* not a cached object */
	/* from the top: not from the caches, freed by address with a cached size */
	CHECK_EQ(vmspace_arena_alloc(a, 16, VMSPACE_TOP, &t), 0);
	CHECK_EQ(t, B + S - 16);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_free(a, t, 32), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, t, 16), 0);
	/* xalloc of a cached size is an ordinary segment: free and deferred free */
	CHECK_EQ(vmspace_arena_xalloc(a, 48, 0, 0, 0, 0, 0, B + 0x1000, VMSPACE_EXACT, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 48), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 48, 0, 0, 0, 0, 0, B + 0x1000, VMSPACE_EXACT, &y), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, y, 48), 0);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0x90 + 0x30);
	/* cached objects: slabs are allocated segments, held, counted live */
	vmspace_addr_t o[200];
	for (int i = 0; i < 200; i++)
		CHECK_EQ(vmspace_arena_alloc(a, 128, 0, &o[i]), 0);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK(c1.qcache_slabs >= 4); /* 200 objects, 64 a slab */
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.live, c1.qcache_slabs);
	CHECK(s.allocated >= 200 * 128);
	for (int i = 0; i < 200; i++)
		CHECK(o[i] >= B && o[i] + 128 <= B + S && o[i] % 16 == 0);
	/* a cached object freed with another cached size, or deferred: refused */
	CHECK_EQ(vmspace_arena_free(a, o[7], 127), -EMSGSIZE);
	int e = vmspace_arena_free(a, o[7], 112); /* another class */
	CHECK(e == -EMSGSIZE || e == -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, o[7], 128), -ENOENT);
	for (int i = 0; i < 200; i++)
		CHECK_EQ(vmspace_arena_free(a, o[i], 128), 0);
	CHECK_EQ(vmspace_arena_free(a, o[0], 128), -ENOENT);
	/* reclaim: its count is what leaves qcache_slabs */
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	int r = vmspace_arena_reclaim(a);
	CHECK(r >= 0);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c0.qcache_slabs - c1.qcache_slabs, (uint64_t)r);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.live, c1.qcache_slabs);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* qcache_max below one quantum: no caches, so deferred frees work */
	a = vmspace_arena_create("nocache", B, S, 16, 8, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, 8, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 8), 0);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.qcache_hits + c1.qcache_misses + c1.qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ----------------------------------------------------------------- mtbf */

int more_mtbf(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x400000;
	vmspace_arena_t *a = vmspace_arena_create("mtbf", B, 0x10000, 16, 64, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x, q;
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x100, 0, &h), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 32, 0, &q), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 1, 1), 0); /* probability 1 */
	struct vmspace_counters c0, c1;
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	vmspace_addr_t y = 0x77;
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, B + 0x8000, VMSPACE_EXACT, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x100, 0, &h) == -EAGAIN, 1);
	CHECK_EQ(vmspace_arena_add(a, 0x800000, 0x1000, 0), -EAGAIN);
	CHECK_EQ(y, 0x77);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.injected - c0.injected, 4);
	CHECK_EQ(c1.allocs, c0.allocs);
	/* frees are not faults */
	CHECK_EQ(vmspace_arena_free(a, x, 0x100), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, q, 32), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ----------------------------------------------------------------- vmem */

int more_vmem(void)
{
	int failures = 0;
	vmem_t *vm = vmem_create("vmem", 0x10000, 0x10000, 16, 64, M_FIRSTFIT);
	CHECK(vm != NULL);
	if (!vm)
		return failures;
	vmspace_arena_t *a = (vmspace_arena_t *)vm;
	vmem_addr_t x, y;
	CHECK_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &x), 0);
	CHECK_EQ(vmem_alloc(vm, 0x300, M_NOWAIT, &y), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), s.allocated);
	CHECK_EQ(vmem_size(vm, VMEM_FREE), s.free);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), s.largest_free);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), s.total);
	/* cross frees are allowed */
	vmem_free(vm, x, 0x100);
	vmem_xfree(vm, y, 0x300);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	/* maxaddr below minaddr, maxaddr = minaddr + size - 1 */
	CHECK(vmem_xalloc(vm, 16, 0, 0, 0, 0x12000, 0x11fff, M_NOWAIT, &x) != 0);
	CHECK_EQ(vmem_xalloc(vm, 16, 0, 0, 0, 0x12000, 0x1200f, M_NOWAIT, &x), 0);
	CHECK_EQ(x, 0x12000);
	vmem_xfree(vm, x, 16);
	/* roundup: 0 stays 0? SIZE_MAX - 14 rounds past the top: 0 */
	CHECK_EQ(vmem_roundup_size(vm, SIZE_MAX - 14), 0);
	CHECK_EQ(vmem_roundup_size(vm, SIZE_MAX - 15), SIZE_MAX - 15);
	vmem_destroy(vm);
	return failures;
}
