//! Outside review (round 25): each policy's documented choice, checked
//! against a brute-force model over the free segments the walk reports;
//! and imports from a source (rounding, give-backs, refusals, drop).

use std::cell::RefCell;

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore, Source,
};
use vmspace::{Addr, Range, Size};

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
struct Req {
    size: usize, // rounded
    align: usize,
    phase: usize,
    nocross: usize,
    lo: usize,
    hi: usize,
}

impl Req {
    fn ok(&self, t: usize) -> bool {
        t >= self.lo
            && t + self.size <= self.hi
            && t % self.align == self.phase
            && (self.nocross == 0 || t / self.nocross == (t + self.size - 1) / self.nocross)
    }
    /// Every placement in [s, e), lowest first.
    fn fits(&self, s: usize, e: usize) -> Vec<usize> {
        let mut v = vec![];
        let mut t = s.div_ceil(self.align) * self.align + self.phase;
        if t >= self.align && t - self.align >= s {
            t -= self.align;
        }
        while t + self.size <= e {
            if t >= s && self.ok(t) {
                v.push(t);
            }
            t += self.align;
        }
        v
    }
}

#[test]
fn policies_choose_what_their_docs_say() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let q = 16usize;
    let (mut tb, mut hb) = (vec![0u64; 1 << 14], vec![0u64; 1 << 12]);
    let mut a = Arena::new(
        "m",
        Size(q),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        NoSource,
    )
    .unwrap();
    a.add(Addr(0x10000), Size(0x4000)).unwrap();
    a.add(Addr(0x20000), Size(0x4000)).unwrap();
    let mut live: Vec<(Addr, Size)> = vec![];
    let mut checked = 0;
    for step in 0..4000 {
        if rng.below(5) < 2 && !live.is_empty() {
            let k = rng.below(live.len() as u64) as usize;
            let (x, s) = live.swap_remove(k);
            a.free(x, s).unwrap();
            continue;
        }
        let asked = 1 + rng.below(0x300) as usize;
        let size = asked.div_ceil(q) * q;
        let align = (1usize << rng.below(10)).max(q);
        let phase =
            if rng.below(3) == 0 { (rng.below(align as u64) as usize) & !(q - 1) } else { 0 };
        let nocross = if rng.below(4) == 0 { 1usize << (10 + rng.below(3)) } else { 0 };
        if nocross != 0 && phase % nocross + size > nocross {
            continue;
        }
        let (lo, hi) = if rng.below(4) == 0 {
            let lo = 0x10000 + rng.below(0x14000) as usize;
            (lo, lo + 0x800 + rng.below(0x8000) as usize)
        } else {
            (0, usize::MAX)
        };
        let policy = Policy::ALL[rng.below(3) as usize]; // not NextFit
        let top = rng.below(2) == 0;
        let req = Req { size, align, phase, nocross, lo, hi };
        let mut c = Constraints::new(Size(asked))
            .align(Size(align))
            .phase(Size(phase))
            .policy(policy)
            .from_top(top);
        if nocross != 0 {
            c = c.nocross(Size(nocross));
        }
        if lo != 0 {
            c = c.min_addr(Addr(lo)).max_addr(Addr(hi));
        }
        // The model: every free segment's placements.
        let free: Vec<(usize, usize)> =
            a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect();
        let fitting: Vec<(usize, usize, Vec<usize>)> = free
            .iter()
            .map(|&(s, e)| (s, e, req.fits(s, e)))
            .filter(|(_, _, f)| !f.is_empty())
            .collect();
        let r = a.xalloc(&c);
        if fitting.is_empty() {
            assert!(
                matches!(r, Err(ArenaError::NoSpace { .. }) | Err(ArenaError::OverConstrained(_))),
                "step {step}: {c:?}: model finds nothing, arena gave {r:?}"
            );
            continue;
        }
        let x = match r {
            Ok(x) => x.0,
            Err(e) => panic!("step {step}: {c:?} ({req:?}): model fits {fitting:?}, arena: {e:?}"),
        };
        checked += 1;
        let seg = fitting.iter().find(|(s, e, _)| *s <= x && x < *e);
        let Some((s, e, fits)) = seg else {
            panic!("step {step}: {c:?}: {x:#x} not in a fitting free segment");
        };
        assert!(req.ok(x), "step {step}: {c:?}: {x:#x} breaks the constraints");
        // Placement within the chosen segment: lowest, or highest from the top.
        let want = if top { *fits.last().unwrap() } else { fits[0] };
        assert_eq!(x, want, "step {step}: {policy:?} top={top} {c:?} in [{s:#x}, {e:#x})");
        match policy {
            Policy::FirstFit => {
                let seg_want = if top { fitting.last().unwrap() } else { &fitting[0] };
                assert_eq!(
                    (*s, *e),
                    (seg_want.0, seg_want.1),
                    "step {step}: first fit, top={top}, {c:?}"
                );
            }
            Policy::BestFit => {
                let smallest = fitting.iter().map(|(s, e, _)| e - s).min().unwrap();
                assert_eq!(e - s, smallest, "step {step}: best fit, {c:?}");
            }
            _ => {}
        }
        live.push((Addr(x), Size(asked)));
        if step % 200 == 0 {
            a.check().unwrap();
        }
    }
    assert!(checked > 1000, "{checked}");
    for (x, s) in live {
        a.free(x, s).unwrap();
    }
    a.check().unwrap();
}

