// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, part 6: sleeping where the header lets
 * a module sleep. Import functions and walk callbacks run with the arena
 * locked, and the lock is a mutex: they may sleep (GFP_KERNEL, msleep), also
 * when the allocation that called them came through the per-CPU quantum
 * caches (which pin the CPU with preemption disabled), and cache misses may
 * contend for a lock another thread holds for a long time. A sleep inside a
 * preempt-disabled section shows as "BUG: scheduling while atomic".
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

struct sleepy {
	vmspace_arena_t *from;
	int imports, releases, atomic_seen;
};

static int sleepy_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct sleepy *s = arg;
	void *p;

	if (preempt_count() || irqs_disabled())
		s->atomic_seen++;
	p = kmalloc(64, GFP_KERNEL); /* may sleep */
	kfree(p);
	msleep(2);
	if (vmspace_arena_alloc(s->from, size, 0, addrp))
		return -1;
	s->imports++;
	return 0;
}

static void sleepy_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct sleepy *s = arg;

	if (preempt_count() || irqs_disabled())
		s->atomic_seen++;
	msleep(1);
	WARN_ON(vmspace_arena_free(s->from, addr, size));
	s->releases++;
}

/* Cache-sized allocations whose misses import through a sleeping function. */
static void import_fn_sleeps_under_cache_miss(struct kunit *test)
{
	struct sleepy s = { .from = vmspace_arena_create("sl-src", 0x10000000, 0x1000000, 0x1000, 0, 0) };
	vmspace_arena_t *a = vmspace_arena_create("sl-cache", 0, 0, 16, 128, 0);
	vmspace_addr_t x[64];
	int i;

	KUNIT_ASSERT_NOT_NULL(test, s.from);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(a, sleepy_import, sleepy_release, &s, 0x1000), 0);
	for (i = 0; i < 64; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 16 + 16 * (i % 8), 0, &x[i]), 0);
	KUNIT_EXPECT_GT(test, s.imports, 0);
	KUNIT_EXPECT_EQ(test, s.atomic_seen, 0);
	for (i = 0; i < 64; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x[i], 16 + 16 * (i % 8)), 0);
	KUNIT_EXPECT_GE(test, vmspace_arena_reclaim(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, s.imports, s.releases);
	KUNIT_EXPECT_EQ(test, s.atomic_seen, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(s.from), 0);
}

/* A walk whose callback sleeps holds the lock; cache misses on the other CPU
 * (a child's, importing from the walked parent) wait for it. */
struct slowwalk {
	vmspace_arena_t *a;
	int calls, atomic_seen;
	struct completion started, done;
};

static int slow_cb(void *arg, const struct vmspace_segment *seg)
{
	struct slowwalk *w = arg;

	if (preempt_count() || irqs_disabled())
		w->atomic_seen++;
	if (w->calls++ == 0)
		complete(&w->started);
	msleep(20);
	return 0;
}

static int walker(void *arg)
{
	struct slowwalk *w = arg;

	vmspace_arena_walk(w->a, VMSPACE_SEG_ALL, slow_cb, w);
	complete(&w->done);
	return 0;
}

struct misser {
	vmspace_arena_t *a, *p;
	int errors;
	struct completion done;
};

static int misser_fn(void *arg)
{
	struct misser *m = arg;
	vmspace_addr_t x[40];
	int i, round;

	for (round = 0; round < 3; round++) {
		for (i = 0; i < 40; i++)
			if (vmspace_arena_alloc(i & 1 ? m->a : m->p, 16 * (1 + i % 8), 0, &x[i]))
				m->errors++;
		for (i = 0; i < 40; i++)
			if (vmspace_arena_free(i & 1 ? m->a : m->p, x[i], 16 * (1 + i % 8)))
				m->errors++;
		vmspace_arena_reclaim(m->a);
		vmspace_arena_reclaim(m->p);
	}
	complete(&m->done);
	return 0;
}

