//! Round 35 outside review: the VM arena's statistics and accounting against
//! a shadow model (tract owners) after every step of seeded random
//! sequences, with backend faults (clean and part way) at random calls.
//!
//! Contract: src/vmarena/mod.rs:27-44 "Every operation either completes or
//! fails with the arena unchanged ... [`check`](VmArena::check) verifies
//! every invariant either way." src/vmarena/error.rs:13-18 "A failing
//! operation leaves the arena as it was before the call: the same tracts
//! allocated to the same owners with the same descriptors, the same pages
//! committed; except after RollbackFailed ... and for the spare pages a
//! failing allocation or purge gave back, and a table page it could not".
//! src/vmarena/mod.rs:196 `allocated`: "Bytes of tracts allocated."
//! src/vmarena/mod.rs:201 `spare`: "Bytes of spare tracts: free but kept
//! committed." src/vmarena/mod.rs:206 `committed`: "Bytes committed:
//! allocated and spare tracts and the mapped table pages (what the commit
//! limit bounds)." src/vmarena/mod.rs:212-214 `metadata_mapped`.
//! src/vmarena/request.rs:65 `commit_limit`: "Committed bytes ... never
//! exceed this." src/vmarena/ops.rs:68-74 `free`: "Up to the spare bound, the
//! pages stay committed for reuse, the lowest first; the rest are
//! decommitted. A range with any protected tract in it is decommitted
//! whole". src/vm/mod.rs:9 and the VM arena's `Vm`: "Dropping it releases
//! everything."

use vmspace::vmarena::{
    Owner, Placement, Request, Stranded, VmArena, VmArenaConfig, VmArenaError, ZoneSet,
};
use vmspace_shim::sim::{PageState, Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Pages, Protection, Range, Size};

/// 8 descriptors a page-table page, 512 bits an allocation-table page.
const PAGE: usize = 64;
const TRACTS: usize = 1100;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;
type Arena<'a> = VmArena<&'a Fi<'a>>;

fn mapped(sim: &SimBackend<'_>, a: Addr) -> bool {
    matches!(sim.page_state(a), Some(PageState::Mapped(_)))
}

