/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Round 28 outside review (see outside_r28.h): the vmem(9) layer of
 * vmspace/vmem.h.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "outside_r28.h"

/* ---------------------------------------------------------------------- */
/* vmem.h                                                                   */

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

int ctest_r28_vmem(void)
{
	int failures = 0;
	vmem_addr_t x, y;
	vmem_t *vm = vmem_create("r28-vmem", B, 16 * Q, Q, 0, M_BESTFIT);
	CHECK(vm != NULL);
	vmem_set_error_hook(vm, r28_hook, NULL);
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
	r28_hook_calls = 0;
	vmem_free(vm, x, 2 * Q); /* another quantum count: refused */
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(r28_hook_err, EMSGSIZE);
	CHECK(r28_hook_what && strcmp(r28_hook_what, "vmem_free") == 0);
	CHECK_EQ(r28_hook_addr, x);
	CHECK_EQ(r28_hook_size, 2 * Q);
	vmem_free(vm, x, Q - 1);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), Q);
	vmem_xfree(vm, x, Q);
	CHECK_EQ(r28_hook_calls, 2);
	CHECK_EQ(r28_hook_err, ENOENT);
	CHECK(r28_hook_what && strcmp(r28_hook_what, "vmem_xfree") == 0);
	/* vmem_size masks */
	CHECK_EQ(vmem_size(vm, VMEM_FREE), 15 * Q);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 16 * Q);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), 15 * Q);
	r28_hook_calls = 0;
	CHECK_EQ(vmem_size(vm, 0), 0);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(r28_hook_err, EINVAL);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE | VMEM_ALLOC), 0);
	CHECK_EQ(r28_hook_calls, 2);
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
	vmem_set_error_hook(vm, r28_hook, NULL);
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
	r28_hook_calls = 0;
	vmem_xfree(vm, y, 7);
	CHECK_EQ(r28_hook_calls, 0);
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
	r28_hook_calls = 0;
	vmem_destroy(vm);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(r28_hook_err, EBUSY);
	CHECK(r28_hook_what && strcmp(r28_hook_what, "vmem_destroy") == 0);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &y), 0);
	vmem_free(vm, y, Q);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	vmem_destroy(vm);

	/* vmem_set_import: flags M_NOWAIT | M_FIRSTFIT; quantum not a power
	 * of two: the hook, EINVAL */
	vm = vmem_create("r28-imp", 0, 0, Q, 0, 0);
	vmem_set_error_hook(vm, r28_hook, NULL);
	r28_hook_calls = 0;
	vmem_set_import(vm, vimport, vrelease, NULL, 3 * Q);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(r28_hook_err, EINVAL);
	CHECK(r28_hook_what && strcmp(r28_hook_what, "vmem_set_import") == 0);
	vmem_set_import(vm, vimport, vrelease, NULL, 0);
	CHECK_EQ(r28_hook_calls, 1);
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), 0);
	CHECK_EQ(vimp_flags, M_NOWAIT | M_FIRSTFIT);
	/* a second set_import while holding imports: hook EBUSY */
	vmem_set_import(vm, vimport, vrelease, NULL, 0);
	CHECK_EQ(r28_hook_calls, 2);
	CHECK_EQ(r28_hook_err, EBUSY);
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
	vmem_set_reclaim(vm, r28_reclaimer);
	r28_reclaim_addr = x;
	r28_reclaim_calls = 0;
	vmem_addr_t z;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &z), 0);
	CHECK_EQ(r28_reclaim_calls, 1);
	CHECK_EQ(r28_reclaim_flags, M_NOWAIT);
	CHECK_EQ(z, x);
	/* reclaim that frees nothing: ENOMEM with M_NOWAIT after one call */
	r28_reclaim_calls = 0;
	CHECK_EQ(vmem_alloc(vm, Q, M_NOWAIT, &x), ENOMEM);
	CHECK_EQ(r28_reclaim_calls, 1);
	/* and for vmem_xalloc */
	r28_reclaim_addr = z;
	r28_reclaim_calls = 0;
	CHECK_EQ(vmem_xalloc(vm, Q, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, M_NOWAIT, &x), 0);
	CHECK_EQ(r28_reclaim_calls, 1);
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
	vmem_set_reclaim(NULL, r28_reclaimer);
	vmem_set_reclaim(bad, r28_reclaimer);
	vmem_set_error_hook(NULL, r28_hook, NULL);
	vmem_set_error_hook(bad, r28_hook, NULL);
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
	vmem_destroy(vm);
	/* a copy of a live arena at another address is not an arena (copied
	 * from vmem_init storage: vmem_create allocates only the arena's own
	 * size, less than a vmem_t) */
	static vmem_t live_storage, copy;
	vmem_t *live = vmem_init(&live_storage, "r28-cp", B, 16 * Q, Q, 0, 0);
	CHECK(live != NULL);
	memcpy(&copy, &live_storage, sizeof copy);
	CHECK_EQ(vmem_alloc(&copy, Q, M_NOWAIT, &x), EBADF);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)&copy), -EBADF);
	CHECK_EQ(vmem_alloc(live, Q, M_NOWAIT, &x), 0);
	vmem_destroy(live);

	/* an import for a nocross request: the size rounded up to a power of
	 * two is the alignment asked for (size + that - quantum) */
	struct src s = { .next = 0x40000000 };
	vmspace_arena_t *a = vmspace_arena_create("r28-nci", 0, 0, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, r28_src_import, r28_src_release, &s, 0), 0);
	vmspace_addr_t y;
	CHECK_EQ(vmspace_arena_xalloc(a, 3 * Q, 0, 0, 16 * Q, 0, 0, 0, 0, &y), 0);
	CHECK_EQ(s.last_size, 3 * Q + 4 * Q - Q);
	CHECK_EQ(y / (16 * Q), (y + 3 * Q - 1) / (16 * Q));
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* the limit counts added spans too */
	struct src s2 = { .next = 0x40000000 };
	a = vmspace_arena_create("r28-lim", B, 16 * Q, Q, 0, 0);
	CHECK_EQ(vmspace_arena_set_import(a, r28_src_import, r28_src_release, &s2, 4 * Q), 0);
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

/* The vmem(9) idiom: a child importing with vmem_alloc/vmem_free from its
 * parent; a waiting child polls until the parent has room. */
int ctest_r28_vmem_idiom(void)
{
	int failures = 0;
	vmem_t *parent = vmem_create("r28-par", B, 16 * Q, Q, 0, 0);
	vmem_t *child = vmem_create("r28-chi", 0, 0, Q, 0, 0);
	vmem_set_error_hook(child, r28_hook, NULL);
	r28_hook_calls = 0;
	vmem_set_import(child, (vmem_import_t *)(void (*)(void))vmem_alloc,
			(vmem_release_t *)(void (*)(void))vmem_free, parent, 4 * Q);
	CHECK_EQ(r28_hook_calls, 0);
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
	CHECK_EQ(r28_hook_calls, 0);
	vmem_destroy(child);
	vmem_destroy(parent);
	return failures;
}
