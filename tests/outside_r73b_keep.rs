//! Outside review r73b: `KeepFree` over a `VmSource` on the simulated
//! backend: its counts, `trim()` under an injected unmap failure,
//! `into_inner()`, and an importer dropped with an unflushed span.

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace::Size;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 64;

#[test]
fn counts_trim_failure_and_into_inner_over_a_vm_source() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    fi.only(&[Op::Unmap]);
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let vm = Vm::reserve(&fi, Size(256 * PAGE), Size(PAGE)).unwrap();
    let src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    let mut keep = KeepFree::<_, 2>::new(src, Size(4 * PAGE));
    assert_eq!(keep.quantum(), Size(4 * PAGE));
    {
        let (mut at, mut ah) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(16),
            SliceStore::new(&mut at),
            SliceStore::new(&mut ah),
            &mut keep,
        )
        .unwrap();
        for _ in 0..10 {
            let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
            let b = heap.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
            heap.free(a, Size(16)).unwrap();
            heap.free(b, Size(8 * PAGE)).unwrap();
        }
        heap.check().unwrap();
    }
    let c = keep.counts();
    // Two span sizes, each imported once, then reused; both kept at the end.
    assert_eq!((c.imported, c.reused, c.kept, c.released, c.release_failures), (2, 18, 20, 0, 0));
    assert_eq!(keep.kept().len(), 2);
    let kept = keep.kept_size();
    assert_eq!(keep.inner().vm().mapped(), kept, "kept spans stay mapped");
    // The unmap of the first kept span fails: it stays kept, counted.
    fi.fail_nth(1);
    let given = keep.trim();
    let c2 = keep.counts();
    assert_eq!(c2.release_failures, 1);
    assert_eq!(c2.released, 1);
    assert_eq!(keep.kept().len(), 1);
    assert_eq!(given.0 + keep.kept_size().0, kept.0);
    assert_eq!(keep.inner().vm().mapped(), keep.kept_size());
    keep.check().unwrap();
    keep.inner().check().unwrap();
    // A failing trim makes into_inner refuse, counting what is kept.
    fi.fail_nth(1);
    let refused = keep.into_inner().err().expect("refused");
    let left = refused.get_ref().kept_size();
    assert_eq!(
        refused.error(),
        ArenaError::InUse { what: "kept spans not given back", size: left }
    );
    let keep = refused.into_inner();
    assert_eq!(keep.counts().release_failures, 2);
    let src = keep.into_inner().unwrap_or_else(|_| panic!("no fault now"));
    assert_eq!(src.vm().mapped(), Size(0));
    src.check().unwrap();
    let vm = src.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!(vm.mapped(), Size(0));
}

/// An importer dropped with an unflushed range: its span goes through
/// `release_unflushed`, counted in `released`, never kept, and the next
/// import (same size) is not that span until the source below flushes.
#[test]
fn an_unflushed_give_back_is_released_not_kept_and_not_reissued() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let vm = Vm::reserve(&sim, Size(256 * PAGE), Size(PAGE)).unwrap();
    let src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    let mut keep = KeepFree::<_, 4>::new(src, Size(32 * PAGE));
    let first;
    {
        let (mut at, mut ah) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(16),
            SliceStore::new(&mut at),
            SliceStore::new(&mut ah),
            &mut keep,
        )
        .unwrap();
        let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
        first = a;
        heap.free_deferred(a, Size(16)).unwrap();
    }
    let c = keep.counts();
    assert_eq!((c.imported, c.kept, c.released, c.release_failures), (1, 0, 1, 0));
    assert!(keep.kept().is_empty());
    assert_eq!(keep.inner().space().sizes().unflushed, Size(32 * PAGE));
    keep.inner().check().unwrap();
    {
        let (mut at, mut ah) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap = Arena::new(
            "heap2",
            Size(16),
            SliceStore::new(&mut at),
            SliceStore::new(&mut ah),
            &mut keep,
        )
        .unwrap();
        let b = heap.alloc(Size(16), Policy::InstantFit).unwrap();
        assert!(b.0 >= first.0 + 32 * PAGE || b.0 + 32 * PAGE <= first.0, "reissued {b:?}");
        // Not flushed below by this import (room was there).
        assert_eq!(heap.source().inner().space().sizes().unflushed, Size(32 * PAGE));
        heap.free(b, Size(16)).unwrap();
    }
    // Give back of the same (kept) span twice is refused and counts nothing.
    let k = keep.kept()[0];
    let before = keep.counts();
    assert!(matches!(keep.release(k), Err(ArenaError::BadFree { .. })));
    assert!(matches!(keep.release_unflushed(k), Err(ArenaError::BadFree { .. })));
    assert_eq!(keep.counts(), before);
    drop(keep);
}
