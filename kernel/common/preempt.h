/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * What the kernel crate has no Rust API for, in the kernel build's common
 * crate (vmspace_kernel): disabling preemption, cond_resched() and
 * fatal_signal_pending(), macros or inline functions of <linux/preempt.h>,
 * <linux/sched.h> and <linux/sched/signal.h> without a binding or a helper
 * in the 7.2 tree. Only exported functions,
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

#endif
