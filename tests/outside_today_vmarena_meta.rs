//! Outside review of today's VM-arena changes: failures in the table
//! pages (partial or clean), sequences of failing purges, reuses and
//! limit changes, and the arena used as a `Source`.
//!
//! Contract (src/vmarena/mod.rs, error.rs): a failing operation leaves the
//! arena as it was (same tracts, same pages committed) except after
//! `RollbackFailed`; every page an allocation grants is committed
//! read-write; recorded protection is never more open than the pages; a
//! table page is mapped exactly when it describes an allocated tract (or,
//! while stale, after a failed unmap), and the arena reads and writes the
//! descriptors in it.
//!
//! (The maintainers, after this review: its "decommitted" failures had
//! unmapped the range, and its partial failures had changed all of a
//! one-page range. PageOps now says exactly what a failed call may leave:
//! an unmap's pages stay mapped, their contents perhaps gone, and a failure
//! part way never changes a whole range, as on Linux. The scripted backend
//! below follows it (`fail` in `tests/scripted`); under it these tests pass, except the
//! stale table page after a failed allocation, now a documented exception
//! whose recovery the test checks.)

mod scripted;
use scripted::{Fail, Scripted, PAGE};

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use vmspace::arena::Source;
use vmspace::sources::IMPORT_OWNER;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace::Pages;
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, Size};

/// Two page-table pages (32 descriptors of 8 bytes a page).
const TRACTS: usize = 64;

fn table_page(va: &VmArena<impl PageOps>, k: usize) -> Range {
    Range::from_size(Addr(va.range().limit().0 + k * PAGE), Size(PAGE)).unwrap()
}

fn tracts_of(va: &VmArena<impl PageOps>) -> (usize, usize) {
    (va.range().base().0, va.range().limit().0)
}

fn all_rw(sim: &SimBackend<'_>, r: Range) -> Result<(), String> {
    let mut a = r.base().0;
    while a < r.limit().0 {
        let s = sim.page_state(Addr(a));
        if s != Some(PageState::Mapped(Protection::ReadWrite)) {
            return Err(format!("page {a:#x} of {r:?} is {s:?}"));
        }
        a += PAGE;
    }
    Ok(())
}

fn openness(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

/// No allocated tract recorded more open than its page.
fn never_more_open(va: &VmArena<impl PageOps>, sim: &SimBackend<'_>) {
    for t in 0..va.tracts() {
        let at = Addr(va.range().base().0 + t * PAGE);
        let Some(info) = va.tract(at) else { continue };
        let Some(PageState::Mapped(real)) = sim.page_state(at) else {
            panic!("allocated tract {t} not mapped");
        };
        assert!(openness(info.prot) <= openness(real), "tract {t}: {:?} over {real:?}", info.prot);
    }
}

/// A free's unmap of the table page it empties fails part way (the page is
/// left PROT_NONE, recorded mapped and stale, as documented); the next
/// allocation's retry of that unmap fails cleanly, and the allocation then
/// writes its descriptor into the stale page, which is inaccessible (a
/// SIGSEGV on a real backend).
#[test]
fn alloc_after_a_stale_table_page_whose_unmap_failed_part_way_writes_a_readable_page() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let a = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
    let t0 = table_page(&va, 0).base().0;
    let first = AtomicU32::new(0);
    ops.arm(move |_, op, r| {
        (op == Op::Unmap && r.base().0 == t0).then(|| {
            if first.fetch_add(1, Ordering::SeqCst) == 0 {
                Fail::Partial
            } else {
                Fail::Clean
            }
        })
    });
    // Documented: the free completes, the table page stays mapped (stale).
    va.free(a, Owner(1)).unwrap();
    va.check().unwrap();
    let b = va.alloc(&Request::new(Pages(1), Owner(2))).unwrap().range;
    ops.disarm();
    va.check().unwrap();
    assert_eq!(va.tract(b.base()).unwrap().owner, Owner(2));
    // The descriptor of `b` lives in table page 0: it must be accessible.
    all_rw(&sim, table_page(&va, 0)).unwrap_or_else(|e| panic!("table page: {e}"));
}

