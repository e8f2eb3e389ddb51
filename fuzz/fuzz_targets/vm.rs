//! Fuzz the VM layer: the input's first byte picks the simulated backend's
//! page size (64 or 4096 bytes), the VM's size and whether backend faults
//! are injected (and how often); the rest decodes into `VmCall`s (maps,
//! unmaps, deferred unmaps, flushes, protections and trims, whole or of
//! page spans, some empty, misaligned or past the end), each applied to a
//! `Vm` and to the model of mapped and unflushed pages by
//! `vm_calls::step_checked`, which checks outcomes, `mapped()`, the runs,
//! the backend's unflushed pages, what trims give back and `check()` after
//! every step; at the end everything is unmapped and trimmed, and the
//! metadata must be back where it was after the reservation. The simulated
//! backend refuses to map a page whose deferred unmap is not flushed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Size};
use vmspace_workload::vm_calls::{self, VmCall, VmCallModel, VmCallStats};

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut calls)) = data.split_first() else { return };
    let page = if head & 1 == 0 { 64 } else { 4096 };
    // 2,048 pages of 64 bytes: four bit-table pages, for trims to find.
    let pages = [16usize, 100, 256, 2048][usize::from(head >> 1) % 4];
    let pages = if page == 4096 { pages.min(256) } else { pages };
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, page).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&faulty, Size(pages * page), Size(page)).unwrap();
    let faults = head & 0x80 != 0;
    if faults {
        faulty.fail_randomly(u64::from(head), 50_000 + u32::from(head & 0x70) * 5_000);
    }
    let mut model = VmCallModel::<32>::for_vm(&vm);
    let mut stats = VmCallStats::default();
    while let Some(call) = VmCall::decode(&mut calls, model.pages()) {
        vm_calls::step_checked(&mut vm, &mut model, &call, faults, &mut stats)
            .unwrap_or_else(|(what, e)| panic!("{call:?}: {what} ({e:?})"));
    }
    faulty.clear();
    vm_calls::unmap_all_and_trim(&mut vm, &mut model, &mut stats)
        .unwrap_or_else(|(what, e)| panic!("at the end: {what} ({e:?})"));
    vm.flush();
    drop(vm);
    let s = sim.stats();
    assert_eq!((s.reservations, s.mapped_pages, s.unflushed_pages), (0, 0, 0), "{s:?}");
});
