//! An outside runtime author's shared small-object heap: a `UserArena` with
//! quantum caches importing mapped pages from a `VmSource`, per-CPU caches
//! used by two threads, then reclaim and teardown. Every assertion names the
//! doc line it checks.

use vmspace::arena::{Arena, ArenaError, PageStore};
use vmspace::qcache::{magazine_store_bytes, table_store_bytes, CpuPin, QCacheConfig};
use vmspace::sources::VmSource;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::vm::Vm;
use vmspace::{Policy, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena};

const MIB: usize = 1 << 20;

#[test]
fn cached_objects_over_mapped_pages_all_go_back() {
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(64 * MIB), Size(2 * MIB)).unwrap();
    let store = || PageStore::new(be, Size(MIB)).unwrap();
    let source = VmSource::new(vm, store(), store()).unwrap();
    let heap = Arena::on_pages("objs", Size(16), be, 1 << 14, source).unwrap();
    let slabs = PageStore::new(be, Size(table_store_bytes(8))).unwrap();
    // README.md:249-250 "`UserArena::with_quantum_caches(..)` need nothing
    // else"
    let shared = UserArena::with_quantum_caches(heap, QCacheConfig::new(8, slabs)).unwrap();
    assert_eq!(shared.qcache_max(), Size(128));
    let pin = RseqPin::new();
    let bytes = magazine_store_bytes(8, pin.slots()).unwrap();
    let caches = CpuCaches::new(&shared, pin, PageStore::new(be, Size(bytes)).unwrap()).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let caches = &caches;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..2000usize {
                    let size = Size(1 + (i * 7 + t as usize) % 200);
                    let a = caches.alloc(size).unwrap();
                    // SAFETY: `size` bytes at `a` are this thread's, inside
                    // pages the source mapped (src/sources/vm.rs:8-9).
                    unsafe { a.as_ptr::<u8>().write_bytes(t, size.0) };
                    live.push((a, size));
                    if live.len() > 50 {
                        let (a, size) = live.swap_remove(i % live.len());
                        // SAFETY: written above by this thread.
                        assert_eq!(unsafe { a.as_ptr::<u8>().read() }, t);
                        caches.free(a, size).unwrap();
                    }
                }
                for (a, size) in live {
                    caches.free(a, size).unwrap();
                }
            });
        }
    });
    // README.md:263-265 "a double free, a size other than the one
    // allocated (even in the same class) or a slab's own range is
    // `BadFree`"
    let a = caches.alloc(Size(40)).unwrap();
    assert!(matches!(caches.free(a, Size(48)), Err(ArenaError::BadFree { .. })));
    caches.free(a, Size(40)).unwrap();
    assert!(matches!(caches.free(a, Size(40)), Err(ArenaError::BadFree { .. })));
    assert!(matches!(shared.free(a, Size(40)), Err(ArenaError::BadFree { .. })));
    // Sizes past the caches go to the arena (src/sync/percpu.rs:37-38).
    let big = caches.alloc(Size(4096)).unwrap();
    caches.free(big, Size(4096)).unwrap();
    // A per-thread handle on the same arena (README.md:251-252).
    let mut h = CacheHandle::new(&shared);
    let x = h.alloc(Size(16)).unwrap();
    h.free(x, Size(16)).unwrap();
    drop(h);
    // src/sync/percpu.rs:39-40 "dropping flushes"
    drop(caches);
    // README.md:266-267 "`reclaim()` returns depot objects to slabs and
    // wholly free slabs to the arena"
    shared.reclaim();
    let q = shared.qcache_stats();
    assert_eq!(q.slabs, 0, "{q:?}");
    assert_eq!(q.bad_frees, 3); // src/qcache/mod.rs:55-56 "Frees of a cached object refused"
    shared.check().unwrap();
    let arena = shared.into_inner().unwrap();
    // src/arena/mod.rs:19-20 "a wholly free imported span goes back to
    // the source"
    assert_eq!(arena.sizes().allocated, Size(0));
    assert_eq!(arena.sizes().imported, Size(0));
    assert_eq!(arena.source().vm().mapped(), Size(0));
    arena.source().check().unwrap();
}

#[test]
fn a_shared_heap_that_runs_out_does_not_wait_for_ever() {
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(MIB), be_page(be)).unwrap();
    let store = || PageStore::new(be, Size(MIB)).unwrap();
    let source = VmSource::new(vm, store(), store()).unwrap();
    let heap = Arena::on_pages("objs", Size(16), be, 1 << 12, source).unwrap();
    let shared = UserArena::new(heap);
    let all = shared.alloc(Size(MIB), Policy::InstantFit, Wait::No).unwrap();
    // README.md:242-243 "Allocations may wait for space (`Wait::No`,
    // `Wait::Timeout`, `Wait::Forever`)": a timed wait ends in an error.
    let r = shared.alloc(
        Size(16),
        Policy::InstantFit,
        Wait::Timeout(std::time::Duration::from_millis(20)),
    );
    assert!(r.is_err(), "{r:?}");
    // More than the whole VM: can never succeed.
    let r = shared.alloc(Size(2 * MIB), Policy::InstantFit, Wait::No);
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    shared.free(all, Size(MIB)).unwrap();
    shared.check().unwrap();
    assert_eq!(shared.with(|a| a.source().vm().mapped()), Size(0));
}

fn be_page(be: MmapBackend) -> Size {
    use vmspace_shim::PageOps;
    be.page_size()
}
