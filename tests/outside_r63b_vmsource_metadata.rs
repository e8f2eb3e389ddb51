//! Round 63b outside review: what a `VmSource` leaves of the VM's own
//! mapped-state (bit-table) pages once every import is given back. The VM
//! arena trims them with the pages they recorded ("so that metadata goes
//! back with the pages it recorded", src/vmarena/ops.rs `decommit`); the
//! `VmSource` never calls `Vm::trim`/`trim_range` (src/sources/vm.rs), and
//! its owner cannot (`VmSource::vm()` is `&Vm`) until `into_vm`.
//! Recorded here as observed behaviour (a high-water mark of metadata),
//! not as a promise broken: the source's docs promise nothing about it.

use vmspace::arena::{SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::Size;
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 64;

#[test]
fn vm_source_keeps_bit_table_pages_after_everything_is_given_back() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // 8 bit-table pages' worth of client pages (512 a page).
    let vm = Vm::reserve(&sim, Size(4096 * PAGE), Size(PAGE)).unwrap();
    let empty = vm.metadata_mapped();
    let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut src = VmSource::new(vm, SliceStore::new(&mut t), SliceStore::new(&mut h))
        .unwrap_or_else(|_| panic!("source"));
    let big = src.import(Size(4000 * PAGE), Size(PAGE)).unwrap();
    src.release(big).unwrap();
    src.check().unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
    let left = src.vm().metadata_mapped();
    eprintln!("empty VM metadata {empty:?}; after import+release {left:?}");
    // Observed: the bit-table pages stay (8 of them) until into_vm + trim.
    let mut vm = src.into_vm().unwrap_or_else(|_| panic!("into_vm"));
    vm.trim().unwrap();
    assert_eq!(vm.metadata_mapped(), empty);
    assert!(left > empty, "if this fails the source now trims: good, update the note");
}
