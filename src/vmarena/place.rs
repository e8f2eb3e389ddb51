//! Placement: first fit by address over the free tracts, restricted to a set
//! of zones.

use core::ops::ControlFlow;

use vmspace_shim::PageOps;

use super::request::{Placement, Request, ZoneSet, ZONES};
use super::VmArena;

/// What looking for a fit in a free run gave.
enum Try {
    /// The run holds a fit here.
    Fit(usize),
    /// No fit starts before this tract, in this run or any later one.
    Resume(usize),
    /// No fit starts anywhere: past the last tract, or the zones alone rule
    /// out every start (a whole period of them was tried in one free run).
    Never,
}

/// Whether `x` has `n` (1 to 64) consecutive set bits.
fn has_run(x: u64, n: usize) -> bool {
    let (mut y, mut len) = (x, 1);
    while len < n && y != 0 {
        let s = len.min(n - len);
        y &= y >> s;
        len += s;
    }
    y != 0
}

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

    /// The first tract of the first stripe after the one holding tract `i`
    /// whose zone is in `zones` (non-empty), or `None` past the address space.
    fn next_allowed_stripe(&self, i: usize, zones: ZoneSet) -> Option<usize> {
        let s = self.vm_addr(i).0 >> self.zone_shift;
        let z = ((s + 1) % ZONES as usize) as u32;
        let skip = zones.0.rotate_right(z).trailing_zeros() as usize;
        let t = s.checked_add(1 + skip)?;
        let addr = t.checked_mul(1usize.checked_shl(self.zone_shift)?)?;
        Some(addr.checked_sub(self.vm.base().0)? >> self.layout.page_shift)
    }

    /// How many tracts the pattern of zones and alignments repeats after:
    /// whether a start at tract `p` stays inside `zones` and on a multiple
    /// of `align` (a power of two) depends only on `p`'s absolute page
    /// number modulo this, as the 64 zones' stripes and the alignment both
    /// repeat at powers of two of the address. `usize::MAX` when larger
    /// than any arena.
    fn zone_period(&self, align: usize) -> usize {
        let cycle_shift = self.zone_shift + ZONES.trailing_zeros() - self.layout.page_shift;
        1usize.checked_shl(cycle_shift).map_or(usize::MAX, |cycle| cycle.max(align))
    }

    /// The first place for `pages` tracts at multiples of `align` inside the
    /// free run `[a, b)`, all in `zones`; otherwise the first candidate
    /// start at or after `a` that alignment and zones allow (its run would
    /// have to reach it plus `pages`), or [`Try::Never`]. Every candidate
    /// from `origin` (the run's start, at most `a`) to `a` was ruled out
    /// by the zones already: once the candidates ruled out so span a whole
    /// [period](Self::zone_period), no start anywhere is in `zones`.
    fn fit_in(
        &self,
        origin: usize,
        a: usize,
        b: usize,
        pages: usize,
        align: usize,
        zones: ZoneSet,
    ) -> Try {
        let Some(mut p) = self.align_tract(a, align) else { return Try::Never };
        let period = self.zone_period(align);
        loop {
            // Past the last tract (an alignment larger than the arena can
            // take a start there): no run here or later holds a fit.
            let end = match p.checked_add(pages) {
                Some(end) if end <= self.layout.tracts => end,
                _ => return Try::Never,
            };
            // Every start in [origin, p) failed for its zones, in one free
            // run; a period of them failing is every start failing (an
            // impossible request walked every stripe of the arena).
            if p - origin >= period {
                return Try::Never;
            }
            match self.first_outside(p, end, zones) {
                None if end <= b => return Try::Fit(p),
                None => return Try::Resume(p),
                // No start before the next allowed stripe avoids tract q.
                Some(q) => match self
                    .next_allowed_stripe(q, zones)
                    .and_then(|t| self.align_tract(t, align))
                {
                    Some(next) if next < b => p = next,
                    Some(next) => return Try::Resume(next),
                    None => return Try::Never,
                },
            }
        }
    }

    /// First fit over the free runs, in `zones`: one pass over the
    /// allocation table, a word at a time where no run in the word can be
    /// long enough, jumping past stripes of disallowed zones, and stopping
    /// as soon as the run being followed holds a fit, or as soon as the
    /// zones alone rule out every start (a request no stripe pattern holds
    /// costs a period of stripes, not the arena). An unmapped table page is
    /// a stretch of free tracts.
    pub(crate) fn first_fit(&self, pages: usize, align: usize, zones: ZoneSet) -> Option<usize> {
        let n = self.layout.tracts;
        let bpp_shift = self.layout.per_bit_page.trailing_zeros();
        // The free run being followed: its start, the end it must reach
        // before a fit in it is worth looking for, and the first candidate
        // start not yet ruled out (a look resumes there, not at the run's
        // start: each look from the start walked every zone stripe before
        // it again, quadratic in a long run).
        let mut run: Option<(usize, usize, usize)> = None;
        let begin = |a: usize| Some((a, a.saturating_add(pages), a));
        let mut i = 0;
        while i < n {
            let (lo, hi) = self.layout.tracts_of_bit_page(i >> bpp_shift);
            let Some(w) = self.bit_words(i >> bpp_shift) else {
                run = run.or_else(|| begin(i));
                i = hi;
                if let ControlFlow::Break(found) = self.grown(&mut run, i, pages, align, zones) {
                    return found;
                }
                continue;
            };
            let base = i - ((i - lo) & 63);
            let wend = (base + 64).min(hi);
            if i == base {
                // Bits past the last tract count as allocated.
                let mut word = w[(base - lo) >> 6];
                if wend - base < 64 {
                    word |= !0u64 << (wend - base);
                }
                if word == 0 {
                    run = run.or_else(|| begin(base));
                    i = wend;
                    if let ControlFlow::Break(found) = self.grown(&mut run, i, pages, align, zones)
                    {
                        return found;
                    }
                    continue;
                }
                let bottom_end = base + word.trailing_zeros() as usize;
                let bottom = bottom_end - run.map_or(base, |r| r.0);
                if bottom < pages && !(pages <= 64 && has_run(!word, pages)) {
                    // No run ending in this word is long enough: follow
                    // only the one leaving it at the top.
                    let top = word.leading_zeros() as usize;
                    run = if top > 0 { begin(base + 64 - top) } else { None };
                    i = wend;
                    continue;
                }
            }
            // Follow the runs of this word exactly.
            let mut k = i;
            let mut resume = wend;
            while k < wend {
                match run {
                    Some((a, _, next)) => match crate::bits::find_set(w, k - lo, wend - lo) {
                        None => k = wend,
                        Some(b) => {
                            let b = lo + b;
                            run = None;
                            if b - a >= pages {
                                match self.fit_in(a, next.max(a), b, pages, align, zones) {
                                    Try::Fit(p) => return Some(p),
                                    Try::Never => return None,
                                    Try::Resume(r) if r > b => {
                                        resume = r;
                                        break;
                                    }
                                    Try::Resume(_) => {}
                                }
                            }
                            k = b;
                        }
                    },
                    None => match crate::bits::find_clear(w, k - lo, wend - lo) {
                        None => k = wend,
                        Some(c) => {
                            run = begin(lo + c);
                            k = lo + c;
                        }
                    },
                }
            }
            if run.is_some() {
                if let ControlFlow::Break(found) = self.grown(&mut run, wend, pages, align, zones) {
                    return found;
                }
            }
            i = resume;
        }
        None
    }

    /// The run being followed now reaches `end` (it may go on): if that is
    /// far enough, look for a fit in it, and otherwise note how far it must
    /// reach for the next look. Breaks with the fit, or with `None` when no
    /// start anywhere can fit.
    fn grown(
        &self,
        run: &mut Option<(usize, usize, usize)>,
        end: usize,
        pages: usize,
        align: usize,
        zones: ZoneSet,
    ) -> ControlFlow<Option<usize>> {
        let Some((a, want, next)) = *run else { return ControlFlow::Continue(()) };
        if end < want {
            return ControlFlow::Continue(());
        }
        // Every candidate before `next` was ruled out by an earlier look.
        match self.fit_in(a, next.max(a), end, pages, align, zones) {
            Try::Fit(p) => ControlFlow::Break(Some(p)),
            Try::Never => ControlFlow::Break(None),
            Try::Resume(r) => {
                *run = Some((a, r.saturating_add(pages), r));
                ControlFlow::Continue(())
            }
        }
    }

    /// Where `req` goes: the first tier of its zone sets with room.
    pub(crate) fn place(&self, req: &Request) -> Option<(usize, Placement)> {
        let mut tried = ZoneSet::EMPTY;
        let mut tried_any = false;
        for (zones, placement) in req.tiers() {
            if zones.is_empty() || (tried_any && zones == tried) {
                continue;
            }
            if let Some(p) = self.first_fit(req.pages.0, req.align.0, zones) {
                return Some((p, placement));
            }
            tried = zones;
            tried_any = true;
        }
        None
    }
}
