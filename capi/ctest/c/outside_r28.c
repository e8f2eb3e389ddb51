/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review: the claims of vmspace.h and vmspace/vmem.h not
 * yet tested by tests/outside_r25_docs_c.rs, one entry point per area
 * (called from tests/outside_r28_c.rs). Each returns the number of failed
 * checks, each printed to stderr.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
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
static vmspace_arena_t *mk(size_t n, int flags)
{
	return vmspace_arena_create("r28", B, n * Q, Q, 0, flags);
}

static struct vmspace_sizes sizes_of(vmspace_arena_t *a)
{
	struct vmspace_sizes s;
	memset(&s, 0xa5, sizeof s);
	if (vmspace_arena_sizes(a, &s) != 0)
		memset(&s, 0xff, sizeof s);
	return s;
}

static struct vmspace_counters counters_of(vmspace_arena_t *a)
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

static int collect(void *arg, const struct vmspace_segment *seg)
{
	struct segs *g = arg;
	if (g->n < 64)
		g->s[g->n] = *seg;
	g->n++;
	return 0;
}

static struct segs walk_of(vmspace_arena_t *a, int mask)
{
	struct segs g;
	memset(&g, 0, sizeof g);
	if (vmspace_arena_walk(a, mask, collect, &g) != 0)
		g.n = -1;
	return g;
}

/* Whether two sizes structures say the same. */
static int same_sizes(struct vmspace_sizes x, struct vmspace_sizes y)
{
	return x.allocated == y.allocated && x.free == y.free && x.total == y.total &&
	       x.imported == y.imported && x.largest_free == y.largest_free &&
	       x.live == y.live && x.spans == y.spans && x.unflushed == y.unflushed;
}

/* ---------------------------------------------------------------------- */
/* Arguments of alloc, alloc_timed, add, create_ex and friends.            */

struct sizemax_wait {
	vmspace_arena_t *a;
	vmspace_size_t size;
	int flags;
	int r;
};

static void *sizemax_waiter(void *arg)
{
	struct sizemax_wait *w = arg;
	vmspace_addr_t x = 0;
	w->r = vmspace_arena_alloc(w->a, w->size, w->flags, &x);
	return NULL;
}

/* Run alloc(size, flags) in a thread; its result, or 1 if it did not end
 * within 10 s (the thread is left behind, its arena leaked). */
static int alloc_in_thread(vmspace_arena_t *a, vmspace_size_t size, int flags, int *leaked)
{
	static struct sizemax_wait w[8];
	static int next;
	struct sizemax_wait *p = &w[next++ % 8];
	p->a = a;
	p->size = size;
	p->flags = flags;
	p->r = 1;
	pthread_t t;
	pthread_create(&t, NULL, sizemax_waiter, p);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(t, NULL, &ts) != 0) {
		pthread_detach(t);
		*leaked = 1;
		return 1;
	}
	return p->r;
}

int ctest_r28_args(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	vmspace_addr_t x = 0;
	CHECK(a != NULL);
	struct vmspace_sizes s0 = sizes_of(a);

	/* alloc: NULL arena -EINVAL; arena pointers that are not arenas -EBADF */
	CHECK_EQ(vmspace_arena_alloc(NULL, Q, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc((vmspace_arena_t *)((char *)a + 1), Q, 0, &x), -EBADF);
	static alignas(16) unsigned char zeroed[4096];
	CHECK_EQ(vmspace_arena_alloc((vmspace_arena_t *)zeroed, Q, 0, &x), -EBADF);
	/* zero size, unknown flags, EXACT outside xalloc */
	CHECK_EQ(vmspace_arena_alloc(a, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0x80, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, VMSPACE_EXACT, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0x100, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, (int)0x80000000u, &x), -EINVAL);
	/* sizes at SIZE_MAX and that round past it: -EOVERFLOW */
	CHECK_EQ(vmspace_arena_alloc(a, SMAX, 0, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc(a, SMAX - Q + 2, 0, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc(a, SMAX, VMSPACE_TOP, &x), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc(a, SMAX, VMSPACE_BESTFIT, &x), -EOVERFLOW);
	/* larger than any span, no overflow: -ENOMEM */
	CHECK_EQ(vmspace_arena_alloc(a, SMAX - Q + 1, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_alloc(a, 17 * Q, 0, &x), -ENOMEM);
	CHECK(same_sizes(s0, sizes_of(a)));

	/* VMSPACE_WAIT with a size that can never be had: at once, never a
	 * sleep (-EOVERFLOW, an error that is not a lack of space) */
	int leaked = 0;
	int r = alloc_in_thread(a, SMAX, VMSPACE_WAIT, &leaked);
	CHECK(r == -EOVERFLOW || r == -ERANGE);
	r = alloc_in_thread(a, SMAX - Q + 2, VMSPACE_WAIT, &leaked);
	CHECK(r == -EOVERFLOW || r == -ERANGE);
	CHECK_EQ(leaked, 0);

	/* alloc_timed */
	CHECK_EQ(vmspace_arena_alloc_timed(NULL, Q, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, 0, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_timed(a, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, 0x80, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, VMSPACE_EXACT, 0, &x), -EINVAL);
	r = vmspace_arena_alloc_timed(a, SMAX, 0, 1000000, &x);
	CHECK(r == -EOVERFLOW || r == -ERANGE);
	/* with VMSPACE_WAIT in flags (allowed), success at once */
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, VMSPACE_WAIT, 0, &x), 0);
	CHECK_EQ(x, B);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* UINT64_MAX with space: at once */
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, 0, UINT64_MAX, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);

	/* add */
	CHECK_EQ(vmspace_arena_add(NULL, 0x900000, Q, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, 0x900000, Q + 1, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, 0x900000, SMAX, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_add(a, 0x900000, SMAX - Q + 1, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_add(a, B - Q, 2 * Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B + 15 * Q, 2 * Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_add(a, B - 4 * Q, 32 * Q, 0), -EEXIST);
	CHECK(same_sizes(s0, sizes_of(a)));
	/* adjacent on either side is no overlap: spans of their own */
	CHECK_EQ(vmspace_arena_add(a, B - Q, Q, 0), 0);
	CHECK_EQ(vmspace_arena_add(a, B + 16 * Q, Q, 0), 0);
	CHECK_EQ(sizes_of(a).spans, 3);
	CHECK_EQ(sizes_of(a).total, 18 * Q);
	/* a span from address 0 */
	CHECK_EQ(vmspace_arena_add(a, 0, Q, 0), 0);

	/* set_import, set_limit, set_mtbf, reclaim on bad arenas */
	CHECK_EQ(vmspace_arena_set_import(NULL, NULL, NULL, NULL, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_set_import((vmspace_arena_t *)zeroed, NULL, NULL, NULL, 0), -EBADF);
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 3 * Q), -EINVAL);
	CHECK_EQ(vmspace_arena_set_limit(NULL, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_set_mtbf(NULL, 1, 1), -EINVAL);
	CHECK_EQ(vmspace_arena_reclaim(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_reclaim((vmspace_arena_t *)zeroed), -EBADF);
	CHECK_EQ(vmspace_arena_flushed(NULL, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_check(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)zeroed), -EBADF);
	CHECK_EQ(vmspace_arena_sizes(a, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_counters(a, NULL), -EINVAL);
	{
		alignas(16) unsigned char buf[sizeof(struct vmspace_sizes) + 16];
		CHECK_EQ(vmspace_arena_sizes(a, (struct vmspace_sizes *)(buf + 1)), -EINVAL);
		CHECK_EQ(vmspace_arena_counters(a, (struct vmspace_counters *)(buf + 1)), -EINVAL);
		CHECK_EQ(vmspace_arena_flushed(a, (vmspace_size_t *)(buf + 1)), -EINVAL);
	}
	CHECK_EQ(vmspace_arena_walk(NULL, VMSPACE_SEG_ALL, collect, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_histogram(NULL, NULL, 0), -EINVAL);
	CHECK_EQ(vmspace_arena_destroy(NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_destroy((vmspace_arena_t *)zeroed), -EBADF);
	CHECK(ct_all_zero(zeroed, sizeof zeroed));

	/* strerror: never NULL, each code of the list its own text */
	static const int codes[] = { EINVAL, EBADF, ENOMEM, ETIMEDOUT, ERANGE, EOVERFLOW,
				     ENOENT, EMSGSIZE, EEXIST, EBUSY, ENOSPC, EPROTO,
				     EIO, EAGAIN, EUCLEAN, EOPNOTSUPP };
	const char *unknown = vmspace_strerror(123456);
	CHECK(unknown != NULL);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const char *m = vmspace_strerror(-codes[i]);
		CHECK(m != NULL);
		CHECK(m && strcmp(m, unknown) != 0);
		CHECK(m && vmspace_strerror(codes[i]) && strcmp(m, vmspace_strerror(codes[i])) == 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(m, vmspace_strerror(-codes[j])) != 0);
	}
	CHECK(vmspace_strerror(-2147483647 - 1) != NULL);
	CHECK_EQ(vmspace_version(), VMSPACE_VERSION);

	CHECK_EQ(vmspace_arena_check(a), 0);
	if (!leaked)
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_r28_create(void)
{
	int failures = 0;
	vmspace_arena_t *a = NULL;
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.base = B;
	p.size = 16 * Q;
	p.quantum = Q;

	/* misaligned params or arenap: -EINVAL */
	{
		alignas(16) unsigned char buf[sizeof p + 16];
		memcpy(buf + 1, &p, sizeof p);
		CHECK_EQ(vmspace_arena_create_ex((const struct vmspace_params *)(buf + 1), &a), -EINVAL);
		CHECK(a == NULL);
		alignas(16) unsigned char out[32];
		CHECK_EQ(vmspace_arena_create_ex(&p, (vmspace_arena_t **)(out + 1)), -EINVAL);
	}
	/* quantum 0, not a power of two; base or size not multiples of it */
	p.quantum = 0;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	p.quantum = Q;
	p.base = B + 1;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	p.base = B;
	p.size = 16 * Q + 8;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	/* a span that wraps */
	p.base = AMAX - 2 * Q + 1;
	p.size = 4 * Q;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EOVERFLOW);
	p.base = B;
	p.size = 16 * Q;
	/* flags: WAIT, TOP, EXACT are not creation flags */
	p.flags = VMSPACE_WAIT;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	p.flags = VMSPACE_TOP;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	p.flags = 0;
	/* quantum 2^27 is allowed (the largest) */
	p.quantum = (vmspace_size_t)1 << 27;
	p.base = 0;
	p.size = (vmspace_size_t)1 << 28;
	p.qcache_max = (vmspace_size_t)1 << 30;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	if (a) {
		/* no caches for quanta over 2^22 */
		vmspace_addr_t x;
		CHECK_EQ(vmspace_arena_alloc(a, 1, 0, &x), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(counters_of(a).qcache_misses, 0);
		CHECK_EQ(vmspace_arena_quantum(a), (vmspace_size_t)1 << 27);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	p.quantum = Q;
	p.base = B;
	p.size = 16 * Q;
	p.qcache_max = 0;
	/* a dead or bogus parent: -EBADF */
	static alignas(16) unsigned char zeroed[4096];
	p.parent = (vmspace_arena_t *)zeroed;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EBADF);
	CHECK(a == NULL);
	p.parent = NULL;

	/* names: NULL allowed, long names cut to VMSPACE_NAME_MAX bytes */
	p.name = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	if (a) {
		CHECK(vmspace_arena_name(a) != NULL);
		CHECK(vmspace_arena_name(a) && strlen(vmspace_arena_name(a)) == 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	char longname[100];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	longname[0] = 'L';
	p.name = longname;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	if (a) {
		const char *n = vmspace_arena_name(a);
		CHECK(n && strlen(n) == VMSPACE_NAME_MAX);
		CHECK(n && strncmp(n, longname, VMSPACE_NAME_MAX) == 0);
		/* copied: changing the caller's string changes nothing */
		longname[0] = 'X';
		CHECK(n && n[0] == 'L');
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	p.name = "r28";
	/* the default policy: FIRSTFIT hands out the lowest */
	p.flags = VMSPACE_FIRSTFIT;
	CHECK_EQ(vmspace_arena_create_ex(&p, &a), 0);
	if (a) {
		vmspace_addr_t x, y;
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
		CHECK_EQ(x, B);
		CHECK_EQ(vmspace_arena_alloc(a, Q, VMSPACE_TOP, &y), 0);
		CHECK_EQ(y, B + 15 * Q);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* create: NULL on failure */
	CHECK(vmspace_arena_create("x", B, 16 * Q, 3 * Q, 0, 0) == NULL);
	CHECK(vmspace_arena_create("x", B, 16 * Q, Q, 0, VMSPACE_WAIT) == NULL);
	CHECK(vmspace_arena_create("x", B, 16 * Q, Q, 0, VMSPACE_BESTFIT | VMSPACE_NEXTFIT) == NULL);
	/* an empty arena (size 0) has no span; add gives it one */
	a = vmspace_arena_create(NULL, 0, 0, Q, 0, 0);
	CHECK(a != NULL);
	if (a) {
		vmspace_addr_t x;
		CHECK_EQ(sizes_of(a).spans, 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), -ENOMEM);
		CHECK_EQ(vmspace_arena_add(a, B, Q, 0), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
		CHECK_EQ(x, B);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* ---------------------------------------------------------------------- */
/* xalloc's constraints.                                                    */

int ctest_r28_xalloc(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(64, 0);
	vmspace_addr_t x = 0;
	CHECK(a != NULL);
	struct vmspace_sizes s0 = sizes_of(a);

	CHECK_EQ(vmspace_arena_xalloc(NULL, Q, 0, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, 0, 0, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0x80, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, SMAX, 0, 0, 0, 0, 0, 0, 0, &x), -EOVERFLOW);
	/* align: not a power of two (even below the quantum) -EINVAL */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 3, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, Q + Q / 2, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	/* phase at or above the alignment; with align 0 (the quantum) */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, Q, 0, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 4 * Q, 5 * Q, 0, 0, 0, 0, 0, &x), -EINVAL);
	/* nocross: a power of two below the quantum is not a multiple of it */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, Q / 2, 0, 0, 0, 0, &x), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 5 * Q, 0, 0, 0, 0, &x), -EINVAL);
	CHECK(same_sizes(s0, sizes_of(a)));

	/* an alignment below the quantum means the quantum */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 1, 0, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x % Q, 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, Q / 2, 0, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);

	/* align and phase: x % align == phase */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 16 * Q, 3 * Q, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x % (16 * Q), 3 * Q);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* nocross: [x, x + size) crosses no multiple of nocross */
	for (int i = 0; i < 8; i++) {
		vmspace_addr_t y;
		CHECK_EQ(vmspace_arena_xalloc(a, 3 * Q, 0, 0, 4 * Q, 0, 0, 0, VMSPACE_FIRSTFIT, &y), 0);
		CHECK_EQ(y / (4 * Q), (y + 3 * Q - 1) / (4 * Q));
	}
	/* nocross equal to the size: fits exactly in an aligned block */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q, 0, 0, 4 * Q, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x % (4 * Q), 0);
	/* nocross smaller than the size: never (-ERANGE), also with WAIT */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q + 1, 0, 0, 4 * Q, 0, 0, 0, 0, &x), -ERANGE);
	/* phase + size past nocross with alignment: never */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 4 * Q, 3 * Q, 4 * Q, 0, 0, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* min and max: any value; max exclusive */
	a = mk(64, 0);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, B + 1, 0, 0, 0, &x), 0);
	CHECK(x >= B + 1);
	CHECK_EQ(x, B + Q);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, B + 2 * Q - 1, 0, VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* a window with min >= max: never */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, B + 8 * Q, B + 8 * Q, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, B + 9 * Q, B + 8 * Q, 0, 0, &x), -ERANGE);
	/* a window smaller than the size: never */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q, 0, 0, 0, B, B + 3 * Q, 0, 0, &x), -ERANGE);
	/* a window fitting no aligned start: never */
	{
		int r = vmspace_arena_xalloc(a, Q, 16 * Q, 0, 0, B + Q, B + 15 * Q, 0, 0, &x);
		CHECK_EQ(r, -ERANGE);
	}
	/* ... and with VMSPACE_WAIT, at once */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q, 0, 0, 0, B, B + 3 * Q, 0, VMSPACE_WAIT, &x), -ERANGE);
	/* min near the top: min + size overflows; never */
	{
		int r = vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, AMAX - Q, 0, 0, 0, &x);
		CHECK(r == -ERANGE || r == -EOVERFLOW || r == -ENOMEM);
		r = vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, AMAX - Q, 0, 0, VMSPACE_WAIT, &x);
		CHECK(r == -ERANGE || r == -EOVERFLOW);
	}
	/* a window outside every span: -ENOMEM (an add could fill it) */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0x10000000, 0x20000000, 0, 0, &x), -ENOMEM);
	/* max inside: exclusive (the allocation ends at or below it) */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, 0, B + 5 * Q, 0, VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 3 * Q);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);

	/* EXACT */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, AMAX - Q + 1, VMSPACE_EXACT, &x), -EOVERFLOW);
	{
		int r = vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, 0, 0, AMAX - Q + 1, VMSPACE_EXACT, &x);
		CHECK_EQ(r, -EOVERFLOW);
	}
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0x20000000, VMSPACE_EXACT, &x), -ENOMEM);
	/* exact outside [min, max) or not at the alignment's phase: never */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, B + 4 * Q, 0, B, VMSPACE_EXACT, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, B + 4 * Q, B + 4 * Q, VMSPACE_EXACT, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 4 * Q, 0, 0, 0, 0, B + Q, VMSPACE_EXACT, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 2 * Q, 0, 0, B + Q, VMSPACE_EXACT, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 4 * Q, Q, 0, 0, 0, B + Q, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(x, B + Q);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
	/* exact across the end of a span: -ENOMEM */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, 0, 0, B + 63 * Q, VMSPACE_EXACT, &x), -ENOMEM);
	CHECK(same_sizes(sizes_of(a), (struct vmspace_sizes){ .allocated = 0, .free = 64 * Q, .total = 64 * Q, .largest_free = 64 * Q, .spans = 1 }));
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* extreme alignments: 2^63, with a phase just below it */
	a = vmspace_arena_create("r28-top", 0, 16 * Q, Q, 0, 0);
	CHECK(a != NULL);
	const vmspace_addr_t H = (vmspace_addr_t)1 << 63;
	CHECK_EQ(vmspace_arena_add(a, H - 4 * Q, 8 * Q, 0), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, H, 0, 0, 0, 0, 0, 0, &x), 0);
	CHECK(x == 0 || x == H);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, H, H - Q, 0, 0, 0, 0, 0, &x), 0);
	CHECK_EQ(x, H - Q);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, H, H - 4 * Q, 0, 0, 0, &x), 0);
	CHECK(x / H == (x + 2 * Q - 1) / H);
	/* 2 quanta at phase H - Q of H cross H: never */
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, H, H - Q, H, 0, 0, 0, 0, &x), -ERANGE);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Frees, deferred frees, policies.                                         */

