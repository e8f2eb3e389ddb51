//! Written by a reviewer outside the project (round 70). Checks
//! `Vm::metadata_trimmable()` ("Bytes of mapped metadata that record no
//! mapped page: what `trim` would give back now", src/vm/mod.rs) and
//! `Vm::metadata_mapped()` against the simulated backend's own page states
//! after every step of seeded random sequences of map / unmap /
//! unmap_deferred / flush / protect / trim / trim_range, with injected
//! (clean) failures of map, unmap and protect at random call positions,
//! bad ranges, and VMs whose client range is not a multiple of one
//! bit-table page (512 client pages with 64-byte pages). `check()` after
//! every step; a failed call must leave the client pages as they were
//! ("errors that leave the VM unchanged") and may only leave fresh, empty
//! bit-table pages of its own range behind.

use vmspace::vm::Vm;
use vmspace::{Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Op, Protection};
use vmspace_workload::Rng;

const PAGE: usize = 64;
const PER: usize = 8 * PAGE;

struct Geometry {
    base: usize,
    client_pages: usize,
    table_pages: usize,
    summary_pages: usize,
    table_base: usize,
}

fn geometry(vm: &Vm<&FaultInjector<&SimBackend>>) -> Geometry {
    let base = vm.base().0;
    let client_pages = vm.range().size().0 / PAGE;
    let table_pages = client_pages.div_ceil(PER);
    let summary_pages = (table_pages * 4).div_ceil(PAGE);
    let table_base = vm.limit().0 + summary_pages * PAGE;
    assert_eq!(vm.reservation().limit().0, table_base + table_pages * PAGE);
    Geometry { base, client_pages, table_pages, summary_pages, table_base }
}

/// The truth, read from the backend: which client pages and bit-table
/// pages are mapped.
fn truth(sim: &SimBackend, g: &Geometry) -> (Vec<bool>, Vec<bool>) {
    let client =
        (0..g.client_pages).map(|i| sim.protection(Addr(g.base + i * PAGE)).is_some()).collect();
    let tables = (0..g.table_pages)
        .map(|k| sim.protection(Addr(g.table_base + k * PAGE)).is_some())
        .collect();
    (client, tables)
}

fn empty_tables(client: &[bool], tables: &[bool]) -> Vec<usize> {
    (0..tables.len())
        .filter(|&k| {
            tables[k] && !client[k * PER..((k + 1) * PER).min(client.len())].iter().any(|&m| m)
        })
        .collect()
}

fn pieces(lo: usize, hi: usize) -> core::ops::Range<usize> {
    lo / PER..(hi - 1) / PER + 1
}

/// Everything the VM reports about its metadata agrees with the backend.
fn agree(
    vm: &Vm<&FaultInjector<&SimBackend>>,
    sim: &SimBackend,
    g: &Geometry,
    model: &[bool],
    ctx: &str,
) {
    vm.check().unwrap_or_else(|e| panic!("{ctx}: check: {e:?}"));
    let (client, tables) = truth(sim, g);
    assert_eq!(client, model, "{ctx}: client pages differ from the model");
    let mapped_tables = tables.iter().filter(|&&m| m).count();
    assert_eq!(vm.metadata_mapped().0, (g.summary_pages + mapped_tables) * PAGE, "{ctx}");
    let empty = empty_tables(&client, &tables).len();
    assert_eq!(vm.metadata_trimmable().0, empty * PAGE, "{ctx}: trimmable");
    // Every client page that is mapped has its bit-table page mapped.
    for (i, _) in client.iter().enumerate().filter(|(_, &m)| m) {
        assert!(tables[i / PER], "{ctx}: page {i} mapped without its table page");
    }
}

fn random_range(rng: &mut Rng, pages: usize) -> (usize, usize) {
    let lo = rng.below(pages);
    let len = match rng.below(4) {
        0 => 1,
        1 => rng.between(1, 8),
        2 => rng.between(1, PER + 3),
        _ => rng.between(1, 3 * PER),
    };
    (lo, (lo + len).min(pages))
}

