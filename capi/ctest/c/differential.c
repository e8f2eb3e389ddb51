/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A seeded random sequence of allocations (every policy, from the top,
 * constrained, by handle), frees and bad frees, checked step by step
 * against a reference list of live ranges: results inside the span,
 * overlapping nothing live, honouring every constraint; first fit at the
 * lowest fitting gap, best fit in a smallest one; a failure for lack of
 * space only when no gap admits the request; bad frees refused with the
 * arena unchanged; sizes after every step and the walk every 100 steps
 * equal to the reference.
 */
#include "ctest.h"

#define BASE 0x7000000UL
#define SPAN 0x100000UL
#define Q 16UL
#define MAXLIVE 4096

struct live {
	vmspace_addr_t start;
	vmspace_size_t rsize, asked;
	int by_handle;
	struct vmspace_handle h;
};

struct ref {
	struct live l[MAXLIVE]; /* sorted by start */
	int n;
	vmspace_size_t allocated;
};

struct req {
	vmspace_size_t size, rsize, align, phase, nocross;
	vmspace_addr_t min, max, exact; /* max exclusive, 0: none */
	int has_exact;
};

static vmspace_size_t roundq(vmspace_size_t s)
{
	return (s + Q - 1) & ~(Q - 1);
}

static void ref_insert(struct ref *r, struct live x)
{
	int i = r->n;
	while (i > 0 && r->l[i - 1].start > x.start) {
		r->l[i] = r->l[i - 1];
		i--;
	}
	r->l[i] = x;
	r->n++;
	r->allocated += x.rsize;
}

static void ref_remove(struct ref *r, int i)
{
	r->allocated -= r->l[i].rsize;
	memmove(&r->l[i], &r->l[i + 1], (size_t)(r->n - i - 1) * sizeof r->l[0]);
	r->n--;
}

static int overlaps(const struct ref *r, vmspace_addr_t a, vmspace_size_t s)
{
	for (int i = 0; i < r->n; i++)
		if (a < r->l[i].start + r->l[i].rsize && r->l[i].start < a + s)
			return 1;
	return 0;
}

/* Gap k (0..n) of the span: [*lo, *hi). */
static void gap(const struct ref *r, int k, vmspace_addr_t *lo, vmspace_addr_t *hi)
{
	*lo = k == 0 ? BASE : r->l[k - 1].start + r->l[k - 1].rsize;
	*hi = k == r->n ? BASE + SPAN : r->l[k].start;
}

static vmspace_addr_t up_phase(vmspace_addr_t x, vmspace_size_t align, vmspace_size_t phase)
{
	vmspace_addr_t a = (x - phase + align - 1) / align * align + phase;
	return a < x ? a + align : a;
}

static int crosses(vmspace_addr_t a, vmspace_size_t s, vmspace_size_t nocross)
{
	return nocross && a / nocross != (a + s - 1) / nocross;
}

/* Whether the request fits in [lo, hi). */
static int fits(const struct req *q, vmspace_addr_t lo, vmspace_addr_t hi)
{
	if (q->min > lo)
		lo = q->min;
	if (q->max && q->max < hi)
		hi = q->max;
	if (q->has_exact) {
		vmspace_addr_t a = q->exact;
		return a >= lo && a + q->rsize <= hi;
	}
	if (hi <= lo)
		return 0;
	vmspace_addr_t a = up_phase(lo, q->align, q->phase);
	for (int tries = 0; tries < 64 && a + q->rsize <= hi; tries++) {
		if (!crosses(a, q->rsize, q->nocross))
			return 1;
		a = up_phase((a / q->nocross + 1) * q->nocross, q->align, q->phase);
	}
	return 0;
}

static int any_fit(const struct ref *r, const struct req *q)
{
	for (int k = 0; k <= r->n; k++) {
		vmspace_addr_t lo, hi;
		gap(r, k, &lo, &hi);
		if (fits(q, lo, hi))
			return 1;
	}
	return 0;
}

/* The gap that holds [a, a + s). */
static vmspace_size_t gap_size_at(const struct ref *r, vmspace_addr_t a)
{
	for (int k = 0; k <= r->n; k++) {
		vmspace_addr_t lo, hi;
		gap(r, k, &lo, &hi);
		if (lo <= a && a < hi)
			return hi - lo;
	}
	return 0;
}

static vmspace_size_t pick_size(uint64_t *s)
{
	/* log-uniform, 1 to 16 KiB */
	return 1 + ct_below(s, (uint64_t)1 << (1 + ct_below(s, 14)));
}

