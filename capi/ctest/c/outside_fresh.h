/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Helpers shared by outside_fresh.c and outside_fresh_counts.c: a waiting
 * thread of each kind, a join under a watchdog, and a gated import
 * function.
 */
#ifndef OUTSIDE_FRESH_H
#define OUTSIDE_FRESH_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"

#define BASE 0x400000
#define MS 1000000ULL

static inline uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

enum how { TIMED, WAIT, XWAIT, VMEM_WAITOK };

struct waiter {
	vmspace_arena_t *arena;
	enum how how;
	vmspace_size_t size;
	int flags;
	uint64_t timeout_ns;
	vmspace_addr_t min, max;
	atomic_int started;
	vmspace_addr_t got;
	int result;
	uint64_t waited;
};

static inline void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	atomic_store(&w->started, 1);
	uint64_t t0 = now_ns();
	switch (w->how) {
	case TIMED:
		w->result = vmspace_arena_alloc_timed(w->arena, w->size, w->flags, w->timeout_ns,
						      &w->got);
		break;
	case WAIT:
		w->result = vmspace_arena_alloc(w->arena, w->size, w->flags | VMSPACE_WAIT, &w->got);
		break;
	case XWAIT:
		w->result = vmspace_arena_xalloc(w->arena, w->size, 0, 0, 0, w->min, w->max, 0,
						 w->flags | VMSPACE_WAIT, &w->got);
		break;
	case VMEM_WAITOK:
		w->result = vmem_alloc((vmem_t *)w->arena, w->size, M_WAITOK, &w->got);
		break;
	}
	w->waited = now_ns() - t0;
	return NULL;
}

static inline void start(pthread_t *t, struct waiter *w)
{
	w->result = 12345;
	pthread_create(t, NULL, waiter_main, w);
	while (!atomic_load(&w->started))
		sched_yield();
	usleep(50 * 1000);
}

/* Join within `secs` seconds: 0, or 1 when stuck (then `unstick` is called
 * with `arg` and the thread joined for good). */
static inline int join_or_unstick(pthread_t t, int secs, void (*unstick)(void *), void *arg)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += secs;
	if (pthread_timedjoin_np(t, NULL, &until) == 0)
		return 0;
	unstick(arg);
	pthread_join(t, NULL);
	return 1;
}

/* Unstick a waiter: a large span of its own in the arena given. */
static inline void add_far(void *arg)
{
	vmspace_arena_add(arg, 0x7000000, 0x100000, 0);
}



/* A gate import function: room once `open` is set. */
struct gate {
	atomic_int open;
	atomic_int calls;
	vmspace_addr_t next;
};

static inline int gate_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct gate *g = arg;
	(void)flags;
	atomic_fetch_add(&g->calls, 1);
	if (!atomic_load(&g->open))
		return 1;
	*addrp = g->next;
	g->next += (size + 0xfffff) & ~(vmspace_addr_t)0xfffff;
	return 0;
}

static inline void gate_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	(void)arg;
	(void)addr;
	(void)size;
}

int outside_fresh_counts(void);

#endif
