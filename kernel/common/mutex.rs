// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelMutex`]: the kernel build's [`RawLock`] for `vmspace::sync`.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::error::{code::ENOMEM, Error};
use vmspace::sync::RawLock;

use crate::sys;

/// A kernel `struct mutex`, allocated apart so the value can move.
///
/// A sleeping lock, because arena operations under it may allocate pages
/// (`GFP_KERNEL`); not for atomic context.
pub struct KernelMutex {
    raw: NonNull<c_void>,
}

impl KernelMutex {
    /// A new, unlocked mutex.
    pub fn new() -> Result<Self, Error> {
        // SAFETY: allocation and initialisation; no preconditions.
        let raw = unsafe { sys::vmspace_mutex_new() };
        NonNull::new(raw).map(|raw| KernelMutex { raw }).ok_or(ENOMEM)
    }
}

impl Drop for KernelMutex {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `vmspace_mutex_new` and is freed once; no
        // one holds the lock (holders borrow `self`).
        unsafe { sys::vmspace_mutex_free(self.raw.as_ptr()) };
    }
}

// SAFETY: a kernel mutex may be locked and unlocked from any task.
unsafe impl Send for KernelMutex {}
// SAFETY: as above; all access goes through the mutex functions.
unsafe impl Sync for KernelMutex {}

// SAFETY: `mutex_lock`/`mutex_trylock` give exclusion with acquire
// semantics and `mutex_unlock` releases it; the caller of `unlock` holds the
// lock, as the kernel requires (same task).
unsafe impl RawLock for KernelMutex {
    fn lock(&self) {
        // SAFETY: `raw` is a live, initialised mutex.
        unsafe { sys::vmspace_mutex_lock(self.raw.as_ptr()) }
    }

    fn try_lock(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::vmspace_mutex_trylock(self.raw.as_ptr()) != 0 }
    }

    unsafe fn unlock(&self) {
        // SAFETY: live mutex; the caller holds it.
        unsafe { sys::vmspace_mutex_unlock(self.raw.as_ptr()) }
    }
}