int ctest_r28_frees(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(32, 0);
	vmspace_addr_t x, y;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_free(NULL, B, Q), -EINVAL);
	CHECK_EQ(vmspace_arena_free_deferred(NULL, B, Q), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
	struct vmspace_sizes s0 = sizes_of(a);
	struct vmspace_counters c0 = counters_of(a);
	/* smaller than allocated, in the middle, inside, rounded sizes */
	CHECK_EQ(vmspace_arena_free(a, x, Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q - 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q + 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x + 2 * Q, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, x + 1, 4 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, B + 20 * Q, Q), -ENOENT); /* free space */
	CHECK_EQ(vmspace_arena_free(a, 0x10000000, Q), -ENOENT); /* outside spans */
	CHECK_EQ(vmspace_arena_free(a, x, SMAX), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x + Q, 3 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0), -EMSGSIZE);
	CHECK(same_sizes(s0, sizes_of(a)));
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.bad_frees, c0.bad_frees + 11);
	CHECK_EQ(c1.frees, c0.frees);
	CHECK_EQ(c1.failures, c0.failures);

	/* free_deferred: unflushed until flushed, walks show UNFLUSHED */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q), -ENOENT);
	struct vmspace_sizes s1 = sizes_of(a);
	CHECK_EQ(s1.unflushed, 4 * Q);
	CHECK_EQ(s1.allocated, 0);
	CHECK_EQ(s1.free, 28 * Q);
	CHECK_EQ(s1.total, 32 * Q);
	CHECK_EQ(s1.live, 0);
	struct segs g = walk_of(a, VMSPACE_SEG_UNFLUSHED);
	CHECK_EQ(g.n, 1);
	CHECK_EQ(g.s[0].start, x);
	CHECK_EQ(g.s[0].size, 4 * Q);
	CHECK_EQ(g.s[0].kind, VMSPACE_SEG_UNFLUSHED);
	/* nothing takes it: an exact allocation there fails */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, x, VMSPACE_EXACT, &y), -ENOMEM);
	/* a whole-arena allocation fails (-ENOMEM, not a wait when asked not to) */
	CHECK_EQ(vmspace_arena_alloc(a, 32 * Q, 0, &y), -ENOMEM);
	struct vmspace_counters c2 = counters_of(a);
	CHECK_EQ(c2.deferred_frees, c1.deferred_frees + 1);
	CHECK_EQ(c2.frees, c1.frees + 1);
	CHECK_EQ(c2.flushes, c1.flushes);
	vmspace_size_t freed = 77;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(counters_of(a).flushes, c2.flushes + 1);
	/* a flush that frees nothing is not counted, stores 0 */
	freed = 77;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(counters_of(a).flushes, c2.flushes + 1);
	/* coalesced: one free segment again */
	CHECK_EQ(sizes_of(a).largest_free, 32 * Q);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE).n, 1);
	CHECK_EQ(sizes_of(a).unflushed, 0);

	/* free of a handle allocation by address, and of an address
	 * allocation by handle: -ENOENT, nothing changes */
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 2 * Q, 0, &h), 0);
	CHECK_EQ(vmspace_arena_free(a, h.addr, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, h.addr, 2 * Q), -ENOENT);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	struct vmspace_handle forged = h;
	forged.addr = y;
	CHECK_EQ(vmspace_arena_free_handle(a, forged, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y, Q), 0);
	vmspace_size_t sz = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h, &sz), 0);
	CHECK_EQ(sz, 2 * Q);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* next fit: a freed ID is not handed out again at once */
	a = mk(8, VMSPACE_NEXTFIT);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	CHECK(y != x);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* best fit: the smallest free segment that fits */
	a = mk(32, 0);
	vmspace_addr_t s[6];
	for (int i = 0; i < 6; i++)
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + (vmspace_addr_t)i * 4 * Q, VMSPACE_EXACT, &s[i]), 0);
	/* free runs between: [B+Q, B+4Q) 3 quanta, [B+5Q,B+8Q) 3 ... ;
	 * make a 2-quantum hole at B+9Q by allocating B+12Q.. */
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + 11 * Q, VMSPACE_EXACT, &y), 0);
	/* holes: [B+Q,4Q) 3; [B+5Q,8Q) 3; [B+9Q,11Q) 2; [B+13Q,16Q) 3;
	 * [B+17Q,20Q) 3; [B+21Q, 32Q) 11 */
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, VMSPACE_BESTFIT, &x), 0);
	CHECK_EQ(x, B + 9 * Q);
	/* first fit: the lowest that fits; with TOP the highest */
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, VMSPACE_FIRSTFIT, &x), 0);
	CHECK_EQ(x, B + Q);
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, VMSPACE_FIRSTFIT | VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 29 * Q);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Quantum caches: TOP bypasses them, deferred frees of slab objects,       */
/* frees of a slab by address.                                              */

int ctest_r28_qcache(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-qc", B, 1024 * Q, Q, 4 * Q, 0);
	vmspace_addr_t x, y, t;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct vmspace_counters c = counters_of(a);
	CHECK_EQ(c.qcache_slabs, 1);
	CHECK(c.qcache_misses >= 1);
	CHECK_EQ(c.allocs, 1); /* the slab */
	struct vmspace_sizes s = sizes_of(a);
	CHECK(s.allocated > Q); /* slab counted */
	CHECK_EQ(s.live, 1);
	/* the slab: an allocated segment flagged HELD */
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].flags & VMSPACE_SEG_HELD);
	CHECK(x >= g.s[0].start && x < g.s[0].start + g.s[0].size);
	vmspace_addr_t slab = g.s[0].start;
	vmspace_size_t slabsz = g.s[0].size;
	/* a free of the slab by address (a size above qcache_max reaches the
	 * arena): refused, nothing changes */
	CHECK_EQ(vmspace_arena_free(a, slab, slabsz), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, slab, slabsz), -ENOENT);
	CHECK(same_sizes(s, sizes_of(a)));
	/* free_deferred of an object of a slab: -ENOENT, nothing changes */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, Q), -ENOENT);
	CHECK(same_sizes(s, sizes_of(a)));
	/* TOP: not from the caches, at the top */
	CHECK_EQ(vmspace_arena_alloc(a, Q, VMSPACE_TOP, &t), 0);
	CHECK_EQ(t, B + 1023 * Q);
	CHECK_EQ(vmspace_arena_free(a, t, Q), 0);
	/* a cache object freed with a size of another class, or too large */
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &y), 0);
	int r1 = vmspace_arena_free(a, x, 2 * Q);
	int r2 = vmspace_arena_free(a, x, 8 * Q);
	CHECK(r1 == -EMSGSIZE || r1 == -ENOENT);
	CHECK(r2 == -EMSGSIZE || r2 == -ENOENT);
	CHECK_EQ(r1, -EMSGSIZE); /* the header: a size other than the one allocated */
	CHECK_EQ(vmspace_arena_free(a, x + Q / 2, Q), -ENOENT);
	/* good frees, then double frees */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 2 * Q), -ENOENT);
	/* live: the slabs (objects wait in magazines) */
	CHECK_EQ(sizes_of(a).live, counters_of(a).qcache_slabs);
	CHECK(counters_of(a).bad_frees >= 6);
	CHECK_EQ(vmspace_arena_check(a), 0);

	/* set_mtbf: every arena allocation fails -EAGAIN and is counted, a
	 * magazine's objects do not reach the arena */
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* warm the magazine */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 42, 1), 0);
	uint64_t inj = counters_of(a).injected;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &y), -EAGAIN);
	CHECK_EQ(vmspace_arena_add(a, 0x40000000, Q, 0), -EAGAIN);
	CHECK_EQ(counters_of(a).injected, inj + 3);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* from the magazine */
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_set_mtbf(a, 0, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 8 * Q), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK(vmspace_arena_reclaim(a) >= 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Statistics: sizes, requested, fragmentation, counters.                   */

int ctest_r28_stats(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, VMSPACE_FIRSTFIT);
	vmspace_addr_t x, y, z;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q, 0, &z), 0);
	CHECK_EQ(vmspace_arena_free(a, y, Q), 0);
	/* allocated: x (2Q) at B, hole Q, z (3Q), free 10Q */
	struct vmspace_sizes s = sizes_of(a);
	CHECK_EQ(s.allocated, 5 * Q);
	CHECK_EQ(s.free, 11 * Q);
	CHECK_EQ(s.total, 16 * Q);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.largest_free, 10 * Q);
	CHECK_EQ(s.live, 2);
	CHECK_EQ(s.spans, 1);
	CHECK_EQ(s.fragmentation_permille, 1000 - (1000 * 10) / 11);
	CHECK_EQ(s.reserved, 0);
	CHECK_EQ(s.unflushed, 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALL);
	/* span, alloc x, free, alloc z, free */
	CHECK_EQ(g.n, 5);
	CHECK_EQ(g.s[0].kind, VMSPACE_SEG_SPAN);
	CHECK_EQ(g.s[0].start, B);
	CHECK_EQ(g.s[0].size, 16 * Q);
	CHECK_EQ(g.s[0].requested, 16 * Q);
	CHECK_EQ(g.s[1].kind, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.s[1].size, 2 * Q);
	CHECK_EQ(g.s[1].requested, Q + 1); /* the size asked for */
	CHECK_EQ(g.s[1].flags, 0);
	CHECK_EQ(g.s[2].kind, VMSPACE_SEG_FREE);
	CHECK_EQ(g.s[2].requested, g.s[2].size);
	CHECK_EQ(g.s[3].requested, 3 * Q);
	/* address order */
	for (int i = 2; i < g.n && i < 64; i++)
		CHECK(g.s[i].start >= g.s[i - 1].start + (i == 1 ? 0 : g.s[i - 1].size) ||
		      g.s[i - 1].kind == VMSPACE_SEG_SPAN);
	/* masks select */
	CHECK_EQ(walk_of(a, VMSPACE_SEG_SPAN).n, 1);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE).n, 2);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_ALLOCATED).n, 2);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_UNFLUSHED).n, 0);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_FREE | VMSPACE_SEG_ALLOCATED).n, 4);
	/* the free with the size asked for (not rounded) works, and the
	 * rounded one (as the allocation's size)? The header: "with exactly
	 * this size" */
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 1), 0);
	/* a handle allocation: HELD */
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	int held = 0;
	for (int i = 0; i < g.n && i < 64; i++)
		if (g.s[i].start == h.addr)
			held = g.s[i].flags & VMSPACE_SEG_HELD;
	CHECK(held);
	CHECK_EQ(sizes_of(a).live, 2);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	/* counters: failures for a failed alloc, a failed add */
	struct vmspace_counters c0 = counters_of(a);
	CHECK_EQ(vmspace_arena_alloc(a, 64 * Q, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_add(a, B, Q, 0), -EEXIST);
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.failures, c0.failures + 2);
	CHECK_EQ(c1.allocs, c0.allocs);
	CHECK(c1.search_steps >= c0.search_steps);
	/* each try of a timed allocation that found no space */
	CHECK_EQ(vmspace_arena_alloc_timed(a, 64 * Q, 0, 0, &x), -ETIMEDOUT);
	CHECK(counters_of(a).failures >= c1.failures + 1);
	/* a walk stopped by its function returns that value; walking fn
	 * NULL is -EINVAL (r25); a mask with an unknown bit -EINVAL */
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALL | 0x100, collect, &g), -EINVAL);
	CHECK_EQ(vmspace_arena_free(a, z, 3 * Q), 0);
	s = sizes_of(a);
	CHECK_EQ(s.fragmentation_permille, 0);
	CHECK_EQ(s.live, 0);
	CHECK_EQ(s.allocated, 0);
	c1 = counters_of(a);
	CHECK_EQ(c1.allocs, c1.frees + 0); /* x, y, z and h: 4 and 4 */
	CHECK_EQ(c1.allocs, 4);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Handles.                                                                 */

