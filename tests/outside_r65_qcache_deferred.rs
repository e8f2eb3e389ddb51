//! Round 65 (outside reviewer): where `SyncArena::free_deferred` counts a
//! refused free of a quantum-cache object that is part of a slab but not
//! live (a double free). src/sync/arena.rs's free_deferred docs say the
//! refusal of slab objects "is counted where the docs count bad frees of
//! cached objects, in QCacheStats::bad_frees, not in the arena's counters",
//! and QCacheStats::bad_frees (src/qcache/mod.rs) is "Frees of a cached
//! object refused: not live (a double free) or live with another size".
//! `free` does count a double free there; `free_deferred` counts it in the
//! arena's `Counters::bad_frees` instead.

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::CacheHandle;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> UserArena<Store, NoSource> {
    let mut a = Arena::new("r65", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 16)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

/// Baseline: a live slab object refused by free_deferred is counted in the
/// caches' statistics, as documented.
#[test]
fn live_cached_object_refusal_counts_in_qcache() {
    let s = shared();
    let mut c = CacheHandle::new(&s);
    let x = c.alloc(Size(16)).unwrap();
    let (q0, a0) = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
    let r = s.free_deferred(x, Size(16));
    assert!(matches!(r, Err(ArenaError::BadFree { allocated: None, .. })), "{r:?}");
    assert_eq!(s.qcache_stats().bad_frees, q0 + 1);
    assert_eq!(s.with(|a| a.counters().bad_frees), a0);
}

/// A double free by `free` of a cached object is counted in
/// QCacheStats::bad_frees (as that field's docs say).
#[test]
fn double_free_by_free_counts_in_qcache() {
    let s = shared();
    let mut c = CacheHandle::new(&s);
    let x = c.alloc(Size(16)).unwrap();
    drop(c);
    s.free(x, Size(16)).unwrap();
    let (q0, a0) = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
    assert!(s.free(x, Size(16)).is_err());
    assert_eq!(s.qcache_stats().bad_frees, q0 + 1);
    assert_eq!(s.with(|a| a.counters().bad_frees), a0);
}

/// Was a DEFECT (fixed: `refused_free_of_object`): the same double free through free_deferred (an object that is
/// part of a slab, refused, nothing changed) lands in the arena's counters,
/// not in QCacheStats::bad_frees.
#[test]
fn double_free_by_free_deferred_counts_in_qcache_as_documented() {
    let s = shared();
    let mut c = CacheHandle::new(&s);
    let x = c.alloc(Size(16)).unwrap();
    drop(c);
    s.free(x, Size(16)).unwrap();
    let (q0, a0) = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
    let r = s.free_deferred(x, Size(16));
    assert!(matches!(r, Err(ArenaError::BadFree { allocated: None, .. })), "{r:?}");
    let (q1, a1) = (s.qcache_stats().bad_frees, s.with(|a| a.counters().bad_frees));
    assert_eq!(
        (q1 - q0, a1 - a0),
        (1, 0),
        "refused free_deferred of a slab object: qcache bad_frees +{}, arena bad_frees +{}",
        q1 - q0,
        a1 - a0
    );
}
