extern crate std;
use crate::error::CommonError;
use std::vec;
use std::vec::Vec;

use vmspace_shim::sim::{at_offsets, PageState, Placed, SimBackend, OFFSETS};
use vmspace_shim::{FaultInjector, Op, ShimError};

use super::*;

const PAGE: usize = 4096;

fn range(vm: &Vm<impl PageOps>, first: usize, pages: usize) -> Range {
    Range::from_size(Addr(vm.base().0 + first * vm.page_size().0), Size(pages * vm.page_size().0))
        .unwrap()
}

#[test]
fn reserve_aligns_to_grain_and_maps_only_the_summary() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(100 * PAGE), Size(16 * PAGE)).unwrap();
    assert!(vm.base().is_aligned(Size(16 * PAGE)));
    assert!(vm.limit().is_aligned(Size(16 * PAGE)));
    assert_eq!(vm.range().size(), Size(112 * PAGE));
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(vm.metadata_mapped(), Size(PAGE));
    assert_eq!(vm.reserved(), Size(114 * PAGE));
    assert_eq!(sim.stats().mapped_pages, 1);
    vm.check().unwrap();
    drop(vm);
    assert_eq!(sim.stats().reservations, 0);
    assert_eq!(sim.stats().mapped_pages, 0);
}

#[test]
fn bad_ranges_are_errors_and_change_nothing() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    let r = range(&vm, 4, 4);
    vm.map(r).unwrap();
    let calls = sim.stats().calls;
    let misaligned = Range::from_size(Addr(vm.base().0 + 1), Size(PAGE)).unwrap();
    assert!(matches!(vm.map(misaligned), Err(VmError::Common(CommonError::Misaligned { .. }))));
    assert!(matches!(
        vm.map(Range::empty(vm.base())),
        Err(VmError::Common(CommonError::InvalidArgument(_)))
    ));
    let beyond = Range::from_size(vm.limit(), Size(PAGE)).unwrap();
    assert_eq!(vm.map(beyond), Err(VmError::Common(CommonError::OutOfRange(beyond))));
    let straddle = range(&vm, 63, 1);
    let straddle = Range::new(straddle.base(), beyond.limit()).unwrap();
    assert_eq!(vm.unmap(straddle), Err(VmError::Common(CommonError::OutOfRange(straddle))));
    let overlap = range(&vm, 7, 2);
    assert_eq!(vm.map(overlap), Err(VmError::AlreadyMapped(overlap)));
    assert_eq!(vm.unmap(overlap), Err(VmError::NotMapped(overlap)));
    assert_eq!(vm.protect(overlap, Protection::Read), Err(VmError::NotMapped(overlap)));
    assert_eq!(sim.stats().calls, calls, "no bad call reached the backend");
    assert_eq!(vm.mapped(), Size(4 * PAGE));
    vm.check().unwrap();
}

#[test]
fn map_unmap_protect_track_state_and_runs() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(64 * PAGE), Size(PAGE)).unwrap();
    vm.map(range(&vm, 0, 2)).unwrap();
    vm.map(range(&vm, 2, 3)).unwrap();
    vm.map(range(&vm, 10, 1)).unwrap();
    assert!(vm.is_mapped(range(&vm, 4, 1).base()));
    assert!(!vm.is_mapped(range(&vm, 5, 1).base()));
    assert!(!vm.is_mapped(vm.limit()));
    assert_eq!(vm.is_range_mapped(range(&vm, 0, 5)), Ok(true));
    assert_eq!(vm.is_range_mapped(range(&vm, 0, 6)), Ok(false));
    let runs: Vec<_> = vm.mapped_runs().collect();
    assert_eq!(runs, [range(&vm, 0, 5), range(&vm, 10, 1)]);
    vm.protect(range(&vm, 1, 2), Protection::Read).unwrap();
    assert_eq!(sim.page_state(range(&vm, 1, 1).base()), Some(PageState::Mapped(Protection::Read)));
    vm.unmap(range(&vm, 1, 3)).unwrap();
    assert_eq!(vm.mapped(), Size(3 * PAGE));
    assert_eq!(sim.page_state(range(&vm, 2, 1).base()), Some(PageState::Reserved));
    vm.check().unwrap();
}

