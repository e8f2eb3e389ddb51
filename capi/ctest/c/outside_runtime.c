/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * From an outside reviewer's C runtime (written from the headers alone):
 * the two defects it found, each a group that failed before its fix.
 *
 *  - import_align(): an arena importing through the caller's import
 *    function (which takes no alignment) and a request aligned above the
 *    import quantum, by align and by nocross, native and vmem(9): the
 *    import was asked for the bare size, came back quantum-aligned and the
 *    allocation failed with -ENOMEM although the source had room;
 *  - child_wait(): a VMSPACE_WAIT allocation in an arena with a parent,
 *    a grandchild's, and one waiting while a sibling gives space back: the
 *    waiter slept through space freed in its parent (and a request without
 *    VMSPACE_WAIT succeeded meanwhile).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "ctest.h"

#define PG 0x1000UL

/* ------------------------------------------------------- import_align */

static vmspace_arena_t *import_src;
static int import_calls;
static vmspace_size_t import_asked;

static int import_fn(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *ap)
{
	(void)arg;
	(void)flags;
	import_calls++;
	import_asked = size;
	return vmspace_arena_alloc(import_src, size, 0, ap) ? -1 : 0;
}

static void release_fn(void *arg, vmspace_addr_t a, vmspace_size_t size)
{
	(void)arg;
	if (vmspace_arena_free(import_src, a, size))
		abort();
}

