//! The user-space page backend on `mmap`.
//!
//! - reserve: `mmap(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`,
//!   over-reserving by the alignment and trimming both ends with `munmap`
//!   (where a limit refuses the padding, `RLIMIT_AS`, or `RLIMIT_MEMLOCK`
//!   under `mlockall(MCL_FUTURE)`, an unpadded mapping at an aligned
//!   address found free instead, see `unpadded`); with `Decommit`, its
//!   first page then made read-write, dirtied, dropped and made
//!   `PROT_NONE` again, which gives the whole range one `anon_vma` (see
//!   `share_anon_vma`);
//! - map: `mprotect(PROT_READ | PROT_WRITE)`, so adjacent mapped runs with the
//!   same protection merge into one kernel VMA;
//! - unmap, by one of two [`UnmapStrategy`]s:
//!   - [`Replace`](UnmapStrategy::Replace): a fresh `PROT_NONE | MAP_NORESERVE`
//!     mapping over the range with `MAP_FIXED`, which frees the memory and any
//!     commit charge in one call;
//!   - [`Decommit`](UnmapStrategy::Decommit): `madvise(MADV_DONTNEED)` then
//!     `mprotect(PROT_NONE)`, which frees the memory and keeps the VMA's
//!     `anon_vma`, so mapped runs always merge into one VMA each;
//!
//!   either way the pages read zero when next mapped. A failed `Decommit`
//!   leaves the pages mapped, their contents perhaps gone, and (at
//!   `vm.max_map_count`) part of them `PROT_NONE`, as `PageOps` allows; a
//!   failed `MAP_FIXED` mapping keeps the old one on current kernels, which
//!   put the old mappings back when the new one fails (older kernels could
//!   leave a hole, which no layer above can see). Locked pages whose
//!   replacement `RLIMIT_MEMLOCK` refuses are dropped in place and then
//!   made `PROT_NONE` (in that order: a failed drop changes no page's
//!   protection), a failure there leaving their contents perhaps gone and
//!   (at `vm.max_map_count`) part of the range perhaps `PROT_NONE`;
//! - release: `munmap`.
//!
//! Why two: a fresh mapping has no `anon_vma`; when a run mapped there is
//! first written while isolated, the kernel gives it a new one, and when it
//! later grows into a neighbouring run the two VMAs cannot merge. Under
//! random single-page map/unmap traffic that leaves about 10% more VMAs than
//! mapped runs and gaps, and nothing bounds it by the number of runs.
//! `Decommit` keeps one `anon_vma` for the whole reservation (see
//! `share_anon_vma`), so VMAs = 2 x runs + 1 exactly (but in a child forked
//! after runs were mapped, whose inherited VMAs each get an `anon_vma` of
//! their own; for locked pages, which `Decommit` replaces; and for a
//! reservation made when not one more writable page could be mapped, at
//! `vm.max_map_count` or the data-size limit); but under strict
//! overcommit accounting (`vm.overcommit_memory = 2`, where `MAP_NORESERVE`
//! is ignored) the commit charge of decommitted pages stays until release.
//! [`MmapBackend::new`] therefore picks `Replace` under strict accounting and
//! `Decommit` otherwise, where `MAP_NORESERVE` mappings carry no charge.

use vmspace_shim::{
    check_page_range, check_reserve_args, Op, PageOps, Protection, Range, ShimError, Size,
};

/// How [`MmapBackend`] decommits pages ([`MmapBackend::new`] chooses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmapStrategy {
    /// A fresh `PROT_NONE` mapping with `MAP_FIXED`: frees memory and commit
    /// charge in one call. Under `mlockall(MCL_FUTURE)` near the
    /// `RLIMIT_MEMLOCK` limit, which refuses the fresh (locked) mapping,
    /// the pages are dropped in place (`MADV_DONTNEED_LOCKED`, Linux 5.18)
    /// and made `PROT_NONE` instead: the memory is freed, the lock and any
    /// commit charge stay until release.
    Replace,
    /// `MADV_DONTNEED` and `mprotect(PROT_NONE)`: frees memory and keeps
    /// adjacent mapped runs mergeable. Locked pages (`mlock`, `mlockall`),
    /// which `MADV_DONTNEED` refuses, are replaced as with `Replace` (and
    /// so, at the memlock limit, dropped in place).
    Decommit,
}

