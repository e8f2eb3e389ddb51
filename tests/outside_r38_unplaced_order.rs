//! Outside review, round 38: an adversary of round 37's order for an
//! unplaced per-CPU allocation (`CpuCaches::alloc_unplaced`): the arena
//! without a reclaim, then one depot magazine or the slabs, and only then
//! a reclaim and a last try in the arena.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:286-295 (`alloc_unplaced`): "from the arena, and
//!   when that fails (no space, no tags, the source), an object the caches
//!   hold: from one depot magazine or the slabs (the rest of the magazine
//!   goes back at once, since no slot takes it). Only then are the caches'
//!   free slabs reclaimed, as a [`SyncArena::alloc`] does at once, for a
//!   last try in the arena: a reclaim first would have emptied every depot
//!   magazine into the slabs."
//! - src/qcache/mod.rs:45-48 (`hits`): "Each allocation of a cached size
//!   counts once, a hit or a miss".
//! - src/arena/stats.rs:38-49 (`failures`): "Failed alloc ... calls ...
//!   each of its failed tries counts".
//!
//! `check()` after every step.

mod pins;

use std::collections::HashSet;
use std::sync::Mutex;

use pins::{
    alloc_n_on, free_all_and_empty, free_slab_of, hold, placed, reclaim_and_check_empty, release,
    set_slot,
};
use pins::{Cpu, Placed, Setup, Slices};
use vmspace::arena::ArenaError;
use vmspace::qcache::{OBJECTS, ROUNDS};
use vmspace::Size;

const Q: usize = 16;

/// A class-1 slab (2 quanta) wholly free in the slabs: slot 1 allocates
/// once (the slab), the object is freed unplaced (back to its slab) and a
/// flush puts the slot's 14 back in the slab.
fn free_class1_slab(s: &pins::Shared<'_>, cpu: &mut Cpu<'_, '_, Placed<2>>) {
    free_slab_of(cpu, Size(2 * Q));
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.objects_in_slabs, st.depot_magazines), (1, OBJECTS, 0), "{st:?}");
}

/// The arena full (a wholly free class-1 slab, a class-0 slab all live
/// through slot 0), slot 0 frees enough to spill magazines to the depot.
/// An unplaced allocation of class 0 takes one depot magazine (its other
/// rounds to the slab); no reclaim runs, so the free class-1 slab stays;
/// the arena counts the one failed try.
#[test]
fn depot_magazine_served_without_reclaiming_a_free_slab_of_another_class() {
    let setup = Setup::new("r38-order", Q, OBJECTS * Q + OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let mut cpu = placed(&s, mags);
    free_class1_slab(&s, &mut cpu);
    let mut live = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.objects_in_slabs), (2, OBJECTS), "{st:?}");
    for _ in 0..46 {
        cpu.free(live.pop().unwrap(), Size(Q)).unwrap();
    }
    s.check().unwrap();
    let before = s.qcache_stats();
    assert!(before.depot_magazines >= 1, "{before:?}");
    let fails = s.with(|a| a.counters().failures);

    set_slot(None);
    let mut got = HashSet::new();
    let x = cpu.alloc(Size(Q)).unwrap();
    assert!(got.insert(x));
    s.check().unwrap();
    let after = s.qcache_stats();
    assert_eq!(after.depot_magazines, before.depot_magazines - 1, "{before:?} -> {after:?}");
    assert_eq!(after.objects_in_slabs, before.objects_in_slabs + ROUNDS - 1, "{after:?}");
    assert_eq!(after.reclaims, before.reclaims, "no reclaim: {before:?} -> {after:?}");
    assert_eq!(after.slabs, 2, "the free class-1 slab stays: {after:?}");
    assert_eq!(after.misses, before.misses + 1, "{after:?}");
    assert_eq!(s.with(|a| a.counters().failures), fails + 1, "one failed arena try");

    // The next depot magazine (the depot is taken first), then the slab's
    // objects, one a call; never a reclaim while something is cached.
    let mut in_slabs = after.objects_in_slabs;
    let mut depot = after.depot_magazines;
    let mut misses = after.misses;
    while depot > 0 || in_slabs > OBJECTS {
        let y = cpu.alloc(Size(Q)).unwrap();
        assert!(got.insert(y), "{y:?} twice");
        s.check().unwrap();
        misses += 1;
        if depot > 0 {
            depot -= 1;
            in_slabs += ROUNDS - 1;
        } else {
            in_slabs -= 1;
        }
        let st = s.qcache_stats();
        assert_eq!(
            (st.depot_magazines, st.objects_in_slabs, st.misses, st.reclaims, st.slabs),
            (depot, in_slabs, misses, before.reclaims, 2),
            "{st:?}"
        );
    }
    for y in got {
        cpu.free(y, Size(Q)).unwrap();
    }
    set_slot(Some(0));
    for y in live {
        cpu.free(y, Size(Q)).unwrap();
    }
    drop(cpu);
    s.check().unwrap();
    reclaim_and_check_empty(&s);
}

