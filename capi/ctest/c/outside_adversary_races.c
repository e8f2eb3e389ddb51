/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): two threads
 * freeing one allocation, two threads destroying one arena.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ races */

#define ROUNDS 200

enum { R_FREE, R_HANDLE, R_DEFERRED, R_VMEM, R_DESTROY };

struct race {
	pthread_barrier_t bar;
	vmspace_arena_t *a;
	vmspace_addr_t addr;
	vmspace_size_t size;
	struct vmspace_handle h;
	int kind;
	int result[2];
	int round;
};

struct racer_arg {
	struct race *r;
	int id;
};

static void *racer_run(void *arg)
{
	struct racer_arg *ra = arg;
	struct race *r = ra->r;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_barrier_wait(&r->bar); /* set up */
		pthread_barrier_wait(&r->bar); /* go */
		int e = 0;
		switch (r->kind) {
		case R_FREE:
			e = vmspace_arena_free(r->a, r->addr, r->size);
			break;
		case R_HANDLE:
			e = vmspace_arena_free_handle(r->a, r->h, NULL);
			break;
		case R_DEFERRED:
			e = vmspace_arena_free_deferred(r->a, r->addr, r->size);
			break;
		case R_VMEM:
			vmem_free((vmem_t *)r->a, r->addr, r->size);
			break;
		case R_DESTROY:
			e = vmspace_arena_destroy(r->a);
			break;
		}
		r->result[ra->id] = e;
		pthread_barrier_wait(&r->bar); /* done */
	}
	return NULL;
}

static atomic_int hook_hits;

static void race_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr,
		      vmem_size_t size, int error)
{
	(void)arg;
	(void)vm;
	(void)what;
	(void)addr;
	(void)size;
	if (error == ENOENT)
		atomic_fetch_add(&hook_hits, 1);
}

static int race_kind(int kind)
{
	int failures = 0;
	struct race r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	static vmem_t store;
	vmspace_arena_t *a = NULL;
	if (kind != R_DESTROY) {
		a = vmspace_arena_create("race", B, 0x100000, Q, 4 * Q, 0);
		CHECK(a != NULL);
		if (!a)
			return failures;
		vmem_set_error_hook((vmem_t *)a, race_hook, NULL);
	}
	r.a = a;
	pthread_barrier_init(&r.bar, NULL, 3);
	pthread_t t[2];
	struct racer_arg ra[2] = { { &r, 0 }, { &r, 1 } };
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, racer_run, &ra[i]);
	int bad = 0;
	atomic_store(&hook_hits, 0);
	for (int i = 0; i < ROUNDS; i++) {
		/* sizes in and out of the quantum caches */
		r.size = (i & 1) ? 2 * Q : 0x300;
		switch (kind) {
		case R_FREE:
		case R_VMEM:
			CHECK_EQ(vmspace_arena_alloc(a, r.size, 0, &r.addr), 0);
			break;
		case R_DEFERRED:
			CHECK_EQ(vmspace_arena_alloc(a, r.size, VMSPACE_TOP, &r.addr), 0);
			break;
		case R_HANDLE:
			CHECK_EQ(vmspace_arena_alloc_handle(a, r.size, 0, &r.h), 0);
			break;
		case R_DESTROY:
			r.a = (vmspace_arena_t *)vmem_init(&store, "racing", B, 0x1000, Q, 0, 0);
			CHECK(r.a != NULL);
			break;
		}
		pthread_barrier_wait(&r.bar);
		pthread_barrier_wait(&r.bar);
		pthread_barrier_wait(&r.bar);
		if (kind == R_VMEM)
			continue;
		int ok = (r.result[0] == 0) + (r.result[1] == 0);
		int loser = r.result[0] == 0 ? r.result[1] : r.result[0];
		int want = kind == R_DESTROY ? -EBADF : -ENOENT;
		if (ok != 1 || loser != want)
			bad++;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&r.bar);
	if (bad)
		fprintf(stderr, "outside_adversary: race kind %d: %d bad rounds\n", kind, bad);
	CHECK_EQ(bad, 0);
	if (kind == R_VMEM)
		CHECK_EQ(atomic_load(&hook_hits), ROUNDS);
	if (a) {
		CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
		failures += adv_consistent(a);
		struct vmspace_sizes s;
		CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
		CHECK_EQ(s.unflushed, 0);
		struct vmspace_counters c;
		CHECK_EQ(vmspace_arena_counters(a, &c), 0);
		CHECK_EQ(c.bad_frees, ROUNDS);
		CHECK_EQ(s.allocated, s.live == 0 ? 0 : s.allocated);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

int adv_races(void)
{
	int failures = 0;
	failures += race_kind(R_FREE);
	failures += race_kind(R_HANDLE);
	failures += race_kind(R_DEFERRED);
	failures += race_kind(R_VMEM);
	failures += race_kind(R_DESTROY);
	return failures;
}