int ctest_r28_handles(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	struct vmspace_handle h, h2;
	vmspace_size_t sz;
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc_handle(NULL, Q, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, NULL), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, VMSPACE_EXACT, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0x80, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc_handle(a, SMAX, 0, &h), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 17 * Q, 0, &h), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, 0, VMSPACE_WAIT, &h), -EOPNOTSUPP);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0, 0, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 3 * Q, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 2 * Q, 2 * Q, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 4 * Q, 0, 0, 2 * Q, 0, 0, 0, 0, &h), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B + 1, VMSPACE_EXACT, &h), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc_handle(NULL, Q, 0, 0, 0, 0, 0, 0, 0, &h), -EINVAL);
	CHECK_EQ(sizes_of(a).allocated, 0);
	/* xalloc_handle with every constraint */
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 4 * Q, Q, 0, B + 2 * Q, B + 12 * Q, 0, 0, &h), 0);
	CHECK_EQ(h.addr, B + 5 * Q);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 2 * Q, 0, 0, 0, 0, 0, B + 8 * Q, VMSPACE_EXACT, &h2), 0);
	CHECK_EQ(h2.addr, B + 8 * Q);
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, VMSPACE_FIRSTFIT | VMSPACE_TOP, &h2), 0);
	CHECK_EQ(h2.addr, B + 15 * Q);
	/* misaligned sizep: -EINVAL and nothing changes (the handle still frees) */
	{
		alignas(16) unsigned char buf[32];
		CHECK_EQ(vmspace_arena_free_handle(a, h2, (vmspace_size_t *)(buf + 1)), -EINVAL);
		CHECK_EQ(vmspace_arena_free_handle_deferred(a, h2, (vmspace_size_t *)(buf + 1)), -EINVAL);
	}
	CHECK_EQ(vmspace_arena_free_handle(NULL, h2, NULL), -EINVAL);
	/* forged: another tag, another address, another fingerprint */
	struct vmspace_handle f = h2;
	f.tag ^= 1;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.addr += Q;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.arena ^= 0x80000000u;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	f = h2;
	f.tag = 0xffffffffu;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	sz = 0;
	CHECK_EQ(vmspace_arena_free_handle(a, h2, &sz), 0);
	CHECK_EQ(sz, Q);
	/* deferred by handle: unflushed until flushed; then stale */
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &sz), 0);
	CHECK_EQ(sz, Q);
	CHECK_EQ(sizes_of(a).unflushed, Q);
	CHECK_EQ(walk_of(a, VMSPACE_SEG_UNFLUSHED).n, 1);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &sz), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h, &sz), -ENOENT);
	struct vmspace_counters c = counters_of(a);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, Q);
	CHECK(c.deferred_frees >= 1);
	/* a stale handle whose tag was reused for a new handle allocation at
	 * the same address frees that allocation (documented) */
	struct vmspace_handle old, fresh;
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &old), 0);
	CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), 0);
	CHECK_EQ(vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &fresh), 0);
	if (fresh.tag == old.tag && fresh.arena == old.arena) {
		CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), 0);
		CHECK_EQ(vmspace_arena_free_handle(a, fresh, NULL), -ENOENT);
	} else {
		CHECK_EQ(vmspace_arena_free_handle(a, old, NULL), -ENOENT);
		CHECK_EQ(vmspace_arena_free_handle(a, fresh, NULL), 0);
	}
	CHECK_EQ(vmspace_arena_free_handle(a, h2, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle(a, h2, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a handle of a destroyed arena is foreign to an arena made after it
	 * in the same memory (vmem_init storage: surely the same memory) */
	static vmem_t store;
	for (int round = 0; round < 8; round++) {
		vmspace_arena_t *v = (vmspace_arena_t *)vmem_init(&store, "r28-h", B, 16 * Q, Q, 0, 0);
		CHECK(v != NULL);
		struct vmspace_handle hh;
		CHECK_EQ(vmspace_arena_xalloc_handle(v, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &hh), 0);
		vmem_destroy((vmem_t *)v);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -EBADF);
		v = (vmspace_arena_t *)vmem_init(&store, "r28-h", B, 16 * Q, Q, 0, 0);
		CHECK(v != NULL);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -ENOENT);
		/* also once the same tag holds the same address again */
		struct vmspace_handle h3;
		CHECK_EQ(vmspace_arena_xalloc_handle(v, Q, 0, 0, 0, 0, 0, B, VMSPACE_EXACT, &h3), 0);
		CHECK_EQ(vmspace_arena_free_handle(v, hh, NULL), -ENOENT);
		CHECK_EQ(sizes_of(v).live, 1);
		CHECK_EQ(vmspace_arena_free_handle(v, h3, NULL), 0);
		CHECK_EQ(vmspace_arena_check(v), 0);
		vmem_destroy((vmem_t *)v);
	}
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Trees: a child importing from its parent.                                */

static vmspace_arena_t *child_of(vmspace_arena_t *parent, vmspace_size_t quantum, int *err)
{
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "r28-child";
	p.quantum = quantum;
	p.parent = parent;
	vmspace_arena_t *c = NULL;
	*err = vmspace_arena_create_ex(&p, &c);
	return c;
}

int ctest_r28_tree(void)
{
	int failures = 0, err;
	vmspace_arena_t *p = mk(64, 0);
	vmspace_addr_t x, y;
	CHECK(p != NULL);
	vmspace_arena_t *c = child_of(p, Q, &err);
	CHECK_EQ(err, 0);
	CHECK(c != NULL);
	/* the parent with a child: destroy -EBUSY, nothing changes */
	CHECK_EQ(vmspace_arena_destroy(p), -EBUSY);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* set_import on a child: -EBUSY */
	CHECK_EQ(vmspace_arena_set_import(c, NULL, NULL, NULL, 0), -EBUSY);
	/* an allocation in the child imports: the parent sees an allocation */
	CHECK_EQ(vmspace_arena_alloc(c, 2 * Q, 0, &x), 0);
	CHECK(x >= B && x + 2 * Q <= B + 64 * Q);
	struct vmspace_sizes ps = sizes_of(p), cs = sizes_of(c);
	CHECK_EQ(ps.allocated, cs.imported);
	CHECK(cs.imported >= 2 * Q);
	CHECK_EQ(cs.allocated, 2 * Q);
	CHECK_EQ(cs.total, cs.imported);
	CHECK_EQ(counters_of(c).imports, 1);
	struct segs g = walk_of(c, VMSPACE_SEG_SPAN);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].flags & VMSPACE_SEG_IMPORTED);
	/* the parent's walk shows the import as an allocation at x */
	g = walk_of(p, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	CHECK(g.s[0].start <= x && x < g.s[0].start + g.s[0].size);
	/* set_import now: -EBUSY (imported spans) */
	CHECK_EQ(vmspace_arena_set_import(c, NULL, NULL, NULL, 0), -EBUSY);
	/* a free in the child gives the span back */
	CHECK_EQ(vmspace_arena_free(c, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(c).total, 0);
	CHECK_EQ(counters_of(c).exports, 1);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* a limit on the child */
	CHECK_EQ(vmspace_arena_set_limit(c, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 4 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(c, Q, 0, &y), -ENOMEM);
	CHECK_EQ(sizes_of(p).allocated, 4 * Q);
	CHECK_EQ(vmspace_arena_set_limit(c, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(c, Q, 0, &y), 0);
	/* a grandchild imports through the child */
	vmspace_arena_t *gc = child_of(c, Q, &err);
	CHECK_EQ(err, 0);
	vmspace_addr_t z;
	CHECK_EQ(vmspace_arena_alloc(gc, 3 * Q, 0, &z), 0);
	CHECK_EQ(sizes_of(p).allocated, 8 * Q);
	CHECK_EQ(vmspace_arena_destroy(c), -EBUSY);
	/* destroy order: grandchild, child (live allocations go), parent */
	CHECK_EQ(vmspace_arena_destroy(gc), 0);
	CHECK_EQ(sizes_of(p).allocated, 5 * Q);
	CHECK_EQ(vmspace_arena_destroy(p), -EBUSY);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(p).live, 0);
	CHECK_EQ(vmspace_arena_check(p), 0);

	/* a child with a smaller quantum than its parent imports in the
	 * parent's quantum */
	vmspace_arena_t *p2 = vmspace_arena_create("r28-p2", B, 64 * Q, 4 * Q, 0, 0);
	vmspace_arena_t *c2 = child_of(p2, Q, &err);
	CHECK_EQ(err, 0);
	CHECK_EQ(vmspace_arena_alloc(c2, Q, 0, &x), 0);
	CHECK_EQ(sizes_of(c2).imported % (4 * Q), 0);
	CHECK_EQ(sizes_of(p2).allocated, sizes_of(c2).imported);
	CHECK_EQ(vmspace_arena_alloc(c2, Q, 0, &y), 0);
	CHECK_EQ(counters_of(c2).imports, 1); /* the rest of the import */
	/* an aligned xalloc in the child, above the import quantum */
	vmspace_addr_t w;
	CHECK_EQ(vmspace_arena_xalloc(c2, Q, 16 * Q, 0, 0, 0, 0, 0, 0, &w), 0);
	CHECK_EQ(w % (16 * Q), 0);
	/* a window: no import */
	CHECK_EQ(vmspace_arena_xalloc(c2, Q, 0, 0, 0, B, B + 64 * Q, 0, 0, &w), 0);
	/* (w came from what the child holds) */
	CHECK_EQ(vmspace_arena_check(c2), 0);
	/* the child destroyed holding a range freed deferred: the parent takes
	 * it back unflushed, counts a deferred free, a flush frees it */
	CHECK_EQ(vmspace_arena_destroy(c2), 0);
	CHECK_EQ(sizes_of(p2).allocated, 0);
	vmspace_arena_t *c3 = child_of(p2, Q, &err);
	CHECK_EQ(vmspace_arena_alloc(c3, 4 * Q, 0, &x), 0);
	struct vmspace_counters pc = counters_of(p2);
	CHECK_EQ(vmspace_arena_free_deferred(c3, x, 4 * Q), 0);
	CHECK_EQ(sizes_of(p2).allocated, 4 * Q);
	CHECK_EQ(vmspace_arena_destroy(c3), 0);
	struct vmspace_sizes s2 = sizes_of(p2);
	CHECK_EQ(s2.unflushed, 4 * Q);
	CHECK_EQ(s2.allocated, 0);
	struct vmspace_counters pc2 = counters_of(p2);
	CHECK_EQ(pc2.deferred_frees, pc.deferred_frees + 1);
	CHECK_EQ(pc2.frees, pc.frees + 1);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(p2, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(sizes_of(p2).free, 64 * Q);
	/* flushed in a child gives a wholly free imported span back */
	vmspace_arena_t *c4 = child_of(p2, Q, &err);
	CHECK_EQ(vmspace_arena_alloc(c4, 4 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free_deferred(c4, x, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_flushed(c4, &freed), 0);
	CHECK_EQ(freed, 4 * Q);
	CHECK_EQ(sizes_of(p2).allocated, 0);
	CHECK_EQ(sizes_of(c4).total, 0);
	CHECK_EQ(vmspace_arena_destroy(c4), 0);
	CHECK_EQ(vmspace_arena_destroy(p2), 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Import functions.                                                        */

struct src {
	vmspace_addr_t next;
	int calls, releases, last_flags;
	vmspace_size_t last_size;
	int misalign;
};

static int src_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct src *s = arg;
	s->calls++;
	s->last_flags = flags;
	s->last_size = size;
	*addrp = s->next + (s->misalign ? Q / 2 : 0);
	s->next += size + 16 * Q;
	return 0;
}

static void src_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct src *s = arg;
	(void)addr;
	(void)size;
	s->releases++;
}

int ctest_r28_import(void)
{
	int failures = 0;
	struct src s = { .next = 0x40000000 };
	vmspace_arena_t *a = vmspace_arena_create("r28-imp", 0, 0, Q, 0, 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_set_import(a, src_import, src_release, &s, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(s.calls, 1);
	CHECK_EQ(s.last_flags, 0); /* "flags is 0" */
	CHECK_EQ(s.last_size % (4 * Q), 0);
	CHECK_EQ(sizes_of(a).imported, s.last_size);
	/* set_import again while holding imported spans: -EBUSY */
	CHECK_EQ(vmspace_arena_set_import(a, src_import, src_release, &s, 4 * Q), -EBUSY);
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	/* an alignment above the import quantum: asked for size + align - q */
	CHECK_EQ(vmspace_arena_xalloc(a, 4 * Q, 64 * Q, 0, 0, 0, 0, 0, 0, &y), 0);
	CHECK_EQ(y % (64 * Q), 0);
	CHECK_EQ(s.last_size, 4 * Q + 64 * Q - 4 * Q);
	/* a window does not import */
	int calls = s.calls;
	CHECK_EQ(vmspace_arena_xalloc(a, 64 * Q, 0, 0, 0, 1, 0, 0, 0, &y), -ENOMEM);
	CHECK_EQ(s.calls, calls);
	/* the limit */
	CHECK_EQ(vmspace_arena_set_limit(a, sizes_of(a).total + 4 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 128 * Q, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_set_limit(a, 0), 0);
	/* a misaligned import: given back, -ENOMEM */
	s.misalign = 1;
	int rel = s.releases;
	CHECK_EQ(vmspace_arena_alloc(a, 128 * Q, 0, &y), -ENOMEM);
	CHECK_EQ(s.releases, rel + 1);
	s.misalign = 0;
	CHECK_EQ(vmspace_arena_check(a), 0);
	rel = s.releases;
	struct vmspace_sizes sz = sizes_of(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ((vmspace_size_t)(s.releases - rel), sz.spans);
	return failures;
}

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
/* vmem.h                                                                   */

static int hook_calls, hook_err;
static const char *hook_what;
static vmem_addr_t hook_addr;
static vmem_size_t hook_size;

static void hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
		 int error)
{
	(void)arg;
	(void)vm;
	hook_calls++;
	hook_what = what;
	hook_addr = addr;
	hook_size = size;
	hook_err = error;
}

static int vimp_flags = -1, vimp_calls;
static int vimport(void *arg, vmem_size_t size, int flags, vmem_addr_t *addrp)
{
	(void)arg;
	vimp_flags = flags;
	vimp_calls++;
	static vmem_addr_t next = 0x80000000;
	*addrp = next;
	next += size + 0x100000;
	return 0;
}
static void vrelease(void *arg, vmem_addr_t a, vmem_size_t s)
{
	(void)arg;
	(void)a;
	(void)s;
}

static vmem_addr_t reclaim_addr;
static int reclaim_calls, reclaim_flags;
static void reclaimer(vmem_t *vm, int flags)
{
	reclaim_calls++;
	reclaim_flags = flags;
	if (reclaim_addr) {
		vmem_free(vm, reclaim_addr, 0x1000);
		reclaim_addr = 0;
	}
}

int ctest_r28_vmem(void)
{
	int failures = 0;
	vmem_addr_t x, y;
	vmem_t *vm = vmem_create("r28-vmem", B, 16 * Q, Q, 0, M_BESTFIT);
	CHECK(vm != NULL);
	vmem_set_error_hook(vm, hook, NULL);
	/* a vmem_t * is a vmspace_arena_t * */
	CHECK_EQ(vmspace_arena_quantum((vmspace_arena_t *)vm), Q);
	/* flags */
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT | M_WAITOK, &x), EINVAL);
	CHECK_EQ(vmem_alloc(vm, Q, M_BESTFIT | M_NEXTFIT | M_NOWAIT, &x), EINVAL);
	CHECK_EQ(vmem_alloc(vm, Q, 0x0100 | M_NOWAIT, &x), EINVAL); /* M_ZERO-like */
	CHECK_EQ(vmem_alloc(vm, 0, M_NOWAIT, &x), EINVAL);
	CHECK_EQ(vmem_alloc(NULL, Q, M_NOWAIT, &x), EINVAL);
	CHECK_EQ(vmem_alloc(vm, SMAX, M_NOWAIT, &x), ENOMEM); /* too large to round */
	CHECK_EQ(vmem_alloc(vm, SMAX, M_WAITOK, &x), ENOMEM);
	CHECK_EQ(vmem_alloc(vm, 17 * Q, M_NOWAIT, &x), ENOMEM);
	/* NULL addrp allowed */
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, NULL), 0);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), Q);
	/* rounding: vmem_alloc(10) freed by any size rounding to a quantum */
	CHECK_EQ(vmem_alloc(vm, 10, M_NOWAIT | M_FIRSTFIT, &x), 0);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 2 * Q);
	hook_calls = 0;
	vmem_free(vm, x, 2 * Q); /* another quantum count: refused */
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(hook_err, EMSGSIZE);
	CHECK(hook_what && strcmp(hook_what, "vmem_free") == 0);
	CHECK_EQ(hook_addr, x);
	CHECK_EQ(hook_size, 2 * Q);
	vmem_free(vm, x, Q - 1);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), Q);
	vmem_xfree(vm, x, Q);
	CHECK_EQ(hook_calls, 2);
	CHECK_EQ(hook_err, ENOENT);
	CHECK(hook_what && strcmp(hook_what, "vmem_xfree") == 0);
	/* vmem_size masks */
	CHECK_EQ(vmem_size(vm, VMEM_FREE), 15 * Q);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 16 * Q);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), 15 * Q);
	hook_calls = 0;
	CHECK_EQ(vmem_size(vm, 0), 0);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(hook_err, EINVAL);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE | VMEM_ALLOC), 0);
	CHECK_EQ(hook_calls, 2);
	CHECK_EQ(vmem_size(NULL, VMEM_ALLOC), 0);
	/* roundup */
	CHECK_EQ(vmem_roundup_size(vm, 1), Q);
	CHECK_EQ(vmem_roundup_size(vm, Q), Q);
	CHECK_EQ(vmem_roundup_size(vm, 0), 0);
	CHECK_EQ(vmem_roundup_size(vm, SMAX), 0);
	CHECK_EQ(vmem_roundup_size(vm, SMAX - Q + 1), SMAX - Q + 1);
	CHECK_EQ(vmem_roundup_size(vm, SMAX - Q + 2), 0);
	CHECK_EQ(vmem_roundup_size(NULL, 12345), 12345);
	vmem_destroy(vm);

	/* vmem_xalloc: maxaddr inclusive, minaddr lowest start, align/phase/nocross */
	vm = vmem_create("r28-x", B, 64 * Q, Q, 0, 0);
	vmem_set_error_hook(vm, hook, NULL);
	CHECK_EQ(vmem_xalloc(vm, 2 * Q, 0, 0, 0, VMEM_ADDR_MIN, B + 2 * Q - 1, M_NOWAIT | M_BESTFIT, &x), 0);
	CHECK_EQ(x, B);
	CHECK_EQ(vmem_xalloc(vm, 2 * Q, 0, 0, 0, VMEM_ADDR_MIN, B + 4 * Q - 2, M_NOWAIT | M_BESTFIT, &y), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, 2 * Q, 0, 0, 0, B + 5 * Q, VMEM_ADDR_MAX, M_NOWAIT | M_FIRSTFIT, &y), 0);
	CHECK(y >= B + 5 * Q);
	vmem_xfree(vm, y, 2 * Q);
	CHECK_EQ(vmem_xalloc(vm, Q, 8 * Q, 3 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), 0);
	CHECK_EQ(y % (8 * Q), 3 * Q);
	vmem_free(vm, y, Q); /* vmem_free of an xalloc: allowed */
	CHECK_EQ(vmem_xalloc(vm, 3 * Q, 0, 0, 4 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), 0);
	CHECK_EQ(y / (4 * Q), (y + 3 * Q - 1) / (4 * Q));
	vmem_xfree(vm, y, 3 * Q);
	/* bad arguments: EINVAL; never-met constraints: ENOMEM */
	CHECK_EQ(vmem_xalloc(vm, Q, 3 * Q, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, Q, 2 * Q, 2 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, 0, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, 4 * Q, 0, 0, 2 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, 4 * Q, 0, 0, 2 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_WAITOK, &y), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, Q, 0, 0, 0, B + 8 * Q, B + 4 * Q, M_NOWAIT, &y), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, SMAX, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), ENOMEM);
	/* sizes rounded to the quantum in xalloc, freed by any rounding size */
	CHECK_EQ(vmem_xalloc(vm, 1, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &y), 0);
	hook_calls = 0;
	vmem_xfree(vm, y, 7);
	CHECK_EQ(hook_calls, 0);
	/* M_NEXTFIT: a freed address is not handed out again at once */
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT, &y), 0);
	vmem_free(vm, y, Q);
	vmem_addr_t y2;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT | M_NEXTFIT, &y2), 0);
	CHECK(y2 != y);
	vmem_free(vm, y2, Q);
	vmem_free(vm, x, 2 * Q);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 0);

	/* vmem_add: merging with an added span (no release function), the top */
	CHECK_EQ(vmem_add(vm, B + 64 * Q, 4 * Q, M_NOWAIT), 0);
	CHECK_EQ(sizes_of((vmspace_arena_t *)vm).spans, 1);
	CHECK_EQ(vmem_xalloc(vm, 4 * Q, 0, 0, 0, B + 62 * Q, VMEM_ADDR_MAX, M_NOWAIT, &y), 0);
	CHECK_EQ(y, B + 62 * Q); /* straddles the seam */
	vmem_xfree(vm, y, 4 * Q);
	CHECK_EQ(vmem_add(vm, B, Q, M_NOWAIT), EEXIST);
	CHECK_EQ(vmem_add(vm, B + 0x100000, Q + 1, M_NOWAIT), EINVAL);
	CHECK_EQ(vmem_add(vm, B + 0x100000, 0, M_NOWAIT), EINVAL);
	CHECK_EQ(vmem_add(vm, AMAX - Q + 1, Q, M_NOWAIT), EINVAL);
	CHECK_EQ(vmem_add(vm, AMAX - 2 * Q + 1, 4 * Q, M_NOWAIT), EINVAL);
	CHECK_EQ(vmem_add(vm, B + 0x100000, Q, 0x4), EINVAL);
	CHECK_EQ(vmem_add(NULL, B + 0x100000, Q, M_NOWAIT), EINVAL);
	CHECK_EQ(vmem_add(vm, AMAX - 2 * Q + 1, Q, M_WAITOK), 0);
	/* a span touching an added one, below it: merges too */
	CHECK_EQ(vmem_add(vm, B - 4 * Q, 4 * Q, M_NOWAIT), 0);
	CHECK_EQ(sizes_of((vmspace_arena_t *)vm).spans, 2);
	CHECK_EQ(vmem_xalloc(vm, 8 * Q, 0, 0, 0, B - 4 * Q, B + 4 * Q - 1, M_NOWAIT, &y), 0);
	CHECK_EQ(y, B - 4 * Q);
	vmem_xfree(vm, y, 8 * Q);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);

	/* vmem_destroy of an arena with a native child: hook EBUSY, stays */
	int err;
	vmspace_arena_t *child = child_of((vmspace_arena_t *)vm, Q, &err);
	CHECK_EQ(err, 0);
	hook_calls = 0;
	vmem_destroy(vm);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(hook_err, EBUSY);
	CHECK(hook_what && strcmp(hook_what, "vmem_destroy") == 0);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), 0);
	vmem_free(vm, y, Q);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	vmem_destroy(vm);

	/* vmem_set_import: flags M_NOWAIT | M_FIRSTFIT; quantum not a power
	 * of two: the hook, EINVAL */
	vm = vmem_create("r28-imp", 0, 0, Q, 0, 0);
	vmem_set_error_hook(vm, hook, NULL);
	hook_calls = 0;
	vmem_set_import(vm, vimport, vrelease, NULL, 3 * Q);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(hook_err, EINVAL);
	CHECK(hook_what && strcmp(hook_what, "vmem_set_import") == 0);
	vmem_set_import(vm, vimport, vrelease, NULL, 0);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), 0);
	CHECK_EQ(vimp_flags, M_NOWAIT | M_FIRSTFIT);
	/* a second set_import while holding imports: hook EBUSY */
	vmem_set_import(vm, vimport, vrelease, NULL, 0);
	CHECK_EQ(hook_calls, 2);
	CHECK_EQ(hook_err, EBUSY);
	/* limit */
	vmem_set_limit(vm, vmem_size(vm, VMEM_ALLOC | VMEM_FREE));
	CHECK_EQ(vmem_alloc(vm, 64 * Q, M_NOWAIT, &y), ENOMEM);
	vmem_set_limit(vm, 0);
	CHECK_EQ(vmem_alloc(vm, 64 * Q, M_NOWAIT, &y), 0);
	vmem_free(vm, y, 64 * Q);
	/* xalloc with a window: no import */
	int before = vimp_calls;
	CHECK_EQ(vmem_xalloc(vm, 256 * Q, 0, 0, 0, 0x1000, VMEM_ADDR_MAX, M_NOWAIT, &y), ENOMEM);
	CHECK_EQ(vimp_calls, before);
	vmem_free(vm, x, Q);
	vmem_destroy(vm);

	/* vmem_set_reclaim: called (unlocked: it frees into the arena) when an
	 * allocation finds no space, then the allocation tried again */
	vm = vmem_create("r28-rec", B, 4 * Q, Q, 0, 0);
	vmem_addr_t a4;
	CHECK_EQ(vmem_alloc(vm, 4 * Q, M_NOWAIT, &a4), 0);
	vmem_free(vm, a4, 4 * Q);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), 0);
	CHECK_EQ(vmem_alloc(vm, 3 * Q, M_NOWAIT, &y), 0);
	vmem_set_reclaim(vm, reclaimer);
	reclaim_addr = x;
	reclaim_calls = 0;
	vmem_addr_t z;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &z), 0);
	CHECK_EQ(reclaim_calls, 1);
	CHECK_EQ(reclaim_flags, M_NOWAIT);
	CHECK_EQ(z, x);
	/* reclaim that frees nothing: ENOMEM with M_NOWAIT after one call */
	reclaim_calls = 0;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), ENOMEM);
	CHECK_EQ(reclaim_calls, 1);
	/* and for vmem_xalloc */
	reclaim_addr = z;
	reclaim_calls = 0;
	CHECK_EQ(vmem_xalloc(vm, Q, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &x), 0);
	CHECK_EQ(reclaim_calls, 1);
	vmem_set_reclaim(vm, NULL);
	vmem_free(vm, x, Q);
	vmem_free(vm, y, 3 * Q);
	vmem_destroy(vm);

	/* vmem_init: NULL or misaligned storage: NULL; bad flags: NULL */
	static vmem_t st;
	CHECK(vmem_init(NULL, "n", B, Q, Q, 0, 0) == NULL);
	CHECK(vmem_init((vmem_t *)((char *)&st + 8), "n", B, Q, Q, 0, 0) == NULL);
	CHECK(vmem_init(&st, "n", B, Q, Q, 0, M_BESTFIT | M_NEXTFIT) == NULL);
	CHECK(vmem_create("n", B, Q, Q, 0, 0x4) == NULL);
	CHECK(vmem_create("n", B, Q, 3 * Q, 0, 0) == NULL);
	/* a create span ending at 2^64: NULL */
	CHECK(vmem_create("n", AMAX - Q + 1, Q, Q, 0, 0) == NULL);
	vm = vmem_init(&st, "n", B, 16 * Q, Q, 2 * Q, M_NEXTFIT);
	CHECK(vm == &st);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), 0);
	vmem_destroy(vm);
	/* use after destroy: EBADF, nothing for void calls */
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), EBADF);
	CHECK_EQ(vmem_xalloc(vm, Q, 0, 0, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &x), EBADF);
	CHECK_EQ(vmem_add(vm, B, Q, M_NOWAIT), EBADF);
	vmem_free(vm, x, Q);
	vmem_destroy(vm);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	CHECK_EQ(vmspace_arena_destroy((vmspace_arena_t *)vm), -EBADF);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Waiting: VMSPACE_WAIT, timed, vmem(9)'s flags.                          */

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

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->r = w->op(w);
	atomic_store(&w->done, 1);
	return NULL;
}

