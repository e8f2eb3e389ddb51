// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * KUnit suite of vmspace_cmod: the exported C API from a C module, on the
 * built-in arenas (sparse vmalloc metadata, kernel mutex, per-CPU caches).
 * Runs when the module loads.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>

#include "idspace.h"

static void ids_are_reused_late(struct kunit *test)
{
	struct idspace s;
	u32 a, b, c, d;

	KUNIT_ASSERT_EQ(test, idspace_init(&s, 64), 0);
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &a), 0);
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &b), 0);
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &c), 0);
	KUNIT_EXPECT_EQ(test, a, 1U);
	KUNIT_EXPECT_EQ(test, c, 3U);
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, b), 0);
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &d), 0);
	KUNIT_EXPECT_EQ(test, d, 4U); /* next fit: not 2 */
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, b), -ENOENT); /* freed already */
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, a), 0);
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, c), 0);
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, d), 0);
	idspace_fini(&s);
}

static void ids_run_out_and_come_back(struct kunit *test)
{
	struct idspace s;
	struct vmspace_sizes sz;
	u32 id, last = 0;
	int i;

	KUNIT_ASSERT_EQ(test, idspace_init(&s, 64), 0);
	for (i = 0; i < IDSPACE_IDS; i++) {
		KUNIT_ASSERT_EQ(test, idspace_get_id(&s, &id), 0);
		KUNIT_EXPECT_GT(test, id, last);
		last = id;
	}
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &id), -ENOMEM);
	KUNIT_EXPECT_EQ(test, idspace_put_id(&s, 77), 0);
	KUNIT_EXPECT_EQ(test, idspace_get_id(&s, &id), 0);
	KUNIT_EXPECT_EQ(test, id, 77U);
	for (i = 0; i < IDSPACE_IDS; i++)
		KUNIT_EXPECT_EQ(test, idspace_put_id(&s, IDSPACE_FIRST_ID + i), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(s.ids, &sz), 0);
	KUNIT_EXPECT_EQ(test, sz.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(s.ids), 0);
	idspace_fini(&s);
}

static void buffers_honour_their_constraints(struct kunit *test)
{
	struct idspace s;
	struct vmspace_sizes sz;
	unsigned long off[32];
	int i;

	KUNIT_ASSERT_EQ(test, idspace_init(&s, 256), 0);
	for (i = 0; i < 32; i++) {
		vmspace_size_t size = 100 + i * 97;

		KUNIT_ASSERT_EQ(test, idspace_get_buf(&s, size, 512, 4096, &off[i]), 0);
		KUNIT_EXPECT_EQ(test, off[i] % 512, 0UL);
		KUNIT_EXPECT_EQ(test, off[i] / 4096, (off[i] + size - 1) / 4096);
		KUNIT_EXPECT_GE(test, off[i], IDSPACE_WINDOW_BASE);
		KUNIT_EXPECT_LT(test, off[i], IDSPACE_WINDOW_BASE + 256 * IDSPACE_PAGE);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(s.bufs, &sz), 0);
	KUNIT_EXPECT_GT(test, sz.imported, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(s.window), -EBUSY); /* bufs imports from it */
	for (i = 0; i < 32; i++)
		KUNIT_EXPECT_EQ(test, idspace_put_buf(&s, off[i], 100 + i * 97), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(s.bufs, &sz), 0);
	KUNIT_EXPECT_EQ(test, sz.imported, (vmspace_size_t)0); /* all given back */
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(s.window, &sz), 0);
	KUNIT_EXPECT_EQ(test, sz.allocated, (vmspace_size_t)0);
	idspace_fini(&s);
}

