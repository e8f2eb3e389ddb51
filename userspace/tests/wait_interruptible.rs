//! `Wait::Interruptible`: a wait for space that ends with
//! `ArenaError::Interrupted` once its waiter says the thread must stop
//! (`Waiter::interrupted`; the kernel's waiter reports a fatal signal, and
//! the C API's `VMSPACE_KILLABLE` asks for such a wait). Here a waiter over
//! the user-space `CondvarWaiter` is interrupted by a flag another thread
//! sets, then wakes the sleepers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::sync::{SyncArena, Wait, Waiter};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock};

type Store = PageStore<MmapBackend>;

/// A `CondvarWaiter` whose thread is interrupted while `stop` is set.
#[derive(Default)]
struct Flagged {
    inner: CondvarWaiter,
    stop: AtomicBool,
    /// Interruptible sleeps begun.
    interruptible_sleeps: std::sync::atomic::AtomicUsize,
}

impl Waiter for Flagged {
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
        self.stop.load(Ordering::SeqCst)
    }
    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.interruptible_sleeps.fetch_add(1, Ordering::SeqCst);
        self.inner.wait(seen, timeout)
    }
    fn notify_all(&self) {
        self.inner.notify_all()
    }
}

type Shared = SyncArena<ParkingLock, Flagged, Store, NoSource>;

/// An arena of 64 bytes (quantum 16) with all of it allocated: its
/// address.
fn full() -> (Shared, Addr) {
    let store = || PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let mut a = Arena::new("interruptible", Size(16), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(64)).unwrap();
    let shared = SyncArena::with_lock(a, ParkingLock::default(), Flagged::default());
    let all = shared.alloc(Size(64), Policy::BestFit, Wait::No).unwrap();
    (shared, all)
}

/// Wait until `shared` has a sleeper.
fn until_waiting(shared: &Shared) {
    while shared.waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_interrupted_wait_ends_with_interrupted_and_allocates_nothing() {
    for timeout in [None, Some(Duration::from_secs(600))] {
        let (shared, all) = full();
        std::thread::scope(|s| {
            let waiter =
                s.spawn(|| shared.alloc(Size(16), Policy::BestFit, Wait::Interruptible(timeout)));
            until_waiting(&shared);
            shared.waiter().stop.store(true, Ordering::SeqCst);
            shared.wake_waiters();
            // Not a time limit on the wait's end: a wait the interruption
            // does not end is freed after 10 s so that the test fails
            // rather than hangs.
            for _ in 0..1000 {
                if waiter.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !waiter.is_finished() {
                shared.free(all, Size(64)).unwrap();
            }
            assert_eq!(waiter.join().unwrap(), Err(ArenaError::Interrupted), "{timeout:?}");
        });
        assert!(shared.waiter().interruptible_sleeps.load(Ordering::SeqCst) > 0);
        assert_eq!(shared.waiting(), 0);
        // Nothing was allocated: all 64 bytes come back as one.
        shared.free(all, Size(64)).unwrap();
        assert_eq!(shared.alloc(Size(64), Policy::BestFit, Wait::No), Ok(all));
        shared.with(|a| a.check()).unwrap();
    }
}

#[test]
fn space_that_is_there_is_taken_even_when_interrupted() {
    let (shared, all) = full();
    shared.waiter().stop.store(true, Ordering::SeqCst);
    // Full: ends at once, no sleep.
    let r = shared.alloc(Size(16), Policy::BestFit, Wait::Interruptible(None));
    assert_eq!(r, Err(ArenaError::Interrupted));
    assert_eq!(shared.waiter().interruptible_sleeps.load(Ordering::SeqCst), 0);
    shared.free(all, Size(64)).unwrap();
    // Room: taken, interruption or not.
    let got = shared.alloc(Size(16), Policy::BestFit, Wait::Interruptible(None)).unwrap();
    assert_eq!(got, all);
    shared.free(got, Size(16)).unwrap();
}

#[test]
fn other_waits_are_not_interrupted() {
    let (shared, all) = full();
    shared.waiter().stop.store(true, Ordering::SeqCst);
    std::thread::scope(|s| {
        let forever = s.spawn(|| shared.alloc(Size(64), Policy::BestFit, Wait::Forever));
        until_waiting(&shared);
        // The stop flag and wake-ups do not end a plain wait; a free does.
        shared.wake_waiters();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!forever.is_finished());
        shared.free(all, Size(64)).unwrap();
        assert_eq!(forever.join().unwrap(), Ok(all));
    });
    assert_eq!(shared.waiter().interruptible_sleeps.load(Ordering::SeqCst), 0);
    // A timed one ends by its time, as NoSpace.
    let r = shared.alloc(Size(16), Policy::BestFit, Wait::Timeout(Duration::from_millis(5)));
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    // An interruptible one that is not interrupted, by its time.
    shared.waiter().stop.store(false, Ordering::SeqCst);
    let r = shared.alloc(
        Size(16),
        Policy::BestFit,
        Wait::Interruptible(Some(Duration::from_millis(5))),
    );
    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
    shared.free(all, Size(64)).unwrap();
}

#[test]
fn interrupted_reads_as_a_message() {
    assert_eq!(ArenaError::Interrupted.to_string(), "the wait for space was interrupted");
}
