//! [`VmTarget`]: what the VM sequences ([`vm_ops`](crate::vm_ops) and the
//! VM model tests) need of a VM, so the same sequences drive the
//! in-process [`Vm`] and a VM in the kernel, reached through
//! `/dev/vmspace` (`vmspace_user::kdev::DevVm`).

use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

use vmspace::vm::{MappedRuns, Vm, VmError};

/// A VM the sequences can drive: [`Vm`]'s operations and observations, with
/// the same meanings and errors, and word access to its mapped pages.
pub trait VmTarget {
    /// What [`mapped_runs`](Self::mapped_runs) returns.
    type Runs<'a>: Iterator<Item = Range>
    where
        Self: 'a;

    /// [`Vm::base`].
    fn base(&self) -> Addr;
    /// [`Vm::range`].
    fn range(&self) -> Range;
    /// [`Vm::page_size`].
    fn page_size(&self) -> Size;
    /// [`Vm::reserved`].
    fn reserved(&self) -> Size;
    /// [`Vm::mapped`].
    fn mapped(&self) -> Size;
    /// [`Vm::is_mapped`].
    fn is_mapped(&self, addr: Addr) -> bool;
    /// [`Vm::map`].
    fn map(&mut self, range: Range) -> Result<(), VmError>;
    /// [`Vm::unmap`].
    fn unmap(&mut self, range: Range) -> Result<(), VmError>;
    /// [`Vm::protect`].
    fn protect(&mut self, range: Range, prot: Protection) -> Result<(), VmError>;
    /// [`Vm::mapped_runs`].
    fn mapped_runs(&self) -> Self::Runs<'_>;
    /// [`Vm::check`].
    fn check(&self) -> Result<(), VmError>;

    /// The 8-byte word at `addr`. A target that checks the address itself
    /// (the device) returns its verdict as an error; [`Vm`] trusts it.
    ///
    /// # Safety
    ///
    /// `addr` is 8-byte aligned, in a page of this VM that is mapped and
    /// readable, and nothing else writes that word meanwhile.
    unsafe fn read_word(&self, addr: Addr) -> Result<u64, VmError>;

    /// Write the 8-byte word at `addr`, as [`read_word`](Self::read_word)
    /// reads it.
    ///
    /// # Safety
    ///
    /// `addr` is 8-byte aligned, in a page of this VM that is mapped
    /// read-write, and nothing else accesses that word meanwhile.
    unsafe fn write_word(&mut self, addr: Addr, value: u64) -> Result<(), VmError>;
}

impl<P: PageOps> VmTarget for Vm<P> {
    type Runs<'a>
        = MappedRuns<'a, P>
    where
        Self: 'a;

    fn base(&self) -> Addr {
        Vm::base(self)
    }
    fn range(&self) -> Range {
        Vm::range(self)
    }
    fn page_size(&self) -> Size {
        Vm::page_size(self)
    }
    fn reserved(&self) -> Size {
        Vm::reserved(self)
    }
    fn mapped(&self) -> Size {
        Vm::mapped(self)
    }
    fn is_mapped(&self, addr: Addr) -> bool {
        Vm::is_mapped(self, addr)
    }
    fn map(&mut self, range: Range) -> Result<(), VmError> {
        Vm::map(self, range)
    }
    fn unmap(&mut self, range: Range) -> Result<(), VmError> {
        Vm::unmap(self, range)
    }
    fn protect(&mut self, range: Range, prot: Protection) -> Result<(), VmError> {
        Vm::protect(self, range, prot)
    }
    fn mapped_runs(&self) -> MappedRuns<'_, P> {
        Vm::mapped_runs(self)
    }
    fn check(&self) -> Result<(), VmError> {
        Vm::check(self)
    }
    unsafe fn read_word(&self, addr: Addr) -> Result<u64, VmError> {
        // SAFETY: the caller guarantees an aligned word in a mapped,
        // readable page that nobody writes meanwhile.
        Ok(unsafe { addr.as_ptr::<u64>().read_volatile() })
    }
    unsafe fn write_word(&mut self, addr: Addr, value: u64) -> Result<(), VmError> {
        // SAFETY: the caller guarantees an aligned word in a page mapped
        // read-write that nobody else accesses meanwhile.
        unsafe { addr.as_ptr::<u64>().write_volatile(value) };
        Ok(())
    }
}