#[test]
fn table_pages_are_mapped_on_demand_and_trimmed() {
    // 64-byte pages: each bit-table page covers 512 client pages.
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let mut vm = Vm::reserve(&sim, Size(4096 * 64), Size(64)).unwrap();
    let summary = vm.metadata_mapped();
    vm.map(range(&vm, 510, 4)).unwrap(); // spans table pages 0 and 1
    assert_eq!(vm.metadata_mapped().0, summary.0 + 2 * 64);
    vm.map(range(&vm, 3000, 1)).unwrap();
    assert_eq!(vm.metadata_mapped().0, summary.0 + 3 * 64);
    assert_eq!(vm.metadata_trimmable(), Size(0));
    vm.unmap(range(&vm, 510, 3)).unwrap();
    assert_eq!(vm.metadata_trimmable(), Size(64), "table page 0 emptied, page 1 not");
    vm.unmap(range(&vm, 513, 1)).unwrap();
    assert_eq!(vm.metadata_trimmable(), Size(2 * 64));
    assert_eq!(vm.trim(), Ok(2));
    assert_eq!(vm.metadata_trimmable(), Size(0));
    assert_eq!(vm.metadata_mapped().0, summary.0 + 64);
    assert!(vm.is_mapped(range(&vm, 3000, 1).base()));
    vm.check().unwrap();
}

#[test]
fn trim_range_trims_only_the_table_pages_of_its_range() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let mut vm = Vm::reserve(&sim, Size(4096 * 64), Size(64)).unwrap();
    let summary = vm.metadata_mapped();
    // Table pages 0, 1 (pages 510..514) and 5 (page 3000), all emptied.
    vm.map(range(&vm, 510, 4)).unwrap();
    vm.map(range(&vm, 3000, 1)).unwrap();
    vm.map(range(&vm, 3001, 1)).unwrap();
    vm.unmap(range(&vm, 510, 4)).unwrap();
    vm.unmap(range(&vm, 3000, 1)).unwrap();
    assert_eq!(vm.metadata_trimmable(), Size(2 * 64), "table pages 0 and 1; 5 records 3001");
    // A page of table page 1 only; then page 0's; a mapped page's is kept.
    assert_eq!(vm.trim_range(range(&vm, 600, 1)), Ok(1));
    assert_eq!(vm.metadata_trimmable(), Size(64));
    assert_eq!(vm.metadata_mapped().0, summary.0 + 2 * 64);
    assert_eq!(vm.trim_range(range(&vm, 0, 512)), Ok(1));
    assert_eq!(vm.trim_range(range(&vm, 2560, 512)), Ok(0), "page 3001 is still mapped");
    assert_eq!(vm.metadata_mapped().0, summary.0 + 64);
    // Bad ranges are refused, and change nothing.
    let misaligned = Range::from_size(Addr(vm.base().0 + 1), Size(64)).unwrap();
    assert!(vm.trim_range(misaligned).is_err());
    assert!(vm.trim_range(Range::from_size(vm.limit(), Size(64)).unwrap()).is_err());
    assert!(vm.trim_range(Range::empty(vm.base())).is_err());
    vm.unmap(range(&vm, 3001, 1)).unwrap();
    assert_eq!(vm.trim_range(range(&vm, 0, 4096)), Ok(1));
    assert_eq!(vm.metadata_mapped(), summary);
    vm.check().unwrap();
}

#[test]
fn impossible_reservation_fails_cleanly() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let e = Vm::reserve(&sim, Size(1 << 40), Size(PAGE)).unwrap_err();
    assert!(matches!(e, VmError::Backend(ShimError::OutOfAddressSpace { .. })));
    assert_eq!(
        Vm::reserve(&sim, Size(usize::MAX), Size(PAGE)).unwrap_err(),
        VmError::Common(CommonError::Overflow)
    );
    assert!(matches!(
        Vm::reserve(&sim, Size(PAGE), Size(3)),
        Err(VmError::Common(CommonError::InvalidArgument(_)))
    ));
    assert_eq!(sim.stats().reservations, 0);
}

/// A fixed scenario that exercises every backend call the VM makes.
fn scenario(vm: &mut Vm<impl PageOps>) -> Result<(), VmError> {
    vm.map(range(vm, 0, 3))?;
    vm.map(range(vm, 700, 2))?;
    vm.protect(range(vm, 0, 1), Protection::Read)?;
    vm.unmap(range(vm, 1, 2))?;
    vm.trim()?;
    vm.unmap(range(vm, 700, 2))?;
    vm.trim()?;
    Ok(())
}

