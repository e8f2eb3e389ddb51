// SPDX-License-Identifier: MIT OR Apache-2.0

//! What a build supplies to the device: its page backends, what one open
//! file may hold, and how to tell what access the kernel has to a page.

use vmspace_shim::PageOps;

/// What the page tables allow at a VM address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: an access would fault.
    None,
    /// Reading.
    Read,
    /// Reading and writing.
    ReadWrite,
}

/// Bounds on what one open file may hold. The device refuses a command that
/// would go past one (`-ENOSPC` with a `DEV_LIMIT` record naming it), so a
/// file costs the kernel at most about `max_tags_per_file * 80` bytes of
/// arena metadata (tags and hash, about 40 bytes a tag, and as much again
/// for an importing arena's source, which keeps an arena of its own
/// uncharged), `max_reserved` bytes of address space
/// (committed memory on a committed backend), `max_mapped` bytes of mapped
/// pages, and `max_objects` small allocations for the objects themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Arenas and VMs held at once (at most 64).
    pub max_objects: usize,
    /// Boundary tags one arena may have (its `max_tags`).
    pub max_tags_per_arena: usize,
    /// Boundary tags all the file's arenas may have together.
    pub max_tags_per_file: usize,
    /// Bytes of address space the file's VMs and arena sources may reserve
    /// together, each counted as its size rounded up to its grain, plus a
    /// grain (what aligning it may take).
    pub max_reserved: usize,
    /// Bytes the file's VMs may have mapped at once; an arena's source VM
    /// counts with its whole size rounded up to its grain (it maps what the
    /// arena imports).
    pub max_mapped: usize,
    /// Bytes one `VM_READ` or `VM_WRITE` may copy.
    pub max_io: usize,
}

/// A build's backends for the device.
pub trait DevBackends: Sized + 'static {
    /// The backend of arena metadata (boundary tags and hashes).
    type Meta: PageOps + Sync + 'static;
    /// The backend of VMs.
    type Vm: PageOps + Sync + 'static;

    /// The device's name (`/dev/<DEVICE>`), for the kernel log.
    const DEVICE: &'static str;
    /// Bounds on one open file.
    const LIMITS: Limits;
    /// `vmspace_abi::args::FEATURE_*` bits: whether VMs can be protected,
    /// whether reservations are sparse.
    const FEATURES: u32;

    /// The metadata backend.
    fn meta() -> &'static Self::Meta;
    /// The VM backend.
    fn vm() -> &'static Self::Vm;
    /// What the kernel may do at `addr`, a page of a live VM of this
    /// backend that the VM says is mapped (protection aside).
    fn access(addr: usize) -> Access;
}
