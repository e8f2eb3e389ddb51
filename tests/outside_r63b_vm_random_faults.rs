//! Round 63b outside review: a `Vm` under random faults (part-way shape)
//! with every operation mixed: map, unmap, unmap_deferred, flush, protect,
//! trim, trim_range, mapped_runs(_from). After each step: `check()` holds,
//! the bit table agrees with a model and with the simulated pages, the
//! metadata count agrees with the simulated metadata pages, and a failed
//! map/unmap left the mapped set as it was.

mod outside_r63b_common;

use outside_r63b_common::seeds;
use vmspace::vm::{Vm, VmError};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, PageOps, Protection, Range, Size};
use vmspace_workload::Rng;

fn run(seed: u64, page: usize, pages: usize, grain_pages: usize, rate: u32) {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, page).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&fi, Size(pages * page - page / 2), Size(grain_pages * page)).unwrap();
    let n = vm.range().size().0 / page;
    assert!(n >= pages);
    let base = vm.base().0;
    let rg =
        |lo: usize, hi: usize| Range::new(Addr(base + lo * page), Addr(base + hi * page)).unwrap();
    let mut model = vec![false; n];
    let mut unflushed = vec![false; n];
    let mut rng = Rng::new(seed | 1);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_randomly(seed, rate);
    for step in 0..400 {
        let before = model.clone();
        let lo = rng.below(n);
        let span = 1 + rng.below(3 * page);
        let hi = lo + 1 + rng.below((n - lo).min(span));
        let what = rng.below(12);
        let r: Result<(), VmError> = match what {
            0..=3 => {
                let r = vm.map(rg(lo, hi));
                let expect_ok_args = (lo..hi).all(|i| !model[i]);
                if r.is_ok() {
                    assert!(
                        expect_ok_args,
                        "seed {seed} step {step}: map of a mapped page succeeded"
                    );
                    assert!(
                        !(lo..hi).any(|i| unflushed[i]),
                        "seed {seed} step {step}: unflushed page mapped again"
                    );
                    model[lo..hi].fill(true);
                } else if !expect_ok_args {
                    assert!(
                        matches!(r, Err(VmError::AlreadyMapped(_))),
                        "seed {seed} step {step}: {r:?}"
                    );
                }
                r
            }
            4..=6 => {
                // unmap a run that is mapped, found from the model
                let Some(s) = (lo..n).find(|&i| model[i]) else { continue };
                let e = (s..n).find(|&i| !model[i]).unwrap_or(n).min(s + 1 + rng.below(hi - lo));
                let deferred = what == 6;
                let r = if deferred { vm.unmap_deferred(rg(s, e)) } else { vm.unmap(rg(s, e)) };
                if r.is_ok() {
                    for i in s..e {
                        model[i] = false;
                        unflushed[i] = deferred;
                    }
                }
                r
            }
            7 => {
                let Some(s) = (lo..n).find(|&i| model[i]) else { continue };
                let e = (s..n).find(|&i| !model[i]).unwrap_or(n);
                vm.protect(
                    rg(s, e),
                    [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)],
                )
            }
            8 => {
                vm.flush();
                unflushed.iter_mut().for_each(|u| *u = false);
                Ok(())
            }
            9 => vm.trim().map(|_| ()),
            10 => vm.trim_range(rg(lo, hi)).map(|_| ()),
            _ => {
                // mapped_runs_from an arbitrary (maybe unaligned) address
                let from = base + lo * page + rng.below(page);
                let runs: Vec<Range> = vm.mapped_runs_from(Addr(from)).collect();
                let mut exp = vec![];
                let mut i = lo;
                if model[lo] {
                    // a run holding that page starts there
                }
                while i < n {
                    if model[i] {
                        let s = i;
                        while i < n && model[i] {
                            i += 1;
                        }
                        exp.push(rg(s, i));
                    } else {
                        i += 1;
                    }
                }
                assert_eq!(runs, exp, "seed {seed} step {step}: mapped_runs_from");
                Ok(())
            }
        };
        if r.is_err() && what <= 6 {
            assert_eq!(model, before, "seed {seed} step {step}: failed op changed mapping ({r:?})");
        }
        if let Err(e) = vm.check() {
            panic!("seed {seed} step {step}: check after {r:?}: {e:?}");
        }
        assert_eq!(
            vm.mapped(),
            Size(model.iter().filter(|&&m| m).count() * page),
            "seed {seed} step {step}"
        );
        for (i, &mapped) in model.iter().enumerate().take(n) {
            let a = Addr(base + i * page);
            assert_eq!(vm.is_mapped(a), mapped, "seed {seed} step {step} page {i}");
            let st = sim.page_state(a).unwrap();
            assert_eq!(
                matches!(st, PageState::Mapped(_)),
                mapped,
                "seed {seed} step {step} page {i}: sim says {st:?} (after {r:?})"
            );
        }
        let runs: Vec<Range> = vm.mapped_runs().collect();
        let total: usize = runs.iter().map(|r| r.size().0).sum();
        assert_eq!(Size(total), vm.mapped());
        // metadata: sim-mapped pages past the limit
        let res = vm.reservation();
        let mut meta = 0;
        let mut a = vm.limit().0;
        while a < res.limit().0 {
            if matches!(sim.page_state(Addr(a)), Some(PageState::Mapped(_))) {
                meta += 1;
            }
            a += page;
        }
        assert_eq!(
            vm.metadata_mapped(),
            Size(meta * page),
            "seed {seed} step {step}: metadata_mapped vs sim (after {r:?})"
        );
    }
    fi.clear();
    vm.flush();
    let runs: Vec<Range> = vm.mapped_runs().collect();
    for r in runs {
        vm.unmap(r).unwrap();
    }
    vm.trim().unwrap();
    vm.check().unwrap();
    assert_eq!(vm.mapped(), Size(0));
    let res = vm.reservation();
    drop(vm);
    assert_eq!(sim.page_state(res.base()), Some(PageState::Free));
    assert_eq!(sim.stats().mapped_pages, 0);
    let _ = fi.page_size();
}

#[test]
fn vm_random_faults_page64() {
    for seed in seeds(30) {
        run(seed * 0xABCDEF, 64, 1500, 4, 120_000);
    }
}

#[test]
fn vm_random_faults_page128_big_grain() {
    for seed in seeds(20) {
        run(seed * 0x5555_1111, 128, 2100, 64, 60_000);
    }
}