#[test]
fn every_backend_call_failing_once_leaves_the_vm_consistent() {
    at_offsets(OFFSETS.len(), 1 << 20, every_position);
}

/// The test with the simulated backend's buffer at one placement.
fn every_position(off: usize, buf: &mut Placed) {
    // Count the calls of the fault-free run first.
    let sim = SimBackend::new(buf.fresh(), 64).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&faulty, Size(1024 * 64), Size(64)).unwrap();
    faulty.fail_nth(0);
    scenario(&mut vm).unwrap();
    let calls = faulty.eligible_calls();
    drop(vm);
    assert!(calls >= 8, "the scenario should make many calls, made {calls}");

    for n in 1..=calls + 1 {
        let sim = SimBackend::new(buf.fresh(), 64).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut vm = Vm::reserve(&faulty, Size(1024 * 64), Size(64)).unwrap();
        faulty.fail_nth(n);
        // Each step either succeeds or fails without changing what is mapped.
        #[allow(clippy::type_complexity)]
        let steps: [&dyn Fn(&mut Vm<&FaultInjector<&SimBackend>>) -> Result<(), VmError>;
            7] = [
            &|vm| vm.map(range(vm, 0, 3)),
            &|vm| vm.map(range(vm, 700, 2)),
            &|vm| vm.protect(range(vm, 0, 1), Protection::Read),
            &|vm| vm.unmap(range(vm, 1, 2)),
            &|vm| vm.trim().map(drop),
            &|vm| vm.unmap(range(vm, 700, 2)),
            &|vm| vm.trim().map(drop),
        ];
        let mut failed = 0;
        for step in steps {
            let before: Vec<_> = vm.mapped_runs().collect();
            let (mapped, metadata) = (vm.mapped(), vm.metadata_mapped());
            match step(&mut vm) {
                Ok(()) => {}
                Err(e) => {
                    failed += 1;
                    assert!(matches!(e, VmError::Backend(ShimError::Injected { .. })), "{e}");
                    assert_eq!(vm.mapped(), mapped);
                    // Only `trim` keeps what it gave back before failing.
                    if vm.metadata_mapped() != metadata {
                        assert!(vm.metadata_mapped() < metadata, "offset {off}: fault {n}");
                        assert_eq!(vm.trim().unwrap(), 0, "a failed trim left pages to trim");
                    }
                    assert_eq!(vm.mapped_runs().collect::<Vec<_>>(), before);
                    vm.check().unwrap();
                    // The fault fires once: the same step now succeeds.
                    step(&mut vm).unwrap();
                }
            }
            vm.check().unwrap();
            // The VM's accounting matches the backend's exactly.
            let s = sim.stats();
            assert_eq!(s.mapped_pages * 64, vm.mapped().0 + vm.metadata_mapped().0);
        }
        assert_eq!(failed, usize::from(n <= calls), "offset {off}: fault {n} of {calls}");
        // A release that fails in `drop` cannot be reported (`Vm::release`
        // can); stop injecting so the reservation goes back.
        faulty.clear();
        drop(vm);
        assert_eq!(sim.stats().reservations, 0);
    }
}

#[test]
fn a_failed_map_gives_back_the_table_pages_it_mapped() {
    // 64-byte pages: a bit-table page records 512 pages, so pages 500..530
    // need table pages 0 and 1. Page 510 is mapped first, so table page 0 is
    // mapped before the map under test and must stay so.
    let mut buf = vec![0u8; 1 << 20];
    for (nth, what) in [(1, "table page 1"), (2, "the client range")] {
        let sim = SimBackend::new(&mut buf, 64).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut vm = Vm::reserve(&faulty, Size(2048 * 64), Size(64)).unwrap();
        vm.map(range(&vm, 510, 1)).unwrap();
        vm.unmap(range(&vm, 510, 1)).unwrap();
        let before = (vm.metadata_mapped(), sim.stats().mapped_pages);
        assert_eq!(before.0, Size(2 * 64), "the summary and table page 0");
        faulty.only(&[Op::Map]);
        faulty.fail_nth(nth);
        assert!(vm.map(range(&vm, 500, 30)).is_err(), "{what}");
        vm.check().unwrap();
        assert_eq!((vm.metadata_mapped(), sim.stats().mapped_pages), before, "{what}");
        assert_eq!(vm.metadata_trimmable(), Size(64), "{what}: table page 0, as before");
        assert_eq!(vm.mapped(), Size(0));
        // The same map succeeds once the fault has fired, and the table
        // pages it maps stay.
        vm.map(range(&vm, 500, 30)).unwrap();
        vm.check().unwrap();
        assert_eq!(vm.metadata_mapped(), Size(3 * 64));
        faulty.clear();
    }
}

