//! Written from the documented contracts by a reviewer outside the project,
//! to break them: waiting for space in a `UserArena` (ParkingLock +
//! CondvarWaiter) through every door (`alloc`, `xalloc`, a `CacheHandle`,
//! per-CPU caches), and what must wake a waiter (frees through every door,
//! a handle's flush and drop, a magazine reaching the depot, `flushed()`,
//! a handle free, a child arena giving a span back); several waiters and
//! one free; timeouts; constraints no address meets; `waiting()`.
//!
//! Every waiter runs on a detached thread over a leaked arena and reports
//! through a channel, so a waiter that never wakes fails the test (after a
//! generous watchdog) instead of hanging it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy, Source};
use vmspace::qcache::{QCacheConfig, OBJECTS, ROUNDS};
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Range, Size};
use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches};

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;
type Got = Result<Addr, ArenaError>;

const Q: usize = 16;
const BASE: usize = 1 << 40;
/// A wait that must end does so within this long of its cause.
const WATCHDOG: Duration = Duration::from_secs(10);
/// Long enough that a waiter served before it was served by a wake-up.
const PATIENCE: Wait = Wait::Timeout(Duration::from_secs(60));
/// One slab of the smallest class.
const SLAB: usize = OBJECTS * Q;

/// `x` for the rest of the process, for detached waiters that may outlive
/// a test. Kept reachable from a static, so that LeakSanitizer (`make
/// asan`) sees memory meant to live, not memory lost.
fn immortal<T: 'static>(x: T) -> &'static T {
    static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let r: &'static T = Box::leak(Box::new(x));
    KEPT.lock().unwrap().push(r as *const T as usize);
    r
}

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}

/// A shared arena of one span `[BASE, BASE + span)` with 4 quantum-cache
/// classes (16..64 bytes), immortal so detached waiters may outlive a test.
fn shared(span: usize) -> &'static Shared {
    let mut a = Arena::on_pages("waits", Size(Q), MmapBackend::new(), 1 << 12, NoSource).unwrap();
    a.add(Addr(BASE), Size(span)).unwrap();
    immortal(UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap())
}

fn no_space(r: &Got) -> bool {
    matches!(r, Err(ArenaError::NoSpace { .. }))
}

/// Waiters on detached threads, each reporting (id, result, time waited).
struct Waiters {
    tx: mpsc::Sender<(usize, Got, Duration)>,
    rx: Receiver<(usize, Got, Duration)>,
}

impl Waiters {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Waiters { tx, rx }
    }

    fn spawn(&self, id: usize, f: impl FnOnce() -> Got + Send + 'static) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = f();
            let _ = tx.send((id, r, t0.elapsed()));
        });
    }

    /// The next waiter to finish, within `WATCHDOG` (plus `extra`).
    fn next(&self, extra: Duration, what: &str) -> (usize, Got, Duration) {
        match self.rx.recv_timeout(WATCHDOG + extra) {
            Ok(x) => x,
            Err(RecvTimeoutError::Timeout) => panic!("{what}: no waiter finished in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("{what}: a waiter panicked"),
        }
    }

    /// No waiter has finished.
    fn none_finished(&self) -> bool {
        matches!(self.rx.try_recv(), Err(TryRecvError::Empty))
    }
}

