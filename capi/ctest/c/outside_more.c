/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Written from vmspace.h, vmspace/vmem.h and the README's C sections alone
 * by a reviewer outside the project, for what the other C tests leave out:
 *
 *  - model(): a fixed-seed random sequence (alloc by every policy and from
 *    the top, exact and aligned xalloc, handles, frees, deferred frees,
 *    flushes, bad frees) over three spans, with a per-quantum model of the
 *    arena; after every step every field of vmspace_sizes and the counters
 *    it can predict, every 8 steps the whole walk, the histogram and
 *    random contains() queries, compared with the model;
 *  - huge(): spans as large as the address space allows (quantum 1, a span
 *    of SIZE_MAX units; two halves), sizes and permille without overflow;
 *  - dead(): every call on a destroyed arena (vmem_init storage) is -EBADF
 *    or the documented bad-arena value;
 *  - args(): out-pointers, masks, nbins, windows with unaligned min/max;
 *  - forged(): handles forged to name a free segment, a span, a by-address
 *    allocation;
 *  - caches(): what bypasses the quantum caches (TOP, xalloc, sizes past
 *    8 quanta, quanta over 2^22) is an ordinary allocation, freeable by
 *    address and deferred; reclaim's count against qcache_slabs;
 *  - mtbf(): with mtbf 1 every allocation and add fails -EAGAIN, frees do
 *    not;
 *  - vmem(): vmem_size masks against the native sizes, cross frees.
 *
 * It found three defects, fixed since; their checks are strict here.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctest.h"

/* ---------------------------------------------------------------- model */

#define MQ 16UL
#define NSPANS 3
static const vmspace_addr_t span_lo[NSPANS] = { 0x10000, 0x20000, 0x30000 };
static const vmspace_size_t span_sz[NSPANS] = { 0x4000, 0x2000, 0x1000 };
#define UNITS ((0x4000 + 0x2000 + 0x1000) / MQ)
#define MAXLIVE 1024

enum { C_FREE = 0, C_ALLOC = 1, C_UNFLUSHED = 2 };

struct mlive {
	vmspace_addr_t start;
	vmspace_size_t asked, rsize;
	int by_handle;
	struct vmspace_handle h;
};

struct model {
	unsigned char cell[UNITS];
	struct mlive l[MAXLIVE];
	int n;
	uint64_t allocs, frees, failures, bad_frees, deferred, flushes;
};

/* The unit index of address a, or -1 outside every span. */
static long m_unit(vmspace_addr_t a)
{
	long base = 0;
	for (int s = 0; s < NSPANS; s++) {
		if (a >= span_lo[s] && a < span_lo[s] + span_sz[s])
			return base + (long)((a - span_lo[s]) / MQ);
		base += (long)(span_sz[s] / MQ);
	}
	return -1;
}

static int m_span_of(vmspace_addr_t a)
{
	for (int s = 0; s < NSPANS; s++)
		if (a >= span_lo[s] && a < span_lo[s] + span_sz[s])
			return s;
	return -1;
}

/* Whether [a, a + size) lies in one span and is wholly C_FREE. */
static int m_free_range(const struct model *m, vmspace_addr_t a, vmspace_size_t size)
{
	int s = m_span_of(a);
	if (s < 0 || a + size > span_lo[s] + span_sz[s] || a + size < a)
		return 0;
	long u = m_unit(a);
	for (vmspace_size_t i = 0; i < size / MQ; i++)
		if (m->cell[u + (long)i] != C_FREE)
			return 0;
	return 1;
}

static void m_mark(struct model *m, vmspace_addr_t a, vmspace_size_t size, int v)
{
	long u = m_unit(a);
	for (vmspace_size_t i = 0; i < size / MQ; i++)
		m->cell[u + (long)i] = (unsigned char)v;
}

