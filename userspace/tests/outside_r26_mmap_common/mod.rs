//! What the round-26 `MmapBackend` tests (`outside_r26_mmap_*.rs`) share:
//! one test at a time within a binary, the page size, ranges.

#![allow(dead_code)] // each test file uses part of it

use std::sync::{Mutex, MutexGuard};

use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::MmapBackend;

/// Hold while a test runs: one test of this binary at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn page() -> usize {
    MmapBackend::new().page_size().0
}

pub fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}