static void bad_frees_change_nothing(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("bad", 0x1000, 0x10000, 16, 64, 0);
	struct vmspace_sizes before, after;
	vmspace_addr_t x, q;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 24, 0, &q), 0); /* per-CPU cache */
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &before), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x200), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x + 16, 0x100), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, q, 32), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, ~0UL - 15, 16), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, ~(size_t)0, 0, &x), -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16, 0x4000, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &after), 0);
	KUNIT_EXPECT_EQ(test, memcmp(&before, &after, sizeof(before)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x100), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, q, 24), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static void bad_arenas_are_refused(struct kunit *test)
{
	unsigned long *junk = kunit_kzalloc(test, 4096, GFP_KERNEL);
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, junk);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(NULL, 16, 0, &x), -EINVAL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc((vmspace_arena_t *)junk, 16, 0, &x), -EBADF);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy((vmspace_arena_t *)junk), -EBADF);
	KUNIT_EXPECT_NULL(test, vmspace_arena_create("q", 0, 0, 3, 0, 0));
	KUNIT_EXPECT_NOT_NULL(test, vmspace_strerror(-ENOMEM));
	KUNIT_EXPECT_EQ(test, vmspace_version(), VMSPACE_VERSION);
}

struct walk_count {
	int spans, frees, allocs, held;
};

static int count(void *arg, const struct vmspace_segment *seg)
{
	struct walk_count *w = arg;

	if (seg->kind == VMSPACE_SEG_SPAN)
		w->spans++;
	else if (seg->kind == VMSPACE_SEG_FREE)
		w->frees++;
	else
		w->allocs++;
	if (seg->flags & VMSPACE_SEG_HELD)
		w->held++;
	return 0;
}

static void handles_walks_and_counters(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("walk", 0x100000, 0x100000, 4096, 0, 0);
	struct vmspace_handle h, stale;
	struct walk_count w = {};
	struct vmspace_counters c;
	uint64_t bins[VMSPACE_HISTOGRAM_BINS];
	vmspace_size_t size = 0;
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(a, 8192, VMSPACE_BESTFIT, &h), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 4096, 0x10000, 0, 0, 0, 0, 0, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x % 0x10000, 0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_walk(a, VMSPACE_SEG_ALL, count, &w), 0);
	KUNIT_EXPECT_EQ(test, w.spans, 1);
	KUNIT_EXPECT_EQ(test, w.allocs, 2);
	KUNIT_EXPECT_EQ(test, w.held, 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_histogram(a, bins, VMSPACE_HISTOGRAM_BINS),
			VMSPACE_HISTOGRAM_BINS);
	stale = h;
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, h, &size), 0);
	KUNIT_EXPECT_EQ(test, size, (vmspace_size_t)8192);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_handle(a, stale, NULL), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 4096), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.allocs, 2ULL);
	KUNIT_EXPECT_EQ(test, c.frees, 2ULL);
	KUNIT_EXPECT_EQ(test, c.bad_frees, 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, 0x100000, 0x100000), 1);
	KUNIT_EXPECT_STREQ(test, vmspace_arena_name(a), "walk");
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

struct worker {
	vmspace_arena_t *arena;
	int seed, errors;
	struct completion done;
};

static int churn(void *arg)
{
	struct worker *w = arg;
	vmspace_addr_t live[16];
	vmspace_size_t size[16];
	u32 x = w->seed;
	int i, n = 0;

	for (i = 0; i < 4000; i++) {
		x = x * 1103515245 + 12345;
		if (n < 16 && (n == 0 || (x >> 16) & 1)) {
			size[n] = 16 + (x >> 20) % 200; /* mostly per-CPU cache sizes */
			if (vmspace_arena_alloc(w->arena, size[n], 0, &live[n]) == 0)
				n++;
			else
				w->errors++;
		} else {
			int k = (x >> 8) % n;

			if (vmspace_arena_free(w->arena, live[k], size[k]))
				w->errors++;
			live[k] = live[--n];
			size[k] = size[n];
		}
		if (i % 256 == 0)
			cond_resched();
	}
	while (n > 0) {
		n--;
		if (vmspace_arena_free(w->arena, live[n], size[n]))
			w->errors++;
	}
	complete(&w->done);
	return 0;
}

