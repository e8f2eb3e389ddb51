// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 8 (split from part 2): unflushed
 * spans going up a tree of arenas, many arenas at once, racing destroys.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

/* A child's unflushed frees go up to its parent when the child is destroyed,
 * and two generations up when the middle goes first. */
static void unflushed_goes_up(struct kunit *test)
{
	vmspace_arena_t *g = vmspace_arena_create("grand", 0x100000, 0x10000, 0x1000, 0, 0);
	struct vmspace_params p = { .name = "mid", .quantum = 0x1000 };
	vmspace_arena_t *m = NULL, *c = NULL;
	struct vmspace_sizes s;
	vmspace_size_t freed = 0;
	vmspace_addr_t x, y;

	KUNIT_ASSERT_NOT_NULL(test, g);
	p.parent = g;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&p, &m), 0);
	p.parent = m;
	p.name = "leaf";
	p.quantum = 0x100;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&p, &c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_import(c, NULL, NULL, NULL, 0), -EBUSY);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 0x300, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(g, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(m), -EBUSY);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(c, x, 0x300), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(m, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(m), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(g, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0xf000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(g, 0x1000, 0, 0, 0, 0, 0, x & ~0xfffUL, VMSPACE_EXACT, &y),
			-ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(g, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, (vmspace_size_t)0x1000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(g, 0x10000, 0, &y), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(g), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(g), 0);
}

/* Import functions from a module: importing from another arena, limits,
 * release, and a waiter that retries the import every 10 ms. */
/* Many arenas at once, each with the default tag budget. */
static void many_arenas(struct kunit *test)
{
	const int n = 512;
	vmspace_arena_t **a = kunit_kcalloc(test, n, sizeof(*a), GFP_KERNEL);
	vmspace_addr_t x;
	int i, made = 0;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < n; i++) {
		struct vmspace_params p = { .name = "many-arenas-with-a-name-longer-than-31",
					    .base = 0x1000, .size = 0x100000, .quantum = 0x10,
					    .qcache_max = 0x80 };
		int err = vmspace_arena_create_ex(&p, &a[i]);

		if (err) {
			KUNIT_FAIL(test, "arena %d: %d (%s)", i, err, vmspace_strerror(err));
			break;
		}
		made++;
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a[i], 0x40, 0, &x), 0);
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a[i], 0x400, 0, &x), 0);
	}
	if (made)
		KUNIT_EXPECT_STREQ(test, vmspace_arena_name(a[0]), "many-arenas-with-a-name-longer-");
	for (i = 0; i < made; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a[i]), 0);
}

/* Two racing destroys: one wins, the other is -EBADF. */
struct racer {
	vmspace_arena_t *a;
	atomic_t *go;
	int ret;
	struct completion done;
};

static int destroy_racer(void *p)
{
	struct racer *r = p;

	atomic_dec(r->go);
	while (atomic_read(r->go) > 0)
		cpu_relax();
	r->ret = vmspace_arena_destroy(r->a);
	complete(&r->done);
	return 0;
}

static void racing_destroys(struct kunit *test)
{
	int round, i;

	if (num_online_cpus() < 2)
		kunit_skip(test, "one CPU");
	for (round = 0; round < 50; round++) {
		atomic_t go = ATOMIC_INIT(2);
		struct racer r[2];
		vmspace_arena_t *a = vmspace_arena_create("race", 0x1000, 0x10000, 16, 64, 0);
		vmspace_addr_t x;

		KUNIT_ASSERT_NOT_NULL(test, a);
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x100, 0, &x), 0);
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x10, 0, &x), 0);
		for (i = 0; i < 2; i++) {
			struct task_struct *t;

			r[i] = (struct racer){ .a = a, .go = &go, .ret = 1 };
			init_completion(&r[i].done);
			t = kthread_create(destroy_racer, &r[i], "vmspace_out/race%d", i);
			KUNIT_ASSERT_FALSE(test, IS_ERR(t));
			kthread_bind(t, i);
			wake_up_process(t);
		}
		wait_for_completion(&r[0].done);
		wait_for_completion(&r[1].done);
		KUNIT_EXPECT_TRUE_MSG(test, (r[0].ret == 0 && r[1].ret == -EBADF) ||
					    (r[1].ret == 0 && r[0].ret == -EBADF),
				      "round %d: %d %d", round, r[0].ret, r[1].ret);
	}
}

static struct kunit_case vmspace_cmod_outside8_cases[] = {
	KUNIT_CASE(unflushed_goes_up),
	KUNIT_CASE(many_arenas),
	KUNIT_CASE(racing_destroys),
	{}
};

static struct kunit_suite vmspace_cmod_outside8_suite = {
	.name = "vmspace_cmod_outside8",
	.test_cases = vmspace_cmod_outside8_cases,
};

kunit_test_suite(vmspace_cmod_outside8_suite);
