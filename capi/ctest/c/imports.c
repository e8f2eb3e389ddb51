/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Import callbacks, parent arenas, limits. */
#include "ctest.h"

/* A source of ranges for the callbacks: a bump pointer that records what
 * it handed out and what came back. */
struct pool {
	vmspace_addr_t next, end, last;
	int imports, releases, fail_next, misalign_next, overflow_next, repeat_next;
	vmspace_size_t out; /* units handed out and not back */
	int last_flags;
};

static int pool_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct pool *p = arg;
	p->last_flags = flags;
	if (p->fail_next)
		return 1;
	if (p->overflow_next) {
		*addrp = UINTPTR_MAX - 0xff;
		p->imports++;
		p->out += size;
		return 0;
	}
	if (p->repeat_next) { /* a broken source: the last range again */
		*addrp = p->last;
		p->imports++;
		p->out += size;
		return 0;
	}
	if (p->end - p->next < size)
		return 1;
	*addrp = p->next + (p->misalign_next ? 0x10 : 0);
	p->last = *addrp;
	/* gaps, so spans never merge; results aligned to the import quantum */
	p->next = (p->next + size + 0x1000 + 0xffff) & ~(vmspace_addr_t)0xffff;
	p->imports++;
	p->out += size;
	return 0;
}

static void pool_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct pool *p = arg;
	(void)addr;
	p->releases++;
	p->out -= size;
}

