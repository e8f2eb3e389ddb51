// SPDX-License-Identifier: MIT OR Apache-2.0

//! Page protection for the sparse vmalloc backend: the C helpers in
//! `sparse_protect.c` (declarations made from `sparse_protect.h` by the
//! kernel build's bindgen, see `Kbuild`) and what the backend and the tests
//! ask of them.
//!
//! No access removes a page's PTE and keeps the page in a stash (an xarray
//! in the C file, keyed by the address it was mapped at); read-only clears
//! the PTE's write bit; read-write maps stashed pages back and sets it.
//! Unmapping and releasing free stashed pages with the rest.


#[expect(unreachable_pub, reason = "bindgen declares every item pub")]
mod generated {
    // The two kernel types are those of `vmalloc_sparse.h` (bindgen leaves
    // them out of this file), so one pointer type crosses both helpers.
    use crate::sys::{Page as page, VmStruct as vm_struct};

    include!(concat!(env!("VMK_OBJ"), "/kernel/builtin/sparse_protect_bindings.rs"));
}

pub(crate) use generated::*;

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
