// SPDX-License-Identifier: MIT OR Apache-2.0

//! The VM commands: reserve, map, unmap, protect, statistics, mapped runs,
//! `check()`, and reads and writes of mapped pages through the file (so
//! user space can see what the kernel's pages hold).

use kernel::error::code::EFAULT;
use kernel::prelude::*;
use kernel::uaccess::{UserPtr, UserSlice};
use vmspace::vm::Vm;
use vmspace_abi::args::*;
use vmspace_abi::error::{WireError, DEV_BAD_FIELD, DEV_LIMIT, DEV_NOT_ACCESSIBLE};
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

use crate::backends::{Access, DevBackends};
use crate::encode;
use crate::objects::{reservation_charge, Object, Objects, VmObj};
use crate::wire::{usize_of, Wire};

fn bad(w: &mut WireError, what: &str) -> Error {
    encode::device(w, DEV_BAD_FIELD, what, 0, 0)
}

fn field(w: &mut WireError, v: u64, what: &str) -> Result<usize> {
    usize_of(v).ok_or_else(|| bad(w, what))
}

/// `VM_RESERVE`.
pub(crate) fn reserve<B: DevBackends>(objs: &mut Objects<B>, a: &mut VmReserveArgs) -> Result {
    let w = &mut a.err;
    if a._pad != 0 || a.id != 0 || a.base != 0 || a.limit != 0 {
        return Err(bad(w, "_pad and the outputs must be zero"));
    }
    let size = field(w, a.size, "size")?;
    let grain = match a.grain {
        0 => B::vm().page_size().0,
        g => field(w, g, "grain")?,
    };
    let charge = reservation_charge(size, grain);
    let slot = objs.admit(w, 0, charge)?;
    let vm = Vm::reserve(B::vm(), Size(size), Size(grain)).map_err(|e| encode::vm(w, &e))?;
    a.base = vm.base().0 as u64;
    a.limit = vm.limit().0 as u64;
    a.id = objs.insert(slot, Object::Vm(VmObj { vm, charge }))?;
    Ok(())
}

/// Which range command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeKind {
    /// `VM_MAP`.
    Map,
    /// `VM_UNMAP`.
    Unmap,
    /// `VM_PROTECT`.
    Protect,
}

/// `VM_MAP`, `VM_UNMAP`, `VM_PROTECT`.
pub(crate) fn range<B: DevBackends>(objs: &mut Objects<B>, a: &mut VmRangeArgs, kind: RangeKind) -> Result {
    let w = &mut a.err;
    let prot = match (kind, a.prot) {
        (RangeKind::Protect, PROT_NONE) => Some(Protection::None),
        (RangeKind::Protect, PROT_READ) => Some(Protection::Read),
        (RangeKind::Protect, PROT_READ_WRITE) => Some(Protection::ReadWrite),
        (RangeKind::Protect, _) => return Err(bad(w, "prot")),
        (_, 0) => None,
        _ => return Err(bad(w, "prot must be zero but for VM_PROTECT")),
    };
    let (addr, size) = (field(w, a.addr, "addr")?, field(w, a.size, "size")?);
    let mapped = objs.mapped();
    let v = objs.vm(w, a.id)?;
    let r = Range::from_size(Addr(addr), Size(size)).map_err(|_| bad(w, "addr + size overflows"))?;
    // A map inside the VM must fit the file's bound (one outside it is the
    // VM's to refuse).
    let max = B::LIMITS.max_mapped;
    if kind == RangeKind::Map && v.vm.range().contains(&r) && mapped.saturating_add(size) > max {
        let all = mapped.saturating_add(size) as u64;
        return Err(encode::device(w, DEV_LIMIT, "mapped bytes per file", max as u64, all));
    }
    let result = match (kind, prot) {
        (RangeKind::Map, _) => v.vm.map(r),
        (RangeKind::Unmap, _) => v.vm.unmap(r),
        (RangeKind::Protect, Some(p)) => v.vm.protect(r, p),
        (RangeKind::Protect, None) => return Err(bad(w, "prot")),
    };
    result.map_err(|e| encode::vm(w, &e))
}

/// `VM_STATS`.
pub(crate) fn stats<B: DevBackends>(objs: &mut Objects<B>, a: &mut VmStatsArgs) -> Result {
    let id = a.id;
    let mut err = WireError::ZERO;
    let inputs = VmStatsArgs { id: 0, err: WireError::ZERO, ..*a };
    if inputs != VmStatsArgs::ZERO {
        let e = bad(&mut err, "the outputs must be zero");
        *a = VmStatsArgs { id, err, ..VmStatsArgs::ZERO };
        return Err(e);
    }
    let v = match objs.vm(&mut err, id) {
        Ok(v) => v,
        Err(e) => {
            *a = VmStatsArgs { id, err, ..VmStatsArgs::ZERO };
            return Err(e);
        }
    };
    let vm = &v.vm;
    *a = VmStatsArgs {
        id,
        page_size: vm.page_size().0 as u32,
        base: vm.base().0 as u64,
        limit: vm.limit().0 as u64,
        reserved: vm.reserved().0 as u64,
        mapped: vm.mapped().0 as u64,
        metadata_mapped: vm.metadata_mapped().0 as u64,
        runs: vm.mapped_runs().count() as u64,
        err,
    };
    Ok(())
}

