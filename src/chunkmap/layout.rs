//! The geometry of a chunk map: space, directory and leaf pages.

use crate::error::CommonError;
use vmspace_shim::{align, Size};

use super::ChunkMapError;

/// The space a [`ChunkMap`](super::ChunkMap) covers and its chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMapConfig {
    /// Bytes of space: a non-zero multiple of the chunk size.
    pub space: Size,
    /// The chunk size: a power of two, at least the page size.
    pub chunk: Size,
}

impl ChunkMapConfig {
    /// A 47-bit space in 4 MiB chunks (MMTk's). With its tables that is
    /// more than all of x86-64's user space under 4-level paging (2^47
    /// bytes) or its vmalloc area (2^45), so [`ChunkMap::new`] fails there
    /// with the backend's error: ask for `Size(1 << 46)` in user space (as
    /// `tests/chunkmap_mmap.rs` falls back to), less in the kernel.
    ///
    /// [`ChunkMap::new`]: super::ChunkMap::new
    pub const DEFAULT: ChunkMapConfig =
        ChunkMapConfig { space: Size(1 << 47), chunk: Size(4 << 20) };

    /// `space` bytes in chunks of `chunk` bytes.
    pub const fn new(space: Size, chunk: Size) -> Self {
        ChunkMapConfig { space, chunk }
    }
}

impl Default for ChunkMapConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Derived sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) space: Size,
    pub(crate) chunk_shift: u32,
    pub(crate) page_shift: u32,
    /// log2 of the chunks per leaf page (one byte each).
    pub(crate) leaf_shift: u32,
    pub(crate) chunks: usize,
    pub(crate) leaves: usize,
    pub(crate) dir_pages: usize,
}

impl Layout {
    pub(crate) fn new(config: ChunkMapConfig, page: Size) -> Result<Layout, ChunkMapError> {
        let page_shift = align::log2_exact(page.0).ok_or(ChunkMapError::Common(
            CommonError::InvalidArgument("page size is not a power of two"),
        ))?;
        let chunk_shift = align::log2_exact(config.chunk.0).ok_or(ChunkMapError::Common(
            CommonError::InvalidArgument("chunk size is not a power of two"),
        ))?;
        if chunk_shift < page_shift {
            return Err(ChunkMapError::Common(CommonError::InvalidArgument(
                "chunk smaller than a page",
            )));
        }
        if config.space.is_zero() || !config.space.is_aligned(config.chunk) {
            return Err(ChunkMapError::Common(CommonError::InvalidArgument(
                "space must be a non-zero multiple of the chunk size",
            )));
        }
        let chunks = config.space.0 >> chunk_shift;
        let leaves = chunks.div_ceil(page.0);
        Ok(Layout {
            space: config.space,
            chunk_shift,
            page_shift,
            leaf_shift: page_shift,
            chunks,
            leaves,
            dir_pages: leaves.div_ceil(page.0),
        })
    }

    /// Bytes to reserve: space, directory, leaves.
    pub(crate) fn total(&self) -> Result<Size, ChunkMapError> {
        let meta = Size(self.dir_pages + self.leaves).checked_mul(1 << self.page_shift)?;
        Ok(self.space.checked_add(meta)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_seven_bits() {
        let l = Layout::new(ChunkMapConfig::DEFAULT, Size(4096)).unwrap();
        assert_eq!(l.chunks, 1 << 25);
        assert_eq!(l.leaves, 8192);
        assert_eq!(l.dir_pages, 2);
        assert_eq!(l.total().unwrap().0, (1 << 47) + 8194 * 4096);
        let bad = |s, c| Layout::new(ChunkMapConfig::new(Size(s), Size(c)), Size(4096)).is_err();
        assert!(bad(0, 4096) && bad(4096, 2048) && bad(3 << 20, 2 << 20) && bad(4096, 3000));
    }
}
