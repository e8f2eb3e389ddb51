// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 3: racing frees across CPUs (cache
 * objects and arena allocations), two waiters and one free at a time, import
 * functions returning unusable ranges, a quantum-1 arena over (almost) the
 * whole address space, constraints that can never be met, reclaim.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

#define NR 256

struct racefree {
	vmspace_arena_t *a;
	vmspace_addr_t *x;
	vmspace_size_t size;
	atomic_t *go;
	int ok, enoent, other;
	struct completion done;
};

static int race_free_fn(void *p)
{
	struct racefree *r = p;
	int i;

	atomic_dec(r->go);
	while (atomic_read(r->go) > 0)
		cpu_relax();
	for (i = 0; i < NR; i++) {
		int e = vmspace_arena_free(r->a, r->x[i], r->size);

		if (!e)
			r->ok++;
		else if (e == -ENOENT)
			r->enoent++;
		else
			r->other++;
	}
	complete(&r->done);
	return 0;
}

static void race_frees_once(struct kunit *test, vmspace_size_t size)
{
	vmspace_arena_t *a = vmspace_arena_create("racefree", 0x100000, 0x1000000, 16, 128, 0);
	vmspace_addr_t *x = kunit_kcalloc(test, NR, sizeof(*x), GFP_KERNEL);
	struct vmspace_sizes s;
	struct racefree r[2];
	atomic_t go = ATOMIC_INIT(2);
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, x);
	for (i = 0; i < NR; i++)
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, size, 0, &x[i]), 0);
	for (i = 0; i < 2; i++) {
		struct task_struct *t;

		r[i] = (struct racefree){ .a = a, .x = x, .size = size, .go = &go };
		init_completion(&r[i].done);
		t = kthread_create(race_free_fn, &r[i], "vmspace_out/rf%d", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
		kthread_bind(t, i % num_online_cpus());
		wake_up_process(t);
	}
	wait_for_completion(&r[0].done);
	wait_for_completion(&r[1].done);
	KUNIT_EXPECT_EQ_MSG(test, r[0].ok + r[1].ok, NR, "size %zu: ok %d+%d enoent %d+%d", size,
			    r[0].ok, r[1].ok, r[0].enoent, r[1].enoent);
	KUNIT_EXPECT_EQ(test, r[0].enoent + r[1].enoent, NR);
	KUNIT_EXPECT_EQ(test, r[0].other + r[1].other, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	/* everything can be allocated again, with no duplicates */
	for (i = 0; i < NR; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, size, 0, &x[i]), 0);
	for (i = 0; i < NR; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], size), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated + s.free, s.total);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static void racing_frees(struct kunit *test)
{
	int round;

	for (round = 0; round < 10; round++) {
		race_frees_once(test, 16);  /* cache objects */
		race_frees_once(test, 112); /* cache objects, another class */
		race_frees_once(test, 1000); /* arena allocations */
	}
}

/* Two waiters, two frees, one at a time: no lost wakeup. */
struct w2 {
	vmspace_arena_t *a;
	vmspace_addr_t got;
	int result;
	struct completion done;
};

static int w2_fn(void *p)
{
	struct w2 *w = p;

	w->result = vmspace_arena_alloc(w->a, 0x1000, VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

static void two_waiters(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("w2", 0x10000, 0x2000, 0x1000, 0, 0);
	vmspace_addr_t p1, p2;
	struct w2 w[2];
	int i, first;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x1000, 0, &p1), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x1000, 0, &p2), 0);
	for (i = 0; i < 2; i++) {
		w[i] = (struct w2){ .a = a };
		init_completion(&w[i].done);
		KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(w2_fn, &w[i], "vmspace_out/w2%d", i)));
	}
	msleep(30);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, p1, 0x1000), 0);
	/* One of them takes p1: wait for it (a loaded host may be slow to run it). */
	for (i = 0, first = -1; first < 0 && i < 10000; i++) {
		first = completion_done(&w[0].done) ? 0 : completion_done(&w[1].done) ? 1 : -1;
		if (first < 0)
			msleep(1);
	}
	KUNIT_ASSERT_GE(test, first, 0);
	msleep(20); /* time for a second, wrong, wakeup to finish */
	KUNIT_EXPECT_FALSE(test, completion_done(&w[!first].done));
	KUNIT_EXPECT_EQ(test, w[first].result, 0);
	KUNIT_EXPECT_EQ(test, w[first].got, p1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, p2, 0x1000), 0);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&w[!first].done, msecs_to_jiffies(30000)), 0UL);
	KUNIT_EXPECT_EQ(test, w[!first].result, 0);
	KUNIT_EXPECT_EQ(test, w[!first].got, p2);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, p1, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, p2, 0x1000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Import functions returning unusable ranges. */
