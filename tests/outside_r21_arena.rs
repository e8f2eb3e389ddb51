//! Round 21, an outside reviewer's tests of `VmArena::alloc`'s
//! `VmArenaError::RollbackFailed` (`src/vmarena/ops.rs`: `commit_tracts`,
//! `uncommit_marked`, `rolled_back`), driven through a scripted `PageOps`
//! wrapper over the simulator that chooses exactly which calls fail, and
//! how (cleanly, or part way as a system backend's may).
//!
//! Each test is marked `// DEFECT:` (failed when written, because of a
//! defect fixed in the commit that added this file: it now guards the fix) or
//! `// HOLDS:` (passes: a claim checked and found true).

use std::sync::Mutex;

use vmspace::vmarena::{Owner, Request, Stranded, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Op, PageOps, Pages, Protection, Range, ShimError, Size};
use vmspace_workload::pages;

const PAGE: usize = 256;

/// What the script does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Forward it.
    Pass,
    /// Fail it before the simulator sees it.
    Fail,
    /// Fail it after changing its first `k` pages (a protect: to the
    /// protection asked; an unmap: decommitted, left mapped `None`).
    PartWay(usize),
}

type Hook<'a> = Box<dyn Fn(Op, Range, usize) -> Verdict + 'a>;

/// A scripted wrapper: `hook(op, range, n)` decides call `n` (from 1,
/// counting map, unmap and protect calls).
struct Scripted<'a> {
    inner: &'a SimBackend<'a>,
    hook: Mutex<Option<Hook<'a>>>,
    n: Mutex<usize>,
    log: Mutex<Vec<(Op, Range, Verdict)>>,
}

impl<'a> Scripted<'a> {
    fn new(inner: &'a SimBackend<'a>) -> Self {
        Scripted { inner, hook: Mutex::new(None), n: Mutex::new(0), log: Mutex::new(Vec::new()) }
    }

    fn script(&self, hook: Option<Hook<'a>>) {
        *self.n.lock().unwrap() = 0;
        self.log.lock().unwrap().clear();
        *self.hook.lock().unwrap() = hook;
    }

    fn verdict(&self, op: Op, range: Range) -> Verdict {
        let n = {
            let mut n = self.n.lock().unwrap();
            *n += 1;
            *n
        };
        let v = match &*self.hook.lock().unwrap() {
            Some(h) => h(op, range, n),
            None => Verdict::Pass,
        };
        self.log.lock().unwrap().push((op, range, v));
        v
    }

    fn prefix(range: Range, k: usize) -> Range {
        Range::from_size(range.base(), Size(k * PAGE)).unwrap()
    }
}

// SAFETY: every call is forwarded to the simulator, or fails before it
// reaches it, or (part way) changes a strict prefix of its range as the
// contract allows a system backend's protect or unmap to.
unsafe impl PageOps for Scripted<'_> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds the contract.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        match self.verdict(Op::Map, range) {
            Verdict::Pass => {
                // SAFETY: the caller upholds the contract.
                unsafe { self.inner.map(range) }
            }
            _ => Err(ShimError::Injected { op: Op::Map }),
        }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        match self.verdict(Op::Unmap, range) {
            // SAFETY: the caller upholds the contract.
            Verdict::Pass => unsafe { self.inner.unmap(range) },
            Verdict::Fail => Err(ShimError::Injected { op: Op::Unmap }),
            Verdict::PartWay(k) => {
                let p = Self::prefix(range, k);
                // SAFETY: a prefix of mapped pages the caller gives up.
                unsafe {
                    self.inner.unmap(p).unwrap();
                    self.inner.map(p).unwrap();
                    self.inner.protect(p, Protection::None).unwrap();
                }
                Err(ShimError::Injected { op: Op::Unmap })
            }
        }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        match self.verdict(Op::Protect, range) {
            // SAFETY: the caller upholds the contract.
            Verdict::Pass => unsafe { self.inner.protect(range, prot) },
            Verdict::Fail => Err(ShimError::Injected { op: Op::Protect }),
            Verdict::PartWay(k) => {
                // SAFETY: a prefix of the caller's mapped pages.
                unsafe { self.inner.protect(Self::prefix(range, k), prot) }.unwrap();
                Err(ShimError::Injected { op: Op::Protect })
            }
        }
    }
}

fn tract(arena: &VmArena<&Scripted<'_>>, i: usize, n: usize) -> Range {
    Range::from_size(Addr(arena.base().0 + i * PAGE), Size(n * PAGE)).unwrap()
}

