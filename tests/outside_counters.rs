//! Written from the documented contracts by a reviewer outside the project,
//! to break them: what each counter counts, imported spans' statistics, the
//! free histogram over every quantum and over spans of about 2^63, `extend`
//! beside imported spans, and what the leak hook is told. Every refused
//! call is checked to change nothing but the counter the docs name.

use std::cell::RefCell;
use std::rc::Rc;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Counters, NoSource, Policy, SegmentKinds, SliceStore, Source,
};
use vmspace::{Addr, Range, Size};

mod outside_snap;
use outside_snap::*;

#[test]
/// `Counters`: allocs and frees count successes only, bad_frees every
/// refused free of any kind (free, free_deferred, free_handle,
/// free_handle_deferred, free_part), failures every failed alloc, xalloc,
/// add and extend (invalid arguments included), flushes only flushes that
/// made something free, deferred_frees both deferred frees (also in frees).
fn counters_count_exactly_what_they_say() {
    with_arena(16, |a| {
        let mut want = Counters::default();
        let check = |a: &A<'_>, w: &Counters, what: &str| {
            let c = a.counters();
            assert_eq!(
                (c.allocs, c.frees, c.failures, c.bad_frees, c.deferred_frees, c.flushes),
                (w.allocs, w.frees, w.failures, w.bad_frees, w.deferred_frees, w.flushes),
                "{what}"
            );
        };
        assert!(a.alloc(Size(16), Policy::InstantFit).is_err()); // empty arena
        want.failures += 1;
        assert!(a.add(Addr(0x1001), Size(0x100)).is_err());
        assert!(a.add(Addr(0x1000), Size(0)).is_err());
        want.failures += 2;
        a.add(Addr(0x1000), Size(0x100)).unwrap();
        assert!(a.add(Addr(0x1080), Size(0x100)).is_err()); // overlap
        assert!(a.extend(Addr(0x3000), Size(0x100)).is_err()); // not adjacent
        assert!(a.extend(Addr(0x1100), Size(0)).is_err());
        want.failures += 3;
        a.extend(Addr(0x1100), Size(0x100)).unwrap();
        check(a, &want, "spans");
        assert!(a.alloc(Size(0), Policy::InstantFit).is_err());
        assert!(a.alloc(Size(usize::MAX), Policy::BestFit).is_err());
        assert!(a.xalloc(&Constraints::new(Size(16)).align(Size(24))).is_err());
        assert!(a.xalloc(&Constraints::new(Size(16)).exact(Addr(0x1008))).is_err());
        assert!(a.xalloc(&Constraints::new(Size(32)).nocross(Size(16))).is_err());
        want.failures += 5;
        check(a, &want, "invalid allocations");
        let x = a.alloc(Size(20), Policy::InstantFit).unwrap();
        let h = a.alloc_handle(Size(20), Policy::InstantFit).unwrap();
        let y = a.xalloc(&Constraints::new(Size(64))).unwrap();
        let h2 = a.xalloc_handle(&Constraints::new(Size(64))).unwrap();
        want.allocs += 4;
        check(a, &want, "allocations");
        for r in [
            a.free(x, Size(21)),
            a.free(x, Size(32)),
            a.free(h.addr(), Size(20)),
            a.free(Addr(0x1004), Size(20)),
            a.free_deferred(x, Size(19)),
            a.free_part(x, Size(0), Size(0)),
            a.free_part(h.addr(), Size(0), Size(16)),
        ] {
            assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
            want.bad_frees += 1;
        }
        check(a, &want, "bad frees by address");
        a.free(x, Size(20)).unwrap();
        a.free_handle(h).unwrap();
        want.frees += 2;
        assert!(a.free(x, Size(20)).is_err());
        assert!(a.free_handle(h).is_err());
        assert!(a.free_handle_deferred(h).is_err());
        assert!(a.free_deferred(x, Size(20)).is_err());
        want.bad_frees += 4;
        check(a, &want, "double frees");
        assert_eq!(a.flushed(), Size(0));
        check(a, &want, "flushed with nothing");
        a.free_deferred(y, Size(64)).unwrap();
        assert_eq!(a.free_handle_deferred(h2), Ok(Size(64)));
        want.frees += 2;
        want.deferred_frees += 2;
        check(a, &want, "deferred frees");
        assert_eq!(a.flushed(), Size(128));
        want.flushes += 1;
        assert_eq!(a.flushed(), Size(0));
        check(a, &want, "flushes");
        a.check().unwrap();
    });
}

