// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`run_threads`]: a closure on several kernel threads at once.

use core::ffi::{c_int, c_void};

use crate::sys;

/// Run `f(i)` for `i` in `0..n` on `n` kernel threads (1 to 16) at the same
/// time and wait for all of them. Returns `true` when every call returned
/// `true` and every thread started.
pub fn run_threads<F: Fn(usize) -> bool + Sync>(n: usize, f: F) -> bool {
    /// Calls the closure behind `arg` with `index`.
    ///
    /// # Safety
    ///
    /// `arg` points to a live `F`.
    unsafe extern "C" fn trampoline<F: Fn(usize) -> bool + Sync>(arg: *mut c_void, index: c_int) -> c_int {
        // SAFETY: `arg` is the `&F` passed below, alive until every thread
        // has finished (`vmspace_run_threads` waits for them).
        let f = unsafe { &*arg.cast_const().cast::<F>() };
        if f(index as usize) {
            0
        } else {
            1
        }
    }
    if n == 0 || n > 16 {
        return false;
    }
    let arg = core::ptr::from_ref(&f).cast_mut().cast::<c_void>();
    // SAFETY: `trampoline::<F>` reads `arg` as `&F`; `F: Sync` so sharing it
    // between the threads is sound; the call returns after all of them.
    unsafe { sys::vmspace_run_threads(trampoline::<F>, arg, n as c_int) == 0 }
}