// ---------------------------------------------------------------- sources

/// A source handing out ranges from a counter, recording give-backs,
/// optionally refusing them, optionally ignoring the alignment.
#[derive(Default)]
struct Rec {
    quantum: usize,
    next: usize,
    refuse: bool,
    unaligned: bool,
    asked: Vec<(usize, usize)>,
    out: Vec<Range>,
    back: Vec<Range>,
    refused: Vec<Range>,
}

impl Source for Rec {
    fn quantum(&self) -> Size {
        Size(self.quantum)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.asked.push((size.0, align.0));
        let al = if self.unaligned { self.quantum } else { align.0 };
        // Deliberately only quantum-aligned past an aligned base when unaligned.
        let mut base = self.next.div_ceil(al) * al;
        if self.unaligned && base % (2 * self.quantum) == 0 {
            base += self.quantum;
        }
        self.next = base + size.0 + 0x10000;
        let r = Range::from_size(Addr(base), size)?;
        self.out.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        if self.refuse {
            return Err(ArenaError::SourceBusy);
        }
        self.back.push(range);
        Ok(())
    }
    fn imports_aligned(&self) -> bool {
        !self.unaligned
    }
    fn refused(&mut self, range: Range) {
        self.refused.push(range);
    }
}

#[test]
fn imports_round_to_the_source_quantum_and_go_back_when_free() {
    let src = RefCell::new(Rec { quantum: 0x1000, next: 0x100000, ..Default::default() });
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "i",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &src,
    )
    .unwrap();
    let x = a.alloc(Size(100), Policy::InstantFit).unwrap();
    assert_eq!(src.borrow().asked, [(0x1000, 0x1000)]);
    assert_eq!(a.sizes().imported, Size(0x1000));
    assert_eq!(a.sizes().total, Size(0x1000));
    let c = Constraints::new(Size(0x20)).align(Size(0x4000)).phase(Size(0x30));
    let y = a.xalloc(&c).unwrap();
    assert_eq!(y.0 % 0x4000, 0x30);
    let c2 = Constraints::new(Size(0x800)).nocross(Size(0x800));
    let z = a.xalloc(&c2).unwrap();
    assert_eq!(z.0 / 0x800, z.0.div_ceil(0x800));
    a.check().unwrap();
    for (p, s) in [(x, 100), (y, 0x20), (z, 0x800)] {
        a.free(p, Size(s)).unwrap();
    }
    assert_eq!(a.sizes().total, Size(0));
    assert_eq!(a.span_count(), 0);
    let s = src.borrow();
    assert_eq!(s.back.len(), s.out.len());
    assert_eq!(a.counters().imports, a.counters().exports);
}

