//! Round 25 outside review: claims of `capi/include/vmspace.h`, tested
//! through the C symbols of libvmspace, called from Rust (their Rust
//! definitions in `vmspace_capi_user` and `vmspace_capi::ctypes`, which the
//! build checks against the header).

use core::ffi::{c_int, c_void};
use std::sync::mpsc;
use std::time::Duration;

use vmspace_capi::ctypes::{
    vmspace_addr_t as Addr, vmspace_arena_t as Arena, vmspace_handle as Handle,
    vmspace_params as Params, vmspace_segment as Segment, VMSPACE_BESTFIT as BESTFIT,
    VMSPACE_EXACT as EXACT, VMSPACE_FIRSTFIT as FIRSTFIT, VMSPACE_WAIT as WAIT,
};
use vmspace_capi_ctest as _;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_add, vmspace_arena_alloc, vmspace_arena_alloc_handle, vmspace_arena_alloc_timed,
    vmspace_arena_check, vmspace_arena_contains, vmspace_arena_create, vmspace_arena_create_ex,
    vmspace_arena_destroy, vmspace_arena_free, vmspace_arena_free_handle, vmspace_arena_histogram,
    vmspace_arena_name, vmspace_arena_quantum, vmspace_arena_walk, vmspace_arena_xalloc,
};

mod common;
use common::counters;

const EINVAL: c_int = 22;
const ENOMEM: c_int = 12;
const ENOENT: c_int = 2;
const ERANGE: c_int = 34;
const EOVERFLOW: c_int = 75;
const EMSGSIZE: c_int = 90;
const ETIMEDOUT: c_int = 110;
const EOPNOTSUPP: c_int = 95;
const EEXIST: c_int = 17;

const Q: usize = 0x1000;

/// A little arena of `n` quanta at 0x10000 (no quantum caches).
fn arena(n: usize) -> *mut Arena {
    // SAFETY: a NUL-terminated name; plain values.
    let a = unsafe { vmspace_arena_create(c"r25".as_ptr(), 0x10000, n * Q, Q, 0, 0) };
    assert!(!a.is_null());
    a
}

/// `vmspace_arena_alloc_timed`: "when the time is up the allocation is
/// tried once more, then fails with -ETIMEDOUT (never -ENOMEM). A timeout
/// of 0 tries once without sleeping."
#[test]
fn timed_zero_is_etimedout_never_enomem() {
    let a = arena(4);
    let mut x = 0;
    // SAFETY: live arena, valid out-pointers throughout this test.
    unsafe {
        assert_eq!(vmspace_arena_alloc(a, 4 * Q, 0, &mut x), 0);
        assert_eq!(vmspace_arena_alloc_timed(a, Q, 0, 0, &mut x), -ETIMEDOUT);
        assert_eq!(vmspace_arena_alloc_timed(a, Q, FIRSTFIT, 1000, &mut x), -ETIMEDOUT);
        assert_eq!(vmspace_arena_destroy(a), 0);
    }
}

/// VMSPACE_WAIT: "wait until space is freed, never -ENOMEM (-ERANGE at
/// once if never)"; "sleeps until space comes back: a free, ..., an add":
/// a request larger than every span waits (an add may come), and an add
/// ends the wait; constraints that can never be met are -ERANGE at once.
/// A handle allocation with VMSPACE_WAIT is -EOPNOTSUPP.
#[test]
fn waits_end_with_an_add_and_impossible_ones_are_erange() {
    let a = arena(4) as usize;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut x = 0;
        // SAFETY: a live arena, a valid out-pointer.
        let r = unsafe { vmspace_arena_alloc(a as *mut Arena, 8 * Q, WAIT, &mut x) };
        let _ = tx.send((r, x));
    });
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "waits");
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_add(a as *mut Arena, 0x100000, 8 * Q, 0) }, 0);
    let r = rx.recv_timeout(Duration::from_secs(30));
    assert_eq!(r, Ok((0, 0x100000)), "an add ends the wait");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut x = 0;
        // SAFETY: as above.
        let r = unsafe {
            vmspace_arena_xalloc(a as *mut Arena, 4 * Q, 0, 0, 2 * Q, 0, 0, 0, WAIT, &mut x)
        };
        let _ = tx.send(r);
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(-ERANGE), "never: at once");
    let mut h = Handle { addr: 0, tag: 0, arena: 0 };
    // SAFETY: as above.
    unsafe {
        assert_eq!(vmspace_arena_alloc_handle(a as *mut Arena, Q, WAIT, &mut h), -EOPNOTSUPP);
        assert_eq!(vmspace_arena_alloc_handle(a as *mut Arena, 0, 0, &mut h), -EINVAL);
        assert_eq!(vmspace_arena_check(a as *mut Arena), 0);
        assert_eq!(vmspace_arena_destroy(a as *mut Arena), 0);
    }
}

