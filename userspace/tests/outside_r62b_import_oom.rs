//! Round 62b (outside reviewer): CHANGELOG.md (Unreleased, Fixed): "`vmspace
//! import-strace` aborted on a log whose trace did not fit (an error now;
//! it also no longer copies the trace to write it)";
//! userspace/src/cli/strace/mod.rs:102-103: "A trace that does not fit in
//! memory is an error naming the strace line where it stopped fitting".
//! The program runs under `RLIMIT_AS` on a log of short lines (each one a
//! note some 25 times its size in the trace).

use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn a_trace_that_does_not_fit_is_an_error_naming_the_line_under_rlimit() {
    let dir = std::env::temp_dir().join(format!("outside_r62b_import_oom_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("short.strace");
    std::fs::write(&log, "x\n".repeat(8 << 20)).unwrap(); // 16 MiB, 8 Mi lines
    let limit: libc::rlim_t = 320 << 20;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmspace"));
    cmd.arg("import-strace").arg(&log).arg("-o").arg(dir.join("out.trace"));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), None, "killed by a signal (an abort?): {stderr}");
    if out.status.success() {
        // The trace fitted after all: nothing shown either way.
        eprintln!("the trace fitted in {limit} bytes");
        return;
    }
    assert!(stderr.contains("out of memory for the trace at strace line "), "{stderr}");
    let n: usize = stderr
        .split("strace line ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no line number: {stderr}"));
    assert!((1..=8 << 20).contains(&n), "{n}");
}
