//! `&SyncArena` as a [`Source`]: a shared arena as the parent of arenas
//! on any thread.

use vmspace_shim::{Range, Size};

use super::lock::RawLock;
use super::wait::{Wait, Waiter};
use super::SyncArena;
use crate::arena::{ArenaError, Constraints, Source, Store};

/// A shared arena is a source for arenas on any thread: imports are
/// instant-fit constrained allocations that do not wait, give-backs frees;
/// neither goes through the quantum caches (an import is a span, taken from
/// and given back to the arena itself, whatever its size).
/// A child that is itself shared and waits for space is not woken by frees
/// in this arena (its waiter is its own): it tries again when something
/// wakes it or at its timeout. To wait for space in either, allocate in the
/// child without waiting and wait in the parent with
/// [`wait_for`](SyncArena::wait_for), calling the parent's
/// [`wake_waiters`](SyncArena::wake_waiters) after frees in the child (as
/// the C API does); or give the child `Wait::Timeout`.
impl<L: RawLock, W: Waiter, S: Store, I: Source> Source for &SyncArena<L, W, S, I> {
    fn quantum(&self) -> Size {
        self.with(|a| a.quantum())
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        crate::arena::check_import(self.with(|a| a.quantum()), size, align)?;
        let a = self.xalloc(&Constraints::new(size).align(align), Wait::No)?;
        Ok(Range::from_size(a, size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free(range.base(), range.size())
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free_deferred(range.base(), range.size())
    }
}