fn prot(sim: &SimBackend<'_>, a: Addr) -> Option<Protection> {
    sim.protection(a)
}

/// Write and read back every byte of `r`.
fn touch(r: Range) {
    // SAFETY: the caller's allocated, read-write tracts.
    unsafe {
        core::ptr::write_bytes(r.base().as_ptr::<u8>(), 0x5A, r.size().0);
        assert_eq!(*r.base().as_ptr::<u8>(), 0x5A);
    }
}

/// The arena's counters: allocated, spare, committed bytes.
fn counts(a: &VmArena<&Scripted<'_>>) -> (usize, usize, usize) {
    (a.allocated().0, a.spare().0, a.committed().0)
}

/// Tracts 0 and 2 free and decommitted, tract 1 spare: an allocation of
/// three tracts maps [0, 1), reuses 1, maps [2, 3).
fn fresh_spare_fresh(arena: &mut VmArena<&Scripted<'_>>) {
    let o = Owner(1);
    let g: Vec<Range> =
        (0..3).map(|_| arena.alloc(&Request::new(Pages(1), o)).unwrap().range).collect();
    assert_eq!(g[0], tract(arena, 0, 1));
    assert_eq!(g[2], tract(arena, 2, 1));
    arena.free(g[1], o).unwrap();
    arena.free(g[0], o).unwrap();
    arena.free(g[2], o).unwrap();
    assert_eq!(arena.spare().0, PAGE, "tract 1 spare, 0 and 2 decommitted");
}

// HOLDS: the map of the second fresh run of an allocation fails and the
// unmap rolling back the first fails too: `RollbackFailed` names exactly
// the first run; it stays committed as spare (spare() grows by it,
// committed() by it, nothing allocated), `check` holds, and the next
// allocations get read-write pages, the commit limit holding throughout.
#[test]
fn alloc_rollback_failed_keeps_exactly_the_unreleased_run_spare() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(1);
    let mut arena = VmArena::new(&ops, config).unwrap();
    fresh_spare_fresh(&mut arena);
    let (al, sp, co) = counts(&arena);
    let t0 = tract(&arena, 0, 1);
    let t2 = tract(&arena, 2, 1);
    ops.script(Some(Box::new(move |op, r, _| match op {
        Op::Map if r == t2 => Verdict::Fail,
        Op::Unmap if r == t0 => Verdict::Fail,
        _ => Verdict::Pass,
    })));
    let e = arena.alloc(&Request::new(Pages(3), Owner(2)));
    ops.script(None);
    match e {
        // (Maintainers' adaptation: `tracts`, added with the fix of
        // `alloc_rollback_failed_message_says_what_happened`, must say spare.)
        Err(VmArenaError::RollbackFailed {
            range,
            error: ShimError::Injected { op: Op::Map },
            tracts: Stranded::Spare,
        }) => {
            assert_eq!(range, t0)
        }
        other => panic!("{other:?}"),
    }
    arena.check().unwrap();
    assert_eq!(counts(&arena), (al, sp + PAGE, co + PAGE));
    assert!(!arena.is_allocated(t0.base()));
    // Everything reusable, read-write.
    let g = arena.alloc(&Request::new(Pages(3), Owner(2))).unwrap().range;
    assert_eq!(g, tract(&arena, 0, 3));
    let probe = |a| prot(&sim, a);
    pages::tracts_agree(&arena, true, &probe).unwrap();
    touch(g);
    arena.check().unwrap();
    assert_eq!(arena.spare().0, 0);
}

