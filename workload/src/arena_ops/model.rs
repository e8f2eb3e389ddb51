//! The reference model of an arena: the added spans and the taken ranges
//! (live allocations and ranges freed but not flushed), in fixed arrays (no
//! heap).

use vmspace_shim::align;

use vmspace::arena::{Policy, Request};

/// A range the model knows to be taken: a live allocation (where it is, the
/// size asked for, and the tag of its handle, 0 when it was allocated by
/// address), or, when `unflushed`, one freed by
/// [`free_deferred`](vmspace::arena::Arena::free_deferred) and waiting for
/// the flush: no allocation (every free of it is bad), and no allocation
/// may overlap it either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Taken {
    pub(super) addr: usize,
    pub(super) end: usize,
    pub(super) asked: usize,
    pub(super) tag: u32,
    pub(super) unflushed: bool,
}

impl Taken {
    /// A live allocation.
    pub(super) fn allocation(addr: usize, end: usize, asked: usize, tag: u32) -> Taken {
        Taken { addr, end, asked, tag, unflushed: false }
    }
}

/// The reference model: added spans and taken ranges (live allocations and
/// unflushed ranges), both sorted by address, in fixed arrays (`N` taken
/// ranges, `M` added spans).
#[derive(Debug, Clone)]
pub struct ArenaModel<const N: usize, const M: usize> {
    pub(super) taken: [Taken; N],
    pub(super) ntaken: usize,
    pub(super) spans: [(usize, usize); M],
    pub(super) nspans: usize,
    pub(super) allocs: u64,
    pub(super) frees: u64,
    pub(super) bad_frees: u64,
    pub(super) deferred_frees: u64,
    pub(super) flushes: u64,
}

impl<const N: usize, const M: usize> Default for ArenaModel<N, M> {
    fn default() -> Self {
        ArenaModel {
            taken: [Taken::default(); N],
            ntaken: 0,
            spans: [(0, 0); M],
            nspans: 0,
            allocs: 0,
            frees: 0,
            bad_frees: 0,
            deferred_frees: 0,
            flushes: 0,
        }
    }
}

impl<const N: usize, const M: usize> ArenaModel<N, M> {
    /// Live allocations.
    pub fn live(&self) -> usize {
        self.allocations().count()
    }

    /// Taken ranges: live allocations and ranges freed but not flushed (at
    /// most `N`; what an operation generator weighs against `N`).
    pub fn occupied(&self) -> usize {
        self.ntaken
    }

    /// Every taken range, in address order.
    pub(super) fn taken_ranges(&self) -> &[Taken] {
        &self.taken[..self.ntaken]
    }

    /// The live allocations, in address order.
    pub(super) fn allocations(&self) -> impl Iterator<Item = &Taken> {
        self.taken_ranges().iter().filter(|l| !l.unflushed)
    }

    /// Bytes freed but not flushed.
    pub(super) fn unflushed_bytes(&self) -> usize {
        self.taken_ranges().iter().filter(|l| l.unflushed).map(|l| l.end - l.addr).sum()
    }

    /// Allocation `i` was freed by `free_deferred`: it waits for the flush.
    pub(super) fn defer(&mut self, i: usize) {
        self.taken[i].unflushed = true;
        self.frees += 1;
        self.deferred_frees += 1;
    }

    /// The arena was told of a flush: every unflushed range is free again
    /// (a flush, when there were any).
    pub(super) fn flush(&mut self) {
        let before = self.ntaken;
        let mut kept = 0;
        for i in 0..before {
            if !self.taken[i].unflushed {
                self.taken[kept] = self.taken[i];
                kept += 1;
            }
        }
        self.ntaken = kept;
        if kept < before {
            self.flushes += 1;
        }
    }

    /// The live allocation made by address that starts at `addr`.
    pub(super) fn by_address(&self, addr: usize) -> Option<usize> {
        let i = self.position(addr);
        let l = self.taken_ranges().get(i)?;
        (l.addr == addr && l.tag == 0 && !l.unflushed).then_some(i)
    }

    /// Index of the first taken range at or above `addr`.
    pub(super) fn position(&self, addr: usize) -> usize {
        self.taken_ranges().partition_point(|l| l.addr < addr)
    }

    pub(super) fn insert(&mut self, l: Taken) -> bool {
        if self.ntaken == N {
            return false;
        }
        let i = self.position(l.addr);
        self.taken.copy_within(i..self.ntaken, i + 1);
        self.taken[i] = l;
        self.ntaken += 1;
        true
    }

