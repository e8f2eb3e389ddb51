// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 4: failures inside trees change
 * nothing (tag exhaustion and injected faults after an import), unflushed
 * spans under import functions at destroy, walk flags and requested sizes.
 */
#include <kunit/test.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

static int min_tags(struct kunit *test, struct vmspace_params *p)
{
	vmspace_arena_t *a;
	int t;

	for (t = 1; t < 4096; t++) {
		p->max_tags = t;
		if (vmspace_arena_create_ex(p, &a) == 0) {
			KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
			return t;
		}
	}
	return 0;
}

/* A child out of tags: an allocation that needs an import fails with
 * -ENOSPC and the parent has nothing more allocated than before. */
static void child_out_of_tags(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("ot-parent", 0x100000, 0x100000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "ot-child", .quantum = 0x10 };
	struct vmspace_sizes ps0, ps1, cs0, cs1;
	vmspace_arena_t *c = NULL;
	vmspace_addr_t *x = kunit_kcalloc(test, 513, sizeof(*x), GFP_KERNEL);
	int t, i, n = 0, err = 0;

	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_ASSERT_NOT_NULL(test, x);
	cp.parent = p;
	t = min_tags(test, &cp);
	KUNIT_ASSERT_GT(test, t, 0);
	kunit_info(test, "smallest max_tags for a child: %d", t);
	cp.max_tags = t + 40;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &c), 0);
	/* imports of one page each, half used: fragments the child */
	for (i = 0; i < 512; i++) {
		err = vmspace_arena_alloc(c, 0x800, VMSPACE_FIRSTFIT, &x[n]);
		if (err)
			break;
		n++;
	}
	kunit_info(test, "%d allocations, then %d", n, err);
	KUNIT_EXPECT_EQ(test, err, -ENOSPC);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &ps0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(c, &cs0), 0);
	KUNIT_EXPECT_NE(test, vmspace_arena_alloc(c, 0x2000, VMSPACE_FIRSTFIT, &x[n]), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &ps1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(c, &cs1), 0);
	KUNIT_EXPECT_EQ(test, ps0.allocated, ps1.allocated);
	KUNIT_EXPECT_EQ(test, memcmp(&cs0, &cs1, sizeof(cs0)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(p), 0);
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(c, x[i], 0x800), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &ps1), 0);
	KUNIT_EXPECT_EQ(test, ps1.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}

/* The same through import functions: the import's range must come back
 * through the release function. */
struct cnt {
	vmspace_addr_t next;
	int imports, releases;
};

static int cnt_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct cnt *c = arg;

	*addrp = c->next;
	c->next += round_up(size, 0x1000) + 0x1000; /* never adjacent */
	c->imports++;
	return 0;
}

static void cnt_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct cnt *c = arg;

	c->releases++;
}

static void import_fn_failures_release(struct kunit *test)
{
	struct vmspace_params ap = { .name = "fail-imp", .quantum = 0x10 };
	struct cnt c = { .next = 0x1000000 };
	vmspace_arena_t *a;
	vmspace_addr_t *x = kunit_kcalloc(test, 513, sizeof(*x), GFP_KERNEL);
	int t, i, n = 0, err = 0, inj = 0;

	KUNIT_ASSERT_NOT_NULL(test, x);
	t = min_tags(test, &ap);
	KUNIT_ASSERT_GT(test, t, 0);
	ap.max_tags = t + 40;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&ap, &a), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(a, cnt_import, cnt_release, &c, 0x1000), 0);
	for (i = 0; i < 512; i++) {
		err = vmspace_arena_alloc(a, 0x800, VMSPACE_FIRSTFIT, &x[n]);
		if (err)
			break;
		n++;
	}
	KUNIT_EXPECT_EQ(test, err, -ENOSPC);
	kunit_info(test, "%d allocations; %d imports, %d releases", n, c.imports, c.releases);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2000, 0, &x[n]), -ENOSPC);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], 0x800), 0);
	KUNIT_EXPECT_EQ(test, c.imports, c.releases);
	/* injected faults on imports: whatever was imported goes back */
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 5, 2), 0);
	for (i = 0; i < 100; i++) {
		err = vmspace_arena_alloc(a, 0x3000, 0, &x[0]);
		if (err == -EAGAIN) {
			inj++;
			continue;
		}
		KUNIT_EXPECT_EQ(test, err, 0);
		if (!err)
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[0], 0x3000), 0);
	}
	KUNIT_EXPECT_GT(test, inj, 0);
	KUNIT_EXPECT_EQ(test, c.imports, c.releases);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 0, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, c.imports, c.releases);
}

