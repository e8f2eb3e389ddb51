//! Round 53: `Arena::give_back_free_spans` and `Arena::into_source`
//! against a model of the source's books: bytes returned, counters,
//! refusals of each kind, panics before and after the range is taken.

mod outside_r53_common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use outside_r53_common::{bytes, quiet, Give, Model, PAGE};
use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::{Addr, Range, Size};

type A<'a> = Arena<SliceStore<'a>, Model>;

fn arena<'a>(t: &'a mut [u64], h: &'a mut [u64], m: &Model) -> A<'a> {
    Arena::new("r53", Size(64), SliceStore::new(bytes(t)), SliceStore::new(bytes(h)), m.clone())
        .unwrap()
}

/// Allocations each filling a span of its own (`pages` pages each).
fn spans(a: &mut A<'_>, pages: &[usize]) -> Vec<(Addr, Size)> {
    pages
        .iter()
        .map(|&p| {
            let before = a.sizes().imported;
            let s = Size(p * PAGE);
            let x = a.alloc(s, Policy::InstantFit).unwrap();
            assert_eq!(a.sizes().imported.0 - before.0, p * PAGE, "one exact import each");
            (x, s)
        })
        .collect()
}

#[test]
fn each_refusal_kind_and_the_bytes_returned() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    let xs = spans(&mut a, &[1, 2, 4, 8, 16]);
    // Refused, stranded, taken, refused, busy (the last, so that no walk
    // for held spans runs before the end).
    m.script(&[Give::Refuse, Give::Strand, Give::Take, Give::Refuse, Give::Busy]);
    for &(x, s) in &xs {
        a.free(x, s).unwrap();
        a.check().unwrap();
    }
    let c0 = a.counters();
    let kept = a.sizes().imported.0;
    assert_eq!(kept, 25 * PAGE, "1 + 8 + 16 pages kept");
    assert_eq!((c0.exports, c0.export_failures), (1, 4));
    assert_eq!(kept, m.outstanding(), "the arena's imports are the source's books");
    assert_eq!(m.stranded(), 2 * PAGE);
    assert_eq!(a.sizes().free, a.sizes().total, "kept spans free, usable");
    // Nothing to refuse now: every kept span leaves, exactly its bytes.
    let calls = m.calls();
    let left = a.give_back_free_spans();
    assert_eq!(left.0, kept);
    assert_eq!(m.calls() - calls, 3, "each kept span offered once");
    assert_eq!(a.sizes().imported.0, 0);
    assert_eq!(m.outstanding(), 0);
    let c1 = a.counters();
    assert_eq!((c1.exports - c0.exports, c1.export_failures - c0.export_failures), (3, 0));
    a.check().unwrap();
    // Again: nothing held, nothing offered, nothing left.
    assert_eq!(a.give_back_free_spans(), Size(0));
    assert_eq!(m.calls() - calls, 3);
    assert_eq!(m.bogus(), 0, "no range given back twice");
    let back = a.into_source().unwrap_or_else(|_| panic!("nothing imported"));
    assert_eq!(back.outstanding(), 0);
}

#[test]
fn refused_again_stays_and_stranded_counts_as_left() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    let xs = spans(&mut a, &[3, 5]);
    m.always(Some(Give::Refuse));
    for &(x, s) in &xs {
        a.free(x, s).unwrap();
    }
    assert_eq!(a.sizes().imported.0, 8 * PAGE);
    for round in 0..3 {
        let c0 = a.counters();
        assert_eq!(a.give_back_free_spans(), Size(0), "round {round}");
        let c1 = a.counters();
        assert_eq!((c1.exports - c0.exports, c1.export_failures - c0.export_failures), (0, 2));
        assert_eq!(a.sizes().imported.0, 8 * PAGE);
        assert_eq!(a.sizes().free, a.sizes().total);
        a.check().unwrap();
    }
    // The refused spans are still usable: both allocate again, no import.
    let imports = a.counters().imports;
    let y = a.alloc(Size(5 * PAGE), Policy::InstantFit).unwrap();
    assert_eq!(a.counters().imports, imports);
    m.always(None);
    m.script(&[Give::Strand]);
    // The 3-page span is wholly free: stranded, and it left the arena.
    assert_eq!(a.give_back_free_spans(), Size(3 * PAGE));
    assert_eq!(m.stranded(), 3 * PAGE);
    let a = a.into_source().err().expect("y is live").into_inner();
    assert_eq!(a.sizes().imported.0, 5 * PAGE, "untouched: y's span stays");
    let mut a = a;
    a.free(y, Size(5 * PAGE)).unwrap();
    let back = a.into_source().unwrap_or_else(|_| panic!("y freed and given back"));
    assert_eq!((back.outstanding(), back.bogus()), (0, 0));
}

