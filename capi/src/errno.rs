//! Errors as C sees them: negative errno values (Linux numbering, the same
//! in the kernel and in user space on Linux), one per cause, with
//! [`strerror`] texts.

use core::ffi::{c_char, c_int, CStr};

use vmspace::arena::ArenaError;
use vmspace::error::CommonError;
use vmspace::vm::VmError;
use vmspace_shim::ShimError;

/// Linux errno values the API returns (negated).
pub mod code {
    use core::ffi::c_int;
    /// No such allocation.
    pub const ENOENT: c_int = 2;
    /// Interrupted (here: a killable wait, by a fatal signal).
    pub const EINTR: c_int = 4;
    /// I/O error.
    pub const EIO: c_int = 5;
    /// Bad file descriptor (here: not a live arena).
    pub const EBADF: c_int = 9;
    /// Try again.
    pub const EAGAIN: c_int = 11;
    /// Out of memory.
    pub const ENOMEM: c_int = 12;
    /// Device or resource busy.
    pub const EBUSY: c_int = 16;
    /// Exists.
    pub const EEXIST: c_int = 17;
    /// Invalid argument.
    pub const EINVAL: c_int = 22;
    /// No space left.
    pub const ENOSPC: c_int = 28;
    /// Result out of range.
    pub const ERANGE: c_int = 34;
    /// Protocol error.
    pub const EPROTO: c_int = 71;
    /// Value too large.
    pub const EOVERFLOW: c_int = 75;
    /// Message too long (here: size does not match).
    pub const EMSGSIZE: c_int = 90;
    /// Operation not supported.
    pub const EOPNOTSUPP: c_int = 95;
    /// Timed out.
    pub const ETIMEDOUT: c_int = 110;
    /// Structure needs cleaning (here: an inconsistent arena).
    pub const EUCLEAN: c_int = 117;
}

use code::*;

/// The negative errno value for `e`.
pub fn errno(e: &ArenaError) -> c_int {
    -match e {
        ArenaError::Overflow => EOVERFLOW,
        ArenaError::InvalidArgument(_) | ArenaError::Misaligned { .. } => EINVAL,
        ArenaError::OverConstrained(_) => ERANGE,
        ArenaError::NoSpace { .. } => ENOMEM,
        ArenaError::BadFree { allocated: Some(_), .. } => EMSGSIZE,
        ArenaError::BadFree { allocated: None, .. } | ArenaError::BadHandle { .. } => ENOENT,
        ArenaError::SpanOverlap(_) | ArenaError::NotAdjacent(_) => EEXIST,
        ArenaError::TagsExhausted => ENOSPC,
        ArenaError::BadImport(_) => EPROTO,
        ArenaError::SourceBusy | ArenaError::InUse { .. } => EBUSY,
        ArenaError::Injected => EAGAIN,
        ArenaError::Interrupted => EINTR,
        ArenaError::Corrupt { .. } => EUCLEAN,
        ArenaError::Backing(e) => return shim_errno(e),
        ArenaError::Vm(e) => return vm_errno(e),
        _ => EIO,
    }
}

/// The negative errno value for a failure of the page operations: a
/// shortage (of memory for pages, or of address space to reserve) is
/// `-ENOMEM`, as the kernel and `mmap` report it; the rest, which the
/// layers above rule out before they call (a range not reserved, mapped
/// twice, misaligned) or which the OS gives for its own reasons, `-EIO`.
pub fn shim_errno(e: &ShimError) -> c_int {
    -match e {
        ShimError::OutOfMemory(_) | ShimError::OutOfAddressSpace { .. } => ENOMEM,
        ShimError::Os { errno, .. } if *errno == ENOMEM => ENOMEM,
        ShimError::Overflow => EOVERFLOW,
        ShimError::Injected { .. } => EAGAIN,
        _ => EIO,
    }
}

/// The negative errno value for a VM error (`vmspace_vm_*`).
pub fn vm_errno(e: &VmError) -> c_int {
    -match e {
        VmError::Backend(e) => return shim_errno(e),
        VmError::Common(CommonError::Overflow) => EOVERFLOW,
        VmError::Common(CommonError::InvalidArgument(_) | CommonError::Misaligned { .. }) => EINVAL,
        VmError::Common(CommonError::OutOfRange(_)) => ERANGE,
        VmError::Common(CommonError::Corrupt(_)) => EUCLEAN,
        VmError::AlreadyMapped(_) => EEXIST,
        VmError::NotMapped(_) => ENOENT,
        _ => EIO,
    }
}

/// The text of `err` (negative or positive errno), as `vmspace_strerror`
/// returns it: what it means when this API returns it.
pub fn strerror(err: c_int) -> &'static CStr {
    // INT_MIN has no absolute value: an unknown error, not success.
    match err.checked_abs().unwrap_or(c_int::MAX) {
        0 => c"success",
        ENOENT => c"not a live allocation (bad free, or a stale or foreign handle); for a VM, a page of the range is not mapped",
        EINTR => c"the wait for space was ended by a fatal signal (VMSPACE_KILLABLE)",
        EIO => c"the page operations (mmap, or the kernel's page tables) failed",
        EBADF => c"not a live arena or VM (destroyed, or not one at all)",
        EAGAIN => c"injected fault (mtbf)",
        ENOMEM => c"no space: no free segment satisfies the request and no import could supply one; or no memory for pages, or no address space to reserve",
        EBUSY => c"arena busy: other arenas import from it, or it has imported spans",
        EEXIST => c"span overlaps a span the arena already has; for a VM, a page of the range is mapped already",
        EINVAL => c"invalid argument",
        ENOSPC => c"boundary-tag storage exhausted",
        ERANGE => c"over-constrained: the constraints can never be met together; for a VM, a range outside the reservation",
        EPROTO => c"the import callback or source returned an unusable range",
        EOVERFLOW => c"address or size arithmetic overflowed",
        EMSGSIZE => c"bad free: the size does not match the allocation",
        EOPNOTSUPP => c"not supported for this call",
        ETIMEDOUT => c"timed out: no space came back before the wait's time was up",
        EUCLEAN => c"arena or VM inconsistent: check() found a broken invariant",
        _ => c"unknown error",
    }
}

/// [`strerror`] as a C string pointer (static, NUL-terminated).
pub fn strerror_ptr(err: c_int) -> *const c_char {
    cstr_ptr(strerror(err))
}

/// A C string's pointer as C takes it. (Not `CStr::as_ptr`, which the
/// kernel's lints refuse because its `char` is unsigned; only the pointer
/// crosses, so the signedness of `c_char` does not matter.)
pub fn cstr_ptr(s: &CStr) -> *const c_char {
    s.to_bytes_with_nul().as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_reads_either_sign_and_knows_no_int_min() {
        assert_eq!(strerror(0), c"success");
        assert_eq!(strerror(-ENOENT), strerror(ENOENT));
        assert_eq!(strerror(c_int::MIN), c"unknown error");
        assert_eq!(strerror(c_int::MAX), c"unknown error");
        assert_eq!(strerror(-ENOMEM), strerror(-errno(&ArenaError::NoSpace { size: 1 }).abs()));
        assert_eq!(errno(&ArenaError::Interrupted), -EINTR);
        assert_ne!(strerror(EINTR), c"unknown error");
    }
}