#[test]
/// `free_histogram` ("the number of free segments with size in [2^k,
/// 2^(k+1))"), `largest_free` and `fragmentation` ("1000 * (1 - largest
/// free / total free)") on spans as large as the address space allows:
/// no arithmetic wraps, and segments of 2^63 and more land in the last
/// bucket.
fn enormous_spans() {
    with_arena(1, |a| {
        a.add(Addr(0), Size(1 << 63)).unwrap();
        a.add(Addr(1 << 63), Size(usize::MAX - (1 << 63))).unwrap(); // adjacent
        let check = |a: &A<'_>, free: &[usize]| {
            a.check().unwrap();
            let mut hist = vec![0; a.free_histogram().len()];
            for &f in free {
                hist[f.ilog2() as usize] += 1;
            }
            assert_eq!(a.free_histogram().to_vec(), hist);
            let l = *free.iter().max().unwrap_or(&0);
            assert_eq!(a.largest_free(), Size(l));
            let sum: u128 = free.iter().map(|&f| f as u128).sum();
            let frag = (l as u128 * 1000).checked_div(sum).map_or(0, |d| 1000 - d as u32);
            assert_eq!(a.fragmentation(), frag, "{free:?}");
            assert_eq!(a.sizes().free.0 as u128, sum);
        };
        check(a, &[1 << 63, usize::MAX - (1 << 63)]);
        assert_eq!(a.sizes().total, Size(usize::MAX));
        let x = a.xalloc(&Constraints::new(Size(1)).exact(Addr(1 << 62))).unwrap();
        check(a, &[1 << 62, (1 << 62) - 1, usize::MAX - (1 << 63)]);
        a.resize(x, Size(1), Size(1 << 62)).unwrap(); // the whole rest of the span
        check(a, &[1 << 62, usize::MAX - (1 << 63)]);
        assert!(matches!(
            a.resize(x, Size(1 << 62), Size((1 << 62) + 1)),
            Err(ArenaError::NoSpace { .. })
        ));
        a.free_part(x, Size(1), Size((1 << 62) - 2)).unwrap();
        check(a, &[1 << 62, (1 << 62) - 2, usize::MAX - (1 << 63)]);
        let top = a.alloc(Size(usize::MAX - (1 << 63)), Policy::BestFit).unwrap();
        assert_eq!(top, Addr(1 << 63));
        check(a, &[1 << 62, (1 << 62) - 2]);
        a.free(top, Size(usize::MAX - (1 << 63))).unwrap();
        a.free(x, Size(1)).unwrap();
        a.free(Addr((1 << 63) - 1), Size(1)).unwrap();
        check(a, &[1 << 63, usize::MAX - (1 << 63)]);
    });
}

/// A source handing out ranges from a list, recording give-backs, refusing
/// them while `refuse` is set.
struct Script {
    next: Vec<Range>,
    back: Rc<RefCell<Vec<Range>>>,
    refuse: Rc<RefCell<bool>>,
}

impl Source for Script {
    fn quantum(&self) -> Size {
        Size(0x100)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        match self.next.first() {
            Some(r) if r.size() == size => Ok(self.next.remove(0)),
            _ => Err(ArenaError::NoSpace { size: size.0 }),
        }
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        if *self.refuse.borrow() {
            return Err(ArenaError::NoSpace { size: 0 });
        }
        self.back.borrow_mut().push(range);
        Ok(())
    }
}