/// Every documented statistic against the model `owners` and the backend.
fn rank(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

fn compare(
    a: &Arena<'_>,
    sim: &SimBackend<'_>,
    owners: &[u32],
    over_spare: bool,
    rolled_back: bool,
    exact_tables: bool,
    step: &str,
) {
    a.check().unwrap_or_else(|e| panic!("{step}: check: {e:?}"));
    let base = a.base().0;
    let n_alloc = owners.iter().filter(|&&o| o != 0).count();
    assert_eq!(a.allocated(), Size(n_alloc * PAGE), "{step}: allocated()");
    let mut free_committed = 0;
    for (i, &o) in owners.iter().enumerate() {
        let addr = Addr(base + i * PAGE);
        assert_eq!(a.is_allocated(addr), o != 0, "{step}: is_allocated tract {i}");
        assert_eq!(a.tract(addr).map(|t| t.owner.0), (o != 0).then_some(o), "{step}: tract {i}");
        let real = mapped(sim, addr);
        if o != 0 {
            assert!(real, "{step}: allocated tract {i} not committed in the backend");
            // src/vmarena/error.rs:53-55: tracts are "never recorded more open
            // than they may be"; without a failed rollback, exactly as recorded.
            let rec = a.tract(addr).unwrap().prot;
            let act = sim.protection(addr).unwrap();
            if rolled_back {
                assert!(rank(rec) <= rank(act), "{step}: tract {i} recorded {rec:?}, is {act:?}");
            } else {
                assert_eq!(rec, act, "{step}: tract {i} protection recorded vs backend");
            }
        } else if real {
            free_committed += 1;
        }
    }
    assert_eq!(a.spare(), Size(free_committed * PAGE), "{step}: spare() vs backend");
    // Committed: every page of the VM's client range the backend maps.
    let vm = a.vm();
    let real_committed =
        (vm.base().0..vm.limit().0).step_by(PAGE).filter(|&p| mapped(sim, Addr(p))).count();
    assert_eq!(a.committed(), Size(real_committed * PAGE), "{step}: committed() vs backend");
    let tables = a.table_pages_mapped() + a.bit_pages_mapped();
    assert_eq!(
        a.committed().0,
        a.allocated().0 + a.spare().0 + tables * PAGE,
        "{step}: committed = allocated + spare + tables"
    );
    assert!(a.committed() <= a.commit_limit(), "{step}: committed past the limit");
    if !over_spare {
        assert!(a.spare().0 <= a.spare_limit().saturating_mul(PAGE), "{step}: spare past bound");
    }
    assert_eq!(
        a.metadata_mapped().0,
        tables * PAGE + vm.metadata_mapped().0,
        "{step}: metadata_mapped"
    );
    assert_eq!(
        sim.stats().mapped_pages * PAGE,
        a.committed().0 + vm.metadata_mapped().0,
        "{step}: backend mapped pages"
    );
    assert!(a.table_pages_in_use() <= a.table_pages_mapped(), "{step}: in use vs mapped");
    // src/vmarena/check.rs:10 "Page-table pages that describe at least one
    // allocated tract", from the model; and, before any failure could leave a
    // stale page, "mapped exactly while it describes an allocated tract".
    let used = |per: usize| owners.chunks(per).filter(|c| c.iter().any(|&o| o != 0)).count();
    assert_eq!(a.table_pages_in_use(), used(PAGE / 8), "{step}: table_pages_in_use");
    if exact_tables {
        assert_eq!(a.table_pages_mapped(), used(PAGE / 8), "{step}: table pages mapped");
        assert_eq!(a.bit_pages_mapped(), used(PAGE * 8), "{step}: bit pages mapped");
    }
}

/// The documented placement (src/vmarena/mod.rs:13-18, README "Allocation
/// is first fit by address, in the preferred zones and out of the avoided
/// ones, then out of the avoided ones only, then anywhere"), from the model.
fn first_fit(a: &Arena<'_>, owners: &[u32], req: &Request) -> Option<(usize, Placement)> {
    let (pages, align) = (req.pages.0, req.align.0);
    if pages == 0 || pages > TRACTS {
        return None;
    }
    let base_page = a.base().0 / PAGE;
    let mut last: Option<ZoneSet> = None;
    for (zones, placement) in [
        (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
        (req.avoid.complement(), Placement::NotAvoided),
        (ZoneSet::ALL, Placement::Anywhere),
    ] {
        if last == Some(zones) {
            continue;
        }
        last = Some(zones);
        for p in 0..=TRACTS - pages {
            if (base_page + p) % align != 0 {
                continue;
            }
            let ok = (p..p + pages)
                .all(|i| owners[i] == 0 && zones.contains(a.zone_of(Addr(a.base().0 + i * PAGE))));
            if ok {
                return Some((p, placement));
            }
        }
    }
    None
}

/// A failed call changed what is committed by at most the `stale` pages a
/// retry of stale metadata pages may have given back (the documented
/// exception), and added nothing.
fn only_stale_given_back(a: &Arena<'_>, committed0: Size, stale: usize, label: &str) {
    let now = a.committed();
    assert!(
        now <= committed0 && now.0 + stale * PAGE >= committed0.0,
        "{label}: committed changed {committed0:?} -> {now:?}"
    );
}

fn range(a: &Arena<'_>, lo: usize, hi: usize) -> Range {
    Range::from_size(Addr(a.base().0 + lo * PAGE), Size((hi - lo) * PAGE)).unwrap()
}

fn run(seed: u64, shape: FaultShape, rate: u32) -> (u64, u64) {
    run_zoned(seed, shape, rate, 8)
}

fn run_zoned(seed: u64, shape: FaultShape, rate: u32, zone_shift: u32) -> (u64, u64) {
    run_cfg(seed, shape, rate, 0, zone_shift, 300)
}

/// `rate` per million random faults, or (`nth` > 0) the `nth` call after
/// the arena is made failed, over `steps` steps.
fn run_cfg(
    seed: u64,
    shape: FaultShape,
    rate: u32,
    nth: u64,
    zone_shift: u32,
    steps: usize,
) -> (u64, u64) {
    let offset = OFFSETS[(seed % 8) as usize];
    let mut buffer = Placed::new(1 << 20, offset);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let injected;
    let part;
    {
        let cfg = VmArenaConfig::new(Size(TRACTS * PAGE))
            .zone_shift(zone_shift)
            .spare_limit(20)
            .commit_limit(Size(600 * PAGE));
        let mut a = VmArena::new(&fi, cfg).unwrap();
        fi.set_shape(shape);
        fi.fail_randomly(seed, rate);
        fi.fail_nth(nth);
        let mut owners = vec![0u32; TRACTS];
        let mut grants: Vec<(usize, usize, u32)> = Vec::new();
        let mut s = seed | 1;
        let mut over_spare = false;
        let mut rolled_back = false;
        let table_pages = TRACTS.div_ceil(PAGE / 8);
        let bit_pages = TRACTS.div_ceil(PAGE * 8);
        compare(&a, &sim, &owners, over_spare, rolled_back, fi.injected() == 0, "start");
        for step in 0..steps {
            let what = rng(&mut s) % 12;
            let before_owners = owners.clone();
            let (spare0, committed0, alloc0) = (a.spare(), a.committed(), a.allocated());
            let stale0 = a.table_pages_mapped() - a.table_pages_in_use();
            // What a retry of stale metadata pages may give back at most:
            // the stale table and bit pages.
            let retry0 = a.stale_pages();
            assert!(retry0 >= stale0, "stale_pages() misses stale table pages");
            let before_state: Vec<bool> =
                (0..TRACTS).map(|i| mapped(&sim, Addr(a.base().0 + i * PAGE))).collect();
            let label = format!(
                "seed {seed:#x} {shape:?} step {step} op {what} (tables {}+{} in use {})",
                a.table_pages_mapped(),
                a.bit_pages_mapped(),
                a.table_pages_in_use()
            );
            let outcome: Result<(), VmArenaError>;
            match what {
                0..=4 => {
                    let pages = match rng(&mut s) % 12 {
                        0 => 0,
                        1 => usize::MAX,
                        2 => usize::MAX / PAGE,
                        3 => TRACTS,
                        4 => TRACTS + 1,
                        5 => 1,
                        _ => 1 + (rng(&mut s) as usize) % 30,
                    };
                    let owner = match rng(&mut s) % 10 {
                        0 => 0,
                        x => (x % 3 + 1) as u32,
                    };
                    let mut req = Request::new(Pages(pages), Owner(owner));
                    if rng(&mut s) % 2 == 0 {
                        req = req
                            .prefer(ZoneSet(rng(&mut s)))
                            .avoid(ZoneSet::single((rng(&mut s) % 64) as u32));
                    }
                    if rng(&mut s) % 4 == 0 {
                        req = req.align(Pages(1 << (rng(&mut s) % 6)));
                    }
                    let expect = first_fit(&a, &owners, &req);
                    // The commit-limit outcome (src/vmarena/mod.rs:17-21): Ok
                    // without purge (spare after), Ok after purging all spare
                    // pages, or CommitLimit { needed }.
                    let stale_bits = (0..bit_pages)
                        .filter(|&j| {
                            mapped(&sim, Addr(a.base().0 + (TRACTS + table_pages + j) * PAGE))
                                && owners[j * 512..((j + 1) * 512).min(TRACTS)]
                                    .iter()
                                    .all(|&o| o == 0)
                        })
                        .count();
                    let predict = expect
                        .filter(|_| stale0 == 0 && stale_bits == 0 && owner != 0)
                        .map(|(lo, _)| {
                            let hi = lo + pages;
                            let meta = (lo / 8..(hi - 1) / 8 + 1)
                                .filter(|&k| !mapped(&sim, Addr(a.base().0 + (TRACTS + k) * PAGE)))
                                .count()
                                + (lo / 512..(hi - 1) / 512 + 1)
                                    .filter(|&j| {
                                        let idx = TRACTS + table_pages + j;
                                        !mapped(&sim, Addr(a.base().0 + idx * PAGE))
                                    })
                                    .count();
                            let spare_in = before_state[lo..hi].iter().filter(|&&b| b).count();
                            let (c, sp, lim) = (committed0.0, spare0.0, a.commit_limit().0);
                            let fresh = (pages - spare_in + meta) * PAGE;
                            if c + fresh <= lim {
                                Ok(sp - spare_in * PAGE)
                            } else if sp > 0 && c - sp + (pages + meta) * PAGE <= lim {
                                Ok(0)
                            } else {
                                Err(VmArenaError::CommitLimit { needed: c + fresh, limit: lim })
                            }
                        });
                    let inj0 = fi.injected();
                    let res = a.alloc(&req);
                    if fi.injected() == inj0 {
                        if let Some(p) = predict {
                            let got = res.as_ref().map(|_| a.spare().0).map_err(|e| *e);
                            assert_eq!(got, p, "{label}: commit-limit outcome (spare after)");
                        }
                    }
                    match res {
                        Ok(g) => {
                            let lo = (g.range.base().0 - a.base().0) / PAGE;
                            let hi = lo + g.range.size().0 / PAGE;
                            assert_eq!(Some((lo, g.placement)), expect, "{label}: first fit");
                            assert_eq!(hi - lo, pages, "{label}: grant size");
                            assert!(owners[lo..hi].iter().all(|&o| o == 0), "{label}: overlap");
                            owners[lo..hi].iter_mut().for_each(|o| *o = owner);
                            grants.push((lo, hi, owner));
                            // "committed, described ... as owned by req.owner,
                            // read-write" (src/vmarena/ops.rs:13-15).
                            for i in lo..hi {
                                let addr = Addr(a.base().0 + i * PAGE);
                                let t = a.tract(addr).unwrap();
                                assert_eq!(
                                    (t.owner, t.prot, t.client),
                                    (Owner(owner), Protection::ReadWrite, 0),
                                    "{label}: new tract {i}"
                                );
                                assert_eq!(
                                    sim.protection(addr),
                                    Some(Protection::ReadWrite),
                                    "{label}: new tract {i} in the backend"
                                );
                            }
                            if g.placement == Placement::Preferred {
                                let z = a.zones_of(g.range);
                                assert!(
                                    z.inter(req.avoid.complement()).inter(req.prefer) == z,
                                    "{label}: preferred placement outside preferred zones"
                                );
                            }
                            // Spare reused: exactly the committed free tracts taken,
                            // unless the commit limit made the arena purge them all.
                            let reused = before_state[lo..hi].iter().filter(|&&b| b).count();
                            assert!(
                                a.spare().0 == spare0.0 - reused * PAGE || a.spare().0 == 0,
                                "{label}: spare {:?} after reusing {reused} of {:?}",
                                a.spare(),
                                spare0
                            );
                            outcome = Ok(());
                        }
                        Err(e) => {
                            match e {
                                VmArenaError::NoSpace { .. } => {
                                    assert_eq!(expect, None, "{label}: NoSpace but a fit exists")
                                }
                                VmArenaError::Common(_) => {}
                                _ => assert!(expect.is_some(), "{label}: {e:?} without a fit"),
                            }
                            assert!(
                                pages == 0 || owner == 0 || !matches!(e, VmArenaError::Common(_)),
                                "{label}: {e:?}"
                            );
                            if let VmArenaError::RollbackFailed { tracts, .. } = e {
                                assert_eq!(tracts, Stranded::Spare, "{label}");
                                over_spare = true;
                            } else {
                                assert!(a.spare() <= spare0, "{label}: spare grew on failure");
                            }
                            outcome = Err(e);
                        }
                    }
                }
                5..=8 => {
                    // Free: a grant, or a bad range (wrong owner, double free,
                    // across two grants, never allocated, part of a grant).
                    let k = rng(&mut s) as usize;
                    let choice = rng(&mut s) % 16;
                    let (lo, hi, owner) = if grants.is_empty() || choice == 0 {
                        let lo = k % TRACTS;
                        (lo, (lo + 1 + k % 7).min(TRACTS), 1 + (k % 3) as u32)
                    } else {
                        let (lo, hi, o) = grants[k % grants.len()];
                        match choice {
                            1 => (lo, hi, o % 3 + 1),
                            2 => {
                                let (l2, h2, _) = grants[(k / 7) % grants.len()];
                                (lo.min(l2), hi.max(h2), o)
                            }
                            3 => (lo, lo + 1, o),
                            _ => (lo, hi, o),
                        }
                    };
                    let r = range(&a, lo, hi);
                    let protected = (lo..hi).any(|i| {
                        a.tract(Addr(a.base().0 + i * PAGE))
                            .is_some_and(|t| t.prot != Protection::ReadWrite)
                    });
                    let res = a.free(r, Owner(owner));
                    match res {
                        Ok(()) => {
                            assert!(
                                before_owners[lo..hi].iter().all(|&x| x == owner),
                                "{label}: freed what was not owner {owner}'s"
                            );
                            owners[lo..hi].iter_mut().for_each(|o| *o = 0);
                            grants.retain(|&(l, h, _)| h <= lo || l >= hi);
                            let n = hi - lo;
                            let keep = if protected {
                                0
                            } else {
                                a.spare_limit().saturating_sub(spare0.0 / PAGE).min(n)
                            };
                            assert_eq!(a.spare().0, spare0.0 + keep * PAGE, "{label}: spare");
                            for i in lo..hi {
                                let real = mapped(&sim, Addr(a.base().0 + i * PAGE));
                                assert_eq!(real, i < lo + keep, "{label}: kept tract {i}");
                            }
                        }
                        Err(VmArenaError::RollbackFailed { tracts, .. }) => {
                            assert_eq!(tracts, Stranded::Inaccessible, "{label}");
                        }
                        Err(_) => {
                            // A stale table page may be retried and given back
                            // (tests/outside_r35_vmarena_stale_retry.rs reports it).
                            only_stale_given_back(&a, committed0, retry0, &label);
                            assert_eq!(a.spare(), spare0, "{label}: spare changed");
                        }
                    }
                    outcome = res;
                }
                9 => {
                    let res = a.purge_spare();
                    match res {
                        Ok(n) => {
                            assert_eq!(n * PAGE, spare0.0, "{label}: purge count");
                            assert_eq!(a.spare(), Size(0), "{label}");
                            over_spare = false;
                        }
                        Err(VmArenaError::RollbackFailed { tracts, .. }) => {
                            assert_eq!(tracts, Stranded::Spare, "{label}")
                        }
                        Err(_) => assert!(a.spare() <= spare0, "{label}"),
                    }
                    outcome = res.map(|_| ());
                }
                10 => {
                    let lim = (rng(&mut s) % 40) as usize;
                    let old_lim = a.spare_limit();
                    let res = a.set_spare_limit(lim);
                    if res.is_err() {
                        assert_eq!(a.spare_limit(), old_lim, "{label}: bound changed on failure");
                    }
                    if res.is_ok() {
                        assert_eq!(a.spare_limit(), lim, "{label}");
                        assert!(a.spare().0 <= lim * PAGE, "{label}: spare past new limit");
                        over_spare = false;
                    }
                    outcome = res;
                }
                _ => {
                    if rng(&mut s) % 2 == 0 && !grants.is_empty() {
                        let (lo, hi, o) = grants[rng(&mut s) as usize % grants.len()];
                        let p = [Protection::Read, Protection::None, Protection::ReadWrite]
                            [(rng(&mut s) % 3) as usize];
                        let res = a.protect(range(&a, lo, hi), Owner(o), p);
                        match res {
                            Ok(()) => {
                                for i in lo..hi {
                                    let addr = Addr(a.base().0 + i * PAGE);
                                    assert_eq!(a.tract(addr).unwrap().prot, p, "{label}");
                                    assert_eq!(sim.protection(addr), Some(p), "{label}");
                                }
                            }
                            Err(VmArenaError::RollbackFailed { .. }) => {}
                            Err(_) => {
                                only_stale_given_back(&a, committed0, retry0, &label);
                                assert_eq!(a.spare(), spare0, "{label}");
                            }
                        }
                        outcome = res;
                    } else {
                        let c = a.committed().0 / PAGE;
                        let lim = match rng(&mut s) % 10 {
                            0 => 0,
                            1 => c.saturating_sub(a.spare().0 / PAGE),
                            2 | 3 => c + (rng(&mut s) % 200) as usize,
                            4 => usize::MAX / PAGE,
                            _ => 600,
                        };
                        let old_lim = a.commit_limit();
                        let res = a.set_commit_limit(Size(lim * PAGE));
                        if res.is_err() {
                            assert_eq!(a.commit_limit(), old_lim, "{label}: limit changed");
                        }
                        // Stale table pages are retried first (the documented
                        // exception): what is committed without spare pages
                        // when the limit is judged lies between these two.
                        let without = committed0.0 - spare0.0;
                        let least = without.saturating_sub(retry0 * PAGE);
                        match res {
                            Ok(()) => {
                                assert_eq!(a.commit_limit(), Size(lim * PAGE), "{label}");
                                assert!(least <= lim * PAGE, "{label}: accepted too low");
                            }
                            Err(VmArenaError::CommitLimit { .. }) => {
                                // Refused before any purge: only the retry
                                // changed what is committed.
                                assert_eq!(a.spare(), spare0, "{label}");
                                let judged = a.committed().0 - spare0.0;
                                assert!(judged >= least, "{label}");
                                assert!(judged > lim * PAGE, "{label}: refused {lim}")
                            }
                            Err(_) => {}
                        }
                        outcome = res;
                    }
                }
            }
            if std::env::var("R35_DEBUG").is_ok() {
                eprintln!(
                    "{label}: {outcome:?} alloc {:?} spare {:?} comm {:?}",
                    a.allocated(),
                    a.spare(),
                    a.committed()
                );
            }
            if let Err(VmArenaError::RollbackFailed { .. }) = outcome {
                rolled_back = true;
            }
            if outcome.is_err() {
                assert_eq!(owners, before_owners, "{label}: owners changed on failure");
                assert_eq!(a.allocated(), alloc0, "{label}");
            }
            compare(&a, &sim, &owners, over_spare, rolled_back, fi.injected() == 0, &label);
        }
        injected = if nth == 0 && rate == 0 { fi.eligible_calls() } else { fi.injected() };
        part = fi.changed_part_way();
        fi.clear();
        // Drop with allocations outstanding.
        assert!(sim.stats().reservations > 0);
    }
    let st = sim.stats();
    assert_eq!((st.reservations, st.mapped_pages, st.reserved_pages), (0, 0, 0), "seed {seed}");
    (injected, part)
}

fn seeds(n: u64) -> u64 {
    std::env::var("R35_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(n)
}

#[test]
fn random_sequences_clean_faults() {
    let mut injected = 0;
    for seed in 1..=seeds(16) {
        injected += run(seed * 0x9E37_79B9, FaultShape::Clean, 80_000).0;
    }
    assert!(injected > 50, "faults injected: {injected}");
}

#[test]
fn random_sequences_part_way_faults() {
    let mut part = 0;
    for seed in 1..=seeds(16) {
        part += run(seed * 0x51ED_2701, FaultShape::PartWay, 80_000).1;
    }
    assert!(part > 5, "part-way failures: {part}");
}

#[test]
fn random_sequences_no_faults() {
    for seed in 1..=4u64 {
        run(seed * 0x1234_5671, FaultShape::Clean, 0);
    }
}

/// Placement and accounting with other zone stripes: one tract a zone (the
/// page shift), a few, and stripes wider than the arena up to 2^63.
#[test]
fn random_sequences_other_zone_shifts() {
    for zone_shift in [6, 7, 11, 14, 20, 40, 63] {
        for seed in 1..=3u64 {
            run_zoned(
                seed * 0x7F4A_7C15 + zone_shift as u64,
                FaultShape::PartWay,
                30_000,
                zone_shift,
            );
        }
    }
}

/// Every backend call of a 60-step sequence failed in turn, both shapes.
#[test]
fn every_call_position_fails_in_turn() {
    let seed = 0xC0FF_EE11;
    // Without faults, the first number is the count of backend calls.
    let calls = run_cfg(seed, FaultShape::Clean, 0, 0, 8, 60).0;
    assert!(calls > 50, "calls {calls}");
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        for nth in 1..=calls {
            run_cfg(seed, shape, 0, nth, 8, 60);
        }
    }
}
