//! Allocating, freeing and protecting tracts, and managing spare pages and
//! the commit limit.

use crate::error::CommonError;
use crate::hull::Hull;
use crate::vm::VmError;
use vmspace_shim::{Addr, PageOps, Protection, Range, ShimError, Size};

use super::tables::{prot_code, prot_of, RawTract, ALLOCATED};
use super::{Grant, Owner, Request, Stranded, VmArena, VmArenaError};

impl<P: PageOps> VmArena<P> {
    /// Allocate a run of tracts as `req` asks: committed, described in the
    /// page table as owned by `req.owner`, read-write. Reused spare pages
    /// keep what was written to them; fresh ones read zero.
    pub fn alloc(&mut self, req: &Request) -> Result<Grant, VmArenaError> {
        let (pages, align) = (req.pages.0, req.align.0);
        if pages == 0 {
            return Err(VmArenaError::Common(CommonError::InvalidArgument("zero pages requested")));
        }
        if req.owner == Owner::NONE {
            return Err(VmArenaError::Common(CommonError::InvalidArgument(
                "owner 0 stands for free tracts",
            )));
        }
        if !vmspace_shim::align::is_power_of_two(align) {
            return Err(VmArenaError::Common(CommonError::InvalidArgument(
                "alignment is not a power of two",
            )));
        }
        self.retry_stale();
        let (lo, placement) = self.place(req).ok_or(VmArenaError::NoSpace { pages })?;
        let hi = lo + pages;
        self.make_commit_room(lo, hi)?;
        self.map_tables(lo, hi)?;
        if let Err(e) = self.commit_tracts(lo, hi) {
            self.unmap_unused_tables(lo, hi);
            return Err(e);
        }
        self.mark_alloc(lo, hi, true);
        let t = RawTract { owner: req.owner.0, prot: 0, flags: ALLOCATED, client: 0 };
        for i in lo..hi {
            self.set_desc(i, t);
        }
        self.allocated += pages;
        Ok(Grant { range: self.tract_range(lo, hi), placement })
    }

    /// Check that every tract of `range` is allocated to `owner`; return the
    /// tract indices and whether any of them is protected.
    fn owned(&self, range: Range, owner: Owner) -> Result<(usize, usize, bool), VmArenaError> {
        let (lo, hi) = self.tract_indices(range)?;
        if self.find_free(lo, hi).is_some() {
            return Err(VmArenaError::NotAllocated(range));
        }
        let mut protected = false;
        for i in lo..hi {
            let d = self.desc(i).unwrap_or_default();
            if Owner(d.owner) != owner {
                return Err(VmArenaError::WrongOwner {
                    addr: self.vm_addr(i),
                    owner: Owner(d.owner),
                });
            }
            protected |= d.prot != 0;
        }
        Ok((lo, hi, protected))
    }

    /// Free the tracts of `range`, all allocated to `owner`. Up to the spare
    /// bound, the pages stay committed for reuse, the lowest first; the rest
    /// are decommitted. A range with any protected tract in it is
    /// decommitted whole (no page of it is kept spare). Table pages left
    /// describing no allocated tract are unmapped.
    pub fn free(&mut self, range: Range, owner: Owner) -> Result<(), VmArenaError> {
        self.free_keeping(range, owner, true)
    }

    /// [`free`](Self::free), keeping no page spare unless `spare_ok`: every
    /// page is then unmapped, whose TLB flush completes any flush of the
    /// range still pending elsewhere (see the `Source` implementation's
    /// `release_unflushed`).
    pub(crate) fn free_keeping(
        &mut self,
        range: Range,
        owner: Owner,
        spare_ok: bool,
    ) -> Result<(), VmArenaError> {
        let (lo, hi, protected) = self.owned(range, owner)?;
        self.retry_stale();
        let n = hi - lo;
        let keep = match protected || !spare_ok {
            true => 0,
            false => self.spare_limit.saturating_sub(self.spare).min(n),
        };
        if keep < n {
            if let Err(e) = self.decommit(self.tract_range(lo + keep, hi)) {
                // The tracts stay allocated.
                return Err(self.restore_after(e, lo + keep, hi));
            }
        }
        for i in lo..hi {
            self.set_desc(i, RawTract::default());
        }
        self.mark_alloc(lo, hi, false);
        self.allocated -= n;
        self.spare += keep;
        self.unmap_unused_tables(lo, hi);
        Ok(())
    }

