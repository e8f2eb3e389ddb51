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

use std::collections::HashMap;
use std::sync::atomic::Ordering;

mod scripted;
use scripted::{Fail, Scripted, PAGE};

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Protection, Range, Size};

const TRACTS: usize = 32;
/// Protect and unmap calls that may be failed (numbered together from 1).
const CALLS: u32 = 5;

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
    let ops = Scripted::new(&sim);
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
    ops.arm_script(script.clone());
    let r = match op {
        0 => va.protect(a, Owner(1), Protection::Read),
        1 => va.free(a, Owner(1)),
        // Two of B's tracts fit under the spare bound; two are decommitted.
        2 => va.set_spare_limit(5).and_then(|()| va.free(b, Owner(2))),
        _ => va.purge_spare().map(drop),
    };
    let failed_calls = script.keys().filter(|&&n| n <= ops.changes.load(Ordering::SeqCst)).count();
    ops.disarm();
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
    let ops = Scripted::new(&sim);
    let mut va = VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
    va.set_spare_limit(0).unwrap();
    let a = va.alloc(&Request::new(Pages(4), Owner(1))).unwrap().range;
    ops.arm_script((1..=8).map(|n| (n, Fail::Refused)).collect());
    let p = va.protect(a, Owner(1), Protection::Read);
    let f = va.free(a, Owner(1));
    let calls = ops.changes.load(Ordering::SeqCst);
    ops.disarm();
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
