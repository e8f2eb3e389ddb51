//! The command numbers: `_IOR`/`_IOWR` of [`IOCTL_TYPE`](crate::IOCTL_TYPE)
//! with the argument structure of [`args`](crate::args) each names, so an
//! argument of the wrong size is a different (unknown) command.
//!
//! | nr | command | argument |
//! |---|---|---|
//! | 0x00 | [`VERSION`] | [`VersionArgs`] |
//! | 0x01 | [`ARENA_CREATE`] | [`ArenaCreateArgs`] |
//! | 0x02 | [`DESTROY`] | [`DestroyArgs`] |
//! | 0x03 | [`ARENA_ADD`] | [`SpanArgs`] |
//! | 0x04 | [`ARENA_EXTEND`] | [`SpanArgs`] |
//! | 0x05 | [`ARENA_ALLOC`] | [`AllocArgs`] |
//! | 0x06 | [`ARENA_FREE`] | [`FreeArgs`] |
//! | 0x07 | [`ARENA_FREE_HANDLE`] | [`FreeArgs`] |
//! | 0x08 | [`ARENA_FREE_PART`] | [`FreeArgs`] |
//! | 0x09 | [`ARENA_RESIZE`] | [`FreeArgs`] |
//! | 0x0a | [`ARENA_LOOKUP`] | [`LookupArgs`] |
//! | 0x0b | [`ARENA_WALK`] | [`ListArgs`] |
//! | 0x0c | [`ARENA_STATS`] | [`ArenaStatsArgs`] |
//! | 0x0d | [`ARENA_CHECK`] | [`CheckArgs`] |
//! | 0x0e | [`ARENA_FREE_DEFERRED`] | [`FreeArgs`] |
//! | 0x0f | [`ARENA_FLUSHED`] | [`FreeArgs`] |
//! | 0x10 | [`VM_RESERVE`] | [`VmReserveArgs`] |
//! | 0x11 | [`VM_MAP`] | [`VmRangeArgs`] |
//! | 0x12 | [`VM_UNMAP`] | [`VmRangeArgs`] |
//! | 0x13 | [`VM_PROTECT`] | [`VmRangeArgs`] |
//! | 0x14 | [`VM_STATS`] | [`VmStatsArgs`] |
//! | 0x15 | [`VM_RUNS`] | [`ListArgs`] |
//! | 0x16 | [`VM_CHECK`] | [`CheckArgs`] |
//! | 0x17 | [`VM_READ`] | [`VmIoArgs`] |
//! | 0x18 | [`VM_WRITE`] | [`VmIoArgs`] |
//! | 0x19 | [`ARENA_FREE_HANDLE_DEFERRED`] | [`FreeArgs`] |

use crate::args::{
    AllocArgs, ArenaCreateArgs, ArenaStatsArgs, CheckArgs, DestroyArgs, FreeArgs, ListArgs,
    LookupArgs, SpanArgs, VersionArgs, VmIoArgs, VmRangeArgs, VmReserveArgs, VmStatsArgs,
};
use crate::ioc::{ior, iowr};

