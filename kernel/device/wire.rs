// SPDX-License-Identifier: MIT OR Apache-2.0

//! The boundary with user space: argument structures of `vmspace_abi` read
//! and written through `kernel::uaccess`, and the command numbers built with
//! `kernel::ioctl`, checked at compile time against the ABI crate's.

use kernel::ioctl::{_IOR, _IOWR};
use kernel::prelude::*;
use kernel::transmute::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter};
use vmspace_abi::args::{
    AllocArgs, ArenaCreateArgs, ArenaStatsArgs, CheckArgs, DestroyArgs, FreeArgs, ListArgs, LookupArgs, SpanArgs,
    VersionArgs, VmIoArgs, VmRangeArgs, VmReserveArgs, VmStatsArgs,
};
use vmspace_abi::cmd::{self, nr};
use vmspace_abi::error::WireError;
use vmspace_abi::{Pod, IOCTL_TYPE};

/// A value of an ABI structure as bytes crossing the boundary.
#[repr(transparent)]
pub(crate) struct Wire<T>(pub(crate) T);

// SAFETY: `T: Pod`: a `#[repr(C)]` structure of integers without padding, so
// every byte pattern is a valid value (and `Wire` is transparent over it).
unsafe impl<T: Pod> FromBytes for Wire<T> {}

// SAFETY: `T: Pod`: no padding, so every byte of a value is initialised.
unsafe impl<T: Pod> AsBytes for Wire<T> {}

/// An argument structure with an error record.
pub(crate) trait WithErr: Pod {
    /// Its error record.
    fn err(&mut self) -> &mut WireError;
}

macro_rules! with_err {
    ($($t:ty),*) => {$(
        impl WithErr for $t {
            fn err(&mut self) -> &mut WireError {
                &mut self.err
            }
        }
    )*};
}

with_err!(
    AllocArgs,
    ArenaCreateArgs,
    ArenaStatsArgs,
    CheckArgs,
    DestroyArgs,
    FreeArgs,
    ListArgs,
    LookupArgs,
    SpanArgs,
    VmIoArgs,
    VmRangeArgs,
    VmReserveArgs,
    VmStatsArgs
);

/// The argument of a command at user address `arg`: read it, and write it
/// back when done.
pub(crate) struct UserArg<T: Pod> {
    reader: UserSliceReader,
    writer: UserSliceWriter,
    _t: core::marker::PhantomData<T>,
}

impl<T: Pod> UserArg<T> {
    /// The argument at `arg`, of exactly `size_of::<T>()` bytes.
    pub(crate) fn new(arg: usize) -> Self {
        let (reader, writer) = UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>()).reader_writer();
        UserArg { reader, writer, _t: core::marker::PhantomData }
    }

    /// Read it (`EFAULT` if user memory is not there).
    pub(crate) fn read(&mut self) -> Result<T> {
        Ok(self.reader.read::<Wire<T>>()?.0)
    }

    /// Write `value` back (`EFAULT` if user memory is not there).
    pub(crate) fn write(mut self, value: T) -> Result {
        self.writer.write(&Wire(value))
    }
}

/// A `u64` from user space as a `usize`, or `None` when it does not fit.
pub(crate) fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

