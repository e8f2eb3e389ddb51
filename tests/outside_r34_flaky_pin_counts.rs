//! Outside review, round 34: per-CPU caches behind a pin that places some
//! operations and not others (as `RseqPin` does for a thread moving across
//! CPUs numbered past its slots), with threads allocating through
//! `alloc_wait` and `alloc_retrying` (retrying while it fails) and freeing:
//! exact statistics and no object handed out twice (held).
//!
//! Contracts (quoted):
//! - src/qcache/mod.rs:50-54 (`QCacheStats::misses`): "Allocations that
//!   found both magazines empty and were not served from a magazine in the
//!   end (served by the depot, a slab or the arena, or failed, or
//!   unwound), and per-CPU allocations whose caller the pin could not place
//!   on a slot (they go to the arena)."; with `hits`, each allocation of a
//!   cached size counts once.
//! - src/sync/percpu.rs:218-226 (`alloc_retrying`): "It counts once in the
//!   statistics, a hit or a miss, however often it is tried again".
//! - src/qcache/pin.rs:106-109: a magazine operation acts on "one slot
//!   below `mags.slots()` (or none, returning `Unpinned` or `false`)".
//!
//! Each thread's script decides per operation (a counter, not timing)
//! whether the pin places it, and on which slot. Threads are joined
//! before the totals are checked.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;

use vmspace::arena::ArenaError;
use vmspace::sync::CpuCaches;
use vmspace::{Addr, Size};

mod pins;
use pins::{Op, Placed, Setup, Slices};

const Q: usize = 16;
const SPAN: usize = 8192;
const THREADS: usize = 2;
const ROUNDS_PER_THREAD: usize = 3000;

thread_local! {
    /// This thread's operation count (its script's clock).
    static TICK: Cell<usize> = const { Cell::new(0) };
    /// The thread's number, for its script.
    static WHO: Cell<usize> = const { Cell::new(0) };
}

/// The slot this operation acts on, or `None` (unplaced): every fifth
/// operation unplaced, the rest alternating slots in a pattern per thread
/// (the script of a two-slot `pins::Placed`, whatever the operation).
fn placed(_: Op) -> Option<usize> {
    let t = TICK.with(|c| {
        let t = c.get();
        c.set(t + 1);
        t
    });
    let who = WHO.with(Cell::get);
    if (t + who) % 5 == 0 {
        None
    } else {
        Some((t / 7 + who) % 2)
    }
}

#[test]
fn a_flaky_pin_counts_each_allocation_once_and_doubles_nothing() {
    let mut slices = Slices::new(Setup::new("r34", Q, SPAN));
    let (s, mags) = slices.shared();
    let cpu = CpuCaches::new(&s, Placed::<2>::new(placed), mags).unwrap();
    let live: Mutex<HashSet<(usize, usize)>> = Mutex::new(HashSet::new());
    let (made, full): (u64, u64) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|who| {
                let (cpu, live) = (&cpu, &live);
                sc.spawn(move || {
                    WHO.with(|w| w.set(who));
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    let (mut made, mut full) = (0u64, 0u64);
                    for i in 0..ROUNDS_PER_THREAD {
                        let size = Q * (1 + (i * 7 + who) % 4);
                        made += 1;
                        let got = if i % 3 == 0 {
                            let mut r = cpu.alloc_retrying(Size(size)).expect("a cached size");
                            let mut got = r.first();
                            let mut tries = 0;
                            while matches!(got, Err(ArenaError::NoSpace { .. })) && tries < 3 {
                                got = r.again();
                                tries += 1;
                            }
                            got
                        } else {
                            cpu.alloc(Size(size))
                        };
                        match got {
                            Ok(a) => {
                                assert!(
                                    live.lock().unwrap().insert((a.0, size)),
                                    "{a:?} handed out twice"
                                );
                                mine.push((a, size));
                            }
                            Err(ArenaError::NoSpace { .. }) => full += 1,
                            Err(e) => panic!("{e:?}"),
                        }
                        // Free about as much as is allocated, oldest
                        // first, more when the arena is full.
                        let keep = if i % 97 == 0 { 0 } else { 90 };
                        while mine.len() > keep {
                            let (a, sz) = mine.remove(0);
                            assert!(live.lock().unwrap().remove(&(a.0, sz)));
                            cpu.free(a, Size(sz)).unwrap();
                        }
                    }
                    for (a, sz) in mine {
                        assert!(live.lock().unwrap().remove(&(a.0, sz)));
                        cpu.free(a, Size(sz)).unwrap();
                    }
                    (made, full)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |(m, f), (a, b)| (m + a, f + b))
    });
    drop(cpu);
    assert!(full > 0, "the arena never filled: the test checks less than it says");
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    assert_eq!(st.bad_frees, 0, "{st:?}");
    s.reclaim();
    s.check().unwrap();
}
