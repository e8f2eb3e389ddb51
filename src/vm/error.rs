//! The VM layer's error type.

use core::fmt;

use vmspace_shim::{Overflow, Range, ShimError};

/// What went wrong in a [`Vm`](super::Vm) operation. Every error leaves the VM
/// as it was before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmError {
    /// The backend failed (out of address space, out of memory, OS error,
    /// injected fault).
    Backend(ShimError),
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
    /// The range does not lie inside the VM's `[base, limit)`.
    OutOfRange(Range),
    /// Part of the range is already mapped.
    AlreadyMapped(Range),
    /// Part of the range is not mapped.
    NotMapped(Range),
    /// [`check`](super::Vm::check) found broken bookkeeping; the text says what.
    Corrupt(&'static str),
}

impl From<ShimError> for VmError {
    fn from(e: ShimError) -> Self {
        VmError::Backend(e)
    }
}

impl From<Overflow> for VmError {
    fn from(_: Overflow) -> Self {
        VmError::Overflow
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::Backend(e) => write!(f, "page backend: {e}"),
            VmError::Overflow => f.write_str("address arithmetic overflowed"),
            VmError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            VmError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of the page size {align:#x}")
            }
            VmError::OutOfRange(r) => write!(f, "{r} is not inside the VM"),
            VmError::AlreadyMapped(r) => write!(f, "{r} is already (partly) mapped"),
            VmError::NotMapped(r) => write!(f, "{r} is not (wholly) mapped"),
            VmError::Corrupt(what) => write!(f, "VM bookkeeping is inconsistent: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VmError::Backend(e) => Some(e),
            _ => None,
        }
    }
}
