//! Outside review, round 44: `KeepFree`'s vouching ring (src/sources/keep.rs),
//! over a parent arena through a `&RefCell`. All tests here pass (contracts
//! that held).

use vmspace::arena::{ArenaError, Source};
use vmspace::sources::KeepFree;
use vmspace::Size;

const PAGE: usize = 4096;

mod outside_keep_common;
use outside_keep_common::parent;

/// Held: the ring is the last `2 N` handed out, oldest forgotten, and a
/// reuse notes the span again as the newest (keep.rs:34-36 "one of the
/// last `2 N` spans this source handed out, not given back since").
#[test]
fn holds_eviction_order_and_reuse_renotes() {
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut pt, &mut ph, 16);
    let mut k = KeepFree::<_, 1>::new(&p, Size(PAGE));
    let q = Size(PAGE);
    let a = k.import(q, q).unwrap();
    let b = k.import(q, q).unwrap();
    let c = k.import(q, q).unwrap(); // ring: b, c (a forgotten)
    k.release(a).unwrap();
    assert!(k.kept().is_empty(), "a forgotten: given below");
    assert_eq!(k.counts().released, 1);
    k.release(b).unwrap();
    assert_eq!(k.kept(), &[b]);
    assert_eq!(k.import(q, q).unwrap(), b, "reused; ring: c, b");
    let d = k.import(q, q).unwrap(); // ring: b, d (c forgotten)
    k.release(c).unwrap();
    assert!(k.kept().is_empty(), "c forgotten once b was noted again");
    k.release(b).unwrap();
    assert_eq!(k.kept(), &[b], "b noted again by its reuse");
    k.release(d).unwrap();
    assert_eq!(k.kept(), &[b], "full: d below");
    let cnt = k.counts();
    assert_eq!((cnt.imported, cnt.reused, cnt.kept, cnt.released), (4, 1, 2, 3));
    k.check().unwrap();
    drop(k);
    assert_eq!(p.borrow().sizes().allocated, Size(0));
}

/// Held: a range equal to one in the ring, after the span went below and
/// the parent handed the same range to a sibling: given back again to
/// the adapter, it is not kept (it left the ring when it went below) and
/// the parent judges it; with the sibling holding it, the parent takes it
/// (as it would without the adapter), so nothing is kept.
#[test]
fn holds_range_reissued_to_a_sibling_is_not_vouched() {
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut pt, &mut ph, 4);
    let mut k = KeepFree::<_, 1>::new(&p, Size(PAGE));
    let q = Size(PAGE);
    let a = k.import(q, q).unwrap();
    let b = k.import(q, q).unwrap();
    k.release(a).unwrap(); // kept
    k.release(b).unwrap(); // full: below, out of the ring
    let sib = (&p).import(q, q).unwrap();
    assert_eq!(sib, b, "the parent hands b's range to a sibling");
    // A second give-back of b to the adapter: not vouched, to the parent.
    k.release(b).unwrap();
    assert_eq!(k.kept(), &[a], "not kept");
    assert!(matches!(k.release(b), Err(ArenaError::BadFree { .. })), "third: parent refuses");
    k.check().unwrap();
}

/// Held: stacked adapters, `KeepFree<&mut KeepFree<&RefCell<Arena>>>`:
/// the upper keeps what its arena gives back, trims to the lower which
/// keeps it (it handed it out), and a double give-back is refused at the
/// upper (kept there) or at the lower (kept there).
#[test]
fn holds_stacked_adapters_vouch_each_for_its_own() {
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut pt, &mut ph, 16);
    let mut lower = KeepFree::<_, 2>::new(&p, Size(PAGE));
    {
        let mut upper = KeepFree::<_, 1>::new(&mut lower, Size(2 * PAGE));
        let q = Size(2 * PAGE);
        let a = upper.import(q, q).unwrap();
        upper.release(a).unwrap();
        assert!(matches!(upper.release(a), Err(ArenaError::BadFree { .. })));
        assert_eq!(upper.trim(), q);
        assert_eq!(upper.inner().kept(), &[a], "the lower keeps it");
        assert!(matches!(upper.release(a), Err(ArenaError::BadFree { .. })));
        assert_eq!(upper.import(q, q).unwrap(), a, "from the lower's kept");
        upper.release(a).unwrap();
        upper.check().unwrap();
        upper.inner().check().unwrap();
    }
    lower.check().unwrap();
    assert_eq!(lower.kept().len(), 1, "the upper's drop gave it to the lower");
    drop(lower);
    assert_eq!(p.borrow().sizes().allocated, Size(0));
}
