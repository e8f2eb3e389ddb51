// SPDX-License-Identifier: MIT OR Apache-2.0

//! Errors into the ABI's error records (`vmspace_abi::error`), variant for
//! variant, and the errno each command returns with them.

use core::fmt::{self, Write};

use kernel::error::code::{EFAULT, EINVAL, EIO, ENOMEM, ENOSPC};
use kernel::prelude::*;
use vmspace::arena::ArenaError;
use vmspace::vm::VmError;
use vmspace::CommonError;
use vmspace_abi::error::*;
use vmspace_shim::{Range, ShimError};

/// Appends codes to a record's chain and sets the innermost payload.
struct Chain<'a> {
    w: &'a mut WireError,
    depth: usize,
}

impl<'a> Chain<'a> {
    fn new(w: &'a mut WireError) -> Self {
        *w = WireError::ZERO;
        Chain { w, depth: 0 }
    }

    fn push(&mut self, code: u16) -> &mut Self {
        if let Some(slot) = self.w.chain.get_mut(self.depth) {
            *slot = code;
            self.depth += 1;
        }
        self
    }

    fn ab(&mut self, a: usize, b: usize) -> &mut Self {
        self.w.a = a as u64;
        self.w.b = b as u64;
        self
    }

    fn range(&mut self, r: Range) -> &mut Self {
        self.ab(r.base().0, r.limit().0)
    }

    fn msg(&mut self, m: &str) -> &mut Self {
        self.w.set_message(m);
        self
    }

    /// The text of `e` as the message (for variants this ABI does not know).
    fn display(&mut self, e: &dyn fmt::Display) -> &mut Self {
        let mut buf = Text { buf: [0; 80], len: 0 };
        let _ = write!(buf, "{e}");
        let n = buf.len;
        self.w.msg = buf.buf;
        self.w.msg_len = n as u32;
        self
    }
}

