// SPDX-License-Identifier: MIT OR Apache-2.0

//! The module-safe page backends: memory committed up front from allocators
//! that are exported to modules.
//!
//! - [`Committed::vmalloc`]: a reservation is a zeroed, aligned vmalloc
//!   allocation (`vrealloc_node_align` with no old pointer); the VM layer runs on
//!   it in the module. Unlike the built-in sparse backend, every reserved
//!   byte is backed by memory from the start.
//! - [`Committed::page_allocator`]: a reservation is a zeroed
//!   `alloc_pages_exact` block (physically contiguous, at most 4 MiB); used
//!   for metadata such as an arena's boundary-tag and hash stores.
//!
//! `map` only checks its range; `unmap` zeroes the pages, so they read zero
//! when mapped again, as the `PageOps` contract asks. The backend keeps no
//! per-page state, so it cannot itself refuse a double map: the layers above
//! (the VM's bit table) do.

use core::ffi::c_void;

use vmspace_shim::{check_page_range, check_reserve_args, Addr, PageOps, Protection, Range, ShimError, Size};

use crate::sys;

/// Where a [`Committed`] backend's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vmalloc,
    PageAllocator,
}

/// A module-safe backend on committed memory. Stateless: use it by reference.
///
/// Every method may sleep (its memory comes from `GFP_KERNEL` allocators,
/// and long zeroing lets others run): call them from task context only.
/// Each says so with `might_sleep()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Committed {
    kind: Kind,
}

/// The largest reservation the page-allocator backend serves.
const PAGE_ALLOCATOR_MAX: usize = 4 << 20;

impl Committed {
    /// Reservations from vmalloc.
    pub(crate) const fn vmalloc() -> Self {
        Committed { kind: Kind::Vmalloc }
    }

    /// Reservations from `alloc_pages_exact`, at most 4 MiB each.
    pub(crate) const fn page_allocator() -> Self {
        Committed { kind: Kind::PageAllocator }
    }

    fn page(&self) -> usize {
        // SAFETY: returns a constant; no preconditions.
        unsafe { sys::vmspace_module_page_size() }
    }

    /// Zero the pages of `range`, letting others run every 64 pages (a
    /// range may be 16,384 pages from the device; every call of this
    /// backend is in task context).
    ///
    /// # Safety
    ///
    /// `range` lies inside a live reservation of this backend and nothing
    /// else accesses it.
    unsafe fn zero(&self, range: Range) {
        let step = 64 * self.page();
        let mut at = range.base().0;
        while at < range.limit().0 {
            let n = step.min(range.limit().0 - at);
            // SAFETY: `[at, at + n)` is inside `range`, which the caller
            // guarantees is ours and committed (all of a reservation is),
            // so writable.
            unsafe { core::ptr::write_bytes(at as *mut u8, 0, n) };
            at += n;
            vmspace_kernel::cond_resched();
        }
    }
}

// SAFETY: reservations are allocations of their own from the kernel's
// allocators, so they overlap nothing; all of their memory is committed,
// zeroed when allocated and zeroed again on unmap, and freed only on release.
unsafe impl PageOps for Committed {
    fn page_size(&self) -> Size {
        Size(self.page())
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Vmalloc => "kernel committed vmalloc (module)",
            Kind::PageAllocator => "kernel page allocator (module)",
        }
    }

    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        kernel::task::might_sleep();
        let align = check_reserve_args(size, align, self.page_size())?;
        let p = match self.kind {
            // SAFETY: `size` is a non-zero page multiple, `align` a power of two.
            Kind::Vmalloc => unsafe { sys::vmspace_committed_vmalloc(size.0, align.0) },
            Kind::PageAllocator => return self.reserve_pages(size, align),
        };
        if p.is_null() {
            return Err(ShimError::OutOfAddressSpace { size: size.0 });
        }
        let range = Range::from_size(Addr::from_ptr(p), size)?;
        if !range.base().is_aligned(align) {
            // SAFETY: `p` was just allocated with `size` and is unused.
            unsafe { self.free(p, size) };
            return Err(ShimError::InvalidArgument("vmalloc returned a misaligned block"));
        }
        Ok(range)
    }

    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // SAFETY: the caller guarantees `range` is exactly one live
        // reservation of ours, so its base and size are the allocation's.
        unsafe { self.free(range.base().as_ptr(), range.size()) };
        Ok(())
    }

    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        // Committed from the start and zero since the last unmap.
        check_page_range(range, self.page_size())
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // SAFETY: the caller guarantees `range` is in a live reservation of
        // ours and that nothing accesses it until it is mapped again.
        unsafe { self.zero(range) };
        Ok(())
    }

    unsafe fn protect(&self, range: Range, _prot: Protection) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // Refused before doing anything (`may_have_changed` is false).
        Err(ShimError::InvalidArgument("committed memory cannot change protection"))
    }

    fn relax(&self) {
        vmspace_kernel::relax();
    }

    fn reschedule(&self) {
        vmspace_kernel::cond_resched();
    }
}

impl Committed {
    /// `reserve` for the page allocator. Its blocks are aligned to their own
    /// (power-of-two) size, so a block of `max(size, align)` bytes is aligned
    /// enough; the pages past `size` go straight back.
    fn reserve_pages(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        let n = size.0.max(align.0);
        if n > PAGE_ALLOCATOR_MAX {
            return Err(ShimError::OutOfAddressSpace { size: size.0 });
        }
        // SAFETY: `n` is a non-zero page multiple.
        let p = unsafe { sys::vmspace_committed_pages(n) };
        if p.is_null() {
            return Err(ShimError::OutOfAddressSpace { size: size.0 });
        }
        let range = Range::from_size(Addr::from_ptr(p), size)?;
        if n > size.0 {
            // SAFETY: alloc_pages_exact hands out individual pages, so the
            // tail past `size` (page-aligned, inside the block) can be freed
            // on its own; nothing uses it.
            unsafe { sys::vmspace_committed_free_pages(range.limit().as_ptr(), n - size.0) };
        }
        if !range.base().is_aligned(align) {
            // SAFETY: the block's first `size` bytes are ours and unused.
            unsafe { self.free(p, size) };
            return Err(ShimError::InvalidArgument("the page allocator returned a misaligned block"));
        }
        Ok(range)
    }

    /// Free an allocation of this backend.
    ///
    /// # Safety
    ///
    /// `p` and `size` are exactly a live allocation made by `reserve`, and
    /// nothing accesses it again.
    unsafe fn free(&self, p: *mut c_void, size: Size) {
        match self.kind {
            // SAFETY: `p` came from vmalloc (caller).
            Kind::Vmalloc => unsafe { sys::vmspace_committed_vfree(p) },
            // SAFETY: `p` came from `alloc_pages_exact(size)` (caller).
            Kind::PageAllocator => unsafe { sys::vmspace_committed_free_pages(p, size.0) },
        }
    }
}