static void start(struct waiter *w)
{
	atomic_store(&w->done, 0);
	pthread_create(&w->t, NULL, waiter_main, w);
}

/* Whether w ends within 10 s (joined if so). */
static int ends(struct waiter *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(w->t, NULL, &ts) != 0) {
		pthread_detach(w->t);
		return 0;
	}
	return 1;
}

static void nap(void)
{
	usleep(100 * 1000);
}

static int op_exact(struct waiter *w)
{
	return vmspace_arena_xalloc(w->a, w->size, 0, 0, 0, 0, 0, w->exact, VMSPACE_EXACT | VMSPACE_WAIT, &w->got);
}

static int op_alloc(struct waiter *w)
{
	return vmspace_arena_alloc(w->a, w->size, w->flags, &w->got);
}

static int op_vmem_alloc(struct waiter *w)
{
	return vmem_alloc(w->a, w->size, w->flags, &w->got);
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
	vmem_set_reclaim(vm, reclaimer);
	reclaim_calls = 0;
	reclaim_addr = 0;
	static struct waiter w5;
	w5 = (struct waiter){ .op = op_vmem_alloc, .a = vm, .size = Q, .flags = M_BESTFIT };
	start(&w5);
	nap();
	CHECK_EQ(atomic_load(&w5.done), 0);
	CHECK_EQ(reclaim_calls, 1);
	CHECK_EQ(reclaim_flags, M_BESTFIT);
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
/* Quantum caches past 32 slabs a class; reclaim.                          */

struct big {
	int n, held_q, plain_q;
};

static int count_big(void *arg, const struct vmspace_segment *s)
{
	struct big *b = arg;
	b->n++;
	if (s->kind == VMSPACE_SEG_ALLOCATED && s->size == Q)
		b->plain_q += !(s->flags & VMSPACE_SEG_HELD);
	if (s->kind == VMSPACE_SEG_ALLOCATED && (s->flags & VMSPACE_SEG_HELD))
		b->held_q++;
	return 0;
}

int ctest_r28_qcache_many(void)
{
	int failures = 0;
	enum { N = 2300 };
	static vmspace_addr_t objs[N];
	vmspace_arena_t *a = vmspace_arena_create("r28-qcm", B, 8192 * Q, Q, Q, 0);
	CHECK(a != NULL);
	for (int i = 0; i < N; i++)
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &objs[i]), 0);
	struct vmspace_counters c = counters_of(a);
	CHECK(c.qcache_slabs <= 32);
	/* the objects outside slabs: arena allocations of their own */
	int direct = 0, inslab = 0, bad = 0;
	struct big bg = { 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(a, VMSPACE_SEG_ALLOCATED, count_big, &bg), 0);
	CHECK_EQ((uint64_t)bg.held_q, c.qcache_slabs);
	CHECK(bg.plain_q > 0);
	/* free_deferred: refused for slab objects, taken for the others */
	for (int i = 0; i < N; i++) {
		int r = vmspace_arena_free_deferred(a, objs[i], Q);
		if (r == 0) {
			direct++;
			objs[i] = 0;
		} else if (r == -ENOENT) {
			inslab++;
		} else {
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(direct, bg.plain_q);
	CHECK_EQ(inslab + direct, N);
	CHECK_EQ(sizes_of(a).unflushed, (vmspace_size_t)direct * Q);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	for (int i = 0; i < N; i++)
		if (objs[i])
			CHECK_EQ(vmspace_arena_free(a, objs[i], Q), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	/* reclaim: slabs wholly free go back; the count returned */
	struct vmspace_counters c1 = counters_of(a);
	struct vmspace_sizes s1 = sizes_of(a);
	int freed = vmspace_arena_reclaim(a);
	CHECK(freed > 0);
	struct vmspace_counters c2 = counters_of(a);
	struct vmspace_sizes s2 = sizes_of(a);
	CHECK_EQ(c2.qcache_slabs, c1.qcache_slabs - (uint64_t)freed);
	CHECK_EQ(s2.live, s1.live - (vmspace_size_t)freed);
	CHECK(c2.qcache_reclaims > c1.qcache_reclaims);
	CHECK_EQ(c2.frees, c1.frees + (uint64_t)freed);
	CHECK_EQ(vmspace_arena_reclaim(a), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* qcache_max rounded down to whole quanta, at most 8 classes */
	a = vmspace_arena_create("r28-qc8", B, 4096 * Q, Q, 100 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_alloc(a, 9 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	a = vmspace_arena_create("r28-qc1", B, 4096 * Q, Q, Q + Q / 2, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Corners: instant fit, next fit wrap, quantum 1, caches bypassed.        */

int ctest_r28_corners(void)
{
	int failures = 0;
	vmspace_addr_t x, y, z;
	/* instant fit: a free segment that fits is found even when the size is
	 * not a power of two ("-ENOMEM: no free segment fits") */
	for (size_t n = 3; n <= 7; n += 2) {
		vmspace_arena_t *a = mk(n, 0);
		CHECK_EQ(vmspace_arena_alloc(a, n * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_free(a, x, n * Q), 0);
		CHECK_EQ(vmspace_arena_alloc(a, n * Q, VMSPACE_INSTANTFIT, &x), 0);
		CHECK_EQ(vmspace_arena_free(a, x, n * Q), 0);
		CHECK_EQ(vmspace_arena_alloc_handle(a, n * Q, 0, &(struct vmspace_handle){ 0 }), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		vmem_t *vm = vmem_create("r28-if", B, n * Q, Q, 0, M_FIRSTFIT);
		CHECK_EQ(vmem_alloc(vm, n * Q, M_FIRSTFIT | M_NOWAIT, &x), 0);
		vmem_destroy(vm);
	}
	/* instant fit with a 3-quantum hole among smaller ones */
	{
		vmspace_arena_t *a = mk(16, 0);
		vmspace_addr_t e;
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + Q, VMSPACE_EXACT, &e), 0);
		CHECK_EQ(vmspace_arena_xalloc(a, 12 * Q, 0, 0, 0, 0, 0, B + 4 * Q, VMSPACE_EXACT, &e), 0);
		/* free: [B, B+Q) and [B+2Q, B+4Q) */
		CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
		CHECK_EQ(x, B + 2 * Q);
		CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
		CHECK_EQ(vmspace_arena_free(a, e, 12 * Q), 0);
		/* free: [B, B+Q), [B+2Q, B+16Q) = 14 quanta: 13 of them */
		CHECK_EQ(vmspace_arena_alloc(a, 13 * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* next fit wraps around */
	{
		vmspace_arena_t *a = mk(4, VMSPACE_NEXTFIT);
		vmspace_addr_t v[4];
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[0]), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[1]), 0);
		CHECK_EQ(vmspace_arena_free(a, v[0], Q), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[2]), 0);
		CHECK_EQ(v[2], B + 2 * Q);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &v[3]), 0);
		CHECK_EQ(v[3], B + 3 * Q);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
		CHECK_EQ(y, B);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* quantum 1: the top of the address space; sizes do not overflow */
	{
		vmspace_arena_t *a = vmspace_arena_create("r28-q1", AMAX - 100, 100, 1, 8, 0);
		CHECK(a != NULL);
		CHECK_EQ(vmspace_arena_add(a, AMAX, 1, 0), -EOVERFLOW);
		CHECK_EQ(vmspace_arena_contains(a, AMAX - 100, 100), 1);
		CHECK_EQ(vmspace_arena_alloc(a, SMAX, 0, &x), -ENOMEM);
		CHECK_EQ(vmspace_arena_alloc(a, 3, 0, &x), 0); /* cached */
		CHECK(x >= AMAX - 100 && x + 3 <= AMAX);
		CHECK_EQ(vmspace_arena_xalloc(a, 1, 0, 0, 0, 0, 0, AMAX - 1, VMSPACE_EXACT, &z), 0);
		CHECK_EQ(vmspace_arena_free(a, z, 1), 0);
		CHECK_EQ(vmspace_arena_alloc(a, 9, VMSPACE_TOP | VMSPACE_FIRSTFIT, &y), 0);
		CHECK_EQ(y, AMAX - 9);
		CHECK_EQ(vmspace_arena_xalloc(a, 5, 8, 3, 0, 0, 0, 0, 0, &z), 0);
		CHECK_EQ(z % 8, 3);
		CHECK_EQ(vmspace_arena_xalloc(a, 2, 0, 0, 0, 0, 0, AMAX - 1, VMSPACE_EXACT, &z), -EOVERFLOW);
		CHECK_EQ(vmspace_arena_free(a, y, 9), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 3), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* caches: xalloc and TOP bypass them; frees of those by address work
	 * at cache sizes, and deferred frees too */
	{
		vmspace_arena_t *a = vmspace_arena_create("r28-byp", B, 1024 * Q, Q, 4 * Q, 0);
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
		CHECK_EQ(counters_of(a).qcache_misses, 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, VMSPACE_TOP, &y), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
		CHECK_EQ(vmspace_arena_free(a, x, Q), -ENOENT);
		CHECK_EQ(vmspace_arena_free_deferred(a, y, 2 * Q), 0);
		CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
		/* handles: never from the caches */
		struct vmspace_handle h;
		CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		CHECK_EQ(vmspace_arena_free(a, h.addr, Q), -ENOENT);
		CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		CHECK_EQ(sizes_of(a).allocated, 0);
		/* a vmem arena over the same: vmem_xalloc bypasses, vmem_free frees */
		CHECK_EQ(vmem_xalloc((vmem_t *)a, 10, 0, 0, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &z), 0);
		CHECK_EQ(counters_of(a).qcache_slabs, 0);
		hook_calls = 0;
		vmem_set_error_hook((vmem_t *)a, hook, NULL);
		vmem_free((vmem_t *)a, z, 10);
		CHECK_EQ(hook_calls, 0);
		CHECK_EQ(sizes_of(a).allocated, 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	/* contains: inside one span, not across two adjacent native spans;
	 * vmem_add merges them, so then it is one */
	{
		vmspace_arena_t *a = mk(4, 0);
		CHECK_EQ(vmspace_arena_add(a, B + 4 * Q, 4 * Q, 0), 0);
		CHECK_EQ(vmspace_arena_contains(a, B + 2 * Q, 4 * Q), 0);
		CHECK_EQ(vmspace_arena_contains(a, B + 4 * Q, 4 * Q), 1);
		CHECK_EQ(vmspace_arena_alloc(a, 6 * Q, 0, &x), -ENOMEM);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
		vmem_t *vm = vmem_create("r28-c", B, 4 * Q, Q, 0, 0);
		CHECK_EQ(vmem_add(vm, B + 4 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(vmspace_arena_contains((vmspace_arena_t *)vm, B + 2 * Q, 4 * Q), 1);
		/* a bridge between two spans makes one */
		CHECK_EQ(vmem_add(vm, B + 12 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(vmem_add(vm, B + 8 * Q, 4 * Q, M_WAITOK), 0);
		CHECK_EQ(sizes_of((vmspace_arena_t *)vm).spans, 1);
		CHECK_EQ(vmem_alloc(vm, 16 * Q, M_NOWAIT, &x), 0);
		vmem_free(vm, x, 16 * Q);
		CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 16 * Q);
		CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
		vmem_destroy(vm);
	}
	/* histogram: unflushed ranges are not free segments */
	{
		vmspace_arena_t *a = mk(16, VMSPACE_FIRSTFIT);
		CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0);
		CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &y), 0);
		CHECK_EQ(vmspace_arena_free_deferred(a, x, 4 * Q), 0);
		uint64_t bins[VMSPACE_HISTOGRAM_BINS];
		CHECK_EQ(vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS), VMSPACE_HISTOGRAM_BINS);
		uint64_t sum = 0;
		for (int i = 0; i < VMSPACE_HISTOGRAM_BINS; i++)
			sum += bins[i];
		CHECK_EQ(sum, 1);
		CHECK_EQ(bins[15], 1); /* 8 quanta: 0x8000 */
		struct vmspace_sizes s = sizes_of(a);
		CHECK_EQ(s.total, s.allocated + s.free + s.unflushed);
		CHECK_EQ(s.largest_free, 8 * Q);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Tag exhaustion (max_tags) and bad imports: a failing call changes       */
/* nothing, in a child or with import functions.                           */

static int min_tags(void)
{
	for (int t = 1; t < 4096; t++) {
		struct vmspace_params p;
		memset(&p, 0, sizeof p);
		p.quantum = Q;
		p.max_tags = (vmspace_size_t)t;
		vmspace_arena_t *a = NULL;
		if (vmspace_arena_create_ex(&p, &a) == 0) {
			vmspace_arena_destroy(a);
			return t;
		}
	}
	return -1;
}

static int bad_next_kind; /* 0 fine, 1 wraps, 2 overlaps */
static int bad_imports, bad_releases;
static vmspace_addr_t bad_next = 0x40000000;
static int bad_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	(void)arg;
	(void)flags;
	bad_imports++;
	if (bad_next_kind == 1) {
		*addrp = AMAX - size + 1;
	} else if (bad_next_kind == 2) {
		*addrp = B; /* the arena's own span */
	} else {
		*addrp = bad_next;
		bad_next += size + 16 * Q;
	}
	return 0;
}
static void bad_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	(void)arg;
	(void)addr;
	(void)size;
	bad_releases++;
}

int ctest_r28_tags(void)
{
	int failures = 0;
	int t0 = min_tags();
	CHECK(t0 > 0);
	/* below the minimum: -EINVAL */
	{
		struct vmspace_params p;
		memset(&p, 0, sizeof p);
		p.quantum = Q;
		p.max_tags = (vmspace_size_t)t0 - 1;
		vmspace_arena_t *a = (vmspace_arena_t *)1;
		if (t0 > 1)
			CHECK_EQ(vmspace_arena_create_ex(&p, &a), -EINVAL);
	}
	/* a child with few tags: imports until -ENOSPC; the parent holds no
	 * more than the child imported */
	vmspace_arena_t *p = mk(4096, 0);
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.quantum = Q;
	cp.parent = p;
	cp.max_tags = (vmspace_size_t)t0 + 8;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &c), 0);
	int r = 0, n = 0;
	vmspace_addr_t x;
	for (n = 0; n < 1000; n++) {
		r = vmspace_arena_xalloc(c, Q, 4 * Q, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x);
		if (r != 0)
			break;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
	CHECK_EQ(vmspace_arena_check(c), 0);
	CHECK_EQ(vmspace_arena_check(p), 0);
	/* and with import functions: an import that cannot be entered goes
	 * back through the release function */
	struct vmspace_params ip;
	memset(&ip, 0, sizeof ip);
	ip.quantum = Q;
	ip.max_tags = (vmspace_size_t)t0 + 8;
	vmspace_arena_t *ia = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&ip, &ia), 0);
	CHECK_EQ(vmspace_arena_set_import(ia, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	for (n = 0; n < 1000; n++) {
		r = vmspace_arena_xalloc(ia, Q, 4 * Q, 0, 0, 0, 0, 0, 0, &x);
		if (r != 0)
			break;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK_EQ((vmspace_size_t)(bad_imports - bad_releases), sizes_of(ia).spans);
	CHECK_EQ(vmspace_arena_check(ia), 0);
	/* frees still work after -ENOSPC */
	CHECK_EQ(vmspace_arena_destroy(ia), 0);
	CHECK_EQ(bad_imports, bad_releases);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(vmspace_arena_destroy(p), 0);

	/* -EPROTO: a range that wraps is given back; one overlapping the
	 * arena's span is only forgotten */
	vmspace_arena_t *a = mk(4, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	bad_next_kind = 1;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), -EPROTO);
	CHECK_EQ(bad_imports, 1);
	CHECK_EQ(bad_releases, 1);
	bad_next_kind = 2;
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), -EPROTO);
	CHECK_EQ(bad_imports, 2);
	CHECK_EQ(bad_releases, 1);
	CHECK_EQ(sizes_of(a).imported, 0);
	CHECK_EQ(sizes_of(a).total, 4 * Q);
	/* set_import is allowed again: no imported spans held */
	CHECK_EQ(vmspace_arena_set_import(a, NULL, NULL, NULL, 0), 0);
	bad_next_kind = 0;
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* a NULL release keeps imported spans for the arena's life */
	a = vmspace_arena_create("r28-keep", 0, 0, Q, 0, 0);
	bad_imports = bad_releases = 0;
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, NULL, NULL, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(a).imported, 2 * Q);
	CHECK_EQ(counters_of(a).exports, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, NULL, NULL, 0), -EBUSY);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(bad_imports, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* with import functions, a deferred free never flushed stays taken */
	a = vmspace_arena_create("r28-stay", 0, 0, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, bad_import, bad_release, NULL, 0), 0);
	bad_imports = bad_releases = 0;
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	vmspace_addr_t x2;
	CHECK_EQ(vmspace_arena_alloc(a, 64 * Q, 0, &x2), 0);
	CHECK_EQ(bad_imports, 2);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(bad_releases, 1);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* Probes: exact sizes through the caches; bad handle frees counted.       */

int ctest_r28_exact_sizes(void)
{
	int failures = 0;
	vmspace_addr_t x, y;
	/* without caches: a free must give exactly the size asked for */
	vmspace_arena_t *a = mk(64, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 2), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 1), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* with caches, the same allocation: the same contract */
	a = vmspace_arena_create("r28-qx", B, 1024 * Q, Q, 4 * Q, 0);
	CHECK_EQ(vmspace_arena_alloc(a, Q + 1, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	uint64_t bad = counters_of(a).bad_frees;
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q + 2), -EMSGSIZE);
	CHECK_EQ(counters_of(a).bad_frees, bad + 2);
	int r = vmspace_arena_free(a, x, Q + 1);
	CHECK(r == 0 || r == -ENOENT); /* 0 unless freed above */
	/* and the walk's requested for it is... a slab; nothing to see */
	CHECK_EQ(vmspace_arena_alloc(a, 3 * Q - 5, 0, &y), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 3 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

int ctest_r28_bad_handles_counted(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	uint64_t bad = counters_of(a).bad_frees;
	struct vmspace_handle f = h;
	f.tag ^= 1;
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(counters_of(a).bad_frees, bad + 1);
	f = h;
	f.tag = 0; /* a forged handle with tag 0 */
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	CHECK_EQ(counters_of(a).bad_frees, bad + 3); /* "frees refused" */
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
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

/* vmspace.h counters: failures counts "failed ... adds, extends", each
 * once; injected counts "faults injected". One vmem_add that fails is one
 * failed add. */
int ctest_r28_vmem_add_failures(void)
{
	int failures = 0;
	/* vmem_add that touches a span and overlaps another: one failure */
	vmem_t *vm = vmem_create("r28-va", B, 4 * Q, Q, 0, 0);
	CHECK_EQ(vmem_add(vm, B + 8 * Q, 4 * Q, M_NOWAIT), 0);
	uint64_t f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_add(vm, B + 4 * Q, 6 * Q, M_NOWAIT), EEXIST);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	CHECK_EQ(sizes_of((vmspace_arena_t *)vm).total, 8 * Q);

	/* an injected fault: one failure, one injected fault, for one call */
	CHECK_EQ(vmspace_arena_set_mtbf((vmspace_arena_t *)vm, 7, 1), 0);
	struct vmspace_counters k0 = counters_of((vmspace_arena_t *)vm);
	CHECK_EQ(vmem_add(vm, B + 12 * Q, 4 * Q, M_NOWAIT), EAGAIN);
	struct vmspace_counters k1 = counters_of((vmspace_arena_t *)vm);
	CHECK_EQ(k1.failures, k0.failures + 1);
	CHECK_EQ(k1.injected, k0.injected + 1);
	CHECK_EQ(vmspace_arena_set_mtbf((vmspace_arena_t *)vm, 0, 0), 0);
	vmem_destroy(vm);
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

/* ---------------------------------------------------------------------- */
/* vmem(9) calls that return nothing, on bad arguments; vmem_print; a copy */
/* of an arena is not an arena; import sizes for nocross; limits count    */
/* added spans.                                                            */

static int pr_lines;
static char pr_last[256];
static int pr_count(const char *fmt, ...)
{
	pr_lines++;
	(void)fmt;
	return 0;
}

int ctest_r28_vmem_void_calls(void)
{
	int failures = 0;
	static alignas(16) unsigned char zeroed[sizeof(vmem_t)];
	vmem_t *bad = (vmem_t *)zeroed;
	/* none of these crash */
	vmem_destroy(NULL);
	vmem_destroy(bad);
	vmem_free(NULL, B, Q);
	vmem_free(bad, B, Q);
	vmem_xfree(bad, B, Q);
	vmem_set_import(NULL, vimport, vrelease, NULL, 0);
	vmem_set_import(bad, vimport, vrelease, NULL, 3);
	vmem_set_limit(NULL, 5);
	vmem_set_limit(bad, 5);
	vmem_set_reclaim(NULL, reclaimer);
	vmem_set_reclaim(bad, reclaimer);
	vmem_set_error_hook(NULL, hook, NULL);
	vmem_set_error_hook(bad, hook, NULL);
	CHECK_EQ(vmem_size(bad, VMEM_ALLOC), 0);
	CHECK_EQ(vmem_size(bad, 77), 0);
	CHECK(ct_all_zero(zeroed, sizeof zeroed));
	vmem_startup();
	pr_lines = 0;
	vmem_whatis(B, pr_count);
	CHECK_EQ(pr_lines, 1);
	vmem_printall("", pr_count);
	CHECK_EQ(pr_lines, 2);
	vmem_print(0, "", pr_count);
	CHECK_EQ(pr_lines, 3);
	vmem_print((vmem_addr_t)zeroed, "", pr_count);
	CHECK_EQ(pr_lines, 4);
	vmem_print((vmem_addr_t)zeroed + 1, "", pr_count);
	CHECK_EQ(pr_lines, 5);
	vmem_print(B, "", NULL);
	vmem_whatis(B, NULL);
	vmem_printall("", NULL);
	/* one line of sizes, then one per span and segment */
	vmem_t *vm = vmem_create("r28-pr", B, 16 * Q, Q, 0, 0);
	vmem_addr_t x;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), 0);
	pr_lines = 0;
	vmem_print((vmem_addr_t)vm, NULL, pr_count);
	CHECK_EQ(pr_lines, 1 + 3);
	(void)pr_last;
	/* a copy of a live arena at another address is not an arena */
	static vmem_t copy;
	memcpy(&copy, vm, sizeof copy);
	CHECK_EQ(vmem_alloc(&copy, Q, M_NOWAIT, &x), EBADF);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)&copy), -EBADF);
	vmem_destroy(vm);

	/* an import for a nocross request: the size rounded up to a power of
	 * two is the alignment asked for (size + that - quantum) */
	struct src s = { .next = 0x40000000 };
	vmspace_arena_t *a = vmspace_arena_create("r28-nci", 0, 0, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, src_import, src_release, &s, 0), 0);
	vmspace_addr_t y;
	CHECK_EQ(vmspace_arena_xalloc(a, 3 * Q, 0, 0, 16 * Q, 0, 0, 0, 0, &y), 0);
	CHECK_EQ(s.last_size, 3 * Q + 4 * Q - Q);
	CHECK_EQ(y / (16 * Q), (y + 3 * Q - 1) / (16 * Q));
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* the limit counts added spans too */
	struct src s2 = { .next = 0x40000000 };
	a = vmspace_arena_create("r28-lim", B, 16 * Q, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, src_import, src_release, &s2, 4 * Q), 0);
	CHECK_EQ(vmspace_arena_set_limit(a, 20 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 16 * Q, 0, &y), 0); /* the added span */
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), -ENOMEM); /* 16 + 8 > 20 */
	CHECK_EQ(s2.calls, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 4 * Q, 0, &x), 0); /* 16 + 4 */
	CHECK_EQ(s2.calls, 1);
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* ---------------------------------------------------------------------- */
/* A stale handle whose tag and address now hold a quantum-cache slab (a  */
/* held segment, but no handle allocation of the caller's).               */