#[test]
fn release_failure_hands_the_vm_back() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let vm = Vm::reserve(&faulty, Size(8 * PAGE), Size(PAGE)).unwrap();
    faulty.only(&[Op::Release]);
    faulty.fail_nth(1);
    let (vm, e) = vm.release().unwrap_err();
    assert_eq!(e, VmError::Backend(ShimError::Injected { op: Op::Release }));
    // A failed release releases nothing (the PageOps contract), so the retry
    // below is the one and only release.
    assert_eq!(sim.stats().reservations, 1, "still reserved");
    vm.check().unwrap();
    vm.release().map_err(|(_, e)| e).unwrap();
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn reserve_failure_paths_release_what_they_took() {
    for op in [Op::Reserve, Op::Map] {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        faulty.only(&[op]);
        faulty.fail_nth(1);
        let e = Vm::reserve(&faulty, Size(8 * PAGE), Size(PAGE)).unwrap_err();
        assert_eq!(e, VmError::Backend(ShimError::Injected { op }));
        assert_eq!(sim.stats().reservations, 0);
        assert_eq!(sim.stats().mapped_pages, 0);
    }
}

/// `check()` reports each kind of damage (round 24: dropping its mapped
/// count comparison failed no test), each on a VM that checked clean just
/// before: 256-byte pages, so a bit-table page records 2048 pages and the
/// VM of 3000 pages (3008 with the grain) has two, both mapped, the second
/// holding bits past the last page.
#[test]
fn check_catches_corruption() {
    type Damage = fn(&mut Vm<&SimBackend<'_>>);
    let grain = 16 * 256;
    let cases: [(Damage, &str); 9] = [
        (|vm| vm.mapped_pages += 1, "mapped byte count differs from the table"),
        (
            |vm| vm.client = Range::new(Addr(vm.client.base().0 + 256), vm.client.limit()).unwrap(),
            "base or limit not a multiple of the grain",
        ),
        (
            |vm| {
                // Grain-aligned, past the reservation's end.
                let past = (vm.reservation.size().0 / (16 * 256) + 2) * (16 * 256);
                vm.client =
                    Range::from_size(Addr(vm.client.base().0 + past), Size(16 * 256)).unwrap();
            },
            "client range outside the reservation",
        ),
        (|vm| vm.table.damage_table_count(), "mapped table page count is wrong"),
        (|vm| vm.table.damage_empty_count(), "empty table page count is wrong"),
        (|vm| vm.table.damage_entry(0, |e| e + 1), "table page count differs from its bits"),
        (|vm| vm.table.damage_fresh(1), "table page still marked fresh outside a map"),
        (
            |vm| {
                let past = vm.client_pages() - 2048;
                vm.table.damage_bit(1, past);
            },
            "bit set beyond the VM's limit",
        ),
        (
            |vm| {
                vm.table.trim_pages(&vm.ops, 0, 1).unwrap();
                vm.table.damage_entry(0, |_| 1);
            },
            "unmapped table page has a count",
        ),
    ];
    for (damage, want) in cases {
        let mut buf = Placed::new(4 << 20, 0);
        let sim = SimBackend::new(buf.bytes(), 256).unwrap();
        let mut vm = Vm::reserve(&sim, Size(3000 * 256), Size(grain)).unwrap();
        vm.map(range(&vm, 5, 3)).unwrap();
        vm.map(range(&vm, 2999, 1)).unwrap();
        vm.check().unwrap();
        if want == "unmapped table page has a count" {
            vm.unmap(range(&vm, 5, 3)).unwrap();
            vm.check().unwrap();
        }
        damage(&mut vm);
        assert_eq!(vm.check(), Err(VmError::Common(CommonError::Corrupt(want))), "{want}");
    }
}
