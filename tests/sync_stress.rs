//! Thread-safe arenas under load: several threads allocating random sizes
//! with mixed policies through quantum caches, the shared arena and child
//! arenas importing from it; then waiting for space.

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::qcache::CacheHandle;
use vmspace::sync::{SyncArena, Wait};
use vmspace::workload::Rng;
use vmspace::{Addr, Range, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, UserArena};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(64 << 20)).unwrap()
}

fn parent(span: usize, classes: usize) -> UserArena<Store, NoSource> {
    let mut a = Arena::new("parent", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(span)).unwrap();
    SyncArena::new(a, ParkingLock::default(), CondvarWaiter::default(), Some((classes, store())))
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Cache,
    Shared,
    Child,
}

fn stress(threads: usize, ops: usize) {
    let p = parent(1 << 30, 8);
    let initial = p.with(|a| a.sizes());
    let barrier = Barrier::new(threads);
    let everything: Mutex<Vec<Range>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (p, barrier, everything) = (&p, &barrier, &everything);
            scope.spawn(move || {
                let mut rng = Rng::new(1000 + t as u64);
                let mut cache = CacheHandle::new(p);
                let mut child = Arena::new("child", Size(16), store(), store(), p).unwrap();
                let mut live: Vec<(Addr, Size, Via)> = Vec::new();
                for i in 0..ops {
                    if !live.is_empty() && rng.chance(450) {
                        let (a, s, via) = live.swap_remove(rng.below(live.len()));
                        match via {
                            Via::Cache => cache.free(a, s).unwrap(),
                            Via::Shared => p.free(a, s).unwrap(),
                            Via::Child => child.free(a, s).unwrap(),
                        }
                        continue;
                    }
                    let policy =
                        [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit]
                            [rng.below(4)];
                    let (r, s, via) = match rng.below(10) {
                        0..=4 => {
                            let s = Size(16 * rng.between(1, 8));
                            (cache.alloc(s), s, Via::Cache)
                        }
                        5..=6 => {
                            let s = Size(rng.between(1, 4096));
                            (p.alloc(s, policy, Wait::No), s, Via::Shared)
                        }
                        7 => {
                            let s = Size(16 * rng.between(1, 64));
                            let c = Constraints::new(s).align(Size(256)).policy(policy);
                            (p.xalloc(&c, Wait::No), s, Via::Shared)
                        }
                        _ => {
                            let s = Size(rng.between(1, 2048));
                            (child.alloc(s, policy), s, Via::Child)
                        }
                    };
                    live.push((r.unwrap_or_else(|e| panic!("thread {t} op {i}: {e}")), s, via));
                    if i % 997 == 0 {
                        p.check().unwrap();
                    }
                }
                everything
                    .lock()
                    .unwrap()
                    .extend(live.iter().map(|&(a, s, _)| Range::from_size(a, s).unwrap()));
                barrier.wait();
                if t == 0 {
                    let mut all = everything.lock().unwrap();
                    all.sort_by_key(|r| r.base());
                    for w in all.windows(2) {
                        assert!(
                            !w[0].overlaps(&w[1]),
                            "live ranges overlap: {} and {}",
                            w[0],
                            w[1]
                        );
                    }
                    p.check().unwrap();
                }
                barrier.wait();
                for (a, s, via) in live {
                    match via {
                        Via::Cache => cache.free(a, s).unwrap(),
                        Via::Shared => p.free(a, s).unwrap(),
                        Via::Child => child.free(a, s).unwrap(),
                    }
                }
                child.check().unwrap();
                assert_eq!(child.sizes().allocated, Size(0));
            });
        }
    });
    let stats = p.qcache_stats();
    assert!(stats.hits > stats.misses, "{stats:?}");
    p.reclaim();
    p.check().unwrap();
    assert_eq!(p.with(|a| a.sizes()), initial, "freeing everything restores the initial sizes");
}

#[test]
fn two_threads() {
    stress(2, 20_000);
}

#[test]
fn four_threads() {
    stress(4, 10_000);
}

#[test]
fn a_waiter_gets_the_space_another_thread_frees() {
    let p = parent(4096, 1);
    let all = p.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    assert!(matches!(
        p.alloc(Size(1024), Policy::InstantFit, Wait::No),
        Err(ArenaError::NoSpace { .. })
    ));
    let started = Instant::now();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            p.alloc(Size(1024), Policy::InstantFit, Wait::Timeout(Duration::from_secs(20)))
        });
        std::thread::sleep(Duration::from_millis(100));
        p.free(all, Size(4096)).unwrap();
        let got = waiter.join().unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
        p.free(got, Size(1024)).unwrap();
    });
    p.check().unwrap();
}

#[test]
fn waiting_for_space_times_out() {
    let p = parent(4096, 1);
    let all = p.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let started = Instant::now();
    let e = p
        .alloc(Size(16), Policy::InstantFit, Wait::Timeout(Duration::from_millis(150)))
        .unwrap_err();
    assert!(matches!(e, ArenaError::NoSpace { .. }), "{e:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    p.free(all, Size(4096)).unwrap();
}
