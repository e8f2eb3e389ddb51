//! Outside review, round 37: an adversary of round 36's unplaced
//! allocation (`CpuCaches::alloc_unplaced`): a caller the pin cannot place
//! goes to the arena first and, when the arena has no space, takes an
//! object from the depot or the slabs, giving the rest of the magazine
//! back.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:34-38 (`CpuCaches`): "When the pin cannot place the
//!   caller on a slot (a user-space thread it cannot place), the call goes
//!   to the arena instead (an allocation the arena has no space for takes
//!   an object from the depot or the slabs, the rest of its magazine given
//!   back; a free puts its object back in its slab)."
//! - src/qcache/mod.rs:50-53 (`QCacheStats::misses`): "Allocations that
//!   found both magazines empty and were not served from a magazine in the
//!   end (...), and per-CPU allocations whose caller the pin could not
//!   place on a slot (they go to the arena)."
//! - src/qcache/mod.rs:45-48 (`hits`): "Each allocation of a cached size
//!   counts once, a hit or a miss".
//! - src/sync/percpu.rs:43: "misses are added at once; dropping
//!   flushes."
//! - src/qcache/mod.rs:64 (`objects_in_slabs`): "Objects sitting in their
//!   slabs (neither live nor cached)."
//!
//! Every step is followed by `check()`; addresses are checked against a
//! shadow set (no object handed out twice while live).

mod pins;

use std::collections::HashSet;
use std::sync::Mutex;

use pins::{hold, placed, reclaim_and_check_empty, release, set_slot, Setup, Slices};
use vmspace::arena::ArenaError;
use vmspace::qcache::OBJECTS;
use vmspace::Size;

const Q: usize = 16;

/// One slab of class 0 fills the arena's one span exactly.
fn one_slab() -> Setup {
    Setup::new("r37-unplaced", Q, OBJECTS * Q)
}

/// A placed miss takes the slab (its magazine installed), then an unplaced
/// caller takes every object left in the slab, one a call, each call one
/// miss, `objects_in_slabs` going down by one a call (the rest of the
/// magazine it filled given back); then it fails, with the slot's
/// magazine still holding its objects; an unplaced free puts its object
/// back in the slab. `check()` after every step; no address twice.
#[test]
fn unplaced_calls_drain_the_slab_one_object_at_a_time_counted_exactly() {
    set_slot(Some(0));
    let mut slices = Slices::new(one_slab());
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let mut live = HashSet::new();
    let first = cpu.alloc(Size(Q)).unwrap();
    assert!(live.insert(first));
    s.check().unwrap();
    let st = s.qcache_stats();
    // 15 rounds a magazine: one handed out, 14 in the slot's magazine.
    let in_slot = 14;
    assert_eq!((st.misses, st.slabs, st.objects_in_slabs), (1, 1, OBJECTS - 15), "{st:?}");

    set_slot(None);
    let mut misses = st.misses;
    let mut in_slabs = st.objects_in_slabs;
    while in_slabs > 0 {
        let a = cpu.alloc(Size(Q)).unwrap();
        assert!(live.insert(a), "{a:?} handed out twice");
        s.check().unwrap();
        misses += 1;
        in_slabs -= 1;
        let st = s.qcache_stats();
        assert_eq!(
            (st.misses, st.hits, st.objects_in_slabs, st.depot_magazines, st.slabs),
            (misses, 0, in_slabs, 0, 1),
            "after {} unplaced allocations: {st:?}",
            live.len() - 1
        );
    }
    assert_eq!(live.len(), OBJECTS - in_slot);
    // Nothing outside the slot's magazine now: a failure, one more miss.
    assert!(matches!(cpu.alloc(Size(Q)), Err(ArenaError::NoSpace { .. })));
    s.check().unwrap();
    misses += 1;
    assert_eq!(s.qcache_stats().misses, misses);

    // An unplaced free: back to the slab, and the next unplaced call takes
    // exactly that object again.
    let x = *live.iter().next().unwrap();
    live.remove(&x);
    cpu.free(x, Size(Q)).unwrap();
    s.check().unwrap();
    assert_eq!(s.qcache_stats().objects_in_slabs, 1);
    assert_eq!(cpu.alloc(Size(Q)).unwrap(), x);
    live.insert(x);
    misses += 1;
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.misses, st.objects_in_slabs), (misses, 0), "{st:?}");

    // The placed slot still serves its 14, as hits.
    set_slot(Some(0));
    for _ in 0..in_slot {
        let a = cpu.alloc(Size(Q)).unwrap();
        assert!(live.insert(a), "{a:?} handed out twice");
    }
    s.check().unwrap();
    assert_eq!(live.len(), OBJECTS);
    for a in live {
        cpu.free(a, Size(Q)).unwrap();
    }
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (in_slot as u64, misses), "{st:?}");
    s.check().unwrap();
    reclaim_and_check_empty(&s);
}

