//! `SyncArena::into_inner` gives back an arena with nothing of the quantum
//! caches left in it but slabs whose objects are still allocated: the
//! depots are reclaimed on the way out (a newcomer's teardown, round 59,
//! got an arena holding an empty slab it could never free, so its source,
//! and the `Vm` under it, could not be taken back).

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, CpuCaches};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> UserArena<Store, NoSource> {
    let mut a = Arena::new("shared", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(8, store())).unwrap()
}

#[test]
fn freed_objects_leave_no_slab_behind() {
    let shared = shared();
    {
        let mut cache = CacheHandle::new(&shared);
        let objs: Vec<_> =
            (0..300).map(|i| (cache.alloc(Size(16 * (1 + i % 8))).unwrap(), i)).collect();
        for (a, i) in objs {
            cache.free(a, Size(16 * (1 + i % 8))).unwrap();
        }
        let cpu = CpuCaches::new(&shared, RseqPin::new(), store()).unwrap();
        let a = cpu.alloc(Size(48)).unwrap();
        cpu.free(a, Size(48)).unwrap();
    }
    // No reclaim before: the slabs sit in the depots.
    assert!(shared.with(|a| a.sizes().allocated) > Size(0));
    let arena = shared.into_inner().unwrap();
    assert_eq!(arena.sizes().allocated, Size(0));
    assert_eq!(arena.live(), 0);
    arena.check().unwrap();
}

/// A slab holding a live object would be held in the arena for good (no
/// free outside the caches reaches it): `into_inner` refuses, naming the
/// slab's bytes, and gives the shared arena back, whose `free` takes the
/// object; then it succeeds. (Round 60a: the arena came back with a slab
/// it could never free, so its source could never be taken back.)
#[test]
fn a_slab_with_a_live_object_refuses_until_it_is_freed() {
    let shared = shared();
    let live = {
        let mut cache = CacheHandle::new(&shared);
        let keep = cache.alloc(Size(32)).unwrap();
        let other = cache.alloc(Size(64)).unwrap();
        cache.free(other, Size(64)).unwrap();
        keep
    };
    let refused = shared.into_inner().err().expect("a live object's slab");
    let slab =
        refused.get_ref().with(|a| a.walk(vmspace::arena::SegmentKinds::ALLOCATED).next().unwrap());
    assert!(slab.held && slab.range.contains_addr(live), "{slab:?} does not hold {live:?}");
    let want =
        ArenaError::InUse { what: "quantum-cache slabs with objects out", size: slab.range.size() };
    assert_eq!(refused.error(), want);
    let shared = refused.into_inner();
    shared.free(live, Size(32)).unwrap();
    let arena = shared.into_inner().unwrap();
    assert_eq!((arena.sizes().allocated, arena.live()), (Size(0), 0));
    arena.check().unwrap();
}
