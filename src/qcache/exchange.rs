//! The locked half of the magazine layer, shared by [`CacheHandle`] and
//! [`CpuCaches`]: exchanging whole magazines with the depot and the slabs
//! under the arena lock, and adding a cache's counters to the arena's.
//!
//! [`CacheHandle`]: super::CacheHandle
//! [`CpuCaches`]: super::CpuCaches

use core::sync::atomic::Ordering;

use vmspace_shim::{Addr, Size};

use super::magazine::Magazine;
use super::pair::{claim, MagPair};
use super::slab::{Tables, OBJECTS, SLABS};
use crate::arena::{Arena, Constraints, Source, Store};
use crate::sync::arena::{return_to_slabs, SharedStats};
use crate::sync::{RawLock, SyncArena, Waiter};

/// A cache's own hit and miss counts, added to the arena's now and then
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

    /// Count a miss, and add the counts to the arena's.
    #[inline]
    pub(crate) fn miss(&mut self, stats: &SharedStats) {
        self.misses += 1;
        self.fold(stats);
    }

    /// Add the counts to the arena's, zeroing them.
    pub(crate) fn fold(&mut self, stats: &SharedStats) {
        stats.hits.fetch_add(core::mem::take(&mut self.hits), Ordering::Relaxed);
        stats.misses.fetch_add(core::mem::take(&mut self.misses), Ordering::Relaxed);
    }
}

/// Flush one cache's magazines (`pairs[c]` of class `c`) to the depot or
/// the slabs under one taking of the lock, and add its counters to the
/// arena's. The caller must not be pinned.
pub(crate) fn flush<L: RawLock, W: Waiter, S: Store, I: Source>(
    arena: &SyncArena<L, W, S, I>,
    counters: &mut Counters,
    pairs: &mut [MagPair],
) {
    counters.fold(&arena.stats);
    let pairs = pairs.iter_mut().enumerate();
    give_back(arena, pairs.flat_map(|(c, p)| p.take().map(|m| (c, m))));
}

/// Both magazines of class `c` were empty: take a full magazine from the
/// depot, or fill one from slabs (importing a new slab if needed; after a
/// reclaim, once more, when nothing could be had), and hand one of its
/// objects out. Returns that object, marked live, and the rest of the
/// magazine. Takes the lock; the caller must not be pinned.
pub(crate) fn refill<L: RawLock, W: Waiter, S: Store, I: Source>(
    arena: &SyncArena<L, W, S, I>,
    c: usize,
) -> Option<(Addr, Magazine)> {
    let attempt = |from_depot: bool| {
        arena.with_all(|a, tables| {
            let t = tables?;
            let mut mag = Magazine::EMPTY;
            // SAFETY: the lock is held for this closure.
            let depot = unsafe { t.depot(c) };
            if from_depot && depot.count > 0 {
                depot.count -= 1;
                mag = depot.mags[depot.count];
            } else {
                fill_from_slabs(a, t, c, &mut mag, &arena.stats);
            }
            let addr = claim(t, c, mag.pop()?)?;
            Some((addr, mag))
        })
    };
    match attempt(true) {
        // Slabs of other classes went back; one more try.
        None if arena.reclaim() > 0 => attempt(false),
        got => got,
    }
}

/// Hand magazines, each with its class, to the depot or the slabs (see
/// [`to_depot_or_slabs`]), under one taking of the lock; empty ones are
/// skipped. The caller must not be pinned.
pub(crate) fn give_back<L: RawLock, W: Waiter, S: Store, I: Source>(
    arena: &SyncArena<L, W, S, I>,
    mags: impl IntoIterator<Item = (usize, Magazine)>,
) {
    arena.with_all(|_, tables| {
        if let Some(t) = tables {
            for (c, m) in mags.into_iter().filter(|(_, m)| !m.is_empty()) {
                to_depot_or_slabs(t, c, &m);
            }
        }
    });
}

/// Put magazine `m` of class `c` in the depot if it is full and there is
/// room, else its objects back in their slabs. Lock held.
pub(crate) fn to_depot_or_slabs<S: Store>(t: &Tables<S>, c: usize, m: &Magazine) {
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
    stats: &SharedStats,
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