/// The largest cached size (the last class), unplaced, with the arena
/// full of one of its slabs whose objects sit in the slab: served from
/// the slab; and a size of another class (no slab of it, no room) fails
/// without touching class 3's objects.
#[test]
fn unplaced_largest_class_and_a_class_without_a_slab() {
    let setup = Setup::new("r37-largest", Q, OBJECTS * 4 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let max = s.qcache_max();
    assert_eq!(max, Size(4 * Q));
    set_slot(Some(1));
    let a = cpu.alloc(max).unwrap(); // a placed miss on slot 1: the slab
    cpu.free(a, max).unwrap();
    set_slot(None);
    let before = s.qcache_stats();
    assert!(matches!(cpu.alloc(Size(Q)), Err(ArenaError::NoSpace { .. })));
    s.check().unwrap();
    let after = s.qcache_stats();
    assert_eq!(after.misses, before.misses + 1, "{before:?} -> {after:?}");
    assert_eq!(after.objects_in_slabs, before.objects_in_slabs, "{before:?} -> {after:?}");
    let mut got = HashSet::new();
    // 64 objects: 15 in slot 1's magazine, the rest reachable unplaced.
    while let Ok(x) = cpu.alloc(Size(max.0 - 1)) {
        assert!(got.insert(x), "{x:?} twice");
        s.check().unwrap();
    }
    assert_eq!(got.len(), OBJECTS - 15, "every object outside slot 1's magazine");
    set_slot(Some(1));
    for x in got {
        cpu.free(x, Size(max.0 - 1)).unwrap();
    }
    s.check().unwrap();
    drop(cpu);
    reclaim_and_check_empty(&s);
}

/// Two threads, one placed on slot 0 and one unplaced, each allocating
/// until it fails and freeing all it holds, round after round, over two
/// slabs' room: no object is live twice (a shared shadow set); after the
/// caches drop, every allocation made (failures included) counts once:
/// `hits + misses` is the number of calls, and with nothing live every
/// object is in its slab or in a full depot magazine.
#[test]
fn placed_and_unplaced_threads_share_objects_without_loss_or_duplicates() {
    let setup = Setup::new("r37-mixed", Q, 2 * OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let shadow = Mutex::new(HashSet::new());
    let calls = std::thread::scope(|sc| {
        let run = |slot: Option<usize>| {
            let (cpu, shadow, s) = (&cpu, &shadow, &s);
            sc.spawn(move || {
                set_slot(slot);
                let mut calls = 0u64;
                for round in 0..40 {
                    let size = Size(Q * (1 + round % 2));
                    let (held, n) = hold(|z| cpu.alloc(z), size, 3 * OBJECTS, shadow);
                    calls += n;
                    s.check().unwrap();
                    release(held, size, shadow, |a, z| cpu.free(a, z));
                }
                calls
            })
        };
        let (a, b) = (run(Some(0)), run(None));
        a.join().unwrap() + b.join().unwrap()
    });
    s.check().unwrap();
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, calls, "each allocation counts once: {st:?}");
    let per_mag = 15;
    let classes_slabs = st.slabs;
    assert_eq!(
        st.objects_in_slabs + per_mag * st.depot_magazines,
        OBJECTS * classes_slabs,
        "nothing live: every object in its slab or the depot: {st:?}"
    );
    s.check().unwrap();
    reclaim_and_check_empty(&s);
}

/// Round 37 finding, fixed. The arena full (two slabs of class 0, every object live
/// through slot 0), slot 0 frees 46 objects: two magazines spill to the
/// depot (16 stay in the slot). An unplaced allocation then finds no space
/// in the arena and, as src/sync/percpu.rs:36-37 says, "takes an object
/// from the depot or the slabs, the rest of its magazine given back": one
/// depot magazine is taken (its 14 others to the slabs), the other stays.
/// Instead `SyncArena::alloc`'s reclaim (src/sync/arena.rs:148-150 and 174, run by
/// `alloc_unplaced` before it looks at the depot) empties every depot,
/// every class, into the slabs first: the depot is never reached, both
/// magazines are broken up.
#[test]
fn an_unplaced_allocation_takes_one_depot_magazine_not_every_one() {
    let setup = Setup::new("r37-depot", Q, 2 * OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    set_slot(Some(0));
    let mut held = Vec::new();
    while let Ok(a) = cpu.alloc(Size(Q)) {
        held.push(a);
    }
    assert_eq!(held.len(), 2 * OBJECTS);
    for a in held.drain(..46) {
        cpu.free(a, Size(Q)).unwrap();
    }
    s.check().unwrap();
    let before = s.qcache_stats();
    assert_eq!((before.depot_magazines, before.objects_in_slabs), (2, 0), "{before:?}");
    set_slot(None);
    let x = cpu.alloc(Size(Q)).unwrap();
    s.check().unwrap();
    let after = s.qcache_stats();
    held.push(x);
    set_slot(Some(0));
    for a in held {
        cpu.free(a, Size(Q)).unwrap();
    }
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(
        (after.depot_magazines, after.objects_in_slabs),
        (1, 14),
        "one depot magazine taken, the rest of it given back: {before:?} -> {after:?}"
    );
}

/// Three threads (slot 0, slot 1, unplaced) over two slabs' room while a
/// fourth reclaims without pause: no object live twice, every call counted
/// once (`hits + misses` after the drop), and with nothing live every
/// object is in its slab or a full depot magazine; `check()` by every
/// worker after every round.
#[test]
fn reclaim_racing_placed_and_unplaced_threads_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let setup = Setup::new("r37-reclaim", Q, 2 * OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let shadow = Mutex::new(HashSet::new());
    let done = AtomicBool::new(false);
    let calls = std::thread::scope(|sc| {
        let (s, done) = (&s, &done);
        let reclaimer = sc.spawn(move || {
            while !done.load(Ordering::SeqCst) {
                s.reclaim();
                std::thread::yield_now();
            }
        });
        let run = |slot: Option<usize>| {
            let (cpu, shadow) = (&cpu, &shadow);
            sc.spawn(move || {
                set_slot(slot);
                let mut calls = 0u64;
                for round in 0..30 {
                    let size = Size(Q * (1 + (round + slot.unwrap_or(2)) % 3));
                    let (held, n) = hold(|z| cpu.alloc(z), size, OBJECTS / 2 + round * 3, shadow);
                    calls += n;
                    s.check().unwrap();
                    release(held, size, shadow, |a, z| cpu.free(a, z));
                }
                calls
            })
        };
        let ts = [run(Some(0)), run(Some(1)), run(None)];
        let calls: u64 = ts.into_iter().map(|t| t.join().unwrap()).sum();
        done.store(true, Ordering::SeqCst);
        reclaimer.join().unwrap();
        calls
    });
    s.check().unwrap();
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, calls, "each allocation counts once: {st:?}");
    assert_eq!(
        st.objects_in_slabs + 15 * st.depot_magazines,
        OBJECTS * st.slabs,
        "nothing live: every object in its slab or the depot: {st:?}"
    );
    reclaim_and_check_empty(&s);
}
