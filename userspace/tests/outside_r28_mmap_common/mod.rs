//! What the round-28 `MmapBackend` tests (`outside_r28_mmap_*.rs`) share:
//! one test at a time within a binary, ranges, re-executing the test
//! binary to run one test in a child, resident pages by `mincore`.

#![allow(dead_code)] // each test file uses part of it

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use vmspace_shim::{Addr, Range, Size};

/// Hold while a test runs: one test of this binary at a time (VMA counts
/// and residency see every mapping of the process).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The range of `size` bytes at `base`.
pub fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

/// Re-execute this binary to run `name` alone with `var` set; assert it passed.
pub fn in_child(name: &str, var: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| l.contains("r28:")) {
        println!("{line}");
    }
    assert!(out.status.success() && text.contains("1 passed"), "child output:\n{text}");
}

/// Resident pages of `x` by mincore, into a preallocated vector.
pub fn resident_pages(x: Range, page: usize, vec: &mut [u8]) -> usize {
    let n = x.size().0 / page;
    assert!(n <= vec.len());
    // SAFETY: vec holds at least n bytes; mincore only looks pages up.
    let rc = unsafe { libc::mincore(x.base().as_ptr(), x.size().0, vec.as_mut_ptr().cast()) };
    assert_eq!(rc, 0);
    vec[..n].iter().filter(|b| **b & 1 != 0).count()
}
