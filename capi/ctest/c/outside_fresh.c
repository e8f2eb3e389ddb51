/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An outside reviewer's tests of vmspace_arena_alloc_timed and of waiting
 * allocations through wait_at_root: how often a timeout of 0 tries, wake-ups
 * in trees (destroy of a sibling, a middle arena's free, set_limit, add),
 * quantum caches larger than their arena, VMSPACE_TOP, xalloc and vmem(9)
 * waits in arenas with import functions, many waiters racing their
 * timeouts, and fault injection during waits. Every waiter runs under a
 * watchdog; only lower bounds on time are asserted.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "outside_fresh.h"

/* Quantum caches whose classes are larger than the arena, or a slab
 * larger than it: a waiting or timed allocation of a cached size in an
 * arena with room must succeed at once, as a plain one does. */
static int qcache_larger_than_arena(void)
{
	int failures = 0;
	for (vmspace_size_t size = 16; size <= 64; size += 16) {
		vmspace_arena_t *a = vmspace_arena_create("qsmall", BASE, 64, 16, 128, 0);
		vmspace_addr_t x = 0, y = 0;
		int plain = vmspace_arena_alloc(a, size, 0, &x);
		CHECK_EQ(plain, 0);
		if (plain == 0)
			CHECK_EQ(vmspace_arena_free(a, x, size), 0);
		uint64_t t0 = now_ns();
		int e = vmspace_arena_alloc_timed(a, size, 0, 200 * MS, &y);
		if (e != 0)
			fprintf(stderr, "qcache size %zu: timed %d after %llu ns\n", (size_t)size, e,
				(unsigned long long)(now_ns() - t0));
		CHECK_EQ(e, 0);
		if (e == 0)
			CHECK_EQ(vmspace_arena_free(a, y, size), 0);
		struct waiter w = { .arena = a, .how = WAIT, .size = size };
		pthread_t t;
		start(&t, &w);
		CHECK_EQ(join_or_unstick(t, 10, add_far, a), 0);
		CHECK_EQ(w.result, 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* A child waits (timed) at its root; a sibling's destroy gives its span
 * back to the root and wakes it. Then a three-level tree: the middle
 * arena's own free wakes a leaf. Then set_limit on the child. */
static int tree_wakeups(void)
{
	int failures = 0;
	vmspace_arena_t *root = vmspace_arena_create("root", BASE, 0x2000, 0x1000, 0, 0);
	struct vmspace_params p = { .name = "kid", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *a, *b, *c;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), 0);
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	vmspace_addr_t xa, xb;
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &xa), 0);
	CHECK_EQ(vmspace_arena_alloc(b, 0x1000, 0, &xb), 0);
	struct waiter w = { .arena = c, .how = TIMED, .size = 0x1000, .timeout_ns = 20000 * MS };
	pthread_t t;
	start(&t, &w);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	CHECK_EQ(join_or_unstick(t, 10, add_far, root), 0);
	CHECK_EQ(w.result, 0);
	CHECK_EQ(w.got, xb);
	CHECK_EQ(vmspace_arena_free(c, w.got, 0x1000), 0);

	/* A limit on c below one import; raising it wakes a waiter. */
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	CHECK_EQ(vmspace_arena_set_limit(c, 0x800), 0);
	struct waiter w2 = { .arena = c, .how = WAIT, .size = 0x1000 };
	start(&t, &w2);
	CHECK_EQ(vmspace_arena_set_limit(c, 0x1000), 0);
	CHECK_EQ(join_or_unstick(t, 10, add_far, c), 0);
	CHECK_EQ(w2.result, 0);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(vmspace_arena_free(a, xa, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* root -> mid -> leaf: the middle arena's free wakes the leaf. */
	vmspace_arena_t *mid, *leaf;
	struct vmspace_params pm = { .name = "mid", .quantum = 0x1000, .parent = root };
	CHECK_EQ(vmspace_arena_create_ex(&pm, &mid), 0);
	struct vmspace_params pl = { .name = "leaf", .quantum = 0x1000, .parent = mid };
	CHECK_EQ(vmspace_arena_create_ex(&pl, &leaf), 0);
	vmspace_addr_t m1, m2;
	CHECK_EQ(vmspace_arena_alloc(mid, 0x1000, 0, &m1), 0);
	CHECK_EQ(vmspace_arena_alloc(mid, 0x1000, 0, &m2), 0);
	struct waiter w3 = { .arena = leaf, .how = TIMED, .size = 0x1000, .timeout_ns = UINT64_MAX };
	start(&t, &w3);
	CHECK_EQ(vmspace_arena_free(mid, m2, 0x1000), 0);
	CHECK_EQ(join_or_unstick(t, 10, add_far, leaf), 0);
	CHECK_EQ(w3.result, 0);
	CHECK_EQ(vmspace_arena_check(leaf), 0);
	CHECK_EQ(vmspace_arena_destroy(leaf), 0);
	CHECK_EQ(vmspace_arena_free(mid, m1, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(mid), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

/* Waits of every kind in an arena with import functions (root and child)
 * that poll: timed with VMSPACE_TOP, xalloc with an alignment, vmem
 * M_WAITOK; each gets its space once the gate opens. */
static int polling_kinds(void)
{
	int failures = 0;
	for (int kind = 0; kind < 4; kind++) {
		for (int in_child = 0; in_child < 2; in_child++) {
			struct gate g = { .next = 0x10000000 };
			vmspace_arena_t *root = vmspace_arena_create("groot", 0, 0, 0x1000, 0, 0);
			CHECK_EQ(vmspace_arena_set_import(root, gate_import, gate_release, &g, 0x1000),
				 0);
			vmspace_arena_t *arena = root, *child = NULL;
			if (in_child) {
				struct vmspace_params p = { .name = "gkid", .quantum = 0x1000,
							    .parent = root };
				CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
				arena = child;
			}
			struct waiter w = { .arena = arena, .size = 0x3000 };
			switch (kind) {
			case 0:
				w.how = TIMED;
				w.flags = VMSPACE_TOP;
				w.timeout_ns = 20000 * MS;
				break;
			case 1:
				w.how = WAIT;
				w.flags = VMSPACE_TOP | VMSPACE_BESTFIT;
				break;
			case 2:
				w.how = XWAIT;
				break;
			default:
				w.how = VMEM_WAITOK;
				break;
			}
			pthread_t t;
			start(&t, &w);
			int before = atomic_load(&g.calls);
			usleep(60 * 1000);
			int polled = atomic_load(&g.calls) - before;
			if (polled < 2)
				fprintf(stderr, "polling kind %d child %d: %d calls in 60 ms\n", kind,
					in_child, polled);
			CHECK(polled >= 2);
			atomic_store(&g.open, 1);
			CHECK_EQ(join_or_unstick(t, 10, add_far, arena), 0);
			CHECK_EQ(w.result, 0);
			CHECK(w.got >= 0x10000000);
			CHECK_EQ(vmspace_arena_check(arena), 0);
			if (child)
				CHECK_EQ(vmspace_arena_destroy(child), 0);
			CHECK_EQ(vmspace_arena_destroy(root), 0);
		}
	}
	return failures;
}

#define NW 8
/* Many timed waiters on a full arena of four slots; four slots freed
 * while they wait. Each ends in 0 (a distinct slot) or -ETIMEDOUT no
 * earlier than its timeout; none -ENOMEM; the arena checks. */
static int many_waiters_race(void)
{
	int failures = 0;
	for (int round = 0; round < 4; round++) {
		vmspace_arena_t *a = vmspace_arena_create("many", BASE, 0x4000, 0x1000, 0, 0);
		vmspace_addr_t slot[4];
		for (int i = 0; i < 4; i++)
			CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &slot[i]), 0);
		struct waiter w[NW];
		pthread_t t[NW];
		for (int i = 0; i < NW; i++) {
			w[i] = (struct waiter){ .arena = a, .how = TIMED, .size = 0x1000,
						.timeout_ns = (uint64_t)(40 + 20 * (i % 4)) * MS };
			w[i].result = 12345;
			pthread_create(&t[i], NULL, waiter_main, &w[i]);
		}
		usleep((useconds_t)(20 + 15 * round) * 1000);
		for (int i = 0; i < 4; i++)
			CHECK_EQ(vmspace_arena_free(a, slot[i], 0x1000), 0);
		int got = 0;
		for (int i = 0; i < NW; i++) {
			CHECK_EQ(join_or_unstick(t[i], 10, add_far, a), 0);
			if (w[i].result == 0) {
				got++;
				CHECK(w[i].got >= BASE && w[i].got < BASE + 0x4000);
				for (int j = 0; j < i; j++)
					if (w[j].result == 0)
						CHECK(w[j].got != w[i].got);
			} else {
				CHECK_EQ(w[i].result, -ETIMEDOUT);
				CHECK(w[i].waited >= w[i].timeout_ns);
			}
		}
		CHECK(got <= 4);
		struct vmspace_sizes s;
		CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
		CHECK_EQ(s.allocated, (vmspace_size_t)got * 0x1000);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}



/* Waits woken by vmspace_arena_flushed: in a root (its own deferred free)
 * and in a child (a sibling's flushed span going back to the root). */
static int flushed_wakes(void)
{
	int failures = 0;
	vmspace_arena_t *root = vmspace_arena_create("froot", BASE, 0x1000, 0x1000, 0, 0);
	vmspace_addr_t all;
	CHECK_EQ(vmspace_arena_alloc(root, 0x1000, 0, &all), 0);
	CHECK_EQ(vmspace_arena_free_deferred(root, all, 0x1000), 0);
	struct waiter w = { .arena = root, .how = TIMED, .size = 0x1000, .timeout_ns = 20000 * MS };
	pthread_t t;
	start(&t, &w);
	CHECK_EQ(vmspace_arena_flushed(root, NULL), 0);
	CHECK_EQ(join_or_unstick(t, 10, add_far, root), 0);
	CHECK_EQ(w.result, 0);
	CHECK_EQ(vmspace_arena_free(root, w.got, 0x1000), 0);

	struct vmspace_params p = { .name = "fkid", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *a, *b;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x1000), 0);
	struct waiter w2 = { .arena = b, .how = WAIT, .size = 0x1000 };
	start(&t, &w2);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(join_or_unstick(t, 10, add_far, b), 0);
	CHECK_EQ(w2.result, 0);
	CHECK_EQ(vmspace_arena_free(b, w2.got, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

/* VMSPACE_TOP and quantum-cache sizes in an empty child import from the
 * parent, with and without waiting. */
static int child_top_and_qcache(void)
{
	int failures = 0;
	vmspace_arena_t *root = vmspace_arena_create("troot", BASE, 0x1000, 16, 0, 0);
	struct vmspace_params p = { .name = "tkid", .quantum = 16, .qcache_max = 64,
				    .parent = root };
	vmspace_arena_t *c;
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	vmspace_addr_t x;
	int flags[] = { VMSPACE_TOP, VMSPACE_TOP | VMSPACE_WAIT, 0, VMSPACE_WAIT };
	for (int i = 0; i < 4; i++) {
		vmspace_size_t size = i < 2 ? 0x100 : 32;
		CHECK_EQ(vmspace_arena_alloc_timed(c, size, flags[i], 200 * MS, &x), 0);
		CHECK_EQ(vmspace_arena_free(c, x, size), 0);
		CHECK_EQ(vmspace_arena_alloc(c, size, flags[i] & ~VMSPACE_WAIT, &x), 0);
		CHECK_EQ(vmspace_arena_free(c, x, size), 0);
	}
	CHECK_EQ(vmspace_arena_check(c), 0);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);

	/* A root of 64 units under a child whose caches (and slabs) are
	 * larger: every cached size still fits, waiting or not. */
	for (vmspace_size_t size = 16; size <= 64; size += 16) {
		root = vmspace_arena_create("tiny", BASE, 64, 16, 0, 0);
		p.qcache_max = 128;
		p.parent = root;
		CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
		int e = vmspace_arena_alloc_timed(c, size, 0, 100 * MS, &x);
		if (e != 0)
			fprintf(stderr, "tiny root, child cache: size %zu: %d\n", (size_t)size, e);
		CHECK_EQ(e, 0);
		if (e == 0)
			CHECK_EQ(vmspace_arena_free(c, x, size), 0);
		struct waiter w = { .arena = c, .how = WAIT, .size = size };
		pthread_t t;
		start(&t, &w);
		CHECK_EQ(join_or_unstick(t, 10, add_far, c), 0);
		CHECK_EQ(w.result, 0);
		CHECK_EQ(vmspace_arena_check(c), 0);
		CHECK_EQ(vmspace_arena_destroy(c), 0);
		CHECK_EQ(vmspace_arena_destroy(root), 0);
	}
	return failures;
}



/* xalloc with VMSPACE_WAIT and constraints that can never hold: -ERANGE
 * at once, in a root, a child and an arena that polls. */
static int xalloc_never_is_erange(void)
{
	int failures = 0;
	struct gate g = { .next = 0x10000000 };
	vmspace_arena_t *root = vmspace_arena_create("xroot", BASE, 0x10000, 0x1000, 0, 0);
	struct vmspace_params p = { .name = "xkid", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *c;
	CHECK_EQ(vmspace_arena_create_ex(&p, &c), 0);
	for (int k = 0; k < 3; k++) {
		vmspace_arena_t *a = k == 1 ? c : root;
		if (k == 2) {
			CHECK_EQ(vmspace_arena_destroy(c), 0);
			CHECK_EQ(vmspace_arena_set_import(root, gate_import, gate_release, &g, 0), 0);
		}
		struct waiter w = { .arena = a, .how = XWAIT, .size = 0x2000,
				    .min = BASE, .max = BASE + 0x1000 };
		pthread_t t;
		start(&t, &w);
		CHECK_EQ(join_or_unstick(t, 10, add_far, a), 0);
		CHECK_EQ(w.result, -ERANGE);
	}
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

/* A child destroyed holding a range freed deferred gives its span back to
 * the root unflushed: a waiter in a sibling must not get it before the
 * root's flush, and the root's flush wakes it. */
static int unflushed_from_a_destroyed_child(void)
{
	int failures = 0;
	vmspace_arena_t *root = vmspace_arena_create("uroot", BASE, 0x1000, 0x1000, 0, 0);
	struct vmspace_params p = { .name = "ukid", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *a, *b;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	CHECK_EQ(vmspace_arena_create_ex(&p, &b), 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	vmspace_addr_t y = 0;
	CHECK_EQ(vmspace_arena_alloc_timed(b, 0x1000, 0, 60 * MS, &y), -ETIMEDOUT);
	struct waiter w = { .arena = b, .how = TIMED, .size = 0x1000, .timeout_ns = 20000 * MS };
	pthread_t t;
	start(&t, &w);
	CHECK_EQ(w.result, 12345); /* still waiting: nothing flushed */
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(root, &freed), 0);
	CHECK_EQ(freed, 0x1000);
	CHECK_EQ(join_or_unstick(t, 10, add_far, root), 0);
	CHECK_EQ(w.result, 0);
	CHECK_EQ(w.got, x);
	CHECK_EQ(vmspace_arena_free(b, w.got, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	CHECK_EQ(vmspace_arena_check(root), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

/* A gate that opens and closes at random while children of a polling root
 * wait (timed and VMSPACE_WAIT) and free: no -ENOMEM, no hang, disjoint
 * results, and every arena checks. */
struct churn {
	vmspace_arena_t *arena;
	int wait_forever;
	uint64_t seed;
	int bad;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	vmspace_addr_t held[4];
	int n = 0;
	for (int i = 0; i < 200; i++) {
		vmspace_addr_t x;
		int e = c->wait_forever && n == 0 ?
				vmspace_arena_alloc(c->arena, 0x1000, VMSPACE_WAIT, &x) :
				vmspace_arena_alloc_timed(c->arena, 0x1000, 0,
							  ct_below(&c->seed, 3) * MS, &x);
		if (e == 0) {
			held[n++] = x;
		} else if (e != -ETIMEDOUT) {
			fprintf(stderr, "churn: %d\n", e);
			c->bad++;
		}
		if (n == 4 || (n > 0 && ct_below(&c->seed, 2))) {
			if (vmspace_arena_free(c->arena, held[--n], 0x1000) != 0)
				c->bad++;
		}
	}
	while (n > 0)
		if (vmspace_arena_free(c->arena, held[--n], 0x1000) != 0)
			c->bad++;
	return NULL;
}

struct slots {
	atomic_int open;
	vmspace_addr_t base;
	atomic_uint used;
};

static int slot_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct slots *s = arg;
	(void)flags;
	if (!atomic_load(&s->open) || size != 0x1000)
		return 1;
	unsigned int k = atomic_fetch_add(&s->used, 1);
	*addrp = s->base + (vmspace_addr_t)k * 0x1000;
	return 0;
}

static int polling_churn(void)
{
	int failures = 0;
	struct slots sl = { .base = 0x20000000 };
	vmspace_arena_t *root = vmspace_arena_create("croot", BASE, 0x4000, 0x1000, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(root, slot_import, NULL, &sl, 0x1000), 0);
	struct vmspace_params p = { .name = "ckid", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *kid[3];
	struct churn c[6];
	pthread_t t[6];
	for (int i = 0; i < 3; i++)
		CHECK_EQ(vmspace_arena_create_ex(&p, &kid[i]), 0);
	for (int i = 0; i < 6; i++) {
		c[i] = (struct churn){ .arena = kid[i % 3], .wait_forever = i < 2,
				       .seed = 0x1234 + (uint64_t)i };
		pthread_create(&t[i], NULL, churn_main, &c[i]);
	}
	uint64_t seed = 77;
	for (int i = 0; i < 40; i++) {
		atomic_store(&sl.open, (int)ct_below(&seed, 4) == 0 && atomic_load(&sl.used) < 64);
		usleep(2000);
	}
	atomic_store(&sl.open, 0);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(join_or_unstick(t[i], 20, add_far, root), 0);
		CHECK_EQ(c[i].bad, 0);
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(vmspace_arena_check(kid[i]), 0);
		CHECK_EQ(vmspace_arena_destroy(kid[i]), 0);
	}
	CHECK_EQ(vmspace_arena_check(root), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

int ctest_outside_fresh(void)
{
	int failures = 0;
	int f;
#define RUN(fn)                                                             \
	do {                                                                \
		f = fn();                                                   \
		if (f)                                                      \
			fprintf(stderr, "outside_fresh: %s: %d failures\n", #fn, f); \
		failures += f;                                              \
	} while (0)
	RUN(outside_fresh_counts);
	RUN(qcache_larger_than_arena);
	RUN(tree_wakeups);
	RUN(polling_kinds);
	RUN(many_waiters_race);
	RUN(flushed_wakes);
	RUN(child_top_and_qcache);
	RUN(xalloc_never_is_erange);
	RUN(unflushed_from_a_destroyed_child);
	RUN(polling_churn);
	return failures;
}
