//! Outside review, round 41: constrained allocation (`xalloc`,
//! `xalloc_handle`) near the top of the address space against a
//! brute-force oracle that tries every quantum-aligned address of every
//! free segment, then `free_part` / `resize` / `free_handle` on what it
//! placed, with `check()` after each step.
//!
//! Contracts relied on:
//! - src/arena/constraints.rs:81-121: align/phase ("The address must be
//!   `phase` more than a multiple of `align`"), nocross ("must not straddle
//!   a multiple of `boundary`"), min ("start at or above"), max ("end at or
//!   below `addr` (exclusive limit)"), exact.
//! - src/arena/constraints.rs:11-26: instant fit "fails only when nothing
//!   fits"; first fit "The lowest-addressed free segment that fits (the
//!   highest-addressed one when allocating from the top)"; best fit "The
//!   smallest free segment that fits".
//! - src/arena/constraints.rs:125-127 (`from_top`): "place the allocation at
//!   the highest suitable address of the segment chosen".
//! - src/arena/alloc.rs:22-24: "on any failure nothing changes".

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng41 as Rng;

type A<'a> = Arena<SliceStore<'a>, NoSource>;

#[derive(Debug, Clone, Copy)]
struct Req {
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    min: Option<usize>,
    max: Option<usize>,
    policy: Policy,
    top: bool,
}

/// Whether `[a, a + rounded)` meets `r` (a quantum-aligned start).
fn meets(r: &Req, q: usize, a: usize, rounded: usize) -> bool {
    let Some(end) = a.checked_add(rounded) else { return false };
    let align = r.align.max(q);
    if a % align != r.phase % align || r.phase >= align {
        return false;
    }
    if r.nocross != 0 && a / r.nocross != (end - 1) / r.nocross {
        return false;
    }
    r.min.is_none_or(|m| a >= m) && r.max.is_none_or(|m| end <= m)
}

/// Every feasible placement: (segment start, segment end, address).
fn feasible(a: &A<'_>, r: &Req, q: usize) -> Vec<(usize, usize, usize)> {
    let rounded = r.size.div_ceil(q) * q;
    let mut out = vec![];
    for s in a.walk(SegmentKinds::FREE) {
        let (lo, hi) = (s.range.base().0, s.range.limit().0);
        let mut x = lo;
        while x < hi {
            if x.checked_add(rounded).is_some_and(|e| e <= hi) && meets(r, q, x, rounded) {
                out.push((lo, hi, x));
            }
            match x.checked_add(q) {
                Some(n) => x = n,
                None => break,
            }
        }
    }
    out
}

fn snapshot(a: &A<'_>) -> Vec<(usize, usize, bool)> {
    a.walk(SegmentKinds::FREE.union(SegmentKinds::ALLOCATED))
        .map(|s| (s.range.base().0, s.range.limit().0, s.held))
        .collect()
}

fn pick_req(rng: &mut Rng, q: usize, top_base: usize, low_base: usize) -> Req {
    let pow = |rng: &mut Rng| q << rng.below(6);
    let align = if rng.below(2) == 0 { 0 } else { pow(rng) };
    let phase =
        if align > q && rng.below(2) == 0 { rng.below((align / q) as u64) as usize * q } else { 0 };
    let size = (1 + rng.below(8) as usize) * q - rng.below(q as u64) as usize;
    let nocross = if rng.below(3) == 0 { (q << 3) << rng.below(3) } else { 0 };
    let near = |rng: &mut Rng| match rng.below(4) {
        0 => usize::MAX - rng.below(4 * q as u64) as usize,
        1 => top_base + rng.below(65) as usize * q,
        2 => low_base + rng.below(80) as usize * q,
        _ => rng.next() as usize,
    };
    let min = (rng.below(3) == 0).then(|| near(rng));
    let max = (rng.below(3) == 0).then(|| near(rng));
    let policy = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit]
        [rng.below(4) as usize];
    Req { size, align, phase, nocross, min, max, policy, top: rng.below(3) == 0 }
}

fn constraints(r: &Req) -> Constraints {
    let mut c = Constraints::new(Size(r.size))
        .align(Size(r.align))
        .phase(Size(r.phase))
        .nocross(Size(r.nocross))
        .policy(r.policy)
        .from_top(r.top);
    if let Some(m) = r.min {
        c = c.min_addr(Addr(m));
    }
    if let Some(m) = r.max {
        c = c.max_addr(Addr(m));
    }
    c
}

