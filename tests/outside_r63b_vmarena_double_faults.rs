//! Round 63b outside review: the VM arena under *random* faults (several
//! per operation, so rollbacks fail too) with the part-way shape, over
//! many seeds. After every step: `check()` holds, the books agree with the
//! simulated pages (allocated tracts mapped with their recorded protection
//! unless a RollbackFailed named them; committed = allocated + spare;
//! nothing mapped that is neither), the commit limit holds, and a failed
//! operation other than RollbackFailed left the allocations as they were.

mod outside_r63b_common;

use outside_r63b_common::seeds;
use std::collections::BTreeMap;
use vmspace_workload::Rng;

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, FaultShape, Pages, Protection, Range, Size};

const PAGE: usize = 64;

fn prot(i: usize) -> Protection {
    [Protection::None, Protection::Read, Protection::ReadWrite][i % 3]
}

fn run(seed: u64, tracts: usize, per_million: u32, spare: usize, limit: Option<usize>) {
    run_paged(seed, tracts, per_million, spare, limit, PAGE, 8);
}

fn run_paged(
    seed: u64,
    tracts: usize,
    per_million: u32,
    spare: usize,
    limit: Option<usize>,
    page: usize,
    zshift: u32,
) {
    let mut buf = vec![0u8; (tracts * page * 3 / 2).max(2 << 20)];
    let sim = SimBackend::new(&mut buf, page).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut cfg = VmArenaConfig::new(Size(tracts * page)).zone_shift(zshift).spare_limit(spare);
    if let Some(l) = limit {
        cfg = cfg.commit_limit(Size(l * page));
    }
    let mut a = VmArena::new(&fi, cfg).unwrap();
    let base = a.base().0;
    let rg =
        |lo: usize, hi: usize| Range::new(Addr(base + lo * page), Addr(base + hi * page)).unwrap();
    // lo -> (hi, owner)
    let mut model: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
    // tracts whose protection a RollbackFailed may have left differing
    let mut tainted = vec![false; tracts];
    let mut any_rollback_failed = false;
    let mut rng = Rng::new(seed | 1);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_randomly(seed, per_million);
    for step in 0..300 {
        let before = model.clone();
        let what = rng.below(10);
        let r: Result<(), VmArenaError> = match what {
            0..=3 => {
                let n = 1 + rng.below(40);
                let owner = 1 + rng.below(3) as u32;
                let mut req = Request::new(Pages(n), Owner(owner));
                if rng.below(3) == 0 {
                    req = req.align(Pages(1 << rng.below(5)));
                }
                if rng.below(2) == 0 {
                    req = req.prefer(ZoneSet::single(rng.below(64) as u32));
                }
                if rng.below(4) == 0 {
                    req = req.avoid(ZoneSet::single(rng.below(64) as u32));
                }
                match a.alloc(&req) {
                    Ok(g) => {
                        let lo = (g.range.base().0 - base) / page;
                        let hi = (g.range.limit().0 - base) / page;
                        assert_eq!(hi - lo, n, "seed {seed} step {step}: grant size");
                        for (&l, &(h, _)) in &model {
                            assert!(
                                h <= lo || hi <= l,
                                "seed {seed} step {step}: overlapping grant"
                            );
                        }
                        tainted[lo..hi].fill(false);
                        model.insert(lo, (hi, owner));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            4..=6 if !model.is_empty() => {
                let k = rng.below(model.len());
                let (&lo, &(hi, o)) = model.iter().nth(k).unwrap();
                // free a sub-range sometimes
                let (s, e) = if hi - lo > 2 && rng.below(2) == 0 {
                    let s = lo + rng.below(hi - lo - 1);
                    (s, s + 1 + rng.below(hi - s - 1))
                } else {
                    (lo, hi)
                };
                let res = a.free(rg(s, e), Owner(o));
                if res.is_ok() {
                    model.remove(&lo);
                    if s > lo {
                        model.insert(lo, (s, o));
                    }
                    if e < hi {
                        model.insert(e, (hi, o));
                    }
                }
                res
            }
            7 if !model.is_empty() => {
                let k = rng.below(model.len());
                let (&lo, &(hi, o)) = model.iter().nth(k).unwrap();
                a.protect(rg(lo, hi), Owner(o), prot(rng.below(3)))
            }
            8 => a.purge_spare().map(|_| ()),
            _ => a.set_spare_limit(rng.below(spare + 8)),
        };
        let rollback_failed = matches!(r, Err(VmArenaError::RollbackFailed { .. }));
        any_rollback_failed |= rollback_failed;
        if !any_rollback_failed {
            assert!(
                a.spare().0 <= a.spare_limit() * page,
                "seed {seed} step {step}: spare {:?} above the bound {} pages with no rollback failed (after {r:?})",
                a.spare(),
                a.spare_limit()
            );
        }
        if let Err(VmArenaError::RollbackFailed { range, .. }) = r {
            let l = (range.base().0 - base) / page;
            let h = (range.limit().0 - base) / page;
            if l < h.min(tracts) {
                tainted[l..h.min(tracts)].fill(true);
            }
        }
        if r.is_err() && !rollback_failed && what <= 6 {
            assert_eq!(model, before, "seed {seed} step {step}");
        }
        // --- consistency ---
        if let Err(e) = a.check() {
            panic!("seed {seed} step {step}: check failed after {r:?}: {e:?}");
        }
        let mut alloc_pages = 0;
        let mut owner_of = vec![0u32; tracts];
        for (&lo, &(hi, o)) in &model {
            alloc_pages += hi - lo;
            owner_of[lo..hi].fill(o);
        }
        assert_eq!(
            a.allocated(),
            Size(alloc_pages * page),
            "seed {seed} step {step}: allocated after {r:?}"
        );
        let mut mapped_tracts = 0;
        for t in 0..tracts {
            let addr = Addr(base + t * page);
            let sp = sim.protection(addr);
            if sp.is_some() {
                mapped_tracts += 1;
            }
            match a.tract(addr) {
                Some(tr) => {
                    assert_eq!(
                        tr.owner,
                        Owner(owner_of[t]),
                        "seed {seed} step {step} tract {t}: owner (after {r:?})"
                    );
                    assert!(
                        sp.is_some(),
                        "seed {seed} step {step} tract {t}: allocated but not mapped (after {r:?})"
                    );
                    if !tainted[t] {
                        assert_eq!(sp, Some(tr.prot), "seed {seed} step {step} tract {t}: recorded protection differs from the page's (after {r:?})");
                    }
                }
                None => assert_eq!(
                    owner_of[t], 0,
                    "seed {seed} step {step} tract {t}: model has it allocated (after {r:?})"
                ),
            }
        }
        assert_eq!(
            Size(mapped_tracts * page),
            Size(a.allocated().0 + a.spare().0),
            "seed {seed} step {step}: pages mapped in the sim != allocated + spare (after {r:?})"
        );
        if let Some(l) = limit {
            assert!(a.vm().mapped().0 <= l * page, "seed {seed} step {step}: commit limit passed");
        }
    }
    fi.clear();
    // Everything freed cleanly afterwards.
    for (&lo, &(hi, o)) in &model {
        a.free(rg(lo, hi), Owner(o)).unwrap();
    }
    a.purge_spare().unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0), "seed {seed}: committed after freeing all");
    assert_eq!(a.table_pages_mapped(), 0, "seed {seed}");
}

#[test]
fn random_double_faults_small_arena() {
    for seed in seeds(40) {
        run(seed * 0x9E37_79B9, 700, 150_000, 16, None);
    }
}

#[test]
fn random_double_faults_with_commit_limit() {
    for seed in seeds(40) {
        run(seed * 0x0001_2345_6789, 1500, 100_000, 64, Some(300));
    }
}

#[test]
fn random_rare_faults_many_bit_pages() {
    for seed in seeds(15) {
        run(seed * 77_777, 5000, 20_000, 200, None);
    }
}

#[test]
fn random_double_faults_other_page_sizes_and_zone_shifts() {
    for (i, &(page, zshift)) in
        [(128usize, 7u32), (256, 8), (512, 12), (4096, 12), (4096, 20), (1024, 63)]
            .iter()
            .enumerate()
    {
        for seed in seeds(6) {
            run_paged(seed * 0xC0FFEE + i as u64, 600, 120_000, 20, Some(250), page, zshift);
        }
    }
}
