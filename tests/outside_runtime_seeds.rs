//! An outside reviewer (a language runtime's author) using the library's
//! fault injection to test a runtime: sweeping seeds of
//! `FaultInjector::fail_randomly` and `Arena::set_mtbf` over consecutive
//! values, as one does, must sweep that many different failure patterns.

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, PageOps, Size};

/// Which of `calls` reserve calls fail under `fail_randomly(seed, rate)`.
fn injector_pattern(seed: u64, per_million: u32, calls: usize) -> Vec<bool> {
    let mut buf = vec![0u8; 1 << 16];
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let fi = FaultInjector::new(&sim);
    fi.fail_randomly(seed, per_million);
    (0..calls)
        .map(|_| {
            // An invalid reservation (size zero) reaches the gate, then the
            // simulated backend refuses it: nothing is ever reserved.
            matches!(fi.reserve(Size(0), Size(64)), Err(vmspace_shim::ShimError::Injected { .. }))
        })
        .collect()
}

/// Which of `calls` allocations fail with `Injected` under `set_mtbf(seed, mtbf)`.
fn mtbf_pattern(seed: u64, mtbf: u32, calls: usize) -> Vec<bool> {
    let (mut tags, mut hash) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a = Arena::new(
        "ids",
        Size(1),
        SliceStore::new(&mut tags),
        SliceStore::new(&mut hash),
        NoSource,
    )
    .unwrap();
    a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    a.set_mtbf(seed, mtbf);
    (0..calls)
        .map(|_| match a.alloc(Size(1), Policy::InstantFit) {
            Ok(x) => {
                a.free(x, Size(1)).unwrap();
                false
            }
            Err(ArenaError::Injected) => true,
            Err(e) => panic!("{e:?}"),
        })
        .collect()
}

/// `fail_randomly`: "Fail each eligible call with probability
/// `per_million / 1_000_000`, drawn from a generator seeded with `seed`".
/// Seeds 2k and 2k + 1 seed it identically (`seed | 1`), so a sweep over
/// seeds 0..2n tests n patterns, each twice.
#[test]
fn fault_injector_neighbouring_seeds_differ() {
    let same: Vec<u64> = (0..32u64)
        .step_by(2)
        .filter(|&s| injector_pattern(s, 300_000, 200) == injector_pattern(s + 1, 300_000, 200))
        .collect();
    assert!(
        same.is_empty(),
        "fail_randomly(s) and fail_randomly(s + 1) fail the very same calls for s in {same:?}"
    );
}

/// `Arena::set_mtbf`: "drawn from a generator seeded with `seed`": the
/// same collapse of seeds 2k and 2k + 1.
#[test]
fn arena_mtbf_neighbouring_seeds_differ() {
    let same: Vec<u64> = (0..32u64)
        .step_by(2)
        .filter(|&s| mtbf_pattern(s, 4, 200) == mtbf_pattern(s + 1, 4, 200))
        .collect();
    assert!(
        same.is_empty(),
        "set_mtbf(s) and set_mtbf(s + 1) fail the very same calls for s in {same:?}"
    );
}

/// The same seed gives the same pattern (the documented determinism), and
/// the rate is roughly what was asked.
#[test]
fn same_seed_same_pattern_and_rate() {
    for seed in [1u64, 7, 1 << 40, u64::MAX] {
        let a = injector_pattern(seed, 250_000, 4000);
        assert_eq!(a, injector_pattern(seed, 250_000, 4000));
        let n = a.iter().filter(|&&x| x).count();
        assert!((700..1300).contains(&n), "seed {seed}: {n} of 4000 at 25%");
        let m = mtbf_pattern(seed, 4, 4000);
        assert_eq!(m, mtbf_pattern(seed, 4, 4000));
        let n = m.iter().filter(|&&x| x).count();
        assert!((700..1300).contains(&n), "seed {seed}: {n} of 4000 at mtbf 4");
    }
}
