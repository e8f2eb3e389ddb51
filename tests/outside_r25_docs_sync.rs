//! Outside review (round 25): SyncArena, CacheHandle, CpuCaches and the
//! quantum caches, their rustdoc taken as a contract: checked frees of
//! cached objects (same class, other class, double, racing, a slab's own
//! range), reclaims before failing, waits, statistics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore};
use vmspace::qcache::{CpuPin, QCacheConfig, MAX_QUANTUM, OBJECTS};
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, ParkingLock, SchedPin};

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;
type Sleepy<'a> = SyncArena<ParkingLock, CondvarWaiter, SliceStore<'a>, NoSource>;

struct Bufs {
    tags: Vec<u64>,
    hash: Vec<u64>,
    qc: Vec<u64>,
}

fn bufs() -> Bufs {
    Bufs { tags: vec![0; 1 << 15], hash: vec![0; 1 << 13], qc: vec![0; 1 << 16] }
}

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn plain<'a>(
    tags: &'a mut [u64],
    hash: &'a mut [u64],
    q: usize,
    base: usize,
    span: usize,
) -> Arena<SliceStore<'a>, NoSource> {
    let mut a = Arena::new(
        "r25s",
        Size(q),
        SliceStore::new(bytes(tags)),
        SliceStore::new(bytes(hash)),
        NoSource,
    )
    .unwrap();
    if span != 0 {
        a.add(Addr(base), Size(span)).unwrap();
    }
    a
}

fn shared(b: &mut Bufs, q: usize, classes: usize, span: usize) -> Shared<'_> {
    let a = plain(&mut b.tags, &mut b.hash, q, 1 << 24, span);
    SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, SliceStore::new(bytes(&mut b.qc))))
        .unwrap()
}

#[test]
fn config_rejects_a_quantum_above_max_quantum() {
    let mut b = bufs();
    let a = plain(&mut b.tags, &mut b.hash, MAX_QUANTUM * 2, 0, 0);
    let r: Result<Shared<'_>, _> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(1, SliceStore::new(bytes(&mut b.qc))));
    assert!(matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))));
}

/// README: "a double free, a size other than the one allocated (even in
/// the same class) or a slab's own range is BadFree"; QCacheStats.bad_frees
/// counts "frees of a cached object refused"; the arena's own bad-free
/// counter should not count them twice.
#[test]
fn cached_object_frees_are_checked_exactly() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 4, 1 << 20);
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(17)).unwrap(); // class 1 (32)
    let arena_bad = s.with(|a| a.counters().bad_frees);
    let cases = [
        (Size(32), Some(Size(17))), // same class, other size
        (Size(18), Some(Size(17))),
        (Size(16), Some(Size(17))), // other class
        (Size(64), Some(Size(17))),
        (Size(0), Some(Size(17))),
        (Size(4096), Some(Size(17))), // beyond the caches
    ];
    for (n, (size, allocated)) in cases.iter().enumerate() {
        let want = Err(ArenaError::BadFree { addr: x, size: *size, allocated: *allocated });
        assert_eq!(h.free(x, *size), want, "handle, {size:?}");
        assert_eq!(s.free(x, *size), want, "arena, {size:?}");
        assert_eq!(s.qcache_stats().bad_frees, 2 * (n as u64 + 1), "{size:?}");
    }
    assert_eq!(s.with(|a| a.counters().bad_frees), arena_bad, "counted once, in the caches");
    // Deferred: refused, nothing changes.
    assert!(matches!(s.free_deferred(x, Size(17)), Err(ArenaError::BadFree { .. })));
    // Inside the object, off an object boundary.
    assert!(matches!(h.free(Addr(x.0 + 16), Size(17)), Err(ArenaError::BadFree { .. })));
    s.check().unwrap();
    h.free(x, Size(17)).unwrap();
    // Double free, the object now in a magazine.
    assert_eq!(
        h.free(x, Size(17)),
        Err(ArenaError::BadFree { addr: x, size: Size(17), allocated: None })
    );
    assert_eq!(
        s.free(x, Size(17)),
        Err(ArenaError::BadFree { addr: x, size: Size(17), allocated: None })
    );
    drop(h);
    // Double free, the object back in the depot or its slab.
    assert!(matches!(s.free(x, Size(17)), Err(ArenaError::BadFree { allocated: None, .. })));
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.qcache_stats().slabs, 0);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// A slab's own range, by address, by handle parts (every tag), deferred:
/// refused, nothing changes, every object still usable.
#[test]
fn a_slab_is_never_freed_from_under_its_objects() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 2, 1 << 20);
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(16)).unwrap();
    let slabs: Vec<_> = s.with(|a| a.walk(SegmentKinds::ALLOCATED).filter(|g| g.held).collect());
    assert_eq!(slabs.len(), 1);
    let slab = slabs[0];
    assert_eq!(slab.range.size(), Size(16 * OBJECTS));
    let before = s.with(|a| (a.sizes(), a.live()));
    let (base, size) = (slab.range.base(), slab.range.size());
    assert!(matches!(s.free(base, size), Err(ArenaError::BadFree { .. })));
    assert!(matches!(s.free_deferred(base, size), Err(ArenaError::BadFree { .. })));
    let tags = s.with(|a| a.tags_in_use().0);
    for tag in 0..tags + 4 {
        for addr in [base, x] {
            assert!(
                matches!(s.free_handle_parts(addr, tag), Err(ArenaError::BadHandle { .. })),
                "tag {tag} at {addr:?}"
            );
            assert!(matches!(
                s.free_handle_deferred_parts(addr, tag),
                Err(ArenaError::BadHandle { .. })
            ));
        }
    }
    assert_eq!(s.with(|a| (a.sizes(), a.live())), before);
    s.check().unwrap();
    h.free(x, Size(16)).unwrap();
    drop(h);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// "of two frees of one object racing each other, on any path (handle,
