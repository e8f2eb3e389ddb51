/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Another outside reviewer (see outside_more.c): spans as large as the
 * address space allows, calls on a destroyed arena, bad arguments.
 */
#include "outside_more.h"

/* ----------------------------------------------------------------- huge */

int more_huge(void)
{
	int failures = 0;
	vmspace_addr_t x = 0;
	struct vmspace_sizes s;
	/* quantum 1: a span of SIZE_MAX units, [0, SIZE_MAX): no overflow */
	vmspace_arena_t *a = vmspace_arena_create("huge", 0, SIZE_MAX, 1, 0, VMSPACE_FIRSTFIT);
	CHECK(a != NULL);
	if (!a)
		return failures;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK(s.total == SIZE_MAX && s.free == SIZE_MAX && s.largest_free == SIZE_MAX);
	CHECK_EQ(s.fragmentation_permille, 0);
	CHECK_EQ(vmspace_arena_contains(a, 0, SIZE_MAX), 1);
	CHECK_EQ(vmspace_arena_contains(a, 1, SIZE_MAX), 0);
	CHECK_EQ(vmspace_arena_contains(a, SIZE_MAX - 1, 1), 1);
	CHECK_EQ(vmspace_arena_contains(a, SIZE_MAX, 1), 0);
	uint64_t bins[VMSPACE_HISTOGRAM_BINS];
	CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
	CHECK_EQ(bins[63], 1);
	/* all of it in one allocation */
	CHECK_EQ(vmspace_arena_alloc(a, SIZE_MAX, 0, &x), 0);
	CHECK_EQ(x, 0);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK(s.allocated == SIZE_MAX && s.free == 0 && s.largest_free == 0);
	CHECK_EQ(s.fragmentation_permille, 0);
	CHECK_EQ(vmspace_arena_free(a, 0, SIZE_MAX - 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, 0, SIZE_MAX), 0);
	/* The top unit, exactly, then two halves apart: permille 500 */
	CHECK_EQ(vmspace_arena_xalloc(a, 1, 0, 0, 0, 0, 0, SIZE_MAX - 1, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(x, SIZE_MAX - 1);
	CHECK_EQ(vmspace_arena_free(a, x, 1), 0);
	vmspace_addr_t mid = (vmspace_addr_t)1 << 63;
	CHECK_EQ(vmspace_arena_xalloc(a, 1, 0, 0, 0, 0, 0, mid, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.free, SIZE_MAX - 1);
	CHECK_EQ(s.largest_free, mid);
	/* 1000 * (1 - 2^63 / (2^64 - 2)) = 499.99...: 499 or 500 */
	CHECK(s.fragmentation_permille == 499 || s.fragmentation_permille == 500);
	/* a window ending at the top: max UINT64_MAX (exclusive), from the top */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, mid, UINTPTR_MAX, 0, VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, UINTPTR_MAX - 16);
	CHECK_EQ(vmspace_arena_free(a, x, 16), 0);
	/* alignment 2^63 with a phase: only 2^63 + phase fits above the middle */
	CHECK_EQ(vmspace_arena_xalloc(a, 8, mid, 8, 0, 0, 0, 0, 0, &x), 0);
	CHECK(x == 8 || x == mid + 8);
	CHECK_EQ(vmspace_arena_free(a, x, 8), 0);
	/* nocross 2^63: 16 units straddling the middle can never go there */
	int e = vmspace_arena_xalloc(a, 16, 0, 0, mid, mid - 8, mid + 8, 0, 0, &x);
	CHECK_EQ(e, -ERANGE); /* was -ENOMEM: found here */
	/* sizes that overflow when rounded or added */
	CHECK_EQ(vmspace_arena_xalloc(a, SIZE_MAX, 2, 0, 0, 0, 0, 0, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 2, 0, 0, 0, 0, 0, SIZE_MAX - 1, VMSPACE_EXACT, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_add(a, SIZE_MAX, 1, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_free(a, mid, 1), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* Quantum 2^27 (the largest) at the top of the address space. */
	const vmspace_size_t Q = (vmspace_size_t)1 << 27;
	vmspace_addr_t top = UINTPTR_MAX - (Q - 1); /* 2^64 - Q: [top, 2^64) ends past the top */
	a = vmspace_arena_create("bigq", top - 4 * Q, 4 * Q, Q, 8 * Q, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	CHECK_EQ(vmspace_arena_alloc(a, 1, VMSPACE_TOP | VMSPACE_FIRSTFIT, &x), 0);
	CHECK_EQ(x, top - Q);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 1), 0); /* no caches for Q > 2^22 */
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, Q);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.qcache_hits + c.qcache_misses + c.qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
	CHECK_EQ(x, top - 4 * Q);
	CHECK_EQ(vmspace_arena_alloc(a, 1, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ----------------------------------------------------------------- dead */

static int never(void *arg, const struct vmspace_segment *seg)
{
	(void)seg;
	++*(int *)arg;
	return 0;
}

int more_dead(void)
{
	int failures = 0;
	static vmem_t st;
	vmspace_arena_t *d = (vmspace_arena_t *)vmem_init(&st, "dead", 0x1000, 0x10000, 16, 64, 0);
	CHECK(d != NULL);
	if (!d)
		return failures;
	vmspace_addr_t x = 0, q = 0;
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc(d, 0x100, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(d, 16, 0, &q), 0);
	CHECK_EQ(vmspace_arena_alloc_handle(d, 0x100, 0, &h), 0);
	CHECK_EQ(vmspace_arena_free_deferred(d, x, 0x100), 0); /* unflushed at destroy */
	CHECK_EQ(vmspace_arena_destroy(d), 0);
	struct vmspace_sizes s;
	struct vmspace_counters c;
	uint64_t bins[4];
	vmspace_size_t sz = 77;
	int calls = 0;
	vmspace_addr_t y = 0x5555;
	CHECK_EQ(vmspace_arena_add(d, 0x100000, 0x1000, 0), -EBADF);
	CHECK_EQ(vmspace_arena_xalloc(d, 16, 0, 0, 0, 0, 0, 0, 0, &y), -EBADF);
	CHECK_EQ(y, 0x5555);
	CHECK_EQ(vmspace_arena_alloc_handle(d, 16, 0, &h), -EBADF);
	CHECK_EQ(vmspace_arena_xalloc_handle(d, 16, 0, 0, 0, 0, 0, 0, 0, &h), -EBADF);
	CHECK_EQ(vmspace_arena_free_handle(d, h, &sz), -EBADF);
	CHECK_EQ(vmspace_arena_free_handle_deferred(d, h, &sz), -EBADF);
	CHECK_EQ(sz, 77);
	CHECK_EQ(vmspace_arena_free_deferred(d, x, 0x100), -EBADF);
	CHECK_EQ(vmspace_arena_free(d, q, 16), -EBADF);
	CHECK_EQ(vmspace_arena_flushed(d, &sz), -EBADF);
	CHECK_EQ(sz, 77);
	CHECK_EQ(vmspace_arena_reclaim(d), -EBADF);
	CHECK_EQ(vmspace_arena_set_limit(d, 1), -EBADF);
	CHECK_EQ(vmspace_arena_set_mtbf(d, 1, 1), -EBADF);
	CHECK_EQ(vmspace_arena_set_import(d, NULL, NULL, NULL, 0), -EBADF);
	CHECK_EQ(vmspace_arena_counters(d, &c), -EBADF);
	CHECK_EQ(vmspace_arena_histogram(d, bins, 4), -EBADF);
	CHECK_EQ(vmspace_arena_walk(d, VMSPACE_SEG_ALL, never, &calls), -EBADF);
	CHECK_EQ(calls, 0);
	CHECK_EQ(vmspace_arena_contains(d, 0x1000, 16), -EBADF);
	CHECK_EQ(vmspace_arena_quantum(d), 0);
	CHECK(vmspace_arena_name(d) == NULL);
	CHECK_EQ(vmspace_arena_sizes(d, &s), -EBADF);
	/* a child of a dead parent */
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.quantum = 16;
	p.parent = d;
	vmspace_arena_t *child = (vmspace_arena_t *)&st;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), -EBADF);
	CHECK(child == NULL);
	/* vmem calls on it do nothing and return the documented values */
	CHECK_EQ(vmem_size((vmem_t *)d, VMEM_ALLOC), 0);
	CHECK_EQ(vmem_alloc((vmem_t *)d, 16, M_NOWAIT, &y), EBADF);
	vmem_free((vmem_t *)d, q, 16);
	vmem_destroy((vmem_t *)d);
	/* The same storage again; the old handle and address mean nothing. */
	CHECK(vmem_init(&st, "again", 0x1000, 0x10000, 16, 0, 0) == &st);
	CHECK_EQ(vmspace_arena_free_handle(d, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free(d, q, 16), -ENOENT);
	CHECK_EQ(vmspace_arena_check(d), 0);
	CHECK_EQ(vmspace_arena_destroy(d), 0);
	return failures;
}

/* ----------------------------------------------------------------- args */

static int stop_with(void *arg, const struct vmspace_segment *seg)
{
	(void)seg;
	return *(int *)arg;
}

int more_args(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x100000;
	vmspace_arena_t *a = vmspace_arena_create("args", B, 0x10000, 16, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x = 0;
	uint64_t buf[VMSPACE_HISTOGRAM_BINS + 8];
	/* histogram: nbins past 64 writes 64 at most; misaligned bins */
	memset(buf, 0xa5, sizeof buf);
	int n = vmspace_arena_histogram(a, buf, VMSPACE_HISTOGRAM_BINS + 8);
	CHECK(n == VMSPACE_HISTOGRAM_BINS || n == -EINVAL);
	for (int i = VMSPACE_HISTOGRAM_BINS; i < VMSPACE_HISTOGRAM_BINS + 8; i++)
		CHECK_EQ(buf[i], 0xa5a5a5a5a5a5a5a5ULL);
	CHECK_EQ(vmspace_arena_histogram(a, buf, SIZE_MAX) == VMSPACE_HISTOGRAM_BINS ||
			 vmspace_arena_histogram(a, buf, SIZE_MAX) == -EINVAL, 1);
	CHECK_EQ(vmspace_arena_histogram(a, (uint64_t *)((char *)buf + 4), 2), -EINVAL);
	CHECK_EQ(vmspace_arena_histogram(a, buf, 1), 1);
	CHECK_EQ(buf[0], 0); /* one free segment of 2^16 */
	CHECK_EQ(vmspace_arena_histogram(a, buf, 17), 17);
	CHECK_EQ(buf[16], 1);
	/* walk: NULL function, unknown kind bit, the callback's value as is */
	int v = 0;
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL | 0x10, never, &v), -EINVAL);
	CHECK_EQ(vmspace_arena_walk(a, -1, never, &v), -EINVAL);
	CHECK_EQ(v, 0);
	v = INT_MIN;
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_SPAN, stop_with, &v), INT_MIN);
	v = -EBADF;
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_FREE, stop_with, &v), -EBADF);
	v = 0;
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_UNFLUSHED, never, &v), 0);
	CHECK_EQ(v, 0); /* nothing unflushed */
	/* misaligned out-pointers */
	char raw[64] __attribute__((aligned(16)));
	CHECK_EQ(vmspace_arena_sizes(a, (struct vmspace_sizes *)(raw + 4)), -EINVAL);
	CHECK_EQ(vmspace_arena_counters(a, (struct vmspace_counters *)(raw + 4)), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 16, 0, (struct vmspace_handle *)(raw + 4)), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 16, 0, 0, 0, 0, 0, 0, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, (struct vmspace_handle){ 0, 1, 0 },
						    (vmspace_size_t *)(raw + 4)), -EINVAL);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, 0);
	/* a failing allocation leaves *addrp alone */
	x = 0xabcdef;
	CHECK_EQ(vmspace_arena_alloc(a, 0x20000, 0, &x), -ENOMEM);
	CHECK_EQ(x, 0xabcdef);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, 0, 0, B + 8, VMSPACE_EXACT, &x), -EINVAL);
	CHECK_EQ(x, 0xabcdef);
	/* alignment below the quantum means the quantum */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 8, 0, 0, B + 1, 0, 0, VMSPACE_FIRSTFIT, &x), 0);
	CHECK_EQ(x, B + 16);
	CHECK_EQ(vmspace_arena_free(a, x, 16), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 1, 0, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x % 16, 0);
	CHECK_EQ(vmspace_arena_free(a, x, 16), 0);
	/* min and max any value: [B+1, B+33) holds B+16 only */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, B + 1, B + 33, 0, 0, &x), 0);
	CHECK_EQ(x, B + 16);
	CHECK_EQ(vmspace_arena_free(a, x, 16), 0);
	int e = vmspace_arena_xalloc(a, 16, 0, 0, 0, B + 1, B + 31, 0, 0, &x);
	CHECK(e == -ERANGE || e == -ENOMEM);
	/* min above max: never */
	e = vmspace_arena_xalloc(a, 16, 0, 0, 0, B + 0x1000, B, 0, 0, &x);
	CHECK(e == -ERANGE || e == -ENOMEM);
	/* max exactly min + size, from the top of the window */
	CHECK_EQ(vmspace_arena_xalloc(a, 32, 0, 0, 0, B + 0x100, B + 0x120, 0, VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 0x100);
	/* exact inside that allocation, and overlapping its end */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, 0, 0, B + 0x110, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 32, 0, 0, 0, 0, 0, B + 0xf0, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_free(a, B + 0x100, 32), 0);
	/* exact with a window that excludes it */
	e = vmspace_arena_xalloc(a, 16, 0, 0, 0, B + 0x200, 0, B + 0x100, VMSPACE_EXACT, &x);
	CHECK(e == -ERANGE || e == -ENOMEM);
	/* exact outside every span */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, 0, 0, B + 0x10000, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 32, 0, 0, 0, 0, 0, B + 0x10000 - 16, VMSPACE_EXACT, &x),
		 -ENOMEM);
	/* nocross smaller than the quantum, phase at align */
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 8, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 16, 0, 0, 0, 0, 0, 0, VMSPACE_WAIT, (struct vmspace_handle *)raw), -EOPNOTSUPP);
	/* a default policy that is not a policy */
	CHECK(vmspace_arena_create("bad", 0, 0, 16, 0, VMSPACE_TOP) == NULL);
	CHECK(vmspace_arena_create("bad", 0, 0, 16, 0, VMSPACE_BESTFIT | VMSPACE_NEXTFIT) == NULL);
	CHECK(vmspace_arena_create("bad", 0x1000, SIZE_MAX - 0xfff + 16, 16, 0, 0) == NULL);
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.quantum = 16;
	p.base = UINTPTR_MAX - 0xff;
	p.size = 0x200;
	vmspace_arena_t *b = a;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EOVERFLOW);
	CHECK(b == NULL);
	p.base = 0x1000;
	p.size = 24; /* not a multiple of the quantum */
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.size = 0;
	p.flags = VMSPACE_EXACT;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	/* a NULL name is allowed */
	p.flags = 0;
	p.name = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), 0);
	CHECK(b != NULL && vmspace_arena_name(b) != NULL);
	/* adjacent spans stay two: contains across them is 0 */
	CHECK_EQ(vmspace_arena_add(b, 0x1000, 0x1000, 0), 0);
	CHECK_EQ(vmspace_arena_add(b, 0x2000, 0x1000, 0), 0);
	CHECK_EQ(vmspace_arena_add(b, 0x800, 0x800, 0), 0);
	CHECK_EQ(vmspace_arena_add(b, 0x1ff0, 0x20, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_sizes(b, &s), 0);
	CHECK_EQ(s.spans, 3);
	CHECK_EQ(s.total, 0x2800);
	CHECK_EQ(vmspace_arena_contains(b, 0x1000, 0x1000), 1);
	CHECK_EQ(vmspace_arena_contains(b, 0x1ff0, 0x20), 0);
	/* an allocation never straddles two spans */
	CHECK_EQ(vmspace_arena_alloc(b, 0x1800, VMSPACE_FIRSTFIT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(b, 0x20, 0, 0, 0, 0, 0, 0x1ff0, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_check(b), 0);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	/* flushed with nothing deferred: 0 freed, not a flush */
	vmspace_size_t freed = 99;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.flushes, 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
