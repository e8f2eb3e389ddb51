/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): racing frees, releases
 * matching imports, threads mixing every operation.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* Threads: racing frees of one object, exactly one succeeds.               */

struct race {
	vmspace_arena_t *a;
	pthread_barrier_t *bar;
	int kind; /* 0 address, 1 handle, 2 deferred, 3 handle deferred */
	vmspace_addr_t addr;
	vmspace_size_t size;
	struct vmspace_handle h;
	int r;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(r->bar);
	switch (r->kind) {
	case 0:
		r->r = vmspace_arena_free(r->a, r->addr, r->size);
		break;
	case 1:
		r->r = vmspace_arena_free_handle(r->a, r->h, NULL);
		break;
	case 2:
		r->r = vmspace_arena_free_deferred(r->a, r->addr, r->size);
		break;
	default:
		r->r = vmspace_arena_free_handle_deferred(r->a, r->h, NULL);
		break;
	}
	return NULL;
}

int ctest_r28_threads(void)
{
	int failures = 0;
	for (int cached = 0; cached < 2; cached++) {
		vmspace_arena_t *a = vmspace_arena_create("r28-race", B, 256 * Q, Q, cached ? 4 * Q : 0, 0);
		CHECK(a != NULL);
		for (int kind = 0; kind < 4; kind++) {
			if (cached && kind == 2)
				continue; /* deferred frees of cache objects: refused */
			for (int round = 0; round < 200; round++) {
				pthread_barrier_t bar;
				pthread_barrier_init(&bar, NULL, 2);
				struct race r[2];
				memset(r, 0, sizeof r);
				vmspace_size_t size = (vmspace_size_t)(1 + round % 3) * Q;
				struct vmspace_handle h = { 0 };
				vmspace_addr_t x = 0;
				if (kind & 1)
					CHECK_EQ(vmspace_arena_alloc_handle(a, size, 0, &h), 0);
				else
					CHECK_EQ(vmspace_arena_alloc(a, size, 0, &x), 0);
				pthread_t t[2];
				for (int i = 0; i < 2; i++) {
					r[i] = (struct race){ a, &bar, kind, x, size, h, 1 };
					pthread_create(&t[i], NULL, racer, &r[i]);
				}
				for (int i = 0; i < 2; i++)
					pthread_join(t[i], NULL);
				pthread_barrier_destroy(&bar);
				int ok = (r[0].r == 0) + (r[1].r == 0);
				CHECK_EQ(ok, 1);
				CHECK(r[0].r == -ENOENT || r[1].r == -ENOENT);
				vmspace_size_t f;
				vmspace_arena_flushed(a, &f);
			}
		}
		CHECK_EQ(sizes_of(a).live, counters_of(a).qcache_slabs);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Racing frees of different kinds; releases match imports; counts.       */

struct rec_src {
	vmspace_addr_t next;
	int n;
	vmspace_addr_t addr[256];
	vmspace_size_t size[256];
	int released[256];
	int mismatched;
};

static int rec_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct rec_src *s = arg;
	(void)flags;
	if (s->n >= 256)
		return 1;
	*addrp = s->next;
	s->addr[s->n] = s->next;
	s->size[s->n] = size;
	s->n++;
	s->next += size + 64 * Q;
	return 0;
}

static void rec_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct rec_src *s = arg;
	for (int i = 0; i < s->n; i++) {
		if (s->addr[i] == addr) {
			if (s->size[i] != size || s->released[i])
				s->mismatched++;
			s->released[i]++;
			return;
		}
	}
	s->mismatched++;
}

static void *racer2(void *arg)
{
	return racer(arg);
}

