//! Round 28 (outside reviewer): `resident_in`'s edges: empty ranges,
//! unaligned ranges, ranges near the top of the address space. This
//! binary's tests run one at a time (`serial`).

mod child_reexec;
mod outside_r28_mmap_common;

use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::procfs::resident_in;
use vmspace_user::{MmapBackend, UnmapStrategy};

use outside_r28_mmap_common::{r, serial};

/// `resident_in` counts "the pages overlapping `range`"; an empty range
/// overlaps no page (`Range::overlaps`), so it holds nothing resident.
#[test]
fn resident_in_empty_unaligned_range_is_zero() {
    let _serial = serial();
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(4 * p), Size(p)).unwrap();
    // SAFETY: ours, mapped before written.
    unsafe {
        be.map(x).unwrap();
        std::ptr::write_bytes(x.base().as_ptr::<u8>(), 1, 4 * p);
    }
    let aligned = resident_in(Range::empty(Addr(x.base().0 + p))).unwrap();
    let unaligned = resident_in(Range::empty(Addr(x.base().0 + p + 8))).unwrap();
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(aligned, Size(0), "empty aligned range");
    assert_eq!(unaligned, Size(0), "empty unaligned range inside a resident page");
}

/// Unaligned ranges: one byte at the end of one page and the start of the
/// next count both pages; a range spanning a hole falls back to smaps
/// (documented) and counts at least the resident pages; a range near the
/// top of the address space does not panic.
#[test]
fn resident_in_edges() {
    let _serial = serial();
    let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
    let p = be.page_size().0;
    let x = be.reserve(Size(8 * p), Size(p)).unwrap();
    // SAFETY: ours, mapped before written.
    unsafe {
        be.map(r(x.base().0, 2 * p)).unwrap();
        std::ptr::write_bytes(x.base().as_ptr::<u8>(), 1, 2 * p);
    }
    let two = resident_in(r(x.base().0 + p - 1, 2)).unwrap();
    let one = resident_in(r(x.base().0 + p - 1, 1)).unwrap();
    let none = resident_in(r(x.base().0 + 2 * p + 1, 3 * p)).unwrap();
    let top = resident_in(r(usize::MAX - 10, 10)).unwrap();
    let top2 = resident_in(Range::new(Addr(usize::MAX - p), Addr(usize::MAX)).unwrap()).unwrap();
    // SAFETY: ours.
    unsafe { be.release(x) }.unwrap();
    assert_eq!(two, Size(2 * p));
    assert_eq!(one, Size(p));
    assert_eq!(none, Size(0));
    assert_eq!(top, Size(0));
    assert_eq!(top2, Size(0));
}
