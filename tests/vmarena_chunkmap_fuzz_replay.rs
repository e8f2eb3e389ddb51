//! The fuzz targets' decoders and step checkers, fed seeded random bytes: a
//! quick stand-in for `cargo fuzz run vmarena` / `chunkmap` on stable Rust.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Size};
use vmspace_workload::chunkmap_ops::{self, ChunkModel, ChunkOp, ChunkRunStats};
use vmspace_workload::vmarena_ops::{self, VmArenaModel, VmArenaOp, VmArenaRunStats};
use vmspace_workload::Rng;

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
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
        }
        let mut model = VmArenaModel::<512>::new(&arena).unwrap();
        let mut stats = VmArenaRunStats::default();
        let mut ops = &data[..];
        while let Some(op) = VmArenaOp::decode(&mut ops, 512) {
            vmarena_ops::step_checked(&mut arena, &mut model, &op, faults, &mut stats)
                .unwrap_or_else(|(what, e)| panic!("seed {seed} {op:?}: {what} ({e:?})"));
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
        }
        let mut model = ChunkModel::<1024>::new(1024);
        let mut stats = ChunkRunStats::default();
        let mut ops = &data[..];
        while let Some(op) = ChunkOp::decode(&mut ops, 1024, Size(1024)) {
            chunkmap_ops::step_checked(&mut map, &mut model, &op, faults, &mut stats)
                .unwrap_or_else(|(what, e)| panic!("seed {seed} {op:?}: {what} ({e:?})"));
        }
        assert!(stats.succeeded > 0);
    }
}
