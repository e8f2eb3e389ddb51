//! The user-space lock and waiter for [`SyncArena`]: a parking_lot mutex and
//! a std condition variable over an event counter.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use parking_lot::lock_api::RawMutex as _;
use vmspace::sync::{RawLock, SyncArena, Waiter};

/// A [`RawLock`] on parking_lot's raw mutex (adaptive spinning, then parking).
pub struct ParkingLock(parking_lot::RawMutex);

impl Default for ParkingLock {
    fn default() -> Self {
        ParkingLock(parking_lot::RawMutex::INIT)
    }
}

impl std::fmt::Debug for ParkingLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParkingLock")
    }
}

// SAFETY: parking_lot's RawMutex provides mutual exclusion with acquire and
// release ordering (its `lock_api::RawMutex` contract).
unsafe impl RawLock for ParkingLock {
    fn lock(&self) {
        self.0.lock()
    }
    fn try_lock(&self) -> bool {
        self.0.try_lock()
    }
    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (this method's contract).
        unsafe { self.0.unlock() }
    }
}

/// A [`Waiter`] on a std mutex and condition variable over an epoch.
#[derive(Debug)]
pub struct CondvarWaiter {
    epoch: Mutex<u64>,
    changed: Condvar,
    start: Instant,
}

impl Default for CondvarWaiter {
    fn default() -> Self {
        CondvarWaiter { epoch: Mutex::new(0), changed: Condvar::new(), start: Instant::now() }
    }
}

impl Waiter for CondvarWaiter {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn epoch(&self) -> u64 {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let guard = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = match timeout {
            Some(t) => match self.changed.wait_timeout_while(guard, t, |e| *e == seen) {
                Ok((g, _)) => *g,
                Err(p) => *p.into_inner().0,
            },
            None => {
                *self.changed.wait_while(guard, |e| *e == seen).unwrap_or_else(|p| p.into_inner())
            }
        };
        epoch != seen
    }

    fn notify_all(&self) {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }
}

/// A thread-safe arena for user space.
pub type UserArena<S, I> = SyncArena<ParkingLock, CondvarWaiter, S, I>;
