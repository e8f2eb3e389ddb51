//! [`Locked`]: the half of the quantum-cache protocol that runs under the
//! arena lock: exchanging magazines with the depot, filling them from slabs
//! and importing new slabs, returning objects to their slabs, reclaiming,
//! statistics and `check()`.

use crate::atomic::Ordering;

use vmspace_shim::{Addr, Range, Size};

use super::cache::{Counters, QCache};
use super::cpumags::CpuMags;
use super::magazine::Magazine;
use super::pair::MagPair;
use super::slab::{SlabRecord, OBJECTS, SLABS};
use super::QCacheStats;
use crate::arena::{Arena, ArenaError, Constraints, Handle, Source, Store};

/// A [`QCache`] and its arena with the arena lock held.
///
/// # Invariants
///
/// The lock that guards `arena` and the cache's depots is held for as long
/// as this value lives, and every `Locked` of the cache is made under it.
pub(crate) struct Locked<'a, S: Store, I: Source> {
    cache: &'a QCache<S>,
    arena: &'a mut Arena<S, I>,
}

impl<'a, S: Store, I: Source> Locked<'a, S, I> {
    /// The locked half of `cache`, whose arena is `arena`.
    ///
    /// # Safety
    ///
    /// The caller holds the lock that guards `arena` and the cache's depots
    /// for as long as the result lives, and every other `Locked` of this
    /// cache is made under that same lock.
    pub(crate) unsafe fn new(cache: &'a QCache<S>, arena: &'a mut Arena<S, I>) -> Self {
        // INVARIANT: the caller holds the lock (this function's contract).
        Locked { cache, arena }
    }

    /// Both magazines of class `c` were empty: take a full magazine from the
    /// depot, or fill one from slabs (importing a new slab if needed), and
    /// hand one of its objects to a client that asked for `size`. Returns
    /// that object, marked live, and the rest of the magazine; `None` when
    /// nothing could be had.
    pub(crate) fn refill(&mut self, c: usize, size: Size) -> Option<(Addr, Magazine)> {
        let mut mag = self.take_magazine(c, true);
        let addr = self.cache.claim(c, mag.pop()?, size)?;
        Some((addr, mag))
    }

    /// An object of class `c` for a client that asked for `size` and has no
    /// magazines (a caller the pin cannot place): from one full magazine of
    /// the depot, else from the objects free in slabs, never from a new
    /// slab; the rest of the magazine goes back to the slabs under the same
    /// lock (so no other caller finds the caches empty meanwhile). Returns
    /// the object, marked live; `None` when the caches hold none.
    pub(crate) fn take_cached(&mut self, c: usize, size: Size) -> Option<Addr> {
        let mut mag = self.take_magazine(c, false);
        let addr = mag.pop().and_then(|a| self.cache.claim(c, a, size));
        self.give_back(c, &mag);
        addr
    }

    /// A magazine of class `c`: a full one from the depot, else one filled
    /// from the objects free in slabs, else (`new_slab`) from a slab
    /// imported for it; empty when none could be had.
    fn take_magazine(&mut self, c: usize, new_slab: bool) -> Magazine {
        // SAFETY: the lock is held (type invariant).
        let depot = unsafe { self.cache.tables.depot(c) };
        let mut mag = Magazine::EMPTY;
        if depot.count > 0 {
            depot.count -= 1;
            mag = depot.mags[depot.count];
        } else if new_slab {
            self.fill_from_slabs(c, &mut mag);
        } else {
            self.fill_from_existing_slabs(c, &mut mag);
        }
        mag
    }

    /// Put magazine `m` of class `c` in the depot if it is full and there is
    /// room, else its objects back in their slabs. Empty magazines change
    /// nothing.
    pub(crate) fn give_back(&mut self, c: usize, m: &Magazine) {
        if m.is_empty() {
            return;
        }
        // SAFETY: the lock is held (type invariant).
        let depot = unsafe { self.cache.tables.depot(c) };
        if m.is_full() && depot.count < depot.mags.len() {
            depot.mags[depot.count] = *m;
            depot.count += 1;
        } else {
            self.return_to_slabs(c, m.rounds());
        }
    }

    /// Empty one cache's magazines (`pairs[c]` of class `c`) into the depot
    /// or the slabs, and add its counters to the shared ones.
    pub(crate) fn flush(&mut self, counters: &mut Counters, pairs: &mut [MagPair]) {
        counters.fold(&self.cache.stats);
        let classes = self.cache.tables.classes();
        for (c, p) in pairs.iter_mut().enumerate().take(classes) {
            for m in p.take() {
                self.give_back(c, &m);
            }
        }
    }

    /// Empty per-CPU magazines (`mags[c * slots + i]` of class `c`, slot
    /// `i`) into the depot or the slabs, and add their hits to the shared
    /// counters.
    pub(crate) fn flush_cpu(&mut self, mags: &mut [CpuMags], slots: usize) {
        let classes = self.cache.tables.classes();
        for (c, class) in mags.chunks_mut(slots.max(1)).enumerate().take(classes) {
            for m in class {
                let (both, hits) = m.take();
                self.cache.stats.hits.fetch_add(hits, Ordering::Relaxed);
                for m in both {
                    self.give_back(c, &m);
                }
            }
        }
    }

