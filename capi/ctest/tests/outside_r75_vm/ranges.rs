//! Bad ranges, contents, many VMs at once, destroy with pages mapped.

use super::*;

// ---------------------------------------------------------------------------
// Bad ranges: the documented errno, and nothing changes.

#[test]
fn every_bad_range_is_refused_and_changes_nothing() {
    let page = os_page();
    let vm = create(64 * page, 0);
    let (b, s, ..) = info(vm);
    let limit = b + s;
    // Pages 4..8 and 20 mapped and written.
    assert_eq!(map(vm, b + 4 * page, 4 * page), 0);
    assert_eq!(map(vm, b + 20 * page, page), 0);
    fill(b + 4 * page, 4 * page, 0xc3);
    fill(b + 20 * page, page, 0x3c);
    let before = info(vm);
    let states = page_states(vm, 64);
    let same = |what: &str| {
        assert_eq!(info(vm), before, "info changed after {what}");
        assert_eq!(page_states(vm, 64), states, "mapped pages changed after {what}");
        assert!(all(b + 4 * page, 4 * page, 0xc3), "contents changed after {what}");
        assert!(all(b + 20 * page, page, 0x3c), "contents changed after {what}");
        assert_eq!(check(vm), 0, "check after {what}");
    };
    // (addr, size, errno for map, for unmap, for mapped)
    let cases: Vec<(usize, usize, c_int, c_int, c_int, &str)> = vec![
        (b, 0, -EINVAL, -EINVAL, -EINVAL, "size 0"),
        (b + 30 * page, 0, -EINVAL, -EINVAL, -EINVAL, "size 0 inside"),
        (b + 1, page, -EINVAL, -EINVAL, -EINVAL, "misaligned addr"),
        (b, page + 1, -EINVAL, -EINVAL, -EINVAL, "misaligned size"),
        (b, 1, -EINVAL, -EINVAL, -EINVAL, "size 1"),
        (b + page / 2, page / 2, -EINVAL, -EINVAL, -EINVAL, "half pages"),
        (b - page, page, -ERANGE, -ERANGE, -ERANGE, "below base"),
        (b - page, 2 * page, -ERANGE, -ERANGE, -ERANGE, "straddling base"),
        (limit, page, -ERANGE, -ERANGE, -ERANGE, "at the limit (bookkeeping)"),
        (limit - page, 2 * page, -ERANGE, -ERANGE, -ERANGE, "straddling the limit"),
        (b, s + page, -ERANGE, -ERANGE, -ERANGE, "the VM and one page more"),
        (0, page, -ERANGE, -ERANGE, -ERANGE, "page 0"),
        (usize::MAX - page + 1 - page, page, -ERANGE, -ERANGE, -ERANGE, "near the top"),
        (usize::MAX - page + 1, page, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "end at 2^64"),
        (b, usize::MAX - page + 1, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "huge size"),
        (b + 30 * page, usize::MAX - page + 1, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "huge size 2"),
        // A mapped page in the range / an unmapped page in the range.
        (b + 2 * page, 4 * page, -EEXIST, -ENOENT, 0, "overlapping the run's start"),
        (b + 7 * page, 2 * page, -EEXIST, -ENOENT, 0, "overlapping the run's end"),
        (b, 64 * page, -EEXIST, -ENOENT, 0, "the whole VM"),
        (b + 19 * page, 3 * page, -EEXIST, -ENOENT, 0, "around page 20"),
        (b + 4 * page, 4 * page, -EEXIST, 1, 1, "exactly the run (map only)"),
        (b + 30 * page, 2 * page, 0, -ENOENT, 0, "unmapped (unmap only)"),
    ];
    for &(addr, size, emap, eunmap, emapped, what) in &cases {
        if emap != 0 {
            assert_eq!(map(vm, addr, size), emap, "map: {what}");
            same(what);
        }
        if eunmap != 1 {
            assert_eq!(unmap(vm, addr, size), eunmap, "unmap: {what}");
            same(what);
        }
        assert_eq!(is_mapped(vm, addr, size), emapped, "mapped: {what}");
        same(what);
    }
    destroy(vm);
}

// ---------------------------------------------------------------------------
// Contents.

