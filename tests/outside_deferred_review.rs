//! Outside review (from the docs only): the freed-but-not-flushed state of a
//! single `Arena`: every door that could reissue an unflushed range, the
//! statistics, and adversarial frees. Chains and waits are in
//! `outside_deferred_review_chains.rs` and `outside_deferred_review_waits.rs`.

use vmspace::arena::{ArenaError, Constraints, NoSource, Policy, Source};
use vmspace::{Addr, Range, Size};

const Q: usize = 0x1000;
const BASE: usize = 0x1000_0000;

mod outside_deferred_common;
use outside_deferred_common::*;

/// Take everything allocatable, one quantum at a time, through every policy
/// and both interfaces; return what was taken (by address) and the handles.
fn grab_all<I: Source>(a: &mut A<I>, q: usize) -> Vec<Range> {
    let mut got = Vec::new();
    let pols = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit];
    let mut i = 0;
    loop {
        let p = pols[i % 4];
        let res = if i % 3 == 0 {
            a.alloc_handle(Size(q), p).map(|h| h.addr())
        } else if i % 3 == 1 {
            a.alloc(Size(q), p)
        } else {
            a.xalloc(&Constraints::new(Size(q)).policy(p).from_top(true))
        };
        i += 1;
        match res {
            Ok(x) => got.push(r(x.get(), q)),
            Err(_) => break,
        }
        assert!(got.len() < 100_000, "runaway");
    }
    got
}

fn assert_disjoint(got: &[Range], bad: &[Range], what: &str) {
    for g in got {
        for b in bad {
            assert!(!g.overlaps(b), "{what}: UNFLUSHED RANGE REISSUED: {g:?} overlaps {b:?}");
        }
    }
}

#[test]
fn every_door_of_one_arena_refuses_an_unflushed_range() {
    let mut a = arena("doors", Q, NoSource);
    a.add(Addr(BASE), Size(64 * Q)).unwrap();
    let x = a.xalloc(&Constraints::new(Size(2 * Q)).exact(Addr(BASE))).unwrap();
    let u = a.xalloc(&Constraints::new(Size(4 * Q)).exact(Addr(BASE + 2 * Q))).unwrap();
    a.free_deferred(u, Size(4 * Q)).unwrap();
    audit(&a, "after free_deferred");
    let ur = r(u.get(), 4 * Q);
    assert_eq!(unflushed(&a), vec![ur]);
    assert_eq!(a.counters().deferred_frees, 1);

    // exact address inside, windows around it, from the top
    for off in 0..4 {
        let c = Constraints::new(Size(Q)).exact(Addr(u.get() + off * Q));
        assert!(a.xalloc(&c).is_err(), "exact {off}");
        assert!(a.xalloc_handle(&c).is_err(), "exact handle {off}");
    }
    let w = Constraints::new(Size(Q)).min_addr(Addr(BASE + 2 * Q)).max_addr(Addr(BASE + 6 * Q));
    assert!(a.xalloc(&w).is_err(), "window");
    assert!(a.xalloc(&w.from_top(true)).is_err(), "window from top");
    // growing the neighbour into it
    assert!(
        matches!(a.resize(x, Size(2 * Q), Size(3 * Q)), Err(ArenaError::NoSpace { .. })),
        "resize into unflushed"
    );
    // claims on the unflushed range itself
    assert!(a.free(u, Size(4 * Q)).is_err(), "free of unflushed");
    assert!(a.free_deferred(u, Size(4 * Q)).is_err(), "double deferred free");
    assert!(a.free_part(u, Size(Q), Size(Q)).is_err(), "free_part of unflushed");
    assert!(a.resize(u, Size(4 * Q), Size(2 * Q)).is_err(), "resize of unflushed");
    assert!(a.lookup(u).is_none());
    audit(&a, "after refused doors");
    assert_eq!(unflushed(&a), vec![ur]);

    let got = grab_all(&mut a, Q);
    assert_eq!(got.len(), 64 - 6, "everything else allocatable");
    assert_disjoint(&got, &[ur], "grab_all");
    audit(&a, "after grab_all");
    // nothing left, the flush makes exactly 4 quanta free
    assert_eq!(a.flushed(), Size(4 * Q));
    assert_eq!(a.flushed(), Size(0), "second flush");
    let c = a.counters();
    assert_eq!((c.deferred_frees, c.flushes), (1, 1));
    assert!(a.xalloc(&Constraints::new(Size(4 * Q)).exact(u)).is_ok(), "flushed range allocatable");
    audit(&a, "end");
}

