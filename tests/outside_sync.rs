//! Written from the documented contracts by a reviewer outside the project,
//! to break them: SyncArena, quantum caches, waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, SchedPin, UserArena, UserCpuCaches};

type Shared = UserArena<PageStore<MmapBackend>, NoSource>;

fn shared(base: usize, size: usize, classes: usize) -> Shared {
    let pages = MmapBackend::new();
    let mut arena = Arena::on_pages("s", Size(16), pages, 1 << 14, NoSource).unwrap();
    arena.add(Addr(base), Size(size)).unwrap();
    let slabs = PageStore::new(pages, Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(arena, QCacheConfig::new(classes, slabs)).unwrap()
}

/// Run `wait` (an allocation that must wait) on a thread of its own until
/// it waits, then free the 4096 bytes at `big` and return what it got.
fn woken_by_freeing(
    s: &Shared,
    big: Addr,
    wait: impl FnOnce() -> Result<Addr, ArenaError> + Send,
) -> Addr {
    std::thread::scope(|sc| {
        let j = sc.spawn(wait);
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(30));
        s.free(big, Size(4096)).unwrap();
        j.join().unwrap()
    })
    .unwrap()
}

fn bad_free(r: Result<(), ArenaError>) -> bool {
    matches!(r, Err(ArenaError::BadFree { .. }))
}

