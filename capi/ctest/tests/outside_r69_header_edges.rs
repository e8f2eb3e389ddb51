//! Written by a reviewer outside the project (round 69), from the header
//! alone: `capi/include/vmspace.h` is the contract. Checks, at their edge
//! values: the `-EINVAL` list at the top of the header (quantum, alignment,
//! phase, nocross, max_tags, reserved, walk masks), `-EOVERFLOW` for spans
//! ending at 2^64, `create_ex` clearing `*arenap` on failure,
//! `fragmentation_permille` ("1000 * (1 - largest_free / free), rounded
//! up"), `vmspace_arena_histogram`'s bins and return value,
//! `vmspace_arena_contains` (size 0 "when addr lies in one or at its end"),
//! `max` exclusive in xalloc, `alloc_timed` with a timeout of 0 ("-ETIMEDOUT
//! (never -ENOMEM)"), a free of size 0, the name kept to 31 bytes,
//! qcache_max rounding, `vmspace_strerror` and `vmspace_version`.

mod common;

use common::{counters, sizes};
use core::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::*;

const ENOENT: c_int = 2;
const EBADF: c_int = 9;
const EINVAL: c_int = 22;
const ERANGE: c_int = 34;
const EMSGSIZE: c_int = 90;
const EOVERFLOW: c_int = 75;
const ETIMEDOUT: c_int = 110;

fn try_make(p: &vmspace_params) -> Result<*mut vmspace_arena_t, c_int> {
    // A non-NULL garbage value: "*arenap is cleared first".
    let mut a = 0x10 as *mut vmspace_arena_t;
    // SAFETY: `p` is a valid parameter structure, `a` a writable pointer.
    let e = unsafe { vmspace_arena_create_ex(p, &mut a) };
    if e == 0 {
        assert!(!a.is_null());
        Ok(a)
    } else {
        assert!(a.is_null(), "create_ex failed with {e} but left *arenap = {a:?}");
        Err(e)
    }
}

fn make(base: usize, size: usize, quantum: usize) -> *mut vmspace_arena_t {
    try_make(&vmspace_params { base, size, quantum, ..Default::default() }).unwrap()
}

fn destroy(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena nobody else uses.
    assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
}

fn check(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_check(a) }, 0);
}

#[allow(clippy::too_many_arguments)]
fn xalloc(
    a: *mut vmspace_arena_t,
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    min: usize,
    max: usize,
    exact: usize,
    flags: c_int,
) -> Result<usize, c_int> {
    let mut x = 0xdead;
    // SAFETY: a live arena, a writable out pointer.
    let e = unsafe {
        vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, exact, flags, &mut x)
    };
    if e == 0 {
        Ok(x)
    } else {
        assert_eq!(x, 0xdead, "a failing xalloc ({e}) wrote its out pointer");
        Err(-e)
    }
}

fn alloc(a: *mut vmspace_arena_t, size: usize, flags: c_int) -> Result<usize, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc(a, size, flags, &mut x) } {
        0 => Ok(x),
        e => Err(-e),
    }
}

fn free(a: *mut vmspace_arena_t, x: usize, size: usize) -> c_int {
    // SAFETY: a live arena.
    -unsafe { vmspace_arena_free(a, x, size) }
}

