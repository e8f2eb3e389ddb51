//! Round 35 outside review: the VM layer's statistics and walks against a
//! shadow model after every step of seeded random sequences, faults included.
//!
//! Contract (src/vm/mod.rs:11-16): "Bad ranges (misaligned, outside the VM,
//! mapping what is mapped, unmapping what is not) are errors that leave the
//! VM unchanged; so are failures of the backend, its own bit-table pages
//! included (a failed `map` gives back the table pages it mapped), except in
//! [`Vm::trim`], which keeps what it gave back before the failure, and where
//! giving back such a table page fails too: it stays mapped, empty and
//! counted, until a `trim`."
//! src/vm/mod.rs:126 `mapped`: "Bytes of client space mapped now."
//! src/vm/mod.rs:131 `metadata_mapped`: "Bytes of metadata (summary and
//! bit-table pages) mapped now."
//! src/vm/mod.rs:264 `mapped_runs`: "The runs of mapped pages, in address
//! order." src/vm/mod.rs:268 `trim`: "Unmap bit-table pages that no longer
//! record a mapped page." src/vm/mod.rs:9 "Dropping it releases everything."

use vmspace::vm::{Vm, VmError};
use vmspace_shim::sim::{PageState, Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Protection, Range, Size};

/// Small pages so that the bit table spans several pages (512 bits each).
const PAGE: usize = 64;
/// Client pages: 4 bit-table pages and a part of a fifth.
const PAGES: usize = 4 * 512 + 100;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;

/// Every statistic and walk of `vm` against the model `m`, and the backend.
fn compare(vm: &Vm<&Fi<'_>>, sim: &SimBackend<'_>, m: &[bool], step: &str) {
    let count = m.iter().filter(|&&b| b).count();
    assert_eq!(vm.mapped(), Size(count * PAGE), "{step}: mapped()");
    vm.check().unwrap_or_else(|e| panic!("{step}: check: {e:?}"));
    let base = vm.base().0;
    // Runs from the model.
    let mut runs = Vec::new();
    let mut i = 0;
    while i < m.len() {
        if m[i] {
            let j = (i..m.len()).find(|&j| !m[j]).unwrap_or(m.len());
            runs.push(Range::from_size(Addr(base + i * PAGE), Size((j - i) * PAGE)).unwrap());
            i = j;
        } else {
            i += 1;
        }
    }
    let walked: Vec<Range> = vm.mapped_runs().collect();
    assert_eq!(walked, runs, "{step}: mapped_runs");
    for (i, &b) in m.iter().enumerate() {
        let a = Addr(base + i * PAGE);
        assert_eq!(vm.is_mapped(a), b, "{step}: is_mapped page {i}");
        let real = matches!(sim.page_state(a), Some(PageState::Mapped(_)));
        assert_eq!(real, b, "{step}: backend state of page {i}: {:?}", sim.page_state(a));
    }
    // Client pages mapped plus metadata mapped is all the backend maps.
    assert_eq!(
        sim.stats().mapped_pages * PAGE,
        vm.mapped().0 + vm.metadata_mapped().0,
        "{step}: backend mapped pages vs mapped()+metadata_mapped()"
    );
    // The metadata region past the limit: what is mapped there is counted.
    let meta_real = (vm.limit().0..vm.reservation().limit().0)
        .step_by(PAGE)
        .filter(|&a| matches!(sim.page_state(Addr(a)), Some(PageState::Mapped(_))))
        .count();
    assert_eq!(meta_real * PAGE, vm.metadata_mapped().0, "{step}: metadata pages");
}

/// Table pages (512 client pages each) that record a mapped page, plus the
/// summary page: what `metadata_mapped` is after a successful `trim`.
fn trimmed_meta(m: &[bool]) -> usize {
    1 + m.chunks(PAGE * 8).filter(|c| c.iter().any(|&b| b)).count()
}

