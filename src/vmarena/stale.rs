//! Metadata given back late: the VM arena's table pages, and the VM's own
//! mapped-state pages, that a failed unmap, trim or map left mapped and
//! empty. Each is remembered (`stale`, `untrimmed`) and given back by the
//! next operation, so a failure costs a page for a while, not for good.

use crate::vm::VmError;
use vmspace_shim::{PageOps, Range};

use super::{VmArena, VmArenaError};

impl<P: PageOps> VmArena<P> {
    /// Unmap `range` (committed pages of the VM), then the VM's mapped-state
    /// pages it leaves empty, so that metadata goes back with the pages it
    /// recorded. Only the unmap can fail: a failed trim leaves an empty
    /// page mapped, remembered (`untrimmed`) and trimmed again by the next
    /// operation.
    pub(crate) fn decommit(&mut self, range: Range) -> Result<(), VmArenaError> {
        self.vm.unmap(range)?;
        if self.vm.trim_range(range).is_err() {
            self.untrimmed_add(range);
        }
        Ok(())
    }

    /// Map `range` in the VM. A failed map gives back the VM mapped-state
    /// pages it mapped for `range`, but one whose unmap fails too stays
    /// mapped, empty: remembered (`untrimmed`) and trimmed by the next
    /// operation, as after a failed trim.
    pub(crate) fn vm_map(&mut self, range: Range) -> Result<(), VmError> {
        let r = self.vm.map(range);
        // Only the backend's failure comes after the VM mapped pages for
        // the range (a range refused maps nothing).
        if let Err(VmError::Backend(_)) = r {
            self.untrimmed_add(range);
        }
        r
    }

    /// Remember that `range`'s VM mapped-state pages may hold an empty page
    /// to trim.
    fn untrimmed_add(&mut self, range: Range) {
        self.untrimmed = Some(match self.untrimmed {
            None => range,
            Some(r) => {
                Range::new(r.base().min(range.base()), r.limit().max(range.limit())).unwrap_or(r)
            }
        });
    }

    /// Unmap the table pages covering tracts `[lo, hi)` that describe no
    /// allocated tract, then the VM's mapped-state pages left empty. A
    /// failure leaves the page mapped and marks it stale, to be retried by
    /// the next operation.
    pub(crate) fn unmap_unused_tables(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        for k in self.layout.table_pages_of(lo, hi) {
            let idx = self.layout.table_page(k);
            if self.vm_mapped(idx) && !self.table_page_in_use(k) {
                match self.decommit(self.vm_page(idx)) {
                    Ok(()) => self.table_mapped -= 1,
                    Err(_) => self.stale = true,
                }
            }
        }
        for j in self.layout.bit_pages_of(lo, hi) {
            let idx = self.layout.bit_page(j);
            if self.vm_mapped(idx) && !self.bit_page_in_use(j) {
                match self.decommit(self.vm_page(idx)) {
                    Ok(()) => self.bits_mapped -= 1,
                    Err(_) => self.stale = true,
                }
            }
        }
    }

    /// Retry unmapping table pages whose unmapping failed before, and
    /// trimming the VM's mapped-state pages a failed trim left mapped.
    pub(crate) fn retry_stale(&mut self) {
        if self.stale {
            self.stale = false;
            self.unmap_unused_tables(0, self.layout.tracts);
        }
        if let Some(range) = self.untrimmed.take() {
            if self.vm.trim_range(range).is_err() {
                self.untrimmed = Some(range);
            }
        }
    }
}
