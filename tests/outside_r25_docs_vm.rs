//! Round 25 outside review: the VM layer's documented contract
//! (`src/vm/`): errors leave the VM unchanged, failed maps give back the
//! table pages they mapped, trim keeps what it gave back, extremes.

use vmspace::error::CommonError;
use vmspace::vm::{Vm, VmError};
use vmspace_shim::sim::{PageState, Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;

/// What "the VM as it was" is made of, as far as the API shows it.
fn snapshot<P: PageOps>(vm: &Vm<P>) -> (Size, Size, Vec<Range>) {
    (vm.mapped(), vm.metadata_mapped(), vm.mapped_runs().collect())
}

/// Module docs: "Bad ranges (misaligned, outside the VM, mapping what is
/// mapped, unmapping what is not) are errors that leave the VM unchanged";
/// each with the error `VmError` names.
#[test]
fn bad_ranges_are_the_named_errors_and_change_nothing() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(4 * PAGE)).unwrap();
    let b = vm.base().0;
    let r = |lo: usize, hi: usize| Range::new(Addr(b + lo * PAGE), Addr(b + hi * PAGE)).unwrap();
    vm.map(r(4, 8)).unwrap();
    let before = snapshot(&vm);
    let lim = vm.limit().0;
    type Expect = fn(&VmError) -> bool;
    let cases: Vec<(Range, Expect)> = vec![
        (Range::empty(Addr(b)), |e| matches!(e, VmError::Common(CommonError::InvalidArgument(_)))),
        (Range::new(Addr(b + 1), Addr(b + PAGE)).unwrap(), |e| {
            matches!(e, VmError::Common(CommonError::Misaligned { .. }))
        }),
        (Range::new(Addr(lim - PAGE), Addr(lim + PAGE)).unwrap(), |e| {
            matches!(e, VmError::Common(CommonError::OutOfRange(_)))
        }),
        (Range::new(Addr(b - PAGE), Addr(b)).unwrap(), |e| {
            matches!(e, VmError::Common(CommonError::OutOfRange(_)))
        }),
        (Range::new(Addr(usize::MAX - 2 * PAGE + 1), Addr(usize::MAX - PAGE + 1)).unwrap(), |e| {
            matches!(e, VmError::Common(CommonError::OutOfRange(_)))
        }),
    ];
    for (range, ok) in &cases {
        for e in [vm.map(*range), vm.unmap(*range), vm.protect(*range, Protection::Read)] {
            let e = e.unwrap_err();
            assert!(ok(&e), "{range}: {e:?}");
        }
        assert!(vm.is_range_mapped(*range).is_err());
        assert!(vm.trim_range(*range).is_err());
        assert_eq!(snapshot(&vm), before);
    }
    assert_eq!(vm.map(r(7, 9)), Err(VmError::AlreadyMapped(r(7, 9))));
    assert_eq!(vm.unmap(r(3, 5)), Err(VmError::NotMapped(r(3, 5))));
    assert_eq!(vm.unmap_deferred(r(8, 9)), Err(VmError::NotMapped(r(8, 9))));
    assert_eq!(vm.protect(r(7, 9), Protection::None), Err(VmError::NotMapped(r(7, 9))));
    assert_eq!(snapshot(&vm), before);
    assert!(!vm.is_mapped(Addr(usize::MAX)) && !vm.is_mapped(Addr(0)));
    vm.check().unwrap();
}

/// `Vm::reserve`: "A size of 0, or a grain that is not a power of two at
/// least the backend's page size, is refused with an error"; sizes at the
/// top of `usize` are errors, not panics.
#[test]
fn reserve_extremes_are_errors() {
    let mut buf = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    for (size, grain) in [
        (0, PAGE),
        (PAGE, PAGE / 2),
        (PAGE, 3 * PAGE),
        (PAGE, 0),
        (usize::MAX, PAGE),
        (usize::MAX - PAGE + 1, PAGE),
        (1usize << 63, PAGE),
        (PAGE, 1usize << 63),
        (1, usize::MAX),
    ] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Vm::reserve(&sim, Size(size), Size(grain)).map(|_| ())
        }));
        assert!(matches!(r, Ok(Err(_))), "reserve({size:#x}, {grain:#x}): {r:?}");
    }
    assert_eq!(sim.stats().reservations, 0);
}

