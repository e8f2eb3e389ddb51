//! Property tests: random allocate/free/protect/purge sequences on a VM arena
//! against a per-tract model that predicts placement (zones, first fit),
//! spare pages, the commit limit and which page-table pages are mapped, on
//! the simulated backend and on mmap, with `check()` after every step.

use proptest::prelude::*;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, PageOps, Size};
use vmspace_user::MmapBackend;
use vmspace_workload::pages;
use vmspace_workload::vmarena_ops::{self, VmArenaModel, VmArenaOpGen, VmArenaRunStats};

/// Sim: 256-byte pages (32 descriptors a page-table page), 512 tracts in
/// 16 page-table pages, zones of 4 pages.
const SIM_PAGE: usize = 256;
const SIM_TRACTS: usize = 512;

fn sim_config(spare: usize, limit_pages: usize) -> VmArenaConfig {
    VmArenaConfig::new(Size(SIM_TRACTS * SIM_PAGE))
        .zone_shift(10)
        .spare_limit(spare)
        .commit_limit(Size(limit_pages.saturating_mul(SIM_PAGE)))
}

fn run_on<P: PageOps>(
    ops: P,
    config: VmArenaConfig,
    seed: u64,
    steps: usize,
) -> Result<(), TestCaseError> {
    let mut arena = VmArena::new(ops, config).unwrap();
    let stats = vmarena_ops::run::<_, 2048>(&mut arena, seed, steps, false)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(stats.succeeded > 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn vmarena_matches_model_on_sim(seed in any::<u64>(), spare in 0usize..24, limit in prop_oneof![Just(usize::MAX), 40usize..400]) {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
        run_on(&sim, sim_config(spare, limit), seed, 150)?;
        prop_assert_eq!(sim.stats().reservations, 0);
    }

    /// Random failures, clean or part way (a prefix of a protect's or an
    /// unmap's range changed first): the arena matches the model, and after
    /// every step every allocated tract's page is mapped and at least as
    /// open as recorded (so every grant is read-write), whatever was put
    /// back or not.
    #[test]
    fn vmarena_stays_consistent_under_random_faults(
        seed in any::<u64>(),
        fault_seed in any::<u64>(),
        part_way in any::<bool>(),
    ) {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut arena = VmArena::new(&faulty, sim_config(6, usize::MAX)).unwrap();
        faulty.fail_randomly(fault_seed, 150_000);
        faulty.set_shape(if part_way { FaultShape::PartWay } else { FaultShape::Clean });
        let probe = |a| sim.protection(a);
        let mut model = VmArenaModel::<512>::new(&arena).unwrap();
        let mut gen = VmArenaOpGen::new(seed, arena.tracts());
        let mut stats = VmArenaRunStats::default();
        for step in 0..150 {
            let op = gen.next_op(&model);
            let failed = |what: &str| TestCaseError::fail(format!("step {step} {op:?}: {what}"));
            vmarena_ops::step_checked(&mut arena, &mut model, &op, true, &mut stats)
                .map_err(|(w, e)| failed(&format!("{w} ({e:?})")))?;
            pages::tracts_agree(&arena, false, &probe).map_err(failed)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn vmarena_matches_model_on_mmap(seed in any::<u64>(), spare in 0usize..24) {
        // 4 KiB pages: 2048 tracts in 4 page-table pages, zones of 4 pages.
        let page = MmapBackend::new().page_size().0;
        let config = VmArenaConfig::new(Size(2048 * page))
            .zone_shift(page.trailing_zeros() + 2)
            .spare_limit(spare);
        run_on(MmapBackend::new(), config, seed, 120)?;
    }
}

#[test]
fn fixed_seeds_with_a_tight_commit_limit() {
    for seed in 0..16 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
        let mut arena = VmArena::new(&sim, sim_config(16, 60)).unwrap();
        let s = vmarena_ops::run::<_, 512>(&mut arena, seed, 300, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.succeeded > 50 && s.rejected > 0, "{s:?}");
    }
}

#[test]
fn workload_exercises_fallbacks_spares_and_faults() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, SIM_PAGE).unwrap();
    let mut arena = VmArena::new(&sim, sim_config(16, usize::MAX)).unwrap();
    let s = vmarena_ops::run::<_, 512>(&mut arena, 7, 400, false).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{s:?}");
    assert!(s.fell_back > 0 && s.rejected > 0 && s.succeeded > 100, "{s:?}");
    assert!(s.limit_changes > 0, "no spare bound or commit limit changed: {s:?}");
    let faulty = FaultInjector::new(&sim);
    drop(arena);
    let mut arena = VmArena::new(&faulty, sim_config(6, usize::MAX)).unwrap();
    faulty.fail_randomly(3, 150_000);
    let s = vmarena_ops::run::<_, 512>(&mut arena, 9, 400, true).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{s:?}");
    assert!(s.backend_failures > 5, "{s:?}");
}

/// 64-byte pages: 8 descriptors a page-table page and 512 bits an
/// allocation-table page, so 1536 tracts span three allocation-table pages
/// (runs and first fit cross them) and 192 page-table pages.
#[test]
fn tiny_pages_cross_table_pages() {
    for seed in 0..6 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, 64).unwrap();
        let config =
            VmArenaConfig::new(Size(1536 * 64)).zone_shift(8).spare_limit(seed as usize * 4);
        let mut arena = VmArena::new(&sim, config).unwrap();
        let s = vmarena_ops::run::<_, 1536>(&mut arena, seed, 400, false)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(s.succeeded > 100, "{s:?}");
    }
}
