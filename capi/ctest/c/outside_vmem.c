/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Written from vmspace/vmem.h by a reviewer outside the project, to break
 * it: vmem_xalloc constraint semantics as vmem(9)
 * defines them (phase from the align boundary, nocross, maxaddr inclusive,
 * minaddr inclusive), best and next fit choices, and bad arguments as errors.
 */
#include <errno.h>

#include "ctest.h"

int ctest_outside_vmem(void)
{
	int failures = 0;
	vmem_addr_t a = 0, b = 0, c = 0;
	vmem_t *vm = vmem_create("outside", 0x10000, 0x10000, 16, 0, M_BESTFIT);
	CHECK(vm != NULL);
	if (!vm)
		return failures;

	/* Phase: the address is phase past a multiple of align. */
	CHECK_EQ(vmem_xalloc(vm, 32, 256, 48, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT, &a), 0);
	CHECK_EQ(a % 256, 48);
	vmem_xfree(vm, a, 32);

	/* maxaddr inclusive: [0x10000, 0x1003f] holds exactly 0x40 at 0x10000. */
	CHECK_EQ(vmem_xalloc(vm, 0x40, 0, 0, 0, 0x10000, 0x1003f,
			     M_NOWAIT | M_FIRSTFIT, &a), 0);
	CHECK_EQ(a, 0x10000);
	vmem_xfree(vm, a, 0x40);
	/* One unit less room: no fit. */
	CHECK_EQ(vmem_xalloc(vm, 0x40, 0, 0, 0, 0x10000, 0x1003e,
			     M_NOWAIT | M_FIRSTFIT, &a), ENOMEM);
	/* minaddr inclusive. */
	CHECK_EQ(vmem_xalloc(vm, 0x10, 0, 0, 0, 0x1fff0, VMEM_ADDR_MAX,
			     M_NOWAIT, &a), 0);
	CHECK_EQ(a, 0x1fff0);
	vmem_xfree(vm, a, 0x10);

	/* nocross: 0x30 at phase 0x20 of 0x40 with nocross 0x40 can never fit;
	 * from 0x10020 it would cross 0x10040, so it starts there. */
	CHECK_EQ(vmem_xalloc(vm, 0x30, 0x40, 0x20, 0x40, VMEM_ADDR_MIN,
			     VMEM_ADDR_MAX, M_NOWAIT, &a), ENOMEM);
	CHECK_EQ(vmem_xalloc(vm, 0x30, 0, 0, 0x40, 0x10020, VMEM_ADDR_MAX,
			     M_NOWAIT | M_FIRSTFIT, &a), 0);
	CHECK_EQ(a, 0x10040);
	vmem_xfree(vm, a, 0x30);

	/* Best fit picks the smallest hole: holes of 0x100 and 0x40. */
	vmem_addr_t x[4];
	CHECK_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT | M_FIRSTFIT, &x[0]), 0);
	CHECK_EQ(vmem_xalloc(vm, 0x10, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT | M_FIRSTFIT, &x[1]), 0);
	CHECK_EQ(vmem_xalloc(vm, 0x40, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT | M_FIRSTFIT, &x[2]), 0);
	CHECK_EQ(vmem_xalloc(vm, 0x10, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT | M_FIRSTFIT, &x[3]), 0);
	vmem_xfree(vm, x[0], 0x100);
	vmem_xfree(vm, x[2], 0x40);
	CHECK_EQ(vmem_alloc(vm, 0x30, M_NOWAIT | M_BESTFIT, &b), 0);
	CHECK_EQ(b, x[2]);
	vmem_free(vm, b, 0x30);
	vmem_free(vm, x[1], 0x10);
	vmem_free(vm, x[3], 0x10);

	/* Next fit: addresses go up, not back to a freed one. */
	CHECK_EQ(vmem_alloc(vm, 0x10, M_NOWAIT | M_NEXTFIT, &a), 0);
	vmem_free(vm, a, 0x10);
	CHECK_EQ(vmem_alloc(vm, 0x10, M_NOWAIT | M_NEXTFIT, &b), 0);
	CHECK(b != a);
	CHECK_EQ(vmem_alloc(vm, 0x10, M_NOWAIT | M_NEXTFIT, &c), 0);
	CHECK(c > b);
	vmem_free(vm, b, 0x10);
	vmem_free(vm, c, 0x10);

	/* Bad arguments are errors. */
	CHECK_EQ(vmem_xalloc(vm, 0x10, 48, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT, &a), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, 0x10, 64, 64, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT, &a), EINVAL);
	CHECK_EQ(vmem_xalloc(vm, 0, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			     M_NOWAIT, &a), EINVAL);
	CHECK_EQ(vmem_alloc(vm, 0x10, M_NOWAIT | M_BESTFIT | M_NEXTFIT, &a),
		 EINVAL);
	/* minaddr above maxaddr: never satisfiable. */
	CHECK(vmem_xalloc(vm, 0x10, 0, 0, 0, 0x18000, 0x17000, M_NOWAIT, &a) != 0);
	/* maxaddr = VMEM_ADDR_MAX - 1 must not overflow. */
	CHECK_EQ(vmem_xalloc(vm, 0x10, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX - 1,
			     M_NOWAIT, &a), 0);
	vmem_xfree(vm, a, 0x10);
	CHECK_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	CHECK_EQ(vmem_size(vm, VMEM_FREE), 0x10000);
	vmem_destroy(vm);
	return failures;
}
