// SPDX-License-Identifier: MIT OR Apache-2.0

//! `/dev/vmspace`: the vmspace arena and VM layer behind a misc device, so
//! user space (the property tests, the fuzzers, any program) can drive the
//! code that runs in the kernel.
//!
//! Written with the kernel crate's own abstractions: `kernel::miscdevice`
//! for the device and its file operations, `kernel::uaccess` for every copy
//! to and from user space, `kernel::ioctl` for the command numbers (checked
//! at compile time against `vmspace_abi`, the one definition of the
//! interface that the user-space client compiles from too).
//!
//! Each open file owns its objects (arenas and VMs, in `objects.rs`) and
//! nothing else: there is no global state. Closing the file destroys
//! everything it owned, and what was still allocated or mapped is reported
//! in the kernel log. Every command checks every field it reads and
//! answers a bad one with an errno and an error record, never a warning or
//! an oops; what one file may hold is bounded ([`Limits`]).
//!
//! The device is generic over the page backends ([`DevBackends`]): the
//! built-in build registers it on the sparse vmalloc backend, the module on
//! its committed backends.

// Commands return the error record's errno alongside records that carry
// the core's error types; there is no heap to box them in.
#![allow(clippy::result_large_err)]

const __LOG_PREFIX: &[u8] = b"vmspace\0";

mod arena_cmd;
mod backends;
mod encode;
mod file;
mod objects;
mod vm_cmd;
mod wire;

pub use backends::{Access, DevBackends, Limits};
pub use file::{register, DevFile};
