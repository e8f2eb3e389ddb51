//! The reference model of a VM arena: owner, commitment and protection of
//! every tract, predicting placement (zones, first fit), spare pages, the
//! commit limit and which table pages are mapped.

use vmspace_shim::PageOps;

use super::VmArenaOp;
use vmspace::vmarena::{Owner, Placement, Request, VmArena, ZoneSet};
use vmspace_shim::Pages;

/// The reference model for up to `N` tracts: `6 * N` bytes and a few words
/// (keep `N` small on a kernel stack).
#[derive(Debug, Clone)]
pub struct VmArenaModel<const N: usize> {
    owner: [u32; N],
    committed: [bool; N],
    read_only: [bool; N],
    tracts: usize,
    base_page: usize,
    page_shift: u32,
    zone_shift: u32,
    per_table_page: usize,
    per_bit_page: usize,
    spare_limit: usize,
    commit_limit: usize,
}

/// What the model predicts for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Success; for an allocation, at this tract with this placement.
    Ok(Option<(usize, Placement)>),
    /// Failure, changing nothing.
    Err,
}

impl<const N: usize> VmArenaModel<N> {
    /// A model of `arena`, which must have at most `N` tracts and nothing allocated.
    pub fn new<P: PageOps>(arena: &VmArena<P>) -> Option<Self> {
        if arena.tracts() > N || !arena.allocated().is_zero() {
            return None;
        }
        let page = arena.page_size().0;
        let page_shift = page.trailing_zeros();
        Some(VmArenaModel {
            owner: [0; N],
            committed: [false; N],
            read_only: [false; N],
            tracts: arena.tracts(),
            base_page: arena.base().0 >> page_shift,
            page_shift,
            zone_shift: arena.zone_shift(),
            per_table_page: page / 8,
            per_bit_page: page * 8,
            spare_limit: arena.spare_limit(),
            commit_limit: arena.commit_limit().0 >> page_shift,
        })
    }

    /// Tracts allocated.
    pub fn allocated(&self) -> usize {
        self.owner[..self.tracts].iter().filter(|&&o| o != 0).count()
    }

    /// Spare tracts.
    pub fn spare(&self) -> usize {
        (0..self.tracts).filter(|&i| self.owner[i] == 0 && self.committed[i]).count()
    }

    fn pages_in_use(&self, per: usize) -> usize {
        (0..self.tracts.div_ceil(per)).filter(|&k| self.group_in_use(k, per)).count()
    }

    fn group_in_use(&self, k: usize, per: usize) -> bool {
        (k * per..((k + 1) * per).min(self.tracts)).any(|i| self.owner[i] != 0)
    }

    /// Page-table pages describing at least one allocated tract.
    pub fn table_pages_in_use(&self) -> usize {
        self.pages_in_use(self.per_table_page)
    }

    /// Pages committed: tracts allocated or spare, and table pages in use.
    pub fn committed(&self) -> usize {
        self.allocated()
            + self.spare()
            + self.table_pages_in_use()
            + self.pages_in_use(self.per_bit_page)
    }

    /// The commit limit, in pages.
    pub fn commit_limit(&self) -> usize {
        self.commit_limit
    }

    /// The owner of tract `i` (0: free).
    pub fn owner(&self, i: usize) -> u32 {
        self.owner.get(i).copied().unwrap_or(0)
    }

    /// Whether tract `i` is committed.
    pub fn is_committed(&self, i: usize) -> bool {
        self.committed.get(i).copied().unwrap_or(false)
    }

    /// Record tract `i` as committed or not (for resynchronising after a
    /// backend failure whose effect on spare pages is not modelled).
    pub fn set_committed(&mut self, i: usize, c: bool) {
        if let Some(x) = self.committed.get_mut(i) {
            *x = c;
        }
    }

    fn zone(&self, i: usize) -> u32 {
        ((((self.base_page + i) << self.page_shift) >> self.zone_shift) % 64) as u32
    }

    fn fits(&self, p: usize, n: usize, align: usize, zones: ZoneSet) -> bool {
        (self.base_page + p) % align == 0
            && (p..p + n).all(|i| self.owner[i] == 0 && zones.contains(self.zone(i)))
    }

