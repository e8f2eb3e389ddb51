//! The chunk map (after MMTk's mapper): per-chunk map state for a very large,
//! sparse address space, with lock-free lookup.
//!
//! A [`ChunkMap`] reserves its *space* (by default 2^47 bytes in 4 MiB
//! chunks, which x86-64's 4-level user space cannot hold with the tables:
//! see [`ChunkMapConfig::DEFAULT`]; anything the backend can reserve) and records for every chunk
//! whether it is [unmapped, quarantined, mapped or
//! protected](ChunkState). The record is a two-level table in the same
//! reservation, past the space: a *directory* with one byte per *leaf*
//! page, mapped when the map is made, and leaf pages with one byte per
//! chunk, each mapped the first time one of its chunks leaves the unmapped
//! state. A 2^47-byte space of 4 MiB chunks has 32 Mi chunks in 8192 leaf
//! pages of 4 KiB, and a directory of two pages.
//!
//! - [`ensure_mapped`](ChunkMap::ensure_mapped) maps only the chunks of a
//!   range that are not mapped, and is safe when threads race on the same
//!   chunks: each chunk is mapped once. A thread claims every chunk it
//!   changes (leaf pages first, then chunks, in address order, so claims
//!   never deadlock), makes the backend calls (one per run of contiguous
//!   chunks), then publishes the new states; threads needing a claimed
//!   chunk wait for it. A backend that panics mid-operation leaves the
//!   chunks that operation claimed claimed for good (`check()` reports
//!   the claim; a thread needing one of them waits for ever): a map whose
//!   backend panicked is to be dropped, not used again.
//! - [`quarantine`](ChunkMap::quarantine), [`protect`](ChunkMap::protect),
//!   [`unprotect`](ChunkMap::unprotect) work the same way;
//!   [`unmap`](ChunkMap::unmap) and [`trim`](ChunkMap::trim) need exclusive
//!   access.
//! - [`is_mapped`](ChunkMap::is_mapped) is two atomic loads and no lock.
//! - A failing operation leaves every chunk as it was, and its error names
//!   the address and size of the failed call. The one exception is a
//!   second backend failure while undoing the first
//!   ([`ChunkMapError::RollbackFailed`], whose `lost` range holds every
//!   chunk that may have changed): the chunks it could not restore are
//!   recorded in the state the backend left them in, or, where a protect
//!   left their pages mixed, protected (never more open than the pages
//!   are).
//!
//! ```
//! use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
//! use vmspace_shim::{sim::SimBackend, Addr, Range, Size};
//!
//! let mut buffer = vec![0u8; 2 << 20];
//! let sim = SimBackend::new(&mut buffer, 4096).unwrap();
//! let map = ChunkMap::new(&sim, ChunkMapConfig::new(Size(1 << 20), Size(64 << 10))).unwrap();
//! let r = Range::from_size(Addr(map.space().base().0 + 100), Size(70 << 10)).unwrap();
//! map.ensure_mapped(r).unwrap(); // the two chunks it touches
//! assert!(map.is_mapped(r.base()) && map.is_mapped(Addr(r.base().0 + (100 << 10))));
//! assert_eq!(map.state(Addr(r.base().0 + (200 << 10))), Some(ChunkState::Unmapped));
//! map.ensure_mapped(r).unwrap(); // nothing to do
//! assert_eq!(map.committed_chunks(), 2);
//! map.check().unwrap();
//! ```

mod check;
mod claim;
mod error;
mod layout;
mod ops;
mod state;

#[cfg(test)]
mod tests;

use crate::atomic::{atomic_u8, AtomicU8, AtomicUsize, Ordering};
use crate::error::CommonError;

use vmspace_shim::{Addr, PageOps, Range, Size};

pub use error::ChunkMapError;
pub use layout::ChunkMapConfig;
use layout::Layout;
pub use state::ChunkState;
use state::{LEAF_PRESENT, STATE};

/// What `is_mapped` needs, precomputed and together.
///
/// # Invariants
///
/// `base` and `space` are the space's base and size; the chunk at offset
/// `off` is `c = off >> chunk_shift`, byte `c` from `leaves`, and byte `c >>
/// leaf_shift` of the directory at `dir` describes its leaf. (Two shifts,
/// each below the word's width: their sum may reach it, with large pages
/// and chunks, where one shift by the sum would wrap.)
#[derive(Debug, Clone, Copy)]
struct Lookup {
    base: usize,
    space: usize,
    chunk_shift: u32,
    leaf_shift: u32,
    dir: usize,
    leaves: usize,
}

/// A copy of a chunk map's lookup geometry, for many
/// [`is_mapped`](MapLookup::is_mapped) queries in a row: held in locals,
/// the geometry stays in registers instead of being reloaded after each
/// query's atomic loads. Get one from [`ChunkMap::lookup`].
#[derive(Debug, Clone, Copy)]
pub struct MapLookup<'a> {
    hot: Lookup,
    _map: core::marker::PhantomData<&'a ()>,
}

