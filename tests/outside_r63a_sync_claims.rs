//! Round 63a (outside reviewer): what a refused free of a live cached
//! object says, through each SyncArena door. `SyncArena::free` reports the
//! size the object is live with (`allocated: Some(..)`) and counts the bad
//! free in the caches' statistics, not the arena's (src/sync/arena.rs,
//! src/qcache/cache.rs `refused_free_of_live`).
//!
//! Was a DEFECT (fixed): the deferred door (`SyncArena::free_deferred`,
//! documented to refuse slab objects) counted the refusal in the arena's
//! `bad_frees`, where the docs count bad frees of cached objects in the
//! caches'. The reviewer also asked for `allocated: Some(size)` there; the
//! project kept the documented refusal, a `BadFree` with no allocated size
//! whatever the size (the arena holds no allocation of its own at a slab's
//! object; the C API's `-ENOENT`, which fifteen C and KUnit checks hold),
//! and documented it: "allocated with size 0x30" of a free of 0x30 would
//! have said the size was wrong. These tests hold that contract.

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::CacheHandle;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> Shared {
    let mut a = Arena::new("claims", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

fn bad_frees(s: &Shared) -> (u64, u64) {
    (s.with(|a| a.counters().bad_frees), s.qcache_stats().bad_frees)
}

/// Baseline (passes): `free` with a size of another class reports the live
/// size and charges the caches.
#[test]
fn free_with_another_class_size_reports_the_live_size() {
    let s = shared();
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(48)).unwrap();
    let before = bad_frees(&s);
    let r = s.free(x, Size(16));
    assert_eq!(r, Err(ArenaError::BadFree { addr: x, size: Size(16), allocated: Some(Size(48)) }));
    assert_eq!(bad_frees(&s), (before.0, before.1 + 1), "charged to the caches");
    // Same class, wrong size.
    let r = s.free(x, Size(40));
    assert_eq!(r, Err(ArenaError::BadFree { addr: x, size: Size(40), allocated: Some(Size(48)) }));
    h.free(x, Size(48)).unwrap();
    s.check().unwrap();
}

/// `free_deferred` of a live cached object, with exactly its size: refused
/// (documented, `allocated: None`), and counted by the caches, not the
/// arena.
#[test]
fn deferred_free_of_a_live_cached_object_says_what_it_is() {
    let s = shared();
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(48)).unwrap();
    let before = bad_frees(&s);
    let r = s.free_deferred(x, Size(48));
    let after = bad_frees(&s);
    h.free(x, Size(48)).unwrap();
    s.check().unwrap();
    let e = r.expect_err("a slab's object is refused");
    let want = ArenaError::BadFree { addr: x, size: Size(48), allocated: None };
    // (error, (arena bad_frees, caches' bad_frees) charged)
    assert_eq!(
        (e, (after.0 - before.0, after.1 - before.1)),
        (want, (0, 1)),
        "message: {e}; charged to the caches"
    );
}

/// The same with a size of another class: the same refusal, whatever the
/// size, charged to the caches.
#[test]
fn deferred_free_with_another_class_size_reports_the_live_size() {
    let s = shared();
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(48)).unwrap();
    let before = bad_frees(&s);
    let r = s.free_deferred(x, Size(16));
    let after = bad_frees(&s);
    h.free(x, Size(48)).unwrap();
    assert_eq!(r, Err(ArenaError::BadFree { addr: x, size: Size(16), allocated: None }));
    assert_eq!((after.0 - before.0, after.1 - before.1), (0, 1), "charged to the caches");
    // A free of an address no object or allocation holds stays the arena's.
    let before = bad_frees(&s);
    let r = s.free_deferred(Addr(x.0 + 8), Size(48));
    assert!(matches!(r, Err(ArenaError::BadFree { allocated: None, .. })), "{r:?}");
    assert_eq!(bad_frees(&s), (before.0 + 1, before.1), "charged to the arena");
    s.check().unwrap();
}
