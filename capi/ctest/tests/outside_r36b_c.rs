//! Outside review, round 36b (a newcomer with the headers), in C
//! (`c/outside_r36b.c`): `vmem_print`'s lines whole whatever their length
//! and the name's bytes as they are; `vmem_init` refusing storage that
//! holds a live arena; `max_tags` past 2^28 - 1 refused with `-EINVAL`
//! before anything is reserved.

use core::ffi::c_int;

use vmspace_capi_ctest as _;

extern "C" {
    fn ctest_outside_r36b() -> c_int;
}

#[test]
fn vmem_print_init_over_live_and_max_tags() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside_r36b() }, 0);
}
