// SPDX-License-Identifier: MIT OR Apache-2.0

//! The C helpers in `vmalloc_sparse.c`, which reach the parts of
//! `<linux/vmalloc.h>` the Rust bindings lack. Their declarations are made
//! from `vmalloc_sparse.h` by the kernel build's bindgen at build time
//! (`kernel/crates.kbuild`), not written by hand; `unsigned long` is
//! `usize`, as in the kernel's `ffi` crate.

#[expect(unreachable_pub, reason = "bindgen declares every item pub")]
#[cfg_attr(not(vmspace_kunit), expect(dead_code, reason = "vmspace_free_pages serves the KUnit suites only"))]
mod generated {
    include!(concat!(env!("VMK_OBJ"), "/kernel/builtin/vmalloc_sparse_bindings.rs"));
}

pub(crate) use generated::*;

/// `struct vm_struct`, only ever handled by pointer.
pub(crate) type VmStruct = generated::vm_struct;
/// `struct page`, only ever handled by pointer.
pub(crate) type Page = generated::page;
