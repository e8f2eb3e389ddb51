//! Outside review, round 34: per-CPU allocations that wait (a real
//! sleeping waiter, `Wait::Timeout`), through a pin that places some
//! magazine operations and not others, with threads freeing meanwhile:
//! each allocation counts once, nothing is handed out twice, and every
//! object comes back (held).
//!
//! Contracts (quoted):
//! - src/qcache/mod.rs:45-54 (`QCacheStats`): "Each allocation of a cached
//!   size counts once, a hit or a miss, however often it retries while it
//!   waits"; misses include "per-CPU allocations whose caller the pin
//!   could not place on a slot (they go to the arena)".
//! - src/sync/percpu.rs:188-191 (`CpuCaches::alloc_wait`): "A waiter
//!   retries its CPU's magazines, the depot, the slabs and the arena each
//!   time space comes back".
//! - src/qcache/pin.rs:106-109: a magazine operation acts on "one slot
//!   below `mags.slots()` (or none, returning `Unpinned` or `false`)".
//!
//! Which operations are placed is each thread's script (a counter), not
//! timing; the waits' outcomes depend on the schedule, the totals checked
//! do not. Threads are joined before the totals are read.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use vmspace::arena::ArenaError;
use vmspace::sync::{CpuCaches, Wait};
use vmspace::{Addr, Size};

mod pins;
use pins::{cached, store, Op, Placed};

const Q: usize = 16;
const SPAN: usize = 8192;
const THREADS: usize = 2;
const ROUNDS_PER_THREAD: usize = 1500;

thread_local! {
    static TICK: Cell<usize> = const { Cell::new(0) };
    static WHO: Cell<usize> = const { Cell::new(0) };
}

/// The slot this operation acts on, or `None` (unplaced): the script of a
/// two-slot `pins::Placed`, whatever the operation.
fn placed(_: Op) -> Option<usize> {
    let t = TICK.with(|c| {
        let t = c.get();
        c.set(t + 1);
        t
    });
    let who = WHO.with(Cell::get);
    if (t + who) % 4 == 0 {
        None
    } else {
        Some((t / 5 + who) % 2)
    }
}

#[test]
fn waiting_allocations_through_a_flaky_pin_count_once() {
    let s = cached("r34", Q, SPAN);
    let cpu = CpuCaches::new(&s, Placed::<2>::new(placed), store()).unwrap();
    let live: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    let started = std::time::Instant::now();
    let (made, full): (u64, u64) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|who| {
                let (cpu, live) = (&cpu, &live);
                sc.spawn(move || {
                    WHO.with(|w| w.set(who));
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    let (mut made, mut full) = (0u64, 0u64);
                    for i in 0..ROUNDS_PER_THREAD {
                        let size = Q * (1 + (i * 5 + who) % 4);
                        made += 1;
                        let wait = Wait::Timeout(Duration::from_micros(200));
                        match cpu.alloc_wait(Size(size), wait) {
                            Ok(a) => {
                                assert!(live.lock().unwrap().insert(a.0), "{a:?} twice");
                                mine.push((a, size));
                            }
                            Err(ArenaError::NoSpace { .. }) => full += 1,
                            Err(e) => panic!("{e:?}"),
                        }
                        let keep = if i % 89 == 0 { 0 } else { 90 };
                        while mine.len() > keep {
                            let (a, sz) = mine.remove(0);
                            assert!(live.lock().unwrap().remove(&a.0));
                            cpu.free(a, Size(sz)).unwrap();
                        }
                    }
                    for (a, sz) in mine {
                        assert!(live.lock().unwrap().remove(&a.0));
                        cpu.free(a, Size(sz)).unwrap();
                    }
                    (made, full)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |(m, f), (a, b)| (m + a, f + b))
    });
    assert!(started.elapsed() < Duration::from_secs(60), "liveness");
    drop(cpu);
    assert!(full > 0, "the arena never filled: the test checks less than it says");
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    assert_eq!(st.bad_frees, 0, "{st:?}");
    s.reclaim();
    s.check().unwrap();
}
