//! # vmspace-user
//!
//! vmspace in user space: [`MmapBackend`], the page backend on `mmap`;
//! [`procfs`], what the kernel reports about this process's mappings;
//! [`ParkingLock`] and [`CondvarWaiter`], the lock and waiter of a
//! [`UserArena`] shared between threads; [`RseqPin`], the pin of its
//! per-CPU quantum caches ([`UserCpuCaches`]), through restartable
//! sequences (with [`SchedPin`] where they are not available), and
//! [`allowed_cpus`] and [`run_only_on`] for the CPUs its slots stand for; [`kdev`],
//! the client of the kernel build's `/dev/vmspace`; and the `vmspace`
//! command-line program (`src/cli`).
//!
//! ```
//! use vmspace::vm::Vm;
//! use vmspace_shim::{Range, Size};
//! use vmspace_user::MmapBackend;
//!
//! let mut vm = Vm::reserve(MmapBackend::new(), Size(1 << 30), Size(1 << 21)).unwrap();
//! let first = Range::from_size(vm.base(), Size(1 << 16)).unwrap();
//! vm.map(first).unwrap();
//! // SAFETY: the VM just mapped `first` read-write.
//! unsafe { vm.base().as_ptr::<u8>().write(1) };
//! vm.unmap(first).unwrap();
//! ```

mod affinity;
pub mod kdev;
mod mmap;
mod pin;
pub mod procfs;
mod rseq;
mod sync;
pub mod trace;
mod tsan;
mod unpadded;

pub use affinity::{allowed_cpus, run_only_on};
pub use mmap::{MmapBackend, UnmapStrategy};
pub use pin::{possible_cpus, SchedPin, UserCpuCaches, MAX_SLOTS};
pub use rseq::RseqPin;
pub use sync::{CondvarWaiter, ParkingLock, UserArena};

/// The README's Rust samples, compiled and run as this crate's doctests
/// (it depends on the core, the shim and the workload, so every sample's
/// imports resolve as they would for a user).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
