//! Waiting for space in the C API's arenas: at the root of an arena's tree,
//! where space returned to any arena of the tree wakes the waiters, polling
//! the root's import functions when it has them.

use core::ops::ControlFlow;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use core::time::Duration;

use vmspace::sync::{Wait, Waiter};
use vmspace::ArenaError;
use vmspace_shim::Addr;

use super::ArenaObj;
use crate::platform::Platform;

/// How often a waiting allocation of a tree whose root imports through the
/// caller's functions tries again (it cannot be told when their source has
/// room again).
const IMPORT_RETRY: Duration = Duration::from_millis(10);

impl<P: Platform> ArenaObj<P> {
    /// Space came back to this arena other than by a free (a span added or
    /// extended): wake its waiters, and those at the root of its tree.
    pub(crate) fn space_added(&self) {
        self.shared.wake_waiters();
        self.space_returned();
    }

    /// Wake the allocations waiting at the root of this arena's tree (the
    /// children's, see [`waiting`](Self::waiting)) after space came back
    /// here; the arena's own waiters are woken by the arena. One load when
    /// no one waits, nothing for a root.
    #[inline(always)]
    pub(crate) fn space_returned(&self) {
        if let Some(root) = self.root {
            Self::wake_root(root);
        }
    }

    /// Out of line (though every free in a child takes it): inlined, its
    /// call made the free wrappers of every arena save more registers.
    #[inline(never)]
    fn wake_root(root: NonNull<Self>) {
        // SAFETY: the root is live while its descendants are (type
        // invariant); the caller is one.
        unsafe { root.as_ref() }.shared.wake_waiters();
    }

    /// Allocate with `attempt` as `wait` asks: at once without waiting,
    /// else through [`wait_at_root`](Self::wait_at_root).
    #[inline(always)]
    pub(crate) fn waiting(
        &self,
        wait: Wait,
        attempt: impl Fn(Wait) -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        if wait != Wait::No {
            return self.wait_at_root(wait, attempt);
        }
        attempt(wait)
    }

    /// A waiting allocation (`wait` not [`Wait::No`]): once without
    /// waiting, then waiting at the root of its tree (itself for a root),
    /// where whatever returns space to any arena of the tree (a child's own
    /// frees, and its ancestors', which it imports from) wakes it
    /// ([`space_returned`](Self::space_returned)); waiting in a child
    /// alone, it slept through space freed in its parent. A tree whose
    /// root imports through the caller's functions also tries again every
    /// [`IMPORT_RETRY`]: nothing tells it when their source has room
    /// again. A wait begun before the root's import functions were set
    /// starts polling when `vmspace_arena_set_import` wakes it.
    #[cold]
    #[inline(never)]
    pub(crate) fn wait_at_root(
        &self,
        wait: Wait,
        attempt: impl Fn(Wait) -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        let mut again = || attempt(Wait::No);
        self.waiting_root(wait).wait_after(again(), &mut again)
    }

    /// Where and how a wait as `wait` asks, begun now, waits: at the root
    /// of this arena's tree, until a deadline on its clock. Taken before
    /// the allocation's first try, which the time given includes.
    pub(crate) fn waiting_root(&self, wait: Wait) -> WaitAt<'_, P> {
        let root = match self.root {
            // SAFETY: the root is live while its descendants are (type
            // invariant), and this is one.
            Some(root) => unsafe { root.as_ref() },
            None => self,
        };
        let deadline = match wait {
            Wait::Timeout(t) | Wait::Interruptible(Some(t)) => {
                Some(root.shared.waiter().now().saturating_add(t))
            }
            _ => None,
        };
        WaitAt { root, deadline, interruptible: matches!(wait, Wait::Interruptible(_)) }
    }
}

/// Where and how a waiting allocation waits, as
/// [`waiting_root`](ArenaObj::waiting_root) gives it.
pub(crate) struct WaitAt<'a, P: Platform> {
    /// The root of the allocating arena's tree.
    root: &'a ArenaObj<P>,
    /// When the wait ends, on the root's clock (`None`: never).
    deadline: Option<Duration>,
    /// Whether the waiter's interruption ends it
    /// ([`Wait::Interruptible`]: `VMSPACE_KILLABLE`).
    interruptible: bool,
}

impl<P: Platform> Clone for WaitAt<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Platform> Copy for WaitAt<'_, P> {}

impl<P: Platform> WaitAt<'_, P> {
    /// The loop of a waiting allocation, after the first try gave `got`:
    /// `again` tries once more, without waiting. An allocation that tries
    /// itself (one made by
    /// [`CpuCaches::alloc_retrying`](vmspace::sync::CpuCaches::alloc_retrying),
    /// counted once however often it is retried) passes its own retry.
    pub(crate) fn wait_after(
        self,
        mut got: Result<Addr, ArenaError>,
        again: &mut dyn FnMut() -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError> {
        let (root, deadline) = (self.root, self.deadline);
        let clock = root.shared.waiter();
        if !matches!(got, Err(ArenaError::NoSpace { .. })) || !<P::Waiter as Waiter>::CAN_SLEEP {
            // Done, or a waiter that cannot sleep: it waits as `Wait::No`
            // does (nor does its clock move, so nothing would end the wait).
            return got;
        }
        loop {
            let left = deadline.map(|d| d.saturating_sub(clock.now()));
            if left == Some(Duration::ZERO) {
                // Out of time (or given none: a timeout of 0 tries once).
                return got;
            }
            // A polling root is tried again every IMPORT_RETRY at least. A
            // root that does not poll yet is waited on for the whole time,
            // unless a try finds that it has started to (set_import wakes
            // every waiter): that ends this wait, and the next one polls.
            let polling = root.polls.load(Ordering::Relaxed);
            let w = match left {
                _ if polling => Some(left.map_or(IMPORT_RETRY, |l| l.min(IMPORT_RETRY))),
                left => left,
            };
            let w = match (w, self.interruptible) {
                (w, true) => Wait::Interruptible(w),
                (Some(l), false) => Wait::Timeout(l),
                (None, false) => Wait::Forever,
            };
            let started_polling = || !polling && root.polls.load(Ordering::Relaxed);
            got = root.shared.wait_until(w, got, || match again() {
                Err(e @ ArenaError::NoSpace { .. }) if started_polling() => {
                    ControlFlow::Break(Err(e))
                }
                Err(e @ ArenaError::NoSpace { .. }) => ControlFlow::Continue(e),
                r => ControlFlow::Break(r),
            });
            match (&got, deadline) {
                (Err(ArenaError::NoSpace { .. }), None) => {}
                (Err(ArenaError::NoSpace { .. }), Some(d)) if clock.now() < d => {}
                _ => return got,
            }
        }
    }
}