/// The same, but the retry succeeds: the page comes back fresh (holds).
#[test]
fn a_stale_table_page_left_inaccessible_is_unmapped_by_the_next_operation() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let a = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
    let t0 = table_page(&va, 0).base().0;
    let first = AtomicU32::new(0);
    ops.arm(move |_, op, r| {
        (op == Op::Unmap && r.base().0 == t0 && first.fetch_add(1, Ordering::SeqCst) == 0)
            .then_some(Fail::Partial)
    });
    va.free(a, Owner(1)).unwrap();
    let b = va.alloc(&Request::new(Pages(1), Owner(2))).unwrap().range;
    ops.disarm();
    va.check().unwrap();
    all_rw(&sim, b).unwrap();
    all_rw(&sim, table_page(&va, 0)).unwrap();
}

/// An allocation whose tract map fails, and whose rollback then cannot
/// unmap the table page it mapped: the error is a plain `Vm` error (not
/// `RollbackFailed`), yet a page more is committed than before the call
/// (now a documented exception: the page is stale, and given back by the
/// next operation).
#[test]
fn failed_alloc_whose_table_rollback_fails_reports_it_or_commits_nothing() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let (tlo, thi) = tracts_of(&va);
    let t0 = table_page(&va, 0).base().0;
    let before = (va.committed(), va.table_pages_mapped(), va.metadata_mapped());
    ops.arm(move |_, op, r| match op {
        Op::Map if r.base().0 >= tlo && r.base().0 < thi => Some(Fail::Clean),
        Op::Unmap if r.base().0 == t0 => Some(Fail::Clean),
        _ => None,
    });
    let r = va.alloc(&Request::new(Pages(1), Owner(1)));
    ops.disarm();
    va.check().unwrap();
    let e = r.expect_err("the tract map was failed");
    // (The maintainers' change, with the exception now documented in the
    // module docs: the table page stays mapped, marked stale, and the next
    // operation gives it back. Checked here: one page more at most, then
    // nothing more once an operation has run.)
    if !matches!(e, VmArenaError::RollbackFailed { .. }) {
        let now = (va.committed(), va.table_pages_mapped(), va.metadata_mapped());
        if now != before {
            assert_eq!(now.1, before.1 + 1, "alloc failed with {e:?}: only its table page is left");
            let g = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
            va.free(g, Owner(1)).unwrap();
            va.check().unwrap();
            assert_eq!(
                (va.committed(), va.table_pages_mapped(), va.metadata_mapped()),
                before,
                "the stale table page was not given back by the next operations"
            );
        }
    }
}

