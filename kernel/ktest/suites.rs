// SPDX-License-Identifier: MIT OR Apache-2.0

//! KUnit suite definitions shared by the built-in and module builds.
//!
//! Each macro expands to one `#[kunit_tests(<suite>)]` module whose cases run
//! the bodies in this crate on the backend named by a path to a `static`
//! (for example `crate::OPS`). The built-in build instantiates them on the
//! sparse vmalloc backend, the module on its module-safe backends, under
//! different suite names.

mod allocators;
mod layers;
