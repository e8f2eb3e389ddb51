//! Outside review, round 32: the shared arena's statistics under
//! concurrency, as documented contracts.
//!
//! Contracts tested (quoted from the rustdoc):
//! - `arena::Counters` (src/arena/stats.rs:29): "Event counters. They only
//!   ever increase." Read through `SyncArena::with(|a| a.counters())` by a
//!   reader thread while workers allocate and free through two
//!   `CacheHandle`s, a `CpuCaches` shared by two threads and the arena
//!   itself, and another thread reclaims: no field may ever go down.
//! - `Sizes::total` (src/arena/stats.rs:23): "In spans: `allocated + free +
//!   unflushed`", in every snapshot `sizes()` returns (one lock section).
//! - `QCacheStats` (src/qcache/mod.rs:44): `hits` "Allocations served from
//!   a cache's magazines", `misses` "Allocations that found both
//!   magazines empty" (so once every handle and per-CPU cache is dropped,
//!   hits + misses is the number of cached-size allocations made through
//!   them: `SyncArena::qcache_stats`, src/sync/arena.rs:470: "Hits and
//!   misses of live handles and per-CPU caches are added when they miss,
//!   flush or drop"); `reclaims` "Reclaims run", `slabs_created` "Slabs
//!   ever imported", `slabs_freed` "Slabs ever given back",
//!   `slab_collisions`: cumulative, never down; `slabs` "Slabs allocated
//!   from the arena now" = created - freed once quiescent.
//! - Bad frees: every refused free counts exactly once, in the arena's
//!   `bad_frees` ("Frees refused as bad") or the caches' `bad_frees`
//!   ("Frees of a cached object refused"); the test checks the sum only
//!   (which counter a refusal lands in is not what it tests).
//! - `deferred_frees` and `flushes` count exactly the successful
//!   `free_deferred` calls and the `flushed()` calls that made something
//!   free (`Counters::flushes`: "Calls of flushed that made unflushed
//!   segments free").
//!
//! Every total is checked only after the threads are joined.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, Counters, NoSource, Policy, SliceStore};
use vmspace::qcache::{QCacheConfig, QCacheStats, SlotFlag};
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

mod outside_common;
mod pins;
use outside_common::Rng;
use pins::{OneSlot, Shared};

const Q: usize = 16;
const CLASSES: usize = 4;
const BASE: usize = 1 << 30;
const SPAN: usize = 1 << 24;

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    /// Cached-size allocation calls through a handle or the per-CPU caches.
    cached_calls: u64,
    /// Successful `SyncArena::alloc` calls (sizes past the caches).
    plain_allocs: u64,
    /// Successful by-address frees of those (immediate or deferred).
    plain_frees: u64,
    deferred: u64,
    flushes: u64,
    /// Frees the test made to be refused, each refused.
    bad: u64,
    /// Allocations the test made to fail, each failed.
    failed: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.cached_calls += o.cached_calls;
        self.plain_allocs += o.plain_allocs;
        self.plain_frees += o.plain_frees;
        self.deferred += o.deferred;
        self.flushes += o.flushes;
        self.bad += o.bad;
        self.failed += o.failed;
    }
}

fn cached_size(rng: &mut Rng) -> usize {
    1 + rng.below((CLASSES * Q) as u64) as usize
}

/// A size in the same class as `size` but not `size` (when there is one),
/// else one in another class.
fn wrong_size(size: usize, rng: &mut Rng) -> usize {
    let class = size.div_ceil(Q);
    let lo = (class - 1) * Q + 1;
    let other = lo + rng.below(Q as u64) as usize;
    if other != size {
        other
    } else if class < CLASSES {
        size + Q
    } else {
        size - Q
    }
}

