/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): waits (VMSPACE_WAIT, timed,
 * vmem(9)'s flags) and more probes.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Waiting: VMSPACE_WAIT, timed, vmem(9)'s flags.                          */

static int op_exact(struct waiter *w)
{
	return vmspace_arena_xalloc(w->a, w->size, 0, 0, 0, 0, 0, w->exact, VMSPACE_EXACT | VMSPACE_WAIT, &w->got);
}

static int op_alloc(struct waiter *w)
{
	return vmspace_arena_alloc(w->a, w->size, w->flags, &w->got);
}

static int op_vmem_xalloc(struct waiter *w)
{
	return vmem_xalloc(w->a, w->size, 0, 0, 0, w->min, w->max, w->flags, &w->got);
}

int ctest_r28_waits(void)
{
	int failures = 0, leak = 0, err;
	vmspace_addr_t x[8];

	/* an EXACT wait waits for its place, not for any space */
	vmspace_arena_t *a = mk(8, VMSPACE_FIRSTFIT);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x[i]), 0);
	static struct waiter w1;
	w1 = (struct waiter){ .op = op_exact, .a = a, .size = Q, .exact = B + 3 * Q };
	start(&w1);
	nap();
	CHECK_EQ(atomic_load(&w1.done), 0);
	CHECK_EQ(vmspace_arena_free(a, x[5], Q), 0);
	nap();
	CHECK_EQ(atomic_load(&w1.done), 0);
	CHECK_EQ(vmspace_arena_free(a, x[3], Q), 0);
	if (ends(&w1)) {
		CHECK_EQ(w1.r, 0);
		CHECK_EQ(w1.got, B + 3 * Q);
	} else {
		CHECK(0 && "EXACT|WAIT did not end");
		leak = 1;
	}

	/* timed: -ETIMEDOUT, each try that found no space a failure */
	struct vmspace_counters c0 = counters_of(a);
	vmspace_addr_t y;
	CHECK_EQ(vmspace_arena_alloc_timed(a, 2 * Q, 0, 200 * 1000 * 1000ULL, &y), -ETIMEDOUT);
	CHECK(counters_of(a).failures >= c0.failures + 2);

	/* a flush wakes a waiter */
	CHECK_EQ(vmspace_arena_free_deferred(a, x[0], Q), 0);
	static struct waiter w2;
	w2 = (struct waiter){ .op = op_alloc, .a = a, .size = Q, .flags = VMSPACE_WAIT };
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0); /* takes x[5]'s place */
	start(&w2);
	nap();
	CHECK_EQ(atomic_load(&w2.done), 0);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	if (ends(&w2)) {
		CHECK_EQ(w2.r, 0);
		CHECK_EQ(w2.got, x[0]);
	} else {
		CHECK(0 && "a flush did not wake the waiter");
		leak = 1;
	}
	if (!leak)
		CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a raised limit wakes a waiting child; a sibling's destroy too */
	vmspace_arena_t *p = mk(8, 0);
	vmspace_arena_t *c1 = child_of(p, Q, &err);
	vmspace_arena_t *c2 = child_of(p, Q, &err);
	CHECK_EQ(vmspace_arena_set_limit(c1, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(c1, 2 * Q, 0, &y), 0);
	static struct waiter w3;
	w3 = (struct waiter){ .op = op_alloc, .a = c1, .size = Q, .flags = VMSPACE_WAIT };
	start(&w3);
	nap();
	CHECK_EQ(atomic_load(&w3.done), 0);
	CHECK_EQ(vmspace_arena_set_limit(c1, 0), 0);
	int leak2 = 0;
	if (ends(&w3)) {
		CHECK_EQ(w3.r, 0);
	} else {
		CHECK(0 && "a raised limit did not wake the child");
		leak2 = 1;
	}
	/* c2 takes the rest; c1 waits; c2's destroy wakes it */
	CHECK_EQ(vmspace_arena_alloc(c2, 5 * Q, 0, &y), 0);
	CHECK_EQ(sizes_of(p).free, 0);
	static struct waiter w4;
	w4 = (struct waiter){ .op = op_alloc, .a = c1, .size = 2 * Q, .flags = VMSPACE_BESTFIT | VMSPACE_WAIT };
	start(&w4);
	nap();
	CHECK_EQ(atomic_load(&w4.done), 0);
	CHECK_EQ(vmspace_arena_destroy(c2), 0);
	if (ends(&w4)) {
		CHECK_EQ(w4.r, 0);
	} else {
		CHECK(0 && "a sibling's destroy did not wake the child");
		leak2 = 1;
	}
	if (!leak2) {
		CHECK_EQ(vmspace_arena_destroy(c1), 0);
		CHECK_EQ(vmspace_arena_destroy(p), 0);
	}

	/* vmem: no wait flag waits (M_BESTFIT alone); M_NOWAIT does not; the
	 * reclaim function is called once first */
	vmem_t *vm = vmem_create("r28-vw", B, 4 * Q, Q, 0, 0);
	vmem_addr_t v[4];
	for (int i = 0; i < 4; i++)
		CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &v[i]), 0);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), ENOMEM);
	vmem_set_reclaim(vm, r28_reclaimer);
	r28_reclaim_calls = 0;
	r28_reclaim_addr = 0;
	static struct waiter w5;
	w5 = (struct waiter){ .op = op_vmem_alloc, .a = vm, .size = Q, .flags = M_BESTFIT };
	start(&w5);
	nap();
	CHECK_EQ(atomic_load(&w5.done), 0);
	CHECK_EQ(r28_reclaim_calls, 1);
	CHECK_EQ(r28_reclaim_flags, M_BESTFIT);
	vmem_free(vm, v[2], Q);
	int leak3 = 0;
	if (ends(&w5)) {
		CHECK_EQ(w5.r, 0);
		CHECK_EQ(w5.got, v[2]);
	} else {
		CHECK(0 && "vmem_alloc without M_NOWAIT did not wake");
		leak3 = 1;
	}
	vmem_set_reclaim(vm, NULL);
	/* vmem_xalloc with a window and M_WAITOK waits for the window */
	static struct waiter w6;
	w6 = (struct waiter){ .op = op_vmem_xalloc, .a = vm, .size = Q, .min = B + 2 * Q,
			      .max = B + 4 * Q - 1, .flags = M_WAITOK };
	start(&w6);
	nap();
	CHECK_EQ(atomic_load(&w6.done), 0);
	vmem_free(vm, v[0], Q); /* outside the window */
	nap();
	CHECK_EQ(atomic_load(&w6.done), 0);
	vmem_free(vm, v[3], Q);
	if (ends(&w6)) {
		CHECK_EQ(w6.r, 0);
		CHECK_EQ(w6.got, v[3]);
	} else {
		CHECK(0 && "vmem_xalloc M_WAITOK in a window did not wake");
		leak3 = 1;
	}
	if (!leak3)
		vmem_destroy(vm);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* More probes.                                                            */

