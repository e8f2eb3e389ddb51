//! Written by a reviewer outside the project (round 73). Checks claims of
//! `VmSource` (src/sources/vm.rs) and `KeepFree` (src/sources/keep.rs):
//! the flush threshold's overflow, batched give-backs never handed out
//! before their flush, and `N = 0` keeping nothing.

use vmspace::arena::{ArenaError, SliceStore, Source};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace::{Range, Size};
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 64;

fn source<'a>(
    sim: &'a SimBackend<'a>,
    pages: usize,
    t: &'a mut [u8],
    h: &'a mut [u8],
) -> VmSource<&'a SimBackend<'a>, SliceStore<'a>> {
    let vm = Vm::reserve(sim, Size(pages * PAGE), Size(PAGE)).unwrap();
    VmSource::new(vm, SliceStore::new(t), SliceStore::new(h)).unwrap_or_else(|_| panic!("source"))
}

/// `set_flush_threshold(usize::MAX)`: the bytes overflow; the error is
/// `Overflow` and the threshold in force stays as it was.
#[test]
fn a_threshold_that_overflows_changes_nothing() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = source(&sim, 64, &mut t, &mut h);
    src.set_flush_threshold(5).unwrap();
    assert_eq!(src.set_flush_threshold(usize::MAX), Err(ArenaError::Overflow));
    assert_eq!(src.flush_threshold(), 5);
    src.check().unwrap();
}

/// Batched: a range given back is never handed out again before a flush
/// while there is other room; it shows as unflushed; `flush` returns its
/// bytes, then zero.
#[test]
fn a_batched_give_back_is_not_reissued_before_its_flush() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut src = source(&sim, 64, &mut t, &mut h);
    src.set_flush_threshold(1000).unwrap();
    let first: Vec<Range> = (0..8).map(|_| src.import(Size(PAGE), Size(PAGE)).unwrap()).collect();
    let gone = first[3];
    src.release(gone).unwrap();
    assert_eq!(src.space().sizes().unflushed, Size(PAGE));
    src.check().unwrap();
    // 56 pages of room remain: none of those imports may be `gone`.
    let mut more = vec![];
    for _ in 0..56 {
        let r = src.import(Size(PAGE), Size(PAGE)).unwrap();
        assert!(!r.overlaps(&gone), "reissued {r:?} before its flush");
        more.push(r);
    }
    src.check().unwrap();
    assert_eq!(src.flush(), Size(PAGE));
    assert_eq!(src.flush(), Size(0));
    let again = src.import(Size(PAGE), Size(PAGE)).unwrap();
    assert_eq!(again, gone);
    src.check().unwrap();
}

/// "`N = 0` keeps nothing: an import quantum alone": every give-back goes
/// below; imports are in multiples of the quantum given.
#[test]
fn keep_free_of_zero_keeps_nothing() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let src = source(&sim, 64, &mut t, &mut h);
    let mut k = KeepFree::<_, 0>::new(src, Size(4 * PAGE));
    assert_eq!(k.quantum(), Size(4 * PAGE));
    for _ in 0..3 {
        let r = k.import(Size(4 * PAGE), Size(4 * PAGE)).unwrap();
        k.release(r).unwrap();
        assert!(k.kept().is_empty());
    }
    let c = k.counts();
    assert_eq!((c.imported, c.reused, c.kept, c.released), (3, 0, 0, 3));
    k.check().unwrap();
    assert!(k.into_inner().is_ok());
}