    fn place(&self, req: &Request) -> Option<(usize, Placement)> {
        let mut tried = None;
        for (zones, placement) in [
            (req.prefer.inter(req.avoid.complement()), Placement::Preferred),
            (req.avoid.complement(), Placement::NotAvoided),
            (ZoneSet::ALL, Placement::Anywhere),
        ] {
            if zones.is_empty() || tried == Some(zones) {
                continue;
            }
            let last = self.tracts.checked_sub(req.pages.0)?;
            if let Some(p) = (0..=last).find(|&p| self.fits(p, req.pages.0, req.align.0, zones)) {
                return Some((p, placement));
            }
            tried = Some(zones);
        }
        None
    }

    /// The tracts `[first, first + pages)` if they are all allocated to
    /// `owner`; whether any is read-only.
    fn owned(&self, first: usize, pages: usize, owner: u32) -> Option<bool> {
        let end = first.checked_add(pages).filter(|&e| pages > 0 && e <= self.tracts)?;
        (first..end)
            .all(|i| self.owner[i] == owner && owner != 0)
            .then(|| (first..end).any(|i| self.read_only[i]))
    }

    /// Predict `op` and apply it to the model.
    pub fn apply(&mut self, op: &VmArenaOp) -> Expect {
        match *op {
            VmArenaOp::Alloc { pages, owner, align, prefer, avoid } => {
                if pages == 0 || owner == 0 || !align.is_power_of_two() {
                    return Expect::Err;
                }
                let req = Request::new(Pages(pages), Owner(owner))
                    .align(Pages(align))
                    .prefer(ZoneSet(prefer))
                    .avoid(ZoneSet(avoid));
                let Some((p, placement)) = self.place(&req) else { return Expect::Err };
                // Table pages the run needs that describe nothing yet.
                let fresh_meta = |per: usize| {
                    (p / per..(p + pages - 1) / per + 1)
                        .filter(|&k| !self.group_in_use(k, per))
                        .count()
                };
                let meta = fresh_meta(self.per_table_page) + fresh_meta(self.per_bit_page);
                let reused = (p..p + pages).filter(|&i| self.committed[i]).count();
                let committed = self.committed();
                if committed + pages - reused + meta > self.commit_limit {
                    // Purging every spare page would make it fit?
                    let spare = self.spare();
                    if spare == 0 || committed - spare + pages + meta > self.commit_limit {
                        return Expect::Err;
                    }
                    for i in 0..self.tracts {
                        if self.owner[i] == 0 {
                            self.committed[i] = false;
                        }
                    }
                }
                for i in p..p + pages {
                    self.owner[i] = owner;
                    self.committed[i] = true;
                }
                Expect::Ok(Some((p, placement)))
            }
            VmArenaOp::Free { first, pages, owner } => {
                let Some(read_only) = self.owned(first, pages, owner) else { return Expect::Err };
                let keep = if read_only {
                    0
                } else {
                    self.spare_limit.saturating_sub(self.spare()).min(pages)
                };
                for i in first..first + pages {
                    self.owner[i] = 0;
                    self.read_only[i] = false;
                    self.committed[i] = i < first + keep;
                }
                Expect::Ok(None)
            }
            VmArenaOp::Protect { first, pages, owner, read_only } => {
                if self.owned(first, pages, owner).is_none() {
                    return Expect::Err;
                }
                for i in first..first + pages {
                    self.read_only[i] = read_only;
                }
                Expect::Ok(None)
            }
            VmArenaOp::Purge => {
                self.purge();
                Expect::Ok(None)
            }
            VmArenaOp::SetSpareLimit { pages } => {
                if self.spare() > pages {
                    self.purge();
                }
                self.spare_limit = pages;
                Expect::Ok(None)
            }
            VmArenaOp::SetCommitLimit { pages } => {
                // As the arena sees it: the limit in bytes, rounded down.
                let limit = (pages.saturating_mul(1 << self.page_shift)) >> self.page_shift;
                if self.committed() - self.spare() > limit {
                    return Expect::Err;
                }
                if self.committed() > limit {
                    self.purge();
                }
                self.commit_limit = limit;
                Expect::Ok(None)
            }
        }
    }

    /// Every spare tract decommitted.
    fn purge(&mut self) {
        for i in 0..self.tracts {
            if self.owner[i] == 0 {
                self.committed[i] = false;
            }
        }
    }
}
