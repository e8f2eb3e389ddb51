// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases that check the kernel's own checkers are still watching (kernels
//! with `CONFIG_PROVE_LOCKING`, as in `make kunit-debug`).

use kernel::bindings;

use crate::outcome::{ensure, Outcome};

/// Lockdep is still on. Its first report switches it off for the rest of
/// the boot (`debug_locks_off`), so an early report, even one outside
/// vmspace, would leave every later case unchecked; the log scan of the
/// targets shows the report, this case says that it matters.
pub fn lockdep_is_on() -> Outcome {
    // SAFETY: `debug_locks` is an `int` the kernel only ever clears; a
    // volatile read of it races with nothing that could tear it.
    let on = unsafe { core::ptr::read_volatile(&raw const bindings::debug_locks) };
    ensure(on != 0, "lockdep has switched itself off: see the first report in the log")
}