struct walk_cmp {
	const struct ref *r;
	int i, bad;
};

static int cmp_segment(void *arg, const struct vmspace_segment *seg)
{
	struct walk_cmp *w = arg;
	if (w->i >= w->r->n || seg->start != w->r->l[w->i].start ||
	    seg->size != w->r->l[w->i].rsize || seg->requested != w->r->l[w->i].asked ||
	    !!(seg->flags & VMSPACE_SEG_HELD) != w->r->l[w->i].by_handle)
		w->bad++;
	w->i++;
	return 0;
}

static int step_alloc(vmspace_arena_t *a, struct ref *r, uint64_t *seed)
{
	int failures = 0;
	static const int fits_[] = { 0, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT,
				     VMSPACE_NEXTFIT };
	int policy = fits_[ct_below(seed, 5)];
	int top = ct_below(seed, 4) == 0 ? VMSPACE_TOP : 0;
	struct req q = { .size = pick_size(seed), .align = Q };
	q.rsize = roundq(q.size);
	vmspace_addr_t x = 0;
	int e = vmspace_arena_alloc(a, q.size, policy | top, &x);
	if (e == -ENOMEM) {
		CHECK(!any_fit(r, &q));
		return failures;
	}
	CHECK_EQ(e, 0);
	if (e)
		return failures;
	CHECK(x >= BASE && x + q.rsize <= BASE + SPAN && x % Q == 0);
	CHECK(!overlaps(r, x, q.rsize));
	if (policy == VMSPACE_FIRSTFIT) {
		/* the lowest gap that fits, at its start; from the top: the
		 * highest, at its end */
		vmspace_addr_t want = 0;
		for (int k = 0; k <= r->n; k++) {
			vmspace_addr_t lo, hi;
			gap(r, k, &lo, &hi);
			if (hi - lo >= q.rsize) {
				want = top ? hi - q.rsize : lo;
				if (!top)
					break;
			}
		}
		CHECK_EQ(x, want);
	} else if (policy == VMSPACE_BESTFIT) {
		vmspace_size_t best = SIZE_MAX;
		for (int k = 0; k <= r->n; k++) {
			vmspace_addr_t lo, hi;
			gap(r, k, &lo, &hi);
			if (hi - lo >= q.rsize && hi - lo < best)
				best = hi - lo;
		}
		CHECK_EQ(gap_size_at(r, x), best);
	}
	ref_insert(r, (struct live){ .start = x, .rsize = q.rsize, .asked = q.size });
	return failures;
}

static int step_xalloc(vmspace_arena_t *a, struct ref *r, uint64_t *seed, int by_handle)
{
	int failures = 0;
	struct req q = { .size = pick_size(seed) };
	q.rsize = roundq(q.size);
	q.align = ct_below(seed, 2) ? Q : (vmspace_size_t)Q << ct_below(seed, 9);
	q.phase = ct_below(seed, 3) ? 0 : ct_below(seed, q.align / Q) * Q;
	if (ct_below(seed, 3) == 0) {
		vmspace_size_t nc = 1;
		while (nc < q.rsize + q.phase)
			nc <<= 1;
		q.nocross = nc << ct_below(seed, 3);
	}
	if (ct_below(seed, 3) == 0)
		q.min = BASE + ct_below(seed, SPAN / Q) * Q;
	if (ct_below(seed, 3) == 0)
		q.max = q.min + q.rsize + ct_below(seed, SPAN / 4);
	if (ct_below(seed, 6) == 0) {
		q.has_exact = 1;
		q.exact = up_phase(BASE + ct_below(seed, SPAN / Q) * Q, q.align, q.phase);
		if (q.nocross && crosses(q.exact, q.rsize, q.nocross))
			q.has_exact = 0;
		if (q.max && q.exact + q.rsize > q.max)
			q.max = 0;
		if (q.exact < q.min)
			q.min = 0;
	}
	int flags = q.has_exact ? VMSPACE_EXACT : 0;
	flags |= ct_below(seed, 2) ? VMSPACE_FIRSTFIT : VMSPACE_BESTFIT;
	vmspace_addr_t x = 0;
	struct vmspace_handle h = { 0, 0, 0 };
	int e = by_handle
			? vmspace_arena_xalloc_handle(a, q.size, q.align, q.phase, q.nocross, q.min,
						      q.max, q.exact, flags, &h)
			: vmspace_arena_xalloc(a, q.size, q.align, q.phase, q.nocross, q.min, q.max,
					       q.exact, flags, &x);
	if (by_handle)
		x = h.addr;
	/* Whether the window holds a placement at all, the arena aside. */
	int placeable = fits(&q, q.min, UINTPTR_MAX);
	if (e == -ERANGE) {
		/* "constraints that can never be met together" */
		CHECK(!placeable);
		return failures;
	}
	if (e == -ENOMEM) {
		CHECK(!any_fit(r, &q));
		CHECK(placeable); /* else -ERANGE: waiting would never end */
		return failures;
	}
	CHECK_EQ(e, 0);
	if (e) {
		fprintf(stderr, "  size %zu align %zu phase %zu nocross %zu min %#lx max %#lx exact %d %#lx\n",
			q.size, q.align, q.phase, q.nocross, (unsigned long)q.min,
			(unsigned long)q.max, q.has_exact, (unsigned long)q.exact);
		return failures;
	}
	CHECK(x >= BASE && x + q.rsize <= BASE + SPAN);
	CHECK(!overlaps(r, x, q.rsize));
	CHECK_EQ(x % q.align, q.phase);
	CHECK(!crosses(x, q.rsize, q.nocross));
	CHECK(x >= q.min);
	CHECK(!q.max || x + q.rsize <= q.max);
	CHECK(!q.has_exact || x == q.exact);
	ref_insert(r, (struct live){ .start = x, .rsize = q.rsize, .asked = q.size,
				     .by_handle = by_handle, .h = h });
	return failures;
}

