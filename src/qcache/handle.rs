//! A thread's handle on the quantum caches: two magazines per class, used
//! without the lock.

use core::sync::atomic::Ordering;

use vmspace_shim::{Addr, Size};

use super::magazine::Magazine;
use super::slab::{Tables, MAX_CLASSES, OBJECTS, SLABS};
use crate::arena::{Arena, ArenaError, Constraints, Policy, Source, Store};
use crate::sync::arena::return_to_slabs;
use crate::sync::{RawLock, SyncArena, Wait, Waiter};

/// One thread's (or, in the kernel, one CPU's) quantum-cache magazines for a
/// [`SyncArena`].
///
/// Allocations and frees of sizes up to [`SyncArena::qcache_max`] are served
/// from the handle's magazines without the arena lock: a hit is a pop or push
/// and a flag store in the object's slab record. When both magazines of a
/// class are empty (or full), the handle exchanges one with the depot under
/// the lock, refilling from slabs, and from new slabs imported from the
/// arena, when the depot has none. Frees are checked: freeing an object that
/// is not live is [`ArenaError::BadFree`] and changes nothing. Larger sizes
/// go straight to the arena. Dropping the handle flushes its magazines.
///
/// # Invariants
///
/// Every address in `loaded[c]` and `previous[c]` is a cached object of
/// class `c`: in a registered slab, neither live nor in its slab.
pub struct CacheHandle<'a, L: RawLock, W: Waiter, S: Store, I: Source> {
    arena: &'a SyncArena<L, W, S, I>,
    loaded: [Magazine; MAX_CLASSES],
    previous: [Magazine; MAX_CLASSES],
    hits: u64,
    misses: u64,
}

impl<'a, L: RawLock, W: Waiter, S: Store, I: Source> CacheHandle<'a, L, W, S, I> {
    /// A handle with empty magazines.
    pub fn new(arena: &'a SyncArena<L, W, S, I>) -> Self {
        CacheHandle {
            arena,
            loaded: [Magazine::EMPTY; MAX_CLASSES],
            previous: [Magazine::EMPTY; MAX_CLASSES],
            hits: 0,
            misses: 0,
        }
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
    /// caches nor the arena have any.
    #[inline]
    pub fn alloc_wait(&mut self, size: Size, wait: Wait) -> Result<Addr, ArenaError> {
        if let Some((c, t)) =
            self.arena.tables.as_ref().and_then(|t| Some((t.class_of(size.0)?, t)))
        {
            if let Some(a) = self.pop(c) {
                if let Some((rec, i)) = t.find(c, a) {
                    rec.live[i].store(1, Ordering::Relaxed);
                    self.hits += 1;
                    return Ok(Addr(a));
                }
            }
            self.misses += 1;
            if let Some(a) = self.refill(c) {
                return Ok(a);
            }
        }
        self.arena.alloc(size, Policy::InstantFit, wait)
    }

    #[inline]
    fn pop(&mut self, c: usize) -> Option<usize> {
        if let Some(a) = self.loaded[c].pop() {
            return Some(a);
        }
        if self.previous[c].is_empty() {
            return None;
        }
        core::mem::swap(&mut self.loaded[c], &mut self.previous[c]);
        self.loaded[c].pop()
    }

    /// Both magazines of class `c` are empty: take a full one from the depot,
    /// or fill one from slabs (importing a new slab if needed), and allocate
    /// from it. `None` when no slab can be had.
    fn refill(&mut self, c: usize) -> Option<Addr> {
        let arena = self.arena;
        let (hits, misses) = (core::mem::take(&mut self.hits), core::mem::take(&mut self.misses));
        arena.stats.hits.fetch_add(hits, Ordering::Relaxed);
        arena.stats.misses.fetch_add(misses, Ordering::Relaxed);
        let mag = &mut self.loaded[c];
        let got = arena.with_all(|a, tables| {
            let t = tables?;
            // SAFETY: the lock is held for this closure.
            let depot = unsafe { t.depot(c) };
            if depot.count > 0 {
                depot.count -= 1;
                *mag = depot.mags[depot.count];
            } else {
                fill_from_slabs(a, t, c, mag, &arena.stats);
            }
            let addr = mag.pop()?;
            let (rec, i) = t.find(c, addr)?;
            rec.live[i].store(1, Ordering::Relaxed);
            Some(Addr(addr))
        });
        if got.is_none() && arena.reclaim() > 0 {
            // Slabs of other classes went back; one more try.
            return self.refill_once_more(c);
        }
        got
    }

    fn refill_once_more(&mut self, c: usize) -> Option<Addr> {
        let arena = self.arena;
        let mag = &mut self.loaded[c];
        arena.with_all(|a, tables| {
            let t = tables?;
            fill_from_slabs(a, t, c, mag, &arena.stats);
            let addr = mag.pop()?;
            let (rec, i) = t.find(c, addr)?;
            rec.live[i].store(1, Ordering::Relaxed);
            Some(Addr(addr))
        })
    }

    /// Free `[addr, addr + size)`. Cached objects go into a magazine; a bad
    /// free is an error and changes nothing.
    #[inline]
    pub fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let found = self.arena.tables.as_ref().and_then(|t| {
            let c = t.class_of(size.0)?;
            t.find(c, addr.0).map(|(rec, i)| (c, rec, i))
        });
        let Some((c, rec, i)) = found else {
            return self.arena.free(addr, size);
        };
        if rec.live[i].load(Ordering::Relaxed) == 0 {
            return Err(ArenaError::BadFree { addr, size, allocated: None });
        }
        rec.live[i].store(0, Ordering::Relaxed);
        if self.loaded[c].push(addr.0) {
            return Ok(());
        }
        if self.previous[c].is_empty() {
            core::mem::swap(&mut self.loaded[c], &mut self.previous[c]);
        } else {
            self.spill(c);
        }
        self.loaded[c].push(addr.0);
        Ok(())
    }

