//! The VM layer: one contiguous reservation of address space, with pages
//! mapped and unmapped inside it on demand (the Memory Pool System's VM).
//!
//! A [`Vm`] reserves a range whose base and limit are multiples of a *grain*
//! (a power of two no smaller than the page size), lets its holder map and
//! unmap page-aligned ranges inside it, and knows at every moment how much is
//! reserved and mapped. It records which pages are mapped in a bit table that
//! lives in its own reservation, past the limit, mapped one page at a time as
//! needed, so it needs no heap. Dropping it releases everything.
//!
//! Bad ranges (misaligned, outside the VM, mapping what is mapped, unmapping
//! what is not) are errors that leave the VM unchanged; so are failures of the
//! backend, its own bit-table pages included (a failed `map` gives back the
//! table pages it mapped), except in [`Vm::trim`], which keeps what it gave
//! back before the failure, and where giving back such a table page fails
//! too: it stays mapped, empty and counted, until a `trim`. The client pages
//! of a failed backend call are as the backend's contract leaves them: a
//! failed `unmap` may have dropped their contents, and a failed `unmap` or
//! `protect` may leave part of the range with the protection asked for
//! ([`VmError`]).
//!
//! ```
//! use vmspace::vm::Vm;
//! use vmspace_shim::{sim::SimBackend, Range, Size};
//!
//! let mut buffer = vec![0u8; 1 << 20];
//! let sim = SimBackend::new(&mut buffer, 4096).unwrap();
//! let mut vm = Vm::reserve(&sim, Size(256 << 10), Size(64 << 10)).unwrap();
//! let first = Range::from_size(vm.base(), Size(8192)).unwrap();
//! vm.map(first).unwrap();
//! assert_eq!(vm.mapped(), Size(8192));
//! assert!(vm.map(first).is_err()); // already mapped
//! vm.unmap(first).unwrap();
//! vm.check().unwrap();
//! ```

mod error;
mod layout;
mod runs;
mod table;

use crate::error::CommonError;
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

pub use error::VmError;
use layout::Layout;
pub use runs::MappedRuns;
use table::MapTable;

/// A reservation of address space with pages mapped on demand.
///
/// # Invariants
///
/// - `reservation` is a live reservation of `ops`, released only by `Drop`
///   or [`release`](Vm::release); `[base, limit)` is its grain-aligned front
///   and the summary and bit table follow `limit`.
/// - `table` records exactly the client pages that are mapped through `ops`,
///   and `mapped_pages` is their number.
#[derive(Debug)]
pub struct Vm<P: PageOps> {
    ops: P,
    reservation: Range,
    client: Range,
    grain: Size,
    page: Size,
    layout: Layout,
    table: MapTable,
    mapped_pages: usize,
}

impl<P: PageOps> Vm<P> {
    /// Reserve at least `size` bytes of address space (rounded up to `grain`)
    /// whose base and limit are multiples of `grain`. Nothing is committed but
    /// the small summary of the mapped-state table. A `size` of 0, or a
    /// `grain` that is not a power of two at least the backend's page size,
    /// is refused with an error.
    pub fn reserve(ops: P, size: Size, grain: Size) -> Result<Self, VmError> {
        let page = ops.page_size();
        let layout = Layout::new(size, grain, page)?;
        let reservation = ops.reserve(layout.total, grain)?;
        let base = reservation.base();
        let client = Range::from_size(base, layout.client)?;
        let summary = Range::from_size(client.limit(), Size(layout.summary_pages * page.0))?;
        // SAFETY: the summary lies in the reservation just made, all unmapped.
        if let Err(e) = unsafe { ops.map(summary) } {
            // SAFETY: the reservation is ours and nothing refers to it.
            let _ = unsafe { ops.release(reservation) };
            return Err(e.into());
        }
        let table = MapTable::new(summary.base(), summary.limit(), layout.table_pages, page);
        Ok(Vm { ops, reservation, client, grain, page, layout, table, mapped_pages: 0 })
    }

