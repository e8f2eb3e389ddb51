//! The user-space page backend on `mmap`.
//!
//! - reserve: `mmap(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`,
//!   over-reserving by the alignment and trimming both ends with `munmap`;
//! - map: `mprotect(PROT_READ | PROT_WRITE)`, so adjacent mapped runs with the
//!   same protection merge into one kernel VMA;
//! - unmap: a fresh `PROT_NONE | MAP_NORESERVE` mapping over the range with
//!   `MAP_FIXED`, which frees the memory and any commit charge in one call and
//!   makes the pages read zero when next mapped;
//! - release: `munmap`.

use vmspace_shim::{
    check_page_range, check_reserve_args, Op, PageOps, Protection, Range, ShimError, Size,
};

/// The `mmap` backend. It holds only the page size; all state is the kernel's.
#[derive(Debug, Clone, Copy)]
pub struct MmapBackend {
    page: Size,
}

impl Default for MmapBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl MmapBackend {
    /// A backend with the system's page size.
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        MmapBackend { page: Size(usize::try_from(page).unwrap_or(4096)) }
    }

    /// `mmap` anonymous, private, no-reserve memory with protection `prot`;
    /// at `fixed` when given (replacing what is there).
    fn anon(&self, fixed: Option<usize>, size: usize, prot: i32) -> Result<usize, i32> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        if fixed.is_some() {
            flags |= libc::MAP_FIXED;
        }
        let hint = fixed.unwrap_or(0) as *mut libc::c_void;
        // SAFETY: anonymous memory; with MAP_FIXED the callers guarantee the
        // range is inside one of our reservations (PageOps contract).
        let p = unsafe { libc::mmap(hint, size, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            Err(errno())
        } else {
            Ok(p as usize)
        }
    }

    fn munmap(&self, base: usize, size: usize) -> Result<(), i32> {
        // SAFETY: callers pass whole reservations or trimmed ends of one we
        // just made, which nothing references.
        if unsafe { libc::munmap(base as *mut libc::c_void, size) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn mprotect(&self, range: Range, prot: i32, op: Op) -> Result<(), ShimError> {
        check_page_range(range, self.page)?;
        // SAFETY: the range is inside one of our reservations (caller's
        // contract); mprotect changes no memory contents.
        let rc = unsafe { libc::mprotect(range.base().as_ptr(), range.size().0, prot) };
        match rc {
            0 => Ok(()),
            _ => match errno() {
                libc::ENOMEM if op == Op::Map => Err(ShimError::OutOfMemory(range)),
                e => Err(ShimError::Os { op, errno: e }),
            },
        }
    }
}

// SAFETY: reservations come from the kernel's mmap and are disjoint from all
// other mappings; mprotect(READ|WRITE) makes pages accessible and the kernel
// zero-fills anonymous pages on first touch; a fresh MAP_FIXED mapping drops
// the old pages so the next map reads zero. Failed calls change nothing: mmap
// and mprotect fail before modifying the range (trimming failures are undone).
unsafe impl PageOps for MmapBackend {
    fn page_size(&self) -> Size {
        self.page
    }

    fn name(&self) -> &'static str {
        "mmap"
    }

    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        let align = check_reserve_args(size, align, self.page)?;
        let extra = align.0 - self.page.0;
        let total =
            size.0.checked_add(extra).ok_or(ShimError::OutOfAddressSpace { size: size.0 })?;
        let p = self.anon(None, total, libc::PROT_NONE).map_err(|e| match e {
            libc::ENOMEM | libc::EINVAL | libc::EOVERFLOW => {
                ShimError::OutOfAddressSpace { size: size.0 }
            }
            e => ShimError::Os { op: Op::Reserve, errno: e },
        })?;
        let base = vmspace_shim::align::align_up(p, align.0)?;
        let head = base - p;
        let tail = total - head - size.0;
        let trimmed = (head == 0 || self.munmap(p, head).is_ok())
            && (tail == 0 || self.munmap(base + size.0, tail).is_ok());
        if !trimmed {
            let e = errno();
            let _ = self.munmap(p, total);
            return Err(ShimError::Os { op: Op::Reserve, errno: e });
        }
        Ok(Range::from_size(vmspace_shim::Addr(base), size)?)
    }

    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        check_page_range(range, self.page)?;
        self.munmap(range.base().0, range.size().0)
            .map_err(|e| ShimError::Os { op: Op::Release, errno: e })
    }

    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        self.mprotect(range, libc::PROT_READ | libc::PROT_WRITE, Op::Map)
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        check_page_range(range, self.page)?;
        self.anon(Some(range.base().0), range.size().0, libc::PROT_NONE)
            .map(drop)
            .map_err(|e| ShimError::Os { op: Op::Unmap, errno: e })
    }

    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        let prot = match prot {
            Protection::None => libc::PROT_NONE,
            Protection::Read => libc::PROT_READ,
            Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        self.mprotect(range, prot, Op::Protect)
    }
}