impl MapLookup<'_> {
    /// Whether the chunk holding `addr` is mapped read-write: two atomic
    /// loads, no lock. `false` outside the space.
    #[inline]
    pub fn is_mapped(&self, addr: Addr) -> bool {
        let h = &self.hot;
        let off = addr.0.wrapping_sub(h.base);
        if off >= h.space {
            return false;
        }
        let c = off >> h.chunk_shift;
        // SAFETY: `off < space`, so `c` is a chunk and the byte is in the
        // directory, mapped for the map's lifetime (which the borrow `'_` is
        // within) and only accessed atomically.
        let dir = unsafe { atomic_u8(Addr(h.dir + (c >> h.leaf_shift)).as_ptr()) };
        if dir.load(Ordering::Acquire) != LEAF_PRESENT {
            return false;
        }
        // SAFETY: the chunk's leaf is present, and stays mapped while the map
        // is borrowed (leaves are unmapped only through `&mut`).
        let byte = unsafe { atomic_u8(Addr(h.leaves + c).as_ptr()) };
        byte.load(Ordering::Acquire) & STATE == state::MAPPED
    }
}

/// Per-chunk map state over a reserved space.
///
/// # Invariants
///
/// - `reservation` is a live reservation of `ops`, released by `Drop`; the
///   space is its front, then `layout.dir_pages` directory pages (mapped
///   for the map's lifetime), then `layout.leaves` leaf pages.
/// - Directory byte `l` is `LEAF_PRESENT` exactly when leaf page `l` is
///   mapped and its bytes are the chunks' states; `LEAF_BUSY` while one
///   thread maps it, and then only that thread touches the leaf's entries.
/// - A chunk byte with `BUSY` is owned by one thread between its claim and
///   its publication; otherwise it is the chunk's state, and the chunk's
///   pages are committed exactly when that state is mapped or protected,
///   with read-write access exactly when it is mapped.
/// - Leaf pages are unmapped only through `&mut self`, so a shared
///   reference may read any present leaf.
/// - `committed` counts committed chunks, `leaves_present` present leaves,
///   whenever no operation is in progress.
#[derive(Debug)]
pub struct ChunkMap<P: PageOps> {
    hot: Lookup,
    ops: P,
    reservation: Range,
    layout: Layout,
    committed: AtomicUsize,
    leaves_present: AtomicUsize,
}

impl<P: PageOps> ChunkMap<P> {
    /// Reserve the space `config` describes, aligned to the chunk size, and
    /// map the directory. Nothing else is committed.
    pub fn new(ops: P, config: ChunkMapConfig) -> Result<Self, ChunkMapError> {
        let layout = Layout::new(config, ops.page_size())?;
        let total = layout.total()?;
        // A failed reserve names the size asked for, at no address.
        let asked = Range::from_size(Addr::NULL, total).unwrap_or(Range::empty(Addr::NULL));
        let reservation = ops.reserve(total, config.chunk).map_err(|error| {
            ChunkMapError::Backend { op: vmspace_shim::Op::Reserve, range: asked, error }
        })?;
        let base = reservation.base().0;
        let dir = base + layout.space.0;
        let hot = Lookup {
            base,
            space: layout.space.0,
            chunk_shift: layout.chunk_shift,
            leaf_shift: layout.leaf_shift,
            dir,
            leaves: dir + (layout.dir_pages << layout.page_shift),
        };
        let map = ChunkMap {
            hot,
            ops,
            reservation,
            layout,
            committed: AtomicUsize::new(0),
            leaves_present: AtomicUsize::new(0),
        };
        let dir = map.dir_range();
        // SAFETY: the directory lies in the reservation just made, unmapped.
        if let Err(error) = unsafe { map.ops.map(dir) } {
            // Drop releases the reservation.
            return Err(ChunkMapError::Backend { op: vmspace_shim::Op::Map, range: dir, error });
        }
        Ok(map)
    }

    /// The space whose chunks the map records: chunk-aligned.
    pub fn space(&self) -> Range {
        Range::from_size(self.reservation.base(), self.layout.space)
            .unwrap_or(Range::empty(self.reservation.base()))
    }

