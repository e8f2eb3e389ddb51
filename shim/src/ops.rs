//! The page-operations trait: the only door from vmspace to the operating system.

use crate::addr::Size;
use crate::error::ShimError;
use crate::range::Range;

/// Access allowed to mapped pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// No access: touching the pages faults (they stay committed).
    None,
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

/// Reserve, map, unmap, protect and release pages of address space.
///
/// A *reservation* is a range of address space that belongs to the caller and
/// has no memory behind it. Pages inside it are *mapped* (committed, readable and
/// writable, reading zero the first time) and *unmapped* (memory given back; the
/// next map reads zero again). All ranges passed in must be multiples of
/// [`page_size`](PageOps::page_size) at both ends.
///
/// Backends report contract violations they can detect (double map, unmap of
/// unmapped pages, ranges outside a reservation) as errors; the simulated
/// backend detects all of them, the system backends some.
///
/// # Safety
///
/// Implementors guarantee, for everything layered on top to rely on:
/// - `reserve` returns a page-aligned range, aligned as asked, that overlaps no
///   other live reservation of any backend in the address space, and nothing
///   in it is accessible until mapped;
/// - after `map` of a range returns `Ok`, every byte of the range is readable
///   and writable memory owned by the reservation's holder, reading zero unless
///   written since that map, until the range is unmapped, protected or released;
/// - after any call returns `Err`, the pages it was given are in the state they
///   had before the call, or (for `unmap` only) decommitted as the call asked:
///   still mapped, with their protection, but their contents may be gone
///   (reading zero). The error says nothing worse happened. One exception,
///   where the OS allows no better: a failed `protect` or `unmap` of a
///   system backend may leave part of its range, never all of it, with the
///   protection it asked for (Linux's `mprotect` when a split would pass
///   `vm.max_map_count`: the mappings before that split keep the change,
///   the one it failed on does not, so a one-page call changes nothing).
///   A backend does not know the old protection; the layers that know it
///   put it back (the VM arena and the chunk map do; a bare `Vm` does not
///   track protections). A refusal (an error for which
///   [`ShimError::may_have_changed`] is false) changed nothing at all, but
///   for a call that breaks two preconditions at once: a system backend's
///   `map` of a range partly outside any reservation
///   ([`NotReserved`](ShimError::NotReserved)) that also covers pages
///   mapped already leaves those inaccessible (the OS tells the hole only
///   after changing the pages before it, which the backend puts back as
///   the unmapped pages a `map` is given must have been).
///   In particular a failed `release`
///   releases nothing: the reservation stays live and the caller's, so it
///   may retry (and must still release it some day).
pub unsafe trait PageOps {
    /// The granularity of `map`, `unmap` and `protect`: a power of two.
    fn page_size(&self) -> Size;

    /// A short name for the backend ("mmap", "sim", "kernel vm_area", ...).
    fn name(&self) -> &'static str;

    /// Reserve `size` bytes of address space, with the base a multiple of
    /// `align`. `size` must be a non-zero multiple of the page size and
    /// `align` a power of two; one below the page size means the page size
    /// ([`check_reserve_args`]). Nothing is committed.
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError>;

    /// Give a reservation back, unmapping whatever is mapped in it. On
    /// failure nothing is released: the reservation and its pages are as
    /// they were.
    ///
    /// # Safety
    ///
    /// `range` is exactly a range returned by `reserve` on this backend and not
    /// yet released, and nothing will access memory inside it again.
    unsafe fn release(&self, range: Range) -> Result<(), ShimError>;

    /// Commit the pages of `range` read-write.
    ///
    /// # Safety
    ///
    /// `range` lies inside one live reservation of this backend and none of its
    /// pages is mapped.
    unsafe fn map(&self, range: Range) -> Result<(), ShimError>;

    /// Decommit the pages of `range`; they read zero when next mapped.
    ///
    /// # Safety
    ///
    /// `range` lies inside one live reservation of this backend, all of its
    /// pages are mapped, and nothing will access memory in it until it is
    /// mapped again.
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError>;

