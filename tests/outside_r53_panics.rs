//! Round 53: `into_source` and `give_back_free_spans` after panics deeper
//! down: a parent arena's source panicking in the parent's give-back, a
//! `KeepFree` whose source panicked (its busy refusals), and the note with
//! nothing left imported.

mod outside_r53_common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use outside_r53_common::{bytes, quiet, Give, Model, PAGE};
use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::sources::KeepFree;
use vmspace::Size;

/// A child's give-back reaches the parent, whose own give-back to the
/// model panics: both arenas stay consistent, nothing is given twice, and
/// both `into_source`s succeed once the spans are off their books.
#[test]
fn a_panic_two_levels_down() {
    quiet();
    for when in [Give::PanicBefore, Give::PanicAfter] {
        let m = Model::new();
        let (mut pt, mut ph) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let p = Arena::new(
            "p",
            Size(PAGE),
            SliceStore::new(bytes(&mut pt)),
            SliceStore::new(bytes(&mut ph)),
            m.clone(),
        )
        .unwrap();
        let parent = RefCell::new(p);
        let (mut ct, mut ch) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut c = Arena::new(
            "c",
            Size(64),
            SliceStore::new(bytes(&mut ct)),
            SliceStore::new(bytes(&mut ch)),
            &parent,
        )
        .unwrap();
        let x = c.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
        let y = c.alloc(Size(2 * PAGE), Policy::InstantFit).unwrap();
        m.script(&[when]);
        let r = catch_unwind(AssertUnwindSafe(|| c.free(x, Size(4 * PAGE))));
        assert!(r.is_err(), "{when:?}");
        c.check().unwrap();
        parent.borrow().check().unwrap();
        assert!(parent.try_borrow_mut().is_ok(), "{when:?}: the borrow ended as it unwound");
        assert_eq!(c.sizes().imported.0, 2 * PAGE, "{when:?}: x's span off the child's books");
        assert_eq!(
            parent.borrow().sizes().allocated.0,
            2 * PAGE,
            "{when:?}: and freed in the parent"
        );
        // The child's note stands: y's span is held, the child comes back.
        c.free(y, Size(2 * PAGE)).unwrap();
        let mut c = c.into_source().err().expect("the child's note stands").into_inner();
        assert_eq!(c.give_back_free_spans(), Size(0));
        // An import that returns clears the child's note (the parent
        // imports from the model, clearing its own).
        let z = c.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
        c.free(z, Size(8 * PAGE)).unwrap();
        c.check().unwrap();
        let back = c.into_source().unwrap_or_else(|_| panic!("{when:?}: notes cleared"));
        let mut p = back.borrow_mut();
        p.check().unwrap();
        assert_eq!((p.sizes().allocated.0, p.sizes().imported.0), (0, 0), "{when:?}");
        assert_eq!(p.give_back_free_spans(), Size(0));
        drop(p);
        let lost = if when == Give::PanicBefore { 4 * PAGE } else { 0 };
        assert_eq!((m.outstanding(), m.bogus()), (lost, 0), "{when:?}");
    }
}

/// With nothing imported left, the source's panic note does not keep the
/// arena: the changelog's "or the source's last call panicked" reads
/// otherwise; `into_source`'s own doc ties the note to a span that could
/// not be given back. This holds the code's reading.
#[test]
fn the_note_with_nothing_imported() {
    quiet();
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "n",
        Size(64),
        SliceStore::new(bytes(&mut t)),
        SliceStore::new(bytes(&mut h)),
        m.clone(),
    )
    .unwrap();
    let x = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    m.script(&[Give::PanicAfter]);
    assert!(catch_unwind(AssertUnwindSafe(|| a.free(x, Size(4 * PAGE)))).is_err());
    a.check().unwrap();
    assert_eq!(a.sizes().imported, Size(0));
    let calls = m.calls();
    let back = a.into_source().unwrap_or_else(|_| panic!("nothing to give back"));
    assert_eq!((back.calls(), back.outstanding(), back.bogus()), (calls, 0, 0));
}

