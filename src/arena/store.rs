//! Storage for the arena's metadata: a contiguous region that only grows.
//!
//! The boundary-tag table and the address hash each live in one [`Store`]: a
//! run of bytes at a fixed address that can be extended at its end. Two kinds
//! exist: [`PageStore`] reserves address space through the shim up front and
//! maps it one page at a time as the table grows (the normal case, also in the
//! kernel), and [`SliceStore`] serves a fixed buffer the caller hands in (for
//! bootstrap, before any page source exists, and for tests of exhaustion).

use core::marker::PhantomData;

use vmspace_shim::{align, PageOps, Range, Size};

use super::ArenaError;

/// The alignment every store's base has (enough for the tag table).
pub const STORE_ALIGN: usize = 8;

/// A growable, contiguous region of metadata memory.
///
/// # Safety
///
/// Implementors guarantee that, for as long as the store lives:
/// - [`base`](Store::base) never changes, is non-null and a multiple of
///   [`STORE_ALIGN`];
/// - the first [`committed`](Store::committed) bytes from `base` are
///   initialized, readable and writable memory that nothing but the holder of
///   the store accesses (bytes once committed stay committed and keep their
///   contents);
/// - [`grow`](Store::grow) only ever increases `committed`, and when it fails
///   `committed` is unchanged.
pub unsafe trait Store {
    /// The first byte of the region.
    fn base(&self) -> *mut u8;

    /// How many bytes from `base` are usable now.
    fn committed(&self) -> usize;

    /// Make at least `bytes` bytes usable (a no-op when they already are).
    fn grow(&mut self, bytes: usize) -> Result<(), ArenaError>;

    /// How many bytes the store could ever hold.
    fn capacity(&self) -> usize;

    /// Between batches of a long walk over the store's contents (the address
    /// hash's rehash): let the thread be rescheduled where its backing can
    /// sleep ([`PageOps::reschedule`]). The default does nothing.
    fn reschedule(&self) {}
}

/// A store over a buffer the caller provides: fixed size, never grows.
///
/// # Invariants
///
/// `[base, base + len)` lies inside a buffer borrowed mutably for `'a`, and
/// `base` is a multiple of [`STORE_ALIGN`].
pub struct SliceStore<'a> {
    base: *mut u8,
    len: usize,
    _buffer: PhantomData<&'a mut [u8]>,
}

impl<'a> SliceStore<'a> {
    /// A store over `buffer` (its start is rounded up to [`STORE_ALIGN`]).
    /// A buffer too short to reach the next multiple of it is an empty
    /// store, at an aligned base that is never read.
    pub fn new(buffer: &'a mut [u8]) -> Self {
        const { assert!(align_of::<u64>() == STORE_ALIGN) };
        let start = buffer.as_mut_ptr();
        let skip = start.align_offset(STORE_ALIGN);
        if skip > buffer.len() {
            // Rounded up, the base would lie past the buffer: nothing is
            // committed, so a dangling (aligned, non-null) base will do.
            let base = core::ptr::NonNull::<u64>::dangling().as_ptr().cast();
            return SliceStore { base, len: 0, _buffer: PhantomData };
        }
        SliceStore {
            // SAFETY: `skip <= buffer.len()`, so the pointer stays inside (or
            // one past) the buffer.
            base: unsafe { start.add(skip) },
            len: buffer.len() - skip,
            _buffer: PhantomData,
        }
    }

    /// Split `buffer` into two stores, `per_mille / 1000` of it for the
    /// first (the tag table) and the rest for the second (the hash).
    pub fn split(buffer: &'a mut [u8], per_mille: usize) -> (Self, Self) {
        let at = buffer.len() / 1000 * per_mille.min(1000);
        let (a, b) = buffer.split_at_mut(at);
        (SliceStore::new(a), SliceStore::new(b))
    }
}

// SAFETY: the buffer is borrowed mutably for 'a (so nothing else touches it),
// is initialized (it is a `[u8]`), and `len` never changes.
unsafe impl Store for SliceStore<'_> {
    fn base(&self) -> *mut u8 {
        self.base
    }
    fn committed(&self) -> usize {
        self.len
    }
    fn grow(&mut self, bytes: usize) -> Result<(), ArenaError> {
        if bytes <= self.len {
            Ok(())
        } else {
            Err(ArenaError::TagsExhausted)
        }
    }
    fn capacity(&self) -> usize {
        self.len
    }
}

/// A store in a reservation of address space, mapped page by page on demand.
///
/// # Invariants
///
/// `reservation` was returned by `ops.reserve` and is released only on drop;
/// exactly `[base, base + committed)` of it is mapped, `committed` is a
/// multiple of the page size.
pub struct PageStore<P: PageOps> {
    ops: P,
    reservation: Range,
    committed: usize,
}

impl<P: PageOps> PageStore<P> {
    /// Reserve room for `max_bytes` (rounded up to pages) through `ops`;
    /// nothing is mapped until the first [`grow`](Store::grow).
    pub fn new(ops: P, max_bytes: Size) -> Result<Self, ArenaError> {
        let page = ops.page_size();
        if max_bytes.is_zero() {
            return Err(ArenaError::InvalidArgument("store capacity is zero"));
        }
        let size = max_bytes.align_up(page)?;
        let reservation = ops.reserve(size, page)?;
        Ok(PageStore { ops, reservation, committed: 0 })
    }

