//! Written from the documented contracts by a reviewer outside the project,
//! to break them: Vm::trim_range and the VM layer's edges.

use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, PageOps, Range, Size};

const PAGE: usize = 64; // 512 client pages per bit-table page

fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

#[test]
fn trim_range_rejects_bad_ranges_without_panicking() {
    let mut buf = vec![0u8; 1 << 22];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(2048 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    let l = vm.limit().0;
    let meta = vm.metadata_mapped();
    // empty
    assert!(vm.trim_range(Range::empty(vm.base())).is_err());
    assert!(vm.trim_range(Range::empty(vm.limit())).is_err());
    // misaligned
    assert!(vm.trim_range(r(b + 1, PAGE)).is_err());
    assert!(vm.trim_range(r(b, PAGE + 1)).is_err());
    // outside
    assert!(vm.trim_range(r(l, PAGE)).is_err());
    assert!(vm.trim_range(r(l - PAGE, 2 * PAGE)).is_err());
    assert!(vm.trim_range(r(b - PAGE, 2 * PAGE)).is_err());
    // metadata region past the limit is not client
    let res = vm.reservation();
    assert!(vm.trim_range(Range::new(vm.limit(), res.limit()).unwrap()).is_err());
    // at the top of the address space
    let top = Range::new(
        Addr(usize::MAX - (usize::MAX % PAGE) - PAGE),
        Addr(usize::MAX - (usize::MAX % PAGE)),
    )
    .unwrap();
    assert!(vm.trim_range(top).is_err());
    assert!(vm.trim_range(Range::new(Addr(0), Addr(PAGE)).unwrap()).is_err());
    assert_eq!(vm.metadata_mapped(), meta);
    vm.check().unwrap();
    // whole range, nothing mapped: nothing to do
    assert_eq!(vm.trim_range(vm.range()).unwrap(), 0);
    vm.check().unwrap();
}

#[test]
fn trim_range_keeps_table_pages_that_still_record_mapped_pages() {
    let mut buf = vec![0u8; 1 << 22];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // 4 table pages: 2048 client pages, 512 per table page.
    let mut vm = Vm::reserve(&sim, Size(2048 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    let l = vm.limit().0;
    let summary = vm.metadata_mapped();
    // Map first page, last page, and a range straddling table pages 1/2.
    vm.map(r(b, PAGE)).unwrap();
    vm.map(r(l - PAGE, PAGE)).unwrap();
    vm.map(r(b + 1000 * PAGE, 100 * PAGE)).unwrap(); // pages 1000..1100: tables 1 and 2
    vm.check().unwrap();
    assert_eq!(vm.metadata_mapped().0 - summary.0, 4 * PAGE);
    assert_eq!(vm.mapped(), Size(102 * PAGE));

    // Trimming anything while mapped pages remain must not unmap their table page.
    assert_eq!(vm.trim_range(vm.range()).unwrap(), 0);
    assert_eq!(vm.trim_range(r(b + 512 * PAGE, PAGE)).unwrap(), 0);
    vm.check().unwrap();
    // The mapped pages are still recorded.
    assert!(vm.is_mapped(Addr(b)));
    assert!(vm.is_mapped(Addr(l - PAGE)));
    assert!(vm.is_range_mapped(r(b + 1000 * PAGE, 100 * PAGE)).unwrap());

    // Unmap part of the straddling range: only the pieces in table page 1.
    vm.unmap(r(b + 1000 * PAGE, 24 * PAGE)).unwrap(); // 1000..1024 = all of table 1's share
                                                      // trim only a piece of the unmapped range.
    assert_eq!(vm.trim_range(r(b + 1010 * PAGE, PAGE)).unwrap(), 1);
    vm.check().unwrap();
    assert_eq!(vm.metadata_mapped().0 - summary.0, 3 * PAGE);
    // the rest of the range is still mapped and known
    assert!(vm.is_range_mapped(r(b + 1024 * PAGE, 76 * PAGE)).unwrap());
    assert!(!vm.is_mapped(Addr(b + 1000 * PAGE)));
    // Remap what was trimmed: reads zero, table page comes back.
    vm.map(r(b + 1000 * PAGE, 24 * PAGE)).unwrap();
    vm.check().unwrap();
    assert_eq!(vm.metadata_mapped().0 - summary.0, 4 * PAGE);
    let p = (b + 1000 * PAGE) as *const u8;
    for i in 0..24 * PAGE {
        // SAFETY: the VM just mapped these 24 pages of the simulated
        // backend's buffer, read-write, and nothing else touches them.
        assert_eq!(unsafe { *p.add(i) }, 0);
    }
    // Unmapping what is not mapped is still refused after a trim+remap cycle.
    assert!(vm.unmap(r(b + 999 * PAGE, 2 * PAGE)).is_err());

    // last page: unmap, trim, count.
    vm.unmap(r(l - PAGE, PAGE)).unwrap();
    assert_eq!(vm.trim_range(r(l - PAGE, PAGE)).unwrap(), 1);
    assert_eq!(vm.trim_range(r(l - PAGE, PAGE)).unwrap(), 0);
    vm.check().unwrap();
    vm.unmap(r(b, PAGE)).unwrap();
    vm.unmap(r(b + 1000 * PAGE, 100 * PAGE)).unwrap();
    vm.check().unwrap();
    let n = vm.trim_range(vm.range()).unwrap();
    assert_eq!(n, 3);
    assert_eq!(vm.metadata_mapped(), summary);
    assert_eq!(vm.mapped(), Size(0));
    assert_eq!(sim.stats().mapped_pages * PAGE, summary.0);
    vm.check().unwrap();
    assert_eq!(vm.trim().unwrap(), 0);
}

#[test]
fn trim_range_after_deferred_unmap_and_flush() {
    let mut buf = vec![0u8; 1 << 22];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut vm = Vm::reserve(&sim, Size(1024 * PAGE), Size(PAGE)).unwrap();
    let b = vm.base().0;
    let summary = vm.metadata_mapped();
    vm.map(r(b, 10 * PAGE)).unwrap();
    vm.unmap_deferred(r(b, 10 * PAGE)).unwrap();
    assert_eq!(vm.trim_range(r(b, 10 * PAGE)).unwrap(), 1);
    vm.check().unwrap();
    // Mapping it again before the flush must be refused (sim backend), and the VM unchanged.
    let before = vm.metadata_mapped();
    assert!(vm.map(r(b, 10 * PAGE)).is_err());
    assert_eq!(vm.metadata_mapped(), before);
    vm.check().unwrap();
    assert_eq!(vm.flush(), 10);
    vm.map(r(b, 10 * PAGE)).unwrap();
    vm.check().unwrap();
    vm.unmap(r(b, 10 * PAGE)).unwrap();
    vm.trim().unwrap();
    assert_eq!(vm.metadata_mapped(), summary);
}

#[test]
fn trim_range_with_grain_larger_than_page_and_single_table_page() {
    let mut buf = vec![0u8; 1 << 22];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut vm = Vm::reserve(&sim, Size(3 * 4096), Size(1 << 16)).unwrap();
    assert_eq!(vm.range().size(), Size(1 << 16));
    let l = vm.limit().0;
    vm.map(r(l - 4096, 4096)).unwrap();
    assert_eq!(vm.trim_range(r(l - 4096, 4096)).unwrap(), 0);
    vm.unmap(r(l - 4096, 4096)).unwrap();
    assert_eq!(vm.trim_range(r(l - 4096, 4096)).unwrap(), 1);
    vm.check().unwrap();
    assert_eq!(sim.stats().mapped_pages * 4096, vm.metadata_mapped().0);
}

#[test]
fn reserve_arithmetic_edges() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    for (size, grain) in [
        (usize::MAX, 4096),
        (usize::MAX - 4095, 4096),
        (usize::MAX / 2, 4096),
        (1, usize::MAX),
        (1, 1 << 63),
        (1 << 62, 1 << 62),
        (4096, 0),
        (0, 4096),
        (4096, 2048),
    ] {
        let r = Vm::reserve(&sim, Size(size), Size(grain));
        assert!(r.is_err(), "size {size:#x} grain {grain:#x}");
    }
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn map_unmap_ranges_ending_at_the_top_of_the_address_space_are_errors() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut vm = Vm::reserve(&sim, Size(1 << 16), Size(4096)).unwrap();
    let top = Range::new(Addr(usize::MAX - 4095 - 4096), Addr(usize::MAX - 4095)).unwrap();
    assert!(vm.map(top).is_err());
    assert!(vm.unmap(top).is_err());
    assert!(vm.protect(top, vmspace_shim::Protection::Read).is_err());
    assert!(vm.is_range_mapped(top).is_err());
    assert!(!vm.is_mapped(Addr(usize::MAX)));
    vm.check().unwrap();
    let _ = sim.page_size();
}
