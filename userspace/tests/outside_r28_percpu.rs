//! Round 28 (outside reviewer): per-CPU caches (`UserCpuCaches` over
//! `RseqPin` and `SchedPin`) against their docs: more threads than CPUs
//! bouncing between CPUs never get one object twice and lose none; two
//! frees of one object racing on two threads (through the caches, the
//! arena, or both) succeed exactly once; foreign objects are refused and
//! change nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore};
use vmspace::qcache::{magazine_store_bytes, CpuPin, QCacheConfig};
use vmspace::{Addr, Size};
use vmspace_user::{
    allowed_cpus, run_only_on, MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches,
};

type Store = PageStore<MmapBackend>;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn arena(base: usize, size: usize) -> UserArena<Store, NoSource> {
    let mut a = Arena::new("r28", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(base), Size(size)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(8, store())).unwrap()
}

fn caches<P: CpuPin>(
    shared: &UserArena<Store, NoSource>,
    pin: P,
) -> UserCpuCaches<'_, Store, NoSource, P> {
    let bytes = magazine_store_bytes(8, pin.slots()).unwrap();
    UserCpuCaches::new(shared, pin, PageStore::new(MmapBackend::new(), Size(bytes)).unwrap())
        .unwrap()
}

/// `threads` threads (more than CPUs), each hopping between the allowed
/// CPUs, allocating and freeing objects of every class; a shared set of
/// live objects catches any object handed out twice; at the end everything
/// goes back and the arena holds nothing (no object lost).
fn bounce<P: CpuPin + Sync>(pin: P, what: &str) {
    let cpus = allowed_cpus().unwrap();
    let shared = arena(1 << 40, 1 << 22);
    let c = caches(&shared, pin);
    let live = Mutex::new(HashSet::<usize>::new());
    let nospace = AtomicUsize::new(0);
    let threads = 2 * cpus.len() + 3;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, cpus, live, nospace) = (&c, &cpus, &live, &nospace);
            s.spawn(move || {
                let mut held: Vec<(Addr, Size)> = Vec::new();
                let mut x = (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in 0..40000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if i % 50 == 0 {
                        run_only_on(cpus[(x as usize >> 8) % cpus.len()]).unwrap();
                    }
                    let free = !held.is_empty() && (x % 5 < 2 || held.len() > 200);
                    if free {
                        let k = (x as usize >> 16) % held.len();
                        let (a, sz) = held.swap_remove(k);
                        assert!(live.lock().unwrap().remove(&a.0), "{what}: {a} not live");
                        c.free(a, sz).unwrap_or_else(|e| panic!("{what}: free {a} {e:?}"));
                    } else {
                        let sz = Size(16 * (1 + (x as usize >> 24) % 8));
                        match c.alloc(sz) {
                            Ok(a) => {
                                assert!(
                                    live.lock().unwrap().insert(a.0),
                                    "{what}: {a} handed out twice"
                                );
                                held.push((a, sz));
                            }
                            Err(ArenaError::NoSpace { .. }) => {
                                nospace.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{what}: alloc {e:?}"),
                        }
                    }
                }
                for (a, sz) in held {
                    assert!(live.lock().unwrap().remove(&a.0));
                    c.free(a, sz).unwrap();
                }
            });
        }
    });
    drop(c);
    shared.check().unwrap();
    shared.reclaim();
    let left = shared.with(|a| a.sizes().allocated);
    assert_eq!(left, Size(0), "{what}: objects lost (allocated after everything went back)");
}

#[test]
fn rseq_pin_bouncing_threads_no_duplicates_no_losses() {
    bounce(RseqPin::new(), "RseqPin");
}

#[test]
fn rseq_pin_one_slot_bouncing_threads() {
    bounce(RseqPin::with_slots(1), "RseqPin(1)");
}

#[test]
fn sched_pin_bouncing_threads_no_duplicates_no_losses() {
    bounce(SchedPin::new(), "SchedPin");
}

#[test]
fn sched_pin_one_slot_bouncing_threads() {
    bounce(SchedPin::with_slots(1), "SchedPin(1)");
}

