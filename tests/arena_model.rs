//! Model tests of the arena: random operation sequences (every policy,
//! random constraints, partial frees and resizes, deferred frees and
//! flushes, bad frees, adds and extends, import chains) against the
//! reference model of `workload::arena_ops`, with `check()` after every step,
//! on the simulated backend and on the real mmap backend, and, when
//! `VMSPACE_DEVICE` names `/dev/vmspace` (`make kernel-proptest`), on arenas
//! in the kernel through the device (skipped otherwise, saying so).
//!
//! Every run ends drained ([`ArenaDriver::drain`]): a checked flush, then a
//! checked free of everything left, after which the arena holds no
//! allocation and no imported span. Some runs defer most of their frees
//! (`with_deferred`), on arenas with spans of their own and on arenas that
//! live on imports alone, where a span may only go back to its source once
//! nothing in it waits for the flush.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use vmspace::arena::{
    Arena, ArenaError, NoSource, PageStore, SegmentKinds, SliceStore, Source, Store,
};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_user::MmapBackend;
use vmspace_workload::arena_ops::{self, ArenaDriver, ArenaOpConfig, ArenaOpGen};
use vmspace_workload::ArenaTarget;

/// Live allocations and added spans the model can track.
const N: usize = 512;
const M: usize = 64;

/// Where the window of generated addresses starts.
const BASE: usize = 1 << 40;

fn cfg(quantum: usize) -> ArenaOpConfig {
    ArenaOpConfig::new(BASE, 2048 * quantum, quantum)
}

/// Per mille of frees deferred: the generator's default or most of them.
fn deferred_shares() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![250u32, 750])
}

/// Drive `steps` operations through a stand-alone arena on `ops`.
fn standalone<P: PageOps + Clone>(ops: P, cfg: ArenaOpConfig, seed: u64, steps: usize) {
    let mut a = Arena::on_pages("model", Size(cfg.quantum), ops, 8192, NoSource).unwrap();
    standalone_on(&mut a, cfg, seed, steps);
}

/// Drive `steps` operations through `a`, a fresh arena of `cfg.quantum`
/// with room for 8192 tags (in process, or in the kernel), then drain it.
fn standalone_on<A: ArenaTarget>(a: &mut A, cfg: ArenaOpConfig, seed: u64, steps: usize) {
    let mut driver = ArenaDriver::<N, M>::new();
    let report = |e| panic!("seed {seed:#x} {cfg:?}: {e}");
    driver.run(a, &mut ArenaOpGen::new(seed, cfg), steps).unwrap_or_else(report);
    let stats = driver.stats();
    assert!(stats.succeeded > steps / 4, "{stats:?}");
    driver.drain(a).unwrap_or_else(report);
}

/// A source handing out spans in the generated window from a counter (a
/// page apart), at most eight at a time, and recording their give-backs.
#[derive(Default)]
struct Spans {
    next: usize,
    out: BTreeMap<usize, usize>,
}

impl Source for Spans {
    fn quantum(&self) -> Size {
        Size(4096)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if self.out.len() >= 8 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        let base = (BASE + self.next).next_multiple_of(align.0);
        self.next = base - BASE + size.0 + 4096;
        self.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        match self.out.remove(&range.base().0) {
            Some(s) if s == range.size().0 => Ok(()),
            _ => Err(ArenaError::BadImport(range)),
        }
    }
}

/// Drive `steps` operations through an arena of quantum 1 KiB that lives on
/// imports from [`Spans`] alone (most allocations in a span of their own,
/// so that frees and flushes give spans back all the time); drained, it has
/// given every span back.
fn imports_only(seed: u64, steps: usize, deferred: u32) {
    let (mut tb, mut hb) = (vec![0u8; 256 << 10], vec![0u8; 32 << 10]);
    let (tags, hash) = (SliceStore::new(&mut tb), SliceStore::new(&mut hb));
    let mut a = Arena::new("imports", Size(1024), tags, hash, Spans::default()).unwrap();
    let cfg = cfg(1024).with_spans(false).with_deferred(deferred);
    let mut driver = ArenaDriver::<N, M>::new();
    let report = |e| panic!("seed {seed:#x} {cfg:?}: {e}");
    driver.run(&mut a, &mut ArenaOpGen::new(seed, cfg), steps).unwrap_or_else(report);
    assert!(driver.stats().imported > 0, "{:?}", driver.stats());
    driver.drain(&mut a).unwrap_or_else(report);
    assert_eq!(a.span_count(), 0);
    assert!(a.source().out.is_empty(), "spans never given back: {:?}", a.source().out);
}

