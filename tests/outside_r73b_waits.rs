//! Outside review r73b: `Wait::Interruptible` against a scripted clock:
//! the deadline is looked at before the interruption after every try, a
//! saturating deadline, a waiter that cannot sleep, failures other than
//! NoSpace, and space that is there (in the caches' depots) taken first.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore, Policy};
use vmspace::sync::{SyncArena, Wait, Waiter};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, ParkingLock};

type Store = PageStore<MmapBackend>;
fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}

/// A scripted waiter: its clock moves only when it sleeps, by `step`;
/// after `interrupt_after` sleeps it says the thread must stop.
#[derive(Default)]
struct Scripted {
    nanos: AtomicU64,
    step: AtomicU64,
    interrupt_after: AtomicUsize,
    sleeps: AtomicUsize,
    plain_sleeps: AtomicUsize,
    stop: AtomicBool,
    epoch: AtomicU64,
}

impl Waiter for Scripted {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
    fn wait(&self, _seen: u64, _t: Option<Duration>) -> bool {
        self.plain_sleeps.fetch_add(1, Ordering::SeqCst);
        self.nanos.fetch_add(self.step.load(Ordering::SeqCst), Ordering::SeqCst);
        false
    }
    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn wait_interruptible(&self, _seen: u64, _t: Option<Duration>) -> bool {
        let n = self.sleeps.fetch_add(1, Ordering::SeqCst) + 1;
        self.nanos.fetch_add(self.step.load(Ordering::SeqCst), Ordering::SeqCst);
        if n >= self.interrupt_after.load(Ordering::SeqCst) {
            self.stop.store(true, Ordering::SeqCst);
        }
        false
    }
    fn notify_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

type Shared<W> = SyncArena<ParkingLock, W, Store, NoSource>;

fn full<W: Waiter>(w: W) -> (Shared<W>, Addr) {
    let mut a = Arena::new("r73b", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(0x400)).unwrap();
    let s = SyncArena::with_lock(a, ParkingLock::default(), w);
    let all = s.alloc(Size(0x400), Policy::BestFit, Wait::No).unwrap();
    (s, all)
}

/// One sleep takes the clock past the deadline and raises the
/// interruption at once: the next try fails, and the deadline, looked at
/// first, makes it a timed failure (NoSpace), not `Interrupted`.
#[test]
fn a_deadline_passed_in_the_same_sleep_as_the_interruption_fails_as_timed() {
    let w = Scripted::default();
    w.step.store(10_000_000_000, Ordering::SeqCst);
    w.interrupt_after.store(1, Ordering::SeqCst);
    let (s, all) = full(w);
    let r =
        s.alloc(Size(16), Policy::InstantFit, Wait::Interruptible(Some(Duration::from_secs(5))));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    assert_eq!(s.waiter().sleeps.load(Ordering::SeqCst), 1);
    assert_eq!(s.waiter().plain_sleeps.load(Ordering::SeqCst), 0);
    assert_eq!(s.waiting(), 0);
    s.free(all, Size(0x400)).unwrap();
    s.with(|a| a.check()).unwrap();
}

/// With time left, the interruption ends the wait with `Interrupted`,
/// even with the largest timeout on a clock near its end (the deadline
/// saturates), and nothing is allocated.
#[test]
fn the_largest_timeout_on_a_late_clock_is_interrupted() {
    for t in [Some(Duration::MAX), Some(Duration::from_nanos(u64::MAX)), None] {
        let w = Scripted::default();
        w.nanos.store(u64::MAX - 5, Ordering::SeqCst);
        w.step.store(1, Ordering::SeqCst);
        w.interrupt_after.store(3, Ordering::SeqCst);
        let (s, all) = full(w);
        let r = s.xalloc(&Constraints::new(Size(16)), Wait::Interruptible(t));
        assert_eq!(r, Err(ArenaError::Interrupted), "{t:?}");
        assert_eq!(s.waiter().sleeps.load(Ordering::SeqCst), 3, "{t:?}");
        assert_eq!(s.waiting(), 0);
        let (allocs, allocated) = s.with(|a| (a.counters().allocs, a.sizes().allocated));
        assert_eq!((allocs, allocated), (1, Size(0x400)), "{t:?}");
        s.free(all, Size(0x400)).unwrap();
    }
}

/// Interrupted before anything: the first try still runs (space there is
/// taken); without space, no sleep at all.
#[test]
fn interrupted_from_the_start_takes_space_that_is_there_and_never_sleeps() {
    let w = Scripted::default();
    w.stop.store(true, Ordering::SeqCst);
    let (s, all) = full(w);
    for t in [None, Some(Duration::from_secs(1))] {
        let r = s.alloc(Size(16), Policy::NextFit, Wait::Interruptible(t));
        assert_eq!(r, Err(ArenaError::Interrupted));
    }
    assert_eq!(s.waiter().sleeps.load(Ordering::SeqCst), 0);
    s.free(all, Size(0x400)).unwrap();
    for p in Policy::ALL {
        let x = s.alloc(Size(0x400), p, Wait::Interruptible(None)).unwrap();
        s.free(x, Size(0x400)).unwrap();
    }
    assert_eq!(s.waiter().sleeps.load(Ordering::SeqCst), 0);
}

/// A failure other than NoSpace ends the wait at once, interrupted or not.
#[test]
fn other_failures_are_returned_as_they_are() {
    let w = Scripted::default();
    w.stop.store(true, Ordering::SeqCst);
    let (s, all) = full(w);
    let r = s.alloc(Size(0), Policy::BestFit, Wait::Interruptible(None));
    assert!(matches!(r, Err(ArenaError::InvalidArgument(_))), "{r:?}");
    let r = s.alloc(Size(usize::MAX), Policy::BestFit, Wait::Interruptible(None));
    assert!(!matches!(r, Ok(_) | Err(ArenaError::Interrupted)), "{r:?}");
    let r = s.xalloc(&Constraints::new(Size(16)).align(Size(3)), Wait::Interruptible(None));
    assert!(!matches!(r, Ok(_) | Err(ArenaError::Interrupted)), "{r:?}");
    assert_eq!(s.waiter().sleeps.load(Ordering::SeqCst), 0);
    s.free(all, Size(0x400)).unwrap();
}

/// A waiter that cannot sleep: an interruptible wait fails like `No`
/// (NoSpace), interrupted or not, and never calls the sleeps.
#[derive(Default)]
struct Sleepless(Scripted);

impl Waiter for Sleepless {
    const CAN_SLEEP: bool = false;
    fn now(&self) -> Duration {
        self.0.now()
    }
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }
    fn wait(&self, seen: u64, t: Option<Duration>) -> bool {
        self.0.wait(seen, t)
    }
    fn interrupted(&self) -> bool {
        true
    }
    fn wait_interruptible(&self, seen: u64, t: Option<Duration>) -> bool {
        self.0.wait_interruptible(seen, t)
    }
    fn notify_all(&self) {
        self.0.notify_all()
    }
}

