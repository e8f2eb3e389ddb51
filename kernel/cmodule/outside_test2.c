// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * An outside reviewer's KUnit suite, kernel context: per-CPU quantum caches
 * from kthreads bound to each CPU, waits woken from another thread, arena
 * trees (parents, unflushed spans going up), import functions, many arenas
 * and racing destroys.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/vmspace.h>

/* Run fn(arg) in a kthread bound to `cpu` and wait for it. */
struct oncpu {
	int (*fn)(void *arg);
	void *arg;
	int ret;
	struct completion done;
};

static int oncpu_thread(void *p)
{
	struct oncpu *o = p;

	o->ret = o->fn(o->arg);
	complete(&o->done);
	return 0;
}

static int run_on(int cpu, int (*fn)(void *), void *arg)
{
	struct oncpu o = { .fn = fn, .arg = arg };
	struct task_struct *t;

	init_completion(&o.done);
	t = kthread_create(oncpu_thread, &o, "vmspace_out/%d", cpu);
	if (IS_ERR(t))
		return PTR_ERR(t);
	kthread_bind(t, cpu);
	wake_up_process(t);
	wait_for_completion(&o.done);
	return o.ret;
}

#define NOBJ 300
struct objs {
	vmspace_arena_t *a;
	vmspace_addr_t x[NOBJ];
	vmspace_size_t size;
	int err, n;
};

static int alloc_objs(void *p)
{
	struct objs *o = p;
	int i;

	for (i = 0; i < NOBJ; i++) {
		int e = vmspace_arena_alloc(o->a, o->size, 0, &o->x[i]);

		if (e)
			return e;
	}
	return 0;
}

static int free_objs(void *p)
{
	struct objs *o = p;
	int i, bad = 0;

	for (i = 0; i < NOBJ; i++)
		if (vmspace_arena_free(o->a, o->x[i], o->size))
			bad++;
	return bad;
}

static int refree_objs(void *p)
{
	struct objs *o = p;
	int i, n = 0;

	for (i = 0; i < NOBJ; i++)
		if (vmspace_arena_free(o->a, o->x[i], o->size) == -ENOENT)
			n++;
	return n;
}

static int cmp_addr(const void *a, const void *b)
{
	vmspace_addr_t x = *(const vmspace_addr_t *)a, y = *(const vmspace_addr_t *)b;

	return x < y ? -1 : x > y;
}

#include <linux/sort.h>

/* Cache objects allocated on one CPU, freed on the other, double frees
 * refused on either, sizes back to zero after reclaim. */
static void qcache_cross_cpu(struct kunit *test)
{
	vmspace_arena_t *a = vmspace_arena_create("qc", 0x100000, 0x100000, 16, 128, 0);
	struct objs *o = kunit_kzalloc(test, sizeof(*o), GFP_KERNEL);
	struct vmspace_sizes s;
	int i, c0 = 0, c1 = num_online_cpus() > 1 ? 1 : 0;

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, o);
	o->a = a;
	o->size = 48;
	KUNIT_ASSERT_EQ(test, run_on(c0, alloc_objs, o), 0);
	sort(o->x, NOBJ, sizeof(o->x[0]), cmp_addr, NULL);
	for (i = 1; i < NOBJ; i++)
		KUNIT_EXPECT_GE(test, o->x[i], o->x[i - 1] + 48); /* disjoint */
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(a, o->x[5], 48), -ENOENT);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, o->x[5], 32), -EMSGSIZE);
	KUNIT_EXPECT_EQ(test, run_on(c1, free_objs, o), 0);
	KUNIT_EXPECT_EQ(test, run_on(c1, refree_objs, o), NOBJ);
	KUNIT_EXPECT_EQ(test, run_on(c0, refree_objs, o), NOBJ);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	/* again, the other way round, so that magazines on both CPUs are full */
	KUNIT_ASSERT_EQ(test, run_on(c1, alloc_objs, o), 0);
	KUNIT_EXPECT_EQ(test, run_on(c0, free_objs, o), 0);
	KUNIT_EXPECT_EQ(test, run_on(c1, refree_objs, o), NOBJ);
	KUNIT_EXPECT_GE(test, vmspace_arena_reclaim(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.total, (vmspace_size_t)0x100000);
	KUNIT_EXPECT_EQ(test, s.allocated + s.free, s.total);
	kunit_info(test, "after reclaim: allocated %zu live %zu", s.allocated, s.live);
	/* leave objects live on both CPUs, then destroy */
	KUNIT_ASSERT_EQ(test, run_on(c0, alloc_objs, o), 0);
	KUNIT_ASSERT_EQ(test, run_on(c1, alloc_objs, o), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
}

struct waiting {
	vmspace_arena_t *arena;
	vmspace_size_t size;
	vmspace_addr_t min, max, got;
	int xalloc, result;
	struct completion started, done;
};

static int waiter(void *arg)
{
	struct waiting *w = arg;

	complete(&w->started);
	if (w->xalloc)
		w->result = vmspace_arena_xalloc(w->arena, w->size, 0, 0, 0, w->min, w->max, 0,
						 VMSPACE_WAIT, &w->got);
	else
		w->result = vmspace_arena_alloc(w->arena, w->size, VMSPACE_WAIT, &w->got);
	complete(&w->done);
	return 0;
}

static void start_waiter(struct kunit *test, struct waiting *w)
{
	init_completion(&w->started);
	init_completion(&w->done);
	KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(waiter, w, "vmspace_out/wait")));
	wait_for_completion(&w->started);
	msleep(30);
	KUNIT_EXPECT_FALSE(test, completion_done(&w->done));
}

