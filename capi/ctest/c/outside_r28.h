/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review: the claims of vmspace.h and vmspace/vmem.h not
 * yet tested by tests/outside_r25_docs_c.rs, one entry point per area
 * (called from tests/outside_r28_c.rs). Each returns the number of failed
 * checks, each printed to stderr. The entry points are in
 * outside_r28_<area>.c; this header holds their shared helpers, the
 * larger ones defined in outside_r28_common.c.
 */
#ifndef OUTSIDE_R28_H
#define OUTSIDE_R28_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"

#define Q ((vmspace_size_t)0x1000)
#define B ((vmspace_addr_t)0x100000)
#define AMAX (~(vmspace_addr_t)0)
#define SMAX (~(vmspace_size_t)0)

/* An arena of n quanta at B, no caches, the given default policy. */
static inline vmspace_arena_t *mk(size_t n, int flags)
{
	return vmspace_arena_create("r28", B, n * Q, Q, 0, flags);
}

static inline struct vmspace_sizes sizes_of(vmspace_arena_t *a)
{
	struct vmspace_sizes s;
	memset(&s, 0xa5, sizeof s);
	if (vmspace_arena_sizes(a, &s) != 0)
		memset(&s, 0xff, sizeof s);
	return s;
}

static inline struct vmspace_counters counters_of(vmspace_arena_t *a)
{
	struct vmspace_counters c;
	memset(&c, 0, sizeof c);
	vmspace_arena_counters(a, &c);
	return c;
}

/* Segments collected by a walk. */
struct segs {
	int n;
	struct vmspace_segment s[64];
};

static inline int collect(void *arg, const struct vmspace_segment *seg)
{
	struct segs *g = arg;
	if (g->n < 64)
		g->s[g->n] = *seg;
	g->n++;
	return 0;
}

static inline struct segs walk_of(vmspace_arena_t *a, int mask)
{
	struct segs g;
	memset(&g, 0, sizeof g);
	if (vmspace_arena_walk(a, mask, collect, &g) != 0)
		g.n = -1;
	return g;
}

/* Whether two sizes structures say the same. */
static inline int same_sizes(struct vmspace_sizes x, struct vmspace_sizes y)
{
	return x.allocated == y.allocated && x.free == y.free && x.total == y.total &&
	       x.imported == y.imported && x.largest_free == y.largest_free &&
	       x.live == y.live && x.spans == y.spans && x.unflushed == y.unflushed;
}

/* Trees: a child of parent importing from it, with the given quantum;
 * *err is vmspace_arena_create_ex's result. */
vmspace_arena_t *child_of(vmspace_arena_t *parent, vmspace_size_t quantum, int *err);

/* Import functions (r28_src_import, r28_src_release) on a struct src. */
struct src {
	vmspace_addr_t next;
	int calls, releases, last_flags;
	vmspace_size_t last_size;
	int misalign;
};

int r28_src_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp);
void r28_src_release(void *arg, vmspace_addr_t addr, vmspace_size_t size);

/* vmem.h: an error hook recording its last call, and a reclaim function
 * that frees r28_reclaim_addr (one quantum) once. */
extern int r28_hook_calls, r28_hook_err;
extern const char *r28_hook_what;
extern vmem_addr_t r28_hook_addr;
extern vmem_size_t r28_hook_size;
void r28_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
	      int error);

extern vmem_addr_t r28_reclaim_addr;
extern int r28_reclaim_calls, r28_reclaim_flags;
void r28_reclaimer(vmem_t *vm, int flags);

/* Waiting: a thread running w->op. */
struct waiter {
	pthread_t t;
	int (*op)(struct waiter *);
	void *a;
	vmspace_size_t size;
	vmspace_addr_t exact, min, max;
	int flags;
	vmspace_addr_t got;
	atomic_int done;
	int r;
};

static inline void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->r = w->op(w);
	atomic_store(&w->done, 1);
	return NULL;
}

static inline void start(struct waiter *w)
{
	atomic_store(&w->done, 0);
	pthread_create(&w->t, NULL, waiter_main, w);
}

/* Whether w ends within 10 s (joined if so). */
int ends(struct waiter *w);

static inline void nap(void)
{
	usleep(100 * 1000);
}

static inline int op_vmem_alloc(struct waiter *w)
{
	return vmem_alloc(w->a, w->size, w->flags, &w->got);
}

#endif
