//! Outside review (round 25): the arena's rustdoc taken as a contract.
//! Extremes, constraint combinations, bad frees, partial frees, resizes,
//! handles, spans at the top of the address space.

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
    Source, BASE_TAGS, MIN_TAGS, TAG_BYTES,
};
use vmspace::{Addr, Range, Size};

type A<'a> = Arena<SliceStore<'a>, NoSource>;

struct Bufs {
    tags: Vec<u64>,
    hash: Vec<u64>,
}

fn bufs() -> Bufs {
    Bufs { tags: vec![0; 1 << 13], hash: vec![0; 1 << 10] }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn arena(b: &mut Bufs, q: usize) -> A<'_> {
    Arena::new(
        "r25",
        Size(q),
        SliceStore::new(bytes(&mut b.tags)),
        SliceStore::new(bytes(&mut b.hash)),
        NoSource,
    )
    .unwrap()
}

fn total_ok(a: &A<'_>) {
    let s = a.sizes();
    assert_eq!(s.total.0, s.allocated.0 + s.free.0 + s.unflushed.0, "{s:?}");
    a.check().unwrap();
}

// ---------------------------------------------------------------- new()

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
        assert!(matches!(r, Err(ArenaError::InvalidArgument(_))), "q={q}");
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
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
    drop(r);
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
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
}

// ---------------------------------------------------------------- spans

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

// ---------------------------------------------------------------- xalloc

#[test]
fn constraint_errors_as_documented() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x10000), Size(0x10000)).unwrap();
    let over = |r: Result<Addr, ArenaError>| matches!(r, Err(ArenaError::OverConstrained(_)));
    let inv = |r: Result<Addr, ArenaError>| matches!(r, Err(ArenaError::InvalidArgument(_)));
    assert!(inv(a.xalloc(&Constraints::new(Size(0)))));
    assert!(inv(a.xalloc(&Constraints::new(Size(16)).align(Size(48)))));
    assert!(inv(a.xalloc(&Constraints::new(Size(16)).align(Size(64)).phase(Size(64)))));
    // Alignment below the quantum means the quantum, so phase 16 is not below it.
    assert!(inv(a.xalloc(&Constraints::new(Size(16)).align(Size(4)).phase(Size(16)))));
    assert_eq!(
        a.xalloc(&Constraints::new(Size(16)).align(Size(64)).phase(Size(8))),
        Err(ArenaError::Misaligned { value: 8, align: 16 })
    );
    assert!(inv(a.xalloc(&Constraints::new(Size(16)).nocross(Size(48)))));
    assert!(over(a.xalloc(&Constraints::new(Size(0x40)).nocross(Size(0x20)))));
    assert!(over(a.xalloc(
        &Constraints::new(Size(0x20)).nocross(Size(0x40)).align(Size(0x80)).phase(Size(0x30))
    )));
    assert!(over(
        a.xalloc(&Constraints::new(Size(0x20)).min_addr(Addr(0x20000)).max_addr(Addr(0x10000)))
    ));
    assert!(over(
        a.xalloc(&Constraints::new(Size(0x20)).min_addr(Addr(0x10000)).max_addr(Addr(0x10010)))
    ));
    assert!(over(a.xalloc(&Constraints::new(Size(0x20)).exact(Addr(0x10010)).align(Size(0x100)))));
    assert!(over(a.xalloc(&Constraints::new(Size(0x20)).exact(Addr(0x10010)).nocross(Size(0x20)))));
    assert!(over(
        a.xalloc(&Constraints::new(Size(0x20)).exact(Addr(0x10000)).max_addr(Addr(0x10010)))
    ));
    assert!(over(
        a.xalloc(&Constraints::new(Size(0x20)).exact(Addr(0x10000)).min_addr(Addr(0x10010)))
    ));
    // No address whatever: aligned to 2^63 with a phase that leaves no room.
    assert!(over(a.xalloc(
        &Constraints::new(Size((1 << 63) + (1 << 62))).align(Size(1 << 63)).phase(Size(1 << 62))
    )));
    // A window with no aligned address inside it.
    assert!(over(
        a.xalloc(
            &Constraints::new(Size(0x10))
                .align(Size(0x1000))
                .min_addr(Addr(0x10010))
                .max_addr(Addr(0x10ff0))
        )
    ));
    // Exact address past the top.
    assert_eq!(
        a.xalloc(&Constraints::new(Size(0x20)).exact(Addr(usize::MAX - 15))),
        Err(ArenaError::Overflow)
    );
    assert_eq!(a.xalloc(&Constraints::new(Size(usize::MAX))), Err(ArenaError::Overflow));
    assert_eq!(a.alloc(Size(usize::MAX), Policy::InstantFit), Err(ArenaError::Overflow));
    // Satisfiable but not here: NoSpace.
    assert!(matches!(
        a.xalloc(&Constraints::new(Size(0x20)).min_addr(Addr(0x40000))),
        Err(ArenaError::NoSpace { .. })
    ));
    assert_eq!(a.counters().failures, 20);
    assert_eq!(a.sizes().allocated, Size(0));
    total_ok(&a);
}

