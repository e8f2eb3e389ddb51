//! Outside review, round 36: when a CPU's quantum-cache hits reach the
//! shared statistics.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:37-39 (`CpuCaches`): "Each slot's hits are counted
//!   in its magazines' words and added to [`SyncArena::qcache_stats`] on
//!   its misses and on [`flush`](Self::flush), misses at once".
//! - src/sync/arena.rs:470-471 (`SyncArena::qcache_stats`): "Hits and
//!   misses of live handles and per-CPU caches are added when they miss,
//!   flush or drop."
//! - capi/include/vmspace.h:196-198 (`qcache_hits`): "quantum-cache
//!   allocations from a magazine; a CPU's are added at its next miss and
//!   when the arena is destroyed, so they may lag".
//!
//! Read so, a hit on a slot shows at the slot's (the CPU's) next miss in
//! any size class; it did not: a CPU's hits are counted in each class's
//! magazine word, and a miss adds only its own class's. The docs now say
//! so ("a CPU's hits of a class at its next miss in that class"), and the
//! tests hold that: after a miss in another class the hit may still lag,
//! at the next miss in its own class every hit of that class is counted,
//! exactly. A `CacheHandle` adds its hits at a miss in any class (its one
//! counter is folded on any miss); the control test holds that.

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag};
use vmspace::sync::{CacheHandle, CpuCaches};
use vmspace::{Addr, Size};
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_counters, vmspace_arena_create, vmspace_arena_destroy,
    vmspace_arena_free,
};
use vmspace_user::{MmapBackend, UserArena};

type Store = PageStore<MmapBackend>;

const Q: usize = 16;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(4 << 20)).unwrap()
}

fn arena() -> UserArena<Store, NoSource> {
    let mut a = Arena::new("r36", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

/// One slot behind a try-lock.
struct OneSlot(SlotFlag);
// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {
            std::hint::spin_loop();
        }
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: `pin` took the flag, nothing released it since.
        unsafe { self.0.release() }
    }
}

/// One slot: a miss in class 0, a hit in class 0, then a miss in class 1
/// on the same slot (the hit may still lag: misses are added at once),
/// then hits in class 0 until its next miss: every hit of class 0 shows
/// then, exactly. A flush adds the rest (none).
#[test]
fn a_per_cpu_hit_shows_at_the_slots_next_miss_in_its_class() {
    let s = arena();
    let mut cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    let a = cpu.alloc(Size(Q)).unwrap(); // miss: refill
    cpu.free(a, Size(Q)).unwrap();
    let b = cpu.alloc(Size(Q)).unwrap(); // hit
    assert_eq!(s.qcache_stats().hits, 0, "hits may lag until the next miss");
    let c = cpu.alloc(Size(2 * Q)).unwrap(); // the slot's next miss (class 1)
    let st = s.qcache_stats();
    assert_eq!(st.misses, 2, "{st:?}");
    assert!(st.hits <= 1, "{st:?}");
    let (mut held, mut hits) = (vec![b], 1);
    loop {
        let misses = s.qcache_stats().misses;
        held.push(cpu.alloc(Size(Q)).unwrap());
        if s.qcache_stats().misses > misses {
            break; // class 0's next miss
        }
        hits += 1;
    }
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (hits, 3), "class 0 missed: all its hits show");
    for x in held {
        cpu.free(x, Size(Q)).unwrap();
    }
    cpu.free(c, Size(2 * Q)).unwrap();
    cpu.flush();
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (hits, 3), "{st:?}");
}

/// The control: a `CacheHandle` adds its hits at its next miss in any
/// class.
#[test]
fn a_handle_hit_shows_at_its_next_miss_in_another_class() {
    let s = arena();
    let mut h = CacheHandle::new(&s);
    let a = h.alloc(Size(Q)).unwrap();
    h.free(a, Size(Q)).unwrap();
    let b = h.alloc(Size(Q)).unwrap();
    let c = h.alloc(Size(2 * Q)).unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (1, 2), "{st:?}");
    h.free(b, Size(Q)).unwrap();
    h.free(c, Size(2 * Q)).unwrap();
}

/// vmspace.h (`qcache_hits`, as corrected) through the C API, on a thread
/// held on one CPU (so every call uses that CPU's slot: `SchedPin` takes
/// the slot of the CPU the thread runs on, and no other thread uses this
/// arena): a hit shows at the CPU's next miss of its size, exactly.
#[test]
fn a_c_hit_shows_at_the_cpus_next_miss_of_its_size() {
    std::thread::spawn(|| {
        let cpus = vmspace_user::allowed_cpus().unwrap();
        vmspace_user::run_only_on(cpus[0]).unwrap();
        let q = 4096;
        // SAFETY: a NUL-terminated name.
        let ar = unsafe { vmspace_arena_create(c"r36".as_ptr(), 1 << 30, 1 << 22, q, 8 * q, 0) };
        assert!(!ar.is_null());
        let counters = || {
            let mut c = vmspace_counters::default();
            // SAFETY: a live arena; `c` writable.
            assert_eq!(unsafe { vmspace_arena_counters(ar, &mut c) }, 0);
            c
        };
        let alloc = |size: usize| {
            let mut a = 0;
            // SAFETY: a live arena; `a` writable.
            assert_eq!(unsafe { vmspace_arena_alloc(ar, size, 0, &mut a) }, 0);
            a
        };
        let a = alloc(q); // miss
                          // SAFETY: a live arena, its allocation.
        assert_eq!(unsafe { vmspace_arena_free(ar, a, q) }, 0);
        let _b = alloc(q); // hit
        let _c = alloc(2 * q); // this CPU's next miss, of another size
        let after_other = counters();
        let mut hits = 1;
        while {
            let misses = counters().qcache_misses;
            alloc(q);
            counters().qcache_misses == misses
        } {
            hits += 1;
        }
        let st = counters();
        // Destroyed before the checks (live allocations go with it), so
        // that a failure is not also a leak under LeakSanitizer.
        // SAFETY: a live arena, not used after this.
        assert_eq!(unsafe { vmspace_arena_destroy(ar) }, 0);
        assert_eq!(after_other.qcache_misses, 2, "{after_other:?}");
        assert!(after_other.qcache_hits <= 1, "{after_other:?}");
        assert_eq!(st.qcache_misses, 3, "{st:?}");
        assert_eq!(st.qcache_hits, hits, "the size missed: all its hits show: {st:?}");
    })
    .join()
    .unwrap();
}
