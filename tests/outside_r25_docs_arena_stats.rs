//! Outside review (round 25): the arena's rustdoc taken as a contract.
//! Statistics and limits: the segment walk, fragmentation and the free
//! histogram, `on_pages`' tag room, `set_mtbf`.

mod outside_r25_arena_common;

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, MIN_TAGS,
};
use vmspace::{Addr, Size};

use outside_r25_arena_common::{arena, bufs, total_ok};

#[test]
fn segment_walk_reports_requested_and_held() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let h = a.alloc_handle(Size(5), Policy::FirstFit).unwrap();
    let x = a.alloc(Size(17), Policy::FirstFit).unwrap();
    let segs: Vec<_> = a.walk(SegmentKinds::ALLOCATED).collect();
    assert_eq!(segs.len(), 2);
    assert_eq!((segs[0].requested, segs[0].held, segs[0].range.size()), (Size(5), true, Size(16)));
    assert_eq!(
        (segs[1].requested, segs[1].held, segs[1].range.size()),
        (Size(17), false, Size(32))
    );
    assert!(segs.iter().all(|s| s.kind == SegmentKind::Allocated));
    let spans: Vec<_> = a.walk(SegmentKinds::SPANS).collect();
    assert_eq!(spans.len(), 1);
    assert!(!spans[0].imported);
    a.free(x, Size(17)).unwrap();
    a.free_handle(h).unwrap();
    total_ok(&a);
}

#[test]
fn fragmentation_and_histogram() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    assert_eq!((a.fragmentation(), a.largest_free()), (0, Size(0)));
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    assert_eq!(a.fragmentation(), 0);
    let x = a.alloc(Size(0x1000), Policy::FirstFit).unwrap();
    // Free every other 16: 128 free pieces of 16, largest 16 of 2048: 992.
    let mut cur = x.0;
    for _ in 0..128 {
        a.free_part(Addr(cur), Size(16), Size(16)).unwrap();
        cur += 32;
    }
    assert_eq!(a.largest_free(), Size(16));
    assert_eq!(a.fragmentation(), 1000 - 1000 * 16 / 2048);
    let h = a.free_histogram();
    assert_eq!(h[4], 128);
    assert_eq!(h.iter().sum::<usize>(), 128);
    total_ok(&a);
}

/// on_pages: "with room for exactly max_tags tags"; fewer than MIN_TAGS is
/// InvalidArgument.
#[test]
fn on_pages_holds_exactly_max_tags() {
    use vmspace_shim::sim::SimBackend;
    let mut buf = vec![0u8; 1 << 21];
    let sim = SimBackend::new(&mut buf, 256).unwrap();
    let r = Arena::on_pages("p", Size(16), &sim, MIN_TAGS - 1, NoSource).map_err(ArenaError::from);
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
    for max in [MIN_TAGS, MIN_TAGS + 1, 100, 257] {
        let mut a = Arena::on_pages("p", Size(16), &sim, max, NoSource).unwrap();
        a.add(Addr(0x10000), Size(0x100000)).unwrap();
        let mut live = vec![];
        loop {
            match a.alloc(Size(16), Policy::FirstFit) {
                Ok(x) => {
                    live.push(x);
                    // Free every other one so each allocation needs a tag.
                    if live.len() % 2 == 0 {
                        let y = live[live.len() - 2];
                        a.free(y, Size(16)).unwrap();
                        live.remove(live.len() - 2);
                        let _ = a.alloc(Size(32), Policy::FirstFit).map(|z| live.push(z));
                    }
                }
                Err(ArenaError::TagsExhausted) => break,
                Err(e) => panic!("{max}: {e:?}"),
            }
            assert!(a.tags_in_use().0 as usize <= max);
        }
        let (used, cap) = a.tags_in_use();
        assert_eq!(cap as usize, max, "room for exactly max_tags");
        assert!(used as usize + 4 > max, "{max}: stopped with {used} of {cap} in use");
        a.check().unwrap();
        drop(live);
    }
}

/// set_mtbf: "Fail each allocating operation (alloc, xalloc, add, extend,
/// import, and the partial frees and resizes that need tags or grow) with
/// probability 1 / mtbf"; frees are not allocating operations.
#[test]
fn mtbf_one_fails_every_allocating_operation_and_no_free() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let z = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let h = a.alloc_handle(Size(0x10), Policy::FirstFit).unwrap();
    a.free(y, Size(0x100)).unwrap();
    a.set_mtbf(1, 1);
    let before = a.walk(SegmentKinds::ALL).collect::<Vec<_>>();
    assert_eq!(a.alloc(Size(16), Policy::InstantFit), Err(ArenaError::Injected));
    assert_eq!(a.xalloc(&Constraints::new(Size(16))), Err(ArenaError::Injected));
    assert!(matches!(a.alloc_handle(Size(16), Policy::BestFit), Err(ArenaError::Injected)));
    assert_eq!(a.add(Addr(0x10000), Size(0x100)), Err(ArenaError::Injected));
    assert_eq!(a.extend(Addr(0x2000), Size(0x100)), Err(ArenaError::Injected));
    assert_eq!(
        a.resize(x, Size(0x100), Size(0x80)),
        Err(ArenaError::Injected),
        "shrink needs a tag"
    );
    assert_eq!(a.resize(x, Size(0x100), Size(0x180)), Err(ArenaError::Injected), "grow");
    assert_eq!(a.free_part(x, Size(0x40), Size(0x40)), Err(ArenaError::Injected));
    assert_eq!(a.walk(SegmentKinds::ALL).collect::<Vec<_>>(), before, "nothing changed");
    assert_eq!(a.counters().injected, 8);
    assert_eq!(a.counters().failures, 8);
    // Not allocating: these succeed.
    a.resize(x, Size(0x100), Size(0xf1)).unwrap();
    a.free_part(z, Size(0), Size(0x100)).unwrap();
    a.free_deferred(x, Size(0xf1)).unwrap();
    a.flushed();
    a.free_handle(h).unwrap();
    a.set_mtbf(0, 0);
    assert!(a.alloc(Size(16), Policy::InstantFit).is_ok());
    a.check().unwrap();
}