    /// Both magazines of class `c` are full: hand `previous` to the depot
    /// (or back to the slabs when the depot is full), and make the full
    /// `loaded` the new `previous`.
    fn spill(&mut self, c: usize) {
        let arena = self.arena;
        let full = self.previous[c];
        arena.with_all(|_, tables| {
            if let Some(t) = tables {
                to_depot_or_slabs(t, c, &full);
            }
        });
        self.previous[c] = self.loaded[c];
        self.loaded[c].clear();
    }

    /// Hand every cached object back to the depot or the slabs.
    pub fn flush(&mut self) {
        let arena = self.arena;
        arena.stats.hits.fetch_add(core::mem::take(&mut self.hits), Ordering::Relaxed);
        arena.stats.misses.fetch_add(core::mem::take(&mut self.misses), Ordering::Relaxed);
        let (loaded, previous) = (&mut self.loaded, &mut self.previous);
        arena.with_all(|_, tables| {
            let Some(t) = tables else { return };
            for c in 0..t.classes() {
                for m in [&mut loaded[c], &mut previous[c]] {
                    if !m.is_empty() {
                        to_depot_or_slabs(t, c, m);
                        m.clear();
                    }
                }
            }
        });
        arena.freed();
    }
}

impl<L: RawLock, W: Waiter, S: Store, I: Source> Drop for CacheHandle<'_, L, W, S, I> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Put magazine `m` of class `c` in the depot if it is full and there is
/// room, else its objects back in their slabs. Lock held.
fn to_depot_or_slabs<S: Store>(t: &Tables<S>, c: usize, m: &Magazine) {
    // SAFETY: callers hold the lock.
    let depot = unsafe { t.depot(c) };
    if m.is_full() && depot.count < depot.mags.len() {
        depot.mags[depot.count] = *m;
        depot.count += 1;
    } else {
        return_to_slabs(t, c, m.rounds());
    }
}

/// Fill `mag` with objects of class `c` taken from slabs, importing a new
/// slab from the arena when none has any. Lock held.
fn fill_from_slabs<S: Store, I: Source>(
    arena: &mut Arena<S, I>,
    t: &Tables<S>,
    c: usize,
    mag: &mut Magazine,
    stats: &crate::sync::arena::SharedStats,
) {
    let k = t.class(c);
    for slot in 0..SLABS {
        let rec = t.record(c, slot);
        let base = rec.base.load(Ordering::Relaxed);
        let mut bits = rec.in_slab.load(Ordering::Relaxed);
        while base != 0 && bits != 0 && !mag.is_full() {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            mag.push(base + i * k.size);
        }
        rec.in_slab.store(if base != 0 { bits } else { 0 }, Ordering::Relaxed);
        if mag.is_full() {
            return;
        }
    }
    if !mag.is_empty() {
        return;
    }
    // A new slab, aligned so its objects find it by masking.
    let want = Constraints::new(Size(k.slab_bytes())).align(Size(k.slab_align()));
    let Ok(base) = arena.xalloc(&want) else { return };
    let rec = t.record(c, t.slot_for(c, base.0));
    if rec.base.load(Ordering::Relaxed) != 0 {
        // The slot is taken: give the slab back; the caller falls back to
        // the arena for this allocation.
        let _ = arena.free(base, Size(k.slab_bytes()));
        stats.slab_collisions.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut bits = u64::MAX;
    for i in 0..OBJECTS {
        rec.live[i].store(0, Ordering::Relaxed);
    }
    while !mag.is_full() {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        mag.push(base.0 + i * k.size);
    }
    rec.in_slab.store(bits, Ordering::Relaxed);
    rec.base.store(base.0, Ordering::Release);
    stats.slabs_created.fetch_add(1, Ordering::Relaxed);
}
