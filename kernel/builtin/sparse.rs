// SPDX-License-Identifier: MIT OR Apache-2.0

//! The kernel page backend on sparse vmalloc areas (the BPF arena's pattern):
//! reserve = `get_vm_area(VM_SPARSE)`, map = allocate zeroed pages and
//! `vm_area_map_pages`, unmap = `vm_area_unmap_pages` then free the pages,
//! release = `free_vm_area`. Built-in only: these are not exported to modules.
//!
//! The backend keeps no state of its own: a reservation is one vmalloc area
//! (tagged as ours, so ranges in anyone else's area are refused), and which
//! pages are mapped is read back from the page tables (`vmalloc_to_page`)
//! and, for pages protected to no access, from the stash that keeps them
//! (`protect.rs`). `protect` to no access removes the PTEs and keeps the
//! pages; to read-only or read-write it maps stashed pages back and clears
//! or sets the write bit (see `sparse_protect.c`).

use core::ptr;

use vmspace_shim::{
    check_page_range, check_reserve_args, Addr, Op, PageOps, Protection, Range, ShimError, Size,
};

use crate::protect;
use crate::sys::{self, Page, VmStruct};

/// Pages handled per `vm_area_map_pages` / `vm_area_unmap_pages` call.
const BATCH: usize = 64;

/// The sparse vmalloc backend. Stateless: use it by reference.
///
/// Every method may sleep (pages come from `GFP_KERNEL`, page tables are
/// allocated and locked, and long walks let others run): call them from
/// task context only, never under a spinlock. Each says so with
/// `might_sleep()`, which `CONFIG_DEBUG_ATOMIC_SLEEP` reports.
///
/// Made [`accounted`](Self::accounted), the pages it maps (and the stash's
/// nodes that keep pages protected to no access) are charged to the memory
/// cgroup of the task that asks (`__GFP_ACCOUNT`), and uncharged when
/// freed, whoever frees them: for work done on behalf of a user (the
/// device). Kernel callers' backends are not: their caller is whatever task
/// happens to run the kernel code.
#[derive(Debug, Default, Clone, Copy)]
pub struct SparseVmalloc {
    account: bool,
}

impl SparseVmalloc {
    /// The backend, charging no one.
    pub const fn new() -> Self {
        SparseVmalloc { account: false }
    }

    /// The backend, charging the pages to the calling task's memory cgroup.
    pub const fn accounted() -> Self {
        SparseVmalloc { account: true }
    }

    /// Whether its pages are charged to the caller's memory cgroup.
    pub const fn is_accounted(&self) -> bool {
        self.account
    }

    fn page(&self) -> usize {
        // SAFETY: returns a constant; no preconditions.
        unsafe { sys::vmspace_page_size() }
    }

    /// Our area that contains all of `range`, or `NotReserved`.
    ///
    /// # Safety
    ///
    /// `range` lies in a live reservation of this backend (the `PageOps`
    /// contract of every caller), so no area at its base is freed while
    /// this runs: `find_vm_area` hands back an area with no reference
    /// held, and reading it (its caller token, its size) is sound only
    /// because the caller keeps the area alive. The checks below catch a
    /// caller's mistake about which area (not ours, too small); they do not
    /// make a foreign area being freed safe to look at.
    pub(crate) unsafe fn area_of(&self, range: Range) -> Result<*mut VmStruct, ShimError> {
        // SAFETY: a lookup by address; the area it finds, if any, is kept
        // alive by the caller (this function's contract).
        let area = unsafe { sys::vmspace_sparse_find(range.base().0) };
        if area.is_null() {
            return Err(ShimError::NotReserved(range));
        }
        // SAFETY: `area` is live (the caller's reservation, as above).
        let (base, size) = unsafe { (sys::vmspace_sparse_base(area), sys::vmspace_sparse_size(area)) };
        let whole = Range::from_size(Addr(base), Size(size))?;
        if !whole.contains(&range) {
            return Err(ShimError::NotReserved(range));
        }
        Ok(area)
    }

    /// Whether a page is mapped at `addr`: in the page tables, or protected
    /// to no access (kept in the stash).
    fn mapped_at(addr: usize) -> bool {
        // SAFETY: a page-table lookup by address; no preconditions.
        !unsafe { sys::vmspace_sparse_page_at(addr) }.is_null() || protect::stashed(addr)
    }