static int step_free(vmspace_arena_t *a, struct ref *r, uint64_t *seed)
{
	int failures = 0;
	int i = (int)ct_below(seed, (uint64_t)r->n);
	struct live l = r->l[i];
	if (ct_below(seed, 8) == 0) {
		/* a bad free first: nothing may change */
		struct vmspace_sizes before, after;
		vmspace_arena_sizes(a, &before);
		if (l.by_handle) {
			struct vmspace_handle bad = l.h;
			bad.tag ^= 1;
			CHECK_EQ(vmspace_arena_free_handle(a, bad, NULL), -ENOENT);
			CHECK_EQ(vmspace_arena_free(a, l.start, l.asked), -ENOENT);
		} else {
			CHECK_EQ(vmspace_arena_free(a, l.start, l.asked + 1), -EMSGSIZE);
			if (l.rsize > Q)
				CHECK_EQ(vmspace_arena_free(a, l.start + Q, l.asked), -ENOENT);
		}
		vmspace_arena_sizes(a, &after);
		CHECK(memcmp(&before, &after, sizeof before) == 0);
	}
	if (l.by_handle) {
		vmspace_size_t got = 0;
		CHECK_EQ(vmspace_arena_free_handle(a, l.h, &got), 0);
		CHECK_EQ(got, l.asked);
	} else {
		CHECK_EQ(vmspace_arena_free(a, l.start, l.asked), 0);
	}
	ref_remove(r, i);
	return failures;
}

int ctest_differential(uint64_t seed, int steps)
{
	int failures = 0;
	static struct ref r; /* large: not on the stack */
	memset(&r, 0, sizeof r);
	vmspace_arena_t *a = vmspace_arena_create("diff", BASE, SPAN, Q, 0, 0);
	CHECK(a != NULL);
	uint64_t s = seed;
	for (int step = 0; step < steps && failures == 0; step++) {
		uint64_t op = ct_below(&s, 100);
		if (r.n > 0 && (op < 35 || r.n >= MAXLIVE - 1))
			failures += step_free(a, &r, &s);
		else if (op < 70)
			failures += step_alloc(a, &r, &s);
		else
			failures += step_xalloc(a, &r, &s, op >= 90);
		struct vmspace_sizes sz;
		CHECK_EQ(vmspace_arena_sizes(a, &sz), 0);
		CHECK_EQ(sz.allocated, r.allocated);
		CHECK_EQ(sz.live, r.n);
		if (step % 100 == 0) {
			CHECK_EQ(vmspace_arena_check(a), 0);
			struct walk_cmp w = { .r = &r };
			CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALLOCATED, cmp_segment, &w), 0);
			CHECK_EQ(w.bad, 0);
			CHECK_EQ(w.i, r.n);
		}
		if (failures)
			fprintf(stderr, "differential: seed %llu, step %d\n",
				(unsigned long long)seed, step);
	}
	while (r.n > 0)
		failures += step_free(a, &r, &s);
	struct vmspace_sizes sz;
	CHECK_EQ(vmspace_arena_sizes(a, &sz), 0);
	CHECK_EQ(sz.allocated, 0);
	CHECK_EQ(sz.free, SPAN);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