static bool finished(struct waiting *w)
{
	return wait_for_completion_timeout(&w->done, msecs_to_jiffies(3000)) != 0;
}

/* Waiters woken by an add, by a flush, by a parent's free, by a raised
 * limit; a wait that can never be met is -ERANGE at once. */
static void waits_wake(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("wparent", 0x10000, 0x4000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "wchild", .quantum = 0x1000 };
	struct waiting w = {};
	vmspace_addr_t all, x;
	vmspace_size_t freed;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	/* add */
	w.arena = p;
	w.size = 0x8000;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_add(p, 0x20000, 0x8000, 0), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, w.got, 0x20000UL);
	/* flush */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(p, 0x4000, 0, 0, 0, 0, 0, 0x10000, VMSPACE_EXACT, &all), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free_deferred(p, all, 0x4000), 0);
	w.size = 0x4000;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(p, &freed), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, w.got, 0x10000UL);
	/* parent full: a child's waiter is woken by the parent's free */
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &w.arena), 0);
	w.size = 0x1000;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(p, 0x20000, 0x8000), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w.arena, w.got, 0x1000), 0);
	/* a child's limit, raised */
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(w.arena, 0x2000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(w.arena, 0x3000, 0, &x), -ENOMEM);
	w.size = 0x3000;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(w.arena, 0), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(w.arena, w.got, 0x3000), 0);
	/* never: a window smaller than the size */
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(w.arena, 0x2000, 0, 0, 0, 0x1000, 0x2000, 0, VMSPACE_WAIT, &x),
			-ERANGE);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), -EBUSY);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(w.arena), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(p, 0x10000, 0x4000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}

struct src {
	vmspace_arena_t *from;
	int fail, imports, releases;
};

static int src_import(void *arg, vmspace_size_t size, int flags, vmspace_addr_t *addrp)
{
	struct src *s = arg;

	if (READ_ONCE(s->fail) || flags)
		return -1;
	if (vmspace_arena_alloc(s->from, size, 0, addrp))
		return -1;
	s->imports++;
	return 0;
}

static void src_release(void *arg, vmspace_addr_t addr, vmspace_size_t size)
{
	struct src *s = arg;

	WARN_ON(vmspace_arena_free(s->from, addr, size));
	s->releases++;
}

static void import_functions(struct kunit *test)
{
	struct src s = { .from = vmspace_arena_create("src", 0x1000000, 0x100000, 0x1000, 0, 0) };
	vmspace_arena_t *a = vmspace_arena_create("imp", 0, 0, 0x40, 0, 0);
	struct waiting w = {};
	struct vmspace_sizes sz;
	vmspace_addr_t x, y;

	KUNIT_ASSERT_NOT_NULL(test, s.from);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x40, 0, &x), -ENOMEM);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_import(a, src_import, src_release, &s, 0x3000), -EINVAL);
	KUNIT_ASSERT_EQ(test, vmspace_arena_set_import(a, src_import, src_release, &s, 0x4000), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(a, 0x40, 0, &x), 0);
	KUNIT_EXPECT_EQ(test, s.imports, 1);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &sz), 0);
	KUNIT_EXPECT_EQ(test, sz.imported, (vmspace_size_t)0x4000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_import(a, NULL, NULL, NULL, 0), -EBUSY);
	/* aligned above the import quantum */
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(a, 0x40, 0x10000, 0x8000, 0, 0, 0, 0, 0, &y), 0);
	KUNIT_EXPECT_EQ(test, y % 0x10000, 0x8000UL);
	/* min/max do not import */
	KUNIT_EXPECT_EQ(test, s.imports, 2);
	KUNIT_EXPECT_EQ(test, vmspace_arena_xalloc(a, 0x20000, 0, 0, 0, 1, 0, 0, 0, &w.got), -ENOMEM);
	KUNIT_EXPECT_EQ(test, s.imports, 2);
	/* limit */
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(a, &sz), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(a, sz.total), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_alloc(a, 0x20000, 0, &w.got), -ENOMEM);
	KUNIT_EXPECT_EQ(test, s.imports, 2);
	KUNIT_EXPECT_EQ(test, vmspace_arena_set_limit(a, 0), 0);
	/* a waiter retries a failing import */
	WRITE_ONCE(s.fail, 1);
	w.arena = a;
	w.size = 0x20000;
	start_waiter(test, &w);
	WRITE_ONCE(s.fail, 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, w.got, 0x20000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, y, 0x40), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(a, x, 0x40), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(a), 0);
	KUNIT_EXPECT_EQ(test, s.imports, s.releases);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(s.from, &sz), 0);
	KUNIT_EXPECT_EQ(test, sz.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(s.from), 0);
}

