// SPDX-License-Identifier: MIT OR Apache-2.0

//! `/dev/vmspace_kmod` in the module build: the device of `vmspace_kdev` on
//! the module's committed backends (VMs on committed vmalloc reservations,
//! arena metadata on the page allocator). It has its own name so that it
//! can sit beside the built-in `/dev/vmspace`.

use kernel::prelude::*;
use vmspace_kdev::{Access, DevBackends, DevFile, Limits};

use crate::committed::Committed;
use crate::owned_misc::OwnedMiscDevice;
use crate::{META, OPS};

/// The module's backends for the device.
pub(crate) struct ModuleBackends;

impl DevBackends for ModuleBackends {
    type Meta = Committed;
    type Vm = Committed;

    const DEVICE: &'static str = "vmspace_kmod";

    /// Every reserved byte is committed memory here, and each tag store is
    /// one physically contiguous block (at most 4 MiB): tighter bounds than
    /// the built-in device's.
    const LIMITS: Limits = Limits {
        max_objects: 32,
        max_tags_per_arena: 1 << 15,
        max_tags_per_file: 1 << 17,
        max_reserved: 64 << 20,
        max_mapped: 64 << 20,
        max_io: 1 << 20,
    };
    /// No protection (no exported function changes it), nothing sparse.
    const FEATURES: u32 = 0;

    fn meta() -> &'static Committed {
        &META
    }

    fn vm() -> &'static Committed {
        &OPS
    }

    /// The backend never changes protection: what the VM maps is read-write.
    fn access(_addr: usize) -> Access {
        Access::ReadWrite
    }
}

/// The device's registration, held by the module: its file operations are
/// owned by the module, so `rmmod` is refused while a file is open.
pub(crate) type Registration = Pin<KBox<OwnedMiscDevice<DevFile<ModuleBackends>>>>;

/// Register `/dev/vmspace_kmod`.
pub(crate) fn register() -> Result<Registration> {
    OwnedMiscDevice::register(c"vmspace_kmod", &crate::THIS_MODULE)
}
