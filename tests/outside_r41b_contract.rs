//! Outside review of round 41b's `KeepFree` (src/sources/keep.rs): the
//! `Source` contract (src/arena/source.rs) and the type's own promises,
//! over mock sources and parent arenas on caller buffers.
//!
//! Tests marked "was a DEFECT" failed on the code reviewed and pass since
//! the fixes; the others check contracts that held.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

mod outside_keep_common;
use outside_keep_common::parent;

const PAGE: usize = 4096;
const BIG: usize = 64 << 10;

/// A source that honours only its own quantum's alignment (as a C import
/// function, which takes no alignment: src/arena/source.rs:69-75). Its
/// ranges start one page past a 64 KiB boundary; it records what is live
/// and refuses a give-back of anything else with `BadFree`. With
/// `panic_at = n`, its n-th give-back panics before it does anything.
struct Unaligned {
    next: usize,
    live: Vec<Range>,
    releases: usize,
    panic_at: Cell<usize>,
    reuse: Vec<Range>,
}

impl Unaligned {
    fn new() -> Self {
        Unaligned {
            next: (1 << 20) + PAGE,
            live: Vec::new(),
            releases: 0,
            panic_at: Cell::new(0),
            reuse: Vec::new(),
        }
    }
}

impl Source for Unaligned {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        if size.0 == 0 || size.0 % PAGE != 0 || size.0 > 1 << 30 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        // A freed range of the size is handed out again first.
        let r = match self.reuse.iter().position(|r| r.size() == size) {
            Some(i) => self.reuse.remove(i),
            None => {
                let r = Range::from_size(Addr(self.next), size)?;
                self.next = r.limit().0 + PAGE;
                r
            }
        };
        self.live.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.releases += 1;
        if self.releases == self.panic_at.get() {
            panic!("source below panics in its give-back #{}", self.releases);
        }
        let i = self.live.iter().position(|r| *r == range).ok_or(ArenaError::BadFree {
            addr: range.base(),
            size: range.size(),
            allocated: None,
        })?;
        self.reuse.push(self.live.remove(i));
        Ok(())
    }
    fn imports_aligned(&self) -> bool {
        false
    }
}

/// Was a DEFECT (fixed). Over a source that aligns only to its own
/// quantum, a `KeepFree` with a larger quantum asked it for its own
/// quantum's alignment, which such a source does not honour: the arena
/// refused the misaligned import (`BadImport`) and gave it back, and
/// `KeepFree::release` refused that as not whole quanta, so every failed
/// allocation leaked 64 KiB below.
///
/// Now (keep.rs, "Quantum"): over such a source the quantum is the
/// source's alone (a larger one could not be kept aligned), and a range
/// from below that is not what was asked goes back below (`BadImport`).
/// Expected: the heap's allocations succeed, and nothing is left imported
/// below that no one holds (source.rs:18-21: "`release` takes back exactly
/// a range that `import` returned").
#[test]
fn unaligned_source_under_a_larger_quantum_keeps_its_own() {
    // Directly: the source's quantum; an alignment it cannot honour is
    // refused, the range back below.
    let mut k = KeepFree::<_, 2>::new(Unaligned::new(), Size(BIG));
    assert_eq!(k.quantum(), Size(PAGE));
    let bad = k.import(Size(BIG), Size(BIG));
    assert!(matches!(bad, Err(ArenaError::BadImport(_))), "{bad:?}");
    assert!(k.inner().live.is_empty(), "the misaligned range went back below");
    let r = k.import(Size(BIG), Size(PAGE)).unwrap();
    assert_eq!(k.release(r), Ok(()));
    // Through an arena.
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let keep = KeepFree::<_, 2>::new(Unaligned::new(), Size(BIG));
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), keep)
            .unwrap();
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(heap.alloc(Size(16), Policy::InstantFit));
        heap.check().unwrap();
    }
    let leaked = heap.source().inner().live.len() - heap.sizes().imported.0 / PAGE;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(leaked, 0, "ranges left imported below, held by no one");
}

/// Same source, same quanta (passes): the arena asks for room to align in
/// and everything goes back.
#[test]
fn holds_unaligned_source_with_its_own_quantum() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let keep = KeepFree::<_, 1>::new(Unaligned::new(), Size(PAGE));
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), keep)
            .unwrap();
    let c = vmspace::Constraints::new(Size(64)).align(Size(BIG));
    for _ in 0..3 {
        let a = heap.xalloc(&c).unwrap();
        assert!(a.is_aligned(Size(BIG)));
        heap.check().unwrap();
        heap.free(a, Size(64)).unwrap();
        heap.check().unwrap();
    }
    let c = heap.source().counts();
    assert_eq!((c.imported, c.reused, c.kept, c.released), (1, 2, 3, 0));
    drop(heap);
}

