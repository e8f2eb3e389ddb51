//! # vmspace-abi
//!
//! The one definition of `/dev/vmspace`'s ioctl interface: the command
//! numbers ([`cmd`]), the `#[repr(C)]` argument layouts ([`args`]) and the
//! error records that carry a failure's cause back to user space
//! ([`error`]). The kernel device (`kernel/device/`) and the user-space
//! client (`vmspace_user::kdev`) both compile from this crate, so the two
//! sides cannot drift apart.
//!
//! `#![no_std]`, no dependencies, no `unsafe` beyond the zero value of the
//! plain structures: it builds as one more crate of the kernel build.
//!
//! ## Versioning
//!
//! [`ABI_VERSION`] is reported by [`cmd::VERSION`]; a client refuses a
//! device with another version. The size of each argument structure is
//! also part of its command number (the `_IOC` encoding), so a layout
//! change makes an old client's commands unknown (`-ENOTTY`) rather than
//! misread.
//!
//! ## Conventions
//!
//! - Every structure is made of `u64`, `u32`, `i32`, `u16` and byte arrays,
//!   laid out without implicit padding (checked at compile time), so every
//!   byte pattern is a valid value and nothing uninitialised crosses the
//!   boundary. Fields named `_pad*` and flag bits not defined here must be
//!   zero: the device refuses anything else with `-EINVAL`.
//! - Objects (arenas and VMs) are named by the `id` the device returns when
//!   it makes them; ids are private to the open file that made them (an id
//!   of another file is refused). A handle is the tag and address of a held
//!   allocation in the arena the command's `id` names, checked there as
//!   `Arena::handle_from_parts` and `free_handle` check it (it carries no
//!   fingerprint: one that names a live held allocation of that arena frees
//!   it).
//! - A command that fails on the object's own terms (a bad free, no space,
//!   a misaligned range) returns a negative errno *and* fills the
//!   structure's `err` record ([`error::WireError`]) with the cause; a
//!   command refused before it reached an object (unknown command, wrong
//!   size, bad pointer) returns only the errno.
//!
//! ```
//! use vmspace_abi::{args::VersionArgs, cmd, ioc};
//! assert_eq!(ioc::size(cmd::VERSION), core::mem::size_of::<VersionArgs>());
//! assert_eq!(ioc::ty(cmd::VERSION), vmspace_abi::IOCTL_TYPE);
//! ```

#![no_std]

/// Define `#[repr(C)]` plain-data structures: each gets `Clone`, `Copy`,
/// `Debug`, `PartialEq`, `Eq`, a [`Pod`] implementation, an all-zero
/// `ZERO` constant and `Default`, and a compile-time check that it has no
/// padding (its size is the sum of its fields').
macro_rules! plain {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
        }
    )*) => {$(
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// Every field zero.
            // SAFETY: every field is an integer or an array of integers,
            // for which all-zero bytes are a valid value.
            pub const ZERO: Self = unsafe { core::mem::zeroed() };
        }

        impl Default for $name {
            fn default() -> Self {
                Self::ZERO
            }
        }

        // SAFETY: `#[repr(C)]`, integer fields only, and no padding (the
        // assertion below).
        unsafe impl $crate::Pod for $name {}

        const _: () = assert!(
            core::mem::size_of::<$name>() == 0 $(+ core::mem::size_of::<$ty>())*,
            "padding in an ABI structure"
        );
    )*};
}

pub mod args;
pub mod cmd;
pub mod error;
pub mod ioc;

/// The ABI version the device and the client must agree on (2: deferred
/// frees, `ARENA_FREE_DEFERRED` and `ARENA_FLUSHED`, and their statistics
/// in `ArenaStatsArgs`; 3: `ARENA_FREE_HANDLE_DEFERRED`).
pub const ABI_VERSION: u32 = 3;

/// The ioctl type byte of every command (0xBB: unassigned in the kernel's
/// `ioctl-number.rst`).
pub const IOCTL_TYPE: u32 = 0xBB;

/// Plain data that may cross the user/kernel boundary as bytes.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` structures whose fields are integers or
/// arrays of integers, with no padding anywhere (their size is the sum of
/// their fields' sizes), so every byte pattern is a valid value and every
/// byte of a value is initialised.
pub unsafe trait Pod: Copy + 'static {}
