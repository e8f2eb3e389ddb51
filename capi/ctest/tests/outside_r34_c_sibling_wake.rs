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

use std::time::Duration;

use vmspace_capi_ctest as _;

mod common;
use common::{alloc, check_and_destroy, counters, create, free, timed, BOUND_NS, P, Q};

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