/// A source that does not align: the arena asks for `align - quantum` more
/// and places the request inside, for align, phase and nocross.
#[test]
fn an_unaligned_source_still_serves_constrained_requests() {
    let src =
        RefCell::new(Rec { quantum: 0x100, next: 0x100000, unaligned: true, ..Default::default() });
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "u",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &src,
    )
    .unwrap();
    let mut rng = Rng(77);
    let mut live = vec![];
    for _ in 0..300 {
        let size = 1 + rng.below(0x400) as usize;
        let align = 1usize << (4 + rng.below(10));
        let phase = (rng.below(align as u64) as usize) & !15;
        let nocross = if rng.below(2) == 0 { 1usize << (11 + rng.below(4)) } else { 0 };
        let mut c = Constraints::new(Size(size)).align(Size(align)).phase(Size(phase));
        if nocross != 0 {
            c = c.nocross(Size(nocross));
        }
        match a.xalloc(&c) {
            Ok(x) => {
                let rs = size.div_ceil(16) * 16;
                assert_eq!(x.0 % align, phase, "{c:?}");
                if let Some(first) = x.0.checked_div(nocross) {
                    assert_eq!(first, (x.0 + rs - 1) / nocross, "{c:?}");
                }
                live.push((x, size));
            }
            Err(ArenaError::OverConstrained(_)) => {}
            Err(e) => panic!("{c:?}: {e:?}"),
        }
    }
    a.check().unwrap();
    for (x, s) in live {
        a.free(x, Size(s)).unwrap();
    }
    assert_eq!(a.sizes().total, Size(0));
    a.check().unwrap();
}

/// free: "if the source refuses, the span stays, free, and the free still
/// succeeds" (counted in export_failures).
#[test]
fn a_refused_give_back_keeps_the_span() {
    let src =
        RefCell::new(Rec { quantum: 0x1000, next: 0x100000, refuse: true, ..Default::default() });
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "r",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &src,
    )
    .unwrap();
    let x = a.alloc(Size(0x1000), Policy::InstantFit).unwrap();
    a.free(x, Size(0x1000)).unwrap();
    assert_eq!(a.counters().export_failures, 1);
    assert_eq!(a.span_count(), 1);
    assert_eq!(a.sizes().free, Size(0x1000));
    a.check().unwrap();
    // The kept span serves the next allocation without an import.
    let y = a.alloc(Size(0x1000), Policy::InstantFit).unwrap();
    assert_eq!(y, x);
    assert_eq!(a.counters().imports, 1);
    a.free(y, Size(0x1000)).unwrap();
    a.check().unwrap();
}

/// Drop: "give every imported span back to the source", live allocations
/// reported to the leak hook with their requested size.
#[test]
fn drop_gives_imported_spans_back() {
    use std::sync::Mutex;
    static LEAKS: Mutex<Vec<Range>> = Mutex::new(Vec::new());
    fn hook(_: &'static str, r: Range) {
        LEAKS.lock().unwrap().push(r);
    }
    let src = RefCell::new(Rec { quantum: 0x1000, next: 0x100000, ..Default::default() });
    {
        let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut a = Arena::new(
            "d",
            Size(16),
            SliceStore::new(bytes(&mut tb)),
            SliceStore::new(bytes(&mut hb)),
            &src,
        )
        .unwrap();
        a.set_leak_hook(Some(hook));
        a.add(Addr(0x10), Size(0x100)).unwrap();
        let x = a.alloc(Size(0x1001), Policy::InstantFit).unwrap();
        let h = a.alloc_handle(Size(5), Policy::FirstFit).unwrap();
        assert_eq!(h.addr(), Addr(0x10));
        let _ = x;
        drop(a);
    }
    let s = src.borrow();
    assert_eq!(s.back, s.out, "every import back");
    let mut leaks = LEAKS.lock().unwrap().clone();
    leaks.sort_by_key(|r| r.base());
    assert_eq!(leaks.len(), 2);
    assert_eq!(leaks[0], Range::from_size(Addr(0x10), Size(5)).unwrap());
    assert_eq!(leaks[1].size(), Size(0x1001));
}