/// Failing purges, reuses, limit changes, one after another: every page
/// granted is read-write, check() holds, limits are unchanged by a failed
/// set (this holds).
#[test]
fn sequences_of_failing_purges_and_reuses_only_grant_read_write_pages() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(8)).unwrap();
    let (tlo, thi) = tracts_of(&va);
    let in_tracts = move |r: Range| r.base().0 >= tlo && r.base().0 < thi;
    // A purge that fails part way and cannot put read-write back.
    let bad_purge = move |_: u32, op: Op, r: Range| match op {
        Op::Unmap if in_tracts(r) => Some(Fail::Partial),
        Op::Protect if in_tracts(r) => Some(Fail::Clean),
        _ => None,
    };
    let keep = va.alloc(&Request::new(Pages(2), Owner(7))).unwrap().range;
    for round in 0..3 {
        let a = va.alloc(&Request::new(Pages(4), Owner(1))).unwrap().range;
        all_rw(&sim, a).unwrap();
        va.free(a, Owner(1)).unwrap();
        assert_eq!(va.spare(), Size(4 * PAGE));
        ops.arm(bad_purge);
        let r = va.purge_spare();
        ops.disarm();
        assert!(matches!(r, Err(VmArenaError::RollbackFailed { .. })), "round {round}: {r:?}");
        assert_eq!(va.spare(), Size(4 * PAGE));
        va.check().unwrap();
        // The reuse's read-write fails part way: nothing granted, nothing
        // changed.
        ops.arm(move |_, op, r| (op == Op::Protect && in_tracts(r)).then_some(Fail::Partial));
        let r = va.alloc(&Request::new(Pages(6), Owner(2)));
        ops.disarm();
        assert!(r.is_err(), "round {round}: {r:?}");
        va.check().unwrap();
        assert_eq!(va.allocated(), Size(2 * PAGE));
        assert_eq!(va.spare(), Size(4 * PAGE));
        // Failed limit changes that purge change no limit.
        ops.arm(bad_purge);
        assert!(va.set_spare_limit(0).is_err());
        assert_eq!(va.spare_limit(), 8);
        let lim = va.commit_limit();
        assert!(va.set_commit_limit(Size(va.committed().0 - PAGE)).is_err());
        assert_eq!(va.commit_limit(), lim);
        ops.disarm();
        va.check().unwrap();
        // A single-page grant reusing an unsure spare page.
        let one = va.alloc(&Request::new(Pages(1), Owner(3))).unwrap().range;
        all_rw(&sim, one).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let b = va.alloc(&Request::new(Pages(6), Owner(2))).unwrap().range;
        all_rw(&sim, b).unwrap_or_else(|e| panic!("round {round}: {e}"));
        va.free(one, Owner(3)).unwrap();
        va.free(b, Owner(2)).unwrap();
        // Spare reaches 0, then a fresh spare run whose purge fails again.
        va.purge_spare().unwrap();
        assert_eq!(va.spare(), Size(0));
        never_more_open(&va, &sim);
        va.check().unwrap();
    }
    // A commit limit that forces a purge inside alloc, which fails.
    let a = va.alloc(&Request::new(Pages(4), Owner(1))).unwrap().range;
    va.free(a, Owner(1)).unwrap();
    va.set_commit_limit(va.committed()).unwrap();
    ops.arm(bad_purge);
    let r = va.alloc(&Request::new(Pages(8), Owner(4)));
    ops.disarm();
    assert!(r.is_err());
    va.check().unwrap();
    let g = va.alloc(&Request::new(Pages(4), Owner(4))).unwrap().range;
    all_rw(&sim, g).unwrap();
    let g2 = va.alloc(&Request::new(Pages(2), Owner(4)));
    if let Ok(g2) = g2 {
        all_rw(&sim, g2.range).unwrap();
    }
    va.free(keep, Owner(7)).unwrap();
    va.check().unwrap();
}

/// The VM arena as a Source: a release_unflushed whose unmap fails part
/// way (and whose put-back fails) keeps the tracts imported, recorded no
/// more open than their pages; a retry frees them, none kept spare; the
/// next import of the same place is read-write (this holds).
#[test]
fn source_release_unflushed_with_failing_unmap_then_retry() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(8)).unwrap();
    let (tlo, thi) = tracts_of(&va);
    let in_tracts = move |r: Range| r.base().0 >= tlo && r.base().0 < thi;
    let x = va.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    ops.arm(move |_, op, r| match op {
        Op::Unmap if in_tracts(r) => Some(Fail::Partial),
        Op::Protect if in_tracts(r) => Some(Fail::Clean),
        _ => None,
    });
    let r = va.release_unflushed(x);
    ops.disarm();
    assert!(r.is_err());
    va.check().unwrap();
    assert_eq!(va.tract(x.base()).unwrap().owner, IMPORT_OWNER);
    never_more_open(&va, &sim);
    va.release_unflushed(x).unwrap();
    assert_eq!(va.spare(), Size(0));
    va.check().unwrap();
    let y = va.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    all_rw(&sim, y).unwrap();
    // A plain release keeps them spare; a failed purge; a new import.
    va.release(y).unwrap();
    assert_eq!(va.spare(), Size(4 * PAGE));
    ops.arm(move |_, op, r| match op {
        Op::Unmap if in_tracts(r) => Some(Fail::Partial),
        Op::Protect if in_tracts(r) => Some(Fail::Clean),
        _ => None,
    });
    assert!(va.purge_spare().is_err());
    ops.disarm();
    let z = va.import(Size(2 * PAGE), Size(PAGE)).unwrap();
    all_rw(&sim, z).unwrap();
    va.check().unwrap();
    let _ = AtomicUsize::new(0);
}

