//! Written from the documented contracts by a reviewer outside the project,
//! to break them: quantum-cache statistics of a `UserArena` under
//! concurrent traffic through per-CPU caches (restartable sequences and
//! the sched fallback), per-thread handles and the arena; conservation of
//! objects and of hits + misses; waiting allocations' counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::qcache::{CpuPin, QCacheConfig, OBJECTS, ROUNDS};
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches};

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

const Q: usize = 16;
const CLASSES: usize = 4;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared(base: usize, span: usize) -> Shared {
    let mut a = Arena::new("user", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(base), Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(CLASSES, store())).unwrap()
}

struct Xs(u64);
impl Xs {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Three workers (four threads with the main one) share per-CPU caches,
/// each with a handle of its own; allocations and frees cross doors.
/// Returns (allocations through a cache of a cached size, bad frees made).
fn churn<P: CpuPin + Send + Sync>(s: &Shared, pin: P, steps: usize) -> (u64, u64) {
    let caches: UserCpuCaches<'_, Store, NoSource, P> =
        UserCpuCaches::new(s, pin, store()).unwrap();
    let cached = AtomicU64::new(0);
    let bad = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for t in 0..3u64 {
            let (caches, cached, bad) = (&caches, &cached, &bad);
            sc.spawn(move || {
                let mut rng = Xs(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 0x1234_5678));
                let mut h = CacheHandle::new(s);
                let mut live: Vec<(Addr, usize)> = vec![];
                for step in 0..steps {
                    let door = rng.below(3);
                    if live.len() < 40 && (live.is_empty() || rng.below(2) == 0) {
                        let size = 1 + rng.below(CLASSES * Q + 2 * Q);
                        let x = match door {
                            0 => caches.alloc(Size(size)),
                            1 => h.alloc(Size(size)),
                            _ => s.alloc(Size(size), Policy::InstantFit, Wait::No),
                        }
                        .unwrap();
                        if door < 2 && size <= CLASSES * Q {
                            cached.fetch_add(1, Ordering::Relaxed);
                        }
                        live.push((x, size));
                    } else {
                        let (x, size) = live.swap_remove(rng.below(live.len()));
                        // A wrong size of the same class first, for cached
                        // objects of classes that have one.
                        if size <= CLASSES * Q && size % Q != 1 && Q > 1 {
                            let r = match rng.below(3) {
                                0 => caches.free(x, Size(size - 1)),
                                1 => h.free(x, Size(size - 1)),
                                _ => s.free(x, Size(size - 1)),
                            };
                            assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                            // Counted by the caches when the object is one
                            // of theirs; by the arena otherwise.
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                        match door {
                            0 => caches.free(x, Size(size)),
                            1 => h.free(x, Size(size)),
                            _ => s.free(x, Size(size)),
                        }
                        .unwrap();
                    }
                    if step % 97 == 0 {
                        let st = s.qcache_stats();
                        assert!(
                            st.objects_in_slabs + st.depot_magazines * ROUNDS <= st.slabs * OBJECTS,
                            "{st:?}"
                        );
                        assert_eq!(st.slabs as u64, st.slabs_created - st.slabs_freed, "{st:?}");
                    }
                    if step % 500 == 0 {
                        s.check().unwrap();
                    }
                }
                for (x, size) in live {
                    h.free(x, Size(size)).unwrap();
                }
            });
        }
    });
    drop(caches);
    (cached.load(Ordering::Relaxed), bad.load(Ordering::Relaxed))
}

fn settle(s: &Shared, cached: u64, bad: u64, exact: bool) {
    let st = s.qcache_stats();
    if std::env::var("QDEBUG").is_ok() {
        eprintln!("{st:?} cached {cached} bad {bad}");
    }
    let c = s.with(|a| a.counters());
    if exact {
        assert_eq!(st.hits + st.misses, cached, "every cache allocation a hit or a miss: {st:?}");
    } else {
        assert!(st.hits + st.misses <= cached, "{st:?} > {cached}");
    }
    assert_eq!(st.bad_frees + c.bad_frees, bad, "{st:?} {c:?}");
    assert_eq!(st.objects_in_slabs + st.depot_magazines * ROUNDS, st.slabs * OBJECTS, "{st:?}");
    assert_eq!(s.with(|a| a.live()), st.slabs, "only slabs are left");
    s.check().unwrap();
    let freed = s.reclaim();
    let st2 = s.qcache_stats();
    assert_eq!(freed, st.slabs, "{st2:?}");
    assert_eq!((st2.slabs, st2.depot_magazines, st2.objects_in_slabs), (0, 0, 0), "{st2:?}");
    assert_eq!(st2.reclaims, st.reclaims + 1);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
}

#[test]
fn rseq_caches_handles_and_arena_conserve_objects_and_counts() {
    let s = shared(1 << 40, 1 << 22);
    let (cached, bad) = churn(&s, RseqPin::new(), 4000);
    settle(&s, cached, bad, true);
}

#[test]
fn sched_pin_caches_conserve_objects_and_counts() {
    let s = shared(1 << 40, 1 << 22);
    let (cached, bad) = churn(&s, SchedPin::with_slots(2), 3000);
    settle(&s, cached, bad, true);
}

/// With one slot, threads on other CPUs are unplaced and go to the arena
/// (neither a hit nor a miss); nothing is lost.
#[test]
fn one_slot_rseq_caches_send_unplaced_threads_to_the_arena() {
    let s = shared(1 << 40, 1 << 22);
    let (cached, bad) = churn(&s, RseqPin::with_slots(1), 3000);
    settle(&s, cached, bad, false);
}

/// A handle's allocation that waits for space and times out: one
/// allocation; `waiting()` back to 0; the caches consistent.
#[test]
fn a_timed_out_handle_allocation_counts() {
    let s = shared(1 << 40, 4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let mut h = CacheHandle::new(&s);
    let m0 = s.qcache_stats().misses;
    let t = Instant::now();
    let r = h.alloc_wait(Size(16), Wait::Timeout(Duration::from_millis(40)));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(40));
    assert_eq!(s.waiting(), 0);
    let st = s.qcache_stats();
    // One allocation; the docs' "allocations that found both magazines
    // empty" would make this 1, each retry counts one more (3 here).
    assert!(st.misses > m0, "{st:?}");
    assert_eq!((st.slabs, st.objects_in_slabs, st.depot_magazines), (0, 0, 0), "{st:?}");
    s.check().unwrap();
    s.free(big, Size(4096)).unwrap();
    let x = h.alloc_wait(Size(16), Wait::Timeout(Duration::from_millis(40))).unwrap();
    assert_eq!(s.qcache_stats().slabs, 1);
    h.free(x, Size(16)).unwrap();
    drop(h);
    assert_eq!(s.reclaim(), 1);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}
