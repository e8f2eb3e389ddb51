//! Outside review, round 39: an adversary of round 38's fix (`CpuCaches::
//! alloc_unplaced`, `Locked::take_cached`): exact shadow counts of the
//! depot, the slabs, reclaims, misses and the arena's failures, for an
//! unplaced caller beside full depots, exhausted slab records, the
//! largest class; and the placed path as before.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:286-297 (`alloc_unplaced`): "from the arena, and
//!   when that fails (no space, no tags, the source), an object the caches
//!   hold, from one depot magazine or the slabs there are (the rest of the
//!   magazine goes back at once, since no slot takes it; no slab is made
//!   for it). When they hold none, the caches' wholly free slabs are
//!   reclaimed, and if that gave any back, the arena is tried once more:
//!   one reclaim, and no try that could only fail as the first did."
//! - src/qcache/locked.rs:62-66 (`take_cached`): "from one full magazine of
//!   the depot, else from the objects free in slabs, never from a new
//!   slab".
//! - src/sync/arena.rs:376-380 (`refill`): "a magazine from the depot or
//!   the slabs ... (after a reclaim, once more, when nothing could be had)".
//! - src/arena/stats.rs (`failures`): each failed try counts.
//!
//! `check()` after every step.

mod pins;

use std::cell::Cell;

use pins::{
    alloc_n_on, by_thread, free_slab_of, placed_by, set_slot, Cpu, Op, Placed, Setup, Slices,
};
use vmspace::arena::ArenaError;
use vmspace::qcache::{QCacheStats, DEPOT, OBJECTS, ROUNDS, SLABS};
use vmspace::{Addr, Size};

const Q: usize = 16;

thread_local! {
    static NO_INSTALL: Cell<bool> = const { Cell::new(false) };
}

/// `by_thread`, but an install left unplaced while `NO_INSTALL` is set.
fn script(op: Op) -> Option<usize> {
    if matches!(op, Op::Install) && NO_INSTALL.with(Cell::get) {
        return None;
    }
    by_thread(op)
}

fn failures(s: &pins::Shared<'_>) -> u64 {
    s.with(|a| a.counters().failures)
}

fn st(s: &pins::Shared<'_>) -> QCacheStats {
    s.check().unwrap();
    s.qcache_stats()
}

/// Slot 1 takes every object of a class-1 slab and frees all but the
/// first: full magazines go to the depot, and the slab stays partly live
/// (never wholly free). The objects, the first still live.
fn class1_depot_beside_a_live_object(cpu: &Cpu<'_, '_, Placed<2>>) -> Vec<Addr> {
    let xs = alloc_n_on(Some(1), cpu, OBJECTS, Size(2 * Q));
    for &a in &xs[1..] {
        cpu.free(a, Size(2 * Q)).unwrap();
    }
    xs
}

/// An unplaced call of class 0 that fails with `NoSpace`; the statistics
/// after (`st`: `check()` first).
fn unplaced_call_fails(s: &pins::Shared<'_>, cpu: &Cpu<'_, '_, Placed<2>>) -> QCacheStats {
    set_slot(None);
    let r = cpu.alloc(Size(Q));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    st(s)
}

