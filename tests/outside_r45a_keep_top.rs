//! Outside review, round 45a: `KeepFree` and an importing arena at the
//! very top of the address space (spans ending at `usize::MAX`), with
//! sizes, phases and alignments that overflow.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

type Parent<'a> = Arena<SliceStore<'a>, NoSource>;

fn parent_q1<'a>(t: &'a mut [u8], h: &'a mut [u8], bytes: usize) -> Parent<'a> {
    let mut p =
        Arena::new("parent", Size(1), SliceStore::new(t), SliceStore::new(h), NoSource).unwrap();
    // Ends at usize::MAX exactly (the last byte cannot be in a range).
    p.add(Addr(usize::MAX - bytes), Size(bytes)).unwrap();
    p
}

#[test]
fn imports_at_the_very_top_never_overflow() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p = parent_q1(&mut t, &mut h, 16 * Q);
    let mut k = KeepFree::<_, 3>::new(&mut p, Size(Q));
    assert_eq!(k.quantum(), Size(Q));
    let mut got = Vec::new();
    loop {
        match k.import(Size(Q), Size(Q)) {
            Ok(r) => {
                assert!(r.base().0 >= usize::MAX - 16 * Q, "{r:?}");
                got.push(r);
            }
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
        assert!(got.len() <= 16);
    }
    // [MAX-16Q, MAX) holds 15 aligned pages (the last one would end at 2^64).
    assert_eq!(got.len(), 15);
    // Only the last 2N handed out can be kept.
    for g in &got[..3] {
        k.release(*g).unwrap();
    }
    assert_eq!(k.kept().len(), 0);
    for g in &got[12..] {
        k.release(*g).unwrap();
    }
    assert_eq!(k.kept().len(), 3);
    got.truncate(12);
    // Huge requests with kept spans: trims and asks once more, no panic.
    for (size, align) in
        [(usize::MAX & !(Q - 1), Q), (Q, 1usize << 63), (1usize << 63, 1usize << 63), (2 * Q, Q)]
    {
        let before = k.kept().len();
        let r = k.import(Size(size), Size(align));
        assert!(
            matches!(r, Err(ArenaError::NoSpace { .. })) || r.is_ok(),
            "{size:#x} {align:#x}: {r:?}"
        );
        if before > 0 {
            assert!(k.kept().is_empty());
        }
        if let Ok(x) = r {
            k.release(x).unwrap();
        }
        k.check().unwrap();
        k.inner().check().unwrap();
    }
    // Bad sizes and alignments are refused before the kept spans move.
    got.drain(..3);
    k.release(got.pop().unwrap()).unwrap();
    // (kept now: whatever the huge imports left; make sure at least one.)
    let x = k.import(Size(Q), Size(Q)).unwrap();
    k.release(x).unwrap();
    let kept = k.kept().to_vec();
    for (size, align) in [(0, Q), (Q + 1, Q), (Q, Q / 2), (Q, 3 * Q), (usize::MAX, Q)] {
        assert!(k.import(Size(size), Size(align)).is_err());
        assert_eq!(k.kept(), &kept[..]);
    }
    // Give-backs at the top that are not whole quanta, or overlap a kept
    // one, or wrap: refused, changing nothing.
    let last = *got.last().unwrap();
    for bad in [
        Range::from_size(last.base(), Size(Q - 1)).unwrap(),
        Range::new(Addr(usize::MAX - Q + 1), Addr(usize::MAX)).unwrap(),
        Range::new(Addr(usize::MAX & !(Q - 1)), Addr(usize::MAX)).unwrap(),
        kept[0],
        Range::from_size(Addr(kept[0].base().0 - Q), Size(2 * Q)).unwrap(),
    ] {
        let c = k.counts();
        assert!(k.release(bad).is_err(), "{bad:?} taken");
        assert_eq!(k.kept(), &kept[..]);
        k.check().unwrap();
        let _ = c;
    }
    for g in got {
        k.release(g).unwrap();
    }
    let p = k.into_inner().ok().unwrap();
    p.check().unwrap();
    assert_eq!(p.sizes().allocated, Size(0));
}

