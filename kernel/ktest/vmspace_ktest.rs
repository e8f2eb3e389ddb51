// SPDX-License-Identifier: MIT OR Apache-2.0

//! The bodies of vmspace's KUnit cases, generic over the page backend.
//!
//! Each case is a function that takes a backend and returns `Ok(())` or a
//! [`Failure`] that says what went wrong. The built-in build runs them on the
//! sparse vmalloc backend, the module on the module-safe backend; the
//! `#[kunit_tests]` suites in `kernel/builtin` and `kernel/module` are thin
//! wrappers. Operation sequences come from the core's own seeded generators
//! (`vmspace_workload`), the same ones the user-space property tests drive.

// Case results carry the error behind a failure (for the log); there is no
// heap to box it in, as in the core's own drivers.
#![allow(clippy::result_large_err)]

const __LOG_PREFIX: &[u8] = b"vmspace\0";

pub mod arena_cases;
pub mod backend_cases;
pub mod batched_cases;
pub mod checker_cases;
pub mod chunkmap_cases;
pub mod fault_cases;
pub mod outcome;
pub mod outside_cases;
pub mod outside_handles;
pub mod sync_cases;
mod suites;
pub mod threads;
pub mod touch;
pub mod vm_cases;
pub mod vmarena_cases;

pub use outcome::{report, Failure, Outcome};
