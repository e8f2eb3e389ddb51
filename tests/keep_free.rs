//! Model and fault tests of `KeepFree` (an import quantum, spans given back
//! kept for the next imports of their size) between an arena and a
//! `VmSource` on the simulated backend: random operation sequences against
//! the reference model of `workload::arena_ops`, with the arena's, the
//! adapter's and the source's `check()` after every step, and the books
//! that join them (every byte the VM has mapped is the arena's import or a
//! kept span, never both); then the same under random backend failures, at
//! several buffer offsets.

use proptest::prelude::*;
use vmspace::arena::{Arena, PageStore, Policy, SegmentKinds, Source, Store};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{FaultInjector, PageOps, Size};
use vmspace_workload::arena_ops::{ArenaDriver, ArenaOpConfig, ArenaOpGen};

/// Live allocations and added spans the model can track.
const N: usize = 512;
const M: usize = 64;
const PAGE: usize = 4096;
/// Spans kept at most.
const KEEP: usize = 3;

type Keeper<P> = KeepFree<VmSource<P, PageStore<P>>, KEEP>;

/// A `VmSource` of 4096 pages through `ops`, under a `KeepFree` importing
/// `pages` pages at least.
fn keeper<P: PageOps + Clone>(ops: P, pages: usize) -> Keeper<P> {
    let vm = Vm::reserve(ops.clone(), Size(4096 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(ops.clone(), Size(64 * PAGE)).unwrap();
    let vms = VmSource::new(vm, tags, PageStore::new(ops, Size(4 * PAGE)).unwrap()).unwrap();
    KeepFree::new(vms, Size(pages * PAGE))
}

/// Every check, and the books between the arena, the adapter and the VM:
/// each imported span and each kept span is one import of the VM source,
/// mapped, none overlapping another; with no fault (`exact`), the VM's
/// mapped bytes are exactly their sum.
fn books<S: Store, P: PageOps>(child: &Arena<S, Keeper<P>>, exact: bool) {
    child.check().unwrap();
    let keep = child.source();
    keep.check().unwrap();
    let vms = keep.inner();
    vms.check().unwrap();
    assert!(keep.kept().len() <= KEEP);
    let imported: Vec<_> =
        child.walk(SegmentKinds::SPANS).filter(|s| s.imported).map(|s| s.range).collect();
    for r in imported.iter().chain(keep.kept()) {
        assert_eq!(vms.space().lookup(r.base()).map(|l| l.0), Some(*r), "{r} not one import");
        assert!(vms.vm().is_mapped(r.base()), "{r} not mapped");
        assert!(r.is_aligned(keep.quantum()), "{r} not whole import quanta");
    }
    for k in keep.kept() {
        assert!(!imported.iter().any(|r| r.overlaps(k)), "kept {k} is the arena's too");
    }
    if exact {
        let sum = child.sizes().imported.0 + keep.kept_size().0;
        assert_eq!(vms.vm().mapped().0, sum);
        assert_eq!(vms.space().sizes().allocated.0, sum);
    }
}

/// Drive `steps` operations through an arena of quantum 64 over
/// `keeper(ops)`, checking the books after each; then drain it and drop it.
fn run<P: PageOps + Clone>(
    ops: P,
    pages: usize,
    seed: u64,
    steps: usize,
    deferred: u32,
    faults: Option<&dyn Fn(Option<u64>)>,
) {
    let mut child =
        Arena::on_pages("child", Size(64), ops.clone(), 8192, keeper(ops, pages)).unwrap();
    let cfg = ArenaOpConfig::new(1 << 40, 2048 * 64, 64).with_spans(false).with_deferred(deferred);
    let mut gen = ArenaOpGen::new(seed, cfg);
    let mut driver = ArenaDriver::<N, M>::new();
    for i in 0..steps {
        let op = gen.next_op(driver.model().occupied(), N);
        if let Some(f) = faults {
            f(Some(i as u64));
        }
        let stepped = driver.step(&mut child, &op);
        if let Some(f) = faults {
            f(None);
        }
        // The driver allows a resource failure (the backend's) in place
        // of a success, provided the arena is unchanged; anything else the
        // model did not expect is an error.
        stepped.unwrap_or_else(|e| panic!("seed {seed:#x} step {i}: {e}"));
        books(&child, faults.is_none());
        if i % 17 == 0 {
            // Trimmed now and then: what is kept goes back to the VM.
            let before = child.source().kept_size();
            if let Some(f) = faults {
                f(Some(!(i as u64)));
            }
            let given = child.source_mut().trim();
            if let Some(f) = faults {
                f(None);
            }
            assert!(given <= before);
            books(&child, faults.is_none());
        }
    }
    driver.drain(&mut child).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
    books(&child, faults.is_none());
    assert_eq!(child.sizes().imported, Size(0), "drained");
    let c = child.source().counts();
    assert_eq!(c.imported + c.reused, child.counters().imports, "every import counted once");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn keep_free_on_sim(
        seed in any::<u64>(),
        pages in prop::sample::select(vec![1usize, 16]),
        deferred in prop::sample::select(vec![0u32, 500]),
    ) {
        let mut buf = vec![0u8; 40 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        run(&sim, pages, seed, 400, deferred, None);
    }
}

/// A heap's alloc/free pair of one small object: one import, every later
/// pair takes the kept span back, and the VM is mapped once.
#[test]
fn a_pair_at_a_span_edge_maps_once() {
    let mut buf = vec![0u8; 40 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut heap = Arena::on_pages("heap", Size(16), &sim, 4096, keeper(&sim, 16)).unwrap();
    let mut mapped_after_first = 0;
    for i in 0..1000 {
        let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
        heap.free(a, Size(16)).unwrap();
        books(&heap, true);
        if i == 0 {
            mapped_after_first = sim.stats().pages_mapped_total;
        }
    }
    assert_eq!(sim.stats().pages_mapped_total, mapped_after_first, "no page mapped again");
    let c = heap.source().counts();
    assert_eq!((c.imported, c.reused, c.kept, c.released), (1, 999, 1000, 0));
    assert_eq!(heap.counters().imports, 1000);
    assert_eq!(heap.source().inner().vm().mapped(), Size(16 * PAGE), "mapped once, kept");
    drop(heap);
    assert_eq!(sim.stats().mapped_pages, 0, "dropped: the kept span went back, unmapped");
}

/// Random backend failures (each map, unmap and protect may fail, part
/// way too) under the VM source, at several buffer offsets: every step
/// either works or is refused as the model allows, the books hold after
/// each, and dropping the arena leaves the VM source consistent.
#[test]
fn random_backend_failures_keep_the_books() {
    let mut injected = 0;
    for (seed, offset) in [(1u64, 0usize), (2, 8), (3, 4095), (4, 64), (5, 1), (6, 2048)] {
        let mut buf = Placed::new(40 << 20, offset);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let inj = FaultInjector::new(&sim);
        // Armed for each step (seeded by the step), part way for odd
        // seeds; cleared between steps, for the checks.
        let arm = |step: Option<u64>| match step {
            Some(i) => {
                inj.fail_randomly(seed << 32 | i, 400_000);
                if seed % 2 == 1 {
                    inj.set_shape(vmspace_shim::FaultShape::PartWay);
                }
            }
            None => inj.clear(),
        };
        run(&inj, 1, seed, 600, 250, Some(&arm));
        inj.clear();
        injected += inj.injected();
    }
    eprintln!("{injected} faults injected");
    assert!(injected >= 40, "only {injected} faults injected");
}

/// A kept span the VM source refuses to take back at a trim stays kept,
/// still mapped and usable; taken again by an import, it is the arena's.
#[test]
fn a_refused_trim_keeps_the_span() {
    let mut buf = vec![0u8; 40 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let mut heap = Arena::on_pages("heap", Size(16), &sim, 4096, keeper(&inj, 16)).unwrap();
    let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
    heap.free(a, Size(16)).unwrap();
    let kept = heap.source().kept()[0];
    inj.only(&[vmspace_shim::Op::Unmap]);
    inj.fail_nth(1);
    assert_eq!(heap.source_mut().trim(), Size(0));
    inj.clear();
    let c = heap.source().counts();
    assert_eq!(c.release_failures, 1);
    match heap.source().kept() {
        [k] => assert_eq!(*k, kept, "refused: still kept"),
        // The VM source could not put it back as it was: stranded, kept there.
        [] => assert!(heap.source().inner().space().lookup(kept.base()).is_some()),
        k => panic!("{k:?}"),
    }
    books(&heap, false);
    let b = heap.alloc(Size(16), Policy::InstantFit).unwrap();
    heap.free(b, Size(16)).unwrap();
    books(&heap, false);
}

/// An arena dropped with a deferred free not yet flushed gives its span
/// back unflushed: `KeepFree` passes it to the VM source, which holds it
/// until its flush, and keeps none of it, so a later importer over the
/// same adapter (borrowed) cannot be handed it before that flush.
#[test]
fn an_unflushed_give_back_is_not_kept_for_the_next_importer() {
    let mut buf = vec![0u8; 40 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut keep = keeper(&sim, 16);
    let span = {
        let mut a = Arena::on_pages("first", Size(16), &sim, 4096, &mut keep).unwrap();
        let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
        a.free_deferred(x, Size(16)).unwrap();
        a.walk(SegmentKinds::SPANS).find(|s| s.imported).unwrap().range
    };
    assert!(keep.kept().is_empty(), "an unflushed span kept: {:?}", keep.kept());
    assert_eq!(keep.inner().space().sizes().unflushed, span.size(), "held by the VM source");
    let mut b = Arena::on_pages("second", Size(16), &sim, 4096, &mut keep).unwrap();
    let y = b.alloc(Size(16), Policy::InstantFit).unwrap();
    assert!(!span.contains_addr(y), "{y} reissued from {span} before its flush");
    b.free(y, Size(16)).unwrap();
    drop(b);
    assert_eq!(keep.kept().len(), 1, "an ordinary give-back is kept");
    keep.check().unwrap();
    keep.inner().check().unwrap();
}

/// A map the backend refuses for want of memory (`InjectedError::Shortage`:
/// `OutOfMemory`) makes `KeepFree` give its kept spans back and ask once
/// more, as its docs say; any other backend failure (the injector's marker,
/// an OS error) comes back as it was, the spans still kept. Over the real
/// VM source, not a mock: the shortage travels up through the VM and the
/// VM source as the system backend's would.
#[test]
fn a_backend_shortage_gives_the_kept_spans_back_and_asks_again() {
    use vmspace_shim::{InjectedError, Op};
    for error in [InjectedError::Shortage, InjectedError::Marker, InjectedError::Os(1)] {
        let mut buf = vec![0u8; 40 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let inj = FaultInjector::new(&sim);
        let mut heap = Arena::on_pages("heap", Size(16), &sim, 4096, keeper(&inj, 16)).unwrap();
        // One span of each of two sizes kept.
        let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
        let b = heap.alloc(Size(32 * PAGE), Policy::InstantFit).unwrap();
        heap.free(a, Size(16)).unwrap();
        heap.free(b, Size(32 * PAGE)).unwrap();
        assert_eq!(heap.source().kept().len(), 2, "{error:?}");
        let mapped = heap.source().inner().vm().mapped();
        // A size no kept span has: an import from the VM source, whose
        // map fails once.
        inj.only(&[Op::Map]);
        inj.set_error(error);
        inj.fail_nth(1);
        let got = heap.alloc(Size(64 * PAGE), Policy::InstantFit);
        inj.clear();
        let c = heap.source().counts();
        if error == InjectedError::Shortage {
            let got = got.unwrap_or_else(|e| panic!("asked again after the shortage: {e}"));
            assert!(heap.source().kept().is_empty(), "kept spans given back first");
            assert_eq!((c.released, c.release_failures), (2, 0));
            heap.free(got, Size(64 * PAGE)).unwrap();
        } else {
            let e = got.expect_err("not a shortage: the failure comes back");
            assert!(e.to_string().contains("map"), "{error:?}: {e}");
            assert_eq!(heap.source().kept().len(), 2, "{error:?}: still kept");
            assert_eq!(heap.source().inner().vm().mapped(), mapped, "{error:?}");
            assert_eq!(c.released, 0);
        }
        books(&heap, true);
    }
}