#[test]
/// Imported spans: `Sizes::imported` (part of total), `Counters::imports`,
/// `exports`, `export_failures` ("the span stayed, free"), walk's
/// `imported`; `extend` "must touch a span that was added (not imported)";
/// `resize` grows only "in the same span", not into an adjacent imported
/// one; a free_part leaving the span partly live keeps it, and the last free
/// gives it back.
fn imported_spans() {
    let r = |b: usize| Range::from_size(Addr(b), Size(0x100)).unwrap();
    let back = Rc::new(RefCell::new(Vec::new()));
    let refuse = Rc::new(RefCell::new(false));
    let src =
        Script { next: vec![r(0x10000), r(0x10100)], back: back.clone(), refuse: refuse.clone() };
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("i", Size(16), SliceStore::new(&mut tb), SliceStore::new(&mut hb), src).unwrap();
    let x = a.alloc(Size(0x100), Policy::InstantFit).unwrap();
    assert_eq!(x, Addr(0x10000));
    let y = a.alloc(Size(0x10), Policy::InstantFit).unwrap();
    assert_eq!(y, Addr(0x10100)); // the second import, adjacent to the first
    let s = a.sizes();
    assert_eq!((s.imported.0, s.total.0, s.allocated.0, s.free.0), (0x200, 0x200, 0x110, 0xf0));
    assert_eq!(a.counters().imports, 2);
    assert!(a.walk(SegmentKinds::SPANS).all(|s| s.imported));
    refused(
        &mut a,
        "grow into the adjacent imported span",
        false,
        |a| a.resize(x, Size(0x100), Size(0x110)),
        |e| matches!(e, ArenaError::NoSpace { .. }),
    );
    refused(
        &mut a,
        "extend an imported span",
        false,
        |a| a.extend(Addr(0x10200), Size(0x100)),
        |e| matches!(e, ArenaError::NotAdjacent(_)),
    );
    // Partly free: the span stays.
    a.free_part(x, Size(0), Size(0xf0)).unwrap();
    assert_eq!(a.counters().exports, 0);
    assert_eq!(a.span_count(), 2);
    // The rest by free: wholly free, given back.
    a.free(Addr(0x100f0), Size(0x10)).unwrap();
    assert_eq!(back.borrow().as_slice(), &[r(0x10000)]);
    let s = a.sizes();
    assert_eq!((s.imported.0, s.total.0, s.free.0, a.span_count()), (0x100, 0x100, 0xf0, 1));
    assert_eq!(a.counters().exports, 1);
    // A refused give-back: the span stays, free, and the free succeeds.
    *refuse.borrow_mut() = true;
    a.resize(y, Size(0x10), Size(0x100)).unwrap();
    a.free(y, Size(0x100)).unwrap();
    let c = a.counters();
    assert_eq!((c.exports, c.export_failures, c.frees), (1, 1, 2));
    let s = a.sizes();
    assert_eq!((s.imported.0, s.total.0, s.free.0, s.allocated.0), (0x100, 0x100, 0x100, 0));
    a.check().unwrap();
}

