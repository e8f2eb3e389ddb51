//! The VM's record of which client pages are mapped: a bit table kept in pages
//! of the VM's own reservation, mapped one page at a time as it is needed,
//! plus a summary with one entry per bit-table page.

use vmspace_shim::{Addr, PageOps, Range, Size};

use super::VmError;
use crate::bits;

/// Summary entry: this bit-table page is mapped.
const MAPPED: u32 = 1 << 31;
/// Summary entry: the number of set bits in the page.
const COUNT: u32 = MAPPED - 1;

/// The mapped-state table.
///
/// # Invariants
///
/// - `summary` points to `table_pages` mapped, writable `u32` entries, owned by
///   the VM for its lifetime.
/// - Bit-table page `k` lives at `table + k * page` and is mapped exactly when
///   summary entry `k` has [`MAPPED`]; its count is then the number of bits set
///   in the page, and zero otherwise (an unmapped page reads as all clear).
/// - `mapped_table_pages` is the number of entries with [`MAPPED`].
#[derive(Debug)]
pub(crate) struct MapTable {
    summary: Addr,
    table: Addr,
    table_pages: usize,
    page: Size,
    mapped_table_pages: usize,
}

impl MapTable {
    /// A table whose summary (already mapped and zeroed) is at `summary` and
    /// whose `table_pages` bit-table pages (all unmapped) start at `table`.
    pub(crate) fn new(summary: Addr, table: Addr, table_pages: usize, page: Size) -> Self {
        MapTable { summary, table, table_pages, page, mapped_table_pages: 0 }
    }

    fn bits_per_page(&self) -> usize {
        self.page.0 * 8
    }

    /// Mapped bit-table pages.
    pub(crate) fn mapped_table_pages(&self) -> usize {
        self.mapped_table_pages
    }

    fn entry(&self, k: usize) -> u32 {
        debug_assert!(k < self.table_pages);
        // SAFETY: `k < table_pages`, so the entry is in the mapped summary
        // (type invariant); u32 alignment holds as the summary is page-aligned.
        unsafe { self.summary.as_ptr::<u32>().add(k).read() }
    }

    fn set_entry(&mut self, k: usize, v: u32) {
        debug_assert!(k < self.table_pages);
        // SAFETY: as in `entry`, and `&mut self` makes this the only access.
        unsafe { self.summary.as_ptr::<u32>().add(k).write(v) }
    }

    fn page_range(&self, k: usize) -> Range {
        let base = Addr(self.table.0 + k * self.page.0);
        Range::from_size(base, self.page).unwrap_or(Range::empty(base))
    }

    /// The words of bit-table page `k`, if it is mapped.
    fn words(&self, k: usize) -> Option<&[u64]> {
        if self.entry(k) & MAPPED == 0 {
            return None;
        }
        // SAFETY: page `k` is mapped (its entry says so, type invariant), is
        // page-aligned, lies in the VM's reservation and holds page/8 words.
        Some(unsafe {
            core::slice::from_raw_parts(self.page_range(k).base().as_ptr(), self.page.0 / 8)
        })
    }

    fn words_mut(&mut self, k: usize) -> Option<&mut [u64]> {
        if self.entry(k) & MAPPED == 0 {
            return None;
        }
        // SAFETY: as in `words`; `&mut self` makes this the only reference.
        Some(unsafe {
            core::slice::from_raw_parts_mut(self.page_range(k).base().as_ptr(), self.page.0 / 8)
        })
    }

    /// Split client page indices `[lo, hi)` into per-table-page pieces:
    /// `(table page, first bit, last bit)` with bits local to the page.
    fn pieces(&self, lo: usize, hi: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        let bpp = self.bits_per_page();
        let first = lo / bpp;
        let last = if hi == lo { first } else { (hi - 1) / bpp + 1 };
        (first..last).map(move |k| {
            let start = core::cmp::max(lo, k * bpp) - k * bpp;
            let end = core::cmp::min(hi, (k + 1) * bpp) - k * bpp;
            (k, start, end)
        })
    }

    /// Whether client page `i` is mapped.
    pub(crate) fn test(&self, i: usize) -> bool {
        let bpp = self.bits_per_page();
        i / bpp < self.table_pages && self.words(i / bpp).is_some_and(|w| bits::test(w, i % bpp))
    }

