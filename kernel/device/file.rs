// SPDX-License-Identifier: MIT OR Apache-2.0

//! The misc device and its open files: `open` makes an empty table of
//! objects, `ioctl` reads the argument, runs the command under the file's
//! lock and writes the argument back (with its error record), `release`
//! destroys everything the file still owns.

use kernel::bindings;
use kernel::error::code::{ENOTTY, EPERM};
use kernel::fs::File;
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;
use vmspace_abi::args::{DestroyArgs, VersionArgs};
use vmspace_abi::error::WireError;
use vmspace_abi::ABI_VERSION;
use vmspace_shim::PageOps;

use crate::arena_cmd::{self, FreeKind};
use crate::backends::DevBackends;
use crate::objects::Objects;
use crate::vm_cmd::{self, RangeKind};
use crate::wire::{self, UserArg, WithErr};

/// One open file of the device: the objects it owns, behind its lock.
#[pin_data]
pub struct DevFile<B: DevBackends> {
    #[pin]
    objects: Mutex<Objects<B>>,
}

/// Register the device as `/dev/<name>` on backends `B`.
pub fn register<B: DevBackends>(name: &'static CStr) -> impl PinInit<MiscDeviceRegistration<DevFile<B>>, Error> {
    MiscDeviceRegistration::register(MiscDeviceOptions { name })
}

impl<B: DevBackends> DevFile<B> {
    /// Run command `f` on the argument at user address `arg`: read it, clear
    /// its error record, write it back so cleared (a probe: an argument the
    /// caller can read but the kernel cannot write, in read-only memory, is
    /// `EFAULT` before anything is done, not after the command took effect
    /// with its results lost), run `f` under the lock, write it back.
    ///
    /// Only another thread of the caller unmapping or write-protecting the
    /// argument while the command runs can still make the last write fail
    /// after `f` took effect; that is `EFAULT` too, and what `f` did stays
    /// (held allocations are freed when the file is closed).
    fn call<T: WithErr>(&self, arg: usize, f: impl FnOnce(&mut Objects<B>, &mut T) -> Result) -> Result<isize> {
        let mut user = UserArg::<T>::new(arg);
        let mut args = user.read()?;
        *args.err() = WireError::ZERO;
        UserArg::<T>::new(arg).write(args)?;
        let result = f(&mut self.objects.lock(), &mut args);
        user.write(args)?;
        result.map(|()| 0)
    }

    fn version(arg: usize) -> Result<isize> {
        let l = B::LIMITS;
        let mut v = VersionArgs {
            abi_version: ABI_VERSION,
            page_size: B::vm().page_size().0 as u32,
            features: B::FEATURES,
            max_objects: l.max_objects as u32,
            max_tags_per_arena: l.max_tags_per_arena as u64,
            max_tags_per_file: l.max_tags_per_file as u64,
            max_reserved_per_file: l.max_reserved as u64,
            max_mapped_per_file: l.max_mapped as u64,
            max_io: l.max_io as u64,
            ..VersionArgs::ZERO
        };
        let name = B::vm().name().as_bytes();
        let n = name.len().min(v.backend.len() - 1);
        v.backend[..n].copy_from_slice(&name[..n]);
        UserArg::<VersionArgs>::new(arg).write(v)?;
        Ok(0)
    }

    fn destroy(objs: &mut Objects<B>, a: &mut DestroyArgs) -> Result {
        if a._pad != 0 || a.leaked != 0 || a.leaked_bytes != 0 {
            return Err(crate::encode::device(
                &mut a.err,
                vmspace_abi::error::DEV_BAD_FIELD,
                "_pad and the outputs must be zero",
                0,
                0,
            ));
        }
        let object = objs.remove(&mut a.err, a.id)?;
        let leak = object.held();
        a.leaked = leak.count as u64;
        a.leaked_bytes = leak.bytes as u64;
        drop(object);
        Ok(())
    }

    fn dispatch(&self, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            wire::VERSION => Self::version(arg),
            wire::ARENA_CREATE => self.call(arg, arena_cmd::create),
            wire::DESTROY => self.call(arg, Self::destroy),
            wire::ARENA_ADD => self.call(arg, |o, a| arena_cmd::span(o, a, false)),
            wire::ARENA_EXTEND => self.call(arg, |o, a| arena_cmd::span(o, a, true)),
            wire::ARENA_ALLOC => self.call(arg, arena_cmd::alloc),
            wire::ARENA_FREE => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::ByAddress)),
            wire::ARENA_FREE_HANDLE => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::Handle)),
            wire::ARENA_FREE_PART => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::Part)),
            wire::ARENA_RESIZE => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::Resize)),
            wire::ARENA_LOOKUP => self.call(arg, arena_cmd::lookup),
            wire::ARENA_WALK => self.call(arg, arena_cmd::walk),
            wire::ARENA_STATS => self.call(arg, arena_cmd::stats),
            wire::ARENA_CHECK => self.call(arg, arena_cmd::check),
            wire::ARENA_FREE_DEFERRED => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::Deferred)),
            wire::ARENA_FLUSHED => self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::Flushed)),
            wire::ARENA_FREE_HANDLE_DEFERRED => {
                self.call(arg, |o, a| arena_cmd::free(o, a, FreeKind::HandleDeferred))
            }
            wire::VM_RESERVE => self.call(arg, vm_cmd::reserve),
            wire::VM_MAP => self.call(arg, |o, a| vm_cmd::range(o, a, RangeKind::Map)),
            wire::VM_UNMAP => self.call(arg, |o, a| vm_cmd::range(o, a, RangeKind::Unmap)),
            wire::VM_PROTECT => self.call(arg, |o, a| vm_cmd::range(o, a, RangeKind::Protect)),
            wire::VM_STATS => self.call(arg, vm_cmd::stats),
            wire::VM_RUNS => self.call(arg, vm_cmd::runs),
            wire::VM_CHECK => self.call(arg, vm_cmd::check),
            wire::VM_READ => self.call(arg, |o, a| vm_cmd::io(o, a, false)),
            wire::VM_WRITE => self.call(arg, |o, a| vm_cmd::io(o, a, true)),
            _ => Err(ENOTTY),
        }
    }
}

#[vtable]
impl<B: DevBackends> MiscDevice for DevFile<B> {
    type Ptr = Pin<KBox<Self>>;

    /// A file of no objects, for `CAP_SYS_ADMIN` only (whatever the node's
    /// mode): the device hands out kernel addresses and makes the kernel
    /// reserve address space and map pages for the caller. The file and its
    /// objects' records are charged to the caller's memory cgroup, and on
    /// the built-in device (its backend made accounted) so are the pages
    /// mapped for it and the backends' metadata pages; the module's
    /// committed backends charge no one (nor are page tables and
    /// `vm_struct`s charged). Bounded per file by
    /// [`Limits`](crate::backends::Limits); across files, mostly by the
    /// cgroup.
    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        // SAFETY: `capable` has no preconditions (it looks at the current
        // task's credentials).
        if !unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) } {
            return Err(EPERM);
        }
        KBox::try_pin_init(try_pin_init!(DevFile { objects <- new_mutex!(Objects::new()) }), GFP_KERNEL_ACCOUNT)
    }

    /// Destroy everything the file owns (logging what was still held).
    fn release(device: Pin<KBox<Self>>, _file: &File) {
        drop(device);
    }

    fn ioctl(me: Pin<&DevFile<B>>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.dispatch(cmd, arg)
    }
}