#[test]
/// `free_histogram`: "the number of free segments with size in [2^k,
/// 2^(k+1)), for each k", in units of the resource, whatever the quantum
/// (the free lists are per quantum count, one per size below 32 quanta and
/// one per power of two above); `largest_free` and `fragmentation` too.
fn histogram_buckets_by_size_for_every_quantum() {
    for q in [1usize, 16, 4096, 1 << 27] {
        let (mut tb, mut hb) = (vec![0u8; 1 << 17], vec![0u8; 1 << 12]);
        let mut a =
            Arena::new("h", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
                .unwrap();
        let mut ns: Vec<usize> = (1..=70).collect();
        for k in 7..64 {
            for d in [-1isize, 0, 1] {
                ns.push((1usize << k).wrapping_add_signed(d));
            }
        }
        let (mut free, mut starts) = (Vec::new(), Vec::new());
        let mut cur = q;
        for n in ns {
            let Some(size) = n.checked_mul(q) else { break };
            let Some(end) = cur.checked_add(size).and_then(|e| e.checked_add(q)) else { continue };
            if end > usize::MAX - (q - 1) {
                continue;
            }
            a.add(Addr(cur), Size(size)).unwrap();
            free.push(size);
            starts.push(cur);
            cur = end; // a gap of one quantum
        }
        a.check().unwrap();
        let mut hist = vec![0usize; a.free_histogram().len()];
        for &f in &free {
            hist[f.ilog2() as usize] += 1;
        }
        assert_eq!(a.free_histogram().to_vec(), hist, "q {q}");
        let l = *free.iter().max().unwrap();
        assert_eq!(a.largest_free(), Size(l), "q {q}");
        let sum: u128 = free.iter().map(|&f| f as u128).sum();
        assert_eq!(a.sizes().free.0 as u128, sum, "q {q}");
        assert_eq!(a.fragmentation(), 1000 - (l as u128 * 1000 / sum) as u32, "q {q}");
        // Take one quantum off the front of every segment: every size moves
        // down by a quantum.
        for &s in &starts {
            a.xalloc(&Constraints::new(Size(q)).exact(Addr(s))).unwrap();
        }
        let mut hist = vec![0usize; a.free_histogram().len()];
        for f in free.iter().map(|&f| f - q).filter(|&f| f > 0) {
            hist[f.ilog2() as usize] += 1;
        }
        assert_eq!(a.free_histogram().to_vec(), hist, "q {q} after allocating");
        assert_eq!(a.largest_free(), Size(l - q), "q {q}");
        a.check().unwrap();
    }
}

static LEAKED: std::sync::Mutex<Vec<(&'static str, usize, usize)>> =
    std::sync::Mutex::new(Vec::new());

fn leak_hook(name: &'static str, r: Range) {
    LEAKED.lock().unwrap().push((name, r.base().0, r.size().0));
}

#[test]
/// `LeakHook` (src/arena/mod.rs:132-136): "called once for each allocation
/// still live when an arena is dropped, with the arena's name and the
/// allocation's range (requested size), and once for each range freed
/// deferred and never flushed (its whole segment)".
fn leak_hook_reports_the_requested_size() {
    {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
        let mut a = Arena::new(
            "leaky",
            Size(16),
            SliceStore::new(&mut tb),
            SliceStore::new(&mut hb),
            NoSource,
        )
        .unwrap();
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        a.set_leak_hook(Some(leak_hook));
        let x = a.alloc(Size(10), Policy::FirstFit).unwrap();
        let h = a.alloc_handle(Size(20), Policy::FirstFit).unwrap();
        let d = a.alloc(Size(5), Policy::FirstFit).unwrap();
        a.free_deferred(d, Size(5)).unwrap();
        assert_eq!((x.0, h.addr().0, d.0), (0x1000, 0x1010, 0x1030));
    }
    let got = LEAKED.lock().unwrap().clone();
    assert_eq!(got, vec![("leaky", 0x1000, 10), ("leaky", 0x1010, 20), ("leaky", 0x1030, 16)]);
}

#[test]
/// `extend` "must touch a span that was added (not imported)", and merges
/// only when it "fills the gap between two" such spans: filling the gap
/// between an added span and an imported one grows the added span and
/// leaves the imported one whole, imported and given back on its own.
/// `free_part` of a whole allocation in an imported span holding an
/// unflushed segment gives nothing back until `flushed`.
fn extend_between_an_added_and_an_imported_span() {
    for imported_above in [true, false] {
        let r = |b: usize| Range::from_size(Addr(b), Size(0x100)).unwrap();
        let back = Rc::new(RefCell::new(Vec::new()));
        let refuse = Rc::new(RefCell::new(false));
        let (imp, added, gap) =
            if imported_above { (0x10200, 0x10000, 0x10100) } else { (0x10000, 0x10200, 0x10100) };
        let src = Script { next: vec![r(imp)], back: back.clone(), refuse };
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
        let mut a =
            Arena::new("e", Size(16), SliceStore::new(&mut tb), SliceStore::new(&mut hb), src)
                .unwrap();
        let x = a.alloc(Size(0x40), Policy::FirstFit).unwrap(); // imports
        let y = a.alloc(Size(0x40), Policy::FirstFit).unwrap();
        assert_eq!((x.0, y.0), (imp, imp + 0x40));
        a.add(Addr(added), Size(0x100)).unwrap();
        a.extend(Addr(gap), Size(0x100)).unwrap();
        a.check().unwrap();
        let spans: Vec<(usize, usize, bool)> = a
            .walk(SegmentKinds::SPANS)
            .map(|s| (s.range.base().0, s.range.limit().0, s.imported))
            .collect();
        let want = if imported_above {
            vec![(0x10000, 0x10200, false), (0x10200, 0x10300, true)]
        } else {
            vec![(0x10000, 0x10100, true), (0x10100, 0x10300, false)]
        };
        assert_eq!(spans, want, "imported_above {imported_above}");
        let s = a.sizes();
        assert_eq!((s.imported.0, s.total.0), (0x100, 0x300));
        // Deferred one, free_part the other whole: the span stays.
        a.free_deferred(y, Size(0x40)).unwrap();
        a.free_part(x, Size(0), Size(0x40)).unwrap();
        assert!(back.borrow().is_empty(), "given back while unflushed");
        assert_eq!(a.flushed(), Size(0x40));
        assert_eq!(back.borrow().as_slice(), &[r(imp)], "imported_above {imported_above}");
        let s = a.sizes();
        assert_eq!((s.imported.0, s.total.0, s.free.0), (0, 0x200, 0x200));
        assert_eq!(a.span_count(), 1);
        a.check().unwrap();
    }
}

#[test]
/// `Counters::lookups`: "Address lookups (frees)"; the handle interface
/// "goes straight to the tag, with no hash on either side" (README), so
/// handle frees and allocations count none.
fn lookups_count_address_frees_only() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let l0 = a.counters().lookups;
        let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(16), Policy::InstantFit).unwrap();
        let h = a.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        let g = a.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        let _ = a.lookup(x);
        let _ = a.lookup_handle(h);
        assert_eq!(a.counters().lookups, l0, "allocations and lookup() are no frees");
        a.free_handle(h).unwrap();
        a.free_handle_deferred(g).unwrap();
        assert_eq!(a.counters().lookups, l0, "handle frees look nothing up");
        a.free(x, Size(16)).unwrap();
        a.free_deferred(y, Size(16)).unwrap();
        assert_eq!(a.counters().lookups, l0 + 2, "one lookup per address free");
    });
}
