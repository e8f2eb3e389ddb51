//! Outside review, round 46: random operations on an arena whose source
//! panics at random calls (caught), against a model: after each step
//! `check()`, sizes, counters and walks agree with the model and with what
//! the source says it handed out; no range is live twice, none is given
//! back twice or while live.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKind, SegmentKinds, SliceStore, Source};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

mod outside_common;
use outside_common::Rng;

#[derive(Default)]
struct St {
    held: BTreeSet<(usize, usize)>,
    next: usize,
    panic_one_in: u64,
    rng: u64,
    imports_ok: u64,
    releases_returned: u64,
    violations: Vec<String>,
    panics: u64,
}

#[derive(Clone)]
struct Src(Rc<RefCell<St>>);

impl Src {
    fn maybe_panic(&self, what: &str) {
        let mut s = self.0.borrow_mut();
        if s.panic_one_in == 0 {
            return;
        }
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        if s.rng % s.panic_one_in == 0 {
            s.panics += 1;
            drop(s);
            panic!("source panics in {what}");
        }
    }
}

impl Source for Src {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.maybe_panic("import");
        let mut s = self.0.borrow_mut();
        let base = (s.next + align.0 - 1) & !(align.0 - 1);
        s.next = base + size.0 + Q; // gaps: no coalescing across spans anyway
        s.held.insert((base, size.0));
        s.imports_ok += 1;
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, r: Range) -> Result<(), ArenaError> {
        {
            let mut s = self.0.borrow_mut();
            if !s.held.remove(&(r.base().0, r.size().0)) {
                s.violations.push(format!("release of {r} not held"));
            }
        }
        // Taken back, then the panic (the arena took it off its books first).
        self.maybe_panic("release");
        self.0.borrow_mut().releases_returned += 1;
        Ok(())
    }
    fn release_unflushed(&mut self, r: Range) -> Result<(), ArenaError> {
        let mut s = self.0.borrow_mut();
        if !s.held.remove(&(r.base().0, r.size().0)) {
            s.violations.push(format!("release_unflushed of {r} not held"));
        }
        Ok(())
    }
}

fn verify(
    a: &Arena<SliceStore<'_>, Src>,
    live: &BTreeMap<usize, usize>,
    unfl: &BTreeMap<usize, usize>,
    step: usize,
) {
    a.check().unwrap_or_else(|e| panic!("step {step}: check: {e:?}"));
    let st = a.source().0.borrow();
    assert!(st.violations.is_empty(), "step {step}: {:?}", st.violations);
    let mut alloc = BTreeMap::new();
    let mut spans = BTreeSet::new();
    let mut unflushed = BTreeMap::new();
    for seg in a.walk(SegmentKinds::ALL) {
        match seg.kind {
            SegmentKind::Allocated => {
                alloc.insert(seg.range.base().0, seg.requested.0);
            }
            SegmentKind::Unflushed => {
                unflushed.insert(seg.range.base().0, seg.range.size().0);
            }
            SegmentKind::Span => {
                assert!(seg.imported);
                spans.insert((seg.range.base().0, seg.range.size().0));
            }
            _ => {}
        }
    }
    assert_eq!(&alloc, live, "step {step}: allocated segments");
    assert_eq!(&unflushed, unfl, "step {step}: unflushed segments");
    assert_eq!(spans, st.held, "step {step}: the arena's spans are what the source holds for it");
    let sz = a.sizes();
    assert_eq!(sz.allocated.0, live.values().sum::<usize>(), "step {step}");
    assert_eq!(sz.unflushed.0, unfl.values().sum::<usize>(), "step {step}");
    assert_eq!(sz.imported.0, spans.iter().map(|s| s.1).sum::<usize>(), "step {step}");
    let c = a.counters();
    assert_eq!(c.imports, st.imports_ok, "step {step}: imports counted");
    assert_eq!(c.exports, st.releases_returned, "step {step}: exports counted");
}

