/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): trees of arenas, import
 * functions, tag exhaustion and bad imports.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Trees: a child importing from its parent.                                */

int ctest_r28_tree(void)
{
	int failures = 0, err;
	vmspace_arena_t *p = mk(64, 0);
	vmspace_addr_t x, y;
	CHECK(p != NULL);
	vmspace_arena_t *c = child_of(p, Q, &err);
	CHECK_EQ(err, 0);
	CHECK(c != NULL);
	/* the parent with a child: destroy -EBUSY, nothing changes */
	CHECK_EQ(vmspace_arena_destroy(p), -EBUSY);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* set_import on a child: -EBUSY */
	CHECK_EQ(vmspace_arena_set_import(c, NULL, NULL, NULL, 0), -EBUSY);
	/* an allocation in the child imports: the parent sees an allocation */
	CHECK_EQ(vmspace_arena_alloc(c, 2 * Q, 0, &x), 0);
	CHECK(x >= B && x + 2 * Q <= B + 64 * Q);
	struct vmspace_sizes ps = sizes_of(p), cs = sizes_of(c);
	CHECK_EQ(ps.allocated, cs.imported);
	CHECK(cs.imported >= 2 * Q);
	CHECK_EQ(cs.allocated, 2 * Q);
	CHECK_EQ(cs.total, cs.imported);
	CHECK_EQ(counters_of(c).imports, 1);
	struct segs g = walk_of(c, VMSPACE_SEG_SPAN);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].flags & VMSPACE_SEG_IMPORTED);
	/* the parent's walk shows the import as an allocation at x */
	g = walk_of(p, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].start <= x && x < g.s[0].start + g.s[0].size);
	/* set_import now: -EBUSY (imported spans) */
	CHECK_EQ(vmspace_arena_set_import(c, NULL, NULL, NULL, 0), -EBUSY);
	/* a free in the child gives the span back */
	CHECK_EQ(vmspace_arena_free(c, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(c).total, 0);
	CHECK_EQ(counters_of(c).exports, 1);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* a limit on the child */
	CHECK_EQ(vmspace_arena_set_limit(c, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 4 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(c, Q, 0, &y), -ENOMEM);
	CHECK_EQ(sizes_of(p).allocated, 4 * Q);
	CHECK_EQ(vmspace_arena_set_limit(c, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(c, Q, 0, &y), 0);
	/* a grandchild imports through the child */
	vmspace_arena_t *gc = child_of(c, Q, &err);
	CHECK_EQ(err, 0);
	vmspace_addr_t z;
	CHECK_EQ(vmspace_arena_alloc(gc, 3 * Q, 0, &z), 0);
	CHECK_EQ(sizes_of(p).allocated, 8 * Q);
	CHECK_EQ(vmspace_arena_destroy(c), -EBUSY);
	/* destroy order: grandchild, child (live allocations go), parent */
	CHECK_EQ(vmspace_arena_destroy(gc), 0);
	CHECK_EQ(sizes_of(p).allocated, 5 * Q);
	CHECK_EQ(vmspace_arena_destroy(p), -EBUSY);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(p).live, 0);
	CHECK_EQ(vmspace_arena_check(p), 0);

	/* a child with a smaller quantum than its parent imports in the
	 * parent's quantum */
	vmspace_arena_t *p2 = vmspace_arena_create("r28-p2", B, 64 * Q, 4 * Q, 0, 0);
	vmspace_arena_t *c2 = child_of(p2, Q, &err);
	CHECK_EQ(err, 0);
	CHECK_EQ(vmspace_arena_alloc(c2, Q, 0, &x), 0);
	CHECK_EQ(sizes_of(c2).imported % (4 * Q), 0);
	CHECK_EQ(sizes_of(p2).allocated, sizes_of(c2).imported);
	CHECK_EQ(vmspace_arena_alloc(c2, Q, 0, &y), 0);
	CHECK_EQ(counters_of(c2).imports, 1); /* the rest of the import */
	/* an aligned xalloc in the child, above the import quantum */
	vmspace_addr_t w;
	CHECK_EQ(vmspace_arena_xalloc(c2, Q, 16 * Q, 0, 0, 0, 0, 0, 0, &w), 0);
	CHECK_EQ(w % (16 * Q), 0);
	/* a window: no import */
	CHECK_EQ(vmspace_arena_xalloc(c2, Q, 0, 0, 0, B, B + 64 * Q, 0, 0, &w), 0);
	/* (w came from what the child holds) */
	CHECK_EQ(vmspace_arena_check(c2), 0);
	/* the child destroyed holding a range freed deferred: the parent takes
	 * it back unflushed, counts a deferred free, a flush frees it */
	CHECK_EQ(vmspace_arena_destroy(c2), 0);
	CHECK_EQ(sizes_of(p2).allocated, 0);
	vmspace_arena_t *c3 = child_of(p2, Q, &err);
	CHECK_EQ(vmspace_arena_alloc(c3, 4 * Q, 0, &x), 0);
	struct vmspace_counters pc = counters_of(p2);
	CHECK_EQ(vmspace_arena_free_deferred(c3, x, 4 * Q), 0);
	CHECK_EQ(sizes_of(p2).allocated, 4 * Q);
	CHECK_EQ(vmspace_arena_destroy(c3), 0);
	struct vmspace_sizes s2 = sizes_of(p2);
	CHECK_EQ(s2.unflushed, 4 * Q);
	CHECK_EQ(s2.allocated, 0);
	struct vmspace_counters pc2 = counters_of(p2);
	CHECK_EQ(pc2.deferred_frees, pc.deferred_frees + 1);
	CHECK_EQ(pc2.frees, pc.frees + 1);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(p2, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(sizes_of(p2).free, 64 * Q);
	/* flushed in a child gives a wholly free imported span back */
	vmspace_arena_t *c4 = child_of(p2, Q, &err);
	CHECK_EQ(vmspace_arena_alloc(c4, 4 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(c4, x, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_flushed(c4, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(sizes_of(p2).allocated, 0);
	CHECK_EQ(sizes_of(c4).total, 0);
	CHECK_EQ(vmspace_arena_destroy(c4), 0);
	CHECK_EQ(vmspace_arena_destroy(p2), 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Import functions.                                                        */

int ctest_r28_import(void)
{
	int failures = 0;
	struct src s = { .next = 0x40000000 };
	vmspace_arena_t *a = vmspace_arena_create("r28-imp", 0, 0, Q, 0, 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_set_import(a, r28_src_import, r28_src_release, &s, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(s.calls, 1);
	CHECK_EQ(s.last_flags, 0); /* "flags is 0" */
	CHECK_EQ(s.last_size % (4 * Q), 0);
	CHECK_EQ(sizes_of(a).imported, s.last_size);
	/* set_import again while holding imported spans: -EBUSY */
	CHECK_EQ(vmspace_arena_set_import(a, r28_src_import, r28_src_release, &s, 4 * Q), -EBUSY);
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	/* an alignment above the import quantum: asked for size + align - q */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q, 64 * Q, 0, 0, 0, 0, 0, 0, &y), 0);
	CHECK_EQ(y % (64 * Q), 0);
	CHECK_EQ(s.last_size, 4 * Q + 64 * Q - 4 * Q);
	/* a window does not import */
	int calls = s.calls;
	CHECK_EQ(vmspace_arena_xalloc(a, 64 * Q, 0, 0, 0, 1, 0, 0, 0, &y), -ENOMEM);
	CHECK_EQ(s.calls, calls);
	/* the limit */
	CHECK_EQ(vmspace_arena_set_limit(a, sizes_of(a).total + 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 128 * Q, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);
	/* a misaligned import: given back, -ENOMEM */
	s.misalign = 1;
	int rel = s.releases;
	CHECK_EQ(vmspace_arena_alloc(a, 128 * Q, 0, &y), -ENOMEM);
	CHECK_EQ(s.releases, rel + 1);
	s.misalign = 0;
	CHECK_EQ(vmspace_arena_check(a), 0);
	rel = s.releases;
	struct vmspace_sizes sz = sizes_of(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ((vmspace_size_t)(s.releases - rel), sz.spans);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Tag exhaustion (max_tags) and bad imports: a failing call changes       */
/* nothing, in a child or with import functions.                           */

static int min_tags(void)
{
	for (int t = 1; t < 4096; t++) {
		struct vmspace_params p;
		memset(&p, 0, sizeof p);
		p.quantum = Q;
		p.max_tags = (vmspace_size_t)t;
		vmspace_arena_t *a = NULL;
		if (vmspace_arena_create_ex(&p, &a) == 0) {
			vmspace_arena_destroy(a);
			return t;
		}
	}
	return -1;
}

static int bad_next_kind; /* 0 fine, 1 wraps, 2 overlaps */
static int bad_imports, bad_releases;
static vmspace_addr_t bad_next = 0x40000000;
static int bad_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	(void)arg;
	(void)flags;
	bad_imports++;
	if (bad_next_kind == 1) {
		*addrp = AMAX - size + 1;
	} else if (bad_next_kind == 2) {
		*addrp = B; /* the arena's own span */
	} else {
		*addrp = bad_next;
		bad_next += size + 16 * Q;
	}
	return 0;
}
static void bad_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	(void)arg;
	(void)addr;
	(void)size;
	bad_releases++;
}

int ctest_r28_tags(void)
{
	int failures = 0;
	int t0 = min_tags();
	CHECK(t0 > 0);
	/* below the minimum: -EINVAL */
	{
		struct vmspace_params p;
		memset(&p, 0, sizeof p);
		p.quantum = Q;
		p.max_tags = (vmspace_size_t)t0 - 1;
		vmspace_arena_t *a = (vmspace_arena_t *)1;
		if (t0 > 1)
			CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	}
	/* a child with few tags: imports until -ENOSPC; the parent holds no
	 * more than the child imported */
	vmspace_arena_t *p = mk(4096, 0);
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.quantum = Q;
	cp.parent = p;
	cp.max_tags = (vmspace_size_t)t0 + 8;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &c), 0);
	int r = 0, n = 0;
	vmspace_addr_t x;
	for (n = 0; n < 1000; n++) {
		r = vmspace_arena_xalloc(c, Q, 4 * Q, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x);
		if (r != 0)
			break;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
	CHECK_EQ(vmspace_arena_check(c), 0);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* and with import functions: an import that cannot be entered goes
	 * back through the release function */
	struct vmspace_params ip;
	memset(&ip, 0, sizeof ip);
	ip.quantum = Q;
	ip.max_tags = (vmspace_size_t)t0 + 8;
	vmspace_arena_t *ia = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&ip, &ia), 0);
	CHECK_EQ(vmspace_arena_set_import(ia, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	for (n = 0; n < 1000; n++) {
		r = vmspace_arena_xalloc(ia, Q, 4 * Q, 0, 0, 0, 0, 0, 0, &x);
		if (r != 0)
			break;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK_EQ((vmspace_size_t)(bad_imports - bad_releases), sizes_of(ia).spans);
	CHECK_EQ(vmspace_arena_check(ia), 0);
	/* frees still work after -ENOSPC */
	CHECK_EQ(vmspace_arena_destroy(ia), 0);
	CHECK_EQ(bad_imports, bad_releases);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);

	/* -EPROTO: a range that wraps is given back; one overlapping the
	 * arena's span is only forgotten */
	vmspace_arena_t *a = mk(4, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	bad_next_kind = 1;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), -EPROTO);
	CHECK_EQ(bad_imports, 1);
	CHECK_EQ(bad_releases, 1);
	bad_next_kind = 2;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), -EPROTO);
	CHECK_EQ(bad_imports, 2);
	CHECK_EQ(bad_releases, 1);
	CHECK_EQ(sizes_of(a).imported, 0);
	CHECK_EQ(sizes_of(a).total, 4 * Q);
	/* set_import is allowed again: no imported spans held */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), 0);
	bad_next_kind = 0;
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a NULL release keeps imported spans for the arena's life */
	a = vmspace_arena_create("r28-keep", 0, 0, Q, 0, 0);
	bad_imports = bad_releases = 0;
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, NULL, NULL, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(a).imported, 2 * Q);
	CHECK_EQ(counters_of(a).exports, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, NULL, NULL, 0), -EBUSY);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(bad_imports, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* with import functions, a deferred free never flushed stays taken */
	a = vmspace_arena_create("r28-stay", 0, 0, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	vmspace_addr_t x2;
	CHECK_EQ(vmspace_arena_alloc(a, 64 * Q, 0, &x2), 0);
	CHECK_EQ(bad_imports, 2);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(bad_releases, 1);
	return failures;
}

/* A child's own spans (params.size, vmspace_arena_add) are not imports:
 * never given to the parent, not counted there. */
int ctest_r28_child_own_spans(void)
{
	int failures = 0;
	vmspace_arena_t *p = mk(64, 0);
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.quantum = Q;
	cp.parent = p;
	cp.base = 0x40000000;
	cp.size = 8 * Q;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &c), 0);
	CHECK_EQ(vmspace_arena_add(c, 0x50000000, 8 * Q, 0), 0);
	struct vmspace_counters pc0 = counters_of(p);
	vmspace_addr_t x, y, z;
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &y), 0);
	CHECK_EQ(sizes_of(p).allocated, 0); /* no import yet */
	CHECK_EQ(vmspace_arena_alloc(c, 2 * Q, 0, &z), 0); /* imports */
	CHECK_EQ(sizes_of(p).allocated, 2 * Q);
	CHECK_EQ(sizes_of(c).imported, 2 * Q);
	CHECK_EQ(sizes_of(c).total, 18 * Q);
	CHECK_EQ(vmspace_arena_free(c, x, 8 * Q), 0);
	CHECK_EQ(vmspace_arena_free(c, y, 8 * Q), 0);
	CHECK_EQ(sizes_of(c).total, 18 * Q); /* own spans stay */
	CHECK_EQ(vmspace_arena_free_deferred(c, z, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	struct vmspace_counters pc1 = counters_of(p);
	CHECK_EQ(pc1.bad_frees, pc0.bad_frees);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(p).unflushed, 2 * Q);
	CHECK_EQ(sizes_of(p).total, 64 * Q);
	CHECK_EQ(vmspace_arena_check(p), 0);
	CHECK_EQ(vmspace_arena_flushed(p, NULL), 0);
	CHECK_EQ(sizes_of(p).free, 64 * Q);
	/* vmem_xfree of a cache-served vmem_alloc: allowed */
	vmem_t *vm = vmem_create("r28-xf", B, 1024 * Q, Q, 4 * Q, 0);
	vmem_set_error_hook(vm, r28_hook, NULL);
	r28_hook_calls = 0;
	CHECK_EQ(vmem_alloc(vm, 3 * Q - 1, M_NOWAIT, &x), 0);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).qcache_slabs, 1);
	vmem_xfree(vm, x, 3 * Q);
	CHECK_EQ(r28_hook_calls, 0);
	vmem_xfree(vm, x, 3 * Q);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(r28_hook_err, ENOENT);
	vmem_destroy(vm);
	CHECK_EQ(vmspace_arena_destroy(p), 0);
	return failures;
}