static void threads_share_an_arena(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("threads", 0x1000000, 0x1000000, 16, 128, 0);
	struct worker w[2];
	struct vmspace_counters c;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < 2; i++) {
		w[i] = (struct worker){ .arena = a, .seed = 17 + i };
		init_completion(&w[i].done);
		KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(churn, &w[i], "vmspace_cmod/%d", i)));
	}
	for (i = 0; i < 2; i++) {
		wait_for_completion(&w[i].done);
		KUNIT_EXPECT_EQ(test, w[i].errors, 0);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	/*
	 * The per-CPU caches served the threads: each CPU's first allocation
	 * of a class misses. (Hits are not a sure sign here: a CPU's hits are
	 * added to the counters at its next miss, which a churn that stays
	 * within its magazines never has; see vmspace.h.)
	 */
	KUNIT_EXPECT_GT(test, c.qcache_misses, 0ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

struct waiting {
	vmspace_arena_t *arena;
	u64 timeout_ns; /* 0: VMSPACE_WAIT, else a timed wait */
	vmspace_addr_t got;
	int result;
	struct completion started, done;
};

static int waiter(void *arg)
{
	struct waiting *w = arg;

	complete(&w->started);
	if (w->timeout_ns)
		w->result = vmspace_arena_alloc_timed(w->arena, 0x1000, 0, w->timeout_ns, &w->got);
	else
		w->result = vmspace_arena_alloc(w->arena, 0x1000, VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

/* A kthread running `fn` (waiter or killable_waiter) on w's arena, all of
 * which (`all`, 0x1000) is taken, gets it once it is freed, and holds it
 * again. */
static void woken_by(struct kunit *test, struct waiting *w, vmspace_addr_t all,
		     int (*fn)(void *))
{
	init_completion(&w->started);
	init_completion(&w->done);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(fn, w, "vmspace_cmod/wait")));
	wait_for_completion(&w->started);
	msleep(20);
	KUNIT_EXPECT_FALSE(test, completion_done(&w->done)); /* still waiting */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w->arena, all, 0x1000), 0);
	wait_for_completion(&w->done);
	KUNIT_EXPECT_EQ(test, w->result, 0);
	KUNIT_EXPECT_EQ(test, w->got, all);
}

/* woken_by a plain waiter; then the arena goes. */
static void woken_by_a_free(struct kunit *test, struct waiting *w, vmspace_addr_t all)
{
	woken_by(test, w, all, waiter);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w->arena, w->got, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(w->arena), 0);
}

static void a_waiter_gets_freed_space(struct kunit *test)
{
	struct waiting w = { .arena = vmspace_arena_create("wait", 0x1000, 0x1000, 16, 0, 0) };
	vmspace_addr_t all;

	KUNIT_ASSERT_NOT_NULL(test, w.arena);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(w.arena, 0x1000, 0, &all), 0);
	woken_by_a_free(test, &w, all);
}

/* A timed wait: -ETIMEDOUT no earlier than its timeout (0: at once), and
 * woken by a free well before a long one ends. */
static void a_timed_wait_times_out_or_is_woken(struct kunit *test)
{
	struct waiting w = { .arena = vmspace_arena_create("timed", 0x1000, 0x1000, 16, 0, 0),
			     .timeout_ns = 10 * NSEC_PER_SEC };
	vmspace_addr_t all, x = 0;
	u64 t0;

	KUNIT_ASSERT_NOT_NULL(test, w.arena);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(w.arena, 0x1000, 0, &all), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_timed(w.arena, 16, 0, 0, &x), -ETIMEDOUT);
	t0 = ktime_get_ns();
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_timed(w.arena, 16, VMSPACE_WAIT, 20 * NSEC_PER_MSEC, &x),
			-ETIMEDOUT);
	KUNIT_EXPECT_GE(test, ktime_get_ns() - t0, 20 * NSEC_PER_MSEC);
	KUNIT_EXPECT_EQ(test, x, 0UL);
	woken_by_a_free(test, &w, all);
}