    /// Change the protection of the tracts of `range`, all allocated to
    /// `owner`, and record it in their descriptors.
    pub fn protect(
        &mut self,
        range: Range,
        owner: Owner,
        prot: Protection,
    ) -> Result<(), VmArenaError> {
        let (lo, hi, _) = self.owned(range, owner)?;
        self.retry_stale();
        if let Err(e) = self.vm.protect(range, prot) {
            return Err(self.restore_after(e.into(), lo, hi));
        }
        for i in lo..hi {
            let mut d = self.desc(i).unwrap_or_default();
            d.prot = prot_code(prot);
            self.set_desc(i, d);
        }
        Ok(())
    }

    /// After `e`, the failure of a protect or unmap of allocated tracts
    /// `[lo, hi)`: when the call may have changed part of the range (see
    /// [`ShimError::may_have_changed`]), put their recorded protection
    /// back; `RollbackFailed` if that fails too, else `e`.
    fn restore_after(&mut self, e: VmArenaError, lo: usize, hi: usize) -> VmArenaError {
        let Some(error) = changed_by(&e) else { return e };
        match self.restore_protection(lo, hi) {
            None => e,
            Some(lost) => {
                VmArenaError::RollbackFailed { range: lost, error, tracts: Stranded::Inaccessible }
            }
        }
    }

    /// Give tracts `[lo, hi)` the protection their descriptors record
    /// again, a run of equal ones at a time, after a failed protect: an OS
    /// may change part of a range before failing (Linux's `mprotect` when
    /// a split would pass `vm.max_map_count`), and putting the old
    /// protection back joins what it split, so it needs no new mapping.
    /// A run that cannot be put back is made inaccessible as far as the
    /// backend allows and recorded so (never recorded more open than it
    /// may be); returns the range from the first such run to the last.
    fn restore_protection(&mut self, lo: usize, hi: usize) -> Option<Range> {
        let code = |a: &Self, i: usize| a.desc(i).unwrap_or_default().prot;
        let mut lost = Hull::EMPTY;
        let mut i = lo;
        while i < hi {
            let c = code(self, i);
            let mut j = i + 1;
            while j < hi && code(self, j) == c {
                j += 1;
            }
            let run = self.tract_range(i, j);
            let back = prot_of(c).is_some_and(|p| self.vm.protect(run, p).is_ok());
            if !back {
                let _ = self.vm.protect(run, Protection::None);
                for t in i..j {
                    let mut d = self.desc(t).unwrap_or_default();
                    d.prot = prot_code(Protection::None);
                    self.set_desc(t, d);
                }
                lost.add(i, j);
            }
            i = j;
        }
        lost.get().map(|(l, h)| self.tract_range(l, h))
    }

    /// Set the client bits of the allocated tract holding `addr`.
    pub fn set_client(&mut self, addr: Addr, client: u16) -> Result<(), VmArenaError> {
        let base = addr.align_down(self.page)?;
        // The last page of the address space ends at 2^64: named up to its
        // last byte (it is outside any arena).
        let page = Range::from_size(base, self.page)
            .unwrap_or(Range::new(base, Addr(usize::MAX)).unwrap_or(Range::empty(base)));
        let i =
            self.tract_index(addr).ok_or(VmArenaError::Common(CommonError::OutOfRange(page)))?;
        if !self.is_alloc(i) {
            return Err(VmArenaError::NotAllocated(page));
        }
        self.retry_stale();
        let mut d = self.desc(i).unwrap_or_default();
        d.client = client;
        self.set_desc(i, d);
        Ok(())
    }