// HOLDS: as above, with the rollback's unmap failing part way (its first
// pages decommitted and left inaccessible): the run is kept spare, and the
// allocation that reuses it makes all of it read-write again
// (`spare_unsure`).
#[test]
fn part_way_rollback_leaves_spare_that_is_made_read_write_on_reuse() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(1);
    let mut arena = VmArena::new(&ops, config).unwrap();
    let o = Owner(1);
    // Tracts [0, 4) free and decommitted, 4 spare, [5, 9) fresh.
    let a = arena.alloc(&Request::new(Pages(4), o)).unwrap().range;
    let b = arena.alloc(&Request::new(Pages(1), o)).unwrap().range;
    arena.free(b, o).unwrap();
    arena.free(a, o).unwrap();
    assert_eq!(arena.spare().0, PAGE);
    let first = tract(&arena, 0, 4);
    let second = tract(&arena, 5, 4);
    ops.script(Some(Box::new(move |op, r, _| match op {
        Op::Map if r == second => Verdict::Fail,
        Op::Unmap if r == first => Verdict::PartWay(2),
        _ => Verdict::Pass,
    })));
    let e = arena.alloc(&Request::new(Pages(9), Owner(2)));
    ops.script(None);
    match e {
        Err(VmArenaError::RollbackFailed { range, .. }) => assert_eq!(range, first),
        other => panic!("{other:?}"),
    }
    arena.check().unwrap();
    assert_eq!(arena.spare().0, 5 * PAGE);
    assert_eq!(prot(&sim, first.base()), Some(Protection::None));
    // Reuse two of the unsure pages, then the rest.
    let g1 = arena.alloc(&Request::new(Pages(1), Owner(3))).unwrap().range;
    let g2 = arena.alloc(&Request::new(Pages(3), Owner(3))).unwrap().range;
    let probe = |a| prot(&sim, a);
    pages::tracts_agree(&arena, true, &probe).unwrap();
    touch(g1);
    touch(g2);
    arena.check().unwrap();
}

// HOLDS: the reuse of unsure spare pages, made read-write, fails (part
// way) and the unmap of the fresh run mapped before it fails too: the
// fresh run is kept spare and named; the spare pages the allocation was
// reusing stay spare; a later allocation still gets read-write pages.
#[test]
fn failed_reuse_protect_then_failed_rollback() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(4);
    let mut arena = VmArena::new(&ops, config).unwrap();
    let o = Owner(1);
    // Make spare pages unsure: a rollback that fails part way.
    let a = arena.alloc(&Request::new(Pages(4), o)).unwrap().range;
    let b = arena.alloc(&Request::new(Pages(1), o)).unwrap().range;
    let c = arena.alloc(&Request::new(Pages(4), o)).unwrap().range;
    arena.free(b, o).unwrap();
    arena.set_spare_limit(1).unwrap();
    arena.free(a, o).unwrap();
    arena.free(c, o).unwrap();
    let first = tract(&arena, 0, 4);
    let second = tract(&arena, 5, 4);
    ops.script(Some(Box::new(move |op, r, _| match op {
        Op::Map if r == second => Verdict::Fail,
        Op::Unmap if r == first => Verdict::PartWay(3),
        _ => Verdict::Pass,
    })));
    let e = arena.alloc(&Request::new(Pages(9), Owner(2)));
    ops.script(None);
    assert!(matches!(e, Err(VmArenaError::RollbackFailed { range, .. }) if range == first));
    // [0, 5) spare and unsure. An allocation of [0, 6): reuses 0..5, maps
    // 5; its protect fails part way, and the unmap of 5 fails.
    let all = tract(&arena, 0, 6);
    let t5 = tract(&arena, 5, 1);
    ops.script(Some(Box::new(move |op, r, _| match op {
        Op::Protect if r == all => Verdict::PartWay(2),
        Op::Unmap if r == t5 => Verdict::Fail,
        _ => Verdict::Pass,
    })));
    let (al, sp, co) = counts(&arena);
    let e = arena.alloc(&Request::new(Pages(6), Owner(2)));
    ops.script(None);
    match e {
        // (Maintainers' adaptation: `tracts` must say spare.)
        Err(VmArenaError::RollbackFailed {
            range,
            error: ShimError::Injected { op },
            tracts: Stranded::Spare,
        }) => {
            assert_eq!((range, op), (t5, Op::Protect))
        }
        other => panic!("{other:?}"),
    }
    arena.check().unwrap();
    assert_eq!(counts(&arena), (al, sp + PAGE, co + PAGE));
    let g = arena.alloc(&Request::new(Pages(6), Owner(2))).unwrap().range;
    assert_eq!(g, all);
    let probe = |a| prot(&sim, a);
    pages::tracts_agree(&arena, true, &probe).unwrap();
    touch(g);
    arena.check().unwrap();
}