    /// The first client address: a multiple of the grain.
    pub fn base(&self) -> Addr {
        self.client.base()
    }

    /// One past the last client address: a multiple of the grain.
    pub fn limit(&self) -> Addr {
        self.client.limit()
    }

    /// `[base, limit)`.
    pub fn range(&self) -> Range {
        self.client
    }

    /// The grain the base and limit are multiples of.
    pub fn grain(&self) -> Size {
        self.grain
    }

    /// The backend's page size: the granularity of `map` and `unmap`.
    pub fn page_size(&self) -> Size {
        self.page
    }

    /// Bytes of address space reserved, including the metadata region past
    /// the limit.
    pub fn reserved(&self) -> Size {
        self.reservation.size()
    }

    /// The whole reservation, metadata region included.
    pub fn reservation(&self) -> Range {
        self.reservation
    }

    /// Bytes of client space mapped now.
    pub fn mapped(&self) -> Size {
        Size(self.mapped_pages * self.page.0)
    }

    /// Bytes of metadata (summary and bit-table pages) mapped now.
    pub fn metadata_mapped(&self) -> Size {
        Size((self.layout.summary_pages + self.table.mapped_table_pages()) * self.page.0)
    }

    /// Bytes of mapped metadata that record no mapped page: what
    /// [`trim`](Self::trim) would give back now (kept as pages are mapped
    /// and unmapped, so asking costs nothing).
    pub fn metadata_trimmable(&self) -> Size {
        Size(self.table.empty_table_pages() * self.page.0)
    }

    /// The backend.
    pub fn ops(&self) -> &P {
        &self.ops
    }

    /// Whether the page holding `addr` is mapped (`false` outside the VM).
    pub fn is_mapped(&self, addr: Addr) -> bool {
        self.client.contains_addr(addr)
            && self.table.test((addr.0 - self.client.base().0) / self.page.0)
    }

    /// Whether every page of `range` (page-aligned, inside the VM) is mapped.
    pub fn is_range_mapped(&self, range: Range) -> Result<bool, VmError> {
        let (lo, hi) = self.page_indices(range)?;
        Ok(self.table.find_unmapped(lo, hi).is_none())
    }

    /// Client page indices of `range`, checked to be non-empty, page-aligned
    /// and inside the VM.
    fn page_indices(&self, range: Range) -> Result<(usize, usize), VmError> {
        if range.is_empty() {
            return Err(VmError::Common(CommonError::InvalidArgument("empty range")));
        }
        for a in [range.base(), range.limit()] {
            if !a.is_aligned(self.page) {
                return Err(VmError::Common(CommonError::Misaligned {
                    value: a.0,
                    align: self.page.0,
                }));
            }
        }
        if !self.client.contains(&range) {
            return Err(VmError::Common(CommonError::OutOfRange(range)));
        }
        let base = self.client.base().0;
        Ok(((range.base().0 - base) / self.page.0, (range.limit().0 - base) / self.page.0))
    }

    /// Map (commit, read-write) the pages of `range`, none of which may be
    /// mapped. They read zero.
    ///
    /// # Errors
    ///
    /// A bad range, or the backend's failure; the VM is as it was, except
    /// that a bit-table page mapped for `range` whose give-back fails too
    /// stays mapped (empty, counted in
    /// [`metadata_mapped`](Self::metadata_mapped), given back by
    /// [`trim`](Self::trim)).
    pub fn map(&mut self, range: Range) -> Result<(), VmError> {
        let (lo, hi) = self.page_indices(range)?;
        if self.table.find_mapped(lo, hi).is_some() {
            return Err(VmError::AlreadyMapped(range));
        }
        self.table.ensure_table_pages(&self.ops, lo, hi)?;
        // SAFETY: `range` is inside our live reservation (checked) and none of
        // its pages is mapped (checked against the table, which is exact).
        if let Err(e) = unsafe { self.ops.map(range) } {
            self.table.unmap_fresh(&self.ops, lo, hi);
            return Err(e.into());
        }
        self.table.mark_mapped(lo, hi);
        self.mapped_pages += hi - lo;
        Ok(())
    }

