// SPDX-License-Identifier: MIT OR Apache-2.0

//! Hand-written declarations of the C helpers in `vmalloc_committed.c`
//! (prototypes in `vmalloc_committed.h`; `unsigned long` is `usize`, as in
//! the kernel's own `ffi` crate). Keep them in step with that file.

use core::ffi::c_void;

extern "C" {
    /// `vrealloc_node_align(NULL, size, align, GFP_KERNEL | __GFP_ZERO, ..)`, or NULL.
    pub(crate) fn vmspace_committed_vmalloc(size: usize, align: usize) -> *mut c_void;
    /// `vfree(addr)`.
    pub(crate) fn vmspace_committed_vfree(addr: *mut c_void);
    /// `alloc_pages_exact(size, GFP_KERNEL | __GFP_ZERO)`, or NULL.
    pub(crate) fn vmspace_committed_pages(size: usize) -> *mut c_void;
    /// `free_pages_exact(addr, size)`.
    pub(crate) fn vmspace_committed_free_pages(addr: *mut c_void, size: usize);
    /// `PAGE_SIZE`.
    pub(crate) fn vmspace_module_page_size() -> usize;
}
