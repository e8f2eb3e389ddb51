//! Freeing: checking the caller's claim, coalescing, giving spans back.

use vmspace_shim::{Addr, Size};

use super::source::Source;
use super::store::Store;
use super::tag::{K_FREE, K_SPAN};
use super::{Arena, ArenaError};

impl<S: Store, I: Source> Arena<S, I> {
    /// Free the allocation at `addr`, which must be live and have been
    /// allocated with exactly `size`. A bad free returns
    /// [`ArenaError::BadFree`] and changes nothing (but the bad-free counter).
    /// A wholly free imported span goes back to the source; if the source
    /// refuses, the span stays, free, and the free still succeeds.
    pub fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        self.counters.lookups += 1;
        let found = self.hash.find(&self.tags, addr.0, &mut self.counters.search_steps);
        let Some((i, prev)) = found else {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree { addr, size, allocated: None });
        };
        let t = *self.tags.get(i);
        let asked = t.size() - t.kprev() as usize;
        if asked != size.0 {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree { addr, size, allocated: Some(Size(asked)) });
        }
        self.hash.remove(&mut self.tags, i, prev);
        self.sizes.allocated.0 -= t.size();
        self.sizes.free.0 += t.size();
        self.counters.frees += 1;
        self.tags.get_mut(i).set_kind(K_FREE);
        let f = self.coalesce(i);
        self.lists.insert(&mut self.tags, f);
        let ft = *self.tags.get(f);
        let m = *self.tags.get(ft.aprev);
        if m.kind() == K_SPAN && m.imported() && m.start == ft.start && m.end == ft.end {
            self.destroy_free_span(f);
        }
        Ok(())
    }

    /// vmem's name for [`free`](Self::free) of an [`xalloc`](Self::xalloc)
    /// result; the same operation here.
    pub fn xfree(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        self.free(addr, size)
    }

    /// Merge the unlisted free segment `i` with the free segments beside it
    /// (span markers stop it: never across spans). Returns the survivor, not
    /// yet on a free list.
    pub(crate) fn coalesce(&mut self, i: u32) -> u32 {
        let next = self.tags.get(i).anext;
        if self.tags.get(next).kind() == K_FREE {
            self.lists.remove(&mut self.tags, next);
            self.tags.get_mut(i).end = self.tags.get(next).end;
            self.unlink_release(next);
        }
        let prev = self.tags.get(i).aprev;
        if self.tags.get(prev).kind() == K_FREE {
            self.lists.remove(&mut self.tags, prev);
            self.tags.get_mut(prev).end = self.tags.get(i).end;
            self.unlink_release(i);
            return prev;
        }
        i
    }
}
