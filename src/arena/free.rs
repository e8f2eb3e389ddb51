//! Freeing: checking the caller's claim, coalescing, giving spans back.

use vmspace_shim::{Addr, Size};

use super::source::Source;
use super::store::Store;
use super::tag::{Tag, K_FREE, K_SPAN};
use super::{Arena, ArenaError};

impl<S: Store, I: Source> Arena<S, I> {
    /// Free the allocation at `addr`, which must be live and have been
    /// allocated with exactly `size`. A bad free returns
    /// [`ArenaError::BadFree`] and changes nothing (but the counters: the
    /// bad-free counter, and the lookup it made).
    /// A wholly free imported span goes back to the source; if the source
    /// refuses, the span stays, free, and the free still succeeds (if it
    /// says the span is [`Stranded`](ArenaError::Stranded), the span is
    /// dropped instead, left with the source).
    #[inline]
    pub fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let (i, t) = self.take_live(addr, size)?;
        self.free_segment(i, &t);
        Ok(())
    }

    /// Check a free's claim (the allocation at `addr`, live, made by
    /// address with exactly `size`) and take it off the hash. Returns its
    /// tag index and the tag. A bad claim is counted and changes nothing.
    #[inline(always)]
    pub(crate) fn take_live(&mut self, addr: Addr, size: Size) -> Result<(u32, Tag), ArenaError> {
        self.counters.lookups += 1;
        let found = self.hash.find(&self.tags, addr.0, &mut self.counters.search_steps);
        let Some(found) = found else {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree { addr, size, allocated: None });
        };
        let i = found.tag;
        let t = *self.tags.get(i);
        let asked = t.requested();
        if asked != size.0 {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree { addr, size, allocated: Some(Size(asked)) });
        }
        self.hash.remove(&mut self.tags, found);
        Ok((i, t))
    }

    /// Free allocated segment `i` (whose tag reads `t`), already off the
    /// hash or the held count: coalesce it, list the survivor, and give a
    /// wholly free imported span back. (Inlined into both frees: as a call
    /// it cost about 30 instructions a free+alloc pair in the churn bench.)
    #[inline(always)]
    pub(crate) fn free_segment(&mut self, i: u32, t: &Tag) {
        self.sizes.allocated.0 -= t.size();
        self.counters.frees += 1;
        self.make_free(i, t.size());
    }

    /// Make segment `i` (of `size`, neither free nor listed anywhere, its
    /// size already taken off its old kind's total) free: coalesce it, list
    /// the survivor, and give a wholly free imported span back.
    #[inline(always)]
    pub(crate) fn make_free(&mut self, i: u32, size: usize) {
        self.sizes.free.0 += size;
        self.tags.get_mut(i).set_kind(K_FREE);
        let f = self.coalesce_and_list(i);
        // Only an arena holding imports can have a wholly free imported
        // span; the others skip reading the tag before the survivor (a cache
        // miss in a big arena).
        if self.sizes.imported.0 != 0 {
            // While spans are held (a panic noted, or the source busy), a
            // span this free empties joins them: the walk offers them all,
            // now or on its schedule, and none twice in one free.
            let held = self.held_back;
            let ft = *self.tags.get(f);
            let m = *self.tags.get(ft.aprev);
            if !held && m.kind() == K_SPAN && m.imported() && m.start == ft.start && m.end == ft.end
            {
                self.destroy_free_span(f);
            }
            if held && self.retry_held_now() {
                self.give_back_held();
            }
        }
    }

    /// Count a bad free that a layer in front of the arena refused before
    /// the arena saw it (a handle naming a quantum cache's slab, or parts
    /// naming no handle), under the same lock.
    pub(crate) fn count_bad_free(&mut self) {
        self.counters.bad_frees += 1;
    }

    /// Take back the count of the bad free just refused, which a layer in
    /// front of the arena (the quantum caches) counts as its own. Called
    /// in the same critical section as the refused free, so no one sees
    /// the counter go down.
    pub(crate) fn reattribute_bad_free(&mut self) {
        self.counters.bad_frees = self.counters.bad_frees.saturating_sub(1);
    }

    /// vmem's name for [`free`](Self::free) of an [`xalloc`](Self::xalloc)
    /// result; the same operation here.
    pub fn xfree(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        self.free(addr, size)
    }

    /// Merge the unlisted free segment `i` with the free segments beside it
    /// (span markers stop it: never across spans) and put the survivor on
    /// its free list. Returns the survivor.
    ///
    /// A free neighbour absorbs `i` in place and keeps its tag and its list
    /// position unless its size class changes: most frees then touch no
    /// other free-list member (each would be a cache miss in a big arena).
    #[inline(always)]
    pub(crate) fn coalesce_and_list(&mut self, i: u32) -> u32 {
        let t = *self.tags.get(i);
        let (p, n) = (t.aprev, t.anext);
        let (pt, nt) = (*self.tags.get(p), *self.tags.get(n));
        let prev_free = pt.kind() == K_FREE;
        let next_free = nt.kind() == K_FREE;
        if !(prev_free || next_free) {
            self.lists.insert(self.tags.all_mut(), i);
            return i;
        }
        // One path for either free neighbour (the survivor and its bounds
        // are selects), plus the next one's removal when both are free.
        let survivor = if prev_free { p } else { n };
        let start = if prev_free { pt.start } else { t.start };
        let end = if next_free { nt.end } else { t.end };
        if prev_free && next_free {
            self.lists.remove(self.tags.all_mut(), n);
            self.unlink_release(n);
        }
        self.unlink_release(i);
        self.lists.resize(self.tags.all_mut(), survivor, start, end);
        survivor
    }
}
