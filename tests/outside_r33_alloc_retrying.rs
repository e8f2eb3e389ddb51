//! Outside review, round 33: `CpuCaches::alloc_retrying` with the
//! caller's own wait loop, which here retries many times, never, or
//! panics, deterministically (the loop is the test's code: no sleeping
//! waiter, no second thread).
//!
//! Contract (`CpuCaches::alloc_retrying`, src/sync/percpu.rs): the
//! first try's result and a `Retrying` whose `again` tries the whole
//! allocation again (this CPU's magazines first); "It counts once in the
//! statistics, a hit or a miss, however often it is tried again". With
//! `QCacheStats::hits` (src/qcache/mod.rs): "one that found both magazines
//! empty and was served from a magazine when it tried again counts as a
//! hit". (Written against a first version that took the loop as a
//! closure; `retry_loop::retrying` gives the tests that shape.)
//! Counts are read after the caches are dropped (they flush their hits).

use std::panic::{catch_unwind, AssertUnwindSafe};

use vmspace::arena::ArenaError;
use vmspace::qcache::QCacheStats;
use vmspace::{Addr, Size};

mod pins;
mod retry_loop;
use pins::{with_one_slot, Cpu, Setup, Shared};
use retry_loop::retrying;

const Q: usize = 16;
const SPAN: usize = 4096;

/// Build the arena (one span of `SPAN`) and per-CPU caches, run `f` with
/// them, drop the caches, and return the statistics after.
fn with_caches<R>(f: impl FnOnce(&Shared<'_>, &Cpu<'_, '_>) -> R) -> (R, QCacheStats) {
    with_one_slot(Setup::new("r33", Q, SPAN), f)
}

/// Every object of class 0 there is, through `cpu` (its magazines end
/// empty, the arena full), and how many allocations that took.
fn take_all(cpu: &Cpu<'_, '_>) -> (Vec<Addr>, u64) {
    let (mut xs, mut made) = (Vec::new(), 0);
    loop {
        made += 1;
        match cpu.alloc(Size(Q)) {
            Ok(x) => xs.push(x),
            Err(ArenaError::NoSpace { .. }) => return (xs, made),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Retried many times, then served from the magazine after a free into
/// it: one allocation, one hit; the object the one freed.
#[test]
fn many_retries_then_a_magazine_hit_count_once() {
    let (made, st) = with_caches(|_, cpu| {
        let (mut xs, mut made) = take_all(cpu);
        let last = xs.pop().unwrap();
        let r = retrying(cpu, Size(Q), |first, again| {
            assert!(matches!(first, Err(ArenaError::NoSpace { .. })), "{first:?}");
            for _ in 0..50 {
                let r = again();
                assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
            }
            cpu.free(last, Size(Q)).unwrap();
            again()
        });
        made += 1;
        assert_eq!(r.expect("a cached size").unwrap(), last);
        xs.push(last);
        for x in xs {
            cpu.free(x, Size(Q)).unwrap();
        }
        made
    });
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
}

/// A loop that never retries: the first failure is the result, one miss.
#[test]
fn a_loop_that_never_retries_is_one_miss() {
    let (made, st) = with_caches(|_, cpu| {
        let (xs, made) = take_all(cpu);
        let before = xs.len();
        let r = retrying(cpu, Size(Q), |first, _| first);
        assert!(matches!(r, Some(Err(ArenaError::NoSpace { .. }))), "{r:?}");
        assert_eq!(xs.len(), before);
        for x in xs {
            cpu.free(x, Size(Q)).unwrap();
        }
        made + 1
    });
    // take_all's allocations (the objects and its last failure) and this.
    assert_eq!(st.hits + st.misses, made, "{st:?}");
}

/// Sizes the caches do not serve: `None`, and the loop is not called.
#[test]
fn sizes_not_served_are_none() {
    let ((), st) = with_caches(|_, cpu| {
        for size in [0, 4 * Q + 1, SPAN] {
            let r = retrying(cpu, Size(size), |_, _| panic!("not called for {size}"));
            assert!(r.is_none(), "{size}: {r:?}");
        }
    });
    assert_eq!(st.hits + st.misses, 0, "{st:?}");
}

/// A loop that panics after retrying: nothing is lost (every object comes
/// back, the arena checks), and the caches still work.
#[test]
fn a_loop_that_panics_loses_nothing() {
    with_caches(|s, cpu| {
        let (mut xs, _) = take_all(cpu);
        let r = catch_unwind(AssertUnwindSafe(|| {
            retrying(cpu, Size(Q), |_, again| {
                let _ = again();
                panic!("the caller's loop panics (test)")
            })
        }));
        assert!(r.is_err());
        let last = xs.pop().unwrap();
        cpu.free(last, Size(Q)).unwrap();
        assert_eq!(cpu.alloc(Size(Q)).unwrap(), last, "the caches still serve");
        xs.push(last);
        for x in xs {
            cpu.free(x, Size(Q)).unwrap();
        }
        assert_eq!(s.waiting(), 0);
    });
}

/// Found: a loop that panics after retrying ends the allocation (by
/// unwinding) uncounted: it found both magazines empty and was not
/// served, a miss by `QCacheStats::misses` (src/qcache/mod.rs:51-53:
/// "not served from a magazine in the end (served by the depot, a slab or
/// the arena, or failed)"), but the miss is added only when the loop
/// returns.
#[test]
fn a_loop_that_panics_counts_once() {
    let (made, st) = with_caches(|_, cpu| {
        let (xs, made) = take_all(cpu);
        let r = catch_unwind(AssertUnwindSafe(|| {
            retrying(cpu, Size(Q), |_, again| {
                let _ = again();
                panic!("the caller's loop panics (test)")
            })
        }));
        assert!(r.is_err());
        for x in xs {
            cpu.free(x, Size(Q)).unwrap();
        }
        made + 1
    });
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
}