/// Pages outside the arena's tracts and its own tables (the VM's
/// mapped-state pages) that are mapped but not read-write.
fn inaccessible_vm_metadata(va: &VmArena<impl PageOps>, sim: &SimBackend<'_>) -> Vec<usize> {
    let res = va.vm().reservation();
    let own_end = table_page(va, 3).base().0; // tracts, 2 table pages, 1 bit page
    let mut bad = vec![];
    let mut a = res.base().0;
    while a < res.limit().0 {
        if (a < va.range().base().0 || a >= own_end)
            && matches!(sim.page_state(Addr(a)), Some(PageState::Mapped(p)) if p != Protection::ReadWrite)
        {
            bad.push(a);
        }
        a += PAGE;
    }
    bad
}

/// decommit() ignores a failed trim of the VM's mapped-state pages ("a
/// failed trim leaves an empty page mapped, which is harmless"). Failed
/// part way, that page is left PROT_NONE while the VM still records it
/// mapped and reads and writes it on the next map.
#[test]
fn free_whose_vm_table_trim_fails_part_way_leaves_no_inaccessible_vm_metadata() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let a = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
    let (tlo, _) = tracts_of(&va);
    let own_end = table_page(&va, 3).base().0;
    let outside = move |r: Range| r.base().0 < tlo || r.base().0 >= own_end;
    ops.arm(move |_, op, r| (op == Op::Unmap && outside(r)).then_some(Fail::Partial));
    let r = va.free(a, Owner(1));
    let failed = ops.failures.load(Ordering::SeqCst);
    ops.disarm();
    assert!(failed > 0, "no VM metadata unmap was attempted (free: {r:?})");
    va.check().unwrap();
    let b = va.alloc(&Request::new(Pages(1), Owner(2))).unwrap().range;
    all_rw(&sim, b).unwrap();
    va.check().unwrap();
    let bad = inaccessible_vm_metadata(&va, &sim);
    assert!(bad.is_empty(), "free {r:?}: VM metadata pages left inaccessible: {bad:#x?}");
}

/// A free's unmap of the table page it empties fails having decommitted
/// the page (allowed by PageOps). The page is kept "mapped, stale"; the
/// next allocation's retry finds it not mapped (the backend refuses),
/// keeps it stale, and writes the new descriptor into a page that is not
/// mapped at all.
#[test]
fn alloc_after_a_table_page_unmap_that_failed_after_decommitting_writes_a_mapped_page() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let a = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
    let t0 = table_page(&va, 0).base().0;
    let first = AtomicU32::new(0);
    ops.arm(move |_, op, r| {
        (op == Op::Unmap && r.base().0 == t0 && first.fetch_add(1, Ordering::SeqCst) == 0)
            .then_some(Fail::Decommitted)
    });
    va.free(a, Owner(1)).unwrap();
    ops.disarm();
    let b = va.alloc(&Request::new(Pages(1), Owner(2))).unwrap().range;
    va.check().unwrap();
    assert_eq!(va.tract(b.base()).unwrap().owner, Owner(2));
    all_rw(&sim, table_page(&va, 0)).unwrap_or_else(|e| panic!("table page: {e}"));
}

/// The VM's mapped-state page, given back by decommit's trim, fails
/// having decommitted itself (allowed by PageOps); decommit ignores the
/// failure ("harmless"), the VM keeps recording the page mapped, and the
/// next allocation's bookkeeping reads and writes a page that is gone.
#[test]
fn free_whose_vm_table_trim_fails_after_decommitting_keeps_the_vm_consistent() {
    let mut buf = vec![0u8; 1 << 17];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let ops = Scripted::new(&sim);
    let mut va =
        VmArena::new(&ops, VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(0)).unwrap();
    let a = va.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range;
    let (tlo, _) = tracts_of(&va);
    let own_end = table_page(&va, 3).base().0;
    let outside = move |r: Range| r.base().0 < tlo || r.base().0 >= own_end;
    ops.arm(move |_, op, r| (op == Op::Unmap && outside(r)).then_some(Fail::Decommitted));
    va.free(a, Owner(1)).unwrap();
    assert!(ops.failures.load(Ordering::SeqCst) > 0);
    ops.disarm();
    va.check().unwrap();
    let r = va.alloc(&Request::new(Pages(1), Owner(2)));
    va.check().unwrap();
    let b = r.unwrap().range;
    all_rw(&sim, b).unwrap();
    let bad = inaccessible_vm_metadata(&va, &sim);
    assert!(bad.is_empty(), "VM metadata pages: {bad:#x?}");
}
