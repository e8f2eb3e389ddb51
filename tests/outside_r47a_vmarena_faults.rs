//! Round 47a outside review: the VM arena with a fault at every backend
//! call of every step of a script over several allocation-table pages;
//! after each failure the arena must be unchanged (bar the documented
//! exceptions), `check()` must hold, and the simulated pages must agree
//! with the books.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Pages, Protection, Range, Size};

const PAGE: usize = 64;
const TRACTS: usize = 4000;

#[derive(Clone, Copy, Debug)]
enum Op {
    Alloc(usize, usize, u32),
    Free(usize, usize, u32),
    Protect(usize, usize, u32, Protection),
    Purge,
    Spare(usize),
}

fn script() -> Vec<Op> {
    use Op::*;
    vec![
        Alloc(3, 1, 1),
        Alloc(600, 1, 2),  // crosses bit page 0/1
        Alloc(10, 512, 1), // aligned
        Free(1, 100, 2),   // part: spare
        Alloc(50, 1, 3),   // reuses spare, partly
        Protect(0, 3, 1, Protection::Read),
        Free(0, 3, 1),    // protected: decommitted whole
        Alloc(900, 1, 1), // crosses into bit page 2
        Free(610, 700, 1),
        Purge,
        Alloc(20, 1, 2),
        Spare(2),
        Free(700, 1400, 1),
        Alloc(1000, 1, 3),
    ]
}

type A<'s> = VmArena<&'s FaultInjector<&'s SimBackend<'s>>>;

/// Run op; addresses are tract indices relative to the arena.
fn apply(a: &mut A<'_>, op: Op) -> Result<(), VmArenaError> {
    let base = a.base().0;
    let rg =
        |lo: usize, hi: usize| Range::new(Addr(base + lo * PAGE), Addr(base + hi * PAGE)).unwrap();
    // Resolve [lo, hi) to the first run of owner o's tracts inside it.
    let held = |lo: usize, hi: usize, o: u32| -> Option<(usize, usize)> {
        let own = |i: usize| a.tract(Addr(base + i * PAGE)).is_some_and(|t| t.owner == Owner(o));
        let s = (lo..hi).find(|&i| own(i))?;
        let e = (s..hi).find(|&i| !own(i)).unwrap_or(hi);
        Some((s, e))
    };
    let op = match op {
        Op::Free(lo, hi, o) => match held(lo, hi, o) {
            Some((s, e)) => Op::Free(s, e, o),
            None => return Ok(()),
        },
        Op::Protect(lo, hi, o, p) => match held(lo, hi, o) {
            Some((s, e)) => Op::Protect(s, e, o, p),
            None => return Ok(()),
        },
        op => op,
    };
    match op {
        Op::Alloc(p, al, o) => a
            .alloc(&Request::new(Pages(p), Owner(o)).align(Pages(al)).prefer(ZoneSet::ALL))
            .map(|_| ()),
        Op::Free(lo, hi, o) => a.free(rg(lo, hi), Owner(o)),
        Op::Protect(lo, hi, o, p) => a.protect(rg(lo, hi), Owner(o), p),
        Op::Purge => a.purge_spare().map(|_| ()),
        Op::Spare(n) => a.set_spare_limit(n),
    }
}

/// Tract index ranges an op names may not match the live layout; resolve
/// frees and protects to the tracts actually held by that owner.
fn owners(a: &A<'_>) -> Vec<Option<(Owner, Protection)>> {
    (0..a.tracts())
        .map(|i| a.tract(Addr(a.base().0 + i * PAGE)).map(|t| (t.owner, t.prot)))
        .collect()
}

fn books_vs_pages(a: &A<'_>, sim: &SimBackend<'_>, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
    let mut spare = 0;
    for i in 0..a.tracts() {
        let addr = Addr(a.base().0 + i * PAGE);
        let st = sim.page_state(addr).unwrap();
        match a.tract(addr) {
            Some(t) => {
                assert_eq!(st, PageState::Mapped(t.prot), "{what}: tract {i} allocated {t:?}")
            }
            None => {
                if let PageState::Mapped(p) = st {
                    spare += 1;
                    let _ = p;
                } else {
                    assert_eq!(st, PageState::Reserved, "{what}: free tract {i}");
                }
            }
        }
    }
    assert_eq!(spare * PAGE, a.spare().0, "{what}: spare vs mapped free tracts");
}

