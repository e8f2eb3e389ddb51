// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace built into the kernel: the page backend on sparse vmalloc areas
//! and, with `CONFIG_VMSPACE_KUNIT_TEST` (`--cfg vmspace_kunit`, see
//! `kernel/crates.kbuild`), the KUnit suites that run the core on it.

// Case results carry the error behind a failure (for the log); there is no
// heap to box it in, as in the core's own drivers.
#![allow(clippy::result_large_err)]

const __LOG_PREFIX: &[u8] = b"vmspace\0";

pub mod sparse;
mod sys;

#[cfg(vmspace_kunit)]
mod contract_suite;
#[cfg(vmspace_kunit)]
mod suites;