/* mtbf 1: every allocation and add fails with -EAGAIN; frees do not. */
static void mtbf_one(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("mtbf1", 0x10000, 0x10000, 0x10, 0x40, 0);
	struct vmspace_handle h;
	struct vmspace_counters c;
	vmspace_addr_t x, y, q;
	int e;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x10, 0, &q), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 1, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &y), -EAGAIN);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, 0, 0, &y), -EAGAIN);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h), -EAGAIN);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x100000, 0x1000, 0), -EAGAIN);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x100, VMSPACE_WAIT, &y), -EAGAIN);
	e = vmspace_arena_alloc(a, 0x10, 0, &y); /* a cache hit? */
	kunit_info(test, "cache-sized allocation under mtbf 1: %d", e);
	if (!e)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x10), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, q, 0x10), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_GE(test, c.injected, 5ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_mtbf(a, 0, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* With import functions, a span holding an unflushed range stays taken at
 * destroy: its release is never called. */
static void unflushed_import_span_kept(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("ufk", 0, 0, 0x100, 0, 0);
	struct cnt c = { .next = 0x2000000 };
	vmspace_addr_t x, y;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(a, cnt_import, cnt_release, &c, 0x1000), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x1000, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x1000, 0, &y), 0);
	KUNIT_EXPECT_EQ(test, c.imports, 2);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, c.releases, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, c.releases, 1); /* y's span only */
}

struct fl {
	int n;
	struct vmspace_segment s[12];
};

static int rec(void *arg, const struct vmspace_segment *seg)
{
	struct fl *f = arg;

	if (f->n < 12)
		f->s[f->n] = *seg;
	f->n++;
	return 0;
}

/* Walk flags: imported spans, handles and slabs held; requested sizes. */
static void walk_flags(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("wf-parent", 0x100000, 0x100000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "wf-child", .quantum = 0x100, .qcache_max = 0x200 };
	struct vmspace_handle h;
	struct fl f = {};
	vmspace_arena_t *c = NULL;
	vmspace_addr_t x, q;
	int i, spans = 0, imported = 0, held = 0, plain = 0;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &c), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 0x1101, VMSPACE_FIRSTFIT, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(c, 0x250, 0, &h), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 0x100, 0, &q), 0); /* a slab */
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(c, VMSPACE_SEG_SPAN | VMSPACE_SEG_ALLOCATED, rec, &f), 0);
	KUNIT_ASSERT_LE(test, f.n, 12);
	for (i = 0; i < f.n; i++) {
		const struct vmspace_segment *s = &f.s[i];

		if (s->kind == VMSPACE_SEG_SPAN) {
			spans++;
			imported += !!(s->flags & VMSPACE_SEG_IMPORTED);
			KUNIT_EXPECT_EQ(test, s->requested, s->size);
		} else if (s->flags & VMSPACE_SEG_HELD) {
			held++;
			if (s->start == h.addr)
				KUNIT_EXPECT_EQ(test, s->requested, (vmspace_size_t)0x250);
		} else {
			plain++;
			KUNIT_EXPECT_EQ(test, s->start, x);
			KUNIT_EXPECT_EQ(test, s->size, (vmspace_size_t)0x1200);
			KUNIT_EXPECT_EQ(test, s->requested, (vmspace_size_t)0x1101);
		}
		if (i > 0)
			KUNIT_EXPECT_GE(test, s->start, f.s[i - 1].start);
	}
	KUNIT_EXPECT_EQ(test, spans, imported);
	KUNIT_EXPECT_GE(test, spans, 1);
	KUNIT_EXPECT_EQ(test, held, 2);
	KUNIT_EXPECT_EQ(test, plain, 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(c, x, 0x1101), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(c, h, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(c, q, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}



static void every_policy_imports(struct kunit *test)
{
	static const int pol[] = { 0, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT,
				   VMSPACE_TOP, VMSPACE_FIRSTFIT | VMSPACE_TOP };
	vmspace_arena_t *p = vmspace_arena_create("probe-parent", 0x100000, 0x100000, 0x1000, 0, 0);
	int i, j;

	KUNIT_ASSERT_NOT_NULL(test, p);
	for (i = 0; i < ARRAY_SIZE(pol); i++) {
		for (j = 0; j < 4; j++) {
			struct vmspace_params cp = { .name = "probe", .quantum = 0x10, .parent = j & 1 ? NULL : p,
						     .max_tags = j & 2 ? 111 : 0 };
			struct cnt cn = { .next = 0x4000000 };
			vmspace_arena_t *c = NULL;
			vmspace_addr_t x = 0;
			int e, e2;

			KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &c), 0);
			if (j & 1)
				KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(c, cnt_import, NULL, &cn, 0), 0);
			e = vmspace_arena_alloc(c, 0x800, pol[i], &x);
			e2 = vmspace_arena_xalloc(c, 0x800, 0, 0, 0, 0, 0, 0, pol[i], &x);
			KUNIT_EXPECT_EQ_MSG(test, e, 0, "%s tags %zu, flags %#x: alloc %d", j & 1 ? "import fn" : "parent", cp.max_tags, pol[i], e);
			KUNIT_EXPECT_EQ_MSG(test, e2, 0, "%s tags %zu, flags %#x: xalloc %d", j & 1 ? "import fn" : "parent", cp.max_tags, pol[i], e2);
			KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
		}
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}



