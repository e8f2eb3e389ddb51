//! Seeded operation generators and drivers shared by the property tests, the
//! `vmspace` command-line program and the kernel's KUnit suites.
//!
//! Each generator turns a seed into a sequence of operations, some of them
//! deliberately bad; each driver applies the sequence to a real structure and
//! to a small reference model side by side, checking after every step that the
//! two agree and that the structure's `check()` passes. Being `no_std` and
//! heap-free, the same sequences run in user space and in the kernel.
//!
//! This is a test toolkit, not part of the product: the core crate
//! (`vmspace`) knows nothing of it, and the kernel links it only into builds
//! with `CONFIG_VMSPACE_KUNIT_TEST`.

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod arena_ops;
pub mod batched_ops;
pub mod chunkmap_ops;
pub mod churn;
pub mod pages;
pub mod pins;
pub mod rng;
pub mod vm_calls;
pub mod vm_ops;
pub mod vm_target;
pub mod vmarena_ops;

pub use arena_ops::ArenaTarget;
pub use churn::Churn;
pub use rng::Rng;
pub use vm_target::VmTarget;
