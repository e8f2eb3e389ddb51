//! The VM's record of which client pages are mapped: a paged bit table
//! ([`PagedBits`]) kept in pages of the VM's own reservation, mapped one page
//! at a time as it is needed, plus a summary with one entry per bit-table
//! page saying whether it is mapped and how many bits it has set.

use crate::error::CommonError;
use vmspace_shim::{Addr, PageOps, Size};

use super::VmError;
use crate::bits::{self, PageMap, PagedBits};

/// Summary entry: this bit-table page is mapped.
const MAPPED: u32 = 1 << 31;
/// Summary entry: this bit-table page was mapped by the `map` in progress
/// and records nothing yet; the map's failure unmaps it again
/// ([`MapTable::unmap_fresh`]), its success clears the mark.
const FRESH: u32 = 1 << 30;
/// Summary entry: the number of set bits in the page.
const COUNT: u32 = FRESH - 1;

/// The summary: one `u32` entry per bit-table page.
///
/// # Invariants
///
/// `base` points to `pages` mapped, writable, page-aligned `u32` entries,
/// owned by the VM for its lifetime. Bit-table page `k` is mapped exactly
/// when entry `k` has [`MAPPED`]; its count is then the number of bits set
/// in the page, and zero otherwise. [`FRESH`] is set only with [`MAPPED`]
/// and a zero count, and only inside `Vm::map`.
#[derive(Debug)]
struct Summary {
    base: Addr,
    pages: usize,
}

impl Summary {
    fn entry(&self, k: usize) -> u32 {
        assert!(k < self.pages);
        // SAFETY: `k < pages`, so the entry is in the mapped summary (type
        // invariant); u32 alignment holds as the summary is page-aligned.
        unsafe { self.base.as_ptr::<u32>().add(k).read() }
    }

    fn set_entry(&mut self, k: usize, v: u32) {
        assert!(k < self.pages);
        // SAFETY: as in `entry`, and `&mut self` makes this the only access.
        unsafe { self.base.as_ptr::<u32>().add(k).write(v) }
    }
}

// SAFETY: an entry has MAPPED only while its bit-table page is mapped
// read-write in the VM's reservation, which only the VM uses (type
// invariant of `Summary`, kept by `MapTable`).
unsafe impl PageMap for Summary {
    fn page_mapped(&self, k: usize) -> bool {
        k < self.pages && self.entry(k) & MAPPED != 0
    }
}

/// The mapped-state table.
///
/// # Invariants
///
/// - `bits` has `summary.pages` pages, in the VM's reservation.
/// - `mapped_table_pages` is the number of summary entries with [`MAPPED`].
/// - `empty_table_pages` is the number of summary entries that are exactly
///   [`MAPPED`]: mapped, recording nothing, not fresh (what `trim` gives
///   back).
///
/// Every entry changes through [`set_entry`](Self::set_entry), which
/// keeps both counts.
#[derive(Debug)]
pub(crate) struct MapTable {
    summary: Summary,
    bits: PagedBits,
    mapped_table_pages: usize,
    empty_table_pages: usize,
}

impl MapTable {
    /// A table whose summary (already mapped and zeroed) is at `summary` and
    /// whose `table_pages` bit-table pages (all unmapped) start at `table`.
    pub(crate) fn new(summary: Addr, table: Addr, table_pages: usize, page: Size) -> Self {
        MapTable {
            summary: Summary { base: summary, pages: table_pages },
            bits: PagedBits::new(table, page, table_pages),
            mapped_table_pages: 0,
            empty_table_pages: 0,
        }
    }

    /// Mapped bit-table pages.
    pub(crate) fn mapped_table_pages(&self) -> usize {
        self.mapped_table_pages
    }

    /// Mapped bit-table pages that record no mapped page (outside a map in
    /// progress): what [`trim`](Self::trim) would give back now.
    pub(crate) fn empty_table_pages(&self) -> usize {
        self.empty_table_pages
    }

    /// Set summary entry `k` to `v`, keeping the two counts of entries.
    fn set_entry(&mut self, k: usize, v: u32) {
        let old = self.summary.entry(k);
        self.summary.set_entry(k, v);
        let mapped = |e: u32| usize::from(e & MAPPED != 0);
        self.mapped_table_pages = self.mapped_table_pages - mapped(old) + mapped(v);
        let empty = |e: u32| usize::from(e == MAPPED);
        self.empty_table_pages = self.empty_table_pages - empty(old) + empty(v);
    }

