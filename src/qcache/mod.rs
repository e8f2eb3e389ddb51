//! Quantum caches (the second half of Bonwick and Adams' vmem paper):
//! per-size caches of small multiples of an arena's quantum, served from
//! per-thread or per-CPU magazines without the arena lock.
//!
//! A [`SyncArena`](crate::sync::SyncArena) created with quantum caches keeps,
//! for each size of 1 to `classes` quanta, a table of slabs (arena
//! allocations of 64 objects each, aligned so an object finds its slab by
//! masking its address) and a depot of full magazines, all in a [`Store`]
//! (pages through the shim, or a caller's buffer). Two magazines per class
//! sit in front of them, in one of two places:
//!
//! - a [`CacheHandle`] per thread: its owner's alone (`&mut self`);
//! - a [`CpuCaches`], shared by every thread (`&self`): one set per slot of
//!   a [`CpuPin`], which in the kernel is a CPU held by disabling
//!   preemption, and in user space a slot behind a try-lock ([`SlotFlag`])
//!   picked by the CPU the thread runs on.
//!
//! Either way the hit path is a pop or a push and one flag store (plus the
//! pin and unpin for `CpuCaches`), and only a miss takes the lock.
//! [`SyncArena::reclaim`](crate::sync::SyncArena::reclaim) returns the
//! depots' objects to their slabs and wholly free slabs to the arena; a
//! failed allocation reclaims before it gives up.
//!
//! [`Store`]: crate::arena::Store

mod exchange;
mod handle;
pub(crate) mod magazine;
mod pair;
mod percpu;
mod pin;
pub(crate) mod slab;

pub use handle::CacheHandle;
pub use magazine::{Magazine, ROUNDS};
pub use percpu::CpuCaches;
pub use pin::{CpuPin, SlotFlag};
pub use slab::{DEPOT, MAX_CLASSES, MAX_QUANTUM, OBJECTS, SLABS};

/// Quantum-cache statistics of a [`SyncArena`](crate::sync::SyncArena).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QCacheStats {
    /// Allocations served from a handle's magazines.
    pub hits: u64,
    /// Allocations that found both magazines empty.
    pub misses: u64,
    /// Full magazines in the depots now.
    pub depot_magazines: usize,
    /// Slabs allocated from the arena now.
    pub slabs: usize,
    /// Objects sitting in their slabs (neither live nor cached).
    pub objects_in_slabs: usize,
    /// Reclaims run.
    pub reclaims: u64,
    /// Slabs ever imported from the arena.
    pub slabs_created: u64,
    /// Slabs ever given back to the arena.
    pub slabs_freed: u64,
    /// New slabs given straight back because their table slot was taken.
    pub slab_collisions: u64,
}

#[cfg(test)]
mod tests;
