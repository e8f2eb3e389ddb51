/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Written from vmspace.h, vmspace/vmem.h and the README's C sections alone
 * by a reviewer outside the project, for what the other C tests leave out:
 *
 *  - model(): a fixed-seed random sequence (alloc by every policy and from
 *    the top, exact and aligned xalloc, handles, frees, deferred frees,
 *    flushes, bad frees) over three spans, with a per-quantum model of the
 *    arena; after every step every field of vmspace_sizes and the counters
 *    it can predict, every 8 steps the whole walk, the histogram and
 *    random contains() queries, compared with the model;
 *  - huge(): spans as large as the address space allows (quantum 1, a span
 *    of SIZE_MAX units; two halves), sizes and permille without overflow;
 *  - dead(): every call on a destroyed arena (vmem_init storage) is -EBADF
 *    or the documented bad-arena value;
 *  - args(): out-pointers, masks, nbins, windows with unaligned min/max;
 *  - forged(): handles forged to name a free segment, a span, a by-address
 *    allocation;
 *  - caches(): what bypasses the quantum caches (TOP, xalloc, sizes past
 *    8 quanta, quanta over 2^22) is an ordinary allocation, freeable by
 *    address and deferred; reclaim's count against qcache_slabs;
 *  - mtbf(): with mtbf 1 every allocation and add fails -EAGAIN, frees do
 *    not;
 *  - vmem(): vmem_size masks against the native sizes, cross frees.
 *
 * It found three defects, fixed since; their checks are strict here.
 *
 * The scenarios are in outside_more_<area>.c (model; args: huge, dead,
 * args; caches: forged, caches, mtbf, vmem; defects: imported, defects),
 * declared in outside_more.h.
 */
#include "outside_more.h"

int ctest_outside_more(void)
{
	int failures = 0;
	int f;
#define RUN(fn)                                                                  \
	do {                                                                     \
		f = more_##fn();                                                 \
		if (f)                                                           \
			fprintf(stderr, "outside_more: %s: %d failed\n", #fn, f); \
		failures += f;                                                   \
	} while (0)
	RUN(model);
	RUN(huge);
	RUN(dead);
	RUN(args);
	RUN(forged);
	RUN(caches);
	RUN(mtbf);
	RUN(vmem);
	RUN(imported);
	RUN(defects);
	return failures;
}
