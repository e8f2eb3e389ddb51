//! Outside review, round 33: per-CPU allocations the pin cannot place: a
//! waiting one unplaced at its first try and placed at its retries (and,
//! last in the file, how an unplaced one counts).
//!
//! Contracts (quoted):
//! - src/sync/percpu.rs:180-184, `CpuCaches::alloc_wait`: "A waiter
//!   retries its CPU's magazines, the depot, the slabs and the arena each
//!   time space comes back: an object freed into any slot while someone
//!   waits, or as for [`SyncArena::alloc`]."
//! - src/sync/percpu.rs:221-224, `CpuCaches::alloc_retrying`: the loop is
//!   given "a function that tries the whole allocation again (this CPU's
//!   magazines first)".
//! - src/qcache/pin.rs:106-109 (`CpuPin`'s safety contract): each
//!   overridden magazine operation acts on "the `CpuMags` of one slot
//!   below `mags.slots()` (or none, returning `Unpinned` or `false`)": a
//!   pin may fail to place a call and place the next one, as `RseqPin`
//!   does for a thread that moves from a CPU numbered `slots` or more to
//!   one below (userspace/src/rseq/mod.rs:68-71).
//!
//! The pin here places every call but the first `UNPLACED` of the thread
//! that sets it. The waiter's first pop is unplaced (the call goes to the
//! arena, which is full); then another thread frees an object into slot
//! 0, which wakes it: the retry, on a placed call, must find the object
//! in slot 0's magazine. Before round 32 the retry was the whole
//! `alloc_wait` again; now a waiter whose first pop was `Unpinned` retries
//! the arena only, and sleeps through the object in the magazine.

use std::cell::Cell;
use std::time::Duration;

use vmspace::sync::{CpuCaches, Wait};
use vmspace::Size;

mod pins;
use pins::{cached, store, take_all, until_waiting, Op, Placed};

const Q: usize = 16;

thread_local! {
    /// Magazine operations of this thread the pin leaves unplaced.
    static UNPLACED: Cell<u32> = const { Cell::new(0) };
}

/// Whether this call of this thread is left unplaced (counting it).
fn unplaced() -> bool {
    UNPLACED.with(|u| {
        let n = u.get();
        if n > 0 {
            u.set(n - 1);
        }
        n > 0
    })
}

/// The script of a one-slot pin (`pins::Placed`): a thread's first
/// `UNPLACED` magazine operations unplaced, every other one on slot 0.
fn first_unplaced(_: Op) -> Option<usize> {
    if unplaced() {
        None
    } else {
        Some(0)
    }
}

#[test]
fn a_waiter_unplaced_at_first_takes_an_object_freed_into_its_slot() {
    let s = cached("r33", Q, 4096);
    let cpu = CpuCaches::new(&s, Placed::<1>::new(first_unplaced), store()).unwrap();
    // Every object there is, taken on slot 0: its magazines end empty,
    // the arena full.
    let (mut xs, _) = take_all(&cpu, Size(Q));
    assert!(xs.len() >= 64, "a slab's objects at least: {}", xs.len());
    let last = xs.pop().unwrap();
    let got = std::thread::scope(|sc| {
        let cpu = &cpu;
        let waiter = sc.spawn(move || {
            // Only the first pop is unplaced; every retry is on slot 0.
            UNPLACED.with(|u| u.set(1));
            // A bound for liveness only: the free below wakes it at once.
            cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(8)))
        });
        until_waiting(&s);
        // Into slot 0's magazine, waking the waiter.
        cpu.free(last, Size(Q)).unwrap();
        waiter.join().unwrap()
    });
    let got = got.expect("a retry on slot 0 finds the object freed into its magazine");
    assert_eq!(got, last);
    cpu.free(got, Size(Q)).unwrap();
    for x in xs {
        cpu.free(x, Size(Q)).unwrap();
    }
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
}

/// Doc ambiguity, found: an allocation of a cached size that the pin
/// cannot place goes to the arena and counts nowhere, neither a hit nor a
/// miss, though `QCacheStats::hits` (src/qcache/mod.rs:45-48) says "Each
/// allocation of a cached size counts once, a hit or a miss", and a
/// waiting one placed at its first try and unplaced at a retry counts a
/// miss (src/sync/percpu.rs `alloc_missed`). Whether "the call goes to
/// the arena instead" (percpu.rs:34-36) takes it out of the count is what
/// the docs leave open.
#[test]
fn an_unplaced_allocation_counts_once() {
    let s = cached("r33", Q, 4096);
    let cpu = CpuCaches::new(&s, Placed::<1>::new(first_unplaced), store()).unwrap();
    UNPLACED.with(|u| u.set(1));
    let x = cpu.alloc(Size(Q)).unwrap();
    cpu.free(x, Size(Q)).unwrap();
    UNPLACED.with(|u| u.set(0));
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 1, "one allocation of a cached size: {st:?}");
    s.check().unwrap();
}
