//! Outside review (round 25): the arena's rustdoc taken as a contract.
//! Making an arena (quanta, stores, a source's quantum) and its spans:
//! adding, extending, spans at the top of the address space and at 0.

mod outside_r25_arena_common;

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore, Source, BASE_TAGS,
    MIN_TAGS, TAG_BYTES,
};
use vmspace::{Addr, Range, Size};

use outside_r25_arena_common::{arena, bufs, bytes, total_ok};

#[test]
fn new_rejects_bad_quanta_and_small_stores() {
    for q in [0usize, 3, 12, 1 << 28, usize::MAX] {
        let mut b = bufs();
        let r = Arena::new(
            "x",
            Size(q),
            SliceStore::new(bytes(&mut b.tags)),
            SliceStore::new(bytes(&mut b.hash)),
            NoSource,
        );
        assert!(
            matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))),
            "q={q}"
        );
    }
    // 2^27 is allowed.
    let mut b = bufs();
    let r = Arena::new(
        "x",
        Size(1 << 27),
        SliceStore::new(bytes(&mut b.tags)),
        SliceStore::new(bytes(&mut b.hash)),
        NoSource,
    );
    assert!(r.is_ok());
    // One tag short of MIN_TAGS: InvalidArgument; exactly MIN_TAGS: one
    // allocation can succeed.
    let mut t = vec![0u64; (MIN_TAGS * TAG_BYTES).div_ceil(8)];
    let mut h = vec![0u64; 1024];
    let short = &mut bytes(&mut t)[..(MIN_TAGS - 1) * TAG_BYTES];
    let r =
        Arena::new("x", Size(16), SliceStore::new(short), SliceStore::new(bytes(&mut h)), NoSource);
    assert!(matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))));
    let exact = &mut bytes(&mut t)[..MIN_TAGS * TAG_BYTES];
    let mut a =
        Arena::new("x", Size(16), SliceStore::new(exact), SliceStore::new(bytes(&mut h)), NoSource)
            .unwrap();
    assert_eq!(a.tags_in_use().0 as usize, BASE_TAGS);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(16), Policy::InstantFit).unwrap();
    a.free(x, Size(16)).unwrap();
    a.check().unwrap();
}

/// A source whose quantum is not a power of two is refused by `new`.
#[test]
fn new_rejects_a_source_with_a_bad_quantum() {
    struct Odd;
    impl Source for Odd {
        fn quantum(&self) -> Size {
            Size(24)
        }
        fn import(&mut self, size: Size, _: Size) -> Result<Range, ArenaError> {
            Err(ArenaError::NoSpace { size: size.0 })
        }
        fn release(&mut self, _: Range) -> Result<(), ArenaError> {
            Ok(())
        }
    }
    let mut b = bufs();
    let r = Arena::new(
        "x",
        Size(16),
        SliceStore::new(bytes(&mut b.tags)),
        SliceStore::new(bytes(&mut b.hash)),
        Odd,
    );
    assert!(matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))));
}

#[test]
fn add_errors() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    assert!(matches!(a.add(Addr(0x1000), Size(0)), Err(ArenaError::InvalidArgument(_))));
    assert_eq!(
        a.add(Addr(0x1008), Size(0x10)),
        Err(ArenaError::Misaligned { value: 0x1008, align: 16 })
    );
    assert_eq!(
        a.add(Addr(0x1000), Size(0x18)),
        Err(ArenaError::Misaligned { value: 0x18, align: 16 })
    );
    // Past the top of the address space.
    assert_eq!(a.add(Addr(usize::MAX - 15), Size(32)), Err(ArenaError::Overflow));
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let r = Range::from_size(Addr(0x1800), Size(0x1000)).unwrap();
    assert_eq!(a.add(Addr(0x1800), Size(0x1000)), Err(ArenaError::SpanOverlap(r)));
    let r = Range::from_size(Addr(0x800), Size(0x1000)).unwrap();
    assert_eq!(a.add(Addr(0x800), Size(0x1000)), Err(ArenaError::SpanOverlap(r)));
    assert_eq!(a.counters().failures, 6);
    assert_eq!(a.span_count(), 1);
    total_ok(&a);
}

#[test]
fn extend_merges_and_refuses_far_ranges() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    a.add(Addr(0x3000), Size(0x1000)).unwrap();
    let far = Range::from_size(Addr(0x8000), Size(0x100)).unwrap();
    assert_eq!(a.extend(Addr(0x8000), Size(0x100)), Err(ArenaError::NotAdjacent(far)));
    // Bridge the gap: one span, one free segment.
    a.extend(Addr(0x2000), Size(0x1000)).unwrap();
    assert_eq!(a.span_count(), 1);
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    assert_eq!(a.largest_free(), Size(0x3000));
    let all = Constraints::new(Size(0x3000)).exact(Addr(0x1000));
    let x = a.xalloc(&all).unwrap();
    assert_eq!(x, Addr(0x1000));
    a.free(x, Size(0x3000)).unwrap();
    total_ok(&a);
}

