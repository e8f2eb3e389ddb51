//! Introspection: sizes, counters, walks, the free-size histogram,
//! fragmentation.

use vmspace_shim::{Addr, Range, Size};

use super::freelist::LISTS;
use super::source::Source;
use super::store::Store;
use super::tag::{Tag, HEAD, K_ALLOC, K_FREE, K_HELD, K_SPAN, K_UNFLUSHED, NIL};
use super::Arena;

/// How much of the arena is where (all in units of the resource).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// In allocated segments (sizes rounded up to the quantum).
    pub allocated: Size,
    /// In free segments.
    pub free: Size,
    /// In segments freed but not yet flushed
    /// ([`free_deferred`](Arena::free_deferred)): neither allocated nor
    /// allocatable until [`flushed`](Arena::flushed).
    pub unflushed: Size,
    /// In spans: `allocated + free + unflushed`.
    pub total: Size,
    /// In imported spans (part of `total`).
    pub imported: Size,
}

/// Event counters. They only ever increase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful allocations. A quantum cache's slab is one; one placed
    /// where its slab record was taken is given back at once (a free) and
    /// placed again (another allocation).
    pub allocs: u64,
    /// Successful frees.
    pub frees: u64,
    /// Failed alloc, xalloc, add, extend, resize and free_part calls (a
    /// resize that cannot grow in place included). A waiting allocation
    /// (`SyncArena`'s `Wait`, the C API's waits) makes one call each time
    /// it tries, so each of its failed tries counts, and so do the try a
    /// `SyncArena` allocation makes before it reclaims its caches' slabs
    /// (then tries once more) and a quantum cache's failed try for a slab
    /// (the cache then falls back to an allocation of the arena's own,
    /// which may succeed), as illumos's `vk_fail` counts its caches' failed
    /// slab allocations: an allocation that succeeds may count a failure.
    /// A bad claim, a free, resize or part of an allocation that is not
    /// live as stated, counts in `bad_frees` instead.
    pub failures: u64,
    /// Frees refused as bad.
    pub bad_frees: u64,
    /// Segments (or hash entries) examined while searching.
    pub search_steps: u64,
    /// Address lookups (frees).
    pub lookups: u64,
    /// Spans imported from the source.
    pub imports: u64,
    /// Imported spans given back.
    pub exports: u64,
    /// Give-backs the source refused (the span stayed, free), or could
    /// neither take nor put back ([`Stranded`](super::ArenaError::Stranded): the span was
    /// dropped, left with the source). A give-back that panicked is
    /// counted in neither this nor `exports` (the span is off the books:
    /// at worst lost to both, never live in two).
    pub export_failures: u64,
    /// Faults injected by the mtbf generator.
    pub injected: u64,
    /// Frees that left their segment freed but not flushed
    /// ([`free_deferred`](Arena::free_deferred); also counted in `frees`).
    pub deferred_frees: u64,
    /// Calls of [`flushed`](Arena::flushed) that made unflushed segments
    /// free.
    pub flushes: u64,
}

/// The kind of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// A span marker: the whole span.
    Span,
    /// A free segment.
    Free,
    /// An allocated segment.
    Allocated,
    /// A segment freed but not yet flushed: not allocated, and no
    /// allocation may take it until [`Arena::flushed`].
    Unflushed,
}

/// A set of [`SegmentKind`]s for [`Arena::walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentKinds(u8);

impl SegmentKinds {
    /// Span markers.
    pub const SPANS: SegmentKinds = SegmentKinds(1);
    /// Free segments.
    pub const FREE: SegmentKinds = SegmentKinds(2);
    /// Allocated segments.
    pub const ALLOCATED: SegmentKinds = SegmentKinds(4);
    /// Segments freed but not yet flushed.
    pub const UNFLUSHED: SegmentKinds = SegmentKinds(8);
    /// Everything.
    pub const ALL: SegmentKinds = SegmentKinds(15);

    /// Both sets.
    pub const fn union(self, other: SegmentKinds) -> SegmentKinds {
        SegmentKinds(self.0 | other.0)
    }

    /// Whether `kind` is in the set.
    pub const fn has(self, kind: SegmentKind) -> bool {
        let bit = match kind {
            SegmentKind::Span => 1,
            SegmentKind::Free => 2,
            SegmentKind::Allocated => 4,
            SegmentKind::Unflushed => 8,
        };
        self.0 & bit != 0
    }
}

/// One span or segment, as [`Arena::walk`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// What it is.
    pub kind: SegmentKind,
    /// Where it is (rounded to the quantum).
    pub range: Range,
    /// Allocated segments: the size asked for; others: the range's size.
    pub requested: Size,
    /// Spans: whether imported from the source.
    pub imported: bool,
    /// Allocated segments: whether held by a [`Handle`](super::Handle)
    /// (made by [`Arena::alloc_handle`] or [`Arena::xalloc_handle`]).
    pub held: bool,
}

/// An iterator over an arena's spans and segments in address order (a span
/// marker comes before its segments).
pub struct Walk<'a, S: Store, I: Source> {
    arena: &'a Arena<S, I>,
    cur: u32,
    kinds: SegmentKinds,
}

impl<S: Store, I: Source> Iterator for Walk<'_, S, I> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        loop {
            let t = *self.arena.tags.get(self.cur);
            self.cur = t.anext;
            if self.cur == HEAD {
                return None;
            }
            let t = *self.arena.tags.get(self.cur);
            let kind = match t.kind() {
                K_SPAN => SegmentKind::Span,
                K_FREE => SegmentKind::Free,
                K_ALLOC | K_HELD => SegmentKind::Allocated,
                K_UNFLUSHED => SegmentKind::Unflushed,
                _ => continue,
            };
            if !self.kinds.has(kind) {
                continue;
            }
            let range = Range::new(Addr(t.start), Addr(t.end))?;
            let requested =
                if kind == SegmentKind::Allocated { Size(t.requested()) } else { range.size() };
            let (imported, held) = (t.imported(), t.kind() == K_HELD);
            return Some(Segment { kind, range, requested, imported, held });
        }
    }
}

