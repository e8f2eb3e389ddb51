//! Round 27 outside review: the VM arena's documented contract
//! (`src/vmarena/`, `src/sources/vmarena.rs`): the commit limit and
//! the spare pages: extremes, spare contents and bound, limits unchanged
//! when their purge fails, purge counts.

mod outside_r27_vmarena_common;

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, Pages, Protection, Range, Size};

use outside_r27_vmarena_common::{snap, PAGE};

/// Commit limit 0: nothing can be allocated, cleanly; usize::MAX: no limit.
/// `set_commit_limit` below what is committed without spare is refused and
/// unchanged.
#[test]
fn commit_limit_extremes() {
    let mut buf = Placed::new(1 << 20, 8);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a =
        VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).commit_limit(Size(0))).unwrap();
    let before = snap(&a);
    match a.alloc(&Request::new(Pages(1), Owner(1))) {
        Err(VmArenaError::CommitLimit { limit: 0, needed }) => assert!(needed > 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(snap(&a), before);
    a.check().unwrap();
    a.set_commit_limit(Size(usize::MAX)).unwrap();
    let g = a.alloc(&Request::new(Pages(64), Owner(1))).unwrap();
    assert_eq!(a.committed(), Size((64 + 2 + 1) * PAGE)); // 32 descriptors a table page
    assert!(matches!(a.set_commit_limit(Size(PAGE)), Err(VmArenaError::CommitLimit { .. })));
    assert_eq!(a.commit_limit(), Size(usize::MAX));
    a.set_commit_limit(a.committed()).unwrap();
    a.free(g.range, Owner(1)).unwrap();
    a.set_commit_limit(Size(0)).unwrap();
    a.check().unwrap();
}

/// `alloc`: "Reused spare pages keep what was written to them; fresh ones
/// read zero"; `free`: "Up to the spare bound, the pages stay committed for
/// reuse, the lowest first ... A range with any protected tract in it is
/// decommitted whole".
#[test]
fn spare_pages_contents_and_bound() {
    let mut buf = Placed::new(1 << 20, 5 * 256);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).spare_limit(3)).unwrap();
    let g = a.alloc(&Request::new(Pages(5), Owner(1))).unwrap();
    for i in 0..5 {
        // SAFETY: a page of the grant, mapped read-write, in the sim's buffer.
        unsafe { *((g.range.base().0 + i * PAGE) as *mut u8) = 0xA0 + i as u8 };
    }
    a.free(g.range, Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(3 * PAGE));
    for i in 0..5 {
        assert_eq!(a.vm().is_mapped(Addr(g.range.base().0 + i * PAGE)), i < 3, "tract {i}");
    }
    let g2 = a.alloc(&Request::new(Pages(5), Owner(2))).unwrap();
    assert_eq!(g2.range, g.range);
    for i in 0..5 {
        // SAFETY: a page of the new grant, mapped read-write.
        let v = unsafe { *((g2.range.base().0 + i * PAGE) as *const u8) };
        assert_eq!(v, if i < 3 { 0xA0 + i as u8 } else { 0 }, "tract {i}");
    }
    assert_eq!(a.spare(), Size(0));
    a.protect(Range::from_size(g2.range.base(), Size(PAGE)).unwrap(), Owner(2), Protection::Read)
        .unwrap();
    a.free(g2.range, Owner(2)).unwrap();
    assert_eq!(a.spare(), Size(0));
    assert_eq!(a.committed(), Size(0));
    a.check().unwrap();
}

/// `set_spare_limit`: "If the purge fails the bound is unchanged";
/// `set_commit_limit`: refused and unchanged when the purge it needs fails.
#[test]
fn limits_unchanged_when_purge_fails() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut a = VmArena::new(&fi, VmArenaConfig::new(Size(64 * PAGE)).spare_limit(8)).unwrap();
    let g = a.alloc(&Request::new(Pages(6), Owner(1))).unwrap();
    let k = a.alloc(&Request::new(Pages(1), Owner(1))).unwrap();
    a.free(g.range, Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(6 * PAGE));
    fi.only(&[Op::Unmap]);
    fi.fail_nth(1);
    assert!(a.set_spare_limit(2).is_err());
    assert_eq!(a.spare_limit(), 8);
    a.check().unwrap();
    fi.fail_nth(1);
    let lim = a.committed().0 - 6 * PAGE;
    assert!(a.set_commit_limit(Size(lim)).is_err());
    assert_eq!(a.commit_limit(), Size(usize::MAX));
    fi.clear();
    a.set_commit_limit(Size(lim)).unwrap();
    assert_eq!(a.spare(), Size(0));
    a.check().unwrap();
    let _ = k;
}

/// `purge_spare`: "Returns the number of pages given back"; spare runs
/// interleaved with allocated tracts and table pages, across bit pages.
#[test]
fn purge_counts_fragmented_spare() {
    let mut buf = Placed::new(3 << 20, 13 * 256 + 200);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut a =
        VmArena::new(&sim, VmArenaConfig::new(Size(4400 * PAGE)).spare_limit(usize::MAX)).unwrap();
    let mut gs = Vec::new();
    for i in 0..40 {
        gs.push(a.alloc(&Request::new(Pages(1 + i % 7 * 13), Owner(1))).unwrap());
    }
    let big = a.alloc(&Request::new(Pages(2100), Owner(1))).unwrap();
    for (i, g) in gs.iter().enumerate() {
        if i % 3 != 1 {
            a.free(g.range, Owner(1)).unwrap();
        }
    }
    a.free(big.range, Owner(1)).unwrap();
    let spare = a.spare().0 / PAGE;
    assert!(spare > 2100);
    let committed = a.committed();
    assert_eq!(a.purge_spare().unwrap(), spare);
    assert_eq!(a.spare(), Size(0));
    assert_eq!(a.committed().0, committed.0 - spare * PAGE);
    a.check().unwrap();
}
