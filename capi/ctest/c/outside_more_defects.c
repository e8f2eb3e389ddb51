/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Another outside reviewer (see outside_more.c): imported spans tallied;
 * the three defects it found, fixed since, checked strictly.
 */
#include "outside_more.h"

/* ------------------------------------------------------------- imported */

struct span_tally {
	int spans, imported;
	vmspace_size_t span_bytes, unflushed;
};

static int tally_spans(void *arg, const struct vmspace_segment *seg)
{
	struct span_tally *t = arg;
	if (seg->kind == VMSPACE_SEG_SPAN) {
		t->spans++;
		t->span_bytes += seg->size;
		if (seg->flags & VMSPACE_SEG_IMPORTED)
			t->imported++;
	} else if (seg->kind == VMSPACE_SEG_UNFLUSHED) {
		t->unflushed += seg->size;
	}
	return 0;
}

int more_imported(void)
{
	int failures = 0;
	const vmspace_addr_t PB = 0x40000000;
	vmspace_arena_t *parent = vmspace_arena_create("parent", PB, 0x100000, 0x1000, 0, 0);
	struct vmspace_params p;
	memset(&p, 0, sizeof p);
	p.name = "child";
	p.quantum = 16;
	p.parent = parent;
	vmspace_arena_t *child = NULL;
	CHECK_EQ(vmspace_arena_create_ex(&p, &child), 0);
	if (!parent || !child)
		return failures + 1;
	CHECK_EQ(vmspace_arena_add(child, 0x1000, 0x1000, 0), 0); /* one added span too */
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(child, 0x1000, 0, &x), 0); /* takes the added span */
	CHECK_EQ(x, 0x1000);
	CHECK_EQ(vmspace_arena_alloc(child, 100, 0, &y), 0); /* imports */
	CHECK(y >= PB && y < PB + 0x100000);
	struct vmspace_sizes s, ps;
	struct vmspace_counters c;
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.spans, 2);
	CHECK_EQ(s.imported, 0x1000);
	CHECK_EQ(s.total, 0x2000);
	CHECK_EQ(s.allocated, 0x1000 + 112);
	CHECK_EQ(s.live, 2);
	CHECK_EQ(vmspace_arena_counters(child, &c), 0);
	CHECK_EQ(c.imports, 1);
	CHECK_EQ(c.exports, 0);
	struct span_tally t = { 0, 0, 0, 0 };
	CHECK_EQ(vmspace_arena_walk(child, VMSPACE_SEG_ALL, tally_spans, &t), 0);
	CHECK_EQ(t.spans, 2);
	CHECK_EQ(t.imported, 1);
	CHECK_EQ(t.span_bytes, 0x2000);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0x1000);
	CHECK_EQ(ps.live, 1);
	/* a deferred free keeps the imported span until the flush */
	CHECK_EQ(vmspace_arena_free_deferred(child, y, 100), 0);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0x1000);
	CHECK_EQ(s.unflushed, 112);
	CHECK_EQ(s.free + s.allocated + s.unflushed, s.total);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0x1000);
	/* the parent cannot go while the child lives */
	CHECK_EQ(vmspace_arena_destroy(parent), -EBUSY);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(child, &freed), 0);
	CHECK(freed == 112 || freed == 0x1000);
	CHECK_EQ(vmspace_arena_sizes(child, &s), 0);
	CHECK_EQ(s.imported, 0);
	CHECK_EQ(s.spans, 1);
	CHECK_EQ(s.total, 0x1000);
	CHECK_EQ(s.unflushed, 0);
	CHECK_EQ(vmspace_arena_counters(child, &c), 0);
	CHECK_EQ(c.exports, 1);
	CHECK_EQ(c.flushes, 1);
	CHECK_EQ(vmspace_arena_sizes(parent, &ps), 0);
	CHECK_EQ(ps.allocated, 0);
	/* a limit below what the child holds: no more imports, adds still go */
	CHECK_EQ(vmspace_arena_set_limit(child, 0x1000), 0);
	CHECK_EQ(vmspace_arena_free(child, x, 0x1000), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 0x1000, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 16, 0, &y), -ENOMEM);
	CHECK_EQ(vmspace_arena_add(child, 0x3000, 0x1000, 0), 0);
	CHECK_EQ(vmspace_arena_alloc(child, 16, 0, &y), 0);
	CHECK_EQ(y, 0x3000);
	CHECK_EQ(vmspace_arena_check(child), 0);
	CHECK_EQ(vmspace_arena_check(parent), 0);
	CHECK_EQ(vmspace_arena_destroy(child), 0);
	CHECK_EQ(vmspace_arena_destroy(parent), 0);
	return failures;
}

