/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vmspace_arena_alloc_timed: a wait that ends with -ETIMEDOUT no earlier
 * than its timeout (never -ENOMEM), ends early when space comes back, and
 * does both in a root, in a child waiting at its root, and in an arena
 * importing through functions (which retries by polling); and a wait
 * begun before the import functions were set polls them too. Lower bounds
 * on the time waited only: how much longer a wait takes depends on the
 * load.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"

#define BASE 0x100000
#define MS 1000000ULL

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* One timed allocation, timed: its result, and *waited in ns. */
static int timed(vmspace_arena_t *a, vmspace_size_t size, int flags, uint64_t timeout,
		 vmspace_addr_t *got, uint64_t *waited)
{
	uint64_t t0 = now_ns();
	int e = vmspace_arena_alloc_timed(a, size, flags, timeout, got);
	*waited = now_ns() - t0;
	return e;
}

/* A full arena (with and without quantum caches): -ETIMEDOUT after the
 * timeout, at once for 0; and nothing changed by it. */
static int times_out(void)
{
	int failures = 0;
	for (vmspace_size_t qmax = 0; qmax <= 64; qmax += 64) {
		vmspace_arena_t *a = vmspace_arena_create("timed", BASE, 0x1000, 16, qmax, 0);
		vmspace_addr_t all, x = 0;
		uint64_t waited;
		CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &all), 0);
		CHECK_EQ(timed(a, 16, 0, 0, &x, &waited), -ETIMEDOUT);
		CHECK_EQ(timed(a, 16, VMSPACE_WAIT, 30 * MS, &x, &waited), -ETIMEDOUT);
		CHECK(waited >= 30 * MS);
		CHECK_EQ(timed(a, 0x100, VMSPACE_BESTFIT, 5 * MS, &x, &waited), -ETIMEDOUT);
		CHECK(waited >= 5 * MS);
		CHECK_EQ(x, 0);
		struct vmspace_sizes s;
		CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
		CHECK_EQ(s.allocated, 0x1000);
		CHECK_EQ(vmspace_arena_check(a), 0);
		/* With space, a timeout of 0 allocates. */
		CHECK_EQ(vmspace_arena_free(a, all, 0x1000), 0);
		CHECK_EQ(vmspace_arena_alloc_timed(a, 16, 0, 0, &x), 0);
		CHECK(x >= BASE && x < BASE + 0x1000);
		CHECK_EQ(vmspace_arena_free(a, x, 16), 0);
		/* Errors as for vmspace_arena_alloc, at once. */
		CHECK_EQ(vmspace_arena_alloc_timed(a, 16, 0x1000, UINT64_MAX, &x), -EINVAL);
		CHECK_EQ(vmspace_arena_alloc_timed(a, 16, VMSPACE_EXACT, 0, &x), -EINVAL);
		CHECK_EQ(vmspace_arena_alloc_timed(a, 16, 0, 0, NULL), -EINVAL);
		CHECK_EQ(vmspace_arena_alloc_timed(a, SIZE_MAX, 0, UINT64_MAX, &x), -EOVERFLOW);
		CHECK_EQ(vmspace_arena_alloc_timed(NULL, 16, 0, 0, &x), -EINVAL);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	CHECK(strcmp(vmspace_strerror(-ETIMEDOUT), "unknown error") != 0);
	return failures;
}

/* Start a waiter on `arena` (a timed wait, or VMSPACE_WAIT for a timeout
 * of 0), let it fall asleep, call `give(arg)`, and see
 * it allocate what came back (a watchdog of 10 s turns a waiter never
 * woken into a failure rather than a hang: `unstick(arg)` then frees
 * enough for it). */
static int woken(vmspace_arena_t *arena, uint64_t timeout, void (*give)(void *),
		 void (*unstick)(void *), void *arg, vmspace_addr_t expect)
{
	int failures = 0;
	struct ct_waiting w = { .arena = arena, .timeout_ns = timeout };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, ct_waiter, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	usleep(50 * 1000);
	give(arg);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	int joined = pthread_timedjoin_np(t, NULL, &until);
	CHECK_EQ(joined, 0);
	if (joined != 0) {
		unstick(arg);
		CHECK_EQ(pthread_join(t, NULL), 0);
	}
	CHECK_EQ(w.result, 0);
	CHECK_EQ(w.got, expect);
	CHECK_EQ(vmspace_arena_free(arena, w.got, 0x1000), 0);
	return failures;
}

struct freeing {
	vmspace_arena_t *arena;
	vmspace_addr_t addr;
};

static void free_it(void *arg)
{
	struct freeing *f = arg;
	vmspace_arena_free(f->arena, f->addr, 0x1000);
}

/* Unstick a waiter never woken by the free: a span of its own. */
static void add_span(void *arg)
{
	struct freeing *f = arg;
	vmspace_arena_add(f->arena, BASE + 0x10000, 0x1000, 0);
}

