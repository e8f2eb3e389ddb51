//! Outside review (today): waiting allocations from C racing
//! `vmspace_arena_set_import` (`c/outside_today.c`).

use core::ffi::c_int;

// Links the C tests' static library and the user-space C API.
use vmspace_capi_ctest as _;

extern "C" {
    fn ctest_outside_today() -> c_int;
}

#[test]
fn many_waiters_begun_before_set_import_all_start_polling() {
    // SAFETY: a self-contained C test (its threads end before it returns).
    assert_eq!(unsafe { ctest_outside_today() }, 0);
}
