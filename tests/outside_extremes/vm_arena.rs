use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::Pages;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Protection, Range, Size};

const PAGE: usize = 64;
const TOP: usize = usize::MAX;

#[test]
fn config_extremes() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for s in [0usize, TOP, TOP - PAGE + 1, 1 << 63, 1 << 58] {
        assert!(VmArena::new(&sim, VmArenaConfig::new(Size(s)).zone_shift(6)).is_err(), "{s:#x}");
    }
    for z in [0u32, 5, 64, 65, u32::MAX] {
        assert!(
            VmArena::new(&sim, VmArenaConfig::new(Size(16 * PAGE)).zone_shift(z)).is_err(),
            "zone shift {z}"
        );
    }
    assert_eq!(sim.stats().reservations, 0);
    // One byte: one tract.
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(1)).zone_shift(6)).unwrap();
    assert_eq!(a.tracts(), 1);
    let g = a.alloc(&Request::new(Pages(1), Owner(u32::MAX))).unwrap();
    assert_eq!(g.range.size(), Size(PAGE));
    assert!(a.alloc(&Request::new(Pages(1), Owner(1))).is_err());
    a.free(g.range, Owner(u32::MAX)).unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0));
}

/// The largest zone shift (63): every tract is in zone 0 or, past
/// 2^63, zone 1.
#[test]
fn largest_zone_shift() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(64 * PAGE)).zone_shift(63)).unwrap();
    let z = a.zone_of(a.base());
    assert!(z == 0 || z == 1);
    let _ = a.zone_of(Addr(TOP));
    let _ = a.zone_of(Addr(0));
    let zs = a.zones_of(a.range());
    assert!(zs.contains(z));
    let g = a
        .alloc(
            &Request::new(Pages(64), Owner(1))
                .prefer(ZoneSet::single(z))
                .avoid(ZoneSet::single(z + 1)),
        )
        .unwrap();
    assert!(!g.fell_back());
    a.free(g.range, Owner(1)).unwrap();
    a.check().unwrap();
}

/// Requests at their extremes: zero pages, more pages than the arena
/// has (up to `usize::MAX`), alignments of zero, not a power of two or
/// huge, the no-owner; all errors that change nothing. The last tract
/// and all the tracts are allocated and freed.
#[test]
fn request_extremes() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let n = 64usize;
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(n * PAGE)).zone_shift(6)).unwrap();
    let bad = [
        Request::new(Pages(0), Owner(1)),
        Request::new(Pages(n + 1), Owner(1)),
        Request::new(Pages(TOP), Owner(1)),
        Request::new(Pages(TOP / PAGE + 1), Owner(1)),
        Request::new(Pages(1 << 58), Owner(1)),
        Request::new(Pages(1), Owner(0)),
        Request::new(Pages(1), Owner(1)).align(Pages(0)),
        Request::new(Pages(1), Owner(1)).align(Pages(3)),
        Request::new(Pages(1), Owner(1)).align(Pages(TOP)),
        Request::new(Pages(1), Owner(1)).align(Pages(1 << 63)),
        Request::new(Pages(1), Owner(1)).align(Pages(1 << 58)),
    ];
    for r in bad {
        assert!(a.alloc(&r).is_err(), "{r:?}");
        a.check().unwrap();
        assert_eq!(a.committed(), Size(0));
    }
    let first = a.alloc(&Request::new(Pages(n - 1), Owner(2))).unwrap();
    let last = a.alloc(&Request::new(Pages(1), Owner(3))).unwrap();
    assert_eq!(last.range.limit(), a.range().limit(), "the last tract");
    assert!(a.is_allocated(Addr(a.range().limit().0 - 1)));
    assert!(!a.is_allocated(a.range().limit()));
    assert!(a.tract(Addr(TOP)).is_none());
    assert!(a.tract(Addr(0)).is_none());
    a.set_client(last.range.base(), u16::MAX).unwrap();
    assert_eq!(a.tract(last.range.base()).map(|t| t.client), Some(u16::MAX));
    assert!(a.set_client(Addr(TOP), 1).is_err());
    assert!(a.set_client(a.range().limit(), 1).is_err());
    a.protect(last.range, Owner(3), Protection::Read).unwrap();
    // Frees of ranges at the extremes are refused.
    let top = TOP & !(PAGE - 1);
    let l = a.range().limit().0;
    for r in [
        Range::new(Addr(top - PAGE), Addr(top)).unwrap(),
        Range::new(Addr(l - PAGE), Addr(l + PAGE)).unwrap(),
        Range::new(Addr(l), Addr(TOP)).unwrap(),
        Range::new(Addr(0), Addr(PAGE)).unwrap(),
        Range::empty(Addr(l)),
        Range::new(Addr(l - PAGE), Addr(l - 1)).unwrap(),
        a.range(),
    ] {
        assert!(a.free(r, Owner(3)).is_err(), "{r}");
        assert!(a.protect(r, Owner(3), Protection::None).is_err(), "{r}");
    }
    a.check().unwrap();
    a.free(last.range, Owner(3)).unwrap();
    a.free(first.range, Owner(2)).unwrap();
    a.check().unwrap();
    let all = a.alloc(&Request::new(Pages(n), Owner(9))).unwrap();
    assert_eq!(all.range, a.range());
    a.free(all.range, Owner(9)).unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0));
    assert_eq!(a.allocated(), Size(0));
}

/// Commit and spare limits at their extremes: a commit limit of zero
/// refuses every allocation; one of `usize::MAX` none; a spare bound of
/// `usize::MAX` keeps everything.
#[test]
fn limits_at_the_extremes() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let n = 64usize;
    let cfg = VmArenaConfig::new(Size(n * PAGE)).zone_shift(6).commit_limit(Size(0));
    let mut a = VmArena::new(&sim, cfg).unwrap();
    assert!(a.alloc(&Request::new(Pages(1), Owner(1))).is_err());
    a.check().unwrap();
    a.set_commit_limit(Size(TOP)).unwrap();
    a.set_spare_limit(usize::MAX).unwrap();
    let g = a.alloc(&Request::new(Pages(n), Owner(1))).unwrap();
    a.free(g.range, Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(n * PAGE));
    // Only spare pages are committed: a limit of zero purges them.
    a.set_commit_limit(Size(0)).unwrap();
    a.check().unwrap();
    assert_eq!(a.committed(), Size(0));
    assert_eq!(a.spare(), Size(0));
    assert_eq!(a.purge_spare().unwrap(), 0);
    // A live allocation: a limit below it is refused, unchanged.
    a.set_commit_limit(Size(TOP)).unwrap();
    let g = a.alloc(&Request::new(Pages(1), Owner(1))).unwrap();
    assert!(a.set_commit_limit(Size(0)).is_err());
    assert_eq!(a.commit_limit(), Size(TOP));
    a.free(g.range, Owner(1)).unwrap();
    a.check().unwrap();
}