/// A span whose end is the highest multiple of the quantum (the top of the
/// address space), allocated from every way the docs allow.
#[test]
fn a_span_at_the_top_of_the_address_space() {
    let q = 16usize;
    let top = usize::MAX - (q - 1); // highest multiple of q, as an exclusive end
    let base = (top & !0xffff) - 0x10000;
    let span = top - base;
    for policy in Policy::ALL {
        for from_top in [false, true] {
            let mut b = bufs();
            let mut a = arena(&mut b, q);
            a.add(Addr(base), Size(span)).unwrap();
            assert!(a.contains(Addr(base), Size(span)));
            assert!(!a.contains(Addr(base), Size(span + 1)));
            // The last quantum, exactly.
            let last = a.xalloc(&Constraints::new(Size(q)).exact(Addr(top - q))).unwrap();
            assert_eq!(last.0, top - q);
            // Highest placement under every policy with alignment and nocross.
            let c = Constraints::new(Size(0x100))
                .align(Size(0x1000))
                .phase(Size(0x10))
                .nocross(Size(0x2000))
                .policy(policy)
                .from_top(from_top);
            let x = a.xalloc(&c).unwrap();
            assert_eq!(x.0 % 0x1000, 0x10);
            assert!(x.0 / 0x2000 == (x.0 + 0xff) / 0x2000);
            if from_top {
                assert_eq!(x.0, (top & !0xfff) + 0x10, "{policy:?}");
            } else {
                assert_eq!(x.0, base + 0x10, "{policy:?}");
            }
            // A max_addr of usize::MAX (nothing ends above it anyway).
            let y = a
                .xalloc(
                    &Constraints::new(Size(0x40))
                        .max_addr(Addr(usize::MAX))
                        .min_addr(Addr(top - 0x1000))
                        .policy(policy)
                        .from_top(from_top),
                )
                .unwrap();
            assert!(y.0 >= top - 0x1000 && y.0 + 0x40 <= top);
            // Growing the last quantum past the top: NoSpace, not a panic.
            assert!(matches!(
                a.resize(last, Size(q), Size(2 * q)),
                Err(ArenaError::NoSpace { .. })
            ));
            assert!(matches!(
                a.resize(last, Size(q), Size(usize::MAX - 2 * q)),
                Err(ArenaError::NoSpace { .. })
            ));
            assert_eq!(a.resize(last, Size(q), Size(usize::MAX)), Err(ArenaError::Overflow));
            // Partial frees with huge offsets and sizes: BadFree, never a panic.
            for (off, size) in
                [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX), (0, usize::MAX)]
            {
                assert!(
                    matches!(
                        a.free_part(last, Size(off), Size(size)),
                        Err(ArenaError::BadFree { .. })
                    ),
                    "{off:#x} {size:#x}"
                );
            }
            a.free_part(x, Size(0x80), Size(0x80)).unwrap();
            a.free(x, Size(0x80)).unwrap();
            a.free(y, Size(0x40)).unwrap();
            a.free(last, Size(q)).unwrap();
            assert_eq!(a.sizes().allocated, Size(0));
            assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
            total_ok(&a);
        }
    }
}

/// Quantum 1: a span reaching usize::MAX (the largest exclusive end).
#[test]
fn quantum_one_span_ending_at_usize_max() {
    let mut b = bufs();
    let mut a = arena(&mut b, 1);
    a.add(Addr(usize::MAX - 100), Size(100)).unwrap();
    let x = a.xalloc(&Constraints::new(Size(1)).exact(Addr(usize::MAX - 1))).unwrap();
    assert_eq!(x.0, usize::MAX - 1);
    let y = a.alloc(Size(99), Policy::FirstFit).unwrap();
    assert_eq!(y.0, usize::MAX - 100);
    assert!(matches!(a.alloc(Size(1), Policy::InstantFit), Err(ArenaError::NoSpace { .. })));
    a.free(x, Size(1)).unwrap();
    a.resize(y, Size(99), Size(100)).unwrap();
    assert!(matches!(a.resize(y, Size(100), Size(101)), Err(ArenaError::NoSpace { .. })));
    a.free(y, Size(100)).unwrap();
    // The whole address space minus one unit, at 0.
    let mut b2 = bufs();
    let mut z = arena(&mut b2, 1);
    z.add(Addr(0), Size(usize::MAX)).unwrap();
    let w = z.alloc(Size(usize::MAX), Policy::BestFit).unwrap();
    assert_eq!(w, Addr(0));
    assert_eq!(z.lookup(Addr(0)).map(|(_, s)| s), Some(Size(usize::MAX)));
    z.free(w, Size(usize::MAX)).unwrap();
    total_ok(&z);
    total_ok(&a);
}

/// An allocation at address 0 is a live allocation like any other.
#[test]
fn an_allocation_at_address_zero() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0), Size(0x100)).unwrap();
    let h = a.xalloc_handle(&Constraints::new(Size(16)).exact(Addr(0))).unwrap();
    assert_eq!(h.addr(), Addr(0));
    assert_eq!(a.lookup_handle(h).map(|(r, _)| r.base()), Some(Addr(0)));
    assert_eq!(a.free_handle(h), Ok(Size(16)));
    let x = a.xalloc(&Constraints::new(Size(16)).exact(Addr(0))).unwrap();
    assert_eq!(a.lookup(x).map(|(_, s)| s), Some(Size(16)));
    a.free(x, Size(16)).unwrap();
    assert!(matches!(a.free(x, Size(16)), Err(ArenaError::BadFree { allocated: None, .. })));
    total_ok(&a);
}
