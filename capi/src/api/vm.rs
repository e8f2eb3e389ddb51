//! The VM layer (native API): reserve address space, map and unmap pages
//! in it, know what is mapped.

use core::ffi::c_int;

use vmspace::vm::Vm;
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

use super::{out, status, Api};
use crate::ctypes::*;
use crate::errno::{code, vm_errno};
use crate::platform::Platform;
use crate::vm_object::VmObj;

/// Flags `vmspace_vm_create` knows (none yet).
const CREATE_FLAGS: c_int = 0;

/// `[addr, addr + size)`, or `-EOVERFLOW` when its end is not
/// representable.
fn range(addr: vmspace_addr_t, size: vmspace_size_t) -> Result<Range, c_int> {
    Range::from_size(Addr(addr), Size(size)).map_err(|_| -code::EOVERFLOW)
}

/// The protection `prot` names (`VMSPACE_PROT_*`), if it names one: write
/// access comes with read access only.
fn protection(prot: c_int) -> Option<Protection> {
    match prot {
        VMSPACE_PROT_NONE => Some(Protection::None),
        VMSPACE_PROT_READ => Some(Protection::Read),
        p if p == VMSPACE_PROT_READ | VMSPACE_PROT_WRITE => Some(Protection::ReadWrite),
        _ => None,
    }
}

/// The VM's description as `vmspace_vm_info` reports it.
pub(crate) fn info<O: PageOps>(vm: &Vm<O>) -> vmspace_vm_info {
    vmspace_vm_info {
        base: vm.base().0,
        size: vm.range().size().0,
        grain: vm.grain().0,
        page_size: vm.page_size().0,
        mapped: vm.mapped().0,
        reserved: vm.reserved().0,
        metadata: vm.metadata_mapped().0,
    }
}

impl<P: Platform> Api<P> {
    /// `vmspace_vm_create`: reserve a VM, stored at `*vmp`; 0 or a
    /// negative errno (then `*vmp` is NULL).
    ///
    /// # Safety
    ///
    /// `vmp` is NULL or writable.
    pub unsafe fn vmspace_vm_create(
        size: vmspace_size_t,
        grain: vmspace_size_t,
        flags: c_int,
        vmp: *mut *mut vmspace_vm_t,
    ) -> c_int {
        let vmp = match out(vmp) {
            Ok(p) => p,
            Err(e) => return e,
        };
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { vmp.as_ptr().write(core::ptr::null_mut()) };
        if flags & !CREATE_FLAGS != 0 {
            return -code::EINVAL;
        }
        match VmObj::<P>::create(size, grain) {
            Ok(o) => {
                // SAFETY: as above.
                unsafe { vmp.as_ptr().write(o.as_ptr().cast()) };
                0
            }
            Err(e) => e,
        }
    }

    /// `vmspace_vm_destroy`: release the reservation and every page in it.
    ///
    /// # Safety
    ///
    /// `vm` is NULL or a live VM (a destroyed one's memory is freed), used
    /// by nobody else during or after the call, and nothing touches memory
    /// in its reservation again.
    pub unsafe fn vmspace_vm_destroy(vm: *mut vmspace_vm_t) -> c_int {
        // SAFETY: the caller's contract.
        unsafe { VmObj::<P>::destroy(vm) }
    }

    /// `vmspace_vm_map`: map (read-write, zeroed) the pages of
    /// `[addr, addr + size)`, none of them mapped.
    ///
    /// # Safety
    ///
    /// `vm` is NULL or a VM, as for every function taking one.
    pub unsafe fn vmspace_vm_map(
        vm: *mut vmspace_vm_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            let r = range(addr, size)?;
            o.with(|v| v.map(r)).map_err(|e| vm_errno(&e))
        })())
    }

    /// `vmspace_vm_unmap`: unmap the pages of `[addr, addr + size)`, all
    /// of them mapped. An unmap the OS refuses part way (Linux's
    /// `mprotect` at `vm.max_map_count`, after the pages were dropped) is
    /// made whole again as far as it can be: the range is made read-write
    /// (the VM records no other protection to put back), though what it
    /// held may be gone; at `vm.max_map_count` the OS may refuse that too,
    /// and a range `vmspace_vm_protect` set apart from its neighbours keeps
    /// its protection (the header says so; round 78 found it).
    ///
    /// # Safety
    ///
    /// `vm` as usual; nothing touches memory in the range until it is
    /// mapped again.
    pub unsafe fn vmspace_vm_unmap(
        vm: *mut vmspace_vm_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            let r = range(addr, size)?;
            o.with(|v| {
                v.unmap(r).map_err(|e| {
                    // Still recorded as mapped: make it so. Should this fail
                    // too, part of the range may stay inaccessible.
                    v.restore_read_write(r, &e);
                    vm_errno(&e)
                })
            })
        })())
    }

    /// `vmspace_vm_protect`: set the access to the pages of
    /// `[addr, addr + size)`, all of them mapped.
    ///
    /// # Safety
    ///
    /// `vm` as usual; nothing accesses the range in a way `prot` forbids
    /// (a fault is the caller's).
    pub unsafe fn vmspace_vm_protect(
        vm: *mut vmspace_vm_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
        prot: c_int,
    ) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            let prot = protection(prot).ok_or(-code::EINVAL)?;
            let r = range(addr, size)?;
            o.with(|v| v.protect(r, prot)).map_err(|e| vm_errno(&e))
        })())
    }

    /// `vmspace_vm_mapped`: 1 when every page of `[addr, addr + size)` is
    /// mapped, 0 when one is not, or a negative errno.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmspace_vm_mapped(
        vm: *mut vmspace_vm_t,
        addr: vmspace_addr_t,
        size: vmspace_size_t,
    ) -> c_int {
        let r = (|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            let r = range(addr, size)?;
            o.with(|v| v.is_range_mapped(r)).map_err(|e| vm_errno(&e))
        })();
        match r {
            Ok(m) => c_int::from(m),
            Err(e) => e,
        }
    }

    /// `vmspace_vm_info`: the VM's range, grain, page size and what is
    /// mapped, into `*infop`.
    ///
    /// # Safety
    ///
    /// `vm` as usual; `infop` is NULL or writable.
    pub unsafe fn vmspace_vm_info(vm: *mut vmspace_vm_t, infop: *mut vmspace_vm_info) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            let infop = out(infop)?;
            let i = o.with(|v| info(v));
            // SAFETY: checked non-null and aligned; writable (caller).
            unsafe { infop.as_ptr().write(i) };
            Ok(())
        })())
    }

    /// `vmspace_vm_trim`: give back the VM's bookkeeping pages that record
    /// nothing mapped; the number given back, or a negative errno.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmspace_vm_trim(vm: *mut vmspace_vm_t) -> c_int {
        // SAFETY: the caller's contract.
        match unsafe { VmObj::<P>::from_ptr(vm) } {
            Ok(o) => match o.with(|v| v.trim()) {
                Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
                Err(e) => vm_errno(&e),
            },
            Err(e) => e,
        }
    }

    /// `vmspace_vm_check`: verify the VM's bookkeeping; 0 or `-EUCLEAN`.
    ///
    /// # Safety
    ///
    /// `vm` as usual.
    pub unsafe fn vmspace_vm_check(vm: *mut vmspace_vm_t) -> c_int {
        status((|| {
            // SAFETY: the caller's contract.
            let o = unsafe { VmObj::<P>::from_ptr(vm) }?;
            o.with(|v| v.check()).map_err(|e| vm_errno(&e))
        })())
    }
}
