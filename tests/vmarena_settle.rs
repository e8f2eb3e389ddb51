//! The VM arena after protects and unmaps that fail, part way or cleanly,
//! in any combination, in a protect, a free (decommitting all or part) and
//! a purge of spare pages, and in putting the old protection back.
//!
//! Linux's `mprotect` can change part of a range and then fail (at
//! `vm.max_map_count`), and so can the mmap backend's unmap. The contract
//! checked here: after every operation `check()` passes; no allocated
//! tract is recorded more open than its page is; a failure other than
//! `RollbackFailed` leaves every allocated tract's page exactly as
//! recorded; `RollbackFailed` comes only from two failures; and every page
//! an allocation grants afterwards is read-write, spare or fresh.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;
const TRACTS: usize = 32;
/// Protect and unmap calls that may be failed (numbered together from 1).
const CALLS: u32 = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fail {
    Clean,
    /// The first page changes (to `PROT_NONE` for an unmap), then the call
    /// fails.
    Partial,
    /// Refuse as a backend that never performs the call does, changing
    /// nothing (`InvalidArgument`).
    Refused,
}

struct Scripted<'a> {
    sim: &'a SimBackend<'a>,
    calls: Cell<u32>,
    script: RefCell<HashMap<u32, Fail>>,
}

impl Scripted<'_> {
    fn arm(&self, script: HashMap<u32, Fail>) {
        self.calls.set(0);
        *self.script.borrow_mut() = script;
    }
    fn fail(&self, range: Range, op: Op, prot: Protection) -> Result<(), ShimError> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        match self.script.borrow().get(&n) {
            None => Ok(()),
            Some(Fail::Clean) => Err(ShimError::Injected { op }),
            Some(Fail::Refused) => Err(ShimError::InvalidArgument("refused")),
            Some(Fail::Partial) => {
                let first = Range::from_size(range.base(), Size(PAGE)).unwrap();
                // SAFETY: a prefix of the caller's range, mapped (the
                // caller's contract for a protect or an unmap).
                unsafe { self.sim.protect(first, prot) }.unwrap();
                Err(ShimError::Injected { op })
            }
        }
    }
}

// SAFETY: every call is forwarded to the simulated backend with its own
// arguments, or (a partial failure) with a prefix of its range.
unsafe impl PageOps for Scripted<'_> {
    fn page_size(&self) -> Size {
        self.sim.page_size()
    }
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.sim.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.sim.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.sim.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        self.fail(range, Op::Unmap, Protection::None)?;
        // SAFETY: forwarded.
        unsafe { self.sim.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        self.fail(range, Op::Protect, prot)?;
        // SAFETY: forwarded.
        unsafe { self.sim.protect(range, prot) }
    }
}

fn scripts() -> impl Iterator<Item = HashMap<u32, Fail>> {
    (0..3u32.pow(CALLS)).map(|mut k| {
        let mut s = HashMap::new();
        for call in 1..=CALLS {
            match k % 3 {
                1 => drop(s.insert(call, Fail::Clean)),
                2 => drop(s.insert(call, Fail::Partial)),
                _ => {}
            }
            k /= 3;
        }
        s
    })
}