int ctest_r28_stale_handle_vs_slab(void)
{
	int failures = 0;
	/* the slab size of class 1 */
	vmspace_arena_t *a = vmspace_arena_create("r28-sl", B, 4096 * Q, Q, Q, VMSPACE_FIRSTFIT);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	vmspace_size_t S = g.s[0].size;
	vmspace_addr_t at = g.s[0].start;
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	int hit = 0;
	for (int round = 0; round < 16; round++) {
		a = vmspace_arena_create("r28-sl", B, 4096 * Q, Q, Q, VMSPACE_FIRSTFIT);
		struct vmspace_handle h;
		CHECK_EQ(vmspace_arena_xalloc_handle(a, S, 0, 0, 0, 0, 0, at, VMSPACE_EXACT, &h), 0);
		CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0); /* a slab at `at` */
		g = walk_of(a, VMSPACE_SEG_ALLOCATED);
		int slab_there = g.n == 1 && g.s[0].start == h.addr && (g.s[0].flags & VMSPACE_SEG_HELD);
		struct vmspace_sizes s0 = sizes_of(a);
		int r = vmspace_arena_free_handle(a, h, NULL);
		if (slab_there && r == 0)
			hit++;
		if (round == 0 && getenv("R28_VERBOSE"))
			fprintf(stderr, "r28: slab at the stale handle's address: %d (S %#lx)\n", slab_there, (unsigned long)S);
		/* "a foreign or stale one is -ENOENT", except a tag reused "for a
		 * new handle allocation": a slab is none of the caller's */
		CHECK_EQ(r, -ENOENT);
		if (r == 0) {
			CHECK(!same_sizes(s0, sizes_of(a)));
			/* the cache still hands out objects of the freed slab */
			vmspace_addr_t y;
			CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), 0);
			struct vmspace_handle h2;
			int r2 = vmspace_arena_xalloc_handle(a, Q, 0, 0, 0, 0, 0, y, VMSPACE_EXACT, &h2);
			if (r2 == 0) {
				fprintf(stderr, "r28: object %#lx handed out by the cache and by xalloc_handle\n", (unsigned long)y);
				CHECK(0 && "one range handed out twice");
			}
			CHECK_EQ(vmspace_arena_check(a), 0);
			/* leak: the arena is broken */
			break;
		}
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	if (hit)
		fprintf(stderr, "r28: a stale handle freed a quantum-cache slab (%d times)\n", hit);
	return failures;
}