    /// The whole reservation, tables included.
    pub fn reservation(&self) -> Range {
        self.reservation
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> Size {
        Size(1 << self.layout.chunk_shift)
    }

    /// The number of chunks in the space.
    pub fn chunks(&self) -> usize {
        self.layout.chunks
    }

    /// The backend.
    pub fn ops(&self) -> &P {
        &self.ops
    }

    /// Chunks committed (mapped or protected).
    pub fn committed_chunks(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Leaf pages mapped.
    pub fn leaves_present(&self) -> usize {
        self.leaves_present.load(Ordering::Relaxed)
    }

    /// Bytes of table mapped: the directory and the present leaves.
    pub fn metadata_mapped(&self) -> Size {
        Size((self.layout.dir_pages + self.leaves_present()) << self.layout.page_shift)
    }

    fn dir_range(&self) -> Range {
        let base = Addr(self.reservation.base().0 + self.layout.space.0);
        Range::from_size(base, Size(self.layout.dir_pages << self.layout.page_shift))
            .unwrap_or(Range::empty(base))
    }

    /// The address of directory byte 0; leaf bytes follow the directory.
    fn dir_base(&self) -> usize {
        self.reservation.base().0 + self.layout.space.0
    }

    /// The address of chunk byte 0 (leaf pages are contiguous).
    fn leaf_base(&self) -> usize {
        self.dir_base() + (self.layout.dir_pages << self.layout.page_shift)
    }

    /// Directory byte `l`, for `l < leaves`.
    fn dir(&self, l: usize) -> &AtomicU8 {
        debug_assert!(l < self.layout.leaves);
        // SAFETY: the directory is mapped for the map's lifetime (type
        // invariant) and `l < leaves` keeps the byte inside it; it is only
        // ever accessed atomically.
        unsafe { atomic_u8(Addr(self.dir_base() + l).as_ptr()) }
    }

    /// Chunk byte `c`.
    ///
    /// # Safety
    ///
    /// The leaf page holding byte `c` (`c >> leaf_shift < leaves`) is mapped
    /// for as long as the reference lives: present (and `&self` borrowed), or claimed and mapped
    /// by the caller.
    unsafe fn entry(&self, c: usize) -> &AtomicU8 {
        // SAFETY: the caller guarantees the byte is in a mapped leaf page of
        // our reservation; chunk bytes are only accessed atomically.
        unsafe { atomic_u8(Addr(self.leaf_base() + c).as_ptr()) }
    }

    /// The chunk index of `addr`, if it is in the space.
    fn chunk_of(&self, addr: Addr) -> Option<usize> {
        let off = addr.0.wrapping_sub(self.reservation.base().0);
        (off < self.layout.space.0).then_some(off >> self.layout.chunk_shift)
    }

    /// The state byte of chunk `c` (`< chunks`), if its leaf is present.
    fn load(&self, c: usize) -> Option<u8> {
        if self.dir(c >> self.layout.leaf_shift).load(Ordering::Acquire) != LEAF_PRESENT {
            return None;
        }
        // SAFETY: `c < chunks`; the leaf is present, and stays mapped while
        // `&self` is borrowed (leaves are unmapped only through `&mut self`).
        Some(unsafe { self.entry(c) }.load(Ordering::Acquire))
    }

    /// Whether the chunk holding `addr` is mapped read-write: two atomic
    /// loads, no lock. `false` outside the space.
    #[inline]
    pub fn is_mapped(&self, addr: Addr) -> bool {
        self.lookup().is_mapped(addr)
    }

    /// The lookup geometry, for many [`is_mapped`](MapLookup::is_mapped)
    /// queries in a row.
    #[inline]
    pub fn lookup(&self) -> MapLookup<'_> {
        MapLookup { hot: self.hot, _map: core::marker::PhantomData }
    }

    /// The state of the chunk holding `addr` (`None` outside the space). A
    /// chunk being changed reports the state it had.
    pub fn state(&self, addr: Addr) -> Option<ChunkState> {
        let c = self.chunk_of(addr)?;
        match self.load(c) {
            None => Some(ChunkState::Unmapped),
            Some(s) => ChunkState::from_byte(s & STATE),
        }
    }

    /// Chunk indices `[c0, c1)` covering `range` (non-empty, inside the
    /// space), rounded out to chunks, or exactly when `exact`.
    fn chunk_indices(&self, range: Range, exact: bool) -> Result<(usize, usize), ChunkMapError> {
        if range.is_empty() {
            return Err(ChunkMapError::Common(CommonError::InvalidArgument("empty range")));
        }
        if exact {
            for a in [range.base(), range.limit()] {
                if !a.is_aligned(self.chunk_size()) {
                    return Err(ChunkMapError::Common(CommonError::Misaligned {
                        value: a.0,
                        align: self.chunk_size().0,
                    }));
                }
            }
        }
        if !self.space().contains(&range) {
            return Err(ChunkMapError::Common(CommonError::OutOfRange(range)));
        }
        let base = self.reservation.base().0;
        let shift = self.layout.chunk_shift;
        let c0 = (range.base().0 - base) >> shift;
        let c1 = ((range.limit().0 - base - 1) >> shift) + 1;
        Ok((c0, c1))
    }

    /// Chunks `[c0, c1)` as a byte range.
    fn chunk_range(&self, c0: usize, c1: usize) -> Range {
        let a = Addr(self.reservation.base().0 + (c0 << self.layout.chunk_shift));
        Range::from_size(a, Size((c1 - c0) << self.layout.chunk_shift)).unwrap_or(Range::empty(a))
    }

    /// Leaf page `l` as a range.
    fn leaf_range(&self, l: usize) -> Range {
        let a = Addr(self.leaf_base() + (l << self.layout.page_shift));
        Range::from_size(a, Size(1 << self.layout.page_shift)).unwrap_or(Range::empty(a))
    }
}

impl<P: PageOps> Drop for ChunkMap<P> {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours and live; nothing refers into it
        // after the map is gone (shared references cannot outlive it).
        let _ = unsafe { self.ops.release(self.reservation) };
    }
}
