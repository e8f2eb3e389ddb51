//! Quantum caches (the second half of Bonwick and Adams' vmem paper):
//! per-size caches of small multiples of an arena's quantum, served from
//! magazines without the arena lock.
//!
//! This module owns the protocol. [`QCache`] holds, for each size of 1 to
//! `classes` quanta, a table of slabs (held arena allocations of 64 objects
//! each, aligned so an object finds its slab by masking its address) and a
//! depot of full magazines, all in a [`Store`] (pages through the shim, or a
//! caller's buffer). Objects are marked live and not live lock-free, each
//! with one atomic operation on its slab record whose old value decides;
//! the depot exchange, filling from slabs, reclaiming and checking run
//! under the lock of the arena that holds the cache.
//!
//! The magazines in front of it, and the arena that holds it, are the
//! [`sync`](crate::sync) module's: a
//! [`SyncArena`](crate::sync::SyncArena) made with quantum caches, and two
//! magazines per class in a [`CacheHandle`](crate::sync::CacheHandle) per
//! thread or, as a [`CpuMags`] per class, in
//! [`CpuCaches`](crate::sync::CpuCaches) per CPU, pinned with a [`CpuPin`]
//! (whose magazine operations commit with one store, so that a user-space
//! pin can run them as restartable sequences).
//!
//! [`Store`]: crate::arena::Store

mod cache;
mod cpumags;
mod locked;
mod magazine;
pub(crate) mod pair;
pub(crate) mod pin;
pub(crate) mod slab;

pub(crate) use cache::{claim_with, Counters, MissOnDrop};
pub use cache::{table_store_bytes, QCache, QCacheConfig};
pub(crate) use cpumags::{magazine_bytes, LINE};
pub use cpumags::{magazine_store_bytes, CpuMags, Popped, Pushed};
pub(crate) use locked::Locked;
pub use magazine::{Magazine, ROUNDS};
pub use pin::{CpuPin, MagSlots, SlotFlag};
pub use slab::{DEPOT, MAX_CLASSES, MAX_QUANTUM, OBJECTS, SLABS};

/// Quantum-cache statistics of a [`SyncArena`](crate::sync::SyncArena).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QCacheStats {
    /// Allocations served from a cache's magazines. Each allocation of a
    /// cached size counts once, a hit or a miss, however often it retries
    /// while it waits: one that found both magazines empty and was served
    /// from a magazine when it tried again counts as a hit.
    pub hits: u64,
    /// Allocations that found both magazines empty and were not served
    /// from a magazine in the end (served by the depot, a slab or the
    /// arena, or failed, or unwound), and per-CPU allocations whose caller
    /// the pin could not place on a slot (they go to the arena).
    pub misses: u64,
    /// Frees of a cached object refused: not live (a double free) or live
    /// with another size. An allocation of a cached size that the arena
    /// served itself (a per-CPU caller the pin could not place) is no
    /// cached object: its bad frees are the arena's.
    pub bad_frees: u64,
    /// Full magazines in the depots now.
    pub depot_magazines: usize,
    /// Slabs allocated from the arena now (a count, not an event counter:
    /// it goes down when slabs are given back).
    pub slabs: usize,
    /// Objects sitting in their slabs (neither live nor cached).
    pub objects_in_slabs: usize,
    /// Reclaims run.
    pub reclaims: u64,
    /// Slabs ever imported from the arena.
    pub slabs_created: u64,
    /// Slabs ever given back to the arena.
    pub slabs_freed: u64,
    /// Misses that found no slab record for a new slab and took an
    /// allocation of the arena's own instead: the record the slab's
    /// address maps to was taken, and no slab could be placed where a free
    /// record maps (every one of the class's [`SLABS`] in use, or no room
    /// there).
    pub slab_collisions: u64,
}
