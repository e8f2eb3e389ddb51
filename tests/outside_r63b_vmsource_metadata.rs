//! Round 63b outside review: what a `VmSource` leaves of the VM's own
//! mapped-state (bit-table) pages once every import is given back. The VM
//! arena trims them with the pages they recorded ("so that metadata goes
//! back with the pages it recorded", src/vmarena/ops.rs `decommit`).
//!
//! Was a shortcoming (fixed): the `VmSource` never called
//! `Vm::trim`/`trim_range`, and its owner could not (`VmSource::vm()` is
//! `&Vm`) until `into_vm`: after one import of 4,000 pages given back, the
//! 8 bit-table pages stayed mapped (a high-water mark of metadata). The
//! source now has `trim()`, and a give-back trims with slack (more than
//! `trim_slack()` pages recording nothing: 8 by default,
//! `tests/vmsource_trim_slack.rs`). It does not trim on every give-back (a
//! lone import's bit-table page would come and go with it: two more system
//! calls a pair, a TLB flush a give-back in the kernel, documented), which
//! the first test holds too: its 8 emptied pages are within the slack.

use vmspace::arena::{SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::Size;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};

const PAGE: usize = 64;

#[test]
fn vm_source_gives_bit_table_pages_back_on_trim() {
    for batch in [0, 1, 3, 1 << 20] {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        // 8 bit-table pages' worth of client pages (512 a page).
        let vm = Vm::reserve(&sim, Size(4096 * PAGE), Size(PAGE)).unwrap();
        let empty = vm.metadata_mapped();
        let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
        let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
            .unwrap_or_else(|_| panic!("source"));
        src.set_flush_threshold(batch).unwrap();
        let big = src.import(Size(4000 * PAGE), Size(PAGE)).unwrap();
        let small = src.import(Size(PAGE), Size(PAGE)).unwrap();
        let full = src.vm().metadata_mapped();
        assert_eq!(full, Size(empty.0 + 8 * PAGE), "batch {batch}");
        src.release(big).unwrap();
        src.check().unwrap();
        assert_eq!(src.vm().metadata_mapped(), full, "batch {batch}: no trim on a give-back");
        // The small import's page keeps the one bit-table page recording it.
        assert_eq!(src.trim(), Ok(7), "batch {batch}");
        assert_eq!(src.vm().metadata_mapped(), Size(empty.0 + PAGE), "batch {batch}");
        src.release(small).unwrap();
        assert_eq!(src.trim(), Ok(1), "batch {batch}");
        src.check().unwrap();
        assert_eq!(src.vm().mapped(), Size(0));
        assert_eq!(src.vm().metadata_mapped(), empty, "batch {batch}: metadata left");
        assert_eq!(src.trim(), Ok(0), "batch {batch}");
        let vm = src.into_vm().unwrap_or_else(|_| panic!("into_vm"));
        assert_eq!(vm.metadata_mapped(), empty);
    }
}

/// A trim whose unmap fails leaves what it gave back before given back;
/// the next trim finishes.
#[test]
fn a_failed_trim_is_finished_by_the_next() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let vm = Vm::reserve(&faulty, Size(4096 * PAGE), Size(PAGE)).unwrap();
    let empty = vm.metadata_mapped();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    let a = src.import(Size(2048 * PAGE), Size(PAGE)).unwrap();
    src.release(a).unwrap();
    faulty.only(&[Op::Unmap]);
    faulty.fail_nth(3);
    assert!(src.trim().is_err());
    faulty.clear();
    src.check().unwrap();
    assert_eq!(src.vm().metadata_mapped(), Size(empty.0 + 2 * PAGE), "two given back first");
    assert_eq!(src.trim(), Ok(2));
    assert_eq!(src.vm().metadata_mapped(), empty);
    src.check().unwrap();
}

/// An import whose map fails, and whose VM could not give back the
/// bit-table page it had just mapped for it, trims that page itself.
#[test]
fn a_failed_import_trims_what_its_failed_map_left() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let unmaps = FaultInjector::new(&sim);
    let maps = FaultInjector::new(&unmaps);
    let vm = Vm::reserve(&maps, Size(4096 * PAGE), Size(PAGE)).unwrap();
    let empty = vm.metadata_mapped();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    // The bit-table page's map is the first, the import's pages' the
    // second; the give-back of the bit-table page is the first unmap.
    maps.only(&[Op::Map]);
    maps.fail_nth(2);
    unmaps.only(&[Op::Unmap]);
    unmaps.fail_nth(1);
    assert!(src.import(Size(4 * PAGE), Size(PAGE)).is_err());
    assert_eq!((maps.injected(), unmaps.injected()), (1, 1), "both failures injected");
    assert_eq!(src.vm().metadata_mapped(), empty, "the failed import left its page");
    maps.clear();
    unmaps.clear();
    src.check().unwrap();
    let a = src.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    src.release(a).unwrap();
    src.check().unwrap();
}
