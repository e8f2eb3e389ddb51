//! The chunk map's error type.

use core::fmt;

use vmspace_shim::{Addr, Op, Overflow, Range, ShimError};

/// What went wrong in a [`ChunkMap`](super::ChunkMap) operation. A failing
/// operation leaves every chunk in the state it had before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkMapError {
    /// A page operation failed on `range` (chunks or a table page).
    Backend {
        /// The operation.
        op: Op,
        /// The address range it was applied to.
        range: Range,
        /// What the backend said.
        error: ShimError,
    },
    /// Address or size arithmetic overflowed.
    Overflow,
    /// An argument is out of its domain; the text says which.
    InvalidArgument(&'static str),
    /// A value is not a multiple of the chunk size.
    Misaligned {
        /// The offending value.
        value: usize,
        /// The alignment it must have.
        align: usize,
    },
    /// The range is not inside the chunk map's space.
    OutOfRange(Range),
    /// `protect` or `unprotect` of a chunk that is not mapped.
    NotMapped {
        /// The chunk's address.
        chunk: Addr,
    },
    /// [`check`](super::ChunkMap::check) found a broken invariant.
    Corrupt(&'static str),
}

impl From<Overflow> for ChunkMapError {
    fn from(_: Overflow) -> Self {
        ChunkMapError::Overflow
    }
}

impl fmt::Display for ChunkMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkMapError::Backend { op, range, error } => {
                write!(f, "{op} of {} at {} failed: {error}", range.size(), range.base())
            }
            ChunkMapError::Overflow => f.write_str("address arithmetic overflowed"),
            ChunkMapError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            ChunkMapError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of the chunk size {align:#x}")
            }
            ChunkMapError::OutOfRange(r) => write!(f, "{r} is not inside the chunk map"),
            ChunkMapError::NotMapped { chunk } => write!(f, "the chunk at {chunk} is not mapped"),
            ChunkMapError::Corrupt(what) => write!(f, "chunk map is inconsistent: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChunkMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChunkMapError::Backend { error, .. } => Some(error),
            _ => None,
        }
    }
}
