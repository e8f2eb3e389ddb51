//! The device's commands as `nix` ioctl functions, each from the number and
//! argument type `vmspace_abi` defines (checked against the ABI's own
//! numbers below).

use vmspace_abi::args::{
    AllocArgs, ArenaCreateArgs, ArenaStatsArgs, CheckArgs, DestroyArgs, FreeArgs, ListArgs,
    LookupArgs, SpanArgs, VersionArgs, VmIoArgs, VmRangeArgs, VmReserveArgs, VmStatsArgs,
};
use vmspace_abi::cmd::nr;
use vmspace_abi::IOCTL_TYPE;

nix::ioctl_read!(version, IOCTL_TYPE, nr::VERSION, VersionArgs);
nix::ioctl_readwrite!(arena_create, IOCTL_TYPE, nr::ARENA_CREATE, ArenaCreateArgs);
nix::ioctl_readwrite!(destroy, IOCTL_TYPE, nr::DESTROY, DestroyArgs);
nix::ioctl_readwrite!(arena_add, IOCTL_TYPE, nr::ARENA_ADD, SpanArgs);
nix::ioctl_readwrite!(arena_extend, IOCTL_TYPE, nr::ARENA_EXTEND, SpanArgs);
nix::ioctl_readwrite!(arena_alloc, IOCTL_TYPE, nr::ARENA_ALLOC, AllocArgs);
nix::ioctl_readwrite!(arena_free, IOCTL_TYPE, nr::ARENA_FREE, FreeArgs);
nix::ioctl_readwrite!(arena_free_handle, IOCTL_TYPE, nr::ARENA_FREE_HANDLE, FreeArgs);
nix::ioctl_readwrite!(arena_free_part, IOCTL_TYPE, nr::ARENA_FREE_PART, FreeArgs);
nix::ioctl_readwrite!(arena_resize, IOCTL_TYPE, nr::ARENA_RESIZE, FreeArgs);
nix::ioctl_readwrite!(arena_lookup, IOCTL_TYPE, nr::ARENA_LOOKUP, LookupArgs);
nix::ioctl_readwrite!(arena_walk, IOCTL_TYPE, nr::ARENA_WALK, ListArgs);
nix::ioctl_readwrite!(arena_stats, IOCTL_TYPE, nr::ARENA_STATS, ArenaStatsArgs);
nix::ioctl_readwrite!(arena_check, IOCTL_TYPE, nr::ARENA_CHECK, CheckArgs);
nix::ioctl_readwrite!(arena_free_deferred, IOCTL_TYPE, nr::ARENA_FREE_DEFERRED, FreeArgs);
nix::ioctl_readwrite!(arena_flushed, IOCTL_TYPE, nr::ARENA_FLUSHED, FreeArgs);
nix::ioctl_readwrite!(vm_reserve, IOCTL_TYPE, nr::VM_RESERVE, VmReserveArgs);
nix::ioctl_readwrite!(vm_map, IOCTL_TYPE, nr::VM_MAP, VmRangeArgs);
nix::ioctl_readwrite!(vm_unmap, IOCTL_TYPE, nr::VM_UNMAP, VmRangeArgs);
nix::ioctl_readwrite!(vm_protect, IOCTL_TYPE, nr::VM_PROTECT, VmRangeArgs);
nix::ioctl_readwrite!(vm_stats, IOCTL_TYPE, nr::VM_STATS, VmStatsArgs);
nix::ioctl_readwrite!(vm_runs, IOCTL_TYPE, nr::VM_RUNS, ListArgs);
nix::ioctl_readwrite!(vm_check, IOCTL_TYPE, nr::VM_CHECK, CheckArgs);
nix::ioctl_readwrite!(vm_read, IOCTL_TYPE, nr::VM_READ, VmIoArgs);
nix::ioctl_readwrite!(vm_write, IOCTL_TYPE, nr::VM_WRITE, VmIoArgs);
nix::ioctl_readwrite!(
    arena_free_handle_deferred,
    IOCTL_TYPE,
    nr::ARENA_FREE_HANDLE_DEFERRED,
    FreeArgs
);

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;
    use vmspace_abi::cmd;

    #[test]
    fn nix_and_the_abi_agree_on_every_number() {
        let rw = |n: u32, size: usize| nix::request_code_readwrite!(IOCTL_TYPE, n, size) as u32;
        assert_eq!(
            nix::request_code_read!(IOCTL_TYPE, nr::VERSION, size_of::<VersionArgs>()) as u32,
            cmd::VERSION
        );
        let pairs = [
            (cmd::ARENA_CREATE, rw(nr::ARENA_CREATE, size_of::<ArenaCreateArgs>())),
            (cmd::DESTROY, rw(nr::DESTROY, size_of::<DestroyArgs>())),
            (cmd::ARENA_ADD, rw(nr::ARENA_ADD, size_of::<SpanArgs>())),
            (cmd::ARENA_EXTEND, rw(nr::ARENA_EXTEND, size_of::<SpanArgs>())),
            (cmd::ARENA_ALLOC, rw(nr::ARENA_ALLOC, size_of::<AllocArgs>())),
            (cmd::ARENA_FREE, rw(nr::ARENA_FREE, size_of::<FreeArgs>())),
            (cmd::ARENA_FREE_HANDLE, rw(nr::ARENA_FREE_HANDLE, size_of::<FreeArgs>())),
            (cmd::ARENA_FREE_PART, rw(nr::ARENA_FREE_PART, size_of::<FreeArgs>())),
            (cmd::ARENA_RESIZE, rw(nr::ARENA_RESIZE, size_of::<FreeArgs>())),
            (cmd::ARENA_LOOKUP, rw(nr::ARENA_LOOKUP, size_of::<LookupArgs>())),
            (cmd::ARENA_WALK, rw(nr::ARENA_WALK, size_of::<ListArgs>())),
            (cmd::ARENA_STATS, rw(nr::ARENA_STATS, size_of::<ArenaStatsArgs>())),
            (cmd::ARENA_CHECK, rw(nr::ARENA_CHECK, size_of::<CheckArgs>())),
            (cmd::ARENA_FREE_DEFERRED, rw(nr::ARENA_FREE_DEFERRED, size_of::<FreeArgs>())),
            (cmd::ARENA_FLUSHED, rw(nr::ARENA_FLUSHED, size_of::<FreeArgs>())),
            (cmd::VM_RESERVE, rw(nr::VM_RESERVE, size_of::<VmReserveArgs>())),
            (cmd::VM_MAP, rw(nr::VM_MAP, size_of::<VmRangeArgs>())),
            (cmd::VM_UNMAP, rw(nr::VM_UNMAP, size_of::<VmRangeArgs>())),
            (cmd::VM_PROTECT, rw(nr::VM_PROTECT, size_of::<VmRangeArgs>())),
            (cmd::VM_STATS, rw(nr::VM_STATS, size_of::<VmStatsArgs>())),
            (cmd::VM_RUNS, rw(nr::VM_RUNS, size_of::<ListArgs>())),
            (cmd::VM_CHECK, rw(nr::VM_CHECK, size_of::<CheckArgs>())),
            (cmd::VM_READ, rw(nr::VM_READ, size_of::<VmIoArgs>())),
            (cmd::VM_WRITE, rw(nr::VM_WRITE, size_of::<VmIoArgs>())),
            (
                cmd::ARENA_FREE_HANDLE_DEFERRED,
                rw(nr::ARENA_FREE_HANDLE_DEFERRED, size_of::<FreeArgs>()),
            ),
        ];
        for (abi, nix) in pairs {
            assert_eq!(abi, nix, "{abi:#x}");
        }
    }
}
