/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Every native call and every flag, on good arguments. */
#include "ctest.h"

#define BASE 0x100000UL
#define SPAN 0x100000UL

struct walk_tally {
	int spans, frees, allocs, held, stop_after;
	vmspace_size_t alloc_bytes;
	vmspace_addr_t last;
	int ordered;
};

static int tally(void *arg, const struct vmspace_segment *seg)
{
	struct walk_tally *t = arg;
	if (seg->start < t->last)
		t->ordered = 0;
	t->last = seg->start;
	switch (seg->kind) {
	case VMSPACE_SEG_SPAN:
		t->spans++;
		break;
	case VMSPACE_SEG_FREE:
		t->frees++;
		break;
	case VMSPACE_SEG_ALLOCATED:
		t->allocs++;
		t->alloc_bytes += seg->size;
		if (seg->flags & VMSPACE_SEG_HELD)
			t->held++;
		break;
	}
	if (t->stop_after && t->spans + t->frees + t->allocs == t->stop_after)
		return 42;
	return 0;
}

static int policies(void)
{
	int failures = 0;
	static const int fits[] = { 0, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT,
				    VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT };
	for (unsigned i = 0; i < sizeof fits / sizeof fits[0]; i++) {
		vmspace_arena_t *a =
			vmspace_arena_create("policy", BASE, SPAN, 16, 0, fits[i]);
		CHECK(a != NULL);
		vmspace_addr_t x = 0, y = 0, z = 0;
		/* The arena's default, then each policy named per call. */
		CHECK_EQ(vmspace_arena_alloc(a, 100, 0, &x), 0);
		CHECK_EQ(vmspace_arena_alloc(a, 100, fits[i], &y), 0);
		CHECK(x >= BASE && x + 112 <= BASE + SPAN && x % 16 == 0);
		CHECK(y != x);
		/* From the top: the last 112 bytes of the span, first fit. */
		CHECK_EQ(vmspace_arena_alloc(a, 100, VMSPACE_FIRSTFIT | VMSPACE_TOP, &z), 0);
		CHECK_EQ(z, BASE + SPAN - 112);
		/* Waiting when there is space returns at once. */
		vmspace_addr_t w = 0;
		CHECK_EQ(vmspace_arena_alloc(a, 16, fits[i] | VMSPACE_WAIT, &w), 0);
		CHECK_EQ(vmspace_arena_free(a, w, 16), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 100), 0);
		CHECK_EQ(vmspace_arena_free(a, y, 100), 0);
		CHECK_EQ(vmspace_arena_free(a, z, 100), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		struct vmspace_sizes s;
		CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
		CHECK_EQ(s.allocated, 0);
		CHECK_EQ(s.free, SPAN);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* First fit is lowest address; next fit moves on past a free. */
	vmspace_arena_t *a = vmspace_arena_create("ids", 1, 1000, 1, 0, VMSPACE_NEXTFIT);
	vmspace_addr_t id[4];
	for (int i = 0; i < 4; i++)
		CHECK_EQ(vmspace_arena_alloc(a, 1, 0, &id[i]), 0);
	CHECK_EQ(id[0], 1);
	CHECK_EQ(id[3], 4);
	CHECK_EQ(vmspace_arena_free(a, id[1], 1), 0);
	vmspace_addr_t n;
	CHECK_EQ(vmspace_arena_alloc(a, 1, 0, &n), 0);
	CHECK_EQ(n, 5); /* not 2: next fit reuses late */
	CHECK_EQ(vmspace_arena_alloc(a, 1, VMSPACE_FIRSTFIT, &n), 0);
	CHECK_EQ(n, 2); /* first fit: the lowest */
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int constrained(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("x", BASE, SPAN, 16, 0, 0);
	vmspace_addr_t r;
	/* align and phase */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x30, 0x1000, 0x20, 0, 0, 0, 0, 0, &r), 0);
	CHECK_EQ(r % 0x1000, 0x20);
	CHECK_EQ(vmspace_arena_free(a, r, 0x30), 0);
	/* nocross */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x800, 0, 0x0, 0x1000, BASE + 0x900, 0, 0, 0, &r), 0);
	CHECK(r / 0x1000 == (r + 0x800 - 1) / 0x1000);
	CHECK(r >= BASE + 0x900);
	CHECK_EQ(vmspace_arena_free(a, r, 0x800), 0);
	/* window [min, max) */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, BASE + 0x5000, BASE + 0x5100, 0, 0, &r), 0);
	CHECK_EQ(r, BASE + 0x5000);
	CHECK_EQ(vmspace_arena_free(a, r, 0x100), 0);
	/* exact */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x40, 0, 0, 0, 0, 0, BASE + 0x7770, VMSPACE_EXACT, &r), 0);
	CHECK_EQ(r, BASE + 0x7770);
	/* taken now: exact again finds no space */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x40, 0, 0, 0, 0, 0, BASE + 0x7770, VMSPACE_EXACT, &r), -ENOMEM);
	CHECK_EQ(vmspace_arena_free(a, BASE + 0x7770, 0x40), 0);
	/* from the top of a window, best fit */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x10, 0, 0, 0, BASE, BASE + 0x1000, 0,
				      VMSPACE_BESTFIT | VMSPACE_TOP, &r), 0);
	CHECK_EQ(r, BASE + 0x1000 - 0x10);
	CHECK_EQ(vmspace_arena_free(a, r, 0x10), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int handles(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("h", BASE, SPAN, 16, 0, 0);
	struct vmspace_handle h, g;
	vmspace_size_t size = 0;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 40, VMSPACE_BESTFIT, &h), 0);
	CHECK(h.addr >= BASE && h.addr % 16 == 0 && h.tag != 0);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0x100, 0x100, 0, 0, 0, 0, 0, 0, &g), 0);
	CHECK_EQ(g.addr % 0x100, 0);
	/* A by-address free does not reach a held allocation. */
	CHECK_EQ(vmspace_arena_free(a, h.addr, 40), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h, &size), 0);
	CHECK_EQ(size, 40);
	CHECK_EQ(vmspace_arena_free_handle(a, g, NULL), 0);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0x20, 0, 0, 0, 0, 0, BASE + 0x40,
					     VMSPACE_EXACT, &h), 0);
	CHECK_EQ(h.addr, BASE + 0x40);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int introspection(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("intro", BASE, SPAN, 16, 0, 0);
	CHECK_EQ(vmspace_arena_add(a, 0x400000, 0x10000, 0), 0);
	CHECK(strcmp(vmspace_arena_name(a), "intro") == 0);
	CHECK_EQ(vmspace_arena_quantum(a), 16);
	vmspace_addr_t x, y;
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, VMSPACE_FIRSTFIT, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x18, VMSPACE_FIRSTFIT, &y), 0);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x20, VMSPACE_FIRSTFIT, &h), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, 0x1000 + 0x20 + 0x20);
	CHECK_EQ(s.total, SPAN + 0x10000);
	CHECK_EQ(s.free, s.total - s.allocated);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.live, 3);
	CHECK_EQ(s.spans, 2);
	CHECK(s.largest_free > 0 && s.largest_free <= s.free);
	CHECK(s.fragmentation_permille < 1000);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.allocs, 3);
	CHECK_EQ(c.frees, 0);
	uint64_t bins[VMSPACE_HISTOGRAM_BINS];
	memset(bins, 0xff, sizeof bins);
	CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
	uint64_t segs = 0;
	for (int k = 0; k < VMSPACE_HISTOGRAM_BINS; k++)
		segs += bins[k];
	CHECK_EQ(segs, 2); /* the rest of each span */
	CHECK_EQ(vmspace_arena_histogram(a, bins, 3), 3);
	CHECK_EQ(vmspace_arena_histogram(a, NULL, 0), 0);
	struct walk_tally t = { .ordered = 1 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, tally, &t), 0);
	CHECK_EQ(t.spans, 2);
	CHECK_EQ(t.allocs, 3);
	CHECK_EQ(t.held, 1);
	CHECK_EQ(t.frees, 2);
	CHECK_EQ(t.alloc_bytes, s.allocated);
	CHECK(t.ordered);
	struct walk_tally only = { .ordered = 1 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_FREE | VMSPACE_SEG_SPAN, tally, &only), 0);
	CHECK_EQ(only.allocs, 0);
	CHECK_EQ(only.spans + only.frees, 4);
	struct walk_tally stop = { .ordered = 1, .stop_after = 2 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, tally, &stop), 42);
	CHECK_EQ(vmspace_arena_contains(a, BASE, SPAN), 1);
	CHECK_EQ(vmspace_arena_contains(a, BASE, SPAN + 1), 0);
	CHECK_EQ(vmspace_arena_contains(a, 0x400000 + 0x10, 0x20), 1);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 0x1000), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 0x18), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.frees, 3);
	CHECK(c.search_steps > 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int quantum_caches(void)
{
	int failures = 0;
	/* qcache_max 100 with quantum 16: 6 classes, up to 96. */
	vmspace_arena_t *a = vmspace_arena_create("qc", BASE, 0x1000000, 16, 100, 0);
	CHECK(a != NULL);
	vmspace_addr_t x[200];
	for (int i = 0; i < 200; i++)
		CHECK_EQ(vmspace_arena_alloc(a, 16 + (i % 6) * 16, 0, &x[i]), 0);
	for (int i = 0; i < 200; i++)
		CHECK_EQ(vmspace_arena_free(a, x[i], 16 + (i % 6) * 16), 0);
	/* hits after the first misses */
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(vmspace_arena_alloc(a, 48, 0, &x[0]), 0);
		CHECK_EQ(vmspace_arena_free(a, x[0], 48), 0);
	}
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK(c.qcache_hits >= 100);
	CHECK(c.qcache_misses > 0);
	CHECK(c.qcache_slabs > 0);
	/* A size past the caches goes to the arena. */
	CHECK_EQ(vmspace_arena_alloc(a, 112, 0, &x[1]), 0);
	CHECK_EQ(vmspace_arena_free(a, x[1], 112), 0);
	CHECK(vmspace_arena_reclaim(a) >= 0);
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK(c.qcache_reclaims >= 1);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int create_ex(void)
{
	int failures = 0;
	vmspace_arena_t *a = NULL;
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "a name longer than thirty-one bytes is cut";
	p.base = 0;
	p.size = 1 << 20;
	p.quantum = 4096;
	p.qcache_max = 4 * 4096;
	p.flags = VMSPACE_BESTFIT;
	p.max_tags = 4096;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	CHECK(a != NULL);
	CHECK_EQ(strlen(vmspace_arena_name(a)), VMSPACE_NAME_MAX);
	vmspace_addr_t x;
	/* Address 0 is an address like any other. */
	CHECK_EQ(vmspace_arena_xalloc(a, 4096, 0, 0, 0, 0, 0, 0, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(x, 0);
	CHECK_EQ(vmspace_arena_free(a, 0, 4096), 0);
	/* A child importing from it. */
	vmspace_arena_t *child = NULL;
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.name = "child";
	cp.quantum = 16;
	cp.parent = a;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &child), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 100, 0, &x), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 4096);
	CHECK_EQ(vmspace_arena_free(child, x, 100), 0);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0); /* wholly free: given back */
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_version(), VMSPACE_VERSION);
	return failures;
}

