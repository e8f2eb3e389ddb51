//! Helpers shared by the `import-strace` tests (rounds 33 and 34): run the
//! `vmspace` binary on a strace text, read the trace it makes, replay it.
// Each test binary that declares this module uses only some of it (only
// `outside_r34_strace_shapes` reads the header's counts): the rest would
// be dead code there.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Run `vmspace ARGS` with `input` on standard input: (exit code, stdout,
/// stderr).
pub fn run(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), s(&out.stdout), s(&out.stderr))
}

/// The trace `import-strace` makes of `strace`.
pub fn import(strace: &str) -> String {
    let (rc, trace, err) = run(&["import-strace", "-"], strace);
    assert_eq!(rc, 0, "import-strace failed: {err}\n{strace}");
    trace
}

/// The trace's operations (lines that are neither comments nor the
/// `quantum` header), without their comments.
pub fn ops(trace: &str) -> Vec<String> {
    trace
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with("quantum"))
        .collect()
}

/// Replay `trace` with `--check --json`: no operation may fail.
pub fn replays_cleanly(trace: &str) {
    let (rc, out, err) = run(&["replay", "-", "--check", "--json"], trace);
    assert_eq!(rc, 0, "replay of the import failed: {err}\n{trace}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcomes"]["failed"], 0, "failures replaying\n{trace}\n{out}");
}

/// The header's counts: (calls as operations, lines skipped).
pub fn counts(trace: &str) -> (usize, usize) {
    let h = trace.lines().next().unwrap();
    let n: Vec<usize> = h.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (n[0], n[1])
}
