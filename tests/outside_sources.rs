//! Written from the documented contracts by a reviewer outside the project,
//! to break them: import sources (`VmSource`, a `VmArena` as a
//! source): argument errors, bad and double releases, flush thresholds,
//! backend faults, and child arenas doing random work over each source
//! with `check()` after every step.

use std::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, PageStore, Policy, Source};
use vmspace::sources::{VmSource, IMPORT_OWNER};
use vmspace::vm::{Vm, VmError};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Range, ShimError, Size};

const PAGE: usize = 4096;

mod outside_common;
use outside_common::XorshiftStar as Rng;

type Src<'s, P> = VmSource<P, PageStore<&'s SimBackend<'s>>>;

fn source<'s, P: PageOps>(sim: &'s SimBackend<'s>, ops: P, pages: usize) -> Src<'s, P> {
    let vm = Vm::reserve(ops, Size(pages * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(sim, Size(PAGE)).unwrap();
    VmSource::new(vm, tags, hash).unwrap()
}

fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

#[test]
fn vm_source_import_argument_errors_change_nothing() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut src = source(&sim, &sim, 16);
    assert_eq!(src.quantum(), Size(PAGE));
    let calls = sim.stats().calls;
    for (size, align) in [
        (0, PAGE),
        (1, PAGE),
        (PAGE + 1, PAGE),
        (PAGE, 3 * PAGE),
        (PAGE, usize::MAX),
        (usize::MAX, PAGE),
        (usize::MAX - PAGE + 1, PAGE),
        (17 * PAGE, PAGE), // bigger than the VM
        (PAGE, 1 << 62),   // alignment no address in the VM has
    ] {
        let res = src.import(Size(size), Size(align));
        assert!(res.is_err(), "import({size:#x}, {align:#x}) = {res:?}");
        src.check().unwrap();
        assert_eq!(src.vm().mapped(), Size(0));
        assert_eq!(src.space().sizes().allocated, Size(0));
    }
    // Only flushes may have reached the backend, nothing was mapped.
    assert_eq!(sim.stats().calls[Op::Map as usize], calls[Op::Map as usize]);
}

#[test]
fn vm_source_bad_and_double_releases_are_refused() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for threshold in [0usize, 1, 3, 100] {
        let mut src = source(&sim, &sim, 32);
        src.set_flush_threshold(threshold).unwrap();
        let a = src.import(Size(4 * PAGE), Size(PAGE)).unwrap();
        let b = src.import(Size(2 * PAGE), Size(4 * PAGE)).unwrap();
        assert!(b.base().is_aligned(Size(4 * PAGE)));
        assert!(src.vm().is_range_mapped(a).unwrap());
        src.check().unwrap();
        let base = src.vm().base().0;
        let bad = [
            r(a.base().0, 2 * PAGE),                 // prefix
            r(a.base().0 + PAGE, 3 * PAGE),          // suffix
            r(a.base().0, 8 * PAGE),                 // a plus more
            r(a.base().0 + 1, 4 * PAGE),             // misaligned
            r(a.base().0, 4 * PAGE - 1),             // odd size
            r(base + 30 * PAGE, PAGE),               // never imported
            r(src.vm().limit().0, PAGE),             // outside the VM
            r(base - PAGE, PAGE),                    // outside the VM
            Range::empty(a.base()),                  // empty
            r(a.base().0, b.limit().0 - a.base().0), // both as one
        ];
        for x in bad {
            let mapped = src.vm().mapped();
            let res = src.release(x);
            assert!(res.is_err(), "threshold {threshold}: release({x}) = {res:?}");
            src.check().unwrap();
            assert_eq!(src.vm().mapped(), mapped, "a refused release changed the VM");
        }
        src.release(a).unwrap();
        src.check().unwrap();
        let res = src.release(a);
        assert!(
            matches!(res, Err(ArenaError::BadFree { .. })),
            "threshold {threshold}: double release: {res:?}"
        );
        src.check().unwrap();
        src.release(b).unwrap();
        assert!(src.release(b).is_err());
        src.flush();
        src.check().unwrap();
        assert_eq!(src.vm().mapped(), Size(0));
        assert_eq!(src.space().sizes().unflushed, Size(0));
    }
}

