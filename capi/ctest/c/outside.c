/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Written from vmspace.h alone by a reviewer outside the project, to break
 * its promises: an arena whose span ends at the top of the address space
 * (every documented error code at the edges, the last page allocated
 * exactly, a window whose max is UINT64_MAX, a deferred free blocking an
 * exact allocation until the flush), a size in the same quantum-cache class
 * freed as another, and a child destroyed while holding an unflushed range
 * that its parent must never hand out.
 */
#include <errno.h>

#include "ctest.h"

int ctest_outside(void)
{
	int failures = 0;
	const uint64_t Q = 4096;
	const uint64_t TOP = UINT64_MAX - (Q - 1); /* 2^64 - 4096 */
	vmspace_addr_t a = 0;
	/* An arena at the very top of the address space. */
	vmspace_arena_t *top = vmspace_arena_create("top", TOP - 16 * Q, 16 * Q, Q, 0, 0);
	CHECK(top != NULL);
	CHECK_EQ(vmspace_arena_alloc(top, 0, 0, &a), -EINVAL);
	CHECK_EQ(vmspace_arena_alloc(top, UINT64_MAX, 0, &a), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_alloc(top, UINT64_MAX - Q, 0, &a), -ENOMEM);
	CHECK_EQ(vmspace_arena_alloc(top, 17 * Q, 0, &a), -ENOMEM);
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 3 * Q, 0, 0, 0, 0, 0, 0, &a), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 2 * Q, 1, 0, 0, 0, 0, 0, &a), -EINVAL);
	CHECK_EQ(vmspace_arena_xalloc(top, 2 * Q, 0, 0, Q, 0, 0, 0, 0, &a), -ERANGE);
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 0, 0, 0, 0, 0, TOP, VMSPACE_EXACT, &a), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 0, 0, 0, 0, 0, TOP - Q + 1, VMSPACE_EXACT, &a), -EINVAL);
	/* the last page of the span, exactly, max 0 = no limit */
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 0, 0, 0, 0, 0, TOP - Q, VMSPACE_EXACT, &a), 0);
	CHECK_EQ(a, TOP - Q);
	CHECK_EQ(vmspace_arena_free(top, a, Q + 1), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(top, a + Q, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(top, UINT64_MAX, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(top, a, Q), 0);
	/* window at the top, max inclusive of UINT64_MAX */
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 0, 0, 0, TOP - 2 * Q, UINT64_MAX, 0, VMSPACE_TOP, &a), 0);
	CHECK_EQ(a, TOP - Q);
	CHECK_EQ(vmspace_arena_free_deferred(top, a, Q), 0);
	CHECK_EQ(vmspace_arena_xalloc(top, Q, 0, 0, 0, 0, 0, TOP - Q, VMSPACE_EXACT, &a), -ENOMEM);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(top, &freed), 0);
	CHECK_EQ(freed, Q);
	CHECK_EQ(vmspace_arena_contains(top, TOP - Q, Q), 1);
	CHECK_EQ(vmspace_arena_contains(top, TOP - Q, 2 * Q), 0);
	CHECK_EQ(vmspace_arena_contains(top, TOP - Q, UINT64_MAX), 0);
	CHECK_EQ(vmspace_arena_add(top, TOP, Q, 0), -EOVERFLOW);
	CHECK_EQ(vmspace_arena_add(top, TOP - 16 * Q, Q, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_check(top), 0);
	CHECK_EQ(vmspace_arena_destroy(top), 0);

	/* Quantum caches: same-class wrong size, deferred frees of cached objects. */
	vmspace_arena_t *qa = vmspace_arena_create("qa", 1ull << 40, 1 << 20, 16, 128, 0);
	CHECK(qa != NULL);
	CHECK_EQ(vmspace_arena_alloc(qa, 17, 0, &a), 0);
	CHECK_EQ(vmspace_arena_free(qa, a, 32), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(qa, a, 18), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(qa, a, 17), -ENOENT);
	CHECK_EQ(vmspace_arena_free(qa, a + 16, 17), -ENOENT);
	CHECK_EQ(vmspace_arena_free(qa, a, 17), 0);
	CHECK_EQ(vmspace_arena_free(qa, a, 17), -ENOENT);
	CHECK_EQ(vmspace_arena_check(qa), 0);

	/* Parent and child: a child's deferred free then destroy: the parent
	 * must never hand that range out. */
	struct vmspace_params p = { .name = "child", .quantum = 16, .parent = qa };
	vmspace_arena_t *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	vmspace_addr_t c1 = 0;
	CHECK_EQ(vmspace_arena_alloc(child, 4096, 0, &c1), 0);
	CHECK_EQ(vmspace_arena_free_deferred(child, c1, 4096), 0);
	CHECK_EQ(vmspace_arena_destroy(qa), -EBUSY);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	int hit = 0;
	for (int i = 0; i < (1 << 16); i++) {
		vmspace_addr_t x;
		if (vmspace_arena_alloc(qa, 16, 0, &x) != 0)
			break;
		if (x >= c1 && x < c1 + 4096)
			hit = 1;
	}
	CHECK_EQ(hit, 0);
	CHECK_EQ(vmspace_arena_check(qa), 0);
	CHECK_EQ(vmspace_arena_destroy(qa), 0);
	return failures;
}
