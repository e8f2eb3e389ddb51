// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace built into the kernel: the page backend on sparse vmalloc areas,
//! `/dev/vmspace` on it (registered at boot, through `module!`, which also
//! names the log prefix), and, with `CONFIG_VMSPACE_KUNIT_TEST`
//! (`--cfg vmspace_kunit`, see `kernel/crates.kbuild`), the KUnit suites
//! that run the core on it.

// Case results carry the error behind a failure (for the log); there is no
// heap to box it in, as in the core's own drivers.
#![allow(clippy::result_large_err)]

kernel::prelude::module! {
    type: device::Device,
    name: "vmspace",
    authors: ["vmspace developers"],
    description: "vmspace: virtual address space management (built-in, sparse vmalloc backend, /dev/vmspace)",
    license: "Dual MIT/GPL",
}

pub mod batched;
mod capi;
mod device;
pub mod protect;
pub mod sparse;
mod sys;

#[cfg(vmspace_kunit)]
mod batched_suite;
#[cfg(vmspace_kunit)]
mod capi_suite;
#[cfg(vmspace_kunit)]
mod contract_suite;
#[cfg(vmspace_kunit)]
mod faults_suite;
#[cfg(vmspace_kunit)]
mod outside_suite;
#[cfg(vmspace_kunit)]
mod protect_suite;
#[cfg(vmspace_kunit)]
mod suites;