#[test]
fn vm_source_flush_threshold_is_kept() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut src = source(&sim, &sim, 64);
    let mut rng = Rng(99);
    for threshold in [1usize, 2, 5, 17] {
        src.set_flush_threshold(threshold).unwrap();
        assert_eq!(src.flush_threshold(), threshold);
        let mut held: Vec<Range> = vec![];
        for step in 0..400 {
            if rng.below(2) == 0 || held.is_empty() {
                if let Ok(x) = src.import(Size((1 + rng.below(4)) * PAGE), Size(PAGE)) {
                    assert!(src.vm().is_range_mapped(x).unwrap());
                    assert!(held.iter().all(|h| !h.overlaps(&x)), "overlapping imports");
                    held.push(x);
                }
            } else {
                let x = held.swap_remove(rng.below(held.len()));
                src.release(x).unwrap();
            }
            src.check().unwrap();
            let unfl = src.space().sizes().unflushed.0;
            assert!(
                unfl < threshold * PAGE,
                "threshold {threshold} step {step}: {unfl:#x} unflushed"
            );
            assert_eq!(src.vm().ops().stats().unflushed_pages * PAGE, unfl);
        }
        for x in held {
            src.release(x).unwrap();
        }
    }
    // Lowering the threshold below what waits flushes now.
    src.flush();
    src.set_flush_threshold(100).unwrap();
    let x = src.import(Size(3 * PAGE), Size(PAGE)).unwrap();
    src.release(x).unwrap();
    assert_eq!(src.space().sizes().unflushed, Size(3 * PAGE));
    src.set_flush_threshold(3).unwrap();
    assert_eq!(src.space().sizes().unflushed, Size(0));
    src.check().unwrap();
}

#[test]
fn vm_source_backend_faults_leave_the_range_with_the_caller() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    for threshold in [0usize, 4] {
        let mut src = source(&sim, &fi, 32);
        src.set_flush_threshold(threshold).unwrap();
        // A failed import (the map) changes nothing.
        fi.only(&[Op::Map]);
        fi.fail_nth(1);
        let res = src.import(Size(2 * PAGE), Size(PAGE));
        assert!(
            matches!(res, Err(ArenaError::Vm(VmError::Backend(ShimError::Injected { .. })))),
            "{res:?}"
        );
        src.check().unwrap();
        assert_eq!(src.space().sizes().allocated, Size(0));
        fi.clear();
        let a = src.import(Size(2 * PAGE), Size(PAGE)).unwrap();
        // A failed release (the unmap) keeps the range the caller's.
        fi.only(&[Op::Unmap]);
        fi.fail_nth(1);
        let res = src.release(a);
        assert!(res.is_err(), "{res:?}");
        src.check().unwrap();
        assert!(src.vm().is_range_mapped(a).unwrap());
        assert_eq!(src.space().lookup(a.base()).map(|x| x.1), Some(a.size()));
        fi.clear();
        src.release(a).unwrap();
        src.check().unwrap();
        src.flush();
        assert_eq!(src.vm().mapped(), Size(0));
    }
}

/// A VM whose pages were unmapped deferred and not flushed reports nothing
/// mapped, so `VmSource::new` takes it; its source must still be able to
/// hand those pages out (it could not before: every import failed with
/// `Unflushed`, for ever).
#[test]
fn vm_source_over_a_vm_with_unflushed_pages() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(4 * PAGE), Size(PAGE)).unwrap();
    let all = vm.range();
    vm.map(all).unwrap();
    vm.unmap_deferred(all).unwrap();
    assert_eq!(vm.mapped(), Size(0));
    let tags = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(PAGE)).unwrap();
    // Taken, with the VM's deferred unmaps flushed (it never could map
    // them again otherwise): every page can be imported at once.
    let mut src = VmSource::new(vm, tags, hash).unwrap();
    src.check().unwrap();
    for _ in 0..4 {
        src.import(Size(PAGE), Size(PAGE)).unwrap();
        src.check().unwrap();
    }
}

