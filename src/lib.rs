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
//!   magazines and waiting for space.
//!
//! The seeded operation generators and reference models the tests share are
//! in a crate of their own, `vmspace-workload`, outside the product.
//!
//! Every operating-system call goes through the [`PageOps`] trait of the
//! shim crate; every structure takes its backend as a type
//! parameter.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod arena;
mod atomic;
pub mod bits;
pub mod chunkmap;
pub mod error;
mod hull;
pub mod qcache;
pub mod sources;
pub mod sync;
pub mod vm;
pub mod vmarena;

pub use arena::{Arena, ArenaError, Constraints, Policy, Refused};
pub use error::CommonError;
pub use vmspace_shim as shim;
pub use vmspace_shim::{Addr, PageOps, Pages, Protection, Range, ShimError, Size};