fn pick(s: &mut u64, vm: &Vm<&Fi<'_>>) -> (Range, Option<(usize, usize)>) {
    let base = vm.base().0;
    let r = rng(s);
    let lo = (rng(s) as usize) % PAGES;
    let len = match r % 10 {
        0 => PAGES - lo,
        1 => 1,
        2 => 1 + (rng(s) as usize) % 1200,
        _ => 1 + (rng(s) as usize) % 40,
    }
    .min(PAGES - lo);
    let good = Range::from_size(Addr(base + lo * PAGE), Size(len * PAGE)).unwrap();
    match (r >> 8) % 20 {
        0 => (Range::from_size(Addr(base + lo * PAGE + 8), Size(len * PAGE)).unwrap(), None),
        1 => (Range::from_size(Addr(base + lo * PAGE), Size(len * PAGE + 1)).unwrap(), None),
        2 => (Range::from_size(Addr(vm.limit().0 - PAGE), Size(2 * PAGE)).unwrap(), None),
        3 => (Range::new(Addr(usize::MAX - 2 * PAGE + 1), Addr(usize::MAX)).unwrap(), None),
        4 => (Range::empty(Addr(base + lo * PAGE)), None),
        5 => (vm.range(), Some((0, PAGES))),
        _ => (good, Some((lo, lo + len))),
    }
}

fn run(seed: u64, shape: FaultShape, rate: u32) {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    {
        let mut vm = Vm::reserve(&fi, Size(PAGES * PAGE), Size(PAGE)).unwrap();
        fi.set_shape(shape);
        fi.fail_randomly(seed, rate);
        let mut m = vec![false; PAGES];
        let mut s = seed | 1;
        compare(&vm, &sim, &m, "start");
        for step in 0..400 {
            let (range, idx) = pick(&mut s, &vm);
            let before_meta = vm.metadata_mapped();
            let what = rng(&mut s) % 10;
            let label = format!("seed {seed} {shape:?} step {step} op {what} {range:?}");
            match what {
                0..=3 => {
                    let r = vm.map(range);
                    match (idx, r) {
                        (Some((lo, hi)), Ok(())) => {
                            assert!(m[lo..hi].iter().all(|&b| !b), "{label}: mapped over mapped");
                            m[lo..hi].iter_mut().for_each(|b| *b = true);
                        }
                        (None, Ok(())) => panic!("{label}: bad range mapped"),
                        (Some((lo, hi)), Err(VmError::AlreadyMapped(_))) => {
                            assert!(m[lo..hi].iter().any(|&b| b), "{label}: AlreadyMapped")
                        }
                        (Some((lo, hi)), Err(VmError::Backend(_))) => {
                            assert!(m[lo..hi].iter().all(|&b| !b), "{label}: backend err");
                            // Only a table page whose give-back failed may remain.
                            assert!(vm.metadata_mapped() >= before_meta, "{label}");
                        }
                        (_, Err(e)) => {
                            assert!(idx.is_none(), "{label}: {e:?}");
                            assert_eq!(vm.metadata_mapped(), before_meta, "{label}");
                        }
                    }
                }
                4..=6 => {
                    let deferred = what == 6;
                    let r = if deferred { vm.unmap_deferred(range) } else { vm.unmap(range) };
                    match (idx, r) {
                        (Some((lo, hi)), Ok(())) => {
                            assert!(m[lo..hi].iter().all(|&b| b), "{label}: unmapped unmapped");
                            m[lo..hi].iter_mut().for_each(|b| *b = false);
                        }
                        (None, Ok(())) => panic!("{label}: bad range unmapped"),
                        (Some((lo, hi)), Err(VmError::NotMapped(_))) => {
                            assert!(m[lo..hi].iter().any(|&b| !b), "{label}: NotMapped")
                        }
                        (_, Err(_)) => {}
                    }
                    assert_eq!(vm.metadata_mapped(), before_meta, "{label}: unmap trims nothing");
                    if rng(&mut s) % 3 == 0 {
                        vm.flush();
                    }
                }
                7 => {
                    let r = vm.protect(range, Protection::Read);
                    if let (Some((lo, hi)), Ok(())) = (idx, r) {
                        assert!(m[lo..hi].iter().all(|&b| b), "{label}: protected unmapped");
                    }
                    // Give write back (needed by nothing here, but keep pages sane).
                    if idx.is_some() && m[idx.unwrap().0..idx.unwrap().1].iter().all(|&b| b) {
                        let _ = vm.protect(range, Protection::ReadWrite);
                    }
                }
                8 => {
                    let r = vm.trim();
                    if let Ok(n) = r {
                        assert_eq!(
                            vm.metadata_mapped().0,
                            trimmed_meta(&m) * PAGE,
                            "{label}: after trim"
                        );
                        assert_eq!((before_meta.0 - vm.metadata_mapped().0) / PAGE, n, "{label}");
                    } else {
                        assert!(vm.metadata_mapped() <= before_meta, "{label}");
                    }
                }
                _ => {
                    let r = vm.trim_range(range);
                    match (idx, r) {
                        (Some(_), Ok(n)) => assert_eq!(
                            (before_meta.0 - vm.metadata_mapped().0) / PAGE,
                            n,
                            "{label}: trim_range count"
                        ),
                        (None, Ok(_)) => panic!("{label}: trim_range of a bad range"),
                        (_, Err(_)) => assert!(vm.metadata_mapped() <= before_meta, "{label}"),
                    }
                }
            }
            if rng(&mut s) % 4 == 0 {
                vm.flush();
            }
            compare(&vm, &sim, &m, &label);
        }
        // Without faults, a full unmap and trim leaves only the summary.
        fi.clear();
        vm.flush();
        let base = vm.base().0;
        let mut i = 0;
        while i < PAGES {
            if m[i] {
                let j = (i..PAGES).find(|&j| !m[j]).unwrap_or(PAGES);
                vm.unmap(Range::from_size(Addr(base + i * PAGE), Size((j - i) * PAGE)).unwrap())
                    .unwrap();
                m[i..j].iter_mut().for_each(|b| *b = false);
                i = j;
            } else {
                i += 1;
            }
        }
        vm.trim().unwrap();
        assert_eq!(vm.metadata_mapped(), Size(PAGE), "seed {seed}: only the summary");
        compare(&vm, &sim, &m, "end");
        // Drop with faults armed for the drop's release: nothing can be
        // reported; check the case where release succeeds below.
    }
    let st = sim.stats();
    assert_eq!((st.reservations, st.mapped_pages, st.reserved_pages), (0, 0, 0), "seed {seed}");
}

