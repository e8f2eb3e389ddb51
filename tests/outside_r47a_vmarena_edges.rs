//! Round 47a outside review: the VM arena's edges: extreme sizes and
//! alignments, the last tract, frees of another arena's ranges and of
//! misaligned or empty ranges, extreme zone shifts, and the `Source` view.

use vmspace::arena::Source;
use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Pages, Protection, Range, Size};

const PAGE: usize = 64;

#[test]
fn extreme_requests_do_not_panic() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for zs in [6u32, 7, 20, 62, 63] {
        let mut a =
            VmArena::new(&sim, VmArenaConfig::new(Size(1000 * PAGE)).zone_shift(zs)).unwrap();
        for pages in [usize::MAX, usize::MAX / 2, 1001, 1 << 40] {
            for align in [1usize, 1 << 20, 1 << 57, 1 << 63] {
                let r = a.alloc(
                    &Request::new(Pages(pages), Owner(1))
                        .align(Pages(align))
                        .prefer(ZoneSet::single(5))
                        .avoid(ZoneSet::single(6)),
                );
                assert!(
                    matches!(r, Err(VmArenaError::NoSpace { .. })),
                    "{zs} {pages} {align}: {r:?}"
                );
            }
        }
        // Whole arena, then nothing left.
        let g = a.alloc(&Request::new(Pages(1000), Owner(1)).avoid(ZoneSet::ALL)).unwrap();
        assert_eq!(g.range, a.range());
        assert_eq!(
            g.placement,
            if a.zones_of(a.range()) == ZoneSet::EMPTY {
                Placement::NotAvoided
            } else {
                Placement::Anywhere
            }
        );
        assert!(matches!(
            a.alloc(&Request::new(Pages(1), Owner(1))),
            Err(VmArenaError::NoSpace { .. })
        ));
        a.free(g.range, Owner(1)).unwrap();
        // The last tract alone, preferring its zone.
        let last = Addr(a.range().limit().0 - PAGE);
        let z = a.zone_of(last);
        let req = Request::new(Pages(1), Owner(2)).prefer(ZoneSet::single(z));
        let g = a.alloc(&req).unwrap();
        assert_eq!(a.zone_of(g.range.base()), z, "zs {zs}");
        assert!(!g.fell_back());
        a.check().unwrap();
        a.free(g.range, Owner(2)).unwrap();
        a.check().unwrap();
        assert_eq!(a.committed(), Size(0));
    }
}

#[test]
fn frees_of_foreign_and_bad_ranges_change_nothing() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(600 * PAGE)).spare_limit(4);
    let mut a = VmArena::new(&sim, cfg).unwrap();
    let mut b = VmArena::new(&sim, cfg).unwrap();
    let ga = a.alloc(&Request::new(Pages(10), Owner(1))).unwrap();
    let gb = b.alloc(&Request::new(Pages(10), Owner(1))).unwrap();
    let (ca, cb) = (a.committed(), b.committed());
    assert!(a.free(gb.range, Owner(1)).is_err());
    assert!(b.free(ga.range, Owner(1)).is_err());
    assert!(a.protect(gb.range, Owner(1), Protection::None).is_err());
    // Misaligned, empty, straddling the end, past the end.
    let base = ga.range.base().0;
    for (lo, hi) in [
        (base + 1, base + PAGE),
        (base, base + PAGE + 1),
        (base, base),
        (a.range().limit().0 - PAGE, a.range().limit().0 + PAGE),
        (a.range().limit().0, a.range().limit().0 + PAGE),
        (base - PAGE, base + PAGE),
    ] {
        let r = Range::new(Addr(lo), Addr(hi)).unwrap();
        assert!(a.free(r, Owner(1)).is_err(), "{r:?}");
        assert!(a.protect(r, Owner(1), Protection::Read).is_err(), "{r:?}");
    }
    assert!(a.set_client(Addr(base + 10 * PAGE), 1).is_err());
    assert!(a.set_client(Addr(usize::MAX), 1).is_err());
    assert!(!a.is_allocated(Addr(usize::MAX)) && a.tract(Addr(0)).is_none());
    assert_eq!((a.committed(), b.committed()), (ca, cb));
    a.check().unwrap();
    b.check().unwrap();
    // A part from inside the allocation is freed; the rest stays.
    let mid = Range::from_size(Addr(base + 3 * PAGE), Size(4 * PAGE)).unwrap();
    a.free(mid, Owner(1)).unwrap();
    assert!(a.is_allocated(Addr(base + 2 * PAGE)) && !a.is_allocated(Addr(base + 3 * PAGE)));
    assert!(a.is_allocated(Addr(base + 7 * PAGE)));
    assert!(a.free(ga.range, Owner(1)).is_err());
    a.check().unwrap();
}

#[test]
fn source_edges() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(600 * PAGE)).spare_limit(4)).unwrap();
    for (size, align) in [
        (0usize, PAGE),
        (PAGE, 0),
        (PAGE + 1, PAGE),
        (PAGE, PAGE / 2),
        (PAGE, 3 * PAGE),
        (usize::MAX & !(PAGE - 1), PAGE),
        (601 * PAGE, PAGE),
        (PAGE, 1 << 62),
    ] {
        assert!(a.import(Size(size), Size(align)).is_err(), "{size} {align}");
    }
    let r = a.import(Size(600 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(r, a.range());
    a.release(r).unwrap();
    let r1 = a.import(Size(8 * PAGE), Size(8 * PAGE)).unwrap();
    assert_eq!(r1.base().0 % (8 * PAGE), 0);
    assert!(a.release(Range::from_size(r1.base(), Size(9 * PAGE)).unwrap()).is_err());
    a.purge_spare().unwrap();
    a.release_unflushed(r1).unwrap();
    assert_eq!(a.spare(), Size(0)); // release_unflushed keeps no page spare
    assert_eq!(a.committed(), Size(0));
    a.check().unwrap();
}
