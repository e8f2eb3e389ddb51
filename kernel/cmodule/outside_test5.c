// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 5: more than 32 slabs in a cache
 * class, overflowing ranges, deferred frees against ordinary ones, a child's
 * flush giving spans back, an exact wait, arenas made and destroyed from
 * two CPUs at once, and an arena grown to 100,000 live allocations.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/vmspace.h>

#define NOBJ 2400

/* A class past its 32 slab records: objects a miss took from the arena are
 * allocations of their own (free_deferred takes them), slab objects not. */
static void cache_class_past_32_slabs(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("slabs", 0x100000, 0x1000000, 16, 16, 0);
	vmspace_addr_t *x = kunit_kcalloc(test, NOBJ, sizeof(*x), GFP_KERNEL);
	bool *own = kunit_kcalloc(test, NOBJ, sizeof(*own), GFP_KERNEL);
	struct vmspace_sizes s;
	vmspace_size_t freed = 0;
	int i, nown = 0, e;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, x);
	KUNIT_ASSERT_NOT_NULL(test, own);
	for (i = 0; i < NOBJ; i++)
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 16, 0, &x[i]), 0);
	for (i = 0; i < NOBJ; i++) {
		e = vmspace_arena_free_deferred(a, x[i], 16);
		if (e == 0) {
			own[i] = true;
			nown++;
		} else {
			KUNIT_EXPECT_EQ(test, e, -ENOENT);
		}
	}
	kunit_info(test, "%d of %d objects were allocations of their own", nown, NOBJ);
	KUNIT_EXPECT_GT(test, nown, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)nown * 16);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)nown * 16);
	for (i = 0; i < NOBJ; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], 16), own[i] ? -ENOENT : 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Ranges whose end wraps are never inside; frees of wrapping sizes refused. */
static void wrapping_ranges(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("wrap", 0, ~0UL, 1, 0, 0);
	vmspace_arena_t *b = vmspace_arena_create("wrap16", 0x1000, 0x1000, 16, 0, 0);
	vmspace_addr_t x;
	int e;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, b);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x10, ~0UL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL - 0xf, 0x20), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(b, 0x1800, ~0UL - 0x7ff), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(b, 0x100, 0, &x), 0);
	e = vmspace_arena_free(b, x, ~0UL);
	kunit_info(test, "free of size 2^64 - 1: %d", e);
	KUNIT_EXPECT_TRUE(test, e == -EMSGSIZE || e == -EOVERFLOW);
	e = vmspace_arena_free(b, x, ~0UL - 0xfe); /* rounds up past 2^64 */
	KUNIT_EXPECT_TRUE(test, e == -EMSGSIZE || e == -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(b, x, 0xf1), -EMSGSIZE); /* rounds to 0x100, but not the size asked */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(b, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(b), 0);
}

/* A range freed deferred is freed: an ordinary free of it is -ENOENT; a
 * child's flush gives its span back to the parent. */
static void deferred_then_ordinary(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("dto-parent", 0x100000, 0x100000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "dto-child", .quantum = 0x100 };
	struct vmspace_sizes s;
	vmspace_arena_t *c = NULL;
	vmspace_size_t freed = 0;
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &c), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 0x3000, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(c, x, 0x3000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(c, x, 0x3000), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(c, x, 0x3000), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0x3000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(c, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)0x3000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(c, &s), 0);
	KUNIT_EXPECT_EQ(test, s.imported, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}

struct xw {
	vmspace_arena_t *a;
	vmspace_addr_t got;
	int result;
	struct completion done;
};