/// `VM_RUNS`: the mapped runs in address order, the first `cap` written to
/// `buf`; `count` says how many there are.
pub(crate) fn runs<B: DevBackends>(objs: &mut Objects<B>, a: &mut ListArgs) -> Result {
    let w = &mut a.err;
    if a.kinds != 0 || a.count != 0 {
        return Err(bad(w, "kinds and count (an output) must be zero"));
    }
    let buf = field(w, a.buf, "buf")?;
    let v = objs.vm(w, a.id)?;
    let count = v.vm.mapped_runs().count();
    let n = usize_of(a.cap).unwrap_or(usize::MAX).min(count);
    a.count = count as u64;
    if n == 0 {
        return Ok(());
    }
    let mut out = UserSlice::new(UserPtr::from_addr(buf), n * core::mem::size_of::<WireRange>()).writer();
    for r in v.vm.mapped_runs().take(n) {
        let wr = WireRange { base: r.base().0 as u64, limit: r.limit().0 as u64 };
        out.write(&Wire(wr)).map_err(|_| EFAULT)?;
    }
    Ok(())
}

/// `VM_CHECK`.
pub(crate) fn check<B: DevBackends>(objs: &mut Objects<B>, a: &mut CheckArgs) -> Result {
    let w = &mut a.err;
    if a._pad != 0 {
        return Err(bad(w, "_pad must be zero"));
    }
    let v = objs.vm(w, a.id)?;
    v.vm.check().map_err(|e| encode::vm(w, &e))
}

/// `VM_READ` (`write` false) and `VM_WRITE`: copy between the user buffer
/// and `[addr, addr + len)` of the VM, every page of which must be mapped
/// with the access the copy needs (checked first, page by page, on the
/// kernel's page tables; the file's lock keeps it so during the copy). A
/// write is copied in whole before any of the VM changes, so a user buffer
/// that faults (-EFAULT) changes nothing.
pub(crate) fn io<B: DevBackends>(objs: &mut Objects<B>, a: &mut VmIoArgs, write: bool) -> Result {
    let w = &mut a.err;
    if a._pad != 0 {
        return Err(bad(w, "_pad must be zero"));
    }
    let (addr, len, buf) = (field(w, a.addr, "addr")?, field(w, a.len, "len")?, field(w, a.buf, "buf")?);
    if len > B::LIMITS.max_io {
        return Err(bad(w, "len is more than max_io"));
    }
    let v = objs.vm(w, a.id)?;
    let Ok(r) = Range::from_size(Addr(addr), Size(len)) else {
        return Err(bad(w, "addr + len overflows"));
    };
    if !v.vm.range().contains(&r) {
        return Err(encode::vm(w, &vmspace::vm::VmError::Common(vmspace::CommonError::OutOfRange(r))));
    }
    let page = v.vm.page_size().0;
    let mut p = r.base().0 & !(page - 1);
    while p < r.limit().0 {
        let ok = v.vm.is_mapped(Addr(p))
            && match B::access(p) {
                Access::ReadWrite => true,
                Access::Read => !write,
                Access::None => false,
            };
        if !ok {
            let what = if write { "page not mapped writable" } else { "page not mapped readable" };
            return Err(encode::device(w, DEV_NOT_ACCESSIBLE, what, p as u64, 0));
        }
        p += page;
    }
    if len == 0 {
        return Ok(());
    }
    let user = UserSlice::new(UserPtr::from_addr(buf), len);
    if write {
        // Through a bounce buffer: a copy from user memory that faults part
        // way (-EFAULT) must leave the VM as it was, and `read_slice` into
        // the pages would leave what it copied and zero the rest.
        let mut bounce = KVVec::new();
        user.read_all(&mut bounce, GFP_KERNEL_ACCOUNT)?;
        // SAFETY: `r` lies in pages of the VM mapped read-write (checked
        // above), which only this file reaches and its lock (held) keeps so;
        // nothing else refers to them while the slice lives.
        let dst = unsafe { core::slice::from_raw_parts_mut(r.base().as_ptr::<u8>(), len) };
        dst.copy_from_slice(&bounce);
        Ok(())
    } else {
        // SAFETY: `r` lies in mapped, readable pages of the VM (checked
        // above), kept so under the file's lock; nothing writes them meanwhile.
        let src = unsafe { core::slice::from_raw_parts(r.base().as_ptr::<u8>().cast_const(), len) };
        user.writer().write_slice(src)
    }
}
