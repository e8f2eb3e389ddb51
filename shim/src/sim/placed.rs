//! [`Placed`]: a buffer for a [`SimBackend`](super::SimBackend) that lands
//! at the same address bits on every run, at a chosen offset, so that a
//! test's outcome cannot depend on where the allocator happens to put its
//! memory; [`OFFSETS`] and [`at_offsets`] run a test at several such
//! places. (Fault-injection tests replay a sequence many times, each on a
//! fresh backend: a sequence whose placements depend on address bits would
//! otherwise make a different number of calls from run to run.)

extern crate std;

use std::alloc::{self, Layout};

/// The alignment a [`Placed`] buffer's base has before its offset: larger
/// than any alignment a test's structures ask of addresses.
pub const PLACEMENT: usize = 1 << 26;

/// Byte offsets past a [`PLACEMENT`] boundary at which tests place their
/// buffers: page multiples and odd shifts (for pages of 256 bytes and up),
/// so reservations fall at different places relative to every larger
/// alignment (grains, zones, table pages, slab alignments).
pub const OFFSETS: [usize; 8] =
    [0, 8, 256, 3 * 256 + 40, 5 * 256, 13 * 256 + 200, 31 * 256, 64 * 256 + 8];

/// A zeroed buffer of `len` bytes starting `offset` bytes past a
/// [`PLACEMENT`]-aligned address.
///
/// # Invariants
///
/// `ptr` was returned by `alloc_zeroed(layout)` and is freed only in `Drop`;
/// `offset + len <= layout.size()`.
#[derive(Debug)]
pub struct Placed {
    ptr: *mut u8,
    layout: Layout,
    offset: usize,
    len: usize,
}

impl Placed {
    /// `len` zeroed bytes at `offset` past a [`PLACEMENT`] boundary.
    ///
    /// # Panics
    ///
    /// When the allocation fails or the sizes overflow (test tooling).
    pub fn new(len: usize, offset: usize) -> Self {
        let size = offset.checked_add(len).expect("buffer size overflows").max(1);
        let layout = Layout::from_size_align(size, PLACEMENT).expect("buffer layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "no memory for a {size}-byte test buffer");
        Placed { ptr, layout, offset, len }
    }

    /// The bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `[ptr + offset, + len)` lies in the live allocation (type
        // invariant); `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(self.offset), self.len) }
    }

    /// The bytes, zeroed again (for a test that replays on one buffer).
    pub fn fresh(&mut self) -> &mut [u8] {
        let b = self.bytes();
        b.fill(0);
        b
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`, freed once here.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Run `f(offset, buffer)` with a [`Placed`] buffer of `len` bytes at each
/// of the first `count` [`OFFSETS`].
pub fn at_offsets(count: usize, len: usize, mut f: impl FnMut(usize, &mut Placed)) {
    for &off in OFFSETS.iter().take(count) {
        f(off, &mut Placed::new(len, off));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_buffers_land_at_their_offset() {
        for off in OFFSETS {
            let mut p = Placed::new(4096, off);
            let b = p.bytes();
            assert_eq!(b.as_ptr() as usize % PLACEMENT, off);
            assert!(b.iter().all(|&x| x == 0));
            b[4095] = 1;
            assert!(p.fresh().iter().all(|&x| x == 0));
        }
    }
}