/// The `mmap` backend. It holds only the page size and the unmap strategy;
/// all state is the kernel's.
#[derive(Debug, Clone, Copy)]
pub struct MmapBackend {
    page: Size,
    unmap: UnmapStrategy,
}

impl Default for MmapBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// The error for a refused reservation of `size`.
fn to_reserve_error(size: Size) -> impl Fn(i32) -> ShimError {
    move |e| match e {
        libc::ENOMEM | libc::EINVAL | libc::EOVERFLOW => {
            ShimError::OutOfAddressSpace { size: size.0 }
        }
        e => ShimError::Os { op: Op::Reserve, errno: e },
    }
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl MmapBackend {
    /// A backend with the system's page size, decommitting with
    /// [`Replace`](UnmapStrategy::Replace) under strict overcommit accounting
    /// and [`Decommit`](UnmapStrategy::Decommit) otherwise.
    pub fn new() -> Self {
        let strict = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .is_ok_and(|mode| mode.trim() == "2");
        Self::with_strategy(if strict { UnmapStrategy::Replace } else { UnmapStrategy::Decommit })
    }

    /// A backend with the system's page size and the given unmap strategy.
    pub fn with_strategy(unmap: UnmapStrategy) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        MmapBackend { page: Size(usize::try_from(page).unwrap_or(4096)), unmap }
    }

    /// The unmap strategy in use.
    pub fn strategy(&self) -> UnmapStrategy {
        self.unmap
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

    /// Give a fresh `PROT_NONE` reservation one `anon_vma` for the whole
    /// range, so that its mappings merge well: make its first page
    /// read-write, dirty it (the kernel attaches an `anon_vma` to that
    /// page's VMA), drop the page again and make it `PROT_NONE`, which
    /// merges it back into the rest of the reservation, the `anon_vma` now
    /// the whole VMA's.
    ///
    /// Every VMA later split off the reservation shares that `anon_vma`, so
    /// adjacent read-write runs can always merge into one VMA. Without it,
    /// runs first touched apart get different `anon_vma`s and stay separate
    /// VMAs when they meet, and the VMA count grows with the history of
    /// operations instead of with the number of mapped runs.
    ///
    /// Only that one page is ever made accessible, for a moment: a process
    /// under a data-size limit (`RLIMIT_DATA`), which counts writable
    /// private mappings, pays for one page, not for the reservation. Where
    /// that page cannot be made writable (the process at
    /// `vm.max_map_count`, which the split needs a mapping of; the data
    /// limit reached), the reservation goes on without a shared `anon_vma`,
    /// as under `Replace`. Where it is locked as it is faulted in
    /// (`mlockall(MCL_FUTURE)`, with or without `MCL_ONFAULT`), it is
    /// dropped all the same ([`drop_pages`]), its lock flags untouched, so
    /// it merges back; on a kernel that cannot drop locked pages (before
    /// 5.18) it is replaced by a fresh inaccessible page, which takes the
    /// `anon_vma` away again, and nothing is left resident either way,
    /// except on such a kernel at the `RLIMIT_MEMLOCK` limit, which
    /// refuses the fresh page: there the one page stays resident (and
    /// locked, as it was charged already), made inaccessible.
    fn share_anon_vma(&self, base: usize) -> Result<(), i32> {
        let first = vmspace_shim::Addr(base);
        let page = self.page.0;
        // SAFETY: the first page of our fresh reservation; no one else
        // knows the address yet.
        if unsafe { libc::mprotect(first.as_ptr(), page, libc::PROT_READ | libc::PROT_WRITE) } != 0
        {
            return Ok(());
        }
        // SAFETY: just made read-write; ours alone.
        unsafe { first.as_ptr::<u8>().write_volatile(0) };
        // SAFETY: drops the page just dirtied; nothing refers to it.
        if unsafe { drop_pages(first.as_ptr(), page) }.is_err() {
            // Locked, on a kernel without `MADV_DONTNEED_LOCKED`: a fresh
            // inaccessible page over it (with the flags every new mapping
            // gets, so it merges with the rest), and no shared `anon_vma`.
            // At `RLIMIT_MEMLOCK` that mapping is refused (it is charged
            // before the old page goes): the page stays, made inaccessible,
            // resident and locked as it was already charged.
            if self.anon(Some(base), page, libc::PROT_NONE).is_ok() {
                return Ok(());
            }
        }
        // SAFETY: the first page of our fresh reservation.
        if unsafe { libc::mprotect(first.as_ptr(), page, libc::PROT_NONE) } != 0 {
            return Err(errno());
        }
        Ok(())
    }

    /// `mprotect` the range. Linux's is not atomic: when a split it needs
    /// fails (`ENOMEM` at `vm.max_map_count`), the mappings before it keep
    /// the new protection. A map puts `PROT_NONE` back over the whole range
    /// then (what every page of it had, which joins what was split, so it
    /// needs no new mapping); a protect or an unmap cannot, not knowing
    /// the old protection: the layers that know it put it back (see
    /// [`PageOps`]' contract).
    fn mprotect(&self, range: Range, prot: i32, op: Op) -> Result<(), ShimError> {
        check_page_range(range, self.page)?;
        let call = |prot| {
            // SAFETY: the range is inside one of our reservations (caller's
            // contract); mprotect changes no memory contents.
            unsafe { libc::mprotect(range.base().as_ptr(), range.size().0, prot) }
        };
        if call(prot) == 0 {
            return Ok(());
        }
        let e = errno();
        if op == Op::Map {
            call(libc::PROT_NONE);
        }
        match e {
            // mprotect's ENOMEM is both "out of memory" (or of mappings)
            // and "not all mapped": a map outside our reservations is the
            // caller's bug, not a shortage to wait out.
            libc::ENOMEM if op == Op::Map && has_hole(range) => Err(ShimError::NotReserved(range)),
            libc::ENOMEM if op == Op::Map => Err(ShimError::OutOfMemory(range)),
            e => Err(ShimError::Os { op, errno: e }),
        }
    }
}

/// Drop the pages of `[addr, addr + len)` (`MADV_DONTNEED`): they read
/// zero when next touched. Locked pages (`mlock`, `mlockall`), which
/// `MADV_DONTNEED` refuses with `EINVAL`, with `MADV_DONTNEED_LOCKED`
/// (Linux 5.18), their lock flags kept; `EINVAL` where that is unknown.
/// For a reservation's first page (`share_anon_vma`), locked as it was
/// made by `mlockall(MCL_FUTURE)` as the rest of the reservation is.
///
/// # Safety
///
/// The range is mapped memory of ours that nothing refers to.
unsafe fn drop_pages(addr: *mut libc::c_void, len: usize) -> Result<(), i32> {
    // SAFETY: the caller's.
    if unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) } == 0 {
        return Ok(());
    }
    match errno() {
        // SAFETY: the caller's.
        libc::EINVAL if unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED_LOCKED) } == 0 => {
            Ok(())
        }
        libc::EINVAL => Err(errno()),
        e => Err(e),
    }
}

