// SPDX-License-Identifier: MIT OR Apache-2.0

//! Page protection for the sparse vmalloc backend: hand-written
//! declarations of the C helpers in `sparse_protect.c` (prototypes in
//! `sparse_protect.h`; keep them in step) and what the backend and the
//! tests ask of them.
//!
//! No access removes a page's PTE and keeps the page in a stash (an xarray
//! in the C file, keyed by the address it was mapped at); read-only clears
//! the PTE's write bit; read-write maps stashed pages back and sets it.
//! Unmapping and releasing free stashed pages with the rest.

use core::ffi::c_int;

use crate::sys::{Page, VmStruct};

extern "C" {
    /// Stash the pages mapped in `[start, end)` of `area` and remove their
    /// PTEs (flushing the TLB): 0, or `-ENOMEM` with nothing changed.
    pub(crate) fn vmspace_protect_none(area: *mut VmStruct, start: usize, end: usize) -> c_int;
    /// Map stashed pages of `[start, end)` back, then set (`write`) or clear
    /// the write bit of every PTE there: 0, or `-errno` with nothing changed.
    pub(crate) fn vmspace_protect_access(area: *mut VmStruct, start: usize, end: usize, write: bool)
        -> c_int;
    /// The page stashed for `addr`, or NULL.
    pub(crate) fn vmspace_stash_page_at(addr: usize) -> *mut Page;
    /// Free the pages stashed for `[start, end)`; how many there were.
    pub(crate) fn vmspace_stash_free(start: usize, end: usize) -> usize;
    /// What the kernel page tables allow at `addr`: 0 nothing, 1 read,
    /// 3 read and write, -1 a huge mapping.
    pub(crate) fn vmspace_pte_access(addr: usize) -> c_int;
    /// The word at `addr` in the page stashed for it (0 if none).
    pub(crate) fn vmspace_stash_read_word(addr: usize) -> u64;
}

/// What the page tables let the kernel do at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No PTE: any access faults.
    None,
    /// Present, read-only.
    Read,
    /// Present, read-write.
    ReadWrite,
    /// Mapped by a huge page (never by this backend).
    Huge,
}

/// The access the kernel page tables give at `addr` (a page-table walk of
/// `init_mm`; no access is attempted).
pub fn access(addr: usize) -> Access {
    // SAFETY: a page-table walk by address; no preconditions.
    match unsafe { vmspace_pte_access(addr) } {
        0 => Access::None,
        1 => Access::Read,
        3 => Access::ReadWrite,
        _ => Access::Huge,
    }
}

/// Whether the page at `addr` is protected to no access (stashed).
pub(crate) fn stashed(addr: usize) -> bool {
    // SAFETY: an xarray lookup by address; no preconditions.
    !unsafe { vmspace_stash_page_at(addr) }.is_null()
}

/// The word at `addr` of a page protected to no access, read through a
/// temporary mapping of the page itself (0 when `addr`'s page is not
/// stashed): shows that protection kept the contents.
pub fn stashed_word(addr: usize) -> u64 {
    // SAFETY: reads through a kmap of a stashed page, or returns 0.
    unsafe { vmspace_stash_read_word(addr) }
}
