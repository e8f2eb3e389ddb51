//! Round 47a outside review: the VM arena with *two* backend calls failing
//! in one operation (every pair of positions, the second clean or part
//! way), over allocations reusing interleaved spare pages, frees and
//! protects of ranges with mixed protections, purges of several runs and
//! allocations that purge for the commit limit. After each: `check()`, the
//! pages never more open than the books, and `RollbackFailed`'s range
//! holding every tract that changed.

use std::sync::atomic::{AtomicU64, Ordering};

use vmspace::vmarena::{Owner, Request, Stranded, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, Op, PageOps, Pages, Protection, Range, ShimError, Size,
};

const PAGE: usize = 64;
const TRACTS: usize = 700;

/// Fails its `fail_at`th map/unmap/protect call cleanly, forwarding the rest.
struct First<P> {
    inner: P,
    calls: AtomicU64,
    fail_at: AtomicU64,
}

impl<P: PageOps> First<P> {
    fn gate(&self, op: Op) -> Result<(), ShimError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.fail_at.load(Ordering::Relaxed) {
            Err(ShimError::Injected { op })
        } else {
            Ok(())
        }
    }
}

// SAFETY: every call fails before reaching `inner` or is forwarded as is.
unsafe impl<P: PageOps> PageOps for First<P> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        "first"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller's contract.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Map)?;
        // SAFETY: the caller's contract.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        self.gate(Op::Unmap)?;
        // SAFETY: the caller's contract.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        self.gate(Op::Protect)?;
        // SAFETY: the caller's contract.
        unsafe { self.inner.protect(range, prot) }
    }
}

type A<'s> = VmArena<&'s First<&'s FaultInjector<&'s SimBackend<'s>>>>;

fn rg(a: &A<'_>, lo: usize, hi: usize) -> Range {
    Range::new(Addr(a.base().0 + lo * PAGE), Addr(a.base().0 + hi * PAGE)).unwrap()
}

fn owners(a: &A<'_>) -> Vec<Option<(Owner, Protection)>> {
    (0..a.tracts())
        .map(|i| a.tract(Addr(a.base().0 + i * PAGE)).map(|t| (t.owner, t.prot)))
        .collect()
}

