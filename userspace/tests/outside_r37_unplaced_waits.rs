//! Outside review, round 37: waiting allocations of a caller the pin
//! cannot place (round 36's `alloc_unplaced`), woken by placed threads'
//! frees, against the documented reach of other CPUs' magazines.
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:34-38 (`CpuCaches`): "When the pin cannot place the
//!   caller on a slot (...), the call goes to the arena instead (an
//!   allocation the arena has no space for takes an object from the depot
//!   or the slabs, the rest of its magazine given back; a free puts its
//!   object back in its slab)."
//! - src/sync/percpu.rs:193-198 (`alloc_wait`): "A waiter retries its CPU's
//!   magazines, the depot, the slabs and the arena each time space comes
//!   back: an object freed into any slot while someone waits, or as for
//!   [`SyncArena::alloc`]. Objects in other CPUs' magazines reach it only
//!   when those fill up (to the depot) or are flushed."
//! - src/qcache/mod.rs:45-48 (`hits`): "Each allocation of a cached size
//!   counts once, a hit or a miss, however often it retries while it
//!   waits".
//!
//! Liveness bounds only (no timing assertion): a waiter must be served
//! once the object it can reach exists; the tests join it.

mod pins;

use std::collections::HashSet;

use pins::{cached, placed, set_slot, take_all, wake_unplaced_waiter};
use vmspace::qcache::OBJECTS;
use vmspace::sync::Wait;
use vmspace::Size;

const Q: usize = 16;
const ROUNDS: usize = 15;

/// A placed thread holds every object (the arena full of one slab); an
/// unplaced one waits. The placed thread frees two magazines' worth into
/// its slot (out of the waiter's reach), then one more, which spills the
/// older magazine to the depot: the waiter is served with one of that
/// magazine's objects, never one still in the slot. Counted once.
#[test]
fn an_unplaced_waiter_is_served_from_a_spilled_magazine() {
    let s = cached("r37-wait", Q, OBJECTS * Q);
    let cpu = placed(&s);
    set_slot(Some(0));
    let (mut held, made) = take_all(&cpu, Size(Q));
    assert_eq!(held.len(), OBJECTS);
    let (got, (first, second, last)) =
        wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
            let first: Vec<_> = held.drain(..ROUNDS).collect();
            let second: Vec<_> = held.drain(..ROUNDS).collect();
            for &a in first.iter().chain(&second) {
                cpu.free(a, Size(Q)).unwrap();
            }
            s.check().unwrap();
            let last = held.pop().unwrap();
            cpu.free(last, Size(Q)).unwrap(); // full: the older magazine spills
            (first, second, last)
        });
    let got = got.expect("served once a magazine reached the depot");
    assert!(first.contains(&got), "{got:?} is not from the spilled magazine");
    // The rest of the slot's objects, and the spilled ones, are intact.
    let mut rest: HashSet<_> = first.into_iter().chain(second).collect();
    rest.insert(last);
    rest.remove(&got);
    for _ in 0..rest.len() {
        let a = cpu.alloc(Size(Q)).unwrap();
        assert!(rest.remove(&a), "{a:?} handed out but not free");
        held.push(a);
    }
    assert!(rest.is_empty());
    held.push(got);
    s.check().unwrap();
    assert_eq!(held.len(), OBJECTS);
    for a in held {
        cpu.free(a, Size(Q)).unwrap();
    }
    drop(cpu);
    let st = s.qcache_stats();
    // take_all's calls, the waiter's one, and the re-takes.
    let retakes = (2 * ROUNDS + 1 - 1) as u64;
    assert_eq!(st.hits + st.misses, made + 1 + retakes, "each allocation once: {st:?}");
    s.check().unwrap();
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// An unplaced waiter woken by an unplaced free (the object back in its
/// slab) is served with that object; one miss.
#[test]
fn an_unplaced_waiter_is_served_by_an_unplaced_free() {
    let s = cached("r37-wait2", Q, OBJECTS * Q);
    let cpu = placed(&s);
    set_slot(None);
    let (mut held, made) = take_all(&cpu, Size(Q));
    assert_eq!(held.len(), OBJECTS, "unplaced calls reach every object");
    let before = s.qcache_stats();
    assert_eq!((before.hits, before.misses), (0, made), "{before:?}");
    let x = held.pop().unwrap();
    let (got, _) = wake_unplaced_waiter(&s, &cpu, Size(Q), Wait::Forever, || {
        cpu.free(x, Size(Q)).unwrap();
    });
    assert_eq!(got, Ok(x));
    let after = s.qcache_stats();
    assert_eq!((after.hits, after.misses), (0, made + 1), "{after:?}");
    held.push(x);
    for a in held {
        cpu.free(a, Size(Q)).unwrap();
    }
    s.check().unwrap();
    drop(cpu);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
