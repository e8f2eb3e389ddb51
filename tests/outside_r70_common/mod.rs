//! Round 70's set-up, shared by its `VmSource` files: a source over a VM
//! of 64-byte pages on the simulated backend (a bit-table page records 512
//! of them), and the empty bit-table pages counted two ways: as the VM
//! reports them and as the backend's page states say.

#![allow(dead_code)]

use vmspace::arena::{SliceStore, Store};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::Size;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, PageOps};

pub const PAGE: usize = 64;
/// Client pages one bit-table page records.
pub const PER: usize = 8 * PAGE;

/// A source over a VM of `pages` pages on `ops`, its stores in `t` and `h`.
pub fn source<'a, P: PageOps>(
    ops: P,
    pages: usize,
    t: &'a mut [u8],
    h: &'a mut [u8],
) -> VmSource<P, SliceStore<'a>> {
    let vm = Vm::reserve(ops, Size(pages * PAGE), Size(PAGE)).unwrap();
    VmSource::new(vm, SliceStore::new(t), SliceStore::new(h)).unwrap_or_else(|_| panic!("source"))
}

/// Empty mapped bit-table pages, as the VM reports them.
pub fn trimmable<P: PageOps, S: Store>(src: &VmSource<P, S>) -> usize {
    src.vm().metadata_trimmable().0 / PAGE
}

/// Empty mapped bit-table pages, read from the backend.
pub fn true_empty<P: PageOps>(vm: &Vm<P>, sim: &SimBackend) -> usize {
    let client_pages = vm.range().size().0 / PAGE;
    let tables = client_pages.div_ceil(PER);
    let table_base = vm.reservation().limit().0 - tables * PAGE;
    (0..tables)
        .filter(|&k| sim.protection(Addr(table_base + k * PAGE)).is_some())
        .filter(|&k| {
            (k * PER..((k + 1) * PER).min(client_pages))
                .all(|i| sim.protection(Addr(vm.base().0 + i * PAGE)).is_none())
        })
        .count()
}
