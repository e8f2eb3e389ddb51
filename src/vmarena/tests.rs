extern crate std;
use crate::error::CommonError;
use std::vec;
use vmspace_shim::Pages;

use vmspace_shim::sim::{at_offsets, Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, FaultInjector, Protection, Range, Size};

use super::tables::RawTract;
use super::*;

const PAGE: usize = 256;

fn arena<'a, 'b>(sim: &'a SimBackend<'b>, tracts: usize) -> VmArena<&'a SimBackend<'b>> {
    // 256-byte pages: 32 descriptors per page-table page, zones of 4 pages.
    let config = VmArenaConfig::new(Size(tracts * PAGE)).zone_shift(10);
    VmArena::new(sim, config).unwrap()
}

#[test]
fn tables_are_mapped_exactly_while_in_use() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = arena(&sim, 256);
    assert_eq!(a.table_pages_mapped(), 0);
    let x = a.alloc(&Request::new(Pages(40), Owner(1))).unwrap();
    assert_eq!(x.range.base(), a.base());
    assert_eq!(a.table_pages_mapped(), 2);
    let y = a.alloc(&Request::new(Pages(30), Owner(2))).unwrap();
    assert_eq!(a.table_pages_mapped(), 3);
    assert_eq!(a.table_pages_in_use(), 3);
    a.check().unwrap();
    a.free(x.range, Owner(1)).unwrap();
    assert_eq!(a.table_pages_mapped(), 2, "page 0 describes nothing now");
    a.check().unwrap();
    a.free(y.range, Owner(2)).unwrap();
    assert_eq!((a.table_pages_mapped(), a.bit_pages_mapped()), (0, 0));
    assert_eq!(a.committed(), Size(0));
    a.check().unwrap();
}

#[test]
fn bad_frees_are_refused() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = arena(&sim, 64);
    let x = a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let more = Range::from_size(x.range.base(), Size(5 * PAGE)).unwrap();
    assert_eq!(a.free(more, Owner(1)), Err(VmArenaError::NotAllocated(more)));
    assert_eq!(
        a.free(x.range, Owner(2)),
        Err(VmArenaError::WrongOwner { addr: x.range.base(), owner: Owner(1) })
    );
    let skew = Range::from_size(Addr(x.range.base().0 + 8), Size(PAGE)).unwrap();
    assert!(matches!(
        a.free(skew, Owner(1)),
        Err(VmArenaError::Common(CommonError::Misaligned { .. }))
    ));
    assert!(a.alloc(&Request::new(Pages(0), Owner(1))).is_err());
    assert!(a.alloc(&Request::new(Pages(1), Owner(0))).is_err());
    assert!(a.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(3))).is_err());
    assert_eq!(
        a.alloc(&Request::new(Pages(61), Owner(1))),
        Err(VmArenaError::NoSpace { pages: 61 })
    );
    a.check().unwrap();
}

#[test]
fn zones_are_honoured_then_fallen_back_from() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = arena(&sim, 512);
    let z = a.zone_of(a.base());
    let want = ZoneSet::single(z + 5);
    let g = a.alloc(&Request::new(Pages(4), Owner(1)).prefer(want)).unwrap();
    assert_eq!(g.placement, Placement::Preferred);
    assert_eq!(a.zones_of(g.range), want);
    // A run of 5 pages cannot fit in one 4-page stripe: falls back.
    let g = a.alloc(&Request::new(Pages(5), Owner(1)).prefer(want)).unwrap();
    assert_eq!(g.placement, Placement::NotAvoided);
    let avoid = ZoneSet::single(z).complement();
    let g = a.alloc(&Request::new(Pages(5), Owner(1)).avoid(avoid)).unwrap();
    assert_eq!(g.placement, Placement::Anywhere);
    let g = a.alloc(&Request::new(Pages(2), Owner(1)).avoid(ZoneSet::single(z))).unwrap();
    assert!(!a.zones_of(g.range).contains(z));
    a.check().unwrap();
}

#[test]
fn spare_pages_are_reused_and_purged() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let config = VmArenaConfig::new(Size(128 * PAGE)).zone_shift(10).spare_limit(6);
    let mut a = VmArena::new(&sim, config).unwrap();
    let x = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
    a.free(x.range, Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(6 * PAGE));
    a.check().unwrap();
    let y = a.alloc(&Request::new(Pages(3), Owner(1))).unwrap();
    assert_eq!(a.spare(), Size(3 * PAGE));
    a.check().unwrap();
    assert_eq!(a.purge_spare().unwrap(), 3);
    a.check().unwrap();
    a.protect(y.range, Owner(1), Protection::Read).unwrap();
    assert_eq!(a.tract(y.range.base()).unwrap().prot, Protection::Read);
    a.free(y.range, Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(0), "protected pages are never kept");
    a.check().unwrap();
}

#[test]
fn commit_limit_is_enforced() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // 10 tracts + 1 page-table page + 1 bit page.
    let config = VmArenaConfig::new(Size(128 * PAGE)).zone_shift(10).commit_limit(Size(12 * PAGE));
    let mut a = VmArena::new(&sim, config).unwrap();
    a.alloc(&Request::new(Pages(10), Owner(1))).unwrap();
    assert!(matches!(
        a.alloc(&Request::new(Pages(1), Owner(1))),
        Err(VmArenaError::CommitLimit { .. })
    ));
    a.check().unwrap();
}