static int exact_waiter(void *p)
{
	struct xw *w = p;

	w->result = vmspace_arena_xalloc(w->a, 0x100, 0, 0, 0, 0, 0, 0x1100, VMSPACE_EXACT | VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

/* An exact allocation waits for its place, not for any space. */
static void exact_wait(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("xw", 0x1000, 0x1000, 0x100, 0, 0);
	struct xw w = {};
	vmspace_addr_t x, y;

	KUNIT_ASSERT_NOT_NULL(test, a);
	w.a = a;
	init_completion(&w.done);
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(a, 0x200, 0, 0, 0, 0, 0, 0x1000, VMSPACE_EXACT, &x), 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(exact_waiter, &w, "vmspace_out/xw")));
	msleep(30);
	KUNIT_EXPECT_FALSE(test, completion_done(&w.done));
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &y), 0); /* elsewhere: no use to it */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x100), 0);
	msleep(30);
	KUNIT_EXPECT_FALSE(test, completion_done(&w.done));
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x200), 0);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&w.done, msecs_to_jiffies(3000)), 0UL);
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, w.got, 0x1100UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, w.got, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Arenas made, used and destroyed on both CPUs at once. */
struct cd {
	int errors, seed;
	struct completion done;
};

static int create_destroy(void *p)
{
	struct cd *c = p;
	int i, j;

	for (i = 0; i < 150; i++) {
		struct vmspace_params pp = { .name = "cd", .base = 0x10000, .size = 0x100000,
					     .quantum = 16, .qcache_max = 64 };
		vmspace_arena_t *a = NULL, *ch = NULL;
		vmspace_addr_t x[8];

		if (vmspace_arena_create_ex(&pp, &a)) {
			c->errors++;
			continue;
		}
		pp.parent = a;
		pp.base = pp.size = 0;
		if (vmspace_arena_create_ex(&pp, &ch))
			c->errors++;
		for (j = 0; j < 8; j++)
			if (vmspace_arena_alloc(j & 1 && ch ? ch : a, 16 << (j % 4), 0, &x[j]))
				c->errors++;
		if (ch && vmspace_arena_destroy(ch))
			c->errors++;
		if (vmspace_arena_destroy(a))
			c->errors++;
		if (i % 16 == 0)
			cond_resched();
	}
	complete(&c->done);
	return 0;
}

static void create_destroy_on_two_cpus(struct kunit *test)
{
	struct cd c[2];
	int i;

	for (i = 0; i < 2; i++) {
		struct task_struct *t;

		c[i] = (struct cd){ .seed = i };
		init_completion(&c[i].done);
		t = kthread_create(create_destroy, &c[i], "vmspace_out/cd%d", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
		kthread_bind(t, i % num_online_cpus());
		wake_up_process(t);
	}
	for (i = 0; i < 2; i++) {
		wait_for_completion(&c[i].done);
		KUNIT_EXPECT_EQ(test, c[i].errors, 0);
	}
}

/* 100,000 live allocations: the metadata grows (hash, tags) and shrinks. */
static void hundred_thousand(struct kunit *test)
{
	const int n = 100000;
	vmspace_arena_t *a = vmspace_arena_create("100k", 1, 1UL << 40, 1, 0, 0);
	vmspace_addr_t *x = vmalloc(array_size(n, sizeof(*x)));
	struct vmspace_sizes s;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, x);
	for (i = 0; i < n; i++) {
		if (vmspace_arena_alloc(a, 1 + i % 7, i % 3 ? 0 : VMSPACE_BESTFIT, &x[i])) {
			KUNIT_FAIL(test, "alloc %d", i);
			break;
		}
		if (i % 1024 == 0)
			cond_resched();
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.live, (vmspace_size_t)i);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	while (i-- > 0) {
		int k = (i * 7919) % n; /* every index once, in a scattered order */

		if (vmspace_arena_free(a, x[k], 1 + k % 7))
			KUNIT_FAIL(test, "free %d", k);
		if (i % 1024 == 0)
			cond_resched();
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.live, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)(1UL << 40));
	KUNIT_EXPECT_EQ(test, s.largest_free, (vmspace_size_t)(1UL << 40));
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	vfree(x);
}


/* Misaligned out-pointers are -EINVAL and the call does nothing: the handle
 * is not freed, nothing is flushed. Frees of size 0. */
