//! Outside review, round 36: how a vmem(9) allocation of a size the
//! quantum caches serve counts in `qcache_misses` when it is tried again
//! after the reclaim hook, or waits.
//!
//! Contracts (quoted):
//! - capi/include/vmspace.h:199-203 (`struct vmspace_counters`):
//!   "qcache_misses; /* quantum-cache allocations that went further (each
//!   allocation counts once, a hit or a miss, however often it retries
//!   while it waits: served from a magazine in the end, a hit) */".
//! - capi/include/vmspace/vmem.h:16-17: "A vmem_t * is also a
//!   vmspace_arena_t * (vmspace.h): the native calls (sizes, counters,
//!   walks, check, handles) work on it after a cast."
//! - capi/include/vmspace/vmem.h:97-99 (`vmem_set_reclaim`): "Called
//!   (without the arena lock) when an allocation finds no space, before it
//!   fails or waits."
//!
//! `qcache_misses` is added at once (only hits lag, vmspace.h:196-198), so
//! it can be read exactly before the arena is destroyed. Single-threaded.

use std::sync::Mutex;
use std::time::Duration;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::vmspace_arena_counters;
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_alloc, vmem_create, vmem_destroy, vmem_free, vmem_set_reclaim,
};

const ENOMEM: i32 = 12;
const Q: usize = 4096;
const BASE: usize = 1 << 30;
const SPAN: usize = 1 << 20;

fn counters(vm: *mut vmem_t) -> vmspace_counters {
    let mut c = vmspace_counters::default();
    // SAFETY: a live arena (a vmem_t is a vmspace_arena_t); `c` writable.
    let r = unsafe { vmspace_arena_counters(vm.cast(), &mut c) };
    assert_eq!(r, 0);
    c
}

/// The filling allocation of each arena (by address) that the reclaim
/// hook frees: tests run in parallel, each with its own arena.
static FILLERS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// A reclaim hook that frees its arena's filling allocation, making room.
unsafe extern "C" fn free_filler(vm: *mut vmem_t, _flags: i32) {
    let mut f = FILLERS.lock().unwrap();
    if let Some(i) = f.iter().position(|&(v, _)| v == vm as usize) {
        let (_, a) = f.swap_remove(i);
        drop(f);
        // SAFETY: a live arena (the hook's caller's); `a` its allocation.
        unsafe { vmem_free(vm, a, SPAN) };
    }
}

/// A reclaim hook that finds nothing to give back.
unsafe extern "C" fn reclaim_nothing(_vm: *mut vmem_t, _flags: i32) {}

/// A vmem arena with quantum caches (up to 8 quanta), filled by one
/// allocation of its whole span (not cached); `f` runs with it.
fn with_full_arena(f: impl FnOnce(*mut vmem_t, usize)) {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r36".as_ptr(), BASE, SPAN, Q, 8 * Q, 0) };
    assert!(!vm.is_null());
    let mut filler = 0;
    // SAFETY: a live arena; `filler` writable.
    assert_eq!(unsafe { vmem_alloc(vm, SPAN, M_NOWAIT, &mut filler) }, 0);
    // Destroyed whatever `f` does (a failed assertion included), so that
    // a failure is not also a leak under LeakSanitizer.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(vm, filler)));
    FILLERS.lock().unwrap().retain(|&(v, _)| v != vm as usize);
    // SAFETY: the arena, not used after this.
    unsafe { vmem_destroy(vm) };
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

/// One `vmem_alloc(Q, M_NOWAIT)` that finds no space, calls the reclaim
/// hook (which frees the filler) and is then served: one allocation, so
/// one more miss (a slab served it, not a magazine).
#[test]
fn a_nowait_allocation_served_after_the_reclaim_hook_is_one_miss() {
    with_full_arena(|vm, filler| {
        FILLERS.lock().unwrap().push((vm as usize, filler));
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(free_filler)) };
        let before = counters(vm);
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        assert_eq!(unsafe { vmem_alloc(vm, Q, M_NOWAIT, &mut a) }, 0);
        let after = counters(vm);
        assert_eq!(
            after.qcache_misses - before.qcache_misses,
            1,
            "one vmem_alloc counted {} misses: {before:?} -> {after:?}",
            after.qcache_misses - before.qcache_misses
        );
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, a, Q) };
    });
}

/// The same with M_WAITOK (it would wait; here the hook makes room first,
/// so it is served without sleeping): one allocation, one miss.
#[test]
fn a_waiting_allocation_served_after_the_reclaim_hook_is_one_miss() {
    with_full_arena(|vm, filler| {
        FILLERS.lock().unwrap().push((vm as usize, filler));
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(free_filler)) };
        let before = counters(vm);
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        assert_eq!(unsafe { vmem_alloc(vm, Q, M_WAITOK, &mut a) }, 0);
        let after = counters(vm);
        assert_eq!(
            after.qcache_misses - before.qcache_misses,
            1,
            "one vmem_alloc counted {} misses: {before:?} -> {after:?}",
            after.qcache_misses - before.qcache_misses
        );
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, a, Q) };
    });
}

/// One `vmem_alloc(Q, M_NOWAIT)` that fails (the hook gives nothing
/// back): one failed allocation, one miss.
#[test]
fn a_failed_nowait_allocation_after_the_reclaim_hook_is_one_miss() {
    with_full_arena(|vm, filler| {
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(reclaim_nothing)) };
        let before = counters(vm);
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        assert_eq!(unsafe { vmem_alloc(vm, Q, M_NOWAIT, &mut a) }, ENOMEM);
        let after = counters(vm);
        assert_eq!(
            after.qcache_misses - before.qcache_misses,
            1,
            "one vmem_alloc counted {} misses: {before:?} -> {after:?}",
            after.qcache_misses - before.qcache_misses
        );
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, filler, SPAN) };
    });
}

/// Without a reclaim hook, a failed M_NOWAIT allocation is one try: one
/// miss (the control for the tests above).
#[test]
fn a_failed_nowait_allocation_without_a_hook_is_one_miss() {
    with_full_arena(|vm, filler| {
        let before = counters(vm);
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        assert_eq!(unsafe { vmem_alloc(vm, Q, M_NOWAIT, &mut a) }, ENOMEM);
        let after = counters(vm);
        assert_eq!(after.qcache_misses - before.qcache_misses, 1, "{before:?} -> {after:?}");
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, filler, SPAN) };
    });
}

/// vmspace.h:199-203 again, for a vmem_alloc that really waits (no hook):
/// its first try finds no space (the filler is freed only once that try
/// has been counted as a failure), then another thread frees the filler.
/// Whether it was asleep by then or not, it is one allocation: one miss.
#[test]
fn a_waiting_allocation_woken_by_a_free_is_one_miss() {
    with_full_arena(|vm, filler| {
        let before = counters(vm);
        let v = vm as usize;
        let waiter = std::thread::spawn(move || {
            let mut a = 0;
            // SAFETY: a live arena (destroyed after the join); `a` writable.
            let r = unsafe { vmem_alloc(v as *mut vmem_t, Q, M_WAITOK, &mut a) };
            (r, a)
        });
        // Its first try has failed once `failures` moved.
        while counters(vm).failures == before.failures {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, filler, SPAN) };
        let (r, a) = waiter.join().unwrap();
        assert_eq!(r, 0);
        let after = counters(vm);
        assert_eq!(
            after.qcache_misses - before.qcache_misses,
            1,
            "one waiting vmem_alloc counted {} misses: {before:?} -> {after:?}",
            after.qcache_misses - before.qcache_misses
        );
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, a, Q) };
    });
}