/// A give-back that panics part way through the walk: the span it was
/// giving is off the arena's books (lost, or taken, never in two places),
/// the others stay held, none is offered while the note stands, and the
/// first call to return lets them go.
#[test]
fn a_panic_part_way_through_the_walk() {
    quiet();
    for when in [Give::PanicBefore, Give::PanicAfter] {
        let m = Model::new();
        let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
        let mut a = arena(&mut t, &mut h, &m);
        let xs = spans(&mut a, &[1, 2, 4]);
        m.always(Some(Give::Busy));
        for &(x, s) in &xs {
            a.free(x, s).unwrap();
        }
        assert_eq!(a.sizes().imported.0, 7 * PAGE);
        m.always(None);
        m.script(&[Give::Take, when]);
        let c0 = a.counters();
        let r = catch_unwind(AssertUnwindSafe(|| a.give_back_free_spans()));
        assert!(r.is_err(), "{when:?}: the walk panicked");
        a.check().unwrap();
        let c1 = a.counters();
        assert_eq!(
            (c1.exports - c0.exports, c1.export_failures - c0.export_failures),
            (1, 0),
            "{when:?}: a panicked give-back counts in neither"
        );
        assert_eq!(a.sizes().imported.0, 4 * PAGE, "{when:?}: the third span held");
        assert_eq!(a.sizes().free, a.sizes().total);
        // The note stands: nothing offered, nothing left.
        let calls = m.calls();
        assert_eq!(a.give_back_free_spans(), Size(0));
        assert_eq!(a.give_back_free_spans(), Size(0));
        assert_eq!(m.calls(), calls, "{when:?}: the source not called while the note stands");
        let mut a = a.into_source().err().expect("a span held under the note").into_inner();
        // An import returns: the note goes; the held span and the new one
        // go back.
        let z = a.alloc(Size(32 * PAGE), Policy::InstantFit).unwrap();
        a.free(z, Size(32 * PAGE)).unwrap();
        a.check().unwrap();
        let back = a.into_source().unwrap_or_else(|_| panic!("{when:?}: the note cleared"));
        let lost = if when == Give::PanicBefore { 2 * PAGE } else { 0 };
        assert_eq!(back.outstanding(), lost, "{when:?}: only the panicked span lost");
        assert_eq!(back.bogus(), 0, "{when:?}: nothing given back twice");
    }
}

thread_local! {
    static LEAKED: Cell<usize> = const { Cell::new(0) };
}

fn hook(_: &'static str, r: Range) {
    LEAKED.with(|l| l.set(l.get() + r.size().0));
}

/// `into_source` panicking in its give-back: the arena is dropped as the
/// panic unwinds; its drop calls the source no more (a second panic would
/// abort), fires no leak hook (nothing allocated), and gives nothing twice.
#[test]
fn into_source_whose_give_back_panics() {
    quiet();
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    a.set_leak_hook(Some(hook));
    let xs = spans(&mut a, &[1, 2, 4, 8]);
    m.always(Some(Give::Busy));
    for &(x, s) in &xs {
        a.free(x, s).unwrap();
    }
    m.always(None);
    m.script(&[Give::Take, Give::PanicBefore]);
    let calls = m.calls();
    let r = catch_unwind(AssertUnwindSafe(move || a.into_source().is_ok()));
    assert!(r.is_err());
    assert_eq!(m.calls() - calls, 2, "the drop called the source no more");
    assert_eq!(m.outstanding(), 14 * PAGE, "the rest stays taken in the source");
    assert_eq!((m.bogus(), LEAKED.with(Cell::get)), (0, 0));
}

/// A successful `into_source` fires no leak hook; refusals neither.
#[test]
fn the_leak_hook_is_not_fired_by_into_source() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    a.set_leak_hook(Some(hook));
    a.add(Addr(0x10_0000), Size(4 * PAGE)).unwrap();
    let x = a.alloc(Size(3 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    let mut a = a.into_source().err().expect("live").into_inner();
    a.free(x, Size(3 * PAGE)).unwrap();
    let mut a = a.into_source().err().expect("live").into_inner();
    a.free_deferred(y, Size(8 * PAGE)).unwrap();
    let mut a = a.into_source().err().expect("unflushed").into_inner();
    assert_eq!(LEAKED.with(Cell::get), 0);
    a.flushed();
    let back = a.into_source().unwrap_or_else(|_| panic!("all free"));
    assert_eq!(LEAKED.with(Cell::get), 0, "no leak reported");
    assert_eq!(back.outstanding(), 0);
    // The hook works: a drop with y live reports it.
    let mut a = arena(&mut t, &mut h, &m);
    a.set_leak_hook(Some(hook));
    let _y = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    drop(a);
    assert_eq!(LEAKED.with(Cell::get), 8 * PAGE);
}