static void misses_contend_with_a_sleeping_walk(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("sw-parent", 0x1000000, 0x100000, 16, 128, 0);
	struct vmspace_params cp = { .name = "sw-child", .quantum = 16, .qcache_max = 128 };
	struct slowwalk w = {};
	struct misser m = {};
	struct task_struct *t;
	vmspace_addr_t hold[8];
	int i;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &m.a), 0);
	m.p = p;
	for (i = 0; i < 8; i++) /* a few segments to walk */
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(p, 0x1000 * (i + 1), 0, &hold[i]), 0);
	w.a = p;
	init_completion(&w.started);
	init_completion(&w.done);
	init_completion(&m.done);
	t = kthread_create(walker, &w, "vmspace_out/walk");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	kthread_bind(t, 0);
	wake_up_process(t);
	wait_for_completion(&w.started);
	t = kthread_create(misser_fn, &m, "vmspace_out/miss");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	kthread_bind(t, num_online_cpus() > 1 ? 1 : 0);
	wake_up_process(t);
	wait_for_completion(&w.done);
	wait_for_completion(&m.done);
	KUNIT_EXPECT_EQ(test, m.errors, 0);
	KUNIT_EXPECT_EQ(test, w.atomic_seen, 0);
	KUNIT_EXPECT_GT(test, w.calls, 8);
	for (i = 0; i < 8; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(p, hold[i], 0x1000 * (i + 1)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(m.a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(m.a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(p), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}

/* Calls from a workqueue (task context too). */
struct wq_job {
	struct work_struct work;
	vmspace_arena_t *a;
	int errors;
};

static void wq_fn(struct work_struct *work)
{
	struct wq_job *j = container_of(work, struct wq_job, work);
	vmspace_addr_t x;
	int i;

	for (i = 0; i < 500; i++) {
		if (vmspace_arena_alloc(j->a, 16 * (1 + i % 12), 0, &x) ||
		    vmspace_arena_free(j->a, x, 16 * (1 + i % 12)))
			j->errors++;
	}
}

static void from_workqueues(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("wq", 0x100000, 0x100000, 16, 128, 0);
	struct wq_job j[4];
	int i;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < 4; i++) {
		j[i].a = a;
		j[i].errors = 0;
		INIT_WORK(&j[i].work, wq_fn);
		queue_work_on(i % num_online_cpus(), system_unbound_wq, &j[i].work);
	}
	for (i = 0; i < 4; i++) {
		flush_work(&j[i].work);
		KUNIT_EXPECT_EQ(test, j[i].errors, 0);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* A waiter two generations down is woken by a free in the root; a child of
 * an arena importing through a function retries the import while waiting. */
struct gw {
	vmspace_arena_t *a;
	vmspace_size_t size;
	vmspace_addr_t got;
	int result;
	struct completion done;
};

static int gw_fn(void *p)
{
	struct gw *w = p;

	w->result = vmspace_arena_alloc(w->a, w->size, VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

struct toggle {
	vmspace_addr_t next;
	int fail;
};

static int toggle_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct toggle *t = arg;

	if (READ_ONCE(t->fail))
		return -1;
	*addrp = t->next;
	t->next += round_up(size, 0x10000);
	return 0;
}

static void waits_down_the_tree(struct kunit *test)
{
	vmspace_arena_t *g = vmspace_arena_create("gw-root", 0x100000, 0x4000, 0x1000, 0, 0);
	struct vmspace_params pm = { .name = "gw-mid", .quantum = 0x1000 };
	struct vmspace_params pl = { .name = "gw-leaf", .quantum = 0x100 };
	struct toggle tg = { .next = 0x4000000, .fail = 1 };
	vmspace_arena_t *m = NULL, *l = NULL, *f = NULL, *fc = NULL;
	struct gw w = {};
	vmspace_addr_t all;

	KUNIT_ASSERT_NOT_NULL(test, g);
	pm.parent = g;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&pm, &m), 0);
	pl.parent = m;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&pl, &l), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(g, 0x4000, 0, &all), 0);
	w.a = l;
	w.size = 0x800;
	init_completion(&w.done);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(gw_fn, &w, "vmspace_out/gw")));
	msleep(30);
	KUNIT_EXPECT_FALSE(test, completion_done(&w.done));
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(g, all, 0x4000), 0);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&w.done, msecs_to_jiffies(3000)), 0UL);
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(l, w.got, 0x800), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(l), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(m), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(g), 0);

	/* a child of an arena importing through a (failing, then working) function */
	f = vmspace_arena_create("gw-fn", 0, 0, 0x1000, 0, 0);
	KUNIT_ASSERT_NOT_NULL(test, f);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(f, toggle_import, NULL, &tg, 0), 0);
	pl.parent = f;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&pl, &fc), 0);
	w = (struct gw){ .a = fc, .size = 0x2000 };
	init_completion(&w.done);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(gw_fn, &w, "vmspace_out/gw2")));
	msleep(40);
	KUNIT_EXPECT_FALSE(test, completion_done(&w.done));
	WRITE_ONCE(tg.fail, 0);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&w.done, msecs_to_jiffies(3000)), 0UL);
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(fc, w.got, 0x2000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(fc), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(f), 0);
}

