// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelWaiter`]: the kernel build's [`Waiter`] for `vmspace::sync`, an
//! epoch counter with the kernel crate's [`CondVar`]; and [`sleep_ms`].

use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use kernel::alloc::KBox;
use kernel::error::Error;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::bindings;
use kernel::sync::{static_lock_class, CondVar, CondVarTimeoutResult, SpinLock};
use kernel::c_str;
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic};
use vmspace::sync::Waiter;

/// The pinned part of a [`KernelWaiter`].
///
/// # Invariants
///
/// `epoch` only changes with `lock` held.
#[pin_data]
struct Inner {
    /// Orders a bump of the epoch against a sleeper's last look at it.
    #[pin]
    lock: SpinLock<()>,
    /// Where sleepers wait for the epoch to move.
    #[pin]
    moved: CondVar,
    epoch: AtomicU64,
}

/// An epoch counter with a kernel wait queue (a [`CondVar`] and the spin
/// lock it sleeps under), and the monotonic clock for timeouts.
///
/// A sleeper looks at the epoch with the lock held and goes on the wait
/// queue before the lock is dropped (`CondVar::wait`), and the epoch only
/// moves with the lock held, so a bump between the look and the sleep is
/// never missed.
///
/// A timed wait is interruptible (the kernel crate offers timed waits on a
/// `CondVar` only in that mode): a pending signal ends it early, which the
/// core treats as a spurious wakeup and retries until its deadline. Since
/// the signal stays pending, each such return is followed by an
/// uninterruptible sleep of one tick, so a signalled waiter polls once a
/// tick instead of spinning. An untimed wait is uninterruptible, but for
/// an interruptible one (`Wait::Interruptible`, the C API's
/// `VMSPACE_KILLABLE`), which sleeps as a timed one does (interruptibly,
/// polling once a tick under a signal that is not fatal: the kernel
/// crate's `CondVar` has no `TASK_KILLABLE` sleep) and returns at once for
/// a fatal signal, which [`interrupted`](Waiter::interrupted) then
/// reports.
pub struct KernelWaiter {
    inner: Pin<KBox<Inner>>,
    start: Instant<Monotonic>,
}

impl KernelWaiter {
    /// A new waiter at epoch zero.
    pub fn new() -> Result<Self, Error> {
        // Statics, not constants, for the names: lockdep wants one address
        // per class name (see `new_kernel_mutex!`).
        static LOCK: &CStr = c_str!("vmspace::KernelWaiter::lock");
        static MOVED: &CStr = c_str!("vmspace::KernelWaiter::moved");
        let inner = KBox::pin_init(
            pin_init!(Inner {
                lock <- SpinLock::new((), LOCK, static_lock_class!()),
                moved <- CondVar::new(MOVED, static_lock_class!()),
                epoch: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        Ok(KernelWaiter { inner, start: Instant::now() })
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
        self.inner.epoch.load(Ordering::Acquire)
    }

    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.sleep(seen, timeout, false)
    }

    fn interrupted(&self) -> bool {
        // SAFETY: reads the current task's pending signals; any context.
        unsafe { crate::preempt::vmspace_fatal_signal_pending() != 0 }
    }

    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.sleep(seen, timeout, true)
    }

    fn notify_all(&self) {
        {
            let _guard = self.inner.lock.lock();
            // INVARIANT: the epoch moves with the lock held.
            self.inner.epoch.fetch_add(1, Ordering::Release);
        }
        self.inner.moved.notify_all();
    }
}

impl KernelWaiter {
    /// [`Waiter::wait`], and with `interruptible` its killable kind: an
    /// untimed sleep is then interruptible too, and a fatal signal ends it
    /// without the tick's sleep.
    fn sleep(&self, seen: u64, timeout: Option<Duration>, interruptible: bool) -> bool {
        let mut guard = self.inner.lock.lock();
        let mut signalled = false;
        if self.epoch() == seen {
            match timeout {
                None if !interruptible => self.inner.moved.wait(&mut guard),
                None => signalled = self.inner.moved.wait_interruptible(&mut guard),
                Some(t) => {
                    // Woken, timed out or signalled: the epoch says which
                    // matters, and the caller retries on a spurious return.
                    let r = self.inner.moved.wait_interruptible_timeout(&mut guard, jiffies_for(t));
                    signalled = matches!(r, CondVarTimeoutResult::Signal { .. });
                }
            }
        }
        drop(guard);
        if signalled && interruptible && self.interrupted() {
            // The caller ends the wait on its next look.
            return self.epoch() != seen;
        }
        if signalled && self.epoch() == seen {
            // A pending signal ends an interruptible sleep at once, and
            // would end each retry the same way: the caller would spin
            // until its deadline. Sleep a tick uninterruptibly instead, so
            // a signalled waiter looks again once a tick.
            // SAFETY: task context (this is a sleeping wait), no lock held.
            unsafe { bindings::schedule_timeout_uninterruptible(1) };
        }
        self.epoch() != seen
    }
}

/// Sleep for at least `ms` milliseconds (`fsleep`; `0` does not sleep).
pub fn sleep_ms(ms: u32) {
    fsleep(Delta::from_millis(i64::from(ms)));
}