/// Every placement xalloc returns meets every constraint, for every
/// policy, with and without from_top, over a fragmented arena.
#[test]
fn xalloc_placements_meet_their_constraints() {
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x100000), Size(0x40000)).unwrap();
    a.add(Addr(0x180000), Size(0x40000)).unwrap();
    let mut live: Vec<(Addr, Size)> = vec![];
    for step in 0..3000 {
        if next() % 3 == 0 && !live.is_empty() {
            let k = (next() as usize) % live.len();
            let (x, s) = live.swap_remove(k);
            a.free(x, s).unwrap();
            continue;
        }
        let size = 1 + (next() as usize % 0x400);
        let align = 1usize << (next() % 12);
        let al = align.max(16);
        let phase = (next() as usize % al) & !15;
        let nocross = if next() % 3 == 0 { 1usize << (11 + next() % 4) } else { 0 };
        let lo = if next() % 4 == 0 { 0x100000 + (next() as usize % 0x80000) } else { 0 };
        let hi =
            if next() % 4 == 0 { lo + 0x1000 + (next() as usize % 0x80000) } else { usize::MAX };
        let policy = Policy::ALL[(next() % 4) as usize];
        let top = next() % 2 == 0;
        let mut c = Constraints::new(Size(size))
            .align(Size(align))
            .phase(Size(phase))
            .policy(policy)
            .from_top(top);
        if nocross != 0 {
            c = c.nocross(Size(nocross));
        }
        if lo != 0 {
            c = c.min_addr(Addr(lo));
        }
        if hi != usize::MAX {
            c = c.max_addr(Addr(hi));
        }
        match a.xalloc(&c) {
            Ok(x) => {
                let rs = size.div_ceil(16) * 16;
                assert_eq!(x.0 % al, phase, "step {step}: {c:?} -> {x:?}");
                if let Some(first) = x.0.checked_div(nocross) {
                    assert_eq!(first, (x.0 + rs - 1) / nocross, "step {step}: {c:?}");
                }
                assert!(x.0 >= lo && x.0 + rs <= hi, "step {step}: {c:?} -> {x:?}");
                live.push((x, Size(size)));
            }
            Err(ArenaError::NoSpace { .. }) | Err(ArenaError::OverConstrained(_)) => {}
            Err(e) => panic!("step {step}: {c:?}: {e:?}"),
        }
        if step % 100 == 0 {
            total_ok(&a);
        }
    }
    for (x, s) in live {
        a.free(x, s).unwrap();
    }
    total_ok(&a);
}

/// Policy docs: best fit takes the smallest segment that fits, first fit
/// the lowest (highest from the top), instant fit fails only when nothing
/// fits.
#[test]
fn policies_choose_as_documented() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x10000), Size(0x10000)).unwrap();
    // Free holes of 0x300 at 0x10000, 0x100 at 0x14000, 0x200 at 0x18000.
    let all = a.alloc(Size(0x10000), Policy::FirstFit).unwrap();
    a.free_part(all, Size(0x8000), Size(0x200)).unwrap();
    a.free_part(all, Size(0x4000), Size(0x100)).unwrap();
    a.free_part(all, Size(0), Size(0x300)).unwrap();
    total_ok(&a);
    let best = a.alloc(Size(0x100), Policy::BestFit).unwrap();
    assert_eq!(best, Addr(0x14000));
    let first = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    assert_eq!(first, Addr(0x10000));
    let top =
        a.xalloc(&Constraints::new(Size(0x100)).policy(Policy::FirstFit).from_top(true)).unwrap();
    assert_eq!(top, Addr(0x18100));
    // Instant fit: 0x180 (not a power of two) fits only the 0x200 hole left
    // at 0x10100 (0x200) ... and nothing else; it must still be found.
    let inst = a.alloc(Size(0x200), Policy::InstantFit).unwrap();
    assert_eq!(inst, Addr(0x10100));
    assert!(matches!(a.alloc(Size(0x110), Policy::InstantFit), Err(ArenaError::NoSpace { .. })));
    // With 0x200 at 0x18000 free: instant fit of 0x1f0 finds it.
    a.free(top, Size(0x100)).unwrap();
    let last = a.alloc(Size(0x1f0), Policy::InstantFit).unwrap();
    assert_eq!(last, Addr(0x18000));
    total_ok(&a);
}