    /// The backend.
    pub fn ops(&self) -> &P {
        &self.ops
    }

    /// The reserved range.
    pub fn reservation(&self) -> Range {
        self.reservation
    }
}

// SAFETY: `base` is the page-aligned start of a reservation we own (pages are
// at least 64 bytes, so it is a multiple of STORE_ALIGN); bytes below
// `committed` are mapped (zero-filled, then written only by our holder) and
// stay mapped until drop; `grow` maps before raising `committed` and changes
// nothing when the map fails.
unsafe impl<P: PageOps> Store for PageStore<P> {
    fn base(&self) -> *mut u8 {
        self.reservation.base().as_ptr()
    }
    fn committed(&self) -> usize {
        self.committed
    }
    fn grow(&mut self, bytes: usize) -> Result<(), ArenaError> {
        if bytes <= self.committed {
            return Ok(());
        }
        if bytes > self.reservation.size().get() {
            return Err(ArenaError::TagsExhausted);
        }
        let page = self.ops.page_size().get();
        let want = align::align_up(bytes, page)?;
        let base = self.reservation.base().checked_add(Size(self.committed))?;
        let more = Range::from_size(base, Size(want - self.committed))?;
        // SAFETY: `more` lies inside our live reservation (want <= its size,
        // which is page-aligned) and is not mapped (only the prefix of
        // `committed` bytes is).
        unsafe { self.ops.map(more)? };
        self.committed = want;
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.reservation.size().get()
    }
    fn reschedule(&self) {
        self.ops.reschedule()
    }
}

impl<P: PageOps> Drop for PageStore<P> {
    fn drop(&mut self) {
        // SAFETY: the reservation came from `ops.reserve` and is released once,
        // here; the store is going away, so nothing accesses it again.
        let _ = unsafe { self.ops.release(self.reservation) };
    }
}

// SAFETY: a `SliceStore` stands for a `&'a mut [u8]`, which may move between
// threads; the raw pointer is only how it is kept.
unsafe impl Send for SliceStore<'_> {}

// SAFETY: a `PageStore` owns its reservation outright; moving it moves that
// ownership, and the backend handle moves with it when `P: Send`.
unsafe impl<P: PageOps + Send> Send for PageStore<P> {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use vmspace_shim::sim::SimBackend;

    #[test]
    fn slice_store_is_fixed() {
        let mut buf = vec![0u8; 1001];
        let mut s = SliceStore::new(&mut buf[1..]);
        assert_eq!(s.base() as usize % STORE_ALIGN, 0);
        assert!(s.committed() <= 1000 && s.committed() >= 993);
        assert!(s.grow(10).is_ok());
        assert_eq!(s.grow(5000), Err(ArenaError::TagsExhausted));
        let mut buf = vec![0u8; 4000];
        let (a, b) = SliceStore::split(&mut buf, 750);
        assert!(a.committed() >= 2990 && b.committed() >= 990);
    }

    /// Every store's base is aligned (the `Store` contract), a buffer too
    /// short to reach an aligned byte included: empty, or a few bytes
    /// before the next multiple of the alignment (round 72: the base was
    /// the buffer's end, unaligned).
    #[test]
    fn a_short_buffer_is_an_empty_store_at_an_aligned_base() {
        let mut buf = vec![0u64; 4];
        let bytes = buf.len() * 8;
        // SAFETY: the u64s' bytes, initialized and borrowed mutably here.
        let buf: &mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), bytes) };
        for (lo, hi) in [(1, 4), (1, 8), (3, 3), (0, 0), (1, 9), (7, 8)] {
            let s = SliceStore::new(&mut buf[lo..hi]);
            assert_eq!(s.base() as usize % STORE_ALIGN, 0, "[{lo}, {hi})");
            assert!(!s.base().is_null());
            let want = (hi - lo).saturating_sub((STORE_ALIGN - lo % STORE_ALIGN) % STORE_ALIGN);
            assert_eq!(s.committed(), want, "[{lo}, {hi})");
        }
        assert_eq!(SliceStore::new(&mut []).committed(), 0);
        assert_eq!(SliceStore::new(&mut []).base() as usize % STORE_ALIGN, 0);
    }

    #[test]
    fn page_store_maps_on_demand() {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        {
            let mut s = PageStore::new(&sim, Size(5 * 4096)).unwrap();
            assert_eq!(s.committed(), 0);
            assert_eq!(sim.stats().mapped_pages, 0);
            s.grow(1).unwrap();
            assert_eq!(s.committed(), 4096);
            s.grow(4096 * 3 + 1).unwrap();
            assert_eq!(s.committed(), 4096 * 4);
            assert_eq!(sim.stats().mapped_pages, 4);
            assert_eq!(s.grow(4096 * 5 + 1), Err(ArenaError::TagsExhausted));
            assert_eq!(s.committed(), 4096 * 4);
            assert_eq!(s.base() as usize, s.reservation().base().get());
        }
        assert_eq!(sim.stats().reservations, 0);
    }
}
