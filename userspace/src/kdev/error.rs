//! Failures of device commands, and the error records they carry turned
//! back into the core's error types, variant for variant, so a test that
//! compares errors compares them the same way against the kernel. Three
//! variants have no code of their own, as no command can return them:
//! [`ArenaError::Stranded`], which a source returns to the arena importing
//! from it and no arena operation returns; [`ArenaError::InUse`], which
//! only teardowns the device does not run return; and
//! [`ArenaError::Interrupted`], as the device never waits. Were a command
//! to return one, it would come back as the record of any error without a
//! code (`ARENA_OTHER`), an `InvalidArgument` naming the device code and
//! the start of its text.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use nix::errno::Errno;
use vmspace::arena::ArenaError;
use vmspace::vm::VmError;
use vmspace::CommonError;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Op, Range, ShimError, Size};

/// A command the device refused: the errno, and the error record when the
/// device filled one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdevError {
    /// The command's name.
    pub command: &'static str,
    /// The errno the ioctl returned.
    pub errno: Errno,
    /// The error record, when the device reached the command's object.
    pub record: Option<Box<WireError>>,
}

impl fmt::Display for KdevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.command, self.errno.desc())?;
        if let Some(r) = &self.record {
            write!(f, " ({})", describe(r))?;
        }
        Ok(())
    }
}

impl std::error::Error for KdevError {}

/// A record in words: the arena's or VM's own message when it is one of
/// theirs, else the device's.
pub fn describe(r: &WireError) -> String {
    match r.chain[0] >> 8 {
        0x02 => decode_arena(r).to_string(),
        0x03 => decode_vm(r).to_string(),
        _ => format!("{:#06x}: {}", r.chain[0], r.message()),
    }
}

/// Distinct messages [`intern`] keeps, at most (the core's own messages are
/// a few dozen; a record is the device's, or any caller's, so its text is
/// not trusted to come from a small set).
const MAX_INTERNED: usize = 1024;

/// The `&'static str` of a message from the device: each distinct one is
/// leaked once, up to [`MAX_INTERNED`] of them; past that, messages not
/// seen before read as one fixed text, so a device (or caller) making up
/// messages cannot grow the process without bound.
fn intern(s: &str) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = seen.get(s) {
        return known;
    }
    if seen.len() >= MAX_INTERNED {
        return "(device message not kept: too many distinct messages)";
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// Reads a record's chain from the outside in.
struct Cursor<'a> {
    r: &'a WireError,
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> u16 {
        let c = self.r.chain.get(self.at).copied().unwrap_or(NONE);
        self.at += 1;
        c
    }
    fn a(&self) -> usize {
        self.r.a as usize
    }
    fn b(&self) -> usize {
        self.r.b as usize
    }
    fn range(&self) -> Range {
        Range::new(Addr(self.a()), Addr(self.b())).unwrap_or(Range::empty(Addr(self.a())))
    }
    fn msg(&self) -> &'static str {
        intern(self.r.message())
    }
    /// A message for a code this client does not know, or a device refusal.
    fn other(&self, code: u16) -> &'static str {
        intern(&format!("device code {code:#06x}: {}", self.r.message()))
    }
}

fn op_of(op: u32) -> Op {
    Op::ALL.get(op as usize).copied().unwrap_or(Op::Map)
}

fn shim(c: &mut Cursor<'_>) -> ShimError {
    match c.next() {
        SHIM_OVERFLOW => ShimError::Overflow,
        SHIM_MISALIGNED => ShimError::Misaligned { value: c.a(), align: c.b() },
        SHIM_INVALID_ARGUMENT => ShimError::InvalidArgument(c.msg()),
        SHIM_NOT_RESERVED => ShimError::NotReserved(c.range()),
        SHIM_ALREADY_MAPPED => ShimError::AlreadyMapped(c.range()),
        SHIM_NOT_MAPPED => ShimError::NotMapped(c.range()),
        SHIM_UNFLUSHED => ShimError::Unflushed(c.range()),
        SHIM_OUT_OF_ADDRESS_SPACE => ShimError::OutOfAddressSpace { size: c.a() },
        SHIM_OUT_OF_MEMORY => ShimError::OutOfMemory(c.range()),
        SHIM_OS => ShimError::Os { op: op_of(c.r.op), errno: c.r.errno },
        SHIM_INJECTED => ShimError::Injected { op: op_of(c.r.op) },
        code => ShimError::InvalidArgument(c.other(code)),
    }
}

