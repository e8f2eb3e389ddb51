//! The VM arena's invariant walker.

use crate::error::CommonError;
use vmspace_shim::PageOps;

use super::tables::{prot_of, RawTract, ALLOCATED};
use super::{VmArena, VmArenaError};

impl<P: PageOps> VmArena<P> {
    /// Page-table pages that describe at least one allocated tract (a scan).
    pub fn table_pages_in_use(&self) -> usize {
        (0..self.layout.table_pages).filter(|&k| self.table_page_in_use(k)).count()
    }

    /// Metadata pages (page-table and allocation-table pages) mapped but
    /// describing no allocated tract: left mapped by an unmap that failed,
    /// and given back by the retry every operation makes first (a scan).
    /// Such a retry is what may change [`committed`](Self::committed) in
    /// an operation that then fails, by these pages at most.
    pub fn stale_pages(&self) -> usize {
        let l = &self.layout;
        let tables = (0..l.table_pages)
            .filter(|&k| self.vm_mapped(l.table_page(k)) && !self.table_page_in_use(k))
            .count();
        let bits = (0..l.bit_pages)
            .filter(|&j| self.vm_mapped(l.bit_page(j)) && !self.bit_page_in_use(j))
            .count();
        tables + bits
    }

    /// Verify every invariant (see the type's `# Invariants`), walking the
    /// tables. Returns the first broken one as a [`CommonError::Corrupt`].
    pub fn check(&self) -> Result<(), VmArenaError> {
        let bad = |what| VmArenaError::Common(CommonError::Corrupt(what));
        self.vm.check()?;
        let l = &self.layout;
        // Allocation-table pages: mapped exactly when in use.
        let mut bits_mapped = 0;
        let mut allocated = 0;
        for j in 0..l.bit_pages {
            let mapped = self.vm_mapped(l.bit_page(j));
            let (lo, hi) = l.tracts_of_bit_page(j);
            let n = self.count_alloc(lo, hi);
            bits_mapped += usize::from(mapped);
            allocated += n;
            if mapped && n == 0 && !self.stale {
                return Err(bad("an allocation-table page is mapped but unused"));
            }
            if mapped && self.count_alloc(lo, lo + l.per_bit_page) != n {
                return Err(bad("a bit is set beyond the last tract"));
            }
        }
        if bits_mapped != self.bits_mapped {
            return Err(bad("mapped allocation-table page count is wrong"));
        }
        if allocated != self.allocated {
            return Err(bad("allocated tract count differs from the bits"));
        }
        // Page-table pages: mapped exactly when in use; descriptors agree.
        let mut table_mapped = 0;
        for k in 0..l.table_pages {
            let mapped = self.vm_mapped(l.table_page(k));
            let used = self.table_page_in_use(k);
            table_mapped += usize::from(mapped);
            if used && !mapped {
                return Err(bad("a page-table page in use is not mapped"));
            }
            if mapped && !used && !self.stale {
                return Err(bad("a page-table page is mapped but unused"));
            }
            if mapped {
                self.check_descriptors(k)?;
            }
        }
        if table_mapped != self.table_mapped {
            return Err(bad("mapped page-table page count is wrong"));
        }
        // Committed memory: allocated tracts, spare tracts and table pages.
        let committed_pages = self.vm.mapped().0 >> l.page_shift;
        if committed_pages != self.allocated + self.spare + self.table_mapped + self.bits_mapped {
            return Err(bad("committed pages differ from allocated + spare + tables"));
        }
        if self.vm.mapped() > self.commit_limit {
            return Err(bad("committed memory exceeds the commit limit"));
        }
        // Only a rollback's failed unmap leaves more spare than the bound,
        // and it marks the spare pages unsure until none is spare.
        if self.spare > self.spare_limit && !self.spare_unsure {
            return Err(bad("more spare pages than the spare bound"));
        }
        Ok(())
    }

    /// Check the descriptors of the mapped page-table page `k`.
    fn check_descriptors(&self, k: usize) -> Result<(), VmArenaError> {
        let bad = |what| VmArenaError::Common(CommonError::Corrupt(what));
        let (lo, hi) = self.layout.tracts_of_table_page(k);
        for i in lo..hi {
            let d = self.desc(i).ok_or(bad("descriptor of a mapped page unreadable"))?;
            if self.is_alloc(i) {
                if d.flags != ALLOCATED || d.owner == 0 || prot_of(d.prot).is_none() {
                    return Err(bad("descriptor of an allocated tract is malformed"));
                }
                if !self.vm_mapped(i) {
                    return Err(bad("an allocated tract is not committed"));
                }
            } else if d != RawTract::default() {
                return Err(bad("descriptor of a free tract is not clear"));
            }
        }
        Ok(())
    }
}