/* Random valid constraints in an empty child (all through imports, from a
 * parent or from import functions): each met, or -ERANGE exactly when no
 * address could meet it. */
static int possible(vmspace_size_t size, vmspace_size_t align, vmspace_size_t phase, vmspace_size_t nocross)
{
	if (!nocross)
		return 1;
	if (size > nocross)
		return 0;
	if (align >= nocross)
		return (phase % nocross) + size <= nocross;
	return phase + size <= nocross;
}

int ctest_r28_child_constraints(void)
{
	int failures = 0;
	uint64_t rng = 28;
	for (int mode = 0; mode < 2; mode++) {
		vmspace_arena_t *p = vmspace_arena_create("r28-cp", 0x10000000, 1 << 30, Q, 0, 0);
		vmspace_arena_t *c;
		static struct src s;
		memset(&s, 0, sizeof s);
		s.next = 0x80000000;
		if (mode == 0) {
			int err;
			c = child_of(p, Q, &err);
		} else {
			c = vmspace_arena_create("r28-cf", 0, 0, Q, 0, 0);
			CHECK_EQ(vmspace_arena_set_import(c, r28_src_import, r28_src_release, &s, 0), 0);
		}
		for (int i = 0; i < 3000; i++) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 8)) * Q;
			vmspace_size_t align = ct_below(&rng, 3) ? (Q << ct_below(&rng, 7)) : 0;
			vmspace_size_t ea = align ? align : Q;
			vmspace_size_t phase = (vmspace_size_t)ct_below(&rng, ea / Q) * Q;
			vmspace_size_t nocross = ct_below(&rng, 2) ? (Q << ct_below(&rng, 8)) : 0;
			int flags = (int)(ct_below(&rng, 3) == 0 ? VMSPACE_TOP : 0);
			vmspace_addr_t x;
			int r = vmspace_arena_xalloc(c, size, align, phase, nocross, 0, 0, 0, flags, &x);
			int ok = possible(size, ea, phase, nocross);
			if (r == 0) {
				CHECK(ok);
				CHECK_EQ(x % ea, phase);
				if (nocross)
					CHECK_EQ(x / nocross, (x + size - 1) / nocross);
				CHECK_EQ(vmspace_arena_free(c, x, size), 0);
			} else {
				CHECK_EQ(r, -ERANGE);
				CHECK(!ok);
				if (ok)
					fprintf(stderr, "r28: size %#lx align %#lx phase %#lx nocross %#lx: %d\n",
						(unsigned long)size, (unsigned long)align, (unsigned long)phase,
						(unsigned long)nocross, r);
			}
			if (failures > 5)
				break;
		}
		CHECK_EQ(sizes_of(c).allocated, 0);
		if (mode == 0)
			CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
		CHECK_EQ(vmspace_arena_check(c), 0);
		CHECK_EQ(vmspace_arena_destroy(c), 0);
		CHECK_EQ(sizes_of(p).allocated, 0);
		CHECK_EQ(vmspace_arena_destroy(p), 0);
	}
	return failures;
}