    /// Unmap (decommit) the pages of `range`, all of which must be mapped.
    /// A failed unmap leaves them mapped, though their contents may be
    /// gone, and, where the OS fails part way (as for
    /// [`protect`](Self::protect)), some of them inaccessible.
    ///
    /// Unmapping is safe at this level: the VM hands out addresses, not
    /// references, and whoever dereferences an address in the VM must know it
    /// is mapped (the layers above keep that promise).
    pub fn unmap(&mut self, range: Range) -> Result<(), VmError> {
        self.unmap_with(range, false)
    }

    /// Unmap the pages of `range` (all mapped) through the backend's
    /// [`unmap_deferred`](PageOps::unmap_deferred): the TLB flush, and
    /// giving the memory back, wait for [`flush`](Self::flush). Until then
    /// the range is unflushed and must not be mapped again (the backend
    /// refuses or flushes first). For many unmaps behind one flush.
    pub fn unmap_deferred(&mut self, range: Range) -> Result<(), VmError> {
        self.unmap_with(range, true)
    }

    /// Complete every deferred unmap with one flush
    /// ([`PageOps::flush`]). Returns the pages completed.
    pub fn flush(&mut self) -> usize {
        self.ops.flush()
    }

    fn unmap_with(&mut self, range: Range, deferred: bool) -> Result<(), VmError> {
        let (lo, hi) = self.page_indices(range)?;
        if self.table.find_unmapped(lo, hi).is_some() {
            return Err(VmError::NotMapped(range));
        }
        // SAFETY: `range` is inside our live reservation and all mapped
        // (checked); the VM holds no reference into client pages.
        unsafe {
            if deferred {
                self.ops.unmap_deferred(range)?
            } else {
                self.ops.unmap(range)?
            }
        };
        self.table.mark_unmapped(lo, hi);
        self.mapped_pages -= hi - lo;
        Ok(())
    }

    /// After an unmap of `range`, every page of which was read-write, failed
    /// with `failed`: make the range read-write again if the failure may
    /// have changed part of it ([`ShimError::may_have_changed`]: an unmap the
    /// OS refused part way leaves some pages inaccessible, though the table
    /// still records them mapped). For callers that know the range's
    /// protection (an import, or any range of a VM whose pages are never
    /// protected otherwise), where the VM itself cannot. Whether the range
    /// is read-write now: false when the backend refused that too.
    ///
    /// [`ShimError::may_have_changed`]: vmspace_shim::ShimError::may_have_changed
    pub fn restore_read_write(&mut self, range: Range, failed: &VmError) -> bool {
        match failed {
            VmError::Backend(e) if e.may_have_changed() => {
                self.protect(range, Protection::ReadWrite).is_ok()
            }
            _ => true,
        }
    }

    /// Change the protection of `range`, all of which must be mapped.
    ///
    /// An OS that fails part way (Linux's `mprotect` when a split would
    /// pass `vm.max_map_count`) may leave part of `range` with `prot`: the
    /// VM records no protections to put back, so its caller, who knows
    /// them, does (`PageOps`' contract; the VM arena does so for its own).
    pub fn protect(&mut self, range: Range, prot: Protection) -> Result<(), VmError> {
        let (lo, hi) = self.page_indices(range)?;
        if self.table.find_unmapped(lo, hi).is_some() {
            return Err(VmError::NotMapped(range));
        }
        // SAFETY: `range` is inside our live reservation and all mapped; the
        // VM itself never touches client pages.
        unsafe { self.ops.protect(range, prot)? };
        Ok(())
    }

