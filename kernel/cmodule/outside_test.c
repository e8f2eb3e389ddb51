// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite on the exported C API (<linux/vmspace.h>):
 * argument checks and exact error codes, constraints, deferred frees,
 * handles, walks and stats. Kernel-context cases (per-CPU caches, kthreads,
 * waits, trees) are in outside_test2.c.
 */
#include <kunit/test.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

#define Q 16UL

static vmspace_arena_t *mk(struct kunit *test, vmspace_addr_t base, vmspace_size_t size,
			   vmspace_size_t quantum, vmspace_size_t qmax, int flags)
{
	vmspace_arena_t *a = vmspace_arena_create("outside", base, size, quantum, qmax, flags);

	KUNIT_ASSERT_NOT_NULL(test, a);
	return a;
}

/* Every argument error the header lists, each with its exact code. */
static void args_exact_codes(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x10000, 0x10000, Q, 0, 0);
	struct vmspace_params p = { .quantum = Q };
	struct vmspace_handle h;
	vmspace_arena_t *b = NULL;
	vmspace_addr_t x = 0;
	char *raw = kunit_kzalloc(test, 64, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, raw);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, 0, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, 0, (vmspace_addr_t *)(raw + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, VMSPACE_BESTFIT | VMSPACE_FIRSTFIT, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, VMSPACE_EXACT, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, 0x100, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 3 * Q, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 64, 8, 0, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 64, 64, 0, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 64, 128, 0, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 0, 0, 48, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 0, 0, 8, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 0, 0, 0, 0, 0, 0x10008, VMSPACE_EXACT, &x), -EINVAL);
	/* an alignment below the quantum means the quantum; min/max any value */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 16, 4, 0, 0, 0x10003, 0x10031, 0, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0x10010UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 16), 0);
	/* never together: -ERANGE */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x200, 0, 0, 0x100, 0, 0, 0, 0, &x), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0x10100, 0x10100, 0, 0, &x), -ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0x10100, 0x10110, 0, 0, &x), -ERANGE);
	/* create_ex */
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(NULL, &b), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex((struct vmspace_params *)(raw + 4), &b), -EINVAL);
	p.reserved = 1;
	b = (vmspace_arena_t *)raw;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	KUNIT_EXPECT_NULL(test, b);
	p.reserved = 0;
	p.quantum = 1UL << 28;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.quantum = 0;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.quantum = Q;
	p.max_tags = 1;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.max_tags = 0;
	p.flags = VMSPACE_TOP;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.flags = 0;
	p.base = ~0UL - 0xfff; /* ends at 2^64 */
	p.size = 0x1000;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EOVERFLOW);
	p.base = 0x18;
	KUNIT_EXPECT_EQ(test, vmspace_arena_create_ex(&p, &b), -EINVAL);
	/* add */
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x20000, 0, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x20000, 0x100, 1), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x20008, 0x100, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x1ff00, 0x200, 0), -EEXIST);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, ~0UL - 0xff, 0x100, 0), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, ~0UL - 0x1ff, 0x100, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL - 0x1ff, 0x100), 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL - 0xff, 0), 1); /* at its end */
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL - 0xff, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 1UL << 63, (~0UL - 0x1ff) - (1UL << 63),
						   0, 0, 0, 0, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x, ~0UL - 0x1ff);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	/* handles */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(a, 16, VMSPACE_WAIT, &h), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc_handle(a, 16, 0, 0, 0, 0, 0, 0, VMSPACE_WAIT, &h),
			-EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(a, 16, 0, NULL), -EINVAL);
	/* walk */
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, 0, NULL, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, 0x10, NULL, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, (struct vmspace_counters *)(raw + 4)), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_import(a, NULL, NULL, NULL, 3), -EINVAL);
	KUNIT_EXPECT_NULL(test, vmspace_arena_name(NULL));
	KUNIT_EXPECT_EQ(test, vmspace_arena_quantum(NULL), (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_quantum(a), Q);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(NULL), -EINVAL);
}

