//! Outside review, round 33: a cached-size allocation whose source panics
//! while it waits still counts once in the quantum-cache statistics, and
//! leaves no waiter counted.
//!
//! Contracts (quoted):
//! - src/qcache/mod.rs:45-48, `QCacheStats::hits`: "Each allocation of a
//!   cached size counts once, a hit or a miss, however often it retries
//!   while it waits"; `misses` (mod.rs:51-53): "Allocations that found
//!   both magazines empty and were not served from a magazine in the end
//!   (served by the depot, a slab or the arena, or failed)."
//! - src/arena/source.rs:34-36: "A source may panic; the arena is left
//!   consistent (and a `SyncArena`'s lock released) as the panic unwinds."
//! - src/sync/arena.rs:470 (`qcache_stats`): hits and misses of handles
//!   and per-CPU caches "are added when they miss, flush or drop".
//!
//! The allocation here found both magazines empty (there are none), was
//! not served, and ended (by unwinding, the only way a panicking source
//! lets it end): a miss, once. Before round 32 its miss was counted
//! before the first try; now it is counted when the wait returns, which a
//! panic skips, so the allocation counts nowhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vmspace::arena::{Arena, ArenaError, Source};
use vmspace::qcache::{QCacheConfig, SlotFlag};
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Range, Size};
use vmspace_user::UserArena;

mod pins;
use pins::{store, until_waiting, OneSlot, Store};

const Q: usize = 16;

/// Has no space; panics at every import once its flag is set.
struct Panicky(&'static AtomicBool);

impl Source for Panicky {
    fn quantum(&self) -> Size {
        Size(4096)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        if self.0.load(Ordering::SeqCst) {
            panic!("source import panics (test)");
        }
        Err(ArenaError::NoSpace { size: size.0 })
    }
    fn release(&mut self, _range: Range) -> Result<(), ArenaError> {
        Ok(())
    }
}

/// Run `alloc` (one waiting cached-size allocation) on a thread; once it
/// waits, make the source panic and wake it. The thread must end by the
/// source's panic, with no waiter left counted.
fn panics_in_the_wait(
    s: &UserArena<Store, Panicky>,
    flag: &AtomicBool,
    alloc: impl FnOnce() + Send,
) {
    std::thread::scope(|sc| {
        let t = sc.spawn(alloc);
        until_waiting(s);
        flag.store(true, Ordering::SeqCst);
        s.wake_waiters();
        assert!(t.join().is_err(), "the source's panic ends the allocation");
    });
    assert_eq!(s.waiting(), 0, "no waiter left counted");
}

#[test]
fn a_handle_allocation_whose_source_panics_in_the_wait_counts_once() {
    static PANIC: AtomicBool = AtomicBool::new(false);
    let a = Arena::new("r33", Size(Q), store(), store(), Panicky(&PANIC)).unwrap();
    let s = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
    panics_in_the_wait(&s, &PANIC, || {
        let mut h = CacheHandle::new(&s);
        let _ = h.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(60)));
    });
    PANIC.store(false, Ordering::SeqCst);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 1, "one cached-size allocation, one hit or miss: {st:?}");
    s.check().unwrap();
}

#[test]
fn a_per_cpu_allocation_whose_source_panics_in_the_wait_counts_once() {
    static PANIC: AtomicBool = AtomicBool::new(false);
    let a = Arena::new("r33", Size(Q), store(), store(), Panicky(&PANIC)).unwrap();
    let s = UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap();
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), store()).unwrap();
    panics_in_the_wait(&s, &PANIC, || {
        let _ = cpu.alloc_wait(Size(Q), Wait::Timeout(Duration::from_secs(60)));
    });
    PANIC.store(false, Ordering::SeqCst);
    drop(cpu);
    let st = s.qcache_stats();
    assert_eq!(st.hits + st.misses, 1, "one cached-size allocation, one hit or miss: {st:?}");
    s.check().unwrap();
}
