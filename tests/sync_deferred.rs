//! Deferred frees of a thread-safe arena under threads: the
//! freed-but-not-flushed state as the kernel's batched unmaps use it.
//!
//! - Two frees of one allocation racing each other, deferred or plain, by
//!   address or by handle: exactly one succeeds (with no one allocating
//!   meanwhile: a free by address cannot tell an address handed out again
//!   from the old one).
//! - A thread allocating all the while, short of space, never gets a range
//!   that waits for its flush (the BPF arena once reissued such addresses
//!   and lost data).
//! - A thread waiting for space is not woken by a deferred free, only by the
//!   flush that makes the space free.
//! - An importing arena dropped while it holds an unflushed range gives
//!   its span back to a parent arena as unflushed, through every level of
//!   a chain, so no level reissues it before its own flush (an outside
//!   reviewer found the C API's root handing it out once the middle arena
//!   of three was destroyed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy, SegmentKinds};
use vmspace::sync::Wait;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

type Shared = UserArena<PageStore<MmapBackend>, NoSource>;

const QUANTUM: usize = 4096;

fn shared(span: usize) -> Shared {
    let store = || PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap();
    let mut a = Arena::new("deferred", Size(QUANTUM), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(span)).unwrap();
    UserArena::new(a)
}

/// Allocations per round.
const BATCH: usize = 32;

/// Stops a thread's loop however the scope's main thread leaves it (a
/// failed assertion included), or the scope would wait for it forever.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// One round of two threads freeing the same `BATCH` allocations in turn:
/// the first always deferred, the second deferred every third round, else
/// plain. `free(i, deferred)` frees allocation `i` and returns the bytes
/// it left waiting for the flush (0 for a plain free), or `None` when it
/// was refused as bad. Each allocation must be accepted exactly once, and
/// the flush must make free exactly the bytes left waiting.
fn race(s: &Shared, round: usize, free: impl Fn(usize, bool) -> Option<usize> + Sync) {
    let kinds = if round % 3 == 0 { [true, true] } else { [true, false] };
    let accepted: Vec<AtomicUsize> = (0..BATCH).map(|_| AtomicUsize::new(0)).collect();
    let waiting = AtomicUsize::new(0);
    std::thread::scope(|racers| {
        for deferred in kinds {
            let (accepted, waiting, free) = (&accepted, &waiting, &free);
            racers.spawn(move || {
                for (i, n) in accepted.iter().enumerate() {
                    if let Some(bytes) = free(i, deferred) {
                        waiting.fetch_add(bytes, Ordering::Relaxed);
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    for (i, n) in accepted.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 1, "round {round}: allocation {i}");
    }
    assert_eq!(s.flushed(), Size(waiting.into_inner()), "round {round}");
    s.check().unwrap();
}

#[test]
fn racing_frees_of_one_allocation_accept_exactly_one() {
    let s = shared(256 * QUANTUM);
    for round in 0..300 {
        let size = Size(QUANTUM * (1 + round % 3));
        let all: Vec<Addr> =
            (0..BATCH).map(|_| s.alloc(size, Policy::InstantFit, Wait::No).unwrap()).collect();
        race(&s, round, |i, deferred| {
            let r = if deferred { s.free_deferred(all[i], size) } else { s.free(all[i], size) };
            match r {
                Ok(()) => Some(if deferred { size.0 } else { 0 }),
                Err(ArenaError::BadFree { .. }) => None,
                Err(e) => panic!("round {round}: {e}"),
            }
        });
    }
    let sizes = s.with(|a| a.sizes());
    assert_eq!((sizes.allocated, sizes.unflushed), (Size(0), Size(0)));
}

#[test]
fn racing_frees_of_one_held_allocation_accept_exactly_one() {
    let s = shared(256 * QUANTUM);
    for round in 0..300 {
        // Eight bytes short of whole quanta: a waiting range is the
        // allocation rounded up.
        let size = Size(QUANTUM * (1 + round % 3) - 8);
        let held: Vec<(Addr, u32)> = (0..BATCH)
            .map(|_| s.with(|a| a.alloc_handle(size, Policy::InstantFit)).unwrap())
            .map(|h| (h.addr(), h.tag()))
            .collect();
        race(&s, round, |i, deferred| {
            let (addr, tag) = held[i];
            let r = if deferred {
                s.free_handle_deferred_parts(addr, tag)
            } else {
                s.free_handle_parts(addr, tag)
            };
            match r {
                Ok(got) => {
                    assert_eq!(got, size, "round {round}");
                    Some(if deferred { size.0 + 8 } else { 0 })
                }
                Err(ArenaError::BadHandle { .. }) => None,
                Err(e) => panic!("round {round}: {e}"),
            }
        });
    }
    let sizes = s.with(|a| a.sizes());
    assert_eq!((sizes.allocated, sizes.unflushed), (Size(0), Size(0)));
}

#[test]
fn nothing_unflushed_is_reissued_to_a_thread_allocating_meanwhile() {
    // Room for one round and no more: the allocating thread runs short of
    // space while ranges wait for their flush, where an arena that flushed
    // (or reused) on its own would reissue them.
    let s = shared(BATCH * QUANTUM);
    // Ranges freed deferred and not yet flushed, as the freeing thread
    // reports them.
    let waiting: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let (reissued, taken, short) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        // Allocates and frees all the while; what it gets must be nothing
        // that waits for its flush. The freeing thread reports a range only
        // after its deferred free succeeded, and the main thread forgets
        // them only together with the flush, under the same lock, so a
        // range found waiting here was unflushed when it was handed out (a
        // late report can hide a reissue, never invent one).
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                match s.alloc(Size(QUANTUM), Policy::InstantFit, Wait::No) {
                    Ok(a) => {
                        if waiting.lock().unwrap().contains(&a.0) {
                            reissued.fetch_add(1, Ordering::Relaxed);
                        }
                        taken.fetch_add(1, Ordering::Relaxed);
                        s.free(a, Size(QUANTUM)).unwrap();
                    }
                    Err(_) => {
                        short.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                }
            }
        });
        let _stop = Stop(&stop);
        // The allocating thread may hold the last quantum a moment.
        let wait = Wait::Timeout(Duration::from_secs(20));
        // At least 300 rounds, and on until the allocating thread has both
        // got a range and run short of space: when it runs is up to the
        // scheduler (on a loaded machine it may sit out hundreds of
        // rounds). A deadline far beyond any run ends a broken one.
        let start = Instant::now();
        let mut round = 0;
        while round < 300
            || ((taken.load(Ordering::Relaxed) == 0 || short.load(Ordering::Relaxed) == 0)
                && start.elapsed() < Duration::from_secs(60))
        {
            let all: Vec<Addr> = (0..BATCH)
                .map(|_| s.alloc(Size(QUANTUM), Policy::InstantFit, wait).unwrap())
                .collect();
            // Freed once each, by another thread: most deferred, some plain.
            std::thread::scope(|freer| {
                freer.spawn(|| {
                    for (i, &a) in all.iter().enumerate() {
                        if (i + round) % 4 == 0 {
                            s.free(a, Size(QUANTUM)).unwrap();
                        } else {
                            s.free_deferred(a, Size(QUANTUM)).unwrap();
                            waiting.lock().unwrap().push(a.0);
                        }
                    }
                });
            });
            // Take everything the arena gives now: none of it may wait for
            // its flush, however short of space the arena is.
            let mut got = Vec::new();
            while let Ok(a) = s.alloc(Size(QUANTUM), Policy::InstantFit, Wait::No) {
                got.push(a);
            }
            let mut w = waiting.lock().unwrap();
            assert!(got.iter().all(|a| !w.contains(&a.0)), "round {round}: reissued unflushed");
            for a in got {
                s.free(a, Size(QUANTUM)).unwrap();
            }
            // The flush: everything waiting becomes free at once.
            assert_eq!(s.flushed(), Size(w.len() * QUANTUM), "round {round}");
            w.clear();
            drop(w);
            s.check().unwrap();
            round += 1;
        }
    });
    assert_eq!(reissued.into_inner(), 0, "ranges handed out before their flush");
    assert!(taken.into_inner() > 0, "the allocating thread never got a range");
    assert!(short.into_inner() > 0, "the allocating thread never ran short of space");
    s.check().unwrap();
    let sizes = s.with(|a| a.sizes());
    assert_eq!((sizes.allocated, sizes.unflushed), (Size(0), Size(0)));
    assert_eq!(s.with(|a| a.walk(SegmentKinds::UNFLUSHED).count()), 0);
}

#[test]
fn a_waiter_is_woken_by_the_flush_not_by_the_deferred_free() {
    let s = shared(4 * QUANTUM);
    let all = s.alloc(Size(4 * QUANTUM), Policy::InstantFit, Wait::No).unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let got =
                s.alloc(Size(QUANTUM), Policy::InstantFit, Wait::Timeout(Duration::from_secs(20)));
            (got, Instant::now())
        });
        // The waiter is asleep in `alloc` before anything is freed.
        let asleep = Instant::now();
        while s.waiting() == 0 {
            assert!(asleep.elapsed() < Duration::from_secs(10), "the waiter never waited");
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        s.free_deferred(all, Size(4 * QUANTUM)).unwrap();
        // The space is freed but not flushed: the waiter must keep waiting.
        std::thread::sleep(Duration::from_millis(150));
        assert!(!waiter.is_finished(), "a waiter took space that waits for its flush");
        let flushed_at = Instant::now();
        assert_eq!(s.flushed(), Size(4 * QUANTUM));
        let (got, at) = waiter.join().unwrap();
        let got = got.unwrap();
        assert!(at >= flushed_at, "the waiter returned before the flush");
        assert_eq!(s.waiting(), 0, "the waiter still counted after it returned");
        s.free(got, Size(QUANTUM)).unwrap();
    });
    s.check().unwrap();
}

