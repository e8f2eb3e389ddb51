// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace as a loadable module (`vmspace_kmod.ko`).
//!
//! The sparse vm_area functions the built-in backend uses are not exported to
//! modules, so the module runs the core on module-safe backends instead (see
//! `committed.rs`): the VM layer on committed vmalloc reservations, arena
//! metadata on pages from the page allocator. It says so when loaded. It
//! registers `/dev/vmspace_kmod` (see `device.rs`). Built with
//! `VMSPACE_KUNIT=y` (`--cfg vmspace_kunit`, see `kernel/crates.kbuild`)
//! against a kernel with KUnit built in, it carries KUnit suites, which run
//! when it is loaded; without, it has no test code.

// Case results carry the error behind a failure (for the log); there is no
// heap to box it in, as in the core's own drivers.
#![allow(clippy::result_large_err)]

use kernel::prelude::*;
use vmspace_shim::PageOps;

mod committed;
mod device;
mod owned_misc;
#[cfg(vmspace_kunit)]
mod suites;
mod sys;

module! {
    type: VmspaceModule,
    name: "vmspace_kmod",
    authors: ["vmspace developers"],
    description: "vmspace: virtual address space management (module build, committed vmalloc backend)",
    license: "Dual MIT/GPL",
}

/// The backend of the module's VMs.
pub(crate) static OPS: committed::Committed = committed::Committed::vmalloc();
/// The backend for metadata stores (arena boundary tags and hashes).
pub(crate) static META: committed::Committed = committed::Committed::page_allocator();

struct VmspaceModule {
    _device: device::Registration,
}

impl kernel::Module for VmspaceModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "loaded: module build, VM layer on \"{}\" (reservations are committed: \
             the sparse vm_area API is not exported to modules), metadata on \"{}\"\n",
            OPS.name(),
            META.name()
        );
        let device = device::register()?;
        pr_info!("/dev/vmspace_kmod registered (committed backends, no protection)\n");
        Ok(VmspaceModule { _device: device })
    }
}

impl Drop for VmspaceModule {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
