/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): M_WAITOK
 * with constraints never met, destroy with an unflushed imported range,
 * probes of what the header leaves open.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ more */

/* vmem_xalloc with M_WAITOK and constraints never met: ENOMEM at once (the
 * README: "ENOMEM (no space, or constraints that can never be met)"), not
 * a wait for ever. Run in a child process that an alarm ends if it hangs. */
static int never_met_waitok(void)
{
	int failures = 0;
	pid_t pid = fork();
	if (pid == 0) {
		alarm(10);
		vmem_t *v = vmem_create("nm", B, 0x1000, Q, 0, 0);
		vmem_addr_t va;
		int e1 = vmem_xalloc(v, Q, 0, 0, 0, B + 0x100, B, M_WAITOK, &va);
		int e2 = vmem_xalloc(v, 4 * Q, 0, 0, 2 * Q, 0, VMEM_ADDR_MAX, M_WAITOK, &va);
		_exit(e1 == ENOMEM && e2 == ENOMEM ? 0 : 1);
	}
	CHECK(pid > 0);
	if (pid <= 0)
		return failures;
	int st = 0;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	if (WIFEXITED(st))
		CHECK_EQ(WEXITSTATUS(st), 0);
	return failures;
}

int adv_more(void)
{
	int failures = 0;
	failures += never_met_waitok();
	/* destroy with an unflushed range in an imported span: that span
	 * stays taken (not released); every other span is released */
	struct importer im;
	memset(&im, 0, sizeof(im));
	im.next = 0x40000000;
	vmspace_arena_t *a = vmspace_arena_create("more", 0, 0, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	CHECK_EQ(vmspace_arena_set_import(a, adv_imp, adv_rel, &im, 0x1000), 0);
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x1000, 0, &y), 0);
	CHECK_EQ(im.imports, 2);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 0x1000), 0);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.unflushed, 0x1000);
	CHECK_EQ(s.imported, 0x2000);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(im.releases, 1);
	CHECK_EQ(im.bad_release, 0);
	CHECK_EQ(im.released[0] + im.released[1], 1);
	CHECK(im.got[0] == x ? im.released[1] : im.released[0]);

	/* probes of what the header leaves open: printed, not asserted */
	a = vmspace_arena_create("probe", B, 0x10000, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	/* zero sizes where no allocation is: an error either way */
	int e = vmspace_arena_free(a, B + 0x800, 0);
	CHECK(e == -EINVAL || e == -ENOENT);
	e = vmspace_arena_free_deferred(a, B + 0x800, 0);
	CHECK(e == -EINVAL || e == -ENOENT);
	e = vmspace_arena_contains(a, B, 0);
	fprintf(stderr, "outside_adversary: note: contains(size 0) -> %d\n", e);
	e = vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, B + 0x100, 0, &x);
	fprintf(stderr, "outside_adversary: note: xalloc exact set, no EXACT flag -> %d (at %#lx)\n",
		e, e == 0 ? (unsigned long)x : 0UL);
	if (e == 0)
		CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
	failures += adv_consistent(a);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* an import quantum below the arena's: if accepted, an import aligned
	 * to it (as the import's doc asks) must not give the arena a span
	 * that is not a multiple of its quantum */
	a = vmspace_arena_create("iq", 0, 0, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	memset(&im, 0, sizeof(im));
	im.next = 0x40000000 + Q / 2;
	e = vmspace_arena_set_import(a, adv_imp, adv_rel, &im, Q / 2);
	fprintf(stderr, "outside_adversary: note: set_import(quantum below the arena's) -> %d\n",
		e);
	CHECK(e == 0 || e == -EINVAL);
	if (e == 0) {
		e = vmspace_arena_alloc(a, Q, 0, &x);
		if (e == 0) {
			CHECK_EQ(x % Q, 0);
			CHECK_EQ(vmspace_arena_free(a, x, Q), 0);
		}
		e = vmspace_arena_alloc(a, Q + Q / 2, 0, &x);
		if (e == 0) {
			CHECK_EQ(x % Q, 0);
			CHECK_EQ(vmspace_arena_free(a, x, Q + Q / 2), 0);
		}
		struct snap sn;
		adv_take(a, &sn);
		CHECK_EQ(sn.s.total % Q, 0);
		failures += adv_consistent(a);
	}
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	CHECK_EQ(im.releases, im.imports);
	CHECK_EQ(im.bad_release, 0);
	return failures;
}
