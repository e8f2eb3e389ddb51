//! Outside review, round 41: `free_part`, `resize` and handles against a
//! brute-force model (a map of live allocations over spans), at the top of
//! the address space, with quantum 1 and the largest quantum (2^27), and
//! `check()` after every step.
//!
//! Model oracle (src/arena/resize.rs:26-43, 118-138; src/arena/handle.rs:139-146):
//! - `free_part(alloc, off, size)` succeeds iff `alloc` starts a live
//!   by-address allocation and the piece is non-empty, inside the asked
//!   size, starts at a multiple of the quantum and ends at one or at the
//!   asked end; the survivors are `[alloc, alloc+off)` (asked `off`) and the
//!   rest (asked: what was asked beyond the piece).
//! - `resize` grows iff the free run right after the segment reaches the
//!   new rounded end, and fails with `NoSpace` changing nothing otherwise.
//! - every failure leaves the walk unchanged.

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng41 as Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Live {
    end: usize, // segment end (rounded)
    asked: usize,
    handle: Option<Handle>,
}

struct Model {
    q: usize,
    spans: Vec<(usize, usize)>,
    live: BTreeMap<usize, Live>,
}

impl Model {
    fn span_of(&self, a: usize) -> (usize, usize) {
        *self.spans.iter().find(|&&(s, e)| s <= a && a < e).unwrap()
    }
    /// End of the free run starting at `at` (segment end of an allocation).
    fn free_run_end(&self, at: usize, span_end: usize) -> usize {
        match self.live.range(at..).next() {
            Some((&s, _)) if s < span_end => s,
            _ => span_end,
        }
    }
    fn allocated(&self) -> usize {
        self.live.iter().map(|(s, l)| l.end - s).sum()
    }
}

type A<'a> = Arena<SliceStore<'a>, NoSource>;

fn snapshot(a: &A<'_>) -> Vec<(usize, usize, SegmentKind, usize, bool)> {
    a.walk(SegmentKinds::ALL)
        .map(|s| (s.range.base().0, s.range.limit().0, s.kind, s.requested.0, s.held))
        .collect()
}

fn compare(a: &A<'_>, m: &Model, ctx: &str) {
    a.check().unwrap_or_else(|e| panic!("{ctx}: check: {e:?}"));
    let got: Vec<(usize, usize, usize, bool)> = a
        .walk(SegmentKinds::ALLOCATED)
        .map(|s| (s.range.base().0, s.range.limit().0, s.requested.0, s.held))
        .collect();
    let want: Vec<(usize, usize, usize, bool)> =
        m.live.iter().map(|(&s, l)| (s, l.end, l.asked, l.handle.is_some())).collect();
    assert_eq!(got, want, "{ctx}");
    assert_eq!(a.sizes().allocated.0, m.allocated(), "{ctx}");
    let total: usize = m.spans.iter().map(|(s, e)| e - s).sum();
    assert_eq!(a.sizes().free.0, total - m.allocated(), "{ctx}");
    // Free segments: exactly the maximal gaps between allocations in a span.
    let mut gaps = vec![];
    for &(s, e) in &m.spans {
        let mut at = s;
        for (&b, l) in m.live.range(s..e) {
            if b > at {
                gaps.push((at, b));
            }
            at = l.end;
        }
        if e > at {
            gaps.push((at, e));
        }
    }
    let free: Vec<(usize, usize)> =
        a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect();
    assert_eq!(free, gaps, "{ctx}");
}

