//! The VM arena (the Memory Pool System's VM arena class): one large
//! reservation divided into pages, *tracts*, handed to client pools.
//!
//! A [`VmArena`] reserves one [`Vm`] holding its tracts and, after them, a
//! page table (one 8-byte descriptor per tract: owner, flags, a shadow of the
//! protection, 16 bits for the client) and an allocation bit table. Both
//! tables live in that reservation and each of their pages is mapped only
//! while it describes at least one allocated tract: mapped when an allocation
//! needs it, unmapped as soon as a free leaves it describing none (no
//! hysteresis). Address to descriptor is a shift and an add.
//!
//! - Allocation ([`alloc`](VmArena::alloc)) is first fit by address over runs
//!   of free tracts, with zone placement: the address space is striped into
//!   64 zones of `2^zone_shift` bytes, and a [`Request`] names a preferred
//!   and an avoided [`ZoneSet`]. The arena honours them unless no suitable
//!   place remains, then falls back and says so in the [`Grant`].
//! - A commit limit: an allocation that would take committed memory past it
//!   fails cleanly (all spare pages are purged first when that makes it
//!   fit). Only the place first fit chose is costed against the limit: an
//!   allocation can fail where another allowed place would have needed
//!   fewer table pages.
//! - Spare pages: freed tracts stay committed for reuse, up to a bound;
//!   [`purge_spare`](VmArena::purge_spare) gives them back.
//! - A vmem [`Arena`](crate::arena::Arena) can import from a VM arena: it
//!   implements [`Source`](crate::arena::Source).
//!
//! Every operation either completes or fails with the arena unchanged: it
//! maps what it needs first and undoes that on failure. Two exceptions: a
//! table page that cannot be unmapped stays mapped, marked stale, and the
//! next operation retries (a free completes so; an allocation that fails
//! and cannot unmap the table page it mapped fails so, with that page
//! still counted in [`committed`](VmArena::committed)), and a purge of
//! spare pages that fails part-way ([`purge_spare`](VmArena::purge_spare),
//! or an allocation purging to stay within the commit limit) keeps the runs
//! it gave back before the failing call, in address order; an allocation
//! that purged spare pages to stay within the commit limit and then fails
//! to map its own keeps them purged too (spare pages are a cache: their
//! contents are kept for a reuse, not promised). And a map that fails
//! after the VM mapped a page of its own metadata for it, and whose give-back
//! of that page fails too, leaves the page mapped (in
//! [`metadata_mapped`](VmArena::metadata_mapped), not in
//! [`stale_pages`](VmArena::stale_pages)) until the next operation trims
//! it. A backend call
//! may fail part way (Linux's `mprotect` at `vm.max_map_count`): after a
//! failed protect, free or purge the arena puts the recorded protection
//! back, and if that fails too says so with
//! [`RollbackFailed`](VmArenaError::RollbackFailed); so does an allocation
//! that cannot unmap the pages it mapped before failing (they stay
//! committed, as spare).
//! [`check`](VmArena::check) verifies every invariant either way.
//!
//! ```
//! use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, ZoneSet};
//! use vmspace_shim::{sim::SimBackend, Pages, Size};
//!
//! let mut buffer = vec![0u8; 4 << 20];
//! let sim = SimBackend::new(&mut buffer, 4096).unwrap();
//! // Zones of 16 KiB (four pages): 64 zones repeat every 1 MiB.
//! let config = VmArenaConfig::new(Size(2 << 20)).zone_shift(14).spare_limit(8);
//! let mut arena = VmArena::new(&sim, config).unwrap();
//! let pool = Owner(7);
//! let g = arena.alloc(&Request::new(Pages(4), pool).prefer(ZoneSet::single(3))).unwrap();
//! assert!(!g.fell_back());
//! assert_eq!(arena.zone_of(g.range.base()), 3);
//! assert_eq!(arena.tract(g.range.base()).unwrap().owner, pool);
//! assert!(arena.free(g.range, Owner(8)).is_err()); // not owner 8's
//! arena.free(g.range, pool).unwrap();
//! assert_eq!(arena.spare(), Size(4 * 4096)); // kept committed for reuse
//! assert_eq!(arena.table_pages_mapped(), 0); // no hysteresis
//! arena.check().unwrap();
//! ```

