//! The VM layer's error type.

use core::fmt;

use vmspace_shim::{Range, ShimError};

use crate::error::{from_common, CommonError};

/// What went wrong in a [`Vm`](super::Vm) operation. Every error leaves the VM's
/// books as they were before the call, with two exceptions, both about its
/// own bit-table pages: a failed [`trim`](super::Vm::trim) keeps what it
/// gave back, and a failed [`map`](super::Vm::map) that cannot give back a
/// table page it mapped for the range leaves that page mapped, empty and
/// counted in [`metadata_mapped`](super::Vm::metadata_mapped) (a later
/// `trim` gives it back). Its client pages are as they were too, but where
/// the OS allows no better (the backend's contract, [`PageOps`](vmspace_shim::PageOps)):
/// a failed [`unmap`](super::Vm::unmap) may leave their contents gone, and
/// a failed `unmap` or [`protect`](super::Vm::protect) part of the range
/// with the protection asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmError {
    /// The backend failed (out of address space, out of memory, OS error,
    /// injected fault).
    Backend(ShimError),
    /// A request outside its domain (arithmetic, argument, a value not a
    /// multiple of the page size, a range not inside the VM) or, from
    /// [`check`](super::Vm::check), broken bookkeeping.
    Common(CommonError),
    /// Part of the range is already mapped.
    AlreadyMapped(Range),
    /// Part of the range is not mapped.
    NotMapped(Range),
}

impl From<ShimError> for VmError {
    fn from(e: ShimError) -> Self {
        VmError::Backend(e)
    }
}

from_common!(VmError);

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::Backend(e) => write!(f, "page backend: {e}"),
            VmError::Common(e) => write!(f, "VM: {e}"),
            VmError::AlreadyMapped(r) => write!(f, "{r} is already (partly) mapped"),
            VmError::NotMapped(r) => write!(f, "{r} is not (wholly) mapped"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VmError::Backend(e) => Some(e),
            VmError::Common(e) => Some(e),
            _ => None,
        }
    }
}