static void out_pointers_checked_first(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create(NULL, 0x1000, 0x1000, 16, 0, 0);
	char *raw = kunit_kzalloc(test, 64, GFP_KERNEL);
	static const int codes[] = { EINVAL, EBADF, ENOMEM, ERANGE, EOVERFLOW, ENOENT, EMSGSIZE, EEXIST,
				     EBUSY, ENOSPC, EPROTO, EIO, EAGAIN, EUCLEAN, EOPNOTSUPP, 12345 };
	struct vmspace_handle h;
	struct vmspace_sizes s;
	vmspace_addr_t x;
	vmspace_size_t freed;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, raw);
	KUNIT_EXPECT_NOT_NULL(test, vmspace_arena_name(a));
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc_handle(a, 0x100, 0, &h), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, (vmspace_size_t *)(raw + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle_deferred(a, h, (vmspace_size_t *)(raw + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.live, (vmspace_size_t)1);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle_deferred(a, h, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, (vmspace_size_t *)(raw + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0x100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)0x100);
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, (uint64_t *)(raw + 1), 4), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(a, 0, 0, &h), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0, 0, 0, 0, 0, 0, 0, 0, &x), -EINVAL);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x + 0x100, 0), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 0), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	for (i = 0; i < ARRAY_SIZE(codes); i++) {
		KUNIT_EXPECT_NOT_NULL(test, vmspace_strerror(codes[i]));
		KUNIT_EXPECT_NOT_NULL(test, vmspace_strerror(-codes[i]));
		KUNIT_EXPECT_STREQ(test, vmspace_strerror(codes[i]), vmspace_strerror(-codes[i]));
	}
	KUNIT_EXPECT_STRNEQ(test, vmspace_strerror(-EBUSY), vmspace_strerror(-ENOENT));
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* Arenas grown (metadata pages mapped) and destroyed, many times: the
 * memory comes back. */
static int grow_and_destroy(int rounds)
{
	int r, i;

	for (r = 0; r < rounds; r++) {
		vmspace_arena_t *a = vmspace_arena_create("leak", 1, 1UL << 30, 1, 0, 0);
		struct vmspace_handle h;
		vmspace_addr_t x;

		if (!a)
			return -ENOMEM;
		for (i = 0; i < 3000; i++) {
			if (vmspace_arena_xalloc(a, 1, 2, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x))
				return -EIO;
			if (i % 3 == 0 && vmspace_arena_alloc_handle(a, 5, 0, &h))
				return -EIO;
			if (i % 5 == 0 && vmspace_arena_free_deferred(a, x, 1))
				return -EIO;
		}
		if (vmspace_arena_destroy(a))
			return -EBUSY;
		cond_resched();
	}
	return 0;
}

static void no_leak_over_many_arenas(struct kunit *test)
{
	struct sysinfo before, after;
	long lost;

	KUNIT_ASSERT_EQ(test, grow_and_destroy(30), 0);
	si_meminfo(&before);
	KUNIT_ASSERT_EQ(test, grow_and_destroy(150), 0);
	si_meminfo(&after);
	lost = (long)before.freeram - (long)after.freeram;
	kunit_info(test, "free pages %lu -> %lu (%ld lost over 150 arenas)", before.freeram, after.freeram, lost);
	KUNIT_EXPECT_LT(test, lost, 1024L);
}

static struct kunit_case vmspace_cmod_outside5_cases[] = {
	KUNIT_CASE(no_leak_over_many_arenas),
	KUNIT_CASE(out_pointers_checked_first),
	KUNIT_CASE(cache_class_past_32_slabs),
	KUNIT_CASE(wrapping_ranges),
	KUNIT_CASE(deferred_then_ordinary),
	KUNIT_CASE(exact_wait),
	KUNIT_CASE(create_destroy_on_two_cpus),
	KUNIT_CASE(hundred_thousand),
	{}
};

static struct kunit_suite vmspace_cmod_outside5_suite = {
	.name = "vmspace_cmod_outside5",
	.test_cases = vmspace_cmod_outside5_cases,
};

kunit_test_suite(vmspace_cmod_outside5_suite);
