// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelWaiter`]: the kernel build's [`Waiter`] for `vmspace::sync`, an
//! epoch counter with a kernel wait queue; and [`sleep_ms`].

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::error::{code::ENOMEM, Error};
use kernel::ffi::{c_long, c_void};
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic};
use vmspace::sync::Waiter;

use crate::preempt::{self, wq_mode};

/// An epoch counter with a kernel wait queue (`struct wait_queue_head`,
/// made and slept on through the C helpers in `preempt.c`: the kernel
/// crate's `CondVar` has no killable sleep), and the monotonic clock for
/// timeouts.
///
/// A sleeper goes on the queue and then reads the epoch again
/// (`wait_event*()`), and a bump is followed by a wake-up of the whole
/// queue, so a bump between the caller's look and the sleep is never
/// missed.
///
/// An untimed wait is uninterruptible (`TASK_UNINTERRUPTIBLE`: the hung-task
/// detector warns after 120 s, as for any such sleep). A timed wait sleeps
/// in `TASK_IDLE`: no signal ends it and the hung-task detector leaves it
/// alone, its deadline bounding it. An interruptible wait
/// (`Wait::Interruptible`, the C API's `VMSPACE_KILLABLE`) sleeps in
/// `TASK_KILLABLE`: only a fatal signal ends it, which
/// [`interrupted`](Waiter::interrupted) then reports.
///
/// # Invariants
///
/// `queue` is a wait queue from `vmspace_wq_new`, owned by this waiter and
/// freed by its drop.
pub struct KernelWaiter {
    queue: NonNull<c_void>,
    epoch: AtomicU64,
    start: Instant<Monotonic>,
}

// SAFETY: a wait queue is made for use from any task at once (it has a spin
// lock of its own), the epoch is atomic, and nothing ties the waiter to
// the task that made it.
unsafe impl Send for KernelWaiter {}

// SAFETY: as for `Send`: every method takes `&self` and is safe to call
// from several tasks at once.
unsafe impl Sync for KernelWaiter {}

impl KernelWaiter {
    /// A new waiter at epoch zero.
    pub fn new() -> Result<Self, Error> {
        // SAFETY: allocates with GFP_KERNEL; callers make waiters in task
        // context, as they make the arenas that use them.
        let queue = unsafe { preempt::vmspace_wq_new() };
        let queue = NonNull::new(queue).ok_or(ENOMEM)?;
        // INVARIANT: a fresh queue from vmspace_wq_new, ours alone.
        Ok(KernelWaiter { queue, epoch: AtomicU64::new(0), start: Instant::now() })
    }

    /// Sleep until the epoch moves from `seen`, `timeout` passes or (for
    /// a killable sleep) a fatal signal is pending; whether the epoch moved.
    fn sleep(&self, seen: u64, timeout: Option<Duration>, killable: bool) -> bool {
        let jiffies = |t| c_long::try_from(jiffies_for(t)).unwrap_or(c_long::MAX);
        let (ticks, mode) = match (timeout, killable) {
            (None, false) => (-1, wq_mode::UNINTERRUPTIBLE),
            (Some(t), false) => (jiffies(t), wq_mode::IDLE),
            (None, true) => (-1, wq_mode::KILLABLE),
            (Some(t), true) => (jiffies(t), wq_mode::KILLABLE),
        };
        // What it returns (moved, timed out, or a fatal signal for a
        // killable sleep) the epoch and `interrupted` say again.
        // SAFETY: `queue` is live (type invariant); the epoch lives as long
        // as `&self`, for the whole call; task context (a sleeping wait).
        unsafe {
            preempt::vmspace_wq_wait(self.queue.as_ptr(), self.epoch.as_ptr(), seen, ticks, mode)
        };
        self.epoch() != seen
    }
}

impl Drop for KernelWaiter {
    fn drop(&mut self) {
        // SAFETY: `queue` came from vmspace_wq_new and is freed once, here;
        // no task sleeps on it: sleeping borrows the waiter, which is being
        // dropped.
        unsafe { preempt::vmspace_wq_free(self.queue.as_ptr()) };
    }
}

/// `timeout` in jiffies, rounded up, plus one: a sleep of that many jiffies
/// lasts at least `timeout` wherever in the current jiffy it starts.
/// (No `u128` arithmetic: modules have no `__udivti3`.)
fn jiffies_for(timeout: Duration) -> kernel::time::Jiffies {
    let ms = timeout
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)));
    msecs_to_jiffies(u32::try_from(ms).unwrap_or(u32::MAX)).saturating_add(1)
}

impl Waiter for KernelWaiter {
    fn now(&self) -> Duration {
        let ns = self.start.elapsed().as_nanos();
        Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.sleep(seen, timeout, false)
    }

    fn interrupted(&self) -> bool {
        // SAFETY: reads the current task's pending signals; any context.
        unsafe { preempt::vmspace_fatal_signal_pending() != 0 }
    }

    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.sleep(seen, timeout, true)
    }

    fn notify_all(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
        // SAFETY: `queue` is live (type invariant). A sleeper that read the
        // old epoch is on the queue by then and is woken; one that goes on
        // it later reads the new epoch first.
        unsafe { preempt::vmspace_wq_wake_all(self.queue.as_ptr()) };
    }
}

/// Sleep for at least `ms` milliseconds (`fsleep`; `0` does not sleep).
pub fn sleep_ms(ms: u32) {
    fsleep(Delta::from_millis(i64::from(ms)));
}
