//! Where a VM arena puts its pages inside its one VM.
//!
//! ```text
//! vm.base
//! | tracts ... | page table (descriptors) | allocation bit table |
//! ```
//!
//! Page `i` of the tracts is described by descriptor `i` of the page table
//! and by bit `i` of the allocation table. Both tables are mapped one page
//! at a time, only while they describe at least one allocated tract.

use crate::error::CommonError;
use vmspace_shim::{align, Size};

use super::VmArenaError;

/// The bytes of one page-table descriptor.
pub(crate) const DESCRIPTOR: usize = 8;

/// The sizes of a VM arena's regions, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Pages of tracts.
    pub(crate) tracts: usize,
    /// Descriptors per page-table page.
    pub(crate) per_table_page: usize,
    /// Pages of page table.
    pub(crate) table_pages: usize,
    /// Bits per allocation-table page.
    pub(crate) per_bit_page: usize,
    /// Pages of allocation table.
    pub(crate) bit_pages: usize,
    /// log2 of the page size.
    pub(crate) page_shift: u32,
}

impl Layout {
    /// The layout for `size` bytes of tracts (rounded up to the page) with
    /// pages of `page` bytes.
    pub(crate) fn new(size: Size, page: Size) -> Result<Layout, VmArenaError> {
        if size.is_zero() {
            return Err(VmArenaError::Common(CommonError::InvalidArgument("arena size is zero")));
        }
        let page_shift = align::log2_exact(page.0).ok_or(VmArenaError::Common(
            CommonError::InvalidArgument("page size is not a power of two"),
        ))?;
        if page.0 < 64 {
            return Err(VmArenaError::Common(CommonError::InvalidArgument(
                "page size below 64 bytes",
            )));
        }
        let tracts = size.align_up(page)?.0 >> page_shift;
        let per_table_page = page.0 / DESCRIPTOR;
        let per_bit_page =
            page.0.checked_mul(8).ok_or(VmArenaError::Common(CommonError::Overflow))?;
        Ok(Layout {
            tracts,
            per_table_page,
            table_pages: tracts.div_ceil(per_table_page),
            per_bit_page,
            bit_pages: tracts.div_ceil(per_bit_page),
            page_shift,
        })
    }

    /// Pages of the VM: tracts and both tables.
    pub(crate) fn total_pages(&self) -> Result<usize, VmArenaError> {
        self.tracts
            .checked_add(self.table_pages)
            .and_then(|n| n.checked_add(self.bit_pages))
            .ok_or(VmArenaError::Common(CommonError::Overflow))
    }

    /// The VM page index of page-table page `k`.
    pub(crate) fn table_page(&self, k: usize) -> usize {
        self.tracts + k
    }

    /// The VM page index of allocation-table page `j`.
    pub(crate) fn bit_page(&self, j: usize) -> usize {
        self.tracts + self.table_pages + j
    }

    /// The page-table pages describing tracts `[lo, hi)` (non-empty).
    pub(crate) fn table_pages_of(&self, lo: usize, hi: usize) -> core::ops::Range<usize> {
        lo / self.per_table_page..(hi - 1) / self.per_table_page + 1
    }

    /// The allocation-table pages holding the bits of tracts `[lo, hi)` (non-empty).
    pub(crate) fn bit_pages_of(&self, lo: usize, hi: usize) -> core::ops::Range<usize> {
        lo / self.per_bit_page..(hi - 1) / self.per_bit_page + 1
    }

    /// The tracts page-table page `k` describes.
    pub(crate) fn tracts_of_table_page(&self, k: usize) -> (usize, usize) {
        let lo = k * self.per_table_page;
        (lo, (lo + self.per_table_page).min(self.tracts))
    }

    /// The tracts allocation-table page `j` holds bits for.
    pub(crate) fn tracts_of_bit_page(&self, j: usize) -> (usize, usize) {
        let lo = j * self.per_bit_page;
        (lo, (lo + self.per_bit_page).min(self.tracts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_gib() {
        let l = Layout::new(Size(64 << 30), Size(4096)).unwrap();
        assert_eq!(l.tracts, 1 << 24);
        assert_eq!(l.table_pages, (1 << 24) / 512);
        assert_eq!(l.bit_pages, (1 << 24) / 32768);
        assert_eq!(l.table_pages_of(511, 513), 0..2);
        assert_eq!(l.bit_pages_of(0, 1), 0..1);
        assert_eq!(l.tracts_of_table_page(1), (512, 1024));
        assert!(Layout::new(Size(0), Size(4096)).is_err());
        assert!(Layout::new(Size(1), Size(32)).is_err());
        assert_eq!(
            Layout::new(Size(usize::MAX), Size(4096)),
            Err(VmArenaError::Common(CommonError::Overflow))
        );
    }
}
