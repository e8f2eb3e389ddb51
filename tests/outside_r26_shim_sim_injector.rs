//! Round 26 (outside reviewer): `SimBackend`, `Placed` and `FaultInjector`
//! against their documentation: every injector knob
//! (`fail_nth`, `fail_randomly`, seeds, shapes, part-way failures over a
//! failing backend), and both shared between threads.

mod outside_r26_shim_sim_common;

use vmspace_shim::sim::{PageState, Placed};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, Op, PageOps, Protection, Range, ShimError, Size,
};

use outside_r26_shim_sim_common::{fresh, r, PAGE};

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
