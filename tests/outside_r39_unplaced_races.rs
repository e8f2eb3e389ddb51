//! Outside review, round 39: unplaced and placed callers, a handle, a
//! reclaimer and `check()` racing on one arena (round 38's
//! `alloc_unplaced` / `take_cached`).
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:286-300 (`alloc_unplaced`): "an object the caches
//!   hold, from one depot magazine or the slabs there are (the rest of the
//!   magazine goes back at once, since no slot takes it ...) ... Objects
//!   free in slabs are allocated space as far as the arena knows: without
//!   this, such a caller failed, and waited in vain, beside them."
//! - src/qcache/mod.rs (`hits`): "Each allocation of a cached size counts
//!   once, a hit or a miss".
//! - src/qcache/locked.rs:258-262 (`check`): "no object is both in its
//!   slab and live ... every depot magazine is full and holds cached
//!   objects of its class".
//!
//! Assertions hold for every interleaving; the threads are only joined.

mod pins;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use pins::{
    alloc_n_on, free_all_and_empty, hold, placed, reclaim_and_check_empty, release, set_slot, Cpu,
    Placed,
};
use pins::{Setup, Slices, Spin};
use vmspace::qcache::{OBJECTS, ROUNDS};
use vmspace::sync::CacheHandle;
use vmspace::Size;

const Q: usize = 16;

/// `runs` rounds of two unplaced callers (this thread and one more) each
/// allocating one object at once, then each freeing its own after both
/// tried: `before` runs at the start of each of this thread's rounds,
/// `after` at its end (the other caller done with the round). How many of
/// the `2 * runs` calls failed.
fn two_unplaced_callers(
    cpu: &Cpu<'_, '_, Placed<2>>,
    runs: usize,
    mut before: impl FnMut(),
    mut after: impl FnMut(),
) -> u64 {
    let bar = Spin::default();
    let failed = AtomicU64::new(0);
    let call = || {
        bar.wait();
        let r = cpu.alloc(Size(Q));
        bar.wait();
        // Each frees its own after both tried.
        bar.wait();
        match r {
            Ok(a) => cpu.free(a, Size(Q)).unwrap(),
            Err(_) => _ = failed.fetch_add(1, Ordering::Relaxed),
        }
        bar.wait();
    };
    set_slot(None);
    std::thread::scope(|sc| {
        let other = sc.spawn(|| {
            set_slot(None);
            for _ in 0..runs {
                call();
            }
        });
        for _ in 0..runs {
            before();
            call();
            after();
        }
        other.join().unwrap();
    });
    failed.load(Ordering::Relaxed)
}