/* Counters and sizes, exactly as vmspace.h defines them. */
static void counters_exact(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("cnt", 0x10000, 0x1000, 0x100, 0, 0);
	vmspace_arena_t *w = vmspace_arena_create("cnt-whole", 0, ~0UL, 1, 0, 0);
	struct vmspace_params cp = { .name = "cnt-child", .quantum = 0x100 };
	struct vmspace_counters c, pc;
	struct vmspace_handle h;
	struct vmspace_sizes s;
	uint64_t bins[VMSPACE_HISTOGRAM_BINS];
	vmspace_arena_t *ch = NULL;
	vmspace_addr_t x, y, z;
	int e;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, w);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(a, 0x100, 0x400, 0, 0, 0, 0, 0, 0, &y), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x1000, 0, &z), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x10800, 0x1000, 0), -EEXIST);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x200), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.allocs, 3ULL);
	KUNIT_EXPECT_EQ(test, c.failures, 2ULL);
	KUNIT_EXPECT_EQ(test, c.bad_frees, 1ULL);
	KUNIT_EXPECT_EQ(test, c.frees, 0ULL);
	KUNIT_EXPECT_GT(test, c.search_steps, 0ULL);
	e = vmspace_arena_alloc(a, 0x100, VMSPACE_BESTFIT | VMSPACE_NEXTFIT, &z);
	KUNIT_EXPECT_EQ(test, e, -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &pc), 0);
	kunit_info(test, "an -EINVAL allocation: failures %llu -> %llu", c.failures, pc.failures);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, y, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.frees, 3ULL);
	KUNIT_EXPECT_EQ(test, c.deferred_frees, 1ULL);
	KUNIT_EXPECT_EQ(test, c.flushes, 0ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(a, 0x11000, 0x1000, 0), 0); /* adjacent: a span of its own */
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.spans, (vmspace_size_t)2);
	KUNIT_EXPECT_EQ(test, s.total, (vmspace_size_t)0x2000);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0x100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x10f00, 0x200), 0); /* two spans */
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x11000, 0), 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x12000, 0), 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x12100, 0), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.flushes, 1ULL);
	/* a child's imports are its parent's allocations */
	cp.parent = a;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &ch), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(ch, 0x100, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(ch, 0x800, 0, &y), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(ch, &c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &pc), 0);
	KUNIT_EXPECT_GE(test, c.imports, 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(ch, &s), 0);
	KUNIT_EXPECT_EQ(test, s.imported, s.total);
	KUNIT_EXPECT_EQ(test, s.spans, (vmspace_size_t)c.imports);
	KUNIT_EXPECT_EQ(test, pc.allocs, 3ULL + c.imports);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(ch, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(ch, y, 0x800), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(ch, &c), 0);
	KUNIT_EXPECT_EQ(test, c.exports, c.imports);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(ch), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	/* the largest bin */
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(w, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
	KUNIT_EXPECT_EQ(test, bins[63], 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(w, &s), 0);
	KUNIT_EXPECT_EQ(test, s.fragmentation_permille, 0U);
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(w, 1, 0, 0, 0, 0, 0, 1UL << 63, VMSPACE_EXACT, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(w, &s), 0);
	KUNIT_EXPECT_EQ(test, s.largest_free, 1UL << 63);
	KUNIT_EXPECT_EQ(test, s.free, ~0UL - 1);
	KUNIT_EXPECT_EQ(test, s.fragmentation_permille, 500U);
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(w, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
	KUNIT_EXPECT_EQ(test, bins[62], 1ULL);
	KUNIT_EXPECT_EQ(test, bins[63], 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w, x, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(w), 0);
}


/* A handle of a destroyed arena, passed to a new arena built alike: it is
 * another arena's handle, so -ENOENT, and it must not free the new arena's
 * allocation. */
static void handle_of_a_destroyed_arena(struct kunit *test)
{
	struct vmspace_handle old, cur;
	vmspace_arena_t *a;
	int round, same_fp = 0, taken = 0;

	a = vmspace_arena_create("hd", 0x10000, 0x10000, 0x100, 0, 0);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &old), 0);
	for (round = 0; round < 400; round++) {
		struct vmspace_sizes s;
		int e;

		KUNIT_ASSERT_EQ(test, vmspace_arena_destroy(a), 0);
		a = vmspace_arena_create("hd", 0x10000, 0x10000, 0x100, 0, 0);
		KUNIT_ASSERT_NOT_NULL(test, a);
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &cur), 0);
		same_fp += cur.arena == old.arena;
		e = vmspace_arena_free_handle(a, old, NULL);
		KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
		if (e != -ENOENT) {
			taken++;
			if (taken == 1)
				KUNIT_FAIL(test, "round %d: the old arena's handle {addr %#lx tag %u arena %#x} freed the new arena's {addr %#lx tag %u arena %#x}: %d, live now %zu",
					   round, old.addr, old.tag, old.arena, cur.addr, cur.tag, cur.arena, e, s.live);
			/* the new allocation is gone: make another for the next round */
			KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &cur), 0);
		}
		old = cur;
	}
	kunit_info(test, "%d of 400 rounds had the old fingerprint; %d stale handles taken", same_fp, taken);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* A stale handle whose tag now holds an allocation by address (not held),
 * or a slab, or a free segment: -ENOENT, and nothing is freed. */
