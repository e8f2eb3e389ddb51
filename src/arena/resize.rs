//! Partial frees and resizing in place: `munmap` and `mremap` semantics for
//! allocations made by address.
//!
//! [`free_part`](Arena::free_part) gives back a piece of a live allocation,
//! leaving up to two live allocations (the part before the piece and the part
//! after it), as `munmap` of part of a mapping does.
//! [`resize`](Arena::resize) shrinks an allocation in place, or grows it in
//! place into the free segment that follows it in the same span; when that
//! segment is missing or too small it fails with
//! [`NoSpace`](ArenaError::NoSpace) and the caller moves the allocation
//! (allocate, copy if it must, free), as `mremap` with `MREMAP_MAYMOVE` does.
//!
//! Both check the caller's claim the way [`free`](Arena::free) does (the
//! address must start a live allocation made by address, the size must be
//! the one asked for), reserve the boundary tags they may need before they
//! change anything, and so complete or fail with the arena unchanged.

use vmspace_shim::{align, Addr, Size};

use super::source::Source;
use super::store::Store;
use super::tag::{Tag, K_ALLOC, K_FREE};
use super::{Arena, ArenaError};

impl<S: Store, I: Source> Arena<S, I> {
    /// Free `[alloc + offset, alloc + offset + size)`, a piece of the live
    /// allocation that starts at `alloc` (made by address: [`alloc`](Self::alloc)
    /// or [`xalloc`](Self::xalloc), not by handle).
    ///
    /// The piece must lie inside the size asked for, start at a multiple of
    /// the quantum, and end at one or at the end of the allocation; any other
    /// piece is a [`BadFree`](ArenaError::BadFree) that changes nothing (but
    /// the counters: the bad-free counter, and the lookup it made). What stays live becomes up to two allocations:
    /// `[alloc, alloc + offset)` (asked size `offset`) and the rest after the
    /// piece (asked size: what was asked beyond the piece), each freed,
    /// partly freed or resized on its own afterwards. The freed piece
    /// coalesces with free neighbours. Freeing the whole allocation is
    /// [`free`](Self::free) and counts as a free; a partial free counts
    /// none (the allocation lives on).
    ///
    /// Needs up to two boundary tags (splitting one segment into three):
    /// when they cannot be had (or an injected fault hits) it fails with the
    /// arena unchanged (but the failure counter).
    pub fn free_part(&mut self, alloc: Addr, offset: Size, size: Size) -> Result<(), ArenaError> {
        self.counters.lookups += 1;
        let found = self.hash.find(&self.tags, alloc.0, &mut self.counters.search_steps);
        let bad = |allocated| ArenaError::BadFree {
            addr: Addr(alloc.0.wrapping_add(offset.0)),
            size,
            allocated,
        };
        let Some(found) = found else {
            self.counters.bad_frees += 1;
            return Err(bad(None));
        };
        let i = found.tag;
        let t = *self.tags.get(i);
        let asked = t.requested();
        let q = self.quantum.get();
        let asked_end = t.start + asked;
        let part = alloc.0.checked_add(offset.0).and_then(|a| Some((a, a.checked_add(size.0)?)));
        let Some((a, b)) = part.filter(|&(a, b)| {
            a < b
                && b <= asked_end
                && align::is_aligned(a, q)
                && (b == asked_end || align::is_aligned(b, q))
        }) else {
            self.counters.bad_frees += 1;
            return Err(bad(Some(Size(asked))));
        };
        // The piece's end in segment terms: the rounding slack goes with
        // the last unit.
        let b = if b == asked_end { t.end } else { b };
        let (head, tail) = (a > t.start, b < t.end);
        if !head && !tail {
            self.hash.remove(&mut self.tags, found);
            self.free_segment(i, &t);
            return Ok(());
        }
        // Out of tags (or an injected fault): a failure, counted as a failed
        // resize is; a bad claim above counts in `bad_frees` instead.
        let gate = self.gate(u32::from(head) + u32::from(tail));
        self.count_failure(gate)?;
        let freed = b - a;
        if !head {
            // The allocation's own tag becomes the freed piece. Off the hash
            // first: an insert may double the hash, which stales `found`.
            self.hash.remove(&mut self.tags, found);
        }
        // The tags were reserved by the gate: taking them cannot fail.
        let tail_tag = if tail { Some(self.tags.take()?) } else { None };
        if let Some(g) = tail_tag {
            let mut gt = Tag::new(b, t.end, K_ALLOC);
            gt.set_kprev(t.kprev());
            self.tags.set(g, gt);
            self.link_after(i, g);
            self.hash.insert(&mut self.tags, g);
        }
        let f = if head {
            let f = self.tags.take()?;
            self.tags.set(f, Tag::new(a, b, K_FREE));
            self.link_after(i, f);
            let it = self.tags.get_mut(i);
            it.end = a;
            it.set_kprev(0);
            f
        } else {
            // The tail, hashed under its own start, keeps the allocation.
            let it = self.tags.get_mut(i);
            it.end = b;
            it.set_kind(K_FREE);
            it.set_kprev(0);
            i
        };
        self.sizes.allocated.0 -= freed;
        self.sizes.free.0 += freed;
        self.coalesce_and_list(f);
        Ok(())
    }

