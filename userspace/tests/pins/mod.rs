//! CPU pins for the per-CPU quantum caches (`CpuCaches`), and the shared
//! arena over mmap-backed page stores they cache for, as the round 32 to
//! 34 tests of waiting cached-size allocations set them up: `OneSlot`
//! (every thread on one slot), `Placed` (a script says, per magazine
//! operation, which slot it acts on or that it is unplaced), `store`,
//! `cached`, `take_all` and `until_waiting`; for the round 37 to 39 tests
//! of unplaced waiters, `placed` (caches behind a `Placed<2>` that
//! `set_slot` steers, thread by thread) and `wake_unplaced_waiter`.
//!
//! (The pins come from `vmspace_workload::pins`, which the root crate's
//! tests share.)
// Each test binary that declares this module uses only some of it (a file
// with a one-slot pin has no use for `Placed`): the rest would be dead code
// there (and a pin it re-exports, an unused import).
#![allow(dead_code, unused_imports)]

use std::time::{Duration, Instant};
pub use vmspace_workload::pins::{
    alloc_n_on, by_thread, free_all_and_empty, reclaim_and_check_empty, set_slot, OneSlot, Op,
    Placed,
};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Source};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::{CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, UserArena};

pub type Store = PageStore<MmapBackend>;

/// A page store of up to 4 MiB.
pub fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(4 << 20)).unwrap()
}

/// A shared arena `name` of quantum `quantum` with one span of `span`
/// bytes at 1 TiB, and quantum caches for 1 to 4 quanta.
pub fn cached(name: &'static str, quantum: usize, span: usize) -> UserArena<Store, NoSource> {
    let mut a = Arena::new(name, Size(quantum), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

/// Every object of `size` there is, taken through `cpu` (its magazines
/// end empty, the arena full), and how many allocations that took (the
/// last one failed).
pub fn take_all<P: CpuPin>(
    cpu: &CpuCaches<'_, ParkingLock, CondvarWaiter, Store, NoSource, P>,
    size: Size,
) -> (Vec<Addr>, u64) {
    let (mut xs, mut made) = (Vec::new(), 0);
    loop {
        made += 1;
        match cpu.alloc(size) {
            Ok(x) => xs.push(x),
            Err(ArenaError::NoSpace { .. }) => return (xs, made),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Wait until an allocation waits on `s` (30 s at most, a bound for
/// liveness only), and assert that one does.
pub fn until_waiting<I: Source>(s: &UserArena<Store, I>) {
    let start = Instant::now();
    while s.waiting() == 0 && start.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    assert_eq!(s.waiting(), 1, "the allocation waits");
}

/// Per-CPU caches behind a `Placed<2>` steered by `set_slot`.
pub type PlacedCpu<'a> = CpuCaches<'a, ParkingLock, CondvarWaiter, Store, NoSource, Placed<2>>;

/// Per-CPU caches over `s` behind a `Placed<2>` whose script is
/// `by_thread`: each thread's operations on the slot it names with
/// `set_slot` (slot 0 until then; `None`: unplaced).
pub fn placed(s: &UserArena<Store, NoSource>) -> PlacedCpu<'_> {
    CpuCaches::new(s, Placed::new(by_thread), store()).unwrap()
}

/// An unplaced waiter: a thread, unplaced, allocating `size` through
/// `cpu` with `alloc_wait` (`wait`). Once it waits on `s`
/// (`until_waiting`), `wake` runs on this thread; then the waiter is
/// joined. Its result, and `wake`'s.
pub fn wake_unplaced_waiter<T>(
    s: &UserArena<Store, NoSource>,
    cpu: &PlacedCpu<'_>,
    size: Size,
    wait: Wait,
    wake: impl FnOnce() -> T,
) -> (Result<Addr, ArenaError>, T) {
    std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            set_slot(None);
            cpu.alloc_wait(size, wait)
        });
        until_waiting(s);
        let woke = wake();
        (t.join().unwrap(), woke)
    })
}