/// "a quantum ... that is not a power of two", "(a power of two, at most
/// 2^27)", "a max_tags ... above 2^28 - 1", "a non-zero params.reserved",
/// "a span not a multiple of the quantum", and -EOVERFLOW: "none ends at
/// 2^64". Every refusal leaves `*arenap` NULL.
#[test]
fn create_ex_refusals_at_their_edges() {
    let p = |quantum| vmspace_params { quantum, ..Default::default() };
    for q in [0usize, 3, 24, (1 << 27) + 1, 1 << 28, 1 << 40] {
        assert_eq!(try_make(&p(q)).err(), Some(-EINVAL), "quantum {q:#x}");
    }
    for q in [1usize, 2, 1 << 20, 1 << 27] {
        destroy(try_make(&p(q)).unwrap_or_else(|e| panic!("quantum {q:#x}: {e}")));
    }
    let r = vmspace_params { quantum: 16, reserved: 1, ..Default::default() };
    assert_eq!(try_make(&r).err(), Some(-EINVAL), "reserved != 0");
    let t = |max_tags| vmspace_params { quantum: 16, max_tags, ..Default::default() };
    assert_eq!(try_make(&t(1 << 28)).err(), Some(-EINVAL), "max_tags 2^28");
    assert_eq!(try_make(&t(usize::MAX)).err(), Some(-EINVAL), "max_tags SIZE_MAX");
    destroy(try_make(&t((1 << 28) - 1)).expect("max_tags 2^28 - 1 is allowed"));
    let s = |base, size| vmspace_params { base, size, quantum: 16, ..Default::default() };
    assert_eq!(try_make(&s(8, 64)).err(), Some(-EINVAL), "base not a multiple of the quantum");
    assert_eq!(try_make(&s(0, 24)).err(), Some(-EINVAL), "size not a multiple of the quantum");
    assert_eq!(try_make(&s(0usize.wrapping_sub(64), 64)).err(), Some(-EOVERFLOW), "ends at 2^64");
    assert_eq!(try_make(&s(0usize.wrapping_sub(64), 128)).err(), Some(-EOVERFLOW), "wraps");
    let top = try_make(&s(0usize.wrapping_sub(128), 64)).expect("a span ending one quantum short");
    destroy(top);
    for flags in [VMSPACE_BESTFIT | VMSPACE_FIRSTFIT, 0x100, VMSPACE_WAIT, VMSPACE_EXACT] {
        let f = vmspace_params { quantum: 16, flags, ..Default::default() };
        assert_eq!(try_make(&f).err(), Some(-EINVAL), "default policy flags {flags:#x}");
    }
}

/// xalloc argument checks from the -EINVAL list: alignment, phase (at or
/// above the alignment, or not a multiple of the quantum), nocross, exact;
/// "an alignment below the quantum means the quantum; min and max may be
/// any value"; "max is exclusive".
#[test]
fn xalloc_arguments_at_their_edges() {
    let a = make(0x1000, 0x1000, 16);
    assert_eq!(xalloc(a, 16, 3 * 16, 0, 0, 0, 0, 0, 0), Err(EINVAL), "align not a power of two");
    assert_eq!(xalloc(a, 16, 64, 64, 0, 0, 0, 0, 0), Err(EINVAL), "phase == align");
    assert_eq!(xalloc(a, 16, 64, 128, 0, 0, 0, 0, 0), Err(EINVAL), "phase above align");
    assert_eq!(xalloc(a, 16, 64, 8, 0, 0, 0, 0, 0), Err(EINVAL), "phase not a quantum multiple");
    assert_eq!(xalloc(a, 16, 0, 0, 48, 0, 0, 0, 0), Err(EINVAL), "nocross not a power of two");
    assert_eq!(xalloc(a, 16, 0, 0, 8, 0, 0, 0, 0), Err(EINVAL), "nocross not a quantum multiple");
    assert_eq!(
        xalloc(a, 16, 0, 0, 0, 0, 0, 0x1008, VMSPACE_EXACT),
        Err(EINVAL),
        "exact not a multiple of the quantum"
    );
    assert_eq!(xalloc(a, 0, 0, 0, 0, 0, 0, 0, 0), Err(EINVAL), "size 0");
    // An alignment below the quantum means the quantum.
    let x = xalloc(a, 16, 4, 0, 0, 0, 0, 0, 0).expect("align 4 < quantum 16");
    assert_eq!(free(a, x, 16), 0);
    // Phase just below the alignment is fine.
    let x = xalloc(a, 16, 64, 48, 0, 0, 0, 0, 0).expect("phase = align - quantum");
    assert_eq!(x % 64, 48);
    assert_eq!(free(a, x, 16), 0);
    // max is exclusive: a window [0x1800, 0x1840) holds exactly 0x40.
    let x = xalloc(a, 0x40, 0, 0, 0, 0x1800, 0x1840, 0, VMSPACE_FIRSTFIT).expect("exact fit");
    assert_eq!(x, 0x1800);
    assert_eq!(free(a, x, 0x40), 0);
    let e = xalloc(a, 0x40, 0, 0, 0, 0x1800, 0x1830, 0, VMSPACE_FIRSTFIT).unwrap_err();
    assert_eq!(e, ERANGE, "a window one quantum short (\"cannot hold the size ... is -ERANGE\")");
    // With TOP the highest place below max (exclusive).
    let x = xalloc(a, 0x10, 0, 0, 0, 0x1800, 0x1840, 0, VMSPACE_FIRSTFIT | VMSPACE_TOP)
        .expect("top of the window");
    assert_eq!(x, 0x1830);
    assert_eq!(free(a, x, 0x10), 0);
    // Min and max may be any value: min above max is -ERANGE, not -EINVAL.
    let e = xalloc(a, 16, 0, 0, 0, 0x1900, 0x1800, 0, 0).unwrap_err();
    assert_eq!(e, ERANGE, "min > max (\"min >= max included, is -ERANGE\")");
    // Exact one past the end of the span, and at the last quantum.
    assert!(xalloc(a, 16, 0, 0, 0, 0, 0, 0x2000, VMSPACE_EXACT).is_err());
    assert_eq!(xalloc(a, 16, 0, 0, 0, 0, 0, 0x1ff0, VMSPACE_EXACT), Ok(0x1ff0));
    assert_eq!(free(a, 0x1ff0, 16), 0);
    check(a);
    assert_eq!(sizes(a).allocated, 0);
    destroy(a);
}

