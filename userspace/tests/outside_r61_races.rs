//! Round 61 (outside reviewer): races between the three doors of a
//! `UserArena` with quantum caches (per-CPU `UserCpuCaches`, per-thread
//! `CacheHandle`, `SyncArena::free`/`alloc`), under forced migration
//! (`sched_setaffinity` every few operations), more threads than the 2
//! CPUs, yields mid-stream, objects freed by a thread other than (and on
//! another CPU than) the one that allocated them, and a thread calling
//! `check()`, `reclaim()` and `qcache_stats()` all along.
//!
//! A lock-free shadow (one owner word per quantum, set and cleared by
//! compare-and-swap) catches an object handed out twice or overlapping
//! another without serializing the threads; at the end every object goes
//! back, `check()` holds, the arena holds nothing after a reclaim, and the
//! statistics are exact: hits + misses equal the cached-size allocations
//! made through the caches, and `bad_frees` the refused frees.
//!
//! All PASS on this tree (sharp tests of the documented contract: README
//! "of two frees of one object racing each other on any path (handle,
//! per-CPU, arena), exactly one succeeds"; src/qcache/mod.rs `QCacheStats`
//! "Each allocation of a cached size counts once, a hit or a miss").

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use vmspace::arena::{ArenaError, Policy};
use vmspace::qcache::CpuPin;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{allowed_cpus, run_only_on, RseqPin, SchedPin};

mod outside_r61_common;

use outside_r61_common::*;

use vmspace_workload::Rng;

/// One owner word per quantum: 0 free, else the allocation's stamp.
struct Shadow {
    base: usize,
    words: Vec<AtomicU64>,
    stamp: AtomicU64,
}

impl Shadow {
    fn new(base: usize, span: usize) -> Self {
        Shadow {
            base,
            words: (0..span / Q).map(|_| AtomicU64::new(0)).collect(),
            stamp: AtomicU64::new(1),
        }
    }
    fn quanta(&self, a: Addr, sz: Size, what: &str) -> std::ops::Range<usize> {
        assert!(
            a.0 >= self.base && a.0 + sz.0 <= self.base + self.words.len() * Q,
            "{what}: {a} outside the span"
        );
        let first = (a.0 - self.base) / Q;
        first..first + sz.0.div_ceil(Q)
    }
    /// Record a new live object; its stamp.
    fn take(&self, a: Addr, sz: Size, what: &str) -> u64 {
        let s = self.stamp.fetch_add(1, Ordering::Relaxed);
        for q in self.quanta(a, sz, what) {
            if let Err(was) =
                self.words[q].compare_exchange(0, s, Ordering::AcqRel, Ordering::Acquire)
            {
                panic!("{what}: {a} ({sz:?}) handed out while quantum {q} is live (stamp {was})");
            }
        }
        s
    }
    /// The object leaves the client (before the free is made).
    fn give(&self, a: Addr, sz: Size, s: u64, what: &str) {
        for q in self.quanta(a, sz, what) {
            if let Err(was) =
                self.words[q].compare_exchange(s, 0, Ordering::AcqRel, Ordering::Acquire)
            {
                panic!("{what}: {a} quantum {q} has stamp {was}, not {s}");
            }
        }
    }
}