    /// Put cached (not live) objects of class `c` back into their slabs.
    pub(crate) fn return_to_slabs(&mut self, c: usize, addrs: &[usize]) {
        for &a in addrs {
            if let Some((rec, i)) = self.cache.tables.find(c, a) {
                rec.in_slab.fetch_or(1 << i, Ordering::Relaxed);
            }
        }
    }

    /// Fill `mag` with objects of class `c` taken from slabs, importing a new
    /// slab from the arena when none has any.
    fn fill_from_slabs(&mut self, c: usize, mag: &mut Magazine) {
        self.fill_from_existing_slabs(c, mag);
        if !mag.is_empty() {
            return;
        }
        let k = self.cache.tables.class(c);
        let Some((slab, rec)) = self.new_slab(c) else { return };
        let base = slab.addr().0;
        let mut bits = u64::MAX;
        while !mag.is_full() {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            mag.push(base + i * k.size);
        }
        rec.in_slab.store(bits, Ordering::Relaxed);
        rec.tag.store(slab.tag(), Ordering::Relaxed);
        rec.set_base(Some(base), Ordering::Release);
        self.cache.stats.slabs_created.fetch_add(1, Ordering::Relaxed);
    }

    /// Fill `mag` with objects of class `c` free in the slabs there are.
    fn fill_from_existing_slabs(&mut self, c: usize, mag: &mut Magazine) {
        let t = &self.cache.tables;
        let k = t.class(c);
        for slot in 0..SLABS {
            let rec = t.record(c, slot);
            let Some(base) = rec.slab_base(Ordering::Relaxed) else { continue };
            let mut bits = rec.in_slab.load(Ordering::Relaxed);
            while bits != 0 && !mag.is_full() {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                mag.push(base + i * k.size);
            }
            rec.in_slab.store(bits, Ordering::Relaxed);
            if mag.is_full() {
                return;
            }
        }
    }

    /// A new slab of class `c` from the arena and the record it takes, or
    /// `None` (no space, or no record for it).
    ///
    /// The slab is held by handle (so no by-address free reaches it) and
    /// aligned so its objects find it by masking; its record is the one its
    /// address maps to. When that record is taken, a slab is placed instead
    /// where a free record maps (aligned to the records' period, with the
    /// free record's phase); only when that fails too is the collision
    /// counted and the caller left to fall back to the arena.
    fn new_slab(&mut self, c: usize) -> Option<(Handle, &'a SlabRecord)> {
        let cache = self.cache;
        let t = &cache.tables;
        let k = t.class(c);
        let want = Constraints::new(Size(k.slab_bytes())).align(Size(k.slab_align()));
        if let Some(got) = self.slab_at(c, &want).ok()? {
            return Some(got);
        }
        let free = (0..SLABS).find(|&s| t.record(c, s).slab_base(Ordering::Relaxed).is_none());
        let placed = free.and_then(|s| {
            let period = k.slab_align().checked_mul(SLABS)?;
            let on = want.align(Size(period)).phase(Size(s * k.slab_align()));
            self.slab_at(c, &on).ok().flatten()
        });
        if placed.is_none() {
            self.cache.stats.slab_collisions.fetch_add(1, Ordering::Relaxed);
        }
        placed
    }

    /// A slab of class `c` allocated under `want`, with its record; `None`
    /// (the slab given back) when that record is taken.
    fn slab_at(
        &mut self,
        c: usize,
        want: &Constraints,
    ) -> Result<Option<(Handle, &'a SlabRecord)>, ArenaError> {
        let cache = self.cache;
        let t = &cache.tables;
        let slab = self.arena.xalloc_handle(want)?;
        let rec = t.record(c, t.slot_for(c, slab.addr().0));
        if rec.slab_base(Ordering::Relaxed).is_some() {
            let _ = self.arena.free_handle(slab);
            return Ok(None);
        }
        Ok(Some((slab, rec)))
    }