/// per-CPU, arena), exactly one succeeds".
#[test]
fn racing_frees_of_one_object_one_wins() {
    let mut mags = vec![0u64; 1 << 14];
    let mut b = bufs();
    let s = shared(&mut b, 16, 4, 1 << 22);
    let pin = SchedPin::with_slots(2);
    let cpu = CpuCaches::new(&s, pin, SliceStore::new(bytes(&mut mags))).unwrap();
    let wins = AtomicUsize::new(0);
    let losses = AtomicUsize::new(0);
    for round in 0..400 {
        let size = Size(16 * (1 + round % 4) - (round % 3));
        s.with(|_| ()); // keep the lock path warm
        let mut h = CacheHandle::new(&s);
        let obj = h.alloc(size).unwrap();
        let go = std::sync::Barrier::new(3);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                go.wait();
                match s.free(obj, size) {
                    Ok(()) => wins.fetch_add(1, Ordering::SeqCst),
                    Err(_) => losses.fetch_add(1, Ordering::SeqCst),
                };
            });
            sc.spawn(|| {
                go.wait();
                match cpu.free(obj, size) {
                    Ok(()) => wins.fetch_add(1, Ordering::SeqCst),
                    Err(_) => losses.fetch_add(1, Ordering::SeqCst),
                };
            });
            go.wait();
            match h.free(obj, size) {
                Ok(()) => wins.fetch_add(1, Ordering::SeqCst),
                Err(_) => losses.fetch_add(1, Ordering::SeqCst),
            };
        });
        assert_eq!(wins.load(Ordering::SeqCst), round + 1, "round {round}");
        assert_eq!(losses.load(Ordering::SeqCst), 2 * (round + 1), "round {round}");
    }
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// Two threads freeing the same arena allocation (no cache): one wins.
#[test]
fn racing_frees_of_an_arena_allocation() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 1, 1 << 20);
    for _ in 0..300 {
        let x = s.alloc(Size(100), Policy::InstantFit, Wait::No).unwrap();
        let ok = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    if s.free(x, Size(100)).is_ok() {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(ok.load(Ordering::SeqCst), 1);
    }
    s.check().unwrap();
}

