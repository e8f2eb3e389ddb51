//! Outside review, round 34: `vmspace import-strace` on resume shapes the
//! round's name-and-pid pairing must get right (held tests).
//!
//! Contract (userspace/src/cli/help.rs:73-75): "Accepts strace's pid
//! prefixes (-f), timestamps (-t, -tt, -ttt, -r) and <unfinished ...> /
//! <... resumed> pairs (a call never resumed, or resumed with no start in
//! the trace, becomes a comment)." (userspace/src/cli/strace/mod.rs:61-66,
//! `take_started`): a resume takes its own pid's call of that name, else
//! an unprefixed one the one pending call of that name of any pid, else a
//! prefixed one the unprefixed call of that name.
//! Every input line that is a call is an operation or a counted comment.

mod strace_import;
use strace_import::{counts, import, ops, replays_cleanly};

/// A process alone starts a clone unprefixed; the child maps prefixed; the
/// parent resumes the clone prefixed and maps; the child's mmap resumes
/// after the parent's.
#[test]
fn clone_resumed_prefixed_and_interleaved_mmaps() {
    let strace = "\
mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
clone(child_stack=0x7f0000001000, flags=CLONE_VM|CLONE_THREAD <unfinished ...>
[pid   101] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   100] <... clone resumed>) = 101
[pid   100] mmap(NULL, 12288, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] <... mmap resumed>) = 0x7f0000010000
[pid   100] <... mmap resumed> )   = 0x7f0000020000
[pid   101] munmap(0x7f0000010000, 8192) = 0
[pid   101] +++ exited with 0 +++
munmap(0x7f0000020000, 12288) = 0
munmap(0x7f0000000000, 4096) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(
        ops(&t),
        [
            "add 0x10000 0x7fffffff0000",
            "alloc m0 0x1000",
            "alloc m1 0x2000",
            "alloc m2 0x3000",
            "free m1",
            "free m2",
            "free m0",
        ],
        "{t}"
    );
    // 10 call lines: 6 operations, the clone's start-and-resume one
    // comment ("not traced here").
    assert_eq!(counts(&t), (6, 1), "{t}");
}

/// `-ff` files concatenated (no prefixes at all): a killed process's
/// unfinished mmap, then the next file's complete calls.
#[test]
fn concatenated_ff_files() {
    let strace = "\
mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
+++ killed by SIGKILL +++
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
munmap(0x7f0000010000, 8192) = 0
+++ exited with 0 +++
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(
        ops(&t),
        ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000", "alloc m1 0x2000", "free m1"],
        "{t}"
    );
    assert_eq!(counts(&t), (3, 1), "{t}");
}

/// `restart_syscall` resumed at the start of an attach: a comment; the
/// calls around it as usual.
#[test]
fn restart_syscall_resume_is_a_counted_comment() {
    let strace = "\
<... restart_syscall resumed>) = 0
mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
[pid   101] <... restart_syscall resumed>) = 0
munmap(0x7f0000000000, 4096) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(ops(&t), ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000", "free m0"], "{t}");
    assert_eq!(counts(&t), (2, 2), "{t}");
}

/// Two pids with an mmap each unfinished and an unprefixed resume: which
/// one is not known; a comment, no invented mapping, and both starts
/// counted as never resumed.
#[test]
fn an_ambiguous_unprefixed_resume_is_a_comment() {
    let strace = "\
[pid   100] mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
<... mmap resumed>) = 0x7f0000000000
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(ops(&t), ["add 0x10000 0x7fffffff0000"], "{t}");
    assert_eq!(counts(&t), (0, 3), "{t}");
}

/// `-o FILE -f` (plain pid columns) with `-tt` timestamps and a resume of
/// mremap padded with spaces.
#[test]
fn plain_pid_columns_with_timestamps() {
    let strace = "\
100   12:00:00.000001 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
100   12:00:00.000002 mremap(0x7f0000000000, 8192, 16384, MREMAP_MAYMOVE <unfinished ...>
101   12:00:00.000003 mremap(0x7f0000100000, 4096, 8192, MREMAP_MAYMOVE <unfinished ...>
100   12:00:00.000004 <...   mremap   resumed>  )   =   0x7f0000200000
101   12:00:00.000005 <... mremap resumed>) = -1 EFAULT (Bad address)
100   12:00:00.000006 munmap(0x7f0000200000, 16384) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(
        ops(&t),
        ["add 0x10000 0x7fffffff0000", "alloc m0 0x2000", "resize m0 0x4000", "free m0"],
        "{t}"
    );
    assert_eq!(counts(&t), (3, 1), "{t}");
}
