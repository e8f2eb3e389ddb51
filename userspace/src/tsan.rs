//! What ThreadSanitizer cannot see for itself: the order restartable
//! sequences give the per-CPU magazine operations.
//!
//! [`RseqPin`](crate::RseqPin) runs each operation as an `asm!` block,
//! which ThreadSanitizer does not instrument, and two operations on one
//! CPU's magazines are ordered by that CPU running them one after the other
//! (a context switch between them), not by any atomic it could observe. So
//! an object freed by one thread and allocated by another through the
//! same CPU's magazines looks to it like two unsynchronised accesses of the
//! object. Built with `--cfg vmspace_tsan` (`make tsan`), every sequence
//! on a class's magazines releases on the class's slot-0 address before it
//! runs and acquires there after it: whatever a thread did before it put an
//! object in happens before whatever a thread does after it took the
//! object out (the release precedes the push, the push the pop, the pop
//! the acquire; releasing after the push instead would leave a window in
//! which the taker acquires too early). This is coarse, as if all CPUs'
//! sequences on a class were ordered, since the CPU a sequence ran on is
//! known only inside it. Everything outside the sequences, the slab
//! records, the depot and the callers' own accesses, stays checked.
//! Without the cfg these are empty.

#[cfg(vmspace_tsan)]
extern "C" {
    fn __tsan_acquire(addr: *mut core::ffi::c_void);
    fn __tsan_release(addr: *mut core::ffi::c_void);
}

/// After a sequence on the magazines at `addr`.
#[inline(always)]
pub(crate) fn acquire(addr: *mut u8) {
    #[cfg(vmspace_tsan)]
    // SAFETY: a ThreadSanitizer annotation: it records a synchronisation
    // on `addr` and does not access it.
    unsafe {
        __tsan_acquire(addr.cast())
    };
    let _ = addr;
}

/// Before a sequence on the magazines at `addr`.
#[inline(always)]
pub(crate) fn release(addr: *mut u8) {
    #[cfg(vmspace_tsan)]
    // SAFETY: as in `acquire`.
    unsafe {
        __tsan_release(addr.cast())
    };
    let _ = addr;
}
