//! Written by a reviewer outside the project (round 69), from README.md ("The
//! arena": `free_part`, `resize`, "completes or fails with the arena
//! unchanged") and the rustdoc of `Arena::free_part`, `Arena::resize`,
//! `Arena::fragmentation` and `Counters`: edge values of each promise
//! (pieces ending at the allocation's unrounded end, sizes in the same
//! quantum, growth by exactly the free room and one quantum more, growth
//! past the top of the address space, which counter each failure goes to).

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

type A<'a> = Arena<SliceStore<'a>, NoSource>;

fn with_arena(quantum: usize, spans: &[(usize, usize)], f: impl FnOnce(&mut A<'_>)) {
    let mut tags = vec![0u8; 1 << 16];
    let mut hash = vec![0u8; 1 << 14];
    let mut a = Arena::new(
        "r69",
        Size(quantum),
        SliceStore::new(&mut tags),
        SliceStore::new(&mut hash),
        NoSource,
    )
    .unwrap();
    for &(b, s) in spans {
        a.add(Addr(b), Size(s)).unwrap();
    }
    f(&mut a);
    a.check().unwrap();
}

fn exact(a: &mut A<'_>, at: usize, size: usize) {
    let x = a.xalloc(&Constraints::new(Size(size)).exact(Addr(at))).unwrap();
    assert_eq!(x, Addr(at));
}

/// The whole-arena state a failing call must leave as it was.
fn state(a: &A<'_>) -> (Vec<(SegmentKind, usize, usize, usize)>, vmspace::arena::Sizes) {
    let segs = a
        .walk(SegmentKinds::ALL)
        .map(|s| (s.kind, s.range.base().0, s.range.size().0, s.requested.0))
        .collect();
    (segs, a.sizes())
}

/// `fragmentation`: "`1000 * (1 - largest free / total free)`, rounded up.
/// Zero only when the free space is one segment (or there is none), 1 for
/// any split of it however slight".
#[test]
fn fragmentation_rounds_up_and_is_one_for_the_slightest_split() {
    with_arena(16, &[(0, 64)], |a| {
        assert_eq!(a.fragmentation(), 0);
        exact(a, 16, 16); // free 16 + 32: 1000/3 -> 334
        assert_eq!((a.largest_free(), a.sizes().free), (Size(32), Size(48)));
        assert_eq!(a.fragmentation(), 334);
        exact(a, 0, 16);
        exact(a, 32, 32);
        assert_eq!(a.sizes().free, Size(0));
        assert_eq!(a.fragmentation(), 0, "nothing free");
    });
    // One quantum split off a million: 1000 * 1e-6 rounds up to 1.
    with_arena(1, &[(0, 1_000_002)], |a| {
        exact(a, 1, 1);
        assert_eq!(a.fragmentation(), 1);
    });
    // Two free segments in different spans, the largest near usize::MAX:
    // no overflow in the arithmetic.
    let big = 1usize << 62;
    with_arena(1 << 20, &[(0, big), (big + (1 << 21), 1 << 20)], |a| {
        assert_eq!(a.fragmentation(), 1, "2^62 and 2^20 free");
    });
}

/// `free_part`: "The piece must lie inside the size asked for, start at a
/// multiple of the quantum, and end at one or at the end of the allocation;
/// any other piece is a BadFree that changes nothing". "What stays live
/// becomes up to two allocations: [alloc, alloc + offset) (asked size
/// offset) and the rest after the piece (asked size: what was asked beyond
/// the piece)". "Freeing the whole allocation is free and counts as a free;
/// a partial free counts none."
#[test]
fn free_part_at_its_edges() {
    with_arena(16, &[(0x1000, 0x1000)], |a| {
        let x = a.alloc(Size(72), Policy::FirstFit).unwrap(); // 5 quanta, 8 slack
        let before = state(a);
        let c0 = a.counters();
        // Bad pieces: misaligned start, misaligned end short of the end,
        // past the asked end (inside the rounding slack), empty, wrapping.
        for (off, size) in [(8, 16), (16, 8), (64, 16), (72, 8), (16, 0), (16, usize::MAX)] {
            let e = a.free_part(x, Size(off), Size(size)).unwrap_err();
            assert!(matches!(e, ArenaError::BadFree { .. }), "piece ({off}, {size}): {e:?}");
            assert_eq!(state(a), before, "piece ({off}, {size}) changed the arena");
        }
        let c1 = a.counters();
        assert_eq!(c1.bad_frees - c0.bad_frees, 6);
        assert_eq!(c1.failures, c0.failures, "bad pieces count in bad_frees, not failures");
        // The last piece ends at the unrounded end (72): allowed.
        a.free_part(x, Size(64), Size(8)).unwrap();
        assert_eq!(a.lookup(x), Some((vmspace::Range::from_size(x, Size(64)).unwrap(), Size(64))));
        // The first piece: the rest is [x+16, x+64), asked 48.
        a.free_part(x, Size(0), Size(16)).unwrap();
        assert_eq!(a.lookup(x), None);
        let rest = Addr(x.0 + 16);
        let (r, asked) = a.lookup(rest).unwrap();
        assert_eq!((r.base(), r.size(), asked), (rest, Size(48), Size(48)));
        assert_eq!(a.counters().frees, c0.frees, "partial frees count no free");
        // The whole rest: counts as one free.
        a.free_part(rest, Size(0), Size(48)).unwrap();
        assert_eq!(a.counters().frees, c0.frees + 1);
        assert_eq!(a.sizes().allocated, Size(0));
        // A middle piece of an allocation with slack: the tail keeps the
        // slack, asked "what was asked beyond the piece".
        let y = a.alloc(Size(72), Policy::FirstFit).unwrap();
        a.free_part(y, Size(16), Size(16)).unwrap();
        assert_eq!(a.lookup(y).unwrap().1, Size(16));
        let (r, asked) = a.lookup(Addr(y.0 + 32)).unwrap();
        assert_eq!((r.size(), asked), (Size(48), Size(40)));
        assert!(a.free(Addr(y.0 + 32), Size(48)).is_err(), "the tail was asked 40, not 48");
        a.free(Addr(y.0 + 32), Size(40)).unwrap();
        a.free(y, Size(16)).unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    });
}

/// `resize`: "Shrinking gives the end back; growing takes the room it needs
/// from the free segment right after the allocation in the same span. When
/// that segment is missing or too small the call fails with NoSpace,
/// changing nothing". "A wrong address or old size is a BadFree (counted in
/// bad_frees), a zero new size is an invalid argument, a new size that
/// cannot be rounded to the quantum is an Overflow, and growing past the
/// top of the address space is NoSpace ...; every failure but a bad claim
/// counts in failures. Afterwards the allocation is freed with new_size."
#[test]
fn resize_at_its_edges() {
    with_arena(16, &[(0x1000, 0x100), (0x1100, 0x100)], |a| {
        // Two adjacent spans: growth never crosses into the next span.
        let x = a.xalloc(&Constraints::new(Size(0x40)).exact(Addr(0x1000))).unwrap();
        exact(a, 0x1080, 0x10);
        // The free room after x is [0x1040, 0x1080): exactly 0x40 more.
        let before = state(a);
        let c0 = a.counters();
        let e = a.resize(x, Size(0x40), Size(0x81)).unwrap_err();
        assert!(matches!(e, ArenaError::NoSpace { .. }), "{e:?}");
        assert_eq!(state(a), before);
        assert_eq!(a.counters().failures, c0.failures + 1);
        // Same quantum: only the asked size changes.
        a.resize(x, Size(0x40), Size(0x3f)).unwrap();
        assert_eq!(a.lookup(x).unwrap().1, Size(0x3f));
        assert_eq!(a.sizes(), before.1, "a resize within the quantum moves nothing");
        assert!(a.free(x, Size(0x40)).is_err(), "freed with new_size only");
        a.resize(x, Size(0x3f), Size(0x80)).unwrap();
        assert_eq!(a.lookup(x).unwrap().0.size(), Size(0x80));
        assert_eq!(a.walk(SegmentKinds::FREE).next().map(|s| s.range.base()), Some(Addr(0x1090)));
        // Bad claims: bad_frees, not failures.
        let c1 = a.counters();
        assert!(matches!(a.resize(x, Size(0x40), Size(0x10)), Err(ArenaError::BadFree { .. })));
        assert!(matches!(
            a.resize(Addr(0x1010), Size(0x10), Size(0x20)),
            Err(ArenaError::BadFree { .. })
        ));
        let c2 = a.counters();
        assert_eq!((c2.bad_frees, c2.failures), (c1.bad_frees + 2, c1.failures));
        assert!(matches!(a.resize(x, Size(0x80), Size(0)), Err(ArenaError::InvalidArgument(_))));
        assert!(matches!(a.resize(x, Size(0x80), Size(usize::MAX)), Err(ArenaError::Overflow)));
        assert_eq!(a.counters().failures, c2.failures + 2);
        // The last free segment of the first span is [0x1090, 0x1100); the
        // second span starts right after it: growing x's neighbour 0x1080
        // by the whole rest of its span works, one quantum more does not.
        a.resize(Addr(0x1080), Size(0x10), Size(0x80)).unwrap();
        let e = a.resize(Addr(0x1080), Size(0x80), Size(0x90)).unwrap_err();
        assert!(matches!(e, ArenaError::NoSpace { .. }), "grew into the next span: {e:?}");
        a.resize(Addr(0x1080), Size(0x80), Size(1)).unwrap();
        a.free(Addr(0x1080), Size(1)).unwrap();
        a.free(x, Size(0x80)).unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    });
    // Growing past the top of the address space is NoSpace.
    let top = 0usize.wrapping_sub(0x100);
    with_arena(16, &[(top - 0x100, 0x100)], |a| {
        let x = a.xalloc(&Constraints::new(Size(0x100)).exact(Addr(top - 0x100))).unwrap();
        let e = a.resize(x, Size(0x100), Size(0x200)).unwrap_err();
        assert!(matches!(e, ArenaError::NoSpace { .. }), "{e:?}");
        let e = a.resize(x, Size(0x100), Size(usize::MAX - 0x1000)).unwrap_err();
        assert!(matches!(e, ArenaError::NoSpace { .. }), "{e:?}");
        a.free(x, Size(0x100)).unwrap();
    });
}

/// README: "A `Handle` (the address and the boundary tag's index, 16
/// bytes, `Copy`)". And `free_part`/`resize` are for allocations "made by
/// address": a handle allocation is refused by both, unchanged.
#[test]
fn handles_are_16_bytes_and_not_resized() {
    assert_eq!(core::mem::size_of::<vmspace::arena::Handle>(), 16);
    with_arena(16, &[(0x1000, 0x1000)], |a| {
        let h = a.alloc_handle(Size(0x40), Policy::FirstFit).unwrap();
        let before = state(a);
        assert!(matches!(
            a.resize(h.addr(), Size(0x40), Size(0x10)),
            Err(ArenaError::BadFree { .. })
        ));
        assert!(matches!(
            a.free_part(h.addr(), Size(0), Size(0x10)),
            Err(ArenaError::BadFree { .. })
        ));
        assert_eq!(state(a), before);
        assert_eq!(a.free_handle(h), Ok(Size(0x40)));
    });
}