/// "fragmentation_permille: 1000 * (1 - largest_free / free), rounded up",
/// and 0 when nothing is free.
#[test]
fn fragmentation_permille_is_rounded_up() {
    let a = make(0, 4 * 16, 16);
    // Free: [0,16) and [32,64): largest 32 of 48 -> 1000/3 = 333.3 -> 334.
    assert_eq!(xalloc(a, 16, 0, 0, 0, 0, 0, 16, VMSPACE_EXACT), Ok(16));
    let s = sizes(a);
    assert_eq!((s.free, s.largest_free), (48, 32));
    assert_eq!(s.fragmentation_permille, 334);
    // Free: [0,16) and [48,64): 500 exactly.
    assert_eq!(xalloc(a, 16, 0, 0, 0, 0, 0, 32, VMSPACE_EXACT), Ok(32));
    assert_eq!(sizes(a).fragmentation_permille, 500);
    // Nothing free.
    assert_eq!(xalloc(a, 16, 0, 0, 0, 0, 0, 0, VMSPACE_EXACT), Ok(0));
    assert_eq!(xalloc(a, 16, 0, 0, 0, 0, 0, 48, VMSPACE_EXACT), Ok(48));
    let s = sizes(a);
    assert_eq!((s.free, s.largest_free, s.fragmentation_permille), (0, 0, 0));
    destroy(a);
    // 1000 pieces: one free segment of 1 among 999 of... use a span of
    // 1001 quanta with one allocation at quantum 1: 1 and 999 free ->
    // 1000 * (1 - 999/1000) = 1 exactly.
    let a = make(0, 1001, 1);
    assert_eq!(xalloc(a, 1, 0, 0, 0, 0, 0, 1, VMSPACE_EXACT), Ok(1));
    assert_eq!(sizes(a).fragmentation_permille, 1);
    destroy(a);
}

/// "Free segments of size in [2^k, 2^(k+1)) into bins[k] for the first
/// nbins (more than VMSPACE_HISTOGRAM_BINS are taken as that many ...);
/// returns the number of bins written."
#[test]
fn histogram_bins_and_count() {
    let a = make(0, 8, 1);
    // Free: [0,1), [2,8): sizes 1 (bin 0) and 6 (bin 2).
    assert_eq!(xalloc(a, 1, 0, 0, 0, 0, 0, 1, VMSPACE_EXACT), Ok(1));
    let mut bins = [0xffu64; 70];
    // SAFETY: a live arena, 64 writable bins.
    let n = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), 64) };
    assert_eq!(n, 64);
    assert_eq!(&bins[..4], &[1, 0, 1, 0]);
    assert!(bins[4..64].iter().all(|&b| b == 0));
    assert_eq!(bins[64], 0xff, "wrote past nbins");
    let mut bins = [0xffu64; 4];
    // SAFETY: a live arena, 2 writable bins (of 4).
    let n = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), 2) };
    assert_eq!(n, 2);
    assert_eq!(bins, [1, 0, 0xff, 0xff], "the first nbins only");
    let mut bins = [0xffu64; 70];
    // SAFETY: a live arena, 70 writable bins.
    let n = unsafe { vmspace_arena_histogram(a, bins.as_mut_ptr(), 70) };
    // "more than VMSPACE_HISTOGRAM_BINS are taken as that many".
    assert_eq!(n, 64, "nbins 70");
    assert!(bins[64..].iter().all(|&b| b == 0xff), "wrote past VMSPACE_HISTOGRAM_BINS");
    destroy(a);
}

