//! The arena's one error type.

use core::fmt;

use vmspace_shim::{Addr, Overflow, Range, ShimError, Size};

use crate::vm::VmError;

/// What went wrong in an arena operation.
///
/// Every failing operation leaves the arena exactly as it was before the call,
/// whatever the variant, but for its counters: the failure counter
/// (`failures` or `bad_frees`) and the work statistics the attempt made
/// (`lookups`, `search_steps`) move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArenaError {
    /// Address or size arithmetic overflowed.
    Overflow,
    /// An argument is out of its domain; the text says which.
    InvalidArgument(&'static str),
    /// A value is not a multiple of the alignment the operation needs, or
    /// is zero where it needs a non-zero multiple (an import's size; a
    /// span's size of zero is [`InvalidArgument`](Self::InvalidArgument)).
    Misaligned {
        /// The offending value.
        value: usize,
        /// The alignment it must have.
        align: usize,
    },
    /// The constraints of an allocation can never be met together, whatever
    /// the arena holds; the text says which ones clash.
    OverConstrained(&'static str),
    /// No free segment satisfies the request and no import could supply one.
    NoSpace {
        /// The size asked for.
        size: usize,
    },
    /// `free` of something that is not a live allocation of exactly that
    /// size; also a source's answer to [`release`](super::Source::release)
    /// of a range it did not hand out (`allocated` `None`).
    BadFree {
        /// The address passed; for [`free_part`](super::Arena::free_part),
        /// the piece's: the allocation's address plus the offset (wrapping).
        addr: Addr,
        /// The size passed.
        size: Size,
        /// The size of the live allocation at `addr` (for `free_part`, at
        /// the allocation's address), if there is one.
        allocated: Option<Size>,
    },
    /// [`free_handle`](super::Arena::free_handle) of a handle that does not
    /// hold a live allocation of this arena (freed already, or another
    /// arena's).
    BadHandle {
        /// The handle's address.
        addr: Addr,
        /// The handle's tag index.
        tag: u32,
    },
    /// A span to add overlaps a span the arena already has.
    SpanOverlap(Range),
    /// `extend` of a range that touches no non-imported span.
    NotAdjacent(Range),
    /// The boundary-tag table (or the address hash) cannot grow any further.
    TagsExhausted,
    /// The page operations behind the tag table or a VM source failed.
    Backing(ShimError),
    /// The VM behind a [`VmSource`](crate::sources::VmSource) refused to map or unmap.
    Vm(VmError),
    /// A source handed back a range that breaks the [`Source`](super::Source)
    /// contract (wrong size or alignment, or overlapping a span).
    BadImport(Range),
    /// A source could not take back `range`, a span given back to it
    /// ([`Source::release`](super::Source::release)), and could not put it
    /// back as it was either: some of it may be inaccessible (a failed
    /// unmap that changed part of the range, then a failed put-back of its
    /// protection). The source keeps the range, taken for good; the arena
    /// that gave it back drops the span rather than hand it out again.
    Stranded {
        /// The range given back.
        range: Range,
        /// What the backend said to the call that failed first.
        error: ShimError,
    },
    /// A source is in use elsewhere and cannot import or take a range back
    /// now: borrowed by another user (a `&RefCell` source), or, for an
    /// adapter such as [`KeepFree`](crate::sources::KeepFree), a call into
    /// its own source has panicked and none has returned since. An arena
    /// keeps a span refused so, free, and offers it again at its next free.
    SourceBusy,
    /// A fault injected by the arena's own fault injector (vmem's mtbf).
    Injected,
    /// An [`Interruptible`](crate::sync::Wait::Interruptible) wait ended
    /// because its waiter said the thread must stop (in the kernel, a
    /// fatal signal): nothing was allocated.
    Interrupted,
    /// A teardown that gives back what it stands on
    /// ([`Arena::into_source`](super::Arena::into_source),
    /// [`KeepFree::into_inner`](crate::sources::KeepFree::into_inner),
    /// [`VmSource::into_vm`](crate::sources::VmSource::into_vm),
    /// [`SyncArena::into_inner`](crate::sync::SyncArena::into_inner)) found
    /// it still in use: `what` says how, `size` how much. Nothing changed but
    /// what the teardown's docs say it does first.
    InUse {
        /// What is still in use.
        what: &'static str,
        /// How much of it.
        size: Size,
    },
    /// [`Arena::check`](super::Arena::check) found a broken invariant.
    Corrupt {
        /// Which invariant.
        what: &'static str,
        /// The boundary tag where it was found.
        tag: u32,
    },
}

impl From<Overflow> for ArenaError {
    fn from(_: Overflow) -> Self {
        ArenaError::Overflow
    }
}

impl From<ShimError> for ArenaError {
    fn from(e: ShimError) -> Self {
        ArenaError::Backing(e)
    }
}

impl From<VmError> for ArenaError {
    fn from(e: VmError) -> Self {
        ArenaError::Vm(e)
    }
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::Overflow => f.write_str("arena arithmetic overflowed"),
            ArenaError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            ArenaError::Misaligned { value: 0, align } => {
                write!(f, "0 where a non-zero multiple of {align:#x} is needed")
            }
            ArenaError::Misaligned { value, align } => {
                write!(f, "{value:#x} is not a multiple of the quantum or alignment {align:#x}")
            }
            ArenaError::OverConstrained(what) => {
                write!(f, "over-constrained allocation: {what}")
            }
            ArenaError::NoSpace { size } => {
                write!(f, "no free segment of {size:#x} satisfies the request")
            }
            ArenaError::BadFree { addr, size, allocated: Some(a) } => {
                write!(f, "bad free of {:#x} at {addr}: allocated with size {:#x}", size.0, a.0)
            }
            ArenaError::BadFree { addr, size, allocated: None } => {
                write!(f, "bad free of {:#x} at {addr}: not a live allocation", size.0)
            }
            ArenaError::BadHandle { addr, tag } => {
                write!(f, "bad free of handle {tag} at {addr}: not a live held allocation")
            }
            ArenaError::SpanOverlap(r) => write!(f, "span {r} overlaps an existing span"),
            ArenaError::NotAdjacent(r) => {
                write!(f, "{r} is not adjacent to any span the arena can extend")
            }
            ArenaError::TagsExhausted => f.write_str("boundary-tag storage exhausted"),
            ArenaError::Backing(e) => write!(f, "page operation failed: {e}"),
            ArenaError::Vm(e) => write!(f, "VM source failed: {e}"),
            ArenaError::BadImport(r) => write!(f, "source returned an unusable range {r}"),
            ArenaError::Stranded { range, error } => write!(
                f,
                "source could not take back {range} nor put it back as it was ({error}): \
                 it stays taken, unusable"
            ),
            ArenaError::SourceBusy => f.write_str("source is borrowed elsewhere"),
            ArenaError::Injected => f.write_str("injected fault (mtbf)"),
            ArenaError::Interrupted => f.write_str("the wait for space was interrupted"),
            ArenaError::InUse { what, size } => write!(f, "still in use: {what} ({:#x})", size.0),
            ArenaError::Corrupt { what, tag } => {
                write!(f, "arena inconsistent at tag {tag}: {what}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ArenaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArenaError::Backing(e) | ArenaError::Stranded { error: e, .. } => Some(e),
            ArenaError::Vm(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn messages() {
        let e =
            ArenaError::BadFree { addr: Addr(0x1000), size: Size(16), allocated: Some(Size(32)) };
        assert_eq!(e.to_string(), "bad free of 0x10 at 0x1000: allocated with size 0x20");
        assert_eq!(ArenaError::from(Overflow), ArenaError::Overflow);
        let c = ArenaError::Corrupt { what: "x", tag: 3 };
        assert_eq!(c.to_string(), "arena inconsistent at tag 3: x");
        let m = ArenaError::Misaligned { value: 0x1008, align: 0x1000 };
        assert_eq!(m.to_string(), "0x1008 is not a multiple of the quantum or alignment 0x1000");
        let z = ArenaError::Misaligned { value: 0, align: 0x1000 };
        assert_eq!(z.to_string(), "0 where a non-zero multiple of 0x1000 is needed");
        let h = ArenaError::BadHandle { addr: Addr(0x40), tag: 7 };
        assert_eq!(h.to_string(), "bad free of handle 7 at 0x40: not a live held allocation");
        let range = Range::from_size(Addr(0x4000), Size(0x2000)).unwrap();
        let error = ShimError::Injected { op: vmspace_shim::Op::Protect };
        let s = ArenaError::Stranded { range, error };
        assert_eq!(
            s.to_string(),
            std::format!(
                "source could not take back {range} nor put it back as it was ({error}): it \
                 stays taken, unusable"
            )
        );
    }
}
