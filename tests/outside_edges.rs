//! Written from the documented contracts by a reviewer outside the project,
//! to break them: arithmetic edges of the arena at the top
//! of the address space, checked against a brute-force model.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng;

#[derive(Debug, Clone, Copy)]
struct C {
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    min: Option<usize>,
    max: Option<usize>,
    exact: Option<usize>,
    top: bool,
    policy: Policy,
}

fn valid(c: &C, q: usize, t: usize, seg: (usize, usize)) -> bool {
    let Some(size) = c.size.div_ceil(q).checked_mul(q) else { return false };
    let align = c.align.max(q);
    let Some(end) = t.checked_add(size) else { return false };
    t % q == 0
        && t >= seg.0
        && end <= seg.1
        && c.min.is_none_or(|m| t >= m)
        && c.max.is_none_or(|m| end <= m)
        && c.exact.is_none_or(|x| t == x)
        && t % align == c.phase % align
        && (c.nocross == 0 || t / c.nocross == (end - 1) / c.nocross)
}

fn run(q: usize, span_base: usize, span_size: usize, seed: u64, rounds: usize) {
    let mut rng = Rng(seed | 1);
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("top", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    a.add(Addr(span_base), Size(span_size)).unwrap();
    let span_end = span_base + span_size;
    let mut live: Vec<(Addr, usize)> = Vec::new();
    let mut oks = 0usize;
    let pow = |rng: &mut Rng| -> usize {
        match rng.below(4) {
            0 => 0,
            1 => 1usize << rng.below(64),
            _ => 1usize << rng.below(12),
        }
    };
    for round in 0..rounds {
        if rng.below(3) == 0 && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            let (x, s) = live.swap_remove(i);
            a.free(x, Size(s)).unwrap();
            a.check().unwrap();
            continue;
        }
        let near = |rng: &mut Rng| -> usize {
            match rng.below(5) {
                0 => usize::MAX - rng.below(64) as usize,
                1 => 0,
                _ => span_base
                    .wrapping_add((rng.below(span_size as u64 + 64) as usize).wrapping_sub(32)),
            }
        };
        let align = pow(&mut rng);
        let c = C {
            size: match rng.below(6) {
                0 => usize::MAX - rng.below(4) as usize,
                1 => span_size,
                _ => 1 + rng.below(4 * q as u64 + 40) as usize,
            },
            align,
            phase: if align > 1 && rng.below(2) == 0 {
                (rng.next() as usize % align) / q * q
            } else {
                0
            },
            nocross: pow(&mut rng),
            min: (rng.below(3) == 0).then(|| near(&mut rng)),
            max: (rng.below(3) == 0).then(|| near(&mut rng)),
            exact: (rng.below(5) == 0).then(|| near(&mut rng) / q * q),
            top: rng.below(2) == 0,
            policy: Policy::ALL[rng.below(4) as usize],
        };
        let mut k = Constraints::new(Size(c.size))
            .align(Size(c.align))
            .phase(Size(c.phase))
            .nocross(Size(c.nocross))
            .from_top(c.top)
            .policy(c.policy);
        if let Some(m) = c.min {
            k = k.min_addr(Addr(m));
        }
        if let Some(m) = c.max {
            k = k.max_addr(Addr(m));
        }
        if let Some(x) = c.exact {
            k = k.exact(Addr(x));
        }
        let free: Vec<(usize, usize)> =
            a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect();
        let possible = free.iter().any(|&seg| {
            let mut t = seg.0;
            while t < seg.1 {
                if valid(&c, q, t, seg) {
                    return true;
                }
                t += q;
            }
            false
        });
        let before = a.sizes();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.xalloc(&k)));
        let r = match r {
            Ok(r) => r,
            Err(_) => panic!("xalloc panicked on {c:?} (round {round}, q {q})"),
        };
        a.check().unwrap();
        match r {
            Ok(x) => {
                let seg = free.iter().copied().find(|s| x.0 >= s.0 && x.0 < s.1).unwrap();
                assert!(
                    valid(&c, q, x.0, seg),
                    "xalloc gave {x:?} breaking {c:?} (q {q}, free {free:x?})"
                );
                assert!(x.0 + c.size.div_ceil(q) * q <= span_end);
                live.push((x, c.size));
                oks += 1;
            }
            Err(e) => {
                assert_eq!(a.sizes(), before);
                // A fit existed but xalloc did not find it: only
                // NoSpace could be wrong here (the others are argument errors).
                if possible {
                    // argument errors may be legitimate when the constraints are
                    // inconsistent (e.g. phase>=align is impossible by construction)
                    assert!(
                        !matches!(e, ArenaError::NoSpace { .. }),
                        "NoSpace although {c:?} fits in {free:x?} (q {q})"
                    );
                    panic!("error {e:?} although {c:?} fits in {free:x?} (q {q})");
                }
            }
        }
    }
    assert!(oks > rounds / 20, "only {oks} successes");
    for (x, s) in live {
        a.free(x, Size(s)).unwrap();
    }
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}

