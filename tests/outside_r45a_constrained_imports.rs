//! Outside review, round 45a: a constrained request (align, phase, nocross,
//! from_top; no window) that fits in a fresh import must succeed by
//! importing (source.rs: "a constrained request imports what it needs
//! either way"), through `KeepFree` over an aligned parent and over a
//! source that aligns only to its quantum; and what it gets satisfies the
//! constraints; and everything goes back.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

/// The parent, but only aligned to its quantum (as vmem(9)'s import
/// functions): asks the parent with the quantum's alignment.
struct Unaligned<'p, 'a>(&'p mut Arena<SliceStore<'a>, NoSource>);

impl Source for Unaligned<'_, '_> {
    fn quantum(&self) -> Size {
        self.0.quantum()
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let q = self.0.quantum();
        // Misalign on purpose where it can: first-fit from a base that is
        // an odd multiple of the quantum.
        self.0.import(size, q)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.0.release(range)
    }
    fn imports_aligned(&self) -> bool {
        false
    }
}

fn rng(r: &mut u64) -> usize {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*r >> 33) as usize
}

fn one<S: Source>(heap: &mut Arena<SliceStore<'_>, S>, r: &mut u64, i: usize) {
    let hq = 16usize;
    let align = hq << (rng(r) % 12);
    let phase = if rng(r) % 2 == 0 { (rng(r) % (align / hq)) * hq } else { 0 };
    let size = 1 + rng(r) % (5 * Q);
    let nocross = if rng(r) % 2 == 0 {
        let min = (size.div_ceil(hq) * hq).next_power_of_two();
        min << (rng(r) % 3)
    } else {
        0
    };
    let top = rng(r) % 2 == 0;
    let policy = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit][rng(r) % 3];
    let mut c = Constraints::new(Size(size))
        .align(Size(align))
        .phase(Size(phase))
        .from_top(top)
        .policy(policy);
    if nocross != 0 {
        c = c.nocross(Size(nocross));
    }
    let got = heap.xalloc(&c);
    let a = match got {
        Ok(a) => a,
        Err(ArenaError::OverConstrained(_)) if nocross != 0 => {
            // Really impossible: the lowest offset in a nocross block
            // plus the size passes the block (allowing the quantum's
            // rounding of the size).
            let off = phase % align.min(nocross);
            assert!(off + size.div_ceil(hq) * hq > nocross, "{i}: {c:?}: OverConstrained but feasible");
            return;
        }
        Err(e) => panic!("{i}: {c:?} (size {size:#x} align {align:#x} phase {phase:#x} nocross {nocross:#x}): {e:?}"),
    };
    assert_eq!((a.0 - phase) % align, 0, "{i}: {c:?} -> {a:?}");
    if let (Some(first), Some(last)) =
        (a.0.checked_div(nocross), (a.0 + size - 1).checked_div(nocross))
    {
        assert_eq!(first, last, "{i}: {c:?} -> {a:?} crosses");
    }
    heap.check().unwrap();
    heap.free(a, Size(size)).unwrap();
    heap.check().unwrap();
    assert_eq!(heap.sizes().imported, Size(0), "{i}: span not given back");
}

#[test]
fn constrained_requests_import_what_they_need() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p =
        Arena::new("parent", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    p.add(Addr((1 << 30) + Q), Size(4096 * Q)).unwrap();
    let mut k = KeepFree::<_, 3>::new(&mut p, Size(2 * Q));
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
            .unwrap();
    let mut r = 5u64;
    for i in 0..3000 {
        one(&mut heap, &mut r, i);
        heap.source().check().unwrap();
    }
    drop(heap);
    let p = k.into_inner().ok().unwrap();
    assert_eq!(p.sizes().allocated, Size(0));
}

#[test]
fn constrained_requests_import_what_they_need_unaligned_below() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p =
        Arena::new("parent", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    p.add(Addr((1 << 30) + Q), Size(4096 * Q)).unwrap();
    let mut k = KeepFree::<_, 3>::new(Unaligned(&mut p), Size(2 * Q));
    assert_eq!(k.quantum(), Size(Q), "keep's quantum over an unaligned source is the source's");
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(16), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
            .unwrap();
    let mut r = 6u64;
    for i in 0..3000 {
        one(&mut heap, &mut r, i);
        heap.source().check().unwrap();
    }
    drop(heap);
    let p = k.into_inner().ok().unwrap();
    assert_eq!(p.0.sizes().allocated, Size(0));
}