/// Until `waiting()` is `n` (with a generous deadline), then a little
/// longer so the waiters are asleep.
fn await_waiting(s: &Shared, n: usize) {
    let t0 = Instant::now();
    while s.waiting() != n {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "waiting() = {} never became {n}",
            s.waiting()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// Three waiters on three doors ask for the whole span; one free serves
/// exactly one of them, the other two go on waiting (they must not fail:
/// their timeouts are far off), and each later free serves one more.
#[test]
fn one_free_serves_one_of_three_waiters_and_the_others_wait_on() {
    let s = shared(4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let w = Waiters::new();
    w.spawn(0, move || s.alloc(Size(4096), Policy::BestFit, Wait::Forever));
    w.spawn(1, move || s.xalloc(&Constraints::new(Size(4096)).align(Size(4096)), PATIENCE));
    w.spawn(2, move || CacheHandle::new(s).alloc_wait(Size(4096), Wait::Forever));
    await_waiting(s, 3);
    let mut served = Vec::new();
    for left in [2, 1, 0] {
        s.free(big, Size(4096)).unwrap();
        let (id, r, _) = w.next(Duration::ZERO, "after a free");
        assert_eq!(r, Ok(big), "waiter {id}");
        served.push(id);
        await_waiting(s, left);
        std::thread::sleep(Duration::from_millis(150));
        assert!(w.none_finished(), "one free of 4096 served two waiters, or one failed");
        assert_eq!(s.waiting(), left);
    }
    served.sort();
    assert_eq!(served, [0, 1, 2]);
    s.free(big, Size(4096)).unwrap();
    s.check().unwrap();
}

/// A timed waiter beside a waiter without a timeout: the timed one fails
/// with `NoSpace`, not before its timeout; the other one stays, counted,
/// until a free serves it.
#[test]
fn a_timed_waiter_fails_at_its_timeout_beside_one_that_waits_on() {
    let s = shared(4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let w = Waiters::new();
    let t = Duration::from_millis(300);
    w.spawn(0, move || s.alloc(Size(64), Policy::InstantFit, Wait::Forever));
    w.spawn(1, move || s.xalloc(&Constraints::new(Size(1024)), Wait::Timeout(t)));
    let (id, r, waited) = w.next(t, "the timed waiter");
    assert_eq!(id, 1);
    assert!(no_space(&r), "{r:?}");
    assert!(waited >= t, "failed after {waited:?}, before its timeout {t:?}");
    await_waiting(s, 1);
    assert!(w.none_finished());
    s.free(big, Size(4096)).unwrap();
    let (id, r, _) = w.next(Duration::ZERO, "after the free");
    assert_eq!(id, 0);
    let a = r.unwrap();
    await_waiting(s, 0);
    s.free(a, Size(64)).unwrap();
    s.check().unwrap();
}

/// Frees of space too small for a waiter wake it, and it must wait on:
/// a timed waiter does not fail before its timeout however often it is
/// woken, and a waiter without one does not fail at all.
#[test]
fn frees_too_small_to_help_end_no_wait_early() {
    let s = shared(8192);
    let small: Vec<Addr> =
        (0..8192 / 64).map(|_| s.alloc(Size(64), Policy::FirstFit, Wait::No).unwrap()).collect();
    let w = Waiters::new();
    let t = Duration::from_millis(700);
    w.spawn(0, move || s.alloc(Size(8192), Policy::InstantFit, Wait::Timeout(t)));
    w.spawn(1, move || CacheHandle::new(s).alloc_wait(Size(4096), Wait::Forever));
    await_waiting(s, 2);
    // Churn: free one piece and take it back, over and over.
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < Duration::from_millis(400) {
        let x = small[i % small.len()];
        s.free(x, Size(64)).unwrap();
        assert_eq!(s.alloc(Size(64), Policy::FirstFit, Wait::No), Ok(x));
        i += 1;
    }
    let (id, r, waited) = w.next(t, "the timed waiter");
    assert_eq!(id, 0);
    assert!(no_space(&r), "{r:?}");
    assert!(waited >= t, "woken {i} times, failed after {waited:?}, before its timeout {t:?}");
    await_waiting(s, 1);
    for &x in &small[..4096 / 64] {
        s.free(x, Size(64)).unwrap();
    }
    let (id, r, _) = w.next(Duration::ZERO, "the waiter without timeout");
    assert_eq!((id, r), (1, Ok(Addr(BASE))));
    await_waiting(s, 0);
}

/// A zero timeout through the per-CPU caches (both pins) and a handle, for
/// a cached and an uncached size: `NoSpace` at once, nobody left waiting.
#[test]
fn zero_timeouts_through_per_cpu_caches_fail_at_once() {
    let s = shared(4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let rseq = UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
    let sched = UserCpuCaches::new(s, SchedPin::with_slots(2), store()).unwrap();
    let mut h = CacheHandle::new(s);
    for size in [Size(16), Size(64), Size(80), Size(4096)] {
        for wait in [Wait::Timeout(Duration::ZERO), Wait::Timeout(Duration::from_nanos(1))] {
            assert!(no_space(&rseq.alloc_wait(size, wait)), "{size:?} {wait:?}");
            assert!(no_space(&sched.alloc_wait(size, wait)), "{size:?} {wait:?}");
            assert!(no_space(&h.alloc_wait(size, wait)), "{size:?} {wait:?}");
            assert_eq!(s.waiting(), 0);
        }
    }
    drop((rseq, sched, h));
    s.free(big, Size(4096)).unwrap();
    s.check().unwrap();
}

/// Constraints that no address meets can never be met, whatever is freed:
/// `OverConstrained` at once even when waiting for ever, on a full arena
/// and on an empty one alike.
#[test]
fn constraints_no_address_meets_fail_at_once_even_waiting_forever() {
    let b = BASE;
    let cases = [
        // a nocross boundary in the middle of a window just larger than the size
        Constraints::new(Size(0x20))
            .nocross(Size(0x100))
            .min_addr(Addr(b + 0xf0))
            .max_addr(Addr(b + 0x110)),
        // no multiple of the alignment in the window
        Constraints::new(Size(0x10))
            .align(Size(0x1000))
            .min_addr(Addr(b + 0x10))
            .max_addr(Addr(b + 0x800)),
        // the same from the top
        Constraints::new(Size(0x10))
            .align(Size(0x1000))
            .min_addr(Addr(b + 0x10))
            .max_addr(Addr(b + 0x800))
            .from_top(true),
        // an exact address below the window
        Constraints::new(Size(0x10)).exact(Addr(b)).min_addr(Addr(b + 0x10)),
        // an exact address ending past the window
        Constraints::new(Size(0x20)).exact(Addr(b)).max_addr(Addr(b + 0x10)),
        // an exact address off its alignment and phase
        Constraints::new(Size(0x10)).exact(Addr(b + 0x10)).align(Size(0x40)).phase(Size(0x20)),
        // size and phase past the nocross block
        Constraints::new(Size(0x40)).align(Size(0x40)).phase(Size(0x10)).nocross(Size(0x40)),
        // an empty window
        Constraints::new(Size(0x10)).min_addr(Addr(b + 0x100)).max_addr(Addr(b + 0x100)),
        // a window with no quantum-aligned room
        Constraints::new(Size(0x10)).min_addr(Addr(b + 1)).max_addr(Addr(b + 0x1f)),
    ];
    let s = shared(1 << 16);
    for full in [false, true] {
        let big = full.then(|| s.alloc(Size(1 << 16), Policy::InstantFit, Wait::No).unwrap());
        let w = Waiters::new();
        for (i, c) in cases.iter().enumerate() {
            let c = *c;
            w.spawn(i, move || s.xalloc(&c, Wait::Forever));
        }
        for _ in 0..cases.len() {
            let (i, r, _) = w.next(Duration::ZERO, "constraints no address meets");
            assert!(
                matches!(r, Err(ArenaError::OverConstrained(_))),
                "case {i} (full: {full}): {r:?}, not OverConstrained"
            );
        }
        assert_eq!(s.waiting(), 0);
        if let Some(big) = big {
            s.free(big, Size(1 << 16)).unwrap();
        }
    }
    s.check().unwrap();
}

/// A cached object freed through the arena itself (no cache in front)
/// goes back to its slab and wakes a handle's waiter, which takes it.
#[test]
fn a_cached_object_freed_through_the_arena_wakes_a_handle_waiter() {
    let s = shared(SLAB);
    let mut h = CacheHandle::new(s);
    let objs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
    assert!(no_space(&h.alloc(Size(Q))));
    let w = Waiters::new();
    w.spawn(0, move || CacheHandle::new(s).alloc_wait(Size(Q), PATIENCE));
    await_waiting(s, 1);
    s.free(objs[7], Size(Q)).unwrap();
    let (_, r, waited) = w.next(Duration::ZERO, "after the arena free");
    assert_eq!(r, Ok(objs[7]), "waited {waited:?}");
    await_waiting(s, 0);
}

/// A handle's drop gives its objects back: the whole slab becomes free and
/// an `xalloc` waiting for exactly the slab's range is served.
#[test]
fn a_handle_drop_wakes_an_xalloc_waiter_for_the_slab_range() {
    let s = shared(SLAB);
    let mut h = CacheHandle::new(s);
    let objs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
    let w = Waiters::new();
    let c = Constraints::new(Size(SLAB)).exact(Addr(BASE));
    w.spawn(0, move || s.xalloc(&c, PATIENCE));
    await_waiting(s, 1);
    for x in objs {
        h.free(x, Size(Q)).unwrap();
    }
    drop(h);
    let (_, r, waited) = w.next(Duration::ZERO, "after the handle's drop");
    assert_eq!(r, Ok(Addr(BASE)), "waited {waited:?}");
    await_waiting(s, 0);
    s.free(Addr(BASE), Size(SLAB)).unwrap();
    s.check().unwrap();
}

/// A live handle's `flush()` wakes a per-CPU waiter (restartable
/// sequences), which gets an object through the depot or the slabs.
#[test]
fn a_live_handles_flush_wakes_a_per_cpu_waiter() {
    let s = shared(SLAB);
    let caches: &'static _ = immortal(UserCpuCaches::new(s, RseqPin::new(), store()).unwrap());
    let mut h = CacheHandle::new(s);
    let objs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
    let w = Waiters::new();
    w.spawn(0, move || caches.alloc_wait(Size(Q), PATIENCE));
    await_waiting(s, 1);
    for &x in &objs[..5] {
        h.free(x, Size(Q)).unwrap(); // into the handle's magazine
    }
    h.flush();
    let (_, r, waited) = w.next(Duration::ZERO, "after the flush");
    let got = r.unwrap_or_else(|e| panic!("{e:?} after {waited:?}"));
    assert!(objs[..5].contains(&got));
    await_waiting(s, 0);
    caches.free(got, Size(Q)).unwrap();
    drop(h);
}

/// Frees into a one-slot per-CPU cache fill both magazines; the next free
/// spills a full one to the depot, which wakes a handle's waiter.
#[test]
fn a_per_cpu_spill_to_the_depot_wakes_a_handle_waiter() {
    let s = shared(SLAB);
    let caches = UserCpuCaches::new(s, SchedPin::with_slots(1), store()).unwrap();
    let mut h = CacheHandle::new(s);
    let objs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(Q)).unwrap()).collect();
    drop(h); // empty magazines: nothing to give back
    let w = Waiters::new();
    w.spawn(0, move || CacheHandle::new(s).alloc_wait(Size(Q), PATIENCE));
    await_waiting(s, 1);
    for &x in &objs[..2 * ROUNDS + 1] {
        caches.free(x, Size(Q)).unwrap();
    }
    let (_, r, waited) = w.next(Duration::ZERO, "after the spill");
    let got = r.unwrap_or_else(|e| panic!("{e:?} after {waited:?}"));
    assert!(objs[..2 * ROUNDS + 1].contains(&got));
    await_waiting(s, 0);
}

/// Handle frees: `free_handle_parts` wakes a waiter; the deferred one does
/// not hand the range out, and `flushed()` then wakes the waiter.
#[test]
fn handle_frees_and_deferred_handle_frees_then_flushed_wake_waiters() {
    let s = shared(4096);
    let h = s.with(|a| a.alloc_handle(Size(4096), Policy::InstantFit)).unwrap();
    let w = Waiters::new();
    w.spawn(0, move || s.alloc(Size(4096), Policy::FirstFit, PATIENCE));
    await_waiting(s, 1);
    assert_eq!(s.free_handle_parts(h.addr(), h.tag()), Ok(Size(4096)));
    let (_, r, _) = w.next(Duration::ZERO, "after free_handle_parts");
    assert_eq!(r, Ok(Addr(BASE)));
    s.free(Addr(BASE), Size(4096)).unwrap();

    let h = s.with(|a| a.alloc_handle(Size(4096), Policy::InstantFit)).unwrap();
    w.spawn(1, move || s.xalloc(&Constraints::new(Size(2048)), PATIENCE));
    await_waiting(s, 1);
    assert_eq!(s.free_handle_deferred_parts(h.addr(), h.tag()), Ok(Size(4096)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(w.none_finished(), "an unflushed range was handed out");
    assert_eq!(s.flushed(), Size(4096));
    let (_, r, _) = w.next(Duration::ZERO, "after flushed");
    let a = r.unwrap();
    await_waiting(s, 0);
    s.free(a, Size(2048)).unwrap();
    s.check().unwrap();
}

/// A child arena importing from the shared arena gives its span back as
/// soon as it is wholly free; that is a free in the shared arena, and
/// wakes its waiter.
#[test]
fn a_child_giving_its_span_back_wakes_a_waiter_in_the_parent() {
    let s = shared(4096);
    let mut child = Arena::on_pages("child", Size(Q), MmapBackend::new(), 1 << 10, s).unwrap();
    let a = child.alloc(Size(100), Policy::InstantFit).unwrap();
    assert!(no_space(&s.alloc(Size(4096), Policy::InstantFit, Wait::No)));
    let w = Waiters::new();
    w.spawn(0, move || s.alloc(Size(4096), Policy::InstantFit, PATIENCE));
    await_waiting(s, 1);
    child.free(a, Size(100)).unwrap();
    let (_, r, waited) = w.next(Duration::ZERO, "after the child's free");
    assert_eq!(r, Ok(Addr(BASE)), "waited {waited:?}");
    await_waiting(s, 0);
}

/// A source that fails its first import and panics on the next.
struct PanickingSource(usize);

impl Source for PanickingSource {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        self.0 += 1;
        if self.0 >= 2 {
            panic!("the source panics (on purpose)");
        }
        Err(ArenaError::NoSpace { size: size.0 })
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        Err(ArenaError::BadImport(range))
    }
}

/// `waiting()` counts the threads waiting *now*: once a waiting allocation
/// has ended (here by a panic out of the arena's source, which unwinds
/// through it), it must not be counted any more.
#[test]
fn waiting_is_zero_after_a_waiting_allocation_unwinds() {
    let a = Arena::on_pages("panics", Size(Q), MmapBackend::new(), 1 << 10, PanickingSource(0))
        .unwrap();
    let s: UserArena<Store, PanickingSource> = UserArena::new(a);
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.alloc(Size(64), Policy::InstantFit, Wait::Timeout(Duration::from_secs(5)))
    }));
    assert!(r.is_err(), "the source's panic should reach the caller");
    // The arena is usable after the panic (its lock was given back).
    s.with(|a| a.add(Addr(BASE), Size(4096))).unwrap();
    assert_eq!(s.alloc(Size(64), Policy::InstantFit, Wait::No), Ok(Addr(BASE)));
    assert_eq!(s.waiting(), 0, "a thread no longer waiting is still counted");
}

/// A timed wait through the per-CPU caches (restartable sequences) that
/// nothing serves fails with `NoSpace`, not before its timeout, for a
/// cached and an uncached size.
#[test]
fn a_per_cpu_timed_wait_fails_not_before_its_timeout() {
    let s = shared(4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let caches = UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
    let t = Duration::from_millis(150);
    for size in [Size(48), Size(512)] {
        let t0 = Instant::now();
        let r = caches.alloc_wait(size, Wait::Timeout(t));
        let waited = t0.elapsed();
        assert!(no_space(&r), "{size:?}: {r:?}");
        assert!(waited >= t, "{size:?}: failed after {waited:?}, before {t:?}");
        assert_eq!(s.waiting(), 0);
    }
    drop(caches);
    s.free(big, Size(4096)).unwrap();
}

/// `SyncArena::with`: space given back through it wakes no waiter by
/// itself; `wake_waiters` after it does. (This reviewer found the docs
/// silent on it: a waiter slept on past an `add`.)
#[test]
fn a_span_added_through_with_wakes_a_waiter_once_told() {
    let s = shared(4096);
    let _big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let w = Waiters::new();
    w.spawn(0, move || s.alloc(Size(4096), Policy::InstantFit, Wait::Forever));
    await_waiting(s, 1);
    s.with(|a| a.add(Addr(BASE + (1 << 20)), Size(4096))).unwrap();
    s.wake_waiters();
    let (_, r, _) = w.next(Duration::ZERO, "after add");
    assert_eq!(r, Ok(Addr(BASE + (1 << 20))));
}

/// `Source for &SyncArena`: a shared child waits on its own waiter, so a
/// free in its parent does not wake it; the child's `wake_waiters` does.
#[test]
fn room_in_a_shared_source_wakes_a_waiting_child_once_told() {
    let s = shared(4096);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    let a = Arena::on_pages("child", Size(Q), MmapBackend::new(), 1 << 10, s).unwrap();
    let c: &'static UserArena<Store, &'static Shared> = immortal(UserArena::new(a));
    let w = Waiters::new();
    w.spawn(0, move || c.alloc(Size(64), Policy::InstantFit, Wait::Forever));
    let t0 = Instant::now();
    while c.waiting() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    s.free(big, Size(4096)).unwrap();
    c.wake_waiters();
    let (_, r, _) = w.next(Duration::ZERO, "after the parent's free");
    assert!(r.is_ok(), "{r:?}");
}
