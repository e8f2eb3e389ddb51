//! Round 35 outside review: the VM's reservation accounting and teardown.
//!
//! Contract: src/vm/mod.rs:115-124 `reserved`: "Bytes of address space
//! reserved, including the metadata region past the limit."; `reservation`:
//! "The whole reservation, metadata region included."; src/vm/mod.rs:68-72
//! `reserve`: "Reserve at least `size` bytes ... (rounded up to `grain`)
//! whose base and limit are multiples of `grain`. Nothing is committed but
//! the small summary ... A `size` of 0, or a `grain` that is not a power of
//! two at least the backend's page size, is refused with an error.";
//! src/vm/mod.rs:308-309 `release`: "Release the reservation now, reporting
//! failure. On failure the VM is handed back unchanged, so the caller may
//! retry."; src/vm/mod.rs:9 "Dropping it releases everything."

use vmspace::vm::{Vm, VmError};
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, Range, Size};

const PAGE: usize = 64;

#[test]
fn reserve_accounts_exactly_and_fails_without_leaks() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    for (size, grain) in [(1, PAGE), (PAGE + 1, 4 * PAGE), (5000 * PAGE + 3, 64 * PAGE)] {
        let vm = Vm::reserve(&fi, Size(size), Size(grain)).unwrap();
        let st = sim.stats();
        assert_eq!(vm.reserved(), Size(st.reserved_pages * PAGE), "size {size}");
        assert_eq!(vm.reserved(), vm.reservation().size());
        assert!(vm.reservation().contains(&vm.range()));
        assert!(vm.range().size().0 >= size && vm.range().size().0 - size < grain);
        assert!(vm.base().is_aligned(Size(grain)) && vm.limit().is_aligned(Size(grain)));
        assert_eq!(vm.mapped(), Size(0));
        assert_eq!(st.mapped_pages * PAGE, vm.metadata_mapped().0, "only the summary");
        assert_eq!(vm.metadata_mapped(), Size(PAGE), "one summary page");
        vm.check().unwrap();
        drop(vm);
        assert_eq!((sim.stats().reservations, sim.stats().mapped_pages), (0, 0));
    }
    // Refused arguments and every failing call of `reserve`: nothing left.
    for (size, grain) in [(0, PAGE), (PAGE, PAGE / 2), (PAGE, 3 * PAGE), (usize::MAX - 10, PAGE)] {
        let r = Vm::reserve(&fi, Size(size), Size(grain));
        assert!(matches!(r, Err(VmError::Common(_))), "{size} {grain}: {r:?}");
    }
    let r = Vm::reserve(&fi, Size(1 << 40), Size(PAGE));
    assert!(matches!(r, Err(VmError::Backend(_))), "{r:?}");
    for nth in 1..=2 {
        fi.fail_nth(nth);
        let r = Vm::reserve(&fi, Size(100 * PAGE), Size(PAGE));
        fi.clear();
        assert!(matches!(r, Err(VmError::Backend(_))), "nth {nth}: {r:?}");
        let st = sim.stats();
        assert_eq!((st.reservations, st.mapped_pages, st.reserved_pages), (0, 0, 0), "nth {nth}");
    }
}

#[test]
fn failed_release_hands_back_the_vm_unchanged() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&fi, Size(3000 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    for (lo, n) in [(3, 10), (600, 700), (2900, 100)] {
        vm.map(Range::from_size(Addr(b + lo * PAGE), Size(n * PAGE)).unwrap()).unwrap();
    }
    let snap = |vm: &Vm<&FaultInjector<&SimBackend<'_>>>| {
        (vm.mapped(), vm.metadata_mapped(), vm.reserved(), vm.mapped_runs().collect::<Vec<_>>())
    };
    let before = (snap(&vm), sim.stats().mapped_pages, sim.stats().reserved_pages);
    fi.only(&[Op::Release]);
    fi.fail_nth(1);
    let (vm, e) = vm.release().unwrap_err();
    fi.clear();
    assert!(matches!(e, VmError::Backend(_)), "{e:?}");
    vm.check().unwrap();
    assert_eq!((snap(&vm), sim.stats().mapped_pages, sim.stats().reserved_pages), before);
    vm.release().unwrap();
    let st = sim.stats();
    assert_eq!((st.reservations, st.mapped_pages, st.reserved_pages), (0, 0, 0));
}

/// A VM dropped with deferred unmaps not yet flushed: "Dropping it releases
/// everything" (src/vm/mod.rs:9) — the backend holds nothing of it, not even
/// pending unflushed pages, once it has flushed.
#[test]
fn drop_with_unflushed_unmaps_releases_everything() {
    let mut buffer = Placed::new(1 << 20, 0);
    let sim = SimBackend::new(buffer.bytes(), PAGE).unwrap();
    {
        let mut vm = Vm::reserve(&sim, Size(1000 * PAGE), Size(PAGE)).unwrap();
        let r = Range::from_size(Addr(vm.base().0 + 5 * PAGE), Size(600 * PAGE)).unwrap();
        vm.map(r).unwrap();
        vm.unmap_deferred(r).unwrap();
        assert_eq!(vm.mapped(), Size(0));
        assert_eq!(sim.stats().unflushed_pages, 600);
        // Mapping an unflushed page again fails and changes nothing.
        let meta = vm.metadata_mapped();
        let again = Range::from_size(Addr(vm.base().0 + 600 * PAGE), Size(10 * PAGE)).unwrap();
        if vm.map(again).is_err() {
            assert_eq!((vm.mapped(), vm.metadata_mapped()), (Size(0), meta));
        } else {
            assert_eq!(vm.mapped(), Size(10 * PAGE));
        }
        vm.check().unwrap();
    }
    vmspace_shim::PageOps::flush(&&sim);
    let st = sim.stats();
    assert_eq!(
        (st.reservations, st.mapped_pages, st.reserved_pages, st.unflushed_pages),
        (0, 0, 0, 0)
    );
}