/// A `KeepFree` whose source panicked refuses give-backs as busy: the
/// arena keeps the span and comes back from `into_source`; once a call
/// below returns, `give_back_free_spans` hands it over and the arena goes.
#[test]
fn keep_free_busy_after_a_panic_below() {
    quiet();
    let m = Model::new();
    let kf: KeepFree<Model, 0> = KeepFree::new(m.clone(), Size(PAGE));
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "k",
        Size(64),
        SliceStore::new(bytes(&mut t)),
        SliceStore::new(bytes(&mut h)),
        kf,
    )
    .unwrap();
    let x = a.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(2 * PAGE), Policy::InstantFit).unwrap();
    m.script(&[Give::PanicBefore]);
    assert!(catch_unwind(AssertUnwindSafe(|| a.free(x, Size(PAGE)))).is_err());
    a.check().unwrap();
    // A call into the arena's source that returns: an import, through
    // KeepFree into the model (nothing kept), clearing both notes.
    let z = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    let c0 = a.counters();
    a.free(z, Size(4 * PAGE)).unwrap();
    assert_eq!(a.counters().exports, c0.exports + 1, "the note cleared: z's span taken");
    // With N = 0 every import reaches the model, so both notes clear
    // together (the busy case, below, needs a kept span).
    a.free(y, Size(2 * PAGE)).unwrap();
    let back = a.into_source().unwrap_or_else(|_| panic!("all given back"));
    let m2 = back.into_inner().unwrap_or_else(|_| panic!("nothing kept"));
    assert_eq!((m2.outstanding(), m2.bogus()), (PAGE, 0), "only x's span lost");
}

/// `KeepFree<_, 1>` keeps one span; a panic below sets its note. The
/// arena's next import asks the source below its quantum (a call that
/// returns), which clears KeepFree's note with the arena's: the freed
/// span is then kept, not refused, and `into_source` succeeds.
#[test]
fn keep_free_with_a_kept_span_after_a_panic_below() {
    quiet();
    let m = Model::new();
    let kf: KeepFree<Model, 1> = KeepFree::new(m.clone(), Size(PAGE));
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "k",
        Size(64),
        SliceStore::new(bytes(&mut t)),
        SliceStore::new(bytes(&mut h)),
        kf,
    )
    .unwrap();
    let x = a.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    a.free(x, Size(PAGE)).unwrap(); // kept by KeepFree
    assert_eq!(a.source().kept().len(), 1);
    let v = a.alloc(Size(2 * PAGE), Policy::InstantFit).unwrap();
    assert_eq!(a.source().kept().len(), 1, "too small for v");
    m.script(&[Give::PanicBefore]);
    // KeepFree full: y's span goes below, which panics.
    assert!(catch_unwind(AssertUnwindSafe(|| a.free(y, Size(PAGE)))).is_err());
    a.check().unwrap();
    // Both notes stand: v's span is held, the arena comes back.
    a.free(v, Size(2 * PAGE)).unwrap();
    let calls = m.calls();
    let mut a = a.into_source().err().expect("the arena's note stands").into_inner();
    assert_eq!(m.calls(), calls);
    assert_eq!(a.sizes().imported.0, 2 * PAGE);
    // An import neither the held span nor the kept one serves: it asks
    // below (the quantum, then the import), and both notes clear.
    let z = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    assert_eq!(a.source().kept().len(), 1);
    a.free(z, Size(4 * PAGE)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().imported, Size(0), "z's and v's spans went at z's free");
    let kf = a.into_source().unwrap_or_else(|_| panic!("all given back"));
    assert_eq!(kf.kept().len(), 1, "x's span still kept");
    let m2 = kf.into_inner().unwrap_or_else(|_| panic!("trimmed"));
    assert_eq!((m2.outstanding(), m2.bogus()), (PAGE, 0), "only y's span lost");
}
