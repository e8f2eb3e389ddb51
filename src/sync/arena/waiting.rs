//! Waiting for space in a shared arena: allocations that sleep until a
//! free, a flush or a reclaim gives space back, and the wake-ups.

use core::ops::ControlFlow;
use core::time::Duration;

use vmspace_shim::{Addr, Size};

use super::SyncArena;
use crate::arena::{Arena, ArenaError, Constraints, Policy, Source, Store};
use crate::atomic::{AtomicUsize, Ordering};
use crate::sync::lock::RawLock;
use crate::sync::wait::{Wait, Waiter};

impl<L: RawLock, W: Waiter, S: Store, I: Source> SyncArena<L, W, S, I> {
    /// Allocate `size` under `policy`, waiting for space as `wait` allows.
    /// Before every retry (the first, and each after a wake-up) the quantum
    /// caches' depots are reclaimed, so slabs emptied into them since count
    /// as space; a waiter wakes when space comes back to the arena, a
    /// magazine reaches a depot, or a cache is flushed. Space coming back
    /// to this arena's source (another arena it imports from) does not wake
    /// it: see [`Source for &SyncArena`](#impl-Source-for-%26SyncArena%3CL,+W,+S,+I%3E)
    /// and [`wait_for`](Self::wait_for).
    pub fn alloc(&self, size: Size, policy: Policy, wait: Wait) -> Result<Addr, ArenaError> {
        self.alloc_with(wait, |a| a.alloc(size, policy))
    }

    /// Allocate under `constraints`, waiting for space as `wait` allows.
    pub fn xalloc(&self, constraints: &Constraints, wait: Wait) -> Result<Addr, ArenaError> {
        self.alloc_with(wait, |a| a.xalloc(constraints))
    }

    fn alloc_with(
        &self,
        wait: Wait,
        mut attempt: impl FnMut(&mut Arena<S, I>) -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        let first = self.with(&mut attempt);
        // The one retry before any wait only if a reclaim gave slabs back:
        // otherwise it could only fail again, counting a second failure and
        // asking the source for a second import.
        let first = match first {
            Err(ArenaError::NoSpace { .. }) if self.reclaim() > 0 => self.with(&mut attempt),
            other => other,
        };
        // Every retry while waiting reclaims first: objects that reached
        // the depots since (a flush, a full magazine) may have made slabs
        // wholly free.
        let again = || {
            self.reclaim();
            self.with(&mut attempt)
        };
        self.wait_for(wait, first, again)
    }

    /// An allocation's `first` result, or, when it is `NoSpace` and `wait`
    /// allows sleeping, what `again` gives: this thread counts as waiting and
    /// calls `again` at once (a free between the failure and the count
    /// wakes no one), then after every wake-up (space came back to the
    /// arena, the slabs or the depots, or this waiter timed out: one last
    /// try). `NoSpace` from `again` means wait on; any other result ends the
    /// wait. Without a waiter that can sleep, or with [`Wait::No`], the
    /// result is `first`.
    ///
    /// `again` need not allocate here: an arena importing from this one
    /// waits here for space that either arena can give (`first` and `again`
    /// its own allocation without waiting), woken by this arena's frees,
    /// provided that whatever returns space to the importer also calls this
    /// arena's [`wake_waiters`](Self::wake_waiters) (one load when no one
    /// waits). The C API's children wait this way, at the root of their
    /// tree, through [`wait_until`](Self::wait_until).
    pub fn wait_for(
        &self,
        wait: Wait,
        first: Result<Addr, ArenaError>,
        mut again: impl FnMut() -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        self.wait_until(wait, first, || match again() {
            Err(e @ ArenaError::NoSpace { .. }) => ControlFlow::Continue(e),
            other => ControlFlow::Break(other),
        })
    }

    /// [`wait_for`](Self::wait_for) where `again` decides when the wait
    /// ends: `Continue(e)` waits on (`e`, a failure, is the result if time
    /// runs out), `Break(r)` ends the wait with `r`, which may itself be a
    /// `NoSpace` (a caller that must change how it waits, for example).
    pub fn wait_until(
        &self,
        wait: Wait,
        first: Result<Addr, ArenaError>,
        mut again: impl FnMut() -> ControlFlow<Result<Addr, ArenaError>, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        let mut e = match first {
            Err(e @ ArenaError::NoSpace { .. }) => e,
            other => return other,
        };
        let limit = |t: Duration| Some(self.waiter.now().saturating_add(t));
        let (deadline, interruptible) = match wait {
            _ if !W::CAN_SLEEP => return Err(e),
            Wait::No => return Err(e),
            Wait::Timeout(t) => (limit(t), false),
            Wait::Forever => (None, false),
            Wait::Interruptible(t) => (t.and_then(limit), true),
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // Counted out however the wait ends, an unwinding source included.
        let _counted = Counted(&self.waiters);
        loop {
            let seen = self.waiter.epoch();
            match again() {
                ControlFlow::Continue(failure) => e = failure,
                ControlFlow::Break(r) => break r,
            }
            // Out of time first: a zero timeout fails as `Timeout`'s does
            // (the C API's timed wait ends there too), interrupted or not.
            let left = deadline.map(|d| d.saturating_sub(self.waiter.now()));
            if left == Some(Duration::ZERO) {
                break Err(e);
            }
            if interruptible && self.waiter.interrupted() {
                break Err(ArenaError::Interrupted);
            }
            if interruptible {
                self.waiter.wait_interruptible(seen, left);
            } else {
                self.waiter.wait(seen, left);
            }
        }
    }

    /// Wake every waiting allocation to try again: after space came back
    /// through [`with`](Self::with), which wakes no one by itself. One
    /// load when no one waits.
    pub fn wake_waiters(&self) {
        self.freed();
    }

    /// Wake waiters after space came back (inlined: the per-CPU caches'
    /// free checks for waiters on every hit).
    #[inline(always)]
    pub(crate) fn freed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake(&self) {
        self.waiter.notify_all();
    }

    /// Threads in [`alloc`](Self::alloc) or [`xalloc`](Self::xalloc)
    /// waiting for space now (a snapshot: it may change as soon as it is
    /// read). For diagnostics, and for tests that must know a waiter is
    /// asleep before they act.
    pub fn waiting(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    /// The waiter its allocations sleep on: its clock
    /// ([`Waiter::now`]) gives waits built on [`wait_for`](Self::wait_for)
    /// their deadlines.
    pub fn waiter(&self) -> &W {
        &self.waiter
    }
}

/// A thread counted in a shared arena's waiters: counted out when dropped,
/// so a wait that ends by unwinding (a panicking source) is not left
/// counted for ever.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