// DEFECT: the message of an allocation's `RollbackFailed` describes a
// different failure. The allocation's map failed and the unmap rolling
// back its pages failed; the docs say those tracts stay "committed, as
// spare: nothing is allocated". `Display` (src/vmarena/error.rs, the
// `RollbackFailed` arm) still says "protect failed (...) and the old
// protection of [...] could not be put back: recorded inaccessible",
// naming neither the map nor the spare pages, and claiming a record that
// was not made.
#[test]
fn alloc_rollback_failed_message_says_what_happened() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(1);
    let mut arena = VmArena::new(&ops, config).unwrap();
    fresh_spare_fresh(&mut arena);
    let t0 = tract(&arena, 0, 1);
    let t2 = tract(&arena, 2, 1);
    ops.script(Some(Box::new(move |op, r, _| match op {
        Op::Map if r == t2 => Verdict::Fail,
        Op::Unmap if r == t0 => Verdict::Fail,
        _ => Verdict::Pass,
    })));
    let e = arena.alloc(&Request::new(Pages(3), Owner(2))).unwrap_err();
    ops.script(None);
    assert!(matches!(e, VmArenaError::RollbackFailed { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        !msg.contains("protect failed") && !msg.contains("recorded inaccessible"),
        "a failed map whose pages stay spare, described as: {msg}"
    );
}

// HOLDS: random allocations and frees under a tight commit limit, through
// a part-way fault injector: after every step `check` holds (the commit
// limit with it) and allocated tracts' pages are at least as open as
// recorded; an allocation's `RollbackFailed` allocates nothing and keeps
// exactly its `range` more committed, as spare (beyond what a purge gave
// back); any other failed allocation allocates nothing and commits
// nothing more but stale table pages; a fault-free allocation of every
// free tract afterwards gets read-write pages.
#[test]
fn alloc_failures_under_a_commit_limit_keep_the_counts() {
    use vmspace_shim::{FaultInjector, FaultShape};
    use vmspace_workload::Rng;
    let mut rollbacks = 0;
    for seed in 1..=6u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(256 * PAGE))
            .zone_shift(10)
            .spare_limit(64)
            .commit_limit(Size(120 * PAGE));
        let mut arena = VmArena::new(&f, config).unwrap();
        f.set_shape(FaultShape::PartWay);
        f.fail_randomly(seed * 1234, 200_000);
        let mut rng = Rng::new(seed);
        let mut grants: Vec<(Range, Owner)> = Vec::new();
        let probe = |a| sim.protection(a);
        for step in 0..400 {
            let (al, sp, co) = (arena.allocated().0, arena.spare().0, arena.committed().0);
            let tables = arena.table_pages_mapped() + arena.bit_pages_mapped();
            if grants.is_empty() || rng.below(3) != 0 {
                let owner = Owner(1 + rng.below(3) as u32);
                let res = arena.alloc(&Request::new(Pages(1 + rng.below(12)), owner));
                let what = format!("seed {seed} step {step}: {res:?}");
                arena.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                pages::tracts_agree(&arena, false, &probe)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                // Table pages mapped (or stale ones unmapped) meanwhile.
                let new_tables = (arena.table_pages_mapped() + arena.bit_pages_mapped()) as isize
                    - tables as isize;
                match res {
                    Ok(g) => grants.push((g.range, owner)),
                    Err(VmArenaError::RollbackFailed { range, .. }) => {
                        rollbacks += 1;
                        assert_eq!(arena.allocated().0, al, "{what}");
                        let purged = sp + range.size().0 - arena.spare().0;
                        assert!(arena.spare().0 <= sp + range.size().0, "{what}");
                        assert_eq!(
                            (arena.committed().0 + purged) as isize,
                            (co + range.size().0) as isize + new_tables * PAGE as isize,
                            "{what}"
                        );
                        for i in 0..range.size().0 / PAGE {
                            let a = Addr(range.base().0 + i * PAGE);
                            assert!(!arena.is_allocated(a), "{what}");
                        }
                    }
                    Err(_) => {
                        assert_eq!(arena.allocated().0, al, "{what}");
                        let purged = sp - arena.spare().0;
                        assert_eq!(
                            (arena.committed().0 + purged) as isize,
                            co as isize + new_tables * PAGE as isize,
                            "{what}"
                        );
                    }
                }
            } else {
                let i = rng.below(grants.len());
                let (r, o) = grants[i];
                let res = arena.free(r, o);
                let what = format!("seed {seed} step {step} free: {res:?}");
                arena.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                if res.is_ok() {
                    grants.swap_remove(i);
                }
            }
        }
        f.clear();
        for (r, o) in grants.drain(..) {
            arena.free(r, o).unwrap();
        }
        arena.set_commit_limit(Size(1 << 20)).unwrap();
        let free = arena.tracts();
        let g = arena.alloc(&Request::new(Pages(free), Owner(9))).unwrap().range;
        pages::tracts_agree(&arena, true, &probe).unwrap();
        touch(g);
        arena.check().unwrap();
    }
    assert!(rollbacks > 3, "{rollbacks} rollbacks");
}