/// Free everything, drop the caches, reclaim: nothing allocated, nothing
/// lost (every object in its slab or a full depot magazine before).
fn teardown(s: &pins::Shared<'_>, cpu: Cpu<'_, '_, Placed<2>>, live: Vec<(Addr, Size)>) {
    set_slot(None);
    for (a, z) in live {
        cpu.free(a, z).unwrap();
    }
    drop(cpu);
    let t = st(s);
    assert_eq!(t.objects_in_slabs + ROUNDS * t.depot_magazines, t.slabs * OBJECTS, "{t:?}");
    s.reclaim();
    let t = st(s);
    assert_eq!((t.slabs, t.depot_magazines), (0, 0), "{t:?}");
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// A full depot (`DEPOT` magazines of class 0) and the rest in three
/// slabs, the arena full. Unplaced calls take the depot's magazines one a
/// call (depot - 1, slabs + ROUNDS - 1), then the slabs' objects one a
/// call, never a reclaim while anything is cached; then one reclaim that
/// frees nothing and the first failure back: one failed arena try each.
/// Doc: percpu.rs:286-297 (above); locked.rs:62-66.
#[test]
fn full_depot_then_slabs_then_one_reclaim_exact_counts() {
    let setup = Setup::new("r39-depot", Q, 3 * OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    let all = alloc_n_on(Some(0), &cpu, 3 * OBJECTS, Size(Q));
    assert!(matches!(cpu.alloc(Size(Q)), Err(ArenaError::NoSpace { .. })));
    for &a in &all {
        cpu.free(a, Size(Q)).unwrap();
    }
    let b = st(&s);
    assert_eq!((b.slabs, b.slabs_created, b.depot_magazines), (3, 3, DEPOT), "{b:?}");
    let in_slot = 3 * OBJECTS - b.objects_in_slabs - ROUNDS * DEPOT;
    assert!(in_slot <= 2 * ROUNDS, "{b:?}");

    set_slot(None);
    let (mut depot, mut in_slabs, mut misses, mut fails) =
        (b.depot_magazines, b.objects_in_slabs, b.misses, failures(&s));
    let mut got = Vec::new();
    while depot > 0 || in_slabs > 0 {
        let x = cpu.alloc(Size(Q)).unwrap();
        assert!(!got.contains(&x), "{x:?} twice");
        got.push(x);
        if depot > 0 {
            depot -= 1;
            in_slabs += ROUNDS - 1;
        } else {
            in_slabs -= 1;
        }
        misses += 1;
        fails += 1;
        let t = st(&s);
        assert_eq!(
            (t.depot_magazines, t.objects_in_slabs, t.misses, t.reclaims, t.slabs, t.slabs_created),
            (depot, in_slabs, misses, b.reclaims, 3, 3),
            "after {} unplaced: {t:?}",
            got.len()
        );
        assert_eq!(failures(&s), fails, "one failed arena try a call");
    }
    assert_eq!(got.len(), 3 * OBJECTS - in_slot);
    // Nothing cached but in slot 0: one reclaim (nothing freed), the first
    // failure back, no second arena try.
    let t = unplaced_call_fails(&s, &cpu);
    assert_eq!((t.reclaims, t.slabs_freed, t.misses), (b.reclaims + 1, 0, misses + 1), "{t:?}");
    assert_eq!(failures(&s), fails + 1, "one try: the reclaim freed nothing");
    teardown(&s, cpu, got.into_iter().map(|a| (a, Size(Q))).collect());
}

/// Every slab record of class 0 taken by a full slab (SLABS slabs, all
/// objects live), the arena with room for one more object: a placed miss
/// tries a new slab (a collision, no record) and falls back to the arena;
/// an unplaced call with the arena full then never tries a slab: no
/// collision, no slab made, one reclaim, the first failure.
/// Doc: locked.rs:62-66 "never from a new slab"; percpu.rs:286-297.
#[test]
fn slab_records_exhausted_unplaced_never_tries_a_new_slab() {
    let mut setup = Setup::new("r39-records", Q, SLABS * OBJECTS * Q + OBJECTS * Q);
    setup.meta = 1 << 17;
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    set_slot(Some(0));
    let mut live: Vec<_> =
        (0..SLABS * OBJECTS).map(|_| (cpu.alloc(Size(Q)).unwrap(), Size(Q))).collect();
    let b = st(&s);
    assert_eq!((b.slabs, b.slabs_created, b.objects_in_slabs), (SLABS, SLABS as u64, 0), "{b:?}");
    // Placed: a new slab has no record; the arena serves it.
    let x = cpu.alloc(Size(Q)).unwrap();
    live.push((x, Size(Q)));
    let t = st(&s);
    assert_eq!((t.slabs, t.slabs_created), (SLABS, SLABS as u64), "{t:?}");
    assert!(t.slab_collisions > b.slab_collisions, "a placed miss tried a slab: {t:?}");
    // Fill the arena through unplaced calls (its first tries succeed).
    set_slot(None);
    loop {
        let before = st(&s);
        match cpu.alloc(Size(Q)) {
            Ok(y) => {
                live.push((y, Size(Q)));
                let t = st(&s);
                assert_eq!(
                    (t.slabs_created, t.slab_collisions, t.reclaims),
                    (before.slabs_created, before.slab_collisions, before.reclaims),
                    "{t:?}"
                );
            }
            Err(ArenaError::NoSpace { .. }) => {
                let t = st(&s);
                assert_eq!(t.slab_collisions, before.slab_collisions, "a slab tried: {t:?}");
                assert_eq!(t.slabs_created, before.slabs_created, "{t:?}");
                assert_eq!(t.reclaims, before.reclaims + 1, "one reclaim: {t:?}");
                assert_eq!(t.misses, before.misses + 1, "{t:?}");
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(s.with(|a| a.sizes().allocated), Size(setup.span));
    teardown(&s, cpu, live);
}

/// The placed path as before round 38: a placed miss with nothing cached
/// of its class and the arena full of a wholly free slab of another class
/// reclaims (that slab back) and makes a new slab of its own class.
/// Doc: arena.rs:376-380 "(after a reclaim, once more, when nothing could
/// be had)"; locked.rs:136-137 "importing a new slab from the arena when
/// none has any".
#[test]
fn placed_miss_still_reclaims_and_makes_a_new_slab() {
    let setup = Setup::new("r39-placed", Q, OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let mut cpu = placed_by(&s, mags, script);
    free_slab_of(&mut cpu, Size(2 * Q));
    let b = st(&s);
    assert_eq!((b.slabs, b.objects_in_slabs), (1, OBJECTS), "{b:?}");
    set_slot(Some(0));
    let x = cpu.alloc(Size(Q)).unwrap();
    let t = st(&s);
    assert_eq!(
        (t.reclaims, t.slabs_freed, t.slabs_created, t.slabs, t.objects_in_slabs),
        (b.reclaims + 1, b.slabs_freed + 1, b.slabs_created + 1, 1, OBJECTS - ROUNDS),
        "{b:?} -> {t:?}"
    );
    assert_eq!(s.with(|a| a.sizes().allocated), Size(OBJECTS * Q), "a slab of class 0");
    teardown(&s, cpu, vec![(x, Size(Q))]);
}

/// Another class's depot full of magazines from a slab partly live (so
/// no slab is wholly free): an unplaced call of class 0 with nothing of
/// its class cached makes one reclaim, which frees nothing, and returns
/// the first failure; the arena is tried once.
/// Doc: percpu.rs:291-293 "if that gave any back, the arena is tried once
/// more: one reclaim, and no try that could only fail as the first did".
#[test]
fn a_reclaim_that_frees_nothing_gives_the_first_failure() {
    let setup = Setup::new("r39-nothing", Q, OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    let xs = class1_depot_beside_a_live_object(&cpu);
    let b = st(&s);
    assert!(b.depot_magazines >= 1, "{b:?}");
    let f = failures(&s);
    let t = unplaced_call_fails(&s, &cpu);
    assert_eq!((t.reclaims, t.slabs_freed, t.slabs), (b.reclaims + 1, b.slabs_freed, 1), "{t:?}");
    assert_eq!(failures(&s), f + 1, "one arena try");
    teardown(&s, cpu, vec![(xs[0], Size(2 * Q))]);
}

/// The largest class (4 quanta here): an unplaced call with the arena
/// full takes from the slabs (objects spread over two slab records),
/// leaving the rest in them: objects_in_slabs falls by one a call, every
/// object distinct and of the class's slabs, no slab made.
/// Doc: percpu.rs:286-289; locked.rs:62-66.
#[test]
fn largest_class_from_the_slabs_there_are() {
    let setup = Setup::new("r39-largest", Q, 2 * OBJECTS * 4 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    let z = Size(4 * Q);
    let xs = alloc_n_on(Some(0), &cpu, 2 * OBJECTS, z);
    set_slot(None);
    // Three back to the first slab, five to the second: unplaced frees go
    // to their slabs.
    for &a in xs[..3].iter().chain(&xs[OBJECTS..OBJECTS + 5]) {
        cpu.free(a, z).unwrap();
    }
    let b = st(&s);
    assert_eq!((b.slabs, b.objects_in_slabs, b.depot_magazines), (2, 8, 0), "{b:?}");
    let mut got = Vec::new();
    for n in 1..=8 {
        let y = cpu.alloc(z).unwrap();
        assert!(!got.contains(&y));
        got.push(y);
        let t = st(&s);
        assert_eq!(
            (t.objects_in_slabs, t.slabs_created, t.reclaims),
            (8 - n, 2, b.reclaims),
            "{t:?}"
        );
    }
    assert!(matches!(cpu.alloc(z), Err(ArenaError::NoSpace { .. })));
    let live: Vec<_> =
        xs[3..OBJECTS].iter().chain(&xs[OBJECTS + 5..]).chain(&got).map(|&a| (a, z)).collect();
    teardown(&s, cpu, live);
}

/// A placed miss whose magazine no slot takes (placed for the pop, not for
/// the install): the depot's magazine, one object out, the other 14 given
/// back (not full: to the slab, never into the depot); then the slab's
/// 14, one out, 13 back. No reclaim, no new slab, one miss each.
/// Doc: percpu.rs:29-32 "then installs it ... in whichever slot the caller
/// is on by then (or gives it back when that slot has no room)";
/// locked.rs:82-84 (`give_back`) "in the depot if it is full ..., else its
/// objects back in their slabs"; `check()`: "every depot magazine is full".
#[test]
fn a_magazine_no_slot_takes_goes_back_partly_full_to_the_slabs() {
    let setup = Setup::new("r39-install", Q, OBJECTS * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    let mut xs = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    for _ in 0..2 * ROUNDS + 1 {
        cpu.free(xs.pop().unwrap(), Size(Q)).unwrap();
    }
    let b = st(&s);
    assert_eq!((b.depot_magazines, b.objects_in_slabs), (1, 0), "{b:?}");
    set_slot(Some(1));
    NO_INSTALL.with(|c| c.set(true));
    let mut got = Vec::new();
    for (n, want) in [(1u64, ROUNDS - 1), (2, ROUNDS - 2)] {
        got.push(cpu.alloc(Size(Q)).unwrap());
        let t = st(&s);
        assert_eq!(
            (t.depot_magazines, t.objects_in_slabs, t.misses, t.reclaims, t.slabs_created),
            (0, want, b.misses + n, b.reclaims, b.slabs_created),
            "{b:?} -> {t:?}"
        );
    }
    NO_INSTALL.with(|c| c.set(false));
    // Slot 1 took nothing: its next allocation is a miss too.
    got.push(cpu.alloc(Size(Q)).unwrap());
    assert_eq!(st(&s).misses, b.misses + 3);
    let mut cpu = cpu;
    set_slot(Some(0));
    cpu.flush();
    xs.extend(got);
    teardown(&s, cpu, xs.into_iter().map(|a| (a, Size(Q))).collect());
}

/// Two full depot magazines of class 1 from a slab with one object live
/// (so no slab is wholly free), nothing of class 0: an unplaced class-0
/// call that fails. src/sync/percpu.rs (`alloc_unplaced`, corrected after
/// this round: it said only "wholly free slabs are reclaimed"): "When they
/// hold none, the caches are reclaimed (every depot's magazines to the
/// slabs, wholly free slabs to the arena, as for a placed miss that finds
/// nothing cached), and if that gave slabs back, the arena is tried once
/// more". So one reclaim, class 1's depot objects all in the slabs (none
/// lost), no slab freed, one miss.
#[test]
fn a_failed_unplaced_call_reclaims_once_and_loses_no_depot_object() {
    let setup = Setup::new("r39-depots", Q, OBJECTS * 2 * Q);
    let mut slices = Slices::new(setup);
    let (s, mags) = slices.shared();
    let cpu = placed_by(&s, mags, script);
    let xs = class1_depot_beside_a_live_object(&cpu);
    let b = st(&s);
    assert!(b.depot_magazines >= 2, "{b:?}");
    let t = unplaced_call_fails(&s, &cpu);
    s.check().unwrap();
    teardown(&s, cpu, vec![(xs[0], Size(2 * Q))]);
    assert_eq!(
        (t.depot_magazines, t.objects_in_slabs, t.slabs, t.reclaims, t.misses),
        (0, b.objects_in_slabs + ROUNDS * b.depot_magazines, b.slabs, b.reclaims + 1, b.misses + 1),
        "{b:?} -> {t:?}"
    );
}
