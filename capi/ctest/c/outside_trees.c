/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * From an outside reviewer's tests of arena trees (written from the
 * headers alone): the defects it found, each a group that failed before
 * its fix.
 *
 *  - import_fn_wait(): a VMSPACE_WAIT allocation in an arena importing
 *    through import functions (native and vmem(9)'s classic
 *    vmem_set_import(child, vmem_alloc wrapper, vmem_free wrapper, parent))
 *    slept for good once the function's source freed space: nothing wakes
 *    it, and the function is called with M_NOWAIT. It now tries again
 *    every 10 ms; a child of such an arena too. And a raised limit now
 *    wakes a child's waiter (it woke only the child, not the root where
 *    the waiter sleeps);
 *  - unflushed_up_the_tree(): root -> mid -> leaf, a deferred free in leaf
 *    never flushed, leaf destroyed (mid keeps the span taken), then mid
 *    destroyed: the root handed out the unflushed range at once. A parent
 *    now takes such a span back freed and not flushed, so it is reused
 *    only after the flush it waits for, however far up it goes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "ctest.h"

#define PG 0x1000UL

struct waiter {
	vmspace_arena_t *arena; /* native, or NULL for vmem */
	vmem_t *vmem;
	vmspace_size_t size;
	vmspace_addr_t got;
	int err;
	atomic_int done;
	pthread_t t;
};

static void *wait_alloc(void *arg)
{
	struct waiter *w = arg;
	if (w->arena) {
		w->err = vmspace_arena_alloc(w->arena, w->size, VMSPACE_WAIT, &w->got);
	} else {
		vmem_addr_t a = 0;
		w->err = vmem_alloc(w->vmem, w->size, M_WAITOK, &a);
		w->got = a;
	}
	atomic_store(&w->done, 1);
	return NULL;
}

/* Start a waiting allocation and let it fall asleep (it must not finish). */
static int start(struct waiter *w)
{
	int failures = 0;
	atomic_store(&w->done, 0);
	pthread_create(&w->t, NULL, wait_alloc, w);
	usleep(100000);
	CHECK_EQ(atomic_load(&w->done), 0);
	return failures;
}

/* Whether the waiter finished within about two seconds; if not, it is
 * unblocked with an add to its arena (so that the test ends) and counted. */
static int finish(struct waiter *w)
{
	int failures = 0;
	for (int i = 0; i < 200 && !atomic_load(&w->done); i++)
		usleep(10000);
	int ok = atomic_load(&w->done);
	CHECK(ok);
	if (!ok && w->arena)
		CHECK_EQ(vmspace_arena_add(w->arena, 0x70000000, w->size, 0), 0);
	if (!ok && !w->arena)
		CHECK_EQ(vmem_add(w->vmem, 0x70000000, w->size, M_NOWAIT), 0);
	pthread_join(w->t, NULL);
	CHECK_EQ(w->err, 0);
	return failures;
}

static int src_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *ap)
{
	(void)flags;
	return vmspace_arena_alloc(arg, size, 0, ap) ? -1 : 0;
}

static void src_release(void *arg, vmspace_addr_t a, vmspace_size_t size)
{
	if (vmspace_arena_free(arg, a, size))
		abort();
}

static int vmem_import_fn(void *arg, vmem_size_t size, int flags, vmem_addr_t *ap)
{
	return vmem_alloc(arg, size, flags, ap);
}

static void vmem_release_fn(void *arg, vmem_addr_t a, vmem_size_t size)
{
	vmem_free(arg, a, size);
}