static int callbacks(void)
{
	int failures = 0;
	struct pool pool = { .next = 0x10000000, .end = 0x20000000 };
	vmspace_arena_t *a = vmspace_arena_create("imports", 0, 0, 16, 0, 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, &x), -ENOMEM); /* nothing to import from */
	CHECK_EQ(vmspace_arena_set_import(a, pool_import, pool_release, &pool, 0x10000), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 100, 0, &x), 0);
	CHECK_EQ(pool.imports, 1);
	CHECK_EQ(pool.out, 0x10000); /* rounded to the import quantum */
	CHECK_EQ(pool.last_flags, 0);
	CHECK(x >= 0x10000000 && x < 0x10010000);
	CHECK_EQ(vmspace_arena_alloc(a, 0x20000, 0, &y), 0); /* another, larger span */
	CHECK_EQ(pool.imports, 2);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.imported, 0x30000);
	CHECK_EQ(s.spans, 2);
	/* Imported spans: flagged in walks. */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	/* Wholly free spans go back through the release function. */
	CHECK_EQ(vmspace_arena_free(a, y, 0x20000), 0);
	CHECK_EQ(pool.releases, 1);
	CHECK_EQ(vmspace_arena_free(a, x, 100), 0);
	CHECK_EQ(pool.releases, 2);
	CHECK_EQ(pool.out, 0);
	/* A failing import: -ENOMEM, nothing changed. (Failing calls are
	 * tried twice: again after reclaiming the quantum caches.) */
	pool.fail_next = 1;
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, &x), -ENOMEM);
	pool.fail_next = 0;
	/* A misaligned result: given back, -ENOMEM. */
	pool.misalign_next = 1;
	int before = pool.releases;
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, &x), -ENOMEM);
	CHECK(pool.releases > before);
	CHECK_EQ(pool.out, 0);
	pool.misalign_next = 0;
	/* A range that overflows: given back, -EPROTO. */
	pool.overflow_next = 1;
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, &x), -EPROTO);
	CHECK_EQ(pool.out, 0);
	pool.overflow_next = 0;
	/* A range overlapping a span the arena holds (the source handed the
	 * same one out twice): -EPROTO, and not given back, which would free
	 * the live span; the arena stops counting it as imported. */
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &x), 0);
	pool.repeat_next = 1;
	before = pool.releases;
	int imports = pool.imports;
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &y), -EPROTO);
	pool.repeat_next = 0;
	CHECK_EQ(pool.releases, before);
	CHECK(pool.imports > imports);
	int refused = pool.imports - imports;
	pool.out -= (vmspace_size_t)refused * 0x10000; /* the pool's own double */
	CHECK_EQ(vmspace_arena_free(a, x, 0x10000), 0);
	CHECK_EQ(pool.out, 0);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* Nothing imported is held: the functions may change, and a limit of
	 * one import's size lets one through. */
	CHECK_EQ(vmspace_arena_set_import(a, pool_import, pool_release, &pool, 0x10000), 0);
	CHECK_EQ(vmspace_arena_set_limit(a, 0x10000), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 0x10000), 0);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);
	/* A limit: imports stop past it. */
	CHECK_EQ(vmspace_arena_set_limit(a, 0x20000), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &y), 0);
	vmspace_addr_t z;
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &z), -ENOMEM);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x10000, 0, &z), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* Destroy gives every imported span back, live allocations or not. */
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(pool.out, 0);
	CHECK_EQ(pool.imports, pool.releases + refused);
	/* Without a release function, spans stay until destroy. */
	struct pool keep = { .next = 0x30000000, .end = 0x40000000 };
	a = vmspace_arena_create("keep", 0, 0, 16, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, pool_import, NULL, &keep, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 64, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 64), 0);
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.imported, 64);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int parents(void)
{
	int failures = 0;
	/* grandparent (pages) -> parent (4 KiB quantum) -> child (16) */
	vmspace_arena_t *gp = vmspace_arena_create("gp", 0x40000000, 0x1000000, 0x1000, 0, 0);
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "parent";
	p.quantum = 0x1000;
	p.qcache_max = 0x4000;
	p.parent = gp;
	vmspace_arena_t *parent = NULL, *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &parent), 0);
	p.name = "child";
	p.quantum = 16;
	p.qcache_max = 0;
	p.parent = parent;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	vmspace_addr_t x[64];
	for (int i = 0; i < 64; i++) {
		CHECK_EQ(vmspace_arena_alloc(child, 0x100 + i * 16, 0, &x[i]), 0);
		CHECK(x[i] >= 0x40000000 && x[i] < 0x41000000);
	}
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK(s.imported > 0);
	CHECK_EQ(vmspace_arena_destroy(gp), -EBUSY);
	CHECK_EQ(vmspace_arena_destroy(parent), -EBUSY);
	for (int i = 0; i < 64; i++)
		CHECK_EQ(vmspace_arena_free(child, x[i], 0x100 + i * 16), 0);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(vmspace_arena_check(child), 0);
	CHECK_EQ(vmspace_arena_check(parent), 0);
	/* A child destroyed with live allocations gives its spans back. */
	CHECK_EQ(vmspace_arena_alloc(child, 0x5000, 0, &x[0]), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_reclaim(parent), 0);
	CHECK_EQ(vmspace_arena_sizes(parent, &s), 0);
	CHECK_EQ(s.allocated, 0); /* imports bypass the parent's caches */
	/* A span holding a range freed deferred and never flushed the parent
	 * must not hand out before its flush: it takes it back freed and not
	 * flushed, and passes it on so when it goes itself. */
	p.name = "child2";
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 0x5000, 0, &x[0]), 0);
	CHECK_EQ(vmspace_arena_free_deferred(child, x[0], 0x5000), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_reclaim(parent), 0);
	CHECK_EQ(vmspace_arena_sizes(parent, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK(s.unflushed >= 0x5000);
	CHECK_EQ(vmspace_arena_xalloc(parent, 0x1000, 0, 0, 0, 0, 0, x[0], VMSPACE_EXACT, &x[1]),
		 -ENOMEM);
	CHECK_EQ(vmspace_arena_check(parent), 0);
	CHECK_EQ(vmspace_arena_destroy(parent), 0);
	CHECK_EQ(vmspace_arena_sizes(gp, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK(s.unflushed >= 0x5000);
	CHECK_EQ(vmspace_arena_xalloc(gp, 0x1000, 0, 0, 0, 0, 0, x[0], VMSPACE_EXACT, &x[1]),
		 -ENOMEM);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(gp, &freed), 0);
	CHECK(freed >= 0x5000);
	CHECK_EQ(vmspace_arena_xalloc(gp, 0x1000, 0, 0, 0, 0, 0, x[0], VMSPACE_EXACT, &x[1]), 0);
	CHECK_EQ(vmspace_arena_free(gp, x[1], 0x1000), 0);
	CHECK_EQ(vmspace_arena_check(gp), 0);
	CHECK_EQ(vmspace_arena_destroy(gp), 0);
	return failures;
}

int ctest_imports(void)
{
	return callbacks() + parents();
}
