//! What the tests that run in a re-executed child share (a process-wide
//! setting such as `mlockall` or an rlimit, or a fork, must not touch the
//! other tests): re-executing this test binary to run one test alone with
//! an environment variable set. Used by `outside_r26_mmap_children.rs` and
//! `outside_r27_mmap.rs`.

#![allow(dead_code)] // each test file uses part of it

use std::process::{Command, ExitStatus};

/// Re-execute this test binary to run the test `name` alone (`--exact`,
/// `--nocapture`, and with `one_thread` also `--test-threads=1`) with `var`
/// set to 1: the child's exit status, and its stdout followed by its
/// stderr.
pub fn run_in_child(name: &str, var: &str, one_thread: bool) -> (ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let mut args = vec!["--exact", name, "--nocapture"];
    if one_thread {
        args.push("--test-threads=1");
    }
    let out = Command::new(exe).args(args).env(var, "1").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// The lines of a child's output worth showing when it failed: those that
/// start with `tag` (what the child printed), panics and assertion sides.
pub fn report_lines<'t>(text: &'t str, tag: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|l| {
            l.starts_with(tag)
                || l.contains("panicked")
                || l.contains("left")
                || l.contains("right")
        })
        .collect()
}

/// Re-execute this binary to run `name` alone, single-threaded, with `var`
/// set; assert it passed, showing the child's `tag` lines if not.
pub fn in_child(name: &str, var: &str, tag: &str) {
    let (status, text) = run_in_child(name, var, true);
    let lines = report_lines(&text, tag);
    assert!(status.success() && text.contains("1 passed"), "{lines:#?}");
}