    /// Change the size of the live allocation at `addr` (made by address,
    /// asked with `old_size`) to `new_size`, in place: it keeps its address.
    ///
    /// Shrinking gives the end back (it coalesces with a free neighbour);
    /// growing takes the room it needs from the free segment right after the
    /// allocation in the same span. When that segment is missing or too small
    /// the call fails with [`NoSpace`](ArenaError::NoSpace), changing nothing:
    /// the caller moves the allocation instead. The constraints of the
    /// original [`xalloc`](Self::xalloc) (alignment aside, which the address
    /// keeps) are not re-checked: growing may cross a `nocross` boundary or a
    /// `max_addr` limit, as `mremap` would.
    ///
    /// A wrong address or old size is a [`BadFree`](ArenaError::BadFree)
    /// (counted in `bad_frees`), a zero new size is an invalid argument, a
    /// new size that cannot be rounded to the quantum is an
    /// [`Overflow`](ArenaError::Overflow), and growing past the top of the
    /// address space is `NoSpace` like any growth without room; every
    /// failure but a bad claim counts in `failures`. Afterwards the
    /// allocation is freed with `new_size`.
    pub fn resize(&mut self, addr: Addr, old_size: Size, new_size: Size) -> Result<(), ArenaError> {
        self.counters.lookups += 1;
        let found = self.hash.find(&self.tags, addr.0, &mut self.counters.search_steps);
        let Some(found) = found else {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree { addr, size: old_size, allocated: None });
        };
        let i = found.tag;
        let t = *self.tags.get(i);
        if t.requested() != old_size.0 {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadFree {
                addr,
                size: old_size,
                allocated: Some(Size(t.requested())),
            });
        }
        let r = self.resize_tag(i, &t, new_size);
        self.count_failure(r)
    }

    /// Resize allocated segment `i` (whose tag reads `t`) to `new_size`.
    fn resize_tag(&mut self, i: u32, t: &Tag, new_size: Size) -> Result<(), ArenaError> {
        if new_size.is_zero() {
            return Err(ArenaError::InvalidArgument("size is zero"));
        }
        let rounded = self.quantum.align_up(new_size.0)?;
        // Slack below the quantum (<= 2^27) fits the packed field.
        let slack = (rounded - new_size.0) as u32;
        // Growing past the top of the address space: no free segment
        // follows there, so the room is missing, as it is at a span's end.
        let new_end =
            t.start.checked_add(rounded).ok_or(ArenaError::NoSpace { size: new_size.0 })?;
        if new_end < t.end {
            self.gate(1)?;
            let f = self.tags.take()?;
            self.tags.set(f, Tag::new(new_end, t.end, K_FREE));
            self.link_after(i, f);
            self.tags.get_mut(i).end = new_end;
            self.sizes.allocated.0 -= t.end - new_end;
            self.sizes.free.0 += t.end - new_end;
            self.coalesce_and_list(f);
        } else if new_end > t.end {
            let n = t.anext;
            let nt = *self.tags.get(n);
            // A free neighbour on the address list is in the same span: a
            // span marker or the head would come between otherwise.
            if nt.kind() != K_FREE || nt.end < new_end {
                return Err(ArenaError::NoSpace { size: new_size.0 });
            }
            self.gate(0)?;
            if nt.end == new_end {
                self.lists.remove(self.tags.all_mut(), n);
                self.unlink_release(n);
            } else {
                self.lists.resize(self.tags.all_mut(), n, new_end, nt.end);
            }
            self.tags.get_mut(i).end = new_end;
            self.sizes.allocated.0 += new_end - t.end;
            self.sizes.free.0 -= new_end - t.end;
        }
        self.tags.get_mut(i).set_kprev(slack);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::arena::{NoSource, Policy, SegmentKind, SegmentKinds, SliceStore};

    type TestArena<'a> = Arena<SliceStore<'a>, NoSource>;

    fn arena<'a>(tags: &'a mut [u8], hash: &'a mut [u8], q: usize) -> TestArena<'a> {
        let mut a =
            Arena::new("t", Size(q), SliceStore::new(tags), SliceStore::new(hash), NoSource)
                .unwrap();
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        a
    }

    /// (start, end, allocated?, asked) for every segment.
    fn segments(a: &TestArena<'_>) -> Vec<(usize, usize, bool, usize)> {
        a.walk(SegmentKinds::FREE.union(SegmentKinds::ALLOCATED))
            .map(|s| {
                let alloc = s.kind == SegmentKind::Allocated;
                (s.range.base().0, s.range.limit().0, alloc, s.requested.0)
            })
            .collect()
    }

    #[test]
    fn free_part_splits_like_munmap() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.xalloc(&crate::arena::Constraints::new(Size(0x100)).exact(Addr(0x1000))).unwrap();
        // The middle: two allocations left, the piece free.
        a.free_part(x, Size(0x40), Size(0x20)).unwrap();
        a.check().unwrap();
        assert_eq!(
            segments(&a),
            [
                (0x1000, 0x1040, true, 0x40),
                (0x1040, 0x1060, false, 0x20),
                (0x1060, 0x1100, true, 0xa0),
                (0x1100, 0x2000, false, 0xf00),
            ]
        );
        assert_eq!((a.live(), a.sizes().allocated, a.counters().frees), (2, Size(0xe0), 0));
        // The start of the tail: coalesces with the hole before it.
        a.free_part(Addr(0x1060), Size(0), Size(0x10)).unwrap();
        assert_eq!(segments(&a)[1], (0x1040, 0x1070, false, 0x30));
        assert_eq!(
            a.lookup(Addr(0x1070)).map(|(r, s)| (r.size(), s)),
            Some((Size(0x90), Size(0x90)))
        );
        // The end of the head: coalesces too.
        a.free_part(x, Size(0x30), Size(0x10)).unwrap();
        assert_eq!(
            segments(&a)[..2],
            [(0x1000, 0x1030, true, 0x30), (0x1030, 0x1070, false, 0x40)]
        );
        a.check().unwrap();
        // The whole of what is left of each: ordinary frees.
        a.free_part(x, Size(0), Size(0x30)).unwrap();
        a.free_part(Addr(0x1070), Size(0), Size(0x90)).unwrap();
        assert_eq!(segments(&a), [(0x1000, 0x2000, false, 0x1000)]);
        assert_eq!((a.live(), a.counters().frees), (0, 2));
        a.check().unwrap();
    }

    #[test]
    fn free_part_takes_the_slack_with_the_last_unit() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.alloc(Size(0x35), Policy::FirstFit).unwrap();
        // Ends at the asked end (not a multiple of 16): allowed.
        a.free_part(x, Size(0x20), Size(0x15)).unwrap();
        assert_eq!(a.lookup(x).map(|(r, s)| (r.size(), s)), Some((Size(0x20), Size(0x20))));
        a.check().unwrap();
        let y = a.alloc(Size(0x35), Policy::FirstFit).unwrap();
        a.free_part(y, Size(0), Size(0x10)).unwrap();
        let tail = Addr(y.0 + 0x10);
        assert_eq!(a.lookup(tail).map(|(r, s)| (r.size(), s)), Some((Size(0x30), Size(0x25))));
        a.free(tail, Size(0x25)).unwrap();
        a.free(x, Size(0x20)).unwrap();
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    }

    #[test]
    fn bad_partial_frees_change_nothing() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.alloc(Size(0x35), Policy::FirstFit).unwrap();
        let h = a.alloc_handle(Size(0x40), Policy::FirstFit).unwrap();
        let before = segments(&a);
        for (at, off, size) in [
            (x.0, 0x8, 0x10),        // starts off the quantum
            (x.0, 0x10, 0x8),        // ends off the quantum, not at the end
            (x.0, 0x20, 0x20),       // past the asked end
            (x.0, 0x10, 0),          // empty
            (x.0, usize::MAX, 0x10), // overflows
            (x.0 + 0x10, 0, 0x10),   // not the start of an allocation
            (h.addr().0, 0, 0x10),   // held by a handle
            (0x1800, 0, 0x10),       // free space
        ] {
            let r = a.free_part(Addr(at), Size(off), Size(size));
            assert!(
                matches!(r, Err(ArenaError::BadFree { .. })),
                "{at:#x}+{off:#x} {size:#x}: {r:?}"
            );
        }
        assert_eq!(segments(&a), before);
        assert_eq!(a.counters().bad_frees, 8);
        a.check().unwrap();
    }

    #[test]
    fn free_part_without_tags_fails_unchanged() {
        let mut tb = vec![0u8; (crate::arena::BASE_TAGS + 16) * crate::arena::TAG_BYTES];
        let mut hb = vec![0u8; 1 << 12];
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
        // Use up the tags but one: allocate while an allocation can have its
        // tags, then cut the end off fills between two allocations.
        let mut fills = vec![];
        while let Ok(f) = a.alloc(Size(0x20), Policy::FirstFit) {
            fills.push(f);
        }
        let avail = |a: &TestArena<'_>| a.tags_in_use().1 - a.tags_in_use().0;
        for &f in &fills[..fills.len() - 1] {
            if avail(&a) <= 1 {
                break;
            }
            a.free_part(f, Size(0x10), Size(0x10)).unwrap();
        }
        assert_eq!(avail(&a), 1);
        let before = segments(&a);
        assert_eq!(a.free_part(x, Size(0x40), Size(0x40)), Err(ArenaError::TagsExhausted));
        assert_eq!(segments(&a), before);
        a.check().unwrap();
        // One tag is enough for either end.
        a.free_part(x, Size(0x80), Size(0x80)).unwrap();
        a.check().unwrap();
        assert_eq!(a.lookup(x).map(|(r, s)| (r.size(), s)), Some((Size(0x80), Size(0x80))));
    }

    #[test]
    fn resize_grows_into_the_next_free_segment_or_refuses() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
        let y = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
        a.free(y, Size(0x20)).unwrap();
        let z = a.xalloc(&crate::arena::Constraints::new(Size(0x10)).exact(Addr(0x1040))).unwrap();
        // x has 0x20 free after it: grows to 0x40 exactly, the segment gone.
        a.resize(x, Size(0x20), Size(0x3f)).unwrap();
        assert_eq!(segments(&a)[..2], [(0x1000, 0x1040, true, 0x3f), (0x1040, 0x1050, true, 0x10)]);
        a.check().unwrap();
        assert_eq!(a.resize(x, Size(0x3f), Size(0x41)), Err(ArenaError::NoSpace { size: 0x41 }));
        // z grows into the big free segment, which shrinks.
        a.resize(z, Size(0x10), Size(0x100)).unwrap();
        assert_eq!(segments(&a)[2], (0x1140, 0x2000, false, 0xec0));
        // Past the span's end: refused.
        assert!(matches!(a.resize(z, Size(0x100), Size(0x1000)), Err(ArenaError::NoSpace { .. })));
        // Shrink both; same rounded size just changes the asked size.
        a.resize(z, Size(0x100), Size(0x10)).unwrap();
        a.resize(x, Size(0x3f), Size(0x31)).unwrap();
        a.resize(x, Size(0x31), Size(0x8)).unwrap();
        a.check().unwrap();
        assert_eq!(
            segments(&a),
            [
                (0x1000, 0x1010, true, 0x8),
                (0x1010, 0x1040, false, 0x30),
                (0x1040, 0x1050, true, 0x10),
                (0x1050, 0x2000, false, 0xfb0),
            ]
        );
        assert_eq!(a.sizes().allocated, Size(0x20));
        a.free(x, Size(8)).unwrap();
        a.free(z, Size(0x10)).unwrap();
        a.check().unwrap();
        assert_eq!(a.counters().failures, 2);
    }

    #[test]
    fn bad_resizes_change_nothing() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut a = arena(&mut tb, &mut hb, 16);
        let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
        let before = segments(&a);
        assert!(matches!(a.resize(x, Size(0x10), Size(0x40)), Err(ArenaError::BadFree { .. })));
        assert!(matches!(
            a.resize(Addr(0x1800), Size(0x10), Size(0x40)),
            Err(ArenaError::BadFree { .. })
        ));
        assert!(matches!(a.resize(x, Size(0x20), Size(0)), Err(ArenaError::InvalidArgument(_))));
        assert!(matches!(a.resize(x, Size(0x20), Size(usize::MAX)), Err(ArenaError::Overflow)));
        assert_eq!(segments(&a), before);
        assert_eq!(a.counters().bad_frees, 2);
        a.check().unwrap();
    }
}
