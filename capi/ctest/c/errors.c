/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Every error code a caller can provoke, bad frees (the arena unchanged
 * after each), bad arenas and bad pointers: nothing crashes.
 */
#include "ctest.h"

#define BASE 0x100000UL
#define SPAN 0x10000UL

/* The arena's sizes and counters, to see that a failed call changed
 * nothing but the failure counters. */
struct state {
	struct vmspace_sizes s;
	uint64_t allocs, frees;
};

static struct state state_of(vmspace_arena_t *a)
{
	struct state st;
	struct vmspace_counters c;
	memset(&st, 0, sizeof st);
	vmspace_arena_sizes(a, &st.s);
	vmspace_arena_counters(a, &c);
	st.allocs = c.allocs;
	st.frees = c.frees;
	return st;
}

static int unchanged(vmspace_arena_t *a, const struct state *before)
{
	struct state now = state_of(a);
	return memcmp(&now, before, sizeof now) == 0 && vmspace_arena_check(a) == 0;
}

static int codes(void)
{
	int failures = 0;
	static const int all[] = { ENOENT, EIO, EBADF, EAGAIN, ENOMEM, EBUSY,
				   EEXIST, EINVAL, ENOSPC, ERANGE, EPROTO,
				   EOVERFLOW, EMSGSIZE, EOPNOTSUPP, EUCLEAN };
	const char *unknown = vmspace_strerror(-12345);
	CHECK(unknown != NULL);
	CHECK(strcmp(vmspace_strerror(0), "success") == 0);
	for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) {
		const char *t = vmspace_strerror(-all[i]);
		CHECK(t != NULL && strcmp(t, unknown) != 0);
		CHECK(strcmp(t, vmspace_strerror(all[i])) == 0);
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(t, vmspace_strerror(-all[j])) != 0);
	}
	CHECK(vmspace_strerror(-2147483647 - 1) != NULL);
	/* The library's numbers are this system's errno values. */
	CHECK_EQ(ENOMEM, 12);
	CHECK_EQ(EINVAL, 22);
	CHECK_EQ(EUCLEAN, 117);
	return failures;
}

