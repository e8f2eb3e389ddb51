//! Outside review, round 37: the vmem(9) reclaim hook as an adversary
//! writes it (one that frees into the arena, one that allocates from the
//! same arena, hooks in a tree of arenas), against the counters.
//!
//! Contracts (quoted):
//! - capi/include/vmspace/vmem.h:97-99 (`vmem_set_reclaim`): "Called
//!   (without the arena lock) when an allocation finds no space, before it
//!   fails or waits."
//! - README.md:524 (vmem table, `vmem_set_reclaim`): "called once, without
//!   the lock, when an allocation finds no space, then the allocation is
//!   tried again (waiting if its flags say so)".
//! - capi/include/vmspace.h:200-204 (`qcache_misses`): "quantum-cache
//!   allocations that went further (each allocation counts once, a hit or
//!   a miss, however often it retries while it waits: served from a
//!   magazine in the end, a hit)".
//! - capi/include/vmspace.h:196-199 (`qcache_hits`): "a CPU's hits of a
//!   size class are added at its next miss of that class".
//! - capi/include/vmspace.h:180-189 (`failures`): "each try counted: ...
//!   the try made before the caches' slabs are reclaimed (or a vmem
//!   reclaim function called) and the one after".
//! - capi/include/vmspace/vmem.h:108-109 (`vmem_xalloc`): "Never from the
//!   quantum caches."
//!
//! Each test has hooks and statics of its own (tests run in parallel).
//! The tests that need one CPU's magazines hold their thread on one CPU.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{counters, on_one_cpu, valloc, P};
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::vmspace_arena_check;
use vmspace_capi_user::vmspace_vmem_api::{
    vmem_create, vmem_destroy, vmem_free, vmem_set_reclaim, vmem_xalloc,
};

const ENOMEM: i32 = 12;
const Q: usize = 4096;
const OBJECTS: usize = 64;

fn c(vm: *mut vmem_t) -> vmspace_counters {
    counters(vm.cast())
}

fn destroy(vm: *mut vmem_t) {
    // SAFETY: a live arena, not used after this.
    unsafe {
        assert_eq!(vmspace_arena_check(vm.cast()), 0);
        vmem_destroy(vm);
    }
}

static T1_FREE: AtomicUsize = AtomicUsize::new(0);
static T1_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn t1_hook(vm: *mut vmem_t, _flags: i32) {
    T1_CALLS.fetch_add(1, SeqCst);
    let x = T1_FREE.swap(0, SeqCst);
    if x != 0 {
        // SAFETY: the hook's arena, a live cached allocation of it.
        unsafe { vmem_free(vm, x, Q) };
    }
}

/// A cached allocation that finds no space; the hook frees a cached
/// object (into this CPU's magazine); the retry takes it from the
/// magazine: a hit, not a miss (vmspace.h:200-204). Every vmem_alloc of
/// the size counts once: after the CPU's next miss of the class, `hits +
/// misses` is the number of calls.
#[test]
fn a_hook_freeing_into_the_magazine_makes_the_retry_a_hit() {
    on_one_cpu(|| {
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r37-t1".as_ptr(), 1 << 30, OBJECTS * Q, Q, Q, 0) };
        assert!(!vm.is_null());
        let mut calls = 0u64;
        let mut held = Vec::new();
        loop {
            calls += 1;
            match valloc(vm, Q, M_NOWAIT) {
                Ok(a) => held.push(a),
                Err(e) => {
                    assert_eq!(e, ENOMEM);
                    break;
                }
            }
        }
        assert_eq!(held.len(), OBJECTS);
        let x = held.pop().unwrap();
        T1_FREE.store(x, SeqCst);
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(t1_hook)) };
        let before = c(vm);
        calls += 1;
        let got = valloc(vm, Q, M_NOWAIT);
        let after = c(vm);
        // One more: fails (the hook frees nothing now), this CPU's next
        // miss of the class, which adds its hits.
        calls += 1;
        let last = valloc(vm, Q, M_NOWAIT);
        let end = c(vm);
        let hook_calls = T1_CALLS.load(SeqCst);
        held.extend(got.iter().copied());
        for a in held {
            // SAFETY: a live arena, its allocation.
            unsafe { vmem_free(vm, a, Q) };
        }
        destroy(vm);
        assert_eq!(got, Ok(x), "the retry after the hook takes the object it freed");
        assert_eq!(last, Err(ENOMEM));
        assert_eq!(hook_calls, 2, "once for each allocation that found no space");
        assert_eq!(
            after.qcache_misses, before.qcache_misses,
            "served from a magazine in the end: a hit: {before:?} -> {after:?}"
        );
        assert_eq!(end.qcache_hits + end.qcache_misses, calls, "each counts once: {end:?}");
    });
}

