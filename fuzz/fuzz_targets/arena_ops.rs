//! Fuzz the arena with the operation enum the model tests and the kernel's
//! KUnit suites use: the input's first byte picks the quantum and whether the
//! arena imports from a parent arena; the rest decodes into `ArenaOp`s, each
//! applied to the arena and to the reference model by `ArenaDriver`, which
//! checks outcomes, sizes, counters and `check()` after every step. Here,
//! also after every step: `largest_free()` and `fragmentation()` against the
//! free segments the walk shows. An importing arena, at the end, gives its
//! wholly free spans back (none may stay, and the parent's books follow),
//! and with nothing live or waiting for a flush goes back to its source,
//! leaving the parent with nothing allocated.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vmspace::arena::{Arena, ArenaError, NoSource, SegmentKind, SegmentKinds, Source, Store};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Size};
use vmspace_workload::arena_ops::{ArenaDriver, ArenaOp, ArenaOpConfig};

/// `largest_free()` and `fragmentation()` against the walk's free segments.
fn check_free_space<S: Store, I: Source>(a: &Arena<S, I>) {
    let (mut largest, mut free) = (0usize, 0usize);
    for s in a.walk(SegmentKinds::FREE) {
        largest = largest.max(s.range.size().0);
        free += s.range.size().0;
    }
    assert_eq!(a.largest_free(), Size(largest), "largest_free against the walk");
    let expected =
        if free == 0 { 0 } else { 1000 - (1000 * largest as u128 / free as u128) as u32 };
    assert_eq!(
        a.fragmentation(),
        expected,
        "fragmentation of {free:#x} free, largest {largest:#x}"
    );
}

/// The imported spans whose one segment is free, wholly.
fn wholly_free_imported<S: Store, I: Source>(a: &Arena<S, I>) -> usize {
    let (mut n, mut span) = (0, None);
    for s in a.walk(SegmentKinds::ALL) {
        match s.kind {
            SegmentKind::Span => span = s.imported.then_some(s.range),
            SegmentKind::Free if span == Some(s.range) => n += 1,
            _ => {}
        }
    }
    n
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let q = [1usize, 16, 4096][head as usize % 3];
    let cfg = ArenaOpConfig::new(1 << 40, 1024 * q, q);
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut driver = ArenaDriver::<256, 32>::new();
    if head & 0x80 == 0 {
        let mut a = Arena::on_pages("fuzz", Size(q), &sim, 4096, NoSource).unwrap();
        if head & 0x40 != 0 {
            a.set_mtbf(u64::from(head), 13);
        }
        while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
            driver.step(&mut a, &op).unwrap_or_else(|e| panic!("{e}"));
            check_free_space(&a);
        }
    } else {
        // Child importing from a parent with one big span elsewhere.
        let mut p = Arena::on_pages("parent", Size(4096), &sim, 1024, NoSource).unwrap();
        p.add(Addr(1 << 44), Size(1 << 24)).unwrap();
        let parent = RefCell::new(p);
        let mut a = Arena::on_pages("fuzz", Size(q), &sim, 4096, &parent).unwrap();
        if head & 0x40 != 0 {
            a.set_mtbf(u64::from(head), 13);
        }
        while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
            driver.step(&mut a, &op).unwrap_or_else(|e| panic!("{e}"));
            check_free_space(&a);
            parent.borrow().check().unwrap_or_else(|e| panic!("parent: {e}"));
            assert_eq!(parent.borrow().sizes().allocated, a.sizes().imported);
        }
        let imported = a.sizes().imported;
        let gone = a.give_back_free_spans();
        a.check().unwrap_or_else(|e| panic!("after the give-back: {e}"));
        parent.borrow().check().unwrap_or_else(|e| panic!("parent after the give-back: {e}"));
        assert_eq!(a.sizes().imported, Size(imported.0 - gone.0));
        assert_eq!(parent.borrow().sizes().allocated, a.sizes().imported);
        assert_eq!(wholly_free_imported(&a), 0, "a wholly free imported span stayed");
        check_free_space(&a);
        let idle = a.live() == 0 && a.sizes().unflushed.is_zero();
        match a.into_source() {
            Ok(_) => {
                assert!(idle, "into_source took an arena with allocations or unflushed segments");
                assert!(parent.borrow().sizes().allocated.is_zero(), "spans left in the parent");
            }
            Err(refused) => {
                assert!(!idle, "into_source refused an idle arena: {}", refused.error());
                assert!(matches!(refused.error(), ArenaError::InUse { .. }), "{}", refused.error());
                refused.into_inner().check().unwrap();
            }
        }
        parent.borrow().check().unwrap_or_else(|e| panic!("parent at the end: {e}"));
    }
});
