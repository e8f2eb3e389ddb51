//! Outside review, round 41: `free_part`, `resize` and handles in a child
//! arena that imports its spans from a parent arena whose span ends one
//! parent quantum below 2^64, with `check()` on both after every step.
//!
//! Contracts relied on:
//! - src/arena/source.rs:8-10: an arena "gives an imported span back as
//!   soon as it is wholly free again" (so no imported span is ever wholly
//!   free between operations, and the parent holds exactly the child's
//!   imported spans).
//! - src/arena/resize.rs:118-121: growing takes room "from the free segment
//!   right after the allocation in the same span"; never from the source
//!   (growth past the imported span is `NoSpace`, nothing changed).
//! - src/arena/resize.rs:26-41: `free_part` semantics, the whole piece is a
//!   free.
//!
//! Result on the code reviewed: holds.

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng41 as Rng;

type Parent<'a> = Arena<SliceStore<'a>, NoSource>;

fn run(seed: u64, pq: usize, cq: usize) {
    let (mut ptb, mut phb) = (vec![0u8; 1 << 18], vec![0u8; 1 << 14]);
    let (mut ctb, mut chb) = (vec![0u8; 1 << 18], vec![0u8; 1 << 14]);
    let mut parent: Parent<'_> =
        Arena::new("p", Size(pq), SliceStore::new(&mut ptb), SliceStore::new(&mut phb), NoSource)
            .unwrap();
    let span = 48 * pq;
    let top = usize::MAX - pq + 1; // 2^64 - pq
    parent.add(Addr(top - span), Size(span)).unwrap();
    let mut child = Arena::new(
        "c",
        Size(cq),
        SliceStore::new(&mut ctb),
        SliceStore::new(&mut chb),
        &mut parent,
    )
    .unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Live allocations: start -> (asked, handle).
    let mut live: BTreeMap<usize, (usize, Option<Handle>)> = BTreeMap::new();
    for step in 0..400 {
        let ctx = format!("seed {seed} pq {pq} cq {cq} step {step}");
        let pick = |rng: &mut Rng, live: &BTreeMap<usize, (usize, Option<Handle>)>| {
            let k = rng.below(live.len() as u64) as usize;
            live.iter().nth(k).map(|(&a, &v)| (a, v))
        };
        match rng.below(8) {
            0..=2 => {
                let s = (1 + rng.below(3 * (pq / cq) as u64) as usize) * cq
                    - rng.below(cq as u64) as usize;
                let p = Policy::ALL[rng.below(4) as usize];
                if rng.below(3) == 0 {
                    if let Ok(h) = child.alloc_handle(Size(s), p) {
                        live.insert(h.addr().0, (s, Some(h)));
                    }
                } else if let Ok(x) = child.alloc(Size(s), p) {
                    live.insert(x.0, (s, None));
                }
            }
            3 | 4 => {
                let Some((x, (s, h))) = pick(&mut rng, &live) else { continue };
                live.remove(&x);
                match h {
                    Some(h) => assert_eq!(child.free_handle(h), Ok(Size(s)), "{ctx}"),
                    None => {
                        // Free it in up to three partial frees, quantum by quantum.
                        let units = s.div_ceil(cq);
                        if units >= 3 {
                            let mid = 1 + rng.below(units as u64 - 2) as usize;
                            child.free_part(Addr(x), Size(mid * cq), Size(cq)).unwrap();
                            child.check().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                            child.free_part(Addr(x), Size(0), Size(mid * cq)).unwrap();
                            let tail = x + (mid + 1) * cq;
                            child.free(Addr(tail), Size(s - (mid + 1) * cq)).unwrap();
                        } else {
                            child.free_part(Addr(x), Size(0), Size(s)).unwrap();
                        }
                    }
                }
            }
            _ => {
                let Some((x, (s, h))) = pick(&mut rng, &live) else { continue };
                if h.is_some() {
                    continue;
                }
                let new = (1 + rng.below(4 * (pq / cq) as u64) as usize) * cq
                    - rng.below(cq as u64) as usize;
                // The free room right after it, inside its span (brute force).
                let segs: Vec<_> = child.walk(SegmentKinds::ALL).collect();
                let i = segs
                    .iter()
                    .position(|g| g.kind == SegmentKind::Allocated && g.range.base().0 == x)
                    .unwrap();
                let end = segs[i].range.limit().0;
                let room = match segs.get(i + 1) {
                    Some(g) if g.kind == SegmentKind::Free => g.range.limit().0,
                    _ => end,
                };
                let want = x.checked_add(new.div_ceil(cq) * cq);
                let res = child.resize(Addr(x), Size(s), Size(new));
                let ok = want.is_some_and(|w| w <= end || w <= room);
                match res {
                    Ok(()) if ok => {
                        live.insert(x, (new, None));
                    }
                    Err(ArenaError::NoSpace { .. }) if !ok => {}
                    r => panic!("{ctx}: resize {x:#x} {s:#x}->{new:#x} (end {end:#x} room {room:#x}): {r:?}"),
                }
            }
        }
        child.check().unwrap_or_else(|e| panic!("{ctx}: child {e:?}"));
        // No imported span wholly free; the parent holds exactly them.
        let segs: Vec<_> = child.walk(SegmentKinds::ALL).collect();
        for (k, g) in segs.iter().enumerate() {
            if g.kind == SegmentKind::Span && g.imported {
                let next = segs.get(k + 1).unwrap();
                assert!(
                    !(next.kind == SegmentKind::Free && next.range == g.range),
                    "{ctx}: imported span {:?} wholly free, not given back",
                    g.range
                );
            }
        }
        let imported = child.sizes().imported;
        let parent_alloc = child.source().sizes().allocated;
        assert_eq!(imported, parent_alloc, "{ctx}");
        child.source().check().unwrap_or_else(|e| panic!("{ctx}: parent {e:?}"));
    }
    for (x, (s, h)) in std::mem::take(&mut live) {
        match h {
            Some(h) => assert_eq!(child.free_handle(h), Ok(Size(s))),
            None => child.free(Addr(x), Size(s)).unwrap(),
        }
    }
    assert_eq!(child.sizes().imported, Size(0));
    assert_eq!(child.source().sizes().allocated, Size(0));
    child.check().unwrap();
}

/// Contract check: parent quantum 64, child 16.
#[test]
fn child_parts_and_resizes_over_a_top_parent() {
    for seed in 1..=60 {
        run(seed, 64, 16);
    }
}

/// Contract check: parent quantum 2^27, child quantum 1.
#[test]
fn child_quantum_1_over_largest_quantum_parent() {
    for seed in 1..=30 {
        run(seed, 1 << 27, 1 << 24);
        run(seed, 16, 1);
    }
}
