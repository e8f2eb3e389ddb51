// SPDX-License-Identifier: MIT OR Apache-2.0

//! The sparse vmalloc backend with batched unmaps: [`BatchedSparse`].
//!
//! [`SparseVmalloc`] flushes the kernel TLB for every unmap
//! (`vm_area_unmap_pages`). Here [`unmap_deferred`](PageOps::unmap_deferred)
//! only clears the PTEs (`vunmap_range_noflush`, vmalloc's own batching
//! primitive) and keeps the pages; [`flush`](PageOps::flush) then makes one
//! `flush_tlb_kernel_range` over the union of everything pending and only
//! after it frees the pages, as vmalloc's lazy purge does for freed areas.
//!
//! Until its flush a range is *freed but not flushed*: another CPU may still
//! reach the old pages through a stale TLB entry, so neither its pages nor
//! its addresses may be reused. The pages are held here; the addresses are
//! the caller's to keep (a batched [`VmSource`](vmspace::sources::VmSource)
//! keeps them unflushed in its arena). As a second line, a `map` or
//! `release` touching the pending union flushes first, and counts it in
//! [`BatchStats::forced_flushes`]: a correct caller never causes one.

use core::pin::Pin;

use kernel::alloc::KBox;
use kernel::alloc::KVec;
use kernel::error::Error;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::c_str;
use kernel::sync::{static_lock_class, Mutex};
use vmspace_shim::{check_page_range, PageOps, Protection, Range, ShimError, Size};

use crate::protect;
use crate::sparse::SparseVmalloc;
use crate::sys::{self, Page};

/// What a [`BatchedSparse`] did. Counts only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// `unmap_deferred` calls that deferred their flush.
    pub deferred_unmaps: u64,
    /// Pages those calls unmapped.
    pub deferred_pages: u64,
    /// TLB flushes made for batches (each completing at least one page).
    pub flushes: u64,
    /// Of those, flushes forced by a `map` or `release` over pending pages
    /// (a caller reusing addresses before their flush).
    pub forced_flushes: u64,
    /// Of those, flushes made because the batch was full.
    pub full_flushes: u64,
    /// `unmap_deferred` calls that unmapped at once instead (the range held
    /// pages protected to no access, or was larger than a batch).
    pub immediate_unmaps: u64,
}

/// A page held until the flush, and the address it was mapped at. Only
/// this module handles it.
struct Held {
    page: *mut Page,
    addr: usize,
}

// SAFETY: a held page is owned by the batch, which only touches it (to free
// it) under its mutex.
unsafe impl Send for Held {}

/// Pages unmapped without a flush, and the range that covers them.
///
/// # Invariants
///
/// Every page in `pages` was mapped by `SparseVmalloc::map` at its `addr`,
/// in `[start, end)` of one of our areas, has had its PTE cleared, and is
/// referenced by nothing else; `pages` never grows past its capacity.
/// Empty, `start > end`.
struct Pending {
    pages: KVec<Held>,
    start: usize,
    end: usize,
    stats: BatchStats,
}

impl Pending {
    /// Whether a page of `r` is pending: the covering range first, then
    /// page by page (what is pending is rarely one run: a source gives back
    /// ranges here and there, and imports between them).
    fn overlaps(&self, r: Range) -> bool {
        let (lo, hi) = (r.base().0, r.limit().0);
        lo < self.end && self.start < hi && self.pages.iter().any(|h| lo <= h.addr && h.addr < hi)
    }

    /// One TLB flush over the pending range, then free the pages. Returns
    /// the number of pages completed.
    fn flush(&mut self) -> usize {
        let n = self.pages.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: flushes kernel TLB entries of a range of our areas.
        unsafe { sys::vmspace_flush_kernel_range(self.start, self.end) };
        for held in self.pages.drain_all() {
            // SAFETY: the page came from `vmspace_page_alloc_zeroed`, its PTE
            // is gone and, after the flush, no TLB entry reaches it.
            unsafe { sys::vmspace_page_free(held.page) };
        }
        self.start = usize::MAX;
        self.end = 0;
        self.stats.flushes += 1;
        n
    }
}

/// The sparse vmalloc backend with batched unmaps (built-in only).
///
/// At most `capacity` pages wait at once; an `unmap_deferred` that would
/// pass it flushes the batch first. Dropping it flushes what waits.
#[pin_data(PinnedDrop)]
pub struct BatchedSparse {
    /// A mutex, not a spinlock: clearing PTEs may reschedule
    /// (`vunmap_range_noflush` calls `cond_resched`), and a flush on x86
    /// waits for other CPUs.
    #[pin]
    pending: Mutex<Pending>,
    capacity: usize,
}

