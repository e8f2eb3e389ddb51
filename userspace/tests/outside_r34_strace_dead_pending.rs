//! Outside review, round 34: `vmspace import-strace` pairing an unprefixed
//! `<... NAME resumed>` when another pid's call of that name was left
//! unfinished by a process that has since exited or been killed.
//!
//! Contract (userspace/src/cli/help.rs:73-75, `vmspace help
//! import-strace`): "Accepts strace's pid prefixes (-f), timestamps (-t,
//! -tt, -ttt, -r) and <unfinished ...> / <... resumed> pairs (a call never
//! resumed, or resumed with no start in the trace, becomes a comment)."
//! And (userspace/src/cli/strace/mod.rs:61-66, `take_started`): "as strace
//! prefixes lines with `[pid N]` only while it traces more than one
//! process, an unprefixed resume takes the one unfinished call of that
//! name of any pid".
//!
//! A pid whose `+++ exited ... +++` / `+++ killed by ... +++` line has been
//! read has no call left to resume: its unfinished call is one "never
//! resumed". The importer skips `+++` lines without ending that pid's
//! pending call, so after it, the one live process's unprefixed resume
//! finds two pending calls of its name, is called "resumed with no start
//! in the trace" (its start is there) and the program's mapping is lost:
//! its munmap becomes "a range mapped before tracing".
//! (Current strace usually closes a call its tracee dies in with
//! `<... NAME resumed>) = ?` (print_event_exit; the held tests below); a
//! trace with the unfinished line and `+++ killed +++` alone comes from
//! strace versions or runs that miss that exit stop. The `+++` line says
//! the pid is gone either way.)

mod strace_import;
use strace_import::{import, ops, replays_cleanly};

/// Found: pid 101 is killed inside its mmap (no resume printed); pid 100,
/// alone after that, resumes its own mmap unprefixed. Its mapping is the
/// program's, and its munmap frees it.
#[test]
fn a_killed_pids_unfinished_call_does_not_hide_the_live_ones_resume() {
    let strace = "\
[pid   100] mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] +++ killed by SIGKILL +++
<... mmap resumed>) = 0x7f0000000000
munmap(0x7f0000000000, 4096) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(
        ops(&t),
        ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000", "free m0"],
        "the live pid's mmap and munmap, the killed pid's mmap a comment\n{t}"
    );
}

/// Held: the same with strace's usual `<... mmap resumed>) = ?` for the
/// dying pid (its call consumed, a failed call skipped).
#[test]
fn a_killed_pids_question_mark_resume_leaves_the_live_ones_call() {
    let strace = "\
[pid   100] mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] <... mmap resumed>) = ?
[pid   101] +++ killed by SIGKILL +++
<... mmap resumed>) = 0x7f0000000000
munmap(0x7f0000000000, 4096) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(ops(&t), ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000", "free m0"], "{t}");
}

/// Held: strace's exit-in-syscall shape, `<... mmap resumed> <unfinished
/// ...>) = ?` (print_event_exit), for the dying pid.
#[test]
fn an_exit_in_syscall_resume_leaves_the_live_ones_call() {
    let strace = "\
[pid   100] mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
[pid   101] <... mmap resumed> <unfinished ...>) = ?
[pid   101] +++ killed by SIGKILL +++
<... mmap resumed>) = 0x7f0000000000
munmap(0x7f0000000000, 4096) = 0
";
    let t = import(strace);
    replays_cleanly(&t);
    assert_eq!(ops(&t), ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000", "free m0"], "{t}");
}
