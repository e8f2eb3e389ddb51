//! A thread-safe arena: an [`Arena`] behind a [`RawLock`], with quantum
//! caches and waiting for space.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use vmspace_shim::{Addr, Range, Size};

use super::lock::{Held, RawLock};
use super::wait::{Wait, Waiter};
use crate::arena::{Arena, ArenaError, Constraints, Policy, Source, Store};
use crate::qcache::slab::{SlabRecord, Tables, OBJECTS, SLABS};
use crate::qcache::QCacheStats;

/// Shared quantum-cache counters (handles and per-CPU caches add theirs on
/// misses and flushes).
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) reclaims: AtomicU64,
    pub(crate) slabs_created: AtomicU64,
    pub(crate) slabs_freed: AtomicU64,
    pub(crate) slab_collisions: AtomicU64,
}

/// An [`Arena`] shared between threads.
///
/// Every arena operation takes the lock `L`. Sizes up to `qcache_max` can
/// also be served by quantum caches through a per-thread
/// [`CacheHandle`](crate::qcache::CacheHandle) or per-CPU
/// [`CpuCaches`](crate::qcache::CpuCaches), whose fast paths take no lock. Allocations may wait for space ([`Wait`]) through the waiter `W`.
/// `&SyncArena` is a [`Source`], so arenas on other threads can import from
/// one shared parent.
///
/// # Invariants
///
/// - `arena` and the depots in `tables` are only accessed with `lock` held.
/// - Every object of a registered slab is in its slab, live, or in exactly
///   one magazine (a handle's, a CPU slot's or the depot's).
pub struct SyncArena<L: RawLock, W: Waiter, S: Store, I: Source> {
    lock: L,
    waiter: W,
    waiters: AtomicUsize,
    arena: UnsafeCell<Arena<S, I>>,
    pub(crate) tables: Option<Tables<S>>,
    pub(crate) stats: SharedStats,
}

// SAFETY: the arena and the depots are only reached with the lock held
// (type invariant), so one thread at a time uses them, which is sound when
// they may move between threads; the slab records are atomics.
unsafe impl<L: RawLock, W: Waiter, S: Store + Send, I: Source + Send> Sync
    for SyncArena<L, W, S, I>
{
}
// SAFETY: owning the arena on another thread is sound when its parts may move.
unsafe impl<L: RawLock + Send, W: Waiter + Send, S: Store + Send, I: Source + Send> Send
    for SyncArena<L, W, S, I>
{
}

impl<L: RawLock, W: Waiter, S: Store, I: Source> SyncArena<L, W, S, I> {
    /// Share `arena` behind `lock`, waking waiters through `waiter`.
    /// `qcache` = `Some((classes, store))` adds quantum caches for sizes of
    /// 1 to `classes` quanta (at most [`MAX_CLASSES`](crate::qcache::MAX_CLASSES)),
    /// with their tables in `store`.
    pub fn new(
        arena: Arena<S, I>,
        lock: L,
        waiter: W,
        qcache: Option<(usize, S)>,
    ) -> Result<Self, ArenaError> {
        let tables = match qcache {
            Some((classes, store)) if classes > 0 => {
                Some(Tables::new(store, arena.quantum().0, classes)?)
            }
            _ => None,
        };
        Ok(SyncArena {
            lock,
            waiter,
            waiters: AtomicUsize::new(0),
            arena: UnsafeCell::new(arena),
            tables,
            stats: SharedStats::default(),
        })
    }