    /// The runs of mapped pages, in address order.
    pub fn mapped_runs(&self) -> MappedRuns<'_, P> {
        MappedRuns::new(self)
    }

    /// The maximal runs of mapped pages from the page holding `addr` on (a
    /// run that holds that page starts there), in address order: a walk
    /// that resumes where it left off without passing the runs before
    /// again. An address below the client range starts at its base; one
    /// past it yields nothing.
    pub fn mapped_runs_from(&self, addr: Addr) -> MappedRuns<'_, P> {
        let page = self.page_size().0;
        let from = match addr.0.checked_sub(self.base().0) {
            Some(off) => (off / page).min(self.client_pages()),
            None => 0,
        };
        MappedRuns::from_page(self, from)
    }

    /// Unmap bit-table pages that no longer record a mapped page. Returns the
    /// number of metadata pages given back. If the backend fails, the pages
    /// given back before the failure stay given back (the client's mapped
    /// pages are unchanged either way), and the error does not count them:
    /// [`metadata_trimmable`](Self::metadata_trimmable) before and after
    /// does, in bytes (it is what a trim would give back, so the failed page and
    /// those after it are still in it).
    pub fn trim(&mut self) -> Result<usize, VmError> {
        self.table.trim(&self.ops)
    }

    /// [`trim`](Self::trim) only the bit-table pages that record the pages
    /// of `range` (non-empty, page-aligned, inside the client range; mapped
    /// or not): the cost is that of the range, not of the whole VM, for a
    /// caller that has just unmapped it. An empty, misaligned or outside
    /// range is refused (`InvalidArgument`, `Misaligned`, `OutOfRange`),
    /// trimming nothing; a backend failure is as for `trim`.
    pub fn trim_range(&mut self, range: Range) -> Result<usize, VmError> {
        let (lo, hi) = self.page_indices(range)?;
        self.table.trim_pages(&self.ops, lo, hi)
    }

    /// [`trim_range`](Self::trim_range) for a caller that must leave as
    /// little behind as it can: every bit-table page of `range` is tried,
    /// however many failed before it (a failed one stays mapped, recording
    /// nothing, for a later trim). Returns the pages given back; a range
    /// `trim_range` refuses trims nothing.
    pub(crate) fn trim_range_each(&mut self, range: Range) -> usize {
        match self.page_indices(range) {
            Ok((lo, hi)) => self.table.trim_pages_each(&self.ops, lo, hi),
            Err(_) => 0,
        }
    }

    /// Verify every invariant of the bookkeeping.
    pub fn check(&self) -> Result<(), VmError> {
        let pages = self.table.check(self.layout.client_pages)?;
        if pages != self.mapped_pages {
            return Err(VmError::Common(CommonError::Corrupt(
                "mapped byte count differs from the table",
            )));
        }
        if !self.client.base().is_aligned(self.grain) || !self.client.limit().is_aligned(self.grain)
        {
            return Err(VmError::Common(CommonError::Corrupt(
                "base or limit not a multiple of the grain",
            )));
        }
        if !self.reservation.contains(&self.client) {
            return Err(VmError::Common(CommonError::Corrupt(
                "client range outside the reservation",
            )));
        }
        Ok(())
    }

    /// Release the reservation now, reporting failure. On failure the VM is
    /// handed back unchanged, so the caller may retry.
    // There is no heap to box the VM into, and handing it back is the point.
    #[allow(clippy::result_large_err)]
    pub fn release(self) -> Result<(), (Self, VmError)> {
        // SAFETY: the reservation is ours and live; on success the VM is
        // forgotten below, so nothing touches the reservation again.
        match unsafe { self.ops.release(self.reservation) } {
            Ok(()) => {
                let mut this = core::mem::ManuallyDrop::new(self);
                // SAFETY: `ops` is the only field that owns anything; it is
                // dropped once here and `this` is never used again.
                unsafe { core::ptr::drop_in_place(&mut this.ops) };
                Ok(())
            }
            Err(e) => Err((self, e.into())),
        }
    }

    pub(crate) fn client_pages(&self) -> usize {
        self.layout.client_pages
    }

    pub(crate) fn table(&self) -> &MapTable {
        &self.table
    }
}

impl<P: PageOps> Drop for Vm<P> {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours and live, and the VM is going away,
        // so nothing refers to it after this. A failure cannot be reported
        // from drop; `release` is the way to observe it.
        let _ = unsafe { self.ops.release(self.reservation) };
    }
}

#[cfg(test)]
mod tests;