// ---------------------------------------------------------------- frees

#[test]
fn bad_frees_are_refused_and_change_nothing_but_counters() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(20), Policy::InstantFit).unwrap();
    let h = a.alloc_handle(Size(20), Policy::InstantFit).unwrap();
    let before = (a.sizes(), a.live(), a.walk(SegmentKinds::ALL).collect::<Vec<_>>());
    let cases = [
        (x, Size(32), Some(Size(20))), // same quantum-rounded size
        (x, Size(16), Some(Size(20))),
        (x, Size(0), Some(Size(20))),
        (x, Size(usize::MAX), Some(Size(20))),
        (Addr(x.0 + 16), Size(20), None), // inside
        (h.addr(), Size(20), None),       // held
        (Addr(0x1800), Size(16), None),   // free space
        (Addr(usize::MAX), Size(16), None),
        (Addr(0), Size(0), None),
    ];
    for (addr, size, allocated) in cases {
        assert_eq!(a.free(addr, size), Err(ArenaError::BadFree { addr, size, allocated }));
        assert_eq!(a.free_deferred(addr, size), Err(ArenaError::BadFree { addr, size, allocated }));
    }
    assert_eq!((a.sizes(), a.live(), a.walk(SegmentKinds::ALL).collect::<Vec<_>>()), before);
    assert_eq!(a.counters().bad_frees, 2 * cases.len() as u64);
    assert_eq!(a.counters().failures, 0);
    a.free(x, Size(20)).unwrap();
    assert_eq!(
        a.free(x, Size(20)),
        Err(ArenaError::BadFree { addr: x, size: Size(20), allocated: None })
    );
    a.free_handle(h).unwrap();
    total_ok(&a);
}

/// ArenaError: "Every failing operation leaves the arena exactly as it was
/// before the call (its failure counter aside)"; free: "changes nothing
/// (but the bad-free counter)". The bad free also counted its lookup
/// (round 25's finding): the docs now name the work statistics too, and
/// every other counter must be as it was.
#[test]
fn a_bad_free_changes_no_counter_but_bad_frees() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(20), Policy::InstantFit).unwrap();
    let mut before = a.counters();
    let _ = a.free(x, Size(32));
    before.bad_frees += 1;
    let after = a.counters();
    assert_eq!(after.lookups, before.lookups + 1, "the lookup it made");
    assert!(after.search_steps > before.search_steps, "the steps of that lookup");
    before.lookups = after.lookups;
    before.search_steps = after.search_steps;
    assert_eq!(after, before, "only bad_frees and the lookup's statistics moved");
}

#[test]
fn free_part_edges() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x35), Policy::FirstFit).unwrap();
    // A piece ending at the asked end when the asked end is not aligned.
    // The error names the piece's address and, as `allocated`, the size at
    // the allocation's address.
    let e = a.free_part(x, Size(0x8), Size(0x10));
    assert_eq!(
        e,
        Err(ArenaError::BadFree {
            addr: Addr(x.0 + 8),
            size: Size(0x10),
            allocated: Some(Size(0x35))
        })
    );
    let e = a.free_part(Addr(x.0 + 0x10), Size(usize::MAX), Size(0x10));
    assert_eq!(
        e,
        Err(ArenaError::BadFree {
            addr: Addr((x.0 + 0x10).wrapping_add(usize::MAX)),
            size: Size(0x10),
            allocated: None
        })
    );
    // Whole allocation by free_part counts as a free; a part counts none.
    let frees = a.counters().frees;
    a.free_part(x, Size(0x10), Size(0x10)).unwrap();
    assert_eq!(a.counters().frees, frees);
    assert_eq!(a.live(), 2);
    // Tail: [x+0x20, x+0x35) asked 0x15; free the whole tail by free_part.
    a.free_part(Addr(x.0 + 0x20), Size(0), Size(0x15)).unwrap();
    assert_eq!(a.counters().frees, frees + 1);
    assert_eq!(a.lookup(x), Some((Range::from_size(x, Size(0x10)).unwrap(), Size(0x10))));
    a.free(x, Size(0x10)).unwrap();
    total_ok(&a);
    assert_eq!(a.sizes().allocated, Size(0));
}