/// "a failing allocation first reclaims the caches": with the arena full of
/// slabs whose objects all sit in the depot, a large allocation that only
/// fits once the slabs go back succeeds with Wait::No.
#[test]
fn a_failing_allocation_reclaims_first() {
    let mut b = bufs();
    let span = 16 * OBJECTS * 8;
    let s = shared(&mut b, 16, 1, span);
    let mut h = CacheHandle::new(&s);
    let mut objs = vec![];
    while let Ok(x) = h.alloc(Size(16)) {
        objs.push(x);
        if s.with(|a| a.sizes().free) == Size(0) {
            break;
        }
    }
    assert_eq!(s.with(|a| a.sizes().free), Size(0), "the arena is all slabs");
    for x in objs {
        h.free(x, Size(16)).unwrap();
    }
    drop(h); // everything to the depot or the slabs
    let x = s.alloc(Size(span), Policy::BestFit, Wait::No);
    assert!(x.is_ok(), "{x:?} {:?}", s.qcache_stats());
    s.free(x.unwrap(), Size(span)).unwrap();
    // xalloc too.
    let mut h = CacheHandle::new(&s);
    let o = h.alloc(Size(16)).unwrap();
    h.free(o, Size(16)).unwrap();
    drop(h);
    let y = s.xalloc(&Constraints::new(Size(span)).exact(Addr(1 << 24)), Wait::No);
    assert_eq!(y, Ok(Addr(1 << 24)));
    s.free(Addr(1 << 24), Size(span)).unwrap();
    s.check().unwrap();
}

/// With no room for a slab, a cache miss takes an allocation of the
/// arena's own; it is freed (once) through the handle.
#[test]
fn no_room_for_a_slab() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 4, 0x100);
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(48)).unwrap();
    assert_eq!(s.qcache_stats().slabs, 0);
    assert!(matches!(h.free(x, Size(32)), Err(ArenaError::BadFree { .. })));
    h.free(x, Size(48)).unwrap();
    assert!(matches!(h.free(x, Size(48)), Err(ArenaError::BadFree { .. })));
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    drop(h);
    s.check().unwrap();
}

/// QCacheStats: after the handle drops, hits + misses = cached-class
/// allocations made through it.
#[test]
fn hits_and_misses_add_up() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 4, 1 << 22);
    let mut h = CacheHandle::new(&s);
    let mut n = 0u64;
    let mut live = vec![];
    for i in 0..5000usize {
        let size = Size(1 + (i * 7919) % 64);
        if i % 3 == 2 {
            if let Some((x, sz)) = live.pop() {
                h.free(x, sz).unwrap();
            }
        } else {
            live.push((h.alloc(size).unwrap(), size));
            n += 1;
        }
    }
    for (x, sz) in live {
        h.free(x, sz).unwrap();
    }
    drop(h);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, n, "{st:?}");
    s.reclaim();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.depot_magazines, st.objects_in_slabs), (0, 0, 0), "{st:?}");
    assert_eq!(st.slabs_created, st.slabs_freed);
    s.check().unwrap();
}

