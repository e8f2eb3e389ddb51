//! Outside review, round 34: a child's waiting allocation of a size its
//! quantum caches serve (`CpuCaches::alloc_retrying` inside the loop at
//! the root) woken by space a *sibling* arena returns to the root: the
//! sibling's free and destroy (held).
//!
//! Contract (capi/include/vmspace.h:98-101): "VMSPACE_WAIT sleeps until
//! space comes back: a free, a flush, a reclaim, an add, a raised limit, a
//! child's destroy. In an arena with a parent it also wakes for space
//! returned to any arena of its tree (its parent included), which an
//! import may then take." And (:196-203, `qcache_misses`): each allocation
//! counts once, a hit or a miss, however often it retries while it waits.
//!
//! The test passes whether the waiter was asleep or not when the space
//! came back; the wait is bounded by 20 s, for liveness only.

#![allow(dead_code)]

use core::ffi::c_int;
use std::time::Duration;

use vmspace_capi::ctypes::{
    vmspace_addr_t as A, vmspace_arena_t as Varena, vmspace_counters as Counters,
    vmspace_params as Params, vmspace_size_t as Sz, VMSPACE_WAIT as WAIT,
};
use vmspace_capi_ctest as _;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_timed, vmspace_arena_check, vmspace_arena_counters,
    vmspace_arena_create_ex, vmspace_arena_destroy, vmspace_arena_free,
};

const Q: usize = 4096;
const ETIMEDOUT: c_int = 110;
/// The liveness bound of a waiting allocation.
const BOUND_NS: u64 = 20_000_000_000;

/// An arena pointer that may cross threads (the C API is thread-safe).
#[derive(Clone, Copy)]
struct P(*mut Varena);
// SAFETY: the C API's arenas are used from any thread.
unsafe impl Send for P {}
// SAFETY: as above.
unsafe impl Sync for P {}

fn create(base: A, size: Sz, qcache_max: Sz, parent: *mut Varena) -> *mut Varena {
    let p = Params {
        name: c"r34".as_ptr(),
        base,
        size,
        quantum: Q,
        qcache_max,
        flags: 0,
        reserved: 0,
        max_tags: 0,
        parent,
    };
    let mut a = core::ptr::null_mut();
    // SAFETY: valid parameters, a writable out pointer.
    assert_eq!(unsafe { vmspace_arena_create_ex(&p, &mut a) }, 0);
    assert!(!a.is_null());
    a
}

fn counters(a: *mut Varena) -> Counters {
    let mut c = Counters::default();
    // SAFETY: a live arena, a writable structure.
    assert_eq!(unsafe { vmspace_arena_counters(a, &mut c) }, 0);
    c
}

fn alloc(a: *mut Varena, size: Sz) -> Result<A, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc(a, size, 0, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

fn timed(a: P, size: Sz, ns: u64) -> Result<A, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc_timed(a.0, size, WAIT, ns, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

fn free(a: *mut Varena, x: A, size: Sz) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_free(a, x, size) }, 0);
}

fn check_and_destroy(a: *mut Varena) {
    // SAFETY: a live arena, destroyed once, not used after.
    unsafe {
        assert_eq!(vmspace_arena_check(a), 0);
        assert_eq!(vmspace_arena_destroy(a), 0);
    }
}

/// A parent with one span, all of it allocated, and a child with caches
/// for 1 to 4 quanta importing from it.
fn full_tree(span: Sz) -> (*mut Varena, *mut Varena, A) {
    let parent = create(1 << 40, span, 0, core::ptr::null_mut());
    let all = alloc(parent, span).unwrap();
    let child = create(0, 0, 4 * Q, parent);
    (parent, child, all)
}

/// Parent's whole span imported by sibling `b` (one allocation in it); a
/// cached-size allocation waits in child `a`; `b` frees and is destroyed,
/// returning its span to the parent: `a`'s wait is served, counted once.
#[test]
fn a_siblings_destroy_serves_a_waiting_cached_allocation() {
    let span = 1 << 20;
    let parent = create(1 << 40, span, 0, core::ptr::null_mut());
    let a = create(0, 0, 4 * Q, parent);
    let b = create(0, 0, 0, parent);
    let all = alloc(b, span).expect("b imports the parent's whole span");
    assert_eq!(alloc(a, Q), Err(-12), "the tree is full");
    let before = counters(a);
    let pa = P(a);
    let got = std::thread::scope(|sc| {
        let t = sc.spawn(move || timed(pa, 2 * Q, BOUND_NS));
        std::thread::sleep(Duration::from_millis(100));
        free(b, all, span);
        check_and_destroy(b);
        t.join().unwrap()
    });
    let x = got.expect("served once the sibling gave its span back");
    let after = counters(a);
    free(a, x, 2 * Q);
    let n = (after.qcache_hits + after.qcache_misses) - (before.qcache_hits + before.qcache_misses);
    assert_eq!(n, 1, "one allocation, one hit or miss: {before:?} -> {after:?}");
    check_and_destroy(a);
    check_and_destroy(parent);
}
