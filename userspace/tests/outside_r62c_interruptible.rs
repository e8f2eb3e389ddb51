//! Outside review r62c: `Wait::Interruptible` on the paths beside
//! `SyncArena::alloc`: the per-CPU caches' retry (`CpuCaches::alloc_wait`),
//! a `CacheHandle`, `xalloc`, a `wait_for` of an importing arena, and a
//! zero timeout. The waiter is interrupted per thread; its interruptible
//! sleeps return at least every millisecond (as the kernel's returns on a
//! fatal signal), so no wake-up is needed to end the wait.
//!
//! Liveness only: a wait the interruption does not end is freed after
//! 10 s so that the test fails rather than hangs.

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, CpuCaches, SyncArena, Wait, Waiter};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, SchedPin};

type Store = PageStore<MmapBackend>;

#[derive(Default)]
struct PerThread {
    inner: CondvarWaiter,
    killed: Mutex<HashSet<ThreadId>>,
}

impl Waiter for PerThread {
    fn now(&self) -> Duration {
        self.inner.now()
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.inner.wait(seen, timeout)
    }
    fn interrupted(&self) -> bool {
        self.killed.lock().unwrap().contains(&std::thread::current().id())
    }
    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let ms = Duration::from_millis(1);
        self.inner.wait(seen, Some(timeout.map_or(ms, |t| t.min(ms))))
    }
    fn notify_all(&self) {
        self.inner.notify_all()
    }
}

type Shared = SyncArena<ParkingLock, PerThread, Store, NoSource>;

const Q: usize = 16;
const SPAN: usize = 64 * Q;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}

/// A full arena (with quantum caches of 4 classes): it and the address.
fn full() -> (Shared, Addr) {
    let mut a = Arena::new("r62c", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(SPAN)).unwrap();
    let s = SyncArena::with_lock_and_caches(
        a,
        ParkingLock::default(),
        PerThread::default(),
        QCacheConfig::new(4, store()),
    )
    .unwrap();
    let all = s.alloc(Size(SPAN), Policy::BestFit, Wait::No).unwrap();
    (s, all)
}

/// Run `f` on a thread, interrupt it once it runs, and give its result.
fn interrupted<T: Send>(s: &Shared, all: Addr, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|sc| {
        let t = sc.spawn(f);
        while s.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.waiter().killed.lock().unwrap().insert(t.thread().id());
        for _ in 0..1000 {
            if t.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !t.is_finished() {
            s.free(all, Size(SPAN)).unwrap();
        }
        t.join().unwrap()
    })
}

#[test]
fn the_per_cpu_caches_retry_path_is_interrupted() {
    let (s, all) = full();
    let caches = CpuCaches::new(&s, SchedPin::with_slots(2), store()).unwrap();
    for t in [None, Some(Duration::from_secs(600))] {
        let r = interrupted(&s, all, || caches.alloc_wait(Size(Q), Wait::Interruptible(t)));
        assert_eq!(r, Err(ArenaError::Interrupted), "{t:?}");
    }
    drop(caches);
    s.free(all, Size(SPAN)).unwrap();
    s.with(|a| a.check()).unwrap();
    // Nothing was left allocated by the interrupted waits.
    assert_eq!(s.alloc(Size(SPAN), Policy::BestFit, Wait::No), Ok(all));
}

#[test]
fn a_cache_handle_wait_is_interrupted() {
    let (s, all) = full();
    let r = interrupted(&s, all, || {
        let mut h = CacheHandle::new(&s);
        h.alloc_wait(Size(2 * Q), Wait::Interruptible(None))
    });
    assert_eq!(r, Err(ArenaError::Interrupted));
    s.free(all, Size(SPAN)).unwrap();
    s.with(|a| a.check()).unwrap();
    assert_eq!(s.alloc(Size(SPAN), Policy::BestFit, Wait::No), Ok(all));
}

#[test]
fn an_xalloc_wait_is_interrupted() {
    let (s, all) = full();
    let c = Constraints::new(Size(8 * Q)).align(Size(8 * Q));
    let r = interrupted(&s, all, || s.xalloc(&c, Wait::Interruptible(None)));
    assert_eq!(r, Err(ArenaError::Interrupted));
    s.free(all, Size(SPAN)).unwrap();
}

/// `wait_for` with an `again` of the caller's (an importer waiting at its
/// source) ends on the interruption too, and passes `Interrupted` up.
#[test]
fn a_wait_for_is_interrupted() {
    let (s, all) = full();
    let r = interrupted(&s, all, || {
        s.wait_for(Wait::Interruptible(None), Err(ArenaError::NoSpace { size: 1 }), || {
            Err(ArenaError::NoSpace { size: 1 })
        })
    });
    assert_eq!(r, Err(ArenaError::Interrupted));
    s.free(all, Size(SPAN)).unwrap();
}

/// Was a DEFECT (fixed: the deadline is looked at before the
/// interruption). `Interruptible(Some(0))` is `Timeout(0)`'s zero wait: no sleep. The C
/// API's `vmspace_arena_alloc_timed(.., VMSPACE_KILLABLE, 0, ..)` gives
/// `-ETIMEDOUT` (no space) for an interrupted thread; the core gives
/// `Interrupted` for the same request, though nothing waited.
#[test]
fn a_zero_interruptible_timeout_fails_as_a_zero_timeout() {
    let (s, all) = full();
    s.waiter().killed.lock().unwrap().insert(std::thread::current().id());
    let timeout = s.alloc(Size(4 * Q), Policy::BestFit, Wait::Timeout(Duration::ZERO));
    let zero = s.alloc(Size(4 * Q), Policy::BestFit, Wait::Interruptible(Some(Duration::ZERO)));
    assert!(matches!(timeout, Err(ArenaError::NoSpace { .. })), "{timeout:?}");
    assert!(matches!(zero, Err(ArenaError::NoSpace { .. })), "{zero:?}");
    s.free(all, Size(SPAN)).unwrap();
}