#[test]
fn extend_does_not_coalesce_with_unflushed_segments_at_the_seams() {
    let mut a = arena("extend", Q, NoSource);
    a.add(Addr(BASE), Size(8 * Q)).unwrap();
    a.add(Addr(BASE + 24 * Q), Size(8 * Q)).unwrap();
    let lo = a.xalloc(&Constraints::new(Size(Q)).exact(Addr(BASE + 7 * Q))).unwrap();
    let hi = a.xalloc(&Constraints::new(Size(Q)).exact(Addr(BASE + 24 * Q))).unwrap();
    a.free_deferred(lo, Size(Q)).unwrap();
    a.free_deferred(hi, Size(Q)).unwrap();
    a.extend(Addr(BASE + 8 * Q), Size(8 * Q)).unwrap(); // span below grows up
    audit(&a, "after extend up");
    a.extend(Addr(BASE + 16 * Q), Size(8 * Q)).unwrap(); // fills the gap: one span
    audit(&a, "after extend merge");
    assert_eq!(a.span_count(), 1);
    let bad = [r(lo.get(), Q), r(hi.get(), Q)];
    assert_eq!(unflushed(&a), bad.to_vec());
    let got = grab_all(&mut a, Q);
    assert_eq!(got.len(), 30);
    assert_disjoint(&got, &bad, "after extend");
    assert_eq!(a.flushed(), Size(2 * Q));
    audit(&a, "end");
}

#[test]
fn free_part_pieces_and_handles_defer_once() {
    let mut a = arena("pieces", Q, NoSource);
    a.add(Addr(BASE), Size(32 * Q)).unwrap();
    let x = a.alloc(Size(8 * Q), Policy::FirstFit).unwrap();
    a.free_part(x, Size(2 * Q), Size(2 * Q)).unwrap();
    let tail = Addr(x.get() + 4 * Q);
    a.free_deferred(tail, Size(4 * Q)).unwrap();
    a.free_deferred(x, Size(2 * Q)).unwrap();
    audit(&a, "pieces");
    assert_eq!(a.sizes().unflushed, Size(6 * Q));

    let h = a.alloc_handle(Size(3 * Q), Policy::BestFit).unwrap();
    assert_eq!(a.free_handle_deferred(h), Ok(Size(3 * Q)));
    assert!(
        matches!(a.free_handle(h), Err(ArenaError::BadHandle { .. })),
        "free_handle after deferred"
    );
    assert!(matches!(a.free_handle_deferred(h), Err(ArenaError::BadHandle { .. })), "twice");
    assert!(a.free(h.addr(), Size(3 * Q)).is_err(), "by address after deferred by handle");
    assert!(a.free_deferred(h.addr(), Size(3 * Q)).is_err());
    // a held allocation is not freed deferred by address
    let h2 = a.alloc_handle(Size(Q), Policy::BestFit).unwrap();
    assert!(matches!(a.free_deferred(h2.addr(), Size(Q)), Err(ArenaError::BadFree { .. })));
    assert_eq!(a.free_handle(h2), Ok(Size(Q)));
    audit(&a, "handles");
    let c = a.counters();
    assert_eq!(c.deferred_frees, 3);
    let bad = unflushed(&a);
    let got = grab_all(&mut a, Q);
    assert_disjoint(&got, &bad, "pieces");
    assert_eq!(a.flushed(), Size(9 * Q));
    audit(&a, "end");
}