unsafe extern "C" fn count_walk(arg: *mut c_void, _seg: *const Segment) -> c_int {
    // SAFETY: the test passes a pointer to a c_int.
    unsafe { *(arg as *mut c_int) += 1 };
    0
}

unsafe extern "C" fn stop_walk(_arg: *mut c_void, _seg: *const Segment) -> c_int {
    7
}

/// Walk, histogram, contains, name, quantum as the header says.
#[test]
fn introspection_as_documented() {
    let a = arena(16);
    let mut x = 0;
    let mut n: c_int = 0;
    // SAFETY: live arena, valid pointers; bad ones are the point where
    // the header says they are checked (NULL; misaligned).
    unsafe {
        assert_eq!(vmspace_arena_alloc(a, 3 * Q, FIRSTFIT, &mut x), 0);
        let arg = &mut n as *mut c_int as *mut c_void;
        assert_eq!(vmspace_arena_walk(a, 0, Some(count_walk), arg), -EINVAL, "mask 0");
        assert_eq!(vmspace_arena_walk(a, 0x10, Some(count_walk), arg), -EINVAL, "unknown kind");
        assert_eq!(vmspace_arena_walk(a, 0xf, None, arg), -EINVAL, "NULL walk");
        assert_eq!(vmspace_arena_walk(a, 0xf, Some(count_walk), arg), 0);
        assert_eq!(n, 3, "span, allocated, free");
        assert_eq!(vmspace_arena_walk(a, 0xf, Some(stop_walk), arg), 7);
        // Histogram: "Free segments of size in [2^k, 2^(k+1)) into bins[k]
        // for the first nbins (at most 64); returns the number written."
        let mut bins = [u64::MAX; 100];
        assert_eq!(vmspace_arena_histogram(a, bins.as_mut_ptr(), 100), 64);
        assert_eq!(bins[64], u64::MAX, "nothing written past 64");
        let free = 13 * Q; // 0xd000: [2^15, 2^16)
        assert_eq!(bins[15], 1);
        assert_eq!(bins.iter().take(64).sum::<u64>(), 1, "{free:#x}");
        assert_eq!(vmspace_arena_histogram(a, core::ptr::null_mut(), 4), -EINVAL);
        assert_eq!(vmspace_arena_histogram(a, core::ptr::null_mut(), 0), 0);
        let mut raw = [0u64; 9];
        let mis = (raw.as_mut_ptr() as *mut u8).add(1) as *mut u64;
        assert_eq!(vmspace_arena_histogram(a, mis, 4), -EINVAL, "misaligned out-pointer");
        // Contains: "1 when [addr, addr + size) lies inside one span (size
        // 0: when addr lies in one or at its end), else 0".
        let (lo, hi) = (0x10000usize, 0x10000 + 16 * Q);
        assert_eq!(vmspace_arena_contains(a, lo, 16 * Q), 1);
        assert_eq!(vmspace_arena_contains(a, hi, 0), 1, "at its end");
        assert_eq!(vmspace_arena_contains(a, lo, 0), 1);
        assert_eq!(vmspace_arena_contains(a, hi, 1), 0);
        assert_eq!(vmspace_arena_contains(a, lo - 1, 0), 0);
        assert_eq!(vmspace_arena_contains(a, lo, usize::MAX), 0, "wraps: not inside");
        assert_eq!(vmspace_arena_contains(a, usize::MAX, 2), 0);
        assert_eq!(vmspace_arena_quantum(a), Q);
        assert!(!vmspace_arena_name(a).is_null());
        // Misaligned out-pointer for an allocation: -EINVAL, nothing done.
        let before = counters(a);
        let mut raw2 = [0usize; 3];
        let mis2 = (raw2.as_mut_ptr() as *mut u8).add(1) as *mut Addr;
        assert_eq!(vmspace_arena_alloc(a, Q, 0, mis2), -EINVAL);
        assert_eq!(vmspace_arena_alloc(a, Q, 0, core::ptr::null_mut()), -EINVAL);
        assert_eq!(counters(a).allocs, before.allocs);
        assert_eq!(vmspace_arena_alloc(a, Q, BESTFIT | FIRSTFIT, &mut x), -EINVAL, "two policies");
        assert_eq!(vmspace_arena_check(a), 0);
        assert_eq!(vmspace_arena_destroy(a), 0);
        // A second destroy of this heap arena would read freed memory
        // (-EBADF only until it is reused, the header says; AddressSanitizer
        // reports the read): errors.c checks it on storage that stays.
        assert_eq!(vmspace_arena_quantum(core::ptr::null_mut()), 0);
        assert!(vmspace_arena_name(core::ptr::null_mut()).is_null());
        assert!(vmspace_arena_contains(core::ptr::null_mut(), 0, 0) < 0);
    }
}

