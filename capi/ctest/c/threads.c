/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Threads from C (pthreads): random traffic on one shared arena with
 * quantum caches, every unit owned by at most one thread at a time; a
 * thread waiting for space that another frees, or adds as a span; racing
 * double frees, of which exactly one succeeds.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"

#define BASE 0x10000000UL
#define QUANTUM 16UL
#define UNITS 65536UL /* a span of 1 MiB */
#define THREADS 4
#define STEPS 20000

struct shared {
	vmspace_arena_t *arena;
	_Atomic unsigned char owner[UNITS]; /* 0 or the owning thread + 1 */
	atomic_int overlaps, errors;
};

struct worker {
	struct shared *sh;
	int id;
	uint64_t seed;
};

/* Claim (or release) every unit of [addr, addr + size) for thread `id`. */
static void stamp(struct shared *sh, vmspace_addr_t addr, vmspace_size_t size, int id, int claim)
{
	vmspace_size_t first = (addr - BASE) / QUANTUM, n = (size + QUANTUM - 1) / QUANTUM;
	for (vmspace_size_t u = first; u < first + n && u < UNITS; u++) {
		unsigned char want = claim ? 0 : (unsigned char)(id + 1);
		unsigned char to = claim ? (unsigned char)(id + 1) : 0;
		if (!atomic_compare_exchange_strong(&sh->owner[u], &want, to))
			atomic_fetch_add(&sh->overlaps, 1);
	}
}

static void *traffic(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	vmspace_addr_t live[64];
	vmspace_size_t size[64];
	int n = 0;
	for (int step = 0; step < STEPS; step++) {
		if (n < 64 && (n == 0 || ct_below(&w->seed, 2))) {
			/* small sizes hit the caches, larger ones the arena */
			vmspace_size_t s = ct_below(&w->seed, 4) ? 1 + ct_below(&w->seed, 128)
								 : 1 + ct_below(&w->seed, 4096);
			int fits[] = { 0, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT };
			int r = vmspace_arena_alloc(sh->arena, s, fits[ct_below(&w->seed, 4)], &live[n]);
			if (r == 0) {
				size[n] = s;
				stamp(sh, live[n], s, w->id, 1);
				n++;
			} else if (r != -ENOMEM) {
				atomic_fetch_add(&sh->errors, 1);
			}
		} else {
			int i = (int)ct_below(&w->seed, (uint64_t)n);
			stamp(sh, live[i], size[i], w->id, 0);
			if (vmspace_arena_free(sh->arena, live[i], size[i]) != 0)
				atomic_fetch_add(&sh->errors, 1);
			live[i] = live[--n];
			size[i] = size[n];
		}
		if (step % 5000 == 0 && vmspace_arena_check(sh->arena) != 0)
			atomic_fetch_add(&sh->errors, 1);
	}
	while (n > 0) {
		n--;
		stamp(sh, live[n], size[n], w->id, 0);
		if (vmspace_arena_free(sh->arena, live[n], size[n]) != 0)
			atomic_fetch_add(&sh->errors, 1);
	}
	return NULL;
}

static int shared_traffic(void)
{
	int failures = 0;
	static struct shared sh;
	memset(&sh, 0, sizeof sh);
	sh.arena = vmspace_arena_create("threads", BASE, UNITS * QUANTUM, QUANTUM, 128, 0);
	CHECK(sh.arena != NULL);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .sh = &sh, .id = i, .seed = 1000 + (uint64_t)i };
		CHECK_EQ(pthread_create(&t[i], NULL, traffic, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	CHECK_EQ(atomic_load(&sh.overlaps), 0);
	CHECK_EQ(atomic_load(&sh.errors), 0);
	CHECK_EQ(vmspace_arena_check(sh.arena), 0);
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_counters(sh.arena, &c), 0);
	CHECK(c.qcache_misses > 0);
	CHECK_EQ(c.bad_frees, 0);
	/*
	 * A CPU's hits reach the counters only at its next miss (vmspace.h),
	 * and the traffic above may never miss again once warm: hits > 0 here
	 * would depend on the scheduling. Allocating many more objects of one
	 * class than two magazines hold makes every CPU this thread runs on
	 * miss after its hits, so they must show.
	 */
	enum { MANY = 40 * 15 };
	static vmspace_addr_t many[MANY];
	for (int i = 0; i < MANY; i++)
		CHECK_EQ(vmspace_arena_alloc(sh.arena, QUANTUM, 0, &many[i]), 0);
	CHECK_EQ(vmspace_arena_counters(sh.arena, &c), 0);
	CHECK(c.qcache_hits > 0);
	for (int i = 0; i < MANY; i++)
		CHECK_EQ(vmspace_arena_free(sh.arena, many[i], QUANTUM), 0);
	CHECK_EQ(vmspace_arena_destroy(sh.arena), 0);
	return failures;
}