    /// Whether client page `i` is mapped.
    pub(crate) fn test(&self, i: usize) -> bool {
        self.bits.test(&self.summary, i)
    }

    /// The first mapped page in `[lo, hi)`.
    pub(crate) fn find_mapped(&self, lo: usize, hi: usize) -> Option<usize> {
        self.bits.find_set(&self.summary, lo, hi)
    }

    /// The first unmapped page in `[lo, hi)`.
    pub(crate) fn find_unmapped(&self, lo: usize, hi: usize) -> Option<usize> {
        self.bits.find_clear(&self.summary, lo, hi)
    }

    /// Map the bit-table pages that pages `[lo, hi)` need and do not have,
    /// marking them [`FRESH`] until [`mark_mapped`](Self::mark_mapped)
    /// records pages in them. On failure it unmaps the pages it mapped, so
    /// the table is as it was.
    pub(crate) fn ensure_table_pages<P: PageOps>(
        &mut self,
        ops: &P,
        lo: usize,
        hi: usize,
    ) -> Result<(), VmError> {
        for (k, _, _) in self.bits.pieces(lo, hi) {
            if !self.summary.page_mapped(k) {
                // SAFETY: bit-table page `k` lies in the VM's live reservation
                // and is unmapped (its summary entry says so).
                if let Err(e) = unsafe { ops.map(self.bits.page_range(k)) } {
                    self.unmap_fresh(ops, lo, hi);
                    return Err(e.into());
                }
                self.set_entry(k, MAPPED | FRESH);
            }
        }
        Ok(())
    }

    /// Unmap the bit-table pages of `[lo, hi)` still marked [`FRESH`]: a
    /// map that mapped them failed. A page whose unmap fails stays mapped,
    /// empty and counted, as `trim` would leave it.
    pub(crate) fn unmap_fresh<P: PageOps>(&mut self, ops: &P, lo: usize, hi: usize) {
        for (k, _, _) in self.bits.pieces(lo, hi) {
            if self.summary.entry(k) != MAPPED | FRESH {
                continue;
            }
            // SAFETY: page `k` was mapped by this map and records nothing,
            // so nothing reads it once its entry is cleared below.
            if unsafe { ops.unmap(self.bits.page_range(k)) }.is_ok() {
                self.set_entry(k, 0);
            } else {
                self.set_entry(k, MAPPED);
            }
        }
    }

    /// Record pages `[lo, hi)` as mapped. Their bit-table pages must be mapped
    /// ([`ensure_table_pages`](Self::ensure_table_pages)) and the bits clear;
    /// their [`FRESH`] marks are cleared.
    pub(crate) fn mark_mapped(&mut self, lo: usize, hi: usize) {
        self.mark(lo, hi, true);
    }

    /// Record pages `[lo, hi)` as unmapped; the bits must be set.
    pub(crate) fn mark_unmapped(&mut self, lo: usize, hi: usize) {
        self.mark(lo, hi, false);
    }

    fn mark(&mut self, lo: usize, hi: usize, set: bool) {
        for (k, s, e) in self.bits.pieces(lo, hi) {
            let Some(w) = self.bits.words_mut(&self.summary, k) else { continue };
            let n = (e - s) as u32;
            let count = self.summary.entry(k) & COUNT;
            let count = if set {
                bits::set_range(w, s, e);
                count + n
            } else {
                bits::clear_range(w, s, e);
                count.saturating_sub(n)
            };
            self.set_entry(k, MAPPED | count);
        }
    }

    /// Unmap bit-table pages that record no mapped page. Returns how many.
    pub(crate) fn trim<P: PageOps>(&mut self, ops: &P) -> Result<usize, VmError> {
        let mut n = 0;
        for k in 0..self.bits.pages() {
            n += self.trim_page(ops, k)?;
        }
        Ok(n)
    }

    /// [`trim`](Self::trim) only the bit-table pages recording pages
    /// `[lo, hi)`.
    pub(crate) fn trim_pages<P: PageOps>(
        &mut self,
        ops: &P,
        lo: usize,
        hi: usize,
    ) -> Result<usize, VmError> {
        let mut n = 0;
        for (k, _, _) in self.bits.pieces(lo, hi) {
            n += self.trim_page(ops, k)?;
        }
        Ok(n)
    }