/// Round 39 finding, fixed. One class-0 slab, the arena full, exactly two
/// objects free in the slab and nothing else anywhere: two unplaced
/// callers, one object each, at once. Each must get one: the doc says the
/// rest of a magazine "goes back at once". Repeated to meet the window
/// between `take_cached` (which takes every free object of the slab into
/// a magazine under the lock) and `give_back` (the rest, under the lock
/// taken again).
/// Doc: src/sync/percpu.rs:288-290 "(the rest of the magazine goes back
/// at once ...)", 295-297 "without this, such a caller failed ... beside
/// them".
#[test]
fn two_unplaced_callers_two_free_slab_objects_both_served() {
    let setup = Setup::new("r39-window", Q, OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let mut live = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    set_slot(None);
    let spare = [live.pop().unwrap(), live.pop().unwrap()];
    for a in spare {
        cpu.free(a, Size(Q)).unwrap();
    }
    assert_eq!(s.qcache_stats().objects_in_slabs, 2);
    const ROUNDS_RUN: usize = 3000;
    let f = two_unplaced_callers(
        &cpu,
        ROUNDS_RUN,
        || {},
        || {
            let st = s.qcache_stats();
            assert_eq!(st.objects_in_slabs, 2, "{st:?}");
        },
    );
    s.check().unwrap();
    assert_eq!(f, 0, "{f} of {} unplaced calls failed beside a free slab object", 2 * ROUNDS_RUN);
    free_all_and_empty(&s, cpu, live, Size(Q));
}

/// The same window on the depot path: one full depot magazine (a
/// handle's, flushed) and nothing else free, the arena full; two unplaced
/// callers at once. The first takes the magazine and gives its other 14
/// back to the slab; the second must get one of them.
/// Doc: percpu.rs:286-289 "from one depot magazine or the slabs there are
/// (the rest of the magazine goes back at once ...)".
#[test]
fn two_unplaced_callers_one_depot_magazine_both_served() {
    let setup = Setup::new("r39-window-depot", Q, OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let mut live = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    set_slot(None);
    for _ in 0..ROUNDS {
        cpu.free(live.pop().unwrap(), Size(Q)).unwrap();
    }
    let mut h = CacheHandle::new(&s);
    const RUNS: usize = 3000;
    let f = two_unplaced_callers(
        &cpu,
        RUNS,
        || {
            // The slab's 15 into one full depot magazine.
            let xs: Vec<_> = (0..ROUNDS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
            for a in xs {
                h.free(a, Size(Q)).unwrap();
            }
            h.flush();
            let st = s.qcache_stats();
            assert_eq!((st.depot_magazines, st.objects_in_slabs), (1, 0), "{st:?}");
        },
        || {
            let st = s.qcache_stats();
            assert_eq!((st.depot_magazines, st.objects_in_slabs), (0, ROUNDS), "{st:?}");
        },
    );
    drop(h);
    s.check().unwrap();
    assert_eq!(f, 0, "{f} of {} unplaced calls failed beside a depot magazine's objects", 2 * RUNS);
    free_all_and_empty(&s, cpu, live, Size(Q));
}

/// Two unplaced threads, a placed one (slot 0), a `CacheHandle` thread
/// that flushes as it goes, and a reclaimer calling `check()`, over room
/// for a few slabs of two classes: no object live twice, every call
/// counted once (hits + misses), `check()` always Ok, and with nothing
/// live every object in its slab or a full depot magazine; all space back
/// after a reclaim.
#[test]
fn unplaced_placed_handle_and_reclaimer_lose_nothing() {
    let setup = Setup::new("r39-mixed", Q, 3 * OBJECTS * Q + 2 * OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let shadow = Mutex::new(HashSet::new());
    let calls = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let mut workers = Vec::new();
        for (k, slot) in [(0, None), (1, None), (2, Some(0)), (3, Some(1))] {
            let (cpu, shadow, calls) = (&cpu, &shadow, &calls);
            workers.push(sc.spawn(move || {
                set_slot(slot);
                for round in 0..40usize {
                    let size = Size(Q * (1 + (round + k) % 2));
                    let (held, n) = hold(|z| cpu.alloc(z), size, 50 + 13 * k, shadow);
                    calls.fetch_add(n, Ordering::Relaxed);
                    release(held, size, shadow, |a, z| cpu.free(a, z));
                }
            }));
        }
        {
            let (s, shadow, calls) = (&s, &shadow, &calls);
            workers.push(sc.spawn(move || {
                let mut h = CacheHandle::new(s);
                for round in 0..40usize {
                    let size = Size(Q * (1 + round % 2));
                    let (held, n) = hold(|z| h.alloc(z), size, 40, shadow);
                    calls.fetch_add(n, Ordering::Relaxed);
                    release(held, size, shadow, |a, z| h.free(a, z));
                    if round % 3 == 0 {
                        h.flush();
                    }
                }
            }));
        }
        let reclaimer = {
            let (s, stop) = (&s, &stop);
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    s.reclaim();
                    s.check().unwrap();
                    std::thread::yield_now();
                }
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reclaimer.join().unwrap();
    });
    drop(cpu);
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, calls.load(Ordering::Relaxed), "each call once: {st:?}");
    assert_eq!(st.objects_in_slabs + ROUNDS * st.depot_magazines, st.slabs * OBJECTS, "{st:?}");
    reclaim_and_check_empty(&s);
}
