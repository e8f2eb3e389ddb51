//! What the outside reviewer's `free_part`, `resize` and counter tests
//! share: a snapshot of everything observable about an arena, and a check
//! that a refused call changes nothing in it but the counters the docs
//! name.
#![allow(dead_code)]

use vmspace::arena::{
    Arena, ArenaError, Counters, NoSource, Segment, SegmentKind, SegmentKinds, Sizes, SliceStore,
    Source,
};
use vmspace::Size;

pub type A<'a> = Arena<SliceStore<'a>, NoSource>;

/// Everything observable about an arena's state.
#[derive(Debug, PartialEq)]
pub struct Snap {
    pub walk: Vec<Segment>,
    pub sizes: Sizes,
    pub counters: Counters,
    pub hist: Vec<usize>,
    pub largest: Size,
    pub frag: u32,
    pub tags: u32,
    pub live: usize,
    pub unflushed: usize,
}

pub fn snap<S: vmspace::arena::Store, I: Source>(a: &Arena<S, I>) -> Snap {
    a.check().unwrap();
    Snap {
        walk: a.walk(SegmentKinds::ALL).collect(),
        sizes: a.sizes(),
        counters: a.counters(),
        hist: a.free_histogram().to_vec(),
        largest: a.largest_free(),
        frag: a.fragmentation(),
        tags: a.tags_in_use().0,
        live: a.live(),
        unflushed: a.unflushed_segments(),
    }
}

/// The snapshot with the counters the docs let a refused call change
/// (bad_frees, failures, and the uncounted search bookkeeping) masked.
pub fn masked(mut s: Snap) -> Snap {
    s.counters.bad_frees = 0;
    s.counters.failures = 0;
    s.counters.lookups = 0;
    s.counters.search_steps = 0;
    s
}

pub fn segs<S: vmspace::arena::Store, I: Source>(
    a: &Arena<S, I>,
) -> Vec<(SegmentKind, usize, usize, usize)> {
    a.walk(SegmentKinds::ALL.union(SegmentKinds::ALL))
        .filter(|s| s.kind != SegmentKind::Span)
        .map(|s| (s.kind, s.range.base().0, s.range.limit().0, s.requested.0))
        .collect()
}

#[allow(unused_imports)] // not every test file uses the short names
pub use SegmentKind::{Allocated as Al, Free as Fr, Unflushed as Un};

pub fn with_arena(q: usize, f: impl FnOnce(&mut A<'_>)) {
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("r", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    f(&mut a);
}

/// Calls `op`, which must fail with an error `ok_err` accepts, and checks
/// that nothing but bad_frees/failures changed, and that `bad` of them did.
pub fn refused<S: vmspace::arena::Store, I: Source>(
    a: &mut Arena<S, I>,
    what: &str,
    bad: bool,
    op: impl FnOnce(&mut Arena<S, I>) -> Result<(), ArenaError>,
    ok_err: impl Fn(&ArenaError) -> bool,
) {
    let before = snap(a);
    let r = op(a);
    assert!(r.is_err(), "{what}: {r:?}");
    let after = snap(a);
    if bad {
        assert_eq!(after.counters.bad_frees, before.counters.bad_frees + 1, "{what}: bad_frees");
    } else {
        assert_eq!(after.counters.bad_frees, before.counters.bad_frees, "{what}: bad_frees");
    }
    assert_eq!(masked(after), masked(before), "{what}: the refused call changed the arena");
    assert!(r.as_ref().is_err_and(ok_err), "{what}: {r:?}");
}

pub fn is_bad_free(e: &ArenaError) -> bool {
    matches!(e, ArenaError::BadFree { .. })
}