#[test]
fn an_unflushed_range_stays_unflushed_up_a_chain_of_dropped_arenas() {
    let root = shared(QUANTUM);
    let store = || PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let x = {
        let mut mid = Arena::new("mid", Size(QUANTUM), store(), store(), &root).unwrap();
        let x = {
            let mut leaf = Arena::new("leaf", Size(QUANTUM), store(), store(), &mut mid).unwrap();
            let x = leaf.alloc(Size(QUANTUM), Policy::InstantFit).unwrap();
            leaf.free_deferred(x, Size(QUANTUM)).unwrap();
            x
        };
        // The leaf's span is unflushed in mid, which cannot reissue it.
        assert_eq!(mid.sizes().unflushed, Size(QUANTUM));
        assert_eq!(mid.sizes().allocated, Size(0));
        assert!(mid.alloc(Size(QUANTUM), Policy::InstantFit).is_err());
        mid.check().unwrap();
        x
    };
    // Mid gave it to the root the same way.
    assert_eq!(root.with(|a| a.sizes().unflushed), Size(QUANTUM));
    assert!(root.alloc(Size(QUANTUM), Policy::InstantFit, Wait::No).is_err());
    root.check().unwrap();
    assert_eq!(root.flushed(), Size(QUANTUM));
    assert_eq!(root.alloc(Size(QUANTUM), Policy::InstantFit, Wait::No), Ok(x));
    root.free(x, Size(QUANTUM)).unwrap();
    root.check().unwrap();
}