#[test]
fn resize_edges() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    // Grow into an allocated neighbour: NoSpace, counted as a failure.
    let f = a.counters().failures;
    assert_eq!(a.resize(x, Size(0x20), Size(0x21)), Err(ArenaError::NoSpace { size: 0x21 }));
    assert_eq!(a.counters().failures, f + 1);
    // Within the same rounded size: fine, and the new size is what frees.
    a.resize(x, Size(0x20), Size(0x11)).unwrap();
    assert_eq!(a.lookup(x).map(|(r, s)| (r.size(), s)), Some((Size(0x20), Size(0x11))));
    assert!(a.free(x, Size(0x20)).is_err());
    // Zero: InvalidArgument, counted in failures.
    assert!(matches!(a.resize(x, Size(0x11), Size(0)), Err(ArenaError::InvalidArgument(_))));
    assert_eq!(a.counters().failures, f + 2);
    // Bad claims: BadFree, counted in bad_frees, not failures.
    let bf = a.counters().bad_frees;
    assert!(matches!(a.resize(x, Size(0x20), Size(0x10)), Err(ArenaError::BadFree { .. })));
    assert!(matches!(
        a.resize(Addr(x.0 + 16), Size(0x11), Size(0x10)),
        Err(ArenaError::BadFree { .. })
    ));
    assert_eq!(a.counters().bad_frees, bf + 2);
    assert_eq!(a.counters().failures, f + 2);
    // Grow y to the end of the span exactly, then one more quantum fails.
    let room = 0x2000 - y.0;
    a.resize(y, Size(0x20), Size(room)).unwrap();
    assert_eq!(
        a.resize(y, Size(room), Size(room + 1)),
        Err(ArenaError::NoSpace { size: room + 1 })
    );
    // Shrink: coalesces with the free space after.
    a.resize(y, Size(room), Size(1)).unwrap();
    assert_eq!(a.walk(SegmentKinds::FREE).count(), 1);
    a.free(y, Size(1)).unwrap();
    a.free(x, Size(0x11)).unwrap();
    total_ok(&a);
}

/// A handle's allocation cannot be resized or partly freed by address;
/// a by-address allocation cannot be freed by a handle made up for it.
#[test]
fn the_two_interfaces_do_not_mix() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let h = a.alloc_handle(Size(0x40), Policy::FirstFit).unwrap();
    let x = a.alloc(Size(0x40), Policy::FirstFit).unwrap();
    assert!(matches!(a.resize(h.addr(), Size(0x40), Size(0x20)), Err(ArenaError::BadFree { .. })));
    assert!(matches!(a.free_part(h.addr(), Size(0), Size(0x20)), Err(ArenaError::BadFree { .. })));
    for tag in 0..200u32 {
        if let Some(fake) = a.handle_from_parts(x, tag) {
            assert!(matches!(a.free_handle(fake), Err(ArenaError::BadHandle { .. })));
            assert!(matches!(a.free_handle_deferred(fake), Err(ArenaError::BadHandle { .. })));
        }
    }
    assert_eq!(a.live(), 2);
    a.free(x, Size(0x40)).unwrap();
    // The tag of the freed hashed allocation reused by a new held one at
    // another address: the old address is still refused.
    let h2 = a.alloc_handle(Size(0x80), Policy::FirstFit).unwrap();
    if let Some(fake) = a.handle_from_parts(x, h2.tag()) {
        if h2.addr() != x {
            assert!(matches!(a.free_handle(fake), Err(ArenaError::BadHandle { .. })));
        }
    }
    a.free_handle(h).unwrap();
    a.free_handle(h2).unwrap();
    total_ok(&a);
}

