//! Set-ups the outside reviewers' `KeepFree` tests (rounds 41b to 44)
//! share: a parent arena on caller buffers, and a `VmSource` on a
//! simulated backend.
// Each test binary that declares this module uses only some of it.
#![allow(dead_code)]

use std::cell::RefCell;

use vmspace::arena::{Arena, NoSource, PageStore, SliceStore};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace::{Addr, Size};
use vmspace_shim::PageOps;

const PAGE: usize = 4096;

pub type Parent<'a> = Arena<SliceStore<'a>, NoSource>;

/// A parent arena of quantum 4096 on the buffers `t` (tags) and `h`
/// (hash), holding one span of `pages` pages at 1 MiB.
pub fn parent<'a>(t: &'a mut [u8], h: &'a mut [u8], pages: usize) -> RefCell<Parent<'a>> {
    let mut p =
        Arena::new("parent", Size(PAGE), SliceStore::new(t), SliceStore::new(h), NoSource).unwrap();
    p.add(Addr(1 << 20), Size(pages * PAGE)).unwrap();
    RefCell::new(p)
}

pub type Vs<P> = VmSource<P, PageStore<P>>;

/// A `VmSource` of `pages` pages through `ops`.
pub fn vmsource<P: PageOps + Clone>(ops: P, pages: usize) -> Vs<P> {
    let vm = Vm::reserve(ops.clone(), Size(pages * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(ops.clone(), Size(64 * PAGE)).unwrap();
    VmSource::new(vm, tags, PageStore::new(ops, Size(4 * PAGE)).unwrap()).unwrap()
}
