//! Written from the documented contracts by a reviewer outside the project,
//! to break them: every knob of `FaultInjector` (shim/src/fault.rs) as its
//! docs state it: which calls are eligible, counted and failed, the seeded
//! generator's exact draws, `clear`, the counters, forwarding.

use std::collections::HashSet;

use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{
    seed_mix, Addr, FaultInjector, Op, PageOps, Protection, Range, ShimError, Size, SEED_STEP,
};

const PAGE: usize = 256;

fn page(r: Range, i: usize) -> Range {
    Range::from_size(Addr(r.base().0 + i * PAGE), Size(PAGE)).unwrap()
}

/// One call of `op` on `f` that succeeds on the backend when not injected:
/// reserve/release pairs and map/protect/unmap cycles on a spare page.
struct Driver<'a, 'b> {
    f: &'a FaultInjector<&'a SimBackend<'b>>,
    r: Range,
    mapped: bool,
}

impl<'a, 'b> Driver<'a, 'b> {
    fn new(f: &'a FaultInjector<&'a SimBackend<'b>>) -> Self {
        let r = f.inner().reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
        Driver { f, r, mapped: false }
    }
    /// Calls `op` (choosing a valid argument); returns whether it was
    /// injected.
    fn call(&mut self, op: Op) -> bool {
        let p = page(self.r, 0);
        // SAFETY: the simulated backend checks every contract.
        let res = unsafe {
            match op {
                Op::Reserve => match self.f.reserve(Size(PAGE), Size(PAGE)) {
                    Ok(r) => {
                        self.f.inner().release(r).unwrap();
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Op::Release => {
                    let r = self.f.inner().reserve(Size(PAGE), Size(PAGE)).unwrap();
                    let res = self.f.release(r);
                    if res.is_err() {
                        self.f.inner().release(r).unwrap();
                    }
                    res
                }
                Op::Map => {
                    if self.mapped {
                        self.f.inner().unmap(p).unwrap();
                        self.mapped = false;
                    }
                    let res = self.f.map(p);
                    self.mapped = res.is_ok();
                    res
                }
                Op::Unmap => {
                    if !self.mapped {
                        self.f.inner().map(p).unwrap();
                        self.mapped = true;
                    }
                    let res = self.f.unmap(p);
                    self.mapped = res.is_err();
                    res
                }
                Op::Protect => {
                    if !self.mapped {
                        self.f.inner().map(p).unwrap();
                        self.mapped = true;
                    }
                    self.f.protect(p, Protection::ReadWrite)
                }
            }
        };
        match res {
            Ok(()) => false,
            Err(ShimError::Injected { op: o }) => {
                assert_eq!(o, op, "the injected error names another operation");
                true
            }
            Err(e) => panic!("{op:?}: backend error {e}"),
        }
    }
}

fn with_injector(f: impl FnOnce(&FaultInjector<&SimBackend<'_>>, &SimBackend<'_>)) {
    let mut buf = vec![0u8; 256 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    f(&inj, &sim);
}

#[test]
fn new_injects_nothing_but_counts_every_operation() {
    with_injector(|f, _| {
        let mut d = Driver::new(f);
        for i in 0..50 {
            assert!(!d.call(Op::ALL[i % 5]));
        }
        assert_eq!((f.eligible_calls(), f.injected()), (50, 0));
    });
}

#[test]
fn fail_nth_fails_exactly_that_eligible_call_once_for_every_n_and_kind() {
    for op in Op::ALL {
        for n in 1..=7u64 {
            with_injector(|f, sim| {
                let mut d = Driver::new(f);
                f.only(&[op]);
                // Ineligible calls before arming and in between: not counted.
                d.call(Op::ALL[(op as usize + 1) % 5]);
                f.fail_nth(n);
                assert_eq!(f.eligible_calls(), 0, "fail_nth restarts the count");
                let before = sim.stats().calls_of(op);
                let mut failed = vec![];
                for i in 1..=12u64 {
                    d.call(Op::ALL[(op as usize + 2) % 5]);
                    if d.call(op) {
                        failed.push(i);
                    }
                }
                assert_eq!(failed, [n], "{op:?} n {n}");
                assert_eq!(f.eligible_calls(), 12, "{op:?} n {n}");
                assert_eq!(f.injected(), 1);
                // At least the 11 calls not failed reached the backend.
                let forwarded = sim.stats().calls_of(op) - before;
                assert!(forwarded >= 11, "{op:?}: {forwarded}");
            });
        }
    }
}

#[test]
fn fail_nth_zero_disarms_and_rearming_restarts_the_count() {
    with_injector(|f, _| {
        let mut d = Driver::new(f);
        f.fail_nth(3);
        d.call(Op::Map);
        f.fail_nth(0);
        for _ in 0..10 {
            assert!(!d.call(Op::Map));
        }
        assert_eq!(f.eligible_calls(), 10);
        f.fail_nth(2);
        assert!(!d.call(Op::Map));
        assert!(d.call(Op::Map));
        assert!(!d.call(Op::Map));
        assert_eq!((f.eligible_calls(), f.injected()), (3, 1));
    });
}

#[test]
fn only_empty_makes_nothing_eligible_and_clear_makes_everything_eligible() {
    with_injector(|f, _| {
        let mut d = Driver::new(f);
        f.only(&[]);
        f.fail_nth(1);
        f.fail_randomly(7, 1_000_000);
        for op in Op::ALL {
            assert!(!d.call(op), "{op:?} eligible under only(&[])");
        }
        assert_eq!((f.eligible_calls(), f.injected()), (0, 0));
        f.clear();
        for op in Op::ALL {
            assert!(!d.call(op), "{op:?} failed after clear");
        }
        assert_eq!(f.eligible_calls(), 5, "clear makes every operation eligible (and counted)");
        assert_eq!(f.injected(), 0);
    });
}

#[test]
fn random_failures_follow_the_documented_draws_exactly() {
    // "the nth draw (from 1) for seed s is seed_mix(s + n * SEED_STEP)";
    // a call fails when the draw mod 1e6 is below the rate.
    for seed in [0u64, 1, 42, u64::MAX, SEED_STEP, 0xdead_beef] {
        for rate in [1u32, 1000, 250_000, 500_000, 999_999] {
            with_injector(|f, _| {
                let mut d = Driver::new(f);
                f.only(&[Op::Map, Op::Protect]);
                f.fail_randomly(seed, rate);
                let mut n = 0u64;
                let mut injected = 0;
                for i in 0..200 {
                    // Ineligible calls draw nothing.
                    d.call(Op::Reserve);
                    let op = if i % 3 == 0 { Op::Protect } else { Op::Map };
                    n += 1;
                    let draw = seed_mix(seed.wrapping_add(n.wrapping_mul(SEED_STEP)));
                    let want = draw % 1_000_000 < u64::from(rate);
                    assert_eq!(d.call(op), want, "seed {seed} rate {rate} draw {n}");
                    injected += u64::from(want);
                }
                assert_eq!(f.injected(), injected);
                assert_eq!(f.eligible_calls(), 200);
            });
        }
    }
}

#[test]
fn rates_zero_full_and_above_full() {
    with_injector(|f, _| {
        let mut d = Driver::new(f);
        f.fail_randomly(9, 0);
        assert!((0..100).all(|_| !d.call(Op::Map)));
        f.fail_randomly(9, 1_000_000);
        assert!((0..100).all(|_| d.call(Op::Map)));
        f.fail_randomly(9, u32::MAX);
        assert!((0..100).all(|_| d.call(Op::Map)));
        assert_eq!(f.injected(), 200);
    });
}

#[test]
fn distinct_seeds_give_distinct_failure_sequences() {
    let seq = |seed: u64| {
        let mut out = vec![];
        with_injector(|f, _| {
            let mut d = Driver::new(f);
            f.fail_randomly(seed, 500_000);
            out = (0..64).map(|_| d.call(Op::Map)).collect::<Vec<_>>();
        });
        out
    };
    let mut seen = HashSet::new();
    for seed in (0..100u64).chain([SEED_STEP, SEED_STEP.wrapping_mul(2), u64::MAX]) {
        let s = seq(seed);
        assert_eq!(s, seq(seed), "seed {seed} is not reproducible");
        assert!(seen.insert(s), "seed {seed} repeats another seed's failures");
    }
}

#[test]
fn nth_and_random_on_the_same_call_count_one_injection() {
    with_injector(|f, _| {
        let mut d = Driver::new(f);
        f.fail_randomly(3, 1_000_000);
        f.fail_nth(1);
        assert!(d.call(Op::Map));
        assert_eq!(f.injected(), 1);
    });
}

#[test]
fn deferred_unmaps_are_gated_as_unmaps_and_forwarded_as_deferred() {
    with_injector(|f, sim| {
        let r = sim.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
        let p = page(r, 1);
        f.only(&[Op::Unmap]);
        f.fail_nth(1);
        // SAFETY: the simulated backend checks every contract.
        unsafe {
            f.map(p).unwrap();
            assert_eq!(f.unmap_deferred(p), Err(ShimError::Injected { op: Op::Unmap }));
            assert_eq!(sim.page_state(p.base()), Some(PageState::Mapped(Protection::ReadWrite)));
            f.unmap_deferred(p).unwrap();
        }
        assert_eq!(sim.page_state(p.base()), Some(PageState::Unflushed));
        assert_eq!(f.unflushed_pages(), 1);
        // flush is not an operation the injector fails or counts.
        let before = f.eligible_calls();
        assert_eq!(f.flush(), 1);
        assert_eq!(f.eligible_calls(), before);
        assert_eq!(f.unflushed_pages(), 0);
        assert_eq!(f.name(), "sim");
        assert_eq!(f.page_size(), Size(PAGE));
    });
}

#[test]
fn backend_refusals_are_counted_eligible_not_injected() {
    with_injector(|f, sim| {
        let r = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
        // SAFETY: contract violations the sim refuses.
        unsafe {
            assert!(matches!(f.unmap(r), Err(ShimError::NotMapped(_))));
            assert!(matches!(f.protect(r, Protection::None), Err(ShimError::NotMapped(_))));
        }
        assert_eq!((f.eligible_calls(), f.injected()), (2, 0));
    });
}

#[test]
fn fail_nth_under_threads_fails_exactly_one_call() {
    let mut buf = vec![0u8; 1024 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    for n in [1u64, 17, 200, 399, 400] {
        f.fail_nth(n);
        let failures: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let f = &f;
                    s.spawn(move || {
                        let mut k = 0;
                        for _ in 0..100 {
                            match f.reserve(Size(PAGE), Size(PAGE)) {
                                Ok(r) => {
                                    // SAFETY: just reserved on the sim, behind the injector.
                                    unsafe { f.inner().release(r).unwrap() }
                                }
                                Err(ShimError::Injected { op: Op::Reserve }) => k += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        k
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(failures, 1, "n {n}");
        assert_eq!(f.eligible_calls(), 400);
    }
    assert_eq!(f.injected(), 5);
}
