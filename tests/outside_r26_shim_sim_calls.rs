//! Round 26 (outside reviewer): `SimBackend`, `Placed` and `FaultInjector`
//! against their documentation: the simulator's calls: what
//! every failed call leaves behind (the `PageOps` contract: nothing changed
//! on a refusal), zeroing and poison, deferred unmaps, release, protect.

mod outside_r26_shim_sim_common;

use vmspace_shim::sim::{PageState, Placed, SimBackend, POISON};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};

use outside_r26_shim_sim_common::{r, snapshot, PAGE};

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