    /// [`trim_pages`](Self::trim_pages), every page tried however many
    /// failed before it: a page whose unmap fails stays mapped, recording
    /// nothing. Returns the pages given back.
    pub(crate) fn trim_pages_each<P: PageOps>(&mut self, ops: &P, lo: usize, hi: usize) -> usize {
        let mut n = 0;
        for (k, _, _) in self.bits.pieces(lo, hi) {
            n += self.trim_page(ops, k).unwrap_or(0);
        }
        n
    }

    /// Unmap bit-table page `k` if it is mapped and records nothing: 1 if
    /// it did, 0 if there was nothing to do.
    fn trim_page<P: PageOps>(&mut self, ops: &P, k: usize) -> Result<usize, VmError> {
        if self.summary.entry(k) != MAPPED {
            return Ok(0);
        }
        // SAFETY: page `k` is mapped and records nothing, so nothing reads
        // it once its entry is cleared below.
        unsafe { ops.unmap(self.bits.page_range(k))? };
        self.set_entry(k, 0);
        Ok(1)
    }

    /// Verify the invariants; returns the number of mapped client pages.
    pub(crate) fn check(&self, client_pages: usize) -> Result<usize, VmError> {
        let bpp = self.bits.bits_per_page();
        let (mut pages, mut mapped_tables, mut empty_tables) = (0, 0, 0);
        for k in 0..self.bits.pages() {
            let entry = self.summary.entry(k);
            match self.bits.words(&self.summary, k) {
                None if entry != 0 => {
                    return Err(VmError::Common(CommonError::Corrupt(
                        "unmapped table page has a count",
                    )))
                }
                None => {}
                Some(w) => {
                    mapped_tables += 1;
                    empty_tables += usize::from(entry == MAPPED);
                    if entry & FRESH != 0 {
                        return Err(VmError::Common(CommonError::Corrupt(
                            "table page still marked fresh outside a map",
                        )));
                    }
                    let n = bits::count_range(w, 0, bpp);
                    if n != (entry & COUNT) as usize {
                        return Err(VmError::Common(CommonError::Corrupt(
                            "table page count differs from its bits",
                        )));
                    }
                    // Bits past the last client page must stay clear.
                    let valid = client_pages.saturating_sub(k * bpp).min(bpp);
                    if bits::any_set(w, valid, bpp) {
                        return Err(VmError::Common(CommonError::Corrupt(
                            "bit set beyond the VM's limit",
                        )));
                    }
                    pages += n;
                }
            }
        }
        if mapped_tables != self.mapped_table_pages {
            return Err(VmError::Common(CommonError::Corrupt("mapped table page count is wrong")));
        }
        if empty_tables != self.empty_table_pages {
            return Err(VmError::Common(CommonError::Corrupt("empty table page count is wrong")));
        }
        Ok(pages)
    }
}

/// Damage for `check()`'s tests (`vm::tests::check_catches_corruption`).
#[cfg(test)]
impl MapTable {
    /// Bit-table page `k`'s summary entry, changed by `f`.
    pub(super) fn damage_entry(&mut self, k: usize, f: impl FnOnce(u32) -> u32) {
        let e = self.summary.entry(k);
        self.summary.set_entry(k, f(e));
    }

    /// Mark the entry of bit-table page `k` fresh.
    pub(super) fn damage_fresh(&mut self, k: usize) {
        self.damage_entry(k, |e| e | FRESH);
    }

    /// Set bit `bit` of the mapped bit-table page `k`, and count it.
    pub(super) fn damage_bit(&mut self, k: usize, bit: usize) {
        let w = self.bits.words_mut(&self.summary, k).expect("a mapped bit-table page");
        bits::set_range(w, bit, bit + 1);
        self.damage_entry(k, |e| e + 1);
    }

    /// Count one mapped bit-table page more.
    pub(super) fn damage_table_count(&mut self) {
        self.mapped_table_pages += 1;
    }

    /// Count one empty bit-table page more.
    pub(super) fn damage_empty_count(&mut self) {
        self.empty_table_pages += 1;
    }
}