/// A source breaking its contract (a range overlapping a span the arena
/// holds): BadImport, the range refused (not released), the arena intact.
#[test]
fn an_overlapping_import_is_refused_not_released() {
    struct Liar {
        r: Range,
        released: Vec<Range>,
        refused: Vec<Range>,
    }
    impl Source for Liar {
        fn quantum(&self) -> Size {
            Size(0x1000)
        }
        fn import(&mut self, _: Size, _: Size) -> Result<Range, ArenaError> {
            Ok(self.r)
        }
        fn release(&mut self, r: Range) -> Result<(), ArenaError> {
            self.released.push(r);
            Ok(())
        }
        fn refused(&mut self, r: Range) {
            self.refused.push(r);
        }
    }
    let r = Range::from_size(Addr(0x10000), Size(0x1000)).unwrap();
    let mut liar = Liar { r, released: vec![], refused: vec![] };
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "l",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &mut liar,
    )
    .unwrap();
    let x = a.alloc(Size(0x1000), Policy::InstantFit).unwrap();
    let before = (a.sizes(), a.span_count());
    assert_eq!(a.alloc(Size(0x10), Policy::InstantFit), Err(ArenaError::BadImport(r)));
    assert_eq!((a.sizes(), a.span_count()), before);
    a.check().unwrap();
    a.free(x, Size(0x1000)).unwrap();
    drop(a);
    assert_eq!(liar.refused, [r]);
    assert_eq!(liar.released, [r], "released once, by the free");
}

/// Source::quantum: "one that is not a power of two when the arena is made
/// is refused there". Through `&RefCell<T>` borrowed at that moment, the
/// source's quantum reads as 1 and the arena is made; its imports then
/// failed with Overflow, from rounding to a quantum that is not a power of
/// two (round 25's finding). Now the arena checks at every import: the
/// import is refused as the arena's making would have been, and nothing
/// changes.
#[test]
fn a_bad_source_quantum_behind_a_borrowed_refcell_is_not_refused() {
    struct Odd;
    impl Source for Odd {
        fn quantum(&self) -> Size {
            Size(24)
        }
        fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
            Ok(Range::from_size(Addr(0x1_0000 * 24), size)?)
        }
        fn release(&mut self, _: Range) -> Result<(), ArenaError> {
            Ok(())
        }
    }
    let cell = RefCell::new(Odd);
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    // Not borrowed: refused, as documented.
    let r = Arena::new(
        "o",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &cell,
    );
    assert!(matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))));
    // Borrowed (by whoever holds the source at that moment): made.
    let guard = cell.borrow_mut();
    let r = Arena::new(
        "o",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &cell,
    );
    drop(guard);
    let mut a = r.expect("made: the borrowed source could not say its quantum");
    for _ in 0..2 {
        assert_eq!(
            a.alloc(Size(16), Policy::InstantFit),
            Err(ArenaError::InvalidArgument("source quantum is not a power of two"))
        );
        assert_eq!((a.span_count(), a.sizes().total, a.counters().imports), (0, Size(0), 0));
        a.check().unwrap();
    }
}