/// "1 when [addr, addr + size) lies inside one span (size 0: when addr
/// lies in one or at its end), else 0".
#[test]
fn contains_at_the_ends_of_a_span() {
    let a = make(0x1000, 0x1000, 16);
    // SAFETY: a live arena (every call below).
    let c = |x: usize, s: usize| unsafe { vmspace_arena_contains(a, x, s) };
    assert_eq!(c(0x1000, 0x1000), 1);
    assert_eq!(c(0x1000, 0x1001), 0);
    assert_eq!(c(0x0fff, 1), 0);
    assert_eq!(c(0x1fff, 1), 1);
    assert_eq!(c(0x2000, 0), 1, "size 0 at the span's end");
    assert_eq!(c(0x1000, 0), 1, "size 0 at the span's start");
    assert_eq!(c(0x2001, 0), 0);
    assert_eq!(c(0x0fff, 0), 0);
    assert_eq!(c(0x1800, usize::MAX), 0, "overflowing size");
    assert_eq!(c(usize::MAX, 1), 0);
    // SAFETY: NULL is checked: "a negative errno for a bad arena".
    assert_eq!(unsafe { vmspace_arena_contains(null_mut(), 0x1000, 16) }, -EINVAL);
    destroy(a);
}

/// "A timeout of 0 tries once without sleeping ... -ETIMEDOUT (never
/// -ENOMEM)"; sizes: zero is -EINVAL, overflowing is -EOVERFLOW and changes
/// nothing; "a free of size 0 is -ENOENT or -EMSGSIZE".
#[test]
fn timed_zero_sizes_and_zero_frees() {
    let a = make(0, 64, 16);
    let x = alloc(a, 64, 0).unwrap();
    let mut y = 0;
    let t = std::time::Instant::now();
    // SAFETY: a live arena, a writable out pointer.
    let e = unsafe { vmspace_arena_alloc_timed(a, 16, 0, 0, &mut y) };
    assert_eq!(e, -ETIMEDOUT);
    // A zero timeout tries once and never sleeps (a liveness bound: a
    // sanitizer on a loaded machine may stretch the call, never to this).
    assert!(t.elapsed() < std::time::Duration::from_secs(20), "a zero timeout slept");
    assert_eq!(alloc(a, 0, 0), Err(EINVAL));
    let before = sizes(a);
    for s in [usize::MAX, usize::MAX - 14] {
        let e = alloc(a, s, 0).unwrap_err();
        // Rounded up to the quantum, the size overflows: "-EOVERFLOW address
        // or size arithmetic overflowed".
        assert_eq!(e, EOVERFLOW, "size {s:#x}");
    }
    assert_eq!(sizes(a).allocated, before.allocated);
    assert_eq!(free(a, x, 0), EMSGSIZE, "size 0 of a live allocation");
    assert_eq!(free(a, x + 16, 0), ENOENT, "size 0 where no allocation starts");
    assert_eq!(free(a, x, 48), EMSGSIZE);
    assert_eq!(free(a, x, 49), EMSGSIZE, "49 rounds to 64 but is not the size allocated");
    assert_eq!(free(a, x, 64), 0);
    assert_eq!(counters(a).bad_frees, 4);
    check(a);
    destroy(a);
}

/// Walk masks: "an unknown flag (a walk's kinds_mask of 0 included)" and "a
/// NULL walk function" are -EINVAL; a walk returns "the non-zero value that
/// stopped the walk".
#[test]
fn walk_masks_and_stop_value() {
    unsafe extern "C" fn count(arg: *mut c_void, _seg: *const vmspace_segment) -> c_int {
        // SAFETY: `arg` is the `usize` counter below.
        let n = unsafe { &mut *arg.cast::<usize>() };
        *n += 1;
        if *n == 2 {
            -77
        } else {
            0
        }
    }
    let a = make(0, 64, 16);
    let mut n = 0usize;
    let arg = (&raw mut n).cast::<c_void>();
    for mask in [0, 0x10, VMSPACE_SEG_ALL | 0x10, -1] {
        // SAFETY: a live arena, a valid callback and argument.
        assert_eq!(unsafe { vmspace_arena_walk(a, mask, Some(count), arg) }, -EINVAL, "{mask:#x}");
    }
    // SAFETY: a NULL callback is checked.
    assert_eq!(unsafe { vmspace_arena_walk(a, VMSPACE_SEG_ALL, None, arg) }, -EINVAL);
    assert_eq!(n, 0);
    assert_eq!(alloc(a, 16, 0).map(|_| ()), Ok(()));
    // SAFETY: a live arena, a valid callback and argument.
    assert_eq!(unsafe { vmspace_arena_walk(a, VMSPACE_SEG_ALL, Some(count), arg) }, -77);
    assert_eq!(n, 2);
    destroy(a);
}