static int op_handle_free_wait(struct waiter *w)
{
	return vmspace_arena_alloc(w->a, w->size, VMSPACE_WAIT, &w->got);
}

struct stress {
	vmspace_arena_t *a;
	int seed;
	int errors;
};

static void *stress_main(void *arg)
{
	struct stress *s = arg;
	uint64_t rng = (uint64_t)s->seed * 0x9e3779b97f4a7c15ULL + 1;
	vmspace_addr_t live[32];
	vmspace_size_t sz[32];
	int n = 0;
	for (int i = 0; i < 20000; i++) {
		if (n < 32 && (n == 0 || ct_below(&rng, 2))) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 6)) * Q;
			vmspace_addr_t x;
			int r = vmspace_arena_alloc(s->a, size, 0, &x);
			if (r == 0) {
				live[n] = x;
				sz[n++] = size;
			} else if (r != -ENOMEM) {
				s->errors++;
			}
		} else {
			int k = (int)ct_below(&rng, (uint64_t)n);
			if (vmspace_arena_free(s->a, live[k], sz[k]) != 0)
				s->errors++;
			live[k] = live[n - 1];
			sz[k] = sz[n - 1];
			n--;
		}
	}
	while (n > 0) {
		n--;
		if (vmspace_arena_free(s->a, live[n], sz[n]) != 0)
			s->errors++;
	}
	return NULL;
}