    /// Give everything the depots hold back to the slabs, and every wholly
    /// free slab back to the arena. Magazines held by caches in front of the
    /// depot are not reachable. Returns the number of slabs freed.
    pub(crate) fn reclaim(&mut self) -> usize {
        let t = &self.cache.tables;
        let mut freed = 0;
        for c in 0..t.classes() {
            // SAFETY: the lock is held (type invariant).
            let depot = unsafe { t.depot(c) };
            let count = core::mem::take(&mut depot.count);
            for i in 0..count {
                let m = depot.mags[i];
                self.return_to_slabs(c, m.rounds());
            }
            for slot in 0..SLABS {
                let rec = t.record(c, slot);
                let Some(base) = rec.slab_base(Ordering::Relaxed) else { continue };
                if rec.in_slab.load(Ordering::Relaxed) != u64::MAX {
                    continue;
                }
                let tag = rec.tag.load(Ordering::Relaxed);
                let Some(handle) = self.arena.handle_from_parts(Addr(base), tag) else { continue };
                // Forget the slab before the free: the free may give its
                // span back to a source that panics, and a record left
                // behind would hand out objects of a range the arena holds
                // free. None of its objects is out (all are in the slab),
                // so no free can be looking for it.
                rec.in_slab.store(0, Ordering::Relaxed);
                rec.tag.store(0, Ordering::Relaxed);
                rec.set_base(None, Ordering::Release);
                if self.arena.free_handle(handle).is_ok() {
                    freed += 1;
                } else {
                    // Still the arena's allocation: listed again, as made.
                    rec.in_slab.store(u64::MAX, Ordering::Relaxed);
                    rec.tag.store(tag, Ordering::Relaxed);
                    rec.set_base(Some(base), Ordering::Release);
                }
            }
        }
        let stats = &self.cache.stats;
        stats.reclaims.fetch_add(1, Ordering::Relaxed);
        stats.slabs_freed.fetch_add(freed as u64, Ordering::Relaxed);
        freed
    }

    /// Return the object `addr` of class `c`, just unclaimed by a free that
    /// does not cache it, to its slab.
    pub(crate) fn return_object(&mut self, c: usize, addr: Addr) {
        self.return_to_slabs(c, &[addr.0]);
    }

    /// The caches' statistics.
    pub(crate) fn stats(&mut self) -> QCacheStats {
        let t = &self.cache.tables;
        let (mut depot, mut in_slabs, mut slabs) = (0, 0, 0);
        for c in 0..t.classes() {
            // SAFETY: the lock is held (type invariant).
            depot += unsafe { t.depot(c) }.count;
            for slot in 0..SLABS {
                let rec = t.record(c, slot);
                if rec.slab_base(Ordering::Relaxed).is_some() {
                    slabs += 1;
                    in_slabs += rec.in_slab.load(Ordering::Relaxed).count_ones() as usize;
                }
            }
        }
        let s = &self.cache.stats;
        QCacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            bad_frees: s.bad_frees.load(Ordering::Relaxed),
            depot_magazines: depot,
            slabs,
            objects_in_slabs: in_slabs,
            reclaims: s.reclaims.load(Ordering::Relaxed),
            slabs_created: s.slabs_created.load(Ordering::Relaxed),
            slabs_freed: s.slabs_freed.load(Ordering::Relaxed),
            slab_collisions: s.slab_collisions.load(Ordering::Relaxed),
        }
    }

    /// Verify the caches against the arena: every registered slab is a live
    /// held allocation of its class's slab size at an aligned base, in the
    /// slot its base maps to; no object is both in its slab and live, and
    /// every live object's size is in its class; unused records are empty;
    /// every depot magazine is full and holds cached objects of its class.
    pub(crate) fn check(&mut self) -> Result<(), ArenaError> {
        let t = &self.cache.tables;
        for c in 0..t.classes() {
            let k = t.class(c);
            let lowest = k.size - t.class(0).size + 1;
            for slot in 0..SLABS {
                let rec = t.record(c, slot);
                let corrupt = |what| Err(ArenaError::Corrupt { what, tag: slot as u32 });
                let in_slab = rec.in_slab.load(Ordering::Relaxed);
                let live = rec.live_mask();
                let Some(base) = rec.slab_base(Ordering::Relaxed) else {
                    if in_slab != 0 || live != 0 {
                        return corrupt("unused slab record has objects");
                    }
                    continue;
                };
                if t.slot_for(c, base) != slot || base % k.slab_align() != 0 {
                    return corrupt("slab record in the wrong slot or misaligned");
                }
                let held =
                    self.arena.handle_from_parts(Addr(base), rec.tag.load(Ordering::Relaxed));
                let slab = Range::from_size(Addr(base), Size(k.slab_bytes())).ok();
                if held.and_then(|h| self.arena.lookup_handle(h)).map(|(r, _)| r) != slab {
                    return corrupt("slab is not a held arena allocation of its size");
                }
                if in_slab & live != 0 {
                    return corrupt("object both in its slab and live");
                }
                let sizes_ok = (0..OBJECTS).all(|i| {
                    let s = rec.live[i].load(Ordering::Relaxed) as usize;
                    s == 0 || (lowest..=k.size).contains(&s)
                });
                if !sizes_ok {
                    return corrupt("live object's size is outside its class");
                }
            }
            // SAFETY: the lock is held (type invariant).
            let depot = unsafe { t.depot(c) };
            for m in &depot.mags[..depot.count] {
                let cached = m.rounds().iter().all(|&a| {
                    t.find(c, a).is_some_and(|(rec, i)| {
                        rec.live[i].load(Ordering::Relaxed) == 0
                            && rec.in_slab.load(Ordering::Relaxed) & 1 << i == 0
                    })
                });
                if !m.is_full() || !cached {
                    return Err(ArenaError::Corrupt { what: "depot magazine", tag: c as u32 });
                }
            }
        }
        Ok(())
    }
}