impl<S: Store, I: Source> Arena<S, I> {
    /// Spans and segments of the given kinds, in address order.
    pub fn walk(&self, kinds: SegmentKinds) -> Walk<'_, S, I> {
        Walk { arena: self, cur: HEAD, kinds }
    }

    /// Whether `[addr, addr + size)` lies inside one span (allocated or
    /// not); for `size` 0, whether `addr` lies in one or at its end (as the
    /// C API's `vmspace_arena_contains`). `false` when the range would end
    /// past `usize::MAX`. O(spans).
    pub fn contains(&self, addr: Addr, size: Size) -> bool {
        let Ok(r) = Range::from_size(addr, size) else { return false };
        let mut m = self.tags.get(HEAD).knext;
        while m != HEAD && m != NIL {
            let t = self.tags.get(m);
            if t.start <= r.base().0 && r.limit().0 <= t.end {
                return true;
            }
            m = t.knext;
        }
        false
    }

    /// The allocated segment starting at `addr`, if there is one (an O(1)
    /// expected hash lookup): its range and the size asked for. Segments
    /// held by a [`Handle`](super::Handle) are not in the hash, so not found.
    pub fn lookup(&self, addr: Addr) -> Option<(Range, Size)> {
        let mut steps = 0;
        let i = self.hash.find(&self.tags, addr.0, &mut steps)?.tag;
        allocation(self.tags.get(i))
    }

    /// Allocated, free, total and imported sizes.
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// The event counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Live allocations (held by handles included).
    pub fn live(&self) -> usize {
        self.hash.len() + self.held
    }

    /// Spans (added and imported).
    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// The number of free segments with size in `[2^k, 2^(k+1))`, for each
    /// `k`. Walks every free list (nothing on the allocation path keeps
    /// count).
    pub fn free_histogram(&self) -> [usize; LISTS] {
        self.lists.counts(&self.tags)
    }

    /// The size of the largest free segment (zero when none). Scans one free
    /// list.
    pub fn largest_free(&self) -> Size {
        let map = self.lists.map();
        if map == 0 {
            return Size(0);
        }
        let k = (usize::BITS - 1 - map.leading_zeros()) as usize;
        let mut best = 0;
        let end = self.lists.sentinel(k);
        let mut i = self.tags.get(end).knext;
        while i != end {
            let t = self.tags.get(i);
            best = best.max(t.size());
            i = t.knext;
        }
        Size(best)
    }

    /// Fragmentation index in per-mille: `1000 * (1 - largest free / total
    /// free)`, rounded up. Zero only when the free space is one segment (or
    /// there is none), 1 for any split of it however slight; near 1000
    /// when it is splintered into many small pieces.
    pub fn fragmentation(&self) -> u32 {
        let free = self.sizes.free.0;
        if free == 0 {
            return 0;
        }
        1000 - per_mille(self.largest_free().0.min(free), free)
    }
}

/// `floor(1000 * part / whole)` for `part <= whole` (and `whole > 0`),
/// exactly, in word arithmetic: no 128-bit product or division (the x86_64
/// kernel does not link `__udivti3`). Binary long multiplication by 1000,
/// keeping the running product as a quotient and a remainder below `whole`.
fn per_mille(part: usize, whole: usize) -> u32 {
    if part >= whole {
        return 1000;
    }
    // `a + b` modulo `whole` for `a, b < whole`, with the carry.
    let add = |a: usize, b: usize| if a >= whole - b { (a - (whole - b), 1) } else { (a + b, 0) };
    let (mut quotient, mut rem) = (0u32, 0usize);
    for bit in (0..10).rev() {
        let (r, c) = add(rem, rem);
        (quotient, rem) = (2 * quotient + c, r);
        if 1000 >> bit & 1 == 1 {
            let (r, c) = add(rem, part);
            (quotient, rem) = (quotient + c, r);
        }
    }
    quotient
}

/// An allocated segment's range and the size asked for.
pub(crate) fn allocation(t: &Tag) -> Option<(Range, Size)> {
    Some((Range::new(Addr(t.start), Addr(t.end))?, Size(t.requested())))
}

#[cfg(test)]
mod per_mille_tests {
    use super::per_mille;

    fn reference(part: usize, whole: usize) -> u32 {
        (part as u128 * 1000 / whole as u128) as u32
    }

    #[test]
    fn agrees_with_wide_arithmetic() {
        let edges = [
            1,
            2,
            3,
            999,
            1000,
            1001,
            1 << 20,
            usize::MAX / 1000,
            usize::MAX / 2,
            usize::MAX - 1,
            usize::MAX,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15usize;
        let mut cases = 0;
        for &whole in &edges {
            for &part in &edges {
                if part <= whole {
                    assert_eq!(per_mille(part, whole), reference(part, whole), "{part}/{whole}");
                    cases += 1;
                }
            }
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let whole = (x >> (x % 64)).max(1);
            let part = x.rotate_left(7) % (whole.saturating_add(1)).max(1);
            let part = part.min(whole);
            assert_eq!(per_mille(part, whole), reference(part, whole), "{part}/{whole}");
            cases += 1;
        }
        assert!(cases > 100_000);
    }
}
