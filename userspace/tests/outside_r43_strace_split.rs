//! Outside review, round 43: `vmspace import-strace` with calls strace
//! split over two lines (`<unfinished ...>`, `<... NAME resumed>`) across
//! several pids, the header's "K calls split over two lines", and the
//! replay of the import against the program's mappings (mremap moves onto
//! another mapping, split too).
//!
//! Contracts: userspace/src/cli/strace/mod.rs:150-154 (header: "{k} calls
//! split over two lines (their first lines in comments)"); the replay of
//! the import ends with the program's mapped bytes live and no failed
//! operation (help.rs: the trace "answers how this program's mappings
//! would pack in a vmspace arena").
//!
//! All tests here held (contracts checked).

mod strace_import;

use strace_import::{json_num, run_ok as run};

/// The import at `page`, and (end live bytes, failed operations) of its
/// replay.
fn replay(strace: &str, page: &str) -> (String, usize, usize) {
    let trace = run(&["import-strace", "-", "--page", page], strace);
    let json = run(&["replay", "--json", "-"], &trace);
    let end = json_num(&json, "\"end\"", "live_bytes");
    (trace.clone(), end, json_num(&json, "\"outcomes\"", "failed"))
}

const MAP: &str = "PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0";

/// Three pids, every call split and resumed out of order, an mremap that
/// moves and grows (split), then an mremap of a thread's mapping by
/// another thread with `MREMAP_FIXED` onto the middle-to-end of a third
/// one's mapping (split, interleaved with another split mmap). The
/// program's end: pid 10's 8 KiB, pid 12's first page left (4 KiB) and a
/// new 4 KiB: 16 KiB, at every page size the replay is asked at (each
/// mapping a whole number of pages of 4 KiB; at 64 KiB, each piece left
/// keeps its trace page).
#[test]
fn split_calls_over_three_pids_replay_as_the_program() {
    let strace = format!(
        "\
[pid    10] mmap(NULL, 8192, {MAP} <unfinished ...>
[pid    11] mmap(NULL, 4096, {MAP} <unfinished ...>
[pid    12] mmap(NULL, 16384, {MAP} <unfinished ...>
[pid    11] <... mmap resumed>) = 0x7f0000010000
[pid    12] <... mmap resumed>) = 0x7f0000020000
[pid    10] <... mmap resumed>) = 0x7f0000000000
[pid    12] munmap(0x7f0000020000, 4096 <unfinished ...>
[pid    10] mremap(0x7f0000000000, 8192, 24576, MREMAP_MAYMOVE <unfinished ...>
[pid    12] <... munmap resumed>) = 0
[pid    11] munmap(0x7f0000010000, 4096) = 0
[pid    10] <... mremap resumed>) = 0x7f0000030000
[pid    11] mremap(0x7f0000030000, 24576, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f0000022000 <unfinished ...>
[pid    12] mmap(NULL, 4096, {MAP} <unfinished ...>
[pid    11] <... mremap resumed>) = 0x7f0000022000
[pid    12] <... mmap resumed>) = 0x7f0000050000
[pid    12] +++ exited with 0 +++
[pid    11] +++ exited with 0 +++
"
    );
    for page in ["4096", "16384", "65536"] {
        let (trace, end, failed) = replay(&strace, page);
        let head = trace.lines().next().unwrap();
        assert!(head.contains("7 calls split over two lines"), "page {page}: {head}");
        // At 4 KiB every call is an operation; at larger pages pid 12's
        // munmap of its first page frees no trace page (a comment).
        let ops = if page == "4096" {
            "8 calls as operations, 0 lines"
        } else {
            "7 calls as operations, 1 lines"
        };
        assert!(head.contains(ops), "page {page}: {head}");
        let want = if page == "4096" { 16384 } else { 3 * page.parse::<usize>().unwrap() };
        assert_eq!((end, failed), (want, 0), "page {page}:\n{trace}");
    }
}

/// A pid exits with a call unfinished; the last pid's resume is then
/// unprefixed (strace prefixes only while it traces more than one
/// process) and finishes that pid's call, not the dead one's. Header: one
/// call split; the replay ends with 8 KiB live.
#[test]
fn a_resume_unprefixed_after_the_other_pid_exited_is_its_own() {
    let strace = format!(
        "\
[pid    20] mmap(NULL, 8192, {MAP} <unfinished ...>
[pid    21] mmap(NULL, 4096, {MAP} <unfinished ...>
[pid    21] +++ exited with 0 +++
<... mmap resumed>) = 0x7f0000000000
munmap(0x7f0000100000, 4096) = 0
"
    );
    let (trace, end, failed) = replay(&strace, "4096");
    let head = trace.lines().next().unwrap();
    assert!(head.contains("1 calls split over two lines"), "{head}");
    assert!(trace.contains("alloc m0 0x2000"), "{trace}");
    assert_eq!((end, failed), (8192, 0), "{trace}");
}

/// A split `mremap` that shrinks a mapping in place, and a split `mmap`
/// with `MAP_FIXED` inside the shrunk mapping's freed tail (free space
/// again, so a new mapping), each resumed by its own pid after the other
/// pid's whole call: 8 KiB + 4 KiB at the end, no failure, header 2.
#[test]
fn split_shrink_then_fixed_map_into_the_freed_tail() {
    let strace = format!(
        "\
mmap(NULL, 16384, {MAP}) = 0x7f0000000000
[pid    31] mremap(0x7f0000000000, 16384, 8192, 0 <unfinished ...>
[pid    30] mmap(0x7f0000003000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0 <unfinished ...>
[pid    31] <... mremap resumed>) = 0x7f0000000000
[pid    30] <... mmap resumed>) = 0x7f0000003000
"
    );
    let (trace, end, failed) = replay(&strace, "4096");
    let head = trace.lines().next().unwrap();
    assert!(head.contains("2 calls split over two lines"), "{head}");
    assert_eq!((end, failed), (12288, 0), "{trace}");
}