/// Module docs: a failure of the backend leaves the VM unchanged, "its own
/// bit-table pages included (a failed `map` gives back the table pages it
/// mapped)"; `VmError`: "Every error leaves the VM as it was before the
/// call". A map spanning three bit-table pages is failed at each of its
/// backend calls in turn.
#[test]
fn every_failing_map_call_gives_back_its_table_pages() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    // One bit-table page covers PAGE * 8 = 2048 client pages.
    let mut vm = Vm::reserve(&fi, Size(3 * 2048 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    let mid = Range::new(Addr(b + 2047 * PAGE), Addr(b + 4097 * PAGE)).unwrap();
    let one = Range::from_size(Addr(b + 2048 * PAGE), Size(PAGE)).unwrap();
    // Table page 1 mapped already, 0 and 2 not.
    vm.map(one).unwrap();
    let mid_lo = Range::new(mid.base(), one.base()).unwrap();
    let mid_hi = Range::new(one.limit(), mid.limit()).unwrap();
    for target in [mid_lo, mid_hi] {
        let before = snapshot(&vm);
        let sim_before = sim.stats().mapped_pages;
        let mut n = 1;
        loop {
            fi.only(&[Op::Map]);
            fi.fail_nth(n);
            let r = vm.map(target);
            fi.clear();
            if r.is_ok() {
                break;
            }
            assert!(matches!(r, Err(VmError::Backend(ShimError::Injected { .. }))), "{r:?}");
            assert_eq!(snapshot(&vm), before, "map call {n} failed");
            assert_eq!(sim.stats().mapped_pages, sim_before, "map call {n} failed");
            vm.check().unwrap();
            n += 1;
        }
        assert!(n >= 2);
    }
    vm.check().unwrap();
}

/// The same when giving back the fresh table page fails too: the docs
/// promised the VM unchanged after any error, while the table page's
/// module said it "stays mapped, empty and counted" (round 25's finding).
/// Now documented as `VmError`'s exception: the client pages are as they
/// were, the table page stays mapped and counted, and `trim` gives it back.
#[test]
fn a_failed_map_whose_table_page_cannot_be_given_back() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let inner = FaultInjector::new(&sim);
    let outer = FaultInjector::new(&inner);
    let mut vm = Vm::reserve(&outer, Size(64 * PAGE), Size(PAGE)).unwrap();
    let before = snapshot(&vm);
    let r = Range::from_size(vm.base(), Size(4 * PAGE)).unwrap();
    outer.only(&[Op::Map]);
    outer.fail_nth(2); // the client map, after the table page's
    inner.only(&[Op::Unmap]);
    inner.fail_nth(1); // giving the table page back
    assert!(vm.map(r).is_err());
    outer.clear();
    inner.clear();
    vm.check().unwrap();
    let after = snapshot(&vm);
    assert_eq!((after.0, &after.2), (before.0, &before.2), "the client pages changed");
    assert_eq!(after.1, Size(before.1 .0 + PAGE), "the documented exception: one table page");
    assert_eq!(vm.trim().unwrap(), 1, "trim gives the table page back");
    assert_eq!(snapshot(&vm), before);
    vm.check().unwrap();
}

/// `trim`: "If the backend fails, the pages given back before the failure
/// stay given back (the client's mapped pages are unchanged either way)."
#[test]
fn trim_failing_part_way_keeps_what_it_gave_back() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&fi, Size(3 * 2048 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    let pg = |i: usize| Range::from_size(Addr(b + i * PAGE), Size(PAGE)).unwrap();
    for i in [0, 2048, 4096] {
        vm.map(pg(i)).unwrap();
    }
    let meta_all = vm.metadata_mapped();
    for i in [0, 2048, 4096] {
        vm.unmap(pg(i)).unwrap();
    }
    assert_eq!(vm.metadata_mapped(), meta_all, "no hysteresis promised: unmap keeps table pages");
    fi.only(&[Op::Unmap]);
    fi.fail_nth(2);
    assert!(vm.trim().is_err());
    fi.clear();
    assert_eq!(vm.metadata_mapped().0, meta_all.0 - PAGE, "the first one stays given back");
    assert_eq!(vm.mapped(), Size(0));
    vm.check().unwrap();
    assert_eq!(vm.trim().unwrap(), 2);
    vm.check().unwrap();
}

/// `release`: "On failure the VM is handed back unchanged, so the caller
/// may retry"; then it succeeds and nothing stays reserved.
#[test]
fn release_failure_hands_the_vm_back() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&fi, Size(16 * PAGE), Size(PAGE)).unwrap();
    let r = Range::from_size(vm.base(), Size(2 * PAGE)).unwrap();
    vm.map(r).unwrap();
    let before = snapshot(&vm);
    fi.only(&[Op::Release]);
    fi.fail_nth(1);
    let (vm, e) = vm.release().unwrap_err();
    assert!(matches!(e, VmError::Backend(ShimError::Injected { .. })));
    assert_eq!(snapshot(&vm), before);
    vm.check().unwrap();
    fi.clear();
    vm.release().map_err(|(_, e)| e).unwrap();
    assert_eq!(sim.stats().reservations, 0);
}

/// `unmap_deferred`: "Until then the range is unflushed and must not be
/// mapped again (the backend refuses ...)": the map is an error that leaves
/// the VM unchanged (its table page given back), and after `flush` the
/// map works and reads zero.
#[test]
fn mapping_an_unflushed_range_is_refused_cleanly() {
    let mut buf = Placed::new(4 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(3 * 2048 * PAGE), Size(PAGE)).unwrap();
    let r = Range::from_size(vm.base(), Size(4 * PAGE)).unwrap();
    vm.map(r).unwrap();
    // SAFETY: mapped read-write just now, owned by this test.
    unsafe { core::ptr::write_bytes(r.base().as_ptr::<u8>(), 7, r.size().0) };
    vm.unmap_deferred(r).unwrap();
    assert_eq!(vm.trim().unwrap(), 1);
    let before = snapshot(&vm);
    let e = vm.map(r).unwrap_err();
    assert!(matches!(e, VmError::Backend(ShimError::Unflushed(_))), "{e:?}");
    assert_eq!(snapshot(&vm), before);
    vm.check().unwrap();
    assert_eq!(vm.flush(), 4);
    vm.map(r).unwrap();
    // SAFETY: mapped read-write.
    let s = unsafe { core::slice::from_raw_parts(r.base().as_ptr::<u8>(), r.size().0) };
    assert!(s.iter().all(|&x| x == 0), "reads zero after a map");
    assert_eq!(sim.page_state(r.base()), Some(PageState::Mapped(Protection::ReadWrite)));
}
