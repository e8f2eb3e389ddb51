//! Round 27 outside review: the VM arena's documented contract
//! (`src/vmarena/`, `src/sources/vmarena.rs`): placement (first fit by
//! address with zone tiers, against brute force), the last tract, zone
//! shifts, configuration and address extremes.

mod outside_r27_vmarena_common;

use vmspace::arena::{ArenaError, Source};
use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::{Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, PageOps, Pages, Protection, Range, Size};

use outside_r27_vmarena_common::{rng, snap, PAGE};

/// Brute force: the lowest fit for `pages` at `align` pages wholly in `zones`.
fn oracle_fit<P: PageOps>(
    a: &VmArena<P>,
    pages: usize,
    align: usize,
    zones: ZoneSet,
) -> Option<usize> {
    let n = a.tracts();
    let pg = a.page_size().0;
    (0..n).find(|&p| {
        p + pages <= n
            && ((a.base().0 + p * pg) / pg) % align == 0
            && (p..p + pages).all(|i| !a.is_allocated(Addr(a.base().0 + i * pg)))
            && {
                let r = Range::from_size(Addr(a.base().0 + p * pg), Size(pages * pg)).unwrap();
                a.zones_of(r).0 & !zones.0 == 0
            }
    })
}

fn oracle_place<P: PageOps>(a: &VmArena<P>, req: &Request) -> Option<(usize, Placement)> {
    let tiers = [
        (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
        (req.avoid.complement(), Placement::NotAvoided),
        (ZoneSet::ALL, Placement::Anywhere),
    ];
    for (z, pl) in tiers {
        if z.is_empty() {
            continue;
        }
        if let Some(p) = oracle_fit(a, req.pages.0, req.align.0, z) {
            return Some((p, pl));
        }
    }
    None
}

/// "first fit by address over runs of free tracts, with zone placement":
/// every allocation lands where a brute-force first fit of its tiers puts
/// it, at several buffer offsets, zone shifts and alignments.
#[test]
fn placement_matches_brute_force_first_fit() {
    for (k, &off) in OFFSETS.iter().enumerate() {
        for zone_shift in [8u32, 9, 11, 14] {
            let mut buf = Placed::new(1 << 20, off);
            let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
            let tracts = 700 + k * 37;
            let mut a = VmArena::new(
                &sim,
                VmArenaConfig::new(Size(tracts * PAGE)).zone_shift(zone_shift).spare_limit(5),
            )
            .unwrap();
            let mut seed = 0x1234_5678_9abc_def1u64 ^ (off as u64) << 8 ^ zone_shift as u64;
            let mut live: Vec<Range> = Vec::new();
            for step in 0..200 {
                let r = rng(&mut seed);
                if r % 3 == 0 && !live.is_empty() {
                    let i = (r as usize / 3) % live.len();
                    a.free(live.swap_remove(i), Owner(1)).unwrap();
                } else {
                    let pages = 1 + (rng(&mut seed) % if r % 7 == 0 { 90 } else { 9 }) as usize;
                    let align = 1usize << (rng(&mut seed) % 4);
                    let zs = |s: &mut u64| match rng(s) % 4 {
                        0 => ZoneSet::ALL,
                        1 => ZoneSet::EMPTY,
                        2 => ZoneSet(rng(s)),
                        _ => ZoneSet(rng(s) & rng(s) & rng(s)),
                    };
                    let req = Request::new(Pages(pages), Owner(1))
                        .align(Pages(align))
                        .prefer(zs(&mut seed))
                        .avoid(zs(&mut seed));
                    let want = oracle_place(&a, &req);
                    match a.alloc(&req) {
                        Ok(g) => {
                            let p = (g.range.base().0 - a.base().0) / PAGE;
                            assert_eq!(
                                Some((p, g.placement)),
                                want,
                                "off {off} zs {zone_shift} step {step} {req:?}"
                            );
                            live.push(g.range);
                        }
                        Err(VmArenaError::NoSpace { .. }) => {
                            assert_eq!(want, None, "off {off} zs {zone_shift} step {step} {req:?}")
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
                a.check().unwrap();
            }
        }
    }
}

fn fast_fit(
    free: &[bool],
    zone: &[u32],
    base_page: usize,
    pages: usize,
    align: usize,
    zones: ZoneSet,
) -> Option<usize> {
    let n = free.len();
    let mut ok = vec![0usize; n + 1]; // prefix count of usable tracts
    for i in 0..n {
        ok[i + 1] = ok[i] + usize::from(free[i] && zones.contains(zone[i]));
    }
    (0..n)
        .find(|&p| p + pages <= n && (base_page + p) % align == 0 && ok[p + pages] - ok[p] == pages)
}

/// First fit against brute force on an arena of three allocation-table
/// pages (unmapped ones read as free stretches), with runs crossing them.
#[test]
fn placement_matches_brute_force_across_bit_pages() {
    for (k, &off) in [0usize, 3 * 256 + 40, 31 * 256].iter().enumerate() {
        let zone_shift = [16u32, 12, 19][k];
        let mut buf = Placed::new(3 << 20, off);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let tracts = 2 * 2048 + 300 + 17 * k;
        let mut a = VmArena::new(
            &sim,
            VmArenaConfig::new(Size(tracts * PAGE)).zone_shift(zone_shift).spare_limit(40),
        )
        .unwrap();
        let base_page = a.base().0 / PAGE;
        let zone: Vec<u32> = (0..tracts).map(|i| a.zone_of(Addr(a.base().0 + i * PAGE))).collect();
        let mut seed = 0xfeed_beef_u64 ^ off as u64;
        let mut live: Vec<Range> = Vec::new();
        for step in 0..150 {
            let r = rng(&mut seed);
            if r % 3 == 0 && !live.is_empty() {
                let i = (r as usize / 3) % live.len();
                a.free(live.swap_remove(i), Owner(1)).unwrap();
            } else {
                let pages =
                    1 + (rng(&mut seed) % [3, 70, 700, 2100][(r >> 40) as usize % 4]) as usize;
                let align = 1usize << (rng(&mut seed) % 6);
                let zs = |s: &mut u64| match rng(s) % 4 {
                    0 => ZoneSet::ALL,
                    1 => ZoneSet::EMPTY,
                    2 => ZoneSet(rng(s)),
                    _ => ZoneSet(rng(s) | rng(s)),
                };
                let req = Request::new(Pages(pages), Owner(1))
                    .align(Pages(align))
                    .prefer(zs(&mut seed))
                    .avoid(zs(&mut seed));
                let free: Vec<bool> =
                    (0..tracts).map(|i| !a.is_allocated(Addr(a.base().0 + i * PAGE))).collect();
                let tiers = [
                    (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
                    (req.avoid.complement(), Placement::NotAvoided),
                    (ZoneSet::ALL, Placement::Anywhere),
                ];
                let want = tiers.iter().filter(|t| !t.0.is_empty()).find_map(|&(z, pl)| {
                    fast_fit(&free, &zone, base_page, pages, align, z).map(|p| (p, pl))
                });
                match a.alloc(&req) {
                    Ok(g) => {
                        let p = (g.range.base().0 - a.base().0) / PAGE;
                        assert_eq!(Some((p, g.placement)), want, "off {off} step {step} {req:?}");
                        live.push(g.range);
                    }
                    Err(VmArenaError::NoSpace { .. }) => {
                        assert_eq!(want, None, "off {off} step {step} {req:?}")
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            a.check().unwrap();
        }
    }
}

/// Requests at the last tract, with the arena otherwise full, and with
/// zone shift 63 (two stripes) and the page shift.
#[test]
fn last_tract_and_zone_shift_extremes() {
    for zone_shift in [8u32, 20, 62, 63] {
        let mut buf = Placed::new(1 << 20, 13 * 256 + 200);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let n = 129;
        let mut a =
            VmArena::new(&sim, VmArenaConfig::new(Size(n * PAGE)).zone_shift(zone_shift)).unwrap();
        let g = a.alloc(&Request::new(Pages(n - 1), Owner(1))).unwrap();
        let last = Addr(a.base().0 + (n - 1) * PAGE);
        let z = a.zone_of(last);
        let g2 = a.alloc(&Request::new(Pages(1), Owner(2)).prefer(ZoneSet::single(z))).unwrap();
        assert_eq!(g2.range.base(), last);
        assert_eq!(g2.placement, Placement::Preferred);
        assert!(matches!(
            a.alloc(&Request::new(Pages(1), Owner(2))),
            Err(VmArenaError::NoSpace { pages: 1 })
        ));
        a.set_client(last, 0xffff).unwrap();
        assert_eq!(a.tract(last).unwrap().client, 0xffff);
        a.protect(g2.range, Owner(2), Protection::None).unwrap();
        a.free(g2.range, Owner(2)).unwrap();
        // Avoiding the last tract's zone: falls back to Anywhere.
        let g3 = a.alloc(&Request::new(Pages(1), Owner(2)).avoid(ZoneSet::single(z))).unwrap();
        assert_eq!(g3.range.base(), last);
        let expect = if a.zones_of(g3.range).0 & ZoneSet::single(z).0 != 0 {
            Placement::Anywhere
        } else {
            Placement::NotAvoided
        };
        assert_eq!(g3.placement, expect);
        a.free(g3.range, Owner(2)).unwrap();
        a.free(g.range, Owner(1)).unwrap();
        a.check().unwrap();
        assert_eq!(a.committed(), Size(0));
    }
}

/// A second arena's addresses given to the first: refused, nothing changed.
#[test]
fn second_instance_addresses_refused() {
    let mut b1 = Placed::new(1 << 20, 0);
    let mut b2 = Placed::new(1 << 20, 256);
    let s1 = SimBackend::new(b1.bytes(), PAGE).unwrap();
    let s2 = SimBackend::new(b2.bytes(), PAGE).unwrap();
    let mut a1 = VmArena::new(&s1, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let mut a2 = VmArena::new(&s2, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
    let g1 = a1.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let g2 = a2.alloc(&Request::new(Pages(4), Owner(1))).unwrap();
    let before = snap(&a1);
    assert!(matches!(a1.free(g2.range, Owner(1)), Err(VmArenaError::Common(_))));
    assert!(matches!(
        a1.protect(g2.range, Owner(1), Protection::None),
        Err(VmArenaError::Common(_))
    ));
    assert!(a1.set_client(g2.range.base(), 1).is_err());
    assert_eq!(a1.tract(g2.range.base()), None);
    assert!(!a1.is_allocated(g2.range.base()));
    // A range the arena never handed out is a bad free, as `VmSource` says
    // (round 63b: it was `BadImport`, the import side's error).
    let want =
        ArenaError::BadFree { addr: g2.range.base(), size: g2.range.size(), allocated: None };
    assert_eq!(Source::release(&mut a1, g2.range), Err(want));
    assert_eq!(snap(&a1), before);
    a1.check().unwrap();
    a2.check().unwrap();
    let _ = g1;
}

/// Configuration and address extremes: errors, never panics.
#[test]
fn config_and_address_extremes() {
    let mut buf = Placed::new(1 << 20, 8);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    for size in [usize::MAX, usize::MAX - 255, 1 << 63, 1 << 62, (1 << 20) + 1] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            VmArena::new(&sim, VmArenaConfig::new(Size(size))).map(|_| ())
        }));
        assert!(matches!(r, Ok(Err(_))), "size {size:#x}: {r:?}");
    }
    for zs in [7u32, 64, 65, u32::MAX] {
        assert!(
            VmArena::new(&sim, VmArenaConfig::new(Size(PAGE)).zone_shift(zs)).is_err(),
            "zone shift {zs}"
        );
    }
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(PAGE + 1)).zone_shift(63)).unwrap();
    assert_eq!(a.tracts(), 2);
    for ad in [Addr(0), Addr(usize::MAX), Addr(a.range().limit().0), Addr(a.base().0 - 1)] {
        assert!(a.set_client(ad, 1).is_err());
        assert!(!a.is_allocated(ad));
        assert_eq!(a.tract(ad), None);
    }
    let g = a.alloc(&Request::new(Pages(2), Owner(u32::MAX))).unwrap();
    assert_eq!(
        a.zones_of(g.range),
        ZoneSet::single(a.zone_of(g.range.base()))
            .union(ZoneSet::single(a.zone_of(Addr(g.range.limit().0 - 1))))
    );
    assert!(matches!(
        a.alloc(&Request::new(Pages(usize::MAX), Owner(1))),
        Err(VmArenaError::NoSpace { .. })
    ));
    assert!(a.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(3))).is_err());
    assert!(a.alloc(&Request::new(Pages(1), Owner(0))).is_err());
    a.free(g.range, Owner(u32::MAX)).unwrap();
    a.check().unwrap();
}