/* Caches in arenas too small for their slabs: -ENOMEM only when no free
 * segment fits; qcache_max rounded down to whole quanta. */
static void caches_in_small_arenas(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("tiny", 0x1000, 0x1000, 16, 128, 0);
	struct vmspace_sizes s;
	vmspace_addr_t x;
	vmspace_size_t got = 0;
	u32 r = 99;
	int i, e = 0;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < 1000; i++) {
		vmspace_size_t size;

		r = r * 1103515245 + 12345;
		size = 16 * (1 + (r >> 16) % 8);
		e = vmspace_arena_alloc(a, size, 0, &x);
		if (e == -ENOMEM) {
			KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
			KUNIT_EXPECT_LT_MSG(test, s.largest_free, size,
					    "size %zu refused with %zu free in one segment (%zu objects out, %zu bytes)",
					    size, s.largest_free, (size_t)i, got);
			if (s.largest_free >= size)
				break;
			continue;
		}
		KUNIT_ASSERT_EQ(test, e, 0);
		got += size;
	}
	kunit_info(test, "%zu bytes handed out of 4096", got);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);

	a = vmspace_arena_create("round", 0x1000, 0x10000, 16, 40, 0);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 40, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 40), 0); /* 3 quanta: no cache */
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 32, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, x, 32), -ENOENT); /* a slab's */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 32), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(a, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* A child whose quantum is larger than its parent's: its imports (and so its
 * allocations) are still multiples of its quantum. An unflushed span given
 * up to a parent importing through functions goes back once flushed. */
static void child_quantum_above_parent(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("cq-parent", 0x10010, 0x20000, 16, 0, 0);
	struct vmspace_params cp = { .name = "cq-child", .quantum = 0x1000 };
	struct toggle tg = { .next = 0x8000000 };
	struct vmspace_counters c;
	struct vmspace_sizes s;
	vmspace_arena_t *ch = NULL, *f;
	vmspace_addr_t x[4];
	vmspace_size_t freed = 0;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &ch), 0);
	for (i = 0; i < 4; i++) {
		KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(ch, 0x1000 * (i + 1), i & 1 ? VMSPACE_BESTFIT : 0, &x[i]), 0);
		KUNIT_EXPECT_EQ_MSG(test, x[i] % 0x1000, 0UL, "allocation %d at %#lx", i, x[i]);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(ch), 0);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(ch, x[i], 0x1000 * (i + 1)), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(ch), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);

	f = vmspace_arena_create("cq-fn", 0, 0, 0x1000, 0, 0);
	KUNIT_ASSERT_NOT_NULL(test, f);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(f, toggle_import, NULL, &tg, 0x4000), 0);
	cp.parent = f;
	cp.quantum = 0x100;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &ch), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(ch, 0x300, 0, &x[0]), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(ch, x[0], 0x300), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(ch), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_counters(f, &c), 0);
	KUNIT_EXPECT_EQ(test, c.deferred_frees, 1ULL);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(f, &s), 0);
	KUNIT_EXPECT_GT(test, s.unflushed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(f, &freed), 0);
	KUNIT_EXPECT_EQ(test, freed, s.unflushed);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(f, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(f), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(f), 0);
}


/* A waiting allocation when boundary tags, not space, run out: -ENOSPC (it
 * is not -ENOMEM, and no free brings tags back for sure), not a sleep. */
struct tw6 {
	vmspace_arena_t *a;
	vmspace_addr_t got;
	int result;
	struct completion done;
};

