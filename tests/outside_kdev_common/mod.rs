//! Helpers the outside reviewer's `/dev/vmspace` suites share
//! (`tests/outside_kdev*.rs`): raw commands that return the errno and the
//! device's error record, and the argument builders.

#![allow(dead_code, reason = "each suite uses some of the helpers")]
#![allow(
    clippy::result_large_err,
    reason = "the helpers return the device's error record whole: it is what the tests inspect"
)]

use std::os::fd::RawFd;

use nix::errno::Errno;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::kdev::DevVm;
use vmspace_workload::VmTarget;

/// `ioctl(fd, cmd, arg)`: the errno it failed with, if it did.
pub fn raw<T>(fd: RawFd, cmd: u32, arg: *mut T) -> Result<(), Errno> {
    // SAFETY: `arg` points to a live `T` of the size the command names; the
    // user buffers inside it are live or bogus on purpose (the kernel must
    // refuse those with EFAULT).
    let rc = unsafe { libc::ioctl(fd, cmd as _, arg) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A plain arena through raw `ARENA_CREATE`: its id, or the errno and record.
pub fn create(fd: RawFd, a: ArenaCreateArgs) -> Result<u32, (Errno, WireError)> {
    let mut a = a;
    match raw(fd, cmd::ARENA_CREATE, &mut a) {
        Ok(()) => Ok(a.id),
        Err(e) => Err((e, a.err)),
    }
}

pub fn arena_args(quantum: u64, max_tags: u64) -> ArenaCreateArgs {
    ArenaCreateArgs {
        quantum,
        max_tags,
        default_policy: POLICY_INSTANT_FIT,
        ..ArenaCreateArgs::ZERO
    }
}

pub fn check_arena(fd: RawFd, id: u32) -> Result<(), (Errno, WireError)> {
    let mut a = CheckArgs { id, ..CheckArgs::ZERO };
    raw(fd, cmd::ARENA_CHECK, &mut a).map_err(|e| (e, a.err))
}

pub fn alloc(fd: RawFd, a: AllocArgs) -> Result<(u64, u32), (Errno, WireError)> {
    let mut a = a;
    match raw(fd, cmd::ARENA_ALLOC, &mut a) {
        Ok(()) => Ok((a.addr, a.tag)),
        Err(e) => Err((e, a.err)),
    }
}

pub fn span(
    fd: RawFd,
    id: u32,
    base: u64,
    size: u64,
    extend: bool,
) -> Result<(), (Errno, WireError)> {
    let mut a = SpanArgs { id, base, size, ..SpanArgs::ZERO };
    let c = if extend { cmd::ARENA_EXTEND } else { cmd::ARENA_ADD };
    raw(fd, c, &mut a).map_err(|e| (e, a.err))
}

/// The (errno, chain) of a refusal, for compact assertions.
pub fn refusal<T>(r: Result<T, (Errno, WireError)>) -> (Errno, [u16; 4]) {
    match r {
        Ok(_) => panic!("the command succeeded; a refusal was expected"),
        Err((e, w)) => (e, w.chain),
    }
}

pub const BAD_FIELD: [u16; 4] = [DEV_BAD_FIELD, 0, 0, 0];

pub fn io(
    fd: RawFd,
    id: u32,
    write: bool,
    addr: u64,
    buf: *const u8,
    len: u64,
) -> Result<(), (Errno, WireError)> {
    let mut a = VmIoArgs { id, addr, len, buf: buf as u64, ..VmIoArgs::ZERO };
    let c = if write { cmd::VM_WRITE } else { cmd::VM_READ };
    raw(fd, c, &mut a).map_err(|e| (e, a.err))
}

pub fn range(vm: &DevVm, off: usize, pages: usize) -> Range {
    let page = vm.page_size().0;
    Range::from_size(Addr(vm.base().0 + off * page), Size(pages * page)).unwrap()
}