/* Maximal free runs: calls f(arg, start, size) for each, in address order. */
typedef void run_fn(void *arg, vmspace_addr_t start, vmspace_size_t size);
static void m_runs(const struct model *m, run_fn *f, void *arg)
{
	for (int s = 0; s < NSPANS; s++) {
		vmspace_addr_t a = span_lo[s], end = span_lo[s] + span_sz[s];
		while (a < end) {
			if (m->cell[m_unit(a)] != C_FREE) {
				a += MQ;
				continue;
			}
			vmspace_addr_t b = a;
			while (b < end && m->cell[m_unit(b)] == C_FREE)
				b += MQ;
			f(arg, a, b - a);
			a = b;
		}
	}
}

struct runstat {
	vmspace_size_t largest, free;
	uint64_t bins[VMSPACE_HISTOGRAM_BINS];
	vmspace_addr_t starts[UNITS];
	vmspace_size_t sizes[UNITS];
	int n;
};

static void run_collect(void *arg, vmspace_addr_t start, vmspace_size_t size)
{
	struct runstat *r = arg;
	if (size > r->largest)
		r->largest = size;
	r->free += size;
	int k = 63 - __builtin_clzll((unsigned long long)size);
	r->bins[k]++;
	r->starts[r->n] = start;
	r->sizes[r->n] = size;
	r->n++;
}

static vmspace_size_t m_count(const struct model *m, int v)
{
	vmspace_size_t n = 0;
	for (long i = 0; i < (long)UNITS; i++)
		n += m->cell[i] == v;
	return n * MQ;
}

static void m_insert(struct model *m, struct mlive x)
{
	int i = m->n;
	while (i > 0 && m->l[i - 1].start > x.start) {
		m->l[i] = m->l[i - 1];
		i--;
	}
	m->l[i] = x;
	m->n++;
	m_mark(m, x.start, x.rsize, C_ALLOC);
	m->allocs++;
}

static void m_remove(struct model *m, int i, int deferred)
{
	m_mark(m, m->l[i].start, m->l[i].rsize, deferred ? C_UNFLUSHED : C_FREE);
	memmove(&m->l[i], &m->l[i + 1], (size_t)(m->n - i - 1) * sizeof m->l[0]);
	m->n--;
	m->frees++;
	if (deferred)
		m->deferred++;
}

static vmspace_size_t rq(vmspace_size_t s)
{
	return (s + MQ - 1) & ~(MQ - 1);
}

/* Lowest a (aligned) with [a, a + size) free, or 0 if none. */
static vmspace_addr_t m_first_fit(const struct model *m, vmspace_size_t size, vmspace_size_t align)
{
	for (int s = 0; s < NSPANS; s++)
		for (vmspace_addr_t a = span_lo[s]; a + size <= span_lo[s] + span_sz[s]; a += MQ)
			if (a % align == 0 && m_free_range(m, a, size))
				return a;
	return 0;
}

struct walk_model {
	const struct model *m;
	const struct runstat *r;
	int spans, frees, allocs, bad, unfl_segs;
	vmspace_size_t unflushed;
	vmspace_addr_t last;
	int line;
};

