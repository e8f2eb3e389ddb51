//! Outside review, round 34: a child's allocation of a size its quantum
//! caches serve, waiting without a timeout (`VMSPACE_WAIT`, the loop at
//! the root over `CpuCaches::alloc_retrying`), in a tree whose root's
//! import function refuses a few times and then gives space (held).
//!
//! Contract (capi/include/vmspace.h:98-106): "VMSPACE_WAIT sleeps until
//! space comes back [...] Nothing says when an import function's source
//! has room again, so in an arena importing through import functions
//! (vmspace_arena_set_import, vmem_set_import), and in the children of
//! one, a waiting allocation also tries again (calling the import
//! function) every 10 ms"; (:118) "never -ENOMEM"; (:196-203,
//! `qcache_misses`) each allocation counts once, a hit or a miss, however
//! often it retries while it waits.
//!
//! Liveness only: the waiter must be done within 20 s.

#![allow(dead_code)]

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vmspace_capi::ctypes::{
    vmspace_addr_t as A, vmspace_arena_t as Varena, vmspace_counters as Counters,
    vmspace_params as Params, vmspace_size_t as Sz, VMSPACE_WAIT as WAIT,
};
use vmspace_capi_ctest as _;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_timed, vmspace_arena_check, vmspace_arena_counters,
    vmspace_arena_create_ex, vmspace_arena_destroy, vmspace_arena_free, vmspace_arena_set_import,
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

static NEXT: AtomicUsize = AtomicUsize::new(1 << 44);
static REFUSALS: AtomicUsize = AtomicUsize::new(0);
const REFUSE: usize = 60;

/// Refuses its first `REFUSE` calls, then hands out fresh ranges.
unsafe extern "C" fn flaky_import(_: *mut c_void, size: Sz, _: c_int, addrp: *mut A) -> c_int {
    if REFUSALS.fetch_add(1, Ordering::SeqCst) < REFUSE {
        return 1;
    }
    let a = NEXT.fetch_add(size.next_multiple_of(1 << 20) + (1 << 20), Ordering::SeqCst);
    // SAFETY: the library passes a writable pointer.
    unsafe { addrp.write(a) };
    0
}

#[test]
fn a_forever_wait_is_served_when_the_import_function_gives_space() {
    let span = 1 << 20;
    let (parent, child, all) = full_tree(span);
    // SAFETY: a live arena; a function that follows the contract.
    let r = unsafe {
        vmspace_arena_set_import(parent, Some(flaky_import), None, core::ptr::null_mut(), 0)
    };
    assert_eq!(r, 0);
    let before = counters(child);
    let c = P(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let c = c;
        let mut x = 0;
        // SAFETY: a live arena, a writable out pointer.
        let r = unsafe { vmspace_arena_alloc(c.0, 2 * Q, WAIT, &mut x) };
        tx.send((r, x)).unwrap();
    });
    let (r, x) = rx.recv_timeout(Duration::from_secs(20)).expect("the wait ended within 20 s");
    t.join().unwrap();
    assert_eq!(r, 0, "VMSPACE_WAIT: served, never -ENOMEM");
    assert!(REFUSALS.load(Ordering::SeqCst) > REFUSE, "the import function gave the space");
    let after = counters(child);
    free(child, x, 2 * Q);
    let n = (after.qcache_hits + after.qcache_misses) - (before.qcache_hits + before.qcache_misses);
    assert_eq!(n, 1, "one allocation, one hit or miss: {before:?} -> {after:?}");
    check_and_destroy(child);
    free(parent, all, span);
    check_and_destroy(parent);
}