/// Command numbers (the `nr` field), for the kernel's own `_IOWR`.
pub mod nr {
    /// [`VERSION`](super::VERSION).
    pub const VERSION: u32 = 0x00;
    /// [`ARENA_CREATE`](super::ARENA_CREATE).
    pub const ARENA_CREATE: u32 = 0x01;
    /// [`DESTROY`](super::DESTROY).
    pub const DESTROY: u32 = 0x02;
    /// [`ARENA_ADD`](super::ARENA_ADD).
    pub const ARENA_ADD: u32 = 0x03;
    /// [`ARENA_EXTEND`](super::ARENA_EXTEND).
    pub const ARENA_EXTEND: u32 = 0x04;
    /// [`ARENA_ALLOC`](super::ARENA_ALLOC).
    pub const ARENA_ALLOC: u32 = 0x05;
    /// [`ARENA_FREE`](super::ARENA_FREE).
    pub const ARENA_FREE: u32 = 0x06;
    /// [`ARENA_FREE_HANDLE`](super::ARENA_FREE_HANDLE).
    pub const ARENA_FREE_HANDLE: u32 = 0x07;
    /// [`ARENA_FREE_PART`](super::ARENA_FREE_PART).
    pub const ARENA_FREE_PART: u32 = 0x08;
    /// [`ARENA_RESIZE`](super::ARENA_RESIZE).
    pub const ARENA_RESIZE: u32 = 0x09;
    /// [`ARENA_LOOKUP`](super::ARENA_LOOKUP).
    pub const ARENA_LOOKUP: u32 = 0x0a;
    /// [`ARENA_WALK`](super::ARENA_WALK).
    pub const ARENA_WALK: u32 = 0x0b;
    /// [`ARENA_STATS`](super::ARENA_STATS).
    pub const ARENA_STATS: u32 = 0x0c;
    /// [`ARENA_CHECK`](super::ARENA_CHECK).
    pub const ARENA_CHECK: u32 = 0x0d;
    /// [`ARENA_FREE_DEFERRED`](super::ARENA_FREE_DEFERRED).
    pub const ARENA_FREE_DEFERRED: u32 = 0x0e;
    /// [`ARENA_FLUSHED`](super::ARENA_FLUSHED).
    pub const ARENA_FLUSHED: u32 = 0x0f;
    /// [`VM_RESERVE`](super::VM_RESERVE).
    pub const VM_RESERVE: u32 = 0x10;
    /// [`VM_MAP`](super::VM_MAP).
    pub const VM_MAP: u32 = 0x11;
    /// [`VM_UNMAP`](super::VM_UNMAP).
    pub const VM_UNMAP: u32 = 0x12;
    /// [`VM_PROTECT`](super::VM_PROTECT).
    pub const VM_PROTECT: u32 = 0x13;
    /// [`VM_STATS`](super::VM_STATS).
    pub const VM_STATS: u32 = 0x14;
    /// [`VM_RUNS`](super::VM_RUNS).
    pub const VM_RUNS: u32 = 0x15;
    /// [`VM_CHECK`](super::VM_CHECK).
    pub const VM_CHECK: u32 = 0x16;
    /// [`VM_READ`](super::VM_READ).
    pub const VM_READ: u32 = 0x17;
    /// [`VM_WRITE`](super::VM_WRITE).
    pub const VM_WRITE: u32 = 0x18;
    /// [`ARENA_FREE_HANDLE_DEFERRED`](super::ARENA_FREE_HANDLE_DEFERRED).
    pub const ARENA_FREE_HANDLE_DEFERRED: u32 = 0x19;
}

