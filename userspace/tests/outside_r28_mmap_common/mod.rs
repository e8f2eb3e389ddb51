//! What the round-28 `MmapBackend` tests (`outside_r28_mmap_*.rs`) share:
//! one test at a time within a binary, ranges, re-executing the test
//! binary to run one test in a child (all three from `child_reexec`, which
//! each of these test files declares too), resident pages by `mincore`.

#![allow(dead_code)] // each test file uses part of it

use vmspace_shim::Range;

pub use crate::child_reexec::{r, serial};

/// Re-execute this binary to run `name` alone with `var` set; assert it
/// passed (echoing the child's `r28:` lines).
pub fn in_child(name: &str, var: &str) {
    crate::child_reexec::in_child_echo(name, var, "1", "r28:");
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
