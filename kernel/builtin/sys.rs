// SPDX-License-Identifier: MIT OR Apache-2.0

//! Hand-written declarations of the C helpers in `vmalloc_sparse.c`
//! (prototypes in `vmalloc_sparse.h`; `unsigned long` is `usize`, as in the
//! kernel's own `ffi` crate), which
//! reach the parts of `<linux/vmalloc.h>` the Rust bindings lack. Keep them
//! in step with that file.

use core::ffi::c_int;

/// `struct vm_struct`, only ever handled by pointer.
#[repr(C)]
pub(crate) struct VmStruct {
    _opaque: [u8; 0],
}

/// `struct page`, only ever handled by pointer.
#[repr(C)]
pub(crate) struct Page {
    _opaque: [u8; 0],
}

extern "C" {
    /// `get_vm_area_caller(size, VM_SPARSE, <our token>)`: NULL on failure.
    pub(crate) fn vmspace_sparse_reserve(size: usize) -> *mut VmStruct;
    /// Our sparse area containing `addr`, or NULL.
    pub(crate) fn vmspace_sparse_find(addr: usize) -> *mut VmStruct;
    /// The first address of `area`.
    pub(crate) fn vmspace_sparse_base(area: *const VmStruct) -> usize;
    /// The usable size of `area`, without its guard page.
    pub(crate) fn vmspace_sparse_size(area: *const VmStruct) -> usize;
    /// `free_vm_area(area)`.
    pub(crate) fn vmspace_sparse_release(area: *mut VmStruct);
    /// `vm_area_map_pages(area, start, end, pages)`: 0 or a negative errno.
    pub(crate) fn vmspace_sparse_map(
        area: *mut VmStruct,
        start: usize,
        end: usize,
        pages: *mut *mut Page,
    ) -> c_int;
    /// `vm_area_unmap_pages(area, start, end)`, with the TLB flushed.
    pub(crate) fn vmspace_sparse_unmap(area: *mut VmStruct, start: usize, end: usize);
    /// `vmalloc_to_page(addr)`: the page mapped at `addr`, or NULL.
    pub(crate) fn vmspace_sparse_page_at(addr: usize) -> *mut Page;
    /// `alloc_page(GFP_KERNEL | __GFP_ZERO)`, or NULL.
    pub(crate) fn vmspace_page_alloc_zeroed() -> *mut Page;
    /// `__free_page(page)`.
    pub(crate) fn vmspace_page_free(page: *mut Page);
    /// `PAGE_SIZE`.
    pub(crate) fn vmspace_page_size() -> usize;
    /// Free pages in the system (`NR_FREE_PAGES`).
    pub(crate) fn vmspace_free_pages() -> usize;
}
