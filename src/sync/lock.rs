//! What the core needs from a lock, and a spin lock that needs only `core`.

use crate::atomic::{AtomicBool, Ordering};

/// A mutual-exclusion lock without data, supplied by the build: a std or
/// parking_lot mutex in user space, a kernel spinlock or mutex in the kernel,
/// or [`SpinLock`] anywhere.
///
/// # Safety
///
/// Implementors guarantee mutual exclusion: between a return from
/// [`lock`](RawLock::lock) (or a `true` from [`try_lock`](RawLock::try_lock))
/// and the matching [`unlock`](RawLock::unlock), no other call to `lock` or
/// `try_lock` on the same lock returns, and `unlock` publishes every write
/// made while held to the next holder (release/acquire ordering).
pub unsafe trait RawLock: Sync {
    /// Wait until the lock is free and take it.
    fn lock(&self);

    /// Take the lock if it is free.
    fn try_lock(&self) -> bool;

    /// Give the lock back.
    ///
    /// # Safety
    ///
    /// The caller holds the lock (took it with `lock` or a successful
    /// `try_lock`) and has not given it back since.
    unsafe fn unlock(&self);
}

/// A test-and-test-and-set spin lock on one atomic flag.
///
/// For arenas whose store and source never sleep (the simulated backend,
/// slices, user-space tests). It knows nothing of preemption: a holder
/// that sleeps (a kernel backend allocating pages with `GFP_KERNEL`, an
/// import from a sleeping source) keeps its waiters spinning, and in the
/// kernel one that spins on the holder's CPU can livelock it. Over the
/// kernel backends, share an arena behind the kernel build's mutex
/// (`KernelMutex`), as the C API and the KUnit suites do.
#[derive(Debug, Default)]
pub struct SpinLock {
    held: AtomicBool,
}

impl SpinLock {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SpinLock { held: AtomicBool::new(false) }
    }

    /// An unlocked lock (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        SpinLock { held: AtomicBool::new(false) }
    }
}

// SAFETY: `held` flips false -> true by compare-exchange with Acquire (one
// winner at a time) and back with a Release store, giving exclusion and
// ordering.
unsafe impl RawLock for SpinLock {
    fn lock(&self) {
        while !self.try_lock() {
            while self.held.load(Ordering::Relaxed) {
                crate::atomic::spin_loop();
            }
        }
    }

    fn try_lock(&self) -> bool {
        self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        self.held.store(false, Ordering::Release);
    }
}

/// Holds a [`RawLock`] until dropped.
pub(crate) struct Held<'a, L: RawLock> {
    lock: &'a L,
}

impl<'a, L: RawLock> Held<'a, L> {
    pub(crate) fn new(lock: &'a L) -> Self {
        lock.lock();
        Held { lock }
    }
}

impl<L: RawLock> Drop for Held<'_, L> {
    fn drop(&mut self) {
        // SAFETY: `new` took the lock and this guard is its only owner.
        unsafe { self.lock.unlock() }
    }
}
