/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Written from vmspace.h, vmspace/vmem.h and the README's C sections alone
 * by an adversarial reviewer outside the project: what C callers get wrong
 * and what the headers promise about it.
 *
 *  - badptr(): NULL and misaligned out-pointers of every call, foreign
 *    arena pointers (a pointer into an arena's own allocation, a copy of
 *    vmem_init storage, a pointer into the middle of an arena), each an
 *    error with nothing changed, the original arena intact;
 *  - flags(): every flag combination rejected (-EINVAL, nothing changed)
 *    and the ones accepted, for create, create_ex, alloc, xalloc, handles,
 *    add, set_import;
 *  - xbounds(): xalloc's align, phase, nocross, min and max at their
 *    extremes, max exclusive (native) and maxaddr inclusive (vmem);
 *  - frees(): wrong sizes, a size rounding to the same quanta, an address
 *    inside an allocation, twice, by address of a handle allocation,
 *    deferred then again, vmem_free/vmem_xfree and the error hook;
 *  - spans(): add of overlapping, adjacent, contained and wrapping spans;
 *  - names(): too long, exactly the limit, empty, NULL, copied, bytes kept;
 *  - buffers(): histogram with nbins 0, 1, 64 and 65 (a sentinel past the
 *    end), the walk's stop value, vmem_print's lines;
 *  - callbacks(): an import that fails, returns a misaligned range, a
 *    range overlapping a span, a wrapping range; an import that calls
 *    another arena; destroy with live allocations releasing every import
 *    exactly once; vmem_set_reclaim that frees into the arena;
 *  - tags(): a small max_tags until -ENOSPC, nothing changed, balance;
 *  - races(): two threads freeing one allocation (by address, handle,
 *    deferred, vmem_free), two threads destroying one arena: exactly one
 *    wins each time;
 *  - misc(): strerror of every value (INT_MIN included), contains,
 *    roundup, flushed, reclaim, parents.
 *
 * After every scenario the arena is checked (vmspace_arena_check) and its
 * sizes must balance (total = allocated + free + unflushed).
 *
 * The scenarios are in outside_adversary_<area>.c (args: badptr, flags,
 * xbounds; frees: frees, stale; spans: spans, tags, parent_span; names:
 * names, buffers, misc; callbacks; races; more), their shared helpers in
 * outside_adversary.h and outside_adversary_common.c.
 */
#include "outside_adversary.h"

int ctest_outside_adversary(void)
{
	int failures = 0;
	int f;
#define RUN(fn)                                                                       \
	do {                                                                          \
		f = adv_##fn();                                                       \
		if (f)                                                                \
			fprintf(stderr, "outside_adversary: %s: %d failed\n", #fn, f); \
		failures += f;                                                        \
	} while (0)
	RUN(badptr);
	RUN(flags);
	RUN(xbounds);
	RUN(frees);
	RUN(spans);
	RUN(names);
	RUN(buffers);
	RUN(callbacks);
	RUN(tags);
	RUN(races);
	RUN(misc);
	RUN(parent_span);
	RUN(more);
	RUN(stale);
	return failures;
}
