//! Outside review, round 42: the order of the operations `vmspace
//! import-strace` writes for an `mremap` that lands on another mapping
//! (`MREMAP_FIXED`), as the replay's peak sees it.

mod strace_import;
use strace_import::{import_at, json_num, run_ok};

/// (peak live bytes, end live bytes, failed operations) of the replay of
/// the import of `strace` at `page`.
fn replay(strace: &str, page: &str) -> (usize, usize, usize, String) {
    let trace = import_at(strace, page);
    let json = run_ok(&["replay", "--json", "-"], &trace);
    let peak = json_num(&json, "\"peak\"", "live_bytes");
    let end = json_num(&json, "\"end\"", "live_bytes");
    (peak, end, json_num(&json, "\"outcomes\"", "failed"), trace)
}

/// Was a DEFECT (fixed). A 4 KiB mapping moved with `MREMAP_FIXED` onto an 8 KiB one
/// (the kernel unmaps the target, then moves and grows the source to 8
/// KiB): the program never has more than 12 KiB mapped (4 + 8 before, 8
/// after). The importer writes `resize m0 0x2000` *before* `free m1`
/// (importer.rs, the `resize` branch of `mremap` emits the resize, then
/// unmaps what the destination overlaps), so the replay grows m0 while m1
/// is still live and reports a peak of 16 KiB.
///
/// Expected: help.rs:67-68, "the trace ... answers how this program's
/// mappings would pack in a vmspace arena"; help.rs (replay) "peak  the
/// most bytes live at once". The mremap's own other path (part of a
/// mapping: importer.rs "unmap, map anew") and a `MAP_FIXED` mmap over
/// live pages both free before they allocate; this one does not.
#[test]
fn mremap_fixed_onto_another_mapping_frees_it_before_growing() {
    let strace = "\
mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
mremap(0x7f0000000000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f0000100000) = 0x7f0000100000
";
    let (peak, end, failed, trace) = replay(strace, "4096");
    assert_eq!((end, failed), (8192, 0), "{trace}");
    assert_eq!(peak, 12288, "the program never had more than 12 KiB mapped:\n{trace}");
}

/// Held (contract checked): the same move done as a part of a mapping
/// (two pages of a three-page mapping) frees before it allocates, and the
/// peak is the program's.
#[test]
fn mremap_fixed_of_part_of_a_mapping_peaks_as_the_program() {
    let strace = "\
mmap(NULL, 12288, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
mremap(0x7f0000000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f0000100000) = 0x7f0000100000
";
    let (peak, end, failed, trace) = replay(strace, "4096");
    assert_eq!((peak, end, failed), (20480, 12288, 0), "{trace}");
}

/// Held (contract checked): `MAP_FIXED` over part of a live mapping and
/// part of free space, at --page 64 KiB: the pages the old mapping keeps a
/// byte in stay, the new mapping is its own allocation (help.rs:62-70).
#[test]
fn map_fixed_straddling_a_mapping_end_at_64k() {
    let strace = "\
mmap(NULL, 131072, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(0x7f0000010000, 131072, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
munmap(0x7f0000000000, 4096) = 0
";
    let (peak, end, failed, trace) = replay(strace, "65536");
    // m0 keeps [0, 64K) (less its first 4 KiB: still a byte live), m1 is
    // 128 KiB: 192 KiB at the end; at most 256 KiB before m0's page 1 went.
    assert_eq!((end, failed), (196608, 0), "{trace}");
    assert!(peak <= 262144, "peak {peak}:\n{trace}");
}
