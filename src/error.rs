//! [`CommonError`]: the errors the VM, the VM arena and the chunk map share,
//! each of which wraps it in its own error type (`VmError::Common`, ...), so
//! the checks of a request's arithmetic, domain and alignment, and the
//! verdict of a `check()`, read and print the same in every layer.

use core::fmt;

use vmspace_shim::{Overflow, Range};

/// A request outside its domain, or bookkeeping found broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommonError {
    /// Address or size arithmetic overflowed.
    Overflow,
    /// An argument is out of its domain; the text says which.
    InvalidArgument(&'static str),
    /// An address or size is not a multiple of the unit it must be (the
    /// page, the chunk).
    Misaligned {
        /// The offending value.
        value: usize,
        /// The alignment it must have.
        align: usize,
    },
    /// The range does not lie inside the structure's range.
    OutOfRange(Range),
    /// A `check()` found broken bookkeeping; the text says what.
    Corrupt(&'static str),
}

impl From<Overflow> for CommonError {
    fn from(_: Overflow) -> Self {
        CommonError::Overflow
    }
}

impl fmt::Display for CommonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommonError::Overflow => f.write_str("address arithmetic overflowed"),
            CommonError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            CommonError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of {align:#x}")
            }
            CommonError::OutOfRange(r) => write!(f, "{r} is out of range"),
            CommonError::Corrupt(what) => write!(f, "bookkeeping is inconsistent: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CommonError {}

/// Implement `From<CommonError>` and `From<Overflow>` for a layer's error
/// type whose `Common` variant wraps a [`CommonError`].
macro_rules! from_common {
    ($layer:ident) => {
        impl From<$crate::error::CommonError> for $layer {
            fn from(e: $crate::error::CommonError) -> Self {
                $layer::Common(e)
            }
        }

        impl From<vmspace_shim::Overflow> for $layer {
            fn from(_: vmspace_shim::Overflow) -> Self {
                $layer::Common($crate::error::CommonError::Overflow)
            }
        }
    };
}
pub(crate) use from_common;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;
    use vmspace_shim::Addr;

    #[test]
    fn messages() {
        let r = Range::from_size(Addr(0x1000), vmspace_shim::Size(0x1000)).unwrap();
        assert_eq!(CommonError::from(Overflow).to_string(), "address arithmetic overflowed");
        assert_eq!(
            CommonError::Misaligned { value: 0x1001, align: 0x1000 }.to_string(),
            "0x1001 is not a multiple of 0x1000"
        );
        assert!(CommonError::OutOfRange(r).to_string().ends_with("is out of range"));
        assert_eq!(CommonError::Corrupt("x").to_string(), "bookkeeping is inconsistent: x");
    }
}
