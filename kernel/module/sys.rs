// SPDX-License-Identifier: MIT OR Apache-2.0

//! The C helpers in `vmalloc_committed.c`. Their declarations are made from
//! `vmalloc_committed.h` by the kernel build's bindgen at build time
//! (`kernel/crates.kbuild`), not written by hand; `unsigned long` is
//! `usize`, as in the kernel's `ffi` crate.

#[expect(unreachable_pub, reason = "bindgen declares every function pub")]
mod generated {
    include!(concat!(env!("VMK_OBJ"), "/kernel/module/vmalloc_committed_bindings.rs"));
}

pub(crate) use generated::*;