fn run(seed: u64, client_pages: usize, steps: usize) {
    let mut buf = vec![0u8; (client_pages + 64) * PAGE * 2 + (1 << 16)];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&faulty, Size(client_pages * PAGE), Size(PAGE)).unwrap();
    let g = geometry(&vm);
    let mut model = vec![false; g.client_pages];
    let mut rng = Rng::new(seed);
    let r = |lo: usize, hi: usize| {
        Range::from_size(Addr(g.base + lo * PAGE), Size((hi - lo) * PAGE)).unwrap()
    };
    for step in 0..steps {
        let ctx = format!("seed {seed:#x} pages {client_pages} step {step}");
        // Arm a fault now and then, at a random call position.
        faulty.clear();
        if rng.chance(250) {
            let kinds: &[Op] = match rng.below(4) {
                0 => &[Op::Map],
                1 => &[Op::Unmap],
                2 => &[Op::Protect],
                _ => &[Op::Map, Op::Unmap],
            };
            faulty.only(kinds);
            faulty.fail_nth(rng.between(1, 4) as u64);
        }
        let (_, tables_before) = truth(&sim, &g);
        let (lo, hi) = random_range(&mut rng, g.client_pages);
        let op = rng.below(100);
        match op {
            0..=34 => {
                // Map: a free run (or, now and then, whatever was drawn).
                let ok_range = !model[lo..hi].iter().any(|&m| m);
                if !ok_range && !rng.chance(200) {
                    continue;
                }
                let res = vm.map(r(lo, hi));
                if res.is_ok() {
                    assert!(ok_range, "{ctx}: mapped over a mapped page");
                    model[lo..hi].iter_mut().for_each(|m| *m = true);
                } else {
                    // Only fresh, empty table pages of the range may stay.
                    let (client, tables) = truth(&sim, &g);
                    for k in 0..g.table_pages {
                        if tables[k] && !tables_before[k] {
                            assert!(pieces(lo, hi).contains(&k), "{ctx}: stray table page {k}");
                            assert!(empty_tables(&client, &tables).contains(&k), "{ctx}");
                        }
                    }
                }
            }
            35..=69 => {
                // Unmap (deferred for 60..70) a mapped run.
                let mut h = lo;
                while h < hi && model[h] {
                    h += 1;
                }
                let bad = h == lo;
                let hi = if bad { hi } else { h };
                if bad && !rng.chance(200) {
                    continue;
                }
                let res = if op >= 60 { vm.unmap_deferred(r(lo, hi)) } else { vm.unmap(r(lo, hi)) };
                if res.is_ok() {
                    assert!(!bad, "{ctx}: unmapped an unmapped page");
                    model[lo..hi].iter_mut().for_each(|m| *m = false);
                }
            }
            70..=77 => {
                let _ = vm.flush();
            }
            78..=84 => {
                let all = model[lo..hi].iter().all(|&m| m);
                let res = vm.protect(r(lo, hi), Protection::Read);
                if res.is_ok() {
                    assert!(all, "{ctx}");
                }
                // Put it back so the model's "mapped" means read-write or
                // read-only alike (protection() is Some for either).
                faulty.clear();
                if all {
                    vm.protect(r(lo, hi), Protection::ReadWrite).unwrap();
                }
            }
            85..=91 => {
                let before = vm.metadata_trimmable().0 / PAGE;
                let res = vm.trim();
                if let Ok(n) = res {
                    assert_eq!(n, before, "{ctx}: trim gave back other than metadata_trimmable");
                    assert_eq!(vm.metadata_trimmable(), Size(0), "{ctx}");
                }
            }
            _ => {
                let (client, tables) = truth(&sim, &g);
                let in_range = empty_tables(&client, &tables)
                    .into_iter()
                    .filter(|k| pieces(lo, hi).contains(k))
                    .count();
                let res = vm.trim_range(r(lo, hi));
                if let Ok(n) = res {
                    assert_eq!(n, in_range, "{ctx}: trim_range count");
                    let (client, tables) = truth(&sim, &g);
                    assert!(
                        !empty_tables(&client, &tables).iter().any(|k| pieces(lo, hi).contains(k)),
                        "{ctx}: trim_range left an empty page of its range"
                    );
                }
            }
        }
        faulty.clear();
        agree(&vm, &sim, &g, &model, &ctx);
    }
    // The end: a trim gives back exactly what was reported.
    let _ = vm.flush();
    let t = vm.metadata_trimmable().0 / PAGE;
    assert_eq!(vm.trim(), Ok(t));
    agree(&vm, &sim, &g, &model, "end");
}

#[test]
fn trimmable_matches_the_backend_under_random_sequences_and_faults() {
    for (i, pages) in [1usize, 7, 511, 512, 513, 1000, 1537, 2048, 2600].into_iter().enumerate() {
        for s in 0..3u64 {
            run(0x7270_0000 + (i as u64) * 16 + s, pages, 400);
        }
    }
}

