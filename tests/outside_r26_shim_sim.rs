//! Round 26 (outside reviewer): `SimBackend`, `Placed` and `FaultInjector`
//! against their documentation: argument checks, what every failed call
//! leaves behind (the `PageOps` contract: nothing changed on a refusal),
//! deferred unmaps, stats, page sizes up to 1 GiB, and every injector knob.

use vmspace_shim::sim::{at_offsets, PageState, Placed, SimBackend, OFFSETS, PLACEMENT, POISON};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, Op, PageOps, Protection, Range, ShimError, Size,
};

const PAGE: usize = 256;

fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

/// Every page's state and every byte of the region.
fn snapshot(sim: &SimBackend<'_>) -> (Vec<PageState>, Vec<u8>) {
    let reg = sim.region();
    let page = sim.page_size().0;
    let states = (0..reg.size().0 / page)
        .map(|i| sim.page_state(Addr(reg.base().0 + i * page)).unwrap())
        .collect();
    // SAFETY: the region lies in the buffer the backend borrows; nothing
    // writes it while we read (single thread).
    let bytes =
        unsafe { std::slice::from_raw_parts(reg.base().as_ptr::<u8>(), reg.size().0) }.to_vec();
    (states, bytes)
}

#[test]
fn new_checks_the_page_size_and_the_buffer() {
    let mut buf = vec![0u8; 64 * 1024];
    for bad in [0usize, 1, 2, 32, 63, 65, 96, 3 << 10, usize::MAX, (1 << 63) + 1] {
        assert!(
            matches!(SimBackend::new(&mut buf, bad), Err(ShimError::InvalidArgument(_))),
            "page size {bad}"
        );
    }
    // Too small for one page after the table.
    for len in [0usize, 1, 63, 64, 100] {
        let mut small = vec![0u8; len];
        assert!(SimBackend::new(&mut small, 64).is_err(), "len {len}");
    }
    let mut empty: [u8; 0] = [];
    assert!(matches!(SimBackend::new(&mut empty, 64), Err(ShimError::InvalidArgument(_))));
    // Page size 64, the smallest allowed.
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let reg = sim.region();
    assert!(reg.is_aligned(Size(64)) && !reg.is_empty());
    assert_eq!(sim.name(), "sim");
    assert_eq!(sim.page_size(), Size(64));
}

#[test]
fn region_lies_inside_the_buffer_after_the_table_at_every_offset() {
    for page in [64usize, 256, 4096] {
        at_offsets(OFFSETS.len(), 64 * 4096 + 123, |off, p| {
            let bytes = p.bytes();
            let (lo, hi) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
            assert_eq!(lo % PLACEMENT, off);
            let sim = SimBackend::new(bytes, page).unwrap();
            let reg = sim.region();
            assert!(reg.base().0 >= lo && reg.limit().0 <= hi, "page {page} off {off}");
            assert!(reg.is_aligned(Size(page)));
            let n = reg.size().0 / page;
            // The table (one byte a page) fits before the region.
            assert!(reg.base().0 - lo >= n, "page {page} off {off}: table does not fit");
            // Everything is free.
            for i in 0..n {
                assert_eq!(sim.page_state(Addr(reg.base().0 + i * page)), Some(PageState::Free));
            }
            assert_eq!(sim.page_state(reg.limit()), None);
            assert_eq!(sim.page_state(Addr(reg.base().0.wrapping_sub(1))), None);
            assert_eq!(sim.page_state(Addr(usize::MAX)), None);
            // The whole region can be reserved at once, and no more.
            let all = sim.reserve(reg.size(), Size(page)).unwrap();
            assert_eq!(all, reg);
            assert!(matches!(
                sim.reserve(Size(page), Size(page)),
                Err(ShimError::OutOfAddressSpace { size }) if size == page
            ));
            // SAFETY: ours, untouched.
            unsafe { sim.release(all) }.unwrap();
        });
    }
}

#[test]
fn placed_buffers() {
    let mut p = Placed::new(0, 0);
    assert_eq!(p.bytes().len(), 0);
    let mut p = Placed::new(1000, 3);
    assert_eq!(p.bytes().as_ptr() as usize % PLACEMENT, 3);
    p.bytes()[999] = 7;
    assert!(p.fresh().iter().all(|&b| b == 0));
    let mut n = 0;
    at_offsets(100, 10, |_, _| n += 1);
    assert_eq!(n, OFFSETS.len());
}