    /// Decommit every spare page. Returns the number of pages given back.
    ///
    /// Spare pages go back one run of contiguous free tracts at a time, in
    /// address order. When a backend call fails, the runs given back before
    /// it stay given back (they are no longer spare) and the rest stay
    /// spare: the arena is consistent, [`spare`](Self::spare) says what
    /// remains, and a later purge finishes the job. A purge is not undone,
    /// since mapping the runs again could fail as well. An allocation that
    /// purges to stay within the commit limit, and
    /// [`set_spare_limit`](Self::set_spare_limit) and
    /// [`set_commit_limit`](Self::set_commit_limit), may fail the same way.
    pub fn purge_spare(&mut self) -> Result<usize, VmArenaError> {
        self.retry_stale();
        let n = self.layout.tracts;
        let mut purged = 0;
        let mut from = 0;
        while self.spare > 0 && from < n {
            let limit = self.vm_addr(n);
            let start = self.vm_addr(from);
            // Resume where the last run ended: from the first pass, each
            // pass walked past every run before `start` again (quadratic
            // in the committed runs).
            let Some(run) = self.vm.mapped_runs_from(start).next().filter(|r| r.base() < limit)
            else {
                break;
            };
            let a = self.tract_index(run.base().max(start)).unwrap_or(n);
            let b = self.tract_index(run.limit()).unwrap_or(n);
            // Free sub-runs of the committed run [a, b) are spare.
            let mut i = a;
            while let Some(s) = self.find_free(i, b) {
                let e = self.find_alloc(s, b).unwrap_or(b);
                self.purge_run(s, e)?;
                self.spare -= e - s;
                purged += e - s;
                i = e;
            }
            from = b;
        }
        Ok(purged)
    }

    /// Decommit the spare tracts `[lo, hi)`. An unmap may fail part way,
    /// leaving some pages inaccessible: the run then stays spare with
    /// read-write put back over it (its old layout, so no new mapping);
    /// if that fails too, spare pages are made read-write again whenever
    /// they are reused, until none is spare.
    fn purge_run(&mut self, lo: usize, hi: usize) -> Result<(), VmArenaError> {
        let range = self.tract_range(lo, hi);
        let e = match self.decommit(range) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(error) = changed_by(&e) else { return Err(e) };
        if self.vm.protect(range, Protection::ReadWrite).is_ok() {
            return Err(e);
        }
        self.spare_unsure = true;
        Err(VmArenaError::RollbackFailed { range, error, tracts: Stranded::Spare })
    }

    /// Set the spare bound. If more pages are spare than the new bound,
    /// every spare page is purged (all of them, not only those past the
    /// bound), as [`purge_spare`](Self::purge_spare) does. If the purge
    /// fails, its error is returned and the bound is unchanged (the runs
    /// given back before the failing call stay given back).
    pub fn set_spare_limit(&mut self, pages: usize) -> Result<(), VmArenaError> {
        self.retry_stale();
        if self.spare > pages {
            self.purge_spare()?;
        }
        self.spare_limit = pages;
        Ok(())
    }

    /// Set the commit limit (bytes, compared with
    /// [`committed`](Self::committed)). Refused with
    /// [`CommitLimit`](VmArenaError::CommitLimit), and unchanged, if more
    /// than `limit` is committed now even without spare pages. If more is
    /// committed than `limit` with them, every spare page is purged first,
    /// as [`purge_spare`](Self::purge_spare) does; if that purge fails, its
    /// error is returned and the limit is unchanged (the runs given back
    /// before the failing call stay given back).
    pub fn set_commit_limit(&mut self, limit: Size) -> Result<(), VmArenaError> {
        self.retry_stale();
        let committed = self.committed().0;
        let without_spare = committed - (self.spare << self.layout.page_shift);
        if without_spare > limit.0 {
            return Err(VmArenaError::CommitLimit { needed: without_spare, limit: limit.0 });
        }
        if committed > limit.0 {
            self.purge_spare()?;
        }
        self.commit_limit = limit;
        Ok(())
    }

    /// Committed tracts in `[lo, hi)`: all spare, as they are free.
    fn spare_in(&self, lo: usize, hi: usize) -> usize {
        if self.spare == 0 {
            0
        } else {
            (lo..hi).filter(|&i| self.vm_mapped(i)).count()
        }
    }

    /// Make sure committing tracts `[lo, hi)` and the table pages they need
    /// stays within the commit limit, purging spare pages if that is enough.
    fn make_commit_room(&mut self, lo: usize, hi: usize) -> Result<(), VmArenaError> {
        let tables = self.layout.table_pages_of(lo, hi);
        let bits = self.layout.bit_pages_of(lo, hi);
        let meta = tables.filter(|&k| !self.vm_mapped(self.layout.table_page(k))).count()
            + bits.filter(|&j| !self.vm_mapped(self.layout.bit_page(j))).count();
        let shift = self.layout.page_shift;
        let committed = self.committed().0;
        let fresh = (hi - lo - self.spare_in(lo, hi) + meta) << shift;
        if committed.checked_add(fresh).is_some_and(|c| c <= self.commit_limit.0) {
            return Ok(());
        }
        let purged = committed - (self.spare << shift);
        let needed = purged.saturating_add((hi - lo + meta) << shift);
        if self.spare > 0 && needed <= self.commit_limit.0 {
            self.purge_spare()?;
            return Ok(());
        }
        Err(VmArenaError::CommitLimit {
            needed: committed.saturating_add(fresh),
            limit: self.commit_limit.0,
        })
    }