/// A child arena over a source, random alloc / free / deferred free /
/// flushed, with faults injected in the backend; check() after every step.
fn child_over_vm_source(seed: u64, threshold: usize, rate: u32) {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut src = source(&sim, &fi, 256);
    src.set_flush_threshold(threshold).unwrap();
    fi.only(&[Op::Map, Op::Unmap]);
    fi.fail_randomly(seed, rate);
    let mut rng = Rng(seed | 1);
    {
        let mut child = Arena::on_pages("child", Size(64), &sim, 1 << 12, &mut src).unwrap();
        let mut live: Vec<(Addr, Size)> = vec![];
        for step in 0..1500 {
            match rng.below(10) {
                0..=4 => {
                    let lim = if rng.below(4) == 0 { 400 } else { 20 };
                    let size = Size(64 * (1 + rng.below(lim)));
                    let pol = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit][rng.below(3)];
                    if let Ok(a) = child.alloc(size, pol) {
                        // The memory is mapped and writable.
                        // SAFETY: imports are mapped read-write pages.
                        unsafe { a.as_ptr::<u8>().write(0x5a) };
                        assert!(
                            live.iter().all(|(b, s)| a.0 + size.0 <= b.0 || b.0 + s.0 <= a.0),
                            "overlap"
                        );
                        live.push((a, size));
                    }
                }
                5..=7 if !live.is_empty() => {
                    let (a, s) = live.swap_remove(rng.below(live.len()));
                    if rng.below(3) == 0 {
                        child.free_deferred(a, s).unwrap();
                    } else {
                        child.free(a, s).unwrap();
                    }
                }
                8 => {
                    child.flushed();
                }
                _ if !live.is_empty() => {
                    // A bad free: wrong size, then double free of a freed one.
                    let (a, s) = live[rng.below(live.len())];
                    assert!(child.free(a, Size(s.0 + 64)).is_err());
                    if !live.iter().any(|(b, _)| b.0 == a.0 + 64) {
                        assert!(child.free(Addr(a.0 + 64), s).is_err());
                    }
                }
                _ => {}
            }
            child.check().unwrap_or_else(|e| panic!("seed {seed} step {step}: child: {e}"));
            let src = child.source();
            src.check().unwrap_or_else(|e| panic!("seed {seed} step {step}: source: {e}"));
            assert!(src.vm().mapped() >= child.sizes().imported, "step {step}");
            for (a, _) in &live {
                assert!(src.vm().is_mapped(*a), "seed {seed} step {step}: live {a} unmapped");
            }
        }
        fi.clear();
        for (a, s) in live {
            child.free(a, s).unwrap();
        }
        child.flushed();
        child.check().unwrap();
        assert_eq!(child.sizes().allocated, Size(0));
    }
    src.flush();
    src.check().unwrap();
    // Imports whose give-back failed stay with the dropped child (the
    // documented outcome); everything else is back.
    assert_eq!(src.vm().mapped(), src.space().sizes().allocated);
}

#[test]
fn child_arena_over_vm_source_no_faults() {
    for seed in 1..=4 {
        child_over_vm_source(seed, 0, 0);
        child_over_vm_source(seed, 7, 0);
    }
}

#[test]
fn child_arena_over_vm_source_with_faults() {
    for seed in 1..=6 {
        child_over_vm_source(seed, 0, 50_000);
        child_over_vm_source(seed, 5, 50_000);
    }
}

