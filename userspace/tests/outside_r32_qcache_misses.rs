//! Outside review, round 32: what `QCacheStats::misses` counts when a
//! cache allocation waits.
//!
//! Contract: src/qcache/mod.rs:47-48, `misses`: "Allocations that found
//! both magazines empty." and `hits` (line 45-46): "Allocations served
//! from a cache's magazines." Each counts allocations, so one allocation
//! is one hit or one miss, whatever it waited for. (`Counters::failures`,
//! src/arena/stats.rs:35-45, says explicitly that it counts every try of
//! a waiting allocation; `misses` says no such thing.)
//!
//! A zero timeout makes the waiting path deterministic: `Wait::Timeout`
//! "when the time is up the allocation is tried once more before it
//! fails" (src/sync/wait.rs:12-13), and the time is up at once, so no
//! sleep and no scheduling is involved.

use std::time::Duration;

use vmspace::arena::{ArenaError, NoSource, Policy};
use vmspace::qcache::SlotFlag;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::UserArena;

mod pins;
use pins::{cached, store, take_all, until_waiting, OneSlot, Store};

const Q: usize = 16;

/// A shared arena with quantum caches for 1 to 4 quanta over one span of
/// `span` bytes, and an allocation of all of it, so nothing fits.
fn full(span: usize) -> (UserArena<Store, NoSource>, Addr) {
    let s = cached("r32", Q, span);
    let all = s.alloc(Size(span), Policy::InstantFit, Wait::No).unwrap();
    (s, all)
}

/// Control: without waiting, one failed allocation is one miss.
#[test]
fn a_failed_allocation_without_waiting_is_one_miss() {
    let (s, all) = full(4096);
    let mut h = CacheHandle::new(&s);
    let r = h.alloc_wait(Size(Q), Wait::No);
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    drop(h);
    let st = s.qcache_stats();
    assert_eq!((st.hits, st.misses), (0, 1), "{st:?}");
    s.free(all, Size(4096)).unwrap();
}

/// Found (counted tries, not allocations): one `CacheHandle` allocation
/// with a zero timeout was counted as two misses.
#[test]
fn a_timed_out_handle_allocation_is_one_miss() {
    let (s, all) = full(4096);
    let mut h = CacheHandle::new(&s);
    let r = h.alloc_wait(Size(Q), Wait::Timeout(Duration::ZERO));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    drop(h);
    let st = s.qcache_stats();
    s.free(all, Size(4096)).unwrap();
    assert_eq!(st.hits + st.misses, 1, "one allocation through the cache, one hit or miss: {st:?}");
}

/// Found, the same through per-CPU caches.
#[test]
fn a_timed_out_per_cpu_allocation_is_one_miss() {
    let (s, all) = full(4096);
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    let r = cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::ZERO));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    drop(cpu);
    let st = s.qcache_stats();
    s.free(all, Size(4096)).unwrap();
    assert_eq!(st.hits + st.misses, 1, "one allocation through the cache, one hit or miss: {st:?}");
}

/// Found, for an allocation that succeeds: a `CacheHandle` allocation
/// that finds the arena full, waits, and is served once another thread
/// frees, is one allocation, but counted a miss for its first try and
/// another for the try it makes as it starts to wait (before the other
/// thread frees anything: that thread frees only once `waiting()` says
/// the allocation waits), so hits + misses ends above the allocations
/// made, for good.
#[test]
fn a_served_waiting_handle_allocation_is_one_miss() {
    let (s, all) = full(4096);
    let got = std::thread::scope(|sc| {
        let s = &s;
        let waiter = sc.spawn(move || {
            let mut h = CacheHandle::new(s);
            let x = h.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(60)));
            let x = x.expect("served once the other thread frees");
            h.free(x, Size(Q)).unwrap();
            x
        });
        // Liveness bound only: the waiter gets to wait well within it.
        until_waiting(s);
        s.free(all, Size(4096)).unwrap();
        waiter.join().unwrap()
    });
    let st = s.qcache_stats();
    assert!(got.0 >= 1 << 40);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(st.hits + st.misses, 1, "one allocation through the cache, one hit or miss: {st:?}");
}

/// A per-CPU allocation that finds everything full, waits, and is served
/// from its CPU's magazine when another thread frees an object into it is
/// one allocation, counted once (a hit: "served from a magazine in the
/// end"): over the whole test, hits + misses is exactly the allocations
/// made through the caches.
#[test]
fn a_waiting_per_cpu_allocation_served_from_the_magazine_counts_once() {
    let s = cached("r32", Q, 4096);
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    // Take every object there is: the magazines end empty, the arena full.
    let (mut xs, mut made) = take_all(&cpu, Size(Q));
    assert!(xs.len() >= 64, "a slab's objects at least: {}", xs.len());
    let last = xs.pop().unwrap();
    let got = std::thread::scope(|sc| {
        let cpu = &cpu;
        let waiter =
            sc.spawn(move || cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(60))));
        // Liveness bound only: the waiter gets to wait well within it.
        until_waiting(&s);
        // Into slot 0's magazine (the one slot), waking the waiter.
        cpu.free(last, Size(Q)).unwrap();
        waiter.join().unwrap()
    });
    made += 1;
    assert_eq!(got.unwrap(), last, "served the object freed into the magazine");
    for x in xs {
        cpu.free(x, Size(Q)).unwrap();
    }
    cpu.free(last, Size(Q)).unwrap();
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, made, "each allocation one hit or one miss: {st:?}");
    s.reclaim();
    s.check().unwrap();
}
