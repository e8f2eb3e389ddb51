//! Batched give-backs and the freed-but-not-flushed state, in user space.
//!
//! A batched [`VmSource`] unmaps what it is given back without a flush and
//! keeps the range unflushed in its inner arena until one flush completes
//! the batch. The model driver of `workload::batched_ops` checks after every
//! step that nothing waiting is reissued, that the arena's walk and sizes
//! show exactly the waiting ranges, and `check()`. The simulated backend
//! refuses to map a page whose unmap is not flushed, so a reissue before the
//! flush fails at the backend as well as in the model.

use proptest::prelude::*;

use vmspace::arena::{Arena, ArenaError, PageStore, Policy, SegmentKinds};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::sim::{at_offsets, PageState, SimBackend};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, Op, PageOps, Protection, Range, ShimError, Size,
};
use vmspace_user::MmapBackend;
use vmspace_workload::batched_ops::{self, BatchedDriver, BatchedOpGen};

const PAGE: usize = 4096;
/// Pages in the source's VM: small enough that imports often find no room
/// but for what waits for its flush.
const VM_PAGES: usize = 512;

fn source<P: PageOps + Clone>(ops: P, threshold: usize) -> VmSource<P, PageStore<P>> {
    let vm = Vm::reserve(ops.clone(), Size(VM_PAGES * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(ops.clone(), Size(64 * PAGE)).unwrap();
    let hash = PageStore::new(ops, Size(4 * PAGE)).unwrap();
    let mut s = VmSource::new(vm, tags, hash).unwrap();
    s.set_flush_threshold(threshold).unwrap();
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batched_give_backs_match_the_model_on_sim(
        seed in any::<u64>(),
        threshold in prop::sample::select(vec![1usize, 4, 16, 64, 1 << 20]),
    ) {
        at_offsets(2, 4 << 20, |off, buf| {
            let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
            let mut s = source(&sim, threshold);
            let stats = batched_ops::run(&mut s, seed, 600)
                .unwrap_or_else(|e| panic!("offset {off} seed {seed:#x} threshold {threshold}: {e}"));
            assert!(stats.imports > 50 && stats.give_backs > 20, "{stats:?}");
            // One backend flush per source flush, and only then.
            assert_eq!(sim.stats().flushes, s.space().counters().flushes, "{stats:?}");
            assert_eq!(sim.stats().unflushed_pages, 0);
            if threshold < VM_PAGES {
                // A give-back flushes when it reaches the threshold.
                assert!(stats.max_waiting_pages < threshold + 16, "{stats:?}");
            }
        });
    }

    #[test]
    fn batched_give_backs_match_the_model_on_mmap(seed in any::<u64>()) {
        let mut s = source(MmapBackend::new(), 8);
        let stats = batched_ops::run(&mut s, seed, 400).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(stats.give_backs > 20);
    }
}

/// Batched give-backs on the simulated backend: the waiting pages are
/// unflushed in the backend (and keep their contents), the inner arena
/// shows them, and one flush completes them all.
#[test]
fn waiting_ranges_are_unflushed_in_the_backend_and_in_the_arena() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut s = source(&sim, 8);
    use vmspace::arena::Source;
    let a = s.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    let b = s.import(Size(3 * PAGE), Size(PAGE)).unwrap();
    s.release(a).unwrap();
    s.release(b).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 5);
    assert_eq!(sim.page_state(a.base()), Some(PageState::Unflushed));
    assert_eq!(s.space().sizes().unflushed, Size(5 * PAGE));
    let waiting: Vec<Range> = s.space().walk(SegmentKinds::UNFLUSHED).map(|x| x.range).collect();
    assert_eq!(waiting, [a, b]);
    s.check().unwrap();
    // The inner arena will not give either range out again.
    let c = s.import(Size(5 * PAGE), Size(PAGE)).unwrap();
    assert!(!c.overlaps(&a) && !c.overlaps(&b));
    // A fourth page reaches the threshold of 8: one flush for the batch.
    s.release(c).unwrap();
    assert_eq!((sim.stats().unflushed_pages, sim.stats().flushes), (0, 1));
    assert_eq!(s.space().sizes().unflushed, Size(0));
    assert_eq!(s.space().counters().flushes, 1);
    s.check().unwrap();
    // Unbatching flushes what waits.
    let d = s.import(Size(PAGE), Size(PAGE)).unwrap();
    s.release(d).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 1);
    // Lowering the threshold to what waits (or below) flushes it; above, not.
    s.set_flush_threshold(2).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 1);
    s.set_flush_threshold(1).unwrap();
    assert_eq!((sim.stats().unflushed_pages, sim.stats().flushes), (0, 2));
    let d = s.import(Size(PAGE), Size(PAGE)).unwrap();
    s.release(d).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 0, "at the threshold of 1");
    s.set_flush_threshold(4).unwrap();
    let d = s.import(Size(PAGE), Size(PAGE)).unwrap();
    s.release(d).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 1);
    s.set_flush_threshold(0).unwrap();
    assert_eq!((sim.stats().unflushed_pages, sim.stats().flushes), (0, 4));
    let e = s.import(Size(PAGE), Size(PAGE)).unwrap();
    s.release(e).unwrap();
    assert_eq!(sim.stats().unflushed_pages, 0, "unbatched give-backs flush at once");
    s.check().unwrap();
}