/* Random xalloc constraints: every success honours them all. */
static void xalloc_constraints_random(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x100000, 0x100000, 64, 0, 0);
	static const int pol[] = { 0, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT,
				   VMSPACE_NEXTFIT, VMSPACE_FIRSTFIT | VMSPACE_TOP, VMSPACE_BESTFIT | VMSPACE_TOP };
	struct { vmspace_addr_t a; vmspace_size_t s; } live[64];
	u32 r = 12345;
	int i, n = 0, ok = 0, bad = 0;

	for (i = 0; i < 3000; i++) {
		vmspace_size_t size, align, phase, nocross;
		vmspace_addr_t min, max, x = 0;
		int err, flags;

		r = r * 1103515245 + 12345;
		if (n == 64 || (n && (r >> 28) < 6)) {
			int k = (r >> 4) % n;

			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[k].a, live[k].s), 0);
			live[k] = live[--n];
			continue;
		}
		size = 1 + (r >> 8) % 5000;
		r = r * 1103515245 + 12345;
		align = (r >> 12) & 1 ? 64UL << ((r >> 13) % 10) : 0;
		phase = align ? ((r >> 17) % (align / 64)) * 64 : 0;
		nocross = (r >> 20) & 1 ? 4096UL << ((r >> 21) % 4) : 0;
		r = r * 1103515245 + 12345;
		min = (r >> 10) & 1 ? 0x100000 + ((r >> 11) % 0x100000) : 0;
		max = (r >> 22) & 1 ? min + ((r >> 3) % 0x80000) + 1 : 0;
		flags = pol[(r >> 25) % ARRAY_SIZE(pol)];
		err = vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, 0, flags, &x);
		if (err) {
			if (err != -ENOMEM && err != -ERANGE) {
				bad++;
				kunit_info(test, "size %zu align %zu phase %zu nocross %zu min %lx max %lx flags %x: %d",
					   size, align, phase, nocross, min, max, flags, err);
			}
			continue;
		}
		ok++;
		if ((align && x % align != phase) || x % 64 ||
		    (nocross && x / nocross != (x + round_up(size, 64) - 1) / nocross) ||
		    x < min || (max && x + size > max) || x < 0x100000 || x + size > 0x200000) {
			bad++;
			kunit_info(test, "got %lx for size %zu align %zu phase %zu nocross %zu min %lx max %lx flags %x",
				   x, size, align, phase, nocross, min, max, flags);
		}
		live[n].a = x;
		live[n++].s = size;
	}
	KUNIT_EXPECT_EQ(test, bad, 0);
	KUNIT_EXPECT_GT(test, ok, 100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	while (n--)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, live[n].a, live[n].s), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* max is exclusive, EXACT, TOP bypasses the caches. */
static void xalloc_edges(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x1000, 0x1000, Q, 4 * Q, 0);
	vmspace_addr_t x, y;

	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0x1100, 0, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0x1000UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0x1100, 0, 0, &y), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x10, 0, 0, 0, 0, 0, 0x1000, VMSPACE_EXACT, &y), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x10, 0, 0, 0, 0, 0, 0x1ff0, VMSPACE_EXACT, &y), 0);
	KUNIT_EXPECT_EQ(test, y, 0x1ff0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0, 0, 0x1ff0, VMSPACE_EXACT, &y), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, 0x1ff0, 0x10), 0);
	/* a cache-sized request with TOP: at the top, not from a magazine */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x10, VMSPACE_TOP, &y), 0);
	KUNIT_EXPECT_EQ(test, y, 0x1ff0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x10), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x30, VMSPACE_FIRSTFIT | VMSPACE_TOP, &y), 0);
	KUNIT_EXPECT_EQ(test, y, 0x1fd0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x30), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

struct segs {
	int n, stop_at;
	struct vmspace_segment s[16];
};

static int record(void *arg, const struct vmspace_segment *seg)
{
	struct segs *w = arg;

	if (w->n < 16)
		w->s[w->n] = *seg;
	w->n++;
	return w->stop_at && w->n == w->stop_at ? 42 : 0;
}

