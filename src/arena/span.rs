//! Spans: adding them, extending them, creating imported ones.

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
    /// than at a later free: spans the source refused before (as busy, or
    /// otherwise) or kept while its last call had panicked, which otherwise
    /// wait for a free that reaches the arena (frees through quantum caches
    /// do not; an idle arena makes none). A span
    /// the source refuses again stays, free, and is offered again as any
    /// refused span is; none is offered while the source's last call
    /// panicked and none has returned since. Returns the bytes that left
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
}