impl BatchedSparse {
    /// A backend that holds up to `capacity` (at least 1) unflushed pages.
    pub fn new(capacity: usize) -> Result<Pin<KBox<Self>>, Error> {
        // A static, not a constant: lockdep wants one address per name.
        static NAME: &CStr = c_str!("vmspace::BatchedSparse::pending");
        let capacity = capacity.max(1);
        let pages = KVec::with_capacity(capacity, GFP_KERNEL)?;
        let pending = Pending { pages, start: usize::MAX, end: 0, stats: BatchStats::default() };
        KBox::pin_init(
            pin_init!(BatchedSparse {
                pending <- Mutex::new(pending, NAME, static_lock_class!()),
                capacity,
            }),
            GFP_KERNEL,
        )
    }

    /// What it has done so far.
    pub fn stats(&self) -> BatchStats {
        self.pending.lock().stats
    }

    /// Most pages that wait at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Flush first if `range` touches what is pending (a forced flush).
    fn flush_over(&self, range: Range) {
        let mut p = self.pending.lock();
        if p.overlaps(range) {
            p.stats.forced_flushes += 1;
            p.flush();
        }
    }
}

#[pinned_drop]
impl PinnedDrop for BatchedSparse {
    fn drop(self: Pin<&mut Self>) {
        self.pending.lock().flush();
    }
}

// SAFETY: everything but `unmap_deferred` and `flush` is `SparseVmalloc`'s,
// after flushing any pending page in the range (so no address is mapped
// again, or given back, while a stale TLB entry may reach its old page).
// `unmap_deferred` clears PTEs and keeps their pages until `flush` has
// flushed the TLB over them: no page is freed while reachable.
unsafe impl PageOps for BatchedSparse {
    fn page_size(&self) -> Size {
        SparseVmalloc::new().page_size()
    }

    fn name(&self) -> &'static str {
        "kernel sparse vm_area, batched unmaps"
    }

    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        SparseVmalloc::new().reserve(size, align)
    }

    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        self.flush_over(range);
        // SAFETY: the caller upholds `release`'s contract; nothing of ours
        // is pending in the range any more.
        unsafe { SparseVmalloc::new().release(range) }
    }

    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.flush_over(range);
        // SAFETY: the caller upholds `map`'s contract; no page of the range
        // waits for a flush (a page the caller gave back, and whose address
        // it reuses, was just flushed).
        unsafe { SparseVmalloc::new().map(range) }
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { SparseVmalloc::new().unmap(range) }
    }

    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `protect`'s contract.
        unsafe { SparseVmalloc::new().protect(range, prot) }
    }

    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        let page = self.page_size().0;
        check_page_range(range, self.page_size())?;
        // SAFETY: `range` is in a live reservation of ours (caller).
        let area = unsafe { SparseVmalloc::new().area_of(range) }?;
        SparseVmalloc::new().all_mapped(range)?;
        let n = range.size().0 / page;
        let stashed = (0..n).any(|i| protect::stashed(range.base().0 + i * page));
        if stashed || n > self.capacity {
            self.pending.lock().stats.immediate_unmaps += 1;
            // SAFETY: the caller upholds `unmap`'s contract.
            return unsafe { SparseVmalloc::new().unmap(range) };
        }
        let mut p = self.pending.lock();
        if p.pages.len() + n > self.capacity {
            p.stats.full_flushes += 1;
            p.flush();
        }
        for i in 0..n {
            let addr = range.base().0 + i * page;
            // SAFETY: a page-table lookup by address; every page of the range
            // is mapped (checked), so each lookup finds our page.
            let pg = unsafe { sys::vmspace_sparse_page_at(addr) };
            // Room was made above; cannot fail.
            let _ = p.pages.push_within_capacity(Held { page: pg, addr });
        }
        // SAFETY: `range` is page-aligned inside our live `area`, all mapped,
        // and nothing accesses it any more (caller); its pages are held in
        // the batch until the flush.
        unsafe { sys::vmspace_sparse_unmap_noflush(area, range.base().0, range.limit().0) };
        p.start = p.start.min(range.base().0);
        p.end = p.end.max(range.limit().0);
        p.stats.deferred_unmaps += 1;
        p.stats.deferred_pages += n as u64;
        Ok(())
    }

    fn flush(&self) -> usize {
        self.pending.lock().flush()
    }

    fn unflushed_pages(&self) -> usize {
        self.pending.lock().pages.len()
    }

    fn relax(&self) {
        SparseVmalloc::new().relax()
    }

    fn reschedule(&self) {
        SparseVmalloc::new().reschedule()
    }
}
