//! Outside review, round 33: `vmspace import-strace` and
//! `<unfinished ...>` / `<... NAME resumed>` pairs that do not match.
//!
//! Contract (userspace/src/cli/help.rs:73-75, `vmspace help
//! import-strace`): "Accepts strace's pid prefixes (-f), timestamps (-t,
//! -tt, -ttt, -r) and <unfinished ...> / <... resumed> pairs (a call never
//! resumed, or resumed with no start in the trace, becomes a comment)."
//! And (help.rs:71): "Failed calls, and unmaps of ranges mapped before
//! tracing began, become comments."
//!
//! strace names the call it resumes (`<... munmap resumed>`). A pid with an
//! `mmap` pending and a resume of `munmap` has an `mmap` never resumed and
//! a `munmap` resumed with no start in the trace: two comments, and no
//! operation. The importer pairs them by pid alone, glueing the `mmap`'s
//! arguments to the `munmap`'s result, and invents a mapping the program
//! never made (at address 0, the `munmap`'s result). The held tests check
//! the shapes the round's notes were made for, and `MREMAP_DONTUNMAP`
//! with `MREMAP_FIXED` over a live mapping, replayed with no failure.

mod strace_import;
use strace_import::{import, ops, replays_cleanly};

/// Found: a resume of another call completes the pending one with the
/// other's result.
#[test]
fn a_resume_of_another_call_is_no_operation() {
    let strace = "\
100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
100 <... munmap resumed>) = 0
";
    let t = import(strace);
    let ops = ops(&t);
    assert!(
        ops.iter().all(|o| !o.starts_with("alloc")),
        "an mmap never resumed (its pid's resume is of munmap) became an allocation: {ops:?}\n{t}"
    );
    // Both lines become comments: each counted as skipped.
    assert!(t.contains("0 calls as operations, 2 lines skipped"), "{t}");
    replays_cleanly(&t);
}

/// Found: strace prefixes lines with `[pid N]` only while it traces more
/// than one process (`nprocs > 1` in strace's `printleader`, without
/// `-o`; the importer's own comment at userspace/src/cli/strace/mod.rs:76-77
/// knows the unprefixed half of this). When a thread exits while another
/// is inside `mmap`, the call starts prefixed and resumes unprefixed: its
/// start is in the trace and it was resumed, yet the importer, pairing by
/// the prefix, notes a call never resumed and a resume with no start, and
/// the mapping vanishes (its `munmap` then reads as one of a range "mapped
/// before tracing").
#[test]
fn a_resume_after_the_other_thread_exits_completes_its_call() {
    let strace = "\
[pid 100] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid 101] +++ exited with 0 +++
<... mmap resumed>) = 0x7f0000000000
munmap(0x7f0000000000, 8192) = 0
";
    let t = import(strace);
    assert_eq!(
        ops(&t),
        ["add 0x10000 0x7fffffff0000", "alloc m0 0x2000", "free m0"],
        "the mmap resumed once its thread's lines lost their prefix\n{t}"
    );
    replays_cleanly(&t);
}

/// Held: interleaved pids each pair with their own resume; the same pid
/// unfinished twice notes the first and keeps the second; a resume on a
/// pid with nothing pending is a comment; what is left is a clean replay.
#[test]
fn interleaved_and_unmatched_pids_replay_cleanly() {
    let strace = "\
[pid 1] mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid 2] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid 1] <... mmap resumed>) = 0x7f0000000000
[pid 3] <... munmap resumed>) = 0
[pid 2] mmap(NULL, 12288, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid 2] <... mmap resumed>) = 0x7f0000100000
[pid 1] munmap(0x7f0000000000, 8192 <unfinished ...>
[pid 1] <... munmap resumed>) = 0
[pid 2] munmap(0x7f0000100000, 12288) = 0
";
    let t = import(strace);
    assert_eq!(
        ops(&t),
        ["add 0x10000 0x7fffffff0000", "alloc m0 0x2000", "alloc m1 0x3000", "free m0", "free m1"],
        "{t}"
    );
    for want in [
        "# strace line 4: a resumed call whose start is not in the trace",
        "# strace line 5: call started on line 2 never resumed",
    ] {
        assert!(t.contains(want), "{want:?} not in\n{t}");
    }
    replays_cleanly(&t);
}

/// Held: `MREMAP_DONTUNMAP` with `MREMAP_FIXED` onto another live mapping
/// replaces that mapping (a free) and adds one; the old mapping stays, and
/// every later unmap finds what it unmaps.
#[test]
fn dontunmap_fixed_onto_a_live_mapping_replays_cleanly() {
    let strace = "\
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(NULL, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000100000
mremap(0x7f0000000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP, 0x7f0000102000) = 0x7f0000102000
munmap(0x7f0000000000, 8192) = 0
munmap(0x7f0000100000, 16384) = 0
";
    let t = import(strace);
    assert_eq!(
        ops(&t),
        [
            "add 0x10000 0x7fffffff0000",
            "alloc m0 0x2000",
            "alloc m1 0x4000",
            "free m1 0x2000 0x2000",
            "alloc m2 0x2000",
            "free m0",
            "free m1",
            "free m2",
        ],
        "{t}"
    );
    replays_cleanly(&t);
}
