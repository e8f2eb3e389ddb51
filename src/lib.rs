//! # vmspace
//!
//! Virtual address space management from one `#![no_std]` core with no global
//! state, no heap and no dependencies beyond [`vmspace_shim`], so the same
//! source builds in the Linux kernel and in user space:
//!
//! - [`vm`]: reserve a large contiguous range of address space, map and unmap
//!   pages inside it, know what is reserved and mapped;
//! - [`arena`]: a vmem-style resource allocator for integer ranges (boundary
//!   tags in a page-grown table, instant/best/first/next fit, constrained
//!   allocation, imports from another arena or a VM, `check()`);
//! - [`bits`]: bit tables over word slices, used by the layers above;
//! - [`vmarena`]: a VM arena of tracts with a lazily mapped page table and
//!   zone placement; [`chunkmap`]: per-chunk mapping state of a huge sparse
//!   space;
//! - [`sync`] and [`qcache`]: arenas shared between threads behind a lock the
//!   build supplies, with quantum caches served from per-thread or per-CPU
//!   magazines and waiting for space;
//! - [`workload`]: seeded operation generators and drivers that the property
//!   tests, the command-line program and the kernel's KUnit suites share.
//!
//! Every operating-system call goes through the [`PageOps`] trait of the
//! shim crate; every structure takes its backend as a type
//! parameter.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod arena;
pub mod bits;
pub mod chunkmap;
pub mod qcache;
pub mod sync;
pub mod vm;
pub mod vmarena;
pub mod workload;

pub use arena::{Arena, ArenaError, Constraints, Policy};
pub use vmspace_shim as shim;
pub use vmspace_shim::{Addr, PageOps, Pages, Protection, Range, ShimError, Size};