/// Two threads free one object at once, through the caches on different
/// CPUs, or one through the caches and one through the arena: exactly one
/// succeeds ("of two frees of one object racing each other, on any path,
/// exactly one succeeds"); afterwards no object is handed out twice.
fn double_free_race<P: CpuPin + Sync>(pin: P, what: &str) {
    let cpus = allowed_cpus().unwrap();
    let shared = arena(1 << 41, 1 << 22);
    let c = caches(&shared, pin);
    let rounds = 20000;
    let barrier = Barrier::new(2);
    let slot = AtomicUsize::new(0);
    let wins = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let size = Size(48);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (c, cpus, barrier, slot, wins, shared) =
                (&c, &cpus, &barrier, &slot, &wins, &shared);
            s.spawn(move || {
                run_only_on(cpus[t % cpus.len()]).unwrap();
                for r in 0..rounds {
                    if t == 0 {
                        let a = c.alloc(size).unwrap();
                        slot.store(a.0, Ordering::SeqCst);
                    }
                    barrier.wait();
                    let a = Addr(slot.load(Ordering::SeqCst));
                    let ok = if t == 1 && r % 2 == 1 {
                        shared.free(a, size).is_ok()
                    } else {
                        c.free(a, size).is_ok()
                    };
                    if ok {
                        wins[t].fetch_add(1, Ordering::SeqCst);
                    }
                    barrier.wait();
                }
            });
        }
    });
    let total = wins[0].load(Ordering::SeqCst) + wins[1].load(Ordering::SeqCst);
    // Now every object handed out must be distinct.
    let mut seen = HashSet::new();
    let mut got = Vec::new();
    for _ in 0..2000 {
        let a = c.alloc(size).unwrap();
        assert!(seen.insert(a.0), "{what}: {a} handed out twice after the racing frees");
        got.push(a);
    }
    for a in got {
        c.free(a, size).unwrap();
    }
    drop(c);
    shared.check().unwrap();
    shared.reclaim();
    assert_eq!(
        total, rounds,
        "{what}: racing double frees: {total} successes for {rounds} objects"
    );
    assert_eq!(shared.with(|a| a.sizes().allocated), Size(0), "{what}: lost objects");
}

#[test]
fn double_free_race_rseq() {
    double_free_race(RseqPin::new(), "RseqPin");
}

#[test]
fn double_free_race_sched() {
    double_free_race(SchedPin::with_slots(1), "SchedPin(1)");
}

/// An object of another arena's caches freed here is refused (a bad free)
/// and changes nothing, through the caches and through the arena.
#[test]
fn foreign_objects_are_refused() {
    let a = arena(1 << 42, 1 << 20);
    let b = arena(1 << 43, 1 << 20);
    let ca = caches(&a, RseqPin::new());
    let cb = caches(&b, RseqPin::new());
    let x = cb.alloc(Size(32)).unwrap();
    assert!(ca.free(x, Size(32)).is_err(), "foreign object taken by the caches");
    assert!(a.free(x, Size(32)).is_err(), "foreign object taken by the arena");
    // A live object of `a` freed with a wrong size is refused too.
    let y = ca.alloc(Size(32)).unwrap();
    assert!(ca.free(y, Size(64)).is_err());
    assert!(ca.free(Addr(y.0 + 16), Size(32)).is_err(), "interior address");
    ca.free(y, Size(32)).unwrap();
    cb.free(x, Size(32)).unwrap();
    drop((ca, cb));
    a.check().unwrap();
    b.check().unwrap();
    a.reclaim();
    b.reclaim();
    assert_eq!(a.with(|a| a.sizes().allocated), Size(0));
    assert_eq!(b.with(|a| a.sizes().allocated), Size(0));
}