#[test]
fn two_children_share_a_vm_source_through_a_refcell() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cell = RefCell::new(source(&sim, &sim, 128));
    cell.borrow_mut().set_flush_threshold(3).unwrap();
    let mut rng = Rng(5);
    {
        let mut a = Arena::on_pages("a", Size(16), &sim, 1 << 10, &cell).unwrap();
        let mut b = Arena::on_pages("b", Size(128), &sim, 1 << 10, &cell).unwrap();
        let mut la: Vec<(Addr, Size)> = vec![];
        let mut lb: Vec<(Addr, Size)> = vec![];
        for step in 0..1000 {
            let (ar, l, q) =
                if rng.below(2) == 0 { (&mut a, &mut la, 16) } else { (&mut b, &mut lb, 128) };
            if rng.below(2) == 0 || l.is_empty() {
                let s = Size(q * (1 + rng.below(100)));
                if let Ok(x) = ar.alloc(s, Policy::BestFit) {
                    l.push((x, s));
                }
            } else {
                let (x, s) = l.swap_remove(rng.below(l.len()));
                ar.free(x, s).unwrap();
            }
            ar.check().unwrap();
            cell.borrow().check().unwrap_or_else(|e| panic!("step {step}: {e}"));
        }
        // Allocations of the two children never overlap.
        for (x, s) in &la {
            for (y, t) in &lb {
                assert!(x.0 + s.0 <= y.0 || y.0 + t.0 <= x.0);
            }
        }
        for (x, s) in la {
            a.free(x, s).unwrap();
        }
        for (x, s) in lb {
            b.free(x, s).unwrap();
        }
    }
    let mut src = cell.into_inner();
    src.flush();
    src.check().unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
}

#[test]
fn vm_arena_as_source_errors_and_child() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vma = VmArena::new(&sim, VmArenaConfig::new(Size(4 << 20))).unwrap();
    for (size, align) in [
        (0, PAGE),
        (PAGE + 1, PAGE),
        (PAGE, 0),
        (PAGE, 3 * PAGE),
        (usize::MAX, PAGE),
        (8 << 20, PAGE),
    ] {
        let res = vma.import(Size(size), Size(align));
        assert!(res.is_err(), "import({size:#x}, {align:#x}) = {res:?}");
        vma.check().unwrap();
        assert_eq!(vma.allocated(), Size(0));
    }
    let x = vma.import(Size(3 * PAGE), Size(8 * PAGE)).unwrap();
    assert!(x.base().is_aligned(Size(8 * PAGE)));
    assert_eq!(vma.tract(x.base()).unwrap().owner, IMPORT_OWNER);
    let never = Range::from_size(Addr(vma.base().0 + (1 << 20)), Size(PAGE)).unwrap();
    assert!(vma.release(never).is_err());
    assert!(vma.release(Range::from_size(Addr(x.base().0 + 1), Size(PAGE)).unwrap()).is_err());
    assert!(vma.release(Range::empty(x.base())).is_err());
    let outside = Range::from_size(vma.range().limit(), Size(PAGE)).unwrap();
    assert!(vma.release(outside).is_err());
    vma.release(x).unwrap();
    assert!(vma.release(x).is_err(), "double release");
    vma.check().unwrap();
    // A child with random traffic.
    let mut rng = Rng(77);
    {
        let mut child = Arena::on_pages("child", Size(32), &sim, 1 << 12, &mut vma).unwrap();
        let mut live: Vec<(Addr, Size)> = vec![];
        for step in 0..1500 {
            if rng.below(2) == 0 || live.is_empty() {
                let lim = if rng.below(5) == 0 { 2000 } else { 50 };
                let s = Size(32 * (1 + rng.below(lim)));
                if let Ok(a) = child.alloc(s, Policy::InstantFit) {
                    // SAFETY: imports are committed read-write tracts.
                    unsafe { a.as_ptr::<u8>().write(1) };
                    live.push((a, s));
                }
            } else {
                let (a, s) = live.swap_remove(rng.below(live.len()));
                if rng.below(4) == 0 {
                    child.free_deferred(a, s).unwrap();
                } else {
                    child.free(a, s).unwrap();
                }
            }
            if rng.below(20) == 0 {
                child.flushed();
            }
            child.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
            child.source().check().unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert!(child.source().allocated() >= child.sizes().imported);
        }
        for (a, s) in live {
            child.free(a, s).unwrap();
        }
        child.flushed();
        child.check().unwrap();
    }
    assert_eq!(vma.allocated(), Size(0));
    vma.check().unwrap();
}