    /// Decommit the pages of `range` as [`unmap`](Self::unmap) does, but
    /// let the backend defer the TLB flush, and giving the memory back,
    /// to the next [`flush`](Self::flush), so many unmaps share one flush
    /// (vmalloc's lazy purge). Until that flush the range is *unflushed*:
    /// another CPU may still reach the old pages through a stale TLB entry,
    /// so the caller must not map any of it again (the simulated backend
    /// refuses with [`ShimError::Unflushed`]; the batched kernel backend
    /// flushes first). The default unmaps and flushes at once.
    ///
    /// # Safety
    ///
    /// As for [`unmap`](Self::unmap).
    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { self.unmap(range) }
    }

    /// Complete every deferred unmap: one TLB flush for the whole batch,
    /// then the memory goes back. Afterwards nothing is unflushed. Returns
    /// the number of pages completed (0: nothing was pending, and nothing
    /// was flushed). Cannot fail.
    fn flush(&self) -> usize {
        0
    }

    /// Pages unmapped by [`unmap_deferred`](Self::unmap_deferred) and not
    /// yet flushed.
    fn unflushed_pages(&self) -> usize {
        0
    }

    /// Change the protection of mapped pages.
    ///
    /// # Safety
    ///
    /// `range` lies inside one live reservation of this backend and all of its
    /// pages are mapped; no access that `prot` forbids happens while it is in
    /// force.
    unsafe fn protect(&self, range: Range, prot: crate::Protection) -> Result<(), ShimError>;

    /// Called in each round of a wait for another thread (the chunk map's
    /// wait for a claim on a chunk, while the claimant maps pages): let it
    /// run. The default is the CPU's spin-wait hint; a backend whose
    /// claimants may sleep should give the CPU up (user space: yield; the
    /// kernel: `cond_resched()`, without which a non-preemptible kernel can
    /// spin a waiter forever in front of the claimant it waits for).
    fn relax(&self) {
        core::hint::spin_loop();
    }

    /// Called between batches of a long walk a caller makes over its own
    /// metadata, perhaps holding a sleeping lock but no spinning one (the
    /// arena's address hash moving every entry when it doubles): a point
    /// where the thread may be rescheduled. The default does nothing (user
    /// space is preempted anyway, and yielding there with a lock held only
    /// makes its waiters wait longer); the kernel backends call
    /// `cond_resched()`, without which a non-preemptible kernel runs the
    /// whole walk without scheduling. Task context only, as `map` is.
    fn reschedule(&self) {}
}

// SAFETY: forwards every call to `T`, which upholds the contract.
unsafe impl<T: PageOps + ?Sized> PageOps for &T {
    fn page_size(&self) -> Size {
        (**self).page_size()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        (**self).reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `release`'s contract for `T`.
        unsafe { (**self).release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `map`'s contract for `T`.
        unsafe { (**self).map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap`'s contract for `T`.
        unsafe { (**self).unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: crate::Protection) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `protect`'s contract for `T`.
        unsafe { (**self).protect(range, prot) }
    }
    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap_deferred`'s contract for `T`.
        unsafe { (**self).unmap_deferred(range) }
    }
    fn flush(&self) -> usize {
        (**self).flush()
    }
    fn unflushed_pages(&self) -> usize {
        (**self).unflushed_pages()
    }
    fn relax(&self) {
        (**self).relax()
    }
    fn reschedule(&self) {
        (**self).reschedule()
    }
}

/// Check the arguments every backend's `reserve` must check: `size` a non-zero
/// multiple of `page`, `align` a power of two. Returns the alignment to use
/// (at least `page`).
pub fn check_reserve_args(size: Size, align: Size, page: Size) -> Result<Size, ShimError> {
    if size.is_zero() {
        return Err(ShimError::InvalidArgument("reservation size is zero"));
    }
    if !size.is_aligned(page) {
        return Err(ShimError::Misaligned { value: size.0, align: page.0 });
    }
    if !align.is_power_of_two() {
        return Err(ShimError::InvalidArgument("alignment is not a power of two"));
    }
    Ok(if align < page { page } else { align })
}

/// Check that `range` is non-empty and page-aligned at both ends.
pub fn check_page_range(range: Range, page: Size) -> Result<(), ShimError> {
    if range.is_empty() {
        return Err(ShimError::InvalidArgument("empty range"));
    }
    if !range.base().is_aligned(page) {
        return Err(ShimError::Misaligned { value: range.base().0, align: page.0 });
    }
    if !range.limit().is_aligned(page) {
        return Err(ShimError::Misaligned { value: range.limit().0, align: page.0 });
    }
    Ok(())
}