/// Policy::NextFit: "The first fit at or after the rotor, the address where
/// the last next-fit allocation ended (whether or not it has been freed
/// since), in address order, wrapping round to the lowest when there is
/// none". Mixed with other policies, frees, partial frees and resizes.
#[test]
fn next_fit_follows_its_rotor() {
    let mut rng = Rng(0x5151_2525_dead_beef);
    let q = 16usize;
    let (mut tb, mut hb) = (vec![0u64; 1 << 14], vec![0u64; 1 << 12]);
    let mut a = Arena::new(
        "n",
        Size(q),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        NoSource,
    )
    .unwrap();
    a.add(Addr(0x10000), Size(0x2000)).unwrap();
    a.add(Addr(0x20000), Size(0x2000)).unwrap();
    let mut rotor = 0usize;
    let mut live: Vec<(Addr, usize)> = vec![];
    let mut checked = 0;
    for step in 0..5000 {
        let op = rng.below(10);
        if op < 3 && !live.is_empty() {
            let k = rng.below(live.len() as u64) as usize;
            let (x, s) = live.swap_remove(k);
            a.free(x, Size(s)).unwrap();
            continue;
        }
        if op == 3 && !live.is_empty() {
            let k = rng.below(live.len() as u64) as usize;
            let (x, s) = live[k];
            let ns = 1 + rng.below(0x200) as usize;
            if a.resize(x, Size(s), Size(ns)).is_ok() {
                live[k].1 = ns;
            }
            continue;
        }
        let asked = 1 + rng.below(0x180) as usize;
        let size = asked.div_ceil(q) * q;
        let align = (1usize << rng.below(8)).max(q);
        let nocross = if rng.below(5) == 0 { 1usize << (9 + rng.below(3)) } else { 0 };
        if nocross != 0 && size > nocross {
            continue;
        }
        let req = Req { size, align, phase: 0, nocross, lo: 0, hi: usize::MAX };
        let policy =
            if rng.below(3) == 0 { Policy::ALL[rng.below(3) as usize] } else { Policy::NextFit };
        let mut c = Constraints::new(Size(asked)).align(Size(align)).policy(policy);
        if nocross != 0 {
            c = c.nocross(Size(nocross));
        }
        let free: Vec<(usize, usize)> =
            a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect();
        let after: Option<usize> = free
            .iter()
            .filter(|&&(_, e)| e > rotor)
            .find_map(|&(s, e)| req.fits(s.max(rotor), e).first().copied());
        let lowest: Option<usize> = free.iter().find_map(|&(s, e)| req.fits(s, e).first().copied());
        let r = a.xalloc(&c);
        if policy == Policy::NextFit {
            let want = after.or(lowest);
            match (r, want) {
                (Ok(x), Some(w)) => {
                    assert_eq!(x.0, w, "step {step}: rotor {rotor:#x}, {c:?}, free {free:x?}");
                    checked += 1;
                }
                (Err(ArenaError::NoSpace { .. }), None) => {}
                (r, w) => panic!("step {step}: rotor {rotor:#x}, {c:?}: arena {r:?}, model {w:?}"),
            }
            if let Ok(x) = r {
                rotor = x.0 + size;
            }
        }
        if let Ok(x) = r {
            live.push((x, asked));
        }
    }
    assert!(checked > 800, "{checked}");
    a.check().unwrap();
}

/// extend: "must touch a span that was added (not imported)".
#[test]
fn extend_refuses_imported_neighbours_and_merges_added_ones() {
    let src = RefCell::new(Rec { quantum: 0x1000, next: 0x100000, ..Default::default() });
    let (mut tb, mut hb) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "e",
        Size(16),
        SliceStore::new(bytes(&mut tb)),
        SliceStore::new(bytes(&mut hb)),
        &src,
    )
    .unwrap();
    let x = a.alloc(Size(0x1000), Policy::InstantFit).unwrap(); // imported [x, x+0x1000)
    let above = Range::from_size(Addr(x.0 + 0x1000), Size(0x100)).unwrap();
    assert_eq!(a.extend(above.base(), above.size()), Err(ArenaError::NotAdjacent(above)));
    let below = Range::from_size(Addr(x.0 - 0x100), Size(0x100)).unwrap();
    assert_eq!(a.extend(below.base(), below.size()), Err(ArenaError::NotAdjacent(below)));
    // An added span right below the import, extended up to it: grows, stays
    // a span of its own.
    a.add(Addr(x.0 - 0x2000), Size(0x1000)).unwrap();
    a.extend(Addr(x.0 - 0x1000), Size(0x1000)).unwrap();
    assert_eq!(a.span_count(), 2);
    let spans: Vec<_> = a.walk(SegmentKinds::SPANS).map(|s| (s.range, s.imported)).collect();
    assert_eq!(spans[0], (Range::from_size(Addr(x.0 - 0x2000), Size(0x2000)).unwrap(), false));
    assert!(spans[1].1);
    a.free(x, Size(0x1000)).unwrap();
    assert_eq!(a.span_count(), 1, "the import went back");
    a.check().unwrap();
}