/// A fixed buffer that keeps what fits.
struct Text {
    buf: [u8; 80],
    len: usize,
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                break;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

fn shim(c: &mut Chain<'_>, e: &ShimError) {
    match *e {
        ShimError::Overflow => c.push(SHIM_OVERFLOW),
        ShimError::Misaligned { value, align } => c.push(SHIM_MISALIGNED).ab(value, align),
        ShimError::InvalidArgument(m) => c.push(SHIM_INVALID_ARGUMENT).msg(m),
        ShimError::NotReserved(r) => c.push(SHIM_NOT_RESERVED).range(r),
        ShimError::AlreadyMapped(r) => c.push(SHIM_ALREADY_MAPPED).range(r),
        ShimError::NotMapped(r) => c.push(SHIM_NOT_MAPPED).range(r),
        ShimError::Unflushed(r) => c.push(SHIM_UNFLUSHED).range(r),
        ShimError::OutOfAddressSpace { size } => c.push(SHIM_OUT_OF_ADDRESS_SPACE).ab(size, 0),
        ShimError::OutOfMemory(r) => c.push(SHIM_OUT_OF_MEMORY).range(r),
        ShimError::Os { op, errno } => {
            c.w.op = op as u32;
            c.w.errno = errno;
            c.push(SHIM_OS)
        }
        ShimError::Injected { op } => {
            c.w.op = op as u32;
            c.push(SHIM_INJECTED)
        }
        _ => c.push(SHIM_OTHER).display(e),
    };
}

fn common(c: &mut Chain<'_>, e: &CommonError) {
    match *e {
        CommonError::Overflow => c.push(COMMON_OVERFLOW),
        CommonError::InvalidArgument(m) => c.push(COMMON_INVALID_ARGUMENT).msg(m),
        CommonError::Misaligned { value, align } => c.push(COMMON_MISALIGNED).ab(value, align),
        CommonError::OutOfRange(r) => c.push(COMMON_OUT_OF_RANGE).range(r),
        CommonError::Corrupt(m) => c.push(COMMON_CORRUPT).msg(m),
        _ => c.push(COMMON_OTHER).display(e),
    };
}

fn vm_chain(c: &mut Chain<'_>, e: &VmError) {
    match e {
        VmError::Backend(s) => shim(c.push(VM_BACKEND), s),
        VmError::Common(x) => common(c.push(VM_COMMON), x),
        VmError::AlreadyMapped(r) => {
            c.push(VM_ALREADY_MAPPED).range(*r);
        }
        VmError::NotMapped(r) => {
            c.push(VM_NOT_MAPPED).range(*r);
        }
        _ => {
            // A variant this ABI does not know: its text, under the VM layer.
            c.push(VM_COMMON).push(COMMON_OTHER).display(e);
        }
    }
}

fn arena_chain(c: &mut Chain<'_>, e: &ArenaError) {
    match *e {
        ArenaError::Overflow => c.push(ARENA_OVERFLOW),
        ArenaError::InvalidArgument(m) => c.push(ARENA_INVALID_ARGUMENT).msg(m),
        ArenaError::Misaligned { value, align } => c.push(ARENA_MISALIGNED).ab(value, align),
        ArenaError::OverConstrained(m) => c.push(ARENA_OVER_CONSTRAINED).msg(m),
        ArenaError::NoSpace { size } => c.push(ARENA_NO_SPACE).ab(size, 0),
        ArenaError::BadFree { addr, size, allocated } => {
            c.push(ARENA_BAD_FREE).ab(addr.0, size.0);
            if let Some(a) = allocated {
                c.w.c = a.0 as u64;
                c.w.flags = FLAG_C;
            }
            c
        }
        ArenaError::BadHandle { addr, tag } => c.push(ARENA_BAD_HANDLE).ab(addr.0, tag as usize),
        ArenaError::SpanOverlap(r) => c.push(ARENA_SPAN_OVERLAP).range(r),
        ArenaError::NotAdjacent(r) => c.push(ARENA_NOT_ADJACENT).range(r),
        ArenaError::TagsExhausted => c.push(ARENA_TAGS_EXHAUSTED),
        ArenaError::Backing(ref s) => {
            shim(c.push(ARENA_BACKING), s);
            c
        }
        ArenaError::Vm(ref v) => {
            vm_chain(c.push(ARENA_VM), v);
            c
        }
        ArenaError::BadImport(r) => c.push(ARENA_BAD_IMPORT).range(r),
        ArenaError::SourceBusy => c.push(ARENA_SOURCE_BUSY),
        ArenaError::Injected => c.push(ARENA_INJECTED),
        ArenaError::Corrupt { what, tag } => c.push(ARENA_CORRUPT).msg(what).ab(tag as usize, 0),
        _ => c.push(ARENA_OTHER).display(e),
    };
}

/// The errno of a backend error: its own when it has one, else `ENOMEM`.
fn shim_errno(e: &ShimError) -> Error {
    match *e {
        ShimError::Os { errno, .. } if errno < 0 => Error::from_errno(errno),
        ShimError::Misaligned { .. } | ShimError::InvalidArgument(_) | ShimError::Overflow => EINVAL,
        _ => ENOMEM,
    }
}

/// The errno of a VM error.
fn vm_errno(e: &VmError) -> Error {
    match e {
        VmError::Backend(s) => shim_errno(s),
        VmError::Common(CommonError::Corrupt(_)) => EIO,
        _ => EINVAL,
    }
}

/// Record `e` in `w`; the errno to return with it.
pub(crate) fn arena(w: &mut WireError, e: &ArenaError) -> Error {
    arena_chain(&mut Chain::new(w), e);
    match e {
        ArenaError::NoSpace { .. } | ArenaError::TagsExhausted => ENOSPC,
        ArenaError::Backing(s) | ArenaError::Stranded { error: s, .. } => shim_errno(s),
        ArenaError::Vm(v) => vm_errno(v),
        ArenaError::BadImport(_) | ArenaError::SourceBusy => ENOMEM,
        ArenaError::Injected | ArenaError::Corrupt { .. } => EIO,
        _ => EINVAL,
    }
}

/// Record `e` in `w`; the errno to return with it.
pub(crate) fn vm(w: &mut WireError, e: &VmError) -> Error {
    vm_chain(&mut Chain::new(w), e);
    vm_errno(e)
}

/// Record a refusal of the device itself (`DEV_*`) in `w`, with message
/// `what` and payload `a`, `b`; the errno to return with it.
pub(crate) fn device(w: &mut WireError, code: u16, what: &str, a: u64, b: u64) -> Error {
    let mut c = Chain::new(w);
    c.push(code).msg(what);
    c.w.a = a;
    c.w.b = b;
    match code {
        DEV_LIMIT => ENOSPC,
        DEV_NOT_ACCESSIBLE => EFAULT,
        _ => EINVAL,
    }
}
