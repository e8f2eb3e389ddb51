//! Round 26 (outside review of the failure-path changes): an arena over a
//! scripted source whose give-backs succeed, are refused, or strand the
//! range, driven through every freeing path (free, free_handle, free_part,
//! resize, free_deferred + flushed, Drop), with `check()` and a model of
//! what the source has handed out after every step.

use std::cell::RefCell;
use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, Policy, SegmentKind, SegmentKinds, SliceStore, Source,
};
use vmspace::{Addr, Range, ShimError, Size};
use vmspace_shim::Op;

const Q: usize = 0x100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Take,
    Refuse,
    Strand,
    Panic,
}

/// Hands out ranges from a bump pointer; give-backs as scripted.
struct Scripted {
    next: usize,
    out: BTreeMap<usize, usize>,
    stranded: BTreeMap<usize, usize>,
    rng: u64,
    /// Per mille of give-backs refused / stranded.
    refuse: u64,
    strand: u64,
    releases: u64,
    verdicts: Vec<(Range, Verdict)>,
    /// Per mille of give-backs that panic (the range is then lost to both).
    panic: u64,
    panics: u64,
}

impl Scripted {
    fn new(seed: u64, refuse: u64, strand: u64) -> Self {
        Scripted {
            next: 0x10_0000,
            out: BTreeMap::new(),
            stranded: BTreeMap::new(),
            rng: seed | 1,
            refuse,
            strand,
            releases: 0,
            verdicts: Vec::new(),
            panic: 0,
            panics: 0,
        }
    }
    fn draw(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

impl Source for Scripted {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let base = (self.next + align.0 - 1) & !(align.0 - 1);
        self.next = base + size.0 + 4 * Q; // a gap: spans never touch
        self.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size).unwrap())
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.releases += 1;
        assert_eq!(
            self.out.get(&range.base().0),
            Some(&range.size().0),
            "released {range}, which is not a range handed out (or handed out otherwise)"
        );
        let d = self.draw() % 1000;
        let v = if self.panic > 0 && self.draw() % 1000 < self.panic {
            Verdict::Panic
        } else if d < self.refuse {
            Verdict::Refuse
        } else if d < self.refuse + self.strand {
            Verdict::Strand
        } else {
            Verdict::Take
        };
        self.verdicts.push((range, v));
        match v {
            Verdict::Take => {
                self.out.remove(&range.base().0);
                Ok(())
            }
            Verdict::Refuse => Err(ArenaError::Backing(ShimError::Injected { op: Op::Unmap })),
            Verdict::Panic => {
                self.out.remove(&range.base().0);
                self.panics += 1;
                panic!("give-back panics (test)");
            }
            Verdict::Strand => {
                self.out.remove(&range.base().0);
                self.stranded.insert(range.base().0, range.size().0);
                Err(ArenaError::Stranded { range, error: ShimError::Injected { op: Op::Unmap } })
            }
        }
    }
}

/// The arena's imported spans must be exactly what the source has out
/// (not taken back, not stranded).
fn agree<'a>(a: &Arena<SliceStore<'a>, &mut Scripted>, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check: {e:?}"));
    let spans: BTreeMap<usize, usize> = a
        .walk(SegmentKinds::SPANS)
        .filter(|s| s.imported)
        .map(|s| (s.range.base().0, s.range.size().0))
        .collect();
    assert_eq!(spans, a.source().out, "{what}: spans != ranges the source has out");
    let imported: usize = spans.values().sum();
    assert_eq!(a.sizes().imported, Size(imported), "{what}");
    assert_eq!(a.span_count(), spans.len(), "{what}");
    let c = a.counters();
    let src: &Scripted = a.source();
    let takes = src.verdicts.iter().filter(|v| v.1 == Verdict::Take).count() as u64;
    assert_eq!(c.exports, takes, "{what}: exports");
    assert_eq!(c.exports + c.export_failures + src.panics, src.releases, "{what}: export failures");
}

#[derive(Clone, Copy, Debug)]
enum Live {
    Addr(Addr, usize),
    Held(Handle),
}

fn step_rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

/// Random operations; every free path can trigger a give-back.
fn run(seed: u64, refuse: u64, strand: u64, steps: usize) {
    run_mtbf(seed, refuse, strand, steps, 0)
}

