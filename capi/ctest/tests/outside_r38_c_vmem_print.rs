//! Outside review, round 38, in C (`c/outside_r38.c`): `vmem_print` with
//! names of every byte value (vmspace.h:132-133, VMSPACE_NAME_MAX bytes
//! kept, printed "as they are" per CHANGELOG round 36b), a printf that
//! fails and writes nothing (vmem.h:72-73 "A printf-like function"),
//! destroyed arenas and zeroed storage ("not a live arena"); `vmem_init`
//! over storage whose destroy was refused (vmem.h:80-82: NULL "when `vm`
//! holds a live arena (initialized, not destroyed)") and after destroys.

use core::ffi::c_int;

use vmspace_capi_ctest as _;

extern "C" {
    fn ctest_outside_r38() -> c_int;
}

#[test]
fn vmem_print_names_failing_printf_and_init_over_refused_destroy() {
    // SAFETY: a self-contained C test.
    assert_eq!(unsafe { ctest_outside_r38() }, 0);
}
