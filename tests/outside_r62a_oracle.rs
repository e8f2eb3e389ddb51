//! Round 62a outside review: placement held to an independent brute-force
//! oracle (written here, not the project's model) over random
//! configurations: page sizes 64..4096 on the simulated backend, buffers at
//! several offsets (so the arena base is or is not aligned to the zone
//! cycle), zone shifts from the page shift up to stripes far larger than
//! the arena, alignments from one page to beyond the arena, prefer/avoid
//! sets empty, full, random, single or contiguous runs, and arenas
//! fragmented by allocations and frees, with `check()` after every step.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace_shim::sim::Placed;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Pages, Range, Size};
use vmspace_workload::Rng;

/// The oracle: the first start (by index) of every candidate, for a zone set.
fn oracle_fit(
    used: &[bool],
    base: usize,
    page_shift: u32,
    zone_shift: u32,
    pages: usize,
    align: usize,
    zones: u64,
) -> Option<usize> {
    let n = used.len();
    if pages > n {
        return None;
    }
    let zone = |i: usize| (((base + (i << page_shift)) >> zone_shift) % 64) as u32;
    'p: for p in 0..=n - pages {
        if ((base >> page_shift) + p) % align != 0 {
            continue;
        }
        for (i, &taken) in used.iter().enumerate().skip(p).take(pages) {
            if taken || zones & (1u64 << zone(i)) == 0 {
                continue 'p;
            }
        }
        return Some(p);
    }
    None
}

#[expect(clippy::too_many_arguments, reason = "the oracle takes the whole request")]
fn oracle_place(
    used: &[bool],
    base: usize,
    page_shift: u32,
    zone_shift: u32,
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
        if let Some(p) = oracle_fit(used, base, page_shift, zone_shift, pages, align, z) {
            return Some((p, pl));
        }
    }
    None
}

fn zone_set(r: &mut Rng) -> u64 {
    match r.below(7) {
        0 => 0,
        1 => !0,
        2 => 1 << r.below(64),
        3 | 4 => {
            let len = r.between(1, 63) as u32;
            ((1u64 << len) - 1).rotate_left(r.below(64) as u32)
        }
        5 => !(1u64 << r.below(64)),
        _ => r.next_u64(),
    }
}

/// One random configuration and a sequence of allocations and frees.
fn one(seed: u64) {
    let mut r = Rng::new(seed);
    let page_shift = 6 + r.below(7) as u32; // 64 .. 4096
    let page = 1usize << page_shift;
    let tracts = r.between(1, 1200);
    let zone_shift = match r.below(4) {
        0 => page_shift,
        1 => page_shift + r.below(4) as u32,
        2 => page_shift + r.below(12) as u32,
        _ => (page_shift + r.below(64) as u32).min(63),
    };
    let offset = vmspace_shim::sim::OFFSETS[r.below(8)];
    // Room for the tracts, the tables, the VM's summary and the sim's table.
    let len = (tracts + 64) * page * 2 + (64 << 10);
    let mut buf = Placed::new(len, offset);
    let sim = SimBackend::new(buf.bytes(), page).unwrap();
    let config =
        VmArenaConfig::new(Size(tracts * page)).zone_shift(zone_shift).spare_limit(r.below(20));
    let mut arena = VmArena::new(&sim, config).unwrap();
    let n = arena.tracts();
    let base = arena.base().0;
    let mut used = vec![false; n];
    let mut live: Vec<(usize, usize, u32)> = Vec::new();
    let ctx = format!(
        "seed {seed}: page {page} tracts {n} zone_shift {zone_shift} base {base:#x} offset {offset}"
    );
    for step in 0..60 {
        if !live.is_empty() && r.chance(350) {
            let (f, p, o) = live.swap_remove(r.below(live.len()));
            let range =
                Range::from_size(Addr(base + (f << page_shift)), Size(p << page_shift)).unwrap();
            arena.free(range, Owner(o)).unwrap_or_else(|e| panic!("{ctx} step {step}: {e:?}"));
            used[f..f + p].iter_mut().for_each(|u| *u = false);
        } else {
            let pages = match r.below(4) {
                0 => r.between(1, 4),
                1 => r.between(1, 70),
                2 => r.between(1, n.max(1)),
                _ => n.saturating_sub(r.below(3)).max(1),
            };
            let align = 1usize
                << match r.below(3) {
                    0 => 0,
                    1 => r.below(8),
                    _ => r.below(24),
                };
            let (prefer, avoid) = (zone_set(&mut r), zone_set(&mut r));
            let owner = 1 + r.below(5) as u32;
            let req = Request::new(Pages(pages), Owner(owner))
                .align(Pages(align))
                .prefer(ZoneSet(prefer))
                .avoid(ZoneSet(avoid));
            let want =
                oracle_place(&used, base, page_shift, zone_shift, pages, align, prefer, avoid);
            let got = arena.alloc(&req);
            match (want, got) {
                (None, Err(_)) => {}
                (Some((p, pl)), Ok(g)) => {
                    let gp = (g.range.base().0 - base) >> page_shift;
                    assert_eq!((gp, g.placement), (p, pl), "{ctx} step {step}: {req:?} got {g:?}");
                    used[p..p + pages].iter_mut().for_each(|u| *u = true);
                    live.push((p, pages, owner));
                }
                (w, g) => panic!("{ctx} step {step}: {req:?}: oracle {w:?}, arena {g:?}"),
            }
        }
        arena.check().unwrap_or_else(|e| panic!("{ctx} step {step}: check {e:?}"));
    }
}

#[test]
fn placement_matches_brute_force_oracle() {
    let seeds: u64 = std::env::var("R62A_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    for seed in 0..seeds {
        one(0x62a0_0000 + seed);
    }
}