/// Was a DEFECT (fixed). A span given back twice, the second time
/// unflushed, while it is kept.
///
/// Expected: keep.rs:28-29 "A range that is not whole quanta, or overlaps
/// a kept one (given back twice), is refused with `ArenaError::BadFree`,
/// changing nothing" (the guard against a second give-back), and the
/// invariant keep.rs:69-70 (kept ranges are ones "this source handed out
/// and was given back since, each once").
///
/// Actual: `release_unflushed` passes it to the source below without the
/// check; the parent takes it as a deferred free while it stays kept, and
/// after the parent's flush the same page is handed out by both: by the
/// parent to its next allocation and by the adapter to its next import.
#[test]
fn defect_unflushed_second_give_back_of_a_kept_span_is_taken() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut t, &mut h, 1);
    let mut k = KeepFree::<_, 2>::new(&p, Size(PAGE));
    let a = k.import(Size(PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap();
    assert_eq!(k.kept(), &[a]);
    let second = k.release_unflushed(a);
    p.borrow_mut().flushed();
    let by_parent = p.borrow_mut().alloc(Size(PAGE), Policy::InstantFit);
    let by_keep = k.import(Size(PAGE), Size(PAGE));
    eprintln!(
        "second give-back {second:?}; parent alloc {by_parent:?}; adapter import {by_keep:?}"
    );
    assert!(matches!(second, Err(ArenaError::BadFree { .. })), "second give-back: {second:?}");
    if let (Ok(x), Ok(y)) = (by_parent, by_keep) {
        assert!(!y.contains_addr(x), "{y} handed out by the adapter and by the parent");
    }
}

/// Passes: a quantum of 2^63 under an arena: every allocation fails
/// without a panic and changes nothing; so do the largest requests under
/// an ordinary quantum. (Over a parent arena, which honours alignments:
/// over `Unaligned` the quantum is the source's since the 41b fixes.)
#[test]
fn holds_the_largest_quantum_and_requests_through_an_arena() {
    for q in [1usize << 63, 1 << 28, PAGE] {
        let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let p = parent(&mut pt, &mut ph, 64);
        let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let keep = KeepFree::<_, 2>::new(&p, Size(q));
        let mut heap =
            Arena::new("heap", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), keep)
                .unwrap();
        for s in [16, usize::MAX, usize::MAX - 15, 1 << 63, (1 << 63) + 16] {
            let got = heap.alloc(Size(s), Policy::InstantFit);
            if q != PAGE || s != 16 {
                assert!(got.is_err(), "q {q:#x} alloc {s:#x}: {got:?}");
            }
            heap.check().unwrap();
        }
        let c = vmspace::Constraints::new(Size(16)).align(Size(1 << 63));
        assert!(heap.xalloc(&c).is_err());
        heap.check().unwrap();
        heap.source().check().unwrap();
    }
}

/// Was a DEFECT (panic safety; fixed). The source below panics in the
/// second give-back of a `trim()`, after taking the first.
///
/// Expected: source.rs:34-36 "A source may panic; the arena is left
/// consistent ... as the panic unwinds" (and the arena itself drops a span
/// from its books before the source sees it, alloc.rs:438-441: "At worst
/// it is lost to both, never live in two"); keep.rs:69-70, kept ranges
/// are ones given back to this adapter and not to `S` since.
/// Actual: `trim` updates `len` only at its end, so the span the source
/// below already took stays kept; the adapter hands it out again while
/// the source below hands it out too.
#[test]
fn defect_panic_in_trim_leaves_a_given_back_span_kept() {
    let mut k = KeepFree::<_, 2>::new(Unaligned::new(), Size(PAGE));
    let a = k.import(Size(PAGE), Size(PAGE)).unwrap();
    let b = k.import(Size(PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap();
    k.inner().panic_at.set(2);
    let unwound = catch_unwind(AssertUnwindSafe(|| k.trim()));
    assert!(unwound.is_err(), "the source below panicked");
    k.inner().panic_at.set(0);
    k.check().unwrap();
    let taken_below: Vec<Range> = k.inner().reuse.clone();
    assert_eq!(taken_below, [a], "the source below took a before it panicked");
    assert!(!k.kept().contains(&a), "a is kept and free below: {:?}", k.kept());
}

/// Passes: exact counts and `BadFree`s that change nothing, N = 0 and a
/// parent that refuses give-backs.
#[test]
fn holds_exact_counts_and_bad_frees() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut t, &mut h, 64);
    let mut k = KeepFree::<_, 2>::new(&p, Size(2 * PAGE));
    assert_eq!(k.quantum(), Size(2 * PAGE));
    let a = k.import(Size(2 * PAGE), Size(2 * PAGE)).unwrap();
    let b = k.import(Size(4 * PAGE), Size(4 * PAGE)).unwrap();
    let c = k.import(Size(2 * PAGE), Size(8 * PAGE)).unwrap();
    assert!(c.base().is_aligned(Size(8 * PAGE)));
    for (s, al) in [(PAGE, 2 * PAGE), (0, 2 * PAGE), (2 * PAGE, PAGE), (2 * PAGE, 3 * PAGE)] {
        assert!(k.import(Size(s), Size(al)).is_err(), "import({s:#x}, {al:#x})");
    }
    k.release(a).unwrap();
    k.release(b).unwrap();
    let before = (k.kept().to_vec(), k.counts(), p.borrow().sizes());
    let half = Range::from_size(b.base(), Size(2 * PAGE)).unwrap();
    let odd = Range::from_size(Addr(c.base().0 + PAGE), Size(2 * PAGE)).unwrap();
    for r in [a, b, half, odd, Range::empty(Addr(0))] {
        assert!(matches!(k.release(r), Err(ArenaError::BadFree { .. })), "{r}");
    }
    assert_eq!((k.kept().to_vec(), k.counts(), p.borrow().sizes()), before);
    // Full: c goes to the parent; kept b is the one taken for 4 pages,
    // and not for an alignment it lacks.
    k.release(c).unwrap();
    assert_eq!(k.import(Size(4 * PAGE), Size(4 * PAGE)).unwrap(), b);
    assert_eq!(k.import(Size(2 * PAGE), Size(2 * PAGE)).unwrap(), a);
    k.check().unwrap();
    let n = k.counts();
    assert_eq!((n.imported, n.reused, n.kept, n.released, n.release_failures), (3, 2, 2, 1, 0));
    k.release(a).unwrap();
    drop(k);
    assert_eq!(p.borrow().sizes().allocated, Size(4 * PAGE), "b still out; a back on drop");
    p.borrow_mut().free(b.base(), b.size()).unwrap();
    p.borrow().check().unwrap();
    // N = 0: an import quantum alone.
    let mut z = KeepFree::<_, 0>::new(&p, Size(16));
    let r = z.import(Size(PAGE), Size(PAGE)).unwrap();
    z.release(r).unwrap();
    assert!(matches!(z.release(r), Err(ArenaError::BadFree { .. })));
    let n = z.counts();
    assert_eq!((n.imported, n.kept, n.released, n.release_failures), (1, 0, 1, 1));
    assert_eq!(p.borrow().sizes().allocated, Size(0));
}

