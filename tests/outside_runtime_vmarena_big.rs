//! An outside reviewer (a language runtime's author) against the VM arena
//! as a GC heap's page source: many allocation-table pages (so whole
//! stretches of the table are unmapped, runs cross table pages, requests are
//! longer than a table word or a table page), zones and alignments, checked
//! against a brute-force per-tract model after every step.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace::Pages;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Range, Size};

const PAGE: usize = 64;
/// 64-byte pages: 512 tracts per allocation-table page, so 8 of them.
const TRACTS: usize = 4096;

mod outside_common;
use outside_common::Rng;

fn zone_set(rng: &mut Rng) -> ZoneSet {
    match rng.below(6) {
        0 | 1 => ZoneSet::ALL,
        2 => ZoneSet::EMPTY,
        3 => ZoneSet::single(rng.below(64) as u32),
        4 => ZoneSet(rng.next()),
        _ => ZoneSet(rng.next() & rng.next() & rng.next()).complement(),
    }
}

fn request_size(rng: &mut Rng) -> usize {
    match rng.below(8) {
        0 => 1 + rng.below(4) as usize,
        1 => 60 + rng.below(10) as usize,
        2 => 500 + rng.below(30) as usize,
        3 => 1000 + rng.below(1200) as usize,
        4 => 1 + rng.below(200) as usize,
        _ => 1 + rng.below(16) as usize,
    }
}

fn run(seed: u64, steps: usize, tracts: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let zone_shift = 6 + rng.below(9) as u32;
    let cfg = VmArenaConfig::new(Size(tracts * PAGE))
        .zone_shift(zone_shift)
        .spare_limit(rng.below(64) as usize);
    let mut a = VmArena::new(&sim, cfg).unwrap();
    let base = a.base().0;
    assert_eq!(a.tracts(), tracts);
    let zone = |i: usize| (((base + i * PAGE) >> zone_shift) % 64) as u32;
    let mut owner_of = vec![0u32; tracts];
    // Live grants: (first tract, pages, owner).
    let mut live: Vec<(usize, usize, u32)> = Vec::new();
    for step in 0..steps {
        let what = format!("seed {seed} step {step} zone_shift {zone_shift}");
        if live.is_empty() || rng.below(5) < 3 {
            let pages = request_size(&mut rng);
            let align = if rng.below(3) == 0 { 1usize << rng.below(11) } else { 1 };
            let owner = 1 + rng.below(3) as u32;
            let req = Request::new(Pages(pages), Owner(owner))
                .align(Pages(align))
                .prefer(zone_set(&mut rng))
                .avoid(zone_set(&mut rng));
            let tiers = [
                (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
                (req.avoid.complement(), Placement::NotAvoided),
                (ZoneSet::ALL, Placement::Anywhere),
            ];
            let mut want = None;
            for (set, label) in tiers {
                if set.is_empty() {
                    continue;
                }
                let found = (0..tracts).find(|&i| {
                    ((base / PAGE) + i) % align == 0
                        && i + pages <= tracts
                        && (i..i + pages).all(|j| owner_of[j] == 0 && set.contains(zone(j)))
                });
                if let Some(i) = found {
                    want = Some((i, label));
                    break;
                }
            }
            match a.alloc(&req) {
                Ok(g) => {
                    let gi = (g.range.base().0 - base) / PAGE;
                    assert_eq!(
                        Some((gi, g.placement)),
                        want,
                        "{what}: {pages} pages align {align} prefer {:#x} avoid {:#x}",
                        req.prefer.0,
                        req.avoid.0
                    );
                    assert_eq!(g.range.size(), Size(pages * PAGE));
                    owner_of[gi..gi + pages].fill(owner);
                    live.push((gi, pages, owner));
                }
                Err(VmArenaError::NoSpace { .. }) => assert_eq!(
                    want, None,
                    "{what}: NoSpace for {pages} pages align {align} prefer {:#x} avoid {:#x}",
                    req.prefer.0, req.avoid.0
                ),
                Err(e) => panic!("{what}: {e:?}"),
            }
        } else {
            let k = rng.below(live.len() as u64) as usize;
            let (gi, pages, owner) = live.swap_remove(k);
            let r = Range::from_size(vmspace::Addr(base + gi * PAGE), Size(pages * PAGE)).unwrap();
            a.free(r, Owner(owner)).unwrap();
            owner_of[gi..gi + pages].fill(0);
        }
        let allocated: usize = live.iter().map(|l| l.1).sum();
        assert_eq!(a.allocated(), Size(allocated * PAGE), "{what}");
        // Every allocation-table page is mapped exactly while it holds a
        // bit of an allocated tract (no hysteresis).
        let bit_pages = owner_of.chunks(512).filter(|c| c.iter().any(|&o| o != 0)).count();
        assert_eq!(a.bit_pages_mapped(), bit_pages, "{what}");
        let table_pages = owner_of.chunks(8).filter(|c| c.iter().any(|&o| o != 0)).count();
        assert_eq!(a.table_pages_mapped(), table_pages, "{what}");
        if step % 16 == 0 {
            a.check().unwrap();
        }
    }
    for (gi, pages, owner) in live.drain(..) {
        let r = Range::from_size(vmspace::Addr(base + gi * PAGE), Size(pages * PAGE)).unwrap();
        a.free(r, Owner(owner)).unwrap();
    }
    a.check().unwrap();
    assert_eq!(a.allocated(), Size(0));
    assert_eq!(a.table_pages_mapped() + a.bit_pages_mapped(), 0);
}

#[test]
fn placement_across_many_table_pages_matches_first_fit() {
    for seed in 1..=40 {
        run(seed, 250, TRACTS);
    }
}

/// The same with a tract count that fills no word, table page or
/// allocation-table page exactly.
#[test]
fn placement_with_a_ragged_last_table_page() {
    for (seed, tracts) in (41..=70).zip([4096 - 37, 513, 1, 63, 65, 2049, 3000, 511]) {
        run(seed, 200, tracts);
    }
}

/// A run that starts in the last word of one allocation-table page and ends
/// in the next one, with the rest of both pages allocated.
#[test]
fn run_crossing_a_table_page_is_found() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(TRACTS * PAGE))).unwrap();
    let base = a.base().0;
    let fill = |a: &mut VmArena<&SimBackend<'_>>, pages: usize| {
        a.alloc(&Request::new(Pages(pages), Owner(1))).unwrap().range
    };
    // [0, 500) taken, [500, 530) free, [530, 1024) taken, rest free.
    let first = fill(&mut a, 500);
    let hole = fill(&mut a, 30);
    let _second = fill(&mut a, 494);
    a.free(hole, Owner(1)).unwrap();
    assert_eq!(first.base().0, base);
    let g = a.alloc(&Request::new(Pages(30), Owner(2))).unwrap();
    assert_eq!((g.range.base().0 - base) / PAGE, 500);
    a.check().unwrap();
}