static T2_DEPTH: AtomicUsize = AtomicUsize::new(0);
static T2_CALLS: AtomicUsize = AtomicUsize::new(0);
static T2_FILLER: AtomicUsize = AtomicUsize::new(0);
static T2_INNER: AtomicUsize = AtomicUsize::new(0);

/// Frees the filler (an uncached allocation of the whole span), then
/// allocates a cached object from the same arena itself (one level deep).
unsafe extern "C" fn t2_hook(vm: *mut vmem_t, _flags: i32) {
    T2_CALLS.fetch_add(1, SeqCst);
    if T2_DEPTH.fetch_add(1, SeqCst) == 0 {
        let f = T2_FILLER.swap(0, SeqCst);
        if f != 0 {
            // SAFETY: the hook's arena, its allocation.
            unsafe { vmem_free(vm, f, OBJECTS * Q) };
        }
        T2_INNER.store(valloc(vm, Q, M_NOWAIT).unwrap_or(0), SeqCst);
    }
    T2_DEPTH.fetch_sub(1, SeqCst);
}

/// The hook (called without the lock, so it may use the arena) makes
/// room and allocates from the same arena; that inner allocation fills
/// this CPU's magazine, and the outer retry is served from it. Two
/// allocations: the inner a miss, the outer a hit; distinct addresses.
#[test]
fn a_hook_that_allocates_from_its_own_arena_counts_as_its_own_allocation() {
    on_one_cpu(|| {
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r37-t2".as_ptr(), 1 << 30, OBJECTS * Q, Q, Q, 0) };
        assert!(!vm.is_null());
        T2_FILLER.store(valloc(vm, OBJECTS * Q, M_NOWAIT).unwrap(), SeqCst);
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(t2_hook)) };
        let before = c(vm);
        let got = valloc(vm, Q, M_NOWAIT);
        let after = c(vm);
        let inner = T2_INNER.load(SeqCst);
        for a in [got.unwrap_or(0), inner] {
            if a != 0 {
                // SAFETY: a live arena, its allocation.
                unsafe { vmem_free(vm, a, Q) };
            }
        }
        destroy(vm);
        let got = got.expect("served after the hook made room");
        assert_ne!(inner, 0, "the hook's own allocation succeeded");
        assert_ne!(got, inner, "one object handed out twice");
        assert_eq!(T2_CALLS.load(SeqCst), 1, "the inner allocation found space");
        assert_eq!(after.qcache_misses - before.qcache_misses, 1, "{before:?} -> {after:?}");
    });
}

static T3_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn t3_hook(_vm: *mut vmem_t, _flags: i32) {
    T3_CALLS.fetch_add(1, SeqCst);
}

/// vmem_xalloc (never from the caches) of a cached size in a full arena
/// with a hook that gives nothing back: ENOMEM, the hook called once, two
/// failed tries counted, the quantum-cache counters untouched; without a
/// hook, one try. Then a waiting xalloc woken by a free: the hook still
/// called once.
#[test]
fn xalloc_with_a_hook_tries_twice_and_never_touches_the_caches() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r37-t3".as_ptr(), 1 << 30, OBJECTS * Q, Q, 8 * Q, 0) };
    assert!(!vm.is_null());
    let filler = valloc(vm, OBJECTS * Q, M_NOWAIT).unwrap();
    let xalloc = |vm: *mut vmem_t, flags| {
        let mut a = 0;
        // SAFETY: a live arena; `a` writable.
        let r = unsafe { vmem_xalloc(vm, Q, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, flags, &mut a) };
        if r == 0 {
            Ok(a)
        } else {
            Err(r)
        }
    };
    let b0 = c(vm);
    assert_eq!(xalloc(vm, M_NOWAIT), Err(ENOMEM));
    let b1 = c(vm);
    // SAFETY: a live arena; the hook has the reclaim type.
    unsafe { vmem_set_reclaim(vm, Some(t3_hook)) };
    assert_eq!(xalloc(vm, M_NOWAIT), Err(ENOMEM));
    let b2 = c(vm);
    assert_eq!(T3_CALLS.load(SeqCst), 1);
    assert_eq!(b1.failures - b0.failures, 1, "no hook: one try: {b0:?} -> {b1:?}");
    assert_eq!(b2.failures - b1.failures, 2, "before and after the hook: {b1:?} -> {b2:?}");
    for s in [b1, b2] {
        assert_eq!((s.qcache_hits, s.qcache_misses, s.qcache_slabs), (0, 0, 0), "{s:?}");
    }
    // A waiting xalloc: the hook once, then it waits; a free serves it.
    let p = P(vm.cast());
    let waiter = std::thread::spawn(move || {
        let p = p;
        xalloc(p.0.cast(), M_WAITOK)
    });
    while T3_CALLS.load(SeqCst) < 2 {
        std::thread::yield_now();
    }
    // SAFETY: a live arena, its allocation.
    unsafe { vmem_free(vm, filler, OBJECTS * Q) };
    let got = waiter.join().unwrap();
    let end = c(vm);
    if let Ok(a) = got {
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, a, Q) };
    }
    destroy(vm);
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(T3_CALLS.load(SeqCst), 2, "called once for the waiting xalloc");
    assert_eq!((end.qcache_hits, end.qcache_misses), (0, 0), "{end:?}");
}

