//! The fuzz targets' decoders and step checkers, fed seeded random bytes: a
//! quick stand-in for `cargo fuzz run vm` / `vmarena` / `chunkmap` on stable
//! Rust.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::vm::Vm;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Size};
use vmspace_workload::chunkmap_ops::{self, ChunkModel, ChunkOp, ChunkRunStats};
use vmspace_workload::pages;
use vmspace_workload::vm_calls::{self, VmCall, VmCallModel, VmCallStats};
use vmspace_workload::vmarena_ops::{self, VmArenaModel, VmArenaOp, VmArenaRunStats};
use vmspace_workload::Rng;

/// The fuzz targets' fault shapes: with faults, every other seed fails
/// protects and unmaps part way.
fn shape(seed: u64) -> FaultShape {
    if seed % 6 == 3 {
        FaultShape::PartWay
    } else {
        FaultShape::Clean
    }
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

#[test]
fn vm_decoded_calls() {
    let mut total = VmCallStats::default();
    for seed in 0..24u64 {
        let data = bytes(seed, 1600);
        let faults = seed % 3 == 0;
        let page = if seed % 2 == 0 { 64 } else { 4096 };
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, page).unwrap();
        let faulty = FaultInjector::new(&sim);
        // Small pages over many: several bit-table pages, some with
        // nothing mapped, for trims to give back.
        let pages = if seed % 4 == 0 { 2048 } else { 256 };
        let mut vm = Vm::reserve(&faulty, Size(pages * page), Size(page)).unwrap();
        if faults {
            faulty.fail_randomly(seed, 100_000);
        }
        let mut model = VmCallModel::<32>::for_vm(&vm);
        let mut stats = VmCallStats::default();
        let mut calls = &data[..];
        while let Some(call) = VmCall::decode(&mut calls, model.pages()) {
            vm_calls::step_checked(&mut vm, &mut model, &call, faults, &mut stats)
                .unwrap_or_else(|(what, e)| panic!("seed {seed} {call:?}: {what} ({e:?})"));
        }
        assert!(stats.succeeded > 0 && stats.rejected > 0, "seed {seed}: {stats:?}");
        assert_eq!(faults, stats.backend_failures > 0, "seed {seed}: {stats:?}");
        total.refused_unflushed += stats.refused_unflushed;
        total.flushed_pages += stats.flushed_pages;
        faulty.clear();
        vm_calls::unmap_all_and_trim(&mut vm, &mut model, &mut stats)
            .unwrap_or_else(|(what, e)| panic!("seed {seed}, at the end: {what} ({e:?})"));
        total.trimmed_pages += stats.trimmed_pages;
        vm.flush();
        drop(vm);
        assert_eq!(sim.stats().mapped_pages, 0, "seed {seed}: the VM unmapped everything");
    }
    assert!(total.refused_unflushed > 0 && total.flushed_pages > 0, "{total:?}");
    assert!(total.trimmed_pages > 0, "no trim gave anything back: {total:?}");
}

#[test]
fn vmarena_decoded_ops() {
    for seed in 0..24u64 {
        let data = bytes(seed, 1200);
        let faults = seed % 3 == 0;
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, 256).unwrap();
        let faulty = FaultInjector::new(&sim);
        let limit = if seed % 2 == 0 { Size(120 * 256) } else { Size(usize::MAX) };
        let config = VmArenaConfig::new(Size(512 * 256))
            .zone_shift(10)
            .spare_limit(seed as usize % 16)
            .commit_limit(limit);
        let mut arena = VmArena::new(&faulty, config).unwrap();
        if faults {
            faulty.fail_randomly(seed, 100_000);
            faulty.set_shape(shape(seed));
        }
        let mut model = VmArenaModel::<512>::new(&arena).unwrap();
        let mut stats = VmArenaRunStats::default();
        let mut ops = &data[..];
        while let Some(op) = VmArenaOp::decode(&mut ops, 512) {
            vmarena_ops::step_checked(&mut arena, &mut model, &op, faults, &mut stats)
                .unwrap_or_else(|(what, e)| panic!("seed {seed} {op:?}: {what} ({e:?})"));
            pages::tracts_agree(&arena, false, &|a| sim.protection(a))
                .unwrap_or_else(|what| panic!("seed {seed} {op:?}: {what}"));
        }
        assert!(stats.succeeded > 0);
    }
}

#[test]
fn chunkmap_decoded_ops() {
    for seed in 0..24u64 {
        let data = bytes(seed, 900);
        let faults = seed % 3 == 0;
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, 256).unwrap();
        let faulty = FaultInjector::new(&sim);
        let config = ChunkMapConfig::new(Size(1024 * 1024), Size(1024));
        let mut map = ChunkMap::new(&faulty, config).unwrap();
        if faults {
            faulty.fail_randomly(seed, 100_000);
            faulty.set_shape(shape(seed));
        }
        let mut model = ChunkModel::<1024>::new(1024);
        let mut stats = ChunkRunStats::default();
        let mut ops = &data[..];
        while let Some(op) = ChunkOp::decode(&mut ops, 1024, Size(1024)) {
            chunkmap_ops::step_checked(&mut map, &mut model, &op, faults, &mut stats)
                .unwrap_or_else(|(what, e)| panic!("seed {seed} {op:?}: {what} ({e:?})"));
            pages::chunks_agree(&map, 1024, &|a| sim.protection(a))
                .unwrap_or_else(|what| panic!("seed {seed} {op:?}: {what}"));
        }
        assert!(stats.succeeded > 0);
    }
}
