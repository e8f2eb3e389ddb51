// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelWaiter`]: the kernel build's [`Waiter`] for `vmspace::sync`.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::time::Duration;

use kernel::error::{code::ENOMEM, Error};
use vmspace::sync::Waiter;

use crate::sys;

/// An epoch counter with a kernel wait queue.
pub struct KernelWaiter {
    raw: NonNull<c_void>,
}

impl KernelWaiter {
    /// A new waiter at epoch zero.
    pub fn new() -> Result<Self, Error> {
        // SAFETY: allocation and initialisation; no preconditions.
        let raw = unsafe { sys::vmspace_waiter_new() };
        NonNull::new(raw).map(|raw| KernelWaiter { raw }).ok_or(ENOMEM)
    }
}

impl Drop for KernelWaiter {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `vmspace_waiter_new` and is freed once; no
        // one sleeps on it (sleepers borrow `self`).
        unsafe { sys::vmspace_waiter_free(self.raw.as_ptr()) };
    }
}

// SAFETY: the wait queue and the atomic epoch may be used from any task.
unsafe impl Send for KernelWaiter {}
// SAFETY: as above.
unsafe impl Sync for KernelWaiter {}

impl Waiter for KernelWaiter {
    fn now(&self) -> Duration {
        // SAFETY: reads the monotonic clock; no preconditions.
        Duration::from_nanos(unsafe { sys::vmspace_now_ns() })
    }

    fn epoch(&self) -> u64 {
        // SAFETY: `raw` is a live waiter.
        unsafe { sys::vmspace_waiter_epoch(self.raw.as_ptr()) }
    }

    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let ns = match timeout {
            Some(t) => i64::try_from(t.as_nanos()).unwrap_or(i64::MAX),
            None => -1,
        };
        // SAFETY: `raw` is a live waiter; sleeping is allowed here (callers
        // of a sleeping waiter are in process context).
        unsafe { sys::vmspace_waiter_wait(self.raw.as_ptr(), seen, ns) != 0 }
    }

    fn notify_all(&self) {
        // SAFETY: `raw` is a live waiter.
        unsafe { sys::vmspace_waiter_notify_all(self.raw.as_ptr()) }
    }
}

/// Sleep for `ms` milliseconds (`msleep`).
pub fn sleep_ms(ms: u32) {
    // SAFETY: process context; no other preconditions.
    unsafe { sys::vmspace_sleep_ms(ms) }
}

/// One round of a wait for another thread: `cond_resched()` (give the CPU
/// up if the scheduler wants it, which a kernel without involuntary
/// preemption needs for the awaited thread to run) and `cpu_relax()`. The
/// kernel backends' `PageOps::relax`. Task context only.
pub fn relax() {
    // SAFETY: task context (the backends it serves sleep in `map` anyway).
    unsafe { sys::vmspace_relax() }
}
