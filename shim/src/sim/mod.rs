//! The simulated backend: pages out of a buffer the caller provides, every
//! contract checked, no system calls.
//!
//! [`SimBackend`] serves reservations from a caller's byte buffer, so memory it
//! "maps" is real, writable memory and structures that keep metadata inside
//! their reservation work on it unchanged. It tracks the state of every page
//! in a table at the front of the buffer and turns every contract violation
//! ([`PageOps`]'s `# Safety` sections) into an error instead of undefined
//! behaviour: mapping outside a reservation, double map, unmap of unmapped
//! pages, releasing part of a reservation. Pages are zeroed when mapped and
//! filled with [`POISON`] when unmapped or released, so stale reads show; a
//! deferred unmap keeps the contents until its flush (as a stale TLB entry
//! would let them be reached), and is poisoned then.
//!
//! What it cannot check is the memory accesses themselves: every page is
//! ordinary memory of the buffer, so a read or write of a page that is
//! unmapped, read-only or inaccessible goes through silently, where the
//! mmap backend faults. Poisoned contents make such reads show; for writes,
//! ask [`page_state`](SimBackend::page_state) before touching a page, or
//! run the same test on the mmap backend too.
//!
//! Combine it with [`FaultInjector`](crate::FaultInjector) to make calls fail,
//! and (with `std`) give it a [`Placed`] buffer so a test behaves the same
//! wherever memory lands, at several offsets ([`at_offsets`]).

#[cfg(feature = "std")]
mod placed;
mod spin;
mod table;

use core::marker::PhantomData;

use crate::addr::{Addr, Size};
use crate::align;
use crate::error::{Op, ShimError};
use crate::ops::{check_page_range, check_reserve_args, PageOps, Protection};
use crate::range::Range;
#[cfg(feature = "std")]
pub use placed::{at_offsets, Placed, OFFSETS, PLACEMENT};
use spin::SpinLock;
use table::Cell;
pub use table::PageState;

/// The byte unmapped and released pages are filled with.
pub const POISON: u8 = 0xA5;

/// Counters kept by the simulated backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Calls per operation, indexed by `Op as usize`.
    pub calls: [u64; 5],
    /// Calls per operation refused as contract violations or for lack of room.
    pub refused: [u64; 5],
    /// Reservations live now.
    pub reservations: usize,
    /// Pages reserved now (mapped or not).
    pub reserved_pages: usize,
    /// Pages mapped now.
    pub mapped_pages: usize,
    /// Pages ever mapped (a page mapped twice counts twice).
    pub pages_mapped_total: u64,
    /// Pages unmapped by `unmap_deferred` whose flush is pending now.
    pub unflushed_pages: usize,
    /// Flushes that completed at least one deferred unmap.
    pub flushes: u64,
}

impl SimStats {
    /// Calls of `op`.
    pub fn calls_of(&self, op: Op) -> u64 {
        self.calls[op as usize]
    }
}

/// Mutable bookkeeping, behind the lock.
///
/// # Invariants
///
/// `cells` points to `pages` state bytes inside the buffer the backend borrows,
/// and nothing else accesses them.
struct SimState {
    cells: *mut Cell,
    stats: SimStats,
}

// SAFETY: `cells` points into the buffer the backend borrows exclusively; the
// state is only reached through the backend's lock.
unsafe impl Send for SimState {}

/// A [`PageOps`] backend over a caller's buffer.
///
/// # Invariants
///
/// - `[base, base + pages * page)` lies inside the borrowed buffer, after the
///   state table, and is page-aligned.
/// - Cell `i` describes the page at `base + i * page`.
/// - Every reservation is a run of non-free cells whose first cell, and only
///   that one, has the start bit.
pub struct SimBackend<'a> {
    page: Size,
    base: Addr,
    pages: usize,
    state: SpinLock<SimState>,
    _buffer: PhantomData<&'a mut [u8]>,
}

