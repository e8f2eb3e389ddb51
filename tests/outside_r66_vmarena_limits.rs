//! Round 66 outside review: `VmArena::set_spare_limit`, `set_commit_limit`,
//! `purge_spare` and the counters they move, at the extremes and under
//! injected faults (src/vmarena/ops.rs, src/vmarena/mod.rs).

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, PageOps, Pages, Protection, Range, Size};
use vmspace_workload::Rng;

const PAGE: usize = 256;
const TRACTS: usize = 512;

/// Committed free tracts (spare), by index.
fn spare_set<P: PageOps>(a: &VmArena<P>) -> Vec<usize> {
    (0..a.tracts())
        .filter(|&i| {
            let addr = Addr(a.base().0 + i * PAGE);
            a.vm().is_mapped(addr) && !a.is_allocated(addr)
        })
        .collect()
}

/// Maximal runs of consecutive indices.
fn runs(v: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &i in v {
        match out.last_mut() {
            Some((_, e)) if *e == i => *e += 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

/// An arena with spare runs separated by allocated tracts: returns the
/// live grants.
fn striped<P: PageOps>(a: &mut VmArena<P>, stripes: usize) -> Vec<Range> {
    let mut live = Vec::new();
    let mut frees = Vec::new();
    for k in 0..stripes {
        let g = a.alloc(&Request::new(Pages(2 + k % 3), Owner(1))).unwrap();
        frees.push(g.range);
        live.push(a.alloc(&Request::new(Pages(1), Owner(2))).unwrap().range);
    }
    for r in frees {
        a.free(r, Owner(1)).unwrap();
    }
    live
}

/// `purge_spare` doc (ops.rs:197-201): "Spare pages go back one run of
/// contiguous free tracts at a time, in address order. When a backend call
/// fails, the runs given back before it stay given back ... and the rest
/// stay spare"; `set_spare_limit` (ops.rs:255-258) / `set_commit_limit`:
/// "If the purge fails the bound is unchanged". Every call position, both
/// shapes: what stays spare is a suffix of the runs, whole, and the limit
/// moves only on success.
#[test]
fn failed_limit_purges_leave_a_suffix_of_whole_runs_and_the_limit() {
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        for which in 0..3 {
            let mut n = 1;
            let mut failures = 0;
            loop {
                let mut buf = Placed::new(1 << 20, 8);
                let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
                let fi = FaultInjector::new(&sim);
                let config = VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(1000);
                let mut a = VmArena::new(&fi, config).unwrap();
                let _live = striped(&mut a, 12);
                let before = spare_set(&a);
                let before_runs = runs(&before);
                assert!(before_runs.len() >= 12);
                let committed = a.committed();
                let (sl, cl) = (a.spare_limit(), a.commit_limit());
                fi.set_shape(shape);
                fi.fail_nth(n);
                let r = match which {
                    0 => a.set_spare_limit(0).map(|_| 0),
                    1 => a.set_commit_limit(Size(committed.0 - a.spare().0)).map(|_| 0),
                    _ => a.purge_spare(),
                };
                let injected = fi.injected() > 0;
                fi.clear();
                a.check().unwrap_or_else(|e| panic!("{shape:?} {which} call {n}: {e}"));
                let after = spare_set(&a);
                assert_eq!(after.len() * PAGE, a.spare().0, "spare() vs committed free tracts");
                match r {
                    Ok(p) => {
                        assert!(after.is_empty(), "{which} call {n}: spare left after success");
                        if which == 2 {
                            assert_eq!(p, before.len(), "purge_spare's count");
                        }
                        if which == 0 {
                            assert_eq!(a.spare_limit(), 0);
                        }
                        if which == 1 {
                            assert_eq!(a.commit_limit(), Size(committed.0 - before.len() * PAGE));
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        assert!(injected, "{which} call {n}: failed with no fault: {e:?}");
                        assert_eq!((a.spare_limit(), a.commit_limit()), (sl, cl), "limit moved");
                        // A suffix of the runs, each whole.
                        let k = before_runs.len() - runs(&after).len();
                        let expect: Vec<usize> =
                            before_runs[k..].iter().flat_map(|&(s, e)| s..e).collect();
                        assert_eq!(after, expect, "{shape:?} {which} call {n}: not a suffix");
                    }
                }
                if !injected {
                    break;
                }
                n += 1;
            }
            assert!(failures >= 12, "{shape:?} {which}: only {failures} failures");
        }
    }
}

/// Limits at the extremes and at the edges of what is committed:
/// `set_commit_limit` (ops.rs:268-269) is "refused (and unchanged) if more
/// than `limit` is committed now even without spare pages" — and only
/// then; a limit not a multiple of the page; exactly at committed keeps
/// the spare pages; one byte below purges them.
#[test]
fn commit_limit_edges_around_committed() {
    let mut buf = Placed::new(1 << 20, 8);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let config = VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(usize::MAX);
    let mut a = VmArena::new(&sim, config).unwrap();
    let _live = striped(&mut a, 5);
    let spare = a.spare();
    let committed = a.committed();
    let floor = committed.0 - spare.0;
    assert!(spare.0 > 0);
    // Exactly at committed: nothing purged.
    a.set_commit_limit(committed).unwrap();
    assert_eq!((a.spare(), a.committed(), a.commit_limit()), (spare, committed, committed));
    // Below the floor by one byte: refused, unchanged, nothing purged.
    match a.set_commit_limit(Size(floor - 1)) {
        Err(VmArenaError::CommitLimit { needed, limit }) => {
            assert_eq!((needed, limit), (floor, floor - 1))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((a.spare(), a.commit_limit()), (spare, committed));
    // Between floor and committed, not a page multiple: spare purged.
    a.set_commit_limit(Size(floor + PAGE / 2)).unwrap();
    assert_eq!((a.spare(), a.committed()), (Size(0), Size(floor)));
    assert_eq!(a.commit_limit(), Size(floor + PAGE / 2));
    a.check().unwrap();
    // Half a page of room is no room for a page, and fails cleanly.
    let r = a.alloc(&Request::new(Pages(1), Owner(3)));
    assert!(matches!(r, Err(VmArenaError::CommitLimit { .. })), "{r:?}");
    a.check().unwrap();
    // usize::MAX: no bound; a free with spare bound usize::MAX keeps all.
    a.set_commit_limit(Size(usize::MAX)).unwrap();
    let g = a.alloc(&Request::new(Pages(40), Owner(3))).unwrap();
    a.free(g.range, Owner(3)).unwrap();
    assert_eq!(a.spare(), Size(40 * PAGE));
    // Spare bound exactly at spare: no purge; one below: all purged.
    a.set_spare_limit(40).unwrap();
    assert_eq!(a.spare(), Size(40 * PAGE));
    a.set_spare_limit(39).unwrap();
    assert_eq!((a.spare(), a.spare_limit()), (Size(0), 39));
    a.check().unwrap();
    // Commit limit 0 with nothing spare but tables committed: refused.
    assert!(a.set_commit_limit(Size(0)).is_err());
    assert_eq!(a.commit_limit(), Size(usize::MAX));
}

/// The commit limit keeps bounding allocations whatever the interleaving
/// of limit changes, protects, frees and random faults (part way): the
/// documented outcomes of each call, and `check()` after each.
#[test]
fn random_interleaving_with_limit_changes_under_faults() {
    for seed in 1..=12u64 {
        let mut buf = Placed::new(1 << 20, 8);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(8);
        let mut a = VmArena::new(&fi, config).unwrap();
        fi.set_shape(FaultShape::PartWay);
        fi.fail_randomly(seed, 60_000);
        let mut rng = Rng::new(seed);
        let mut live: Vec<(Range, Owner)> = Vec::new();
        for step in 0..400 {
            let x = rng.next_u64();
            let ctx = format!("seed {seed} step {step}");
            match x % 8 {
                0..=2 => {
                    let pages = 1 + (x >> 8) as usize % 9;
                    let owner = Owner(1 + (x >> 16) as u32 % 3);
                    let (c, l) = (a.committed(), a.commit_limit());
                    match a.alloc(&Request::new(Pages(pages), owner)) {
                        Ok(g) => live.push((g.range, owner)),
                        Err(VmArenaError::CommitLimit { needed, limit }) => {
                            assert_eq!(limit, l.0, "{ctx}");
                            assert!(needed > limit, "{ctx}: {needed} <= {limit}");
                            assert!(a.committed() <= c, "{ctx}");
                        }
                        Err(_) => {}
                    }
                }
                3 | 4 if !live.is_empty() => {
                    let (r, o) = live[(x >> 8) as usize % live.len()];
                    let (spare, before) = (a.spare_limit(), a.spare().0 / PAGE);
                    if a.free(r, o).is_ok() {
                        live.retain(|&(q, _)| q != r);
                        // Up to the bound (or no growth when already past it).
                        let now = a.spare().0 / PAGE;
                        assert!(now <= spare.max(before), "{ctx}: spare {now} > {spare}");
                    }
                }
                5 if !live.is_empty() => {
                    let (r, o) = live[(x >> 8) as usize % live.len()];
                    let p = [Protection::Read, Protection::ReadWrite, Protection::None]
                        [(x >> 20) as usize % 3];
                    let _ = a.protect(r, o, p);
                }
                6 => {
                    let old = a.spare_limit();
                    let p = [0, 1, 3, 8, 64, usize::MAX][(x >> 8) as usize % 6];
                    match a.set_spare_limit(p) {
                        Ok(()) => {
                            assert_eq!(a.spare_limit(), p, "{ctx}");
                            assert!(a.spare().0 / PAGE <= p, "{ctx}");
                        }
                        Err(_) => assert_eq!(a.spare_limit(), old, "{ctx}"),
                    }
                }
                _ => {
                    let old = a.commit_limit();
                    let floor = a.committed().0 - a.spare().0;
                    let l = match (x >> 8) % 5 {
                        0 => floor,
                        1 => floor.saturating_sub(1),
                        2 => floor + PAGE * ((x >> 16) as usize % 8) + (x >> 24) as usize % PAGE,
                        3 => usize::MAX,
                        _ => a.committed().0,
                    };
                    match a.set_commit_limit(Size(l)) {
                        Ok(()) => {
                            assert_eq!(a.commit_limit(), Size(l), "{ctx}");
                            assert!(a.committed().0 <= l, "{ctx}");
                        }
                        Err(VmArenaError::CommitLimit { needed, limit }) => {
                            assert_eq!(a.commit_limit(), old, "{ctx}");
                            assert_eq!(limit, l, "{ctx}");
                            assert!(needed > l, "{ctx}: refused with {needed} <= {l}");
                        }
                        Err(_) => assert_eq!(a.commit_limit(), old, "{ctx}"),
                    }
                }
            }
            a.check().unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert!(a.committed() <= a.commit_limit(), "{ctx}");
        }
        assert!(fi.injected() > 0, "seed {seed}: no fault injected");
        // Faults off: a purge finishes the job, a limit at the floor holds.
        fi.clear();
        a.purge_spare().unwrap();
        assert_eq!(a.spare(), Size(0));
        a.set_commit_limit(a.committed()).unwrap();
        for (r, o) in live.drain(..) {
            a.free(r, o).unwrap();
        }
        a.check().unwrap();
        assert_eq!((a.allocated(), a.table_pages_mapped(), a.bit_pages_mapped()), (Size(0), 0, 0));
    }
}