#[test]
fn constrained_allocation_at_the_top_of_the_address_space_q1() {
    for seed in 1..40 {
        run(1, usize::MAX - 256, 256, seed, 400);
    }
}

#[test]
fn constrained_allocation_at_the_top_of_the_address_space_q16() {
    for seed in 1..40 {
        run(16, usize::MAX - 15 - 16 * 64, 16 * 64, seed, 400);
    }
}

#[test]
fn constrained_allocation_at_the_bottom_of_the_address_space_q16() {
    for seed in 1..40 {
        run(16, 0, 16 * 64, seed, 400);
    }
}

#[test]
fn constrained_allocation_q_2_27_near_top() {
    let q = 1usize << 27;
    for seed in 1..20 {
        run(q, (usize::MAX - (q - 1)) - 32 * q, 32 * q, seed, 200);
    }
}

#[test]
fn spans_at_the_top_and_zero_sizes() {
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("t", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    assert!(a.add(Addr(usize::MAX), Size(1)).is_err(), "would end past the address space");
    assert!(a.add(Addr(usize::MAX - 1), Size(2)).is_err());
    a.add(Addr(usize::MAX - 1), Size(1)).unwrap();
    assert!(a.add(Addr(5), Size(0)).is_err());
    assert!(a.extend(Addr(usize::MAX - 1), Size(1)).is_err());
    assert!(a.extend(Addr(usize::MAX), Size(1)).is_err());
    a.extend(Addr(usize::MAX - 3), Size(2)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().total, Size(3));
    assert!(a.alloc(Size(0), Policy::InstantFit).is_err());
    assert!(a.alloc(Size(4), Policy::InstantFit).is_err());
    let x = a.xalloc(&Constraints::new(Size(3)).from_top(true)).unwrap();
    assert_eq!(x.0, usize::MAX - 3);
    assert!(a.free(x, Size(0)).is_err());
    assert!(a.free_part(x, Size(0), Size(0)).is_err());
    assert!(a.free_part(x, Size(usize::MAX), Size(1)).is_err());
    assert!(a.free_part(x, Size(1), Size(usize::MAX)).is_err());
    assert!(a.resize(x, Size(3), Size(0)).is_err());
    assert!(a.resize(x, Size(3), Size(usize::MAX)).is_err());
    assert!(a.resize(x, Size(3), Size(4)).is_err());
    a.check().unwrap();
    a.free_part(x, Size(2), Size(1)).unwrap();
    a.check().unwrap();
    a.resize(x, Size(2), Size(3)).unwrap();
    a.check().unwrap();
    a.free_deferred(x, Size(3)).unwrap();
    assert!(a.alloc(Size(1), Policy::FirstFit).is_err());
    assert_eq!(a.flushed(), Size(3));
    a.check().unwrap();
}