static void stale_handle_over_other_kinds(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("stale", 0x10000, 0x10000, 0x10, 0x40, VMSPACE_FIRSTFIT);
	struct vmspace_handle h[8];
	struct vmspace_sizes s0, s1;
	vmspace_addr_t x[8], q[8];
	int i, taken = 0;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < 8; i++)
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h[i]), 0);
	for (i = 0; i < 8; i++)
		KUNIT_ASSERT_EQ(test, vmspace_arena_free_handle(a, h[i], NULL), 0);
	for (i = 0; i < 8; i++) {
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x[i]), 0);
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x10, 0, &q[i]), 0);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s0), 0);
	for (i = 0; i < 8; i++) {
		int e = vmspace_arena_free_handle(a, h[i], NULL);

		if (e != -ENOENT)
			taken++;
		KUNIT_EXPECT_EQ_MSG(test, e, -ENOENT, "stale handle %d {addr %#lx tag %u}", i, h[i].addr, h[i].tag);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s1), 0);
	KUNIT_EXPECT_EQ(test, memcmp(&s0, &s1, sizeof(s0)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	if (!taken)
		for (i = 0; i < 8; i++) {
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], 0x100), 0);
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, q[i], 0x10), 0);
		}
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* Forged handles naming tags far past those in use (inside the tag budget,
 * so inside the reserved but unmapped part of the tag table): -ENOENT. */
