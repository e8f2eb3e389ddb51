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
#include <linux/smp.h>

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
