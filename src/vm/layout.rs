//! Where a VM puts its pages: the client region, then the mapped-state table.
//!
//! ```text
//! base                 limit
//! | client pages ...   | summary pages | bit-table pages |
//! ```
//!
//! The bit table has one bit per client page (set = mapped); it is mapped one
//! page at a time on demand. The summary has one `u32` per bit-table page (a
//! mapped flag and the number of set bits in that page) and is mapped when the
//! VM is created; in user space that costs no memory until it is first written.

use crate::error::CommonError;
use vmspace_shim::{align, Size};

use super::VmError;

/// The sizes of a VM's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes of client space: the requested size rounded up to the grain.
    pub(crate) client: Size,
    /// Pages of client space.
    pub(crate) client_pages: usize,
    /// Pages holding the summary.
    pub(crate) summary_pages: usize,
    /// Pages holding the bit table.
    pub(crate) table_pages: usize,
    /// Bytes to reserve in all.
    pub(crate) total: Size,
}

/// Bytes of summary per bit-table page.
pub(crate) const SUMMARY_ENTRY: usize = core::mem::size_of::<u32>();

impl Layout {
    /// The layout for `size` bytes of client space in grains of `grain`, with
    /// pages of `page` bytes.
    pub(crate) fn new(size: Size, grain: Size, page: Size) -> Result<Layout, VmError> {
        if size.is_zero() {
            return Err(VmError::Common(CommonError::InvalidArgument("VM size is zero")));
        }
        if !grain.is_power_of_two() || grain < page {
            return Err(VmError::Common(CommonError::InvalidArgument(
                "grain must be a power of two no smaller than the page size",
            )));
        }
        let client = size.align_up(grain)?;
        let client_pages = client.0 / page.0;
        let bits_per_page = page.0.checked_mul(8).ok_or(VmError::Common(CommonError::Overflow))?;
        let table_pages = client_pages.div_ceil(bits_per_page);
        let summary_bytes =
            table_pages.checked_mul(SUMMARY_ENTRY).ok_or(VmError::Common(CommonError::Overflow))?;
        let summary_pages = summary_bytes.div_ceil(page.0);
        let meta = Size(summary_pages + table_pages).checked_mul(page.0)?;
        let total = client.checked_add(meta)?;
        debug_assert!(align::is_aligned(total.0, page.0));
        Ok(Layout { client, client_pages, summary_pages, table_pages, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Size = Size(4096);

    #[test]
    fn one_tebibyte() {
        let l = Layout::new(Size(1 << 40), PAGE, PAGE).unwrap();
        assert_eq!(l.client_pages, 1 << 28);
        assert_eq!(l.table_pages, (1 << 28) / (4096 * 8));
        assert_eq!(l.summary_pages, 8);
        // Metadata reserved (not mapped) is 1/32768 of the space plus the summary.
        assert_eq!(l.total.0 - l.client.0, (8 + 8192) * 4096);
    }

    #[test]
    fn rounds_to_grain_and_rejects_bad_arguments() {
        let l = Layout::new(Size(1), Size(1 << 16), PAGE).unwrap();
        assert_eq!(l.client, Size(1 << 16));
        assert_eq!((l.table_pages, l.summary_pages), (1, 1));
        assert!(Layout::new(Size(0), PAGE, PAGE).is_err());
        assert!(Layout::new(Size(4096), Size(2048), PAGE).is_err());
        assert!(Layout::new(Size(4096), Size(3 * 4096), PAGE).is_err());
        assert_eq!(
            Layout::new(Size(usize::MAX - 4095), PAGE, PAGE),
            Err(VmError::Common(CommonError::Overflow))
        );
    }
}
