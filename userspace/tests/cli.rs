//! The `vmspace` program's trace commands, end to end: `vmspace trace`
//! piped into `vmspace replay - --check`, and the exit codes of mistakes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn vmspace(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmspace");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write the trace");
    child.wait_with_output().expect("wait for vmspace")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_generated_churn_trace_replays_with_check() {
    let trace = vmspace(&["trace", "--live", "50", "--steps", "500"], "");
    assert!(trace.status.success(), "{}", text(&trace.stderr));
    let out = vmspace(&["replay", "-", "--check"], &text(&trace.stdout));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("replayed 1051 operations"), "{stdout}");
    assert!(
        stdout.contains("allocations 550 ok, 0 without space, 0 refused; frees 500"),
        "{stdout}"
    );
    assert!(stdout.contains("live 50:"), "{stdout}");
}

#[test]
fn constrained_allocations_and_failures_are_reported() {
    let trace = "add 0x1000 0x1000\nxalloc a 100 align=256 nocross=512 policy=best\n\
                 alloc b 0x2000\nfree b\nxalloc c 16 exact=0x1800 top\nfree a\nfree c\n";
    let out = vmspace(&["replay", "-", "--quantum", "16", "--check"], trace);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(
        stdout.contains("allocations 2 ok, 1 without space, 0 refused; frees 2 (+1"),
        "{stdout}"
    );
    assert!(stdout.contains("live 0:"), "{stdout}");
}

#[test]
fn mistakes_exit_non_zero_with_the_line() {
    let out = vmspace(&["replay", "-"], "add 0 4096\nalloc a 10\nfree nobody\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 3: id nobody was never allocated"));
    let out = vmspace(&["replay", "-"], "add 0 4096\nalloc a ten\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 2"));
    let out = vmspace(&["replay"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = vmspace(&["trace", "--live"], "");
    assert_eq!(out.status.code(), Some(2));
}