#[test]
fn every_failing_call_leaves_it_unchanged() {
    at_offsets(OFFSETS.len(), 1 << 20, |_, buf| every_position(buf));
}

/// The test with the simulated backend's buffer at one placement.
fn every_position(buf: &mut Placed) {
    let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let config = VmArenaConfig::new(Size(128 * PAGE)).zone_shift(10).spare_limit(2);
    let mut a = VmArena::new(&faulty, config).unwrap();
    let keep = a.alloc(&Request::new(Pages(20), Owner(1))).unwrap();
    for n in 1..20 {
        let before = (a.allocated(), a.committed(), a.table_pages_mapped(), a.spare());
        faulty.fail_nth(n);
        let r = a.alloc(&Request::new(Pages(40), Owner(2)));
        faulty.clear();
        a.check().unwrap();
        match r {
            Ok(g) => a.free(g.range, Owner(2)).unwrap(),
            Err(e) => {
                assert!(e.backend().is_some(), "{e}");
                assert_eq!(
                    before,
                    (a.allocated(), a.committed(), a.table_pages_mapped(), a.spare())
                );
            }
        }
        a.check().unwrap();
    }
    a.free(keep.range, Owner(1)).unwrap();
    a.check().unwrap();
}

#[test]
fn a_failing_creation_leaves_nothing_behind() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    for n in 1..=2 {
        faulty.fail_nth(n);
        let e =
            VmArena::new(&faulty, VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10)).unwrap_err();
        assert!(e.backend().is_some(), "{e}");
        assert_eq!(sim.stats().reservations, 0);
    }
    faulty.clear();
    assert!(VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).zone_shift(4)).is_err());
    assert!(VmArena::new(&sim, VmArenaConfig::new(Size(0))).is_err());
}

/// `check()` reports each kind of damage (round 23: disabling it failed
/// no test), each on an arena that checked clean just before: two
/// allocations in the first page-table page, one freed to spare, the
/// second page-table page unused.
#[test]
fn check_catches_corruption() {
    type Damage = fn(&mut VmArena<&SimBackend<'_>>);
    let cases: [(Damage, &str); 10] = [
        (|a| a.allocated += 1, "allocated tract count differs from the bits"),
        (|a| a.bits_mapped += 1, "mapped allocation-table page count is wrong"),
        (|a| a.table_mapped -= 1, "mapped page-table page count is wrong"),
        (|a| a.spare += 1, "committed pages differ from allocated + spare + tables"),
        (|a| a.commit_limit = Size(PAGE), "committed memory exceeds the commit limit"),
        (
            |a| {
                a.set_spare_limit(4).unwrap();
                let g = a.alloc(&Request::new(Pages(2), Owner(3))).unwrap();
                a.free(g.range, Owner(3)).unwrap();
                a.check().unwrap();
                a.spare_limit = 1;
            },
            "more spare pages than the spare bound",
        ),
        (
            |a| a.set_desc(0, RawTract { owner: 0, ..a.desc(0).unwrap() }),
            "descriptor of an allocated tract is malformed",
        ),
        (
            |a| a.set_desc(20, RawTract { owner: 7, ..RawTract::default() }),
            "descriptor of a free tract is not clear",
        ),
        (|a| a.vm.unmap(a.tract_range(0, 1)).unwrap(), "an allocated tract is not committed"),
        (
            |a| {
                let k = a.layout.table_page(1);
                a.vm.map(a.vm_page(k)).unwrap();
            },
            "a page-table page is mapped but unused",
        ),
    ];
    for (damage, want) in cases {
        let mut buf = Placed::new(1 << 20, 0);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let mut a = arena(&sim, 256);
        a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
        let g = a.alloc(&Request::new(Pages(2), Owner(2))).unwrap();
        a.free(g.range, Owner(2)).unwrap();
        a.check().unwrap();
        damage(&mut a);
        assert_eq!(a.check(), Err(VmArenaError::Common(CommonError::Corrupt(want))), "{want}");
    }
}

/// `stale_pages` counts the metadata pages a failed unmap left mapped
/// (every one, when nothing is allocated), and the retry that the next
/// operation makes first gives exactly those back.
#[test]
fn stale_pages_counts_what_a_failed_unmap_left_until_the_retry() {
    let mut seen = 0;
    for n in 1..8 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(256 * PAGE)).zone_shift(10).spare_limit(0);
        let mut a = VmArena::new(&faulty, config).unwrap();
        let x = a.alloc(&Request::new(Pages(40), Owner(1))).unwrap();
        assert_eq!(a.stale_pages(), 0);
        faulty.only(&[vmspace_shim::Op::Unmap]);
        faulty.fail_nth(n);
        let freed = a.free(x.range, Owner(1));
        faulty.clear();
        a.check().unwrap();
        let stale = a.stale_pages();
        if freed.is_ok() {
            assert_eq!(stale, a.table_pages_mapped() + a.bit_pages_mapped(), "n {n}");
            assert_eq!(a.committed(), Size(stale * PAGE), "n {n}");
        }
        if stale > 0 {
            seen += 1;
            let committed = a.committed();
            a.purge_spare().unwrap();
            assert_eq!(a.stale_pages(), 0, "n {n}");
            assert_eq!(a.committed().0 + stale * PAGE, committed.0, "n {n}");
        }
        a.check().unwrap();
    }
    assert!(seen >= 2, "a failed unmap of a table page and of a bit page: {seen}");
}