    /// Map the table pages that tracts `[lo, hi)` need; on failure, unmap
    /// the ones mapped here again.
    fn map_tables(&mut self, lo: usize, hi: usize) -> Result<(), VmArenaError> {
        let layout = self.layout;
        let pages = layout.bit_pages_of(lo, hi).map(|j| (layout.bit_page(j), true));
        let tables = layout.table_pages_of(lo, hi).map(|k| (layout.table_page(k), false));
        for (idx, is_bits) in pages.chain(tables) {
            if self.vm_mapped(idx) {
                continue;
            }
            if let Err(e) = self.vm_map(self.vm_page(idx)) {
                self.unmap_unused_tables(lo, hi);
                return Err(e.into());
            }
            if is_bits {
                self.bits_mapped += 1;
            } else {
                self.table_mapped += 1;
            }
        }
        Ok(())
    }

    /// Commit the tracts of `[lo, hi)` that are not spare. On failure,
    /// decommit the ones committed here again.
    fn commit_tracts(&mut self, lo: usize, hi: usize) -> Result<(), VmArenaError> {
        if self.spare == 0 {
            self.spare_unsure = false;
            self.vm_map(self.tract_range(lo, hi))?;
            return Ok(());
        }
        let mut reused = 0;
        let mut i = lo;
        while i < hi {
            if self.vm_mapped(i) {
                reused += 1;
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < hi && !self.vm_mapped(j) {
                j += 1;
            }
            if let Err(e) = self.vm_map(self.tract_range(i, j)) {
                return Err(rolled_back(e.into(), self.uncommit_marked(lo, i)));
            }
            // The allocation bits of fresh pages mark them for a rollback.
            self.mark_alloc(i, j, true);
            i = j;
        }
        if reused > 0 && self.spare_unsure {
            // A failed purge may have left spare pages inaccessible.
            if let Err(e) = self.vm.protect(self.tract_range(lo, hi), Protection::ReadWrite) {
                return Err(rolled_back(e.into(), self.uncommit_marked(lo, hi)));
            }
        }
        self.mark_alloc(lo, hi, false);
        self.spare -= reused;
        Ok(())
    }

    /// Roll back `commit_tracts` over `[lo, hi)`: decommit the tracts whose
    /// bits mark them as committed by it, and clear the bits. Returns the
    /// range from the first run that could not be decommitted to the last:
    /// those stay committed, as spare.
    fn uncommit_marked(&mut self, lo: usize, hi: usize) -> Option<Range> {
        let mut kept = Hull::EMPTY;
        let mut i = lo;
        while let Some(s) = self.find_alloc(i, hi) {
            let e = self.find_free(s, hi).unwrap_or(hi);
            if self.decommit(self.tract_range(s, e)).is_err() {
                // They stay committed, free: spare, and perhaps partly
                // inaccessible (an unmap may fail part way).
                self.spare += e - s;
                self.spare_unsure = true;
                kept.add(s, e);
            }
            self.mark_alloc(s, e, false);
            i = e;
        }
        kept.get().map(|(k, e)| self.tract_range(k, e))
    }
}

/// `e`, the failure of an allocation's commit, or `RollbackFailed` when its
/// rollback kept the tracts of `kept` committed (as spare).
fn rolled_back(e: VmArenaError, kept: Option<Range>) -> VmArenaError {
    match (kept, e.backend()) {
        (Some(range), Some(error)) => {
            VmArenaError::RollbackFailed { range, error, tracts: Stranded::Spare }
        }
        _ => e,
    }
}

/// The backend error behind `e` when the failed call may have changed part
/// of its range ([`ShimError::may_have_changed`]): what a put-back follows.
fn changed_by(e: &VmArenaError) -> Option<ShimError> {
    match e {
        VmArenaError::Vm(VmError::Backend(error)) if error.may_have_changed() => Some(*error),
        _ => None,
    }
}
