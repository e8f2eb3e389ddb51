//! A thread's handle on the quantum caches: two magazines per class, used
//! without the lock.

use vmspace_shim::{Addr, Size};

use super::{RawLock, SyncArena, Wait, Waiter};
use crate::arena::{ArenaError, Policy, Source, Store};
use crate::qcache::pair::MagPair;
use crate::qcache::{Counters, Magazine, MissOnDrop, QCache, MAX_CLASSES};

/// One thread's quantum-cache magazines for a [`SyncArena`] (for one set
/// per CPU shared by every thread, see [`CpuCaches`](super::CpuCaches)).
///
/// Allocations and frees of sizes up to [`SyncArena::qcache_max`] are served
/// from the handle's magazines without the arena lock: a hit is a pop or a
/// push and one atomic operation on the object's slab record. When both
/// magazines of a class are empty (or full), the handle exchanges one with
/// the depot under the lock, refilling from slabs, and from new slabs
/// imported from the arena, when the depot has none (a class has at most
/// [`SLABS`](crate::qcache::SLABS) slabs at once: past that, a miss takes an
/// allocation of the arena's own, counted in
/// [`slab_collisions`](crate::qcache::QCacheStats::slab_collisions), which
/// the handle frees to the arena). Frees are checked: an
/// object is freed only with the size it was allocated with, once (of two
/// racing frees, on any path, one succeeds); anything else is
/// [`ArenaError::BadFree`] and changes nothing. Larger sizes go straight to
/// the arena. Dropping the handle flushes its magazines.
///
/// # Invariants
///
/// Every address in `pairs[c]` is a cached object of class `c`: in a
/// registered slab, neither live nor in its slab.
pub struct CacheHandle<'a, L: RawLock, W: Waiter, S: Store, I: Source> {
    arena: &'a SyncArena<L, W, S, I>,
    pairs: [MagPair; MAX_CLASSES],
    counters: Counters,
}

impl<'a, L: RawLock, W: Waiter, S: Store, I: Source> CacheHandle<'a, L, W, S, I> {
    /// A handle with empty magazines.
    pub fn new(arena: &'a SyncArena<L, W, S, I>) -> Self {
        CacheHandle { arena, pairs: [MagPair::EMPTY; MAX_CLASSES], counters: Counters::default() }
    }

    /// The arena.
    pub fn arena(&self) -> &'a SyncArena<L, W, S, I> {
        self.arena
    }

    /// Allocate `size` (instant fit for sizes the caches do not serve).
    #[inline]
    pub fn alloc(&mut self, size: Size) -> Result<Addr, ArenaError> {
        self.alloc_wait(size, Wait::No)
    }

    /// Allocate `size`, waiting for space as `wait` allows when neither the
    /// caches nor the arena have any. A waiter retries the depot, the slabs
    /// and the arena each time space comes back (see
    /// [`SyncArena::alloc`]); objects in other handles' magazines come back
    /// when those fill up or flush.
    ///
    /// The hit (a pop and the object's claim) is inlined into the caller;
    /// a miss goes out of line to `alloc_missed`.
    #[inline(always)]
    pub fn alloc_wait(&mut self, size: Size, wait: Wait) -> Result<Addr, ArenaError> {
        if let Some((cache, c)) = self.arena.caches().and_then(|q| Some((q, q.class_of(size)?))) {
            if let Some(a) = self.pairs[c].pop().and_then(|a| cache.claim(c, a, size)) {
                self.counters.hit();
                return Ok(a);
            }
            return self.alloc_missed(cache, c, size, wait);
        }
        self.arena.alloc(size, Policy::InstantFit, wait)
    }

    /// The rest of [`alloc_wait`](Self::alloc_wait) when the magazines of
    /// class `c` of `cache` gave no object: a magazine from the depot or
    /// the slabs, or the arena.
    #[cold]
    #[inline(never)]
    fn alloc_missed(
        &mut self,
        cache: &QCache<S>,
        c: usize,
        size: Size,
        wait: Wait,
    ) -> Result<Addr, ArenaError> {
        let arena = self.arena;
        self.counters.fold(&cache.stats);
        // The allocation counts once, when it ends: a hit if a magazine
        // served it as it retried, else a miss (also if it unwinds).
        let miss = MissOnDrop(&cache.stats);
        let got = self.refill_or_alloc(c, size);
        // Waiting: the whole allocation again (magazines, depot, slabs,
        // arena) after every wake-up (a flush or a full magazine reaching
        // the depot wakes waiters).
        let mut hit = false;
        let r = arena.wait_for(wait, got, || {
            if let Some(a) = self.pairs[c].pop().and_then(|a| cache.claim(c, a, size)) {
                hit = true;
                return Ok(a);
            }
            self.refill_or_alloc(c, size)
        });
        if hit {
            core::mem::forget(miss);
            self.counters.hit();
        }
        r
    }

    /// A magazine of class `c` (both of whose magazines are empty) from
    /// the depot or the slabs, and an object from it; or, failing that, an
    /// allocation from the arena.
    fn refill_or_alloc(&mut self, c: usize, size: Size) -> Result<Addr, ArenaError> {
        let pair = &mut self.pairs[c];
        self.arena.refill_or_alloc(c, size, |mag| {
            // Both magazines were empty, so this cannot be refused.
            let refused = pair.install(mag);
            debug_assert!(refused.is_none());
        })
    }

    /// Free `[addr, addr + size)`. Cached objects go into a magazine; a bad
    /// free is an error and changes nothing.
    #[inline(always)]
    pub fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let Some(c) = self.arena.caches().map_or(Ok(None), |q| q.unclaim(addr, size))? else {
            return self.arena.free(addr, size);
        };
        if let Some(full) = self.pairs[c].push(addr.0) {
            self.give_back(c, full);
        }
        Ok(())
    }

    /// A full magazine of class `c` to the depot (out of line: rare).
    #[cold]
    #[inline(never)]
    fn give_back(&self, c: usize, full: Magazine) {
        self.arena.give_back([(c, full)]);
    }

    /// Hand every cached object back to the depot or the slabs.
    pub fn flush(&mut self) {
        let (counters, pairs) = (&mut self.counters, &mut self.pairs);
        self.arena.with_caches(|l| l.flush(counters, pairs));
        self.arena.freed();
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source> Drop for CacheHandle<'_, L, W, S, I> {
    fn drop(&mut self) {
        self.flush();
    }
}
