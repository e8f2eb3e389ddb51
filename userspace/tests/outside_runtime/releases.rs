//! The mmap backend, recording the reservations it gives back.
//!
//! Whether a structure released its reservation on drop is asked here, not
//! of /proc/self/maps: once the range is free, another test's thread may map
//! into the hole before the check reads the maps (seen under
//! AddressSanitizer, whose allocator maps often). That the mmap backend's
//! `release` really unmaps is tested on its own (`outside_shim_diff`).

use std::sync::Mutex;

use vmspace::{PageOps, Protection, Range, ShimError, Size};
use vmspace_user::MmapBackend;

/// [`MmapBackend`], with every successful `release` recorded.
#[derive(Default)]
pub struct Releases {
    be: MmapBackend,
    released: Mutex<Vec<Range>>,
}

impl Releases {
    /// The reservations given back so far, in order.
    pub fn released(&self) -> Vec<Range> {
        self.released.lock().unwrap().clone()
    }
}

// SAFETY: every call is forwarded to the mmap backend with its own
// arguments; recording a release changes nothing the contract speaks of.
unsafe impl PageOps for Releases {
    fn page_size(&self) -> Size {
        self.be.page_size()
    }
    fn name(&self) -> &'static str {
        "mmap, releases recorded"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.be.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded under the caller's contract.
        unsafe { self.be.release(range) }?;
        self.released.lock().unwrap().push(range);
        Ok(())
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded under the caller's contract.
        unsafe { self.be.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded under the caller's contract.
        unsafe { self.be.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: forwarded under the caller's contract.
        unsafe { self.be.protect(range, prot) }
    }
}
