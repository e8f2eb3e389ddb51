//! Model tests of the arena: random operation sequences (every policy,
//! random constraints, partial frees and resizes, deferred frees and
//! flushes, bad frees, adds and extends, import chains) against the
//! reference model of `workload::arena_ops`, with `check()` after every step,
//! on the simulated backend and on the real mmap backend, and, when
//! `VMSPACE_DEVICE` names `/dev/vmspace` (`make kernel-proptest`), on arenas
//! in the kernel through the device (skipped otherwise, saying so).

use std::cell::RefCell;

use proptest::prelude::*;
use vmspace::arena::{Arena, NoSource, PageStore, SegmentKinds, Source, Store};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{PageOps, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_user::MmapBackend;
use vmspace_workload::arena_ops::{self, ArenaDriver, ArenaOpConfig, ArenaOpGen};
use vmspace_workload::ArenaTarget;

/// Live allocations and added spans the model can track.
const N: usize = 512;
const M: usize = 64;

fn cfg(quantum: usize) -> ArenaOpConfig {
    ArenaOpConfig::new(1 << 40, 2048 * quantum, quantum)
}

/// Drive `steps` operations through a stand-alone arena on `ops`.
fn standalone<P: PageOps + Clone>(ops: P, quantum: usize, seed: u64, steps: usize) {
    let mut a = Arena::on_pages("model", Size(quantum), ops, 8192, NoSource).unwrap();
    standalone_on(&mut a, quantum, seed, steps);
}

/// Drive `steps` operations through `a`, a fresh arena of `quantum` with
/// room for 8192 tags: in process, or in the kernel.
fn standalone_on<A: ArenaTarget>(a: &mut A, quantum: usize, seed: u64, steps: usize) {
    let stats = arena_ops::run_on::<_, N, M>(a, cfg(quantum), seed, steps)
        .unwrap_or_else(|e| panic!("seed {seed:#x} quantum {quantum}: {e}"));
    assert!(stats.succeeded > steps / 4, "{stats:?}");
}

/// Drive operations through an arena in the kernel that imports from a VM
/// of its own (the device's import chain: arena over VM); after every step
/// what it has imported is exactly what its source VM has mapped.
fn import_on_device(seed: u64, steps: usize) {
    let Some(dev) = device_for_tests() else { return };
    let config = ArenaConfig::new(Size(64)).import(16 << 20);
    let mut child = dev.arena(&config).unwrap();
    let mut gen = ArenaOpGen::new(seed, cfg(64).with_spans(seed % 2 == 0));
    let mut driver = ArenaDriver::<N, M>::new();
    for _ in 0..steps {
        let op = gen.next_op(driver.model().occupied(), N);
        driver.step(&mut child, &op).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        let s = child.stats().unwrap();
        assert_eq!(s.imported, s.source_mapped, "imported spans are exactly the mapped VM");
    }
    assert!(driver.stats().imported > 0 || seed % 2 == 0, "{:?}", driver.stats());
}

/// A digest of everything an arena holds, to see that failed operations
/// leave a source unchanged.
fn digest<S: Store, I: Source>(a: &Arena<S, I>) -> Vec<(usize, usize, bool)> {
    a.walk(SegmentKinds::ALL).map(|s| (s.range.base().0, s.range.limit().0, s.imported)).collect()
}

/// Drive operations through `child` importing from `parent` importing from a
/// VM; check all three after every step and that imported memory is mapped.
fn chain<P: PageOps + Clone>(ops: P, seed: u64, steps: usize) {
    let page = ops.page_size().0;
    let vm = Vm::reserve(ops.clone(), Size(4096 * page), Size(page)).unwrap();
    let vms = VmSource::new(
        vm,
        PageStore::new(ops.clone(), Size(64 * page)).unwrap(),
        PageStore::new(ops.clone(), Size(4 * page)).unwrap(),
    )
    .unwrap();
    let parent =
        RefCell::new(Arena::on_pages("parent", Size(page), ops.clone(), 4096, vms).unwrap());
    let mut child = Arena::on_pages("child", Size(64), ops, 8192, &parent).unwrap();
    let mut gen = ArenaOpGen::new(seed, cfg(64).with_spans(seed % 2 == 0));
    let mut driver = ArenaDriver::<N, M>::new();
    for _ in 0..steps {
        let op = gen.next_op(driver.model().occupied(), N);
        let before = digest(&parent.borrow());
        let imports = child.counters().imports;
        let exports = child.counters().exports;
        driver.step(&mut child, &op).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        let p = parent.borrow();
        p.check().unwrap();
        p.source().check().unwrap();
        let moved = child.counters().imports != imports || child.counters().exports != exports;
        if !moved {
            assert_eq!(digest(&p), before, "parent changed without an import or export");
        }
        // Every imported span of the child is a live allocation of the parent
        // and mapped in the VM.
        for s in child.walk(SegmentKinds::SPANS).filter(|s| s.imported) {
            assert_eq!(p.lookup(s.range.base()).map(|l| l.0), Some(s.range));
            assert!(p.source().vm().is_mapped(s.range.base()));
        }
        assert_eq!(p.sizes().allocated, child.sizes().imported);
    }
    drop(child);
    let p = parent.borrow();
    assert_eq!(p.sizes().allocated, Size(0), "child gave everything back on drop");
    assert_eq!(p.source().vm().mapped(), Size(0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn standalone_on_sim(seed in any::<u64>(), q in prop::sample::select(vec![1usize, 16, 4096])) {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        standalone(&sim, q, seed, 400);
    }

    #[test]
    fn standalone_on_mmap(seed in any::<u64>(), q in prop::sample::select(vec![1usize, 64])) {
        standalone(MmapBackend::new(), q, seed, 400);
    }

    #[test]
    fn import_chain_on_sim(seed in any::<u64>()) {
        let mut buf = vec![0u8; 64 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        chain(&sim, seed, 300);
    }

    #[test]
    fn import_chain_on_mmap(seed in any::<u64>()) {
        chain(MmapBackend::new(), seed, 300);
    }

    #[test]
    fn standalone_on_device(seed in any::<u64>(), q in prop::sample::select(vec![1usize, 16, 4096])) {
        if let Some(dev) = device_for_tests() {
            let mut a = dev.arena(&ArenaConfig::new(Size(q)).max_tags(8192)).unwrap();
            standalone_on(&mut a, q, seed, 400);
        }
    }

    #[test]
    fn import_chain_on_device(seed in any::<u64>()) {
        import_on_device(seed, 300);
    }
}

#[test]
fn long_run_on_sim_reaches_every_outcome() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut a = Arena::on_pages("long", Size(16), &sim, 1 << 16, NoSource).unwrap();
    long_run(&mut a);
}

#[test]
fn long_run_on_device_reaches_every_outcome() {
    let Some(dev) = device_for_tests() else { return };
    let tags = (1 << 16).min(dev.info().max_tags_per_arena as usize);
    long_run(&mut dev.arena(&ArenaConfig::new(Size(16)).max_tags(tags)).unwrap());
}

/// 6000 operations on `a` (quantum 16, 2^16 tags) reach every outcome.
fn long_run<A: ArenaTarget>(a: &mut A) {
    let stats = arena_ops::run_on::<_, N, M>(a, cfg(16), 0x5eed, 6000).unwrap();
    assert!(stats.rejected > 100, "{stats:?}");
    assert!(stats.exact_fits > 100, "{stats:?}");
    assert!(stats.succeeded > 2000, "{stats:?}");
    assert!(stats.held > 300 && stats.handle_frees > 300, "{stats:?}");
    assert!(stats.bad_handles > 10, "{stats:?}");
    assert!(stats.partial_frees > 50 && stats.resizes > 50, "{stats:?}");
    assert!(stats.deferred_frees > 100 && stats.flushes > 20, "{stats:?}");
}
