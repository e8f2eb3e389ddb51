//! Outside review, round 39: an unplaced caller waiting (`alloc_wait`,
//! round 38's `alloc_unplaced` in every retry) woken by each kind of
//! event: a magazine to the depot, a handle's flush, a free back to a
//! slab, space in the arena; and a free into a slot, which it cannot
//! reach.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:194-197 (`alloc_wait`): "A waiter retries its CPU's
//!   magazines, the depot, the slabs and the arena each time space comes
//!   back: an object freed into any slot while someone waits, or as for
//!   [`SyncArena::alloc`]. Objects in other CPUs' magazines reach it only
//!   when those fill up (to the depot) or are flushed."
//! - src/sync/percpu.rs:286-289 (`alloc_unplaced`): "an object the caches
//!   hold, from one depot magazine or the slabs there are (the rest of the
//!   magazine goes back at once ...; no slab is made for it)".
//! - src/sync/arena.rs:150-151 (`SyncArena::alloc`): "a waiter wakes when
//!   space comes back to the arena, a magazine reaches a depot, or a cache
//!   is flushed".
//!
//! Liveness bounds only: waiters are joined, never timed.

mod pins;

use std::time::Duration;

use pins::{
    alloc_n_on, cached, free_all_and_empty, placed, reclaim_and_check_empty, set_slot,
    wake_unplaced_waiter,
};
use vmspace::arena::ArenaError;
use vmspace::qcache::{OBJECTS, ROUNDS};
use vmspace::sync::{CacheHandle, Wait};
use vmspace::Size;

const Q: usize = 16;

/// The arena one class-0 slab, all 64 objects out through slot 0. An
/// unplaced waiter; slot 0 frees 31 (two full magazines, the 31st spills
/// one to the depot). The waiter takes the depot magazine: depot 0, its 14
/// other objects in the slab, one miss for the waiter, no slab made.
#[test]
fn woken_by_a_magazine_to_the_depot() {
    let s = cached("r39-wake-depot", Q, OBJECTS * Q);
    let cpu = placed(&s);
    let mut xs = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    let before = s.qcache_stats();
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
        for _ in 0..2 * ROUNDS + 1 {
            cpu.free(xs.pop().unwrap(), Size(Q)).unwrap();
        }
    });
    let got = got.expect("served from the depot magazine");
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.depot_magazines, st.objects_in_slabs), (0, ROUNDS - 1), "{st:?}");
    assert_eq!((st.slabs, st.slabs_created), (1, before.slabs_created), "{st:?}");
    assert_eq!(st.misses, before.misses + 1, "{st:?}");
    xs.push(got);
    set_slot(None);
    free_all_and_empty(&s, cpu, xs, Size(Q));
}

/// A `CacheHandle` holds all 64 objects, frees 20 into its magazines (15
/// and 5). An unplaced waiter; the handle flushes (the full magazine to the
/// depot, the 5 to the slab). The waiter takes the depot magazine: depot
/// 0, 5 + 14 in the slab.
#[test]
fn woken_by_a_handle_flush() {
    let s = cached("r39-wake-flush", Q, OBJECTS * Q);
    let cpu = placed(&s);
    let mut h = CacheHandle::new(&s);
    let mut xs: Vec<_> = (0..OBJECTS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
    for _ in 0..20 {
        h.free(xs.pop().unwrap(), Size(Q)).unwrap();
    }
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || h.flush());
    let got = got.expect("served after the flush");
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(
        (st.depot_magazines, st.objects_in_slabs, st.slabs),
        (0, 5 + ROUNDS - 1, 1),
        "{st:?}"
    );
    set_slot(None);
    cpu.free(got, Size(Q)).unwrap();
    for a in xs {
        h.free(a, Size(Q)).unwrap();
    }
    drop(h);
    drop(cpu);
    reclaim_and_check_empty(&s);
}

/// An unplaced free puts its object back in its slab and wakes: an
/// unplaced waiter takes that object (nothing else free anywhere).
#[test]
fn woken_by_an_unplaced_free_to_the_slab() {
    let s = cached("r39-wake-slab", Q, OBJECTS * Q);
    let cpu = placed(&s);
    let mut xs = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    let x = xs.pop().unwrap();
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
        set_slot(None);
        cpu.free(x, Size(Q)).unwrap();
    });
    assert_eq!(got.expect("served from the slab"), x);
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.objects_in_slabs, st.depot_magazines, st.slabs), (0, 0, 1), "{st:?}");
    xs.push(x);
    free_all_and_empty(&s, cpu, xs, Size(Q));
}

/// Space back in the arena (an uncached allocation freed): the waiter's
/// arena try serves it; no slab is made for it.
#[test]
fn woken_by_space_in_the_arena() {
    let s = cached("r39-wake-arena", Q, OBJECTS * Q + 8 * Q);
    let cpu = placed(&s);
    let xs = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    let big = cpu.alloc(Size(8 * Q)).unwrap();
    let before = s.qcache_stats();
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
        cpu.free(big, Size(8 * Q)).unwrap();
    });
    let got = got.expect("served by the arena");
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.slabs_created), (1, before.slabs_created), "{st:?}");
    assert_eq!(s.with(|a| a.sizes().allocated), Size(OBJECTS * Q + Q));
    set_slot(None);
    free_all_and_empty(&s, cpu, std::iter::once(got).chain(xs), Size(Q));
}

/// An object freed into slot 0 wakes an unplaced waiter, which cannot
/// reach it ("Objects in other CPUs' magazines reach it only when those
/// fill up ... or are flushed"): it times out with `NoSpace`, counted
/// once; slot 0's next allocation is that object.
#[test]
fn a_free_into_a_slot_does_not_serve_an_unplaced_waiter() {
    let s = cached("r39-wake-slot", Q, OBJECTS * Q);
    let cpu = placed(&s);
    let mut xs = alloc_n_on(Some(0), &cpu, OBJECTS, Size(Q));
    let x = xs.pop().unwrap();
    let before = s.qcache_stats();
    let wait = Wait::Timeout(Duration::from_millis(50));
    let (r, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), wait, || cpu.free(x, Size(Q)).unwrap());
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
    assert_eq!(s.qcache_stats().misses, before.misses + 1);
    assert_eq!(cpu.alloc(Size(Q)).unwrap(), x, "a hit in slot 0");
    xs.push(x);
    free_all_and_empty(&s, cpu, xs, Size(Q));
}
