//! What the deferred-free reviewer's files share: an arena on mmap'd
//! stores, a range, and the audit every step runs (`check()`, and the
//! unflushed statistics against the walk).

use vmspace::arena::{Arena, PageStore, SegmentKinds, Source};
use vmspace::{Addr, Range, Size};
use vmspace_user::MmapBackend;

pub type A<I> = Arena<PageStore<MmapBackend>, I>;

pub fn arena<I: Source>(name: &'static str, q: usize, src: I) -> A<I> {
    Arena::on_pages(name, Size(q), MmapBackend::new(), 4096, src).unwrap()
}

pub fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

/// check(), and the unflushed statistics against the walk.
pub fn audit<I: Source>(a: &A<I>, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check() failed: {e:?}"));
    let s = a.sizes();
    let un: Vec<_> = a.walk(SegmentKinds::UNFLUSHED).collect();
    let bytes: usize = un.iter().map(|g| g.range.size().get()).sum();
    assert_eq!(s.unflushed.get(), bytes, "{what}: sizes().unflushed vs walk");
    assert_eq!(a.unflushed_segments(), un.len(), "{what}: unflushed_segments vs walk");
    assert_eq!(
        s.total.get(),
        s.allocated.get() + s.free.get() + s.unflushed.get(),
        "{what}: total != allocated + free + unflushed"
    );
}

pub fn unflushed<I: Source>(a: &A<I>) -> Vec<Range> {
    a.walk(SegmentKinds::UNFLUSHED).map(|g| g.range).collect()
}
