//! What each build supplies to the C API: how arena objects are allocated,
//! and the lock, waiter, CPU pin and page operations of each arena.

use core::alloc::Layout;

use vmspace::qcache::CpuPin;
use vmspace::sync::{RawLock, Waiter};
use vmspace_shim::PageOps;

/// A build of the C API: user space (the global allocator, a parking_lot
/// mutex, a condition variable, `sched_getcpu` slots, `mmap`) or the kernel
/// (`kmalloc`, a kernel mutex and wait queue, preemption-disabled CPUs, the
/// vmalloc area). The API's functions are generic over it and
/// [`export_native!`](crate::export_native) and
/// [`export_vmem!`](crate::export_vmem) stamp out the `extern "C"` symbols
/// for one implementation. Nothing here is global: every value it makes
/// belongs to one arena.
///
/// # Safety
///
/// [`alloc_object`](Platform::alloc_object) returns null or a pointer to
/// `layout.size()` writable bytes aligned to `layout.align()`, used by
/// nothing else until passed to [`free_object`](Platform::free_object) with
/// the same layout.
pub unsafe trait Platform: 'static {
    /// The arena lock.
    type Lock: RawLock;
    /// What allocations that wait for space sleep on.
    type Waiter: Waiter;
    /// The pin of the per-CPU quantum caches.
    type Pin: CpuPin;
    /// The page operations behind the arenas' metadata (boundary tags,
    /// hash, quantum-cache tables and magazines) and behind the VMs
    /// (`vmspace_vm_*`: their reservations and the pages mapped in them).
    type Pages: PageOps + Clone;

    /// A new lock, or `None` when there is no memory for one.
    fn lock() -> Option<Self::Lock>;

    /// A new waiter, or `None` when there is no memory for one.
    fn waiter() -> Option<Self::Waiter>;

    /// A CPU pin for one arena's per-CPU caches, or `None`.
    fn pin() -> Option<Self::Pin>;

    /// The page operations for one arena.
    fn pages() -> Self::Pages;

    /// A random number, drawn once for each arena (the salt of its handles'
    /// fingerprint: see `Arena::salt_handles`).
    fn random_u32() -> u32;

    /// Memory for an arena or VM object (`layout` is never zero-sized), or
    /// null.
    fn alloc_object(layout: Layout) -> *mut u8;

    /// Give back an arena object's memory.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`alloc_object`](Platform::alloc_object) with
    /// `layout` and is not used after this call.
    unsafe fn free_object(ptr: *mut u8, layout: Layout);

    /// Called as every function of the API given an arena or a VM starts
    /// (and as their creation and destruction start): where the
    /// platform checks the caller's context. The kernel's says
    /// `might_sleep()`, so a call from atomic context (which the API
    /// forbids: its lock sleeps) is reported under
    /// `CONFIG_DEBUG_ATOMIC_SLEEP` even when it would have hit the per-CPU
    /// caches and not slept. Nothing by default.
    #[inline]
    fn enter() {}

    /// An arena named `name` is being destroyed with `allocations` live
    /// (`bytes` of them; a quantum-cache slab holding a live object counts
    /// as one) and `unflushed` bytes freed deferred and never flushed:
    /// allocations its user never freed. Called once a destroy, after the
    /// caches are flushed and reclaimed, and only when something is left.
    /// The kernel's warns, as `kmem_cache_destroy` does; nothing by default.
    fn leaked(name: &str, allocations: usize, bytes: usize, unflushed: usize) {
        let _ = (name, allocations, bytes, unflushed);
    }
}