/// How open a protection is: a page may be recorded at most as open as it is.
fn openness(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

#[derive(Default, Debug)]
struct Seen {
    ok: usize,
    failed: usize,
    rollback: usize,
}

fn scenario(op: usize, script: HashMap<u32, Fail>, seen: &mut Seen) {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted { sim: &sim, calls: Cell::new(0), script: RefCell::new(HashMap::new()) };
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
    va.set_spare_limit(8).unwrap();
    let tract =
        |g: Range, i: usize| Range::from_size(Addr(g.base().0 + i * PAGE), Size(PAGE)).unwrap();
    // A: four tracts, protected read-write, read, none, read-write.
    let a = va.alloc(&Request::new(Pages(4), Owner(1))).unwrap().range;
    for (i, p) in [Protection::ReadWrite, Protection::Read, Protection::None, Protection::ReadWrite]
        .into_iter()
        .enumerate()
    {
        va.protect(tract(a, i), Owner(1), p).unwrap();
    }
    // B: four read-write tracts. C: three, freed now and kept spare.
    let b = va.alloc(&Request::new(Pages(4), Owner(2))).unwrap().range;
    let c = va.alloc(&Request::new(Pages(3), Owner(3))).unwrap().range;
    va.free(c, Owner(3)).unwrap();
    assert_eq!(va.spare(), Size(3 * PAGE));
    let what = format!("op {op} script {script:?}");
    ops.arm(script.clone());
    let r = match op {
        0 => va.protect(a, Owner(1), Protection::Read),
        1 => va.free(a, Owner(1)),
        // Two of B's tracts fit under the spare bound; two are decommitted.
        2 => va.set_spare_limit(5).and_then(|()| va.free(b, Owner(2))),
        _ => va.purge_spare().map(drop),
    };
    let failed_calls = script.keys().filter(|&&n| n <= ops.calls.get()).count();
    ops.arm(HashMap::new());
    va.check().unwrap_or_else(|e| panic!("{what}: check: {e}"));
    let mut exact = true;
    for t in 0..va.tracts() {
        let at = Addr(va.range().base().0 + t * PAGE);
        let Some(info) = va.tract(at) else { continue };
        let Some(PageState::Mapped(real)) = sim.page_state(at) else {
            panic!("{what}: {r:?}: allocated tract {t} is not mapped");
        };
        assert!(
            openness(info.prot) <= openness(real),
            "{what}: {r:?}: tract {t} recorded {:?} over a {real:?} page",
            info.prot
        );
        exact &= info.prot == real;
    }
    match r {
        Ok(()) => seen.ok += 1,
        Err(VmArenaError::RollbackFailed { .. }) => {
            seen.rollback += 1;
            assert!(failed_calls >= 2, "{what}: RollbackFailed from one failure");
        }
        Err(e) => {
            seen.failed += 1;
            assert!(e.backend().is_some(), "{what}: {e}");
            assert!(exact, "{what}: {e}, and a tract's page is not as recorded");
        }
    }
    // Whatever happened, every page granted from now on is read-write.
    let mut granted = 0;
    while let Ok(g) = va.alloc(&Request::new(Pages(1), Owner(9))) {
        assert_eq!(
            sim.page_state(g.range.base()),
            Some(PageState::Mapped(Protection::ReadWrite)),
            "{what}: {r:?}: granted {:?}",
            g.range
        );
        granted += 1;
    }
    assert!(granted > 0, "{what}");
    va.check().unwrap();
}

#[test]
fn every_script_of_failing_protects_and_unmaps_grants_only_read_write_pages() {
    for op in 0..4 {
        let mut seen = Seen::default();
        for script in scripts() {
            scenario(op, script, &mut seen);
        }
        // The scripts reach every outcome, or the test proves nothing.
        assert!(seen.ok > 0 && seen.failed > 0 && seen.rollback > 0, "op {op}: {seen:?}");
    }
}

/// A backend that refuses every protect and unmap before doing anything:
/// protect and free fail with the backend's error and change nothing
/// (no put-back, no tract recorded inaccessible).
#[test]
fn a_backend_that_refuses_changes_nothing() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted { sim: &sim, calls: Cell::new(0), script: RefCell::new(HashMap::new()) };
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let a = va.alloc(&Request::new(Pages(4), Owner(1))).unwrap().range;
    ops.arm((1..=8).map(|n| (n, Fail::Refused)).collect());
    let p = va.protect(a, Owner(1), Protection::Read);
    let f = va.free(a, Owner(1));
    let calls = ops.calls.get();
    ops.arm(HashMap::new());
    for r in [p, f] {
        assert!(matches!(r, Err(VmArenaError::Vm(_))), "{r:?}");
    }
    assert_eq!(calls, 2, "one call each, no put-back");
    va.check().unwrap();
    for i in 0..4 {
        let t = va.tract(Addr(a.base().0 + i * PAGE)).unwrap();
        assert_eq!((t.owner, t.prot), (Owner(1), Protection::ReadWrite));
    }
}