fn run_mtbf(seed: u64, refuse: u64, strand: u64, steps: usize, mtbf: u32) {
    let mut src = Scripted::new(seed, refuse, strand);
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("r26", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), &mut src)
            .unwrap();
    a.set_mtbf(seed, mtbf);
    let mut live: Vec<Live> = Vec::new();
    let mut deferred = 0usize;
    let mut r = seed;
    let policies = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit];
    for step in 0..steps {
        let what = format!("seed {seed} step {step}");
        let op = step_rng(&mut r) % 10;
        match op {
            0..=3 => {
                let size =
                    Q * (1 + (step_rng(&mut r) % 9) as usize) - (step_rng(&mut r) % 3) as usize;
                let p = policies[(step_rng(&mut r) % 4) as usize];
                if step_rng(&mut r) % 3 == 0 {
                    if let Ok(hd) = a.alloc_handle(Size(size), p) {
                        live.push(Live::Held(hd));
                    }
                } else if step_rng(&mut r) % 4 == 0 {
                    let c = Constraints::new(Size(size)).align(Size(4 * Q)).policy(p);
                    if let Ok(x) = a.xalloc(&c) {
                        live.push(Live::Addr(x, size));
                    }
                } else if let Ok(x) = a.alloc(Size(size), p) {
                    live.push(Live::Addr(x, size));
                }
            }
            4 | 5 if !live.is_empty() => {
                let i = (step_rng(&mut r) as usize) % live.len();
                match live.swap_remove(i) {
                    Live::Addr(x, s) => a.free(x, Size(s)).unwrap(),
                    Live::Held(hd) => {
                        a.free_handle(hd).unwrap();
                    }
                }
            }
            6 if !live.is_empty() => {
                let i = (step_rng(&mut r) as usize) % live.len();
                if let Live::Addr(x, s) = live[i] {
                    // Free the first quantum (a partial free) or resize.
                    if s > Q && step_rng(&mut r) % 2 == 0 {
                        match a.free_part(x, Size(0), Size(Q)) {
                            Ok(()) => live[i] = Live::Addr(Addr(x.0 + Q), s - Q),
                            Err(ArenaError::Injected) => {}
                            Err(e) => panic!("{what}: free_part {e:?}"),
                        }
                    } else {
                        let ns = Q * (1 + (step_rng(&mut r) % 4) as usize);
                        if a.resize(x, Size(s), Size(ns)).is_ok() {
                            live[i] = Live::Addr(x, ns);
                        }
                    }
                }
            }
            7 if !live.is_empty() => {
                let i = (step_rng(&mut r) as usize) % live.len();
                if let Live::Addr(x, s) = live[i] {
                    a.free_deferred(x, Size(s)).unwrap();
                    live.swap_remove(i);
                    deferred += 1;
                }
            }
            8 if deferred > 0 => {
                a.flushed();
                deferred = 0;
            }
            _ => {}
        }
        agree(&a, &what);
        // No live allocation lies outside the source's outstanding ranges.
        for s in a.walk(SegmentKinds::ALLOCATED) {
            assert_eq!(s.kind, SegmentKind::Allocated);
            let inside = a
                .source()
                .out
                .range(..=s.range.base().0)
                .next_back()
                .is_some_and(|(&b, &n)| s.range.limit().0 <= b + n);
            assert!(inside, "{what}: allocation {} outside what the source has out", s.range);
        }
    }
    // Free everything, flush, and the source must have everything back but
    // the refused ranges the arena still lists and the stranded ones.
    for l in live.drain(..) {
        match l {
            Live::Addr(x, s) => a.free(x, Size(s)).unwrap(),
            Live::Held(hd) => {
                a.free_handle(hd).unwrap();
            }
        }
    }
    a.flushed();
    agree(&a, &format!("seed {seed} drained"));
    drop(a);
    // Drop gives back every span still listed; refused ones stay out.
    for (b, _) in src.out.iter() {
        let last = src.verdicts.iter().rev().find(|(r, _)| r.base().0 == *b);
        assert!(
            matches!(last, Some((_, Verdict::Refuse))),
            "seed {seed}: range at {b:#x} never given back (last verdict {last:?})"
        );
    }
}

#[test]
fn scripted_source_model_all_take() {
    for seed in 1..6 {
        run(seed, 0, 0, 1500);
    }
}

#[test]
fn scripted_source_model_refusals_and_strands() {
    for seed in 1..12 {
        run(seed * 7919, 300, 200, 1500);
    }
}

#[test]
fn scripted_source_model_with_mtbf() {
    for seed in 1..8 {
        run_mtbf(seed * 31, 300, 200, 1200, 5);
    }
}

#[test]
fn scripted_source_model_mostly_refused() {
    for seed in 1..6 {
        run(seed * 104729, 900, 50, 1500);
    }
}

