/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Outside review of today's wait_at_root: many waiting allocations (some
 * VMSPACE_WAIT, some timed with a long timeout), in a root or in a child
 * waiting at its root, begun before vmspace_arena_set_import, racing it at
 * varied moments; the import functions' source opens later, with nothing
 * to wake anyone: every waiter must start polling and get its own import.
 * Also: a timed wait racing set_import never returns before its timeout.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"

#define MS 1000000ULL
#define N 6
#define TBASE 0x40000000UL

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* Import functions handing out distinct 0x1000 ranges once `open`. */
struct many {
	atomic_int open;
	atomic_int next;
	atomic_int live;
};

static int many_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct many *m = arg;
	(void)flags;
	if (!atomic_load(&m->open) || size > 0x1000)
		return -ENOMEM;
	int k = atomic_fetch_add(&m->next, 1);
	atomic_fetch_add(&m->live, 1);
	*addrp = TBASE + (vmspace_addr_t)k * 0x10000;
	return 0;
}

static void many_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct many *m = arg;
	(void)addr;
	(void)size;
	atomic_fetch_sub(&m->live, 1);
}

static int many_waiters(int child, int round)
{
	int failures = 0;
	struct many m = { 0 };
	vmspace_arena_t *root = vmspace_arena_create("ot-root", 0, 0, 0x1000, 0, 0);
	vmspace_arena_t *a = root;
	struct vmspace_params p = { .name = "ot-child", .quantum = 0x1000, .parent = root };
	if (child)
		CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	struct ct_waiting w[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct ct_waiting){ .arena = a, .timeout_ns = (i & 1) ? 60000 * MS : 0 };
		CHECK_EQ(pthread_create(&t[i], NULL, ct_waiter, &w[i]), 0);
	}
	/* Race the waiters' start at varied moments. */
	if (round % 3 == 1)
		usleep(200 * (unsigned)round);
	else if (round % 3 == 2)
		for (int i = 0; i < N; i++)
			while (!atomic_load(&w[i].started))
				sched_yield();
	CHECK_EQ(vmspace_arena_set_import(root, many_import, many_release, &m, 0x1000), 0);
	usleep(30 * 1000); /* the waiters try the closed source, and sleep */
	atomic_store(&m.open, 1);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	int stuck = 0;
	for (int i = 0; i < N; i++) {
		int joined = pthread_timedjoin_np(t[i], NULL, &until);
		if (joined != 0) {
			stuck++;
			/* Unstick: a span of its own for each waiter. */
			vmspace_arena_add(root, 0x100000 + (vmspace_addr_t)i * 0x10000, 0x1000, 0);
			CHECK_EQ(pthread_join(t[i], NULL), 0);
		}
	}
	if (stuck)
		fprintf(stderr, "outside_today: child %d round %d: %d waiters never polled\n",
			child, round, stuck);
	CHECK_EQ(stuck, 0);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(w[i].result, 0);
		for (int j = 0; j < i; j++)
			CHECK(w[i].got != w[j].got);
	}
	for (int i = 0; i < N; i++)
		if (w[i].result == 0)
			CHECK_EQ(vmspace_arena_free(a, w[i].got, 0x1000), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	if (child)
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(vmspace_arena_destroy(root), 0);
	CHECK_EQ(atomic_load(&m.live), 0);
	return failures;
}

/* A timed wait with a timeout shorter than the poll interval, and one
 * longer, while set_import happens on another thread and the source
 * stays closed: -ETIMEDOUT, never before the timeout. */
struct setter {
	vmspace_arena_t *root;
	struct many *m;
};

static void *set_later(void *arg)
{
	struct setter *s = arg;
	usleep(1000);
	vmspace_arena_set_import(s->root, many_import, many_release, s->m, 0x1000);
	return NULL;
}

static int timed_vs_set_import(void)
{
	int failures = 0;
	static const uint64_t timeouts[] = { 1 * MS, 3 * MS, 15 * MS, 35 * MS };
	for (unsigned i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
		struct many m = { 0 };
		vmspace_arena_t *root = vmspace_arena_create("ot-timed", 0, 0, 0x1000, 0, 0);
		struct setter s = { .root = root, .m = &m };
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, set_later, &s), 0);
		vmspace_addr_t x = 0;
		uint64_t t0 = now_ns();
		int e = vmspace_arena_alloc_timed(root, 0x1000, 0, timeouts[i], &x);
		uint64_t waited = now_ns() - t0;
		CHECK_EQ(e, -ETIMEDOUT);
		if (waited < timeouts[i])
			fprintf(stderr, "outside_today: timeout %llu ns returned after %llu ns\n",
				(unsigned long long)timeouts[i], (unsigned long long)waited);
		CHECK(waited >= timeouts[i]);
		CHECK_EQ(pthread_join(t, NULL), 0);
		CHECK_EQ(vmspace_arena_destroy(root), 0);
	}
	return failures;
}

int ctest_outside_today(void)
{
	int failures = 0;
	for (int child = 0; child <= 1; child++)
		for (int round = 0; round < 9; round++)
			failures += many_waiters(child, round);
	return failures + timed_vs_set_import();
}
