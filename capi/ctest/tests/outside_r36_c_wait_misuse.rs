//! Outside review, round 36: the C API's waiting allocations given
//! requests that can never be met, and misuse that must come back as an
//! error code (not a hang, not a crash).
//!
//! Every call that might wait runs on its own thread; the test waits for
//! its answer at most 20 s (liveness only: a hang is the failure).

use std::sync::mpsc;
use std::time::Duration;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_handle, vmspace_arena_alloc_timed,
    vmspace_arena_counters, vmspace_arena_create, vmspace_arena_destroy, vmspace_arena_free,
    vmspace_arena_free_handle, vmspace_arena_xalloc,
};

const ENOMEM: i32 = 12;
const ERANGE: i32 = 34;
const EOPNOTSUPP: i32 = 95;
const ENOENT: i32 = 2;
const ETIMEDOUT: i32 = 110;
const Q: usize = 4096;
const BASE: usize = 1 << 30;
const SPAN: usize = 1 << 20;

/// The arena as a `usize`, to hand to another thread.
fn arena(qcache_max: usize) -> usize {
    // SAFETY: a valid NUL-terminated name.
    let a = unsafe { vmspace_arena_create(c"r36".as_ptr(), BASE, SPAN, Q, qcache_max, 0) };
    assert!(!a.is_null());
    a as usize
}

fn destroy(a: usize) {
    // SAFETY: made by `arena`, not used after this.
    assert_eq!(unsafe { vmspace_arena_destroy(a as *mut vmspace_arena_t) }, 0);
}

fn counters(a: usize) -> vmspace_counters {
    let mut c = vmspace_counters::default();
    // SAFETY: a live arena; `c` writable.
    assert_eq!(unsafe { vmspace_arena_counters(a as *mut vmspace_arena_t, &mut c) }, 0);
    c
}

/// Run `f` on another thread; its answer within 20 s, or a panic naming
/// `what` (it hangs).
fn answer(what: &str, f: impl FnOnce() -> (i32, usize) + Send + 'static) -> (i32, usize) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => r,
        Err(_) => panic!("{what}: no answer in 20 s (it waits for space that can never come)"),
    }
}

fn alloc(a: usize, size: usize, flags: i32) -> (i32, usize) {
    let mut addr = 0;
    // SAFETY: a live arena; `addr` writable.
    let r = unsafe { vmspace_arena_alloc(a as *mut vmspace_arena_t, size, flags, &mut addr) };
    (r, addr)
}

fn xalloc(
    a: usize,
    size: usize,
    nocross: usize,
    min: usize,
    max: usize,
    ex: usize,
    fl: i32,
) -> (i32, usize) {
    let mut addr = 0;
    // SAFETY: a live arena; `addr` writable.
    let r = unsafe {
        vmspace_arena_xalloc(
            a as *mut vmspace_arena_t,
            size,
            0,
            0,
            nocross,
            min,
            max,
            ex,
            fl,
            &mut addr,
        )
    };
    (r, addr)
}

/// vmspace.h:118: "VMSPACE_WAIT 0x20 /* wait until space is freed, never
/// -ENOMEM (-ERANGE at once if never) */"; vmspace.h:321: "Allocate
/// `size` units (rounded up to the quantum)". A size that rounds up past
/// the largest address can never be met: an error at once, not a wait.
#[test]
fn wait_for_a_size_that_cannot_be_rounded_answers_at_once() {
    let a = arena(0);
    for size in [usize::MAX, usize::MAX - Q + 2] {
        let (r, _) =
            answer("VMSPACE_WAIT of an unroundable size", move || alloc(a, size, VMSPACE_WAIT));
        assert!(r < 0 && r != -ENOMEM, "size {size:#x}: {r}");
        let t = answer("timed alloc of an unroundable size", move || {
            let mut addr = 0;
            // SAFETY: a live arena; `addr` writable.
            let r = unsafe {
                vmspace_arena_alloc_timed(a as *mut vmspace_arena_t, size, 0, u64::MAX, &mut addr)
            };
            (r, addr)
        });
        assert!(t.0 < 0 && t.0 != -ENOMEM, "timed, size {size:#x}: {}", t.0);
    }
    destroy(a);
}

