//! [`DevVm`]: a VM in the kernel, behind `/dev/vmspace`, as a [`VmTarget`],
//! with reads and writes of its mapped pages through the file.

use nix::errno::Errno;
use vmspace::vm::VmError;
use vmspace_abi::args::*;
use vmspace_shim::{Addr, Protection, Range, Size};
use vmspace_workload::VmTarget;

use super::list::read_list;
use super::object::DevObject;
use super::{call, ioctl, Device, KdevError};

/// A VM in the kernel, owned by one open file of the device; destroyed
/// (unmapped and released) when dropped (in the process that made it: a
/// `fork()` child shares the file, and its copy's drop leaves the VM to
/// the parent).
#[derive(Debug)]
pub struct DevVm {
    obj: DevObject,
    range: Range,
}

impl DevVm {
    pub(super) fn reserve(dev: Device, size: usize, grain: usize) -> Result<DevVm, KdevError> {
        let mut a = VmReserveArgs { size: size as u64, grain: grain as u64, ..VmReserveArgs::ZERO };
        let fd = dev.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("VM_RESERVE", &mut a, |a| a.err, |p| unsafe { ioctl::vm_reserve(fd, p) })?;
        // Owned from here: a refusal below destroys it.
        let obj = DevObject::new(dev, a.id);
        // The range sizes what is read back from the device (`runs`): it
        // must be what was asked for, the size rounded up to the grain (the
        // page when 0), on a grain boundary, and no more than a file may
        // reserve.
        let unit = grain.max(obj.device().page_size()).max(1);
        let asked = size.checked_next_multiple_of(unit);
        let range = Range::new(Addr(a.base as usize), Addr(a.limit as usize))
            .filter(|r| Some(r.size().0) == asked && r.base().0 % unit == 0)
            .filter(|r| r.size().0 as u64 <= obj.device().info().max_reserved_per_file);
        match range {
            Some(range) => Ok(DevVm { obj, range }),
            None => Err(KdevError { command: "VM_RESERVE", errno: Errno::EPROTO, record: None }),
        }
    }

    /// The VM's id in its file.
    pub fn id(&self) -> u32 {
        self.obj.id()
    }

    /// The device file that owns it.
    pub fn device(&self) -> &Device {
        self.obj.device()
    }

    /// Everything `VM_STATS` reports.
    pub fn stats(&self) -> Result<VmStatsArgs, KdevError> {
        let mut a = VmStatsArgs { id: self.obj.id(), ..VmStatsArgs::ZERO };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("VM_STATS", &mut a, |a| a.err, |p| unsafe { ioctl::vm_stats(fd, p) })?;
        Ok(a)
    }

    /// The mapped runs, in address order. A count the device answers above
    /// what the VM can hold (every other page mapped) is refused
    /// (`EPROTO`).
    pub fn runs(&self) -> Result<Vec<Range>, KdevError> {
        let page = self.obj.device().page_size().max(1);
        let pages = self.range.size().0 / page;
        // Runs are separated by unmapped pages, and never outnumber the
        // pages a file may map.
        let mapped = usize::try_from(self.obj.device().info().max_mapped_per_file / page as u64)
            .unwrap_or(usize::MAX);
        let most = (pages / 2 + 1).min(mapped.saturating_add(1));
        let list = read_list("VM_RUNS", WireRange::ZERO, 64, 16, most, |buf| {
            let mut a = ListArgs {
                id: self.obj.id(),
                buf: buf.as_mut_ptr() as u64,
                cap: buf.len() as u64,
                ..ListArgs::ZERO
            };
            let fd = self.obj.fd();
            // SAFETY: `p` points to `a`, whose `buf` has room for `cap` entries.
            call("VM_RUNS", &mut a, |a| a.err, |p| unsafe { ioctl::vm_runs(fd, p) })?;
            Ok(a.count)
        })?;
        let range = |r: &WireRange| {
            Range::new(Addr(r.base as usize), Addr(r.limit as usize))
                .unwrap_or(Range::empty(Addr(0)))
        };
        Ok(list.iter().map(range).collect())
    }

    fn range_cmd(
        &mut self,
        name: &'static str,
        range: Range,
        prot: u32,
        cmd: unsafe fn(libc::c_int, *mut VmRangeArgs) -> nix::Result<libc::c_int>,
    ) -> Result<(), VmError> {
        let mut a = VmRangeArgs {
            id: self.obj.id(),
            prot,
            addr: range.base().0 as u64,
            size: range.size().0 as u64,
            ..VmRangeArgs::ZERO
        };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the argument of `cmd`, one of the range
        // commands (which all take a `VmRangeArgs`).
        call(name, &mut a, |a| a.err, |p| unsafe { cmd(fd, p) }).map_err(|e| e.vm())
    }