static T4_CHILD: AtomicUsize = AtomicUsize::new(0);
static T4_PARENT: AtomicUsize = AtomicUsize::new(0);
static T4_FILLER: AtomicUsize = AtomicUsize::new(0);
static T4_PARENT_VM: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn t4_child_hook(_vm: *mut vmem_t, _flags: i32) {
    T4_CHILD.fetch_add(1, SeqCst);
    let f = T4_FILLER.swap(0, SeqCst);
    if f != 0 {
        let parent = T4_PARENT_VM.load(SeqCst) as *mut vmem_t;
        // SAFETY: the parent is live; its allocation.
        unsafe { vmem_free(parent, f, OBJECTS * Q) };
    }
}

unsafe extern "C" fn t4_parent_hook(_vm: *mut vmem_t, _flags: i32) {
    T4_PARENT.fetch_add(1, SeqCst);
}

/// A child importing from a full parent (vmspace_params.parent), both
/// with hooks: a cached allocation in the child finds no space, its hook
/// (called once) frees in the parent, the retry imports and is served
/// (waiting or not); one miss each.
#[test]
fn a_childs_hook_freeing_in_its_parent_serves_the_retry() {
    for flags in [M_NOWAIT, M_WAITOK] {
        let (parent, child, all) = common::full_tree(OBJECTS * Q);
        let (pv, cv): (*mut vmem_t, *mut vmem_t) = (parent.cast(), child.cast());
        T4_FILLER.store(all, SeqCst);
        T4_PARENT_VM.store(pv as usize, SeqCst);
        T4_CHILD.store(0, SeqCst);
        // SAFETY: live arenas; the hooks have the reclaim type.
        unsafe {
            vmem_set_reclaim(cv, Some(t4_child_hook));
            vmem_set_reclaim(pv, Some(t4_parent_hook));
        }
        let before = c(cv);
        let got = valloc(cv, Q, flags);
        let after = c(cv);
        if let Ok(a) = got {
            // SAFETY: a live arena, its allocation.
            unsafe { vmem_free(cv, a, Q) };
        }
        if T4_FILLER.swap(0, SeqCst) != 0 {
            common::free(parent, all, OBJECTS * Q);
        }
        common::check_and_destroy(child);
        common::check_and_destroy(parent);
        assert!(got.is_ok(), "flags {flags:#x}: {got:?}");
        assert_eq!(T4_CHILD.load(SeqCst), 1, "flags {flags:#x}: the child's hook once");
        assert_eq!(
            after.qcache_misses - before.qcache_misses,
            1,
            "flags {flags:#x}: {before:?} -> {after:?}"
        );
    }
}

static T5_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn t5_hook(_vm: *mut vmem_t, _flags: i32) {
    T5_CALLS.fetch_add(1, SeqCst);
}

/// M_WAITOK with a hook that gives nothing back, cached size: the hook
/// is called once (README.md:524), the allocation waits, a free by
/// another thread serves it, one miss.
#[test]
fn a_waiting_cached_allocation_calls_its_hook_once() {
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(c"r37-t5".as_ptr(), 1 << 30, OBJECTS * Q, Q, 8 * Q, 0) };
    assert!(!vm.is_null());
    let filler = valloc(vm, OBJECTS * Q, M_NOWAIT).unwrap();
    // SAFETY: a live arena; the hook has the reclaim type.
    unsafe { vmem_set_reclaim(vm, Some(t5_hook)) };
    let before = c(vm);
    let p = P(vm.cast());
    let waiter = std::thread::spawn(move || {
        let p = p;
        valloc(p.0.cast(), 2 * Q, M_WAITOK)
    });
    while T5_CALLS.load(SeqCst) == 0 {
        std::thread::yield_now();
    }
    // SAFETY: a live arena, its allocation.
    unsafe { vmem_free(vm, filler, OBJECTS * Q) };
    let got = waiter.join().unwrap();
    let after = c(vm);
    if let Ok(a) = got {
        // SAFETY: a live arena, its allocation.
        unsafe { vmem_free(vm, a, 2 * Q) };
    }
    destroy(vm);
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(T5_CALLS.load(SeqCst), 1);
    assert_eq!(after.qcache_misses - before.qcache_misses, 1, "{before:?} -> {after:?}");
}
