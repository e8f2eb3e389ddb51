//! The driver's partial frees and resizes: what the model predicts for
//! [`ArenaTarget::free_part`] and [`ArenaTarget::resize`], and how it follows them.

use vmspace_shim::{align, Addr, Size};

use super::{ArenaDriver, Outcome};
use crate::arena_ops::model::{ArenaModel, Taken};
use crate::arena_ops::target::ArenaTarget;
use crate::arena_ops::ArenaOp;
use vmspace::arena::{ArenaError, SegmentKinds};

impl<const N: usize, const M: usize> ArenaModel<N, M> {
    /// Drop allocation `i` without counting a free (it lives on in pieces).
    fn remove(&mut self, i: usize) {
        self.taken.copy_within(i + 1..self.ntaken, i);
        self.ntaken -= 1;
    }
}

impl<const N: usize, const M: usize> ArenaDriver<N, M> {
    /// [`ArenaOp::FreePart`] or [`ArenaOp::Resize`]; `None` when there is
    /// nothing to do.
    pub(super) fn reshape<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        op: &ArenaOp,
    ) -> Option<Outcome> {
        match *op {
            ArenaOp::FreePart { pick, offset, size, skew, inside } => {
                self.free_part(arena, pick, offset, size, skew, inside)
            }
            ArenaOp::Resize { pick, size, claim } => self.resize(arena, pick, size, claim),
            _ => None,
        }
    }

    /// [`ArenaOp::FreePart`]; `None`
    /// when nothing is live (nothing to do).
    fn free_part<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        pick: usize,
        offset: usize,
        size: usize,
        skew: usize,
        inside: bool,
    ) -> Option<Outcome> {
        let m = &self.model;
        // A full model has no room for the second piece of a split.
        if m.ntaken == 0 || m.ntaken == N {
            return None;
        }
        let q = arena.quantum().0;
        let l = m.taken[pick % m.ntaken];
        let units = (l.end - l.addr) / q;
        let off = (offset % units) * q + skew;
        let len = if size % 4 == 0 { l.asked.saturating_sub(off) } else { (size % units + 1) * q };
        let at = if inside { l.addr + q } else { l.addr };
        // Valid: a piece of the allocation by address starting at `at`,
        // inside the size asked for, on quantum boundaries (or its end).
        let piece = m.by_address(at).and_then(|i| {
            let l = m.taken[i];
            let a = at.checked_add(off)?;
            let b = a.checked_add(len)?;
            let asked_end = l.addr + l.asked;
            let ok = a < b
                && b <= asked_end
                && align::is_aligned(a, q)
                && (b == asked_end || align::is_aligned(b, q));
            ok.then_some((i, a, if b == asked_end { l.end } else { b }))
        });
        let r = arena.free_part(Addr(at), Size(off), Size(len));
        match (&r, piece) {
            (Ok(()), Some((i, a, b))) => {
                let l = self.model.taken[i];
                if a == l.addr && b == l.end {
                    self.model.forget(i);
                } else {
                    self.stats.partial_frees += 1;
                    self.model.remove(i);
                    if a > l.addr {
                        self.model.insert(Taken::allocation(l.addr, a, a - l.addr, 0));
                    }
                    if b < l.end {
                        let asked = l.addr + l.asked - b;
                        self.model.insert(Taken::allocation(b, l.end, asked, 0));
                    }
                }
            }
            (Err(ArenaError::BadFree { .. }), None) => self.model.bad_frees += 1,
            _ => {}
        }
        Some((piece.is_some(), r))
    }

    /// [`ArenaOp::Resize`]; `None` when
    /// nothing is live.
    fn resize<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        pick: usize,
        size: usize,
        claim: usize,
    ) -> Option<Outcome> {
        let m = &self.model;
        if m.ntaken == 0 {
            return None;
        }
        let q = arena.quantum().0;
        let i = pick % m.ntaken;
        let l = m.taken[i];
        let old = l.asked.wrapping_add(claim);
        let claim_ok = l.tag == 0 && !l.unflushed && old == l.asked;
        // The new end, if the size is good and it fits where the allocation
        // is: before the next live allocation and the end of its span.
        let new_end = align::align_up(size, q).ok().and_then(|r| l.addr.checked_add(r));
        let room = if i + 1 < m.ntaken { m.taken[i + 1].addr } else { usize::MAX };
        let span_end = arena
            .walk(SegmentKinds::SPANS)
            .find(|s| s.range.base().0 <= l.addr && l.addr < s.range.limit().0)
            .map_or(0, |s| s.range.limit().0);
        let fits = new_end.filter(|&e| size > 0 && e <= room.min(span_end));
        let r = arena.resize(Addr(l.addr), Size(old), Size(size));
        match (&r, claim_ok, fits) {
            (Ok(()), true, Some(end)) => {
                self.model.taken[i].end = end;
                self.model.taken[i].asked = size;
                self.stats.resizes += 1;
            }
            (Err(ArenaError::BadFree { .. }), false, _) => self.model.bad_frees += 1,
            _ => {}
        }
        Some((claim_ok && fits.is_some(), r))
    }
}