fn seeds(n: u64) -> u64 {
    std::env::var("R35_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(n)
}

#[test]
fn random_sequences_clean_faults() {
    for seed in 1..=seeds(12) {
        run(seed * 0x9E37_79B9, FaultShape::Clean, 120_000);
    }
}

#[test]
fn random_sequences_part_way_faults() {
    for seed in 1..=seeds(12) {
        run(seed * 0x51ED_2701, FaultShape::PartWay, 120_000);
    }
}

#[test]
fn random_sequences_no_faults() {
    for seed in 1..=4u64 {
        run(seed * 0x1234_5671, FaultShape::Clean, 0);
    }
}

/// Dropping a VM with pages and table pages mapped (after failures) leaves
/// the backend holding nothing of it.
#[test]
fn drop_after_failures_with_pages_mapped_releases_everything() {
    for nth in 1..=6u64 {
        let mut buffer = Placed::new(1 << 20, 0);
        let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        {
            let mut vm = Vm::reserve(&fi, Size(PAGES * PAGE), Size(PAGE)).unwrap();
            let base = vm.base().0;
            fi.fail_nth(nth);
            for k in 0..4 {
                let r = Range::from_size(Addr(base + k * 512 * PAGE + 7 * PAGE), Size(600 * PAGE))
                    .unwrap();
                let _ = vm.map(r);
            }
            fi.clear();
            vm.check().unwrap();
            assert!(sim.stats().mapped_pages > 0);
        }
        let st = sim.stats();
        assert_eq!((st.reservations, st.mapped_pages, st.reserved_pages), (0, 0, 0), "nth {nth}");
    }
}

/// src/vm/mod.rs:13-14 "(a failed `map` gives back the table pages it
/// mapped)": a map spanning four bit-table pages failed at each of its map
/// calls (table pages, then the range) leaves metadata and backend as they
/// were.
#[test]
fn failed_map_gives_back_every_table_page_it_mapped() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&fi, Size(PAGES * PAGE), Size(PAGE)).unwrap();
    let base = vm.base().0;
    // Table page 3 already mapped (one page recorded there, outside the range).
    vm.map(Range::from_size(Addr(base + 2000 * PAGE), Size(PAGE)).unwrap()).unwrap();
    let r = Range::from_size(Addr(base + 10 * PAGE), Size(1700 * PAGE)).unwrap();
    let before = (vm.mapped(), vm.metadata_mapped(), sim.stats().mapped_pages);
    let mut failed = 0;
    for nth in 1..=6 {
        fi.only(&[vmspace_shim::Op::Map]);
        fi.fail_nth(nth);
        let res = vm.map(r);
        fi.clear();
        if res.is_ok() {
            break;
        }
        failed += 1;
        assert_eq!(
            (vm.mapped(), vm.metadata_mapped(), sim.stats().mapped_pages),
            before,
            "nth {nth}: {res:?}"
        );
        vm.check().unwrap();
    }
    assert_eq!(failed, 4, "three new table pages and the range");
}