struct badsrc {
	vmspace_addr_t next;
	int releases;
	vmspace_addr_t rel_addr;
	vmspace_size_t rel_size;
};

static int bad_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct badsrc *b = arg;

	*addrp = b->next;
	return 0;
}

static void bad_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct badsrc *b = arg;

	b->releases++;
	b->rel_addr = addr;
	b->rel_size = size;
}

static void imports_unusable(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("badimp", 0x100000, 0x1000, 0x100, 0, 0);
	struct badsrc b = {};
	struct vmspace_counters c;
	struct vmspace_sizes s;
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(a, bad_import, bad_release, &b, 0x1000), 0);
	b.next = 0x200800; /* misaligned to the import quantum: released, -ENOMEM */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2000, 0, &x), -ENOMEM);
	KUNIT_EXPECT_EQ(test, b.releases, 1);
	KUNIT_EXPECT_EQ(test, b.rel_addr, 0x200800UL);
	KUNIT_EXPECT_EQ(test, b.rel_size, (vmspace_size_t)0x2000);
	b.next = ~0UL - 0x1fff; /* ends at 2^64: released, -EPROTO */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2000, 0, &x), -EPROTO);
	KUNIT_EXPECT_EQ(test, b.releases, 2);
	b.next = 0xff000; /* overlaps the added span: forgotten, -EPROTO */
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2000, 0, &x), -EPROTO);
	KUNIT_EXPECT_EQ(test, b.releases, 2);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.total, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, s.imported, (vmspace_size_t)0);
	b.next = 0x300000;
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x2000, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0x300000UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.imports, 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x2000), 0);
	KUNIT_EXPECT_EQ(test, b.releases, 3);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.exports, 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Quantum 1 over [0, 2^64 - 1): the largest sizes there are. */
