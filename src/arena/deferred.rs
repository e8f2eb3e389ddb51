//! Deferred frees: the freed-but-not-flushed state.
//!
//! An arena over address space that is unmapped without an immediate TLB
//! flush (vmalloc's lazy purge, the kernel backend's batched unmaps) must not
//! hand a range out again before the flush: another CPU may still reach the
//! old pages through a stale TLB entry, and a new mapping at the same address
//! would not be seen coherently (the BPF arena once lost data this way).
//! [`Arena::free_deferred`] checks a free like [`Arena::free`] but leaves the
//! segment *unflushed*: on no free list, in no hash, not coalesced, its span
//! not given back; [`Arena::flushed`], called once the caller has flushed,
//! makes every unflushed segment free at once (coalescing, and giving wholly
//! free imported spans back). The arena does no flushing itself: it only
//! keeps the promise that nothing unflushed is reissued.

use vmspace_shim::{Addr, Size};

use super::source::Source;
use super::store::Store;
use super::tag::{HEAD, K_SPAN, K_UNFLUSHED, NIL};
use super::{Arena, ArenaError, Handle};

impl<S: Store, I: Source> Arena<S, I> {
    /// Free the allocation at `addr` (live, allocated with exactly `size`,
    /// by address) into the *freed-but-not-flushed* state: checked as
    /// [`free`](Self::free) checks (a bad free is
    /// [`BadFree`](ArenaError::BadFree) and changes nothing), but the range
    /// is not allocatable again, nor coalesced, nor its span given back,
    /// until [`flushed`](Self::flushed). It shows in
    /// [`walk`](Self::walk) as [`SegmentKind::Unflushed`](super::SegmentKind::Unflushed)
    /// and in [`sizes`](Self::sizes)`.unflushed`.
    pub fn free_deferred(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        let (i, t) = self.take_live(addr, size)?;
        self.defer(i, t.size());
        Ok(())
    }

    /// [`free_handle`](Self::free_handle) into the freed-but-not-flushed
    /// state, as [`free_deferred`](Self::free_deferred) is to
    /// [`free`](Self::free): checked as `free_handle` checks (a handle that
    /// holds no live allocation of this arena is
    /// [`BadHandle`](ArenaError::BadHandle) and changes nothing), and
    /// returns the size the allocation was made with; the range waits for
    /// [`flushed`](Self::flushed).
    pub fn free_handle_deferred(&mut self, handle: Handle) -> Result<Size, ArenaError> {
        let t = self.take_held(handle)?;
        self.defer(handle.tag(), t.size());
        Ok(Size(t.requested()))
    }

    /// Whether the span whose marker is `m` holds an unflushed segment (its
    /// segments follow the marker on the address list up to the next
    /// marker).
    pub(crate) fn span_holds_unflushed(&self, m: u32) -> bool {
        if self.unflushed == NIL {
            return false;
        }
        let mut i = self.tags.get(m).anext;
        while i != HEAD {
            let t = self.tags.get(i);
            match t.kind() {
                K_SPAN => return false,
                K_UNFLUSHED => return true,
                _ => i = t.anext,
            }
        }
        false
    }

    /// Put allocated segment `i` of `size` (off the hash, or held and now
    /// uncounted) on the unflushed list.
    fn defer(&mut self, i: u32, size: usize) {
        self.sizes.allocated.0 -= size;
        self.sizes.unflushed.0 += size;
        self.counters.frees += 1;
        self.counters.deferred_frees += 1;
        let head = self.unflushed;
        let u = self.tags.get_mut(i);
        u.set_kind(K_UNFLUSHED);
        u.set_kprev(0);
        u.knext = head;
        self.unflushed = i;
        self.unflushed_count += 1;
    }

