//! Round 68 (outside reviewer): per-CPU caches on the user-space pins
//! (`RseqPin` with rseq, with fewer slots than CPUs, and without rseq)
//! under an adversary: four threads freeing every object at once (exactly
//! one free each succeeds), a stale size of the same class after reuse,
//! sizes past the cached classes, and counters that add up afterwards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::CacheHandle;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena, UserCpuCaches};
use vmspace_workload::Rng;

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> Shared {
    let mut a = Arena::new("r68u", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 22)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

fn pins() -> Vec<(&'static str, RseqPin)> {
    vec![
        ("rseq", RseqPin::new()),
        ("rseq-1-slot", RseqPin::with_slots(1)),
        ("sched-2", RseqPin::without_rseq(2)),
    ]
}

/// Four threads free every one of N objects, each in its own order, some
/// through the per-CPU caches and some through the arena: each object
/// freed exactly once, 3N refusals counted once each, nothing lost.
#[test]
fn four_threads_free_every_object_exactly_one_wins() {
    for (name, pin) in pins() {
        let s = shared();
        let cpu: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(&s, pin, store()).unwrap();
        let max = s.qcache_max().0;
        for round in 0..4u64 {
            let objs: Vec<(Addr, Size)> = (0..1500)
                .map(|i| {
                    let size = Size(1 + (i * 7 + round as usize) % max);
                    (cpu.alloc(size).unwrap(), size)
                })
                .collect();
            let wins: Vec<AtomicUsize> = objs.iter().map(|_| AtomicUsize::new(0)).collect();
            let (b0, q0) = (s.with(|a| a.counters().bad_frees), s.qcache_stats().bad_frees);
            let barrier = Barrier::new(4);
            std::thread::scope(|sc| {
                for t in 0..4u64 {
                    let (s, cpu, objs, wins, barrier) = (&s, &cpu, &objs, &wins, &barrier);
                    sc.spawn(move || {
                        let mut order: Vec<usize> = (0..objs.len()).collect();
                        let mut rng = Rng::new(0xdead_beef ^ ((t + 1) * 0x9e37_79b9) ^ round);
                        for i in (1..order.len()).rev() {
                            order.swap(i, rng.next_u64() as usize % (i + 1));
                        }
                        barrier.wait();
                        for i in order {
                            let (a, size) = objs[i];
                            let r = if (t + i as u64) % 3 == 0 {
                                s.free(a, size)
                            } else {
                                cpu.free(a, size)
                            };
                            match r {
                                Ok(()) => {
                                    wins[i].fetch_add(1, Ordering::Relaxed);
                                }
                                Err(ArenaError::BadFree { .. }) => {}
                                Err(e) => panic!("{name}: free of {a:?}: unexpected {e}"),
                            }
                        }
                    });
                }
            });
            for (i, w) in wins.iter().enumerate() {
                assert_eq!(
                    w.load(Ordering::Relaxed),
                    1,
                    "{name} round {round}: object {:?}",
                    objs[i]
                );
            }
            let (b1, q1) = (s.with(|a| a.counters().bad_frees), s.qcache_stats().bad_frees);
            // Objects the arena made for an unplaced caller are its own
            // allocations (their bad frees are the arena's); the rest are
            // the caches'. Together: every refusal counted once.
            assert_eq!(
                (b1 - b0) + (q1 - q0),
                3 * objs.len() as u64,
                "{name}: bad frees (arena, caches)"
            );
            s.check().unwrap();
        }
        drop(cpu);
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{name}");
        let q = s.qcache_stats();
        assert_eq!((q.slabs, q.objects_in_slabs, q.depot_magazines), (0, 0, 0), "{name}: {q:?}");
    }
}

/// An object freed with one size and served again, by a hit, with another
/// size of the same class: a free with the old size is refused (with the
/// size it is live with now), through every door.
#[test]
fn a_stale_size_of_the_same_class_after_reuse_is_refused() {
    for (name, pin) in pins() {
        let s = shared();
        let cpu: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(&s, pin, store()).unwrap();
        let mut h = CacheHandle::new(&s);
        for (old, new) in [(33, 48), (48, 33), (17, 32), (1, 16), (49, 64)] {
            let (old, new) = (Size(old), Size(new));
            // Through the handle: its magazine serves the object again.
            let a = h.alloc(old).unwrap();
            h.free(a, old).unwrap();
            let b = h.alloc(new).unwrap();
            assert_eq!(a, b, "{name}: the handle's hit serves the last free");
            for r in [h.free(b, old), cpu.free(b, old), s.free(b, old), s.free_deferred(b, old)] {
                assert!(
                    matches!(r, Err(ArenaError::BadFree { .. })),
                    "{name}: stale {old:?}: {r:?}"
                );
            }
            assert_eq!(
                s.free(b, old),
                Err(ArenaError::BadFree { addr: b, size: old, allocated: Some(new) }),
                "{name}"
            );
            s.check().unwrap();
            cpu.free(b, new).unwrap();
            assert!(h.free(b, new).is_err(), "{name}: double free accepted");
            // Through the per-CPU caches (a hit only if the thread stays on
            // its slot; the contract holds either way).
            let a = cpu.alloc(old).unwrap();
            cpu.free(a, old).unwrap();
            let b = cpu.alloc(new).unwrap();
            if a == b {
                assert!(cpu.free(b, old).is_err(), "{name}: stale size through the CPU");
                assert!(s.free(b, old).is_err(), "{name}: stale size through the arena");
            }
            h.free(b, new).unwrap();
            s.check().unwrap();
        }
        drop(h);
        drop(cpu);
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{name}");
    }
}

/// `alloc_retrying` serves only cached sizes: `None` one past the largest
/// class and at `usize::MAX` (no overflow), `Some` at the largest.
#[test]
fn alloc_retrying_at_the_edges_of_the_classes() {
    for (name, pin) in pins() {
        let s = shared();
        let cpu: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(&s, pin, store()).unwrap();
        let max = s.qcache_max();
        for size in [Size(max.0 + 1), Size(usize::MAX), Size(usize::MAX - 15), Size(max.0 + 16)] {
            assert!(cpu.alloc_retrying(size).is_none(), "{name}: {size:?}");
            assert!(cpu.alloc(size).is_ok() == (size.0 < (1 << 22)), "{name}: {size:?}");
        }
        let r = cpu.alloc_retrying(max).expect("the largest class is cached");
        let a = r.first().unwrap();
        drop(r);
        assert!(cpu.free(a, Size(max.0 + 1)).is_err(), "{name}");
        assert!(cpu.free(a, Size(usize::MAX)).is_err(), "{name}");
        cpu.free(a, max).unwrap();
        // Free the two plain allocations made above by the loop: find them.
        let held: Vec<(usize, usize)> = s.with(|ar| {
            ar.walk(vmspace::arena::SegmentKinds::ALLOCATED)
                .filter(|sg| !sg.held)
                .map(|sg| (sg.range.base().0, sg.range.size().0))
                .collect()
        });
        for (b, l) in held {
            let size = if l == max.0 + 16 { max.0 + 1 } else { l };
            s.free(Addr(b), Size(size)).or_else(|_| s.free(Addr(b), Size(l))).unwrap();
        }
        drop(cpu);
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{name}");
    }
}

/// Four threads allocate and free (mixing `alloc`, `alloc_retrying` and
/// frees of objects another thread allocated); after the caches drop,
/// hits + misses = the cached allocations made, and everything is back.
#[test]
fn counters_add_up_after_a_concurrent_run() {
    for (name, pin) in pins() {
        let s = shared();
        let cpu: UserCpuCaches<'_, Store, NoSource> = UserCpuCaches::new(&s, pin, store()).unwrap();
        let max = s.qcache_max().0;
        let attempts = AtomicU64::new(0);
        let shared_pool = std::sync::Mutex::new(Vec::<(Addr, Size)>::new());
        std::thread::scope(|sc| {
            for t in 0..4u64 {
                let (s, cpu, attempts, pool) = (&s, &cpu, &attempts, &shared_pool);
                sc.spawn(move || {
                    let mut rng = Rng::new(0x1234_5678 ^ ((t + 1) * 0x9e37_79b9));
                    let mut mine = Vec::new();
                    for _ in 0..4000 {
                        let r = rng.next_u64();
                        let size = Size(1 + (r >> 8) as usize % max);
                        match r % 8 {
                            0..=3 => {
                                attempts.fetch_add(1, Ordering::Relaxed);
                                if let Ok(a) = cpu.alloc(size) {
                                    mine.push((a, size));
                                }
                            }
                            4 => {
                                attempts.fetch_add(1, Ordering::Relaxed);
                                let rt = cpu.alloc_retrying(size).unwrap();
                                if let Ok(a) = rt.first() {
                                    mine.push((a, size));
                                }
                            }
                            5 => {
                                if let Some(x) = mine.pop() {
                                    pool.lock().unwrap().push(x);
                                }
                            }
                            _ => {
                                let x = if r % 2 == 0 {
                                    pool.lock().unwrap().pop()
                                } else {
                                    mine.pop()
                                };
                                if let Some((a, size)) = x {
                                    let r = if r % 3 == 0 {
                                        s.free(a, size)
                                    } else {
                                        cpu.free(a, size)
                                    };
                                    r.unwrap_or_else(|e| panic!("{name}: {e}"));
                                }
                            }
                        }
                    }
                    for (a, size) in mine {
                        cpu.free(a, size).unwrap();
                    }
                });
            }
        });
        for (a, size) in shared_pool.into_inner().unwrap() {
            cpu.free(a, size).unwrap();
        }
        s.check().unwrap();
        drop(cpu);
        s.reclaim();
        s.check().unwrap();
        let q = s.qcache_stats();
        assert_eq!(q.hits + q.misses, attempts.load(Ordering::Relaxed), "{name}: {q:?}");
        assert_eq!(q.bad_frees, 0, "{name}");
        assert_eq!((q.slabs, q.objects_in_slabs, q.depot_magazines), (0, 0, 0), "{name}: {q:?}");
        assert_eq!(q.slabs_created, q.slabs_freed, "{name}: {q:?}");
        let c = s.with(|a| a.counters());
        assert_eq!(c.allocs, c.frees, "{name}: {c:?}");
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{name}");
        s.into_inner().map(drop).map_err(|_| "refused").unwrap();
    }
}
