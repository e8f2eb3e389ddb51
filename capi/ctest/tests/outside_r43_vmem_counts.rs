//! Outside review, round 43: `vmem_alloc` of cached sizes after the hit
//! path's restructuring (capi/src/api/memory.rs `alloc_tried`,
//! src/sync/percpu.rs `alloc_retrying`/`retrying_missed`): exact
//! `qcache_hits`/`qcache_misses` over mixed M_NOWAIT/M_WAITOK calls of
//! several classes, sizes rounded up to the quantum, and the reclaim hook
//! never called while there is space.
//!
//! Contracts (quoted):
//! - capi/include/vmspace.h:200-204 (`qcache_misses`): "each allocation
//!   counts once, a hit or a miss".
//! - capi/include/vmspace.h:196-199 (`qcache_hits`): "a CPU's hits of a
//!   size class are added at its next miss of that class".
//! - capi/include/vmspace/vmem.h:97-99 (`vmem_set_reclaim`): "Called ...
//!   when an allocation finds no space".
//!
//! All tests here held (contracts checked). On a thread held on one CPU.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{counters, on_one_cpu, valloc, vcheck};
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_vmem_api::{vmem_create, vmem_destroy, vmem_free, vmem_set_reclaim};

const Q: usize = 4096;
const CLASSES: usize = 4;

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn hook(_vm: *mut vmem_t, _flags: i32) {
    HOOK_CALLS.fetch_add(1, SeqCst);
}

fn c(vm: *mut vmem_t) -> vmspace_counters {
    counters(vm.cast())
}

/// Held. Many rounds of mixed M_NOWAIT/M_WAITOK allocations and frees of
/// four cached classes (sizes given unrounded, `k * Q - 1`), plenty of
/// space: the hook is never called, no try fails, and once each class has
/// missed again (so its hits are added), `hits + misses` is exactly the
/// number of `vmem_alloc` calls; while the hits lag, `hits + misses` never
/// exceeds the calls and misses never go down.
#[test]
fn mixed_flags_and_classes_count_each_allocation_once() {
    on_one_cpu(|| {
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r43".as_ptr(), 1 << 30, 4096 * Q, Q, CLASSES * Q, 0) };
        assert!(!vm.is_null());
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(hook)) };
        let base = c(vm);
        let mut calls = 0u64;
        let mut live: Vec<(usize, usize)> = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut last_misses = base.qcache_misses;
        for i in 0..20_000 {
            if live.len() < 200 && (live.is_empty() || rnd(3) != 0) {
                let k = 1 + rnd(CLASSES as u64) as usize;
                let size = k * Q - rnd(2) as usize; // rounded up to k quanta
                let flags = if rnd(2) == 0 { M_NOWAIT } else { M_WAITOK };
                calls += 1;
                let a = valloc(vm, size, flags).unwrap_or_else(|e| panic!("call {i}: {e}"));
                assert_eq!(a % Q, 0);
                live.push((a, k * Q));
            } else {
                let (a, s) = live.swap_remove(rnd(live.len() as u64) as usize);
                // SAFETY: a live arena, its allocation (freed at its rounded size).
                unsafe { vmem_free(vm, a, s) };
            }
            let now = c(vm);
            assert!(now.qcache_misses >= last_misses, "misses went down");
            last_misses = now.qcache_misses;
            assert!(
                now.qcache_hits + now.qcache_misses - base.qcache_hits - base.qcache_misses
                    <= calls,
                "call {i}: counted more than {calls}: {now:?}"
            );
        }
        // Each class until it misses again: its hits are added then.
        for k in 1..=CLASSES {
            let before = c(vm).qcache_misses;
            loop {
                calls += 1;
                let a = valloc(vm, k * Q, M_WAITOK).unwrap();
                live.push((a, k * Q));
                if c(vm).qcache_misses > before {
                    break;
                }
            }
        }
        let end = c(vm);
        let hooks = HOOK_CALLS.load(SeqCst);
        for (a, s) in live {
            // SAFETY: a live arena, its allocation.
            unsafe { vmem_free(vm, a, s) };
        }
        vcheck(vm);
        // SAFETY: the arena, not used after this.
        unsafe { vmem_destroy(vm) };
        assert_eq!(hooks, 0, "the hook called with space to spare");
        assert_eq!(end.failures, base.failures, "{end:?}");
        assert_eq!(
            end.qcache_hits + end.qcache_misses - base.qcache_hits - base.qcache_misses,
            calls,
            "each allocation counts once: {base:?} -> {end:?}"
        );
        assert!(end.qcache_hits > 0 && end.qcache_misses > 0, "{end:?}");
    });
}

/// Held. A hit on the first try with M_WAITOK in a FULL arena (every
/// object but the one in this CPU's magazine taken; the arena itself has
/// no room): served at once from the magazine, no hook call, no failure
/// counted, no miss.
#[test]
fn a_waitok_hit_in_a_full_arena_does_not_touch_the_hook() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn h(_vm: *mut vmem_t, _flags: i32) {
        CALLS.fetch_add(1, SeqCst);
    }
    on_one_cpu(|| {
        // SAFETY: a NUL-terminated name.
        let vm = unsafe { vmem_create(c"r43-full".as_ptr(), 1 << 30, 64 * Q, Q, Q, 0) };
        assert!(!vm.is_null());
        let mut held = Vec::new();
        while let Ok(a) = valloc(vm, Q, M_NOWAIT) {
            held.push(a);
        }
        assert_eq!(held.len(), 64);
        // SAFETY: a live arena; the hook has the reclaim type.
        unsafe { vmem_set_reclaim(vm, Some(h)) };
        let x = held.pop().unwrap();
        // SAFETY: a live arena, its allocation (into this CPU's magazine).
        unsafe { vmem_free(vm, x, Q) };
        let before = c(vm);
        let got = valloc(vm, Q, M_WAITOK);
        let after = c(vm);
        held.extend(got.iter().copied());
        for a in held {
            // SAFETY: a live arena, its allocation.
            unsafe { vmem_free(vm, a, Q) };
        }
        vcheck(vm);
        // SAFETY: the arena, not used after this.
        unsafe { vmem_destroy(vm) };
        assert_eq!(got, Ok(x));
        assert_eq!(CALLS.load(SeqCst), 0);
        assert_eq!(after.failures, before.failures, "{before:?} -> {after:?}");
        assert_eq!(after.qcache_misses, before.qcache_misses, "{before:?} -> {after:?}");
    });
}