    /// The caller has flushed everything it freed with
    /// [`free_deferred`](Self::free_deferred) or
    /// [`free_handle_deferred`](Self::free_handle_deferred) so far: make every unflushed
    /// segment free (coalescing with its neighbours, and giving wholly free
    /// imported spans back to the source). Returns how much became free.
    /// Nothing unflushed is a no-op (returns zero, counts no flush).
    pub fn flushed(&mut self) -> Size {
        let freed = self.sizes.unflushed;
        if self.unflushed == NIL {
            return Size(0);
        }
        self.counters.flushes += 1;
        // One segment off the list at a time, before it is made free: that
        // may give a span back to a source that panics, and what is still
        // listed must then be exactly what is still unflushed.
        while self.unflushed != NIL {
            let i = self.unflushed;
            let t = *self.tags.get(i);
            self.unflushed = t.knext;
            self.unflushed_count -= 1;
            self.tags.get_mut(i).knext = NIL;
            self.sizes.unflushed.0 -= t.size();
            self.make_free(i, t.size());
        }
        freed
    }

    /// Segments freed but not yet flushed.
    pub fn unflushed_segments(&self) -> usize {
        self.unflushed_count
    }

    /// Check the unflushed list against the walk's count and bytes.
    pub(crate) fn check_unflushed(&self, count: usize, bytes: usize) -> Result<(), ArenaError> {
        let bad = |what, tag| Err(ArenaError::Corrupt { what, tag });
        let written = self.tags.all().len();
        let (mut n, mut sum, mut i) = (0usize, 0usize, self.unflushed);
        while i != NIL {
            if i as usize >= written {
                return bad("unflushed-list link out of range", i);
            }
            let t = self.tags.get(i);
            if t.kind() != K_UNFLUSHED {
                return bad("a tag on the unflushed list is not unflushed", i);
            }
            n += 1;
            if n > count {
                return bad("unflushed list longer than the unflushed segments", i);
            }
            sum += t.size();
            i = t.knext;
        }
        if n != count || n != self.unflushed_count || sum != bytes {
            return bad("unflushed list disagrees with the unflushed segments", self.unflushed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use vmspace_shim::{Addr, Range, Size};

    use crate::arena::{
        Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
        Source,
    };

    fn arena<'a>(tb: &'a mut [u8], hb: &'a mut [u8]) -> Arena<SliceStore<'a>, NoSource> {
        let (t, h) = (SliceStore::new(tb), SliceStore::new(hb));
        let mut a = Arena::new("t", Size(16), t, h, NoSource).unwrap();
        a.add(Addr(0x1000), Size(16 * 8)).unwrap();
        a
    }

    #[test]
    fn an_unflushed_range_is_not_reissued_until_flushed() {
        let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
        let mut a = arena(&mut tb, &mut hb);
        let all: Vec<Addr> =
            (0..8).map(|_| a.alloc(Size(16), Policy::InstantFit).unwrap()).collect();
        a.free_deferred(all[3], Size(16)).unwrap();
        a.free_deferred(all[4], Size(16)).unwrap();
        a.check().unwrap();
        assert_eq!(a.sizes().unflushed, Size(32));
        assert_eq!(a.sizes().free, Size(0));
        assert_eq!(a.unflushed_segments(), 2);
        // Every policy and an exact-address request find nothing to take.
        for p in [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit] {
            assert!(matches!(a.alloc(Size(16), p), Err(ArenaError::NoSpace { .. })), "{p:?}");
        }
        let exact = Constraints::new(Size(16)).exact(all[3]);
        assert!(a.xalloc(&exact).is_err());
        // Nor is it live: freeing it again, either way, is a bad free.
        assert!(matches!(a.free(all[3], Size(16)), Err(ArenaError::BadFree { .. })));
        assert!(matches!(a.free_deferred(all[3], Size(16)), Err(ArenaError::BadFree { .. })));
        assert_eq!(a.lookup(all[3]), None);
        let kinds: Vec<_> = a.walk(SegmentKinds::UNFLUSHED).map(|s| (s.kind, s.range)).collect();
        assert_eq!(
            kinds,
            [
                (SegmentKind::Unflushed, Range::from_size(all[3], Size(16)).unwrap()),
                (SegmentKind::Unflushed, Range::from_size(all[4], Size(16)).unwrap()),
            ]
        );
        assert_eq!(a.flushed(), Size(32));
        a.check().unwrap();
        // Coalesced into one free segment, and allocatable again.
        assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
        assert_eq!(a.largest_free(), Size(32));
        assert_eq!(a.xalloc(&Constraints::new(Size(32)).exact(all[3])).unwrap(), all[3]);
        let c = a.counters();
        assert_eq!((c.deferred_frees, c.flushes), (2, 1));
        assert_eq!(a.flushed(), Size(0), "nothing left to flush");
        assert_eq!(a.counters().flushes, 1);
    }

    #[test]
    fn a_bad_deferred_free_changes_nothing() {
        let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
        let mut a = arena(&mut tb, &mut hb);
        let x = a.alloc(Size(20), Policy::InstantFit).unwrap();
        let before = (a.sizes(), a.unflushed_segments());
        let wrong = a.free_deferred(x, Size(32));
        assert_eq!(
            wrong,
            Err(ArenaError::BadFree { addr: x, size: Size(32), allocated: Some(Size(20)) })
        );
        assert!(a.free_deferred(Addr(x.0 + 16), Size(20)).is_err());
        assert!(a.free_deferred(Addr(usize::MAX), Size(usize::MAX)).is_err());
        assert_eq!((a.sizes(), a.unflushed_segments()), before);
        a.check().unwrap();
        a.free_deferred(x, Size(20)).unwrap();
        assert_eq!(a.sizes().unflushed, Size(32));
        a.check().unwrap();
    }

    #[test]
    fn a_held_allocation_is_deferred_by_its_handle_once() {
        let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
        let (mut tb2, mut hb2) = (vec![0u8; 8192], vec![0u8; 1024]);
        let mut a = arena(&mut tb, &mut hb);
        let mut other = arena(&mut tb2, &mut hb2);
        let h = a.alloc_handle(Size(100), Policy::InstantFit).unwrap();
        let theirs = other.alloc_handle(Size(100), Policy::InstantFit).unwrap();
        // Another arena's handle (the same address and tag) is refused.
        assert_eq!((theirs.addr(), theirs.tag()), (h.addr(), h.tag()));
        let before = (a.sizes(), a.counters().bad_frees);
        assert!(matches!(a.free_handle_deferred(theirs), Err(ArenaError::BadHandle { .. })));
        assert_eq!(a.sizes(), before.0);
        assert_eq!(a.counters().bad_frees, before.1 + 1);
        // By address it is not: the allocation is held.
        assert!(a.free_deferred(h.addr(), Size(100)).is_err());
        assert_eq!(a.free_handle_deferred(h), Ok(Size(100)));
        assert_eq!((a.sizes().unflushed, a.live()), (Size(112), 0));
        a.check().unwrap();
        // Stale now, either way; nothing allocates over it before the flush.
        assert!(matches!(a.free_handle_deferred(h), Err(ArenaError::BadHandle { .. })));
        assert!(matches!(a.free_handle(h), Err(ArenaError::BadHandle { .. })));
        assert!(a.xalloc(&Constraints::new(Size(16)).exact(h.addr())).is_err());
        assert_eq!(a.counters().deferred_frees, 1);
        assert_eq!(a.flushed(), Size(112));
        assert_eq!(a.xalloc(&Constraints::new(Size(16)).exact(h.addr())), Ok(h.addr()));
        a.check().unwrap();
        other.free_handle(theirs).unwrap();
    }

    #[test]
    fn check_finds_a_broken_unflushed_list() {
        let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
        let mut a = arena(&mut tb, &mut hb);
        let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(16), Policy::InstantFit).unwrap();
        a.free_deferred(x, Size(16)).unwrap();
        a.free_deferred(y, Size(16)).unwrap();
        a.check().unwrap();
        let head = a.unflushed;
        // Drop the second segment off the list: it is unflushed but unlisted.
        let second = a.tags.get(head).knext;
        a.tags.get_mut(head).knext = super::NIL;
        assert!(matches!(a.check(), Err(ArenaError::Corrupt { .. })));
        a.tags.get_mut(head).knext = second;
        a.unflushed_count += 1;
        assert!(matches!(a.check(), Err(ArenaError::Corrupt { .. })));
        a.unflushed_count -= 1;
        a.sizes.unflushed.0 -= 16;
        assert!(matches!(a.check(), Err(ArenaError::Corrupt { .. })));
        a.sizes.unflushed.0 += 16;
        a.check().unwrap();
    }

    /// A source that records what comes back.
    #[derive(Default)]
    struct Recording {
        next: usize,
        released: Vec<Range>,
    }

    impl Source for Recording {
        fn quantum(&self) -> Size {
            Size(256)
        }
        fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
            self.next += 0x1_0000;
            Ok(Range::from_size(Addr(self.next), size)?)
        }
        fn release(&mut self, range: Range) -> Result<(), ArenaError> {
            self.released.push(range);
            Ok(())
        }
    }

    #[test]
    fn an_imported_span_goes_back_only_after_the_flush() {
        let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
        let (t, h) = (SliceStore::new(&mut tb), SliceStore::new(&mut hb));
        let mut a = Arena::new("t", Size(16), t, h, Recording::default()).unwrap();
        let x = a.alloc(Size(100), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(100), Policy::InstantFit).unwrap();
        a.free(y, Size(100)).unwrap();
        a.free_deferred(x, Size(100)).unwrap();
        a.check().unwrap();
        assert!(a.source().released.is_empty(), "span still holds an unflushed segment");
        assert_eq!(a.sizes().total, Size(256));
        a.flushed();
        a.check().unwrap();
        assert_eq!(a.source().released.len(), 1);
        assert_eq!(a.sizes().total, Size(0));
        assert_eq!(a.span_count(), 0);
    }

    std::thread_local! {
        static REPORTED: core::cell::RefCell<Vec<Range>> = const { core::cell::RefCell::new(Vec::new()) };
    }

    fn record(_: &'static str, r: Range) {
        REPORTED.with(|v| v.borrow_mut().push(r));
    }

    /// Dropped with a range unflushed in one imported span and a live
    /// allocation in another: the live one's span goes back (as any drop
    /// gives spans back), the unflushed one's stays with the source, so the
    /// source cannot hand it out before its flush; the hook hears of both.
    /// Flushed before the drop, both spans go back.
    #[test]
    fn a_dropped_arena_keeps_back_a_span_holding_an_unflushed_range() {
        for flush_first in [false, true] {
            let mut rec = Recording::default();
            let (mut tb, mut hb) = (vec![0u8; 8192], vec![0u8; 1024]);
            let (t, h) = (SliceStore::new(&mut tb), SliceStore::new(&mut hb));
            let mut a = Arena::new("t", Size(16), t, h, &mut rec).unwrap();
            a.set_leak_hook(Some(record));
            let x = a.alloc(Size(256), Policy::InstantFit).unwrap();
            let y = a.alloc(Size(256), Policy::InstantFit).unwrap();
            assert_eq!(a.span_count(), 2);
            a.free_deferred(x, Size(256)).unwrap();
            if flush_first {
                a.flushed();
            }
            a.check().unwrap();
            REPORTED.with(|v| v.borrow_mut().clear());
            drop(a);
            let span = |at| Range::from_size(at, Size(256)).unwrap();
            let reported = REPORTED.with(|v| v.take());
            if flush_first {
                assert_eq!(rec.released, [span(x), span(y)]);
                assert_eq!(reported, [span(y)]);
            } else {
                assert_eq!(rec.released, [span(y)], "the unflushed range went back to the source");
                let mut reported = reported;
                reported.sort_by_key(|r| r.base());
                let mut both = [span(x), span(y)];
                both.sort_by_key(|r| r.base());
                assert_eq!(reported, both);
            }
        }
    }
}