impl core::fmt::Debug for SimBackend<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimBackend")
            .field("page", &self.page)
            .field("region", &self.region())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<'a> SimBackend<'a> {
    /// A simulated address space in `buffer`, with pages of `page_size` bytes
    /// (a power of two, at least 64). The front of the buffer holds the state
    /// table; the rest is served as pages.
    pub fn new(buffer: &'a mut [u8], page_size: usize) -> Result<Self, ShimError> {
        if !align::is_power_of_two(page_size) || page_size < 64 {
            return Err(ShimError::InvalidArgument("page size must be a power of two >= 64"));
        }
        let start = buffer.as_mut_ptr().expose_provenance();
        let end = start.checked_add(buffer.len()).ok_or(ShimError::Overflow)?;
        let first = align::align_up(start, page_size)?;
        let total = end.saturating_sub(first) / page_size;
        // One state byte per page; the table takes whole pages at the front.
        let table_pages = total.div_ceil(page_size + 1);
        let pages = total - table_pages;
        if pages == 0 {
            return Err(ShimError::InvalidArgument("buffer too small for one page"));
        }
        let cells = first as *mut Cell;
        // SAFETY: `[first, first + pages)` lies inside `buffer` (table_pages
        // pages of page_size >= pages bytes), which we borrow mutably for 'a.
        unsafe { core::ptr::write_bytes(cells, Cell::FREE.0, pages) };
        Ok(SimBackend {
            page: Size(page_size),
            base: Addr(first + table_pages * page_size),
            pages,
            state: SpinLock::new(SimState { cells, stats: SimStats::default() }),
            _buffer: PhantomData,
        })
    }

    /// The range of addresses the backend serves reservations from.
    pub fn region(&self) -> Range {
        // Cannot overflow: the region lies inside the buffer.
        Range::from_size(self.base, Size(self.pages * self.page.0))
            .unwrap_or(Range::empty(self.base))
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SimStats {
        self.state.lock().stats
    }

    /// The state of the page holding `addr`, or `None` outside the region.
    pub fn page_state(&self, addr: Addr) -> Option<PageState> {
        let i = self.index_of(addr)?;
        let st = self.state.lock();
        // SAFETY: `i < pages` (index_of checks), so the cell is in the table.
        Some(unsafe { *st.cells.add(i) }.state())
    }

    /// The protection of the page holding `addr` when it is mapped, else
    /// `None` (reserved, unflushed, free or outside the region): the probe
    /// that checks a structure's records against its pages take.
    pub fn protection(&self, addr: Addr) -> Option<Protection> {
        match self.page_state(addr)? {
            PageState::Mapped(p) => Some(p),
            _ => None,
        }
    }

    fn index_of(&self, addr: Addr) -> Option<usize> {
        let i = addr.0.checked_sub(self.base.0)? / self.page.0;
        (i < self.pages).then_some(i)
    }

    fn addr_of(&self, i: usize) -> usize {
        self.base.0 + i * self.page.0
    }

    /// The cell indices `[first, last)` of `range`, checked to be page-aligned
    /// and inside one reservation.
    fn reservation_cells(&self, st: &SimState, range: Range) -> Result<(usize, usize), ShimError> {
        check_page_range(range, self.page)?;
        let (first, last) =
            match (self.index_of(range.base()), range.limit().0.checked_sub(self.base.0)) {
                (Some(f), Some(off)) if off / self.page.0 <= self.pages => (f, off / self.page.0),
                _ => return Err(ShimError::NotReserved(range)),
            };
        for i in first..last {
            let c = st.cell(i);
            if c.is_free() || (i > first && c.is_start()) {
                return Err(ShimError::NotReserved(range));
            }
        }
        Ok((first, last))
    }

    fn fill(&self, first: usize, last: usize, byte: u8) {
        // SAFETY: cells `[first, last)` are inside the served region, which is
        // inside the buffer we borrow mutably; the trait's contract says no
        // one else accesses unmapped or newly mapped pages.
        unsafe {
            core::ptr::write_bytes(
                self.addr_of(first) as *mut u8,
                byte,
                (last - first) * self.page.0,
            )
        };
    }

    /// `unmap` (poisoned at once) or `unmap_deferred` (kept until the flush).
    fn unmap_cells(&self, range: Range, deferred: bool) -> Result<(), ShimError> {
        let mut st = self.state.lock();
        st.stats.calls[Op::Unmap as usize] += 1;
        let (first, last) =
            self.reservation_cells(&st, range).map_err(|e| Self::refuse(&mut st, Op::Unmap, e))?;
        if !(first..last).all(|i| st.cell(i).is_mapped()) {
            return Err(Self::refuse(&mut st, Op::Unmap, ShimError::NotMapped(range)));
        }
        if !deferred {
            self.fill(first, last, POISON);
        }
        for i in first..last {
            let c = if deferred { st.cell(i).with_unflushed() } else { st.cell(i).with_unmapped() };
            st.set(i, c);
        }
        st.stats.mapped_pages -= last - first;
        if deferred {
            st.stats.unflushed_pages += last - first;
        }
        Ok(())
    }

    fn refuse(st: &mut SimState, op: Op, e: ShimError) -> ShimError {
        st.stats.refused[op as usize] += 1;
        e
    }
}

impl SimState {
    fn cell(&self, i: usize) -> Cell {
        // SAFETY: callers pass `i < pages` (type invariant of the backend).
        unsafe { *self.cells.add(i) }
    }

    fn set(&mut self, i: usize, c: Cell) {
        // SAFETY: callers pass `i < pages`; we hold the lock.
        unsafe { *self.cells.add(i) = c }
    }
}

// SAFETY: reservations are runs of free cells of the caller's buffer, which no
// other backend serves; `map` zeroes the pages of the buffer it hands out; every
// call checks its contract and changes nothing when it fails.
unsafe impl PageOps for SimBackend<'_> {
    fn page_size(&self) -> Size {
        self.page
    }

    fn name(&self) -> &'static str {
        "sim"
    }

    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        let mut st = self.state.lock();
        st.stats.calls[Op::Reserve as usize] += 1;
        let align = check_reserve_args(size, align, self.page)
            .map_err(|e| Self::refuse(&mut st, Op::Reserve, e))?;
        let n = size.0 / self.page.0;
        // First fit over aligned candidates, skipping past any used page found.
        let mut first = (align::align_up(self.base.0, align.0)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.base.0))
            / self.page.0;
        while first.checked_add(n).is_some_and(|end| end <= self.pages) {
            match (first..first + n).rev().find(|&i| !st.cell(i).is_free()) {
                None => {
                    for i in first..first + n {
                        st.set(i, Cell::reserved(i == first));
                    }
                    st.stats.reservations += 1;
                    st.stats.reserved_pages += n;
                    return Ok(Range::from_size(Addr(self.addr_of(first)), size)?);
                }
                Some(used) => {
                    let next = match align::align_up(self.addr_of(used + 1), align.0) {
                        Ok(a) => a,
                        Err(_) => break,
                    };
                    first = (next - self.base.0) / self.page.0;
                }
            }
        }
        Err(Self::refuse(&mut st, Op::Reserve, ShimError::OutOfAddressSpace { size: size.0 }))
    }

    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        let mut st = self.state.lock();
        st.stats.calls[Op::Release as usize] += 1;
        let (first, last) = self
            .reservation_cells(&st, range)
            .map_err(|e| Self::refuse(&mut st, Op::Release, e))?;
        let whole = st.cell(first).is_start()
            && (last == self.pages || st.cell(last).is_free() || st.cell(last).is_start());
        if !whole {
            return Err(Self::refuse(&mut st, Op::Release, ShimError::NotReserved(range)));
        }
        let mapped = (first..last).filter(|&i| st.cell(i).is_mapped()).count();
        // Releasing completes the reservation's deferred unmaps.
        let unflushed = (first..last).filter(|&i| st.cell(i).is_unflushed()).count();
        st.stats.unflushed_pages -= unflushed;
        self.fill(first, last, POISON);
        for i in first..last {
            st.set(i, Cell::FREE);
        }
        st.stats.reservations -= 1;
        st.stats.reserved_pages -= last - first;
        st.stats.mapped_pages -= mapped;
        Ok(())
    }

    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        let mut st = self.state.lock();
        st.stats.calls[Op::Map as usize] += 1;
        let (first, last) =
            self.reservation_cells(&st, range).map_err(|e| Self::refuse(&mut st, Op::Map, e))?;
        if (first..last).any(|i| st.cell(i).is_mapped()) {
            return Err(Self::refuse(&mut st, Op::Map, ShimError::AlreadyMapped(range)));
        }
        if (first..last).any(|i| st.cell(i).is_unflushed()) {
            return Err(Self::refuse(&mut st, Op::Map, ShimError::Unflushed(range)));
        }
        self.fill(first, last, 0);
        for i in first..last {
            let c = st.cell(i).with_mapped(Protection::ReadWrite);
            st.set(i, c);
        }
        st.stats.mapped_pages += last - first;
        st.stats.pages_mapped_total += (last - first) as u64;
        Ok(())
    }

    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        self.unmap_cells(range, false)
    }

    /// Unmap, keeping the contents (a stale TLB entry would still reach
    /// them) and refusing to map the pages again until [`flush`](Self::flush).
    unsafe fn unmap_deferred(&self, range: Range) -> Result<(), ShimError> {
        self.unmap_cells(range, true)
    }

    /// Poison every unflushed page and make it plainly unmapped.
    fn flush(&self) -> usize {
        let mut st = self.state.lock();
        if st.stats.unflushed_pages == 0 {
            return 0;
        }
        let mut done = 0;
        for i in 0..self.pages {
            if st.cell(i).is_unflushed() {
                self.fill(i, i + 1, POISON);
                let c = st.cell(i).with_unmapped();
                st.set(i, c);
                done += 1;
            }
        }
        debug_assert_eq!(done, st.stats.unflushed_pages);
        st.stats.unflushed_pages = 0;
        st.stats.flushes += 1;
        done
    }

    fn unflushed_pages(&self) -> usize {
        self.state.lock().stats.unflushed_pages
    }

    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        let mut st = self.state.lock();
        st.stats.calls[Op::Protect as usize] += 1;
        let (first, last) = self
            .reservation_cells(&st, range)
            .map_err(|e| Self::refuse(&mut st, Op::Protect, e))?;
        if !(first..last).all(|i| st.cell(i).is_mapped()) {
            return Err(Self::refuse(&mut st, Op::Protect, ShimError::NotMapped(range)));
        }
        for i in first..last {
            let c = st.cell(i).with_mapped(prot);
            st.set(i, c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