mod check;
mod error;
mod layout;
mod ops;
mod place;
mod request;
mod stale;
mod tables;

#[cfg(test)]
mod tests;

use crate::error::CommonError;
use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

use crate::bits::PagedBits;
use crate::vm::Vm;
pub use error::{Stranded, VmArenaError};
use layout::Layout;
pub use request::{Grant, Owner, Placement, Request, VmArenaConfig, ZoneSet, ZONES};

/// What the page table says about one allocated tract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tract {
    /// The owner it is allocated to.
    pub owner: Owner,
    /// The protection last set through [`VmArena::protect`].
    pub prot: Protection,
    /// Bits for the client, set through [`VmArena::set_client`].
    pub client: u16,
}

/// A VM arena over a backend `P`.
///
/// # Invariants
///
/// - `vm`'s client range is `layout.tracts` pages of tracts, then
///   `layout.table_pages` page-table pages, then `layout.bit_pages`
///   allocation-table pages.
/// - Bit `i` of the allocation table is set exactly when tract `i` is
///   allocated (an unmapped allocation-table page reads all clear), and then
///   descriptor `i` has the allocated flag and a
///   non-zero owner, and tract `i` is committed with the protection its
///   shadow records.
/// - A table page is mapped exactly when it describes an allocated tract,
///   except, while `stale` is set, pages whose unmapping failed.
/// - Descriptors of free tracts in mapped page-table pages are all zero.
/// - `allocated` counts allocated tracts, `spare` committed free tracts
///   (at most `spare_limit` unless an unmap failed during a rollback),
///   `table_mapped` and `bits_mapped` the mapped table pages.
/// - `vm.mapped()` (the committed bytes) is at most `commit_limit`.
#[derive(Debug)]
pub struct VmArena<P: PageOps> {
    vm: Vm<P>,
    layout: Layout,
    /// The allocation table, in the VM's pages past the page table.
    bits: PagedBits,
    page: Size,
    zone_shift: u32,
    spare_limit: usize,
    commit_limit: Size,
    allocated: usize,
    spare: usize,
    table_mapped: usize,
    bits_mapped: usize,
    stale: bool,
    /// The hull of the ranges whose VM mapped-state pages a failed trim, or
    /// a failed map whose give-back failed too, may have left mapped (empty
    /// ones): trimmed again by the next operation, as stale table pages are.
    untrimmed: Option<Range>,
    /// An unmap of spare pages failed, perhaps part way, and read-write
    /// could not be put back: spare pages are made read-write when reused,
    /// until none is spare.
    spare_unsure: bool,
}

impl<P: PageOps> VmArena<P> {
    /// Reserve an arena as `config` says. Nothing is committed but the VM's
    /// small summary; the tables are mapped as tracts are allocated.
    pub fn new(ops: P, config: VmArenaConfig) -> Result<Self, VmArenaError> {
        let page = ops.page_size();
        let layout = Layout::new(config.size, page)?;
        if config.zone_shift < layout.page_shift || config.zone_shift >= usize::BITS {
            return Err(VmArenaError::Common(CommonError::InvalidArgument(
                "zone shift must be at least the page shift and below the word size",
            )));
        }
        let total = Size(layout.total_pages()?).checked_mul(page.0)?;
        let vm = Vm::reserve(ops, total, page)?;
        let first_bit_page = Addr(vm.base().0 + (layout.bit_page(0) << layout.page_shift));
        let bits = PagedBits::new(first_bit_page, page, layout.bit_pages);
        Ok(VmArena {
            vm,
            layout,
            bits,
            page,
            zone_shift: config.zone_shift,
            spare_limit: config.spare_limit,
            commit_limit: config.commit_limit,
            allocated: 0,
            spare: 0,
            table_mapped: 0,
            bits_mapped: 0,
            stale: false,
            untrimmed: None,
            spare_unsure: false,
        })
    }

    /// The first tract's address.
    pub fn base(&self) -> Addr {
        self.vm.base()
    }

    /// The tracts: `[base, base + tracts * page)`.
    pub fn range(&self) -> Range {
        self.tract_range(0, self.layout.tracts)
    }

