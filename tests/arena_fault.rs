//! Fault injection: every failure position of the tag store's page source
//! and of an import chain leaves the arena unchanged and consistent; the
//! arena's own mtbf faults do too.
//!
//! The model driver of `workload::arena_ops` checks, for every failing
//! operation, that the arena's observable state (segments, sizes, counts) is
//! exactly what it was, and runs `check()` after every step.

use std::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, SegmentKinds};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::sim::{at_offsets, Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, Size};
use vmspace_workload::arena_ops::{self, ArenaDriver, ArenaOpConfig, ArenaOpGen};

const N: usize = 256;
const M: usize = 32;
const STEPS: usize = 400;

fn cfg(q: usize) -> ArenaOpConfig {
    ArenaOpConfig::new(1 << 40, 8192 * q, q)
}

/// Run the sequence for `seed` on an arena whose tag table and hash live in
/// pages of 256 bytes (six tags a page, so the table grows often) behind an
/// injector that fails the `n`th map (never, for `n == 0`). Returns the maps
/// made and the faults injected.
fn tag_store_run(seed: u64, n: u64, buf: &mut Placed) -> (u64, u64) {
    let sim = SimBackend::new(buf.fresh(), 256).unwrap();
    let inj = FaultInjector::new(&sim);
    inj.only(&[Op::Map]);
    inj.fail_nth(n);
    match Arena::on_pages("faulty", Size(16), &inj, 4096, NoSource) {
        Ok(mut a) => {
            let stats = arena_ops::run::<_, _, N, M>(&mut a, cfg(16), seed, STEPS)
                .unwrap_or_else(|e| panic!("seed {seed:#x}, failing map {n}: {e}"));
            if n > 0 && inj.injected() > 0 {
                // The fault hit the tag table (an operation failed) or the
                // hash (it stayed smaller; nothing failed).
                assert!(stats.resource_failures <= 1, "{stats:?}");
            }
        }
        Err(e) => assert!(matches!(e.error(), ArenaError::Backing(_)), "{e}"),
    }
    assert_eq!(sim.stats().reservations, 0, "everything released");
    (inj.eligible_calls(), inj.injected())
}

#[test]
fn every_tag_store_failure_position() {
    at_offsets(3, 4 << 20, |off, buf| {
        for seed in [1u64, 0xfeed] {
            let (maps, _) = tag_store_run(seed, 0, buf);
            assert!(maps > 10, "the table should grow often: {maps} maps");
            for n in 1..=maps {
                let (_, injected) = tag_store_run(seed, n, buf);
                assert_eq!(
                    injected, 1,
                    "offset {off} seed {seed:#x}: map {n} of {maps} was not reached"
                );
            }
        }
    });
}

/// A child arena importing from a parent arena importing from a VM, all
/// page operations (the VM's and every store's) behind one injector that
/// fails the `n`th map or unmap.
fn chain_run(seed: u64, n: u64, buf: &mut Placed) -> (u64, u64) {
    let sim = SimBackend::new(buf.fresh(), 4096).unwrap();
    let inj = FaultInjector::new(&sim);
    inj.only(&[Op::Map, Op::Unmap]);
    let vm = Vm::reserve(&inj, Size(2048 * 4096), Size(4096)).unwrap();
    let vms = VmSource::new(
        vm,
        PageStore::new(&inj, Size(64 * 4096)).unwrap(),
        PageStore::new(&inj, Size(4 * 4096)).unwrap(),
    )
    .unwrap();
    let parent = RefCell::new(Arena::on_pages("parent", Size(4096), &inj, 2048, vms).unwrap());
    let mut child = Arena::on_pages("child", Size(64), &inj, 4096, &parent).unwrap();
    inj.fail_nth(n);
    let mut gen = ArenaOpGen::new(seed, cfg(64).with_spans(false));
    let mut driver = ArenaDriver::<N, M>::new();
    for _ in 0..STEPS {
        let op = gen.next_op(driver.model().occupied(), N);
        let before: Vec<_> = parent.borrow().walk(SegmentKinds::ALL).collect();
        let moves = child.counters().imports + child.counters().exports;
        driver.step(&mut child, &op).unwrap_or_else(|e| panic!("seed {seed:#x} n {n}: {e}"));
        let p = parent.borrow();
        p.check().unwrap_or_else(|e| panic!("parent, seed {seed:#x} n {n}: {e}"));
        p.source().check().unwrap_or_else(|e| panic!("VM source, seed {seed:#x} n {n}: {e}"));
        if child.counters().imports + child.counters().exports == moves {
            let after: Vec<_> = p.walk(SegmentKinds::ALL).collect();
            assert_eq!(before, after, "parent changed without an import or export");
        }
        assert_eq!(p.sizes().allocated, child.sizes().imported);
    }
    (inj.eligible_calls(), inj.injected())
}

#[test]
fn every_import_chain_failure_position() {
    let seed = 0xc0ffee;
    at_offsets(3, 32 << 20, |off, buf| {
        let (calls, _) = chain_run(seed, 0, buf);
        assert!(calls > 10, "the chain should import and give back: {calls} calls");
        for n in 1..=calls {
            let (_, injected) = chain_run(seed, n, buf);
            assert_eq!(injected, 1, "offset {off}: call {n} of {calls} was not reached");
        }
    });
}

#[test]
fn mtbf_faults_leave_arenas_consistent() {
    let mut buf = vec![0u8; 32 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let parent = RefCell::new(Arena::on_pages("parent", Size(4096), &sim, 2048, NoSource).unwrap());
    parent.borrow_mut().add(Addr(1 << 30), Size(1 << 24)).unwrap();
    parent.borrow_mut().set_mtbf(7, 5);
    let mut child = Arena::on_pages("child", Size(64), &sim, 4096, &parent).unwrap();
    child.set_mtbf(11, 7);
    let stats = arena_ops::run::<_, _, N, M>(&mut child, cfg(64).with_spans(false), 3, 2000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.resource_failures > 100, "{stats:?}");
    assert!(child.counters().injected > 50);
    assert!(parent.borrow().counters().injected > 0);
    parent.borrow().check().unwrap();
    child.check().unwrap();
}

#[test]
fn a_full_source_fails_imports_cleanly() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let parent = RefCell::new(Arena::on_pages("parent", Size(4096), &sim, 256, NoSource).unwrap());
    parent.borrow_mut().add(Addr(1 << 30), Size(4 * 4096)).unwrap();
    let mut child = Arena::on_pages("child", Size(64), &sim, 256, &parent).unwrap();
    let mut held = Vec::new();
    let err = loop {
        match child.alloc(Size(3000), Policy::InstantFit) {
            Ok(a) => held.push(a),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ArenaError::NoSpace { size: 3008 }), "{err}");
    assert_eq!(held.len(), 4);
    child.check().unwrap();
    for a in held {
        child.free(a, Size(3000)).unwrap();
    }
    assert_eq!(parent.borrow().sizes().allocated, Size(0));
    child.check().unwrap();
}