enum Door<'s, 'b> {
    Handle(Box<CacheHandle<'s, SpinLock, NoWait, SliceStore<'b>, NoSource>>),
    Cpu(&'s CpuCaches<'s, SpinLock, NoWait, SliceStore<'b>, NoSource, OneSlot>),
}

impl Door<'_, '_> {
    fn alloc(&mut self, size: Size) -> Result<Addr, ArenaError> {
        match self {
            Door::Handle(h) => h.alloc(size),
            Door::Cpu(c) => c.alloc(size),
        }
    }
    fn free(&mut self, a: Addr, size: Size) -> Result<(), ArenaError> {
        match self {
            Door::Handle(h) => h.free(a, size),
            Door::Cpu(c) => c.free(a, size),
        }
    }
}

fn worker(s: &Shared<'_>, mut door: Door<'_, '_>, seed: u64, steps: usize) -> Tally {
    let mut rng = Rng(seed | 1);
    let mut t = Tally::default();
    let mut live: Vec<(Addr, usize)> = vec![];
    let mut plain: Vec<(Addr, usize)> = vec![];
    for _ in 0..steps {
        match rng.below(20) {
            0..=7 if live.len() < 200 => {
                let size = cached_size(&mut rng);
                t.cached_calls += 1;
                let a = door.alloc(Size(size)).expect("cached allocation in a roomy arena");
                live.push((a, size));
            }
            0..=10 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (a, size) = live.swap_remove(i);
                door.free(a, Size(size)).expect("free of a live cached object");
            }
            11 if !live.is_empty() => {
                // A wrong size for a live object of ours: refused whatever
                // the other threads do (it stays ours).
                let i = rng.below(live.len() as u64) as usize;
                let (a, size) = live[i];
                let w = wrong_size(size, &mut rng);
                let r = if rng.chance(2) { door.free(a, Size(w)) } else { s.free(a, Size(w)) };
                assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{a} {size} as {w}: {r:?}");
                t.bad += 1;
            }
            12 => {
                // An address no span holds.
                let r = s.free(Addr(BASE + SPAN + Q * (1 + rng.below(64) as usize)), Size(Q));
                assert!(r.is_err(), "{r:?}");
                t.bad += 1;
            }
            13 | 14 if plain.len() < 50 => {
                let size = CLASSES * Q + 1 + rng.below(256) as usize;
                let a = s.alloc(Size(size), Policy::BestFit, Wait::No).expect("plain allocation");
                t.plain_allocs += 1;
                plain.push((a, size));
            }
            15 if !plain.is_empty() => {
                let (a, size) = plain.swap_remove(rng.below(plain.len() as u64) as usize);
                if rng.chance(2) {
                    s.free_deferred(a, Size(size)).unwrap();
                    t.deferred += 1;
                } else {
                    s.free(a, Size(size)).unwrap();
                }
                t.plain_frees += 1;
            }
            16 if !s.flushed().is_zero() => t.flushes += 1,
            16 => {}
            17 => {
                let r = s.alloc(Size(SPAN * 2), Policy::InstantFit, Wait::No);
                assert!(r.is_err(), "{r:?}");
                t.failed += 1;
            }
            _ => {}
        }
    }
    for (a, size) in live {
        door.free(a, Size(size)).unwrap();
    }
    for (a, size) in plain {
        s.free(a, Size(size)).unwrap();
        t.plain_frees += 1;
    }
    if !s.flushed().is_zero() {
        t.flushes += 1;
    }
    t
}

