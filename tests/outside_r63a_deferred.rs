//! Round 63a (outside reviewer): deferred (unflushed) segments meeting
//! resize, free_part, exact xalloc, imports and teardown.
use vmspace::arena::{Constraints, NoSource, PageStore, SegmentKind, SegmentKinds};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;
fn mstore() -> MStore {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}
fn arena(q: usize) -> Arena<MStore, NoSource> {
    Arena::new("a", Size(q), mstore(), mstore(), NoSource).unwrap()
}

#[test]
fn unflushed_neighbours_block_growth_and_coalescing() {
    let mut a = arena(16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.xalloc(&Constraints::new(Size(0x40)).exact(Addr(0x1000))).unwrap();
    let y = a.xalloc(&Constraints::new(Size(0x40)).exact(Addr(0x1040))).unwrap();
    let z = a.xalloc(&Constraints::new(Size(0x40)).exact(Addr(0x1080))).unwrap();
    a.free_deferred(y, Size(0x40)).unwrap();
    // x cannot grow into y's unflushed range.
    assert_eq!(a.resize(x, Size(0x40), Size(0x50)), Err(ArenaError::NoSpace { size: 0x50 }));
    // Freeing the end of x does not merge with the unflushed y.
    a.free_part(x, Size(0x30), Size(0x10)).unwrap();
    let free: Vec<_> = a.walk(SegmentKinds::FREE).map(|s| s.range.base().0).collect();
    assert_eq!(free, [0x1030, 0x10c0]);
    // Shrinking z puts its end next to the big free segment: merged.
    a.resize(z, Size(0x40), Size(0x10)).unwrap();
    let free: Vec<_> =
        a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.size().0)).collect();
    assert_eq!(free, [(0x1030, 0x10), (0x1090, 0xf70)]);
    a.check().unwrap();
    // Nothing lands on y before the flush, however asked.
    for p in Policy::ALL {
        let r = a.xalloc(
            &Constraints::new(Size(0x10)).min_addr(Addr(0x1040)).max_addr(Addr(0x1080)).policy(p),
        );
        assert!(r.is_err(), "{p:?}: {r:?}");
    }
    assert_eq!(a.flushed(), Size(0x40));
    let free: Vec<_> =
        a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.size().0)).collect();
    assert_eq!(free, [(0x1030, 0x50), (0x1090, 0xf70)]);
    a.resize(x, Size(0x30), Size(0x80)).unwrap();
    a.check().unwrap();
    a.free(x, Size(0x80)).unwrap();
    a.free(z, Size(0x10)).unwrap();
    a.check().unwrap();
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
}

#[test]
fn into_source_waits_for_the_flush_and_gives_nothing_back_before() {
    let mut p = arena(4096);
    p.add(Addr(1 << 32), Size(1 << 24)).unwrap();
    let mut c = Arena::new("c", Size(16), mstore(), mstore(), p).unwrap();
    let x = c.alloc(Size(100), Policy::InstantFit).unwrap();
    let y = c.alloc(Size(100000), Policy::InstantFit).unwrap();
    assert_eq!(c.span_count(), 2);
    c.free_deferred(x, Size(100)).unwrap();
    c.free(y, Size(100000)).unwrap();
    assert_eq!(c.span_count(), 1, "y's span went back at once");
    let before = (c.sizes(), c.source().sizes());
    let r = c.into_source().err().expect("a segment waits for a flush");
    assert_eq!(
        r.error(),
        ArenaError::InUse { what: "segments waiting for a flush", size: Size(112) }
    );
    let mut c = r.into_inner();
    assert_eq!((c.sizes(), c.source().sizes()), before, "nothing given back");
    c.check().unwrap();
    assert_eq!(c.flushed(), Size(112));
    assert_eq!(c.span_count(), 0, "the flush gave the span back");
    let p = c.into_source().unwrap_or_else(|r| panic!("{:?}", r.error()));
    p.check().unwrap();
    assert_eq!(p.sizes().allocated, Size(0));
}

#[test]
fn a_dropped_child_leaves_its_unflushed_span_unflushed_in_the_parent() {
    let mut p = arena(4096);
    p.add(Addr(1 << 32), Size(1 << 24)).unwrap();
    let pr = &mut p;
    {
        let mut c = Arena::new("c", Size(16), mstore(), mstore(), &mut *pr).unwrap();
        let x = c.alloc(Size(100), Policy::InstantFit).unwrap();
        let _live = c.alloc(Size(100), Policy::InstantFit).unwrap();
        let h = c.alloc_handle(Size(5000), Policy::InstantFit).unwrap();
        c.free_deferred(x, Size(100)).unwrap();
        c.free_handle_deferred(h).unwrap();
        c.check().unwrap();
        drop(c);
    }
    p.check().unwrap();
    let s = p.sizes();
    assert_eq!(s.allocated, Size(0), "{s:?}");
    assert!(s.unflushed.0 > 0, "{s:?}");
    assert!(p.walk(SegmentKinds::ALL).all(|g| g.kind != SegmentKind::Allocated));
    // Nothing of it is handed out before the parent's flush.
    let whole = p.alloc(Size(1 << 24), Policy::FirstFit);
    assert!(whole.is_err());
    let u = s.unflushed;
    assert_eq!(p.flushed(), u);
    let whole = p.alloc(Size(1 << 24), Policy::FirstFit).unwrap();
    p.free(whole, Size(1 << 24)).unwrap();
    p.check().unwrap();
}
