//! [`Retrying`]: an allocation through [`CpuCaches`] whose caller waits in
//! its own loop, counted once however often it is tried.

use vmspace_shim::{Addr, Size};

use super::{CpuCaches, RawLock, Waiter};
use crate::arena::{ArenaError, Source, Store};
use crate::qcache::CpuPin;

/// The first result of an allocation not tried yet.
pub(super) const UNTRIED: Result<Addr, ArenaError> =
    Err(ArenaError::InvalidArgument("not tried yet"));

/// An allocation of a cached size made by
/// [`CpuCaches::alloc_retrying`], for a caller that waits in its own loop:
/// [`again`](Self::again) tries it again, this CPU's magazines first,
/// then the depot, the slabs and the arena. The allocation counts once in
/// the statistics: a hit when a magazine served it, else a miss, counted
/// when the `Retrying` is dropped (also by unwinding).
///
/// (A value with methods, not a closure the caches call: in the kernel,
/// the full type of the caches makes a closure's symbol name pass
/// kallsyms' limit of 512 characters.)
///
/// # Invariants
///
/// `class` is a class of the caches' arena and `size` one of its sizes.
pub struct Retrying<'c, 'a, L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> {
    caches: &'c CpuCaches<'a, L, W, S, I, P>,
    class: usize,
    size: Size,
    /// The first try's result, until a later try succeeds: then that
    /// one's.
    pub(super) first: Result<Addr, ArenaError>,
    /// A try was served from a magazine (and the pop counted the hit).
    served: bool,
}

impl<'c, 'a, L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin>
    Retrying<'c, 'a, L, W, S, I, P>
{
    /// An allocation of `size` in class `class` of `caches` whose first
    /// try gave `first`; `served` when a magazine served it (a hit,
    /// counted by the pop), else it counts as a miss unless a later try is.
    #[inline]
    pub(super) fn new(
        caches: &'c CpuCaches<'a, L, W, S, I, P>,
        class: usize,
        size: Size,
        first: Result<Addr, ArenaError>,
        served: bool,
    ) -> Self {
        Retrying { caches, class, size, first, served }
    }

    /// The first try's result (once [`again`](Self::again) has
    /// succeeded, its result).
    #[inline]
    pub fn first(&self) -> Result<Addr, ArenaError> {
        self.first
    }

    /// Try the allocation again: this CPU's magazines, the depot, the
    /// slabs, the arena. Meant for an allocation whose tries have failed
    /// so far; once one has succeeded, a call is a new allocation, counted
    /// as [`CpuCaches::alloc`] counts one (the allocation this value
    /// stands for keeps its own count).
    pub fn again(&mut self) -> Result<Addr, ArenaError> {
        if self.first.is_ok() {
            return self.caches.alloc(self.size);
        }
        let mut hit = false;
        let r = self.caches.retry(self.class, self.size, &mut hit);
        self.served |= hit;
        if r.is_ok() {
            // Done: the result stands as this allocation's.
            self.first = r;
        }
        r
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin> Drop
    for Retrying<'_, '_, L, W, S, I, P>
{
    #[inline]
    fn drop(&mut self) {
        if !self.served {
            self.caches.count(0, 1);
        }
    }
}