/// Wait docs: Timeout waits about that long and tries once more;
/// Forever on an over-constrained request fails at once; Forever on a size
/// larger than every span waits until an add makes room.
#[test]
fn waits_as_documented() {
    let mut b = bufs();
    let a = plain(&mut b.tags, &mut b.hash, 16, 1 << 24, 0x1000);
    let s: Sleepy<'_> = SyncArena::new(a);
    let t0 = Instant::now();
    let r = s.alloc(Size(0x2000), Policy::InstantFit, Wait::Timeout(Duration::from_millis(100)));
    let took = t0.elapsed();
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })));
    assert!(took >= Duration::from_millis(100), "{took:?}");
    // A liveness bound only (the wait ends at its timeout, not never).
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(s.waiting(), 0);
    // Over-constrained: at once, even Forever.
    let r = s.xalloc(&Constraints::new(Size(0x40)).nocross(Size(0x20)), Wait::Forever);
    assert!(matches!(r, Err(ArenaError::OverConstrained(_))));
    let r = s.alloc(Size(0), Policy::InstantFit, Wait::Forever);
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
    // Forever, larger than every span: an add and a wake make room.
    std::thread::scope(|sc| {
        let w = sc.spawn(|| s.alloc(Size(0x4000), Policy::InstantFit, Wait::Forever));
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.with(|a| a.add(Addr(1 << 30), Size(0x4000))).unwrap();
        s.wake_waiters();
        let got = w.join().unwrap();
        assert_eq!(got, Ok(Addr(1 << 30)));
    });
    assert_eq!(s.waiting(), 0);
    // A windowed request (which never imports) waits for a free.
    let x = s.alloc(Size(0x1000), Policy::FirstFit, Wait::No).unwrap();
    std::thread::scope(|sc| {
        let w = sc.spawn(|| {
            s.xalloc(
                &Constraints::new(Size(0x10)).min_addr(x).max_addr(Addr(x.0 + 0x1000)),
                Wait::Forever,
            )
        });
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.free(x, Size(0x1000)).unwrap();
        assert_eq!(w.join().unwrap(), Ok(x));
    });
    s.check().unwrap();
}

/// A child arena importing from a shared parent with quantum caches gets
/// spans of cached-class sizes straight from the arena, and gives them
/// back (the caches do not claim them).
#[test]
fn a_child_imports_small_spans_from_a_cached_parent() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 8, 1 << 20);
    let (mut t2, mut h2) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut child = Arena::new(
        "child",
        Size(16),
        SliceStore::new(bytes(&mut t2)),
        SliceStore::new(bytes(&mut h2)),
        &s,
    )
    .unwrap();
    let mut got = vec![];
    for size in [16usize, 32, 48, 128] {
        got.push((child.alloc(Size(size), Policy::InstantFit).unwrap(), size));
    }
    assert!(child.sizes().imported.0 > 0);
    for (x, size) in got {
        child.free(x, Size(size)).unwrap();
    }
    assert_eq!(child.sizes().total, Size(0), "every span went back");
    assert_eq!(child.counters().export_failures, 0);
    drop(child);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}

struct NoSlots;
// SAFETY: no slots, nothing ever pinned.
unsafe impl CpuPin for NoSlots {
    fn slots(&self) -> usize {
        0
    }
    fn pin(&self) -> usize {
        0
    }
    unsafe fn unpin(&self, _: usize) {}
}

#[test]
fn cpu_caches_need_a_slot_and_room() {
    let mut mags = vec![0u64; 1 << 14];
    let mut tiny = vec![0u64; 2];
    let mut b = bufs();
    let s = shared(&mut b, 16, 8, 1 << 20);
    let r = CpuCaches::new(&s, NoSlots, SliceStore::new(bytes(&mut mags)));
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))));
    drop(r);
    let r = CpuCaches::new(&s, SchedPin::with_slots(4), SliceStore::new(bytes(&mut tiny)));
    assert!(r.is_err());
}

/// "a class has at most SLABS slabs at once: past that, a miss takes an
/// allocation of the arena's own, counted in slab_collisions, which the
/// handle frees to the arena".
#[test]
fn past_slabs_slabs_a_miss_takes_an_arena_allocation() {
    use vmspace::qcache::SLABS;
    let mut b = bufs();
    let s = shared(&mut b, 16, 2, 1 << 22);
    let mut h = CacheHandle::new(&s);
    let n = OBJECTS * (SLABS + 8);
    let mut objs: Vec<(Addr, Size)> = (0..n)
        .map(|i| {
            let size = Size(1 + i % 16);
            (h.alloc(size).unwrap(), size)
        })
        .collect();
    let st = s.qcache_stats();
    assert!(st.slabs <= SLABS, "{st:?}");
    assert!(st.slab_collisions > 0, "{st:?}");
    let mut addrs: Vec<usize> = objs.iter().map(|(a, _)| a.0).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), n, "every object distinct");
    s.check().unwrap();
    // Wrong sizes refused for every one, right sizes accepted once.
    for &(a, sz) in objs.iter().step_by(7) {
        assert!(matches!(h.free(a, Size(sz.0 + 1)), Err(ArenaError::BadFree { .. })), "{a:?}");
    }
    objs.reverse();
    for (a, sz) in objs.iter().copied() {
        h.free(a, sz).unwrap();
    }
    for (a, sz) in objs.iter().copied().step_by(11) {
        assert!(matches!(h.free(a, sz), Err(ArenaError::BadFree { .. })));
    }
    drop(h);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}

