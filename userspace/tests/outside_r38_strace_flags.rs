//! Outside review, round 38: `vmspace import-strace` reading flags as
//! names and as numbers (round 36b's `has_flag`).
//!
//! Contract (userspace/src/cli/help.rs:57-74, `vmspace help
//! import-strace`): "MAP_FIXED mappings inside live ones replace pages
//! without changing the address space (a comment says so); elsewhere they
//! become new allocations." ... "mremap(A, OLD, NEW) ... with
//! MREMAP_DONTUNMAP alloc ID NEW (a new ID: the old mapping stays
//! mapped)" ... "Accepts ... flags by name or as numbers (-X raw, -X
//! verbose)".

mod strace_import;
use strace_import::{import, ops, replays_cleanly};

const MAP: &str = "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) \
                   = 0x7f0000000000\n";

/// A mapping, then a MAP_FIXED mmap of its second page written with
/// `flags`, then the unmap of both pages.
fn fixed_inside(flags: &str) -> String {
    format!(
        "{MAP}mmap(0x7f0000001000, 4096, PROT_READ, {flags}, -1, 0) = 0x7f0000001000\n\
         munmap(0x7f0000000000, 8192) = 0\n"
    )
}

/// Every spelling strace uses (and odd spacing) of flags with MAP_FIXED:
/// a comment, the mapping unchanged (help.rs:69-70).
#[test]
fn map_fixed_in_every_spelling_is_a_replacement() {
    for flags in [
        "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS",
        "0x32",
        "50",
        "0x32 /* MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS */",
        "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT",
        "0x54040032",
        "0x54040032 /* MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT */",
        "MAP_PRIVATE|MAP_ANONYMOUS|0x8000000|MAP_FIXED",
        " MAP_PRIVATE | MAP_FIXED ",
        "MAP_SHARED|0x10",
    ] {
        let t = import(&fixed_inside(flags));
        assert_eq!(ops(&t)[1..], ["alloc m0 0x2000", "free m0"], "{flags:?}\n{t}");
        assert!(t.contains("MAP_FIXED inside live mappings"), "{flags:?}\n{t}");
        replays_cleanly(&t);
    }
}

/// Flags without MAP_FIXED, however spelt (huge-page shifts whose number
/// holds 0x10 in its shifted form only, unknown bits, NOREPLACE): a new
/// mapping over the old page (unmapped first), not a replacement.
#[test]
fn flags_without_map_fixed_are_new_allocations() {
    for flags in [
        "MAP_PRIVATE|MAP_ANONYMOUS",
        "0x22",
        "34",
        "0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */",
        "MAP_PRIVATE|MAP_FIXED_NOREPLACE",
        "0x100022",
        "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|16<<MAP_HUGE_SHIFT",
        "0x40040022",
        "MAP_PRIVATE|0x40000",
        "MAP_FIXEDX",
        "MAP_FIXED_",
        "0x_10",
        "3_4",
    ] {
        let t = import(&fixed_inside(flags));
        assert!(!t.contains("MAP_FIXED inside live mappings"), "{flags:?}\n{t}");
        let o = ops(&t);
        assert!(o.iter().any(|l| l == "alloc m1 0x1000"), "{flags:?}\n{t}");
        replays_cleanly(&t);
    }
}

/// `mremap` with MREMAP_DONTUNMAP written by name, raw and verbose: a new
/// ID, the old one stays (help.rs:58-60); without it (MAYMOVE alone,
/// MREMAP_FIXED), a resize.
#[test]
fn mremap_dontunmap_in_every_spelling() {
    let remap = |flags: &str| {
        format!(
            "{MAP}mremap(0x7f0000000000, 8192, 8192, {flags}, 0x7f0000100000) = 0x7f0000100000\n"
        )
    };
    for flags in [
        "MREMAP_MAYMOVE|MREMAP_DONTUNMAP",
        "0x5",
        "5",
        "0x5 /* MREMAP_MAYMOVE|MREMAP_DONTUNMAP */",
        "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP",
        "0x7",
        "MREMAP_MAYMOVE|0x4",
    ] {
        let t = import(&remap(flags));
        assert_eq!(ops(&t)[1..], ["alloc m0 0x2000", "alloc m1 0x2000"], "{flags:?}\n{t}");
        replays_cleanly(&t);
    }
    for flags in
        ["MREMAP_MAYMOVE|MREMAP_FIXED", "0x3", "3", "0x3 /* MREMAP_MAYMOVE|MREMAP_FIXED */"]
    {
        let t = import(&remap(flags));
        assert_eq!(ops(&t)[1..], ["alloc m0 0x2000", "resize m0 0x2000"], "{flags:?}\n{t}");
        replays_cleanly(&t);
    }
}