fn scenario(shape: FaultShape) {
    let ops = script();
    for k in 0..ops.len() {
        let mut n = 1;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let fi = FaultInjector::new(&sim);
            let mut a = VmArena::new(
                &fi,
                VmArenaConfig::new(Size(TRACTS * PAGE)).zone_shift(9).spare_limit(120),
            )
            .unwrap();
            let idle_meta = a.metadata_mapped();
            for (j, op) in ops[..k].iter().enumerate() {
                apply(&mut a, *op).unwrap_or_else(|e| panic!("prefix op {j} {op:?}: {e:?}"));
            }
            let before = owners(&a);
            let (spare0, alloc0) = (a.spare(), a.allocated());
            fi.set_shape(shape);
            fi.fail_nth(n);
            let res = apply(&mut a, ops[k]);
            let calls = fi.eligible_calls();
            fi.clear();
            let what = format!("{shape:?} op {k} {:?} fail #{n}: {res:?}", ops[k]);
            books_vs_pages(&a, &sim, &what);
            match res {
                Ok(()) => {
                    if calls < n {
                        break;
                    }
                }
                Err(VmArenaError::RollbackFailed { .. }) => {}
                Err(e) => {
                    assert_eq!(owners(&a), before, "{what}: tracts changed ({e:?})");
                    assert_eq!(a.allocated(), alloc0, "{what}");
                    if !matches!(ops[k], Op::Alloc(..) | Op::Purge | Op::Spare(_)) {
                        assert_eq!(a.spare(), spare0, "{what}: spare changed");
                    }
                    // The same op succeeds once the backend does.
                    apply(&mut a, ops[k]).unwrap_or_else(|e| panic!("{what}: retry {e:?}"));
                    books_vs_pages(&a, &sim, &format!("{what} (retried)"));
                    for (j, op) in ops[k + 1..].iter().enumerate() {
                        apply(&mut a, *op).unwrap_or_else(|e| {
                            panic!("{what}: later op {} {op:?}: {e:?}", k + 1 + j)
                        });
                        books_vs_pages(&a, &sim, &format!("{what} later op {}", k + 1 + j));
                    }
                    // Free everything: nothing but the idle metadata stays mapped.
                    for o in 1..=3u32 {
                        while let Some(i) = (0..a.tracts()).find(|&i| {
                            a.tract(Addr(a.base().0 + i * PAGE))
                                .is_some_and(|t| t.owner == Owner(o))
                        }) {
                            let n = a.tracts();
                            apply(&mut a, Op::Free(i, n, o)).unwrap();
                        }
                    }
                    a.purge_spare().unwrap();
                    books_vs_pages(&a, &sim, &format!("{what} emptied"));
                    assert_eq!(a.committed(), Size(0), "{what} emptied");
                    assert_eq!(a.metadata_mapped(), idle_meta, "{what} emptied: metadata mapped");
                }
            }
            n += 1;
            assert!(n < 500);
        }
    }
}

#[test]
fn every_fault_clean() {
    scenario(FaultShape::Clean);
}

#[test]
fn every_fault_part_way() {
    scenario(FaultShape::PartWay);
}

/// Random operations over four allocation-table pages with random faults
/// (clean and part way): after every step `check()` holds and the pages
/// agree with the books; a failed free or protect (not `RollbackFailed`)
/// changes no tract; a commit limit is never passed.
#[test]
fn random_faults_multi_bit_page() {
    for seed in 1..=12u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let limit = Size((1000 + (next() % 1500) as usize) * PAGE);
        let mut a = VmArena::new(
            &fi,
            VmArenaConfig::new(Size(2000 * PAGE))
                .zone_shift(7 + (seed % 5) as u32)
                .spare_limit([0, 5, 300][(seed % 3) as usize])
                .commit_limit(limit),
        )
        .unwrap();
        fi.set_shape(if seed % 2 == 0 { FaultShape::PartWay } else { FaultShape::Clean });
        fi.fail_randomly(seed, 60_000);
        for step in 0..400 {
            let what = format!("seed {seed} step {step}");
            let before = owners(&a);
            let o = 1 + (next() % 3) as u32;
            let r = next() % 10;
            let res = if r < 5 {
                let pages = 1 + (next() % if next() % 4 == 0 { 700 } else { 20 }) as usize;
                let al = 1usize << (next() % 5);
                let req = Request::new(Pages(pages), Owner(o))
                    .align(Pages(al))
                    .prefer(ZoneSet(next()))
                    .avoid(ZoneSet(next() & next()));
                a.alloc(&req).map(|_| ())
            } else if r < 9 {
                let lo = (next() % 2000) as usize;
                let hi = (lo + 1 + (next() % 400) as usize).min(2000);
                let op = if r < 8 {
                    Op::Free(lo, hi, o)
                } else {
                    Op::Protect(
                        lo,
                        hi,
                        o,
                        [Protection::Read, Protection::None, Protection::ReadWrite]
                            [(next() % 3) as usize],
                    )
                };
                let res = apply(&mut a, op);
                if let Err(e) = &res {
                    if !matches!(e, VmArenaError::RollbackFailed { .. }) {
                        assert_eq!(
                            owners(&a),
                            before,
                            "{what}: {op:?} failed with {e:?} but changed tracts"
                        );
                    }
                }
                res
            } else {
                a.purge_spare().map(|_| ())
            };
            let _ = res;
            fi.clear();
            books_vs_pages(&a, &sim, &what);
            assert!(a.committed() <= limit, "{what}");
            fi.set_shape(if seed % 2 == 0 { FaultShape::PartWay } else { FaultShape::Clean });
            fi.fail_randomly(seed ^ step, 60_000);
        }
    }
}
