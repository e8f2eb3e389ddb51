//! Helpers shared by the `import-strace` tests (rounds 33 to 42): run the
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

/// The trace `import-strace --page PAGE` makes of `strace`.
pub fn import_at(strace: &str, page: &str) -> String {
    let (rc, trace, err) = run(&["import-strace", "-", "--page", page], strace);
    assert_eq!(rc, 0, "import-strace --page {page} failed: {err}\n{strace}");
    trace
}

/// Run `vmspace ARGS` with `input` on standard input, which must succeed:
/// its stdout.
pub fn run_ok(args: &[&str], input: &str) -> String {
    let (rc, out, err) = run(args, input);
    assert_eq!(rc, 0, "{args:?}: {err}");
    out
}

/// The number after `"KEY":` in `json`, the first such after `after`.
pub fn json_num(json: &str, after: &str, key: &str) -> usize {
    let rest = &json[json.find(after).unwrap()..];
    let k = rest.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let digits: String =
        rest[k..].trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap()
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

/// Every number in the header (the trace's first line), in order: each
/// run of digits.
pub fn header_numbers(trace: &str) -> Vec<usize> {
    let head = trace.lines().next().unwrap();
    head.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect()
}

/// The header's counts: (calls as operations, lines skipped).
pub fn counts(trace: &str) -> (usize, usize) {
    let h = trace.lines().next().unwrap();
    let n: Vec<usize> = h.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (n[0], n[1])
}