    /// `NotMapped` unless every page of `range` is mapped.
    pub(crate) fn all_mapped(&self, range: Range) -> Result<(), ShimError> {
        self.each_page(range, |a| match Self::mapped_at(a) {
            true => Ok(()),
            false => Err(ShimError::NotMapped(range)),
        })
    }

    /// `f` on the address of each page of `range` in turn, to its first
    /// error, letting others run every [`BATCH`] pages: a walk over a
    /// caller-sized range (16,384 pages from the device, more from kernel
    /// callers), in task context, as every `PageOps` call of this backend is.
    fn each_page(
        &self,
        range: Range,
        mut f: impl FnMut(usize) -> Result<(), ShimError>,
    ) -> Result<(), ShimError> {
        let page = self.page();
        let mut a = range.base().0;
        while a < range.limit().0 {
            f(a)?;
            a += page;
            if (a - range.base().0) % (BATCH * page) == 0 {
                vmspace_kernel::cond_resched();
            }
        }
        Ok(())
    }

    /// Unmap the pages mapped in `range` of `area` and free them, in batches,
    /// with the pages protected to no access (stashed). Pages of `range`
    /// that are not mapped are skipped.
    ///
    /// # Safety
    ///
    /// `range` is page-aligned and inside `area`, a live area of ours, and
    /// nothing accesses its pages any more.
    unsafe fn unmap_and_free(&self, area: *mut VmStruct, range: Range) {
        // SAFETY: stashed pages of `range` are ours, have no PTE, and nobody
        // accesses them any more (caller).
        unsafe { protect::vmspace_stash_free(range.base().0, range.limit().0) };
        let page = self.page();
        let mut start = range.base().0;
        while start < range.limit().0 {
            let end = range.limit().0.min(start.saturating_add(BATCH * page));
            let mut pages: [*mut Page; BATCH] = [ptr::null_mut(); BATCH];
            let mut any = false;
            for (i, slot) in pages.iter_mut().enumerate().take((end - start) / page) {
                // SAFETY: a page-table lookup by address.
                *slot = unsafe { sys::vmspace_sparse_page_at(start + i * page) };
                any |= !slot.is_null();
            }
            if any {
                // SAFETY: `[start, end)` is inside `area` (caller), page-aligned.
                unsafe { sys::vmspace_sparse_unmap(area, start, end) };
                for p in pages.iter().filter(|p| !p.is_null()) {
                    // SAFETY: the page came from `vmspace_page_alloc_zeroed`
                    // in `map` and is no longer mapped anywhere (just unmapped).
                    unsafe { sys::vmspace_page_free(*p) };
                }
            }
            start = end;
            // A reservation may span millions of pages, each looked up:
            // let others run between batches (every `PageOps` call of this
            // backend is in task context).
            vmspace_kernel::cond_resched();
        }
    }
}

// SAFETY: areas come from get_vm_area, so they overlap nothing else and are
// inaccessible until mapped; map installs freshly allocated zeroed pages
// read-write (PAGE_KERNEL) and on any failure takes back everything it did;
// protect keeps every page (removing its PTE, or changing its write bit, with
// a TLB flush) and on failure changes nothing; unmap and release take pages
// away only after removing them from the page tables (with a TLB flush).
unsafe impl PageOps for SparseVmalloc {
    fn page_size(&self) -> Size {
        Size(self.page())
    }

