//! Outside review, round 38: an unplaced caller waiting (round 37's
//! `alloc_unplaced` under `alloc_wait`) for space that only a reclaim of
//! another class's slab gives, and one that times out.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:194-197 (`alloc_wait`): "A waiter retries its CPU's
//!   magazines, the depot, the slabs and the arena each time space comes
//!   back: an object freed into any slot while someone waits, or as for
//!   [`SyncArena::alloc`]."
//! - src/sync/arena.rs:148-150 (`SyncArena::alloc`): "Before every retry
//!   ... the quantum caches' depots are reclaimed, so slabs emptied into
//!   them since count as space".
//! - src/qcache/mod.rs:45-48 (`hits`): "Each allocation of a cached size
//!   counts once, a hit or a miss, however often it retries while it
//!   waits".
//! - src/sync/wait.rs:12-13 (`Wait::Timeout`): "when the time is up the
//!   allocation is tried once more before it fails".
//!
//! Liveness bounds only: the waiter is joined, never timed.

mod pins;

use std::time::Duration;

use pins::{alloc_n_on, cached, placed, reclaim_and_check_empty, set_slot, wake_unplaced_waiter};
use vmspace::arena::ArenaError;
use vmspace::qcache::OBJECTS;
use vmspace::sync::Wait;
use vmspace::Size;

const Q: usize = 16;

/// The arena is one class-1 slab, 15 of its objects out through slot 0.
/// An unplaced caller waits for a class-0 object. Slot 0 takes its 14
/// cached objects (hits) and every one of the 15 is freed unplaced, back
/// to the slab: the slab is wholly free, a reclaim gives it back, and the
/// waiter is served. Each allocation counts once: 1 miss and 14 hits for
/// slot 0, 1 miss for the waiter, whatever its retries.
#[test]
fn an_unplaced_waiter_is_served_by_reclaiming_another_class() {
    let s = cached("r38-wait-reclaim", Q, OBJECTS * 2 * Q);
    let cpu = placed(&s);
    set_slot(Some(0));
    let mut out = vec![cpu.alloc(Size(2 * Q)).unwrap()];
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
        for _ in 0..14 {
            out.push(cpu.alloc(Size(2 * Q)).unwrap());
        }
        set_slot(None);
        for &a in &out {
            cpu.free(a, Size(2 * Q)).unwrap();
        }
    });
    let got = got.expect("served once the class-1 slab was wholly free");
    s.check().unwrap();
    assert_eq!(s.waiting(), 0);
    cpu.free(got, Size(Q)).unwrap();
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (14, 2), "{st:?}");
    reclaim_and_check_empty(&s);
}

/// Two unplaced waiters with a timeout, nothing ever freed: both fail with
/// `NoSpace`, each counted once (a miss), nothing waits after, the arena
/// and caches unchanged.
#[test]
fn unplaced_waiters_that_time_out_count_once_each() {
    let s = cached("r38-wait-timeout", Q, OBJECTS * Q);
    let cpu = placed(&s);
    let held = alloc_n_on(None, &cpu, OBJECTS, Size(Q));
    let before = s.qcache_stats();
    assert_eq!((before.misses, before.slabs), (OBJECTS as u64, 0), "{before:?}");
    let rs = std::thread::scope(|sc| {
        let ts: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    set_slot(None);
                    cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_millis(30)))
                })
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    for r in rs {
        assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    }
    assert_eq!(s.waiting(), 0);
    s.check().unwrap();
    let after = s.qcache_stats();
    assert_eq!(after.misses, before.misses + 2, "{after:?}");
    assert_eq!((after.hits, after.slabs, after.objects_in_slabs), (0, 0, 0), "{after:?}");
    assert_eq!(s.with(|a| a.sizes().allocated), Size(OBJECTS * Q));
    for a in held {
        cpu.free(a, Size(Q)).unwrap();
    }
    drop(cpu);
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