/// vmspace.h:118 as above, for `xalloc` (vmspace.h:341-344: "inside [min,
/// max) (max 0: no upper limit; max is exclusive)"; "not crossing a
/// multiple of `nocross`"): a window smaller than the size, a size larger
/// than `nocross`, an exact start whose end overflows, can never be met:
/// an error at once (-ERANGE for the clashes), with VMSPACE_WAIT as
/// without.
#[test]
fn waiting_xalloc_with_constraints_that_clash_answers_at_once() {
    let a = arena(0);
    let cases: [(&str, usize, usize, usize, usize, usize, i32); 4] = [
        ("window smaller than the size", 2 * Q, 0, BASE, BASE + Q, 0, 0),
        ("size over nocross", 2 * Q, Q, 0, 0, 0, 0),
        ("max below min", Q, 0, BASE + 2 * Q, BASE + Q, 0, 0),
        ("exact end past the top", 2 * Q, 0, 0, 0, usize::MAX - Q + 1, VMSPACE_EXACT),
    ];
    for (what, size, nocross, min, max, ex, fl) in cases {
        let now = xalloc(a, size, nocross, min, max, ex, fl);
        assert!(now.0 < 0 && now.0 != -ENOMEM, "{what}, no wait: {}", now.0);
        let waited =
            answer(what, move || xalloc(a, size, nocross, min, max, ex, fl | VMSPACE_WAIT));
        assert_eq!(waited.0, now.0, "{what}: waiting answers otherwise than not");
        if what != "exact end past the top" {
            assert_eq!(now.0, -ERANGE, "{what}");
        }
    }
    destroy(a);
}

/// vmspace.h:383-385: "Allocate by handle [...] Never from the quantum
/// caches; VMSPACE_WAIT is -EOPNOTSUPP." and vmspace.h:394-400 with
/// :191 ("bad_frees: frees refused (arena and caches)"): a handle of
/// another live arena is -ENOENT, counted, and frees nothing.
#[test]
fn handles_across_arenas_and_waiting_handles() {
    let (a, b) = (arena(8 * Q), arena(8 * Q));
    let mut h = vmspace_handle::default();
    // SAFETY: live arenas; `h` writable.
    unsafe {
        assert_eq!(
            vmspace_arena_alloc_handle(a as *mut vmspace_arena_t, Q, VMSPACE_WAIT, &mut h),
            -EOPNOTSUPP
        );
        assert_eq!(vmspace_arena_alloc_handle(a as *mut vmspace_arena_t, Q, 0, &mut h), 0);
        let before = counters(b);
        let mut size = 7;
        assert_eq!(vmspace_arena_free_handle(b as *mut vmspace_arena_t, h, &mut size), -ENOENT);
        assert_eq!(size, 7, "a refused free wrote the size");
        let after = counters(b);
        assert_eq!(after.bad_frees, before.bad_frees + 1, "{before:?} -> {after:?}");
        assert_eq!(after.frees, before.frees);
        // Still live in `a`: freed there once.
        assert_eq!(vmspace_arena_free_handle(a as *mut vmspace_arena_t, h, &mut size), 0);
        assert_eq!(size, Q);
        assert_eq!(vmspace_arena_free_handle(a as *mut vmspace_arena_t, h, &mut size), -ENOENT);
        // A free by address whose end overflows: refused and counted.
        let before = counters(a);
        assert!(vmspace_arena_free(a as *mut vmspace_arena_t, usize::MAX - Q + 1, 2 * Q) < 0);
        let after = counters(a);
        assert_eq!(after.bad_frees, before.bad_frees + 1, "{before:?} -> {after:?}");
    }
    destroy(a);
    destroy(b);
}

/// vmspace.h:329-332 (`vmspace_arena_alloc_timed`): "A timeout of 0 tries
/// once without sleeping", "fails with -ETIMEDOUT (never -ENOMEM)"; and
/// :199-203 ("qcache_misses: [...] each allocation counts once"): a full
/// arena's cached size with timeout 0 and with a short timeout each add
/// exactly one miss.
#[test]
fn timed_cached_allocations_in_a_full_arena_count_one_miss_each() {
    let a = arena(8 * Q);
    // Fill the arena with one uncached allocation.
    assert_eq!(alloc(a, SPAN, 0).0, 0);
    for timeout in [0u64, 1_000_000, 20_000_000] {
        let before = counters(a);
        let (r, _) = answer("timed", move || {
            let mut addr = 0;
            // SAFETY: a live arena; `addr` writable.
            let r = unsafe {
                vmspace_arena_alloc_timed(
                    a as *mut vmspace_arena_t,
                    Q,
                    VMSPACE_WAIT,
                    timeout,
                    &mut addr,
                )
            };
            (r, addr)
        });
        assert_eq!(r, -ETIMEDOUT, "timeout {timeout}");
        let after = counters(a);
        assert_eq!(after.qcache_misses, before.qcache_misses + 1, "timeout {timeout}: {after:?}");
        assert!(after.failures > before.failures, "timeout {timeout}: no failed try counted");
    }
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_free(a as *mut vmspace_arena_t, BASE, SPAN) }, 0);
    destroy(a);
}