    /// The first mapped page in `[lo, hi)`.
    pub(crate) fn find_mapped(&self, lo: usize, hi: usize) -> Option<usize> {
        let bpp = self.bits_per_page();
        self.pieces(lo, hi).find_map(|(k, s, e)| {
            let w = self.words(k)?;
            bits::find_set(w, s, e).map(|b| k * bpp + b)
        })
    }

    /// The first unmapped page in `[lo, hi)`.
    pub(crate) fn find_unmapped(&self, lo: usize, hi: usize) -> Option<usize> {
        let bpp = self.bits_per_page();
        self.pieces(lo, hi).find_map(|(k, s, e)| match self.words(k) {
            None => Some(k * bpp + s),
            Some(w) => bits::find_clear(w, s, e).map(|b| k * bpp + b),
        })
    }

    /// Map the bit-table pages that pages `[lo, hi)` need and do not have.
    /// On failure the pages mapped so far stay mapped (empty, and counted).
    pub(crate) fn ensure_table_pages<P: PageOps>(
        &mut self,
        ops: &P,
        lo: usize,
        hi: usize,
    ) -> Result<(), VmError> {
        for (k, _, _) in self.pieces(lo, hi) {
            if self.entry(k) & MAPPED == 0 {
                let r = self.page_range(k);
                // SAFETY: bit-table page `k` lies in the VM's live reservation
                // and is unmapped (its summary entry says so).
                unsafe { ops.map(r)? };
                self.set_entry(k, MAPPED);
                self.mapped_table_pages += 1;
            }
        }
        Ok(())
    }

    /// Record pages `[lo, hi)` as mapped. Their bit-table pages must be mapped
    /// ([`ensure_table_pages`](Self::ensure_table_pages)) and the bits clear.
    pub(crate) fn mark_mapped(&mut self, lo: usize, hi: usize) {
        for (k, s, e) in self.pieces(lo, hi) {
            if let Some(w) = self.words_mut(k) {
                bits::set_range(w, s, e);
                let entry = self.entry(k);
                self.set_entry(k, MAPPED | ((entry & COUNT) + (e - s) as u32));
            }
        }
    }

    /// Record pages `[lo, hi)` as unmapped; the bits must be set.
    pub(crate) fn mark_unmapped(&mut self, lo: usize, hi: usize) {
        for (k, s, e) in self.pieces(lo, hi) {
            if let Some(w) = self.words_mut(k) {
                bits::clear_range(w, s, e);
                let entry = self.entry(k);
                self.set_entry(k, MAPPED | (entry & COUNT).saturating_sub((e - s) as u32));
            }
        }
    }

    /// Unmap bit-table pages that record no mapped page. Returns how many.
    pub(crate) fn trim<P: PageOps>(&mut self, ops: &P) -> Result<usize, VmError> {
        let mut n = 0;
        for k in 0..self.table_pages {
            if self.entry(k) == MAPPED {
                // SAFETY: page `k` is mapped and records nothing, so nothing
                // reads it once its entry is cleared below.
                unsafe { ops.unmap(self.page_range(k))? };
                self.set_entry(k, 0);
                self.mapped_table_pages -= 1;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Verify the invariants; returns the number of mapped client pages.
    pub(crate) fn check(&self, client_pages: usize) -> Result<usize, VmError> {
        let bpp = self.bits_per_page();
        let (mut pages, mut mapped_tables) = (0, 0);
        for k in 0..self.table_pages {
            let entry = self.entry(k);
            match self.words(k) {
                None if entry != 0 => {
                    return Err(VmError::Corrupt("unmapped table page has a count"))
                }
                None => {}
                Some(w) => {
                    mapped_tables += 1;
                    let n = bits::count_range(w, 0, bpp);
                    if n != (entry & COUNT) as usize {
                        return Err(VmError::Corrupt("table page count differs from its bits"));
                    }
                    // Bits past the last client page must stay clear.
                    let valid = client_pages.saturating_sub(k * bpp).min(bpp);
                    if bits::any_set(w, valid, bpp) {
                        return Err(VmError::Corrupt("bit set beyond the VM's limit"));
                    }
                    pages += n;
                }
            }
        }
        if mapped_tables != self.mapped_table_pages {
            return Err(VmError::Corrupt("mapped table page count is wrong"));
        }
        Ok(pages)
    }
}