    /// Run `f` on the arena with the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut Arena<S, I>) -> R) -> R {
        let _held = Held::new(&self.lock);
        // SAFETY: the lock is held for the whole call (type invariant).
        f(unsafe { &mut *self.arena.get() })
    }

    /// Run `f` on the arena and the quantum-cache tables with the lock held.
    pub(crate) fn with_all<R>(
        &self,
        f: impl FnOnce(&mut Arena<S, I>, Option<&Tables<S>>) -> R,
    ) -> R {
        let _held = Held::new(&self.lock);
        // SAFETY: the lock is held for the whole call (type invariant).
        f(unsafe { &mut *self.arena.get() }, self.tables.as_ref())
    }

    /// The largest size the quantum caches serve (zero without caches).
    pub fn qcache_max(&self) -> Size {
        match &self.tables {
            Some(t) => Size(t.class(t.classes() - 1).size),
            None => Size(0),
        }
    }

    /// Allocate `size` under `policy`, waiting for space as `wait` allows.
    /// Before failing (or sleeping), the quantum caches are reclaimed.
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
        // Fast attempt, then reclaim and retry, before anything else.
        let e = match self.with(&mut attempt) {
            Ok(a) => return Ok(a),
            Err(e @ ArenaError::NoSpace { .. }) => e,
            Err(e) => return Err(e),
        };
        self.reclaim();
        let deadline = match wait {
            _ if !W::CAN_SLEEP => return self.with(&mut attempt).map_err(|_| e),
            Wait::No => return self.with(&mut attempt).map_err(|_| e),
            Wait::Timeout(t) => Some(self.waiter.now().saturating_add(t)),
            Wait::Forever => None,
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let seen = self.waiter.epoch();
            match self.with(&mut attempt) {
                Err(ArenaError::NoSpace { .. }) => {}
                other => break other,
            }
            let left = deadline.map(|d| d.saturating_sub(self.waiter.now()));
            if left == Some(Duration::ZERO) {
                break Err(e);
            }
            self.waiter.wait(seen, left);
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Free `[addr, addr + size)`, allocated with this size. A bad free is an
    /// error and changes nothing. Objects of the quantum caches freed here
    /// (without a handle) go back to their slab.
    pub fn free(&self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let r = match self.cached_object(addr, size) {
            Some((rec, i)) => self.with_all(|_, _| {
                if rec.live[i].load(Ordering::Relaxed) == 0 {
                    return Err(ArenaError::BadFree { addr, size, allocated: None });
                }
                rec.live[i].store(0, Ordering::Relaxed);
                rec.in_slab.fetch_or(1 << i, Ordering::Relaxed);
                Ok(())
            }),
            None => self.with(|a| a.free(addr, size)),
        };
        if r.is_ok() {
            self.freed();
        }
        r
    }

    /// The slab record and index of a quantum-cache object of `size`.
    #[inline]
    pub(crate) fn cached_object(&self, addr: Addr, size: Size) -> Option<(&SlabRecord, usize)> {
        self.tables.as_ref()?.find(self.class_of(size)?, addr.0)
    }

    /// The quantum-cache class serving `size`, if any.
    #[inline]
    pub(crate) fn class_of(&self, size: Size) -> Option<usize> {
        self.tables.as_ref()?.class_of(size.0)
    }

    /// Wake waiters after space came back.
    pub(crate) fn freed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.waiter.notify_all();
        }
    }

    /// Give everything the depots hold back to the slabs, and every wholly
    /// free slab back to the arena. Magazines held by live handles and
    /// per-CPU caches are not reachable; they come back when those flush or
    /// drop. Returns the number of slabs freed.
    pub fn reclaim(&self) -> usize {
        let freed = self.with_all(|arena, tables| {
            let Some(t) = tables else { return 0 };
            let mut freed = 0;
            for c in 0..t.classes() {
                // SAFETY: the lock is held for this closure.
                let depot = unsafe { t.depot(c) };
                for m in &mut depot.mags[..depot.count] {
                    return_to_slabs(t, c, m.rounds());
                    m.clear();
                }
                depot.count = 0;
                let k = t.class(c);
                for slot in 0..SLABS {
                    let rec = t.record(c, slot);
                    let base = rec.base.load(Ordering::Relaxed);
                    if base != 0
                        && rec.in_slab.load(Ordering::Relaxed) == u64::MAX
                        && arena.free(Addr(base), Size(k.slab_bytes())).is_ok()
                    {
                        rec.in_slab.store(0, Ordering::Relaxed);
                        rec.base.store(0, Ordering::Release);
                        freed += 1;
                    }
                }
            }
            freed
        });
        self.stats.reclaims.fetch_add(1, Ordering::Relaxed);
        self.stats.slabs_freed.fetch_add(freed as u64, Ordering::Relaxed);
        if freed > 0 {
            self.freed();
        }
        freed
    }

    /// Quantum-cache statistics. Hits and misses of live handles and
    /// per-CPU caches are added when they miss, flush or drop.
    pub fn qcache_stats(&self) -> QCacheStats {
        let (depot, cached_in_slabs, slabs) = self.with_all(|_, tables| {
            let Some(t) = tables else { return (0, 0, 0) };
            let (mut depot, mut in_slabs, mut slabs) = (0, 0, 0);
            for c in 0..t.classes() {
                // SAFETY: the lock is held for this closure.
                depot += unsafe { t.depot(c) }.count;
                for slot in 0..SLABS {
                    let rec = t.record(c, slot);
                    if rec.base.load(Ordering::Relaxed) != 0 {
                        slabs += 1;
                        in_slabs += rec.in_slab.load(Ordering::Relaxed).count_ones() as usize;
                    }
                }
            }
            (depot, in_slabs, slabs)
        });
        let s = &self.stats;
        QCacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            depot_magazines: depot,
            slabs,
            objects_in_slabs: cached_in_slabs,
            reclaims: s.reclaims.load(Ordering::Relaxed),
            slabs_created: s.slabs_created.load(Ordering::Relaxed),
            slabs_freed: s.slabs_freed.load(Ordering::Relaxed),
            slab_collisions: s.slab_collisions.load(Ordering::Relaxed),
        }
    }

    /// Verify the arena's invariants and the caches': every slab is a live
    /// arena allocation of its class's slab size, and no object is both in
    /// its slab and live.
    pub fn check(&self) -> Result<(), ArenaError> {
        self.with_all(|arena, tables| {
            arena.check()?;
            let Some(t) = tables else { return Ok(()) };
            for c in 0..t.classes() {
                let k = t.class(c);
                for slot in 0..SLABS {
                    let rec = t.record(c, slot);
                    let base = rec.base.load(Ordering::Relaxed);
                    let in_slab = rec.in_slab.load(Ordering::Relaxed);
                    let live = (0..OBJECTS)
                        .filter(|&i| rec.live[i].load(Ordering::Relaxed) != 0)
                        .fold(0u64, |m, i| m | 1 << i);
                    let corrupt = |what| Err(ArenaError::Corrupt { what, tag: slot as u32 });
                    if base == 0 {
                        if in_slab != 0 || live != 0 {
                            return corrupt("unused slab record has objects");
                        }
                        continue;
                    }
                    if t.slot_for(c, base) != slot || base % k.slab_align() != 0 {
                        return corrupt("slab record in the wrong slot or misaligned");
                    }
                    if arena.lookup(Addr(base)).map(|(r, _)| r)
                        != Range::from_size(Addr(base), Size(k.slab_bytes())).ok()
                    {
                        return corrupt("slab is not a live arena allocation of its size");
                    }
                    if in_slab & live != 0 {
                        return corrupt("object both in its slab and live");
                    }
                }
            }
            Ok(())
        })
    }

    /// Take the arena back out (the caches must be reclaimed and handles
    /// dropped first, or their slabs stay allocated in it).
    pub fn into_inner(self) -> Arena<S, I> {
        self.arena.into_inner()
    }
}

/// Put cached addresses of class `c` back into their slabs' `in_slab` bits.
/// Called with the lock held.
pub(crate) fn return_to_slabs<S: Store>(t: &Tables<S>, c: usize, addrs: &[usize]) {
    for &a in addrs {
        if let Some((rec, i)) = t.find(c, a) {
            rec.in_slab.fetch_or(1 << i, Ordering::Relaxed);
        }
    }
}

/// A shared arena is a source for arenas on any thread: imports are
/// instant-fit constrained allocations that do not wait, give-backs frees.
impl<L: RawLock, W: Waiter, S: Store, I: Source> Source for &SyncArena<L, W, S, I> {
    fn quantum(&self) -> Size {
        self.with(|a| a.quantum())
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let a = self.xalloc(&Constraints::new(size).align(align), Wait::No)?;
        Ok(Range::from_size(a, size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.free(range.base(), range.size())
    }
}