/// Whether part of `range` is not mapped at all (not even reserved).
fn has_hole(range: Range) -> bool {
    // SAFETY: msync with MS_ASYNC writes nothing back for anonymous memory
    // and touches no page; it only looks the range up, failing with ENOMEM
    // where part of it is not mapped.
    let rc = unsafe { libc::msync(range.base().as_ptr(), range.size().0, libc::MS_ASYNC) };
    rc != 0 && errno() == libc::ENOMEM
}

// SAFETY: reservations come from the kernel's mmap and are disjoint from all
// other mappings; mprotect(READ|WRITE) makes pages accessible and the kernel
// zero-fills anonymous pages on first touch; a fresh MAP_FIXED mapping drops
// the old pages so the next map reads zero. Failed calls change nothing: mmap
// and mprotect fail before modifying the range (trimming failures are undone),
// except an mprotect that fails part way, which `mprotect` undoes for a map
// and the contract allows for a protect or an unmap.
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
        let padded =
            size.0.checked_add(extra).ok_or(ShimError::OutOfAddressSpace { size: size.0 })?;
        let (p, total) = match self.anon(None, padded, libc::PROT_NONE) {
            Ok(p) => (p, padded),
            // The padding alone may be what a limit refuses: under
            // `mlockall(MCL_FUTURE)` `RLIMIT_MEMLOCK` counts inaccessible
            // mappings too, and `RLIMIT_AS` counts every one.
            Err(e @ (libc::EAGAIN | libc::ENOMEM)) if extra > 0 => {
                let placed = crate::unpadded::map_aligned(size.0, align.0)
                    .map_err(|errno| ShimError::Os { op: Op::Reserve, errno })?;
                (placed.ok_or(e).map_err(to_reserve_error(size))?, size.0)
            }
            Err(e) => return Err(to_reserve_error(size)(e)),
        };
        let base = vmspace_shim::align::align_up(p, align.0)?;
        let head = base - p;
        let tail = total - head - size.0;
        let head_gone = head == 0 || self.munmap(p, head).is_ok();
        let tail_gone = head_gone && (tail == 0 || self.munmap(base + size.0, tail).is_ok());
        // With `Decommit`, one `anon_vma` for the whole reservation (see
        // `share_anon_vma`). `Replace` gains nothing from it: its fresh
        // mappings have no `anon_vma`.
        let sealed = tail_gone
            && (self.unmap == UnmapStrategy::Replace || self.share_anon_vma(base).is_ok());
        if !sealed {
            let e = errno();
            // Give back only what is still ours: another thread may have
            // mapped a trimmed end already.
            let from = if head_gone { base } else { p };
            let to = if tail_gone { base + size.0 } else { p + total };
            let _ = self.munmap(from, to - from);
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

    /// A waiter gives its CPU to the claimant it waits for (which may be
    /// in an `mprotect` or faulting pages in): there may be more threads
    /// than CPUs.
    fn relax(&self) {
        std::thread::yield_now();
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        check_page_range(range, self.page)?;
        let os = |e| ShimError::Os { op: Op::Unmap, errno: e };
        // Dropped in place, then made inaccessible, lock flags kept. In
        // that order, so that a failure never changes a page's protection
        // (the range may hold read-only and inaccessible pages, whose
        // protection a backend does not know, so cannot put back): a failed
        // drop leaves the pages as they were, or some of them emptied; a
        // failed `mprotect` (at `vm.max_map_count`) leaves them emptied
        // and may have changed part of the range. The contract allows
        // both. `None` where locked pages cannot be dropped (before Linux
        // 5.18).
        let in_place = || -> Option<Result<(), ShimError>> {
            // SAFETY: the range is mapped, inside our reservation, and no
            // one accesses it again until it is mapped (caller's contract).
            if let Err(e) = unsafe { drop_pages(range.base().as_ptr(), range.size().0) } {
                return (e != libc::EINVAL).then(|| Err(os(e)));
            }
            Some(self.mprotect(range, libc::PROT_NONE, Op::Unmap))
        };
        // A fresh `PROT_NONE` mapping over the range. Under `mlockall
        // (MCL_FUTURE)` it is locked, and the kernel charges it against
        // `RLIMIT_MEMLOCK` before the old pages go, so near the limit it is
        // refused (`EAGAIN`) though it would lock nothing more: the pages
        // are then dropped in place instead, which needs no room (and a
        // failure of that is the error returned, `EAGAIN` only where the
        // pages cannot be dropped).
        let replace = || match self.anon(Some(range.base().0), range.size().0, libc::PROT_NONE) {
            Ok(_) => Ok(()),
            Err(libc::EAGAIN) => in_place().unwrap_or(Err(os(libc::EAGAIN))),
            Err(e) => Err(os(e)),
        };
        match self.unmap {
            UnmapStrategy::Replace => replace(),
            // SAFETY: as for `decommit`.
            UnmapStrategy::Decommit => match unsafe {
                libc::madvise(range.base().as_ptr(), range.size().0, libc::MADV_DONTNEED)
            } {
                0 => self.mprotect(range, libc::PROT_NONE, Op::Unmap),
                // Locked pages (`mlock`, `mlockall`): replaced, as
                // `Replace` does. The fresh mapping takes the flags every
                // new one gets: locked under `mlockall(MCL_FUTURE)`, as its
                // neighbours are, so it merges back; unlocked after an
                // `mlock` of the run, whose lock ends with it (dropped in
                // place the run would stay locked, and charged, for good),
                // and after `mlockall(MCL_CURRENT)` alone, whose lock
                // covered only the mappings of its time: then the run stays
                // a VMA of its own, the exception the module docs list.
                _ if errno() == libc::EINVAL => replace(),
                _ => Err(os(errno())),
            },
        }
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