/// Two or three frees of one object race through different doors (the
/// per-CPU caches on one CPU, a per-thread handle on the other,
/// `SyncArena::free` on either), the object allocated by one of them in
/// turn: exactly one free succeeds, each refused one is a `BadFree`
/// counted in `bad_frees` exactly, nothing is lost or handed out twice.
fn three_doors<P: CpuPin + Sync>(pin: P, what: &str) {
    let cpus = allowed_cpus().unwrap();
    let (base, span) = (1usize << 41, 1usize << 22);
    let s = shared_at(base, span);
    let c = caches(&s, pin);
    let shadow = Shadow::new(base, span);
    let rounds = 3000;
    let barrier = Barrier::new(3);
    let current = Mutex::new((Addr(0), Size(0), 0u64));
    let wins = AtomicUsize::new(0);
    let refused = AtomicU64::new(0);
    let cache_allocs = AtomicU64::new(0);
    // Thread 0: the CacheHandle; 1: the per-CPU caches; 2: SyncArena::free.
    std::thread::scope(|sc| {
        for t in 0..3usize {
            let (c, s, cpus, barrier, current, wins, refused, shadow, cache_allocs) =
                (&c, &s, &cpus, &barrier, &current, &wins, &refused, &shadow, &cache_allocs);
            sc.spawn(move || {
                let mut h = CacheHandle::new(s);
                let mut rng = Rng::new(0x1234_5678 + t as u64);
                for r in 0..rounds {
                    run_only_on(cpus[(t + r) % cpus.len()]).unwrap();
                    let maker = r % 2; // the handle or the per-CPU caches
                    if t == maker {
                        let sz = Size(Q * (1 + rng.below(CLASSES)) - rng.below(Q));
                        let a = if t == 0 { h.alloc(sz) } else { c.alloc(sz) }
                            .unwrap_or_else(|e| panic!("{what}: alloc {e:?}"));
                        cache_allocs.fetch_add(1, Ordering::Relaxed);
                        let st = shadow.take(a, sz, what);
                        shadow.give(a, sz, st, what);
                        *current.lock().unwrap() = (a, sz, st);
                    }
                    barrier.wait();
                    let (a, sz, _) = *current.lock().unwrap();
                    // The arena door joins every third round.
                    let r3 = r % 3 == 0;
                    let res = match t {
                        0 => Some(h.free(a, sz)),
                        1 => Some(c.free(a, sz)),
                        _ if r3 => Some(s.free(a, sz)),
                        _ => None,
                    };
                    match res {
                        Some(Ok(())) => {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(ArenaError::BadFree { .. })) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => panic!("{what}: free {a}: {e:?}"),
                        None => {}
                    }
                    barrier.wait();
                    if t == 2 {
                        let w = wins.swap(0, Ordering::Relaxed);
                        assert_eq!(w, 1, "{what}: round {r}: {w} frees of {a} ({sz:?}) succeeded");
                    }
                    barrier.wait();
                }
            });
        }
    });
    drop(c);
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(
        st.bad_frees,
        refused.load(Ordering::Relaxed),
        "{what}: bad_frees not exact: {st:?}"
    );
    assert_eq!(
        st.hits + st.misses,
        cache_allocs.load(Ordering::Relaxed),
        "{what}: hits + misses != allocations: {st:?}"
    );
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{what}: objects lost");
}

#[test]
fn three_doors_rseq() {
    three_doors(RseqPin::new(), "RseqPin");
}

#[test]
fn three_doors_sched() {
    three_doors(SchedPin::new(), "SchedPin");
}

