//! Access to the page table and the allocation bit table, both kept in
//! pages of the arena's own VM and mapped only while in use.

use vmspace_shim::{Addr, PageOps, Protection, Range, Size};

use super::layout::DESCRIPTOR;
use super::VmArena;
use crate::bits::{self, PageMap};
use crate::vm::Vm;

/// The allocation table's pages as its VM sees them: page `k` is at
/// `first + k << page_shift`.
struct BitPages<'a, P: PageOps> {
    vm: &'a Vm<P>,
    first: Addr,
    page_shift: u32,
}

// SAFETY: the VM's record of mapped pages is exact (its invariant), and the
// VM arena maps its allocation-table pages read-write in its own VM, never
// protects them and lets no one else use them.
unsafe impl<P: PageOps> PageMap for BitPages<'_, P> {
    fn page_mapped(&self, k: usize) -> bool {
        self.vm.is_mapped(Addr(self.first.0 + (k << self.page_shift)))
    }
}

/// Descriptor flag: the tract is allocated.
pub(crate) const ALLOCATED: u8 = 1;

/// One page-table descriptor as stored: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub(crate) struct RawTract {
    pub(crate) owner: u32,
    pub(crate) prot: u8,
    pub(crate) flags: u8,
    pub(crate) client: u16,
}

const _: () = assert!(core::mem::size_of::<RawTract>() == DESCRIPTOR);

/// The protection shadow's encoding.
pub(crate) fn prot_code(p: Protection) -> u8 {
    match p {
        Protection::ReadWrite => 0,
        Protection::Read => 1,
        Protection::None => 2,
    }
}

/// The protection a shadow code stands for (`None` for a bad code).
pub(crate) fn prot_of(code: u8) -> Option<Protection> {
    match code {
        0 => Some(Protection::ReadWrite),
        1 => Some(Protection::Read),
        2 => Some(Protection::None),
        _ => None,
    }
}

impl<P: PageOps> VmArena<P> {
    /// The address of VM page `idx` (tracts, then tables).
    pub(crate) fn vm_addr(&self, idx: usize) -> Addr {
        Addr(self.vm.base().0 + (idx << self.layout.page_shift))
    }

    /// VM page `idx` as a one-page range.
    pub(crate) fn vm_page(&self, idx: usize) -> Range {
        let a = self.vm_addr(idx);
        Range::from_size(a, self.page).unwrap_or(Range::empty(a))
    }

    /// Tracts `[lo, hi)` as a byte range.
    pub(crate) fn tract_range(&self, lo: usize, hi: usize) -> Range {
        let a = self.vm_addr(lo);
        Range::from_size(a, Size((hi - lo) << self.layout.page_shift)).unwrap_or(Range::empty(a))
    }

    /// Whether VM page `idx` is mapped.
    pub(crate) fn vm_mapped(&self, idx: usize) -> bool {
        self.vm.is_mapped(self.vm_addr(idx))
    }

    /// The allocation table's pages, mapped as the VM says.
    fn bit_map(&self) -> BitPages<'_, P> {
        BitPages {
            vm: &self.vm,
            first: self.bits.page_range(0).base(),
            page_shift: self.layout.page_shift,
        }
    }

    /// The words of allocation-table page `j`, if it is mapped.
    pub(crate) fn bit_words(&self, j: usize) -> Option<&[u64]> {
        self.bits.words(&self.bit_map(), j)
    }

    /// Whether tract `i` is allocated.
    pub(crate) fn is_alloc(&self, i: usize) -> bool {
        i < self.layout.tracts && self.bits.test(&self.bit_map(), i)
    }

    /// The first allocated tract in `[lo, hi)`.
    pub(crate) fn find_alloc(&self, lo: usize, hi: usize) -> Option<usize> {
        self.bits.find_set(&self.bit_map(), lo, hi)
    }

    /// The first free tract in `[lo, hi)`.
    pub(crate) fn find_free(&self, lo: usize, hi: usize) -> Option<usize> {
        self.bits.find_clear(&self.bit_map(), lo, hi)
    }

    /// Allocated tracts in `[lo, hi)`.
    pub(crate) fn count_alloc(&self, lo: usize, hi: usize) -> usize {
        self.bits.count(&self.bit_map(), lo, hi)
    }

    /// Set or clear the bits of tracts `[lo, hi)`; their bit pages are mapped.
    pub(crate) fn mark_alloc(&mut self, lo: usize, hi: usize, set: bool) {
        let map = BitPages {
            vm: &self.vm,
            first: self.bits.page_range(0).base(),
            page_shift: self.layout.page_shift,
        };
        self.bits.assign(&map, lo, hi, set);
    }

    /// Whether page-table page `k` describes at least one allocated tract.
    pub(crate) fn table_page_in_use(&self, k: usize) -> bool {
        let (lo, hi) = self.layout.tracts_of_table_page(k);
        self.find_alloc(lo, hi).is_some()
    }

    /// Whether allocation-table page `j` has a bit set.
    pub(crate) fn bit_page_in_use(&self, j: usize) -> bool {
        self.bit_words(j).is_some_and(|w| bits::any_set(w, 0, self.layout.per_bit_page))
    }

    fn desc_ptr(&self, i: usize) -> Option<*mut RawTract> {
        if i >= self.layout.tracts {
            return None;
        }
        let k = i / self.layout.per_table_page;
        let idx = self.layout.table_page(k);
        if !self.vm_mapped(idx) {
            return None;
        }
        let off = (i % self.layout.per_table_page) * DESCRIPTOR;
        Some(Addr(self.vm_addr(idx).0 + off).as_ptr())
    }

    /// Descriptor `i`, when its page-table page is mapped.
    pub(crate) fn desc(&self, i: usize) -> Option<RawTract> {
        // SAFETY: the descriptor lies in a mapped page-table page of our VM
        // (checked by `desc_ptr`), suitably aligned (8-byte slots from a page
        // boundary), and only this arena touches it.
        self.desc_ptr(i).map(|p| unsafe { p.read() })
    }

    /// Write descriptor `i`; its page-table page must be mapped (otherwise
    /// nothing happens).
    pub(crate) fn set_desc(&mut self, i: usize, t: RawTract) {
        if let Some(p) = self.desc_ptr(i) {
            // SAFETY: as in `desc`; `&mut self` makes this the only access.
            unsafe { p.write(t) }
        }
    }
}