#[test]
fn contents_are_zero_after_map_kept_across_calls_and_zero_after_remap() {
    let page = os_page();
    let bpp = page * 8; // client pages one bit-table page records
                        // Three bit-table pages' worth, so trims have something to give back.
    let vm = create(3 * bpp * page, 0);
    let b = base(vm);
    let a = b + 5 * page;
    assert_eq!(map(vm, a, 3 * page), 0);
    assert!(all(a, 3 * page, 0));
    fill(a, 3 * page, 0x77);
    // Other calls around it.
    let far = b + (bpp + 7) * page;
    let farther = b + (2 * bpp + 1) * page;
    assert_eq!(map(vm, far, page), 0);
    assert!(all(far, page, 0));
    fill(far, page, 0x11);
    assert_eq!(map(vm, farther, 2 * page), 0);
    assert_eq!(map(vm, a - page, page), 0);
    assert_eq!(map(vm, a + 3 * page, page), 0);
    assert!(all(a - page, page, 0) && all(a + 3 * page, page, 0));
    assert_eq!(unmap(vm, a - page, page), 0);
    assert_eq!(unmap(vm, farther, 2 * page), 0);
    assert_eq!(trim(vm), 1, "the third bit-table page records nothing now");
    assert_eq!(trim(vm), 0);
    assert_eq!(check(vm), 0);
    assert!(all(a, 3 * page, 0x77), "contents lost across other calls");
    assert!(all(far, page, 0x11));
    assert!(all(a + 3 * page, page, 0));
    // Unmap the middle page and map it again: zero; the others kept.
    assert_eq!(unmap(vm, a + page, page), 0);
    assert_eq!(map(vm, a + page, page), 0);
    assert!(all(a + page, page, 0), "a remapped page does not read zero");
    assert!(all(a, page, 0x77) && all(a + 2 * page, page, 0x77));
    // Unmap everything in that table page, trim it away, map again: zero.
    assert_eq!(unmap(vm, a, 4 * page), 0);
    assert_eq!(trim(vm), 1);
    assert_eq!(map(vm, a, 4 * page), 0);
    assert!(all(a, 4 * page, 0));
    assert!(all(far, page, 0x11));
    assert_eq!(mapped_bytes(vm), 5 * page);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn trim_with_pages_mapped_gives_back_only_empty_bookkeeping() {
    let page = os_page();
    let bpp = page * 8;
    let vm = create(4 * bpp * page, 0);
    let b = base(vm);
    let md0 = metadata(vm);
    assert_eq!(trim(vm), 0, "a fresh VM has no table page to give back");
    // One page in each of the four table pages' ranges, the first and the
    // last page of the VM among them.
    let pages = [0, bpp + 3, 2 * bpp + bpp / 2, 4 * bpp - 1];
    for (n, &i) in pages.iter().enumerate() {
        assert_eq!(map(vm, b + i * page, page), 0);
        fill(b + i * page, page, n as u8 + 1);
    }
    assert_eq!(metadata(vm), md0 + 4 * page);
    assert_eq!(trim(vm), 0, "trim gave back a table page that records mapped pages");
    assert_eq!(mapped_bytes(vm), 4 * page);
    for (n, &i) in pages.iter().enumerate() {
        assert_eq!(is_mapped(vm, b + i * page, page), 1);
        assert!(all(b + i * page, page, n as u8 + 1), "page {i} changed by trim");
    }
    assert_eq!(unmap(vm, b + pages[1] * page, page), 0);
    assert_eq!(unmap(vm, b + pages[2] * page, page), 0);
    assert_eq!(trim(vm), 2);
    assert_eq!(metadata(vm), md0 + 2 * page);
    assert_eq!(is_mapped(vm, b, page), 1);
    assert_eq!(is_mapped(vm, b + pages[3] * page, page), 1);
    assert!(all(b, page, 1) && all(b + pages[3] * page, page, 4));
    assert_eq!(check(vm), 0);
    // Unmapped pages in trimmed-away table pages read as unmapped.
    assert_eq!(is_mapped(vm, b + pages[1] * page, page), 0);
    assert_eq!(is_mapped(vm, b + bpp * page, 2 * bpp * page), 0);
    assert_eq!(unmap(vm, b + pages[2] * page, page), -ENOENT);
    destroy(vm);
}

#[test]
fn a_range_across_bit_table_pages_and_the_whole_vm() {
    let page = os_page();
    let bpp = page * 8;
    let vm = create((2 * bpp + 1) * page, 0);
    let (b, s, ..) = info(vm);
    assert_eq!(s, (2 * bpp + 1) * page);
    let md0 = metadata(vm);
    // Two pages either side of the first table-page boundary.
    let r = b + (bpp - 1) * page;
    assert_eq!(map(vm, r, 2 * page), 0);
    assert_eq!(metadata(vm), md0 + 2 * page);
    assert_eq!(is_mapped(vm, r, 2 * page), 1);
    assert_eq!(is_mapped(vm, r - page, 2 * page), 0);
    assert_eq!(is_mapped(vm, r + page, 2 * page), 0);
    assert_eq!(unmap(vm, r, 2 * page), 0);
    assert_eq!(trim(vm), 2);
    assert_eq!(metadata(vm), md0);
    // The last page alone (the only page of the third table page).
    assert_eq!(map(vm, b + s - page, page), 0);
    fill(b + s - page, page, 0xee);
    assert_eq!(unmap(vm, b + s - page, page), 0);
    // The whole VM, at once.
    assert_eq!(map(vm, b, s), 0);
    assert_eq!(mapped_bytes(vm), s);
    assert_eq!(is_mapped(vm, b, s), 1);
    assert!(all(b + s - page, page, 0));
    assert_eq!(map(vm, b + s - page, page), -EEXIST);
    assert_eq!(trim(vm), 0);
    assert_eq!(check(vm), 0);
    assert_eq!(unmap(vm, b, s), 0);
    assert_eq!(mapped_bytes(vm), 0);
    assert_eq!(is_mapped(vm, b, s), 0);
    assert_eq!(trim(vm), 3);
    assert_eq!(metadata(vm), md0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

// ---------------------------------------------------------------------------
// Many VMs.

#[test]
fn many_vms_at_once_are_disjoint_and_independent() {
    let page = os_page();
    let n = 200;
    let vms: Vec<_> =
        (0..n).map(|i| create((i % 7 + 1) * page, if i % 3 == 0 { 1 << 16 } else { 0 })).collect();
    let mut ranges: Vec<(usize, usize)> = vms
        .iter()
        .map(|&vm| {
            let (b, _, _, _, _, r, _) = info(vm);
            (b, b + r)
        })
        .collect();
    for (i, &vm) in vms.iter().enumerate() {
        let b = base(vm);
        assert_eq!(map(vm, b, page), 0);
        fill(b, page, i as u8);
    }
    for (i, &vm) in vms.iter().enumerate() {
        assert!(all(base(vm), page, i as u8), "VM {i}'s page changed");
        assert_eq!(mapped_bytes(vm), page);
        assert_eq!(check(vm), 0);
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "reservations overlap: {w:x?}");
    }
    // Destroy every other one; the rest are untouched.
    for (i, &vm) in vms.iter().enumerate() {
        if i % 2 == 0 {
            destroy(vm);
        }
    }
    for (i, &vm) in vms.iter().enumerate() {
        if i % 2 == 1 {
            assert!(all(base(vm), page, i as u8));
            assert_eq!(check(vm), 0);
            destroy(vm);
        }
    }
}

// ---------------------------------------------------------------------------
// Destroy.

/// Whether any mapping of this process overlaps `[lo, hi)`, and whether
/// mappings cover it entirely.
fn maps_over(lo: usize, hi: usize) -> (bool, bool) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut v: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|l| {
            let r = l.split_whitespace().next()?;
            let (a, b) = r.split_once('-')?;
            Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
        })
        .filter(|&(a, b)| a < hi && b > lo)
        .collect();
    v.sort_unstable();
    let mut at = lo;
    for &(a, b) in &v {
        if a > at {
            break;
        }
        at = at.max(b);
    }
    (!v.is_empty(), at >= hi)
}

#[test]
fn destroy_with_pages_mapped_releases_the_whole_reservation() {
    if !in_child("destroy_with_pages_mapped_releases_the_whole_reservation") {
        return;
    }
    let page = os_page();
    let bpp = page * 8;
    let vm = create(3 * bpp * page, 1 << 20);
    let (b, _, _, _, _, r, _) = info(vm);
    assert_eq!(map(vm, b, 5 * page), 0);
    assert_eq!(map(vm, b + (2 * bpp + 3) * page, 2 * page), 0);
    fill(b, 5 * page, 0x99);
    assert_eq!(maps_over(b, b + r), (true, true), "the reservation is not all mapped");
    destroy(vm);
    assert!(!maps_over(b, b + r).0, "destroy left part of the reservation mapped");
}