    fn name(&self) -> &'static str {
        "kernel sparse vm_area"
    }

    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        kernel::task::might_sleep();
        let page = self.page_size();
        let align = check_reserve_args(size, align, page)?;
        // get_vm_area only aligns to the page: ask for enough to align within.
        let total = size.checked_add(Size(align.0 - page.0))?;
        // SAFETY: `total` is a non-zero multiple of the page size.
        let area = unsafe { sys::vmspace_sparse_reserve(total.0) };
        if area.is_null() {
            return Err(ShimError::OutOfAddressSpace { size: size.0 });
        }
        // SAFETY: `area` is the live area just made.
        let base = Addr(unsafe { sys::vmspace_sparse_base(area) });
        match base.align_up(align).map(|b| Range::from_size(b, size)) {
            Ok(Ok(r)) => Ok(r),
            _ => {
                // SAFETY: the area is ours, nothing is mapped in it.
                unsafe { sys::vmspace_sparse_release(area) };
                Err(ShimError::Overflow)
            }
        }
    }

    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // SAFETY: `range` is in a live reservation of ours (caller).
        let area = unsafe { self.area_of(range) }?;
        // SAFETY: the area base and size describe the whole live area.
        let whole = unsafe {
            Range::from_size(
                Addr(sys::vmspace_sparse_base(area)),
                Size(sys::vmspace_sparse_size(area)),
            )?
        };
        // SAFETY: the caller gives the reservation up: nothing accesses it.
        unsafe { self.unmap_and_free(area, whole) };
        // SAFETY: the area is ours and nothing is mapped in it any more.
        unsafe { sys::vmspace_sparse_release(area) };
        Ok(())
    }

    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        let page = self.page();
        check_page_range(range, self.page_size())?;
        // SAFETY: `range` is in a live reservation of ours (caller).
        let area = unsafe { self.area_of(range) }?;
        self.each_page(range, |a| match Self::mapped_at(a) {
            true => Err(ShimError::AlreadyMapped(range)),
            false => Ok(()),
        })?;
        let mut start = range.base().0;
        while start < range.limit().0 {
            let end = range.limit().0.min(start.saturating_add(BATCH * page));
            let n = (end - start) / page;
            let mut pages: [*mut Page; BATCH] = [ptr::null_mut(); BATCH];
            let mut failure = None;
            for slot in pages.iter_mut().take(n) {
                // SAFETY: allocation from the page allocator; no preconditions.
                *slot = unsafe { sys::vmspace_page_alloc_zeroed(self.account) };
                if slot.is_null() {
                    failure = Some(ShimError::OutOfMemory(range));
                    break;
                }
            }
            if failure.is_none() {
                // SAFETY: `[start, end)` is page-aligned inside our live
                // `area`, unmapped (checked), and `pages` holds `n` pages.
                let err = unsafe { sys::vmspace_sparse_map(area, start, end, pages.as_mut_ptr()) };
                if err != 0 {
                    failure = Some(ShimError::Os { op: Op::Map, errno: err });
                    // A failed vm_area_map_pages may have mapped a prefix.
                    // SAFETY: inside our area; nothing uses these pages.
                    unsafe { sys::vmspace_sparse_unmap(area, start, end) };
                }
            }
            if let Some(e) = failure {
                for p in pages.iter().filter(|p| !p.is_null()) {
                    // SAFETY: allocated above and mapped nowhere.
                    unsafe { sys::vmspace_page_free(*p) };
                }
                let done = Range::new(range.base(), Addr(start)).unwrap_or(Range::empty(range.base()));
                // SAFETY: `done` is the part of `range` this call mapped, in
                // our area; the caller has not been told it is mapped.
                unsafe { self.unmap_and_free(area, done) };
                return Err(e);
            }
            start = end;
            // Let others run between batches (task context, as above).
            vmspace_kernel::cond_resched();
        }
        Ok(())
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // SAFETY: `range` is in a live reservation of ours (caller).
        let area = unsafe { self.area_of(range) }?;
        self.all_mapped(range)?;
        // SAFETY: inside our live area (checked); the caller promises no
        // access until mapped again.
        unsafe { self.unmap_and_free(area, range) };
        Ok(())
    }

    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        kernel::task::might_sleep();
        check_page_range(range, self.page_size())?;
        // SAFETY: `range` is in a live reservation of ours (caller).
        let area = unsafe { self.area_of(range) }?;
        self.all_mapped(range)?;
        let (start, end) = (range.base().0, range.limit().0);
        // SAFETY: `[start, end)` is page-aligned, inside our live `area` and
        // all mapped (checked); the caller makes no access `prot` forbids.
        let err = unsafe {
            match prot {
                Protection::None => protect::vmspace_protect_none(area, start, end, self.account),
                Protection::Read => protect::vmspace_protect_access(area, start, end, false),
                Protection::ReadWrite => protect::vmspace_protect_access(area, start, end, true),
            }
        };
        match err {
            0 => Ok(()),
            e if e == kernel::error::code::ENOMEM.to_errno() => Err(ShimError::OutOfMemory(range)),
            e => Err(ShimError::Os { op: Op::Protect, errno: e }),
        }
    }

    fn relax(&self) {
        vmspace_kernel::relax();
    }

    fn reschedule(&self) {
        vmspace_kernel::cond_resched();
    }
}
