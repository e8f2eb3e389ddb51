/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): import
 * functions that misbehave, destroy's releases, vmem_set_reclaim.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ callbacks */

static vmem_t *reclaim_vm;
static vmem_addr_t reclaim_addr;
static int reclaim_calls;

static void reclaim_fn(vmem_t *vm, int fl)
{
	(void)fl;
	reclaim_calls++;
	if (vm == reclaim_vm && reclaim_addr) {
		vmem_free(vm, reclaim_addr, 0x800);
		reclaim_addr = 0;
	}
}

int adv_callbacks(void)
{
	int failures = 0;
	struct importer im;
	vmspace_addr_t x;
	const vmspace_size_t IQ = 0x1000;

	/* failing import: -ENOMEM, nothing changed */
	vmspace_arena_t *a = vmspace_arena_create("cb", 0, 0, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	memset(&im, 0, sizeof(im));
	im.next = 0x40000000;
	CHECK_EQ(vmspace_arena_set_import(a, adv_imp, adv_rel, &im, IQ), 0);
	struct snap s0;
	adv_take(a, &s0);
	im.mode = IMP_FAIL;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), -ENOMEM);
	CHECK(im.imports == 0);
	UNCHANGED(a, s0);
	/* misaligned: given back, -ENOMEM (the import's own doc) */
	im.mode = IMP_MISALIGN;
	int e = vmspace_arena_alloc(a, Q, 0, &x);
	CHECK_EQ(e, -ENOMEM);
	CHECK_EQ(im.imports, 1);
	CHECK_EQ(im.releases, 1);
	CHECK_EQ(im.bad_release, 0);
	UNCHANGED(a, s0);
	/* wrapping: -EPROTO, given back */
	im.mode = IMP_WRAP;
	e = vmspace_arena_alloc(a, Q, 0, &x);
	CHECK_EQ(e, -EPROTO);
	CHECK_EQ(im.imports, 2);
	CHECK_EQ(im.releases, 2);
	CHECK_EQ(im.bad_release, 0);
	UNCHANGED(a, s0);
	/* a good import */
	im.mode = IMP_OK;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(im.imports, 3);
	CHECK(x >= 0x40000000 && x < 0x40000000 + IQ);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.imported, IQ);
	CHECK_EQ(s.total, IQ);
	/* overlapping what the arena holds: -EPROTO, only forgotten */
	vmspace_addr_t hold;
	CHECK_EQ(vmspace_arena_alloc(a, IQ - Q, 0, &hold), 0);
	struct snap s1;
	adv_take(a, &s1);
	im.mode = IMP_OVERLAP;
	im.overlap_at = 0x40000000;
	e = vmspace_arena_alloc(a, Q, 0, &x);
	CHECK_EQ(e, -EPROTO);
	CHECK_EQ(im.releases, 2);
	UNCHANGED(a, s1);
	/* set_import while holding imported spans: -EBUSY */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	/* a set_limit below the spans: imports fail, the arena stays */
	im.mode = IMP_OK;
	CHECK_EQ(vmspace_arena_set_limit(a, IQ), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);
	/* live allocations go with destroy; every import released once
	 * (except the forgotten overlap) */
	CHECK_EQ(vmspace_arena_alloc(a, 3 * IQ, 0, &x), 0);
	CHECK_EQ(im.last_flags, 0);
	/* "flags is 0", also for a waiting allocation */
	im.last_flags = -1;
	CHECK_EQ(vmspace_arena_alloc(a, 2 * IQ, VMSPACE_WAIT, &x), 0);
	CHECK_EQ(im.last_flags, 0);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(im.bad_release, 0);
	/* the overlapping one (the fourth) is forgotten, not released */
	CHECK_EQ(im.releases, im.imports - 1);
	CHECK_EQ(im.released[3], 0);

	/* an import that allocates from another arena (allowed: not the
	 * arena itself), its release freeing there; destroy with live
	 * allocations gives the other arena everything back */
	vmspace_arena_t *src = vmspace_arena_create("src", 0x80000000, 0x100000, IQ, 0, 0);
	a = vmspace_arena_create("child", 0, 0, Q, 4 * Q, 0);
	CHECK(src != NULL && a != NULL);
	if (src && a) {
		memset(&im, 0, sizeof(im));
		im.from = src;
		CHECK_EQ(vmspace_arena_set_import(a, adv_imp, adv_rel, &im, IQ), 0);
		vmspace_addr_t live[20];
		for (int i = 0; i < 20; i++)
			CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)(i + 1) * 0x180, 0, &live[i]),
				 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
		CHECK(im.imports > 0);
		failures += adv_consistent(a);
		failures += adv_consistent(src);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		CHECK_EQ(im.releases, im.imports);
		CHECK_EQ(im.bad_release, 0);
		CHECK_EQ(vmspace_arena_sizes(src, &s), 0);
		CHECK_EQ(s.allocated, 0);
		CHECK_EQ(s.live, 0);
		failures += adv_consistent(src);
	} else if (a) {
		vmspace_arena_destroy(a);
	}
	if (src)
		CHECK_EQ(vmspace_arena_destroy(src), 0);

	/* a parent: child destroy gives everything back; destroy of the
	 * parent first is -EBUSY with nothing changed */
	vmspace_arena_t *par = vmspace_arena_create("par", B, 0x100000, IQ, 0, 0);
	CHECK(par != NULL);
	if (par) {
		struct vmspace_params p;
		memset(&p, 0, sizeof(p));
		p.quantum = Q;
		p.qcache_max = 2 * Q;
		p.parent = par;
		vmspace_arena_t *ch = NULL;
		CHECK_EQ(vmspace_arena_create_ex(&p, &ch), 0);
		if (ch) {
			CHECK_EQ(vmspace_arena_alloc(ch, Q, 0, &x), 0);
			CHECK_EQ(vmspace_arena_alloc(ch, 5000, 0, &x), 0);
			CHECK_EQ(vmspace_arena_free_deferred(ch, x, 5000), 0);
			CHECK_EQ(vmspace_arena_flushed(ch, NULL), 0);
			CHECK_EQ(vmspace_arena_alloc(ch, 3 * IQ, VMSPACE_TOP, &x), 0);
			CHECK_EQ(vmspace_arena_set_import(ch, adv_imp, adv_rel, &im, 0), -EBUSY);
			adv_take(par, &s0);
			CHECK_EQ(vmspace_arena_destroy(par), -EBUSY);
			UNCHANGED(par, s0);
			failures += adv_consistent(ch);
			failures += adv_consistent(par);
			CHECK_EQ(vmspace_arena_destroy(ch), 0);
		}
		CHECK_EQ(vmspace_arena_sizes(par, &s), 0);
		CHECK_EQ(s.allocated, 0);
		CHECK_EQ(s.free, 0x100000);
		failures += adv_consistent(par);
		CHECK_EQ(vmspace_arena_destroy(par), 0);
	}

	/* vmem_set_reclaim: called without the lock, so it may free into
	 * the arena; the allocation is then tried again */
	vmem_t *v = vmem_create("rc", B, 0x1000, Q, 0, 0);
	CHECK(v != NULL);
	if (v) {
		vmem_addr_t va, vb;
		CHECK_EQ(vmem_alloc(v, 0x800, M_NOWAIT, &va), 0);
		CHECK_EQ(vmem_alloc(v, 0x800, M_NOWAIT, &vb), 0);
		reclaim_vm = v;
		reclaim_addr = va;
		reclaim_calls = 0;
		vmem_set_reclaim(v, reclaim_fn);
		vmem_addr_t vc = 0;
		CHECK_EQ(vmem_alloc(v, 0x400, M_NOWAIT, &vc), 0);
		CHECK_EQ(reclaim_calls, 1);
		CHECK(vc >= va && vc < va + 0x800);
		vmem_free(v, vc, 0x400);
		vmem_free(v, vb, 0x800);
		failures += adv_consistent((vmspace_arena_t *)v);
		CHECK_EQ(vmem_size(v, VMEM_ALLOC), 0);
		/* set_import with a bad quantum: the hook, nothing set */
		struct hook_log log;
		memset(&log, 0, sizeof(log));
		vmem_set_error_hook(v, adv_hook, &log);
		memset(&im, 0, sizeof(im));
		im.next = 0x40000000;
		vmem_set_import(v, adv_imp, adv_rel, &im, 3 * Q);
		CHECK_EQ(log.calls, 1);
		CHECK_EQ(log.last_error, EINVAL);
		CHECK_EQ(vmem_alloc(v, 0x2000, M_NOWAIT, &vc), ENOMEM);
		CHECK_EQ(im.imports, 0);
		vmem_destroy(v);
		reclaim_vm = NULL;
	}
	return failures;
}
