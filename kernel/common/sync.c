// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * The kernel's lock and waiter for vmspace::sync, the CPU pin of its per-CPU
 * quantum caches, and a way to run test threads. Objects are allocated here
 * so that the Rust values holding them can move freely (a struct mutex must
 * not move once initialised).
 */
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/processor.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/timekeeping.h>
#include <linux/wait.h>

#include "sync.h"

/* A sleeping lock: arena operations may allocate pages with GFP_KERNEL. */
void *vmspace_mutex_new(void)
{
	struct mutex *m = kzalloc(sizeof(*m), GFP_KERNEL);

	if (m)
		mutex_init(m);
	return m;
}

void vmspace_mutex_free(void *m)
{
	mutex_destroy(m);
	kfree(m);
}

void vmspace_mutex_lock(void *m)
{
	mutex_lock(m);
}

int vmspace_mutex_trylock(void *m)
{
	return mutex_trylock(m);
}

void vmspace_mutex_unlock(void *m)
{
	mutex_unlock(m);
}

/*
 * Pinning to the current CPU for vmspace::qcache::CpuCaches: preemption is
 * off between pin and unpin, so no other task uses this CPU's magazines
 * meanwhile. Task context only; nothing in between may sleep.
 */
unsigned int vmspace_pin_cpu(void)
{
	preempt_disable();
	return smp_processor_id();
}

void vmspace_unpin_cpu(void)
{
	preempt_enable();
}

unsigned int vmspace_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

unsigned int vmspace_num_online_cpus(void)
{
	return num_online_cpus();
}

/* The CPU the caller runs on now; unless pinned, it may move right after. */
unsigned int vmspace_current_cpu(void)
{
	return raw_smp_processor_id();
}

/* An event counter with a wait queue: sleepers wait for it to move. */
struct vmspace_waiter {
	wait_queue_head_t wq;
	atomic64_t epoch;
};

void *vmspace_waiter_new(void)
{
	struct vmspace_waiter *w = kzalloc(sizeof(*w), GFP_KERNEL);

	if (w) {
		init_waitqueue_head(&w->wq);
		atomic64_set(&w->epoch, 0);
	}
	return w;
}

void vmspace_waiter_free(void *w)
{
	kfree(w);
}

u64 vmspace_waiter_epoch(void *p)
{
	struct vmspace_waiter *w = p;

	return atomic64_read(&w->epoch);
}

/* Sleep until the epoch differs from `seen`, or `timeout_ns` (< 0: never). */
int vmspace_waiter_wait(void *p, u64 seen, s64 timeout_ns)
{
	struct vmspace_waiter *w = p;

	if (timeout_ns < 0) {
		wait_event(w->wq, (u64)atomic64_read(&w->epoch) != seen);
		return 1;
	}
	wait_event_timeout(w->wq, (u64)atomic64_read(&w->epoch) != seen,
			   nsecs_to_jiffies(timeout_ns) + 1);
	return (u64)atomic64_read(&w->epoch) != seen;
}

void vmspace_waiter_notify_all(void *p)
{
	struct vmspace_waiter *w = p;

	atomic64_inc(&w->epoch);
	wake_up_all(&w->wq);
}

u64 vmspace_now_ns(void)
{
	return ktime_get_ns();
}

void vmspace_sleep_ms(unsigned int ms)
{
	msleep(ms);
}

/* One round of a wait for another thread (PageOps::relax): let it run. */
void vmspace_relax(void)
{
	cond_resched();
	cpu_relax();
}

/* Running `n` kernel threads and collecting their results. */
struct vmspace_threads {
	int (*fn)(void *arg, int index);
	void *arg;
	atomic_t left;
	atomic_t result;
	struct completion done;
};

struct vmspace_thread {
	struct vmspace_threads *all;
	int index;
};

static int vmspace_thread_main(void *p)
{
	struct vmspace_thread *t = p;
	struct vmspace_threads *all = t->all;
	int r = all->fn(all->arg, t->index);

	if (r)
		atomic_cmpxchg(&all->result, 0, r);
	if (atomic_dec_and_test(&all->left))
		complete(&all->done);
	return 0;
}

/*
 * Run fn(arg, i) for i in [0, n) on n kernel threads at once (n <= 16) and
 * wait for all of them. Returns 0, the first non-zero result, or -errno if
 * a thread could not be started (the others still run to the end).
 */
int vmspace_run_threads(int (*fn)(void *arg, int index), void *arg, int n)
{
	struct vmspace_threads all = { .fn = fn, .arg = arg };
	struct vmspace_thread threads[16];
	int i, err = 0;

	if (n <= 0 || n > ARRAY_SIZE(threads))
		return -EINVAL;
	atomic_set(&all.left, 1);
	atomic_set(&all.result, 0);
	init_completion(&all.done);
	for (i = 0; i < n; i++) {
		struct task_struct *task;

		threads[i].all = &all;
		threads[i].index = i;
		atomic_inc(&all.left);
		task = kthread_run(vmspace_thread_main, &threads[i], "vmspace/%d", i);
		if (IS_ERR(task)) {
			atomic_dec(&all.left);
			err = PTR_ERR(task);
			break;
		}
	}
	/* Drop the starter's reference; the last thread to finish completes. */
	if (!atomic_dec_and_test(&all.left))
		wait_for_completion(&all.done);
	return err ? err : atomic_read(&all.result);
}