fn openness(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

/// The pages against the books: allocated tracts mapped and never more open
/// than recorded (exactly as recorded when `exact`); the free tracts mapped
/// are as many as the spare pages.
fn pages_vs_books(a: &A<'_>, sim: &SimBackend<'_>, what: &str, exact: bool) {
    a.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
    let mut spare = 0;
    for i in 0..a.tracts() {
        let addr = Addr(a.base().0 + i * PAGE);
        let st = sim.page_state(addr).unwrap();
        match (a.tract(addr), st) {
            (Some(t), PageState::Mapped(p)) => {
                if exact || t.prot != Protection::None {
                    assert!(
                        openness(p) <= openness(t.prot) && (!exact || p == t.prot),
                        "{what}: tract {i} recorded {:?}, pages {p:?}",
                        t.prot
                    );
                }
            }
            (Some(t), st) => panic!("{what}: allocated tract {i} ({t:?}) is {st:?}"),
            (None, PageState::Mapped(_)) => spare += 1,
            (None, PageState::Reserved) => {}
            (None, st) => panic!("{what}: free tract {i} is {st:?}"),
        }
    }
    assert_eq!(spare * PAGE, a.spare().0, "{what}: spare vs mapped free tracts");
}

type Setup = fn(&mut A<'_>);
type Action = fn(&mut A<'_>) -> Result<(), VmArenaError>;

fn interleaved_spare(a: &mut A<'_>) {
    let g = a.alloc(&Request::new(Pages(40), Owner(1))).unwrap();
    assert_eq!(g.range, rg(a, 0, 40));
    for (lo, hi) in [(3, 5), (10, 12), (20, 22), (0, 3), (5, 10), (12, 20), (22, 40)] {
        let r = rg(a, lo, hi);
        a.free(r, Owner(1)).unwrap();
    }
    assert_eq!(a.spare(), Size(6 * PAGE));
}

fn mixed_protections(a: &mut A<'_>) {
    a.alloc(&Request::new(Pages(30), Owner(2))).unwrap();
    for (lo, hi, p) in
        [(2, 6, Protection::Read), (9, 14, Protection::None), (20, 24, Protection::Read)]
    {
        let r = rg(a, lo, hi);
        a.protect(r, Owner(2), p).unwrap();
    }
}

fn spare_runs(a: &mut A<'_>) {
    a.alloc(&Request::new(Pages(60), Owner(1))).unwrap();
    for (lo, hi) in [(2, 5), (8, 9), (30, 36), (50, 52)] {
        let r = rg(a, lo, hi);
        a.free(r, Owner(1)).unwrap();
    }
}

fn scenarios() -> Vec<(&'static str, usize, Size, Setup, Action)> {
    vec![
        ("alloc over interleaved spare", 6, Size(usize::MAX), interleaved_spare, |a| {
            a.alloc(&Request::new(Pages(40), Owner(3))).map(|_| ())
        }),
        ("free mixed protections", 100, Size(usize::MAX), mixed_protections, |a| {
            let r = rg(a, 0, 30);
            a.free(r, Owner(2))
        }),
        ("free part, spare kept", 5, Size(usize::MAX), spare_runs, |a| {
            let r = rg(a, 10, 30);
            a.free(r, Owner(1))
        }),
        ("protect mixed protections", 100, Size(usize::MAX), mixed_protections, |a| {
            let r = rg(a, 1, 25);
            a.protect(r, Owner(2), Protection::None)
        }),
        ("unprotect mixed protections", 100, Size(usize::MAX), mixed_protections, |a| {
            let r = rg(a, 0, 30);
            a.protect(r, Owner(2), Protection::ReadWrite)
        }),
        ("purge several runs", 100, Size(usize::MAX), spare_runs, |a| a.purge_spare().map(|_| ())),
        ("alloc purging for the limit", 100, Size(72 * PAGE), spare_runs, |a| {
            a.alloc(&Request::new(Pages(12), Owner(4))).map(|_| ())
        }),
    ]
}

fn run(shape: FaultShape) {
    let mut rollbacks = 0;
    for (name, spare_limit, limit, setup, action) in scenarios() {
        // Count the calls of the action.
        let total = {
            let mut buf = vec![0u8; 1 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let fi = FaultInjector::new(&sim);
            let first = First { inner: &fi, calls: AtomicU64::new(0), fail_at: AtomicU64::new(0) };
            let mut a = VmArena::new(
                &first,
                VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(spare_limit).zone_shift(10),
            )
            .unwrap();
            setup(&mut a);
            a.set_commit_limit(limit).unwrap();
            first.calls.store(0, Ordering::Relaxed);
            action(&mut a).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            first.calls.load(Ordering::Relaxed)
        };
        for x in 1..=total {
            for y in 0..=total + 4 {
                let mut buf = vec![0u8; 1 << 20];
                let sim = SimBackend::new(&mut buf, PAGE).unwrap();
                let fi = FaultInjector::new(&sim);
                let first =
                    First { inner: &fi, calls: AtomicU64::new(0), fail_at: AtomicU64::new(0) };
                let mut a = VmArena::new(
                    &first,
                    VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(spare_limit).zone_shift(10),
                )
                .unwrap();
                setup(&mut a);
                a.set_commit_limit(limit).unwrap();
                let before = owners(&a);
                let alloc0 = a.allocated();
                first.calls.store(0, Ordering::Relaxed);
                first.fail_at.store(x, Ordering::Relaxed);
                fi.only(&[Op::Map, Op::Unmap, Op::Protect]);
                fi.set_shape(shape);
                fi.fail_nth(y);
                let res = action(&mut a);
                first.fail_at.store(0, Ordering::Relaxed);
                fi.clear();
                let what = format!("{name} {shape:?}: fail #{x} then #{y} after it: {res:?}");
                let after = owners(&a);
                match res {
                    Ok(()) => pages_vs_books(&a, &sim, &what, true),
                    Err(VmArenaError::RollbackFailed { range, tracts, .. }) => {
                        rollbacks += 1;
                        pages_vs_books(&a, &sim, &what, false);
                        let (lo, hi) = (
                            (range.base().0 - a.base().0) / PAGE,
                            (range.limit().0 - a.base().0) / PAGE,
                        );
                        for i in 0..a.tracts() {
                            if i < lo || i >= hi {
                                assert_eq!(
                                    after[i], before[i],
                                    "{what}: tract {i} outside {lo}..{hi}"
                                );
                            }
                        }
                        match tracts {
                            Stranded::Spare => {
                                assert_eq!(a.allocated(), alloc0, "{what}: nothing allocated");
                                assert_eq!(after, before, "{what}");
                            }
                            Stranded::Inaccessible => {
                                for i in lo..hi {
                                    if let (Some(b), Some(t)) = (before[i], after[i]) {
                                        assert_eq!(b.0, t.0, "{what}: owner of {i}");
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    Err(e) => {
                        pages_vs_books(&a, &sim, &what, true);
                        assert_eq!(after, before, "{what}: tracts changed ({e:?})");
                    }
                }
                // Whatever happened, the arena goes on: everything freed and purged.
                for o in 1..=4u32 {
                    while let Some(i) = (0..a.tracts()).find(|&i| {
                        a.tract(Addr(a.base().0 + i * PAGE)).is_some_and(|t| t.owner == Owner(o))
                    }) {
                        let e = (i..a.tracts())
                            .find(|&j| {
                                a.tract(Addr(a.base().0 + j * PAGE))
                                    .is_none_or(|t| t.owner != Owner(o))
                            })
                            .unwrap_or(a.tracts());
                        let r = rg(&a, i, e);
                        a.free(r, Owner(o)).unwrap_or_else(|e| panic!("{what}: cleanup {e:?}"));
                    }
                }
                // An allocation and a free retry any stale table page (a
                // purge alone does not: outside_r47a_vmarena_stale.rs).
                let g = a.alloc(&Request::new(Pages(1), Owner(9))).unwrap();
                a.free(g.range, Owner(9)).unwrap();
                a.purge_spare().unwrap_or_else(|e| panic!("{what}: cleanup purge {e:?}"));
                pages_vs_books(&a, &sim, &format!("{what} (emptied)"), true);
                assert_eq!(a.committed(), Size(0), "{what} (emptied)");
            }
        }
    }
    assert!(rollbacks > 0);
}

#[test]
fn pairs_clean() {
    run(FaultShape::Clean);
}

#[test]
fn pairs_part_way() {
    run(FaultShape::PartWay);
}