static void forged_far_tags(struct kunit *test)
{
	static const u32 tags[] = { 100, 1000, 5000, 100000, 1048575, 1048576, 1U << 31, 0 };
	vmspace_arena_t *a = vmspace_arena_create("forged", 0x10000, 0x10000, 0x100, 0, 0);
	struct vmspace_handle h, f;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h), 0);
	for (i = 0; i < ARRAY_SIZE(tags); i++) {
		f = h;
		f.tag = tags[i];
		KUNIT_EXPECT_EQ_MSG(test, vmspace_arena_free_handle(a, f, NULL), -ENOENT, "tag %u", tags[i]);
		KUNIT_EXPECT_EQ_MSG(test, vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT, "tag %u", tags[i]);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* A stale handle whose address and tag a quantum-cache slab took over (a
 * slab is held, but is no handle allocation): -ENOENT, the slab stays. */
struct seg_at {
	vmspace_addr_t addr;
	int found, held;
	vmspace_size_t size;
};

static int find_at(void *arg, const struct vmspace_segment *seg)
{
	struct seg_at *f = arg;

	if (seg->start == f->addr && seg->kind == VMSPACE_SEG_ALLOCATED) {
		f->found = 1;
		f->held = !!(seg->flags & VMSPACE_SEG_HELD);
		f->size = seg->size;
	}
	return 0;
}

static void stale_handle_over_a_slab(struct kunit *test)
{
	vmspace_size_t cls;

	for (cls = 16; cls <= 64; cls += 16) {
		vmspace_arena_t *a = vmspace_arena_create("slab-h", 0x10000, 0x10000, 16, 64, VMSPACE_FIRSTFIT);
		struct vmspace_handle h;
		struct seg_at f = {};
		vmspace_addr_t x, y;
		int e;

		KUNIT_ASSERT_NOT_NULL(test, a);
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 64 * cls, 0, &h), 0);
		KUNIT_ASSERT_EQ(test, vmspace_arena_free_handle(a, h, NULL), 0);
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, cls, 0, &x), 0); /* a miss: a slab */
		f.addr = h.addr;
		KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_ALLOCATED, find_at, &f), 0);
		kunit_info(test, "class %zu: handle at %#lx tag %u; object at %#lx; segment at the handle's address: %d held %d size %#zx",
			   cls, h.addr, h.tag, x, f.found, f.held, f.size);
		e = vmspace_arena_free_handle(a, h, NULL);
		KUNIT_EXPECT_EQ_MSG(test, e, -ENOENT, "class %zu: a stale handle freed a slab", cls);
		KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
		if (e == 0) {
			/* the slab's space is free again: an allocation there overlaps the object */
			if (vmspace_arena_xalloc(a, 64 * cls, 0, 0, 0, 0, 0, h.addr, VMSPACE_EXACT, &y) == 0)
				KUNIT_FAIL(test, "class %zu: %#lx allocated again while object %#lx is out", cls, y, x);
		} else {
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, cls), 0);
		}
		KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	}
}

static struct kunit_case vmspace_cmod_outside4_cases[] = {
	KUNIT_CASE(stale_handle_over_a_slab),
	KUNIT_CASE(forged_far_tags),
	KUNIT_CASE(stale_handle_over_other_kinds),
	KUNIT_CASE(handle_of_a_destroyed_arena),
	KUNIT_CASE(counters_exact),
	KUNIT_CASE(every_policy_imports),
	KUNIT_CASE(child_out_of_tags),
	KUNIT_CASE(import_fn_failures_release),
	KUNIT_CASE(mtbf_one),
	KUNIT_CASE(unflushed_import_span_kept),
	KUNIT_CASE(walk_flags),
	{}
};

static struct kunit_suite vmspace_cmod_outside4_suite = {
	.name = "vmspace_cmod_outside4",
	.test_cases = vmspace_cmod_outside4_cases,
};

kunit_test_suite(vmspace_cmod_outside4_suite);