/// The device's ABI version, page size, features and bounds.
pub const VERSION: u32 = ior::<VersionArgs>(nr::VERSION);
/// Make an arena, optionally importing from a VM of its own.
pub const ARENA_CREATE: u32 = iowr::<ArenaCreateArgs>(nr::ARENA_CREATE);
/// Destroy an arena or a VM, reporting what it still held.
pub const DESTROY: u32 = iowr::<DestroyArgs>(nr::DESTROY);
/// `Arena::add`.
pub const ARENA_ADD: u32 = iowr::<SpanArgs>(nr::ARENA_ADD);
/// `Arena::extend`.
pub const ARENA_EXTEND: u32 = iowr::<SpanArgs>(nr::ARENA_EXTEND);
/// `Arena::alloc`, `xalloc`, `alloc_handle`, `xalloc_handle`.
pub const ARENA_ALLOC: u32 = iowr::<AllocArgs>(nr::ARENA_ALLOC);
/// `Arena::free`.
pub const ARENA_FREE: u32 = iowr::<FreeArgs>(nr::ARENA_FREE);
/// `Arena::free_handle`.
pub const ARENA_FREE_HANDLE: u32 = iowr::<FreeArgs>(nr::ARENA_FREE_HANDLE);
/// `Arena::free_part`.
pub const ARENA_FREE_PART: u32 = iowr::<FreeArgs>(nr::ARENA_FREE_PART);
/// `Arena::resize`.
pub const ARENA_RESIZE: u32 = iowr::<FreeArgs>(nr::ARENA_RESIZE);
/// `Arena::lookup`, `lookup_handle`.
pub const ARENA_LOOKUP: u32 = iowr::<LookupArgs>(nr::ARENA_LOOKUP);
/// `Arena::walk`, into a user buffer of [`WireSegment`](crate::args::WireSegment)s.
pub const ARENA_WALK: u32 = iowr::<ListArgs>(nr::ARENA_WALK);
/// Sizes, counters, live, spans, largest free, fragmentation, histogram.
pub const ARENA_STATS: u32 = iowr::<ArenaStatsArgs>(nr::ARENA_STATS);
/// `Arena::check` (and the source's).
pub const ARENA_CHECK: u32 = iowr::<CheckArgs>(nr::ARENA_CHECK);
/// `Arena::free_deferred`: freed but not allocatable again until
/// [`ARENA_FLUSHED`].
pub const ARENA_FREE_DEFERRED: u32 = iowr::<FreeArgs>(nr::ARENA_FREE_DEFERRED);
/// `Arena::flushed`: everything freed with [`ARENA_FREE_DEFERRED`] or
/// [`ARENA_FREE_HANDLE_DEFERRED`] so far becomes free.
pub const ARENA_FLUSHED: u32 = iowr::<FreeArgs>(nr::ARENA_FLUSHED);
/// `Vm::reserve`.
pub const VM_RESERVE: u32 = iowr::<VmReserveArgs>(nr::VM_RESERVE);
/// `Vm::map`.
pub const VM_MAP: u32 = iowr::<VmRangeArgs>(nr::VM_MAP);
/// `Vm::unmap`.
pub const VM_UNMAP: u32 = iowr::<VmRangeArgs>(nr::VM_UNMAP);
/// `Vm::protect`.
pub const VM_PROTECT: u32 = iowr::<VmRangeArgs>(nr::VM_PROTECT);
/// Base, limit, reserved, mapped, metadata, runs.
pub const VM_STATS: u32 = iowr::<VmStatsArgs>(nr::VM_STATS);
/// `Vm::mapped_runs`, into a user buffer of [`WireRange`](crate::args::WireRange)s.
pub const VM_RUNS: u32 = iowr::<ListArgs>(nr::VM_RUNS);
/// `Vm::check`.
pub const VM_CHECK: u32 = iowr::<CheckArgs>(nr::VM_CHECK);
/// Copy mapped, readable pages of a VM to a user buffer.
pub const VM_READ: u32 = iowr::<VmIoArgs>(nr::VM_READ);
/// Copy a user buffer into mapped, writable pages of a VM.
pub const VM_WRITE: u32 = iowr::<VmIoArgs>(nr::VM_WRITE);
/// `Arena::free_handle_deferred`: [`ARENA_FREE_HANDLE`] into the
/// freed-but-not-flushed state, until [`ARENA_FLUSHED`].
pub const ARENA_FREE_HANDLE_DEFERRED: u32 = iowr::<FreeArgs>(nr::ARENA_FREE_HANDLE_DEFERRED);

/// Every command, in number order.
pub const ALL: [u32; 26] = [
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc;

    #[test]
    fn commands_are_distinct_and_carry_their_sizes() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(ioc::ty(*a), crate::IOCTL_TYPE);
            assert!(ALL[i + 1..].iter().all(|b| ioc::nr(*b) != ioc::nr(*a)));
        }
        assert_eq!(ioc::size(ARENA_ALLOC), core::mem::size_of::<AllocArgs>());
        assert_eq!(ioc::dir(VERSION), ioc::READ);
        assert_eq!(ioc::dir(VM_WRITE), ioc::READ | ioc::WRITE);
    }
}