int ctest_r28_more(void)
{
	int failures = 0, err;
	vmspace_addr_t x, y;
	/* windows that can never hold the size */
	vmspace_arena_t *a = mk(16, 0);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 1, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, Q - 1, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, B + 1, B + 3 * Q - 1, 0, 0, &x), -ERANGE);

	/* a root's waiter woken by a free by handle */
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 16 * Q, 0, &h), 0);
	static struct waiter w;
	w = (struct waiter){ .op = op_handle_free_wait, .a = a, .size = Q };
	start(&w);
	nap();
	CHECK_EQ(atomic_load(&w.done), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	int leak = 0;
	if (ends(&w))
		CHECK_EQ(w.r, 0);
	else {
		CHECK(0 && "free_handle did not wake the waiter");
		leak = 1;
	}
	if (!leak)
		CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a child destroyed with cache slabs and handles: the parent gets all
	 * back */
	vmspace_arena_t *p = mk(4096, 0);
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.quantum = Q;
	cp.qcache_max = 2 * Q;
	cp.parent = p;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &c), 0);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(vmspace_arena_alloc(c, (vmspace_size_t)(1 + i % 2) * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc_handle(c, 3 * Q, 0, &h), 0);
	CHECK_EQ(vmspace_arena_xalloc(c, Q, 32 * Q, 0, 0, 0, 0, 0, 0, &y), 0);
	CHECK(sizes_of(p).allocated > 0);
	CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(p).live, 0);
	CHECK_EQ(vmspace_arena_check(p), 0);

	/* threads in a tree: two children and their parent at once */
	vmspace_arena_t *c1 = child_of(p, Q, &err);
	vmspace_arena_t *c2 = child_of(p, Q, &err);
	struct stress s[4] = { { p, 1, 0 }, { c1, 2, 0 }, { c2, 3, 0 }, { c1, 4, 0 } };
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, stress_main, &s[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(s[i].errors, 0);
	CHECK_EQ(sizes_of(c1).allocated, 0);
	CHECK_EQ(sizes_of(c2).allocated, 0);
	CHECK_EQ(sizes_of(p).allocated, sizes_of(c1).imported + sizes_of(c2).imported);
	CHECK_EQ(vmspace_arena_check(c1), 0);
	CHECK_EQ(vmspace_arena_check(c2), 0);
	CHECK_EQ(vmspace_arena_check(p), 0);
	CHECK_EQ(vmspace_arena_destroy(c1), 0);
	CHECK_EQ(vmspace_arena_destroy(c2), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);
	return failures;
}

/* Timed waits end early when space comes back; UINT64_MAX waits as
 * VMSPACE_WAIT does. */
static int op_timed(struct waiter *w)
{
	return vmspace_arena_alloc_timed(w->a, w->size, w->flags, w->exact, &w->got);
}

int ctest_r28_timed_wakes(void)
{
	int failures = 0;
	uint64_t timeouts[2] = { UINT64_MAX, 60ULL * 1000 * 1000 * 1000 };
	for (int i = 0; i < 2; i++) {
		vmspace_arena_t *a = mk(4, 0);
		vmspace_addr_t x;
		CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
		static struct waiter w;
		/* exact carries the timeout here */
		w = (struct waiter){ .op = op_timed, .a = a, .size = 2 * Q, .exact = (vmspace_addr_t)timeouts[i] };
		start(&w);
		nap();
		CHECK_EQ(atomic_load(&w.done), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 4 * Q), 0);
		if (ends(&w)) {
			CHECK_EQ(w.r, 0);
			CHECK_EQ(vmspace_arena_destroy(a), 0);
		} else {
			CHECK(0 && "a timed wait did not wake for a free");
		}
	}
	return failures;
}
