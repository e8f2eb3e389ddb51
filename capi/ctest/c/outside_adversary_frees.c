/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * An adversarial outside reviewer (see outside_adversary.c): bad frees of
 * every kind and the error hook; stale and foreign handles.
 */
#include "outside_adversary.h"

/* ------------------------------------------------------------ frees */

int adv_frees(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("frees", B, 0x10000, Q, 0, 0);
	CHECK(a != NULL);
	if (!a)
		return failures;
	vmspace_addr_t x, y;
	CHECK_EQ(vmspace_arena_alloc(a, 10, 0, &x), 0);
	CHECK_EQ(vmspace_arena_alloc(a, 0x100, 0, &y), 0);
	struct snap s0;
	struct vmspace_counters c0, c1;
	adv_take(a, &s0);
	CHECK_EQ(vmspace_arena_counters(a, &c0), 0);
	/* 12 rounds to the same quantum as 10 but is not the size asked */
	CHECK_EQ(vmspace_arena_free(a, x, 12), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, Q), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -EMSGSIZE);
	/* a zero size: "-EINVAL ... a zero size" or "-EMSGSIZE a free with a
	 * size other than the one allocated" (errors.c expects the latter) */
	int ez = vmspace_arena_free(a, x, 0);
	CHECK(ez == -EINVAL || ez == -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 12), -EMSGSIZE);
	CHECK_EQ(vmspace_arena_free(a, y + Q, 0x100 - Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y + 1, 0xff), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, y + Q, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, B + 0x8000, 0x100), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, 0, Q), -ENOENT);
	CHECK_EQ(vmspace_arena_free(a, UINTPTR_MAX - 0xf, 0x10), -ENOENT);
	/* overflowing frees: errors (which one, the header does not rank) */
	int eo = vmspace_arena_free(a, UINTPTR_MAX - 0xf, 0x20);
	CHECK(eo == -EOVERFLOW || eo == -ENOENT);
	eo = vmspace_arena_free(a, y, SIZE_MAX);
	CHECK(eo == -EOVERFLOW || eo == -EMSGSIZE);
	UNCHANGED(a, s0);
	CHECK_EQ(vmspace_arena_counters(a, &c1), 0);
	CHECK_EQ(c1.frees, c0.frees);
	CHECK_EQ(c1.allocs, c0.allocs);
	CHECK(c1.bad_frees >= c0.bad_frees + 10);
	CHECK_EQ(vmspace_arena_free(a, x, 10), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 10), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, x, 10), -ENOENT);
	/* deferred, then again by either call: -ENOENT until and after the
	 * flush */
	CHECK_EQ(vmspace_arena_free_deferred(a, y, 0x100), 0);
	struct snap s1;
	adv_take(a, &s1);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), -ENOENT);
	CHECK_EQ(vmspace_arena_free_deferred(a, y, 0x100), -ENOENT);
	UNCHANGED(a, s1);
	vmspace_size_t freed = 0;
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0x100);
	CHECK_EQ(vmspace_arena_flushed(a, &freed), 0);
	CHECK_EQ(freed, 0);
	CHECK_EQ(vmspace_arena_free(a, y, 0x100), -ENOENT);
	/* a handle allocation is not freed by address: it is not in the
	 * hash; whatever happens, exactly one of the two frees succeeds */
	struct vmspace_handle h, hb;
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h), 0);
	int r1 = vmspace_arena_free(a, h.addr, 0x40);
	int r2 = vmspace_arena_free_handle(a, h, NULL);
	CHECK_EQ(r1, -ENOENT);
	CHECK((r1 == 0) != (r2 == 0));
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	/* a by-address allocation is not freed by a forged handle */
	CHECK_EQ(vmspace_arena_alloc(a, 0x40, 0, &x), 0);
	hb.addr = x;
	hb.arena = h.arena; /* this arena's fingerprint: only the tag is forged */
	struct snap s2;
	adv_take(a, &s2);
	for (uint32_t t = 0; t < 64; t++) {
		hb.tag = t;
		CHECK_EQ(vmspace_arena_free_handle(a, hb, NULL), -ENOENT);
	}
	hb.tag = UINT32_MAX;
	CHECK_EQ(vmspace_arena_free_handle(a, hb, NULL), -ENOENT);
	/* a real handle with another fingerprint is foreign */
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h), 0);
	adv_take(a, &s2);
	hb = h;
	hb.arena ^= 1;
	CHECK_EQ(vmspace_arena_free_handle(a, hb, NULL), -ENOENT);
	UNCHANGED(a, s2);
	hb = h;
	hb.addr += Q;
	CHECK_EQ(vmspace_arena_free_handle(a, hb, NULL), -ENOENT);
	UNCHANGED(a, s2);
	vmspace_size_t sz = 0;
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, &sz), 0);
	CHECK_EQ(sz, 0x40);
	CHECK_EQ(vmspace_arena_free_handle(a, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_free_handle_deferred(a, h, NULL), -ENOENT);
	CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
	CHECK_EQ(vmspace_arena_free(a, x, 0x40), 0);
	failures += adv_consistent(a);
	struct vmspace_sizes s;
	CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
	CHECK_EQ(s.allocated, 0);
	CHECK_EQ(s.live, 0);
	CHECK_EQ(s.free, 0x10000);
	CHECK_EQ(vmspace_arena_destroy(a), 0);

	/* quantum caches: a cached size freed as another in its class, the
	 * same, deferred (-ENOENT) */
	a = vmspace_arena_create("qc", B, 0x10000, Q, 8 * Q, 0);
	CHECK(a != NULL);
	if (a) {
		CHECK_EQ(vmspace_arena_alloc(a, 20, 0, &x), 0);
		adv_take(a, &s0);
		CHECK_EQ(vmspace_arena_free(a, x, 30), -EMSGSIZE);
		CHECK_EQ(vmspace_arena_free(a, x, Q), -EMSGSIZE);
		CHECK_EQ(vmspace_arena_free(a, x, 3 * Q), -EMSGSIZE);
		CHECK_EQ(vmspace_arena_free(a, x + Q, 20), -ENOENT);
		CHECK_EQ(vmspace_arena_free_deferred(a, x, 20), -ENOENT);
		UNCHANGED(a, s0);
		CHECK_EQ(vmspace_arena_free(a, x, 20), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 20), -ENOENT);
		/* xalloc of a cached size freed by free (and vmem_free) */
		CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
		CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), 0);
		CHECK_EQ(vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, 0, 0, 0, 0, &x), 0);
		vmem_free((vmem_t *)a, x, 2 * Q);
		CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -ENOENT);
		CHECK_EQ(vmspace_arena_alloc(a, 2 * Q, 0, &x), 0);
		vmem_xfree((vmem_t *)a, x, 2 * Q);
		CHECK_EQ(vmspace_arena_free(a, x, 2 * Q), -ENOENT);
		failures += adv_consistent(a);
		CHECK_EQ(vmspace_arena_sizes(a, &s), 0);
		CHECK_EQ(s.total, 0x10000);
		CHECK_EQ(vmspace_arena_destroy(a), 0);
	}

	/* vmem_free and vmem_xfree: bad ones call the hook once, with the
	 * call's name, address, size and a positive errno */
	vmem_t *v = vmem_create("vf", B, 0x1000, Q, 2 * Q, 0);
	CHECK(v != NULL);
	if (!v)
		return failures;
	struct hook_log log;
	memset(&log, 0, sizeof(log));
	vmem_set_error_hook(v, adv_hook, &log);
	vmem_addr_t va, vb;
	CHECK_EQ(vmem_alloc(v, Q, M_NOWAIT, &va), 0);
	CHECK_EQ(vmem_xalloc(v, 0x40, 0, 0, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &vb), 0);
	adv_take((vmspace_arena_t *)v, &s0);
	vmem_free(v, vb, 0x30);
	CHECK_EQ(log.calls, 1);
	CHECK_EQ(log.last_error, EMSGSIZE);
	CHECK(log.last_what && strcmp(log.last_what, "vmem_free") == 0);
	CHECK_EQ(log.last_addr, vb);
	CHECK_EQ(log.last_size, 0x30);
	vmem_xfree(v, vb + Q, 0x30);
	CHECK_EQ(log.calls, 2);
	CHECK_EQ(log.last_error, ENOENT);
	CHECK(log.last_what && strcmp(log.last_what, "vmem_xfree") == 0);
	vmem_free(v, vb, 0);
	CHECK_EQ(log.calls, 3);
	CHECK(log.last_error == EINVAL || log.last_error == EMSGSIZE);
	UNCHANGED((vmspace_arena_t *)v, s0);
	vmem_free(v, va, Q);
	vmem_xfree(v, vb, 0x40);
	CHECK_EQ(log.calls, 3);
	vmem_free(v, va, Q);
	CHECK_EQ(log.calls, 4);
	CHECK_EQ(log.last_error, ENOENT);
	vmem_xfree(v, vb, 0x40);
	CHECK_EQ(log.calls, 5);
	CHECK_EQ(log.last_error, ENOENT);
	/* bad hook-less arena calls do not crash */
	vmem_set_error_hook(v, NULL, NULL);
	vmem_free(v, va, Q);
	CHECK_EQ(log.calls, 5);
	/* vmem_size with unknown masks: 0 and the hook */
	vmem_set_error_hook(v, adv_hook, &log);
	CHECK_EQ(vmem_size(v, 0), 0);
	CHECK_EQ(vmem_size(v, 0x4), 0);
	CHECK_EQ(vmem_size(v, VMEM_MAXFREE | VMEM_ALLOC), 0);
	CHECK(log.calls >= 6);
	CHECK_EQ(log.last_error, EINVAL);
	CHECK_EQ(vmem_size(v, VMEM_ALLOC | VMEM_FREE), 0x1000);
	failures += adv_consistent((vmspace_arena_t *)v);
	vmem_destroy(v);
	return failures;
}