fn run(seed: u64, q: usize) {
    let mut tb = vec![0u8; 1 << 18];
    let mut hb = vec![0u8; 1 << 14];
    let mut a =
        Arena::new("x", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    let top_base = usize::MAX - 64 * q + 1 - q; // ends one quantum below 2^64
    let low_base = q.max(0x1000);
    a.add(Addr(low_base), Size(64 * q)).unwrap();
    a.add(Addr(top_base), Size(64 * q)).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut live: Vec<(usize, usize, Option<vmspace::arena::Handle>)> = vec![];
    for step in 0..300 {
        let ctx = format!("seed {seed} q {q} step {step}");
        if rng.below(3) == 0 && !live.is_empty() {
            let k = rng.below(live.len() as u64) as usize;
            let (x, s, h) = live.swap_remove(k);
            match h {
                Some(h) => assert_eq!(a.free_handle(h), Ok(Size(s)), "{ctx}"),
                None if rng.below(2) == 0 && s > q => {
                    // Free the first quantum, keep the rest; then resize it.
                    a.free_part(Addr(x), Size(0), Size(q)).unwrap();
                    let rest = s - q;
                    let shrink = rest.div_ceil(2);
                    a.resize(Addr(x + q), Size(rest), Size(shrink)).unwrap();
                    live.push((x + q, shrink, None));
                }
                None => a.free(Addr(x), Size(s)).unwrap(),
            }
            a.check().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
            continue;
        }
        let r = pick_req(&mut rng, q, top_base, low_base);
        let fits = feasible(&a, &r, q);
        let before = snapshot(&a);
        let by_handle = rng.below(4) == 0;
        let res = if by_handle {
            a.xalloc_handle(&constraints(&r)).map(|h| (h.addr().0, Some(h)))
        } else {
            a.xalloc(&constraints(&r)).map(|x| (x.0, None))
        };
        let rounded = r.size.div_ceil(q) * q;
        match res {
            Ok((x, h)) => {
                let seg = fits.iter().find(|f| f.2 == x);
                assert!(seg.is_some(), "{ctx}: {r:?} placed at {x:#x}, not a feasible place");
                let (lo, hi, _) = *seg.unwrap();
                if r.top {
                    // The highest suitable address of the segment chosen.
                    let best = fits.iter().filter(|f| f.0 == lo).map(|f| f.2).max();
                    assert_eq!(Some(x), best, "{ctx}: {r:?} from the top in [{lo:#x}, {hi:#x})");
                } else if r.policy != Policy::NextFit {
                    let best = fits.iter().filter(|f| f.0 == lo).map(|f| f.2).min();
                    assert_eq!(Some(x), best, "{ctx}: {r:?} lowest in [{lo:#x}, {hi:#x})");
                }
                match (r.policy, r.top) {
                    (Policy::FirstFit, false) => {
                        assert_eq!(x, fits.iter().map(|f| f.2).min().unwrap(), "{ctx}: {r:?}")
                    }
                    (Policy::FirstFit, true) => {
                        assert_eq!(x, fits.iter().map(|f| f.2).max().unwrap(), "{ctx}: {r:?}")
                    }
                    (Policy::BestFit, _) => {
                        let smallest = fits.iter().map(|f| f.1 - f.0).min().unwrap();
                        assert_eq!(hi - lo, smallest, "{ctx}: {r:?} best fit");
                    }
                    _ => {}
                }
                live.push((x, r.size, h));
                let _ = rounded;
            }
            Err(ArenaError::NoSpace { .. }) | Err(ArenaError::OverConstrained(_)) => {
                assert!(
                    fits.is_empty(),
                    "{ctx}: {r:?} refused ({res:?}) but fits at {:x?}",
                    fits.first()
                );
                assert_eq!(snapshot(&a), before, "{ctx}");
            }
            Err(e) => panic!("{ctx}: {r:?}: {e:?}"),
        }
        a.check().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
    }
}

/// Contract check: quantum 16, constraints near 2^64.
#[test]
fn xalloc_matches_brute_force_quantum_16() {
    for seed in 1..=150 {
        run(seed, 16);
    }
}

/// Contract check: quantum 1 (a span ending at usize::MAX - 1).
#[test]
fn xalloc_matches_brute_force_quantum_1() {
    for seed in 1..=150 {
        run(seed, 1);
    }
}

/// Contract check: the largest quantum, 2^27.
#[test]
fn xalloc_matches_brute_force_quantum_2_27() {
    for seed in 1..=150 {
        run(seed, 1 << 27);
    }
}