/// A refused give-back re-creates the span: its place in the walk, the
/// counters and the free lists are as before; a next-fit rotor that sat on
/// the span keeps working, and a second give-back of the same range is
/// offered again when it empties again.
#[test]
fn a_refused_give_back_keeps_the_span_as_it_was() {
    let mut src = Scripted::new(3, 1000, 0);
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("r26", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), &mut src)
            .unwrap();
    let x = a.alloc(Size(4 * Q), Policy::NextFit).unwrap();
    let y = a.alloc(Size(8 * Q), Policy::NextFit).unwrap(); // second span (first is exact)
    let z = a.alloc(Size(2 * Q), Policy::NextFit).unwrap();
    a.free(y, Size(8 * Q)).unwrap();
    agree(&a, "after refused free of y");
    // y's span is back; z may have been in it or another.
    let spans: Vec<_> = a.walk(SegmentKinds::SPANS).map(|s| s.range).collect();
    assert!(spans.windows(2).all(|w| w[0].limit() <= w[1].base()), "{spans:?}");
    // Next fit allocates again, and the re-created span is found.
    let y2 = a.alloc(Size(8 * Q), Policy::NextFit).unwrap();
    agree(&a, "after next fit");
    a.free(y2, Size(8 * Q)).unwrap();
    agree(&a, "second refused give-back");
    a.free(x, Size(4 * Q)).unwrap();
    a.free(z, Size(2 * Q)).unwrap();
    agree(&a, "all free");
    assert_eq!(a.sizes().allocated, Size(0));
    for p in [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit] {
        let w = a.alloc(Size(Q), p).unwrap();
        assert_eq!(a.source().imported_count(), a.source().out.len());
        a.free(w, Size(Q)).unwrap();
        agree(&a, &format!("{p:?}"));
    }
}

impl Scripted {
    fn imported_count(&self) -> usize {
        self.out.len()
    }
}

/// Two arenas share a scripted source through a RefCell; each one's
/// refused/stranded give-backs must not affect the other.
#[test]
fn shared_source_through_refcell() {
    let src = RefCell::new(Scripted::new(11, 400, 300));
    let (mut t1, mut h1) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let (mut t2, mut h2) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut a =
        Arena::new("a", Size(Q), SliceStore::new(&mut t1), SliceStore::new(&mut h1), &src).unwrap();
    let mut b =
        Arena::new("b", Size(Q), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &src).unwrap();
    let mut r = 5u64;
    let mut la = Vec::new();
    let mut lb = Vec::new();
    for step in 0..800 {
        let sz = Q * (1 + (step_rng(&mut r) % 6) as usize);
        let (ar, l) = if step_rng(&mut r) % 2 == 0 { (&mut a, &mut la) } else { (&mut b, &mut lb) };
        if step_rng(&mut r) % 2 == 0 || l.is_empty() {
            if let Ok(x) = ar.alloc(Size(sz), Policy::InstantFit) {
                l.push((x, sz));
            }
        } else {
            let i = step_rng(&mut r) as usize % l.len();
            let (x, s) = l.swap_remove(i);
            ar.free(x, Size(s)).unwrap();
        }
        a.check().unwrap();
        b.check().unwrap();
        let mut spans: BTreeMap<usize, usize> = BTreeMap::new();
        for ar in [&a, &b] {
            for s in ar.walk(SegmentKinds::SPANS) {
                assert!(spans.insert(s.range.base().0, s.range.size().0).is_none());
            }
        }
        assert_eq!(spans, src.borrow().out, "step {step}");
    }
}