    /// The page (tract) size.
    pub fn page_size(&self) -> Size {
        self.page
    }

    /// The number of tracts.
    pub fn tracts(&self) -> usize {
        self.layout.tracts
    }

    /// The VM underneath.
    pub fn vm(&self) -> &Vm<P> {
        &self.vm
    }

    /// Bytes of tracts allocated.
    pub fn allocated(&self) -> Size {
        Size(self.allocated << self.layout.page_shift)
    }

    /// Bytes of spare tracts: free but kept committed.
    pub fn spare(&self) -> Size {
        Size(self.spare << self.layout.page_shift)
    }

    /// Bytes committed: allocated and spare tracts and the mapped table
    /// pages (what the commit limit bounds).
    pub fn committed(&self) -> Size {
        self.vm.mapped()
    }

    /// Bytes of metadata mapped: the arena's table pages and the VM's own
    /// mapped-state table.
    pub fn metadata_mapped(&self) -> Size {
        let own = (self.table_mapped + self.bits_mapped) << self.layout.page_shift;
        Size(own + self.vm.metadata_mapped().0)
    }

    /// Page-table pages mapped now.
    pub fn table_pages_mapped(&self) -> usize {
        self.table_mapped
    }

    /// Allocation-table pages mapped now.
    pub fn bit_pages_mapped(&self) -> usize {
        self.bits_mapped
    }

    /// The commit limit in bytes.
    pub fn commit_limit(&self) -> Size {
        self.commit_limit
    }

    /// The spare bound in pages.
    pub fn spare_limit(&self) -> usize {
        self.spare_limit
    }

    /// log2 of the zone stripe in bytes.
    pub fn zone_shift(&self) -> u32 {
        self.zone_shift
    }

    /// The zone of `addr`.
    pub fn zone_of(&self, addr: Addr) -> u32 {
        ((addr.0 >> self.zone_shift) % ZONES as usize) as u32
    }

    /// The zones `range` touches.
    pub fn zones_of(&self, range: Range) -> ZoneSet {
        if range.is_empty() {
            return ZoneSet::EMPTY;
        }
        let (first, last) =
            (range.base().0 >> self.zone_shift, (range.limit().0 - 1) >> self.zone_shift);
        if last - first >= ZONES as usize - 1 {
            return ZoneSet::ALL;
        }
        (first..=last).fold(ZoneSet::EMPTY, |z, s| z.union(ZoneSet::single((s % 64) as u32)))
    }

    /// The tract holding `addr`, if it is in the arena.
    pub(crate) fn tract_index(&self, addr: Addr) -> Option<usize> {
        let i = addr.0.checked_sub(self.vm.base().0)? >> self.layout.page_shift;
        (i < self.layout.tracts).then_some(i)
    }

    /// Whether the tract holding `addr` is allocated.
    pub fn is_allocated(&self, addr: Addr) -> bool {
        self.tract_index(addr).is_some_and(|i| self.is_alloc(i))
    }

    /// The descriptor of the allocated tract holding `addr`.
    pub fn tract(&self, addr: Addr) -> Option<Tract> {
        let i = self.tract_index(addr)?;
        if !self.is_alloc(i) {
            return None;
        }
        let d = self.desc(i)?;
        Some(Tract { owner: Owner(d.owner), prot: tables::prot_of(d.prot)?, client: d.client })
    }

    /// Tract indices of `range`, checked to be non-empty, page-aligned and
    /// inside the tracts.
    pub(crate) fn tract_indices(&self, range: Range) -> Result<(usize, usize), VmArenaError> {
        if range.is_empty() {
            return Err(VmArenaError::Common(CommonError::InvalidArgument("empty range")));
        }
        for a in [range.base(), range.limit()] {
            if !a.is_aligned(self.page) {
                return Err(VmArenaError::Common(CommonError::Misaligned {
                    value: a.0,
                    align: self.page.0,
                }));
            }
        }
        if !self.range().contains(&range) {
            return Err(VmArenaError::Common(CommonError::OutOfRange(range)));
        }
        let base = self.vm.base().0;
        Ok((
            (range.base().0 - base) >> self.layout.page_shift,
            (range.limit().0 - base) >> self.layout.page_shift,
        ))
    }
}
