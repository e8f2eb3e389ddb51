//! [`PagedBits`]: a bit table split into pages of memory, each mapped only
//! while it is needed; a page that is not mapped reads as all clear. The VM
//! keeps its record of mapped pages in one, the VM arena its allocation
//! table; where a page's mapped state is kept is theirs to say
//! ([`PageMap`]).

use vmspace_shim::{Addr, Range, Size};

/// Which pages of a [`PagedBits`] table are mapped.
///
/// # Safety
///
/// [`page_mapped(k)`](PageMap::page_mapped) returns `true` only while page
/// `k` of the table is mapped, readable and writable memory, accessed by no
/// one but the holder of the table.
pub(crate) unsafe trait PageMap {
    /// Whether table page `k` is mapped.
    fn page_mapped(&self, k: usize) -> bool;
}

/// A bit table of `pages` pages of `page` bytes each, one after another from
/// `base`; bit `i` is bit `i % (8 * page)` of page `i / (8 * page)`.
///
/// # Invariants
///
/// `page` is a multiple of 8; `base` is aligned to it; the table's pages are
/// memory its holder owns, each mapped or not as the holder's [`PageMap`]
/// says. Whoever holds `&mut PagedBits` is the only one touching the pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PagedBits {
    base: Addr,
    page: usize,
    pages: usize,
}

impl PagedBits {
    /// The table of `pages` pages of `page` bytes (a power of two of at least
    /// 8) from `base` (aligned to `page`).
    pub(crate) fn new(base: Addr, page: Size, pages: usize) -> Self {
        debug_assert!(page.0 >= 8 && page.is_power_of_two() && base.is_aligned(page));
        PagedBits { base, page: page.0, pages }
    }

    /// Bits per page.
    #[inline]
    pub(crate) fn bits_per_page(&self) -> usize {
        self.page * 8
    }

    /// Pages in the table.
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Table page `k` as a range of addresses.
    pub(crate) fn page_range(&self, k: usize) -> Range {
        let base = Addr(self.base.0 + k * self.page);
        Range::from_size(base, Size(self.page)).unwrap_or(Range::empty(base))
    }

    /// Bits `[lo, hi)` split by table page: `(page, first bit, end bit)` with
    /// bits local to the page, pages past the table left out.
    pub(crate) fn pieces(
        &self,
        lo: usize,
        hi: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> {
        let bpp = self.bits_per_page();
        let first = lo / bpp;
        let last = if hi <= lo { first } else { ((hi - 1) / bpp + 1).min(self.pages) };
        (first..last).map(move |k| (k, lo.max(k * bpp) - k * bpp, hi.min((k + 1) * bpp) - k * bpp))
    }

    /// The words of page `k`, if it is in the table and mapped.
    #[inline]
    pub(crate) fn words(&self, map: &impl PageMap, k: usize) -> Option<&[u64]> {
        if k >= self.pages || !map.page_mapped(k) {
            return None;
        }
        // SAFETY: page `k` is mapped readable memory of the holder's (the
        // `PageMap` contract), aligned to the page (type invariant) and
        // `page / 8` words long; `&self` keeps the holder from writing it.
        Some(unsafe {
            core::slice::from_raw_parts(self.page_range(k).base().as_ptr(), self.page / 8)
        })
    }

    /// The words of page `k`, writable, if it is in the table and mapped.
    #[inline]
    pub(crate) fn words_mut(&mut self, map: &impl PageMap, k: usize) -> Option<&mut [u64]> {
        if k >= self.pages || !map.page_mapped(k) {
            return None;
        }
        // SAFETY: as in `words`; `&mut self` makes this the only access
        // (type invariant).
        Some(unsafe {
            core::slice::from_raw_parts_mut(self.page_range(k).base().as_ptr(), self.page / 8)
        })
    }

    /// Whether bit `i` is set.
    pub(crate) fn test(&self, map: &impl PageMap, i: usize) -> bool {
        let bpp = self.bits_per_page();
        self.words(map, i / bpp).is_some_and(|w| super::test(w, i % bpp))
    }

    /// The first set bit in `[lo, hi)`.
    pub(crate) fn find_set(&self, map: &impl PageMap, lo: usize, hi: usize) -> Option<usize> {
        let bpp = self.bits_per_page();
        self.pieces(lo, hi)
            .find_map(|(k, s, e)| super::find_set(self.words(map, k)?, s, e).map(|b| k * bpp + b))
    }

    /// The first clear bit in `[lo, hi)` (an unmapped page is all clear).
    pub(crate) fn find_clear(&self, map: &impl PageMap, lo: usize, hi: usize) -> Option<usize> {
        let bpp = self.bits_per_page();
        self.pieces(lo, hi).find_map(|(k, s, e)| match self.words(map, k) {
            None => Some(k * bpp + s),
            Some(w) => super::find_clear(w, s, e).map(|b| k * bpp + b),
        })
    }

    /// The number of set bits in `[lo, hi)`.
    pub(crate) fn count(&self, map: &impl PageMap, lo: usize, hi: usize) -> usize {
        self.pieces(lo, hi)
            .map(|(k, s, e)| self.words(map, k).map_or(0, |w| super::count_range(w, s, e)))
            .sum()
    }

    /// Set (`set`) or clear bits `[lo, hi)`; unmapped pages are skipped.
    pub(crate) fn assign(&mut self, map: &impl PageMap, lo: usize, hi: usize, set: bool) {
        for (k, s, e) in self.pieces(lo, hi) {
            if let Some(w) = self.words_mut(map, k) {
                if set {
                    super::set_range(w, s, e);
                } else {
                    super::clear_range(w, s, e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Pages of a buffer, mapped as a mask says.
    struct Mask(u64);

    // SAFETY: the tests map only pages that lie in their buffer.
    unsafe impl PageMap for Mask {
        fn page_mapped(&self, k: usize) -> bool {
            k < 64 && self.0 & 1 << k != 0
        }
    }

    #[test]
    fn pages_split_ranges_and_unmapped_pages_read_clear() {
        // Four pages of 16 bytes (128 bits each); pages 0 and 2 mapped. The
        // table's base is aligned to its page: a `Vec<u64>` is only aligned
        // to 8, which Miri's random addresses showed one run in two.
        #[repr(C, align(16))]
        struct Pages([u64; 8]);
        let mut buf = Pages([0; 8]);
        let base = Addr(buf.0.as_mut_ptr() as usize);
        let mut t = PagedBits::new(base, Size(16), 4);
        let map = Mask(0b0101);
        assert_eq!(
            t.pieces(100, 300).collect::<std::vec::Vec<_>>(),
            [(0, 100, 128), (1, 0, 128), (2, 0, 44)]
        );
        t.assign(&map, 100, 300, true);
        assert_eq!(t.count(&map, 0, 512), 72, "page 1 is not mapped: 28 + 44 set");
        assert!(t.test(&map, 100) && !t.test(&map, 200) && t.test(&map, 256));
        assert_eq!(t.find_set(&map, 128, 512), Some(256));
        assert_eq!(t.find_clear(&map, 100, 512), Some(128), "an unmapped page is clear");
        assert_eq!(t.find_clear(&map, 256, 300), None);
        assert_eq!(t.find_set(&map, 600, 700), None, "past the table");
        t.assign(&map, 0, 512, false);
        assert_eq!(t.count(&map, 0, 512), 0);
        assert!(!t.test(&map, 10_000));
    }
}