/* Deferred frees, flushed, walks, sizes and counters agree. */
static void deferred_walk_sizes(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x4000, 0x1000, 0x100, 0, VMSPACE_FIRSTFIT);
	struct vmspace_counters c;
	struct vmspace_sizes s;
	struct segs w = {};
	struct vmspace_handle h;
	vmspace_size_t freed = 7, hs = 0;
	vmspace_addr_t x, y, z;

	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x101, 0, &x), 0); /* 0x200 */
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x300, 0, &y), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h), 0);
	KUNIT_EXPECT_EQ(test, x, 0x4000UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 0x100), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 0x101), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 0x101), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle_deferred(a, h, &hs), 0);
	KUNIT_EXPECT_EQ(test, hs, (vmspace_size_t)0x100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0x300);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0x300);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0xa00);
	KUNIT_EXPECT_EQ(test, s.total, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, s.live, (vmspace_size_t)1);
	KUNIT_EXPECT_EQ(test, s.spans, (vmspace_size_t)1);
	KUNIT_EXPECT_EQ(test, s.largest_free, (vmspace_size_t)0xa00);
	KUNIT_EXPECT_EQ(test, s.fragmentation_permille, 0U);
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_ALL, record, &w), 0);
	KUNIT_ASSERT_EQ(test, w.n, 5);
	KUNIT_EXPECT_EQ(test, w.s[0].kind, VMSPACE_SEG_SPAN);
	KUNIT_EXPECT_EQ(test, w.s[1].kind, VMSPACE_SEG_UNFLUSHED);
	KUNIT_EXPECT_EQ(test, w.s[1].size, (vmspace_size_t)0x200);
	KUNIT_EXPECT_EQ(test, w.s[2].kind, VMSPACE_SEG_ALLOCATED);
	KUNIT_EXPECT_EQ(test, w.s[2].start, y);
	KUNIT_EXPECT_EQ(test, w.s[3].kind, VMSPACE_SEG_UNFLUSHED);
	KUNIT_EXPECT_EQ(test, w.s[3].start, h.addr);
	KUNIT_EXPECT_EQ(test, w.s[4].kind, VMSPACE_SEG_FREE);
	w.n = 0;
	w.stop_at = 2;
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_UNFLUSHED | VMSPACE_SEG_FREE, record, &w), 42);
	KUNIT_EXPECT_EQ(test, w.n, 2);
	KUNIT_EXPECT_EQ(test, w.s[0].kind, VMSPACE_SEG_UNFLUSHED);
	/* nothing reuses unflushed space: exactly there, nothing */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, 0x4000, VMSPACE_EXACT, &z), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0x4200, 0, 0, &z), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)0x300);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.deferred_frees, 2ULL);
	KUNIT_EXPECT_EQ(test, c.flushes, 1ULL);
	KUNIT_EXPECT_EQ(test, c.frees, 2ULL);
	KUNIT_EXPECT_EQ(test, c.bad_frees, 2ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, 0x4000, VMSPACE_EXACT, &z), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, z, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x300), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, s.live, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Handles: foreign, stale, forged; and free by address refuses them. */
static void handles_checked(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x10000, 0x10000, 0x100, 0, 0);
	vmspace_arena_t *b = mk(test, 0x10000, 0x10000, 0x100, 0, 0);
	struct vmspace_handle h, g, f;
	vmspace_size_t s = 0;

	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc_handle(a, 0x250, 0x1000, 0x100, 0, 0, 0, 0, 0, &h), 0);
	KUNIT_EXPECT_EQ(test, h.addr % 0x1000, 0x100UL);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(b, 0x100, 0, &g), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(b, h, NULL), -ENOENT);
	f = h;
	f.addr += 0x100;
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h;
	f.tag ^= 1;
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h;
	f.tag = 0xffffffff;
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, h.addr, 0x250), -ENOENT); /* not hashed */
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, &s), 0);
	KUNIT_EXPECT_EQ(test, s, (vmspace_size_t)0x250);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, &s), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle_deferred(a, h, &s), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(b, g, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(b), 0);
}

/* A tiny tag budget: -ENOSPC, nothing changed, and it recovers. */
static void tags_run_out(struct kunit *test)
{
	struct vmspace_params p = { .name = "tags", .base = 0, .size = 1 << 20, .quantum = 1,
				    .max_tags = 1024 };
	vmspace_arena_t *a = NULL;
	struct vmspace_sizes before, after;
	vmspace_addr_t x;
	int i, err = 0, n = 0;

	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&p, &a), 0);
	for (i = 0; i < 100000; i++) {
		err = vmspace_arena_xalloc(a, 1, 2, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x);
		if (err)
			break;
		n++;
	}
	KUNIT_EXPECT_EQ(test, err, -ENOSPC);
	KUNIT_EXPECT_GT(test, n, 100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &before), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 1, 2, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x), -ENOSPC);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &after), 0);
	KUNIT_EXPECT_EQ(test, memcmp(&before, &after, sizeof(before)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, 2 * i, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &after), 0);
	KUNIT_EXPECT_EQ(test, after.free, (vmspace_size_t)(1 << 20));
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Injected faults: -EAGAIN, counted, changing nothing. */
static void mtbf_faults(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x1000, 0x100000, Q, 0, 0);
	struct vmspace_counters c;
	vmspace_addr_t x[200];
	int i, inj = 0, okn = 0;

	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 99, 3), 0);
	for (i = 0; i < 200; i++) {
		int err = vmspace_arena_alloc(a, 0x40, 0, &x[okn]);

		if (err == -EAGAIN)
			inj++;
		else if (!err)
			okn++;
		else
			KUNIT_FAIL(test, "alloc %d: %d", i, err);
	}
	KUNIT_EXPECT_GT(test, inj, 20);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.injected, (uint64_t)inj);
	KUNIT_EXPECT_EQ(test, c.allocs, (uint64_t)okn);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 0, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	for (i = 0; i < okn; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], 0x40), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* After destroy: -EBADF from every call (memory not reused yet). */