/// An import that finds room only in what waits for its flush flushes
/// first, then takes it.
#[test]
fn an_import_short_of_room_flushes_what_waits() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut s = source(&sim, 1 << 20);
    use vmspace::arena::Source;
    let all = s.import(Size(VM_PAGES * PAGE), Size(PAGE)).unwrap();
    s.release(all).unwrap();
    assert_eq!(sim.stats().unflushed_pages, VM_PAGES);
    let again = s.import(Size(VM_PAGES * PAGE), Size(PAGE)).unwrap();
    assert_eq!(again, all);
    assert_eq!(sim.stats().flushes, 1);
    assert_eq!(s.space().counters().flushes, 1);
    // Past the VM's size, nothing waits: no room, and no flush.
    s.release(again).unwrap();
    s.flush();
    assert!(matches!(
        s.import(Size((VM_PAGES + 1) * PAGE), Size(PAGE)),
        Err(ArenaError::NoSpace { .. })
    ));
    assert_eq!(sim.stats().flushes, 2);
    s.check().unwrap();
}

/// The backend's contract, seen from the VM: mapping a range whose deferred
/// unmap is not flushed is refused by the simulated backend.
#[test]
fn the_vm_cannot_remap_an_unflushed_range() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(16 * PAGE), Size(PAGE)).unwrap();
    let r = Range::from_size(vm.base(), Size(4 * PAGE)).unwrap();
    vm.map(r).unwrap();
    vm.unmap_deferred(r).unwrap();
    assert_eq!(vm.mapped(), Size(0));
    let e = vm.map(r).unwrap_err();
    assert_eq!(e, vmspace::vm::VmError::Backend(ShimError::Unflushed(r)));
    vm.check().unwrap();
    assert_eq!(vm.flush(), 4);
    vm.map(r).unwrap();
    vm.check().unwrap();
}

/// Every failure position of the backend's map and unmap, at several buffer
/// placements, failing cleanly and part way (an unmap that changed a prefix
/// of its range, which the source puts back read-write): a failed import
/// or give-back changes nothing the source's importers can see, the model
/// and `check()` agree after every step, and every page the source has
/// mapped (all imported) is read-write.
#[test]
fn every_map_and_unmap_failure_position() {
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        at_offsets(3, 4 << 20, |off, buf| {
            let run = |n: u64, buf: &mut vmspace_shim::sim::Placed| {
                let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
                let inj = FaultInjector::new(&sim);
                inj.only(&[Op::Map, Op::Unmap]);
                inj.set_shape(shape);
                let mut s = source(&inj, 16);
                inj.fail_nth(n);
                let what = format!("{shape:?}, offset {off}, failing call {n}");
                // `batched_ops::run`, step by step, with the pages checked.
                let (mut gen, mut driver) =
                    (BatchedOpGen::new(0xba7c4), BatchedDriver::new(0xba7c4));
                for step in 0..150 {
                    let op = gen.next_op(driver.live());
                    driver.step(&mut s, op).unwrap_or_else(|e| panic!("{what}: {e}"));
                    for run in s.vm().mapped_runs() {
                        for page in (run.base().0..run.limit().0).step_by(PAGE) {
                            let state = sim.page_state(Addr(page));
                            let rw = Some(PageState::Mapped(Protection::ReadWrite));
                            assert_eq!(state, rw, "{what}, step {step}: imported page {page:#x}");
                        }
                    }
                }
                let stats = driver.finish(&mut s).unwrap_or_else(|e| panic!("{what}: {e}"));
                drop(s);
                assert_eq!(sim.stats().reservations, 0);
                (inj.eligible_calls(), inj.injected(), inj.changed_part_way(), stats)
            };
            let (calls, _, _, stats) = run(0, buf);
            assert!(calls > 50 && stats.flushes > 2, "{calls} calls, {stats:?}");
            let mut part_way = 0;
            for n in 1..=calls {
                let (_, injected, changed, stats) = run(n, buf);
                assert_eq!(injected, 1, "offset {off}: call {n} of {calls} was not reached");
                assert!(stats.backend_failures <= 1, "{stats:?}");
                part_way += changed;
            }
            // The part-way pass reaches the put-back (give-backs of more
            // than one page whose unmap fails).
            assert_eq!(part_way > 0, shape == FaultShape::PartWay, "{shape:?}: {part_way}");
        });
    }
}

