//! Outside review, round 37: vmem(9) allocations that can never succeed,
//! with a reclaim hook set and with M_WAITOK: an error at once, no hook,
//! no wait, and the counters unchanged where the docs say so.
//!
//! Contracts (quoted):
//! - capi/include/vmspace.h:118 (`VMSPACE_WAIT`): "wait until space is
//!   freed, never -ENOMEM (-ERANGE at once if never)".
//! - README.md (vmem table, return values): "a size too large to round up
//!   is `ENOMEM`"; "`ENOMEM` (no space, or constraints that can never be
//!   met)".
//! - capi/include/vmspace/vmem.h:97-99 (`vmem_set_reclaim`): "Called
//!   (without the arena lock) when an allocation finds no space, before it
//!   fails or waits." (An allocation that can never be met has not found
//!   "no space".)
//! - capi/include/vmspace.h:200-204 (`qcache_misses`): quantum-cache
//!   allocations; a size past qcache_max is none.
//!
//! Every call runs on a helper thread with a 30 s liveness bound (not a
//! timing assertion: a call that can never succeed must return at all).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::Duration;

use common::{counters, P};
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::vmspace_arena_check;
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_alloc, vmem_create, vmem_destroy, vmem_free, vmem_set_reclaim, vmem_xalloc,
};

const ENOMEM: i32 = 12;
const EINVAL: i32 = 22;
const Q: usize = 4096;

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_hook(_vm: *mut vmem_t, _flags: i32) {
    HOOK_CALLS.fetch_add(1, SeqCst);
}

/// `f` on a helper thread; its result, or a failure if it has not
/// returned within 30 s (it would wait for ever).
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what}: no result in 30 s (waits for ever)"))
}

/// Sizes that cannot be rounded up or never fit, cached and uncached
/// arenas' paths, with M_WAITOK and a hook: ENOMEM at once (the hook not
/// called, no quantum-cache allocation counted).
#[test]
fn impossible_vmem_allocations_fail_at_once_without_the_hook() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r37-x".as_ptr(), 1 << 30, 1 << 20, Q, 8 * Q, 0) };
    assert!(!vm.is_null());
    // SAFETY: a live arena; the hook has the reclaim type.
    unsafe { vmem_set_reclaim(vm, Some(count_hook)) };
    let p = P(vm.cast());
    let before = counters(p.0);
    // (2^64 - 2Q fits a span [0, 2^64 - 2Q) that vmem_add could add: a
    // waiting allocation of it may wait, so it is not among these.)
    for size in [usize::MAX, usize::MAX - Q + 2] {
        for flags in [M_NOWAIT, M_WAITOK] {
            let r = bounded("vmem_alloc", move || {
                let p = p;
                let mut a = 0;
                // SAFETY: a live arena; `a` writable.
                unsafe { vmem_alloc(p.0.cast(), size, flags, &mut a) }
            });
            assert_eq!(r, ENOMEM, "vmem_alloc({size:#x}, {flags:#x})");
        }
    }
    // xalloc: constraints never met (a window below one quantum, a window
    // smaller than the size) and a bad alignment.
    let cases: [(usize, usize, usize, usize, usize, i32); 3] = [
        (Q, 0, 0, 0, Q - 2, ENOMEM), // a window below one quantum
        (2 * Q, 0, 0, 1 << 31, (1 << 31) + Q, ENOMEM), // window of one quantum
        (Q, 3 * Q, 0, 0, VMEM_ADDR_MAX, EINVAL), // align not a power of two
    ];
    for (i, &(size, align, phase, min, max, want)) in cases.iter().enumerate() {
        for flags in [M_NOWAIT, M_WAITOK] {
            let r = bounded("vmem_xalloc", move || {
                let p = p;
                let mut a = 0;
                // SAFETY: a live arena; `a` writable.
                unsafe { vmem_xalloc(p.0.cast(), size, align, phase, 0, min, max, flags, &mut a) }
            });
            assert_eq!(r, want, "case {i} flags {flags:#x}");
        }
    }
    let after = counters(p.0);
    // SAFETY: a live arena, not used after this.
    unsafe {
        assert_eq!(vmspace_arena_check(p.0), 0);
        vmem_destroy(vm);
    }
    assert_eq!(HOOK_CALLS.load(SeqCst), 0, "no allocation here found 'no space'");
    assert_eq!(after.qcache_misses, before.qcache_misses, "{before:?} -> {after:?}");
}

/// vmem_free misuse with the largest values: refused (error hook
/// territory), the arena unchanged and consistent.
#[test]
fn vmem_free_of_extreme_values_changes_nothing() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r37-xf".as_ptr(), 1 << 30, 1 << 20, Q, 8 * Q, 0) };
    assert!(!vm.is_null());
    let mut a = 0;
    // SAFETY: a live arena; `a` writable.
    assert_eq!(unsafe { vmem_alloc(vm, Q, M_NOWAIT, &mut a) }, 0);
    let before = counters(vm.cast());
    for (addr, size) in [
        (usize::MAX, usize::MAX),
        (a, usize::MAX),
        (a, 0),
        (usize::MAX - Q + 1, Q),
        (a + 1, Q),
        (0, Q),
    ] {
        // SAFETY: a live arena (the frees are bad, refused).
        unsafe { vmem_free(vm, addr, size) };
    }
    let after = counters(vm.cast());
    // SAFETY: a live arena, its allocation; then destroyed.
    unsafe {
        vmem_free(vm, a, Q);
        assert_eq!(vmspace_arena_check(vm.cast()), 0);
        vmem_destroy(vm);
    }
    assert_eq!(after.bad_frees - before.bad_frees, 6, "{before:?} -> {after:?}");
    assert_eq!(after.frees, before.frees, "{before:?} -> {after:?}");
}