fn common(c: &mut Cursor<'_>) -> CommonError {
    match c.next() {
        COMMON_OVERFLOW => CommonError::Overflow,
        COMMON_INVALID_ARGUMENT => CommonError::InvalidArgument(c.msg()),
        COMMON_MISALIGNED => CommonError::Misaligned { value: c.a(), align: c.b() },
        COMMON_OUT_OF_RANGE => CommonError::OutOfRange(c.range()),
        COMMON_CORRUPT => CommonError::Corrupt(c.msg()),
        code => CommonError::InvalidArgument(c.other(code)),
    }
}

fn vm(c: &mut Cursor<'_>) -> VmError {
    match c.next() {
        VM_BACKEND => VmError::Backend(shim(c)),
        VM_COMMON => VmError::Common(common(c)),
        VM_ALREADY_MAPPED => VmError::AlreadyMapped(c.range()),
        VM_NOT_MAPPED => VmError::NotMapped(c.range()),
        DEV_NOT_ACCESSIBLE => {
            VmError::NotMapped(Range::from_size(Addr(c.a()), Size(1)).unwrap_or(c.range()))
        }
        code => VmError::Common(CommonError::InvalidArgument(c.other(code))),
    }
}

fn arena(c: &mut Cursor<'_>) -> ArenaError {
    match c.next() {
        ARENA_OVERFLOW => ArenaError::Overflow,
        ARENA_INVALID_ARGUMENT => ArenaError::InvalidArgument(c.msg()),
        ARENA_MISALIGNED => ArenaError::Misaligned { value: c.a(), align: c.b() },
        ARENA_OVER_CONSTRAINED => ArenaError::OverConstrained(c.msg()),
        ARENA_NO_SPACE => ArenaError::NoSpace { size: c.a() },
        ARENA_BAD_FREE => ArenaError::BadFree {
            addr: Addr(c.a()),
            size: Size(c.b()),
            allocated: (c.r.flags & FLAG_C != 0).then_some(Size(c.r.c as usize)),
        },
        ARENA_BAD_HANDLE => ArenaError::BadHandle { addr: Addr(c.a()), tag: c.b() as u32 },
        ARENA_SPAN_OVERLAP => ArenaError::SpanOverlap(c.range()),
        ARENA_NOT_ADJACENT => ArenaError::NotAdjacent(c.range()),
        ARENA_TAGS_EXHAUSTED => ArenaError::TagsExhausted,
        ARENA_BACKING => ArenaError::Backing(shim(c)),
        ARENA_VM => ArenaError::Vm(vm(c)),
        ARENA_BAD_IMPORT => ArenaError::BadImport(c.range()),
        ARENA_SOURCE_BUSY => ArenaError::SourceBusy,
        ARENA_INJECTED => ArenaError::Injected,
        ARENA_CORRUPT => ArenaError::Corrupt { what: c.msg(), tag: c.a() as u32 },
        // A VM error at the top: the arena's source VM (arena creation).
        code if code >> 8 == 0x03 => {
            c.at -= 1;
            ArenaError::Vm(vm(c))
        }
        code => ArenaError::InvalidArgument(c.other(code)),
    }
}

/// The arena error a record holds (a device refusal becomes an
/// `InvalidArgument` naming it).
pub fn decode_arena(r: &WireError) -> ArenaError {
    arena(&mut Cursor { r, at: 0 })
}

/// The VM error a record holds (a device refusal becomes a
/// `CommonError::InvalidArgument` naming it).
pub fn decode_vm(r: &WireError) -> VmError {
    vm(&mut Cursor { r, at: 0 })
}

impl KdevError {
    /// As an arena error: the record's, or one naming the refusal.
    pub fn arena(&self) -> ArenaError {
        match &self.record {
            Some(r) if r.is_error() => decode_arena(r),
            _ => ArenaError::InvalidArgument(intern(&self.to_string())),
        }
    }

    /// As a VM error: the record's, or one naming the refusal.
    pub fn vm(&self) -> VmError {
        match &self.record {
            Some(r) if r.is_error() => decode_vm(r),
            _ => VmError::Common(CommonError::InvalidArgument(intern(&self.to_string()))),
        }
    }
}
