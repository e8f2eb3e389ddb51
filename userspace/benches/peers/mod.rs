//! What the peer allocators need from us, shared by benches/arena.rs and
//! examples/arena_churn.rs.

use std::ptr::NonNull;

/// Boundary tags for the `vmem` crate from the global allocator (its
/// `nightly` feature would do the same through `allocator_api`).
pub struct Tags;

// SAFETY: hands out fresh, properly sized and aligned blocks from the global
// allocator and frees only what it handed out.
unsafe impl vmem::Allocator for Tags {
    fn allocate(&self) -> Option<NonNull<vmem::Bt>> {
        let layout = std::alloc::Layout::new::<vmem::Bt>();
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { std::alloc::alloc(layout) }.cast())
    }
    unsafe fn deallocate(&self, ptr: NonNull<vmem::Bt>) {
        // SAFETY: `ptr` came from `allocate` with this layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr().cast(), std::alloc::Layout::new::<vmem::Bt>()) }
    }
}
