/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Another outside reviewer (see outside_more.c): a fixed-seed random
 * sequence over three spans against a per-quantum model of the arena.
 */
#include "outside_more.h"

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

int more_model(void)
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
