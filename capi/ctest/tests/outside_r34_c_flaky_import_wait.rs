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

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vmspace_capi::ctypes::{vmspace_addr_t as A, vmspace_size_t as Sz, VMSPACE_WAIT as WAIT};
use vmspace_capi_ctest as _;
use vmspace_capi_user::vmspace_native_api::{vmspace_arena_alloc, vmspace_arena_set_import};

mod common;
use common::{check_and_destroy, counters, free, full_tree, P, Q};

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