fn run(seed: u64, q: usize, spans: &[(usize, usize)], steps: usize) {
    let mut tb = vec![0u8; 1 << 20];
    let mut hb = vec![0u8; 1 << 16];
    let mut a =
        Arena::new("m", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    for &(s, e) in spans {
        a.add(Addr(s), Size(e - s)).unwrap();
    }
    let mut m = Model { q, spans: spans.to_vec(), live: BTreeMap::new() };
    let mut r = Rng(seed | 1);
    let mut stale: Vec<Handle> = vec![];
    let pol = |r: &mut Rng| Policy::ALL[r.below(4) as usize];
    // Sizes: mostly a few quanta with a sub-quantum remainder, sometimes huge.
    let size = |r: &mut Rng| -> usize {
        match r.below(20) {
            0 => usize::MAX - r.below(3) as usize,
            1 => usize::MAX - q + 1 + r.below(q as u64) as usize,
            _ => {
                let n = 1 + r.below(6) as usize;
                (n * q).saturating_sub(r.below(q as u64) as usize).max(1)
            }
        }
    };
    for step in 0..steps {
        let ctx = format!("seed {seed} q {q} step {step}");
        let before = snapshot(&a);
        let op = r.below(10);
        let pick = |r: &mut Rng, m: &Model| -> Option<(usize, Live)> {
            if m.live.is_empty() {
                return None;
            }
            let k = r.below(m.live.len() as u64) as usize;
            m.live.iter().nth(k).map(|(&s, &l)| (s, l))
        };
        match op {
            0 | 1 => {
                let s = size(&mut r);
                let p = pol(&mut r);
                let by_handle = r.below(3) == 0;
                let res = if by_handle {
                    a.alloc_handle(Size(s), p).map(|h| (h.addr().0, Some(h)))
                } else {
                    a.alloc(Size(s), p).map(|x| (x.0, None))
                };
                match res {
                    Ok((x, h)) => {
                        let rounded = s.div_ceil(q) * q;
                        let (_, se) = m.span_of(x);
                        assert!(x % q == 0 && x + rounded <= se, "{ctx}: {x:#x}+{s:#x}");
                        assert!(m.free_run_end(x, se) >= x + rounded, "{ctx}: overlaps");
                        assert!(m.live.range(..x).next_back().is_none_or(|(_, l)| l.end <= x));
                        m.live.insert(x, Live { end: x + rounded, asked: s, handle: h });
                    }
                    Err(e) => {
                        assert_eq!(snapshot(&a), before, "{ctx}: failed alloc {e:?} changed");
                    }
                }
            }
            2 => {
                // xalloc at the very top: from_top with a window.
                let s = (1 + r.below(3) as usize) * q;
                let c = Constraints::new(Size(s))
                    .from_top(true)
                    .policy(Policy::FirstFit)
                    .align(Size(q << r.below(3)));
                if let Ok(x) = a.xalloc(&c) {
                    m.live.insert(x.0, Live { end: x.0 + s, asked: s, handle: None });
                }
            }
            3 | 4 => {
                let Some((x, l)) = pick(&mut r, &m) else { continue };
                let asked_end = x + l.asked;
                let off = match r.below(4) {
                    0 => 0,
                    1 => r.below(l.asked as u64) as usize / q * q,
                    2 => r.below(l.asked as u64 + 2) as usize,
                    _ => usize::MAX - r.below(2) as usize,
                };
                let sz = match r.below(4) {
                    0 => l.asked.saturating_sub(off),
                    1 => (1 + r.below(3) as usize) * q,
                    2 => r.below(l.asked as u64 + 2) as usize,
                    _ => usize::MAX - r.below(2) as usize,
                };
                let valid = l.handle.is_none()
                    && x.checked_add(off).and_then(|pa| pa.checked_add(sz)).is_some_and(|pb| {
                        let pa = x + off;
                        pa < pb
                            && pb <= asked_end
                            && pa % q == 0
                            && (pb == asked_end || pb % q == 0)
                    });
                let res = a.free_part(Addr(x), Size(off), Size(sz));
                assert_eq!(
                    res.is_ok(),
                    valid,
                    "{ctx}: free_part {x:#x} {off:#x} {sz:#x} {l:?}: {res:?}"
                );
                if valid {
                    let pa = x + off;
                    let pb = pa + sz;
                    m.live.remove(&x);
                    if pa > x {
                        m.live.insert(x, Live { end: pa, asked: off, handle: None });
                    }
                    if pb < asked_end {
                        m.live.insert(pb, Live { end: l.end, asked: asked_end - pb, handle: None });
                    }
                } else {
                    assert!(matches!(res, Err(ArenaError::BadFree { .. })), "{ctx}: {res:?}");
                    assert_eq!(snapshot(&a), before, "{ctx}: bad free_part changed");
                }
            }
            5 | 6 => {
                let Some((x, l)) = pick(&mut r, &m) else { continue };
                let new = size(&mut r);
                let res = a.resize(Addr(x), Size(l.asked), Size(new));
                if l.handle.is_some() {
                    assert!(matches!(res, Err(ArenaError::BadFree { .. })), "{ctx}: {res:?}");
                    assert_eq!(snapshot(&a), before);
                    continue;
                }
                let (_, se) = m.span_of(x);
                let rounded = new.checked_next_multiple_of(q);
                let new_end = rounded.and_then(|n| x.checked_add(n));
                let fits = new_end.is_some_and(|ne| ne <= l.end || ne <= m.free_run_end(l.end, se));
                match (res, rounded, fits) {
                    (Ok(()), _, true) => {
                        m.live.insert(x, Live { end: new_end.unwrap(), asked: new, handle: None });
                    }
                    (Err(ArenaError::Overflow), None, _) => {
                        assert_eq!(snapshot(&a), before, "{ctx}")
                    }
                    (Err(ArenaError::NoSpace { size }), Some(_), false) => {
                        assert_eq!(size, new, "{ctx}");
                        assert_eq!(snapshot(&a), before, "{ctx}")
                    }
                    (res, rounded, fits) => {
                        panic!("{ctx}: resize {x:#x} {l:?} -> {new:#x}: {res:?} rounded {rounded:?} fits {fits}")
                    }
                }
            }
            7 | 8 => {
                let Some((x, l)) = pick(&mut r, &m) else { continue };
                if let Some(h) = l.handle {
                    assert_eq!(a.free_handle(h), Ok(Size(l.asked)), "{ctx}");
                    stale.push(h);
                } else {
                    a.free(Addr(x), Size(l.asked)).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                }
                m.live.remove(&x);
            }
            _ => {
                // A stale handle: refused unless its tag is now a live held
                // allocation at the same address (handle.rs:13-17).
                let Some(&h) = stale.get(r.below(stale.len() as u64 + 1) as usize) else {
                    continue;
                };
                let live_same =
                    m.live.get(&h.addr().0).and_then(|l| l.handle).is_some_and(|lh| lh == h);
                let res = a.free_handle(h);
                if live_same {
                    let l = m.live.remove(&h.addr().0).unwrap();
                    assert_eq!(res, Ok(Size(l.asked)), "{ctx}");
                } else {
                    assert!(
                        matches!(res, Err(ArenaError::BadHandle { .. })),
                        "{ctx}: stale {h:?}: {res:?}"
                    );
                    assert_eq!(snapshot(&a), before, "{ctx}");
                }
            }
        }
        compare(&a, &m, &ctx);
    }
    let _ = m.q;
}

/// Contract check (held on the code reviewed): quantum 1, a span ending at
/// usize::MAX (2^64 - 1, one quantum below 2^64) and one at 0.
#[test]
fn model_quantum_1_top_of_address_space() {
    for seed in 1..=40 {
        run(seed, 1, &[(0, 64), (usize::MAX - 96, usize::MAX)], 400);
    }
}

/// Contract check: quantum 2^27 (the largest, mod.rs:192), a span ending
/// one quantum below 2^64.
#[test]
fn model_largest_quantum_top_of_address_space() {
    let q = 1usize << 27;
    for seed in 1..=40 {
        run(seed, q, &[(q, 9 * q), (usize::MAX - 24 * q + 1, usize::MAX - q + 1)], 400);
    }
}

/// Contract check: quantum 16, two adjacent-but-separate spans (a resize
/// must not grow across the span boundary, resize.rs:121-124).
#[test]
fn model_adjacent_spans_do_not_merge_for_resize() {
    for seed in 1..=40 {
        run(
            seed,
            16,
            &[(0x1000, 0x1100), (0x1100, 0x1200), (usize::MAX - 0x20f, usize::MAX - 0xf)],
            400,
        );
    }
}