int ctest_r28_races_and_releases(void)
{
	int failures = 0;
	/* free vs free_deferred, free_handle vs free_handle_deferred: one wins */
	vmspace_arena_t *a = mk(64, 0);
	for (int round = 0; round < 300; round++) {
		int handle = round & 1;
		pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, 2);
		struct race r[2];
		struct vmspace_handle h = { 0 };
		vmspace_addr_t x = 0;
		if (handle)
			CHECK_EQ(vmspace_arena_alloc_handle(a, 2 * Q, 0, &h), 0);
		else
			CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
		r[0] = (struct race){ a, &bar, handle ? 1 : 0, x, 2 * Q, h, 1 };
		r[1] = (struct race){ a, &bar, handle ? 3 : 2, x, 2 * Q, h, 1 };
		pthread_t t[2];
		pthread_create(&t[0], NULL, racer, &r[0]);
		pthread_create(&t[1], NULL, racer2, &r[1]);
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		pthread_barrier_destroy(&bar);
		CHECK_EQ((r[0].r == 0) + (r[1].r == 0), 1);
		CHECK(r[0].r == -ENOENT || r[1].r == -ENOENT);
		vmspace_arena_flushed(a, NULL);
	}
	CHECK_EQ(sizes_of(a).allocated, 0);
	CHECK_EQ(sizes_of(a).unflushed, 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* racing frees in a child whose free gives the span back */
	vmspace_arena_t *p = mk(256, 0);
	int err;
	vmspace_arena_t *c = child_of(p, Q, &err);
	for (int round = 0; round < 200; round++) {
		pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, 2);
		vmspace_addr_t x;
		CHECK_EQ(vmspace_arena_alloc(c, 3 * Q, 0, &x), 0);
		struct race r[2] = { { c, &bar, 0, x, 3 * Q, { 0 }, 1 }, { c, &bar, 0, x, 3 * Q, { 0 }, 1 } };
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, racer, &r[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&bar);
		CHECK_EQ((r[0].r == 0) + (r[1].r == 0), 1);
		CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
	}
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);

	/* every release gives back exactly a range the import returned, once */
	static struct rec_src s;
	memset(&s, 0, sizeof s);
	s.next = 0x40000000;
	a = vmspace_arena_create("r28-rec", 0, 0, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, rec_import, rec_release, &s, 4 * Q), 0);
	uint64_t rng = 5;
	vmspace_addr_t live[64];
	vmspace_size_t lsz[64];
	int n = 0;
	for (int i = 0; i < 2000; i++) {
		if (n < 64 && (n == 0 || ct_below(&rng, 2))) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 9)) * Q;
			vmspace_size_t align = ct_below(&rng, 3) == 0 ? ((vmspace_size_t)1 << (12 + ct_below(&rng, 6))) : 0;
			vmspace_size_t nocross = ct_below(&rng, 4) == 0 ? 16 * Q : 0;
			vmspace_addr_t x;
			int r = vmspace_arena_xalloc(a, size, align, 0, nocross, 0, 0, 0, 0, &x);
			if (r == 0) {
				if (align)
					CHECK_EQ(x % align, 0);
				if (nocross)
					CHECK_EQ(x / nocross, (x + size - 1) / nocross);
				live[n] = x;
				lsz[n++] = size;
			} else {
				CHECK(r == -ERANGE || (r == -ENOMEM && s.n >= 256));
			}
		} else {
			int k = (int)ct_below(&rng, (uint64_t)n);
			CHECK_EQ(vmspace_arena_free(a, live[k], lsz[k]), 0);
			live[k] = live[n - 1];
			lsz[k] = lsz[n - 1];
			n--;
		}
	}
	CHECK_EQ(s.mismatched, 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(s.mismatched, 0);
	for (int i = 0; i < s.n; i++)
		CHECK_EQ(s.released[i], 1);

	/* a refused deferred free of a slab object is a bad free */
	a = vmspace_arena_create("r28-qd", B, 1024 * Q, Q, Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	uint64_t bad = counters_of(a).bad_frees;
	CHECK_EQ(vmspace_arena_free_deferred(a, x, Q), -ENOENT);
	CHECK_EQ(counters_of(a).bad_frees, bad + 1);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* name and quantum of a destroyed arena (vmem_init storage) */
	static vmem_t st;
	vmem_t *vm = vmem_init(&st, "r28-dead", B, Q, Q, 0, 0);
	CHECK(vm != NULL);
	vmem_destroy(vm);
	CHECK(vmspace_arena_name((vmspace_arena_t *)vm) == NULL);
	CHECK_EQ(vmspace_arena_quantum((vmspace_arena_t *)vm), 0);
	CHECK_EQ(vmspace_arena_contains((vmspace_arena_t *)vm, B, Q), -EBADF);
	CHECK_EQ(vmspace_arena_walk((vmspace_arena_t *)vm, VMSPACE_SEG_ALL, collect, NULL), -EBADF);
	CHECK_EQ(vmem_roundup_size(vm, 5), 5);
	return failures;
}

/* Threads mixing every operation on one cached arena: no operation fails
 * but for lack of space, and the books balance afterwards. */
struct mix {
	vmspace_arena_t *a;
	uint64_t seed;
	int errors;
};

static void *mix_main(void *arg)
{
	struct mix *m = arg;
	uint64_t rng = m->seed;
	struct {
		vmspace_addr_t addr;
		vmspace_size_t size;
		struct vmspace_handle h;
		int handle;
	} live[48];
	int n = 0;
	for (int i = 0; i < 20000; i++) {
		int op = (int)ct_below(&rng, 10);
		if (op < 5 && n < 48) {
			vmspace_size_t size = ct_below(&rng, 2) ? (vmspace_size_t)(1 + ct_below(&rng, 3)) * Q - ct_below(&rng, 2)
								: (vmspace_size_t)(1 + ct_below(&rng, 20)) * Q;
			int r;
			if (op == 0) {
				r = vmspace_arena_alloc_handle(m->a, size, 0, &live[n].h);
				live[n].handle = 1;
				live[n].addr = live[n].h.addr;
			} else if (op == 1) {
				r = vmspace_arena_xalloc(m->a, size, Q << ct_below(&rng, 4), 0, 0, 0, 0, 0, VMSPACE_BESTFIT, &live[n].addr);
				live[n].handle = 0;
			} else {
				r = vmspace_arena_alloc(m->a, size, op == 2 ? VMSPACE_TOP : 0, &live[n].addr);
				live[n].handle = 0;
			}
			if (r == 0) {
				live[n].size = size;
				n++;
			} else if (r != -ENOMEM) {
				m->errors++;
			}
		} else if (op < 9 && n > 0) {
			int k = (int)ct_below(&rng, (uint64_t)n);
			int deferred = ct_below(&rng, 4) == 0;
			int r;
			if (live[k].handle)
				r = deferred ? vmspace_arena_free_handle_deferred(m->a, live[k].h, NULL)
					     : vmspace_arena_free_handle(m->a, live[k].h, NULL);
			else {
				r = deferred ? vmspace_arena_free_deferred(m->a, live[k].addr, live[k].size) : -1;
				if (r != 0)
					r = vmspace_arena_free(m->a, live[k].addr, live[k].size);
			}
			if (r != 0)
				m->errors++;
			live[k] = live[--n];
		} else if (op == 9) {
			if (ct_below(&rng, 2))
				vmspace_arena_flushed(m->a, NULL);
			else
				vmspace_arena_reclaim(m->a);
		}
	}
	while (n > 0) {
		n--;
		int r = live[n].handle ? vmspace_arena_free_handle(m->a, live[n].h, NULL)
				       : vmspace_arena_free(m->a, live[n].addr, live[n].size);
		if (r != 0)
			m->errors++;
	}
	return NULL;
}

int ctest_r28_mixed_threads(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-mix", B, 4096 * Q, Q, 3 * Q, 0);
	struct mix m[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		m[i] = (struct mix){ a, 0x1234 + (uint64_t)i * 77, 0 };
		pthread_create(&t[i], NULL, mix_main, &m[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(m[i].errors, 0);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	struct vmspace_sizes s = sizes_of(a);
	CHECK_EQ(s.total, s.allocated + s.free + s.unflushed);
	CHECK_EQ(s.unflushed, 0);
	CHECK_EQ(s.live, counters_of(a).qcache_slabs);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
