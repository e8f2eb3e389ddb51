//! The VM arena's error type.

use core::fmt;

use vmspace_shim::{Addr, Overflow, Range, ShimError};

use crate::vm::VmError;

/// What went wrong in a [`VmArena`](super::VmArena) operation.
///
/// A failing operation leaves the arena as it was before the call: the same
/// tracts allocated to the same owners with the same descriptors, the same
/// pages committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmArenaError {
    /// The VM underneath refused (a backend failure, or a bad range).
    Vm(VmError),
    /// Address or size arithmetic overflowed.
    Overflow,
    /// An argument is out of its domain; the text says which.
    InvalidArgument(&'static str),
    /// An address or size is not a multiple of the page size.
    Misaligned {
        /// The offending value.
        value: usize,
        /// The alignment it must have.
        align: usize,
    },
    /// The range is not inside the arena's tract range.
    OutOfRange(Range),
    /// No run of free tracts of this many pages (with this alignment) exists.
    NoSpace {
        /// Pages asked for.
        pages: usize,
    },
    /// Committing the pages would take committed memory past the commit limit.
    CommitLimit {
        /// Bytes that would be committed.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// Part of the range is not allocated.
    NotAllocated(Range),
    /// A tract in the range belongs to another owner.
    WrongOwner {
        /// The first tract found with another owner.
        addr: Addr,
        /// Its owner.
        owner: u32,
    },
    /// [`check`](super::VmArena::check) found a broken invariant.
    Corrupt(&'static str),
}

impl VmArenaError {
    /// The backend error behind this one, when a page operation failed.
    pub fn backend(&self) -> Option<ShimError> {
        match self {
            VmArenaError::Vm(VmError::Backend(e)) => Some(*e),
            _ => None,
        }
    }
}

impl From<VmError> for VmArenaError {
    fn from(e: VmError) -> Self {
        VmArenaError::Vm(e)
    }
}

impl From<Overflow> for VmArenaError {
    fn from(_: Overflow) -> Self {
        VmArenaError::Overflow
    }
}

impl fmt::Display for VmArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmArenaError::Vm(e) => write!(f, "VM: {e}"),
            VmArenaError::Overflow => f.write_str("address arithmetic overflowed"),
            VmArenaError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            VmArenaError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of the page size {align:#x}")
            }
            VmArenaError::OutOfRange(r) => write!(f, "{r} is not inside the arena"),
            VmArenaError::NoSpace { pages } => write!(f, "no run of {pages} free pages"),
            VmArenaError::CommitLimit { needed, limit } => write!(
                f,
                "committing {} would pass the commit limit of {}",
                vmspace_shim::Size(*needed),
                vmspace_shim::Size(*limit)
            ),
            VmArenaError::NotAllocated(r) => write!(f, "{r} is not (wholly) allocated"),
            VmArenaError::WrongOwner { addr, owner } => {
                write!(f, "the tract at {addr} belongs to owner {owner}")
            }
            VmArenaError::Corrupt(what) => {
                write!(f, "VM arena bookkeeping is inconsistent: {what}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VmArenaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VmArenaError::Vm(e) => Some(e),
            _ => None,
        }
    }
}
