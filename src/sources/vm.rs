//! A [`Source`] backed by a [`Vm`]: imports are mapped memory.

use vmspace_shim::{PageOps, Range, Size};

use crate::arena::{Arena, ArenaError, Constraints, NoSource, Source, Store};
use crate::vm::Vm;

/// Hands out page-aligned ranges of a [`Vm`], mapping them on import and
/// unmapping them when they are given back. Which parts of the VM are in use
/// is tracked by an inner arena (instant fit, quantum = page size).
///
/// # Invariants
///
/// The inner arena has exactly one span, the VM's client range; the ranges
/// it has allocated are exactly the mapped ranges of the VM.
pub struct VmSource<P: PageOps, S: Store> {
    vm: Vm<P>,
    space: Arena<S, NoSource>,
}

impl<P: PageOps, S: Store> VmSource<P, S> {
    /// A source over all of `vm`'s client range (which must be wholly
    /// unmapped), tracking use in an arena over the stores `tags` and `hash`.
    pub fn new(vm: Vm<P>, tags: S, hash: S) -> Result<Self, ArenaError> {
        if !vm.mapped().is_zero() {
            return Err(ArenaError::InvalidArgument("VM for a source must start unmapped"));
        }
        let mut space = Arena::new("vm-source", vm.page_size(), tags, hash, NoSource)?;
        space.add(vm.base(), vm.range().size())?;
        Ok(VmSource { vm, space })
    }

    /// The VM.
    pub fn vm(&self) -> &Vm<P> {
        &self.vm
    }

    /// The arena tracking which ranges are imported.
    pub fn space(&self) -> &Arena<S, NoSource> {
        &self.space
    }

    /// Check the inner arena, the VM, and that what is mapped is exactly
    /// what is handed out.
    pub fn check(&self) -> Result<(), ArenaError> {
        self.space.check()?;
        self.vm.check()?;
        if self.vm.mapped() != self.space.sizes().allocated {
            return Err(ArenaError::Corrupt { what: "VM source: mapped != imported", tag: 0 });
        }
        Ok(())
    }
}

impl<P: PageOps, S: Store> Source for VmSource<P, S> {
    fn quantum(&self) -> Size {
        self.vm.page_size()
    }

    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let addr = self.space.xalloc(&Constraints::new(size).align(align))?;
        let r = Range::from_size(addr, size)?;
        if let Err(e) = self.vm.map(r) {
            // Cannot fail: the allocation was just made with this size.
            let _ = self.space.free(addr, size);
            return Err(e.into());
        }
        Ok(r)
    }

    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        // Refuse anything we did not hand out before touching the VM.
        match self.space.lookup(range.base()) {
            Some((_, asked)) if asked == range.size() => {}
            found => {
                return Err(ArenaError::BadFree {
                    addr: range.base(),
                    size: range.size(),
                    allocated: found.map(|f| f.1),
                })
            }
        }
        self.vm.unmap(range)?;
        self.space.free(range.base(), range.size())
    }
}
