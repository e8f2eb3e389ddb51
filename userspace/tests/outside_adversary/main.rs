//! Written from the documentation alone by a reviewer outside the project,
//! to break it: what threads can do to each other through a shared arena
//! (`UserArena`), its per-thread (`CacheHandle`) and per-CPU
//! (`UserCpuCaches`) quantum caches, waits and deferred frees. Racing frees
//! of one object with the right and a wrong size of its class, foreign
//! objects and handles, stale frees with sizes no one allocates while slabs
//! come and go, threads bouncing between CPUs in a tight arena with timed
//! waits, racing handle and deferred frees, unflushed ranges seen from
//! other threads, statistics read while others work, and timed-out waiters.
//! Every test ends with `check()` and the arena back to empty.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use vmspace::arena::{ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::qcache::{QCacheConfig, QCacheStats};
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{
    allowed_cpus, run_only_on, MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches,
};
use vmspace_workload::Rng;

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;
type Handle<'a> =
    CacheHandle<'a, vmspace_user::ParkingLock, vmspace_user::CondvarWaiter, Store, NoSource>;

const Q: usize = 16;
const BASE: usize = 1 << 40;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(8 << 20)).unwrap()
}

/// A shared arena of one span `[base, base + span)`, quantum 16, with
/// `classes` quantum-cache classes.
fn shared(base: usize, span: usize, classes: usize) -> Shared {
    let mut a = vmspace::arena::Arena::on_pages(
        "adversary",
        Size(Q),
        MmapBackend::new(),
        1 << 14,
        NoSource,
    )
    .unwrap();
    a.add(Addr(base), Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store())).unwrap()
}

fn bad_free(r: &Result<(), ArenaError>) -> bool {
    matches!(r, Err(ArenaError::BadFree { .. }))
}

fn bad_handle<T>(r: &Result<T, ArenaError>) -> bool {
    matches!(r, Err(ArenaError::BadHandle { .. }))
}

fn no_space<T>(r: &Result<T, ArenaError>) -> bool {
    matches!(r, Err(ArenaError::NoSpace { .. }))
}

/// Refused frees counted by the arena and by its caches together.
fn refusals(s: &Shared) -> u64 {
    s.with(|a| a.counters().bad_frees) + s.qcache_stats().bad_frees
}

/// Everything given back: no slab, nothing in a depot, nothing allocated
/// or unflushed, the whole span free, no waiter counted, invariants hold.
fn assert_empty(s: &Shared, span: usize, what: &str) {
    s.reclaim();
    s.check().unwrap_or_else(|e| panic!("{what}: check: {e:?}"));
    let q = s.qcache_stats();
    assert_eq!(q.slabs, 0, "{what}: slabs left: {q:?}");
    assert_eq!(q.depot_magazines, 0, "{what}: {q:?}");
    assert_eq!(q.slabs_created - q.slabs_freed, 0, "{what}: {q:?}");
    let (z, live) = s.with(|a| (a.sizes(), a.live()));
    assert_eq!(z.allocated, Size(0), "{what}: {z:?}");
    assert_eq!(z.unflushed, Size(0), "{what}: {z:?}");
    assert_eq!(z.free, Size(span), "{what}: {z:?}");
    assert_eq!(z.total, Size(span), "{what}: {z:?}");
    assert_eq!(live, 0, "{what}");
    assert_eq!(s.waiting(), 0, "{what}: a waiter is still counted");
}

/// Which way a free goes.
#[derive(Clone, Copy, Debug)]
enum Door {
    Cpu,
    Handle,
    Arena,
}

const DOORS: [Door; 3] = [Door::Cpu, Door::Handle, Door::Arena];

/// One byte per quantum of the span: 1 while some thread holds it.
struct Owners {
    base: usize,
    bytes: Vec<AtomicU8>,
}

impl Owners {
    fn new(base: usize, span: usize) -> Self {
        Owners { base, bytes: (0..span / Q).map(|_| AtomicU8::new(0)).collect() }
    }
    fn units(&self, a: Addr, size: usize) -> std::ops::Range<usize> {
        assert!(a.0 >= self.base && a.0 + size <= self.base + self.bytes.len() * Q, "{a:?}");
        (a.0 - self.base) / Q..(a.0 - self.base + size).div_ceil(Q)
    }
    fn take(&self, a: Addr, size: usize, what: &str) {
        for u in self.units(a, size) {
            assert_eq!(self.bytes[u].swap(1, Ordering::SeqCst), 0, "{what}: {a:?}+{size} twice");
        }
    }
    fn give(&self, a: Addr, size: usize) {
        for u in self.units(a, size) {
            assert_eq!(self.bytes[u].swap(0, Ordering::SeqCst), 1, "{a:?}+{size} not held");
        }
    }
}

mod deferred;
mod frees;
mod live;
mod percpu;
