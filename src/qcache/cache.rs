//! [`QCache`]: the one owner of the quantum-cache protocol: the slab tables
//! and depots, the shared counters, and marking objects live and not live.
//! Its lock-free half is here; the half that runs under the arena lock is
//! `Locked`, in `locked.rs`.

use crate::atomic::{AtomicU64, Ordering};

use vmspace_shim::{Addr, Size};

use super::slab::{Finder, Tables};
use crate::arena::{ArenaError, Store};

/// How to set up quantum caches: sizes of 1 to `classes` quanta (at most
/// [`MAX_CLASSES`](super::MAX_CLASSES)), with their slab tables and depots
/// in `store`.
#[derive(Debug)]
pub struct QCacheConfig<S: Store> {
    /// Size classes: the caches serve sizes up to `classes` quanta.
    pub classes: usize,
    /// Where the slab tables and depots live.
    pub store: S,
}

impl<S: Store> QCacheConfig<S> {
    /// Caches for sizes of 1 to `classes` quanta, their tables in `store`,
    /// which must be able to commit
    /// [`table_store_bytes(classes)`](super::table_store_bytes) bytes.
    pub fn new(classes: usize, store: S) -> Self {
        QCacheConfig { classes, store }
    }
}

/// The bytes the store of a [`QCacheConfig`] with `classes` classes
/// commits (their slab records and depots; `classes` past
/// [`MAX_CLASSES`](super::MAX_CLASSES) count as that many, the most any
/// caches take): reserve at least this much, rounded up to the store's
/// page.
pub const fn table_store_bytes(classes: usize) -> usize {
    super::slab::table_bytes(classes)
}

/// Shared quantum-cache counters (handles and per-CPU caches add their hits
/// and misses on misses and flushes).
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bad_frees: AtomicU64,
    pub(crate) reclaims: AtomicU64,
    pub(crate) slabs_created: AtomicU64,
    pub(crate) slabs_freed: AtomicU64,
    pub(crate) slab_collisions: AtomicU64,
}

/// Counts one miss in the shared statistics when dropped: when the
/// allocation it stands for ends, also by unwinding (a source that panics
/// while the allocation waits), unless forgotten (served from a magazine,
/// a hit).
pub(crate) struct MissOnDrop<'s>(pub(crate) &'s SharedStats);

impl Drop for MissOnDrop<'_> {
    fn drop(&mut self) {
        self.0.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cache's own hit and miss counts, added to the shared ones now and then
/// (on misses and flushes) so hits cost no shared write. All-zero is a
/// valid state.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Counters {
    hits: u64,
    misses: u64,
}

impl Counters {
    /// Count a hit.
    #[inline]
    pub(crate) fn hit(&mut self) {
        self.hits += 1;
    }

    /// Add the counts to the shared ones, zeroing them.
    pub(crate) fn fold(&mut self, stats: &SharedStats) {
        stats.hits.fetch_add(core::mem::take(&mut self.hits), Ordering::Relaxed);
        stats.misses.fetch_add(core::mem::take(&mut self.misses), Ordering::Relaxed);
    }
}

/// The quantum caches of one arena (Bonwick and Adams' second half): for
/// each size of 1 to `classes` quanta, slabs of 64 objects imported from
/// the arena as held allocations, and a depot of full magazines.
///
/// The magazines in front of it belong to whoever serves clients (a
/// [`CacheHandle`](crate::sync::CacheHandle) per thread, or
/// [`CpuCaches`](crate::sync::CpuCaches) per CPU); they claim and unclaim
/// objects here without a lock, and exchange magazines, fill them from
/// slabs, reclaim and check under the lock of the arena that holds this
/// cache
/// ([`SyncArena`](crate::sync::SyncArena)).
///
/// Frees are checked exactly: an object is live with the size its client
/// asked for, and a free succeeds only with that size, once. A slab itself
/// is never a client's allocation: it is held by handle in the arena, so no
/// by-address free reaches it.
///
/// # Invariants
///
/// - Every object of a registered slab is in its slab, live, or in exactly
///   one magazine (a cache's or the depot's); the arena's `check()`
///   verifies what it can see.
/// - The depots are only touched under the lock that guards the arena.
pub struct QCache<S: Store> {
    pub(crate) tables: Tables<S>,
    pub(crate) stats: SharedStats,
}