/* largest_free and VMEM_MAXFREE: the largest free segment, exactly, with
 * several in one power-of-two bin, in either order */
int ctest_r28_largest_free(void)
{
	int failures = 0;
	for (int order = 0; order < 2; order++) {
		vmspace_arena_t *a = mk(64, 0);
		vmspace_addr_t e;
		/* free runs of 7 and 5 (or 5 and 7) quanta, separated */
		vmspace_size_t first = order ? 5 * Q : 7 * Q, second = order ? 7 * Q : 5 * Q;
		vmspace_addr_t p = B + first;
		CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, p, VMSPACE_EXACT, &e), 0);
		p += Q + second;
		CHECK_EQ(vmspace_arena_xalloc(a, B + 64 * Q - p, 0, 0, 0, 0, 0, p, VMSPACE_EXACT, &e), 0);
		struct vmspace_sizes s = sizes_of(a);
		CHECK_EQ(s.free, 12 * Q);
		CHECK_EQ(s.largest_free, 7 * Q);
		CHECK_EQ(vmem_size((vmem_t *)a, VMEM_MAXFREE), 7 * Q);
		CHECK_EQ(s.fragmentation_permille, 1000 - (1000 * 7) / 12);
		/* and then 6 quanta: instant fit must still find the 7 */
		vmspace_addr_t x;
		CHECK_EQ(vmspace_arena_alloc(a, 6 * Q, VMSPACE_INSTANTFIT, &x), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* The vmem(9) idiom: a child importing with vmem_alloc/vmem_free from its
 * parent; a waiting child polls until the parent has room. */
int ctest_r28_vmem_idiom(void)
{
	int failures = 0;
	vmem_t *parent = vmem_create("r28-par", B, 16 * Q, Q, 0, 0);
	vmem_t *child = vmem_create("r28-chi", 0, 0, Q, 0, 0);
	vmem_set_error_hook(child, hook, NULL);
	hook_calls = 0;
	vmem_set_import(child, (vmem_import_t *)(void (*)(void))vmem_alloc,
			(vmem_release_t *)(void (*)(void))vmem_free, parent, 4 * Q);
	CHECK_EQ(hook_calls, 0);
	vmem_addr_t x, y;
	CHECK_EQ(vmem_alloc(child, Q, M_NOWAIT, &x), 0);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 4 * Q);
	CHECK_EQ(vmem_alloc(child, 12 * Q, M_NOWAIT, &y), 0);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 16 * Q);
	vmem_free(child, y, 12 * Q);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 4 * Q);
	/* the parent full; the child waits (no M_NOWAIT) */
	vmem_addr_t p;
	CHECK_EQ(vmem_alloc(parent, 12 * Q, M_NOWAIT, &p), 0);
	CHECK_EQ(vmem_alloc(child, 8 * Q, M_NOWAIT, &y), ENOMEM);
	static struct waiter w;
	w = (struct waiter){ .op = op_vmem_alloc, .a = child, .size = 8 * Q, .flags = M_BESTFIT };
	start(&w);
	nap();
	CHECK_EQ(atomic_load(&w.done), 0);
	vmem_free(parent, p, 12 * Q);
	if (ends(&w)) {
		CHECK_EQ(w.r, 0);
		vmem_free(child, w.got, 8 * Q);
	} else {
		CHECK(0 && "the child did not get its import");
		return failures;
	}
	vmem_free(child, x, Q);
	CHECK_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	CHECK_EQ(hook_calls, 0);
	vmem_destroy(child);
	vmem_destroy(parent);
	return failures;
}

