// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace's C API (`capi/include/vmspace.h`, installed in the tree as
//! `<linux/vmspace.h>`) in the built-in kernel: the kernel [`Platform`] of
//! the `vmspace_capi` crate, and the native API's `extern "C"` symbols for
//! it, which `capi_exports.c` exports to GPL modules.
//!
//! Each arena is a kmalloc'ed object with a kernel mutex (arena operations
//! may allocate pages, so a sleeping lock), a wait queue for `VMSPACE_WAIT`,
//! per-CPU quantum caches pinned by disabling preemption, and its metadata
//! (boundary tags, hash, cache tables) in sparse vmalloc areas mapped page by
//! page as it grows. Callers are in task context (vmspace.h says so), which
//! is what the CPU pin needs.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use kernel::alloc::allocator::Kmalloc;
use kernel::alloc::{flags::GFP_KERNEL, Allocator, NumaNode};
use vmspace_capi::Platform;
use vmspace_kernel::{KernelCpuPin, KernelMutex, KernelWaiter};

use crate::sparse::SparseVmalloc;

/// The built-in kernel's platform for the C API.
pub(crate) struct KernelPlatform;

// SAFETY: `alloc_object` returns kmalloc memory of the layout (or null),
// which nothing else uses until `free_object` gives it back with the same
// layout.
unsafe impl Platform for KernelPlatform {
    type Lock = KernelMutex;
    type Waiter = KernelWaiter;
    type Pin = KernelCpuPin;
    type Pages = SparseVmalloc;

    /// A lockdep class per arena: a child's import takes its parent's lock
    /// under its own, and an import function may take any arena's, in an
    /// order lockdep could not tell from recursion were they one class.
    fn lock() -> Option<KernelMutex> {
        static NAME: &kernel::str::CStr = c"vmspace C API arena";
        KernelMutex::with_own_class(NAME).ok()
    }

    fn waiter() -> Option<KernelWaiter> {
        KernelWaiter::new().ok()
    }

    fn pin() -> Option<KernelCpuPin> {
        // SAFETY: the C API is called from task context only (vmspace.h),
        // and the pin is used only inside its calls.
        Some(unsafe { KernelCpuPin::new() })
    }

    fn pages() -> SparseVmalloc {
        SparseVmalloc::new()
    }

    fn random_u32() -> u32 {
        // SAFETY: get_random_u32 has no preconditions (task context, which
        // every call of the C API is in).
        unsafe { kernel::bindings::get_random_u32() }
    }

    fn alloc_object(layout: Layout) -> *mut u8 {
        match Kmalloc::alloc(layout, GFP_KERNEL, NumaNode::NO_NODE) {
            Ok(p) => p.cast::<u8>().as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }

    unsafe fn free_object(ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc_object`, i.e. `Kmalloc`, with
            // `layout`, and is not used again (caller).
            unsafe { Kmalloc::free(p, layout) };
        }
    }

    /// Every call is from task context (`vmspace.h`): say so, so that
    /// `CONFIG_DEBUG_ATOMIC_SLEEP` reports a caller in atomic context even
    /// when its call would not have slept (a per-CPU cache hit, whose pin
    /// from interrupt context would share the interrupted task's slot).
    #[inline]
    fn enter() {
        kernel::task::might_sleep();
    }

    /// A destroy with allocations left warns once, naming the arena and
    /// what was left, as `kmem_cache_destroy` does for a cache with
    /// objects: the allocations go with the arena, and a leak in a driver
    /// shows.
    fn leaked(name: &str, allocations: usize, bytes: usize, unflushed: usize) {
        #[cfg(vmspace_kunit)]
        LEAK_REPORTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        kernel::pr_warn!(
            "arena \"{name}\" destroyed with {allocations} allocations ({bytes} bytes) live and {unflushed} bytes unflushed\n"
        );
    }
}

/// Destroys that reported a leak, for the KUnit suites.
#[cfg(vmspace_kunit)]
pub(crate) static LEAK_REPORTS: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

vmspace_capi::export_native!(KernelPlatform);
