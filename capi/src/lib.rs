//! # vmspace-capi
//!
//! vmspace's C API: every `extern "C"` function of `vmspace.h` (the native
//! API) and `vmspace/vmem.h` (FreeBSD's vmem(9) names, signatures and
//! flags), over the thread-safe arena with per-CPU quantum caches
//! ([`SyncArena`](vmspace::sync::SyncArena) and
//! [`CpuCaches`](vmspace::sync::CpuCaches)), and the VM layer
//! (`vmspace_vm_*`: a [`Vm`](vmspace::vm::Vm) behind the platform's lock).
//! The headers are in `capi/include/`.
//!
//! The crate is `no_std` with no allocator and no global state, so the same
//! source builds in user space and in the kernel. What differs between the
//! two is a [`Platform`]: how an arena object's memory is had and given
//! back, and each arena's lock, waiter, CPU pin and page operations. The
//! functions are generic over it ([`Api`]); a build stamps out the C symbols
//! for its platform with [`export_native!`] and [`export_vmem!`]:
//!
//! - user space: `capi/user` (`vmspace-capi-user`), built as `libvmspace`
//!   (static and shared) on the global allocator, parking_lot, a condition
//!   variable, `sched_getcpu` slots and `mmap`;
//! - the kernel: one more crate in `kernel/crates.kbuild`, exported with
//!   `EXPORT_SYMBOL_GPL` from the built-in build.
//!
//! Every function checks every pointer and value it is given: NULL, a
//! pointer to something that is not a live arena (a magic word, derived
//! from the object's address, is checked on entry), zero or overflowing
//! sizes, unknown flags. Errors are negative errno values (positive in the
//! vmem(9) API, as there) and change nothing. Nothing panics: there is no
//! indexing that can fail, no `unwrap`, and a panic could not unwind across
//! the boundary anyway. What stays undefined is what no library can check:
//! pointers into memory that is not readable, using an arena after
//! `destroy` once its memory has been reused, destroying an arena while
//! another thread uses it, callbacks that are not what their types say.
//!
//! The declarations are recorded ([`decl`], [`ctypes`], [`NATIVE`],
//! [`VMEM`]) and checked against the headers both ways by the tests.

#![no_std]

mod api;
pub mod ctypes;
pub mod decl;
pub mod errno;
mod export;
mod flags;
mod magic;
mod object;
mod platform;
mod source;
mod vm_object;
mod vm_source;

pub use api::Api;
pub use export::{NATIVE, VMEM};
pub use platform::Platform;

/// The size and alignment of an arena object for the platform `P` (what
/// `vmem_t` must hold, and what [`Platform::alloc_object`] is asked for).
pub fn object_layout<P: Platform>() -> core::alloc::Layout {
    object::ArenaObj::<P>::layout()
}
