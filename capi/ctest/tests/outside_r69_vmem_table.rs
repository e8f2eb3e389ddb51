//! Written by a reviewer outside the project (round 69), from README.md
//! ("vmem(9) compatibility", the table) and `capi/include/vmspace/vmem.h`:
//! two strategy flags and both wait flags are EINVAL; a size too large to
//! round up is ENOMEM; `maxaddr` inclusive; `vmem_roundup_size` overflow
//! gives 0; `vmem_size` with an unknown mask gives 0 and calls the error
//! hook with EINVAL; a free with a size of the same quanta frees; a
//! `vmem_add` span touching an added span merges with it on either side.

mod common;

use common::{valloc, vcheck};
use core::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::vmspace_arena_contains;
use vmspace_capi_user::vmspace_vmem_api::*;

const EINVAL: c_int = 22;
const ENOMEM: c_int = 12;

fn create(base: usize, size: usize, quantum: usize) -> *mut vmem_t {
    // SAFETY: a NUL-terminated name; plain values.
    let vm = unsafe { vmem_create(c"r69".as_ptr(), base, size, quantum, 0, 0) };
    assert!(!vm.is_null());
    vm
}

fn destroy(vm: *mut vmem_t) {
    // SAFETY: a live arena nobody else uses.
    unsafe { vmem_destroy(vm) };
}

fn xalloc(
    vm: *mut vmem_t,
    size: usize,
    min: usize,
    max: usize,
    flags: c_int,
) -> Result<usize, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmem_xalloc(vm, size, 0, 0, 0, min, max, flags, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

/// The error hook records (what, errno) of each call.
unsafe extern "C" fn hook(
    arg: *mut c_void,
    _vm: *mut vmem_t,
    what: *const c_char,
    _addr: vmem_addr_t,
    _size: vmem_size_t,
    error: c_int,
) {
    // SAFETY: `arg` is the Vec below; `what` a NUL-terminated name.
    let log = unsafe { &mut *arg.cast::<Vec<(String, c_int)>>() };
    // SAFETY: as above.
    let what = unsafe { core::ffi::CStr::from_ptr(what) }.to_string_lossy().into_owned();
    log.push((what, error));
}

#[test]
fn flags_sizes_and_rounding() {
    let vm = create(0x1000, 0x1000, 16);
    assert_eq!(valloc(vm, 16, M_NOWAIT | M_WAITOK), Err(EINVAL), "both wait flags");
    assert_eq!(valloc(vm, 16, M_NOWAIT | M_BESTFIT | M_NEXTFIT), Err(EINVAL), "two strategies");
    assert_eq!(valloc(vm, 16, M_NOWAIT | M_FIRSTFIT | M_BESTFIT), Err(EINVAL), "two strategies");
    assert_eq!(valloc(vm, usize::MAX, M_NOWAIT), Err(ENOMEM), "too large to round up");
    assert_eq!(valloc(vm, usize::MAX - 14, M_NOWAIT), Err(ENOMEM), "too large to round up");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_roundup_size(vm, usize::MAX) }, 0, "overflow gives 0");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_roundup_size(vm, usize::MAX - 15) }, usize::MAX - 15);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_roundup_size(vm, 17) }, 32);
    let mut log: Vec<(String, c_int)> = vec![];
    // SAFETY: a live arena; `log` outlives the hook's use (reset below).
    unsafe { vmem_set_error_hook(vm, Some(hook), (&raw mut log).cast()) };
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_size(vm, 0x4) }, 0, "unknown mask");
    assert_eq!(log.last().map(|l| l.1), Some(EINVAL), "the error hook, EINVAL: {log:?}");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_size(vm, VMEM_ALLOC | VMEM_FREE) }, 0x1000);
    // "a vmem_alloc(10) in quanta of 16": freed by vmem_free with any size
    // rounding to one quantum, refused with a size rounding to two.
    let x = valloc(vm, 10, M_NOWAIT).unwrap();
    let n = log.len();
    // SAFETY: a live arena; a bad free is refused, not undefined.
    unsafe { vmem_free(vm, x, 17) };
    assert_eq!(log.len(), n + 1, "a size of other quanta is refused: {log:?}");
    // SAFETY: a live arena, a live allocation of one quantum.
    unsafe { vmem_free(vm, x, 16) };
    assert_eq!(log.len(), n + 1, "a size of the same quanta frees");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_size(vm, VMEM_ALLOC) }, 0);
    // SAFETY: a live arena; the hook off before `log` goes.
    unsafe { vmem_set_error_hook(vm, None, null_mut()) };
    vcheck(vm);
    destroy(vm);
}

/// "maxaddr is inclusive in both": a window [min, max] holds max - min + 1.
#[test]
fn maxaddr_is_inclusive() {
    let vm = create(0x1000, 0x1000, 16);
    let f = M_NOWAIT | M_FIRSTFIT;
    assert_eq!(xalloc(vm, 0x40, 0x1800, 0x183f, f), Ok(0x1800));
    assert!(xalloc(vm, 0x40, 0x1840, 0x187e, f).is_err(), "a window one short");
    assert_eq!(xalloc(vm, 0x40, 0x1840, 0x187f, f), Ok(0x1840));
    // Up to the top of the span: the last address 0x1fff.
    assert_eq!(xalloc(vm, 0x10, 0x1ff0, VMEM_ADDR_MAX, f), Ok(0x1ff0));
    vcheck(vm);
    destroy(vm);
}

/// "a vmem_add span touching an added span merges with it (either side)":
/// an allocation may then straddle the old boundary.
#[test]
fn added_spans_merge_on_either_side() {
    let vm = create(0x2000, 0x1000, 16);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_add(vm, 0x3000, 0x1000, M_NOWAIT) }, 0);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_add(vm, 0x1000, 0x1000, M_NOWAIT) }, 0);
    // SAFETY: a live arena (a vmem_t * is a vmspace_arena_t *).
    assert_eq!(unsafe { vmspace_arena_contains(vm.cast(), 0x1000, 0x3000) }, 1, "one span");
    assert_eq!(valloc(vm, 0x3000, M_NOWAIT | M_BESTFIT), Ok(0x1000));
    vcheck(vm);
    // SAFETY: a live allocation of that size.
    unsafe { vmem_free(vm, 0x1000, 0x3000) };
    // "No span ends at 2^64 (EINVAL)".
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmem_add(vm, 0usize.wrapping_sub(0x1000), 0x1000, M_NOWAIT) }, EINVAL);
    destroy(vm);
    // SAFETY: a NUL-terminated name; plain values.
    let top =
        unsafe { vmem_create(c"top".as_ptr(), 0usize.wrapping_sub(0x1000), 0x1000, 16, 0, 0) };
    assert!(top.is_null(), "vmem_create of a span ending at 2^64");
}