/// "A waiter retries its CPU's magazines, the depot, the slabs and the
/// arena each time space comes back: an object freed into any slot while
/// someone waits": the arena full, a waiter on `wait_cpu`, a free on
/// `free_cpu` into the slot the waiter also uses; the waiter gets it within
/// 10 s (its own timeout is 60 s).
fn waiter_gets_object_freed_into_its_slot<P: CpuPin + Sync>(
    pin: P,
    wait_cpu: usize,
    free_cpu: usize,
    what: &str,
) {
    let shared = arena(1 << 44, 1 << 12);
    let c = caches(&shared, pin);
    run_only_on(free_cpu).unwrap();
    let mut objs = Vec::new();
    loop {
        match c.alloc(Size(16)) {
            Ok(a) => objs.push(a),
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{what}: {e:?}"),
        }
        assert!(objs.len() < 100_000);
    }
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            run_only_on(wait_cpu).unwrap();
            let r = c.alloc_wait(
                Size(16),
                vmspace::sync::Wait::Timeout(std::time::Duration::from_secs(60)),
            );
            (r, std::time::Instant::now())
        });
        let t = std::time::Instant::now();
        while shared.waiting() != 1 {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "{what}: no waiter");
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let x = objs.pop().unwrap();
        c.free(x, Size(16)).unwrap();
        let freed = std::time::Instant::now();
        let (r, at) = w.join().unwrap();
        assert_eq!(r.unwrap_or_else(|e| panic!("{what}: {e:?}")), x, "{what}");
        assert!(at.duration_since(freed) < std::time::Duration::from_secs(10), "{what}: slow wake");
    });
    for a in objs {
        c.free(a, Size(16)).unwrap();
    }
    drop(c);
    shared.check().unwrap();
}

#[test]
fn waiter_wakes_for_a_free_into_its_slot() {
    let cpus = allowed_cpus().unwrap();
    let (a, b) = (cpus[0], *cpus.last().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            waiter_gets_object_freed_into_its_slot(SchedPin::with_slots(1), a, b, "SchedPin(1)")
        })
        .join()
        .unwrap();
        s.spawn(|| {
            waiter_gets_object_freed_into_its_slot(RseqPin::new(), a, a, "RseqPin same CPU")
        })
        .join()
        .unwrap();
        s.spawn(|| {
            waiter_gets_object_freed_into_its_slot(SchedPin::new(), a, a, "SchedPin same CPU")
        })
        .join()
        .unwrap();
    });
}

/// Objects allocated through any of the three paths (per-CPU caches, a
/// per-thread `CacheHandle`, the arena) and freed through any other, by
/// more threads than CPUs hopping between them: never handed out twice,
/// none lost.
fn mixed_paths<P: CpuPin + Sync>(pin: P, what: &str) {
    use vmspace::sync::CacheHandle;
    let cpus = allowed_cpus().unwrap();
    let shared = arena(1 << 45, 1 << 22);
    let c = caches(&shared, pin);
    let live = Mutex::new(HashSet::<usize>::new());
    let threads = 2 * cpus.len() + 2;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, cpus, live, shared) = (&c, &cpus, &live, &shared);
            s.spawn(move || {
                let mut h = CacheHandle::new(shared);
                let mut held: Vec<(Addr, Size)> = Vec::new();
                let mut x = (t as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in 0..20000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if i % 64 == 0 {
                        run_only_on(cpus[(x as usize >> 8) % cpus.len()]).unwrap();
                    }
                    let path = (x >> 40) % 3;
                    if !held.is_empty() && (x % 5 < 2 || held.len() > 100) {
                        let k = (x as usize >> 16) % held.len();
                        let (a, sz) = held.swap_remove(k);
                        assert!(live.lock().unwrap().remove(&a.0));
                        let r = match path {
                            0 => c.free(a, sz),
                            1 => h.free(a, sz),
                            _ => shared.free(a, sz),
                        };
                        r.unwrap_or_else(|e| panic!("{what}: free {a} by path {path}: {e:?}"));
                    } else {
                        let sz = Size(16 * (1 + (x as usize >> 24) % 8));
                        let r = match path {
                            0 => c.alloc(sz),
                            1 => h.alloc(sz),
                            _ => shared.alloc(
                                sz,
                                vmspace::arena::Policy::InstantFit,
                                vmspace::sync::Wait::No,
                            ),
                        };
                        match r {
                            Ok(a) => {
                                assert!(
                                    live.lock().unwrap().insert(a.0),
                                    "{what}: {a} twice (path {path})"
                                );
                                held.push((a, sz));
                            }
                            Err(ArenaError::NoSpace { .. }) => {}
                            Err(e) => panic!("{what}: alloc {e:?}"),
                        }
                    }
                }
                for (a, sz) in held {
                    assert!(live.lock().unwrap().remove(&a.0));
                    h.free(a, sz).unwrap();
                }
            });
        }
    });
    drop(c);
    shared.check().unwrap();
    shared.reclaim();
    assert_eq!(shared.with(|a| a.sizes().allocated), Size(0), "{what}: objects lost");
}