static int tw6_fn(void *p)
{
	struct tw6 *w = p;

	w->result = vmspace_arena_xalloc(w->a, 1, 2, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT | VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

static void wait_when_tags_run_out(struct kunit *test)
{
	struct vmspace_params p = { .name = "tagwait", .size = 1 << 20, .quantum = 1, .max_tags = 1024 };
	vmspace_arena_t *a = NULL;
	struct tw6 w = {};
	vmspace_addr_t x;
	int i, n = 0, err = 0;
	bool done;

	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&p, &a), 0);
	for (i = 0; i < 100000; i++) {
		err = vmspace_arena_xalloc(a, 1, 2, 0, 0, 0, 0, 0, VMSPACE_FIRSTFIT, &x);
		if (err)
			break;
		n++;
	}
	KUNIT_ASSERT_EQ(test, err, -ENOSPC);
	w.a = a;
	init_completion(&w.done);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(tw6_fn, &w, "vmspace_out/tagwait")));
	done = wait_for_completion_timeout(&w.done, msecs_to_jiffies(10000)) != 0;
	KUNIT_EXPECT_TRUE_MSG(test, done, "a waiting allocation slept on a tag shortage");
	if (!done) {
		/* let it go: a free gives a tag back */
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, 2 * (n - 1), 1), 0);
		n--;
		wait_for_completion(&w.done);
		kunit_info(test, "after a free it returned %d", w.result);
		if (!w.result)
			KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, w.got, 1), 0);
	} else {
		KUNIT_EXPECT_EQ(test, w.result, -ENOSPC);
	}
	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, 2 * i, 1), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}


/* Reclaim and check running while two CPUs churn through the caches. */
struct churner {
	vmspace_arena_t *a;
	u32 seed;
	int errors, dups;
	struct completion done;
};

static int churner_fn(void *p)
{
	struct churner *c = p;
	vmspace_addr_t live[32];
	vmspace_size_t size[32];
	u32 r = c->seed;
	int i, j, n = 0;

	for (i = 0; i < 300000; i++) {
		r = r * 1103515245 + 12345;
		if (n < 32 && (n == 0 || (r >> 16) & 1)) {
			size[n] = 16 * (1 + (r >> 20) % 8);
			if (vmspace_arena_alloc(c->a, size[n], 0, &live[n])) {
				c->errors++;
				continue;
			}
			for (j = 0; j < n; j++)
				if (live[j] < live[n] + size[n] && live[n] < live[j] + size[j])
					c->dups++;
			n++;
		} else {
			int k = (r >> 8) % n;

			if (vmspace_arena_free(c->a, live[k], size[k]))
				c->errors++;
			live[k] = live[--n];
			size[k] = size[n];
		}
		if (i % 128 == 0)
			cond_resched();
	}
	while (n--)
		if (vmspace_arena_free(c->a, live[n], size[n]))
			c->errors++;
	complete(&c->done);
	return 0;
}

static void reclaim_while_churning(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("rwc", 0x1000000, 0x1000000, 16, 128, 0);
	struct churner c[2];
	int i, checks = 0, bad_checks = 0, reclaimed = 0;
	unsigned long t0 = jiffies;

	KUNIT_ASSERT_NOT_NULL(test, a);
	for (i = 0; i < 2; i++) {
		struct task_struct *t;

		c[i] = (struct churner){ .a = a, .seed = 31 + i };
		init_completion(&c[i].done);
		t = kthread_create(churner_fn, &c[i], "vmspace_out/ch%d", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
		kthread_bind(t, i % num_online_cpus());
		wake_up_process(t);
	}
	while (!completion_done(&c[0].done) || !completion_done(&c[1].done)) {
		int r = vmspace_arena_reclaim(a);

		if (r > 0)
			reclaimed += r;
		KUNIT_EXPECT_GE(test, r, 0);
		if (vmspace_arena_check(a))
			bad_checks++;
		checks++;
		cond_resched();
	}
	kunit_info(test, "%d checks, %d slabs reclaimed in %u ms", checks, reclaimed, jiffies_to_msecs(jiffies - t0));
	for (i = 0; i < 2; i++) {
		KUNIT_EXPECT_EQ(test, c[i].errors, 0);
		KUNIT_EXPECT_EQ(test, c[i].dups, 0);
	}
	KUNIT_EXPECT_EQ(test, bad_checks, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

static struct kunit_case vmspace_cmod_outside6_cases[] = {
	KUNIT_CASE(reclaim_while_churning),
	KUNIT_CASE(wait_when_tags_run_out),
	KUNIT_CASE(child_quantum_above_parent),
	KUNIT_CASE(waits_down_the_tree),
	KUNIT_CASE(caches_in_small_arenas),
	KUNIT_CASE(import_fn_sleeps_under_cache_miss),
	KUNIT_CASE(misses_contend_with_a_sleeping_walk),
	KUNIT_CASE(from_workqueues),
	{}
};

static struct kunit_suite vmspace_cmod_outside6_suite = {
	.name = "vmspace_cmod_outside6",
	.test_cases = vmspace_cmod_outside6_cases,
};

kunit_test_suite(vmspace_cmod_outside6_suite);
