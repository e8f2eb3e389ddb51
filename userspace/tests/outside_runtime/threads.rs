//! Threads: an ID allocator, per-thread and per-CPU quantum caches over one
//! shared arena, and per-thread child arenas importing from it.

use vmspace::arena::{Arena, NoSource, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena, UserCpuCaches};

use crate::{store, Store};

type Shared = UserArena<Store, NoSource>;

fn shared(classes: usize) -> Shared {
    let mut a = Arena::on_pages("heap", Size(16), MmapBackend::new(), 1 << 16, NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 32)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store(1 << 22))).unwrap()
}

#[test]
fn ids_next_fit_from_eight_threads() {
    let mut ids = Arena::on_pages("ids", Size(1), MmapBackend::new(), 1 << 16, NoSource).unwrap();
    ids.add(Addr(1), Size(100_000)).unwrap();
    let ids: UserArena<Store, NoSource> = UserArena::new(ids);
    let got = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut mine = Vec::new();
                for _ in 0..1000 {
                    mine.push(ids.alloc(Size(1), Policy::NextFit, Wait::No).unwrap());
                }
                got.lock().unwrap().extend(mine);
            });
        }
    });
    let mut all = got.into_inner().unwrap();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 8000);
    for a in all {
        ids.free(a, Size(1)).unwrap();
    }
    ids.check().unwrap();
    assert_eq!(ids.with(|a| a.sizes().allocated), Size(0));
}

#[test]
fn per_thread_and_per_cpu_caches_and_children() {
    let sh = shared(8);
    let caches: UserCpuCaches<'_, Store, NoSource> =
        UserCpuCaches::new(&sh, RseqPin::new(), store(1 << 20)).unwrap();
    std::thread::scope(|s| {
        for t in 0..8usize {
            let (sh, caches) = (&sh, &caches);
            s.spawn(move || {
                let mut h = CacheHandle::new(sh);
                let mut child =
                    Arena::on_pages("child", Size(16), MmapBackend::new(), 1 << 12, sh).unwrap();
                let mut live = Vec::new();
                for i in 0..20_000usize {
                    let size = Size(16 * (1 + (i * 7 + t) % 8));
                    let a = match i % 3 {
                        0 => h.alloc(size).unwrap(),
                        1 => caches.alloc(size).unwrap(),
                        _ => child.alloc(size, Policy::InstantFit).unwrap(),
                    };
                    live.push((i % 3, a, size));
                    if live.len() > 64 {
                        let (k, a, s) = live.swap_remove(i % live.len());
                        match k {
                            0 => h.free(a, s).unwrap(),
                            1 => caches.free(a, s).unwrap(),
                            _ => child.free(a, s).unwrap(),
                        }
                    }
                }
                for (k, a, s) in live {
                    match k {
                        0 => h.free(a, s).unwrap(),
                        1 => caches.free(a, s).unwrap(),
                        _ => child.free(a, s).unwrap(),
                    }
                }
                child.check().unwrap();
                assert_eq!(child.sizes().total, Size(0));
            });
        }
    });
    drop(caches);
    sh.reclaim();
    sh.check().unwrap();
    assert_eq!(sh.with(|a| a.sizes().allocated), Size(0));
    let q = sh.qcache_stats();
    assert_eq!(q.slabs, 0);
    assert_eq!(q.slabs_created, q.slabs_freed);
}
