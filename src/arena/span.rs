//! Spans: adding them, extending them, creating imported ones, giving
//! imported ones back.

use vmspace_shim::{Addr, Range, Size};

use super::source::Source;
use super::store::Store;
use super::tag::{Tag, HEAD, K_FREE, K_SPAN};
use super::{Arena, ArenaError};

/// Tags `add` and `extend` may consume.
const SPAN_TAGS: u32 = 2;

impl<S: Store, I: Source> Arena<S, I> {
    /// Add the span `[base, base + size)`, all free. Both ends must be
    /// multiples of the quantum and the span must not overlap another.
    pub fn add(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        let r = self.span_range(base, size).and_then(|r| {
            self.gate(SPAN_TAGS)?;
            self.create_span(r, false)
        });
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.counters.failures += 1;
                Err(e)
            }
        }
    }

    /// Offer every wholly free imported span back to the source now, rather
    /// than at a later free: spans the source refused as busy or kept while
    /// its last call had panicked, which otherwise wait for a free that
    /// reaches the arena (frees through quantum caches do not; an idle arena
    /// makes none), and spans it refused otherwise, which only such a walk
    /// offers again. A span
    /// the source refuses again stays, free, and is offered again as any
    /// refused span is; none is offered while the source's last call
    /// panicked and none has returned since (a call that returns clears
    /// that: an allocation that imports, say). Returns the bytes that left
    /// the arena: given back, or stranded with the source
    /// ([`Counters`](super::Counters)' `exports` and `export_failures` tell
    /// which).
    pub fn give_back_free_spans(&mut self) -> Size {
        let before = self.sizes.imported;
        self.give_back_held();
        Size(before.0 - self.sizes.imported.0)
    }

    /// Grow the arena by `[base, base + size)`, which must touch a span that
    /// was added (not imported): the span below grows up, the span above
    /// grows down, or, when it fills the gap between two, they merge into
    /// one. The new room coalesces with free segments at the seam.
    pub fn extend(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        let r = self.span_range(base, size).and_then(|r| {
            self.gate(SPAN_TAGS)?;
            self.extend_span(r)
        });
        if r.is_err() {
            self.counters.failures += 1;
        }
        r
    }

    fn span_range(&self, base: Addr, size: Size) -> Result<Range, ArenaError> {
        if size.is_zero() {
            return Err(ArenaError::InvalidArgument("span size is zero"));
        }
        let q = Size(self.quantum.get());
        if !base.is_aligned(q) {
            return Err(ArenaError::Misaligned { value: base.0, align: self.quantum.get() });
        }
        if !size.is_aligned(q) {
            return Err(ArenaError::Misaligned { value: size.0, align: self.quantum.get() });
        }
        Ok(Range::from_size(base, size)?)
    }

    /// The span markers around `r`: the last one starting below `r`'s base
    /// (or `HEAD`) and the one after it (or `HEAD`), checking that neither
    /// overlaps `r`. Walks from the highest span down (spans usually grow
    /// upwards).
    pub(crate) fn span_neighbours(&self, r: Range) -> Result<(u32, u32), ArenaError> {
        let mut prev = self.tags.get(HEAD).kprev();
        while prev != HEAD && self.tags.get(prev).start >= r.base().0 {
            prev = self.tags.get(prev).kprev();
        }
        let next = self.tags.get(prev).knext;
        let overlaps = (prev != HEAD && self.tags.get(prev).end > r.base().0)
            || (next != HEAD && self.tags.get(next).start < r.limit().0);
        if overlaps {
            return Err(ArenaError::SpanOverlap(r));
        }
        Ok((prev, next))
    }

    /// Make a span marker for `r` and one free segment filling it. Returns
    /// (marker, segment). Needs two reserved tags.
    pub(crate) fn create_span(
        &mut self,
        r: Range,
        imported: bool,
    ) -> Result<(u32, u32), ArenaError> {
        let (prev, next) = self.span_neighbours(r)?;
        let m = self.tags.take()?;
        let f = match self.tags.take() {
            Ok(f) => f,
            Err(e) => {
                self.tags.put(m);
                return Err(e);
            }
        };
        let (start, end) = (r.base().0, r.limit().0);
        self.tags.set(m, {
            let mut t = Tag::new(start, end, K_SPAN);
            t.set_imported(imported);
            t
        });
        // Span list: after `prev`.
        self.tags.get_mut(m).set_kprev(prev);
        self.tags.get_mut(m).knext = next;
        self.tags.get_mut(prev).knext = m;
        self.tags.get_mut(next).set_kprev(m);
        // Address list: just before the next span's marker (or at the end).
        let before = self.tags.get(next).aprev;
        self.link_after(before, m);
        self.tags.set(f, Tag::new(start, end, K_FREE));
        self.link_after(m, f);
        self.lists.insert(self.tags.all_mut(), f);
        self.spans += 1;
        self.sizes.total.0 += end - start;
        self.sizes.free.0 += end - start;
        Ok((m, f))
    }

    fn extend_span(&mut self, r: Range) -> Result<(), ArenaError> {
        let (prev, next) = self.span_neighbours(r)?;
        let (b, e) = (r.base().0, r.limit().0);
        let lo =
            (prev != HEAD).then(|| *self.tags.get(prev)).filter(|t| t.end == b && !t.imported());
        let hi =
            (next != HEAD).then(|| *self.tags.get(next)).filter(|t| t.start == e && !t.imported());
        let f = match (lo, hi) {
            (None, None) => return Err(ArenaError::NotAdjacent(r)),
            (Some(_), Some(h)) => {
                // Bridge: the upper marker becomes the free segment between
                // the two spans (it already sits there on the address list).
                self.tags.get_mut(prev).end = h.end;
                self.unlink_span(next);
                self.spans -= 1;
                let t = self.tags.get_mut(next);
                t.start = b;
                t.end = e;
                t.set_kind(K_FREE);
                next
            }
            (Some(_), None) => {
                self.tags.get_mut(prev).end = e;
                let last = self.tags.get(next).aprev;
                let f = self.tags.take()?;
                self.tags.set(f, Tag::new(b, e, K_FREE));
                self.link_after(last, f);
                f
            }
            (None, Some(_)) => {
                self.tags.get_mut(next).start = b;
                let f = self.tags.take()?;
                self.tags.set(f, Tag::new(b, e, K_FREE));
                self.link_after(next, f);
                f
            }
        };
        self.sizes.total.0 += e - b;
        self.sizes.free.0 += e - b;
        self.coalesce_and_list(f);
        Ok(())
    }

    /// Give back every wholly free imported span (those kept while a call
    /// into the source had not returned; one the source refused before is
    /// offered again). `held_back` stays set during the walk and says at
    /// its end whether a span was refused as busy (then the next walk waits
    /// twice as many frees as the last, up to 1,024): a give-back that
    /// panics part way leaves the spans not yet reached held (and the note
    /// set), for the first free after a call returns again.
    #[cold]
    #[inline(never)]
    pub(crate) fn give_back_held(&mut self) {
        let mut busy = false;
        let mut m = self.tags.get(HEAD).knext;
        while m != HEAD {
            let t = *self.tags.get(m);
            // Read before the span goes: a refused one is listed again at
            // its place in address order, before `next`.
            let next = t.knext;
            if t.imported() {
                let f = t.anext;
                let ft = *self.tags.get(f);
                if ft.kind() == K_FREE && ft.start == t.start && ft.end == t.end {
                    busy |= self.destroy_free_span(f);
                }
            }
            m = next;
        }
        self.held_back = busy;
        if busy {
            self.held_shift = (self.held_shift + 1).min(10);
            self.held_skip = 1 << self.held_shift;
        } else {
            // No wait left over: a walk made out of turn (an explicit
            // `give_back_free_spans`) may end one part way.
            self.held_shift = 0;
            self.held_skip = 0;
        }
    }

    /// Remove the wholly free imported span whose only segment is `f` and
    /// give it back to the source; keep it (listed again) if the source
    /// refuses, and not if the source says it is
    /// [`Stranded`](ArenaError::Stranded) (unusable, kept by the source).
    /// One refused with [`SourceBusy`](ArenaError::SourceBusy) is offered
    /// again at the next free ([`give_back_held`](Self::give_back_held)).
    /// Returns whether the span was kept for that (`held_back` set).
    ///
    /// The span is off the arena's books before the source sees it: a
    /// source that panics (or a parent arena that takes the range back and
    /// then panics in its own give-back) must not leave the range listed
    /// here as well. At worst it is lost to both, never live in two.
    ///
    /// While the last call into the source has not returned (it panicked),
    /// the span stays, free: a give-back made as that panic unwinds (a
    /// drop's) must not call the source again, where a second panic would
    /// abort the process. The first free after a call into the source
    /// returns gives such spans back ([`give_back_held`](Self::give_back_held)).
    pub(crate) fn destroy_free_span(&mut self, f: u32) -> bool {
        if self.source_panicked() {
            self.held_back = true;
            return true;
        }
        let seg = *self.tags.get(f);
        let m = seg.aprev;
        let r = Range::new(Addr(seg.start), Addr(seg.end)).unwrap_or(Range::empty(Addr(0)));
        self.lists.remove(self.tags.all_mut(), f);
        self.unlink_release(f);
        self.unlink_span(m);
        self.unlink_release(m);
        self.spans -= 1;
        self.sizes.total.0 -= seg.size();
        self.sizes.free.0 -= seg.size();
        self.sizes.imported.0 -= seg.size();
        match self.call_source(|s| s.release(r)) {
            Ok(()) => {
                self.counters.exports += 1;
                false
            }
            Err(e) => {
                self.counters.export_failures += 1;
                // Refused: still ours, listed again as one free span (the
                // two tags just put back are there to take; should that
                // fail, the range is lost, not handed out twice).
                if !matches!(e, ArenaError::Stranded { .. }) && self.create_span(r, true).is_ok() {
                    self.sizes.imported.0 += seg.size();
                    // Busy for now (borrowed elsewhere, or a call below it
                    // panicked): offered again at the next free.
                    if e == ArenaError::SourceBusy {
                        self.held_back = true;
                        return true;
                    }
                }
                false
            }
        }
    }
}