/*
 * VMSPACE_KILLABLE with no signal: a killable wait is woken by a free as a
 * plain one is, a killable timed wait times out, and the flag without a
 * wait changes nothing. (A fatal signal ending the wait is not tested
 * here: UML delivers a kernel thread's pending signals at the end of every
 * interrupt, building a user signal frame it has no stack for, so a test
 * thread cannot be sent SIGKILL. The C API's paths to -EINTR are tested
 * in user space on a platform whose waiter can be interrupted,
 * capi/ctest/tests/outside_r62c_killable_platform.rs, and the core's wait
 * loop in userspace/tests/wait_interruptible.rs.)
 */
static int killable_waiter(void *arg)
{
	struct waiting *w = arg;

	complete(&w->started);
	if (w->timeout_ns)
		w->result = vmspace_arena_alloc_timed(w->arena, 0x1000, VMSPACE_KILLABLE,
						      w->timeout_ns, &w->got);
	else
		w->result = vmspace_arena_alloc(w->arena, 0x1000, VMSPACE_WAIT | VMSPACE_KILLABLE,
						&w->got);
	complete(&w->done);
	return 0;
}

static void a_killable_wait_waits_as_a_plain_one(struct kunit *test)
{
	struct waiting w = { .arena = vmspace_arena_create("kill", 0x1000, 0x1000, 16, 0, 0) };
	struct vmspace_handle h;
	vmspace_addr_t all, x = 0;
	u64 t0;

	KUNIT_ASSERT_NOT_NULL(test, w.arena);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(w.arena, 0x1000, 0, &all), 0);
	/* The flag alone: no wait. */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(w.arena, 16, VMSPACE_KILLABLE, &x), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_handle(w.arena, 16, VMSPACE_KILLABLE, &h), -ENOMEM);
	KUNIT_EXPECT_EQ(test,
			vmspace_arena_alloc_handle(w.arena, 16, VMSPACE_WAIT | VMSPACE_KILLABLE, &h),
			-EOPNOTSUPP);
	/* Timed: -ETIMEDOUT no earlier than its time. */
	t0 = ktime_get_ns();
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc_timed(w.arena, 16, VMSPACE_KILLABLE,
							20 * NSEC_PER_MSEC, &x), -ETIMEDOUT);
	KUNIT_EXPECT_GE(test, ktime_get_ns() - t0, 20 * NSEC_PER_MSEC);
	KUNIT_EXPECT_EQ(test, x, 0UL);
	/* Untimed, in a thread: woken by the free (an interruptible sleep
	 * that only a free ends); then a killable timed wait the same way. */
	woken_by(test, &w, all, killable_waiter);
	w.timeout_ns = 10 * NSEC_PER_SEC;
	woken_by(test, &w, all, killable_waiter);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w.arena, all, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(w.arena), 0);
}

static struct kunit_case vmspace_cmod_cases[] = {
	KUNIT_CASE(ids_are_reused_late),
	KUNIT_CASE(ids_run_out_and_come_back),
	KUNIT_CASE(buffers_honour_their_constraints),
	KUNIT_CASE(bad_frees_change_nothing),
	KUNIT_CASE(bad_arenas_are_refused),
	KUNIT_CASE(handles_walks_and_counters),
	KUNIT_CASE(threads_share_an_arena),
	KUNIT_CASE(a_waiter_gets_freed_space),
	KUNIT_CASE(a_timed_wait_times_out_or_is_woken),
	KUNIT_CASE(a_killable_wait_waits_as_a_plain_one),
	{}
};

static struct kunit_suite vmspace_cmod_suite = {
	.name = "vmspace_cmod",
	.test_cases = vmspace_cmod_cases,
};

kunit_test_suite(vmspace_cmod_suite);
