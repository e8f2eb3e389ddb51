/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * From an outside reviewer holding vmem.h to FreeBSD's vmem(9)
 * (sys/kern/subr_vmem.c): what a vmem(9) program does that vmspace did
 * differently, each group failing before its fix.
 *
 *  - roundup_frees(): vmem_xfree takes any size that rounds to the
 *    segment's (FreeBSD: MPASS(bt_size == vmem_roundup_size(vm, size))),
 *    and vmem_free picks the cache class by quanta; vmspace refused them
 *    (EMSGSIZE) and the allocation leaked. Sizes rounding to other quanta
 *    are still refused, and the native API frees a vmem(9) allocation by
 *    its size in whole quanta;
 *  - adjacent_adds(): vmem_add of a span touching an added span of an
 *    arena without a release function merges with it (vmem_add1), so an
 *    allocation may straddle the seam; with a release function the spans
 *    stay apart, as in FreeBSD;
 *  - top_span(): a span ending at 2^64 is EINVAL, as README's table says
 *    (FreeBSD allows it; vmspace's ranges end below 2^64).
 */
#include <errno.h>

#include "ctest.h"

static int hooked;

static void hook(void *arg, vmem_t *vm, const char *what, vmem_addr_t addr, vmem_size_t size,
		 int error)
{
	(void)arg;
	(void)vm;
	(void)what;
	(void)addr;
	(void)size;
	(void)error;
	hooked++;
}

/* Allocate `asize` (xalloc or not) and free it with `fsize`: whether the
 * free was taken (no error hook, nothing left allocated). */
static int freed_with(vmem_size_t quantum, vmem_size_t qcache_max, int x, vmem_size_t asize,
		      vmem_size_t fsize)
{
	vmem_addr_t a = 0;
	vmem_t *vm = vmem_create("r", 0x100000, 0x100000, quantum, qcache_max, 0);
	if (!vm)
		return -1;
	vmem_set_error_hook(vm, hook, NULL);
	hooked = 0;
	int r = x ? vmem_xalloc(vm, asize, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
				M_BESTFIT | M_NOWAIT, &a)
		  : vmem_alloc(vm, asize, M_BESTFIT | M_NOWAIT, &a);
	if (r) {
		vmem_destroy(vm);
		return -1;
	}
	if (x)
		vmem_xfree(vm, a, fsize);
	else
		vmem_free(vm, a, fsize);
	/* Cached objects stay in their slab: the hook says it all there. */
	int ok = !hooked && (qcache_max || vmem_size(vm, VMEM_ALLOC) == 0);
	vmem_destroy(vm);
	return ok;
}

static int roundup_frees(void)
{
	int failures = 0;
	CHECK_EQ(freed_with(16, 0, 0, 10, 16), 1);
	CHECK_EQ(freed_with(16, 0, 0, 16, 10), 1);
	CHECK_EQ(freed_with(16, 0, 1, 24, 32), 1);
	CHECK_EQ(freed_with(16, 0, 1, 32, 17), 1);
	CHECK_EQ(freed_with(16, 64, 0, 10, 16), 1);
	CHECK_EQ(freed_with(16, 64, 0, 48, 40), 1);
	CHECK_EQ(freed_with(4096, 0, 0, 100, 4096), 1);
	/* Other quanta: refused, as before. */
	CHECK_EQ(freed_with(16, 0, 0, 10, 17), 0);
	CHECK_EQ(freed_with(16, 0, 1, 32, 16), 0);
	CHECK_EQ(freed_with(16, 64, 0, 48, 64), 0);
	CHECK_EQ(freed_with(16, 64, 0, 16, 32), 0);

	/* The native API frees a vmem(9) allocation by its whole quanta. */
	vmem_addr_t a = 0;
	vmem_t *vm = vmem_create("n", 0x100000, 0x100000, 16, 0, 0);
	CHECK(vm != NULL);
	CHECK_EQ(vmem_alloc(vm, 10, M_NOWAIT, &a), 0);
	CHECK_EQ(vmspace_arena_free((vmspace_arena_t *)vm, a, 10), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free((vmspace_arena_t *)vm, a, 16), 0);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
	return failures;
}

static int release_nothing_calls;

static int no_import(void *arg, vmem_size_t size, int flags, vmem_addr_t *ap)
{
	(void)arg;
	(void)size;
	(void)flags;
	(void)ap;
	return ENOMEM;
}

static void count_release(void *arg, vmem_addr_t a, vmem_size_t size)
{
	(void)arg;
	(void)a;
	(void)size;
	release_nothing_calls++;
}

static int adjacent_adds(void)
{
	int failures = 0;
	vmem_addr_t a = 0;
	/* No release function: the spans merge, either side. */
	vmem_t *vm = vmem_create("grow", 0x2000, 0x1000, 0x1000, 0, M_BESTFIT);
	CHECK(vm != NULL);
	CHECK_EQ(vmem_add(vm, 0x3000, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_add(vm, 0x1000, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), 0x3000);
	CHECK_EQ(vmem_alloc(vm, 0x3000, M_NOWAIT | M_BESTFIT, &a), 0);
	CHECK_EQ(a, 0x1000);
	vmem_free(vm, a, 0x3000);
	/* Overlap and a span apart are what they were. */
	CHECK_EQ(vmem_add(vm, 0x3000, 0x1000, M_WAITOK), EEXIST);
	CHECK_EQ(vmem_add(vm, 0x10000, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_size(vm, VMEM_FREE), 0x4000);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), 0x3000);
	CHECK_EQ(vmspace_arena_check((vmspace_arena_t *)vm), 0);
	vmem_destroy(vm);

	/* With a release function the spans stay apart, as in FreeBSD. */
	vm = vmem_create("apart", 0x1000, 0x1000, 0x1000, 0, M_BESTFIT);
	CHECK(vm != NULL);
	vmem_set_import(vm, no_import, count_release, NULL, 0);
	CHECK_EQ(vmem_add(vm, 0x2000, 0x1000, M_WAITOK), 0);
	CHECK_EQ(vmem_size(vm, VMEM_MAXFREE), 0x1000);
	CHECK_EQ(vmem_alloc(vm, 0x2000, M_NOWAIT | M_BESTFIT, &a), ENOMEM);
	vmem_destroy(vm);
	CHECK_EQ(release_nothing_calls, 0);
	return failures;
}

static int top_span(void)
{
	int failures = 0;
	vmem_addr_t top = (vmem_addr_t)0 - 0x10000;
	CHECK(vmem_create("top", top, 0x10000, 0x1000, 0, M_BESTFIT) == NULL);
	vmem_t *vm = vmem_create("below", 0x1000, 0x1000, 0x1000, 0, M_BESTFIT);
	CHECK(vm != NULL);
	CHECK_EQ(vmem_add(vm, top, 0x10000, M_WAITOK), EINVAL);
	/* One quantum short of the top is a span like any other. */
	CHECK_EQ(vmem_add(vm, top, 0xf000, M_WAITOK), 0);
	vmem_addr_t a = 0;
	CHECK_EQ(vmem_xalloc(vm, 0x1000, 0, 0, 0, top, VMEM_ADDR_MAX, M_NOWAIT, &a), 0);
	CHECK_EQ(a, top);
	vmem_xfree(vm, a, 0x1000);
	vmem_destroy(vm);
	return failures;
}

int ctest_outside_vmem_fidelity(void)
{
	int failures = 0;
	int f;
#define GROUP(fn)                                                                          \
	do {                                                                               \
		f = fn();                                                                  \
		if (f)                                                                     \
			fprintf(stderr, "outside_vmem_fidelity: %s: %d failed\n", #fn, f); \
		failures += f;                                                             \
	} while (0)
	GROUP(roundup_frees);
	GROUP(adjacent_adds);
	GROUP(top_span);
	return failures;
}
