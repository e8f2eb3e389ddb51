//! Running the `vmspace` program from the end-to-end CLI tests
//! (`outside_r19_cli.rs`, `outside_r20_cli.rs`): its exit code and output.

#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::process::{Command, Stdio};

/// Run `vmspace` with `stdin`; (exit code, stdout, stderr).
pub fn vmspace(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmspace");
    {
        let mut i = child.stdin.take().expect("stdin");
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for vmspace");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run it and insist on exit 0; its standard output.
pub fn ok(args: &[&str], stdin: &str) -> String {
    let (code, out, err) = vmspace(args, stdin);
    assert_eq!(code, Some(0), "vmspace {args:?}:\n{out}\n{err}");
    out
}