/// Next fit against a brute-force oracle while give-backs are refused
/// (spans re-created, the rotor tag moved off them): every next-fit
/// allocation takes the first place at or after where the last one ended
/// (in address order over the free segments), else wraps to the first
/// place from the lowest address; only when neither exists does it import.
#[test]
fn next_fit_follows_its_rotor_across_refused_give_backs() {
    for seed in 1..10u64 {
        let mut src = Scripted::new(seed, 700, 0);
        let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
        let mut a =
            Arena::new("nf", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), &mut src)
                .unwrap();
        let mut rotor = 0usize;
        let mut live: Vec<(Addr, usize)> = Vec::new();
        let mut r = seed;
        for step in 0..1500 {
            let what = format!("seed {seed} step {step}");
            if live.is_empty() || step_rng(&mut r) % 5 < 3 {
                let size = Q * (1 + (step_rng(&mut r) % 6) as usize);
                if step_rng(&mut r) % 3 == 0 {
                    if let Ok(x) = a.alloc(Size(size), Policy::InstantFit) {
                        live.push((x, size));
                    }
                    agree(&a, &what);
                    continue;
                }
                let free: Vec<Range> = a.walk(SegmentKinds::FREE).map(|s| s.range).collect();
                let lap1 = free.iter().find_map(|f| {
                    let s = f.base().0.max(rotor);
                    (f.limit().0 > rotor && s + size <= f.limit().0).then_some(s)
                });
                let lap2 = || {
                    free.iter().find_map(|f| {
                        (f.base().0 < rotor && f.base().0 + size <= f.limit().0)
                            .then_some(f.base().0)
                    })
                };
                let want = lap1.or_else(lap2);
                let spans = a.span_count();
                let x = a.alloc(Size(size), Policy::NextFit).unwrap();
                match want {
                    Some(w) => {
                        assert_eq!(x.0, w, "{what}: next fit of {size:#x}, rotor {rotor:#x}")
                    }
                    None => assert_eq!(a.span_count(), spans + 1, "{what}: no fit, must import"),
                }
                rotor = x.0 + size;
                live.push((x, size));
            } else {
                let i = step_rng(&mut r) as usize % live.len();
                let (x, s) = live.swap_remove(i);
                a.free(x, Size(s)).unwrap();
            }
            agree(&a, &what);
        }
    }
}

/// Give-backs that panic, on every free path (free, free_handle, flushed):
/// each operation is caught; afterwards the arena checks, and its spans are
/// exactly what the source still has out (a range whose give-back panicked
/// is lost to both, never listed in the arena), and every deferred segment
/// not yet made free is still unflushed and freed by the next flush.
#[test]
fn panicking_give_backs_on_every_free_path() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !msg.contains("(test)") {
            eprintln!("{info}");
        }
    }));
    for seed in 1..10u64 {
        let mut src = Scripted::new(seed * 13, 250, 150);
        src.panic = 250;
        let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
        let mut a =
            Arena::new("pn", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), &mut src)
                .unwrap();
        let mut live: Vec<Live> = Vec::new();
        let mut r = seed;
        for step in 0..1500 {
            let what = format!("seed {seed} step {step}");
            match step_rng(&mut r) % 8 {
                0..=2 => {
                    let size = Q * (1 + (step_rng(&mut r) % 5) as usize);
                    if step_rng(&mut r) % 2 == 0 {
                        if let Ok(hd) = a.alloc_handle(Size(size), Policy::FirstFit) {
                            live.push(Live::Held(hd));
                        }
                    } else if let Ok(x) = a.alloc(Size(size), Policy::InstantFit) {
                        live.push(Live::Addr(x, size));
                    }
                }
                3 | 4 if !live.is_empty() => {
                    let i = step_rng(&mut r) as usize % live.len();
                    let l = live.swap_remove(i);
                    let res = catch_unwind(AssertUnwindSafe(|| match l {
                        Live::Addr(x, s) => a.free(x, Size(s)).map(|_| ()),
                        Live::Held(hd) => a.free_handle(hd).map(|_| ()),
                    }));
                    if let Ok(inner) = res {
                        inner.unwrap();
                    }
                }
                5 if !live.is_empty() => {
                    let i = step_rng(&mut r) as usize % live.len();
                    if let Live::Addr(x, s) = live[i] {
                        a.free_deferred(x, Size(s)).unwrap();
                        live.swap_remove(i);
                    }
                }
                6 => {
                    let before = a.sizes().unflushed;
                    let res = catch_unwind(AssertUnwindSafe(|| a.flushed()));
                    if res.is_err() {
                        assert!(a.sizes().unflushed <= before, "{what}");
                    }
                }
                _ => {}
            }
            agree(&a, &what);
        }
        // Drain: every flush eventually completes.
        let mut tries = 0;
        while a.sizes().unflushed != Size(0) {
            let _ = catch_unwind(AssertUnwindSafe(|| a.flushed()));
            agree(&a, &format!("seed {seed} drain"));
            tries += 1;
            assert!(tries < 1000, "seed {seed}: unflushed never drains");
        }
        for l in live.drain(..) {
            let _ = catch_unwind(AssertUnwindSafe(|| match l {
                Live::Addr(x, s) => a.free(x, Size(s)).map(|_| ()),
                Live::Held(hd) => a.free_handle(hd).map(|_| ()),
            }));
        }
        agree(&a, &format!("seed {seed} end"));
        assert_eq!(a.sizes().allocated, Size(0));
        assert!(a.source().panics > 0);
        a.source_mut().panic = 0; // the drop gives the rest back quietly
    }
    std::panic::set_hook(hook);
}