impl<S: Store> QCache<S> {
    /// Caches for an arena of `quantum` as `config` asks.
    pub(crate) fn new(config: QCacheConfig<S>, quantum: Size) -> Result<Self, ArenaError> {
        let tables = Tables::new(config.store, quantum.0, config.classes)?;
        Ok(QCache { tables, stats: SharedStats::default() })
    }

    /// The largest size the caches serve.
    pub fn max_size(&self) -> Size {
        Size(self.tables.max_size())
    }

    /// The number of size classes.
    pub(crate) fn classes(&self) -> usize {
        self.tables.classes()
    }

    /// The class serving `size`, if the caches serve it.
    #[inline]
    pub(crate) fn class_of(&self, size: Size) -> Option<usize> {
        self.tables.class_of(size.0)
    }

    /// Whether `addr` is the base of one of these caches' slabs: a held
    /// arena allocation that no client handle names. Lock-free; exact while
    /// the arena lock is held (slabs come and go only under it).
    pub(crate) fn is_slab(&self, addr: Addr) -> bool {
        (0..self.classes()).any(|c| matches!(self.tables.find(c, addr.0), Some((_, 0))))
    }

    /// Hand the cached object `addr` of class `c` to a client that asked for
    /// `size` (in the class): mark it live with that size. `None`, and
    /// nothing changed, when no slab of the class holds it (the magazine it
    /// came from was corrupt).
    #[inline]
    pub(crate) fn claim(&self, c: usize, addr: usize, size: Size) -> Option<Addr> {
        claim_with(self.tables.finder(c)?, addr, size)
    }

    /// The class serving `size` and its lookup for [`claim_with`], if the
    /// caches serve `size`: both read before a pin's magazine operation
    /// (which the compiler must assume changed all memory), with one test
    /// for the caller's hit path.
    #[inline]
    pub(crate) fn class_finder(&self, size: Size) -> Option<(usize, Finder<'_>)> {
        let c = self.class_of(size)?;
        Some((c, self.tables.finder(c)?))
    }

    /// Check a free of `addr` with `size` against the slab records and mark
    /// the object not live, lock-free: `Ok(Some(class))` for an object live
    /// with exactly that size (now the caller's to cache or return to its
    /// slab), `Ok(None)` for an address the caches do not hold (the arena's
    /// to check), [`ArenaError::BadFree`] for a cached object that is not
    /// live or live with another size, with nothing changed. Of two frees
    /// racing on one object, exactly one gets `Ok(Some(_))`.
    #[inline]
    pub(crate) fn unclaim(&self, addr: Addr, size: Size) -> Result<Option<usize>, ArenaError> {
        let Some(c) = self.class_of(size) else { return Ok(None) };
        let Some((rec, i)) = self.tables.find(c, addr.0) else { return Ok(None) };
        match rec.unclaim(i, size.0 as u32) {
            Ok(()) => Ok(Some(c)),
            Err(live) => {
                self.stats.bad_frees.fetch_add(1, Ordering::Relaxed);
                let allocated = (live != 0).then_some(Size(live as usize));
                Err(ArenaError::BadFree { addr, size, allocated })
            }
        }
    }

    /// A free the arena refused (no allocation of its own at `addr`) that
    /// names an object of a slab, live or not (a free with a size of
    /// another class, a double free, or a deferred free, which the caches
    /// do not take): count it here, where the docs count bad frees of
    /// cached objects, and return the size the object's client asked for
    /// when it is live. `None` when no slab has an object at `addr`. (Off
    /// the free path: only a refused free looks through every class.)
    pub(crate) fn refused_free_of_object(&self, addr: Addr) -> Option<Option<Size>> {
        let live = (0..self.classes()).find_map(|c| {
            let (rec, i) = self.tables.find(c, addr.0)?;
            let asked = rec.live[i].load(Ordering::Relaxed);
            Some((asked != 0).then_some(Size(asked as usize)))
        })?;
        self.stats.bad_frees.fetch_add(1, Ordering::Relaxed);
        Some(live)
    }
}

/// [`QCache::claim`] through a class's lookup ([`QCache::class_finder`]).
#[inline]
pub(crate) fn claim_with(finder: Finder<'_>, addr: usize, size: Size) -> Option<Addr> {
    let (rec, i) = finder.find(addr)?;
    // Sizes served are at most MAX_CLASSES * MAX_QUANTUM < 2^32.
    rec.claim(i, size.0 as u32);
    Some(Addr(addr))
}
