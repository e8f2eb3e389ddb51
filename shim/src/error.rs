//! The shim's one error type.

use core::fmt;

use crate::overflow::Overflow;
use crate::range::Range;

/// The page operation an error or a fault refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// [`PageOps::reserve`](crate::PageOps::reserve).
    Reserve = 0,
    /// [`PageOps::release`](crate::PageOps::release).
    Release = 1,
    /// [`PageOps::map`](crate::PageOps::map).
    Map = 2,
    /// [`PageOps::unmap`](crate::PageOps::unmap).
    Unmap = 3,
    /// [`PageOps::protect`](crate::PageOps::protect).
    Protect = 4,
}

impl Op {
    /// Every operation, in discriminant order.
    pub const ALL: [Op; 5] = [Op::Reserve, Op::Release, Op::Map, Op::Unmap, Op::Protect];

    /// The operation's name as used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Reserve => "reserve",
            Op::Release => "release",
            Op::Map => "map",
            Op::Unmap => "unmap",
            Op::Protect => "protect",
        }
    }

    /// A bit that stands for this operation in an operation mask.
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong in a page operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShimError {
    /// Address or size arithmetic overflowed.
    Overflow,
    /// A size or address is not a multiple of the alignment the operation needs.
    Misaligned {
        /// The offending value.
        value: usize,
        /// The alignment it must have.
        align: usize,
    },
    /// An argument is out of its domain (zero size, alignment not a power of
    /// two, ...); the text says which.
    InvalidArgument(&'static str),
    /// The range does not lie inside one live reservation of this backend.
    NotReserved(Range),
    /// Part of the range is already mapped.
    AlreadyMapped(Range),
    /// Part of the range is not mapped.
    NotMapped(Range),
    /// Part of the range was unmapped by
    /// [`unmap_deferred`](crate::PageOps::unmap_deferred) and its flush is
    /// still pending: mapping it before [`flush`](crate::PageOps::flush)
    /// would reissue an address a stale TLB entry may still reach.
    Unflushed(Range),
    /// The address space (or the backend's buffer) has no room for a
    /// reservation of this size.
    OutOfAddressSpace {
        /// The size asked for.
        size: usize,
    },
    /// There is no memory to back the pages.
    OutOfMemory(Range),
    /// The operating system refused the call.
    Os {
        /// Which operation.
        op: Op,
        /// The `errno` (user space) or negative error code (kernel) it returned.
        errno: i32,
    },
    /// A fault injected by [`FaultInjector`](crate::FaultInjector).
    Injected {
        /// Which operation was made to fail.
        op: Op,
    },
}

impl ShimError {
    /// Whether the call that failed may have changed part of its range.
    /// A backend refuses bad arguments and contract violations before
    /// doing anything, and so does one asked for an operation it never
    /// performs (it says [`InvalidArgument`](Self::InvalidArgument)); any
    /// other failure (the OS's, a shortage, an injected fault) may come
    /// part way, as Linux's `mprotect` does at `vm.max_map_count`, and the
    /// layers that know the old protection put it back.
    pub const fn may_have_changed(&self) -> bool {
        !matches!(
            self,
            ShimError::Overflow
                | ShimError::Misaligned { .. }
                | ShimError::InvalidArgument(_)
                | ShimError::NotReserved(_)
                | ShimError::AlreadyMapped(_)
                | ShimError::NotMapped(_)
                | ShimError::Unflushed(_)
                | ShimError::OutOfAddressSpace { .. }
        )
    }
}

impl From<Overflow> for ShimError {
    fn from(_: Overflow) -> Self {
        ShimError::Overflow
    }
}

impl fmt::Display for ShimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShimError::Overflow => f.write_str("address arithmetic overflowed"),
            ShimError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of {align:#x}")
            }
            ShimError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            ShimError::NotReserved(r) => write!(f, "{r} is not inside one live reservation"),
            ShimError::AlreadyMapped(r) => write!(f, "{r} is already (partly) mapped"),
            ShimError::NotMapped(r) => write!(f, "{r} is not (wholly) mapped"),
            ShimError::Unflushed(r) => {
                write!(f, "{r} was unmapped and is not flushed yet: it cannot be mapped again")
            }
            ShimError::OutOfAddressSpace { size } => {
                write!(f, "no room to reserve {} of address space", crate::Size(*size))
            }
            ShimError::OutOfMemory(r) => write!(f, "out of memory mapping {r}"),
            ShimError::Os { op, errno } => write!(f, "{op} failed: OS error {errno}"),
            ShimError::Injected { op } => write!(f, "{op} failed: injected fault"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ShimError {}