fn run(seed: u64, steps: usize) {
    let src = Src(Rc::new(RefCell::new(St {
        next: 1 << 24,
        rng: seed | 1,
        panic_one_in: 5,
        ..Default::default()
    })));
    let st = src.0.clone();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("m", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), src).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut live: BTreeMap<usize, usize> = BTreeMap::new();
    let mut unfl: BTreeMap<usize, usize> = BTreeMap::new();
    for step in 0..steps {
        let op = rng.below(10);
        let pick = |rng: &mut Rng, m: &BTreeMap<usize, usize>| {
            if m.is_empty() {
                return None;
            }
            let i = rng.below(m.len() as u64) as usize;
            m.iter().nth(i).map(|(a, s)| (*a, *s))
        };
        match op {
            0..=3 => {
                let size = 16 * (1 + rng.below(3 * Q as u64 / 16)) as usize;
                let r = catch_unwind(AssertUnwindSafe(|| a.alloc(Size(size), Policy::InstantFit)));
                if let Ok(Ok(x)) = r {
                    for (&b, &s) in live.range(..x.0 + size).rev().take(1) {
                        assert!(b + s <= x.0, "step {step}: {x:?} overlaps live {b:#x}+{s:#x}");
                    }
                    assert!(!unfl.keys().any(|&b| b < x.0 + size && x.0 < b + unfl[&b]));
                    live.insert(x.0, size);
                }
            }
            4 | 5 => {
                if let Some((b, s)) = pick(&mut rng, &live) {
                    let r = catch_unwind(AssertUnwindSafe(|| a.free(Addr(b), Size(s))));
                    if let Ok(r) = r {
                        r.unwrap()
                    }
                    live.remove(&b);
                }
            }
            6 => {
                if let Some((b, s)) = pick(&mut rng, &live) {
                    a.free_deferred(Addr(b), Size(s)).unwrap();
                    live.remove(&b);
                    unfl.insert(b, (s + 15) & !15);
                }
            }
            7 => {
                let _ = catch_unwind(AssertUnwindSafe(|| a.flushed()));
                // Whatever was listed when the panic came is still unflushed.
                unfl.retain(|b, _| a.walk(SegmentKinds::UNFLUSHED).any(|s| s.range.base().0 == *b));
            }
            8 => {
                if let Some((b, s)) = pick(&mut rng, &live) {
                    if s >= 32 {
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            a.free_part(Addr(b), Size(0), Size(16))
                        }));
                        match r {
                            Ok(Ok(())) | Err(_) => {
                                live.remove(&b);
                                live.insert(b + 16, s - 16);
                            }
                            Ok(Err(_)) => {}
                        }
                    }
                }
            }
            _ => {
                if let Some((b, s)) = pick(&mut rng, &live) {
                    let ns = if rng.below(2) == 0 { s + 16 } else { s.max(32) - 16 };
                    let r = catch_unwind(AssertUnwindSafe(|| a.resize(Addr(b), Size(s), Size(ns))));
                    if let Ok(Ok(())) = r {
                        live.insert(b, ns);
                    }
                }
            }
        }
        verify(&a, &live, &unfl, step);
    }
    // Calm source: free everything, flush, one import to end any
    // suppression, free it: nothing imported stays.
    st.borrow_mut().panic_one_in = 0;
    for (b, s) in std::mem::take(&mut live) {
        a.free(Addr(b), Size(s)).unwrap();
    }
    a.flushed();
    unfl.clear();
    let x = a.alloc(Size(64 * Q), Policy::InstantFit).unwrap();
    a.free(x, Size(64 * Q)).unwrap();
    verify(&a, &live, &unfl, steps);
    assert!(st.borrow().panics > 0);
    drop(a);
    let s = st.borrow();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(s.held.is_empty(), "the drop gave everything back: {:?}", s.held);
}

#[test]
fn random_ops_with_a_panicking_source_stay_consistent() {
    std::panic::set_hook(Box::new(|i| {
        let m = i.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !m.starts_with("source panics") {
            eprintln!("{i}");
        }
    }));
    for seed in 1..=40u64 {
        run(seed, 400);
    }
}