/// Frees: "A free checks the allocation first: a free of size 0 is
/// -ENOENT or -EMSGSIZE"; wrong size -EMSGSIZE; never allocated -ENOENT;
/// double free -ENOENT; counters: bad frees counted as bad_frees, not as
/// failures ("(bad frees aside)"); handles: stale -ENOENT.
#[test]
fn frees_as_documented() {
    let a = arena(16);
    let mut x = 0;
    // SAFETY: live arena, valid pointers.
    unsafe {
        assert_eq!(vmspace_arena_alloc(a, 2 * Q, 0, &mut x), 0);
        let before = counters(a);
        assert_eq!(vmspace_arena_free(a, x, 0), -EMSGSIZE, "size 0 of a live allocation");
        assert_eq!(vmspace_arena_free(a, x + Q, 0), -ENOENT, "size 0 where none starts");
        assert_eq!(vmspace_arena_free(a, x, 3 * Q), -EMSGSIZE);
        assert_eq!(vmspace_arena_free(a, x + Q, Q), -ENOENT);
        assert_eq!(vmspace_arena_free(a, usize::MAX, usize::MAX), -ENOENT);
        let after = counters(a);
        assert_eq!(after.bad_frees, before.bad_frees + 5);
        assert_eq!(after.failures, before.failures, "bad frees aside");
        assert_eq!(after.frees, before.frees);
        assert_eq!(vmspace_arena_free(a, x, 2 * Q), 0);
        assert_eq!(vmspace_arena_free(a, x, 2 * Q), -ENOENT, "double free");
        let mut h = Handle { addr: 0, tag: 0, arena: 0 };
        assert_eq!(vmspace_arena_alloc_handle(a, Q, 0, &mut h), 0);
        let mut sz = 0;
        assert_eq!(vmspace_arena_free_handle(a, h, &mut sz), 0);
        assert_eq!(sz, Q);
        assert_eq!(vmspace_arena_free_handle(a, h, &mut sz), -ENOENT, "stale handle");
        let b = arena(16);
        let mut hb = Handle { addr: 0, tag: 0, arena: 0 };
        assert_eq!(vmspace_arena_alloc_handle(b, Q, 0, &mut hb), 0);
        assert_eq!(vmspace_arena_free_handle(a, hb, &mut sz), -ENOENT, "foreign handle");
        assert_eq!(vmspace_arena_free_handle(b, hb, core::ptr::null_mut()), 0);
        assert_eq!(vmspace_arena_check(a), 0);
        assert_eq!(vmspace_arena_destroy(a), 0);
        assert_eq!(vmspace_arena_destroy(b), 0);
    }
}