    /// Allocation `i` was freed: drop it and count the free.
    pub(super) fn forget(&mut self, i: usize) {
        self.taken.copy_within(i + 1..self.ntaken, i);
        self.ntaken -= 1;
        self.frees += 1;
    }

    /// A taken range that `[addr, end)` overlaps, if any.
    pub(super) fn overlapping(&self, addr: usize, end: usize) -> Option<&Taken> {
        let i = self.position(addr);
        if i > 0 && self.taken[i - 1].end > addr {
            Some(&self.taken[i - 1])
        } else {
            self.taken_ranges().get(i).filter(|l| l.addr < end)
        }
    }

    pub(super) fn allocated(&self) -> usize {
        self.allocations().map(|l| l.end - l.addr).sum()
    }

    pub(super) fn span_total(&self) -> usize {
        self.spans[..self.nspans].iter().map(|s| s.1 - s.0).sum()
    }

    /// Where `[b, e)` would go among the added spans, and the spans it
    /// touches below and above.
    pub(super) fn span_slot(&self, b: usize) -> usize {
        self.spans[..self.nspans].partition_point(|s| s.0 < b)
    }

    pub(super) fn add_span(&mut self, b: usize, e: usize) -> bool {
        if self.nspans == M {
            return false;
        }
        let i = self.span_slot(b);
        self.spans.copy_within(i..self.nspans, i + 1);
        self.spans[i] = (b, e);
        self.nspans += 1;
        true
    }

    /// Apply a valid extend to the model; returns whether it is valid.
    /// Whether `[b, e)` touches an added span (so an extend of it is valid
    /// when it overlaps nothing).
    pub(super) fn touches(&self, b: usize, e: usize) -> bool {
        let i = self.span_slot(b);
        (i > 0 && self.spans[i - 1].1 == b) || (i < self.nspans && self.spans[i].0 == e)
    }

    pub(super) fn extend(&mut self, b: usize, e: usize) -> bool {
        let i = self.span_slot(b);
        let lo = i > 0 && self.spans[i - 1].1 == b;
        let hi = i < self.nspans && self.spans[i].0 == e;
        match (lo, hi) {
            (true, true) => {
                self.spans[i - 1].1 = self.spans[i].1;
                self.spans.copy_within(i + 1..self.nspans, i);
                self.nspans -= 1;
            }
            (true, false) => self.spans[i - 1].1 = e,
            (false, true) => self.spans[i].0 = b,
            (false, false) => return false,
        }
        true
    }
}

/// Where a request can go in the model's free space: the lowest and highest
/// placements and the size of the smallest free range that has one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fits {
    pub(super) lowest: usize,
    pub(super) highest: usize,
    pub(super) smallest: usize,
}

/// A validated request in plain numbers, as the model computes with it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Want {
    pub(super) size: usize,
    pub(super) align: usize,
    pub(super) phase: usize,
    pub(super) nocross: usize,
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) policy: Policy,
    pub(super) top: bool,
}

impl From<&Request> for Want {
    fn from(r: &Request) -> Want {
        Want {
            size: r.size().0,
            align: r.align().0,
            phase: r.phase().0,
            nocross: r.nocross().0,
            lo: r.min().0,
            hi: r.max().0,
            policy: r.policy(),
            top: r.from_top(),
        }
    }
}

pub(super) fn lowest_in(r: &Want, s: usize, e: usize) -> Option<usize> {
    let (s, e) = (s.max(r.lo), e.min(r.hi));
    let mut t = align::align_up_with_phase(s, r.align, r.phase).ok()?;
    loop {
        if t.checked_add(r.size)? > e {
            return None;
        }
        if r.nocross == 0 || !align::crosses_boundary(t, r.size, r.nocross) {
            return Some(t);
        }
        let b = align::next_boundary(t, r.nocross).ok()?;
        t = align::align_up_with_phase(b, r.align, r.phase).ok()?;
    }
}

pub(super) fn highest_in(r: &Want, s: usize, e: usize) -> Option<usize> {
    let (s, e) = (s.max(r.lo), e.min(r.hi));
    let mut t = align::align_down_with_phase(e.checked_sub(r.size)?, r.align, r.phase)?;
    loop {
        if t < s {
            return None;
        }
        if r.nocross == 0 || !align::crosses_boundary(t, r.size, r.nocross) {
            return Some(t);
        }
        let b = align::align_down(t + r.size - 1, r.nocross)?;
        t = align::align_down_with_phase(b.checked_sub(r.size)?, r.align, r.phase)?;
    }
}
