//! Waiting for space: what the core needs to sleep until something is freed.

use crate::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

/// Whether an allocation may wait for space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Wait {
    /// Fail at once when there is no space (after reclaiming the caches).
    #[default]
    No,
    /// Wait until space is freed, at most this long; when the time is up
    /// the allocation is tried once more before it fails.
    Timeout(Duration),
    /// Wait until space is freed, however long that takes: also for a size
    /// larger than every span, which an `add` or an import may still make
    /// room for (only constraints no address could ever meet fail at once,
    /// with `ArenaError::OverConstrained`).
    Forever,
    /// Wait as [`Timeout`](Self::Timeout) (`Some`) or
    /// [`Forever`](Self::Forever) (`None`) do, but end the wait with
    /// `ArenaError::Interrupted` once the waiter says the thread must stop
    /// ([`Waiter::interrupted`]; in the kernel, a fatal signal pending: a
    /// killable wait). Space that is there is still taken, and a wait whose
    /// time is up fails as a timed one does: the check comes after each
    /// try and the deadline's. With a waiter that is never interrupted
    /// (user space), the same as the wait it names; with one that cannot
    /// sleep ([`Waiter::CAN_SLEEP`] false), `NoSpace` at once as
    /// [`No`](Self::No), interrupted or not.
    Interruptible(Option<Duration>),
}

/// An event counter threads sleep on: every free bumps it, and a waiter
/// sleeps until it moves past the value it saw before its last attempt.
///
/// Reading the epoch *before* trying to allocate and sleeping only while it
/// is unchanged means a free that lands between the failed attempt and the
/// sleep is never missed.
pub trait Waiter: Sync {
    /// Whether [`wait`](Self::wait) can sleep; when `false`, waiting
    /// allocations fail like [`Wait::No`] ones.
    const CAN_SLEEP: bool = true;

    /// A monotonic clock, for timeouts.
    fn now(&self) -> Duration;

    /// The current epoch.
    fn epoch(&self) -> u64;

    /// Sleep until the epoch differs from `seen` or `timeout` (if any)
    /// passes. Returns whether it moved. May return early (spuriously).
    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool;

    /// Whether the calling thread must stop waiting: an
    /// [`Interruptible`](Wait::Interruptible) wait ends with
    /// `ArenaError::Interrupted` when this says so after a failed try. The
    /// default: never (the kernel's waiter: a fatal signal is pending).
    fn interrupted(&self) -> bool {
        false
    }

    /// [`wait`](Self::wait) for an [`Interruptible`](Wait::Interruptible)
    /// wait: as `wait`, but also returning (spuriously, as far as the epoch
    /// goes) once [`interrupted`](Self::interrupted) would say so, for a
    /// waiter whose plain `wait` would sleep through that. The default is
    /// `wait`.
    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.wait(seen, timeout)
    }

    /// Advance the epoch and wake every sleeper.
    fn notify_all(&self);
}

/// A waiter that never sleeps: [`Wait::Timeout`] and [`Wait::Forever`]
/// behave like [`Wait::No`] once the epoch stops moving. For builds with no
/// way to sleep.
#[derive(Debug, Default)]
pub struct NoWait {
    epoch: AtomicU64,
}

impl Waiter for NoWait {
    const CAN_SLEEP: bool = false;

    fn now(&self) -> Duration {
        Duration::ZERO
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn wait(&self, seen: u64, _timeout: Option<Duration>) -> bool {
        self.epoch() != seen
    }

    fn notify_all(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

/// Wakes every waiter of an arena when dropped: on the way out of a locked
/// call that unwinds (a source that panics in a give-back, say), whatever
/// the call freed before the panic stays free, and the waiters must hear of
/// it. A call that returns [`disarm`](Self::disarm)s it, which forgets it,
/// so only a landing pad ever drops one. Generic over the waiter only, not
/// the arena, so that its drop adds no symbol naming the arena's type (the
/// kernel limits symbol names).
///
/// No `armed` flag: with one, the locked call's result went through a stack
/// copy whose wide loads followed the callee's narrow stores (a failed store
/// forward), and the single-lock pair cost 70 ns instead of 60
/// (BENCHMARKS.md, "The unwinding guard").
pub(crate) struct WakeOnUnwind<'a, W: Waiter> {
    waiters: &'a AtomicUsize,
    waiter: &'a W,
}

impl<'a, W: Waiter> WakeOnUnwind<'a, W> {
    /// Wakes when dropped, unless [`disarm`](Self::disarm)ed first.
    #[inline(always)]
    pub(crate) fn new(waiters: &'a AtomicUsize, waiter: &'a W) -> Self {
        WakeOnUnwind { waiters, waiter }
    }

    /// The call returned: forget the guard, so nothing wakes.
    #[inline(always)]
    pub(crate) fn disarm(self) {
        core::mem::forget(self);
    }
}

impl<W: Waiter> Drop for WakeOnUnwind<'_, W> {
    #[inline(always)]
    fn drop(&mut self) {
        wake_unwinding(self.waiters, self.waiter);
    }
}

/// The unwinding half of [`WakeOnUnwind`]'s drop, kept out of line and cold
/// so that the guard adds nothing but a landing pad to the locked call.
#[cold]
#[inline(never)]
fn wake_unwinding<W: Waiter>(waiters: &AtomicUsize, waiter: &W) {
    if waiters.load(Ordering::SeqCst) > 0 {
        waiter.notify_all();
    }
}