/// Round 38 finding, fixed. The arena full of a wholly free class-1 slab, nothing of class 0
/// anywhere: the arena fails, no depot magazine, no object in a slab; the
/// doc's next step is the reclaim (the class-1 slab goes back) "for a last
/// try in the arena": the object is an allocation of the arena's own, no
/// new slab made for one unplaced call (no slot can take its magazine).
#[test]
fn after_the_reclaim_the_last_try_is_the_arena() {
    let setup = Setup::new("r38-last", Q, OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let mut cpu = placed(&s, mags);
    free_class1_slab(&s, &mut cpu);
    let before = s.qcache_stats();
    set_slot(None);
    let x = cpu.alloc(Size(Q)).unwrap();
    s.check().unwrap();
    let after = s.qcache_stats();
    assert_eq!(after.slabs_freed, before.slabs_freed + 1, "{after:?}");
    assert_eq!(after.misses, before.misses + 1, "{after:?}");
    assert_eq!(
        (after.slabs, after.slabs_created, s.with(|a| a.sizes().allocated)),
        (0, before.slabs_created, Size(Q)),
        "a last try in the arena, not a new slab: {before:?} -> {after:?}"
    );
    free_all_and_empty(&s, cpu, [x], Size(Q));
}

/// Two unplaced threads and one placed, over one class-0 slab's room plus
/// a class-1 slab's, allocating both classes until they fail and freeing
/// all: no object live twice; every call (failures included) counts once;
/// with nothing live, every object is in its slab or a depot magazine.
#[test]
fn two_unplaced_threads_and_a_placed_one_count_every_call_once() {
    let setup = Setup::new("r38-mixed", Q, OBJECTS * Q + OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let shadow = Mutex::new(HashSet::new());
    let calls = std::thread::scope(|sc| {
        let run = |slot: Option<usize>, seed: usize| {
            let (cpu, shadow, s) = (&cpu, &shadow, &s);
            sc.spawn(move || {
                set_slot(slot);
                let mut calls = 0u64;
                for round in 0..30 {
                    let size = Size(Q * (1 + (round + seed) % 2));
                    let (held, n) = hold(|z| cpu.alloc(z), size, 2 * OBJECTS, shadow);
                    calls += n;
                    s.check().unwrap();
                    release(held, size, shadow, |a, z| cpu.free(a, z));
                }
                calls
            })
        };
        let hs = [run(Some(0), 0), run(None, 1), run(None, 0)];
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    s.check().unwrap();
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, calls, "each allocation counts once: {st:?}");
    assert_eq!(
        st.objects_in_slabs + ROUNDS * st.depot_magazines,
        OBJECTS * st.slabs,
        "nothing live: every object in its slab or the depot: {st:?}"
    );
    reclaim_and_check_empty(&s);
}

/// The arena full of live objects (direct arena allocations of an unplaced
/// caller), nothing cached: an unplaced allocation fails with `NoSpace`,
/// one miss; the reclaim of src/sync/percpu.rs:290-292 ("Only then are the
/// caches' free slabs reclaimed ... for a last try in the arena") runs
/// once, and the arena is not asked more than its tries: the first, the
/// cache's try for a slab, and the last (src/arena/stats.rs:38-49).
#[test]
fn a_failing_unplaced_allocation_reclaims_once() {
    let setup = Setup::new("r38-fail", Q, 8 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed(&s, mags);
    let held = alloc_n_on(None, &cpu, 8, Size(Q));
    s.check().unwrap();
    let before = s.qcache_stats();
    assert_eq!(before.slabs, 0, "{before:?}");
    let fails = s.with(|a| a.counters().failures);
    assert!(matches!(cpu.alloc(Size(Q)), Err(ArenaError::NoSpace { .. })));
    s.check().unwrap();
    let after = s.qcache_stats();
    assert_eq!(after.misses, before.misses + 1, "{after:?}");
    assert!(s.with(|a| a.counters().failures) - fails <= 3);
    assert_eq!(after.reclaims, before.reclaims + 1, "one reclaim: {before:?} -> {after:?}");
    for a in held {
        cpu.free(a, Size(Q)).unwrap();
    }
    drop(cpu);
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