    fn io(&self, addr: Addr, buf: *mut u8, len: usize, write: bool) -> Result<(), KdevError> {
        let mut a = VmIoArgs {
            id: self.obj.id(),
            addr: addr.0 as u64,
            len: len as u64,
            buf: buf as u64,
            ..VmIoArgs::ZERO
        };
        let fd = self.obj.fd();
        if write {
            // SAFETY: `p` points to `a`, whose `buf` holds `len` readable bytes.
            call("VM_WRITE", &mut a, |a| a.err, |p| unsafe { ioctl::vm_write(fd, p) })
        } else {
            // SAFETY: `p` points to `a`, whose `buf` has room for `len` bytes.
            call("VM_READ", &mut a, |a| a.err, |p| unsafe { ioctl::vm_read(fd, p) })
        }
    }

    /// Copy `buf.len()` bytes of the VM at `addr` (all in mapped, readable
    /// pages) into `buf`.
    pub fn read(&self, addr: Addr, buf: &mut [u8]) -> Result<(), KdevError> {
        self.io(addr, buf.as_mut_ptr(), buf.len(), false)
    }

    /// Copy `buf` into the VM at `addr` (all in pages mapped read-write).
    pub fn write(&mut self, addr: Addr, buf: &[u8]) -> Result<(), KdevError> {
        self.io(addr, buf.as_ptr().cast_mut(), buf.len(), true)
    }

    /// Destroy the VM now; what it still had mapped (pages and bytes). The
    /// handle's share of the device file goes either way (the file closes
    /// with its last handle); should `DESTROY` fail, the VM goes when the
    /// file closes.
    pub fn destroy(self) -> Result<(u64, u64), KdevError> {
        self.obj.destroy()
    }
}

impl VmTarget for DevVm {
    type Runs<'a> = std::vec::IntoIter<Range>;

    fn base(&self) -> Addr {
        self.range.base()
    }
    fn range(&self) -> Range {
        self.range
    }
    fn page_size(&self) -> Size {
        Size(self.obj.device().page_size())
    }
    fn reserved(&self) -> Size {
        self.stats().map_or(Size(0), |s| Size(s.reserved as usize))
    }
    fn mapped(&self) -> Size {
        self.stats().map_or(Size(0), |s| Size(s.mapped as usize))
    }
    fn is_mapped(&self, addr: Addr) -> bool {
        self.runs().is_ok_and(|runs| runs.iter().any(|r| r.base() <= addr && addr < r.limit()))
    }
    fn map(&mut self, range: Range) -> Result<(), VmError> {
        self.range_cmd("VM_MAP", range, 0, ioctl::vm_map)
    }
    fn unmap(&mut self, range: Range) -> Result<(), VmError> {
        self.range_cmd("VM_UNMAP", range, 0, ioctl::vm_unmap)
    }
    fn protect(&mut self, range: Range, prot: Protection) -> Result<(), VmError> {
        let p = match prot {
            Protection::None => PROT_NONE,
            Protection::Read => PROT_READ,
            Protection::ReadWrite => PROT_READ_WRITE,
        };
        self.range_cmd("VM_PROTECT", range, p, ioctl::vm_protect)
    }
    fn mapped_runs(&self) -> Self::Runs<'_> {
        // A failed listing lists nothing; `check` reports what is wrong.
        self.runs().unwrap_or_default().into_iter()
    }
    fn check(&self) -> Result<(), VmError> {
        let mut a = CheckArgs { id: self.obj.id(), ..CheckArgs::ZERO };
        let fd = self.obj.fd();
        // SAFETY: `p` points to `a`, the command's argument.
        call("VM_CHECK", &mut a, |a| a.err, |p| unsafe { ioctl::vm_check(fd, p) })
            .map_err(|e| e.vm())
    }
    /// Through `VM_READ`: the kernel checks the page, so this is safe
    /// whatever `addr` is.
    unsafe fn read_word(&self, addr: Addr) -> Result<u64, VmError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).map_err(|e| e.vm())?;
        Ok(u64::from_ne_bytes(b))
    }
    /// Through `VM_WRITE`: the kernel checks the page, so this is safe
    /// whatever `addr` is.
    unsafe fn write_word(&mut self, addr: Addr, value: u64) -> Result<(), VmError> {
        self.write(addr, &value.to_ne_bytes()).map_err(|e| e.vm())
    }
}
