//! Round 62a outside review: zone queries at the arena's ends and at the
//! ends of the address space, held to a brute force over stripes; frees
//! and protects of ranges crossing grants (same owner, other owners, free
//! tracts), with `check()` and the recorded state after each.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace_shim::sim::{Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, Pages, Protection, Range, Size};
use vmspace_workload::Rng;

/// The zones of `[lo, hi)` (non-empty) one byte-stripe at a time, capped.
fn brute_zones(lo: usize, hi: usize, zone_shift: u32) -> u64 {
    let (first, last) = (lo >> zone_shift, (hi - 1) >> zone_shift);
    let mut z = 0u64;
    let mut s = first;
    loop {
        z |= 1 << (s % 64);
        if s == last || z == !0 {
            break;
        }
        s += 1;
    }
    z
}

/// zones_of and zone_of at the arena's first and last tracts, the whole
/// arena, and ranges ending at the top of the address space, for every
/// zone shift. PASSES.
#[test]
fn zones_of_at_the_ends() {
    let page = 256usize;
    for &off in OFFSETS.iter() {
        let mut buf = Placed::new(1 << 20, off);
        let sim = SimBackend::new(buf.bytes(), page).unwrap();
        for zone_shift in 8..64u32 {
            let a = VmArena::new(&sim, VmArenaConfig::new(Size(300 * page)).zone_shift(zone_shift))
                .unwrap();
            let r = a.range();
            let (b, l) = (r.base().0, r.limit().0);
            let cases = [
                (b, l),
                (b, b + page),
                (l - page, l),
                (b, b + 1),
                (l - 1, l),
                (b + page - 1, l - page + 1),
            ];
            for (lo, hi) in cases {
                let got = a.zones_of(Range::new(Addr(lo), Addr(hi)).unwrap());
                assert_eq!(
                    got.0,
                    brute_zones(lo, hi, zone_shift),
                    "{zone_shift} [{lo:#x},{hi:#x})"
                );
                assert_eq!(a.zone_of(Addr(lo)) as u64, (lo as u64 >> zone_shift) % 64);
                assert!(got.contains(a.zone_of(Addr(hi - 1))));
            }
            for (lo, hi) in [
                (usize::MAX - 1, usize::MAX),
                (0, usize::MAX),
                (usize::MAX - (1 << zone_shift), usize::MAX),
                (1usize << 63, usize::MAX),
            ] {
                let got = a.zones_of(Range::new(Addr(lo), Addr(hi)).unwrap());
                assert_eq!(
                    got.0,
                    brute_zones(lo, hi, zone_shift),
                    "{zone_shift} [{lo:#x},{hi:#x})"
                );
            }
            assert_eq!(a.zones_of(Range::empty(Addr(b))), ZoneSet::EMPTY);
            assert_eq!(a.zone_of(Addr(usize::MAX)) as u64, (usize::MAX as u64 >> zone_shift) % 64);
        }
    }
}

/// Every grant lies in the zones its placement promises (checked with
/// `zones_of` of the grant), over random requests. PASSES.
#[test]
fn grants_keep_their_placement_promise() {
    let page = 64usize;
    let mut r = Rng::new(62);
    for round in 0..60 {
        let mut buf = Placed::new(1 << 20, OFFSETS[round % 8]);
        let sim = SimBackend::new(buf.bytes(), page).unwrap();
        let zone_shift = 6 + r.below(6) as u32;
        let mut a =
            VmArena::new(&sim, VmArenaConfig::new(Size(2000 * page)).zone_shift(zone_shift))
                .unwrap();
        for _ in 0..80 {
            let prefer = ZoneSet(r.next_u64() & r.next_u64());
            let avoid = ZoneSet(r.next_u64() & r.next_u64() & r.next_u64());
            let req = Request::new(Pages(r.between(1, 40)), Owner(3))
                .prefer(prefer)
                .avoid(avoid)
                .align(Pages(1 << r.below(5)));
            let Ok(g) = a.alloc(&req) else { continue };
            let z = a.zones_of(g.range);
            match g.placement {
                Placement::Preferred => {
                    assert_eq!(z.0 & !(prefer.0 & !avoid.0), 0, "{req:?} {g:?}")
                }
                Placement::NotAvoided => {
                    assert_eq!(z.0 & avoid.0, 0, "{req:?} {g:?}");
                    assert_ne!(z.0 & !(prefer.0 & !avoid.0), 0, "{req:?} {g:?}");
                }
                Placement::Anywhere => assert_ne!(z.0 & avoid.0, 0, "{req:?} {g:?}"),
            }
            assert_eq!(g.range.base().0 % (req.align.0 * page), 0);
            a.check().unwrap();
        }
    }
}

fn owners(a: &VmArena<&SimBackend<'_>>, page: usize, n: usize) -> Vec<(u32, Option<Protection>)> {
    (0..n)
        .map(|i| {
            let t = a.tract(Addr(a.base().0 + i * page));
            (t.map_or(0, |t| t.owner.0), t.map(|t| t.prot))
        })
        .collect()
}