/// Deferred frees: not reissued, not resized into, not coalesced.
#[test]
fn unflushed_ranges_are_not_grown_into() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x100)).unwrap();
    let x = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x20), Policy::FirstFit).unwrap();
    a.free_deferred(y, Size(0x20)).unwrap();
    assert!(matches!(a.resize(x, Size(0x20), Size(0x40)), Err(ArenaError::NoSpace { .. })));
    // extend of an exact range over it: refused.
    assert!(a.xalloc(&Constraints::new(Size(0x10)).exact(Addr(y.0 + 0x10))).is_err());
    assert_eq!(a.sizes().unflushed, Size(0x20));
    total_ok(&a);
    assert_eq!(a.flushed(), Size(0x20));
    a.resize(x, Size(0x20), Size(0x40)).unwrap();
    a.free(x, Size(0x40)).unwrap();
    total_ok(&a);
}

#[test]
fn segment_walk_reports_requested_and_held() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let h = a.alloc_handle(Size(5), Policy::FirstFit).unwrap();
    let x = a.alloc(Size(17), Policy::FirstFit).unwrap();
    let segs: Vec<_> = a.walk(SegmentKinds::ALLOCATED).collect();
    assert_eq!(segs.len(), 2);
    assert_eq!((segs[0].requested, segs[0].held, segs[0].range.size()), (Size(5), true, Size(16)));
    assert_eq!(
        (segs[1].requested, segs[1].held, segs[1].range.size()),
        (Size(17), false, Size(32))
    );
    assert!(segs.iter().all(|s| s.kind == SegmentKind::Allocated));
    let spans: Vec<_> = a.walk(SegmentKinds::SPANS).collect();
    assert_eq!(spans.len(), 1);
    assert!(!spans[0].imported);
    a.free(x, Size(17)).unwrap();
    a.free_handle(h).unwrap();
    total_ok(&a);
}

#[test]
fn fragmentation_and_histogram() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    assert_eq!((a.fragmentation(), a.largest_free()), (0, Size(0)));
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    assert_eq!(a.fragmentation(), 0);
    let x = a.alloc(Size(0x1000), Policy::FirstFit).unwrap();
    // Free every other 16: 128 free pieces of 16, largest 16 of 2048: 992.
    let mut cur = x.0;
    for _ in 0..128 {
        a.free_part(Addr(cur), Size(16), Size(16)).unwrap();
        cur += 32;
    }
    assert_eq!(a.largest_free(), Size(16));
    assert_eq!(a.fragmentation(), 1000 - 1000 * 16 / 2048);
    let h = a.free_histogram();
    assert_eq!(h[4], 128);
    assert_eq!(h.iter().sum::<usize>(), 128);
    total_ok(&a);
}

/// on_pages: "with room for exactly max_tags tags"; fewer than MIN_TAGS is
/// InvalidArgument.
#[test]
fn on_pages_holds_exactly_max_tags() {
    use vmspace_shim::sim::SimBackend;
    let mut buf = vec![0u8; 1 << 21];
    let sim = SimBackend::new(&mut buf, 256).unwrap();
    let r = Arena::on_pages("p", Size(16), &sim, MIN_TAGS - 1, NoSource);
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
    for max in [MIN_TAGS, MIN_TAGS + 1, 100, 257] {
        let mut a = Arena::on_pages("p", Size(16), &sim, max, NoSource).unwrap();
        a.add(Addr(0x10000), Size(0x100000)).unwrap();
        let mut live = vec![];
        loop {
            match a.alloc(Size(16), Policy::FirstFit) {
                Ok(x) => {
                    live.push(x);
                    // Free every other one so each allocation needs a tag.
                    if live.len() % 2 == 0 {
                        let y = live[live.len() - 2];
                        a.free(y, Size(16)).unwrap();
                        live.remove(live.len() - 2);
                        let _ = a.alloc(Size(32), Policy::FirstFit).map(|z| live.push(z));
                    }
                }
                Err(ArenaError::TagsExhausted) => break,
                Err(e) => panic!("{max}: {e:?}"),
            }
            assert!(a.tags_in_use().0 as usize <= max);
        }
        let (used, cap) = a.tags_in_use();
        assert_eq!(cap as usize, max, "room for exactly max_tags");
        assert!(used as usize + 4 > max, "{max}: stopped with {used} of {cap} in use");
        a.check().unwrap();
        drop(live);
    }
}

