//! Outside review, round 33: a child's waiting allocation of a size its
//! quantum caches serve (now `CpuCaches::alloc_retrying` inside the loop
//! at the root) is still woken and served by the ways space comes back,
//! tries a timeout of 0 once, and counts once.
//!
//! Contracts (capi/include/vmspace.h, quoted):
//! - :98-106: "VMSPACE_WAIT sleeps until space comes back: a free, a
//!   flush, a reclaim, an add, a raised limit, a child's destroy. In an
//!   arena with a parent it also wakes for space returned to any arena of
//!   its tree (its parent included), which an import may then take. [...]
//!   a waiting allocation also tries again (calling the import function)
//!   every 10 ms, also when they were set after the wait began."
//! - :329-333 (`vmspace_arena_alloc_timed`): "A timeout of 0 tries once
//!   without sleeping"; "fails with -ETIMEDOUT (never -ENOMEM)".
//! - :196-203 (`qcache_misses`): "each allocation counts once, a hit or a
//!   miss, however often it retries while it waits".
//! - :178-188 (`failures`): "every try of a waiting or timed allocation
//!   that found no space" is counted: a timeout of 0, one try, counts what
//!   one try without waiting counts.
//!
//! Every wake-up test passes whether the waiter was asleep or not when the
//! space came back (the other thread does not wait for it to sleep; a
//! short pause only makes the asleep case the likely one); the waits are
//! bounded by 20 s, for liveness only.

use core::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vmspace_capi::ctypes::{vmspace_addr_t as A, vmspace_size_t as Sz};
use vmspace_capi_ctest as _;
use vmspace_capi_user::vmspace_native_api::vmspace_arena_set_import;

mod common;
use common::{
    alloc, check_and_destroy, counters, free, full_tree, timed, BOUND_NS, ETIMEDOUT, P, Q,
};

/// A cached-size allocation waiting in the child is served when the
/// parent frees (space returned to the root of its tree), and counts once.
#[test]
fn a_parent_free_serves_a_waiting_cached_child_allocation() {
    let span = 1 << 20;
    let (parent, child, all) = full_tree(span);
    let c = P(child);
    let before = counters(child);
    let got = std::thread::scope(|sc| {
        let t = sc.spawn(move || timed(c, Q, BOUND_NS));
        std::thread::sleep(Duration::from_millis(100));
        free(parent, all, span);
        t.join().unwrap()
    });
    let x = got.expect("served once the parent freed");
    free(child, x, Q);
    let after = counters(child);
    let n = (after.qcache_hits + after.qcache_misses) - (before.qcache_hits + before.qcache_misses);
    assert_eq!(n, 1, "one allocation, one hit or miss: {before:?} -> {after:?}");
    check_and_destroy(child);
    check_and_destroy(parent);
}

static NEXT: AtomicUsize = AtomicUsize::new(1 << 44);

/// Hands out fresh ranges.
unsafe extern "C" fn import(_: *mut c_void, size: Sz, _: c_int, addrp: *mut A) -> c_int {
    let a = NEXT.fetch_add(size.next_multiple_of(1 << 20) + (1 << 20), Ordering::SeqCst);
    // SAFETY: the library passes a writable pointer.
    unsafe { addrp.write(a) };
    0
}

/// A cached-size allocation waiting in the child of a full root with no
/// import functions is served once the root is given some
/// (`vmspace_arena_set_import` starts the wait polling).
#[test]
fn set_import_on_the_root_serves_a_waiting_cached_child_allocation() {
    let span = 1 << 20;
    let (parent, child, all) = full_tree(span);
    let (c, p) = (P(child), P(parent));
    let got = std::thread::scope(|sc| {
        let t = sc.spawn(move || timed(c, 2 * Q, BOUND_NS));
        std::thread::sleep(Duration::from_millis(100));
        let null = core::ptr::null_mut();
        // SAFETY: a live arena; a function that follows the contract.
        let r = unsafe { vmspace_arena_set_import(p.0, Some(import), None, null, 0) };
        assert_eq!(r, 0);
        t.join().unwrap()
    });
    let x = got.expect("served once the root imports");
    free(child, x, 2 * Q);
    check_and_destroy(child);
    free(parent, all, span);
    check_and_destroy(parent);
}

/// A timeout of 0 tries once: -ETIMEDOUT, one miss, and the failures one
/// try without waiting counts.
#[test]
fn a_zero_timeout_in_a_cached_child_is_one_try() {
    let span = 1 << 20;
    let (parent, child, all) = full_tree(span);
    let c0 = counters(child);
    assert!(alloc(child, Q).is_err());
    let c1 = counters(child);
    assert_eq!(timed(P(child), Q, 0), Err(-ETIMEDOUT));
    let c2 = counters(child);
    assert_eq!(c1.qcache_hits + c1.qcache_misses - c0.qcache_hits - c0.qcache_misses, 1);
    assert_eq!(
        c2.qcache_hits + c2.qcache_misses - c1.qcache_hits - c1.qcache_misses,
        1,
        "one allocation, one hit or miss: {c1:?} -> {c2:?}"
    );
    assert_eq!(
        c2.failures - c1.failures,
        c1.failures - c0.failures,
        "a timeout of 0 tries once, as an allocation without waiting does: {c0:?} {c1:?} {c2:?}"
    );
    check_and_destroy(child);
    free(parent, all, span);
    check_and_destroy(parent);
}

/// Refuses every import.
unsafe extern "C" fn no_import(_: *mut c_void, _: Sz, _: c_int, _: *mut A) -> c_int {
    1
}

/// A timed cached-size allocation in the child of a full root ends in
/// -ETIMEDOUT, not before its time (the monotonic clock), and well within
/// a generous bound after it: with the root waiting for the whole time,
/// and with the root polling its import function every 10 ms.
#[test]
fn a_timed_cached_child_allocation_ends_on_time() {
    let span = 1 << 20;
    for polling in [false, true] {
        let (parent, child, all) = full_tree(span);
        if polling {
            // SAFETY: a live arena; a function that follows the contract.
            let r = unsafe {
                vmspace_arena_set_import(parent, Some(no_import), None, core::ptr::null_mut(), 0)
            };
            assert_eq!(r, 0);
        }
        let t = std::time::Instant::now();
        assert_eq!(timed(P(child), Q, 200_000_000), Err(-ETIMEDOUT), "polling {polling}");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(200), "polling {polling}: ended early, {took:?}");
        assert!(took < Duration::from_secs(10), "polling {polling}: {took:?}");
        let c = counters(child);
        assert_eq!(c.qcache_hits + c.qcache_misses, 1, "polling {polling}: {c:?}");
        check_and_destroy(child);
        free(parent, all, span);
        check_and_destroy(parent);
    }
}
