//! Round 62b (outside reviewer): `SyncArena::into_inner`'s refusal
//! (src/sync/arena.rs:361-376): "Refused while a slab still has an object
//! out of it: allocated through the caches and not freed, or in the
//! magazines of a cache that was forgotten (`mem::forget`) instead of
//! dropped, which strands them for good. ... The shared arena comes back in
//! a [`Refused`] whose [`InUse`] counts the slabs' bytes".

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Policy, Size};
use vmspace_user::{MmapBackend, UserArena};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> UserArena<Store, NoSource> {
    let mut a = Arena::new("shared", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(8, store())).unwrap()
}

fn slab_bytes(s: &UserArena<Store, NoSource>) -> usize {
    s.with(|a| {
        a.walk(vmspace::arena::SegmentKinds::ALLOCATED)
            .filter(|g| g.held)
            .map(|g| g.range.size().0)
            .sum()
    })
}

/// A forgotten handle's magazines hold freed objects: their slabs stay,
/// and `into_inner` refuses, naming exactly the slabs' bytes, as often as
/// it is asked; the arena comes back usable; its allocations outside the
/// caches do not count.
#[test]
fn a_forgotten_cache_strands_its_slabs_and_into_inner_says_how_much() {
    let s = shared();
    let plain = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    {
        let mut h = CacheHandle::new(&s);
        let xs: Vec<_> = (0..5).map(|_| h.alloc(Size(32)).unwrap()).collect();
        for x in xs {
            h.free(x, Size(32)).unwrap();
        }
        std::mem::forget(h);
    }
    let slabs = slab_bytes(&s);
    assert!(slabs > 0, "the magazines' objects keep a slab");
    let r = s.into_inner().err().expect("stranded objects in a slab");
    let want =
        ArenaError::InUse { what: "quantum-cache slabs with objects out", size: Size(slabs) };
    assert_eq!(r.error(), want);
    assert_eq!(
        r.to_string(),
        format!("still in use: quantum-cache slabs with objects out ({slabs:#x})")
    );
    let s = r.into_inner();
    s.check().unwrap();
    // Usable: a plain allocation and free.
    let y = s.alloc(Size(64), Policy::InstantFit, Wait::No).unwrap();
    s.free(y, Size(64)).unwrap();
    // Refused again, the same.
    let r = s.into_inner().err().expect("stranded for good");
    assert_eq!(r.error(), want);
    let s = r.into_inner();
    s.free(plain, Size(4096)).unwrap();
    assert_eq!(s.into_inner().err().map(|r| r.error()), Some(want));
}

/// Live plain allocations (outside the caches) do not refuse: the arena
/// comes back with them.
#[test]
fn plain_allocations_do_not_refuse() {
    let s = shared();
    let x = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    {
        let mut h = CacheHandle::new(&s);
        let o = h.alloc(Size(48)).unwrap();
        h.free(o, Size(48)).unwrap();
    }
    let mut a = s.into_inner().unwrap_or_else(|r| panic!("{r}"));
    assert_eq!((a.live(), a.sizes().allocated), (1, Size(4096)));
    a.free(x, Size(4096)).unwrap();
    a.check().unwrap();
}