struct unflushed_tally {
	int n;
	vmspace_addr_t start;
	vmspace_size_t size;
};

static int count_unflushed(void *arg, const struct vmspace_segment *seg)
{
	struct unflushed_tally *t = arg;
	if (seg->kind == VMSPACE_SEG_UNFLUSHED) {
		t->n++;
		t->start = seg->start;
		t->size += seg->size;
	}
	return 0;
}

/* Freed but not flushed: not reissued until vmspace_arena_flushed. */
static int deferred(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("d", BASE, 0x1000, 0x100, 0, 0);
	vmspace_addr_t x, y;
	vmspace_size_t freed = 1;
	CHECK_EQ(vmspace_arena_alloc(a, 0x800, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x800, 0, &y), 0);
	/* Checked like a free: wrong size, unknown address. */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x900), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x + 0x100, 0x800), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x800), 0);
	/* Not free, not live. */
	CHECK_EQ(vmspace_arena_free(a, x, 0x800), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x800), -ENOENT);
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, x, VMSPACE_EXACT, &y), -ENOMEM);
	struct unflushed_tally t = { 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_UNFLUSHED, count_unflushed, &t), 0);
	CHECK_EQ(t.n, 1);
	CHECK_EQ(t.start, x);
	CHECK_EQ(t.size, 0x800);
	struct vmspace_sizes s;
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated + s.free, 0x800);
	CHECK_EQ(s.unflushed, 0x800);
	CHECK_EQ(s.total, 0x1000);
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.deferred_frees, 1);
	CHECK_EQ(c.flushes, 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_flushed(a, (vmspace_size_t *)((char *)&freed + 1)), -EINVAL);
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0x800);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.unflushed, 0);
	CHECK_EQ(s.allocated + s.free, 0x1000);
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.flushes, 1);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, x, VMSPACE_EXACT, &y), 0);
	CHECK_EQ(y, x);
	CHECK_EQ(vmspace_arena_flushed(NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_free_deferred(NULL, x, 0x100), -EINVAL);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), 0);
	/* By handle: once; by address it is refused; it waits for the flush. */
	struct vmspace_handle h;
	vmspace_size_t size = 0;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x6f0, 0, &h), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, h.addr, 0x6f0), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &size), 0);
	CHECK_EQ(size, 0x6f0);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.unflushed, 0x700);
	CHECK_EQ(vmspace_arena_alloc(a, 0x200, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_free_handle_deferred(NULL, h, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0x700);
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.deferred_frees, 2);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_calls(void)
{
	return policies() + constrained() + handles() + introspection() +
	       quantum_caches() + create_ex() + deferred();
}