static int walk_cmp(void *arg, const struct vmspace_segment *seg)
{
	struct walk_model *w = arg;
	int bad = 0;
	if (seg->start < w->last)
		bad = 1;
	w->last = seg->start;
	switch (seg->kind) {
	case VMSPACE_SEG_SPAN:
		if (w->spans >= NSPANS || seg->start != span_lo[w->spans] ||
		    seg->size != span_sz[w->spans] || seg->flags != 0)
			bad = 2;
		w->spans++;
		break;
	case VMSPACE_SEG_FREE:
		if (w->frees >= w->r->n || seg->start != w->r->starts[w->frees] ||
		    seg->size != w->r->sizes[w->frees] || seg->requested != seg->size)
			bad = 3;
		w->frees++;
		break;
	case VMSPACE_SEG_ALLOCATED: {
		const struct mlive *l = &w->m->l[w->allocs];
		if (w->allocs >= w->m->n || seg->start != l->start || seg->size != l->rsize ||
		    seg->requested != l->asked ||
		    !!(seg->flags & VMSPACE_SEG_HELD) != l->by_handle)
			bad = 4;
		w->allocs++;
		break;
	}
	case VMSPACE_SEG_UNFLUSHED:
		if (m_unit(seg->start) < 0 || seg->size % MQ)
			bad = 5;
		else
			for (vmspace_size_t i = 0; i < seg->size / MQ; i++)
				if (w->m->cell[m_unit(seg->start) + (long)i] != C_UNFLUSHED)
					bad = 6;
		w->unflushed += seg->size;
		w->unfl_segs++;
		break;
	default:
		bad = 7;
	}
	if (bad && !w->bad) {
		fprintf(stderr, "walk: bad %d at kind %d start %#lx size %#lx req %#lx flags %d\n",
			bad, seg->kind, (unsigned long)seg->start, (unsigned long)seg->size,
			(unsigned long)seg->requested, seg->flags);
		w->bad = bad;
	}
	return 0;
}

static int compare(vmspace_arena_t *a, const struct model *m, int full, uint64_t *seed, int step)
{
	int failures = 0;
	static struct runstat r;
	memset(&r, 0, sizeof r);
	m_runs(m, run_collect, &r);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, m_count(m, C_ALLOC));
	CHECK_EQ(s.free, m_count(m, C_FREE));
	CHECK_EQ(s.unflushed, m_count(m, C_UNFLUSHED));
	CHECK_EQ(s.total, (vmspace_size_t)UNITS * MQ);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.largest_free, r.largest);
	CHECK_EQ(s.live, m->n);
	CHECK_EQ(s.spans, NSPANS);
	CHECK_EQ(s.reserved, 0);
	if (r.free) {
		/* 1000 * (1 - largest / free), rounded either way */
		uint64_t lo = 1000 * (r.free - r.largest) / r.free;
		uint64_t hi = (1000 * (r.free - r.largest) + r.free - 1) / r.free;
		CHECK(s.fragmentation_permille >= lo && s.fragmentation_permille <= hi);
	}
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.allocs, m->allocs);
	CHECK_EQ(c.frees, m->frees);
	CHECK_EQ(c.failures, m->failures); /* was counted twice: found here */
	CHECK_EQ(c.bad_frees, m->bad_frees);
	CHECK_EQ(c.deferred_frees, m->deferred);
	CHECK_EQ(c.flushes, m->flushes);
	CHECK_EQ(c.imports, 0);
	CHECK_EQ(c.qcache_slabs, 0);
	if (full) {
		struct walk_model w = { .m = m, .r = &r };
		CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL, walk_cmp, &w), 0);
		CHECK_EQ(w.bad, 0);
		CHECK_EQ(w.spans, NSPANS);
		CHECK_EQ(w.frees, r.n);
		CHECK_EQ(w.allocs, m->n);
		CHECK_EQ(w.unflushed, m_count(m, C_UNFLUSHED));
		uint64_t bins[VMSPACE_HISTOGRAM_BINS + 4];
		memset(bins, 0xa5, sizeof bins);
		CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS),
			 VMSPACE_HISTOGRAM_BINS);
		CHECK(memcmp(bins, r.bins, sizeof r.bins) == 0);
		CHECK_EQ(bins[VMSPACE_HISTOGRAM_BINS], 0xa5a5a5a5a5a5a5a5ULL);
		/* contains: random ranges around the spans */
		for (int i = 0; i < 16; i++) {
			int sp = (int)ct_below(seed, NSPANS);
			vmspace_addr_t x = span_lo[sp] - 0x100 + ct_below(seed, span_sz[sp] + 0x200);
			vmspace_size_t len = 1 + ct_below(seed, 0x1000);
			int want = 0;
			for (int k = 0; k < NSPANS; k++)
				if (x >= span_lo[k] && x + len <= span_lo[k] + span_sz[k])
					want = 1;
			CHECK_EQ(vmspace_arena_contains(a, x, len), want);
		}
	}
	if (failures)
		fprintf(stderr, "model: mismatch at step %d\n", step);
	return failures;
}