/* A parent's waiter is woken by a child's destroy; a cache-sized waiter
 * gets space back from an ordinary free. */
static void more_wakeups(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("mw-parent", 0x10000, 0x4000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "mw-child", .quantum = 0x1000, .parent = p };
	vmspace_arena_t *c = NULL, *q;
	struct waiting w = {};
	vmspace_addr_t x;

	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &c), 0);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(c, 0x4000, 0, &x), 0);
	w.arena = p;
	w.size = 0x2000;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(c), 0); /* its live allocation goes with it */
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(p, w.got, 0x2000), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);

	q = vmspace_arena_create("mw-cache", 0x1000, 0x1000, 16, 64, 0);
	KUNIT_ASSERT_NOT_NULL(test, q);
	KUNIT_ASSERT_EQ(test, vmspace_arena_alloc(q, 0x1000, 0, &x), 0);
	w.arena = q;
	w.size = 32;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(q, x, 0x1000), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(q, w.got, 32), 0);
	/* an xalloc waiting for its window */
	KUNIT_ASSERT_EQ(test, vmspace_arena_xalloc(q, 0x100, 0, 0, 0, 0x1800, 0x1900, 0, 0, &x), 0);
	w.xalloc = 1;
	w.min = 0x1800;
	w.max = 0x1900;
	w.size = 0x80;
	start_waiter(test, &w);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(q, x, 0x100), 0);
	KUNIT_ASSERT_TRUE(test, finished(&w));
	KUNIT_EXPECT_EQ(test, w.result, 0);
	KUNIT_EXPECT_TRUE(test, w.got >= 0x1800 && w.got + 0x80 <= 0x1900);
	KUNIT_EXPECT_EQ(test, vmspace_arena_free(q, w.got, 0x80), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(q), 0);
}

/* Two kthreads, one per CPU, on a child importing from a parent: mixed
 * policies, xallocs, handles, deferred frees and flushes at once. */
struct tw {
	vmspace_arena_t *a;
	u32 seed;
	int errors, last_err;
	struct completion done;
};

static int tree_worker(void *arg)
{
	struct tw *w = arg;
	struct { vmspace_addr_t a; vmspace_size_t s; int kind; struct vmspace_handle h; } live[24];
	u32 r = w->seed;
	int i, n = 0, err;

	for (i = 0; i < 6000; i++) {
		r = r * 1103515245 + 12345;
		if (n < 24 && (n == 0 || (r >> 16) % 3)) {
			vmspace_size_t size = 1 + (r >> 20) % 3000;
			int kind = (r >> 8) % 4;

			live[n].s = size;
			live[n].kind = kind;
			if (kind == 0)
				err = vmspace_arena_alloc(w->a, size, (r >> 12) & 1 ? VMSPACE_BESTFIT : 0,
							  &live[n].a);
			else if (kind == 1)
				err = vmspace_arena_xalloc(w->a, size, 256, 64, 4096, 0, 0, 0, 0, &live[n].a);
			else if (kind == 2)
				err = vmspace_arena_alloc_handle(w->a, size, 0, &live[n].h);
			else
				err = vmspace_arena_alloc(w->a, size, VMSPACE_NEXTFIT, &live[n].a);
			if (!err)
				n++;
			else if (err != -ENOMEM)
				w->errors++, w->last_err = err;
		} else {
			int k = (r >> 4) % n;
			bool deferred = (r >> 9) & 1;

			if (live[k].kind == 2)
				err = deferred ? vmspace_arena_free_handle_deferred(w->a, live[k].h, NULL)
					       : vmspace_arena_free_handle(w->a, live[k].h, NULL);
			else if (deferred && live[k].kind == 1)
				err = vmspace_arena_free_deferred(w->a, live[k].a, live[k].s);
			else
				err = vmspace_arena_free(w->a, live[k].a, live[k].s);
			if (err)
				w->errors++, w->last_err = err;
			live[k] = live[--n];
		}
		if (i % 64 == 0 && vmspace_arena_flushed(w->a, NULL))
			w->errors++;
		if (i % 512 == 0)
			cond_resched();
	}
	while (n--) {
		if (live[n].kind == 2)
			err = vmspace_arena_free_handle(w->a, live[n].h, NULL);
		else
			err = vmspace_arena_free(w->a, live[n].a, live[n].s);
		if (err)
			w->errors++, w->last_err = err;
	}
	complete(&w->done);
	return 0;
}