static void whole_address_space(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("whole", 0, ~0UL, 1, 0, VMSPACE_BESTFIT);
	struct vmspace_sizes s;
	vmspace_addr_t x, y;
	int f;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL - 1, 1), 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL, 0), 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_contains(a, ~0UL, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.total, ~0UL);
	KUNIT_EXPECT_EQ(test, s.largest_free, ~0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, ~0UL, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x, 0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 1, 0, &y), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, ~0UL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 1UL << 63, VMSPACE_FIRSTFIT | VMSPACE_TOP, &x), 0);
	KUNIT_EXPECT_EQ(test, x, ~0UL - (1UL << 63));
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 1UL << 62, 1UL << 62, 0, 0, 0, 0, 0, VMSPACE_BESTFIT, &y), 0);
	KUNIT_EXPECT_EQ(test, y, 0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 1UL << 62), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 3, 0, 0, 1UL << 63, 0x7ffffffffffffffeUL, 0, 0,
						   VMSPACE_FIRSTFIT, &y), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 1UL << 63), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 3, 0, 0, 1UL << 63, 0x7ffffffffffffffeUL, 0, 0,
						   VMSPACE_FIRSTFIT, &y), 0);
	KUNIT_EXPECT_EQ(test, y, 1UL << 63);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 3), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 2, 0, 0, 0, 0, 0, ~0UL - 2, VMSPACE_EXACT, &y), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 2), 0);
	y = 0x1234;
	f = vmspace_arena_xalloc(a, 2, 0, 0, 0, 0, 0, ~0UL - 1, VMSPACE_EXACT, &y);
	kunit_info(test, "exact at 2^64 - 2, size 2: %d", f);
	KUNIT_EXPECT_TRUE(test, f == -ENOMEM || f == -ERANGE || f == -EOVERFLOW);
	KUNIT_EXPECT_EQ(test, y, 0x1234UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Constraints that can never be met together: -ERANGE, with or without WAIT. */
static void never_is_erange(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("never", 0x10000, 0x10000, 0x10, 0, 0);
	struct vmspace_counters c0, c1;
	vmspace_addr_t x;
	int i;
	static const struct { vmspace_size_t size, align, phase, nocross; vmspace_addr_t min, max, exact; } k[] = {
		{ 0x20, 0x100, 0, 0, 0, 0, 0x10010 },
		{ 0x20, 0, 0, 0x100, 0, 0, 0x100f0 },
		{ 0x20, 0, 0, 0, 0x10100, 0, 0x10000 },
		{ 0x20, 0, 0, 0, 0, 0x10010, 0x10000 },
		{ 0x20, 0x1000, 0x10, 0, 0x10020, 0x10ff0, 0 },
		{ 0x200, 0x100, 0x80, 0x200, 0, 0, 0 },
	};

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c0), 0);
	for (i = 0; i < ARRAY_SIZE(k); i++) {
		int flags = k[i].exact ? VMSPACE_EXACT : 0;
		int e = vmspace_arena_xalloc(a, k[i].size, k[i].align, k[i].phase, k[i].nocross,
					     k[i].min, k[i].max, k[i].exact, flags, &x);

		KUNIT_EXPECT_EQ_MSG(test, e, -ERANGE, "case %d", i);
		if (e == -ERANGE) /* only then: a wait that is not refused at once sleeps for good */
			KUNIT_EXPECT_EQ_MSG(test, vmspace_arena_xalloc(a, k[i].size, k[i].align, k[i].phase,
								       k[i].nocross, k[i].min, k[i].max,
								       k[i].exact, flags | VMSPACE_WAIT, &x),
					    -ERANGE, "case %d with WAIT", i);
		else if (!e)
			vmspace_arena_free(a, x, k[i].size);
	}
	/* size exactly nocross: fine, aligned to it */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x200, 0, 0, 0x200, 0x10010, 0, 0, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, x % 0x200, 0UL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x200), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c1), 0);
	KUNIT_EXPECT_EQ(test, c1.allocs, c0.allocs + 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

/* Reclaim gives back wholly free slabs once the depot is emptied. */
static int churn_cache(void *p)
{
	vmspace_arena_t *a = p;
	vmspace_addr_t x[NR];
	int i;

	for (i = 0; i < NR; i++)
		if (vmspace_arena_alloc(a, 16, 0, &x[i]))
			return -1;
	for (i = 0; i < NR; i++)
		if (vmspace_arena_free(a, x[i], 16))
			return -2;
	return 0;
}

struct oncpu3 {
	vmspace_arena_t *a;
	int ret;
	struct completion done;
};

static int oncpu3_fn(void *p)
{
	struct oncpu3 *o = p;

	o->ret = churn_cache(o->a);
	complete(&o->done);
	return 0;
}

static void reclaim_gives_back(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("reclaim", 0x100000, 0x100000, 16, 64, 0);
	struct vmspace_sizes before, after;
	struct vmspace_counters c;
	struct oncpu3 o;
	struct task_struct *t;
	int n;

	KUNIT_ASSERT_NOT_NULL(test, a);
	o.a = a;
	init_completion(&o.done);
	t = kthread_create(oncpu3_fn, &o, "vmspace_out/rc");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	kthread_bind(t, 0);
	wake_up_process(t);
	wait_for_completion(&o.done);
	KUNIT_ASSERT_EQ(test, o.ret, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &before), 0);
	n = vmspace_arena_reclaim(a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &after), 0);
	kunit_info(test, "reclaim %d: allocated %zu -> %zu, live %zu -> %zu", n, before.allocated,
		   after.allocated, before.live, after.live);
	KUNIT_EXPECT_GT(test, n, 0);
	KUNIT_EXPECT_EQ(test, before.allocated - after.allocated, (vmspace_size_t)n * 64 * 16);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(a, &c), 0);
	KUNIT_EXPECT_EQ(test, c.qcache_slabs, (uint64_t)after.live);
	KUNIT_EXPECT_EQ(test, vmspace_arena_reclaim(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


static struct kunit_case vmspace_cmod_outside3_cases[] = {
	KUNIT_CASE(racing_frees),
	KUNIT_CASE(two_waiters),
	KUNIT_CASE(imports_unusable),
	KUNIT_CASE(whole_address_space),
	KUNIT_CASE(never_is_erange),
	KUNIT_CASE(reclaim_gives_back),
	{}
};

static struct kunit_suite vmspace_cmod_outside3_suite = {
	.name = "vmspace_cmod_outside3",
	.test_cases = vmspace_cmod_outside3_cases,
};

kunit_test_suite(vmspace_cmod_outside3_suite);
