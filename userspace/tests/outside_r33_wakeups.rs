//! Outside review, round 33: the rewritten retry paths of a waiting
//! cached-size allocation (`CacheHandle::alloc_missed`,
//! `CpuCaches::alloc_missed`) are still woken and served by each way space
//! comes back, and count once.
//!
//! Contracts (quoted):
//! - src/sync/handle.rs:56-60, `CacheHandle::alloc_wait`: "A waiter
//!   retries the depot, the slabs and the arena each time space comes back
//!   (see [`SyncArena::alloc`]); objects in other handles' magazines come
//!   back when those fill up or flush."
//! - src/sync/percpu.rs:180-184, `CpuCaches::alloc_wait`: "A waiter
//!   retries its CPU's magazines, the depot, the slabs and the arena each
//!   time space comes back [...]. Objects in other CPUs' magazines reach it
//!   only when those fill up (to the depot) or are flushed."
//! - src/sync/arena.rs:146-149, `SyncArena::alloc`: "a waiter wakes when
//!   space comes back to the arena, a magazine reaches a depot, or a cache
//!   is flushed"; `flushed` (arena.rs:288-290): "make it all free (and
//!   wake waiters)".
//! - src/qcache/mod.rs:45-48: "Each allocation of a cached size counts
//!   once, a hit or a miss, however often it retries while it waits".
//!
//! Each test waits until `waiting()` says the allocation waits before it
//! gives space back; the wait is bounded (20 s) for liveness only.

use std::time::Duration;

use vmspace::arena::{ArenaError, NoSource, Policy};
use vmspace::qcache::SlotFlag;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, ParkingLock, UserArena};

mod pins;
use pins::{cached, store, until_waiting, OneSlot, Store};

type Shared = UserArena<Store, NoSource>;

const Q: usize = 16;
const SPAN: usize = 4096;
const BOUND: Wait = Wait::Timeout(Duration::from_secs(20));

fn shared() -> Shared {
    cached("r33", Q, SPAN)
}

/// Run `alloc` on a thread; once it waits, `release` (on this thread).
/// Returns what `alloc` got.
fn served_after<T: Send>(
    s: &Shared,
    alloc: impl FnOnce() -> T + Send,
    release: impl FnOnce(),
) -> T {
    std::thread::scope(|sc| {
        let t = sc.spawn(alloc);
        until_waiting(s);
        release();
        t.join().unwrap()
    })
}

/// Every object of class 0, through a handle of this thread's; the
/// handle's magazines end empty, the arena full. (objects, allocations)
fn take_all(
    h: &mut CacheHandle<'_, ParkingLock, CondvarWaiter, Store, NoSource>,
) -> (Vec<Addr>, u64) {
    let (mut xs, mut made) = (Vec::new(), 0);
    loop {
        made += 1;
        match h.alloc(Size(Q)) {
            Ok(x) => xs.push(x),
            Err(ArenaError::NoSpace { .. }) => return (xs, made),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A handle's waiter, served when another handle's frees fill its
/// magazines and one reaches the depot.
#[test]
fn handle_waiter_served_by_a_full_magazine_reaching_the_depot() {
    let s = shared();
    let mut other = CacheHandle::new(&s);
    let (xs, mut made) = take_all(&mut other);
    let got = served_after(
        &s,
        || {
            let mut h = CacheHandle::new(&s);
            let r = h.alloc_wait(Size(Q), BOUND);
            if let Ok(x) = r {
                h.free(x, Size(Q)).unwrap();
            }
            r
        },
        || {
            for &x in &xs {
                other.free(x, Size(Q)).unwrap();
            }
        },
    );
    made += 1;
    got.expect("served from the magazine the depot got");
    drop(other);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    s.reclaim();
    s.check().unwrap();
}

/// A per-CPU waiter, served when a handle's frees send a full magazine
/// to the depot.
#[test]
fn per_cpu_waiter_served_by_a_full_magazine_reaching_the_depot() {
    let s = shared();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    let mut other = CacheHandle::new(&s);
    let (xs, mut made) = take_all(&mut other);
    let got = served_after(
        &s,
        || cpu.alloc_wait(Size(Q), BOUND),
        || {
            for &x in &xs {
                other.free(x, Size(Q)).unwrap();
            }
        },
    );
    made += 1;
    let x = got.expect("served from the magazine the depot got");
    cpu.free(x, Size(Q)).unwrap();
    drop(other);
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    s.reclaim();
    s.check().unwrap();
}

/// The arena's own allocation of everything freed deferred (which wakes
/// no one) and then flushed, while `alloc` waits: `alloc` is served.
fn served_by_a_flush(s: &Shared, alloc: impl FnOnce() -> Result<Addr, ArenaError> + Send) {
    let all = s.alloc(Size(SPAN), Policy::InstantFit, Wait::No).unwrap();
    let got = served_after(s, alloc, || {
        s.free_deferred(all, Size(SPAN)).unwrap();
        assert_eq!(s.flushed(), Size(SPAN));
    });
    got.expect("served after the flush");
}

/// A handle's waiter, served by a flush of deferred frees.
#[test]
fn handle_waiter_served_by_a_flush_of_deferred_frees() {
    let s = shared();
    served_by_a_flush(&s, || {
        let mut h = CacheHandle::new(&s);
        let r = h.alloc_wait(Size(Q), BOUND);
        if let Ok(x) = r {
            h.free(x, Size(Q)).unwrap();
        }
        r
    });
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 1, "one allocation, one hit or miss: {st:?}");
    s.reclaim();
    s.check().unwrap();
}

/// A per-CPU waiter, served by a flush of deferred frees.
#[test]
fn per_cpu_waiter_served_by_a_flush_of_deferred_frees() {
    let s = shared();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    served_by_a_flush(&s, || {
        let r = cpu.alloc_wait(Size(Q), BOUND);
        if let Ok(x) = r {
            cpu.free(x, Size(Q)).unwrap();
        }
        r
    });
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 1, "one allocation, one hit or miss: {st:?}");
    s.reclaim();
    s.check().unwrap();
}
