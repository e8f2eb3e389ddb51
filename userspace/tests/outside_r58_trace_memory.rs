//! Round 58 (outside reviewer): `vmspace_user::trace::parse_bytes` on a
//! trace larger than memory allows: the public parser pushes every
//! operation into `Trace::ops` with an infallible `Vec::push` (120 bytes an
//! operation, 16x the 7 bytes of a `free a` line), so a trace that could be
//! read aborts the process while being parsed instead of returning a
//! `TraceError`. Run in a child (this binary, `--exact`) under RLIMIT_AS.
//!
//! Was a DEFECT (fixed as proposed; the child now requires the refusal).
//! FAILED then (child killed by SIGABRT). Fix: `trace.ops.try_reserve(1)`
//! (or a documented operation limit) in `parse_bytes`, returning
//! `TraceError { line, what: "out of memory ..." }`.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD: &str = "OUTSIDE_R58_TRACE_MEMORY_CHILD";

#[test]
fn parse_bytes_returns_an_error_when_ops_do_not_fit_under_rlimit() {
    if std::env::var_os(CHILD).is_some() {
        // 40 MB of input, 5.7M operations: ~690 MB of ops (960 MB after
        // the doubling) under a 768 MiB address-space cap.
        let input = b"free a\n".repeat(40_000_000 / 7);
        let lim = libc::rlimit { rlim_cur: 768 << 20, rlim_max: 768 << 20 };
        // SAFETY: plain syscall on our own process.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
        match vmspace_user::trace::parse_bytes(&input) {
            Ok(t) => panic!("parsed {} ops past the cap", t.ops.len()),
            Err(e) => assert!(e.what.starts_with("out of memory after "), "{e}"),
        }
        return;
    }
    let st = Command::new(std::env::current_exe().unwrap())
        .args([
            "parse_bytes_returns_an_error_when_ops_do_not_fit_under_rlimit",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert!(st.success(), "parse_bytes died: {st:?} (signal {:?})", st.signal());
}
