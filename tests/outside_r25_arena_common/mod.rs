//! What the round-25 arena contract tests (`outside_r25_docs_arena_*.rs`)
//! share: an arena over slice stores, with no source, and its totals check.

#![allow(dead_code)] // each test file uses part of it

use vmspace::arena::{Arena, NoSource, SliceStore};
use vmspace::Size;

pub type A<'a> = Arena<SliceStore<'a>, NoSource>;

pub struct Bufs {
    pub tags: Vec<u64>,
    pub hash: Vec<u64>,
}

pub fn bufs() -> Bufs {
    Bufs { tags: vec![0; 1 << 13], hash: vec![0; 1 << 10] }
}

pub fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

pub fn arena(b: &mut Bufs, q: usize) -> A<'_> {
    Arena::new(
        "r25",
        Size(q),
        SliceStore::new(bytes(&mut b.tags)),
        SliceStore::new(bytes(&mut b.hash)),
        NoSource,
    )
    .unwrap()
}

pub fn total_ok(a: &A<'_>) {
    let s = a.sizes();
    assert_eq!(s.total.0, s.allocated.0 + s.free.0 + s.unflushed.0, "{s:?}");
    a.check().unwrap();
}
