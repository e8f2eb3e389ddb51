//! Deferred frees next to resizes, partial frees and extends: an unflushed
//! range must never be handed out or merged into free space before
//! `flushed()`.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;

use crate::Store;

fn arena() -> Arena<Store, NoSource> {
    let mut a = Arena::on_pages("def", Size(16), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    a.add(Addr(0x10000), Size(0x1000)).unwrap();
    a
}

fn unflushed_is_intact(a: &Arena<Store, NoSource>, base: Addr, size: usize) {
    let u: Vec<_> = a.walk(SegmentKinds::UNFLUSHED).collect();
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!((u[0].range.base(), u[0].range.size()), (base, Size(size)));
    assert_eq!(a.sizes().unflushed, Size(size));
}

#[test]
fn resize_does_not_grow_into_unflushed() {
    let mut a = arena();
    let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    assert_eq!(y.0, x.0 + 0x100);
    a.free_deferred(y, Size(0x100)).unwrap();
    let r = a.resize(x, Size(0x100), Size(0x180));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    unflushed_is_intact(&a, y, 0x100);
    a.check().unwrap();
}

#[test]
fn free_part_next_to_unflushed_does_not_merge() {
    let mut a = arena();
    let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let z = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    a.free_deferred(y, Size(0x100)).unwrap();
    a.free_part(x, Size(0x80), Size(0x80)).unwrap();
    a.free_part(z, Size(0), Size(0x80)).unwrap();
    unflushed_is_intact(&a, y, 0x100);
    // No allocation takes it.
    let mut got = Vec::new();
    while let Ok(p) = a.alloc(Size(16), Policy::FirstFit) {
        assert!(p.0 + 16 <= y.0 || p.0 >= y.0 + 0x100, "{p} is unflushed");
        got.push(p);
    }
    for p in got {
        a.free(p, Size(16)).unwrap();
    }
    a.check().unwrap();
    assert_eq!(a.flushed(), Size(0x100));
    a.check().unwrap();
}

#[test]
fn extend_next_to_unflushed_does_not_merge() {
    let mut a = arena();
    let top = a.xalloc(&Constraints::new(Size(0x100)).from_top(true)).unwrap();
    assert_eq!(top.0 + 0x100, 0x11000);
    a.free_deferred(top, Size(0x100)).unwrap();
    a.extend(Addr(0x11000), Size(0x1000)).unwrap();
    unflushed_is_intact(&a, top, 0x100);
    let x = a.xalloc(&Constraints::new(Size(0x200)).min_addr(Addr(0x10f00))).unwrap();
    assert!(x.0 >= 0x11000, "{x}");
    assert_eq!(a.largest_free(), Size(0xf00));
    assert!(a
        .walk(SegmentKinds::ALL)
        .all(|s| s.kind != SegmentKind::Free || s.range.base() != top));
    a.check().unwrap();
}

#[test]
fn exact_and_window_never_take_unflushed() {
    let mut a = arena();
    let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    a.free_deferred(x, Size(0x100)).unwrap();
    for p in Policy::ALL {
        for top in [false, true] {
            let c = Constraints::new(Size(16)).exact(x).policy(p).from_top(top);
            assert!(a.xalloc(&c).is_err());
            let c = Constraints::new(Size(16)).max_addr(Addr(x.0 + 0x100)).policy(p).from_top(top);
            assert!(a.xalloc(&c).is_err());
        }
    }
    unflushed_is_intact(&a, x, 0x100);
    a.flushed();
    assert_eq!(a.xalloc(&Constraints::new(Size(16)).exact(x)).unwrap(), x);
    a.free(x, Size(16)).unwrap();
    a.check().unwrap();
}
