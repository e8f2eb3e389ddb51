//! The chunk map's error type.

use core::fmt;

use vmspace_shim::{Addr, Op, Range, ShimError};

use crate::error::{from_common, CommonError};

/// What went wrong in a [`ChunkMap`](super::ChunkMap) operation. A failing
/// operation leaves every chunk in the state it had before the call, except
/// after [`RollbackFailed`](ChunkMapError::RollbackFailed).
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
    /// A page operation failed on `range`, and undoing it, or the calls
    /// the operation had made before it, failed too (two backend failures
    /// in one call). [`check`](super::ChunkMap::check) still holds and
    /// every chunk outside `lost` is as it was. A chunk whose unmap failed
    /// is recorded mapped. A chunk whose protection could be neither put
    /// back nor changed as asked (an OS may change part of a range before
    /// a protect fails) is recorded protected, though some of its pages may
    /// still be read-write: no chunk is recorded more open than its pages
    /// are, and an `unprotect` makes state and pages agree again.
    RollbackFailed {
        /// The operation that failed first.
        op: Op,
        /// The address range it was applied to.
        range: Range,
        /// What the backend said.
        error: ShimError,
        /// The chunks that may not be as they were: from the first whose
        /// call could not be undone to the last (a range of whole chunks;
        /// it may hold chunks that are as they were).
        lost: Range,
    },
    /// A request outside its domain (arithmetic, argument, a value not a
    /// multiple of the chunk size, a range not inside the space) or, from
    /// [`check`](super::ChunkMap::check), a broken invariant.
    Common(CommonError),
    /// `protect` or `unprotect` of a chunk that is not mapped.
    NotMapped {
        /// The chunk's address.
        chunk: Addr,
    },
}

from_common!(ChunkMapError);

impl fmt::Display for ChunkMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkMapError::Backend { op, range, error } => {
                write!(f, "{op} of {} at {} failed: {error}", range.size(), range.base())
            }
            ChunkMapError::RollbackFailed { op, range, error, lost } => write!(
                f,
                "{op} of {} at {} failed: {error}, and undoing what came before failed too \
                 (chunks in {lost} may keep their new state, or be recorded protected)",
                range.size(),
                range.base()
            ),
            ChunkMapError::Common(e) => write!(f, "chunk map: {e}"),
            ChunkMapError::NotMapped { chunk } => write!(f, "the chunk at {chunk} is not mapped"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChunkMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChunkMapError::Backend { error, .. } | ChunkMapError::RollbackFailed { error, .. } => {
                Some(error)
            }
            ChunkMapError::Common(e) => Some(e),
            _ => None,
        }
    }
}
