//! Outside review (round 19): hand-written edge cases of `xalloc`'s
//! validation, extreme sizes and addresses. Marked `// HOLDS:` or
//! `// DEFECT:`.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore};
use vmspace::{Addr, Size};

fn with_arena(
    q: usize,
    spans: &[(usize, usize)],
    f: impl FnOnce(&mut Arena<SliceStore<'_>, NoSource>),
) {
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut a =
        Arena::new("e", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    for &(b, s) in spans {
        a.add(Addr(b), Size(s)).unwrap();
    }
    f(&mut a);
    a.check().unwrap();
}

fn walk(a: &Arena<SliceStore<'_>, NoSource>) -> Vec<(usize, usize, bool)> {
    a.walk(SegmentKinds::ALL)
        .map(|s| (s.range.base().0, s.range.limit().0, s.kind == vmspace::arena::SegmentKind::Free))
        .collect()
}

// HOLDS: invalid combinations are refused with the documented error class,
// never a panic, never an address, the arena unchanged, one failure each.
#[test]
fn invalid_constraints_refused_with_documented_errors() {
    with_arena(16, &[(0x1000, 0x1000)], |a| {
        let before = walk(a);
        let cases: Vec<(Constraints, &str)> = vec![
            (Constraints::new(Size(0)), "inval"),
            (Constraints::new(Size(16)).align(Size(48)), "inval"),
            (Constraints::new(Size(16)).align(Size(64)).phase(Size(64)), "inval"),
            (Constraints::new(Size(16)).align(Size(64)).phase(Size(8)), "misaligned"),
            (Constraints::new(Size(16)).nocross(Size(24)), "inval"),
            (Constraints::new(Size(16)).nocross(Size(8)), "misaligned"),
            (Constraints::new(Size(64)).nocross(Size(32)), "over"),
            (Constraints::new(Size(32)).align(Size(64)).phase(Size(48)).nocross(Size(64)), "over"),
            (Constraints::new(Size(16)).min_addr(Addr(0x1800)).max_addr(Addr(0x1800)), "over"),
            (Constraints::new(Size(16)).min_addr(Addr(0x1800)).max_addr(Addr(0x1700)), "over"),
            (Constraints::new(Size(16)).max_addr(Addr(0)), "over"),
            (Constraints::new(Size(16)).min_addr(Addr(usize::MAX)), "over"),
            (Constraints::new(Size(16)).exact(Addr(0x1008)), "misaligned"),
            (Constraints::new(Size(16)).align(Size(64)).exact(Addr(0x1010)), "over"),
            (Constraints::new(Size(32)).nocross(Size(64)).exact(Addr(0x1030)), "over"),
            (Constraints::new(Size(16)).exact(Addr(0x1800)).min_addr(Addr(0x1810)), "over"),
            (Constraints::new(Size(16)).exact(Addr(0x1800)).max_addr(Addr(0x1808)), "over"),
            (Constraints::new(Size(usize::MAX)), "any"),
            (Constraints::new(Size(usize::MAX - 15)), "any"),
            (
                Constraints::new(Size((1 << 63) + 16))
                    .align(Size(1 << 63))
                    .phase(Size((1 << 63) - 16)),
                "over",
            ),
            (
                Constraints::new(Size(1 << 63)).align(Size(1 << 63)).phase(Size((1 << 63) - 16)),
                "nospace",
            ),
            (Constraints::new(Size(16)).exact(Addr(usize::MAX - 15)), "any"),
            (
                Constraints::new(Size(32))
                    .align(Size(64))
                    .phase(Size(48))
                    .min_addr(Addr(0x1000))
                    .max_addr(Addr(0x1040)),
                "over",
            ),
        ];
        for (i, (c, want)) in cases.iter().enumerate() {
            for p in Policy::ALL {
                for top in [false, true] {
                    let c = c.policy(p).from_top(top);
                    let f0 = a.counters().failures;
                    let r = a.xalloc(&c);
                    let ok = matches!(
                        (*want, &r),
                        ("inval", Err(ArenaError::InvalidArgument(_)))
                            | ("misaligned", Err(ArenaError::Misaligned { .. }))
                            | ("over", Err(ArenaError::OverConstrained(_)))
                            | ("any", Err(_))
                            | ("nospace", Err(ArenaError::NoSpace { .. }))
                    );
                    assert!(ok, "case {i} {c:?}: wanted {want}, got {r:?}");
                    assert_eq!(a.counters().failures, f0 + 1, "case {i}: one failure");
                    assert_eq!(walk(a), before, "case {i}: arena changed");
                }
            }
        }
    });
}

// HOLDS: placements at the extremes of the address space: alignment 2^63
// with a phase just below it, nocross 2^63, from the top and the bottom,
// a span ending one quantum below 2^64.
#[test]
fn extreme_alignment_phase_nocross() {
    let half = 1usize << 63;
    with_arena(16, &[(half - 0x1000, 0x2000), (usize::MAX - 0x1000 - 15, 0x1000)], |a| {
        for p in Policy::ALL {
            for top in [false, true] {
                let c = Constraints::new(Size(16))
                    .align(Size(half))
                    .phase(Size(half - 16))
                    .nocross(Size(half))
                    .policy(p)
                    .from_top(top);
                let x = a.xalloc(&c).unwrap_or_else(|e| panic!("{p:?} {top}: {e:?}"));
                assert_eq!(x.0, half - 16, "{p:?} {top}");
                a.free(x, Size(16)).unwrap();
                // Crossing 2^63 is refused as no placement (within this span).
                let c = Constraints::new(Size(32))
                    .min_addr(Addr(half - 16))
                    .max_addr(Addr(half + 16))
                    .nocross(Size(half))
                    .policy(p)
                    .from_top(top);
                assert!(matches!(a.xalloc(&c), Err(ArenaError::OverConstrained(_))), "{p:?} {top}");
                // The top span: the highest placement ends one quantum below 2^64.
                let c = Constraints::new(Size(0x100)).min_addr(Addr(half)).policy(p).from_top(true);
                let x = a.xalloc(&c).unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
                if p == Policy::FirstFit {
                    assert_eq!(x.0, usize::MAX - 15 - 0x100, "{p:?}");
                }
                a.free(x, Size(0x100)).unwrap();
            }
        }
    });
}

use std::sync::Mutex;
use vmspace::Range;

static LEAKS: Mutex<Vec<(&'static str, usize, usize)>> = Mutex::new(Vec::new());

fn hook(name: &'static str, r: Range) {
    LEAKS.lock().unwrap().push((name, r.base().0, r.size().0));
}

// HOLDS: a child over a parent arena: a sub-quantum allocation imports one
// parent quantum; freed deferred and dropped unflushed, the span goes back
// as a deferred free of the parent (unflushed until the parent's
// `flushed()`); the leak hook reports live allocations as asked (after a
// free_part: each piece) and unflushed ranges whole.
#[test]
fn child_drop_with_unflushed_and_leak_hook() {
    let (mut ptb, mut phb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
    let mut parent = Arena::new(
        "parent",
        Size(4096),
        SliceStore::new(&mut ptb),
        SliceStore::new(&mut phb),
        NoSource,
    )
    .unwrap();
    parent.add(Addr(0x10_0000), Size(0x10_0000)).unwrap();
    {
        let (mut ctb, mut chb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut child = Arena::new(
            "child",
            Size(16),
            SliceStore::new(&mut ctb),
            SliceStore::new(&mut chb),
            &mut parent,
        )
        .unwrap();
        child.set_leak_hook(Some(hook));
        let x = child.alloc(Size(1), Policy::InstantFit).unwrap();
        assert_eq!(child.sizes().imported, Size(4096));
        let y = child.alloc(Size(100), Policy::FirstFit).unwrap();
        child.free_part(y, Size(32), Size(32)).unwrap();
        let big = child.alloc(Size(4096 * 2 + 1), Policy::BestFit).unwrap();
        assert_eq!(child.source().sizes().allocated, Size(4096 * 4));
        child.free_deferred(x, Size(1)).unwrap();
        child.free_deferred(big, Size(4096 * 2 + 1)).unwrap();
        assert_eq!(child.sizes().unflushed, Size(16 + 4096 * 2 + 16));
        child.check().unwrap();
        // Drop: y's two pieces live, x and big unflushed.
        let _ = y;
    }
    let mut leaks = LEAKS.lock().unwrap().clone();
    leaks.sort();
    let p = parent.sizes();
    assert_eq!(p.allocated, Size(0), "every import given back");
    assert_eq!(p.unflushed, Size(4096 * 4), "given back unflushed: deferred in the parent");
    assert_eq!(parent.flushed(), Size(4096 * 4));
    assert_eq!(parent.sizes().free, Size(0x10_0000));
    parent.check().unwrap();
    assert_eq!(leaks.len(), 4, "{leaks:x?}");
    let sizes: Vec<usize> = leaks.iter().map(|l| l.2).collect();
    let mut want = vec![16, 32, 100 - 64, 4096 * 2 + 16];
    want.sort();
    let mut got = sizes.clone();
    got.sort();
    assert_eq!(got, want, "{leaks:x?}");
}

// HOLDS: a parent borrowed elsewhere: the child's import fails with
// SourceBusy (nothing changed, one failure); a give-back the parent refuses
// leaves the span free in the child (export_failures), the free itself
// succeeds; the next free in that span, or the child's drop, gives it back.
#[test]
fn busy_parent_refuses_and_the_span_stays_free() {
    use std::cell::RefCell;
    let (mut ptb, mut phb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
    let mut p = Arena::new(
        "parent",
        Size(256),
        SliceStore::new(&mut ptb),
        SliceStore::new(&mut phb),
        NoSource,
    )
    .unwrap();
    p.add(Addr(0x10000), Size(0x10000)).unwrap();
    let parent = RefCell::new(p);
    {
        let (mut ctb, mut chb) = (vec![0u8; 1 << 14], vec![0u8; 1 << 12]);
        let mut child = Arena::new(
            "child",
            Size(16),
            SliceStore::new(&mut ctb),
            SliceStore::new(&mut chb),
            &parent,
        )
        .unwrap();
        {
            let _b = parent.borrow();
            assert_eq!(child.alloc(Size(16), Policy::InstantFit), Err(ArenaError::SourceBusy));
            assert_eq!(child.counters().failures, 1);
            assert_eq!(child.span_count(), 0);
        }
        let x = child.alloc(Size(16), Policy::InstantFit).unwrap();
        let y = child.alloc(Size(16), Policy::InstantFit).unwrap();
        {
            let _b = parent.borrow();
            child.free(x, Size(16)).unwrap();
            child.free(y, Size(16)).unwrap();
        }
        assert_eq!(child.counters().export_failures, 1);
        assert_eq!(child.span_count(), 1, "refused: the span stays, free");
        assert_eq!(child.sizes().free, Size(256));
        child.check().unwrap();
        assert_eq!(parent.borrow().sizes().allocated, Size(256));
        // It serves the next allocation without importing again.
        let z = child.alloc(Size(32), Policy::FirstFit).unwrap();
        assert_eq!(child.counters().imports, 1);
        child.free(z, Size(32)).unwrap();
        assert_eq!(child.span_count(), 0, "given back at the next free");
        let _w = child.alloc(Size(32), Policy::FirstFit).unwrap();
        // Dropped live: the span goes back.
    }
    assert_eq!(parent.borrow().sizes().allocated, Size(0));
    parent.borrow().check().unwrap();
}

// HOLDS: frees that name more or less than one live allocation are
// refused and change nothing: a size spanning two adjacent allocations, a
// free_part running into the next one, a resize growing into it, a resize
// to zero; a double free; a same-class different size.
#[test]
fn frees_spanning_two_allocations_refused() {
    with_arena(16, &[(0x1000, 0x1000)], |a| {
        let x = a.alloc(Size(0x30), Policy::FirstFit).unwrap();
        let y = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
        assert_eq!(y.0, x.0 + 0x30);
        let before = walk(a);
        let bad0 = a.counters().bad_frees;
        assert!(matches!(
            a.free(x, Size(0x50)),
            Err(ArenaError::BadFree { allocated: Some(Size(0x30)), .. })
        ));
        assert!(matches!(a.free_part(x, Size(0x20), Size(0x20)), Err(ArenaError::BadFree { .. })));
        assert!(matches!(a.free(x, Size(0x2f)), Err(ArenaError::BadFree { .. })));
        assert_eq!(a.counters().bad_frees, bad0 + 3);
        let f0 = a.counters().failures;
        assert_eq!(a.resize(x, Size(0x30), Size(0x31)), Err(ArenaError::NoSpace { size: 0x31 }));
        assert!(matches!(a.resize(x, Size(0x30), Size(0)), Err(ArenaError::InvalidArgument(_))));
        assert_eq!(a.counters().failures, f0 + 2);
        assert_eq!(walk(a), before);
        a.free(y, Size(0x20)).unwrap();
        assert!(matches!(a.free(y, Size(0x20)), Err(ArenaError::BadFree { allocated: None, .. })));
        a.resize(x, Size(0x30), Size(0x50)).unwrap();
        a.free(x, Size(0x50)).unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    });
}
