// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Preemption control for vmspace's kernel build: the CPU pin of the per-CPU
 * quantum caches and the relax step of a wait for another thread. The rest
 * of the kernel glue (locks, waiting, clocks, CPU ids, test threads) is Rust
 * on the kernel crate; these stay in C because preempt_disable(),
 * preempt_enable() and cond_resched() are macros with no Rust binding.
 */
#include <linux/bug.h>
#include <linux/preempt.h>
#include <linux/processor.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/wait.h>

#include "preempt.h"

/*
 * Pin to the current CPU (vmspace::qcache::CpuPin): preemption is off until
 * vmspace_unpin_cpu(), so no other task uses this CPU's magazines meanwhile.
 * Task context only; nothing in between may sleep. smp_processor_id() is
 * the checked one: with CONFIG_DEBUG_PREEMPT it reports a caller that is
 * not pinned. A pin from interrupt context (a caller breaking
 * KernelCpuPin::new's contract) would share the slot of the task it
 * interrupted; it is warned about once, with the caller's stack, rather
 * than left a silent race (one test of the preempt count).
 */
unsigned int vmspace_pin_cpu(void)
{
	WARN_ON_ONCE(!in_task());
	preempt_disable();
	return smp_processor_id();
}

void vmspace_unpin_cpu(void)
{
	preempt_enable();
}

/* Let others run between batches of a long walk (task context only). */
void vmspace_cond_resched(void)
{
	cond_resched();
}

/* Whether a fatal signal is pending for the current task: a killable wait
 * (VMSPACE_KILLABLE) ends then. */
int vmspace_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/*
 * One round of a wait for another thread (PageOps::relax): give the CPU up
 * if the scheduler wants it, so that the awaited thread can run, then relax
 * the CPU. cond_resched() does that on kernels without involuntary
 * preemption; with CONFIG_PREEMPT it compiles to nothing, trusting the
 * return from an interrupt to preempt a task whose time is up. UML never
 * preempts there, only where preemption is enabled again, so on a
 * preemptible UML kernel a waiter would spin for ever in front of the task
 * it waits for (found by make kunit-debug; KUnit case relax_lets_others_run).
 * An empty preempt_disable()/preempt_enable() pair is such a place: it
 * schedules when the tick has asked for it, and costs two increments
 * elsewhere.
 */
void vmspace_relax(void)
{
	cond_resched();
	preempt_disable();
	preempt_enable();
	cpu_relax();
}

/*
 * The wait queue KernelWaiter (vmspace::sync::Waiter) sleeps on, allocated
 * here since its layout is the kernel's: NULL when out of memory.
 */
void *vmspace_wq_new(void)
{
	struct wait_queue_head *wq = kmalloc(sizeof(*wq), GFP_KERNEL);

	if (wq)
		init_waitqueue_head(wq);
	return wq;
}

/* Free a wait queue no task sleeps on. */
void vmspace_wq_free(void *wq)
{
	kfree(wq);
}

/*
 * Sleep on `queue` until *epoch differs from `seen`, for at most `timeout`
 * jiffies (negative: no limit), in `mode` (VMSPACE_WQ_*: TASK_UNINTERRUPTIBLE;
 * TASK_IDLE, which no signal interrupts and the hung-task detector and
 * the load average leave alone; or TASK_KILLABLE, which only a fatal
 * signal interrupts). The epoch is
 * read again once the task is on the queue, so a bump and a
 * vmspace_wq_wake_all() between the caller's look and the sleep is never
 * missed. Returns > 0 when the epoch moved, 0 when the time ran out, and
 * -ERESTARTSYS when a fatal signal ended a killable sleep. Task context.
 */
long vmspace_wq_wait(void *queue, const unsigned long long *epoch, unsigned long long seen,
		     long timeout, int mode)
{
	struct wait_queue_head *wq = queue;
	long r;

#define VMSPACE_MOVED (READ_ONCE(*epoch) != seen)
	switch (mode) {
	case VMSPACE_WQ_IDLE:
		if (timeout >= 0)
			return wait_event_idle_timeout(*wq, VMSPACE_MOVED, timeout);
		wait_event_idle(*wq, VMSPACE_MOVED);
		return 1;
	case VMSPACE_WQ_KILLABLE:
		if (timeout >= 0)
			return wait_event_killable_timeout(*wq, VMSPACE_MOVED, timeout);
		r = wait_event_killable(*wq, VMSPACE_MOVED);
		return r ? r : 1;
	default:
		if (timeout >= 0)
			return wait_event_timeout(*wq, VMSPACE_MOVED, timeout);
		wait_event(*wq, VMSPACE_MOVED);
		return 1;
	}
#undef VMSPACE_MOVED
}

/* Wake every task sleeping on `queue` (after the epoch moved). */
void vmspace_wq_wake_all(void *queue)
{
	wake_up_all((struct wait_queue_head *)queue);
}
