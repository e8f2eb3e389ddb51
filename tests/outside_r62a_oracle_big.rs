//! Round 62a outside review: the period shortcut of `first_fit` against an
//! independent O(n) oracle on arenas of many periods and many
//! allocation-table pages (64-byte pages: 512 tracts a table page), zones
//! of 1 to 8 tracts, the base at several offsets from the zone cycle, free
//! runs of random lengths around the period, and requests sized at the
//! edge of what their preferred zones allow (a stretch of L allowed stripes
//! holds L stripes of tracts, not one more), with alignments below, at and
//! above the period. `check()` after every step.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace_shim::sim::{Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, Pages, Range, Size};
use vmspace_workload::Rng;

/// First start `p` with `[p, p + pages)` free, in `zones`, on a multiple of
/// `align` pages (absolute): one backward pass for "ok run length from i".
fn fit(ok: &[bool], abs0: usize, pages: usize, align: usize) -> Option<usize> {
    let n = ok.len();
    let mut len = vec![0usize; n + 1];
    for i in (0..n).rev() {
        len[i] = if ok[i] { len[i + 1] + 1 } else { 0 };
    }
    (0..n).find(|&p| (abs0 + p) % align == 0 && len[p] >= pages)
}

struct World {
    used: Vec<bool>,
    base: usize,
    page_shift: u32,
    zone_shift: u32,
}

impl World {
    fn place(
        &self,
        pages: usize,
        align: usize,
        prefer: u64,
        avoid: u64,
    ) -> Option<(usize, Placement)> {
        let tiers = [
            (prefer & !avoid, Placement::Preferred),
            (!avoid, Placement::NotAvoided),
            (!0u64, Placement::Anywhere),
        ];
        for (z, pl) in tiers {
            if z == 0 {
                continue;
            }
            let ok: Vec<bool> = (0..self.used.len())
                .map(|i| {
                    let zone = ((self.base + (i << self.page_shift)) >> self.zone_shift) % 64;
                    !self.used[i] && z & (1 << zone) != 0
                })
                .collect();
            if let Some(p) = fit(&ok, self.base >> self.page_shift, pages, align) {
                return Some((p, pl));
            }
        }
        None
    }
}

fn one(seed: u64) {
    let mut r = Rng::new(seed);
    let page_shift = 6u32;
    let page = 64usize;
    let zone_shift = page_shift + r.below(4) as u32;
    let stripe = 1usize << (zone_shift - page_shift);
    let tracts = r.between(2000, 9000);
    let offset = OFFSETS[r.below(8)] + page * r.below(64);
    let mut buf = Placed::new(tracts * page * 2 + (256 << 10), offset);
    let sim = SimBackend::new(buf.bytes(), page).unwrap();
    let config = VmArenaConfig::new(Size(tracts * page)).zone_shift(zone_shift).spare_limit(16);
    let mut arena = VmArena::new(&sim, config).unwrap();
    let base = arena.base().0;
    let mut w = World { used: vec![false; tracts], base, page_shift, zone_shift };
    let ctx = format!("seed {seed}: tracts {tracts} zone_shift {zone_shift} base {base:#x}");
    let mut live: Vec<(usize, usize)> = Vec::new();
    // Fragment: a few separators at random places (free runs of random
    // lengths, many around one period of 64 stripes).
    for _ in 0..r.below(12) {
        let at = r.below(tracts);
        let len = r.between(1, 3);
        if at + len <= tracts && !w.used[at..at + len].iter().any(|&u| u) {
            // Fill the free gap before it first fit, take the separator
            // right after, then free the filler again.
            let gap = (0..at).rev().take_while(|&i| !w.used[i]).count();
            let start = at - gap;
            let mut filler = None;
            if gap > 0 {
                let g = arena.alloc(&Request::new(Pages(gap), Owner(9))).unwrap();
                let gp = (g.range.base().0 - base) >> page_shift;
                assert_eq!(gp, w.place(gap, 1, !0, 0).unwrap().0, "{ctx}");
                w.used[gp..gp + gap].iter_mut().for_each(|u| *u = true);
                filler = Some(g.range);
                if gp != start {
                    // First fit went lower: undo and skip.
                    arena.free(g.range, Owner(9)).unwrap();
                    w.used[gp..gp + gap].iter_mut().for_each(|u| *u = false);
                    continue;
                }
            }
            let g = arena.alloc(&Request::new(Pages(len), Owner(8))).unwrap();
            let gp = (g.range.base().0 - base) >> page_shift;
            if gp == at {
                w.used[gp..gp + len].iter_mut().for_each(|u| *u = true);
                live.push((gp, len));
            } else {
                arena.free(g.range, Owner(8)).unwrap();
            }
            if let Some(f) = filler {
                arena.free(f, Owner(9)).unwrap();
                w.used[start..at].iter_mut().for_each(|u| *u = false);
            }
            arena.check().unwrap();
        }
    }
    for step in 0..40 {
        let l = r.between(1, 63);
        let prefer = ((1u64 << l) - 1).rotate_left(r.below(64) as u32);
        let avoid = match r.below(4) {
            0 => !prefer & ((1u64 << r.below(64)) - 1).rotate_left(r.below(64) as u32),
            1 => 1 << r.below(64),
            _ => 0,
        };
        let edge = l * stripe;
        let pages = match r.below(5) {
            0 => edge,
            1 => edge + 1,
            2 => edge.saturating_sub(r.below(3)).max(1),
            3 => r.between(1, 2 * stripe),
            _ => r.between(1, tracts),
        };
        let align = 1usize << r.below(14);
        let req = Request::new(Pages(pages), Owner(1 + step % 3))
            .align(Pages(align))
            .prefer(ZoneSet(prefer))
            .avoid(ZoneSet(avoid));
        let want = w.place(pages, align, prefer, avoid);
        match (want, arena.alloc(&req)) {
            (None, Err(_)) => {}
            (Some((p, pl)), Ok(g)) => {
                let gp = (g.range.base().0 - base) >> page_shift;
                assert_eq!((gp, g.placement), (p, pl), "{ctx} step {step}: {req:?}");
                // Keep small grants (fragmenting), free big ones at once.
                if pages <= 3 * stripe && r.chance(500) {
                    w.used[p..p + pages].iter_mut().for_each(|u| *u = true);
                    live.push((p, pages));
                } else {
                    arena.free(g.range, req.owner).unwrap();
                    if r.chance(300) {
                        if let Some((f, n)) = live.pop() {
                            let owner = arena.tract(Addr(base + (f << page_shift))).unwrap().owner;
                            let rg =
                                Range::from_size(Addr(base + (f << page_shift)), Size(n * page))
                                    .unwrap();
                            arena.free(rg, owner).unwrap();
                            w.used[f..f + n].iter_mut().for_each(|u| *u = false);
                        }
                    }
                }
            }
            (w_, g) => panic!("{ctx} step {step}: {req:?}: oracle {w_:?}, arena {g:?}"),
        }
        arena.check().unwrap_or_else(|e| panic!("{ctx} step {step}: {e:?}"));
    }
}

#[test]
fn shortcut_matches_oracle_on_many_periods() {
    let seeds: u64 = std::env::var("R62A_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    for seed in 0..seeds {
        one(0xb16_0000 + seed);
    }
}