/// set_mtbf: "Fail each allocating operation (alloc, xalloc, add, extend,
/// import, and the partial frees and resizes that need tags or grow) with
/// probability 1 / mtbf"; frees are not allocating operations.
#[test]
fn mtbf_one_fails_every_allocating_operation_and_no_free() {
    let mut b = bufs();
    let mut a = arena(&mut b, 16);
    a.add(Addr(0x1000), Size(0x1000)).unwrap();
    let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let y = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let z = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
    let h = a.alloc_handle(Size(0x10), Policy::FirstFit).unwrap();
    a.free(y, Size(0x100)).unwrap();
    a.set_mtbf(1, 1);
    let before = a.walk(SegmentKinds::ALL).collect::<Vec<_>>();
    assert_eq!(a.alloc(Size(16), Policy::InstantFit), Err(ArenaError::Injected));
    assert_eq!(a.xalloc(&Constraints::new(Size(16))), Err(ArenaError::Injected));
    assert!(matches!(a.alloc_handle(Size(16), Policy::BestFit), Err(ArenaError::Injected)));
    assert_eq!(a.add(Addr(0x10000), Size(0x100)), Err(ArenaError::Injected));
    assert_eq!(a.extend(Addr(0x2000), Size(0x100)), Err(ArenaError::Injected));
    assert_eq!(
        a.resize(x, Size(0x100), Size(0x80)),
        Err(ArenaError::Injected),
        "shrink needs a tag"
    );
    assert_eq!(a.resize(x, Size(0x100), Size(0x180)), Err(ArenaError::Injected), "grow");
    assert_eq!(a.free_part(x, Size(0x40), Size(0x40)), Err(ArenaError::Injected));
    assert_eq!(a.walk(SegmentKinds::ALL).collect::<Vec<_>>(), before, "nothing changed");
    assert_eq!(a.counters().injected, 8);
    assert_eq!(a.counters().failures, 8);
    // Not allocating: these succeed.
    a.resize(x, Size(0x100), Size(0xf1)).unwrap();
    a.free_part(z, Size(0), Size(0x100)).unwrap();
    a.free_deferred(x, Size(0xf1)).unwrap();
    a.flushed();
    a.free_handle(h).unwrap();
    a.set_mtbf(0, 0);
    assert!(a.alloc(Size(16), Policy::InstantFit).is_ok());
    a.check().unwrap();
}

/// Constraints::validate: "The errors are the ones Arena::xalloc returns
/// for these constraints"; the Request reads back what was asked, rounded.
#[test]
fn validate_agrees_with_xalloc() {
    use vmspace::arena::ConstraintParts;
    let mut b = bufs();
    let mut a = arena(&mut b, 64);
    a.add(Addr(0x100000), Size(0x100000)).unwrap();
    let mut rng = 0x0123_4567_89ab_cdefu64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let pick = |r: u64| -> usize {
        match r % 8 {
            0 => 0,
            1 => usize::MAX,
            2 => 1usize << ((r >> 8) % 64),
            3 => ((1usize << ((r >> 8) % 64)) - 1) & !63,
            4 => (r >> 8) as usize % 0x400,
            5 => usize::MAX - (r >> 8) as usize % 0x100,
            _ => ((r >> 8) as usize % 0x10000) & !63,
        }
    };
    for _ in 0..20000 {
        let parts = ConstraintParts {
            size: Size(pick(next())),
            align: Size(pick(next())),
            phase: Size(pick(next())),
            nocross: Size(if next() % 2 == 0 { 0 } else { pick(next()) }),
            min: (next() % 3 == 0).then(|| Addr(pick(next()))),
            max: (next() % 3 == 0).then(|| Addr(pick(next()))),
            exact: (next() % 4 == 0).then(|| Addr(pick(next()))),
            policy: Policy::ALL[(next() % 4) as usize],
            top: next() % 2 == 0,
        };
        let c = Constraints::from(parts);
        assert_eq!(c.parts(), parts);
        let v = c.validate(64);
        let r = a.xalloc(&c);
        match (&v, &r) {
            (Err(e), r) => assert_eq!(Err(*e), *r, "{parts:?}"),
            (Ok(req), Ok(x)) => {
                assert_eq!(req.size().0 % 64, 0);
                assert!(req.size().0 >= parts.size.0 && req.size().0 - parts.size.0 < 64);
                assert!(x.0 >= req.min().0 && x.0 + req.size().0 <= req.max().0, "{parts:?}");
                assert_eq!(x.0 % req.align().0, req.phase().0);
                if let Some(e) = parts.exact {
                    assert_eq!(*x, e);
                }
                a.free(*x, parts.size).unwrap();
            }
            (Ok(_), Err(ArenaError::NoSpace { .. })) => {}
            (Ok(_), Err(e)) => panic!("validated, then {e:?}: {parts:?}"),
        }
    }
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}
