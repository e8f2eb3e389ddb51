//! Property tests: random chunk-map operation sequences against a per-chunk
//! model, on the simulated backend and on mmap, with `check()` after every
//! step; and seeded fault injection.

use proptest::prelude::*;
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, PageOps, Size};
use vmspace_user::MmapBackend;
use vmspace_workload::chunkmap_ops::{self, ChunkModel, ChunkOpGen, ChunkRunStats};
use vmspace_workload::pages;

/// Sim: 256-byte pages hold 256 chunk states a leaf; 1024 chunks of 1 KiB
/// make 4 leaves.
const SIM_PAGE: usize = 256;

fn sim_config() -> ChunkMapConfig {
    ChunkMapConfig::new(Size(1024 * 1024), Size(1024))
}

fn run_on<P: PageOps>(
    ops: P,
    config: ChunkMapConfig,
    seed: u64,
    steps: usize,
) -> Result<(), TestCaseError> {
    let mut map = ChunkMap::new(ops, config).unwrap();
    let s = chunkmap_ops::run::<_, 1024>(&mut map, seed, steps, false)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(s.succeeded > 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chunkmap_matches_model_on_sim(seed in any::<u64>()) {
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
        run_on(&sim, sim_config(), seed, 150)?;
        prop_assert_eq!(sim.stats().reservations, 0);
    }

    /// Random failures, clean or part way (a prefix of a protect's or an
    /// unmap's range changed first): the map matches the model, and after
    /// every step every chunk's pages are as its state says (never
    /// recorded more open than they are), whatever was put back or not.
    #[test]
    fn chunkmap_stays_consistent_under_random_faults(
        seed in any::<u64>(),
        fault_seed in any::<u64>(),
        part_way in any::<bool>(),
    ) {
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut map = ChunkMap::new(&faulty, sim_config()).unwrap();
        faulty.fail_randomly(fault_seed, 150_000);
        faulty.set_shape(if part_way { FaultShape::PartWay } else { FaultShape::Clean });
        let probe = |a| sim.protection(a);
        let mut model = ChunkModel::<1024>::new(map.chunks());
        let mut gen = ChunkOpGen::new(seed, model.window(), map.chunks(), map.chunk_size());
        let mut stats = ChunkRunStats::default();
        for step in 0..150 {
            let op = gen.next_op();
            let failed = |what: &str| TestCaseError::fail(format!("step {step} {op:?}: {what}"));
            chunkmap_ops::step_checked(&mut map, &mut model, &op, true, &mut stats)
                .map_err(|(w, e)| failed(&format!("{w} ({e:?})")))?;
            pages::chunks_agree(&map, model.window(), &probe).map_err(failed)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// On mmap: a 64 GiB space of 64 KiB chunks (a million chunks, 256 leaf
    /// pages); operations stay in the first 1024 chunks.
    #[test]
    fn chunkmap_matches_model_on_mmap(seed in any::<u64>()) {
        run_on(MmapBackend::new(), ChunkMapConfig::new(Size(64 << 30), Size(64 << 10)), seed, 120)?;
    }
}

#[test]
fn workload_exercises_every_outcome() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
    let mut map = ChunkMap::new(&sim, sim_config()).unwrap();
    let s =
        chunkmap_ops::run::<_, 1024>(&mut map, 11, 500, false).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.succeeded > 200 && s.rejected > 30, "{s:?}");
    drop(map);
    let faulty = FaultInjector::new(&sim);
    let mut map = ChunkMap::new(&faulty, sim_config()).unwrap();
    faulty.fail_randomly(5, 150_000);
    let s = chunkmap_ops::run::<_, 1024>(&mut map, 12, 500, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.backend_failures > 10, "{s:?}");
}