fn counter_fields(c: &Counters) -> [(&'static str, u64); 12] {
    [
        ("allocs", c.allocs),
        ("frees", c.frees),
        ("failures", c.failures),
        ("bad_frees", c.bad_frees),
        ("search_steps", c.search_steps),
        ("lookups", c.lookups),
        ("imports", c.imports),
        ("exports", c.exports),
        ("export_failures", c.export_failures),
        ("injected", c.injected),
        ("deferred_frees", c.deferred_frees),
        ("flushes", c.flushes),
    ]
}

fn qstat_fields(q: &QCacheStats) -> [(&'static str, u64); 7] {
    [
        ("hits", q.hits),
        ("misses", q.misses),
        ("bad_frees", q.bad_frees),
        ("reclaims", q.reclaims),
        ("slabs_created", q.slabs_created),
        ("slabs_freed", q.slabs_freed),
        ("slab_collisions", q.slab_collisions),
    ]
}

fn run(seed: u64, steps: usize) {
    let mut tags = vec![0u8; 1 << 20];
    let mut hash = vec![0u8; 1 << 18];
    let mut qc = vec![0u8; 1 << 18];
    let mut mags = vec![0u8; 1 << 16];
    let mut a = Arena::new(
        "r32",
        Size(Q),
        SliceStore::new(&mut tags),
        SliceStore::new(&mut hash),
        NoSource,
    )
    .unwrap();
    a.add(Addr(BASE), Size(SPAN)).unwrap();
    let s: Shared<'_> =
        SyncArena::with_quantum_caches(a, QCacheConfig::new(CLASSES, SliceStore::new(&mut qc)))
            .unwrap();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(&mut mags)).unwrap();
    let done = AtomicBool::new(false);
    let total = Mutex::new(Tally::default());
    let reclaims_run = Mutex::new(0u64);
    let violations: Mutex<Vec<String>> = Mutex::new(vec![]);
    std::thread::scope(|sc| {
        let (s, cpu, done, total) = (&s, &cpu, &done, &total);
        let (violations, reclaims_run) = (&violations, &reclaims_run);
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                sc.spawn(move || {
                    let door = if w < 2 {
                        Door::Handle(Box::new(CacheHandle::new(s)))
                    } else {
                        Door::Cpu(cpu)
                    };
                    let t = worker(s, door, seed.wrapping_mul(31).wrapping_add(w * 7919), steps);
                    total.lock().unwrap().add(&t);
                })
            })
            .collect();
        // The reclaimer.
        let rec = sc.spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Acquire) {
                s.reclaim();
                n += 1;
                std::thread::yield_now();
            }
            *reclaims_run.lock().unwrap() = n;
        });
        // The reader: every counter never goes down; every sizes snapshot
        // adds up.
        let reader = sc.spawn(move || {
            let mut last_c = counter_fields(&Counters::default());
            let mut last_q = qstat_fields(&QCacheStats::default());
            let mut reads = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                let c = counter_fields(&s.with(|a| a.counters()));
                let q = qstat_fields(&s.qcache_stats());
                let z = s.with(|a| a.sizes());
                let mut v = violations.lock().unwrap();
                for (now, before) in c.iter().zip(last_c.iter()) {
                    if now.1 < before.1 {
                        v.push(format!("Counters::{} went from {} to {}", now.0, before.1, now.1));
                    }
                }
                for (now, before) in q.iter().zip(last_q.iter()) {
                    if now.1 < before.1 {
                        v.push(format!(
                            "QCacheStats::{} went from {} to {}",
                            now.0, before.1, now.1
                        ));
                    }
                }
                if z.total.0 != z.allocated.0 + z.free.0 + z.unflushed.0 {
                    v.push(format!("sizes() snapshot does not add up: {z:?}"));
                }
                drop(v);
                last_c = c;
                last_q = q;
                reads += 1;
                if finished {
                    break reads;
                }
                std::thread::yield_now();
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        rec.join().unwrap();
        assert!(reader.join().unwrap() > 0);
    });
    let v = violations.into_inner().unwrap();
    assert!(v.is_empty(), "seed {seed}: {} violations, first: {:?}", v.len(), &v[..v.len().min(5)]);
    // Quiescent: every handle dropped; the per-CPU caches dropped too.
    drop(cpu);
    let t = total.into_inner().unwrap();
    let reclaims_by_reclaimer = reclaims_run.into_inner().unwrap();
    s.reclaim();
    let q = s.qcache_stats();
    let c = s.with(|a| a.counters());
    let z = s.with(|a| a.sizes());
    let live = s.with(|a| a.live());
    let ctx = format!("seed {seed}: {t:?}\n{q:?}\n{c:?}\n{z:?}");
    s.check().unwrap_or_else(|e| panic!("{ctx}: check {e:?}"));
    assert_eq!(q.hits + q.misses, t.cached_calls, "{ctx}: hits + misses != cached allocations");
    assert_eq!(q.bad_frees + c.bad_frees, t.bad, "{ctx}: refused frees counted");
    // Reclaims: the reclaimer's, the last one above, and the one each
    // failing `SyncArena::alloc` runs ("a failing allocation first
    // reclaims the caches", README).
    assert_eq!(q.reclaims, reclaims_by_reclaimer + 1 + t.failed, "{ctx}: reclaims run");
    assert_eq!(q.slabs as u64, q.slabs_created - q.slabs_freed, "{ctx}: slabs now");
    assert_eq!(q.depot_magazines, 0, "{ctx}: reclaim empties the depots");
    assert_eq!(q.slabs, 0, "{ctx}: reclaim with nothing live frees every slab");
    assert_eq!(c.deferred_frees, t.deferred, "{ctx}: deferred frees");
    assert_eq!(c.flushes, t.flushes, "{ctx}: flushes");
    // Arena allocations: the plain ones, every slab, every miss that took
    // an allocation of the arena's own (slab_collisions; the arena never
    // runs out of room here), and (found by this test, see the report) a
    // slab placed where a taken record maps is allocated and freed again
    // at once, counted in allocs and frees but in no cache statistic. So:
    // at least those, and whatever is over is matched by as many frees.
    let known = t.plain_allocs + q.slabs_created + q.slab_collisions;
    assert!(c.allocs >= known, "{ctx}: arena allocations");
    assert_eq!(
        c.allocs - known,
        c.frees - (t.plain_frees + q.slabs_freed + q.slab_collisions),
        "{ctx}: arena allocations the caches made and gave back at once"
    );
    assert_eq!(c.allocs - c.frees, live as u64, "{ctx}: allocs - frees = live");
    assert_eq!((live, z.allocated, z.unflushed), (0, Size(0), Size(0)), "{ctx}: all freed");
    assert_eq!(z.free, Size(SPAN), "{ctx}");
    assert!(c.failures >= t.failed, "{ctx}: failed allocations counted");
}

#[test]
fn counters_never_go_down_and_add_up_after_join() {
    for seed in 1..=6 {
        run(seed, 20_000);
    }
}