static int model(void)
{
	int failures = 0;
	uint64_t seed = 0x0dd5eed;
	static struct model m;
	memset(&m, 0, sizeof m);
	vmspace_arena_t *a = vmspace_arena_create("model", span_lo[0], span_sz[0], MQ, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	for (int s = 1; s < NSPANS; s++)
		CHECK_EQ(vmspace_arena_add(a, span_lo[s], span_sz[s], 0), 0);
	failures += compare(a, &m, 1, &seed, -1);
	static const int pol[] = { VMSPACE_FIRSTFIT, VMSPACE_BESTFIT, VMSPACE_INSTANTFIT,
				   VMSPACE_NEXTFIT, 0 };
	for (int step = 0; step < 600 && failures == 0; step++) {
		int op = (int)ct_below(&seed, 100);
		vmspace_size_t size = 1 + ct_below(&seed, (uint64_t)1 << (1 + ct_below(&seed, 11)));
		vmspace_size_t rs = rq(size);
		vmspace_addr_t x = 0;
		if (op < 30) { /* alloc, maybe from the top, maybe by handle */
			int p = pol[ct_below(&seed, 5)];
			int top = (p == VMSPACE_FIRSTFIT) && ct_below(&seed, 3) == 0;
			int by_handle = ct_below(&seed, 4) == 0;
			struct vmspace_handle h = { 0, 0, 0 };
			int e = by_handle ? vmspace_arena_alloc_handle(a, size, p | (top ? VMSPACE_TOP : 0), &h)
					  : vmspace_arena_alloc(a, size, p | (top ? VMSPACE_TOP : 0), &x);
			if (by_handle)
				x = h.addr;
			vmspace_addr_t ff = m_first_fit(&m, rs, MQ);
			if (e == -ENOMEM) {
				m.failures++;
				if (p == VMSPACE_FIRSTFIT || p == VMSPACE_BESTFIT || p == VMSPACE_NEXTFIT)
					CHECK_EQ(ff, 0);
				continue;
			}
			CHECK_EQ(e, 0);
			if (e)
				break;
			CHECK(m_free_range(&m, x, rs));
			if (p == VMSPACE_FIRSTFIT && !top)
				CHECK_EQ(x, ff);
			if (top) {
				/* at the top of a free run: x + rs is its end */
				vmspace_addr_t end = x + rs;
				int sp = m_span_of(x);
				CHECK(end == span_lo[sp] + span_sz[sp] ||
				      m.cell[m_unit(end)] != C_FREE);
				/* first fit from the top: the highest-addressed
				 * free segment that fits (the header, since this
				 * test asked), so no free room of rs above x */
				if (p == VMSPACE_FIRSTFIT)
					for (int s2 = 0; s2 < NSPANS; s2++)
						for (vmspace_addr_t y = span_lo[s2];
						     y + rs <= span_lo[s2] + span_sz[s2]; y += MQ)
							if (y > x)
								CHECK(!m_free_range(&m, y, rs));
			}
			struct mlive l = { x, size, rs, by_handle, h };
			m_insert(&m, l);
		} else if (op < 40) { /* xalloc exactly at a random quantum */
			int sp = (int)ct_below(&seed, NSPANS);
			vmspace_addr_t at = span_lo[sp] + ct_below(&seed, span_sz[sp] / MQ) * MQ;
			int e = vmspace_arena_xalloc(a, size, 0, 0, 0, 0, 0, at, VMSPACE_EXACT, &x);
			if (m_free_range(&m, at, rs)) {
				CHECK_EQ(e, 0);
				CHECK_EQ(x, at);
				struct mlive l = { at, size, rs, 0, { 0, 0, 0 } };
				if (!e)
					m_insert(&m, l);
			} else {
				CHECK_EQ(e, -ENOMEM);
				m.failures++;
			}
		} else if (op < 46) { /* xalloc aligned, first fit */
			vmspace_size_t al = (vmspace_size_t)MQ << ct_below(&seed, 8);
			int e = vmspace_arena_xalloc(a, size, al, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x);
			vmspace_addr_t ff = m_first_fit(&m, rs, al);
			if (ff) {
				CHECK_EQ(e, 0);
				CHECK_EQ(x, ff);
				struct mlive l = { x, size, rs, 0, { 0, 0, 0 } };
				if (!e)
					m_insert(&m, l);
			} else {
				CHECK_EQ(e, -ENOMEM);
				m.failures++;
			}
		} else if (op < 80 && m.n) { /* free, plain or deferred */
			int i = (int)ct_below(&seed, (uint64_t)m.n);
			struct mlive l = m.l[i];
			int deferred = ct_below(&seed, 3) == 0;
			int e;
			vmspace_size_t got = 0;
			if (l.by_handle)
				e = deferred ? vmspace_arena_free_handle_deferred(a, l.h, &got)
					     : vmspace_arena_free_handle(a, l.h, &got);
			else
				e = deferred ? vmspace_arena_free_deferred(a, l.start, l.asked)
					     : vmspace_arena_free(a, l.start, l.asked);
			CHECK_EQ(e, 0);
			if (l.by_handle)
				CHECK_EQ(got, l.asked);
			if (!e)
				m_remove(&m, i, deferred);
			/* and again: a double free, refused */
			if (l.by_handle)
				e = vmspace_arena_free_handle(a, l.h, &got);
			else
				e = vmspace_arena_free(a, l.start, l.asked);
			CHECK_EQ(e, -ENOENT);
			m.bad_frees++;
		} else if (op < 88 && m.n) { /* bad frees of a live one */
			int i = (int)ct_below(&seed, (uint64_t)m.n);
			struct mlive l = m.l[i];
			if (l.by_handle) {
				struct vmspace_handle h = l.h;
				h.addr += MQ;
				CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
				m.bad_frees++;
				CHECK_EQ(vmspace_arena_free(a, l.start, l.asked), -ENOENT);
				m.bad_frees++;
			} else {
				/* a size in the same quantum but different */
				vmspace_size_t other = l.asked % MQ == 1 ? l.asked + 1 : l.asked - 1;
				CHECK_EQ(vmspace_arena_free(a, l.start, other), -EMSGSIZE);
				m.bad_frees++;
				CHECK_EQ(vmspace_arena_free_deferred(a, l.start, l.asked + MQ), -EMSGSIZE);
				m.bad_frees++;
				if (l.rsize > MQ) {
					CHECK_EQ(vmspace_arena_free(a, l.start + MQ, l.asked - MQ), -ENOENT);
					m.bad_frees++;
				}
			}
		} else if (op < 93) { /* flush */
			vmspace_size_t freed = 12345, want = m_count(&m, C_UNFLUSHED);
			CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
			CHECK_EQ(freed, want);
			for (long u = 0; u < (long)UNITS; u++)
				if (m.cell[u] == C_UNFLUSHED)
					m.cell[u] = C_FREE;
			if (want)
				m.flushes++;
		} else { /* a free of nothing: inside free space, outside spans */
			vmspace_addr_t where = ct_below(&seed, 2) ? span_lo[2] + span_sz[2] : 0x18000;
			CHECK_EQ(vmspace_arena_free(a, where, size), -ENOENT);
			m.bad_frees++;
		}
		failures += compare(a, &m, step % 8 == 0, &seed, step);
	}
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* Destroy with live allocations, handles and unflushed ranges: no leak. */
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ----------------------------------------------------------------- huge */

static int huge(void)
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

static int dead(void)
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

static int args(void)
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

/* --------------------------------------------------------------- forged */

static int forged(void)
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

static int caches(void)
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

static int mtbf(void)
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

static int vmem(void)
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

/* ------------------------------------------------------------- imported */

struct span_tally {
	int spans, imported;
	vmspace_size_t span_bytes, unflushed;
};

static int tally_spans(void *arg, const struct vmspace_segment *seg)
{
	struct span_tally *t = arg;
	if (seg->kind == VMSPACE_SEG_SPAN) {
		t->spans++;
		t->span_bytes += seg->size;
		if (seg->flags & VMSPACE_SEG_IMPORTED)
			t->imported++;
	} else if (seg->kind == VMSPACE_SEG_UNFLUSHED) {
		t->unflushed += seg->size;
	}
	return 0;
}

static int imported(void)
{
	int failures = 0;
	const vmspace_addr_t PB = 0x40000000;
	vmspace_arena_t *parent = vmspace_arena_create("parent", PB, 0x100000, 0x1000, 0, 0);
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "child";
	p.quantum = 16;
	p.parent = parent;
	vmspace_arena_t *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	if (!parent || !child)
		return failures + 1;
	CHECK_EQ(vmspace_arena_add(child, 0x1000, 0x1000, 0), 0); /* one added span too */
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(child, 0x1000, 0, &x), 0); /* takes the added span */
	CHECK_EQ(x, 0x1000);
	CHECK_EQ(vmspace_arena_alloc(child, 100, 0, &y), 0); /* imports */
	CHECK(y >= PB && y < PB + 0x100000);
	struct vmspace_sizes s, ps;
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.spans, 2);
	CHECK_EQ(s.imported, 0x1000);
	CHECK_EQ(s.total, 0x2000);
	CHECK_EQ(s.allocated, 0x1000 + 112);
	CHECK_EQ(s.live, 2);
	CHECK_EQ(vmspace_arena_counters(child, &c), 0);
	CHECK_EQ(c.imports, 1);
	CHECK_EQ(c.exports, 0);
	struct span_tally t = { 0, 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(child, VMSPACE_SEG_ALL, tally_spans, &t), 0);
	CHECK_EQ(t.spans, 2);
	CHECK_EQ(t.imported, 1);
	CHECK_EQ(t.span_bytes, 0x2000);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0x1000);
	CHECK_EQ(ps.live, 1);
	/* a deferred free keeps the imported span until the flush */
	CHECK_EQ(vmspace_arena_free_deferred(child, y, 100), 0);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0x1000);
	CHECK_EQ(s.unflushed, 112);
	CHECK_EQ(s.free + s.allocated + s.unflushed, s.total);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0x1000);
	/* the parent cannot go while the child lives */
	CHECK_EQ(vmspace_arena_destroy(parent), -EBUSY);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(child, &freed), 0);
	CHECK(freed == 112 || freed == 0x1000);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.spans, 1);
	CHECK_EQ(s.total, 0x1000);
	CHECK_EQ(s.unflushed, 0);
	CHECK_EQ(vmspace_arena_counters(child, &c), 0);
	CHECK_EQ(c.exports, 1);
	CHECK_EQ(c.flushes, 1);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0);
	/* a limit below what the child holds: no more imports, adds still go */
	CHECK_EQ(vmspace_arena_set_limit(child, 0x1000), 0);
	CHECK_EQ(vmspace_arena_free(child, x, 0x1000), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 0x1000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 16, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_add(child, 0x3000, 0x1000, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 16, 0, &y), 0);
	CHECK_EQ(y, 0x3000);
	CHECK_EQ(vmspace_arena_check(child), 0);
	CHECK_EQ(vmspace_arena_check(parent), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_destroy(parent), 0);
	return failures;
}