#[test]
fn reserve_argument_errors_and_alignment_extremes() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    assert!(matches!(sim.reserve(Size(0), Size(PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(sim.reserve(Size(PAGE + 1), Size(PAGE)), Err(ShimError::Misaligned { .. })));
    assert!(matches!(sim.reserve(Size(PAGE), Size(3 * PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(sim.reserve(Size(PAGE), Size(0)), Err(ShimError::InvalidArgument(_))));
    for big in [1usize << 40, 1 << 62, 1 << 63] {
        assert!(
            matches!(sim.reserve(Size(PAGE), Size(big)), Err(ShimError::OutOfAddressSpace { .. })),
            "align {big:#x}"
        );
    }
    let huge = usize::MAX & !(PAGE - 1);
    assert_eq!(
        sim.reserve(Size(huge), Size(PAGE)),
        Err(ShimError::OutOfAddressSpace { size: huge })
    );
    assert_eq!(
        sim.reserve(Size(huge), Size(1 << 63)),
        Err(ShimError::OutOfAddressSpace { size: huge })
    );
    // Alignment below the page: the page.
    let a = sim.reserve(Size(PAGE), Size(1)).unwrap();
    assert!(a.base().is_aligned(Size(PAGE)));
    // Every power-of-two alignment the region can hold is honoured, and no
    // two live reservations overlap.
    let mut live = vec![a];
    for shift in 8..=16 {
        let al = 1usize << shift;
        if let Ok(x) = sim.reserve(Size(3 * PAGE), Size(al)) {
            assert!(x.base().is_aligned(Size(al)), "{x:?} not aligned to {al:#x}");
            assert!(sim.region().contains(&x));
            for y in &live {
                assert!(!x.overlaps(y), "{x:?} overlaps {y:?}");
            }
            live.push(x);
        }
    }
    let st = sim.stats();
    assert_eq!(st.reservations, live.len());
    assert_eq!(st.reserved_pages, 1 + 3 * (live.len() - 1));
    assert_eq!(st.mapped_pages, 0);
    for x in live {
        // SAFETY: ours.
        unsafe { sim.release(x) }.unwrap();
    }
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn gigabyte_pages() {
    // 1 GiB pages: a 3 GiB buffer (untouched: calloc's pages stay virtual).
    const G: usize = 1 << 30;
    let mut buf = vec![0u8; 3 * G + 4096];
    let sim = SimBackend::new(&mut buf, G).unwrap();
    assert_eq!(sim.page_size(), Size(G));
    let reg = sim.region();
    assert!(reg.is_aligned(Size(G)) && reg.size().0 >= G, "{reg:?}");
    assert!(matches!(sim.reserve(Size(G / 2), Size(G)), Err(ShimError::Misaligned { .. })));
    let x = sim.reserve(Size(G), Size(4096)).unwrap();
    assert!(x.is_aligned(Size(G)));
    assert_eq!(sim.page_state(x.base()), Some(PageState::Reserved));
    assert_eq!(sim.page_state(Addr(x.limit().0 - 1)), Some(PageState::Reserved));
    // A sub-page range is misaligned for every operation.
    let half = r(x.base().0, G / 2);
    // SAFETY: refused before anything happens (the simulator checks).
    unsafe {
        assert!(matches!(sim.map(half), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.unmap(half), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.protect(half, Protection::Read), Err(ShimError::Misaligned { .. })));
        assert!(matches!(sim.release(half), Err(ShimError::Misaligned { .. })));
    }
}

/// Random calls, valid and invalid, on a simulator: every failed call leaves
/// every page's state and every byte of the region exactly as it was, and
/// says so (`may_have_changed` false).
#[test]
fn every_failed_call_changes_nothing() {
    let mut buf = Placed::new(64 * PAGE + 4 * PAGE, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let reg = sim.region();
    let n = reg.size().0 / PAGE;
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut rnd = |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let mut reservations: Vec<Range> = Vec::new();
    let mut failures = 0;
    for step in 0..4000 {
        let before = snapshot(&sim);
        let stats_before = sim.stats();
        let a = rnd(n + 2);
        let len = 1 + rnd(6);
        let range = Range::new(
            Addr(reg.base().0 + a * PAGE),
            Addr(reg.base().0 + (a + len).min(n + 2) * PAGE),
        )
        .unwrap();
        let range = if rnd(20) == 0 { r(range.base().0 + 8, PAGE) } else { range };
        let prot = [Protection::None, Protection::Read, Protection::ReadWrite][rnd(3)];
        let kind = rnd(8);
        // SAFETY: the simulator checks every contract; its region is only
        // read by `snapshot`.
        let res = unsafe {
            match kind {
                0 => sim.reserve(Size((1 + rnd(4)) * PAGE), Size(PAGE << rnd(3))).map(|x| {
                    reservations.push(x);
                }),
                1 => {
                    let x = if !reservations.is_empty() && rnd(2) == 0 {
                        reservations[rnd(reservations.len())]
                    } else {
                        range
                    };
                    sim.release(x).map(|()| reservations.retain(|y| *y != x))
                }
                2 => sim.map(range),
                3 => sim.unmap(range),
                4 => sim.unmap_deferred(range),
                5 => sim.protect(range, prot),
                6 => {
                    sim.flush();
                    Ok(())
                }
                _ => sim.map(range).map(|()| {
                    // Write into newly mapped pages, so poisoning shows.
                    std::ptr::write_bytes(range.base().as_ptr::<u8>(), 0x11, range.size().0);
                }),
            }
        };
        if let Err(e) = res {
            failures += 1;
            assert!(!e.may_have_changed(), "step {step}: {e:?} says it may have changed");
            let after = snapshot(&sim);
            assert!(after.0 == before.0, "step {step}: {e:?} changed page states");
            assert!(after.1 == before.1, "step {step}: {e:?} changed bytes");
            let sa = sim.stats();
            assert_eq!(
                (sa.reservations, sa.reserved_pages, sa.mapped_pages, sa.unflushed_pages),
                (
                    stats_before.reservations,
                    stats_before.reserved_pages,
                    stats_before.mapped_pages,
                    stats_before.unflushed_pages
                ),
                "step {step}"
            );
        }
        // Stats agree with the table.
        let (states, _) = snapshot(&sim);
        let st = sim.stats();
        let mapped = states.iter().filter(|s| matches!(s, PageState::Mapped(_))).count();
        let unfl = states.iter().filter(|s| **s == PageState::Unflushed).count();
        let res_pages = states.iter().filter(|s| **s != PageState::Free).count();
        assert_eq!(
            (st.mapped_pages, st.unflushed_pages, st.reserved_pages),
            (mapped, unfl, res_pages)
        );
        assert_eq!(st.reservations, reservations.len());
        assert_eq!(sim.unflushed_pages(), unfl);
    }
    assert!(failures > 500, "only {failures} failures");
    let st = sim.stats();
    assert!(st.refused.iter().sum::<u64>() > 0);
}

#[test]
fn map_zeroes_unmap_and_release_poison_deferred_keeps_until_flush() {
    let mut buf = Placed::new(32 * PAGE, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let x = sim.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    let p = x.base().as_ptr::<u8>();
    // SAFETY: the simulator's own pages, mapped where written.
    unsafe {
        sim.map(x).unwrap();
        assert!((0..4 * PAGE).all(|i| *p.add(i) == 0));
        std::ptr::write_bytes(p, 0x33, 4 * PAGE);
        let two = r(x.base().0, 2 * PAGE);
        sim.unmap(two).unwrap();
        assert!((0..2 * PAGE).all(|i| *p.add(i) == POISON));
        assert!((2 * PAGE..4 * PAGE).all(|i| *p.add(i) == 0x33));
        let other = r(x.base().0 + 2 * PAGE, 2 * PAGE);
        sim.unmap_deferred(other).unwrap();
        assert_eq!(sim.unflushed_pages(), 2);
        assert_eq!(sim.page_state(other.base()), Some(PageState::Unflushed));
        assert_eq!(sim.protection(other.base()), None);
        assert!((2 * PAGE..4 * PAGE).all(|i| *p.add(i) == 0x33), "deferred keeps contents");
        assert_eq!(sim.map(other), Err(ShimError::Unflushed(other)));
        assert_eq!(sim.map(x), Err(ShimError::Unflushed(x)));
        assert_eq!(sim.protect(other, Protection::Read), Err(ShimError::NotMapped(other)));
        assert_eq!(sim.unmap(other), Err(ShimError::NotMapped(other)));
        assert_eq!(sim.flush(), 2);
        assert_eq!(sim.flush(), 0);
        assert!((2 * PAGE..4 * PAGE).all(|i| *p.add(i) == POISON));
        sim.map(x).unwrap();
        assert!((0..4 * PAGE).all(|i| *p.add(i) == 0));
        // Release completes deferred unmaps and poisons everything.
        sim.unmap_deferred(two).unwrap();
        let flushes = sim.stats().flushes;
        sim.release(x).unwrap();
        assert_eq!(sim.unflushed_pages(), 0);
        assert_eq!(sim.flush(), 0);
        assert_eq!(sim.stats().flushes, flushes);
        assert!((0..4 * PAGE).all(|i| *p.add(i) == POISON));
        assert_eq!(sim.page_state(x.base()), Some(PageState::Free));
    }
}

#[test]
fn release_must_be_exactly_one_reservation() {
    let mut buf = Placed::new(64 * PAGE, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let a = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    let b = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(a.limit(), b.base(), "first fit places them side by side");
    let both = Range::new(a.base(), b.limit()).unwrap();
    // SAFETY: refusals (the simulator checks).
    unsafe {
        assert_eq!(sim.release(both), Err(ShimError::NotReserved(both)));
        assert_eq!(sim.map(both), Err(ShimError::NotReserved(both)));
        let head = r(a.base().0, PAGE);
        assert_eq!(sim.release(head), Err(ShimError::NotReserved(head)));
        let tail = r(a.base().0 + PAGE, PAGE);
        assert_eq!(sim.release(tail), Err(ShimError::NotReserved(tail)));
        let across = r(a.base().0 + PAGE, 2 * PAGE);
        assert_eq!(sim.protect(across, Protection::Read), Err(ShimError::NotReserved(across)));
        sim.release(a).unwrap();
        assert_eq!(sim.release(a), Err(ShimError::NotReserved(a)), "double release");
        sim.release(b).unwrap();
    }
    let st = sim.stats();
    assert_eq!(st.calls_of(Op::Release), 6);
    assert_eq!(st.refused[Op::Release as usize], 4);
}

#[test]
fn protect_tracks_and_keeps_contents() {
    let mut buf = Placed::new(32 * PAGE, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let x = sim.reserve(Size(3 * PAGE), Size(PAGE)).unwrap();
    // SAFETY: the simulator's pages; written while read-write.
    unsafe {
        sim.map(x).unwrap();
        std::ptr::write_bytes(x.base().as_ptr::<u8>(), 9, 3 * PAGE);
        for prot in [Protection::None, Protection::Read, Protection::ReadWrite] {
            sim.protect(x, prot).unwrap();
            assert_eq!(sim.protection(x.base()), Some(prot));
            assert_eq!(sim.page_state(Addr(x.limit().0 - 1)), Some(PageState::Mapped(prot)));
        }
        assert_eq!(*x.base().as_ptr::<u8>(), 9);
        // Map refuses already-mapped (even read-only) pages.
        sim.protect(x, Protection::Read).unwrap();
        assert_eq!(sim.map(x), Err(ShimError::AlreadyMapped(x)));
        // Unmap of a read-only or inaccessible page works.
        sim.unmap(x).unwrap();
        assert_eq!(sim.page_state(x.base()), Some(PageState::Reserved));
        sim.release(x).unwrap();
    }
}

// ---------------------------------------------------------------- injector

fn fresh(buf: &mut Placed) -> SimBackend<'_> {
    SimBackend::new(buf.fresh(), PAGE).unwrap()
}

#[test]
fn fail_nth_counts_only_eligible_calls_and_fails_before_the_backend() {
    let mut buf = Placed::new(64 * PAGE, 0);
    let sim = fresh(&mut buf);
    let f = FaultInjector::new(&sim);
    assert_eq!(f.shape(), FaultShape::Clean);
    f.only(&[Op::Map]);
    f.fail_nth(2);
    let x = f.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(f.eligible_calls(), 0, "reserve is not eligible");
    let one = r(x.base().0, PAGE);
    let two = r(x.base().0 + PAGE, PAGE);
    // SAFETY: simulator-checked.
    unsafe {
        f.map(one).unwrap();
        let calls = sim.stats().calls_of(Op::Map);
        assert_eq!(f.map(two), Err(ShimError::Injected { op: Op::Map }));
        assert_eq!(sim.stats().calls_of(Op::Map), calls, "the backend saw the failed call");
        assert_eq!(sim.page_state(two.base()), Some(PageState::Reserved));
        f.map(two).unwrap(); // only the 2nd
        assert_eq!(f.eligible_calls(), 3);
        assert_eq!(f.injected(), 1);
        // fail_nth(0) disarms; restarts the count.
        f.fail_nth(0);
        assert_eq!(f.eligible_calls(), 0);
        f.unmap(one).unwrap();
        f.map(one).unwrap();
        assert_eq!(f.eligible_calls(), 1);
        // An empty list: nothing eligible, nothing counted.
        f.only(&[]);
        f.fail_nth(1);
        f.protect(one, Protection::Read).unwrap();
        f.unmap(one).unwrap();
        assert_eq!(f.eligible_calls(), 0);
        // unmap_deferred counts as an unmap.
        f.only(&[Op::Unmap]);
        f.fail_nth(1);
        assert_eq!(f.unmap_deferred(two), Err(ShimError::Injected { op: Op::Unmap }));
        assert_eq!(sim.page_state(two.base()), Some(PageState::Mapped(Protection::ReadWrite)));
        f.unmap_deferred(two).unwrap();
        assert_eq!(f.unflushed_pages(), 1);
        assert_eq!(f.flush(), 1);
        // clear: every operation eligible again, nothing injected.
        f.fail_nth(1);
        f.clear();
        f.release(x).unwrap();
        assert_eq!(f.injected(), 2);
    }
}

#[test]
fn fail_randomly_rates_and_seeds() {
    let mut buf = Placed::new(64 * PAGE, 0);
    let sim = fresh(&mut buf);
    let f = FaultInjector::new(&sim);
    let run = |seed: u64, rate: u32| -> Vec<bool> {
        f.fail_randomly(seed, rate);
        (0..300)
            .map(|_| f.reserve(Size(0), Size(PAGE)) == Err(ShimError::Injected { op: Op::Reserve }))
            .collect()
    };
    assert!(run(1, 0).iter().all(|&b| !b));
    assert!(run(1, 1_000_000).iter().all(|&b| b));
    assert!(run(1, u32::MAX).iter().all(|&b| b), "rates above a million are clamped");
    let a = run(42, 300_000);
    let b = run(42, 300_000);
    assert_eq!(a, b, "same seed, same failures");
    let k = a.iter().filter(|&&x| x).count();
    assert!((40..160).contains(&k), "{k} of 300 at 30%");
    assert_ne!(run(43, 300_000), a);
}

/// "drawn from a stream of its own, so that a seed fails the same calls
/// whatever the shape".
#[test]
fn a_seed_fails_the_same_calls_whatever_the_shape() {
    let mut outcomes = Vec::new();
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        let mut buf = Placed::new(64 * PAGE, 0);
        let sim = fresh(&mut buf);
        let f = FaultInjector::new(&sim);
        let x = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
        f.set_shape(shape);
        f.fail_randomly(7, 250_000);
        let mut injected = Vec::new();
        for i in 0..400 {
            // SAFETY: simulator-checked; states drift but the simulator refuses.
            let res = unsafe {
                match i % 3 {
                    0 => f.map(x),
                    1 => f.protect(x, Protection::Read),
                    _ => f.unmap(x),
                }
            };
            injected.push(matches!(res, Err(ShimError::Injected { .. })));
            if matches!(res, Err(ShimError::Injected { .. })) && shape == FaultShape::PartWay {
                // Restore a clean state: unmap whatever is mapped.
                for p in 0..8 {
                    let pr = r(x.base().0 + p * PAGE, PAGE);
                    if matches!(sim.page_state(pr.base()), Some(PageState::Mapped(_))) {
                        // SAFETY: mapped simulator page.
                        unsafe { sim.unmap(pr) }.unwrap();
                    }
                }
            }
        }
        outcomes.push(injected);
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[test]
fn part_way_unmap_deferred_and_one_page_calls() {
    let mut buf = Placed::new(64 * PAGE, 0);
    let sim = fresh(&mut buf);
    let f = FaultInjector::new(&sim);
    let x = f.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    f.set_shape(FaultShape::PartWay);
    // SAFETY: simulator-checked.
    unsafe {
        f.map(x).unwrap();
        std::ptr::write_bytes(x.base().as_ptr::<u8>(), 0x44, 2 * PAGE);
        f.fail_nth(1);
        assert!(f.unmap_deferred(x).is_err());
        // Two pages: k = 1 exactly.
        assert_eq!(sim.page_state(x.base()), Some(PageState::Mapped(Protection::None)));
        assert_eq!(
            sim.page_state(Addr(x.base().0 + PAGE)),
            Some(PageState::Mapped(Protection::ReadWrite))
        );
        assert_eq!(*x.base().as_ptr::<u8>(), 0, "decommitted prefix reads zero");
        assert_eq!(*x.base().as_ptr::<u8>().add(PAGE), 0x44);
        assert_eq!(f.changed_part_way(), 1);
        assert_eq!(f.unflushed_pages(), 0);
        // Map and release fail cleanly under PartWay.
        f.unmap(x).unwrap();
        f.fail_nth(1);
        assert!(f.map(x).is_err());
        assert_eq!(sim.page_state(x.base()), Some(PageState::Reserved));
        f.fail_nth(1);
        assert!(f.release(x).is_err());
        assert_eq!(sim.stats().reservations, 1);
        f.fail_nth(1);
        assert!(f.reserve(Size(PAGE), Size(PAGE)).is_err());
        assert_eq!(sim.stats().reservations, 1);
        assert_eq!(f.changed_part_way(), 1);
        // clear() makes failures clean again.
        f.clear();
        assert_eq!(f.shape(), FaultShape::Clean);
        f.release(x).unwrap();
    }
}

/// FaultShape::PartWay: "Should the backend itself fail while changing the
/// prefix, what it did stays: ... an unmap's prefix unmapped (... does not
/// count the call in changed_part_way); an unmap's prefix is never left
/// read-write, unless the backend refuses to unmap it again after refusing
/// to protect it."
#[test]
fn part_way_over_a_failing_backend_never_leaves_the_prefix_read_write() {
    for failing in [Op::Unmap, Op::Map, Op::Protect] {
        let mut buf = Placed::new(64 * PAGE, 0);
        let sim = fresh(&mut buf);
        let inner = FaultInjector::new(&sim);
        let outer = FaultInjector::new(&inner);
        let x = outer.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
        // SAFETY: simulator-checked.
        unsafe { outer.map(x) }.unwrap();
        outer.set_shape(FaultShape::PartWay);
        outer.fail_nth(1);
        inner.only(&[failing]);
        inner.fail_nth(1);
        // SAFETY: simulator-checked.
        assert!(unsafe { outer.unmap(x) }.is_err());
        assert_eq!(outer.changed_part_way(), 0, "{failing:?}: counted");
        let states: Vec<_> =
            (0..8).map(|i| sim.page_state(Addr(x.base().0 + i * PAGE)).unwrap()).collect();
        let k =
            states.iter().take_while(|s| **s != PageState::Mapped(Protection::ReadWrite)).count();
        assert!(k < 8, "{failing:?}: all changed: {states:?}");
        for s in &states[..k] {
            assert!(
                matches!(s, PageState::Reserved | PageState::Mapped(Protection::None)),
                "{failing:?}: prefix {s:?}"
            );
        }
        match failing {
            // Unmap of the prefix refused: nothing changed.
            Op::Unmap => assert_eq!(k, 0, "{states:?}"),
            // Map refused: prefix left unmapped.
            Op::Map => assert!(k >= 1 && states[..k].iter().all(|s| *s == PageState::Reserved)),
            // Protect refused: unmapped again.
            _ => assert!(
                k >= 1 && states[..k].iter().all(|s| *s == PageState::Reserved),
                "{states:?}"
            ),
        }
        assert!(states[k..].iter().all(|s| *s == PageState::Mapped(Protection::ReadWrite)));
    }
}

/// "It keeps its state in atomics, so it can sit under structures shared
/// between threads": the nth eligible call fails exactly once across
/// threads; the simulator's lock keeps reservations apart.
#[test]
fn injector_and_simulator_shared_between_threads() {
    let mut buf = Placed::new(4096 * PAGE, 0);
    let sim = fresh(&mut buf);
    let f = FaultInjector::new(&sim);
    f.only(&[Op::Reserve]);
    f.fail_nth(1500);
    let got: Vec<Vec<Range>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    for _ in 0..500 {
                        match f.reserve(Size(PAGE), Size(PAGE)) {
                            Ok(x) => {
                                // SAFETY: ours, simulator-checked.
                                unsafe { f.map(x) }.unwrap();
                                mine.push(x);
                            }
                            Err(ShimError::Injected { .. }) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(f.injected(), 1);
    assert_eq!(f.eligible_calls(), 2000);
    let mut all: Vec<Range> = got.into_iter().flatten().collect();
    assert_eq!(all.len(), 1999);
    all.sort_by_key(|r| r.base());
    assert!(all.windows(2).all(|w| !w[0].overlaps(&w[1])));
    let st = sim.stats();
    assert_eq!((st.reservations, st.mapped_pages), (1999, 1999));
}
