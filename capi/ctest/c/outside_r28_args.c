/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): the arguments of alloc,
 * alloc_timed, add, create_ex and friends; creation; xalloc's constraints.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

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
	CHECK_EQ(vmspace_arena_alloc(a, Q, 0x200, &x), -EINVAL); /* 0x80 is VMSPACE_KILLABLE now */
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
	CHECK_EQ(vmspace_arena_alloc_timed(a, Q, 0x100, 0, &x), -EINVAL);
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
	CHECK_EQ(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 0, 0x100, &x), -EINVAL);
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
