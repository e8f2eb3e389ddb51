//! The VM arena's error type.

use core::fmt;

use vmspace_shim::{Addr, Range, ShimError};

use super::Owner;
use crate::error::{from_common, CommonError};
use crate::vm::VmError;

/// What went wrong in a [`VmArena`](super::VmArena) operation.
///
/// A failing operation leaves the arena as it was before the call: the same
/// tracts allocated to the same owners with the same descriptors, the same
/// pages committed; except after
/// [`RollbackFailed`](VmArenaError::RollbackFailed), which says what changed,
/// for the spare pages a failing allocation or purge gave back, for a
/// table page it could not give back, and for stale table pages (left
/// mapped by an earlier failure, counted by
/// [`stale_pages`](super::VmArena::stale_pages)) that the call gave back
/// before it failed: every operation retries those first (the
/// [module docs](super) list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmArenaError {
    /// The VM underneath refused (a backend failure, or a bad range).
    Vm(VmError),
    /// A request outside its domain (arithmetic, argument, a value not a
    /// multiple of the page size, a range not inside the arena's tracts) or,
    /// from [`check`](super::VmArena::check), a broken invariant.
    Common(CommonError),
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
        owner: Owner,
    },
    /// A protect, or the unmap of a free or a purge, failed (perhaps part
    /// way, leaving some pages inaccessible), and putting the old
    /// protection back failed too. Allocated tracts whose protection could
    /// not be put back (a protect or a free) are recorded
    /// [`Protection::None`](vmspace_shim::Protection::None), and made so
    /// as far as the backend allowed (never recorded more open than they
    /// may be; freed, they are decommitted, never kept spare). Spare tracts
    /// (a purge) stay spare, and spare pages are made read-write again
    /// whenever an allocation reuses them, until none is spare. An
    /// allocation whose map (or reuse of spare pages) failed, and whose
    /// unmap of the pages it had mapped failed too, keeps those tracts
    /// committed, as spare: nothing is allocated. The tracts so left are
    /// all in `range`, which is one range from the first to the last of
    /// them: the runs between were put back (or, an allocation's,
    /// decommitted) and are as the call found them.
    RollbackFailed {
        /// From the first tract whose protection could not be put back, or
        /// (an allocation) that stays committed as spare, to the last (it
        /// may hold tracts that were put back).
        range: Range,
        /// What the backend said to the call that failed first.
        error: ShimError,
        /// What the tracts of `range` are left as.
        tracts: Stranded,
    },
}

/// What a [`VmArenaError::RollbackFailed`] leaves the tracts of its range
/// as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stranded {
    /// Allocated, and recorded
    /// [`Protection::None`](vmspace_shim::Protection::None) (a protect or a
    /// free).
    Inaccessible,
    /// Free and committed, as spare (an allocation, which allocated
    /// nothing, or a purge); made read-write when reused.
    Spare,
}

impl VmArenaError {
    /// The backend error behind this one, when a page operation failed.
    pub fn backend(&self) -> Option<ShimError> {
        match self {
            VmArenaError::Vm(VmError::Backend(e)) => Some(*e),
            VmArenaError::RollbackFailed { error, .. } => Some(*error),
            _ => None,
        }
    }
}

impl From<VmError> for VmArenaError {
    fn from(e: VmError) -> Self {
        VmArenaError::Vm(e)
    }
}

from_common!(VmArenaError);

impl fmt::Display for VmArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmArenaError::Vm(e) => write!(f, "VM: {e}"),
            VmArenaError::Common(e) => write!(f, "VM arena: {e}"),
            VmArenaError::NoSpace { pages } => write!(f, "no run of {pages} free pages"),
            VmArenaError::CommitLimit { needed, limit } => write!(
                f,
                "committing {} would pass the commit limit of {}",
                vmspace_shim::Size(*needed),
                vmspace_shim::Size(*limit)
            ),
            VmArenaError::NotAllocated(r) => write!(f, "{r} is not (wholly) allocated"),
            VmArenaError::RollbackFailed { range, error, tracts: Stranded::Inaccessible } => {
                write!(
                    f,
                    "{error}, and the old protection of {range} could not be put back: \
                     recorded inaccessible"
                )
            }
            VmArenaError::RollbackFailed { range, error, tracts: Stranded::Spare } => write!(
                f,
                "{error}, and undoing it failed too: {range} stays committed, as spare \
                 (nothing allocated)"
            ),
            VmArenaError::WrongOwner { addr, owner } => {
                write!(f, "the tract at {addr} belongs to {owner}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VmArenaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VmArenaError::Vm(e) => Some(e),
            VmArenaError::Common(e) => Some(e),
            _ => None,
        }
    }
}
