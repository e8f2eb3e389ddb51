extern crate std;
use std::vec;

use super::*;

const PAGE: usize = 4096;

fn backend(buf: &mut [u8]) -> SimBackend<'_> {
    SimBackend::new(buf, PAGE).unwrap()
}

#[test]
fn reserve_is_aligned_and_commits_nothing() {
    let mut buf = vec![0u8; 64 * PAGE];
    let sim = backend(&mut buf);
    let r = sim.reserve(Size(4 * PAGE), Size(8 * PAGE)).unwrap();
    assert!(r.base().is_aligned(Size(8 * PAGE)));
    assert_eq!(r.size(), Size(4 * PAGE));
    assert_eq!(sim.page_state(r.base()), Some(PageState::Reserved));
    assert_eq!(sim.stats().mapped_pages, 0);
    assert_eq!(sim.stats().reserved_pages, 4);
}

#[test]
fn reserve_checks_arguments_and_room() {
    let mut buf = vec![0u8; 16 * PAGE];
    let sim = backend(&mut buf);
    assert!(matches!(sim.reserve(Size(0), Size(PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(sim.reserve(Size(PAGE + 1), Size(PAGE)), Err(ShimError::Misaligned { .. })));
    assert!(matches!(sim.reserve(Size(PAGE), Size(3 * PAGE)), Err(ShimError::InvalidArgument(_))));
    assert!(matches!(
        sim.reserve(Size(1 << 40), Size(PAGE)),
        Err(ShimError::OutOfAddressSpace { .. })
    ));
    assert_eq!(sim.stats().refused[Op::Reserve as usize], 4);
}

#[test]
fn map_zeroes_unmap_poisons_and_double_map_is_refused() {
    let mut buf = vec![0u8; 32 * PAGE];
    let sim = backend(&mut buf);
    let r = sim.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    let p = Range::from_size(r.base(), Size(2 * PAGE)).unwrap();
    // SAFETY: `p` is inside the live reservation `r` and unmapped.
    unsafe { sim.map(p).unwrap() };
    let bytes: *mut u8 = p.base().as_ptr();
    // SAFETY: `p` is mapped; the sim's pages are the buffer's memory.
    unsafe {
        assert_eq!(*bytes, 0);
        *bytes = 7;
    }
    // SAFETY: contract violations are refused by the sim, never acted on.
    unsafe {
        assert_eq!(sim.map(p), Err(ShimError::AlreadyMapped(p)));
        sim.unmap(p).unwrap();
        assert_eq!(*bytes, POISON);
        assert_eq!(sim.unmap(p), Err(ShimError::NotMapped(p)));
        sim.map(p).unwrap();
        assert_eq!(*bytes, 0);
    }
    assert_eq!(sim.stats().mapped_pages, 2);
    assert_eq!(sim.stats().pages_mapped_total, 4);
}

#[test]
fn ranges_outside_or_across_reservations_are_refused() {
    let mut buf = vec![0u8; 32 * PAGE];
    let sim = backend(&mut buf);
    let a = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    let b = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(a.limit(), b.base(), "first fit packs reservations");
    let across = Range::new(a.base(), b.limit()).unwrap();
    let outside = Range::from_size(b.limit(), Size(PAGE)).unwrap();
    let misaligned = Range::from_size(Addr(a.base().0 + 1), Size(PAGE)).unwrap();
    // SAFETY: the sim refuses each of these without touching memory.
    unsafe {
        assert_eq!(sim.map(across), Err(ShimError::NotReserved(across)));
        assert_eq!(sim.map(outside), Err(ShimError::NotReserved(outside)));
        assert!(matches!(sim.map(misaligned), Err(ShimError::Misaligned { .. })));
        // Half a reservation cannot be released, and the refusal releases
        // nothing: the reservation and its mapped page are as they were.
        let half = Range::from_size(a.base(), Size(PAGE)).unwrap();
        sim.map(half).unwrap();
        half.base().as_ptr::<u8>().write(7);
        assert_eq!(sim.release(half), Err(ShimError::NotReserved(half)));
        assert_eq!((sim.stats().reservations, sim.stats().mapped_pages), (2, 1));
        assert_eq!(half.base().as_ptr::<u8>().read(), 7);
        sim.release(a).unwrap();
        assert_eq!(sim.release(a), Err(ShimError::NotReserved(a)));
        sim.release(b).unwrap();
    }
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn protect_tracks_protection() {
    let mut buf = vec![0u8; 16 * PAGE];
    let sim = backend(&mut buf);
    let r = sim.reserve(Size(2 * PAGE), Size(PAGE)).unwrap();
    assert_eq!(sim.protection(r.base()), None, "reserved, not mapped");
    // SAFETY: the sim checks every contract.
    unsafe {
        assert_eq!(sim.protect(r, Protection::Read), Err(ShimError::NotMapped(r)));
        sim.map(r).unwrap();
        assert_eq!(sim.protection(r.base()), Some(Protection::ReadWrite));
        sim.protect(r, Protection::Read).unwrap();
    }
    assert_eq!(sim.page_state(r.base()), Some(PageState::Mapped(Protection::Read)));
    assert_eq!(sim.protection(r.base()), Some(Protection::Read));
    assert_eq!(sim.protection(Addr(0)), None, "outside the region");
}

#[test]
fn fault_injector_fails_the_nth_call_before_the_backend_sees_it() {
    let mut buf = vec![0u8; 16 * PAGE];
    let sim = backend(&mut buf);
    let faulty = crate::FaultInjector::new(&sim);
    faulty.only(&[Op::Map]);
    faulty.fail_nth(2);
    let r = faulty.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    let p0 = Range::from_size(r.base(), Size(PAGE)).unwrap();
    let p1 = Range::from_size(p0.limit(), Size(PAGE)).unwrap();
    // SAFETY: both ranges are inside `r` and unmapped.
    unsafe {
        faulty.map(p0).unwrap();
        assert_eq!(faulty.map(p1), Err(ShimError::Injected { op: Op::Map }));
        faulty.map(p1).unwrap();
    }
    assert_eq!(faulty.injected(), 1);
    assert_eq!(sim.stats().calls_of(Op::Map), 2, "the injected failure never reached the sim");
}

#[test]
fn fault_injector_random_failures_are_seeded() {
    let run = |seed| {
        let mut buf = vec![0u8; 16 * PAGE];
        let sim = backend(&mut buf);
        let faulty = crate::FaultInjector::new(&sim);
        faulty.fail_randomly(seed, 300_000);
        (0..64)
            .map(|_| faulty.reserve(Size(PAGE), Size(PAGE)).is_err())
            .collect::<std::vec::Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert!(a.iter().any(|&f| f) && a.iter().any(|&f| !f));
}

#[test]
fn a_deferred_unmap_keeps_its_pages_until_the_flush_and_refuses_a_remap() {
    let mut buf = vec![0u8; 32 * PAGE];
    let sim = backend(&mut buf);
    let r = sim.reserve(Size(4 * PAGE), Size(PAGE)).unwrap();
    let two = Range::from_size(r.base(), Size(2 * PAGE)).unwrap();
    // SAFETY: `two` is inside the live reservation and unmapped.
    unsafe { sim.map(two).unwrap() };
    let p = r.base().0 as *mut u64;
    // SAFETY: the page was just mapped read-write.
    unsafe { p.write(0x5ca1ab1e) };
    // SAFETY: `two` is mapped and nothing touches it afterwards but the
    // stale read below, which the sim's buffer allows.
    unsafe { sim.unmap_deferred(two).unwrap() };
    assert_eq!(sim.page_state(r.base()), Some(PageState::Unflushed));
    assert_eq!((sim.stats().unflushed_pages, sim.stats().mapped_pages), (2, 0));
    assert_eq!(sim.unflushed_pages(), 2);
    // What a stale TLB entry would still reach: the old contents.
    // SAFETY: the buffer is ours; the sim keeps unflushed pages as they were.
    assert_eq!(unsafe { p.read() }, 0x5ca1ab1e);
    // Mapping any page of it again before the flush is refused, and changes nothing.
    let one = Range::from_size(Addr(r.base().0 + PAGE), Size(PAGE)).unwrap();
    let wider = Range::from_size(Addr(r.base().0 + PAGE), Size(2 * PAGE)).unwrap();
    for x in [two, one, wider] {
        // SAFETY: inside the live reservation; the sim checks the rest.
        assert_eq!(unsafe { sim.map(x) }, Err(ShimError::Unflushed(x)));
    }
    // Unmapping it again is a contract violation too.
    // SAFETY: as above.
    assert!(matches!(unsafe { sim.unmap_deferred(one) }, Err(ShimError::NotMapped(_))));
    assert_eq!(sim.stats().unflushed_pages, 2);
    assert_eq!(sim.flush(), 2);
    assert_eq!(sim.flush(), 0, "nothing left");
    assert_eq!(sim.stats().flushes, 1);
    assert_eq!(sim.page_state(r.base()), Some(PageState::Reserved));
    // SAFETY: the buffer is ours; flushed pages are poisoned.
    assert_eq!(unsafe { (p as *const u8).read() }, POISON);
    // SAFETY: inside the live reservation, unmapped and flushed.
    unsafe { sim.map(two).unwrap() };
    // SAFETY: just mapped: reads zero.
    assert_eq!(unsafe { p.read() }, 0);
    // A release completes what is pending in the reservation.
    // SAFETY: mapped; released below.
    unsafe { sim.unmap_deferred(two).unwrap() };
    // SAFETY: our reservation; nothing touches it again.
    unsafe { sim.release(r).unwrap() };
    assert_eq!(sim.stats().unflushed_pages, 0);
    assert_eq!(sim.flush(), 0);
}