/// Frees and protects of ranges crossing grants: across two grants of one
/// owner they work tract by tract; across another owner's tracts or free
/// tracts they fail and change nothing. PASSES.
#[test]
fn free_and_protect_across_grants() {
    let page = 4096usize;
    let mut buf = Placed::new(4 << 20, 256);
    let sim = SimBackend::new(buf.bytes(), page).unwrap();
    let mut a =
        VmArena::new(&sim, VmArenaConfig::new(Size(64 * page)).zone_shift(12).spare_limit(3))
            .unwrap();
    let b = a.base().0;
    let rg = |lo: usize, hi: usize| Range::new(Addr(b + lo * page), Addr(b + hi * page)).unwrap();
    let g1 = a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let g2 = a.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let g3 = a.alloc(&Request::new(Pages(4), Owner(2))).unwrap();
    assert_eq!((g1.range, g2.range, g3.range), (rg(0, 4), rg(4, 8), rg(8, 12)));
    // Protect across g1 and g2 (same owner): fine.
    a.protect(rg(2, 6), Owner(1), Protection::Read).unwrap();
    a.check().unwrap();
    // Across g2 and g3 (other owner): refused, nothing changes.
    let before = owners(&a, page, 16);
    assert!(a.protect(rg(6, 10), Owner(1), Protection::None).is_err());
    assert!(a.free(rg(6, 10), Owner(1)).is_err());
    assert!(a.free(rg(10, 13), Owner(2)).is_err()); // into free tracts
    assert!(a.protect(rg(10, 13), Owner(2), Protection::None).is_err());
    assert_eq!(owners(&a, page, 16), before);
    a.check().unwrap();
    // Free across g1 and g2 (partly protected): decommitted whole, none spare.
    a.free(rg(3, 5), Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(0));
    a.check().unwrap();
    // Unprotected piece: kept spare up to the bound.
    a.free(rg(6, 8), Owner(1)).unwrap();
    assert_eq!(a.spare(), Size(2 * page));
    a.check().unwrap();
    // The hole [3,5) is refilled first fit, then the pieces left are freed.
    let g = a.alloc(&Request::new(Pages(2), Owner(4))).unwrap();
    assert_eq!(g.range, rg(3, 5));
    let rest = owners(&a, page, 12);
    assert_eq!(
        rest.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1, 1, 1, 4, 4, 1, 0, 0, 2, 2, 2, 2]
    );
    assert!(a.free(rg(0, 6), Owner(1)).is_err()); // crosses owner 4
    a.free(rg(0, 3), Owner(1)).unwrap();
    a.free(rg(5, 6), Owner(1)).unwrap();
    a.free(rg(3, 5), Owner(4)).unwrap();
    a.free(g3.range, Owner(2)).unwrap();
    assert_eq!(a.allocated(), Size(0));
    assert_eq!(a.table_pages_mapped(), 0);
    a.check().unwrap();
}

/// zones_of on ranges spanning 1..130 stripes at random offsets (the cap
/// at 64 stripes is where an off-by-one would show), against the brute
/// force. PASSES.
#[test]
fn zones_of_around_the_64_stripe_cap() {
    let page = 64usize;
    let mut buf = Placed::new(1 << 20, 8);
    let sim = SimBackend::new(buf.bytes(), page).unwrap();
    let mut r = Rng::new(0x62a_ca9);
    for zone_shift in 6..40u32 {
        let a =
            VmArena::new(&sim, VmArenaConfig::new(Size(16 * page)).zone_shift(zone_shift)).unwrap();
        for _ in 0..400 {
            let stripes = r.between(1, 130);
            let lo = r.next_u64() as usize >> r.below(64);
            let len =
                (stripes - 1) << zone_shift | (r.next_u64() as usize & ((1 << zone_shift) - 1));
            let len = len.max(1);
            let Some(hi) = lo.checked_add(len) else { continue };
            let got = a.zones_of(Range::new(Addr(lo), Addr(hi)).unwrap());
            assert_eq!(got.0, brute_zones(lo, hi, zone_shift), "{zone_shift} [{lo:#x},{hi:#x})");
        }
        drop(a);
    }
}

/// Requests at the extremes of the integer range (pages and alignments
/// near 2^63, zone sets empty/full) fail cleanly with NoSpace and leave
/// the arena checked; the largest request that fits still does. PASSES.
#[test]
fn extreme_requests_fail_cleanly() {
    let page = 64usize;
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), page).unwrap();
    for zone_shift in [6u32, 7, 12, 40, 63] {
        let mut a =
            VmArena::new(&sim, VmArenaConfig::new(Size(1000 * page)).zone_shift(zone_shift))
                .unwrap();
        let n = a.tracts();
        let g0 = a.alloc(&Request::new(Pages(1), Owner(2))).unwrap();
        for pages in [usize::MAX, usize::MAX / 2, 1 << 62, n, n + 1] {
            for align in [1usize, 1 << 62, 1 << 63, 1 << 20] {
                for (p, v) in [(0u64, 0u64), (!0, 0), (1, !0), (!1, 1), (0, !0)] {
                    let req = Request::new(Pages(pages), Owner(1))
                        .align(Pages(align))
                        .prefer(ZoneSet(p))
                        .avoid(ZoneSet(v));
                    let e = a.alloc(&req).unwrap_err();
                    assert!(
                        matches!(e, vmspace::vmarena::VmArenaError::NoSpace { .. }),
                        "{req:?}: {e:?}"
                    );
                }
            }
        }
        a.check().unwrap();
        let g = a.alloc(&Request::new(Pages(n - 1), Owner(1))).unwrap();
        assert_eq!(g.range.base().0, a.base().0 + page);
        a.free(g.range, Owner(1)).unwrap();
        a.free(g0.range, Owner(2)).unwrap();
        a.check().unwrap();
    }
}