/// Passes: a quantum that is not a power of two makes an arena refuse the
/// adapter when made (keep.rs:21-22); used directly, every import is
/// refused without a panic; the largest sizes and alignments are refused
/// without a panic and change nothing; ranges at the top of the address
/// space are kept and taken back.
#[test]
fn holds_odd_quanta_huge_values_and_the_top_of_the_address_space() {
    // Over a parent arena, which honours alignments (over `Unaligned` the
    // quantum given is not used since the 41b fixes: the source's is).
    let (mut pt, mut ph) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let p = parent(&mut pt, &mut ph, 64);
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let odd = KeepFree::<_, 2>::new(&p, Size(3 * PAGE));
    assert!(
        Arena::new("odd", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), odd).is_err()
    );
    let mut odd = KeepFree::<_, 2>::new(&p, Size(3 * PAGE));
    assert!(odd.import(Size(3 * PAGE), Size(4 * PAGE)).is_err());
    assert!(odd.import(Size(12 * PAGE), Size(16 * PAGE)).is_err());
    let zero = KeepFree::<_, 2>::new(Unaligned::new(), Size(0));
    assert_eq!(zero.quantum(), Size(PAGE));

    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut top =
        Arena::new("top", Size(PAGE), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    let base = usize::MAX - 17 * PAGE + 1;
    top.add(Addr(base), Size(16 * PAGE)).unwrap();
    let mut k = KeepFree::<_, 4>::new(&mut top, Size(PAGE));
    let huge = [
        (usize::MAX & !(PAGE - 1), PAGE),
        (PAGE, 1 << 63),
        (1 << 63, 1 << 63),
        (PAGE, usize::MAX),
        (usize::MAX, PAGE),
    ];
    let x = k.import(Size(16 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(x.limit(), Addr(usize::MAX - PAGE + 1));
    k.release(x).unwrap();
    for (s, al) in huge {
        let before = k.kept().to_vec();
        assert!(k.import(Size(s), Size(al)).is_err(), "import({s:#x}, {al:#x})");
        // NoSpace with spans kept gives them back first (keep.rs:24-26).
        assert!(k.kept().is_empty() || k.kept() == before);
    }
    let y = k.import(Size(16 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(y, x);
    k.release(y).unwrap();
    assert_eq!(k.kept_size(), Size(16 * PAGE));
    let wrap = Range::new(Addr(usize::MAX - PAGE + 1), Addr(usize::MAX)).unwrap();
    assert!(matches!(k.release(wrap), Err(ArenaError::BadFree { .. })));
    k.check().unwrap();
    assert_eq!(k.trim(), Size(16 * PAGE));
    drop(k);
    assert_eq!(top.sizes().allocated, Size(0));
    top.check().unwrap();
}
