//! Round 68 (outside reviewer): the thread-safe layer under an adversary.
//! Frees through another arena's doors, the largest sizes, deferred frees
//! racing `flushed` while handles flush, drop and allocate, counters that
//! must add up afterwards, and a timed wait woken by `flushed`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, SchedPin, UserArena};
use vmspace_workload::Rng;

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared_at(base: usize, len: usize) -> Shared {
    let mut a = Arena::new("r68", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(base), Size(len)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

fn counts(s: &Shared) -> (u64, u64, u64, u64) {
    let c = s.with(|a| a.counters());
    let q = s.qcache_stats();
    (c.allocs, c.frees, c.bad_frees, q.bad_frees)
}

/// A cached object and a plain allocation of arena B, freed through every
/// door of arena A (disjoint ranges): all refused, neither arena changed,
/// and B's objects still free once, normally.
#[test]
fn frees_through_another_arenas_doors_are_refused() {
    let a = shared_at(1 << 30, 1 << 20);
    let b = shared_at(2 << 30, 1 << 20);
    let mut ha = CacheHandle::new(&a);
    let ca = CpuCaches::new(&a, SchedPin::with_slots(2), store()).unwrap();
    let mut hb = CacheHandle::new(&b);
    // Give A slabs of its own in the same classes.
    let mine = ha.alloc(Size(32)).unwrap();
    let x = hb.alloc(Size(32)).unwrap();
    let y = b.alloc(Size(4096), Policy::BestFit, Wait::No).unwrap();
    let (ba, bb) = (a.with(|r| r.sizes()), b.with(|r| r.sizes()));
    for (addr, size) in [(x, Size(32)), (y, Size(4096))] {
        assert!(ha.free(addr, size).is_err(), "handle of A freed B's {addr:?}");
        assert!(ca.free(addr, size).is_err(), "CpuCaches of A freed B's {addr:?}");
        assert!(a.free(addr, size).is_err(), "A freed B's {addr:?}");
        assert!(a.free_deferred(addr, size).is_err(), "A deferred-freed B's {addr:?}");
    }
    assert_eq!(a.flushed(), Size(0));
    assert_eq!(a.with(|r| r.sizes()), ba);
    assert_eq!(b.with(|r| r.sizes()), bb);
    a.check().unwrap();
    b.check().unwrap();
    // B's objects are still live in B: exactly one free each succeeds.
    hb.free(x, Size(32)).unwrap();
    assert!(hb.free(x, Size(32)).is_err());
    b.free(y, Size(4096)).unwrap();
    ha.free(mine, Size(32)).unwrap();
    drop((ha, ca, hb));
    a.reclaim();
    b.reclaim();
    a.check().unwrap();
    b.check().unwrap();
    assert_eq!(a.with(|r| r.sizes().allocated), Size(0));
    assert_eq!(b.with(|r| r.sizes().allocated), Size(0));
}

/// The largest cached size, one past it, and `usize::MAX`, through every
/// allocating door; frees with `usize::MAX` or a neighbour size of a live
/// object are refused and change nothing.
#[test]
fn the_largest_sizes_through_every_door() {
    let s = shared_at(1 << 30, 1 << 20);
    let max = s.qcache_max();
    assert!(max.0 > 0);
    let mut h = CacheHandle::new(&s);
    let cpu = CpuCaches::new(&s, SchedPin::with_slots(2), store()).unwrap();
    let huge = Size(usize::MAX);
    let near = Size(usize::MAX - 15);
    for w in [Wait::No, Wait::Timeout(Duration::from_millis(1))] {
        assert!(h.alloc_wait(huge, w).is_err());
        assert!(h.alloc_wait(near, w).is_err());
        assert!(cpu.alloc_wait(huge, w).is_err());
        assert!(cpu.alloc_wait(near, w).is_err());
        assert!(s.alloc(huge, Policy::InstantFit, w).is_err());
        assert!(s.alloc(near, Policy::BestFit, w).is_err());
    }
    s.check().unwrap();
    let before = s.with(|a| a.sizes());
    let x = h.alloc(max).unwrap();
    let y = cpu.alloc(max).unwrap();
    let z = h.alloc(Size(max.0 + 1)).unwrap();
    let w = cpu.alloc(Size(max.0 + 1)).unwrap();
    let mut all = [(x, max.0), (y, max.0), (z, max.0 + 1), (w, max.0 + 1)];
    all.sort();
    for p in all.windows(2) {
        assert!(p[0].0 .0 + p[0].1 <= p[1].0 .0, "overlap {p:?}");
    }
    let c0 = counts(&s);
    for (addr, size) in [(x, max), (y, max)] {
        for bad in [huge, near, Size(max.0 + 1), Size(max.0 - 1), Size(0)] {
            assert!(h.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
            assert!(cpu.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
            assert!(s.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
            assert!(s.free_deferred(addr, bad).is_err(), "{addr:?} deferred with {bad:?}");
        }
        let _ = size;
    }
    for (addr, _) in [(z, 0), (w, 0)] {
        for bad in [huge, near, max, Size(0)] {
            assert!(s.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
            assert!(h.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
            assert!(cpu.free(addr, bad).is_err(), "{addr:?} freed with {bad:?}");
        }
    }
    assert_eq!(s.flushed(), Size(0), "a refused deferred free deferred something");
    let c1 = counts(&s);
    assert_eq!((c1.0, c1.1), (c0.0, c0.1), "refused frees moved allocs/frees");
    s.check().unwrap();
    // Crossing doors: a handle's object freed per CPU and the other way.
    cpu.free(x, max).unwrap();
    h.free(y, max).unwrap();
    h.free(w, Size(max.0 + 1)).unwrap();
    cpu.free(z, Size(max.0 + 1)).unwrap();
    drop((h, cpu));
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes()).allocated, before.allocated);
    let q = s.qcache_stats();
    assert_eq!((q.slabs, q.objects_in_slabs, q.depot_magazines), (0, 0, 0));
}

/// Three threads: handles (dropped and made anew mid-run), the per-CPU
/// caches, plain and deferred frees of arena sizes, objects handed between
/// threads to be freed by another door; a fourth runs `flushed`, `reclaim`
/// and `check` throughout. No overlap; afterwards the counters add up.
#[test]
fn deferred_frees_flushes_and_handle_drops_race_allocations() {
    let s = shared_at(1 << 30, 1 << 20);
    let max = s.qcache_max().0;
    let cpu = CpuCaches::new(&s, SchedPin::with_slots(2), store()).unwrap();
    let live: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
    let pool: Mutex<Vec<(Addr, Size)>> = Mutex::new(Vec::new());
    let cached_attempts = AtomicU64::new(0);
    let done = AtomicUsize::new(0);
    let deferred_bytes = AtomicUsize::new(0);
    let flushed_bytes = AtomicUsize::new(0);
    let before = s.with(|a| a.counters());
    std::thread::scope(|sc| {
        for t in 0..3u64 {
            let (s, cpu, live, pool) = (&s, &cpu, &live, &pool);
            let (cached_attempts, done, deferred_bytes) =
                (&cached_attempts, &done, &deferred_bytes);
            sc.spawn(move || {
                let mut rng = Rng::new(0x9e37_79b9 ^ ((t + 1) * 0x1234_5678_9abc));
                let mut h = Some(CacheHandle::new(s));
                for _ in 0..6000 {
                    let r = rng.next_u64();
                    match r % 10 {
                        0..=4 => {
                            let size = if r % 7 == 0 {
                                128 + (r >> 8) as usize % 2048
                            } else {
                                1 + (r >> 8) as usize % max
                            };
                            let cached = size <= max;
                            let got = match h.as_mut() {
                                Some(h) if r % 3 != 0 => h.alloc(Size(size)),
                                _ => cpu.alloc(Size(size)),
                            };
                            if cached {
                                cached_attempts.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Ok(a) = got {
                                let mut m = live.lock().unwrap();
                                if let Some((&b, &l)) = m.range(..a.0 + size).next_back() {
                                    assert!(b + l <= a.0, "{a:?}+{size} overlaps {b:#x}+{l}");
                                }
                                m.insert(a.0, size);
                                drop(m);
                                pool.lock().unwrap().push((a, Size(size)));
                            }
                        }
                        5..=8 => {
                            let Some((a, size)) = ({
                                let mut p = pool.lock().unwrap();
                                let n = p.len();
                                if n == 0 {
                                    None
                                } else {
                                    Some(p.swap_remove((r >> 16) as usize % n))
                                }
                            }) else {
                                continue;
                            };
                            assert_eq!(live.lock().unwrap().remove(&a.0), Some(size.0));
                            let deferred = size.0 > max && r % 2 == 0;
                            let res = if deferred {
                                s.free_deferred(a, size)
                            } else {
                                match (r >> 20) % 3 {
                                    0 if h.is_some() => h.as_mut().unwrap().free(a, size),
                                    1 => cpu.free(a, size),
                                    _ => s.free(a, size),
                                }
                            };
                            res.unwrap_or_else(|e| panic!("free of {a:?} {size:?}: {e}"));
                            if deferred {
                                deferred_bytes
                                    .fetch_add(size.0.next_multiple_of(16), Ordering::Relaxed);
                            }
                        }
                        _ => match (r >> 8) % 3 {
                            0 => drop(h.take()),
                            1 => h = Some(CacheHandle::new(s)),
                            _ => {
                                if let Some(h) = h.as_mut() {
                                    h.flush()
                                }
                            }
                        },
                    }
                }
                drop(h);
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let (s, done, flushed_bytes) = (&s, &done, &flushed_bytes);
        sc.spawn(move || {
            while done.load(Ordering::SeqCst) < 3 {
                flushed_bytes.fetch_add(s.flushed().0, Ordering::Relaxed);
                s.reclaim();
                s.check().unwrap();
                std::thread::yield_now();
            }
        });
    });
    flushed_bytes.fetch_add(s.flushed().0, Ordering::Relaxed);
    s.check().unwrap();
    // Free what is left, through the arena.
    for (a, size) in pool.into_inner().unwrap() {
        s.free(a, size).unwrap();
    }
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    let q = s.qcache_stats();
    let c = s.with(|a| a.counters());
    let (allocs, frees) = (c.allocs - before.allocs, c.frees - before.frees);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    assert_eq!(allocs, frees, "arena allocs - frees = live (none)");
    assert_eq!(c.bad_frees, before.bad_frees, "no bad free charged to the arena");
    assert_eq!(q.hits + q.misses, cached_attempts.load(Ordering::Relaxed), "{q:?}");
    assert_eq!((q.slabs, q.objects_in_slabs, q.depot_magazines), (0, 0, 0), "{q:?}");
    assert_eq!(q.slabs_created, q.slabs_freed, "{q:?}");
    assert_eq!(
        flushed_bytes.load(Ordering::Relaxed),
        deferred_bytes.load(Ordering::Relaxed),
        "flushed must return every deferred byte exactly once"
    );
    s.into_inner().map_err(|r| format!("{r:?}")).map(drop).unwrap_or_else(|e| panic!("{e}"));
}

/// A timed wait for space, woken by another thread's deferred free and
/// `flushed` (documented to wake waiters); a wait through a handle, woken
/// when another handle drops with the whole slab in its magazines.
#[test]
fn timed_waits_woken_by_flushed_and_by_a_handle_drop() {
    let s = shared_at(1 << 30, 1 << 16);
    let all = s.alloc(Size(1 << 16), Policy::InstantFit, Wait::No).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|sc| {
        let s = &s;
        sc.spawn(move || {
            let r = s.alloc(Size(4096), Policy::InstantFit, Wait::Timeout(Duration::from_secs(30)));
            tx.send(r).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        s.free_deferred(all, Size(1 << 16)).unwrap();
        // Not free yet: the waiter may not take it.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "took deferred space");
        assert_eq!(s.flushed(), Size(1 << 16));
        let got = rx.recv_timeout(Duration::from_secs(60)).expect("waiter never woke").unwrap();
        s.free(got, Size(4096)).unwrap();
    });
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));

    // Fill the arena with cached objects through one handle, then wait
    // through another for a plain size; the first frees everything into
    // its magazines and drops.
    let objs: Vec<Addr> = {
        let mut h = CacheHandle::new(&s);
        let mut v = Vec::new();
        while let Ok(a) = h.alloc(Size(64)) {
            v.push(a);
            if v.len() > 100_000 {
                panic!("never ran out");
            }
        }
        drop(h);
        v
    };
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|sc| {
        let s = &s;
        sc.spawn(move || {
            let mut h = CacheHandle::new(s);
            let r = h.alloc_wait(Size(1 << 12), Wait::Timeout(Duration::from_secs(30)));
            tx.send(r.map(|a| (a, h.arena().qcache_max()))).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut h = CacheHandle::new(s);
        for a in &objs {
            h.free(*a, Size(64)).unwrap();
        }
        drop(h);
        let (got, _) =
            rx.recv_timeout(Duration::from_secs(60)).expect("waiter never woke").unwrap();
        s.free(got, Size(1 << 12)).unwrap();
    });
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