/* -------------------------------------------------------------- defects */

/* Whether an xalloc with VMSPACE_WAIT returns within half a second: run in
 * a child process, killed if it does not. The result, or 1 for a hang. */
static int wait_returns(vmspace_size_t size, vmspace_size_t align, vmspace_size_t nocross,
			vmspace_addr_t min, vmspace_addr_t max, int *result)
{
	pid_t pid = fork();
	if (pid == 0) {
		vmspace_arena_t *a = vmspace_arena_create("w", 0x100000, 0x10000, 16, 0, 0);
		vmspace_addr_t x;
		int e = vmspace_arena_xalloc(a, size, align, 0, nocross, min, max, 0,
					     VMSPACE_WAIT, &x);
		_exit(e <= 0 && e > -128 ? -e : 255);
	}
	for (int i = 0; i < 50; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			*result = WIFEXITED(st) ? -WEXITSTATUS(st) : 1;
			return 1;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

int more_defects(void)
{
	int failures = 0;
	const vmspace_addr_t B = 0x100000;
	vmspace_arena_t *a = vmspace_arena_create("defects", B, 0x10000, 16, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x, y;
	/* Two free segments, [B, B+0x100) and [B+0x200, B+0x10000). */
	CHECK_EQ(vmspace_arena_xalloc(a, 0x100, 0, 0, 0, 0, 0, B + 0x100, VMSPACE_EXACT, &y), 0);
	/* 1: VMSPACE_FIRSTFIT with VMSPACE_TOP is the highest-addressed
	 * free segment that fits, at its top (asked here, and now in the
	 * header, which said only "lowest-addressed"). */
	CHECK_EQ(vmspace_arena_alloc(a, 0x10, VMSPACE_FIRSTFIT | VMSPACE_TOP, &x), 0);
	CHECK_EQ(x, B + 0x10000 - 0x10);
	CHECK_EQ(vmspace_arena_free(a, x, 0x10), 0);
	struct vmspace_handle h;
	CHECK_EQ(vmspace_arena_xalloc_handle(a, 0x10, 0, 0, 0, 0, 0, 0,
					     VMSPACE_FIRSTFIT | VMSPACE_TOP, &h), 0);
	CHECK_EQ(h.addr, B + 0x10000 - 0x10);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), 0);
	/* 2: -ERANGE "constraints that can never be met together": windows that
	 * hold no placement at all, whatever the arena holds. */
	int e1 = vmspace_arena_xalloc(a, 0x20, 0, 0, 0x100, B + 0xf0, B + 0x110, 0, 0, &x);
	int e2 = vmspace_arena_xalloc(a, 0x10, 0x1000, 0, 0, B + 0x10, B + 0x800, 0, 0, &x);
	int e3 = vmspace_arena_xalloc(a, 0x10, 0, 0, 0, B + 1, B + 31, 0, 0, &x);
	CHECK_EQ(e1, -ERANGE);
	CHECK_EQ(e2, -ERANGE);
	CHECK_EQ(e3, -ERANGE);
	/* ... and with VMSPACE_WAIT they return at once, not wait for ever */
	int r = 0;
	CHECK(wait_returns(0x10, 0x1000, 0, B + 0x10, B + 0x800, &r));
	CHECK_EQ(r, -ERANGE);
	r = 0;
	CHECK(wait_returns(0x20, 0, 0x100, B + 0xf0, B + 0x110, &r));
	CHECK_EQ(r, -ERANGE);
	/* 3: counters.failures "failed allocations and adds": one each. */
	struct vmspace_counters c0, c1;
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x20000, 0, &x), -ENOMEM);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.failures - c0.failures, 1);
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x20000, 0, &h), -ENOMEM);
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	CHECK_EQ(c0.failures - c1.failures, 1);
	CHECK_EQ(vmspace_arena_add(a, B, 0x10, 0), -EEXIST);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.failures - c0.failures, 1);
	CHECK_EQ(vmspace_arena_check(a), 0);
	CHECK_EQ(vmspace_arena_destroy(a), 0);
	return failures;
}