#[test]
fn a_heap_at_the_top_over_keep_free() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p = parent_q1(&mut t, &mut h, 16 * Q);
    let mut k = KeepFree::<_, 2>::new(&mut p, Size(2 * Q));
    let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut heap =
        Arena::new("heap", Size(8), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
            .unwrap();
    // Overflowing requests: errors, no panic, nothing changed.
    let s0 = heap.sizes();
    for c in [
        Constraints::new(Size(usize::MAX)),
        Constraints::new(Size(usize::MAX - 7)),
        Constraints::new(Size(8)).phase(Size(usize::MAX & !7)).align(Size(1 << 63)),
        Constraints::new(Size(1 << 63)).align(Size(1 << 63)),
        Constraints::new(Size(16)).nocross(Size(1 << 63)).align(Size(1 << 62)),
        Constraints::new(Size(Q)).min_addr(Addr(usize::MAX - Q)),
        Constraints::new(Size(Q)).from_top(true).align(Size(1 << 63)),
    ] {
        let r = heap.xalloc(&c);
        assert!(r.is_err(), "{c:?}: {r:?}");
        assert_eq!(heap.sizes(), s0);
        heap.check().unwrap();
    }
    // Fill from the top.
    let mut live = Vec::new();
    loop {
        match heap.xalloc(&Constraints::new(Size(Q - 8)).from_top(true).policy(Policy::BestFit)) {
            Ok(a) => {
                assert!(a.0.checked_add(Q - 8).is_some());
                live.push(a)
            }
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
        heap.check().unwrap();
    }
    assert!(!live.is_empty());
    // Grow the highest allocation past the top: NoSpace (or Overflow), no panic.
    let hi = *live.iter().max().unwrap();
    for new in [usize::MAX - hi.0, usize::MAX - hi.0 + 1, usize::MAX, 2 * Q] {
        let r = heap.resize(hi, Size(Q - 8), Size(new));
        assert!(r.is_err(), "{new:#x}: {r:?}");
        heap.check().unwrap();
    }
    // Shrink then grow back, free_part the tail.
    heap.resize(hi, Size(Q - 8), Size(8)).unwrap();
    heap.resize(hi, Size(8), Size(Q - 8)).unwrap();
    heap.free_part(hi, Size(Q / 2), Size(Q / 2 - 8)).unwrap();
    heap.free(hi, Size(Q / 2)).unwrap();
    live.retain(|a| *a != hi);
    for (i, a) in live.iter().enumerate() {
        if i % 2 == 0 {
            heap.free_deferred(*a, Size(Q - 8)).unwrap();
        } else {
            heap.free(*a, Size(Q - 8)).unwrap();
        }
        heap.check().unwrap();
        heap.source().check().unwrap();
    }
    heap.flushed();
    heap.check().unwrap();
    assert_eq!(heap.sizes().imported, Size(0));
    drop(heap);
    let p = k.into_inner().ok().unwrap();
    p.check().unwrap();
    assert_eq!(p.sizes().allocated, Size(0));
}

/// A heap dropped with deferred frees unflushed at the top: the spans
/// holding them go to the parent as its own deferred frees, never kept;
/// the rest are kept; `into_inner` then gives the parent everything.
#[test]
fn drop_with_unflushed_at_the_top_then_into_inner() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p = parent_q1(&mut t, &mut h, 16 * Q);
    let mut k = KeepFree::<_, 4>::new(&mut p, Size(Q));
    {
        let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut heap =
            Arena::new("heap", Size(8), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &mut k)
                .unwrap();
        let a: Vec<Addr> =
            (0..6).map(|_| heap.alloc(Size(Q), Policy::InstantFit).unwrap()).collect();
        for (i, x) in a.iter().enumerate() {
            if i % 2 == 0 {
                heap.free_deferred(*x, Size(Q)).unwrap();
            }
        }
        heap.check().unwrap();
    }
    k.check().unwrap();
    // The spans holding unflushed frees are unflushed in the parent, not kept.
    let kept = k.kept().to_vec();
    let parent_unfl = k.inner().sizes().unflushed;
    assert_eq!(parent_unfl, Size(3 * Q), "{:?}", k.inner().sizes());
    assert_eq!(kept.len(), 3);
    // Those unflushed in the parent cannot be imported before the flush.
    let mut fresh = Vec::new();
    while let Ok(r) = k.import(Size(Q), Size(Q)) {
        fresh.push(r);
    }
    k.check().unwrap();
    assert_eq!(fresh.len(), 15 - 3, "{fresh:?}");
    for f in fresh {
        k.release(f).unwrap();
    }
    let p = match k.into_inner() {
        Ok(p) => p,
        Err(_) => panic!("refused"),
    };
    p.check().unwrap();
    assert_eq!(p.flushed(), Size(3 * Q));
    assert_eq!(p.sizes().allocated, Size(0));
    p.check().unwrap();
}