#[test]
fn bad_deferred_frees_are_refused_and_change_nothing() {
    let mut a = arena("bad", 16, NoSource);
    a.add(Addr(BASE), Size(1 << 16)).unwrap();
    let mut b = arena("other", 16, NoSource);
    b.add(Addr(BASE), Size(1 << 16)).unwrap();
    let x = a.alloc(Size(10), Policy::FirstFit).unwrap();
    let y = b.alloc(Size(32), Policy::FirstFit).unwrap();
    assert_eq!(x, y);
    let before = (a.sizes(), a.counters().frees, a.counters().deferred_frees);
    for (addr, size, what) in [
        (x, 16, "rounded size in the same quantum"),
        (x, 11, "size off by one"),
        (x, 0, "zero size"),
        (x, usize::MAX, "usize::MAX size"),
        (x, usize::MAX - 15, "huge size"),
        (Addr(usize::MAX), 10, "addr usize::MAX"),
        (Addr(x.get() + 1), 10, "inside"),
        (Addr(0), 10, "addr 0"),
    ] {
        let e = a.free_deferred(addr, Size(size));
        assert!(e.is_err(), "{what} accepted");
        assert_eq!((a.sizes(), a.counters().frees, a.counters().deferred_frees), before, "{what}");
    }
    // another arena's allocation at the same address, another size
    assert!(b.free_deferred(x, Size(10)).is_err(), "foreign claim");
    // another arena's handle
    let hb = b.alloc_handle(Size(16), Policy::FirstFit).unwrap();
    assert!(a.free_handle_deferred(hb).is_err(), "foreign handle");
    audit(&a, "a");
    audit(&b, "b");
    a.free_deferred(x, Size(10)).unwrap();
    assert_eq!(a.sizes().unflushed, Size(16));
    assert_eq!(b.sizes().unflushed, Size(0));
    assert_eq!(a.flushed(), Size(16));
    assert_eq!(a.flushed(), Size(0));
    b.free(y, Size(32)).unwrap();
    b.free_handle(hb).unwrap();
    audit(&a, "end a");
    audit(&b, "end b");
}

#[test]
fn the_top_of_the_address_space() {
    let mut a = arena("top", Q, NoSource);
    let end = usize::MAX - (Q - 1) - Q; // no span ends at 2^64
    let base = end - 16 * Q;
    a.add(Addr(base), Size(16 * Q)).unwrap();
    let low = a.xalloc(&Constraints::new(Size(14 * Q)).exact(Addr(base))).unwrap();
    let last = a.xalloc(&Constraints::new(Size(2 * Q)).exact(Addr(end - 2 * Q))).unwrap();
    a.free_deferred(last, Size(2 * Q)).unwrap();
    audit(&a, "top deferred");
    assert!(matches!(a.resize(low, Size(14 * Q), Size(15 * Q)), Err(ArenaError::NoSpace { .. })));
    assert!(matches!(
        a.resize(low, Size(14 * Q), Size(usize::MAX - Q)),
        Err(ArenaError::NoSpace { .. }) | Err(ArenaError::Overflow)
    ));
    for size in [usize::MAX, usize::MAX - Q, Q] {
        assert!(a.alloc(Size(size), Policy::InstantFit).is_err(), "alloc {size:#x}");
        assert!(a.xalloc(&Constraints::new(Size(size)).from_top(true)).is_err());
    }
    assert!(a.free_deferred(last, Size(usize::MAX)).is_err());
    a.free_deferred(low, Size(14 * Q)).unwrap();
    assert_eq!(a.flushed(), Size(16 * Q));
    assert_eq!(a.largest_free(), Size(16 * Q));
    audit(&a, "end");
}