/// The largest quantum the caches take, every class, checked frees.
#[test]
fn the_largest_quantum_every_class() {
    let mut b = bufs();
    let q = MAX_QUANTUM;
    let a = plain(&mut b.tags, &mut b.hash, q, 1 << 44, 1 << 40);
    let s: Shared<'_> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(8, SliceStore::new(bytes(&mut b.qc))))
            .unwrap();
    assert_eq!(s.qcache_max(), Size(8 * q));
    let mut h = CacheHandle::new(&s);
    for c in 1..=8usize {
        for size in [c * q, (c - 1) * q + 1] {
            let x = h.alloc(Size(size)).unwrap();
            assert_eq!(x.0 % q, 0);
            assert!(matches!(h.free(x, Size(size + 1)), Err(ArenaError::BadFree { .. })));
            h.free(x, Size(size)).unwrap();
            assert!(matches!(
                h.free(x, Size(size)),
                Err(ArenaError::BadFree { allocated: None, .. })
            ));
        }
    }
    drop(h);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// A cache miss that finds no room for a slab takes an allocation of the
/// arena's own (not a collision: no record was missing). It is freed
/// deferred "like any other" (SyncArena::free_deferred), and the arena's
/// `failures` counter ("Failed alloc, xalloc, add, extend, resize and
/// free_part calls") moved although the caller's allocation succeeded
/// (round 25's finding): it counts the cache's failed try for a slab, as
/// illumos's `vk_fail` does, and now says so. Exactly that one try.
#[test]
fn a_miss_without_room_for_a_slab_counts_no_failure() {
    let mut b = bufs();
    let s = shared(&mut b, 16, 4, 0x100);
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(48)).unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.slab_collisions), (0, 0));
    s.free_deferred(x, Size(48)).unwrap();
    assert_eq!(s.flushed(), Size(48));
    let failures = s.with(|a| a.counters().failures);
    assert_eq!(failures, 1, "the cache's one failed try for a slab, and nothing else");
}

/// CacheHandle::alloc_wait: "A waiter retries the depot, the slabs and the
/// arena each time space comes back"; a flush (here: another handle
/// dropped) wakes it.
#[test]
fn a_cache_waiter_wakes_on_another_handles_flush() {
    let mut b = bufs();
    let a = plain(&mut b.tags, &mut b.hash, 16, 1 << 24, 16 * OBJECTS);
    let s: Sleepy<'_> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(1, SliceStore::new(bytes(&mut b.qc))))
            .unwrap();
    let mut ha = CacheHandle::new(&s);
    let objs: Vec<Addr> = (0..OBJECTS).map(|_| ha.alloc(Size(16)).unwrap()).collect();
    assert!(matches!(CacheHandle::new(&s).alloc(Size(16)), Err(ArenaError::NoSpace { .. })));
    std::thread::scope(|sc| {
        let w = sc.spawn(|| {
            let mut hb = CacheHandle::new(&s);
            let r = hb.alloc_wait(Size(16), Wait::Timeout(Duration::from_secs(30)));
            if let Ok(x) = r {
                hb.free(x, Size(16)).unwrap();
            }
            r
        });
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for &x in &objs {
            ha.free(x, Size(16)).unwrap();
        }
        let t0 = Instant::now();
        drop(ha);
        let r = w.join().unwrap();
        assert!(r.is_ok(), "{r:?}");
        // Far from the waiter's own 30 s timeout: woken by the flush.
        assert!(t0.elapsed() < Duration::from_secs(10), "woken by the flush, not the timeout");
    });
    s.reclaim();
    s.check().unwrap();
}