// The command numbers, with the kernel's own ioctl helpers.
pub(crate) const VERSION: u32 = _IOR::<VersionArgs>(IOCTL_TYPE, nr::VERSION);
pub(crate) const ARENA_CREATE: u32 = _IOWR::<ArenaCreateArgs>(IOCTL_TYPE, nr::ARENA_CREATE);
pub(crate) const DESTROY: u32 = _IOWR::<DestroyArgs>(IOCTL_TYPE, nr::DESTROY);
pub(crate) const ARENA_ADD: u32 = _IOWR::<SpanArgs>(IOCTL_TYPE, nr::ARENA_ADD);
pub(crate) const ARENA_EXTEND: u32 = _IOWR::<SpanArgs>(IOCTL_TYPE, nr::ARENA_EXTEND);
pub(crate) const ARENA_ALLOC: u32 = _IOWR::<AllocArgs>(IOCTL_TYPE, nr::ARENA_ALLOC);
pub(crate) const ARENA_FREE: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FREE);
pub(crate) const ARENA_FREE_HANDLE: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FREE_HANDLE);
pub(crate) const ARENA_FREE_PART: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FREE_PART);
pub(crate) const ARENA_RESIZE: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_RESIZE);
pub(crate) const ARENA_LOOKUP: u32 = _IOWR::<LookupArgs>(IOCTL_TYPE, nr::ARENA_LOOKUP);
pub(crate) const ARENA_WALK: u32 = _IOWR::<ListArgs>(IOCTL_TYPE, nr::ARENA_WALK);
pub(crate) const ARENA_STATS: u32 = _IOWR::<ArenaStatsArgs>(IOCTL_TYPE, nr::ARENA_STATS);
pub(crate) const ARENA_CHECK: u32 = _IOWR::<CheckArgs>(IOCTL_TYPE, nr::ARENA_CHECK);
pub(crate) const ARENA_FREE_DEFERRED: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FREE_DEFERRED);
pub(crate) const ARENA_FLUSHED: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FLUSHED);
pub(crate) const VM_RESERVE: u32 = _IOWR::<VmReserveArgs>(IOCTL_TYPE, nr::VM_RESERVE);
pub(crate) const VM_MAP: u32 = _IOWR::<VmRangeArgs>(IOCTL_TYPE, nr::VM_MAP);
pub(crate) const VM_UNMAP: u32 = _IOWR::<VmRangeArgs>(IOCTL_TYPE, nr::VM_UNMAP);
pub(crate) const VM_PROTECT: u32 = _IOWR::<VmRangeArgs>(IOCTL_TYPE, nr::VM_PROTECT);
pub(crate) const VM_STATS: u32 = _IOWR::<VmStatsArgs>(IOCTL_TYPE, nr::VM_STATS);
pub(crate) const VM_RUNS: u32 = _IOWR::<ListArgs>(IOCTL_TYPE, nr::VM_RUNS);
pub(crate) const VM_CHECK: u32 = _IOWR::<CheckArgs>(IOCTL_TYPE, nr::VM_CHECK);
pub(crate) const VM_READ: u32 = _IOWR::<VmIoArgs>(IOCTL_TYPE, nr::VM_READ);
pub(crate) const VM_WRITE: u32 = _IOWR::<VmIoArgs>(IOCTL_TYPE, nr::VM_WRITE);
pub(crate) const ARENA_FREE_HANDLE_DEFERRED: u32 = _IOWR::<FreeArgs>(IOCTL_TYPE, nr::ARENA_FREE_HANDLE_DEFERRED);

/// The kernel's numbers, in the order of the ABI crate's `cmd::ALL`.
const KERNEL: [u32; 26] = [
    VERSION,
    ARENA_CREATE,
    DESTROY,
    ARENA_ADD,
    ARENA_EXTEND,
    ARENA_ALLOC,
    ARENA_FREE,
    ARENA_FREE_HANDLE,
    ARENA_FREE_PART,
    ARENA_RESIZE,
    ARENA_LOOKUP,
    ARENA_WALK,
    ARENA_STATS,
    ARENA_CHECK,
    ARENA_FREE_DEFERRED,
    ARENA_FLUSHED,
    VM_RESERVE,
    VM_MAP,
    VM_UNMAP,
    VM_PROTECT,
    VM_STATS,
    VM_RUNS,
    VM_CHECK,
    VM_READ,
    VM_WRITE,
    ARENA_FREE_HANDLE_DEFERRED,
];

const fn same(a: &[u32; 26], b: &[u32; 26]) -> bool {
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(same(&KERNEL, &cmd::ALL), "kernel::ioctl and vmspace_abi disagree on a command number");