/// Every call position of the failure of a map spanning four bit-table
/// pages (none of them mapped before, then some of them mapped before),
/// and of the unmaps that give the fresh ones back.
#[test]
fn every_fault_position_of_a_wide_map_leaves_trimmable_exact() {
    for pre in [false, true] {
        for kinds in [&[Op::Map][..], &[Op::Unmap], &[Op::Map, Op::Unmap]] {
            for n in 1..=12u64 {
                let mut buf = vec![0u8; 1 << 20];
                let sim = SimBackend::new(&mut buf, PAGE).unwrap();
                let faulty = FaultInjector::new(&sim);
                // 2100 pages: the last bit-table page is partly past the end.
                let mut vm = Vm::reserve(&faulty, Size(2100 * PAGE), Size(PAGE)).unwrap();
                let g = geometry(&vm);
                let mut model = vec![false; g.client_pages];
                let r = |lo: usize, hi: usize| {
                    Range::from_size(Addr(g.base + lo * PAGE), Size((hi - lo) * PAGE)).unwrap()
                };
                if pre {
                    vm.map(r(600, 601)).unwrap();
                    vm.unmap(r(600, 601)).unwrap();
                    vm.map(r(2099, 2100)).unwrap();
                    model[2099] = true;
                }
                agree(&vm, &sim, &g, &model, "setup");
                // The map of pages 100..2099 fails; then it is retried and
                // fails (maybe) on a different call.
                faulty.only(kinds);
                faulty.fail_nth(n);
                let first = vm.map(r(100, 2099));
                faulty.clear();
                if first.is_ok() {
                    model[100..2099].iter_mut().for_each(|m| *m = true);
                }
                agree(&vm, &sim, &g, &model, &format!("pre {pre} kinds {kinds:?} n {n}"));
                let t = vm.metadata_trimmable().0 / PAGE;
                assert_eq!(vm.trim(), Ok(t));
                agree(&vm, &sim, &g, &model, "after trim");
            }
        }
    }
}

/// Failed maps whose fresh bit-table pages' give-back fails too (two
/// injected failures in one call: random at a high rate), then trims and
/// trim_ranges that fail part way: the count stays exact.
#[test]
fn double_failures_leave_trimmable_exact() {
    for seed in 0..40u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut vm = Vm::reserve(&faulty, Size(2100 * PAGE), Size(PAGE)).unwrap();
        let g = geometry(&vm);
        let mut model = vec![false; g.client_pages];
        let r = |lo: usize, hi: usize| {
            Range::from_size(Addr(g.base + lo * PAGE), Size((hi - lo) * PAGE)).unwrap()
        };
        let mut rng = Rng::new(seed);
        for step in 0..30 {
            let ctx = format!("seed {seed} step {step}");
            faulty.only(&[Op::Map, Op::Unmap]);
            faulty.fail_randomly(seed * 1000 + step, 400_000);
            let (lo, hi) = random_range(&mut rng, g.client_pages);
            match rng.below(4) {
                0 | 1 if !model[lo..hi].iter().any(|&m| m) => {
                    if vm.map(r(lo, hi)).is_ok() {
                        model[lo..hi].iter_mut().for_each(|m| *m = true);
                    }
                }
                0 | 1 => {
                    if model[lo..hi].iter().all(|&m| m) && vm.unmap(r(lo, hi)).is_ok() {
                        model[lo..hi].iter_mut().for_each(|m| *m = false);
                    }
                }
                // `trim`'s docs: a failed trim's count is what
                // metadata_trimmable fell by; the failed page is still in it.
                2 => {
                    let before = vm.metadata_trimmable().0 / PAGE;
                    let (_, tables) = truth(&sim, &g);
                    let given_back = match vm.trim() {
                        Ok(n) => n,
                        Err(_) => {
                            let after = vm.metadata_trimmable().0 / PAGE;
                            assert!((1..=before).contains(&after), "{ctx}: {before} -> {after}");
                            before - after
                        }
                    };
                    let (_, now) = truth(&sim, &g);
                    let unmapped =
                        tables.iter().zip(&now).filter(|(was, is)| **was && !**is).count();
                    assert_eq!(given_back, unmapped, "{ctx}: pages given back");
                }
                _ => {
                    let _ = vm.trim_range(r(lo, hi));
                }
            }
            faulty.clear();
            agree(&vm, &sim, &g, &model, &ctx);
        }
        let t = vm.metadata_trimmable().0 / PAGE;
        assert_eq!(vm.trim(), Ok(t));
        agree(&vm, &sim, &g, &model, "end");
    }
}