/* ------------------------------------------------------------ stale */

/*
 * free_handle: "A foreign handle (another arena's ...) or a stale one is
 * -ENOENT, except a stale handle whose tag was since reused for a new handle
 * allocation at the same address": a handle freed, then the same range
 * allocated again by handle; the old handle frees the new allocation only
 * if it names it exactly; another arena's handle never frees.
 */
int adv_stale(void)
{
	int failures = 0;
	vmspace_arena_t *a = vmspace_arena_create("stale", B, 0x10000, Q, 0, VMSPACE_FIRSTFIT);
	vmspace_arena_t *b = vmspace_arena_create("stale", B, 0x10000, Q, 0, VMSPACE_FIRSTFIT);
	CHECK(a != NULL && b != NULL);
	if (!a || !b) {
		if (a)
			vmspace_arena_destroy(a);
		if (b)
			vmspace_arena_destroy(b);
		return failures;
	}
	struct vmspace_handle h1, h2, hb;
	struct snap s0;
	vmspace_size_t sz = 0;
	/* Twice: freed directly, and freed deferred then flushed. */
	for (int deferred = 0; deferred < 2; deferred++) {
		CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h1), 0);
		if (deferred) {
			CHECK_EQ(vmspace_arena_free_handle_deferred(a, h1, NULL), 0);
			CHECK_EQ(vmspace_arena_flushed(a, NULL), 0);
		} else {
			CHECK_EQ(vmspace_arena_free_handle(a, h1, NULL), 0);
		}
		CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h2), 0);
		if (memcmp(&h1, &h2, sizeof(h1)) == 0) {
			/* The header: a stale handle whose tag was reused for a new
			 * handle allocation at the same address names it and frees it
			 * (as a free by address of a reused address would); then the
			 * new one is the stale one. */
			CHECK_EQ(vmspace_arena_free_handle(a, h1, &sz), 0);
			CHECK_EQ(sz, 0x40);
			adv_take(a, &s0);
			CHECK_EQ(vmspace_arena_free_handle(a, h2, NULL), -ENOENT);
			UNCHANGED(a, s0);
		} else {
			adv_take(a, &s0);
			CHECK_EQ(vmspace_arena_free_handle(a, h1, NULL), -ENOENT);
			UNCHANGED(a, s0);
			CHECK_EQ(vmspace_arena_free_handle(a, h2, &sz), 0);
			CHECK_EQ(sz, 0x40);
		}
	}
	/* a foreign handle: b made the same way, the same allocation */
	CHECK_EQ(vmspace_arena_alloc_handle(a, 0x40, 0, &h1), 0);
	CHECK_EQ(vmspace_arena_alloc_handle(b, 0x40, 0, &hb), 0);
	/* The same address and tag in both (built alike), but not the same
	 * handle: each carries its arena's fingerprint. */
	CHECK(h1.addr == hb.addr && h1.tag == hb.tag && h1.arena != hb.arena);
	/* h1 is a's, not b's: -ENOENT in b, b unchanged, hb still live */
	adv_take(b, &s0);
	CHECK_EQ(vmspace_arena_free_handle(b, h1, NULL), -ENOENT);
	UNCHANGED(b, s0);
	CHECK_EQ(vmspace_arena_free_handle(a, h1, NULL), 0);
	CHECK_EQ(vmspace_arena_free_handle(b, hb, NULL), 0);
	failures += adv_consistent(a);
	failures += adv_consistent(b);
	vmspace_arena_destroy(a);
	vmspace_arena_destroy(b);
	return failures;
}