static void tree_stress(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("ts-parent", 0x10000000, 0x100000, 0x1000, 0, 0);
	struct vmspace_params cp = { .name = "ts-child", .quantum = 64, .qcache_max = 256 };
	struct vmspace_sizes s;
	struct tw w[2];
	int i;

	KUNIT_ASSERT_NOT_NULL(test, p);
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &w[0].a), 0);
	for (i = 0; i < 2; i++) {
		struct task_struct *t;

		w[i].a = w[0].a;
		w[i].seed = 7 + 13 * i;
		w[i].errors = 0;
		w[i].last_err = 0;
		init_completion(&w[i].done);
		t = kthread_create(tree_worker, &w[i], "vmspace_out/tree%d", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
		kthread_bind(t, i % num_online_cpus());
		wake_up_process(t);
	}
	for (i = 0; i < 2; i++) {
		wait_for_completion(&w[i].done);
		KUNIT_EXPECT_EQ_MSG(test, w[i].errors, 0, "last error %d", w[i].last_err);
	}
	KUNIT_EXPECT_EQ(test, vmspace_arena_flushed(w[0].a, NULL), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(w[0].a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(p), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(w[0].a, &s), 0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(w[0].a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.unflushed, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0x100000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}


/* A child with cache objects still out on both CPUs is destroyed: all of
 * its space goes back to the parent. The name is copied. */
static void child_destroyed_with_objects_out(struct kunit *test)
{
	vmspace_arena_t *p = vmspace_arena_create("co-parent", 0x100000, 0x100000, 0x100, 0, 0);
	struct vmspace_params cp = { .quantum = 16, .qcache_max = 128 };
	struct objs *o = kunit_kzalloc(test, sizeof(*o), GFP_KERNEL);
	char *name = kmalloc(40, GFP_KERNEL);
	struct vmspace_sizes s;
	int c1 = num_online_cpus() > 1 ? 1 : 0;

	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_ASSERT_NOT_NULL(test, o);
	KUNIT_ASSERT_NOT_NULL(test, name);
	strscpy(name, "a-child-whose-name-is-exactly-thirty-two", 40);
	cp.name = name;
	cp.parent = p;
	KUNIT_ASSERT_EQ(test, vmspace_arena_create_ex(&cp, &o->a), 0);
	memset(name, 'X', 39);
	kfree(name);
	KUNIT_EXPECT_STREQ(test, vmspace_arena_name(o->a), "a-child-whose-name-is-exactly-t");
	o->size = 80;
	KUNIT_ASSERT_EQ(test, run_on(0, alloc_objs, o), 0);
	KUNIT_ASSERT_EQ(test, run_on(c1, free_objs, o), 0);
	o->size = 32;
	KUNIT_ASSERT_EQ(test, run_on(c1, alloc_objs, o), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &s), 0);
	KUNIT_EXPECT_GT(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), -EBUSY);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(o->a), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_sizes(p, &s), 0);
	KUNIT_EXPECT_EQ(test, s.allocated, (vmspace_size_t)0);
	KUNIT_EXPECT_EQ(test, s.free, (vmspace_size_t)0x100000);
	KUNIT_EXPECT_EQ(test, vmspace_arena_check(p), 0);
	KUNIT_EXPECT_EQ(test, vmspace_arena_destroy(p), 0);
}

static struct kunit_case vmspace_cmod_outside2_cases[] = {
	KUNIT_CASE(child_destroyed_with_objects_out),
	KUNIT_CASE(more_wakeups),
	KUNIT_CASE(tree_stress),
	KUNIT_CASE(qcache_cross_cpu),
	KUNIT_CASE(waits_wake),
	KUNIT_CASE(import_functions),
	{}
};

static struct kunit_suite vmspace_cmod_outside2_suite = {
	.name = "vmspace_cmod_outside2",
	.test_cases = vmspace_cmod_outside2_cases,
};

kunit_test_suite(vmspace_cmod_outside2_suite);