static void use_after_destroy(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x1000, 0x1000, Q, 0, 0);
	struct vmspace_sizes s;
	vmspace_addr_t x;

	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, 0, &x), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x1000, 0), -EBADF);
	KUNIT_EXPECT_NULL(test, vmspace_arena_name(a));
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc((vmspace_arena_t *)((char *)a + 1), 16, 0, &x), -EBADF);
}


/* qcache_max: at most 8 quanta; none for quanta over 2^22. Cache objects
 * are refused by free_deferred, others are not. Histogram and fragmentation. */
static int hist_count(void *arg, const struct vmspace_segment *seg)
{
	(*(int *)arg)++;
	return 0;
}

static void caches_bounds_and_histogram(struct kunit *test)
{
	vmspace_arena_t *a = mk(test, 0x100000, 0x100000, Q, 1000, 0);
	vmspace_arena_t *b = mk(test, 1UL << 32, 1UL << 28, 1UL << 23, 1UL << 23, 0);
	uint64_t bins[VMSPACE_HISTOGRAM_BINS + 4];
	struct vmspace_sizes s;
	vmspace_addr_t x, y, z, g1, g2;
	int i, nseg = 0;

	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 128, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 129, 0, &y), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 128), -ENOENT); /* a slab's */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, y, 129), 0);      /* 8 quanta at most */
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 128), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(b, 1UL << 23, 0, &z), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(b, z, 1UL << 23), 0); /* no caches */
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(b, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(b), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);

	/* free segments of 0x1000 and 0x3000 (and 0xb000 at the end) */
	a = mk(test, 0x10000, 0x10000, 0x1000, 0, VMSPACE_FIRSTFIT);
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(a, 0x1000, 0, 0, 0, 0, 0, 0x11000, VMSPACE_EXACT, &g1), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(a, 0x1000, 0, 0, 0, 0, 0, 0x15000, VMSPACE_EXACT, &g2), 0);
	memset(bins, 0xff, sizeof(bins));
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, bins, 13), 13);
	KUNIT_EXPECT_EQ(test, bins[12], 1ULL);
	KUNIT_EXPECT_EQ(test, bins[11], 0ULL);
	KUNIT_EXPECT_EQ(test, bins[13], ~0ULL); /* not written */
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
	KUNIT_EXPECT_EQ(test, bins[12], 1ULL);
	KUNIT_EXPECT_EQ(test, bins[13], 1ULL);
	KUNIT_EXPECT_EQ(test, bins[15], 1ULL);
	for (i = 0; i < 12; i++)
		KUNIT_EXPECT_EQ(test, bins[i], 0ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, bins, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, NULL, 4), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0xe000);
	KUNIT_EXPECT_EQ(test, s.largest_free, (vmspace_size_t)0xa000);
	KUNIT_EXPECT_GE(test, s.fragmentation_permille, 285U);
	KUNIT_EXPECT_LE(test, s.fragmentation_permille, 286U);
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_FREE, hist_count, &nseg), 0);
	KUNIT_EXPECT_EQ(test, nseg, 3);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, g1, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, g2, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.largest_free, (vmspace_size_t)0x10000);
	KUNIT_EXPECT_EQ(test, s.fragmentation_permille, 0U);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static struct kunit_case vmspace_cmod_outside_cases[] = {
	KUNIT_CASE(caches_bounds_and_histogram),
	KUNIT_CASE(args_exact_codes),
	KUNIT_CASE(xalloc_constraints_random),
	KUNIT_CASE(xalloc_edges),
	KUNIT_CASE(deferred_walk_sizes),
	KUNIT_CASE(handles_checked),
	KUNIT_CASE(tags_run_out),
	KUNIT_CASE(mtbf_faults),
	KUNIT_CASE(use_after_destroy),
	{}
};

static struct kunit_suite vmspace_cmod_outside_suite = {
	.name = "vmspace_cmod_outside",
	.test_cases = vmspace_cmod_outside_cases,
};

kunit_test_suite(vmspace_cmod_outside_suite);