/// Drive operations through an arena in the kernel that imports from a VM
/// of its own (the device's import chain: arena over VM); after every step
/// what it has imported is exactly what its source VM has mapped.
fn import_on_device(seed: u64, steps: usize, deferred: u32) {
    let Some(dev) = device_for_tests() else { return };
    let config = ArenaConfig::new(Size(64)).import(16 << 20);
    let mut child = dev.arena(&config).unwrap();
    let mut gen = ArenaOpGen::new(seed, cfg(64).with_spans(seed % 2 == 0).with_deferred(deferred));
    let mut driver = ArenaDriver::<N, M>::new();
    for _ in 0..steps {
        let op = gen.next_op(driver.model().occupied(), N);
        driver.step(&mut child, &op).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        let s = child.stats().unwrap();
        assert_eq!(s.imported, s.source_mapped, "imported spans are exactly the mapped VM");
    }
    assert!(driver.stats().imported > 0 || seed % 2 == 0, "{:?}", driver.stats());
    driver.drain(&mut child).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
    let s = child.stats().unwrap();
    assert_eq!((s.imported, s.source_mapped, s.unflushed), (0, 0, 0), "drained");
}

/// A digest of everything an arena holds, to see that failed operations
/// leave a source unchanged.
fn digest<S: Store, I: Source>(a: &Arena<S, I>) -> Vec<(usize, usize, bool)> {
    a.walk(SegmentKinds::ALL).map(|s| (s.range.base().0, s.range.limit().0, s.imported)).collect()
}

/// Drive operations through `child` importing from `parent` importing from a
/// VM; check all three after every step and that imported memory is mapped.
fn chain<P: PageOps + Clone>(ops: P, seed: u64, steps: usize, deferred: u32) {
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
    let cfg = cfg(64).with_spans(seed % 2 == 0).with_deferred(deferred);
    let mut gen = ArenaOpGen::new(seed, cfg);
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
    // Drained, the child has given its imports back through its frees and
    // flushes, before any drop.
    driver.drain(&mut child).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
    assert_eq!(parent.borrow().sizes().allocated, Size(0), "drained child holds imports");
    drop(child);
    let p = parent.borrow();
    assert_eq!(p.sizes().allocated, Size(0), "child gave everything back on drop");
    assert_eq!(p.source().vm().mapped(), Size(0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn standalone_on_sim(
        seed in any::<u64>(),
        q in prop::sample::select(vec![1usize, 16, 4096]),
        deferred in deferred_shares(),
    ) {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        standalone(&sim, cfg(q).with_deferred(deferred), seed, 400);
    }

    #[test]
    fn standalone_on_mmap(seed in any::<u64>(), q in prop::sample::select(vec![1usize, 64])) {
        standalone(MmapBackend::new(), cfg(q), seed, 400);
    }

    #[test]
    fn imports_only_in_process(seed in any::<u64>(), deferred in deferred_shares()) {
        imports_only(seed, 400, deferred);
    }

    #[test]
    fn import_chain_on_sim(seed in any::<u64>(), deferred in deferred_shares()) {
        let mut buf = vec![0u8; 64 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        chain(&sim, seed, 300, deferred);
    }

    #[test]
    fn import_chain_on_mmap(seed in any::<u64>()) {
        chain(MmapBackend::new(), seed, 300, 250);
    }

    #[test]
    fn standalone_on_device(
        seed in any::<u64>(),
        q in prop::sample::select(vec![1usize, 16, 4096]),
        deferred in deferred_shares(),
    ) {
        if let Some(dev) = device_for_tests() {
            let mut a = dev.arena(&ArenaConfig::new(Size(q)).max_tags(8192)).unwrap();
            standalone_on(&mut a, cfg(q).with_deferred(deferred), seed, 400);
        }
    }

    #[test]
    fn import_chain_on_device(seed in any::<u64>(), deferred in deferred_shares()) {
        import_on_device(seed, 300, deferred);
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

/// A run that defers most of its frees does defer them, flushes often, and
/// still allocates (the flushes make room), then drains.
#[test]
fn deferred_heavy_run_defers_flushes_and_drains() {
    let mut buf = vec![0u8; 16 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut a = Arena::on_pages("deferred", Size(16), &sim, 1 << 16, NoSource).unwrap();
    let mut driver = ArenaDriver::<N, M>::new();
    let mut gen = ArenaOpGen::new(0xdefe, cfg(16).with_deferred(750));
    driver.run(&mut a, &mut gen, 3000).unwrap();
    let stats = driver.stats();
    // 275 deferred frees, 92 flushes, 1480 successes at this seed.
    assert!(stats.deferred_frees > 200 && stats.flushes > 60, "{stats:?}");
    assert!(stats.succeeded > 1000, "{stats:?}");
    driver.drain(&mut a).unwrap();
}
