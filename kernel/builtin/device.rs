// SPDX-License-Identifier: MIT OR Apache-2.0

//! `/dev/vmspace` in the built-in build: the device of `vmspace_kdev` on
//! the sparse vmalloc backend (metadata and VMs alike), registered at boot.

use kernel::miscdevice::MiscDeviceRegistration;
use kernel::prelude::*;
use vmspace_abi::args::{FEATURE_PROTECT, FEATURE_SPARSE};
use vmspace_kdev::{Access, DevBackends, DevFile, Limits};

use crate::protect;
use crate::sparse::SparseVmalloc;

/// The device works for the tasks that call it: their pages are charged to
/// their memory cgroups.
static OPS: SparseVmalloc = SparseVmalloc::accounted();

/// The built-in build's backends for the device.
pub(crate) struct Builtin;

impl DevBackends for Builtin {
    type Meta = SparseVmalloc;
    type Vm = SparseVmalloc;

    const DEVICE: &'static str = "vmspace";

    /// Reservations are address space only (pages are committed when
    /// mapped), so a file may reserve much more than it may map.
    const LIMITS: Limits = Limits {
        max_objects: 32,
        max_tags_per_arena: 1 << 16,
        max_tags_per_file: 1 << 18,
        max_reserved: 1 << 30,
        max_mapped: 64 << 20,
        max_io: 1 << 20,
    };
    const FEATURES: u32 = FEATURE_PROTECT | FEATURE_SPARSE;

    fn meta() -> &'static SparseVmalloc {
        &OPS
    }

    fn vm() -> &'static SparseVmalloc {
        &OPS
    }

    fn access(addr: usize) -> Access {
        match protect::access(addr) {
            protect::Access::ReadWrite => Access::ReadWrite,
            protect::Access::Read => Access::Read,
            protect::Access::None | protect::Access::Huge => Access::None,
        }
    }
}

/// The registered device; dropping it (never, for built-in code)
/// unregisters it.
pub(crate) struct Device {
    _registration: Pin<KBox<MiscDeviceRegistration<DevFile<Builtin>>>>,
}

impl kernel::Module for Device {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registration = KBox::pin_init(vmspace_kdev::register::<Builtin>(c"vmspace"), GFP_KERNEL)?;
        pr_info!("/dev/vmspace registered (built-in, sparse vmalloc backend)\n");
        Ok(Device { _registration: registration })
    }
}