static int bad_frees(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("bf", BASE, SPAN, 16, 64, 0);
	vmspace_addr_t x, q;
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 24, 0, &q), 0); /* a cached object (class 17..32) */
	struct state before = state_of(a);
	CHECK_EQ(vmspace_arena_free(a, x, 0x200), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 0xf0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x + 16, 0x100), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, 0, 0x100), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, BASE + SPAN + 0x1000, 16), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, q, 32), -EMSGSIZE); /* same class, other size */
	CHECK_EQ(vmspace_arena_free(a, q, 48), -EMSGSIZE); /* another class: live, other size */
	CHECK_EQ(vmspace_arena_free(a, q + 8, 24), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, x, 0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, UINTPTR_MAX - 8, 64), -ENOENT);
	CHECK(unchanged(a, &before));
	CHECK_EQ(vmspace_arena_free(a, x, 0x100), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 0x100), -ENOENT); /* double free */
	CHECK_EQ(vmspace_arena_free(a, q, 24), 0);
	CHECK_EQ(vmspace_arena_free(a, q, 24), -ENOENT); /* double free of a cached object */
	/* Handles: stale, forged, foreign. */
	struct vmspace_handle h, stale;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h), 0);
	stale = h;
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	before = state_of(a);
	CHECK_EQ(vmspace_arena_free_handle(a, stale, NULL), -ENOENT);
	h.tag = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	h.tag = 0xffffffffu;
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	/* Every tag at a quantum-cache slab's address is refused. */
	struct vmspace_counters c;
	vmspace_arena_counters(a, &c);
	CHECK(c.qcache_slabs > 0);
	for (uint32_t tag = 1; tag < 512; tag++) {
		struct vmspace_handle f = { .addr = q & ~(vmspace_addr_t)0x7ff, .tag = tag };
		int r = vmspace_arena_free_handle(a, f, NULL);
		CHECK(r == -ENOENT);
	}
	CHECK(unchanged(a, &before));
	/* A live handle with another arena's fingerprint is foreign. */
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h), 0);
	stale = h;
	h.arena ^= 1;
	before = state_of(a);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, NULL), -ENOENT);
	CHECK(unchanged(a, &before));
	CHECK_EQ(vmspace_arena_free_handle(a, stale, NULL), 0);
	/* A misaligned size pointer: refused before anything is freed. */
	vmspace_size_t got[2] = { 0, 0 };
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, h, (vmspace_size_t *)((char *)got + 1)), -EINVAL);
	CHECK_EQ(vmspace_arena_free_handle(a, h, &got[0]), 0);
	CHECK_EQ(got[0], 0x40);
	vmspace_arena_t *other = vmspace_arena_create("other", BASE, SPAN, 16, 0, 0);
	struct vmspace_handle mine;
	CHECK_EQ(vmspace_arena_alloc_handle(other, 0x40, 0, &mine), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, mine, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(other, mine, NULL), 0);
	CHECK_EQ(vmspace_arena_destroy(other), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/*
	 * A handle kept past its arena's destroy: the next arena made alike
	 * often gets the same memory for its tags (an outside reviewer's
	 * kernel module saw 5 in 400), and with it, unsalted, the same
	 * fingerprint; its first handle then has the old one's address and
	 * tag, and the old handle freed it. Each round must refuse it.
	 */
	struct vmspace_handle old, cur;
	a = vmspace_arena_create("again", BASE, SPAN, 16, 0, 0);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &old), 0);
	int same_place = 0;
	for (int round = 0; round < 64; round++) {
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		a = vmspace_arena_create("again", BASE, SPAN, 16, 0, 0);
		CHECK(a != NULL);
		CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &cur), 0);
		same_place += cur.addr == old.addr && cur.tag == old.tag;
		CHECK(cur.arena != old.arena);
		CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), -ENOENT);
		struct vmspace_sizes sz;
		CHECK_EQ(vmspace_arena_sizes(a, &sz), 0);
		CHECK_EQ(sz.live, 1);
		old = cur;
	}
	CHECK_EQ(same_place, 64);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int bad_arguments(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("args", BASE, SPAN, 16, 0, 0);
	vmspace_addr_t x;
	struct vmspace_handle h;
	struct state before = state_of(a);
	/* flags */
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0x1000, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, 16, VMSPACE_BESTFIT | VMSPACE_FIRSTFIT, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, 16, VMSPACE_EXACT, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 16, VMSPACE_EXACT, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 16, VMSPACE_WAIT, &h), -EOPNOTSUPP);
	CHECK_EQ(vmspace_arena_add(a, 0x800000, 0x1000, 1), -EINVAL);
	/* sizes, alignments, constraints */
	CHECK_EQ(vmspace_arena_alloc(a, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, SIZE_MAX, 0, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc(a, SPAN + 16, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 24, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 64, 8, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 64, 64, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 48, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x200, 0, 0, 0x100, 0, 0, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0, 0, 0, BASE + 0x100, BASE + 0x110, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0x100, 0, 0, 0, 0, BASE + 0x10, VMSPACE_EXACT, &x), -ERANGE);
	/* An exact address not a multiple of the quantum is a bad argument. */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0, 0, BASE + 0x8, VMSPACE_EXACT, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0, 0, 0, 0, 0, UINTPTR_MAX - 0xf, VMSPACE_EXACT, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_xalloc(a, 0x20, 0, 0, 0, BASE + SPAN, 0, 0, 0, &x), -ENOMEM);
	/* spans */
	CHECK_EQ(vmspace_arena_add(a, BASE + 0x1000, 0x1000, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, 0x800008, 0x1000, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, UINTPTR_MAX - 0xfff, 0x2000, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_add(a, 0x800000, 0, 0), -EINVAL);
	/* walks, histograms, imports */
	CHECK_EQ(vmspace_arena_walk(a, 0, NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_walk(a, 8, NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_histogram(a, NULL, 4), -EINVAL);
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 24), -EINVAL);
	/* An import quantum below the arena's (16): no import could be used. */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 8), -EINVAL);
	/* out pointers */
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, 16, 0, (vmspace_addr_t *)((char *)&x + 1)), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 16, 0, 0, 0, 0, 0, 0, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 16, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_sizes(a, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_counters(a, NULL), -EINVAL);
	CHECK(unchanged(a, &before));
	/* create */
	vmspace_arena_t *b = (vmspace_arena_t *)&x;
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	CHECK_EQ(vmspace_arena_create_ex(NULL, &b), -EINVAL);
	CHECK(b == NULL);
	CHECK_EQ(vmspace_arena_create_ex(&p, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL); /* quantum 0 */
	p.quantum = 24;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.quantum = 1UL << 28;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.quantum = 16;
	p.reserved = 1;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.reserved = 0;
	p.flags = VMSPACE_WAIT;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.flags = 0;
	p.max_tags = 3;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	/* Above 2^28 - 1, the most an arena holds: refused before anything
	 * is reserved (these overflowed, or found no room to reserve). */
	p.max_tags = SIZE_MAX / 4;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.max_tags = (size_t)1 << 52;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.max_tags = 0;
	p.base = 8;
	p.size = 16;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EINVAL);
	p.base = 0;
	p.size = 0;
	uintptr_t zeros[32];
	memset(zeros, 0, sizeof zeros);
	p.parent = (vmspace_arena_t *)zeros;
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), -EBADF);
	CHECK(b == NULL);
	CHECK(vmspace_arena_create("bad", 0, 0, 3, 0, 0) == NULL);
	CHECK(vmspace_arena_create("bad", 0, 0, 16, 0, 0x100) == NULL);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