/// "Bytes of an arena's name kept": 31; `vmspace_arena_name` of NULL is
/// NULL; `vmspace_arena_quantum` of NULL is 0.
#[test]
fn names_are_kept_to_31_bytes() {
    let long = c"abcdefghijklmnopqrstuvwxyz0123456789";
    let p = vmspace_params { name: long.as_ptr(), quantum: 16, ..Default::default() };
    let a = try_make(&p).unwrap();
    // SAFETY: a live arena; the name is a NUL-terminated string it keeps.
    let name = unsafe { CStr::from_ptr(vmspace_arena_name(a)) };
    assert_eq!(name.to_bytes(), &long.to_bytes()[..VMSPACE_NAME_MAX]);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_quantum(a) }, 16);
    destroy(a);
    // SAFETY: NULL is checked.
    assert!(unsafe { vmspace_arena_name(null_mut()) }.is_null());
    // SAFETY: NULL is checked.
    assert_eq!(unsafe { vmspace_arena_quantum(null_mut()) }, 0);
}

/// qcache_max: "rounded down to whole quanta, at most 8; none for quanta
/// over 2^22". Sizes up to it "come from the calling CPU's quantum-cache
/// magazines", which counts a hit or a miss; larger sizes count neither.
#[test]
fn qcache_max_rounding() {
    let cached = |quantum: usize, qcache_max: usize, size: usize| {
        let p = vmspace_params {
            base: 1 << 30,
            size: 1 << 30,
            quantum,
            qcache_max,
            ..Default::default()
        };
        let a = try_make(&p).unwrap();
        let x = alloc(a, size, 0).unwrap();
        assert_eq!(free(a, x, size), 0);
        let c = counters(a);
        destroy(a);
        c.qcache_hits + c.qcache_misses > 0
    };
    assert!(cached(16, 100, 96), "96 <= 100 rounded down to 6 quanta");
    assert!(!cached(16, 100, 97), "97 rounds up to 7 quanta, above qcache_max");
    assert!(cached(16, 1 << 20, 128), "capped at 8 quanta: 128 cached");
    assert!(!cached(16, 1 << 20, 129), "capped at 8 quanta: 129 not");
    assert!(!cached(16, 15, 1), "qcache_max below one quantum: no caches");
    assert!(cached(1 << 22, 1 << 22, 1 << 22), "quantum 2^22 has caches");
    assert!(!cached(1 << 23, 1 << 23, 1 << 23), "none for quanta over 2^22");
}

/// Every errno the header lists has its own text; positive and negative
/// give the same; never NULL; the version is VMSPACE_VERSION.
#[test]
fn strerror_and_version() {
    let listed = [22, 9, 12, 110, 34, 75, 2, 90, 17, 16, 28, 71, 5, 11, 117, 95, 4];
    let text = |e: c_int| {
        // SAFETY: never NULL, a static NUL-terminated string.
        let p = unsafe { vmspace_strerror(e) };
        assert!(!p.is_null());
        // SAFETY: as above.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    };
    let mut seen = std::collections::HashSet::new();
    for e in listed {
        assert_eq!(text(e), text(-e), "errno {e}");
        assert!(!text(e).is_empty());
        assert!(seen.insert(text(e)), "errno {e} shares its text: {}", text(e));
    }
    for e in [0, 1, 9999, c_int::MIN, c_int::MAX] {
        let _ = text(e);
    }
    // SAFETY: no arguments.
    assert_eq!(unsafe { vmspace_version() }, VMSPACE_VERSION);
    assert_eq!(EBADF, 9);
}