static int wait_for_space(void)
{
	int failures = 0;
	struct ct_waiting w = { .arena = vmspace_arena_create("wait", BASE, 0x1000, 16, 0, 0) };
	vmspace_addr_t all;
	CHECK_EQ(vmspace_arena_alloc(w.arena, 0x1000, 0, &all), 0);
	CHECK_EQ(vmspace_arena_alloc(w.arena, 16, 0, &all), -ENOMEM);
	all = BASE;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, ct_waiter, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	for (int i = 0; i < 1000; i++)
		sched_yield(); /* let it go to sleep (not needed for correctness) */
	CHECK_EQ(vmspace_arena_free(w.arena, all, 0x1000), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(w.result, 0);
	CHECK_EQ(w.got, BASE);
	CHECK_EQ(vmspace_arena_free(w.arena, w.got, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(w.arena), 0);
	return failures;
}

/* A waiter is woken by a span added to its arena (vmspace_arena_add), not
 * only by a free. It is given time to fall asleep first, and a watchdog
 * turns a waiter never woken into a failure, ended by a free, rather than
 * a hang. */
static int wait_for_a_span(void)
{
	int failures = 0;
	struct ct_waiting w = { .arena = vmspace_arena_create("wait-add", BASE, 0x1000, 16, 0, 0) };
	vmspace_addr_t all;
	CHECK_EQ(vmspace_arena_alloc(w.arena, 0x1000, 0, &all), 0);
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, ct_waiter, &w), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	usleep(100 * 1000);
	CHECK_EQ(vmspace_arena_add(w.arena, BASE + 0x10000, 0x1000, 0), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	int joined = pthread_timedjoin_np(t, NULL, &until);
	CHECK_EQ(joined, 0);
	if (joined != 0) {
		CHECK_EQ(vmspace_arena_free(w.arena, all, 0x1000), 0);
		CHECK_EQ(pthread_join(t, NULL), 0);
		all = w.got;
	} else {
		CHECK_EQ(w.result, 0);
		CHECK_EQ(w.got, BASE + 0x10000);
		CHECK_EQ(vmspace_arena_free(w.arena, all, 0x1000), 0);
	}
	CHECK_EQ(vmspace_arena_free(w.arena, w.got, 0x1000), 0);
	CHECK_EQ(vmspace_arena_destroy(w.arena), 0);
	return failures;
}

struct racer {
	vmspace_arena_t *arena;
	pthread_barrier_t *go;
	vmspace_addr_t *addr;
	vmspace_size_t size;
	int rounds, ok, refused, other;
	int by_handle;
	struct vmspace_handle *h;
};

static void *racing_free(void *arg)
{
	struct racer *r = arg;
	for (int i = 0; i < r->rounds; i++) {
		pthread_barrier_wait(r->go); /* the allocation is ready */
		int e = r->by_handle ? vmspace_arena_free_handle(r->arena, *r->h, NULL)
				     : vmspace_arena_free(r->arena, *r->addr, r->size);
		if (e == 0)
			r->ok++;
		else if (e == -ENOENT || e == -EMSGSIZE)
			r->refused++;
		else
			r->other++;
		pthread_barrier_wait(r->go); /* both done */
	}
	return NULL;
}

static int racing_double_frees(void)
{
	int failures = 0;
	/* 48 is a cached size, 4096 an arena one; then by handle. */
	struct {
		vmspace_size_t size;
		int by_handle;
	} cases[] = { { 48, 0 }, { 4096, 0 }, { 256, 1 } };
	for (unsigned c = 0; c < 3; c++) {
		vmspace_arena_t *a = vmspace_arena_create("race", BASE, 0x100000, 16, 64, 0);
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, 3);
		vmspace_addr_t addr;
		struct vmspace_handle h;
		const int rounds = 300;
		struct racer r[2];
		pthread_t t[2];
		for (int i = 0; i < 2; i++) {
			r[i] = (struct racer){ .arena = a, .go = &go, .addr = &addr,
					       .size = cases[c].size, .rounds = rounds,
					       .by_handle = cases[c].by_handle, .h = &h };
			pthread_create(&t[i], NULL, racing_free, &r[i]);
		}
		for (int i = 0; i < rounds; i++) {
			if (cases[c].by_handle)
				CHECK_EQ(vmspace_arena_alloc_handle(a, cases[c].size, 0, &h), 0);
			else
				CHECK_EQ(vmspace_arena_alloc(a, cases[c].size, 0, &addr), 0);
			pthread_barrier_wait(&go);
			pthread_barrier_wait(&go);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		CHECK_EQ(r[0].ok + r[1].ok, rounds);
		CHECK_EQ(r[0].refused + r[1].refused, rounds);
		CHECK_EQ(r[0].other + r[1].other, 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		pthread_barrier_destroy(&go);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

int ctest_threads(void)
{
	return shared_traffic() + wait_for_space() + wait_for_a_span() + racing_double_frees();
}