/* -------------------------------------------------------------- defects */

/* Whether an xalloc with VMSPACE_WAIT returns within half a second: run in
 * a child process, killed if it does not. The result, or 1 for a hang. */
static int wait_returns(vmspace_size_t size, vmspace_size_t align, vmspace_size_t nocross,
			vmspace_addr_t min, vmspace_addr_t max, int *result)
{
	pid_t pid = fork();
	if (pid == 0) {
		vmspace_arena_t *a = vmspace_arena_create("w", 0x100000, 0x10000, 16, 0, 0);
		vmspace_addr_t x;
		int e = vmspace_arena_xalloc(a, size, align, 0, nocross, min, max, 0,
					     VMSPACE_WAIT, &x);
		_exit(e <= 0 && e > -128 ? -e : 255);
	}
	for (int i = 0; i < 50; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			*result = WIFEXITED(st) ? -WEXITSTATUS(st) : 1;
			return 1;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

static int defects(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x100000;
	vmspace_arena_t *a = vmspace_arena_create("defects", B, 0x10000, 16, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x, y;
	/* Two free segments, [B, B+0x100) and [B+0x200, B+0x10000). */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, B + 0x100, VMSPACE_EXACT, &y), 0);
	/* 1: VMSPACE_FIRSTFIT with VMSPACE_TOP is the highest-addressed
	 * free segment that fits, at its top (asked here, and now in the
	 * header, which said only "lowest-addressed"). */
	CHECK_EQ(vmspace_arena_alloc(a, 0x10, VMSPACE_FIRSTFIT | VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 0x10000 - 0x10);
	CHECK_EQ(vmspace_arena_free(a, x, 0x10), 0);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0x10, 0, 0, 0, 0, 0, 0,
					     VMSPACE_FIRSTFIT | VMSPACE_TOP, &h), 0);
	CHECK_EQ(h.addr, B + 0x10000 - 0x10);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), 0);
	/* 2: -ERANGE "constraints that can never be met together": windows that
	 * hold no placement at all, whatever the arena holds. */
	int e1 = vmspace_arena_xalloc(a, 0x20, 0, 0, 0x100, B + 0xf0, B + 0x110, 0, 0, &x);
	int e2 = vmspace_arena_xalloc(a, 0x10, 0x1000, 0, 0, B + 0x10, B + 0x800, 0, 0, &x);
	int e3 = vmspace_arena_xalloc(a, 0x10, 0, 0, 0, B + 1, B + 31, 0, 0, &x);
	CHECK_EQ(e1, -ERANGE);
	CHECK_EQ(e2, -ERANGE);
	CHECK_EQ(e3, -ERANGE);
	/* ... and with VMSPACE_WAIT they return at once, not wait for ever */
	int r = 0;
	CHECK(wait_returns(0x10, 0x1000, 0, B + 0x10, B + 0x800, &r));
	CHECK_EQ(r, -ERANGE);
	r = 0;
	CHECK(wait_returns(0x20, 0, 0x100, B + 0xf0, B + 0x110, &r));
	CHECK_EQ(r, -ERANGE);
	/* 3: counters.failures "failed allocations and adds": one each. */
	struct vmspace_counters c0, c1;
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x20000, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.failures - c0.failures, 1);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x20000, 0, &h), -ENOMEM);
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	CHECK_EQ(c0.failures - c1.failures, 1);
	CHECK_EQ(vmspace_arena_add(a, B, 0x10, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.failures - c0.failures, 1);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_outside_more(void)
{
	int failures = 0;
	int f;
#define RUN(fn)                                                                  \
	do {                                                                     \
		f = fn();                                                        \
		if (f)                                                           \
			fprintf(stderr, "outside_more: %s: %d failed\n", #fn, f); \
		failures += f;                                                   \
	} while (0)
	RUN(model);
	RUN(huge);
	RUN(dead);
	RUN(args);
	RUN(forged);
	RUN(caches);
	RUN(mtbf);
	RUN(vmem);
	RUN(imported);
	RUN(defects);
	return failures;
}
