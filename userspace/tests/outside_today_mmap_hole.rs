//! Outside review of today's `MmapBackend::map` hole report: a map of a
//! range with a hole (part of it not mapped at all) is `NotReserved`
//! naming the range, and leaves every page of the reservation as it was
//! (PROT_NONE, no new mapping); a map wholly outside any mapping likewise.

use vmspace_shim::{Addr, PageOps, Range, ShimError, Size};
use vmspace_user::MmapBackend;

/// The permissions /proc/self/maps gives the page at `a` (None: unmapped).
fn perms(a: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let span = f.next()?;
        let p = f.next()?;
        let (lo, hi) = span.split_once('-')?;
        let (lo, hi) = (usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?);
        if lo <= a && a < hi {
            return Some(p.to_string());
        }
    }
    None
}

#[test]
fn map_over_a_hole_is_not_reserved_and_changes_nothing() {
    let b = MmapBackend::new();
    let page = b.page_size().0;
    let r = b.reserve(Size(8 * page), Size(page)).unwrap();
    let base = r.base().0;
    // Punch a hole: the last four pages are given back to the kernel.
    // SAFETY: the tail of our own fresh reservation, referenced by nothing.
    assert_eq!(unsafe { libc::munmap((base + 4 * page) as *mut libc::c_void, 4 * page) }, 0);
    for (first, n) in [(2usize, 6usize), (3, 2), (0, 8)] {
        let range = Range::from_size(Addr(base + first * page), Size(n * page)).unwrap();
        // SAFETY: deliberately violates map's precondition (part of the
        // range is not reserved): the backend must detect it, not map.
        let e = unsafe { b.map(range) };
        assert_eq!(e, Err(ShimError::NotReserved(range)), "map of pages {first}..{}", first + n);
        for p in 0..4 {
            assert_eq!(perms(base + p * page).as_deref(), Some("---p"), "page {p} after {first}");
        }
        for p in 4..8 {
            assert_eq!(perms(base + p * page), None, "page {p}: the hole was mapped");
        }
    }
    // A range wholly in the hole.
    let hole = Range::from_size(Addr(base + 5 * page), Size(2 * page)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { b.map(hole) }, Err(ShimError::NotReserved(hole)));
    // The reserved part still maps.
    let ok = Range::from_size(Addr(base), Size(4 * page)).unwrap();
    // SAFETY: inside the reservation, unmapped.
    unsafe { b.map(ok) }.unwrap();
    // SAFETY: mapped just now, ours.
    unsafe { (base as *mut u8).write(1) };
    assert_eq!(perms(base).as_deref(), Some("rw-p"));
    // SAFETY: the reservation's remaining front.
    assert_eq!(unsafe { libc::munmap(base as *mut libc::c_void, 4 * page) }, 0);
}
