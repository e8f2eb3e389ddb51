// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelCpuPin`]: the kernel build's [`CpuPin`] for per-CPU quantum caches
//! (`vmspace::sync::CpuCaches`), and the CPU numbers around it.

use kernel::bindings;
use kernel::cpu::{self, CpuId};
use kernel::cpumask::Cpumask;
use vmspace::qcache::CpuPin;

use crate::preempt;

/// Pinning to the current CPU by disabling preemption: one slot per
/// possible CPU id (`nr_cpu_ids`), and the slot pinned is the CPU the task
/// runs on until it unpins.
///
/// # Invariants
///
/// `slots == nr_cpu_ids` (fixed after boot); every pin on this value is
/// made from task context (the contract of [`KernelCpuPin::new`]).
#[derive(Debug)]
pub struct KernelCpuPin {
    slots: usize,
}

impl KernelCpuPin {
    /// A pin over every possible CPU.
    ///
    /// # Safety
    ///
    /// Every [`pin`](CpuPin::pin) on the value is made from task context,
    /// never from hard or soft interrupt or NMI context: with preemption
    /// disabled no other task runs on the CPU until the pin ends, but an
    /// interrupt handler could, and would share the CPU's slot.
    pub unsafe fn new() -> Self {
        // INVARIANT: `nr_cpu_ids` is fixed after boot; the caller promises
        // task context.
        KernelCpuPin { slots: nr_cpu_ids() }
    }
}

// SAFETY: `slots` is `nr_cpu_ids`, at least 1 and fixed after boot; `pin`
// disables preemption and returns `smp_processor_id()`, below `nr_cpu_ids`;
// until the matching `unpin` enables preemption again, the task stays on
// that CPU and no other task runs there, and no interrupt handler pins
// (task context only, `new`'s contract), so no other pin returns the same
// CPU; the next pin of that CPU runs on it after this one, in program order.
unsafe impl CpuPin for KernelCpuPin {
    #[inline]
    fn slots(&self) -> usize {
        self.slots
    }

    #[inline]
    fn pin(&self) -> usize {
        // SAFETY: task context (type invariant); the caller unpins without
        // sleeping in between (`CpuPin` callers never sleep while pinned).
        unsafe { preempt::vmspace_pin_cpu() as usize }
    }

    #[inline]
    unsafe fn unpin(&self, _slot: usize) {
        // SAFETY: balances the `preempt_disable` of the caller's `pin`
        // (this method's contract).
        unsafe { preempt::vmspace_unpin_cpu() }
    }
}

/// The CPU the caller runs on now (unless pinned, it may move right after).
pub fn current_cpu() -> usize {
    CpuId::current().as_u32() as usize
}

/// The number of possible CPU ids (`nr_cpu_ids`): CPUs are numbered below it.
pub fn nr_cpu_ids() -> usize {
    cpu::nr_cpu_ids() as usize
}

/// How many CPUs are online now.
pub fn num_online_cpus() -> usize {
    // SAFETY: `__cpu_online_mask` is the kernel's mask of online CPUs
    // (`cpu_online_mask`), a static that lives for ever; it is only read.
    let online = unsafe { Cpumask::from_raw(&raw const bindings::__cpu_online_mask) };
    online.weight() as usize
}

/// One round of a wait for another thread: give the CPU up if the scheduler
/// wants it (`cond_resched()`, and a preemption point for preemptible
/// kernels that do not preempt on interrupt return, such as UML), then
/// `cpu_relax()`. The kernel backends' `PageOps::relax`. Task context only.
pub fn relax() {
    // SAFETY: task context (this function's contract; the backends it
    // serves sleep in `map` anyway).
    unsafe { preempt::vmspace_relax() }
}

/// Let others run if the scheduler wants the CPU (`cond_resched()`):
/// between batches of a long walk. Task context only.
pub fn cond_resched() {
    // SAFETY: task context (this function's contract).
    unsafe { preempt::vmspace_cond_resched() }
}
