//! Outside review, round 44: `KeepFree` (src/sources/keep.rs) against a
//! model, over a strict mock source below that panics at random (before or
//! after changing its books) at every call.
//!
//! Held (all pass): the oracle below, for 400 seeds of 300 steps, N in
//! {1, 2, 3}, over every path but `refused` (see outside_r44_keep_refused.rs):
//! - every range handed out is allocated in the source below and overlaps
//!   no other range held by a user or kept (keep.rs:38-40: "it adds no way to
//!   hand a range out twice");
//! - a give-back of a range no user holds (stale, partial, merged) is
//!   refused: the adapter keeps only what it can vouch for (keep.rs:34-41);
//! - `check()` is `Ok` after every step, panics included (keep.rs:64-66:
//!   "a span leaves this source's books before `S` sees it");
//! - every kept span is allocated below (never both kept and taken back);
//! - counts: `imported + reused` == ranges handed out (no panic yet).

use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace::arena::{ArenaError, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const BASE: usize = 1 << 20;
const PAGES: usize = 24;

fn rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

/// First-fit over `PAGES` pages; refuses any give-back that is not exactly
/// a range it handed out; panics on the call numbered `panic_at` (before
/// or after changing its books, by `after`).
struct Strict {
    allocated: Vec<Range>,
    calls: u64,
    panic_at: u64,
    after: bool,
}

impl Strict {
    fn tick(&mut self, phase_after: bool) {
        if phase_after == self.after && self.calls == self.panic_at {
            panic!("injected");
        }
    }
    fn free_at(&self, base: usize, size: usize) -> bool {
        let r = Range::from_size(Addr(base), Size(size)).unwrap();
        base + size <= BASE + PAGES * Q && !self.allocated.iter().any(|a| a.overlaps(&r))
    }
    fn take_back(&mut self, range: Range) -> Result<(), ArenaError> {
        self.calls += 1;
        self.tick(false);
        let Some(i) = self.allocated.iter().position(|a| *a == range) else {
            return Err(ArenaError::BadFree {
                addr: range.base(),
                size: range.size(),
                allocated: None,
            });
        };
        self.allocated.swap_remove(i);
        self.tick(true);
        Ok(())
    }
}

impl Source for Strict {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.calls += 1;
        self.tick(false);
        let mut b = BASE;
        while b + size.0 <= BASE + PAGES * Q {
            if b % align.0 == 0 && self.free_at(b, size.0) {
                let r = Range::from_size(Addr(b), size).unwrap();
                self.allocated.push(r);
                self.tick(true);
                return Ok(r);
            }
            b += Q;
        }
        Err(ArenaError::NoSpace { size: size.0 })
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.take_back(range)
    }
    fn release_unflushed(&mut self, range: Range) -> Result<(), ArenaError> {
        self.take_back(range)
    }
}

/// Runs one sequence; returns (reused, panicked, bogus give-backs tried).
fn run<const N: usize>(seed: u64) -> (u64, bool, u64) {
    let mut r = seed;
    let strict = Strict {
        allocated: Vec::new(),
        calls: 0,
        panic_at: rng(&mut r) % 400,
        after: rng(&mut r) % 2 == 0,
    };
    let mut k = KeepFree::<_, N>::new(strict, Size(Q));
    let mut held: Vec<Range> = Vec::new();
    let mut history: Vec<Range> = Vec::new();
    let mut handed = 0u64;
    let mut panicked = false;
    let mut bogus = 0u64;
    for step in 0..300 {
        let what = format!("seed {seed} N {N} step {step}");
        let op = rng(&mut r) % 10;
        let out = catch_unwind(AssertUnwindSafe(|| -> Option<Range> {
            match op {
                0..=3 => {
                    let size = Size(Q * (1 + (rng(&mut r) % 3) as usize));
                    let align = Size(Q << (rng(&mut r) % 2));
                    k.import(size, align).ok()
                }
                4..=6 if !held.is_empty() => {
                    let i = rng(&mut r) as usize % held.len();
                    let x = held.swap_remove(i);
                    if op == 6 && rng(&mut r) % 3 == 0 {
                        let _ = k.release_unflushed(x);
                    } else {
                        k.release(x).unwrap_or_else(|e| panic!("{what}: {x}: {e:?}"));
                    }
                    None
                }
                7 | 8 if !history.is_empty() && !panicked => {
                    // A bogus give-back: a stale range, part of one, or two merged.
                    let a = history[rng(&mut r) as usize % history.len()];
                    let b = history[rng(&mut r) as usize % history.len()];
                    let x = match rng(&mut r) % 3 {
                        0 => a,
                        1 => Range::from_size(a.base(), Size(Q)).unwrap(),
                        _ => Range::new(a.base().min(b.base()), a.limit().max(b.limit()))
                            .unwrap_or(a),
                    };
                    if x.is_empty() || held.iter().any(|h| h.overlaps(&x)) {
                        return None;
                    }
                    bogus += 1;
                    let got =
                        if rng(&mut r) % 2 == 0 { k.release(x) } else { k.release_unflushed(x) };
                    assert!(got.is_err(), "{what}: bogus give-back of {x} accepted");
                    None
                }
                7 | 8 => None,
                _ => {
                    k.trim();
                    None
                }
            }
        }));
        match out {
            Ok(Some(x)) => {
                handed += 1;
                assert!(
                    !held.iter().chain(k.kept()).any(|h| h.overlaps(&x)),
                    "{what}: {x} handed out twice"
                );
                assert!(k.inner().allocated.contains(&x), "{what}: {x} not allocated below");
                held.push(x);
                history.push(x);
            }
            Ok(None) => {}
            Err(p) => {
                // Only the injected panic; the span in flight is lost (a
                // trim's too), so bogus give-backs stop (a lost range may be
                // allocated below with no holder).
                if p.downcast_ref::<&str>() != Some(&"injected") {
                    std::panic::resume_unwind(p);
                }
                panicked = true;
                k.inner_mut().panic_at = u64::MAX;
            }
        }
        k.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
        for x in k.kept() {
            assert!(k.inner().allocated.contains(x), "{what}: kept {x} taken back below");
        }
        let c = k.counts();
        if !panicked {
            assert_eq!(c.imported + c.reused, handed, "{what}: {c:?}");
        }
    }
    k.inner_mut().panic_at = u64::MAX; // drop trims: no panic there
    (k.counts().reused, panicked, bogus)
}

#[test]
fn holds_model_with_panics_below() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"injected") {
            hook(info)
        }
    }));
    let mut total = (0, 0, 0);
    for seed in 0..400 {
        for (reused, panicked, bogus) in [run::<1>(seed), run::<2>(seed), run::<3>(seed)] {
            total = (total.0 + reused, total.1 + panicked as u64, total.2 + bogus);
        }
    }
    assert!(total.0 > 1000 && total.1 > 300 && total.2 > 1000, "coverage {total:?}");
}