/* Walks: span markers before their segments, in address order over
 * several spans; requested is the size asked for only for allocated
 * segments ("else size"), unflushed ones included. */
int ctest_r28_walk_order(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(8, VMSPACE_FIRSTFIT);
	CHECK_EQ(vmspace_arena_add(a, B + 64 * Q, 8 * Q, 0), 0);
	CHECK_EQ(vmspace_arena_add(a, B - 32 * Q, 8 * Q, 0), 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_xalloc(a, Q + 1, 0, 0, 0, 0, 0, B + 64 * Q, VMSPACE_EXACT, &x), 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q + 7, 0, 0, 0, 0, 0, B + 66 * Q, VMSPACE_EXACT, &y), 0);
	CHECK_EQ(vmspace_arena_free_deferred(a, y, 2 * Q + 7), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALL);
	/* span(B-32Q) free; span(B) free; span(B+64Q) alloc unflushed free */
	CHECK_EQ(g.n, 8);
	int kinds[8] = { VMSPACE_SEG_SPAN, VMSPACE_SEG_FREE, VMSPACE_SEG_SPAN, VMSPACE_SEG_FREE,
			 VMSPACE_SEG_SPAN, VMSPACE_SEG_ALLOCATED, VMSPACE_SEG_UNFLUSHED, VMSPACE_SEG_FREE };
	vmspace_addr_t starts[8] = { B - 32 * Q, B - 32 * Q, B, B, B + 64 * Q, B + 64 * Q, B + 66 * Q, B + 69 * Q };
	for (int i = 0; i < 8 && i < g.n; i++) {
		CHECK_EQ(g.s[i].kind, kinds[i]);
		CHECK_EQ(g.s[i].start, starts[i]);
	}
	if (g.n == 8) {
		CHECK_EQ(g.s[5].requested, Q + 1);
		CHECK_EQ(g.s[6].size, 3 * Q);
		CHECK_EQ(g.s[6].requested, g.s[6].size); /* "else size" */
		CHECK_EQ(g.s[7].requested, g.s[7].size);
	}
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* failures: "failed allocations ..., each try counted": a plain failed
 * allocation is one; a cache-sized one that finds no space two (the
 * cache's try for a slab, then the arena's own); a vmem_alloc with a
 * reclaim function two when it fails (before and after the reclaim) and
 * one when it succeeds after it. */
int ctest_r28_failure_counts(void)
{
	int failures = 0;
	vmspace_addr_t x, y;
	/* no caches */
	vmspace_arena_t *a = mk(8, 0);
	CHECK_EQ(vmspace_arena_alloc(a, 8 * Q, 0, &x), 0);
	uint64_t f0 = counters_of(a).failures;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 1);
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 2);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 3);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* with caches: a cache-sized allocation that finds no space */
	a = vmspace_arena_create("r28-fc", B, 8 * Q, Q, 2 * Q, 0);
	CHECK_EQ(vmspace_arena_xalloc(a, 8 * Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
	f0 = counters_of(a).failures;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &y), -ENOMEM);
	CHECK_EQ(counters_of(a).failures, f0 + 2);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	/* vmem_alloc with M_NOWAIT and a reclaim function that frees nothing:
	 * tried twice, before and after the reclaim: two failures */
	vmem_t *vm = vmem_create("r28-fv", B, 8 * Q, Q, 0, 0);
	CHECK_EQ(vmem_alloc(vm, 8 * Q, M_NOWAIT, &x), 0);
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), ENOMEM);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	vmem_set_reclaim(vm, reclaimer);
	reclaim_addr = 0;
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), ENOMEM);
	uint64_t df = counters_of((vmspace_arena_t *)vm).failures - f0;
	if (df != 2)
		fprintf(stderr, "r28: vmem_alloc M_NOWAIT with a reclaim function: %llu failures\n",
			(unsigned long long)df);
	CHECK_EQ(df, 2);
	/* one that succeeds after the reclaim function freed: the try
	 * before it is the one failure */
	vmem_addr_t q1;
	vmem_free(vm, x, 8 * Q);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &q1), 0);
	CHECK_EQ(vmem_alloc(vm, 7 * Q, M_NOWAIT, &x), 0);
	reclaim_addr = q1;
	f0 = counters_of((vmspace_arena_t *)vm).failures;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), 0);
	CHECK_EQ(y, q1);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).failures, f0 + 1);
	vmem_set_reclaim(vm, NULL);
	vmem_destroy(vm);
	return failures;
}

/* A child's own spans (params.size, vmspace_arena_add) are not imports:
 * never given to the parent, not counted there. */
