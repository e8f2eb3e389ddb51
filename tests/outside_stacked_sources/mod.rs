//! What the tests of sources over stacked fault injectors share
//! (`outside_r26_vmsource.rs`, `stranded_releases.rs`,
//! `outside_r28_stranded.rs`): a simulator, an
//! injector over it and another over that (two failures in one call: the
//! outer one's part-way unmap, the inner one's put-back protect), and a
//! `VmSource` over a `Vm` reserved through them, an importing `Arena`.

#![allow(dead_code)] // each test file uses part of it

use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Protection, Range};

/// The simulator's page size in these tests.
pub const PAGE: usize = 4096;

/// Whether every page of `r` is mapped read-write in `sim`.
pub fn read_write(sim: &SimBackend, r: Range) -> bool {
    (0..r.size().0 / PAGE).all(|i| {
        sim.page_state(Addr(r.base().0 + i * PAGE))
            == Some(PageState::Mapped(Protection::ReadWrite))
    })
}

/// `let` bindings in the caller, each borrowing the one before: `$sim`, a
/// simulator of `PAGE` pages over a `Placed` buffer of `$bytes` bytes at
/// `$offset`; `$inner`, a fault injector over it; `$outer`, one over
/// `$inner`. With a fourth name: `$src`, a `VmSource` over a `Vm` of
/// `$vm` bytes reserved through `$outer`, on stores of 16 and 4 KiB (or,
/// after `stores`, of `$tags` and `$hdr` bytes).
macro_rules! stacked {
    (let $sim:ident, $inner:ident, $outer:ident, mut $src:ident = $bytes:expr, $offset:expr, $vm:expr) => {
        stacked!(let $sim, $inner, $outer, mut $src = $bytes, $offset, $vm, stores 16 << 10, 4 << 10);
    };
    (let $sim:ident, $inner:ident, $outer:ident, mut $src:ident = $bytes:expr, $offset:expr, $vm:expr, stores $tags:expr, $hdr:expr) => {
        stacked!(let $sim, $inner, $outer = $bytes, $offset);
        let vm = ::vmspace::vm::Vm::reserve(
            &$outer,
            ::vmspace_shim::Size($vm),
            ::vmspace_shim::Size($crate::outside_stacked_sources::PAGE),
        )
        .unwrap();
        let (mut t, mut h) = (vec![0u8; $tags], vec![0u8; $hdr]);
        let mut $src = ::vmspace::sources::VmSource::new(
            vm,
            ::vmspace::arena::SliceStore::new(&mut t),
            ::vmspace::arena::SliceStore::new(&mut h),
        )
        .unwrap();
    };
    (let $sim:ident, $inner:ident, $outer:ident = $bytes:expr, $offset:expr) => {
        let mut buf = ::vmspace_shim::sim::Placed::new($bytes, $offset);
        let $sim = ::vmspace_shim::sim::SimBackend::new(
            buf.bytes(),
            $crate::outside_stacked_sources::PAGE,
        )
        .unwrap();
        let $inner = ::vmspace_shim::FaultInjector::new(&$sim);
        let $outer = ::vmspace_shim::FaultInjector::new(&$inner);
    };
}
pub(crate) use stacked;

/// A `let` binding in the caller: `$a`, an `Arena` named "importer" of
/// `PAGE` quanta over `$source`, on stores of `$tags` and `$hdr` bytes.
#[allow(unused_macros)] // not every test file imports through an arena
macro_rules! importer {
    (let mut $a:ident = $source:expr, $tags:expr, $hdr:expr) => {
        let (mut t, mut h) = (vec![0u8; $tags], vec![0u8; $hdr]);
        let mut $a = ::vmspace::arena::Arena::new(
            "importer",
            ::vmspace_shim::Size($crate::outside_stacked_sources::PAGE),
            ::vmspace::arena::SliceStore::new(&mut t),
            ::vmspace::arena::SliceStore::new(&mut h),
            $source,
        )
        .unwrap();
    };
}
#[allow(unused_imports)]
pub(crate) use importer;
