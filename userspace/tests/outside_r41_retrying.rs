//! Outside review, round 41: `CpuCaches::alloc_retrying` / `Retrying` after
//! the change that inlined the hit path (misses through `retrying_missed`),
//! under threads on the real pins (`RseqPin`, `SchedPin`), with callers
//! that retry many times, give up, or panic holding a `Retrying`.
//!
//! Contract (src/sync/percpu.rs:226-233, `alloc_retrying`): "It counts once
//! in the statistics, a hit or a miss, however often it is tried again
//! ... a miss is counted when the [`Retrying`] is dropped"; and
//! src/sync/retrying.rs:16-19: "The allocation counts once in the
//! statistics: a hit when a magazine served it, else a miss, counted when
//! the `Retrying` is dropped (also by unwinding)". `alloc` likewise counts
//! each call once (hits lag until the caches are dropped, which flushes).
//! So after the caches are dropped, hits + misses = allocations made
//! through them.
//!
//! Result on the code reviewed: holds (run 10 times, no flake).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::{magazine_store_bytes, CpuPin, QCacheConfig};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches};

type Store = PageStore<MmapBackend>;

fn store(bytes: usize) -> Store {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

const Q: usize = 16;
const CLASSES: usize = 4;

/// Run `threads` threads of churn through `alloc_retrying` and `alloc` on
/// a small arena (so allocations fail and are retried), some panicking
/// while they hold a `Retrying`; return (allocations made, stats after the
/// caches are dropped, bytes still allocated after reclaim).
fn churn<P: CpuPin + Sync>(pin: P, threads: usize, span: usize) -> (u64, u64, u64, usize) {
    let mut a = Arena::new("r41", Size(Q), store(1 << 20), store(1 << 20), NoSource).unwrap();
    a.add(Addr(1 << 30), Size(span)).unwrap();
    let shared: UserArena<Store, NoSource> =
        UserArena::with_quantum_caches(a, QCacheConfig::new(CLASSES, store(1 << 20))).unwrap();
    let made = AtomicU64::new(0);
    {
        let bytes = magazine_store_bytes(CLASSES, pin.slots()).unwrap();
        let caches: UserCpuCaches<'_, Store, NoSource, P> =
            UserCpuCaches::new(&shared, pin, store(bytes)).unwrap();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (c, made) = (&caches, &made);
                s.spawn(move || {
                    let mut held: Vec<(Addr, Size)> = Vec::new();
                    let mut x = (t as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    for i in 0..6000u32 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let sz = Size(Q * (1 + (x as usize >> 20) % CLASSES));
                        if !held.is_empty() && (x % 7 < 3 || held.len() > 64) {
                            let k = (x as usize >> 8) % held.len();
                            let (a, s) = held.swap_remove(k);
                            c.free(a, s).unwrap();
                            continue;
                        }
                        made.fetch_add(1, Ordering::Relaxed);
                        if x % 5 == 0 {
                            if let Ok(a) = c.alloc(sz) {
                                held.push((a, sz));
                            }
                            continue;
                        }
                        let tries = (x >> 40) % 6;
                        let panics = i % 97 == 13;
                        let got = catch_unwind(AssertUnwindSafe(|| {
                            let mut r = c.alloc_retrying(sz).expect("a cached size");
                            let mut res = r.first();
                            let mut n = 0;
                            while res.is_err() && n < tries {
                                if n == 1 {
                                    // Give the retry something to find.
                                    if let Some((a, s)) = held.pop() {
                                        c.free(a, s).unwrap();
                                    }
                                }
                                res = r.again();
                                n += 1;
                            }
                            if panics {
                                if let Ok(a) = res {
                                    // Hand it back before unwinding.
                                    c.free(a, sz).unwrap();
                                }
                                panic!("the caller's wait loop panics");
                            }
                            res
                        }));
                        match got {
                            Ok(Ok(a)) => held.push((a, sz)),
                            Ok(Err(ArenaError::NoSpace { .. })) | Err(_) => {}
                            Ok(Err(e)) => panic!("{e:?}"),
                        }
                    }
                    for (a, s) in held {
                        c.free(a, s).unwrap();
                    }
                });
            }
        });
    }
    shared.reclaim();
    let st = shared.qcache_stats();
    let left = shared.with(|a| a.sizes().allocated.0);
    (made.load(Ordering::Relaxed), st.hits, st.misses, left)
}

fn quiet_panics() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"the caller's wait loop panics") {
            prev(info);
        }
    }));
}

/// Contract check: on `RseqPin`, each allocation counts once.
#[test]
fn retrying_counts_once_under_threads_rseq() {
    quiet_panics();
    for span in [64 * Q * 64, 1 << 20] {
        let (made, hits, misses, left) = churn(RseqPin::new(), 6, span);
        assert_eq!(hits + misses, made, "span {span:#x}: hits {hits} misses {misses}");
        assert!(misses > 0 && hits > 0, "both paths taken: {hits} {misses}");
        assert_eq!(left, 0, "everything freed went back");
    }
}

/// Contract check: on `SchedPin` (a try-lock per slot; a thread it cannot
/// place goes to the arena and counts a miss), each allocation counts once.
#[test]
fn retrying_counts_once_under_threads_sched_pin() {
    quiet_panics();
    for span in [64 * Q * 64, 1 << 20] {
        let (made, hits, misses, left) = churn(SchedPin::new(), 6, span);
        assert_eq!(hits + misses, made, "span {span:#x}: hits {hits} misses {misses}");
        assert_eq!(left, 0, "everything freed went back");
    }
}