#[test]
fn mixed_paths_rseq() {
    mixed_paths(RseqPin::new(), "RseqPin");
}

#[test]
fn mixed_paths_sched_one_slot() {
    mixed_paths(SchedPin::with_slots(1), "SchedPin(1)");
}

/// Informative: whether the RseqPin tests above ran restartable sequences.
#[test]
fn rseq_in_use_here() {
    println!("r28: RseqPin uses rseq: {}", RseqPin::new().uses_rseq());
}

/// More threads than objects (one free), all waiting `Forever` on one shared slot
/// (`SchedPin::with_slots(1)`, or `RseqPin::with_slots(1)` where threads on
/// other CPUs go to the arena): every free reaches a waiter, so the run
/// finishes. A lost wake-up shows as a run that does not end within 60 s
/// (the test then fails by exiting the process: the waiters cannot be
/// freed).
fn forever_waiters_on_one_slot<P: CpuPin + Sync>(pin: P, hop: bool, what: &str) {
    let cpus = allowed_cpus().unwrap();
    let shared = arena(1 << 46, 1 << 14);
    let c = caches(&shared, pin);
    // The setup's free caches the one free object in this CPU's slot: the
    // waiters' CPU when they do not hop.
    run_only_on(cpus[0]).unwrap();
    let mut all = Vec::new();
    loop {
        match c.alloc(Size(16)) {
            Ok(a) => all.push(a),
            Err(ArenaError::NoSpace { .. }) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    for a in all.drain(all.len() - 1..) {
        c.free(a, Size(16)).unwrap();
    }
    let done = AtomicUsize::new(0);
    let threads = 2 * cpus.len() + 2;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, cpus, done) = (&c, &cpus, &done);
            s.spawn(move || {
                for i in 0..2000 {
                    if i % 200 == 0 {
                        let k = if hop { (t + i / 200) % cpus.len() } else { 0 };
                        run_only_on(cpus[k]).unwrap();
                    }
                    let a = c.alloc_wait(Size(16), vmspace::sync::Wait::Forever).unwrap();
                    std::hint::black_box(a);
                    // Hold it across a yield: others find nothing and wait.
                    std::thread::yield_now();
                    c.free(a, Size(16)).unwrap();
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let t0 = std::time::Instant::now();
        let mut most = 0;
        while done.load(Ordering::SeqCst) < threads {
            most = most.max(shared.waiting());
            if t0.elapsed() > std::time::Duration::from_secs(60) {
                eprintln!(
                    "{what}: {} of {threads} threads done after 60 s; waiting {}",
                    done.load(Ordering::SeqCst),
                    shared.waiting()
                );
                std::process::exit(101);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        println!("r28: {what}: up to {most} waiting at once (sampled)");
    });
    for a in all {
        c.free(a, Size(16)).unwrap();
    }
    drop(c);
    shared.check().unwrap();
    shared.reclaim();
    assert_eq!(shared.with(|a| a.sizes().allocated), Size(0), "{what}");
}

#[test]
fn forever_waiters_sched_one_slot() {
    forever_waiters_on_one_slot(SchedPin::with_slots(1), true, "SchedPin(1)");
}

/// Every thread on the first allowed CPU: one slot in use, through rseq.
/// (Hopping between CPUs with `RseqPin` is not live, as documented:
/// "Objects in other CPUs' magazines reach it only when those fill up ...
/// or are flushed", and a thread on a CPU past the slots goes to the
/// arena, which cannot reach slot 0's magazine: with the one free object
/// cached on CPU 0 and every waiter held on CPU 1, the run hangs.)
#[test]
fn forever_waiters_rseq_same_cpu() {
    forever_waiters_on_one_slot(RseqPin::new(), false, "RseqPin, one CPU");
}
