//! Round 53: `give_back_free_spans` beside the held-span wait (frees
//! counting down while the source is busy), thousands of spans, resized
//! and partly freed allocations before `into_source`.

mod outside_r53_common;

use outside_r53_common::{bytes, Give, Model, PAGE};
use vmspace::arena::{Arena, Constraints, Policy, SliceStore};
use vmspace::{Addr, Size};

type A<'a> = Arena<SliceStore<'a>, Model>;

fn arena<'a>(t: &'a mut [u64], h: &'a mut [u64], m: &Model) -> A<'a> {
    Arena::new("r53w", Size(16), SliceStore::new(bytes(t)), SliceStore::new(bytes(h)), m.clone())
        .unwrap()
}

/// Free the small allocation at `x` and take its place again: a free that
/// leaves a segment free, in a span never wholly free.
fn churn(a: &mut A<'_>, x: Addr) {
    a.free(x, Size(16)).unwrap();
    assert_eq!(a.xalloc(&Constraints::new(Size(16)).exact(x)).unwrap(), x);
}

/// After `give_back_free_spans` empties the held spans, a span refused as
/// busy later is offered at the next free, as the `Source` docs say, not
/// after a wait left over from before.
#[test]
fn a_busy_refusal_after_an_explicit_give_back_is_offered_at_the_next_free() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    // A span kept busy by two small allocations, for churning.
    let s0 = a.alloc(Size(16), Policy::InstantFit).unwrap();
    let _s1 = a.alloc(Size(16), Policy::InstantFit).unwrap();
    let x = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    assert_eq!(a.sizes().imported.0, 13 * PAGE);
    m.always(Some(Give::Busy));
    a.free(x, Size(4 * PAGE)).unwrap(); // refused: x's span held
    let calls = m.calls();
    churn(&mut a, s0); // the next free offers it: refused, the wait grows
    assert_eq!(m.calls(), calls + 1, "offered at the next free");
    m.always(None);
    assert_eq!(a.give_back_free_spans(), Size(4 * PAGE));
    assert_eq!(a.sizes().imported.0, 9 * PAGE);
    // Nothing held now: frees call the source for nothing.
    let calls = m.calls();
    churn(&mut a, s0);
    churn(&mut a, s0);
    assert_eq!(m.calls(), calls, "no walk with nothing held");
    // Busy again for y's give-back, then not: the docs' "offered again at
    // the next free".
    m.script(&[Give::Busy]);
    a.free(y, Size(8 * PAGE)).unwrap();
    assert_eq!(a.sizes().imported.0, 9 * PAGE, "y's span held");
    let calls = m.calls();
    churn(&mut a, s0);
    // Was a DEFECT (fixed: a walk that finds nothing busy clears the
    // wait). src/arena/source.rs:46-49 ("A give-back refused with
    // SourceBusy ... leaves the span in the arena, free, offered again at
    // the next free, then at the free after 2, 4, ..."). The walk run by
    // `give_back_free_spans` resets `held_shift` but leaves the `held_skip`
    // of the busy wait before it (2 here), so y's span waits 2 more frees.
    assert_eq!(m.calls(), calls + 1, "y's span offered at the next free");
    assert_eq!(a.sizes().imported.0, PAGE, "and given back");
    a.check().unwrap();
}

/// The wait counts down as documented when no explicit call intervenes
/// (the control for the test above): next free, then after 2, then 4.
#[test]
fn the_wait_without_an_explicit_give_back() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    let s0 = a.alloc(Size(16), Policy::InstantFit).unwrap();
    let _s1 = a.alloc(Size(16), Policy::InstantFit).unwrap();
    let x = a.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
    m.always(Some(Give::Busy));
    a.free(x, Size(4 * PAGE)).unwrap();
    let mut offered_at = Vec::new();
    for i in 1..=16 {
        let c = m.calls();
        churn(&mut a, s0);
        if m.calls() > c {
            offered_at.push(i);
        }
    }
    assert_eq!(offered_at, vec![1, 4, 9], "the next free, then after 2, then after 4");
    // An explicit give-back while busy offers now, and the wait goes on.
    let c = m.calls();
    assert_eq!(a.give_back_free_spans(), Size(0));
    assert_eq!(m.calls(), c + 1);
    a.check().unwrap();
    m.always(None);
    assert_eq!(a.give_back_free_spans(), Size(4 * PAGE));
    assert_eq!(a.sizes().imported.0, PAGE);
    a.check().unwrap();
}

/// Thousands of spans, all refused as busy as they empty, then all
/// given back by one call: its result is their bytes, the counters and
/// the books agree.
#[test]
fn thousands_of_held_spans_go_back_in_one_call() {
    const N: usize = 3000;
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 16], vec![0u64; 1 << 14]);
    let mut a = arena(&mut t, &mut h, &m);
    let xs: Vec<(Addr, Size)> = (0..N)
        .map(|i| {
            let s = Size((1 + i % 3) * PAGE);
            (a.alloc(s, Policy::InstantFit).unwrap(), s)
        })
        .collect();
    let total: usize = xs.iter().map(|&(_, s)| s.0).sum();
    assert_eq!((a.sizes().imported.0, a.span_count()), (total, N));
    m.always(Some(Give::Busy));
    for &(x, s) in &xs {
        a.free(x, s).unwrap();
    }
    a.check().unwrap();
    assert_eq!(a.sizes().imported.0, total, "all held");
    let refusals = m.calls();
    let c = a.counters();
    assert_eq!((c.exports, c.export_failures as usize), (0, refusals));
    m.always(None);
    assert_eq!(a.give_back_free_spans(), Size(total));
    let c = a.counters();
    assert_eq!((c.exports as usize, c.export_failures as usize), (N, refusals));
    assert_eq!((m.outstanding(), m.bogus(), a.span_count()), (0, 0, 0));
    a.check().unwrap();
    assert_eq!(a.give_back_free_spans(), Size(0));
    assert!(a.into_source().is_ok());
}

/// Resized and partly freed allocations in imported spans: once all is
/// freed, `into_source` gives every span back; while any piece lives, the
/// arena comes back with its books unchanged.
#[test]
fn resized_and_partly_freed_allocations() {
    let m = Model::new();
    let (mut t, mut h) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut a = arena(&mut t, &mut h, &m);
    let x = a.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(16 * PAGE), Policy::InstantFit).unwrap();
    a.resize(x, Size(8 * PAGE), Size(2 * PAGE)).unwrap();
    a.free_part(y, Size(4 * PAGE), Size(4 * PAGE)).unwrap();
    a.check().unwrap();
    let before = (a.sizes(), a.counters(), m.outstanding());
    let mut a = a.into_source().err().expect("live pieces").into_inner();
    assert_eq!((a.sizes(), a.counters(), m.outstanding()), before, "untouched");
    a.free(x, Size(2 * PAGE)).unwrap();
    assert_eq!(m.outstanding(), 16 * PAGE, "x's span went back at its free");
    a.free(y, Size(4 * PAGE)).unwrap();
    let mut a = a.into_source().err().expect("y's tail lives").into_inner();
    a.resize(Addr(y.0 + 8 * PAGE), Size(8 * PAGE), Size(PAGE)).unwrap();
    a.free(Addr(y.0 + 8 * PAGE), Size(PAGE)).unwrap();
    a.check().unwrap();
    // The last free gave the span back already; into_source has nothing to do.
    let calls = m.calls();
    let back = a.into_source().unwrap_or_else(|_| panic!("all freed"));
    assert_eq!((back.outstanding(), back.calls(), back.bogus()), (0, calls, 0));
}
