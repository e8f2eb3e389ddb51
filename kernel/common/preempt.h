/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * What the kernel crate has no Rust API for, in the kernel build's common
 * crate (vmspace_kernel): disabling preemption, cond_resched(),
 * fatal_signal_pending() and the wait_event*() sleeps, macros or inline
 * functions of <linux/preempt.h>, <linux/sched.h>, <linux/sched/signal.h>
 * and <linux/wait.h> without a binding or a helper in the 7.2 tree (the
 * kernel crate's CondVar sleeps uninterruptibly or interruptibly, never
 * killably). Only exported functions,
 * so both the built-in and the module build link this file.
 *
 * The kernel build's bindgen makes the Rust declarations from this file
 * (kernel/crates.kbuild), so it stays self-contained: plain C types, no
 * includes.
 */
#ifndef VMSPACE_PREEMPT_H
#define VMSPACE_PREEMPT_H

unsigned int vmspace_pin_cpu(void);
void vmspace_unpin_cpu(void);
void vmspace_relax(void);
void vmspace_cond_resched(void);
int vmspace_fatal_signal_pending(void);

/* The wait queue of KernelWaiter; modes of vmspace_wq_wait. */
#define VMSPACE_WQ_UNINTERRUPTIBLE 0
#define VMSPACE_WQ_IDLE 1
#define VMSPACE_WQ_KILLABLE 2
void *vmspace_wq_new(void);
void vmspace_wq_free(void *wq);
long vmspace_wq_wait(void *wq, const unsigned long long *epoch, unsigned long long seen,
		     long timeout, int mode);
void vmspace_wq_wake_all(void *wq);

#endif
