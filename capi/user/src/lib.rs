//! # vmspace-capi-user
//!
//! `libvmspace` for user space: vmspace's C API ([`vmspace_capi`]) on the
//! user-space [`Platform`]: arena objects from the global allocator, a
//! parking_lot mutex ([`ParkingLock`]) and a condition variable
//! ([`CondvarWaiter`]) per arena, per-CPU quantum caches pinned with
//! [`SchedPin`], metadata in pages from [`MmapBackend`].
//!
//! Built as a static library, a shared library (soname `libvmspace.so.0`)
//! and an rlib; `make install` puts the first two in place as
//! `libvmspace.a` and `libvmspace.so` with the headers `vmspace.h` and
//! `vmspace/vmem.h` and `vmspace.pc`. A panic cannot unwind out of the C
//! functions (Rust aborts at an `extern "C"` boundary), and none is
//! expected: the API checks its arguments instead.

use std::alloc::{alloc, dealloc, Layout};

use vmspace_capi::Platform;
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, SchedPin};

/// The user-space platform of the C API.
#[derive(Debug)]
pub struct UserPlatform;

// SAFETY: `alloc_object` is the global allocator's `alloc` (null or fresh
// memory of the layout, never zero-sized here) and `free_object` its
// `dealloc` with the same layout.
unsafe impl Platform for UserPlatform {
    type Lock = ParkingLock;
    type Waiter = CondvarWaiter;
    type Pin = SchedPin;
    type Pages = MmapBackend;

    fn lock() -> Option<ParkingLock> {
        Some(ParkingLock::default())
    }

    fn waiter() -> Option<CondvarWaiter> {
        Some(CondvarWaiter::default())
    }

    fn pin() -> Option<SchedPin> {
        Some(SchedPin::new())
    }

    fn pages() -> MmapBackend {
        MmapBackend::new()
    }

    fn random_u32() -> u32 {
        let mut salt = 0u32;
        // SAFETY: `getrandom` writes at most 4 bytes into `salt`, a live u32.
        let n = unsafe { libc::getrandom((&raw mut salt).cast(), 4, libc::GRND_NONBLOCK) };
        if n != 4 {
            // No entropy yet (early boot): the clock's nanoseconds still
            // tell apart arenas made one after another at one address.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            salt = (t ^ (t >> 32)) as u32;
        }
        salt
    }

    fn alloc_object(layout: Layout) -> *mut u8 {
        // SAFETY: arena objects are never zero-sized (the trait's promise).
        unsafe { alloc(layout) }
    }

    unsafe fn free_object(ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc_object` with `layout` (caller).
        unsafe { dealloc(ptr, layout) }
    }
}

vmspace_capi::export_native!(UserPlatform);
vmspace_capi::export_vmem!(UserPlatform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arena_object_fits_vmem_storage() {
        let l = vmspace_capi::object_layout::<UserPlatform>();
        assert!(l.size() <= vmspace_capi::ctypes::VMEM_STORAGE_BYTES, "{l:?}");
        assert!(l.align() <= 16, "{l:?}");
    }
}