/// The span an arena over `s` imports for a `pages`-page allocation it then
/// frees deferred, and drops unflushed: what `Arena`'s `Drop` gives back
/// through `Source::release_unflushed`.
fn drop_an_importer_unflushed<P: PageOps>(
    s: &mut VmSource<P, PageStore<P>>,
    pages: usize,
) -> Range {
    let mut child: Arena<PageStore<MmapBackend>, _> =
        Arena::on_pages("importer", Size(PAGE), MmapBackend::new(), 1024, &mut *s).unwrap();
    let x = child.alloc(Size(pages * PAGE), Policy::InstantFit).unwrap();
    child.free_deferred(x, Size(pages * PAGE)).unwrap();
    let spans: Vec<Range> = child.walk(SegmentKinds::SPANS).map(|g| g.range).collect();
    assert_eq!(spans.len(), 1);
    assert!(spans[0].contains_addr(x));
    spans[0]
}

/// An importer dropped while its span holds an unflushed range: the source
/// unmaps the span at once (its pages go back; the backend holds them
/// unflushed) and hands none of it out before its own flush, batched or
/// not; the flush (an import that finds no room, or `flush()`) makes every
/// page of the VM importable again: nothing lost.
#[test]
fn a_dropped_importers_unflushed_span_is_unmapped_and_held_until_the_flush() {
    use vmspace::arena::Source;
    for threshold in [0, 1, 64] {
        at_offsets(2, 4 << 20, |off, buf| {
            let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
            let mut s = source(&sim, threshold);
            let span = drop_an_importer_unflushed(&mut s, 4);
            let pages = span.size().0 / PAGE;
            let what = format!("offset {off}, threshold {threshold}");
            assert_eq!(s.vm().mapped(), Size(0), "{what}: the span is still mapped");
            assert_eq!(s.space().sizes().allocated, Size(0), "{what}");
            s.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            if threshold == 1 {
                // The give-back filled the batch: flushed at once.
                assert_eq!((sim.stats().unflushed_pages, sim.stats().flushes), (0, 1), "{what}");
                assert_eq!(s.space().sizes().unflushed, Size(0), "{what}");
                return;
            }
            assert_eq!(sim.stats().unflushed_pages, pages, "{what}");
            assert_eq!(sim.page_state(span.base()), Some(PageState::Unflushed), "{what}");
            assert_eq!(s.space().sizes().unflushed, span.size(), "{what}");
            let waiting: Vec<Range> =
                s.space().walk(SegmentKinds::UNFLUSHED).map(|g| g.range).collect();
            assert_eq!(waiting, [span], "{what}");
            // Every other page first, none of the span's; the import that
            // finds no room flushes (once) and takes the span's pages.
            let mut got = Vec::new();
            while let Ok(r) = s.import(Size(PAGE), Size(PAGE)) {
                if got.len() < VM_PAGES - pages {
                    assert!(!r.overlaps(&span), "{what}: {r:?} reissued before the flush");
                    assert_eq!(sim.stats().flushes, 0, "{what}");
                }
                got.push(r);
                s.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            assert_eq!(got.len(), VM_PAGES, "{what}: pages lost");
            assert_eq!((sim.stats().flushes, sim.stats().unflushed_pages), (1, 0), "{what}");
            for r in got {
                s.release(r).unwrap();
            }
            s.flush();
            s.check().unwrap();
            // And `flush()` completes it as well.
            let span = drop_an_importer_unflushed(&mut s, 3);
            s.check().unwrap();
            assert_eq!(s.flush(), span.size(), "{what}");
            assert_eq!(s.space().sizes().unflushed, Size(0), "{what}");
            s.check().unwrap();
            let all = s.import(Size(VM_PAGES * PAGE), Size(PAGE)).unwrap();
            s.release(all).unwrap();
            s.check().unwrap();
        });
    }
}

/// A `release_unflushed` whose unmap fails changes nothing: the span stays
/// imported and mapped (never reissued), and `check()` agrees.
#[test]
fn a_failed_unflushed_give_back_keeps_the_span_taken() {
    use vmspace::arena::Source;
    at_offsets(2, 4 << 20, |off, buf| {
        let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
        let inj = FaultInjector::new(&sim);
        inj.only(&[Op::Unmap]);
        let mut s = source(&inj, 0);
        inj.fail_nth(1);
        let span = drop_an_importer_unflushed(&mut s, 2);
        assert_eq!(inj.injected(), 1, "offset {off}");
        assert_eq!(s.vm().mapped(), span.size(), "offset {off}");
        assert_eq!(s.space().sizes().allocated, span.size());
        assert_eq!(s.space().sizes().unflushed, Size(0));
        s.check().unwrap_or_else(|e| panic!("offset {off}: {e}"));
        while let Ok(r) = s.import(Size(PAGE), Size(PAGE)) {
            assert!(!r.overlaps(&span), "offset {off}: {r:?} reissued");
        }
        // Given back for good, it is importable again.
        s.release(span).unwrap();
        s.check().unwrap();
    });
}