int ctest_r28_child_own_spans(void)
{
	int failures = 0;
	vmspace_arena_t *p = mk(64, 0);
	struct vmspace_params cp;
	memset(&cp, 0, sizeof cp);
	cp.quantum = Q;
	cp.parent = p;
	cp.base = 0x40000000;
	cp.size = 8 * Q;
	vmspace_arena_t *c = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&cp, &c), 0);
	CHECK_EQ(vmspace_arena_add(c, 0x50000000, 8 * Q, 0), 0);
	struct vmspace_counters pc0 = counters_of(p);
	vmspace_addr_t x, y, z;
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &y), 0);
	CHECK_EQ(sizes_of(p).allocated, 0); /* no import yet */
	CHECK_EQ(vmspace_arena_alloc(c, 2 * Q, 0, &z), 0); /* imports */
	CHECK_EQ(sizes_of(p).allocated, 2 * Q);
	CHECK_EQ(sizes_of(c).imported, 2 * Q);
	CHECK_EQ(sizes_of(c).total, 18 * Q);
	CHECK_EQ(vmspace_arena_free(c, x, 8 * Q), 0);
	CHECK_EQ(vmspace_arena_free(c, y, 8 * Q), 0);
	CHECK_EQ(sizes_of(c).total, 18 * Q); /* own spans stay */
	CHECK_EQ(vmspace_arena_free_deferred(c, z, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_alloc(c, 8 * Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_destroy(c), 0);
	struct vmspace_counters pc1 = counters_of(p);
	CHECK_EQ(pc1.bad_frees, pc0.bad_frees);
	CHECK_EQ(sizes_of(p).allocated, 0);
	CHECK_EQ(sizes_of(p).unflushed, 2 * Q);
	CHECK_EQ(sizes_of(p).total, 64 * Q);
	CHECK_EQ(vmspace_arena_check(p), 0);
	CHECK_EQ(vmspace_arena_flushed(p, NULL), 0);
	CHECK_EQ(sizes_of(p).free, 64 * Q);
	/* vmem_xfree of a cache-served vmem_alloc: allowed */
	vmem_t *vm = vmem_create("r28-xf", B, 1024 * Q, Q, 4 * Q, 0);
	vmem_set_error_hook(vm, hook, NULL);
	hook_calls = 0;
	CHECK_EQ(vmem_alloc(vm, 3 * Q - 1, M_NOWAIT, &x), 0);
	CHECK_EQ(counters_of((vmspace_arena_t *)vm).qcache_slabs, 1);
	vmem_xfree(vm, x, 3 * Q);
	CHECK_EQ(hook_calls, 0);
	vmem_xfree(vm, x, 3 * Q);
	CHECK_EQ(hook_calls, 1);
	CHECK_EQ(hook_err, ENOENT);
	vmem_destroy(vm);
	CHECK_EQ(vmspace_arena_destroy(p), 0);
	return failures;
}

/* A live cache-served object freed with size 0 or a size above
 * qcache_max: it is allocated and starts there, so -EMSGSIZE (a size
 * other than the one allocated), as without caches. */
int ctest_r28_cached_wrong_sizes(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-cw", B, 1024 * Q, Q, 4 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_free(a, x, 0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 8 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 4 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	/* the same without caches */
	vmspace_arena_t *b = mk(16, 0);
	CHECK_EQ(vmspace_arena_alloc(b, Q, 0, &x), 0);
	CHECK_EQ(vmspace_arena_free(b, x, 0), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(b, x, 8 * Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(b, x, Q), 0);
	CHECK_EQ(vmspace_arena_destroy(b), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
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

/* Quantum caches up to a quantum of 2^22, none above; racing vmem_frees
 * of one allocation: one frees, the other reaches the error hook once. */
static atomic_int race_hooks;
static void race_hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
		      int error)
{
	(void)arg;
	(void)vm;
	(void)what;
	(void)addr;
	(void)size;
	(void)error;
	atomic_fetch_add(&race_hooks, 1);
}

struct vrace {
	vmem_t *vm;
	pthread_barrier_t *bar;
	vmem_addr_t x;
	vmem_size_t size;
};

static void *vracer(void *arg)
{
	struct vrace *r = arg;
	pthread_barrier_wait(r->bar);
	vmem_free(r->vm, r->x, r->size);
	return NULL;
}

int ctest_r28_qcache_quanta_and_vmem_races(void)
{
	int failures = 0;
	vmspace_addr_t x;
	vmspace_arena_t *a = vmspace_arena_create("r28-q22", 0, (vmspace_size_t)1 << 32, (vmspace_size_t)1 << 22, (vmspace_size_t)1 << 23, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)1 << 22, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 1);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	a = vmspace_arena_create("r28-q23", 0, (vmspace_size_t)1 << 33, (vmspace_size_t)1 << 23, (vmspace_size_t)1 << 24, 0);
	CHECK(a != NULL);
	CHECK_EQ(vmspace_arena_alloc(a, (vmspace_size_t)1 << 23, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	for (int cached = 0; cached < 2; cached++) {
		vmem_t *vm = vmem_create("r28-vr", B, 1024 * Q, Q, cached ? 2 * Q : 0, 0);
		vmem_set_error_hook(vm, race_hook, NULL);
		atomic_store(&race_hooks, 0);
		for (int round = 0; round < 200; round++) {
			vmem_addr_t v;
			vmem_size_t size = (vmem_size_t)(1 + round % 2) * Q - 5;
			CHECK_EQ(vmem_alloc(vm, size, M_NOWAIT, &v), 0);
			pthread_barrier_t bar;
			pthread_barrier_init(&bar, NULL, 2);
			struct vrace r = { vm, &bar, v, size };
			pthread_t t[2];
			pthread_create(&t[0], NULL, vracer, &r);
			pthread_create(&t[1], NULL, vracer, &r);
			pthread_join(t[0], NULL);
			pthread_join(t[1], NULL);
			pthread_barrier_destroy(&bar);
			CHECK_EQ(atomic_load(&race_hooks), round + 1);
		}
		CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
		vmem_destroy(vm);
	}
	return failures;
}

/* A handle free refused because its address is a quantum-cache slab's is
 * a refused free too (bad_frees: "frees refused (arena and caches)"). */
int ctest_r28_slab_handle_counted(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-shc", B, 1024 * Q, Q, Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0, &x), 0);
	struct segs g = walk_of(a, VMSPACE_SEG_ALLOCATED);
	CHECK_EQ(g.n, 1);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_alloc_handle(a, Q, 0, &h), 0);
	struct vmspace_handle f = h;
	f.addr = g.s[0].start; /* the slab's address, this arena's fingerprint */
	uint64_t bad = counters_of(a).bad_frees;
	struct vmspace_sizes s0 = sizes_of(a);
	CHECK_EQ(vmspace_arena_free_handle(a, f, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, f, NULL), -ENOENT);
	CHECK(same_sizes(s0, sizes_of(a)));
	CHECK_EQ(counters_of(a).bad_frees, bad + 2);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* Random valid constraints in an empty child (all through imports, from a
 * parent or from import functions): each met, or -ERANGE exactly when no
 * address could meet it. */
static int possible(vmspace_size_t size, vmspace_size_t align, vmspace_size_t phase, vmspace_size_t nocross)
{
	if (!nocross)
		return 1;
	if (size > nocross)
		return 0;
	if (align >= nocross)
		return (phase % nocross) + size <= nocross;
	return phase + size <= nocross;
}

int ctest_r28_child_constraints(void)
{
	int failures = 0;
	uint64_t rng = 28;
	for (int mode = 0; mode < 2; mode++) {
		vmspace_arena_t *p = vmspace_arena_create("r28-cp", 0x10000000, 1 << 30, Q, 0, 0);
		vmspace_arena_t *c;
		static struct src s;
		memset(&s, 0, sizeof s);
		s.next = 0x80000000;
		if (mode == 0) {
			int err;
			c = child_of(p, Q, &err);
		} else {
			c = vmspace_arena_create("r28-cf", 0, 0, Q, 0, 0);
			CHECK_EQ(vmspace_arena_set_import(c, src_import, src_release, &s, 0), 0);
		}
		for (int i = 0; i < 3000; i++) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 8)) * Q;
			vmspace_size_t align = ct_below(&rng, 3) ? (Q << ct_below(&rng, 7)) : 0;
			vmspace_size_t ea = align ? align : Q;
			vmspace_size_t phase = (vmspace_size_t)ct_below(&rng, ea / Q) * Q;
			vmspace_size_t nocross = ct_below(&rng, 2) ? (Q << ct_below(&rng, 8)) : 0;
			int flags = (int)(ct_below(&rng, 3) == 0 ? VMSPACE_TOP : 0);
			vmspace_addr_t x;
			int r = vmspace_arena_xalloc(c, size, align, phase, nocross, 0, 0, 0, flags, &x);
			int ok = possible(size, ea, phase, nocross);
			if (r == 0) {
				CHECK(ok);
				CHECK_EQ(x % ea, phase);
				if (nocross)
					CHECK_EQ(x / nocross, (x + size - 1) / nocross);
				CHECK_EQ(vmspace_arena_free(c, x, size), 0);
			} else {
				CHECK_EQ(r, -ERANGE);
				CHECK(!ok);
				if (ok)
					fprintf(stderr, "r28: size %#lx align %#lx phase %#lx nocross %#lx: %d\n",
						(unsigned long)size, (unsigned long)align, (unsigned long)phase,
						(unsigned long)nocross, r);
			}
			if (failures > 5)
				break;
		}
		CHECK_EQ(sizes_of(c).allocated, 0);
		if (mode == 0)
			CHECK_EQ(sizes_of(p).allocated, sizes_of(c).imported);
		CHECK_EQ(vmspace_arena_check(c), 0);
		CHECK_EQ(vmspace_arena_destroy(c), 0);
		CHECK_EQ(sizes_of(p).allocated, 0);
		CHECK_EQ(vmspace_arena_destroy(p), 0);
	}
	return failures;
}

/* Every policy finds a fit when one exists ("-ENOMEM: no free segment
 * fits"): on fragmented arenas, random constrained requests succeed under
 * each policy (with and without TOP) exactly when first fit's does. */
int ctest_r28_policies_agree(void)
{
	int failures = 0;
	uint64_t rng = 0x28;
	static const int pol[] = { VMSPACE_FIRSTFIT, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_NEXTFIT };
	int reported = 0;
	for (int round = 0; round < 40; round++) {
		vmspace_arena_t *a = mk(256, 0);
		/* fragment: random exact allocations */
		for (int i = 0; i < 40; i++) {
			vmspace_addr_t at = B + (vmspace_addr_t)ct_below(&rng, 256) * Q;
			vmspace_size_t sz = (vmspace_size_t)(1 + ct_below(&rng, 6)) * Q;
			vmspace_addr_t x;
			(void)vmspace_arena_xalloc(a, sz, 0, 0, 0, 0, 0, at, VMSPACE_EXACT, &x);
		}
		for (int q = 0; q < 60; q++) {
			vmspace_size_t size = (vmspace_size_t)(1 + ct_below(&rng, 12)) * Q;
			vmspace_size_t align = ct_below(&rng, 2) ? (Q << ct_below(&rng, 5)) : 0;
			vmspace_size_t ea = align ? align : Q;
			vmspace_size_t phase = (vmspace_size_t)ct_below(&rng, ea / Q) * Q;
			vmspace_size_t nocross = ct_below(&rng, 3) == 0 ? (Q << (4 + ct_below(&rng, 4))) : 0;
			vmspace_addr_t min = ct_below(&rng, 3) == 0 ? B + (vmspace_addr_t)ct_below(&rng, 128) * Q + ct_below(&rng, 2) : 0;
			vmspace_addr_t max = ct_below(&rng, 3) == 0 ? B + (vmspace_addr_t)(128 + ct_below(&rng, 128)) * Q : 0;
			int want = 2;
			for (int k = 0; k < 8; k++) {
				int flags = pol[k % 4] | (k >= 4 ? VMSPACE_TOP : 0);
				vmspace_addr_t x;
				int r = vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, 0, flags, &x);
				if (r == 0) {
					CHECK_EQ(x % ea, phase);
					if (nocross)
						CHECK_EQ(x / nocross, (x + size - 1) / nocross);
					if (min)
						CHECK(x >= min);
					if (max)
						CHECK(x + size <= max);
					CHECK_EQ(vmspace_arena_free(a, x, size), 0);
				}
				int got = r == 0 ? 1 : (r == -ENOMEM ? 0 : -1);
				if (got < 0)
					CHECK(r == -ERANGE);
				if (want == 2)
					want = got;
				else if (got != want && got >= 0 && want >= 0) {
					if (reported++ < 5)
						fprintf(stderr,
							"r28: policy %#x: %d, first fit: %d (size %#lx align %#lx phase %#lx nocross %#lx min %#lx max %#lx)\n",
							flags, r, want, (unsigned long)size, (unsigned long)align,
							(unsigned long)phase, (unsigned long)nocross, (unsigned long)min,
							(unsigned long)max);
					failures++;
				}
			}
		}
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
	return failures;
}

/* Histogram with fewer bins than 64; a cache-sized object an arena too
 * small for a slab gave out directly is freed deferred like any other. */
int ctest_r28_small_bits(void)
{
	int failures = 0;
	vmspace_arena_t *a = mk(16, 0);
	uint64_t bins[8];
	for (int i = 0; i < 8; i++)
		bins[i] = 77;
	CHECK_EQ(vmspace_arena_histogram(a, bins, 3), 3);
	CHECK_EQ(bins[0], 0);
	CHECK_EQ(bins[2], 0);
	CHECK_EQ(bins[3], 77);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	a = vmspace_arena_create("r28-small", B, 64 * Q, Q, 2 * Q, 0);
	vmspace_addr_t x;
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	CHECK_EQ(counters_of(a).qcache_slabs, 0); /* no room for a slab */
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 2 * Q), 0);
	CHECK_EQ(sizes_of(a).unflushed, 2 * Q);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* A cache-sized allocation that succeeds straight from the arena (no
 * room for a slab) counts one failure, the cache's failed try for a slab
 * (vmspace.h, failures), and one allocation. */
int ctest_r28_success_is_no_failure(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("r28-snf", B, 64 * Q, Q, 2 * Q, 0);
	vmspace_addr_t x;
	struct vmspace_counters c0 = counters_of(a);
	CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
	struct vmspace_counters c1 = counters_of(a);
	CHECK_EQ(c1.qcache_slabs, 0);
	CHECK_EQ(c1.failures, c0.failures + 1);
	CHECK_EQ(c1.allocs, c0.allocs + 1);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}

/* An allocation that succeeds after reclaiming the caches (tried,
 * reclaimed, tried again) counts the try before the reclaim as its one
 * failure (vmspace.h, failures), by handle, by address or constrained. */
int ctest_r28_handle_after_reclaim(void)
{
	int failures = 0;
	enum { N = 2048 };
	static vmspace_addr_t objs[N];
	for (int kind = 0; kind < 3; kind++) {
		vmspace_arena_t *a = vmspace_arena_create("r28-har", B, 2048 * Q, Q, Q, 0);
		int n = 0;
		for (; n < N; n++)
			if (vmspace_arena_alloc(a, Q, 0, &objs[n]) != 0)
				break;
		CHECK_EQ(sizes_of(a).free, 0);
		for (int i = 0; i < n; i++)
			CHECK_EQ(vmspace_arena_free(a, objs[i], Q), 0);
		CHECK_EQ(sizes_of(a).free, 0); /* all still in slabs */
		struct vmspace_counters c0 = counters_of(a);
		struct vmspace_handle h;
		vmspace_addr_t x = 0;
		int r;
		if (kind == 0)
			r = vmspace_arena_alloc_handle(a, 64 * Q, 0, &h);
		else if (kind == 1)
			r = vmspace_arena_alloc(a, 64 * Q, 0, &x);
		else
			r = vmspace_arena_xalloc(a, 64 * Q, 0, 0, 0, 0, 0, 0, 0, &x);
		CHECK_EQ(r, 0);
		struct vmspace_counters c1 = counters_of(a);
		CHECK(c1.qcache_reclaims > c0.qcache_reclaims);
		if (c1.failures != c0.failures + 1)
			fprintf(stderr, "r28: kind %d (0 handle, 1 alloc, 2 xalloc): %llu failures for a success\n",
				kind, (unsigned long long)(c1.failures - c0.failures));
		CHECK_EQ(c1.failures, c0.failures + 1);
		if (r == 0 && kind == 0)
			CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
		if (r == 0 && kind != 0)
			CHECK_EQ(vmspace_arena_free(a, x, 64 * Q), 0);
		CHECK_EQ(vmspace_arena_check(a), 0);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}
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