static int bad_arenas(void)
{
	int failures = 0;
	vmspace_addr_t x;
	struct vmspace_sizes s;
	struct vmspace_counters c;
	struct vmspace_handle h = { 0, 1, 0 };
	uint64_t bins[4];
	/* NULL */
	CHECK_EQ(vmspace_arena_destroy(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_add(NULL, 0, 16, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(NULL, 16, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(NULL, 16, 0, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_free(NULL, 0, 16), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(NULL, 16, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_free_handle(NULL, h, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_sizes(NULL, &s), -EINVAL);
	CHECK_EQ(vmspace_arena_counters(NULL, &c), -EINVAL);
	CHECK_EQ(vmspace_arena_histogram(NULL, bins, 4), -EINVAL);
	CHECK_EQ(vmspace_arena_walk(NULL, VMSPACE_SEG_ALL, NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_check(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_contains(NULL, 0, 1), -EINVAL);
	CHECK_EQ(vmspace_arena_reclaim(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_set_limit(NULL, 1), -EINVAL);
	CHECK_EQ(vmspace_arena_set_mtbf(NULL, 1, 1), -EINVAL);
	CHECK_EQ(vmspace_arena_set_import(NULL, NULL, NULL, NULL, 0), -EINVAL);
	CHECK(vmspace_arena_name(NULL) == NULL);
	CHECK_EQ(vmspace_arena_quantum(NULL), 0);
	/* Storage that is not an arena: zeros, garbage, a misaligned pointer. */
	static uintptr_t junk[512];
	vmspace_arena_t *z = (vmspace_arena_t *)junk;
	CHECK_EQ(vmspace_arena_alloc(z, 16, 0, &x), -EBADF);
	CHECK_EQ(vmspace_arena_destroy(z), -EBADF);
	for (int i = 0; i < 512; i++)
		junk[i] = (uintptr_t)0x5a5a5a5a5a5a5a5aULL * (uintptr_t)(i + 1);
	CHECK_EQ(vmspace_arena_free(z, 0, 16), -EBADF);
	CHECK_EQ(vmspace_arena_free((vmspace_arena_t *)((char *)junk + 1), 0, 16), -EBADF);
	/* A destroyed arena in storage that stays (vmem_init): -EBADF ever after. */
	static vmem_t storage;
	vmem_t *vm = vmem_init(&storage, "dead", BASE, SPAN, 16, 0, 0);
	CHECK(vm == &storage);
	vmspace_arena_t *d = (vmspace_arena_t *)vm;
	CHECK_EQ(vmspace_arena_alloc(d, 16, 0, &x), 0);
	CHECK_EQ(vmspace_arena_destroy(d), 0);
	CHECK_EQ(vmspace_arena_destroy(d), -EBADF);
	CHECK_EQ(vmspace_arena_alloc(d, 16, 0, &x), -EBADF);
	CHECK_EQ(vmspace_arena_free(d, x, 16), -EBADF);
	CHECK_EQ(vmspace_arena_sizes(d, &s), -EBADF);
	CHECK_EQ(vmspace_arena_check(d), -EBADF);
	CHECK(vmspace_arena_name(d) == NULL);
	/* A copy of a live arena is not an arena. */
	static vmem_t copy;
	CHECK(vmem_init(&storage, "live", BASE, SPAN, 16, 0, 0) == vm);
	memcpy(&copy, &storage, sizeof copy);
	CHECK_EQ(vmspace_arena_alloc((vmspace_arena_t *)&copy, 16, 0, &x), -EBADF);
	CHECK_EQ(vmspace_arena_destroy((vmspace_arena_t *)&copy), -EBADF);
	CHECK_EQ(vmspace_arena_destroy(d), 0);
	/* And it can be made again in the same storage. */
	CHECK(vmem_init(&storage, "again", BASE, SPAN, 16, 0, 0) == vm);
	CHECK_EQ(vmspace_arena_check(d), 0);
	CHECK_EQ(vmspace_arena_destroy(d), 0);
	return failures;
}

static int exhaustion_and_faults(void)
{
	int failures = 0;
	/* Few tags: allocations stop with -ENOSPC, the arena intact. */
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "few tags";
	p.base = BASE;
	p.size = SPAN;
	p.quantum = 16;
	p.max_tags = 80;
	vmspace_arena_t *a = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	vmspace_addr_t x[200];
	int n = 0, r = 0;
	while (n < 200 && (r = vmspace_arena_alloc(a, 16, VMSPACE_FIRSTFIT, &x[n])) == 0)
		n++;
	CHECK_EQ(r, -ENOSPC);
	CHECK(n > 4);
	CHECK_EQ(vmspace_arena_check(a), 0);
	while (n > 0) {
		n--;
		CHECK_EQ(vmspace_arena_free(a, x[n], 16), 0);
	}
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* Injected faults: -EAGAIN, nothing changed, counted. */
	a = vmspace_arena_create("mtbf", BASE, SPAN, 16, 0, 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 7, 3), 0);
	int injected = 0, ok = 0;
	for (int i = 0; i < 100; i++) {
		vmspace_addr_t y;
		struct state before = state_of(a);
		r = vmspace_arena_alloc(a, 32, 0, &y);
		if (r == -EAGAIN) {
			injected++;
			CHECK(unchanged(a, &before));
		} else {
			CHECK_EQ(r, 0);
			ok++;
			CHECK_EQ(vmspace_arena_free(a, y, 32), 0);
		}
	}
	CHECK(injected > 10 && ok > 10);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(a, &c), 0);
	CHECK_EQ(c.injected, injected);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* -EBUSY: a parent with a child; set_import with a parent. */
	vmspace_arena_t *parent = vmspace_arena_create("parent", BASE, SPAN, 16, 0, 0);
	memset(&p, 0, sizeof p);
	p.quantum = 16;
	p.parent = parent;
	vmspace_arena_t *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	CHECK_EQ(vmspace_arena_destroy(parent), -EBUSY);
	CHECK_EQ(vmspace_arena_set_import(child, NULL, NULL, NULL, 0), -EBUSY);
	CHECK_EQ(vmspace_arena_check(parent), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_destroy(parent), 0);
	return failures;
}

int ctest_errors(void)
{
	return codes() + bad_frees() + bad_arguments() + bad_arenas() +
	       exhaustion_and_faults();
}
