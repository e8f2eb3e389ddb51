//! The end of an arena: its drop, which gives every imported span back to
//! the source, and [`Arena::into_source`], which does so and hands the
//! source back.

use core::mem::{needs_drop, ManuallyDrop};
use core::ptr;

use vmspace_shim::align::PowerOfTwo;
use vmspace_shim::{Addr, Range};

use super::fault::Mtbf;
use super::freelist::FreeLists;
use super::tag::HEAD;
use super::Store;
use super::{
    Arena, ArenaError, Counters, LeakHook, Refused, SegmentKind, SegmentKinds, Sizes, Source,
    SourcePanic,
};

// `into_source` reads the source and the two tables out of an arena it
// does not drop: every other field must have no drop of its own.
const _: () = assert!(
    !needs_drop::<PowerOfTwo>()
        && !needs_drop::<FreeLists>()
        && !needs_drop::<SourcePanic>()
        && !needs_drop::<Sizes>()
        && !needs_drop::<Counters>()
        && !needs_drop::<Mtbf>()
        && !needs_drop::<Option<LeakHook>>()
);

impl<S: Store, I: Source> Arena<S, I> {
    /// The source back, once nothing is allocated and no segment waits for
    /// a flush: every imported span is given back to it first (as the drop
    /// does), and spans added with [`add`](Self::add) go with the arena.
    ///
    /// The arena comes back instead, its allocations untouched, while an
    /// allocation is live (a held one, a quantum-cache slab's, included),
    /// while a segment waits for [`flushed`](Self::flushed), or when a
    /// span could not be given back: the source refused it (it stays in
    /// the arena, free, as for any give-back), or the last call into the
    /// source panicked and none has returned since (a call that returns
    /// clears that: an allocation that imports, say). A span the source
    /// strands ([`Stranded`](super::ArenaError::Stranded)) is the source's
    /// for good and does not keep the arena. Spans given back before one
    /// is refused stay given back (the arena comes back without them, its
    /// counters and its wait for a busy source moved as for any give-back).
    ///
    /// Should the source panic in a give-back, the panic goes on, the arena
    /// is dropped as it unwinds, and its drop calls the source no more: the
    /// spans not yet given back stay taken in the source.
    ///
    /// Refused, the arena comes back in a [`Refused`] whose error,
    /// [`InUse`](ArenaError::InUse), says what kept it, the first of:
    /// allocations live, segments waiting for a flush (only then is
    /// anything given back), imported spans not given back (refused by the
    /// source, or not offered while its last call's panic stands).
    #[expect(clippy::result_large_err, reason = "the arena, back to its owner")]
    pub fn into_source(mut self) -> Result<I, Refused<Self>> {
        let in_use = |what, size| ArenaError::InUse { what, size };
        if !self.sizes.allocated.is_zero() {
            return Err(Refused::new(in_use("allocations live", self.sizes.allocated), self));
        }
        if !self.sizes.unflushed.is_zero() {
            let e = in_use("segments waiting for a flush", self.sizes.unflushed);
            return Err(Refused::new(e, self));
        }
        // Nothing allocated or unflushed: each imported span is one free
        // segment, which this gives back.
        self.give_back_free_spans();
        if !self.sizes.imported.is_zero() {
            let e = in_use("imported spans not given back", self.sizes.imported);
            return Err(Refused::new(e, self));
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again nor dropped (`ManuallyDrop`),
        // so each of the three fields that own resources is read out of it
        // exactly once: the source, returned, and the two tables, dropped
        // here (their stores release their memory). Every other field is
        // plain data with no drop of its own.
        let (source, tags, hash) =
            unsafe { (ptr::read(&this.source), ptr::read(&this.tags), ptr::read(&this.hash)) };
        drop((tags, hash));
        Ok(source)
    }
}

impl<S: Store, I: Source> Drop for Arena<S, I> {
    /// Report live allocations and unflushed segments to the leak hook, then
    /// give every imported span back to the source; a span still holding an
    /// unflushed segment goes back through
    /// [`Source::release_unflushed`] (the source must not hand it out again
    /// before its flush: an arena takes it as a deferred free, a
    /// `VmSource` unmaps it and holds it until its own flush, other sources
    /// keep it taken). Errors are ignored: there is no one left to
    /// tell (a refused `release_unflushed` leaves the range taken in the
    /// source: lost, never reissued early). The stores release their own memory.
    ///
    /// Nothing goes back when the last call into the source panicked (the
    /// drop may be part of that panic's unwinding, where a second panic
    /// from the source would abort the process): the spans stay taken in
    /// the source.
    fn drop(&mut self) {
        if let Some(hook) = self.leak_hook {
            for seg in self.walk(SegmentKinds::ALLOCATED.union(SegmentKinds::UNFLUSHED)) {
                // An allocation as asked (its start and requested size), an
                // unflushed range as its whole segment.
                let r = match seg.kind {
                    SegmentKind::Allocated => {
                        Range::from_size(seg.range.base(), seg.requested).unwrap_or(seg.range)
                    }
                    _ => seg.range,
                };
                hook(self.name, r);
            }
        }
        // A call into the source that panicked: this drop may be part of
        // that panic's unwinding, where a second panic would abort.
        if self.source_panicked() {
            return;
        }
        let mut m = self.tags.get(HEAD).knext;
        while m != HEAD {
            let t = *self.tags.get(m);
            if t.imported() {
                if let Some(r) = Range::new(Addr(t.start), Addr(t.end)) {
                    let _ = if self.span_holds_unflushed(m) {
                        self.call_source(|s| s.release_unflushed(r))
                    } else {
                        self.call_source(|s| s.release(r))
                    };
                }
            }
            m = t.knext;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use vmspace_shim::{Addr, Range, Size};

    use crate::arena::{Arena, ArenaError, Policy, SliceStore, Source};

    /// A source that owns heap memory, so that Miri sees a double drop or a
    /// leak of it, and counts what it handed out.
    struct Owning {
        bytes: Vec<u8>,
        out: usize,
    }

    impl Source for Owning {
        fn quantum(&self) -> Size {
            Size(16)
        }
        fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
            self.out += size.0;
            Ok(Range::from_size(Addr(1 << 20), size)?)
        }
        fn release(&mut self, r: Range) -> Result<(), ArenaError> {
            self.out -= r.size().0;
            Ok(())
        }
    }

    #[test]
    fn the_source_is_moved_out_once_and_the_rest_dropped() {
        let (mut tb, mut hb) = (vec![0u64; 1024], vec![0u64; 64]);
        let tags = SliceStore::new(bytemuck(&mut tb));
        let hash = SliceStore::new(bytemuck(&mut hb));
        let source = Owning { bytes: vec![7; 100], out: 0 };
        let mut a = Arena::new("t", Size(16), tags, hash, source).unwrap();
        let x = a.alloc(Size(64), Policy::InstantFit).unwrap();
        assert_eq!(a.source().out, 64);
        let refused = a.into_source().err().unwrap();
        assert_eq!(refused.error(), ArenaError::InUse { what: "allocations live", size: Size(64) });
        let mut a = refused.into_inner();
        a.free(x, Size(64)).unwrap();
        let back = a.into_source().unwrap_or_else(|_| panic!("nothing allocated"));
        assert_eq!((back.out, back.bytes.len()), (0, 100));
    }

    fn bytemuck(v: &mut [u64]) -> &mut [u8] {
        // SAFETY: any bytes are valid u8s; the length covers the same
        // memory, borrowed for as long as `v`.
        unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 8) }
    }
}
