//! Round 68 (outside reviewer): waits while the only free objects sit in
//! a live handle's magazines (CacheHandle docs: "objects in other
//! handles' magazines come back when those fill up or flush").

use std::sync::mpsc;
use std::time::Duration;

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, SchedPin, UserArena};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

#[test]
fn waits_for_objects_held_in_a_live_handles_magazines() {
    let mut a = Arena::new("r68w", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 16)).unwrap();
    let s = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
    let mut h1 = CacheHandle::new(&s);
    let mut objs = Vec::new();
    while let Ok(x) = h1.alloc(Size(64)) {
        objs.push(x);
        assert!(objs.len() < 100_000);
    }
    // Space left only past slabs' tails, if any: take it too.
    let mut plain = Vec::new();
    while let Ok(x) = s.alloc(Size(16), vmspace::Policy::InstantFit, Wait::No) {
        plain.push(x);
    }
    // Three objects back into h1's magazines: no magazine fills, none
    // reaches the depot.
    let kept: Vec<Addr> = objs.drain(..3).collect();
    for x in &kept {
        h1.free(*x, Size(64)).unwrap();
    }
    s.check().unwrap();
    // Another handle cannot have them: a timed wait ends, refused.
    let mut h2 = CacheHandle::new(&s);
    assert!(h2.alloc_wait(Size(64), Wait::Timeout(Duration::from_millis(30))).is_err());
    let mut cpu = CpuCaches::new(&s, SchedPin::with_slots(2), store()).unwrap();
    assert!(cpu.alloc_wait(Size(48), Wait::Timeout(Duration::from_millis(30))).is_err());
    s.check().unwrap();
    // A waiter forever, through the per-CPU caches, woken by h1's flush.
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|sc| {
        let cpu = &cpu;
        sc.spawn(move || {
            tx.send(cpu.alloc_wait(Size(64), Wait::Forever)).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "served while the objects were in h1");
        h1.flush();
        let got = rx.recv_timeout(Duration::from_secs(60)).expect("never woken").unwrap();
        assert!(kept.contains(&got), "{got:?} is not one h1 flushed");
        objs.push(got);
    });
    s.check().unwrap();
    // The waiter's miss took a magazine with the other two into its slot;
    // the per-CPU caches' flush hands them back, and h2 gets them.
    cpu.flush();
    let a = h2.alloc(Size(64)).unwrap();
    let b = h2.alloc(Size(64)).unwrap();
    assert!(kept.contains(&a) && kept.contains(&b) && a != b);
    objs.extend([a, b]);
    assert!(h2.alloc(Size(64)).is_err());
    // Every object freed once, through mixed doors, then the arena empties.
    for (i, x) in objs.iter().enumerate() {
        match i % 3 {
            0 => h1.free(*x, Size(64)).unwrap(),
            1 => cpu.free(*x, Size(64)).unwrap(),
            _ => s.free(*x, Size(64)).unwrap(),
        }
        assert!(h2.free(*x, Size(64)).is_err());
    }
    for x in plain {
        s.free(x, Size(16)).unwrap();
    }
    drop((h1, h2, cpu));
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    let q = s.qcache_stats();
    assert_eq!((q.slabs, q.objects_in_slabs, q.depot_magazines), (0, 0, 0), "{q:?}");
    s.into_inner().map(drop).map_err(|_| "refused").unwrap();
}

/// `Wait::Timeout(Duration::MAX)` (a deadline past any clock: no overflow)
/// on a handle and on the per-CPU caches, each woken by a plain free from
/// the main thread.
#[test]
fn the_longest_timeout_is_woken_by_a_free() {
    let mut a = Arena::new("r68m", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 16)).unwrap();
    let s = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
    let cpu = CpuCaches::new(&s, SchedPin::with_slots(2), store()).unwrap();
    for per_cpu in [false, true] {
        let all = s.alloc(Size(1 << 16), vmspace::Policy::InstantFit, Wait::No).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|sc| {
            let (s, cpu) = (&s, &cpu);
            sc.spawn(move || {
                let w = Wait::Timeout(Duration::MAX);
                let r = if per_cpu {
                    cpu.alloc_wait(Size(8192), w).map(|x| (x, 8192))
                } else {
                    CacheHandle::new(s).alloc_wait(Size(32), w).map(|x| (x, 32))
                };
                tx.send(r).unwrap();
            });
            std::thread::sleep(Duration::from_millis(30));
            s.free(all, Size(1 << 16)).unwrap();
            let (x, n) = rx.recv_timeout(Duration::from_secs(60)).expect("never woken").unwrap();
            s.free(x, Size(n)).unwrap();
        });
        s.reclaim();
        s.check().unwrap();
    }
    drop(cpu);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