/// `threads` threads (3x the CPUs) hop CPUs (some of their cached-size
/// allocations waiting up to 1 ms for space) every few operations,
/// allocate through the per-CPU caches, their own handle or the arena,
/// and hand a third of their objects to a neighbour's mailbox to free
/// (another thread, usually another CPU by then), through any door; a
/// sweeper calls `check()`, `reclaim()` and `qcache_stats()` all along.
/// A small arena (`span`) makes misses, `NoSpace`, reclaims and (with
/// `RseqPin::with_slots(1)`, whose CPU 1 is unplaced) the unplaced paths
/// common.
fn migrate<P: CpuPin + Sync>(pin: P, base: usize, span: usize, what: &str) {
    let cpus = allowed_cpus().unwrap();
    let s = shared_at(base, span);
    let c = caches(&s, pin);
    let shadow = Shadow::new(base, span);
    let threads = 3 * cpus.len();
    let mail: Vec<Mutex<Vec<(Addr, Size, u64)>>> =
        (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    let stop = AtomicBool::new(false);
    let cache_allocs = AtomicU64::new(0);
    let nospace = AtomicU64::new(0);
    let run = Duration::from_millis(2500);
    std::thread::scope(|sc| {
        let sweeper = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s.check().unwrap_or_else(|e| panic!("{what}: check() mid-run: {e:?}"));
                if n % 4 == 0 {
                    s.reclaim();
                }
                let _ = s.qcache_stats();
                n += 1;
                std::thread::sleep(Duration::from_micros(300));
            }
            n
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (c, s, cpus, mail, shadow, cache_allocs, nospace) =
                    (&c, &s, &cpus, &mail, &shadow, &cache_allocs, &nospace);
                sc.spawn(move || {
                    let mut h = CacheHandle::new(s);
                    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1000_0001));
                    let mut held: Vec<(Addr, Size, u64)> = Vec::new();
                    let start = Instant::now();
                    let mut i = 0u64;
                    let free = |h: &mut CacheHandle<'_, _, _, _, _>,
                                rng: &mut Rng,
                                (a, sz, st): (Addr, Size, u64)| {
                        shadow.give(a, sz, st, what);
                        let r = match rng.below(3) {
                            0 => c.free(a, sz),
                            1 => h.free(a, sz),
                            _ => s.free(a, sz),
                        };
                        r.unwrap_or_else(|e| panic!("{what}: free {a} {sz:?}: {e:?}"));
                    };
                    while start.elapsed() < run {
                        i += 1;
                        if i % 7 == 0 {
                            run_only_on(cpus[rng.below(cpus.len())]).unwrap();
                        }
                        if i % 13 == 0 {
                            std::thread::yield_now();
                        }
                        // Frees handed over by a neighbour.
                        if i % 5 == 0 {
                            let got: Vec<_> = core::mem::take(&mut *mail[t].lock().unwrap());
                            for o in got {
                                free(&mut h, &mut rng, o);
                            }
                        }
                        if !held.is_empty() && (rng.below(5) < 2 || held.len() > 64) {
                            let k = rng.below(held.len());
                            let o = held.swap_remove(k);
                            if rng.below(3) == 0 {
                                mail[(t + 1) % threads].lock().unwrap().push(o);
                            } else {
                                free(&mut h, &mut rng, o);
                            }
                            continue;
                        }
                        let sz = Size(Q * (1 + rng.below(CLASSES)) - rng.below(Q));
                        let door = rng.below(8);
                        // Every fourth allocation through a cache waits a
                        // little (Wait::Timeout) when there is no space.
                        let wait = if i % 4 == 0 {
                            Wait::Timeout(Duration::from_millis(1))
                        } else {
                            Wait::No
                        };
                        let r = match door {
                            0..=4 => c.alloc_wait(sz, wait),
                            5 | 6 => h.alloc_wait(sz, wait),
                            _ => s.alloc(sz, Policy::InstantFit, Wait::No),
                        };
                        match r {
                            Ok(a) => {
                                if door < 7 {
                                    cache_allocs.fetch_add(1, Ordering::Relaxed);
                                }
                                let st = shadow.take(a, sz, what);
                                held.push((a, sz, st));
                            }
                            Err(ArenaError::NoSpace { .. }) => {
                                if door < 7 {
                                    cache_allocs.fetch_add(1, Ordering::Relaxed);
                                }
                                nospace.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{what}: alloc {sz:?}: {e:?}"),
                        }
                    }
                    (held, h)
                })
            })
            .collect();
        let mut leftovers = Vec::new();
        let mut handles = Vec::new();
        for w in workers {
            let (held, h) = w.join().unwrap();
            leftovers.extend(held);
            handles.push(h);
        }
        stop.store(true, Ordering::Relaxed);
        let sweeps = sweeper.join().unwrap();
        for m in &mail {
            leftovers.extend(core::mem::take(&mut *m.lock().unwrap()));
        }
        for (a, sz, st) in leftovers {
            shadow.give(a, sz, st, what);
            c.free(a, sz).unwrap_or_else(|e| panic!("{what}: final free {a}: {e:?}"));
        }
        drop(handles);
        eprintln!("{what}: {sweeps} sweeps, {} NoSpace", nospace.load(Ordering::Relaxed));
    });
    drop(c);
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(st.bad_frees, 0, "{what}: {st:?}");
    assert_eq!(
        st.hits + st.misses,
        cache_allocs.load(Ordering::Relaxed),
        "{what}: hits + misses != cached-size allocations through the caches: {st:?}"
    );
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{what}: objects lost");
    assert!(shadow.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
}

#[test]
fn migrating_rseq_roomy() {
    migrate(RseqPin::new(), 1 << 42, 1 << 22, "RseqPin roomy");
}

#[test]
fn migrating_rseq_tight() {
    // A few slabs' worth: misses, NoSpace, reclaims.
    migrate(RseqPin::new(), 1 << 42, 64 << 10, "RseqPin tight");
}

#[test]
fn migrating_rseq_one_slot_tight() {
    // CPU 1 has no slot: its threads take the unplaced paths.
    migrate(RseqPin::with_slots(1), 1 << 42, 64 << 10, "RseqPin(1) tight");
}

#[test]
fn migrating_sched_tight() {
    migrate(SchedPin::new(), 1 << 42, 64 << 10, "SchedPin tight");
}