static int import_fn_wait(void)
{
	int failures = 0;
	vmspace_addr_t x;

	/* Native: the source is full; it frees; the waiter takes it. */
	vmspace_arena_t *src = vmspace_arena_create("src", 0x100000, 4 * PG, PG, 0, 0);
	vmspace_arena_t *a = vmspace_arena_create("a", 0, 0, 64, 0, 0);
	CHECK(src && a);
	CHECK_EQ(vmspace_arena_set_import(a, src_import, src_release, src, PG), 0);
	CHECK_EQ(vmspace_arena_alloc(src, 4 * PG, 0, &x), 0);
	struct waiter w = { .arena = a, .size = 64 };
	failures += start(&w);
	CHECK_EQ(vmspace_arena_free(src, x, 4 * PG), 0);
	failures += finish(&w);
	CHECK_EQ(vmspace_arena_free(a, w.got, 64), 0);

	/* A child of that arena waits at its root, which tries again too. */
	CHECK_EQ(vmspace_arena_alloc(src, 4 * PG, 0, &x), 0);
	struct vmspace_params p = { .name = "ch", .quantum = 64, .parent = a };
	vmspace_arena_t *ch = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &ch), 0);
	struct waiter c = { .arena = ch, .size = 128 };
	failures += start(&c);
	CHECK_EQ(vmspace_arena_free(src, x, 4 * PG), 0);
	failures += finish(&c);
	CHECK_EQ(vmspace_arena_free(ch, c.got, 128), 0);

	CHECK_EQ(vmspace_arena_destroy(ch), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_arena_destroy(src), 0);

	/* A raised limit wakes a child's waiter (at its root, which has room
	 * and no import functions to try again). */
	vmspace_arena_t *r = vmspace_arena_create("r", 0x100000, 16 * PG, PG, 0, 0);
	struct vmspace_params pl = { .name = "lim", .quantum = PG, .parent = r };
	vmspace_arena_t *lim = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&pl, &lim), 0);
	CHECK_EQ(vmspace_arena_set_limit(lim, PG), 0);
	struct waiter l = { .arena = lim, .size = 2 * PG };
	failures += start(&l);
	CHECK_EQ(vmspace_arena_set_limit(lim, 0), 0);
	failures += finish(&l);
	CHECK_EQ(vmspace_arena_free(lim, l.got, 2 * PG), 0);
	CHECK_EQ(vmspace_arena_destroy(lim), 0);
	CHECK_EQ(vmspace_arena_destroy(r), 0);

	/* vmem(9): the child imports from the parent through wrappers. */
	vmem_t *parent = vmem_create("parent", 0x100000, 4 * PG, PG, 0, M_NOWAIT);
	vmem_t *child = vmem_create("child", 0, 0, 64, 0, M_NOWAIT);
	CHECK(parent && child);
	vmem_set_import(child, vmem_import_fn, vmem_release_fn, parent, PG);
	vmem_addr_t y = 0;
	CHECK_EQ(vmem_alloc(parent, 4 * PG, M_NOWAIT, &y), 0);
	struct waiter v = { .vmem = child, .size = 64 };
	failures += start(&v);
	vmem_free(parent, y, 4 * PG);
	failures += finish(&v);
	vmem_free(child, v.got, 64);
	vmem_destroy(child);
	vmem_destroy(parent);
	return failures;
}

static int unflushed_up_the_tree(void)
{
	int failures = 0;
	vmspace_addr_t x, y;
	struct vmspace_sizes s;
	vmspace_size_t freed = 0;
	vmspace_arena_t *root = vmspace_arena_create("root", 0x100000, PG, PG, 0, 0);
	struct vmspace_params pm = { .name = "mid", .quantum = PG, .parent = root };
	vmspace_arena_t *mid = NULL, *leaf = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&pm, &mid), 0);
	struct vmspace_params pl = { .name = "leaf", .quantum = PG, .parent = mid };
	CHECK_EQ(vmspace_arena_create_ex(&pl, &leaf), 0);
	CHECK_EQ(vmspace_arena_alloc(leaf, PG, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(leaf, x, PG), 0);

	/* Leaf goes: its span is unflushed in mid, not reusable there. */
	CHECK_EQ(vmspace_arena_destroy(leaf), 0);
	CHECK_EQ(vmspace_arena_sizes(mid, &s), 0);
	CHECK_EQ(s.unflushed, PG);
	CHECK_EQ(vmspace_arena_alloc(mid, PG, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_check(mid), 0);

	/* Mid goes: the root holds it unflushed in turn. */
	CHECK_EQ(vmspace_arena_destroy(mid), 0);
	CHECK_EQ(vmspace_arena_sizes(root, &s), 0);
	CHECK_EQ(s.unflushed, PG);
	CHECK_EQ(vmspace_arena_alloc(root, PG, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_check(root), 0);

	/* Its flush makes it free. */
	CHECK_EQ(vmspace_arena_flushed(root, &freed), 0);
	CHECK_EQ(freed, PG);
	CHECK_EQ(vmspace_arena_alloc(root, PG, 0, &y), 0);
	CHECK_EQ(y, x);
	CHECK_EQ(vmspace_arena_free(root, y, PG), 0);

	/* Flushed in mid before mid goes: free in the root at once. */
	CHECK_EQ(vmspace_arena_create_ex(&pm, &mid), 0);
	pl.parent = mid;
	CHECK_EQ(vmspace_arena_create_ex(&pl, &leaf), 0);
	CHECK_EQ(vmspace_arena_alloc(leaf, PG, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(leaf, x, PG), 0);
	CHECK_EQ(vmspace_arena_destroy(leaf), 0);
	CHECK_EQ(vmspace_arena_flushed(mid, &freed), 0);
	CHECK_EQ(freed, PG);
	CHECK_EQ(vmspace_arena_destroy(mid), 0);
	CHECK_EQ(vmspace_arena_sizes(root, &s), 0);
	CHECK_EQ(s.unflushed, 0);
	CHECK_EQ(s.allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	return failures;
}

int ctest_outside_trees(void)
{
	int failures = 0;
	failures += import_fn_wait();
	failures += unflushed_up_the_tree();
	return failures;
}
