//! Outside review, round 45a: an allocation held by a handle is not one
//! made by address: `free`, `free_deferred`, `free_part` and `resize` by
//! address must refuse it (resize.rs: "made by address ... not by handle"),
//! in an arena importing through `KeepFree`; and a handle freed through its
//! deferred path cannot be freed again by a stale handle after the flush
//! re-issues the same place.

use vmspace::arena::{Arena, ArenaError, Handle, NoSource, Policy, SliceStore};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Size};

const Q: usize = 4096;

#[test]
fn by_address_calls_refuse_a_held_allocation() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p =
        Arena::new("parent", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    p.add(Addr(1 << 20), Size(32 * Q)).unwrap();
    let mut k = KeepFree::<_, 2>::new(&mut p, Size(Q));
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
            .unwrap();
    let hd = heap.alloc_handle(Size(3 * Q), Policy::InstantFit).unwrap();
    let a = hd.addr();
    let s0 = heap.sizes();
    assert!(heap.free(a, Size(3 * Q)).is_err(), "free by address of a held allocation");
    assert!(
        heap.free_deferred(a, Size(3 * Q)).is_err(),
        "free_deferred by address of a held allocation"
    );
    let fp = heap.free_part(a, Size(Q), Size(Q));
    assert!(fp.is_err(), "free_part of a held allocation: {fp:?}");
    let fp = heap.free_part(a, Size(0), Size(3 * Q));
    assert!(fp.is_err(), "free_part (whole) of a held allocation: {fp:?}");
    let rs = heap.resize(a, Size(3 * Q), Size(Q));
    assert!(rs.is_err(), "resize of a held allocation: {rs:?}");
    assert_eq!(heap.sizes(), s0);
    heap.check().unwrap();
    assert_eq!(heap.free_handle(hd), Ok(Size(3 * Q)));
    heap.check().unwrap();
}

#[test]
fn stale_handles_after_deferred_free_and_flush() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p =
        Arena::new("parent", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    p.add(Addr(1 << 20), Size(32 * Q)).unwrap();
    let mut k = KeepFree::<_, 2>::new(&mut p, Size(Q));
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
            .unwrap();
    let mut stale: Vec<Handle> = Vec::new();
    for round in 0..50 {
        let a = heap.alloc_handle(Size(64 + 16 * (round % 5)), Policy::InstantFit).unwrap();
        let b = heap.alloc_handle(Size(Q), Policy::InstantFit).unwrap();
        assert_eq!(heap.free_handle_deferred(a), Ok(Size(64 + 16 * (round % 5))));
        // Freed but unflushed: a second free of it is refused.
        assert!(matches!(heap.free_handle(a), Err(ArenaError::BadHandle { .. })));
        assert!(heap.free_handle_deferred(a).is_err());
        heap.flushed();
        heap.free_handle(b).unwrap();
        stale.push(a);
        stale.push(b);
        // A new allocation at the same place; every stale handle refused.
        let c = heap.alloc_handle(Size(64 + 16 * (round % 5)), Policy::InstantFit).unwrap();
        for s in &stale {
            if *s == c {
                continue;
            }
            let before = heap.sizes();
            let r = heap.free_handle(*s);
            assert!(r.is_err(), "round {round}: stale handle {s:?} freed (live {c:?})");
            assert_eq!(heap.sizes(), before);
        }
        assert!(heap.lookup_handle(c).is_some());
        heap.free_handle(c).unwrap();
        heap.check().unwrap();
        heap.source().check().unwrap();
    }
    assert_eq!(heap.sizes().imported, Size(0));
}
