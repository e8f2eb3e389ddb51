//! Placement: first fit by address over the free tracts, restricted to a set
//! of zones.

use vmspace_shim::PageOps;

use super::request::{Placement, Request, ZoneSet, ZONES};
use super::VmArena;

impl<P: PageOps> VmArena<P> {
    /// The first tract index `>= i` whose address is a multiple of `align`
    /// pages, or `None` past the tracts.
    fn align_tract(&self, i: usize, align: usize) -> Option<usize> {
        let abs = (self.vm.base().0 >> self.layout.page_shift).checked_add(i)?;
        let up = vmspace_shim::align::align_up(abs, align).ok()?;
        Some(up - (self.vm.base().0 >> self.layout.page_shift))
    }

    /// The first tract of `[p, end)` lying in a zone outside `zones`, if any.
    fn first_outside(&self, p: usize, end: usize, zones: ZoneSet) -> Option<usize> {
        if zones == ZoneSet::ALL {
            return None;
        }
        let stripe = |i: usize| self.vm_addr(i).0 >> self.zone_shift;
        let (first, last) = (stripe(p), stripe(end - 1));
        // 64 stripes in a row cover every zone: looking further finds nothing new.
        let last = last.min(first.saturating_add(ZONES as usize - 1));
        (first..=last).find(|&s| !zones.contains((s % ZONES as usize) as u32)).map(|s| {
            let start = s << self.zone_shift;
            if start <= self.vm_addr(p).0 {
                p
            } else {
                (start - self.vm.base().0) >> self.layout.page_shift
            }
        })
    }

    /// The first tract of the first stripe after the one holding tract `i`.
    fn next_stripe(&self, i: usize) -> Option<usize> {
        let next = ((self.vm_addr(i).0 >> self.zone_shift) + 1).checked_shl(self.zone_shift)?;
        Some((next.checked_sub(self.vm.base().0)?) >> self.layout.page_shift)
    }

    /// The first place for `pages` tracts at multiples of `align` inside the
    /// free run `[a, b)`, all in `zones`.
    fn fit_in(
        &self,
        a: usize,
        b: usize,
        pages: usize,
        align: usize,
        zones: ZoneSet,
    ) -> Option<usize> {
        let mut p = self.align_tract(a, align)?;
        loop {
            let end = p.checked_add(pages)?;
            if end > b {
                return None;
            }
            match self.first_outside(p, end, zones) {
                None => return Some(p),
                Some(q) => p = self.align_tract(self.next_stripe(q)?, align)?,
            }
        }
    }

    /// First fit over the free runs, in `zones`. One pass over the
    /// allocation table, a page of it at a time; an unmapped page is a
    /// stretch of free tracts.
    pub(crate) fn first_fit(&self, pages: usize, align: usize, zones: ZoneSet) -> Option<usize> {
        let n = self.layout.tracts;
        // The start of the free run being followed, if any.
        let mut start: Option<usize> = None;
        let try_run = |a: usize, b: usize| {
            if b - a >= pages {
                self.fit_in(a, b, pages, align, zones)
            } else {
                None
            }
        };
        for j in 0..self.layout.bit_pages {
            let (lo, hi) = self.layout.tracts_of_bit_page(j);
            let Some(w) = self.bit_words(j) else {
                start = start.or(Some(lo));
                continue;
            };
            let mut i = lo;
            while i < hi {
                match start {
                    Some(a) => match crate::bits::find_set(w, i - lo, hi - lo) {
                        None => break,
                        Some(b) => {
                            if let Some(p) = try_run(a, lo + b) {
                                return Some(p);
                            }
                            start = None;
                            i = lo + b;
                        }
                    },
                    None => match crate::bits::find_clear(w, i - lo, hi - lo) {
                        None => break,
                        Some(b) => {
                            start = Some(lo + b);
                            i = lo + b;
                        }
                    },
                }
            }
        }
        start.and_then(|a| try_run(a, n))
    }

    /// Where `req` goes: the first tier of its zone sets with room.
    pub(crate) fn place(&self, req: &Request) -> Option<(usize, Placement)> {
        let mut tried = ZoneSet::EMPTY;
        let mut tried_any = false;
        for (zones, placement) in req.tiers() {
            if zones.is_empty() || (tried_any && zones == tried) {
                continue;
            }
            if let Some(p) = self.first_fit(req.pages, req.align, zones) {
                return Some((p, placement));
            }
            tried = zones;
            tried_any = true;
        }
        None
    }
}