/// Spans and constraints at the top of the address space and the
/// documented -EINVAL cases of xalloc and create_ex.
#[test]
fn spans_constraints_and_params_as_documented() {
    let a = arena(16);
    let mut x = 0;
    // SAFETY: live arena, valid pointers.
    unsafe {
        // "a span's end must be representable: none ends at 2^64".
        assert_eq!(vmspace_arena_add(a, usize::MAX - Q + 1, Q, 0), -EOVERFLOW);
        assert_eq!(vmspace_arena_add(a, usize::MAX - Q + 1, 2 * Q, 0), -EOVERFLOW);
        assert_eq!(vmspace_arena_add(a, 0x10000 + Q, Q, 0), -EEXIST);
        assert_eq!(vmspace_arena_add(a, 0x100000, 0, 0), -EINVAL, "zero size");
        assert_eq!(vmspace_arena_add(a, 0x100000 + 1, Q, 0), -EINVAL, "misaligned");
        assert_eq!(vmspace_arena_add(a, 0x100000, Q, 1), -EINVAL, "flags must be 0");
        assert_eq!(
            vmspace_arena_add(a, usize::MAX - 2 * Q + 1, Q, 0),
            0,
            "the last quantum below the top"
        );
        // xalloc: "max is exclusive".
        let (lo, hi) = (0x10000usize, 0x10000 + 16 * Q);
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 0, hi - Q, hi, 0, 0, &mut x), 0);
        assert_eq!(x, hi - Q);
        let r = vmspace_arena_xalloc(a, 2 * Q, 0, 0, 0, lo, lo + 2 * Q - 1, 0, 0, &mut x);
        assert!(r == -ENOMEM || r == -ERANGE, "{r}");
        // -EINVAL: phase at or above the alignment; nocross not a power
        // of two; exact not a multiple of the quantum; phase not a multiple.
        assert_eq!(vmspace_arena_xalloc(a, Q, 2 * Q, 2 * Q, 0, 0, 0, 0, 0, &mut x), -EINVAL);
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 3 * Q, 0, 0, 0, 0, &mut x), -EINVAL);
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, lo + 1, EXACT, &mut x), -EINVAL);
        assert_eq!(vmspace_arena_xalloc(a, Q, 4 * Q, 1, 0, 0, 0, 0, 0, &mut x), -EINVAL);
        assert_eq!(vmspace_arena_xalloc(a, Q, 3 * Q, 0, 0, 0, 0, 0, 0, &mut x), -EINVAL);
        // "without it, exact is not read".
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, 12345, 0, &mut x), 0);
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, lo, EXACT, &mut x), 0);
        assert_eq!(x, lo);
        assert_eq!(vmspace_arena_xalloc(a, Q, 0, 0, 0, 0, 0, lo, EXACT, &mut x), -ENOMEM);
        // "-ERANGE constraints that can never be met together".
        assert_eq!(vmspace_arena_xalloc(a, 4 * Q, 0, 0, 2 * Q, 0, 0, 0, 0, &mut x), -ERANGE);
        assert_eq!(vmspace_arena_check(a), 0);
        assert_eq!(vmspace_arena_destroy(a), 0);

        // create_ex: "a non-zero params.reserved" is -EINVAL and "*arenap is
        // cleared first"; quantum over 2^27 -EINVAL.
        let mut out: *mut Arena = 8usize as *mut Arena;
        let mut p = Params {
            name: core::ptr::null(),
            base: 0x10000,
            size: 16 * Q,
            quantum: Q,
            qcache_max: 0,
            flags: 0,
            reserved: 1,
            max_tags: 0,
            parent: core::ptr::null_mut(),
        };
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), -EINVAL);
        assert!(out.is_null(), "cleared first");
        p.reserved = 0;
        p.quantum = 1 << 28;
        p.size = 1 << 28;
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), -EINVAL);
        p.quantum = 3 * Q;
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), -EINVAL);
        p.quantum = Q;
        p.flags = BESTFIT | FIRSTFIT;
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), -EINVAL);
        p.flags = 0;
        p.max_tags = 1;
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), -EINVAL, "max_tags too small");
        p.max_tags = 0;
        p.base = usize::MAX - Q + 1;
        p.size = Q;
        let r = vmspace_arena_create_ex(&p, &mut out);
        assert_eq!(r, -EOVERFLOW, "a span ending at 2^64");
        p.base = 0x10000;
        p.size = 16 * Q;
        assert_eq!(vmspace_arena_create_ex(&p, &mut out), 0);
        assert!(!out.is_null());
        assert_eq!(vmspace_arena_destroy(out), 0);
        assert_eq!(vmspace_arena_create_ex(&p, core::ptr::null_mut()), -EINVAL);
        assert_eq!(vmspace_arena_create_ex(core::ptr::null(), &mut out), -EINVAL);
    }
}
