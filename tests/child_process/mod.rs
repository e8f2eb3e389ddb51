//! Running a scenario of a test in a child process: the test binary runs
//! itself again for that one test, with an environment variable naming the
//! scenario. For what cannot be caught in the parent, a process abort (a
//! panic while panicking) above all: the parent sees its exit status.
// Each test binary that declares this module uses only some of it.
#![allow(dead_code)]

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The scenario this process runs, if it is a child (`var` set).
pub fn scenario(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

fn command(test: &str, var: &str, scenario: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the test binary"));
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Run test `test` again in a child process with `var` set to `scenario`;
/// its exit status.
pub fn run_child(test: &str, var: &str, scenario: &str) -> ExitStatus {
    command(test, var, scenario).status().expect("run the child")
}

/// [`run_child`], killed after `limit`: `None` when it did not end by then
/// (a hang).
pub fn run_child_within(
    test: &str,
    var: &str,
    scenario: &str,
    limit: Duration,
) -> Option<ExitStatus> {
    let mut c = command(test, var, scenario).spawn().expect("run the child");
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(s) = c.try_wait().expect("wait for the child") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}
