//! The VM layer on the real mmap backend: the Memory Pool System's VM test
//! notes (large reservations commit nothing, impossible sizes fail cleanly,
//! mapping in a large space works, lots of mappings stay few VMAs).

use vmspace::vm::{Vm, VmError};
use vmspace::CommonError;
use vmspace_shim::{Addr, Range, ShimError, Size};
use vmspace_user::{procfs, MmapBackend, UnmapStrategy};
use vmspace_workload::vm_ops;
use vmspace_workload::Rng;

const GIB: usize = 1 << 30;

fn page() -> usize {
    vmspace_shim::PageOps::page_size(&MmapBackend::new()).0
}

fn pages(vm: &Vm<MmapBackend>, first: usize, n: usize) -> Range {
    Range::from_size(Addr(vm.base().0 + first * page()), Size(n * page())).unwrap()
}

#[test]
fn reserving_64_gib_and_1_tib_commits_nothing() {
    for size in [64 * GIB, 1024 * GIB] {
        let vm = Vm::reserve(MmapBackend::new(), Size(size), Size(1 << 21)).unwrap();
        assert_eq!(vm.range().size(), Size(size));
        assert!(vm.base().is_aligned(Size(1 << 21)));
        assert_eq!(vm.mapped(), Size(0));
        assert_eq!(procfs::resident_in(vm.reservation()).unwrap(), Size(0), "{}", Size(size));
        // Metadata mapped for an idle VM: the summary only, 1/32768 of a
        // 1/4096 share of the space, and not even resident yet.
        assert!(vm.metadata_mapped().0 <= size / (1 << 15), "{}", vm.metadata_mapped());
        vm.check().unwrap();
    }
}

#[test]
fn an_impossible_size_fails_with_a_clear_error() {
    let e = Vm::reserve(MmapBackend::new(), Size(1 << 60), Size(1 << 12)).unwrap_err();
    assert!(
        matches!(e, VmError::Backend(ShimError::OutOfAddressSpace { size }) if size >= 1 << 60),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("no room to reserve"), "{text}");
    let e = Vm::reserve(MmapBackend::new(), Size(usize::MAX - 100), Size(1 << 12)).unwrap_err();
    assert_eq!(e, VmError::Common(CommonError::Overflow));
}

#[test]
fn mapping_in_a_large_space_works() {
    let mut vm = Vm::reserve(MmapBackend::new(), Size(1024 * GIB), Size(1 << 21)).unwrap();
    let n = vm.range().size().0 / page();
    let mut rng = Rng::new(11);
    let spots = [0, 1, n / 2, n - 17, n - 1].into_iter().chain((0..32).map(|_| rng.below(n - 4)));
    let mut mapped = Vec::new();
    for first in spots {
        let r = pages(&vm, first, if first + 4 <= n { 4 } else { 1 });
        if vm.map(r).is_err() {
            continue; // overlaps an earlier spot
        }
        let p: *mut u64 = r.base().as_ptr();
        // SAFETY: the VM just mapped `r` read-write.
        unsafe {
            assert_eq!(p.read(), 0);
            p.write(first as u64);
        }
        mapped.push((r, first));
    }
    for (r, first) in &mapped {
        // SAFETY: still mapped.
        assert_eq!(unsafe { r.base().as_ptr::<u64>().read() }, *first as u64);
    }
    let resident = procfs::resident_in(vm.reservation()).unwrap();
    assert!(resident.0 >= mapped.len() * page(), "{resident}");
    assert!(
        resident.0 < 64 << 20,
        "only touched pages and a few table pages are resident: {resident}"
    );
    vm.check().unwrap();
    for (r, _) in mapped {
        vm.unmap(r).unwrap();
    }
    assert_eq!(vm.mapped(), Size(0));
}

/// 100,000 single-page map/unmap operations at random places in a VM of
/// 4096 pages, checking every re-mapped page reads zero. Returns the number of
/// mapped runs and the VMAs in the reservation at the end.
fn lots_of_mappings(backend: MmapBackend) -> (usize, Vec<procfs::Vma>) {
    const PAGES: usize = 4096;
    let mut vm = Vm::reserve(backend, Size(PAGES * page()), Size(page())).unwrap();
    let mut model = vm_ops::PageSetModel::<{ PAGES / 64 }>::new(PAGES);
    let mut rng = Rng::new(2024);
    for _ in 0..100_000 {
        let i = rng.below(PAGES);
        let r = pages(&vm, i, 1);
        let kind = if model.is_mapped(i) {
            vm.unmap(r).unwrap();
            vm_ops::VmOpKind::Unmap
        } else {
            vm.map(r).unwrap();
            // SAFETY: the VM just mapped `r` read-write; one page of u64s.
            let words =
                unsafe { std::slice::from_raw_parts_mut(r.base().as_ptr::<u64>(), page() / 8) };
            assert!(words.iter().all(|&w| w == 0), "re-mapped page {i} does not read zero");
            words[0] = 0xDEAD_BEEF;
            words[words.len() - 1] = 0xDEAD_BEEF;
            vm_ops::VmOpKind::Map
        };
        assert!(model.apply(&vm_ops::VmOp { kind, first: i, pages: 1, skew: 0 }));
    }
    vm.check().unwrap();
    assert_eq!(vm.mapped().0, model.mapped() * page());
    let runs = model.runs();
    assert_eq!(vm.mapped_runs().count(), runs);
    (runs, procfs::vmas_in(vm.reservation()).unwrap())
}

#[test]
fn lots_of_mappings_decommit_merges_every_run_into_one_vma() {
    let (runs, vmas) = lots_of_mappings(MmapBackend::with_strategy(UnmapStrategy::Decommit));
    // Mapped runs alternate with reserved gaps; the metadata adds one or two.
    assert!(vmas.len() <= 2 * runs + 3, "{} VMAs for {runs} mapped runs", vmas.len());
    let rw = vmas.iter().filter(|v| v.perms.starts_with("rw")).count();
    assert!(rw <= runs + 1, "{rw} read-write VMAs for {runs} mapped runs");
}

#[test]
fn lots_of_mappings_replace_stays_proportional_to_runs() {
    // Replacing mappings loses the shared anon_vma, so some adjacent runs
    // cannot merge (see the mmap backend's docs): measured about 2.2 VMAs per
    // run for this sequence, against 2 for Decommit. Still bounded by the
    // runs, never by the 100,000 operations.
    let (runs, vmas) = lots_of_mappings(MmapBackend::with_strategy(UnmapStrategy::Replace));
    assert!(vmas.len() <= 3 * runs + 3, "{} VMAs for {runs} mapped runs", vmas.len());
}