#[test]
fn two_threads_free_the_same_plain_allocation_exactly_one_wins() {
    let s = &shared(1 << 40, 1 << 24, 4);
    for round in 0..300 {
        let size = Size(if round % 2 == 0 { 4096 } else { 48 });
        let a = s.alloc(size, Policy::InstantFit, Wait::No).unwrap();
        let wins = AtomicUsize::new(0);
        let bar = Barrier::new(2);
        std::thread::scope(|sc| {
            for t in 0..2 {
                let (wins, bar) = (&wins, &bar);
                sc.spawn(move || {
                    bar.wait();
                    let r = if t == 0 || round % 3 == 0 {
                        s.free(a, size)
                    } else {
                        s.free_deferred(a, size)
                    };
                    match r {
                        Ok(()) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ArenaError::BadFree { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
        s.flushed();
        s.check().unwrap();
    }
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

#[test]
fn cached_objects_race_through_cpu_caches_and_arena() {
    let s = &shared(1 << 40, 1 << 24, 8);
    let store = PageStore::new(MmapBackend::new(), Size(1 << 16)).unwrap();
    let caches = &UserCpuCaches::new(s, SchedPin::with_slots(2), store).unwrap();
    for round in 0..200 {
        let size = Size(1 + round % 128);
        let objs: Vec<Addr> = (0..70).map(|_| caches.alloc(size).unwrap()).collect();
        let wins = AtomicUsize::new(0);
        let bar = Barrier::new(2);
        std::thread::scope(|sc| {
            for t in 0..2 {
                let (wins, bar, objs) = (&wins, &bar, &objs);
                sc.spawn(move || {
                    bar.wait();
                    for &a in objs {
                        let r = match (t + round) % 3 {
                            0 => caches.free(a, size),
                            1 => s.free(a, size),
                            _ => {
                                let mut h = CacheHandle::new(s);
                                h.free(a, size)
                            }
                        };
                        match r {
                            Ok(()) => {
                                wins.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(ArenaError::BadFree { .. }) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), objs.len(), "round {round}");
        s.check().unwrap();
    }
}

#[test]
fn sizes_in_the_same_class_and_foreign_addresses_are_bad_frees() {
    let s = &shared(1 << 40, 1 << 20, 4);
    let other = &shared(1 << 41, 1 << 20, 4);
    let mut h = CacheHandle::new(s);
    let a = h.alloc(Size(17)).unwrap(); // class 2 (17..32)
    let before = s.with(|ar| (ar.sizes(), ar.counters().frees));
    assert!(bad_free(h.free(a, Size(32))));
    assert!(bad_free(h.free(a, Size(18))));
    assert!(bad_free(s.free(a, Size(32))));
    assert!(bad_free(s.free(a, Size(16))));
    assert!(bad_free(s.free(a, Size(0))));
    assert!(bad_free(s.free(a, Size(64))));
    assert!(bad_free(s.free_deferred(a, Size(17))), "a cached object cannot be freed deferred");
    assert!(bad_free(s.free(Addr(a.0 + 16), Size(17))));
    assert!(bad_free(s.free(Addr(a.0 + 1), Size(17))));
    assert!(bad_free(s.free(Addr(usize::MAX), Size(usize::MAX))));
    assert!(bad_free(s.free(Addr(usize::MAX - 15), Size(16))));
    assert!(bad_free(s.free(Addr(0), Size(16))));
    // Another arena's object.
    let mut oh = CacheHandle::new(other);
    let o = oh.alloc(Size(17)).unwrap();
    assert!(bad_free(h.free(o, Size(17))));
    assert!(bad_free(s.free(o, Size(17))));
    let op = other.alloc(Size(4096), Policy::BestFit, Wait::No).unwrap();
    assert!(bad_free(s.free(op, Size(4096))));
    assert!(bad_free(s.free_deferred(op, Size(4096))));
    assert_eq!(s.with(|ar| (ar.sizes(), ar.counters().frees)), before);
    s.check().unwrap();
    h.free(a, Size(17)).unwrap();
    assert!(bad_free(h.free(a, Size(17))));
    assert!(bad_free(s.free(a, Size(17))));
    oh.free(o, Size(17)).unwrap();
    other.free(op, Size(4096)).unwrap();
    drop(h);
    drop(oh);
    s.reclaim();
    other.reclaim();
    s.check().unwrap();
    other.check().unwrap();
    assert_eq!(s.with(|ar| ar.sizes().allocated), Size(0));
    assert_eq!(other.with(|ar| ar.sizes().allocated), Size(0));
}

#[test]
fn zero_and_huge_timeouts() {
    let s = &shared(1 << 40, 4096, 4);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    for w in [Wait::No, Wait::Timeout(Duration::ZERO), Wait::Timeout(Duration::from_nanos(1))] {
        let t0 = Instant::now();
        assert!(matches!(
            s.alloc(Size(16), Policy::InstantFit, w),
            Err(ArenaError::NoSpace { .. })
        ));
        assert!(matches!(
            s.xalloc(&Constraints::new(Size(16)), w),
            Err(ArenaError::NoSpace { .. })
        ));
        assert!(matches!(
            CacheHandle::new(s).alloc_wait(Size(16), w),
            Err(ArenaError::NoSpace { .. })
        ));
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert_eq!(s.waiting(), 0);
    }
    // Errors other than NoSpace come back at once even with Forever.
    let t0 = Instant::now();
    assert!(s.alloc(Size(0), Policy::InstantFit, Wait::Forever).is_err());
    assert!(s.alloc(Size(usize::MAX), Policy::InstantFit, Wait::Forever).is_err());
    assert!(s.xalloc(&Constraints::new(Size(16)).align(Size(48)), Wait::Forever).is_err());
    assert!(s.xalloc(&Constraints::new(Size(32)).nocross(Size(16)), Wait::Forever).is_err());
    assert!(CacheHandle::new(s).alloc_wait(Size(0), Wait::Forever).is_err());
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(s.waiting(), 0);
    // Huge timeouts: must not overflow, and must be woken by a free.
    for w in [
        Wait::Timeout(Duration::MAX),
        Wait::Timeout(Duration::from_secs(u64::MAX / 2)),
        Wait::Forever,
    ] {
        let got = woken_by_freeing(s, big, || s.alloc(Size(16), Policy::InstantFit, w));
        s.free(got, Size(16)).unwrap();
        // take it all again
        let again = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
        assert_eq!(again, big);
    }
    // Per-CPU and handle waiters with a huge timeout, woken by the free of a plain allocation.
    let store = PageStore::new(MmapBackend::new(), Size(1 << 16)).unwrap();
    let caches = &UserCpuCaches::new(s, SchedPin::with_slots(1), store).unwrap();
    let got =
        woken_by_freeing(s, big, || caches.alloc_wait(Size(48), Wait::Timeout(Duration::MAX)));
    caches.free(got, Size(48)).unwrap();
    s.check().unwrap();
}

#[test]
fn a_timed_wait_times_out_near_its_deadline() {
    let s = &shared(1 << 40, 4096, 4);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let t0 = Instant::now();
    let r = s.alloc(Size(16), Policy::InstantFit, Wait::Timeout(Duration::from_millis(200)));
    let e = t0.elapsed();
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })));
    assert!(e >= Duration::from_millis(200) && e < Duration::from_secs(30), "{e:?}");
    let t0 = Instant::now();
    let r = CacheHandle::new(s).alloc_wait(Size(16), Wait::Timeout(Duration::from_millis(200)));
    let e = t0.elapsed();
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })));
    assert!(e >= Duration::from_millis(200) && e < Duration::from_secs(30), "{e:?}");
    assert_eq!(s.waiting(), 0);
    s.free(big, Size(4096)).unwrap();
}

#[test]
fn a_waiter_is_woken_by_a_flushed_deferred_free_not_before() {
    let s = &shared(1 << 40, 4096, 4);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let got = std::thread::scope(|sc| {
        let j = sc.spawn(|| {
            s.alloc(Size(4096), Policy::InstantFit, Wait::Timeout(Duration::from_secs(30)))
        });
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.free_deferred(big, Size(4096)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(s.waiting(), 1, "took an unflushed range");
        let t0 = Instant::now();
        assert_eq!(s.flushed(), Size(4096));
        let r = j.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
        r
    })
    .unwrap();
    assert_eq!(got, big);
    s.free(got, Size(4096)).unwrap();
    s.check().unwrap();
}

#[test]
fn child_arenas_import_from_a_shared_parent_and_defer() {
    let parent = &shared(1 << 40, 1 << 16, 4);
    let pages = MmapBackend::new();
    let mut child = Arena::on_pages("child", Size(16), pages, 1 << 10, parent).unwrap();
    let a = child.alloc(Size(4096), Policy::InstantFit).unwrap();
    let b = child.alloc(Size(64), Policy::InstantFit).unwrap();
    child.free_deferred(a, Size(4096)).unwrap();
    child.free(b, Size(64)).unwrap();
    child.check().unwrap();
    // The parent must not hand out the unflushed range.
    let mut got = Vec::new();
    while let Ok(x) = parent.alloc(Size(16), Policy::InstantFit, Wait::No) {
        assert!(!(a.0..a.0 + 4096).contains(&x.0), "parent reissued an unflushed range: {x:?}");
        got.push(x);
    }
    for x in got.drain(..) {
        parent.free(x, Size(16)).unwrap();
    }
    drop(child); // the unflushed span stays with the child's parent
    while let Ok(x) = parent.alloc(Size(16), Policy::InstantFit, Wait::No) {
        assert!(
            !(a.0..a.0 + 4096).contains(&x.0),
            "after drop, parent reissued an unflushed range: {x:?}"
        );
        got.push(x);
    }
    parent.check().unwrap();
}