static int import_align(void)
{
	int failures = 0;
	vmspace_addr_t x = 0;
	/* The source hands out 4 KiB-aligned ranges from 0x1000 up. */
	import_src = vmspace_arena_create("src", PG, 16 << 20, PG, 0, 0);
	vmspace_arena_t *a = vmspace_arena_create("imp", 0, 0, PG, 0, 0);
	CHECK(import_src && a);
	CHECK_EQ(vmspace_arena_set_import(a, import_fn, release_fn, NULL, 0), 0);

	CHECK_EQ(vmspace_arena_xalloc(a, PG, 1 << 20, 0, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x & 0xfffff, 0);
	/* Room to align in: the size plus the alignment less a quantum. */
	CHECK_EQ(import_asked, (1 << 20));
	CHECK_EQ(vmspace_arena_free(a, x, PG), 0);

	/* phase too: 0x800 past a 64 KiB boundary, two pages. */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * PG, 1 << 16, PG, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x & 0xffff, PG);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * PG), 0);

	/* nocross 8 KiB, 8 KiB: a bare 8 KiB import at 0x1000 crosses 0x2000. */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * PG, 0, 0, 2 * PG, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x / (2 * PG), (x + 2 * PG - 1) / (2 * PG));
	CHECK_EQ(vmspace_arena_free(a, x, 2 * PG), 0);

	/* Everything went back: the source is whole again. */
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_arena_sizes(import_src, &s), 0);
	CHECK_EQ(s.allocated, 0);

	/* vmem(9): FreeBSD's vmem_import grows the request by the alignment. */
	vmem_t *v = vmem_create("v", 0, 0, PG, 0, M_NOWAIT);
	CHECK(v != NULL);
	vmem_set_import(v, import_fn, release_fn, NULL, 0);
	vmem_addr_t y = 0;
	CHECK_EQ(vmem_xalloc(v, PG, 1 << 20, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), 0);
	CHECK_EQ(y & 0xfffff, 0);
	vmem_xfree(v, y, PG);
	vmem_destroy(v);
	CHECK_EQ(vmspace_arena_sizes(import_src, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK(import_calls >= 4);
	CHECK_EQ(vmspace_arena_destroy(import_src), 0);
	return failures;
}

/* --------------------------------------------------------- child_wait */

struct waiter {
	vmspace_arena_t *arena;
	vmspace_addr_t got;
	int err;
	atomic_int done;
};

static void *wait_alloc(void *arg)
{
	struct waiter *w = arg;
	w->err = vmspace_arena_alloc(w->arena, PG, VMSPACE_WAIT, &w->got);
	atomic_store(&w->done, 1);
	return NULL;
}

/* Whether the waiter finished within about two seconds. */
static int woken(struct waiter *w)
{
	for (int i = 0; i < 200 && !atomic_load(&w->done); i++)
		usleep(10000);
	return atomic_load(&w->done);
}

/* Start a waiting allocation in `arena` and let it fall asleep. */
static void start(struct waiter *w, pthread_t *t, vmspace_arena_t *arena)
{
	w->arena = arena;
	atomic_store(&w->done, 0);
	pthread_create(t, NULL, wait_alloc, w);
	usleep(100000);
}

/* End the waiter however it went: space in its own arena wakes it. */
static int finish(struct waiter *w, pthread_t t, int expect_woken)
{
	int failures = 0;
	int ok = woken(w);
	CHECK_EQ(ok, expect_woken);
	if (!ok)
		CHECK_EQ(vmspace_arena_add(w->arena, 0x7000000, PG, 0), 0);
	pthread_join(t, NULL);
	CHECK_EQ(w->err, 0);
	CHECK_EQ(vmspace_arena_free(w->arena, w->got, PG), 0);
	return failures;
}

static int child_wait(void)
{
	int failures = 0;
	struct waiter w;
	pthread_t t;
	vmspace_addr_t hold[4], y;
	vmspace_arena_t *par = vmspace_arena_create("par", 0x100000, 4 * PG, PG, 0, 0);
	struct vmspace_params p = { .name = "ch", .quantum = PG, .parent = par };
	vmspace_arena_t *ch = NULL, *gc = NULL, *sib = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &ch), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(vmspace_arena_alloc(par, PG, 0, &hold[i]), 0);

	/* A free in the parent wakes the child's waiter. */
	start(&w, &t, ch);
	CHECK_EQ(atomic_load(&w.done), 0);
	CHECK_EQ(vmspace_arena_free(par, hold[0], PG), 0);
	failures += finish(&w, t, 1);
	CHECK_EQ(vmspace_arena_alloc(par, PG, 0, &hold[0]), 0);

	/* A span added to the parent wakes it too. */
	start(&w, &t, ch);
	CHECK_EQ(vmspace_arena_add(par, 0x200000, PG, 0), 0);
	failures += finish(&w, t, 1);
	CHECK_EQ(vmspace_arena_alloc(par, PG, 0, &y), 0);

	/* A grandchild waits; its grandparent frees. */
	p.name = "gc";
	p.parent = ch;
	CHECK_EQ(vmspace_arena_create_ex(&p, &gc), 0);
	start(&w, &t, gc);
	CHECK_EQ(atomic_load(&w.done), 0);
	CHECK_EQ(vmspace_arena_free(par, hold[1], PG), 0);
	failures += finish(&w, t, 1);

	/* A sibling's destroy gives its span back to the parent. */
	p.name = "sib";
	p.parent = par;
	CHECK_EQ(vmspace_arena_create_ex(&p, &sib), 0);
	vmspace_addr_t s1;
	CHECK_EQ(vmspace_arena_alloc(sib, PG, 0, &s1), 0);
	start(&w, &t, ch);
	CHECK_EQ(atomic_load(&w.done), 0);
	CHECK_EQ(vmspace_arena_destroy(sib), 0);
	failures += finish(&w, t, 1);

	CHECK_EQ(vmspace_arena_check(gc), 0);
	CHECK_EQ(vmspace_arena_destroy(gc), 0);
	CHECK_EQ(vmspace_arena_check(ch), 0);
	CHECK_EQ(vmspace_arena_destroy(ch), 0);
	CHECK_EQ(vmspace_arena_free(par, y, PG), 0);
	for (int i = 0; i < 4; i++)
		if (i != 1)
			CHECK_EQ(vmspace_arena_free(par, hold[i], PG), 0);
	CHECK_EQ(vmspace_arena_check(par), 0);
	CHECK_EQ(vmspace_arena_destroy(par), 0);
	return failures;
}

int ctest_outside_runtime(void)
{
	int failures = 0;
	int f;
	f = import_align();
	if (f)
		fprintf(stderr, "outside_runtime: import_align: %d failed\n", f);
	failures += f;
	f = child_wait();
	if (f)
		fprintf(stderr, "outside_runtime: child_wait: %d failed\n", f);
	failures += f;
	return failures;
}