#[test]
fn a_waiter_that_cannot_sleep_fails_interruptible_waits_as_no() {
    let (s, all) = full(Sleepless::default());
    for w in [Wait::Interruptible(None), Wait::Interruptible(Some(Duration::from_secs(9)))] {
        let r = s.alloc(Size(16), Policy::BestFit, w);
        assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{w:?}: {r:?}");
    }
    assert_eq!(s.waiter().0.sleeps.load(Ordering::SeqCst), 0);
    assert_eq!(s.waiter().0.plain_sleeps.load(Ordering::SeqCst), 0);
    assert_eq!(s.waiting(), 0);
    s.free(all, Size(0x400)).unwrap();
}

/// A deferred free while someone waits interruptibly is not space: the
/// wait goes on (and is then interrupted); the flush is.
#[test]
fn an_interruptible_wait_does_not_take_unflushed_space() {
    let w = Scripted::default();
    w.step.store(1, Ordering::SeqCst);
    w.interrupt_after.store(4, Ordering::SeqCst);
    let (s, all) = full(w);
    s.free_deferred(all, Size(0x400)).unwrap();
    let r = s.alloc(Size(16), Policy::FirstFit, Wait::Interruptible(None));
    assert_eq!(r, Err(ArenaError::Interrupted));
    assert_eq!(s.with(|a| a.sizes().unflushed), Size(0x400));
    assert_eq!(s.flushed(), Size(0x400));
    // Still interrupted, but space is there now: taken.
    let x = s.alloc(Size(16), Policy::FirstFit, Wait::Interruptible(None)).unwrap();
    s.free(x, Size(16)).unwrap();
    s.with(|a| a.check()).unwrap();
}