/* Unstick a waiter of a bounded wait: nothing (its time runs out). */
static void nothing(void *arg)
{
	(void)arg;
}

/* A root and a child of it (waiting at the root): -ETIMEDOUT in time, and
 * woken by a free, with the longest timeout and a finite one. */
static int root_and_child(void)
{
	int failures = 0;
	vmspace_arena_t *root = vmspace_arena_create("timed-root", BASE, 0x1000, 0x1000, 0, 0);
	struct vmspace_params p = { .name = "timed-child", .quantum = 0x1000, .parent = root };
	vmspace_arena_t *child;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	vmspace_addr_t all, x = 0;
	uint64_t waited;
	CHECK_EQ(vmspace_arena_alloc(root, 0x1000, 0, &all), 0);
	CHECK_EQ(timed(child, 0x1000, 0, 20 * MS, &x, &waited), -ETIMEDOUT);
	CHECK(waited >= 20 * MS);
	struct freeing f = { .arena = root, .addr = all };
	failures += woken(root, UINT64_MAX, free_it, add_span, &f, BASE);
	CHECK_EQ(vmspace_arena_alloc(root, 0x1000, 0, &all), 0);
	f.addr = all;
	failures += woken(child, 60 * 1000 * MS, free_it, nothing, &f, BASE);
	CHECK_EQ(vmspace_arena_check(child), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

/* Import functions that have space only once `open` is set. */
struct gate {
	atomic_int open;
	int taken;
};

static int gate_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct gate *g = arg;
	(void)flags;
	if (!atomic_load(&g->open) || g->taken || size > 0x1000)
		return -ENOMEM;
	g->taken = 1;
	*addrp = BASE + 0x100000;
	return 0;
}

static void gate_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct gate *g = arg;
	(void)addr;
	(void)size;
	g->taken = 0;
}

static void open_gate(void *arg)
{
	atomic_store(&((struct gate *)arg)->open, 1);
}

/* An arena importing through functions polls: -ETIMEDOUT no earlier than
 * asked (a timeout shorter than the poll interval included), and a wait
 * that sees the import succeed once the gate opens. */
static int import_functions(void)
{
	int failures = 0;
	struct gate g = { 0 };
	vmspace_arena_t *a = vmspace_arena_create("timed-import", 0, 0, 0x1000, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, gate_import, gate_release, &g, 0x1000), 0);
	vmspace_addr_t x = 0;
	uint64_t waited;
	CHECK_EQ(timed(a, 0x1000, 0, 3 * MS, &x, &waited), -ETIMEDOUT);
	CHECK(waited >= 3 * MS);
	CHECK_EQ(timed(a, 0x1000, 0, 25 * MS, &x, &waited), -ETIMEDOUT);
	CHECK(waited >= 25 * MS);
	failures += woken(a, 60 * 1000 * MS, open_gate, nothing, &g, BASE + 0x100000);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(g.taken, 0);
	return failures;
}

/* Import functions set on a root while an allocation of it (or of its
 * child) waits with VMSPACE_WAIT: then the gate opens, with no free and no
 * add to wake anyone. */
struct late {
	vmspace_arena_t *root;
	struct gate *gate;
};

static void set_import_then_open(void *arg)
{
	struct late *l = arg;
	vmspace_arena_set_import(l->root, gate_import, gate_release, l->gate, 0x1000);
	usleep(50 * 1000); /* the waiter tries the closed gate, and sleeps */
	open_gate(l->gate);
}

static void add_to_root(void *arg)
{
	struct late *l = arg;
	vmspace_arena_add(l->root, BASE + 0x200000, 0x1000, 0);
}

/* A wait that began before the import functions were set polls them as
 * one begun after. */
static int import_set_while_waiting(void)
{
	int failures = 0;
	for (int child = 0; child <= 1; child++) {
		struct gate g = { 0 };
		vmspace_arena_t *root = vmspace_arena_create("late-root", 0, 0, 0x1000, 0, 0);
		vmspace_arena_t *a = root;
		struct vmspace_params p = { .name = "late-child", .quantum = 0x1000, .parent = root };
		if (child)
			CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
		struct late l = { .root = root, .gate = &g };
		failures += woken(a, 0, set_import_then_open, add_to_root, &l, BASE + 0x100000);
		CHECK_EQ(vmspace_arena_check(a), 0);
		if (child)
			CHECK_EQ(vmspace_arena_destroy(a), 0);
		CHECK_EQ(vmspace_arena_destroy(root), 0);
		CHECK_EQ(g.taken, 0);
	}
	return failures;
}

int ctest_timed(void)
{
	return times_out() + root_and_child() + import_functions() + import_set_while_waiting();
}
