//! Round 26: `fit_in` now stops at the first candidate whose run would
//! pass the last tract. Exhaustive over small arenas: every run length up
//! to the whole arena, alignments past the arena's size, a zone set, and
//! occupancy patterns that leave the free runs at the tail; compared with a
//! brute-force first fit.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, Pages, Size};

const PAGE: usize = 256;

fn oracle(
    free: &[bool],
    base: usize,
    zs: u32,
    pages: usize,
    align: usize,
    z: ZoneSet,
) -> Option<usize> {
    let n = free.len();
    'p: for p in 0..n {
        if p + pages > n {
            return None;
        }
        if ((base + p * PAGE) / PAGE) % align != 0 {
            continue;
        }
        for (t, &is_free) in free.iter().enumerate().skip(p).take(pages) {
            if !is_free || !z.contains((((base + t * PAGE) >> zs) % 64) as u32) {
                continue 'p;
            }
        }
        return Some(p);
    }
    None
}

#[test]
fn first_fit_at_the_tail_matches_brute_force() {
    let mut checked = 0;
    // Under AddressSanitizer (`make asan` sets `VMSPACE_ASAN`), several
    // times slower, every third size of those the plain run takes.
    let sparse = if std::env::var_os("VMSPACE_ASAN").is_some() { 3 } else { 1 };
    for (tracts, zs) in [(70usize, 10u32), (129, 9), (200, 12), (64, 63)] {
        for pattern in 0..6u64 {
            for pages in (1..=tracts).step_by(sparse * if tracts > 100 { 7 } else { 3 }) {
                for ashift in [0u32, 3, 6, 8, 9] {
                    for zones in [ZoneSet::ALL, ZoneSet(0xAAAA_AAAA_AAAA_AAAA), ZoneSet::single(1)]
                    {
                        let mut buf = Placed::new(1 << 20, 0);
                        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
                        let mut a = VmArena::new(
                            &sim,
                            VmArenaConfig::new(Size(tracts * PAGE)).zone_shift(zs),
                        )
                        .unwrap();
                        let base = a.base().0;
                        // Occupy a prefix / stripes, leaving the tail free.
                        let mut used = Vec::new();
                        let cut = match pattern {
                            0 => 0,
                            1 => 1,
                            2 => tracts / 3,
                            3 => tracts / 2 + 1,
                            4 => tracts - 2,
                            _ => tracts / 4,
                        };
                        if cut > 0 {
                            used.push(a.alloc(&Request::new(Pages(cut), Owner(2))).unwrap().range);
                        }
                        if pattern == 5 {
                            // A hole pattern after the cut.
                            let mut p = cut;
                            while p + 3 < tracts {
                                let g = a.alloc(&Request::new(Pages(1), Owner(3))).unwrap();
                                used.push(g.range);
                                let _ = a.alloc(&Request::new(Pages(2), Owner(4))).map(|g| {
                                    a.free(g.range, Owner(4)).unwrap();
                                });
                                p += 3;
                                if p > tracts / 2 {
                                    break;
                                }
                            }
                        }
                        let free: Vec<bool> =
                            (0..tracts).map(|i| !a.is_allocated(Addr(base + i * PAGE))).collect();
                        let align = 1usize << ashift;
                        let req =
                            Request::new(Pages(pages), Owner(1)).align(Pages(align)).prefer(zones);
                        let want = oracle(&free, base, zs, pages, align, zones)
                            .map(|p| (p, Placement::Preferred))
                            .or_else(|| {
                                oracle(&free, base, zs, pages, align, ZoneSet::ALL)
                                    .map(|p| (p, Placement::Anywhere))
                            });
                        let got = a.alloc(&req);
                        let what = format!("tracts {tracts} zs {zs} pattern {pattern} pages {pages} align {align} {zones:?}");
                        match (want, got) {
                            (None, Err(VmArenaError::NoSpace { .. })) => {}
                            (Some((p, pl)), Ok(g)) => {
                                let pl =
                                    if zones == ZoneSet::ALL { Placement::Preferred } else { pl };
                                assert_eq!(g.range.base().0, base + p * PAGE, "{what}");
                                let _ = pl;
                            }
                            (w, g) => panic!("{what}: expected {w:?}, got {g:?}"),
                        }
                        a.check().unwrap();
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} placements");
}
