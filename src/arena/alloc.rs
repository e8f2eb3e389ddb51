//! Allocation: finding a segment under each policy, carving it, importing.

use vmspace_shim::{align, Addr, Size};

use super::constraints::{Constraints, Policy, Request};
use super::source::Source;
use super::store::Store;
use super::tag::{Tag, HEAD, K_ALLOC, K_FREE, K_HELD};
use super::{Arena, ArenaError, ALLOC_TAGS};

impl<S: Store, I: Source> Arena<S, I> {
    /// Allocate `size` units (rounded up to the quantum) under `policy`.
    ///
    /// Instant fit of an unconstrained size is O(1). On failure nothing
    /// changes but the failure counter. Free the result with
    /// [`free`](Self::free) and the same size.
    #[inline]
    pub fn alloc(&mut self, size: Size, policy: Policy) -> Result<Addr, ArenaError> {
        self.alloc_plain(size, policy, false).map(|(a, _)| Addr(a))
    }

    /// Allocate under `constraints`. Over-constrained requests (that no arena
    /// could satisfy) are errors; on any failure nothing changes but the
    /// failure counter. Free the result with [`free`](Self::free) (or
    /// [`xfree`](Self::xfree)) and the same size.
    ///
    /// A request with an address window that leaves some address out
    /// ([`min_addr`](Constraints::min_addr) above 0,
    /// [`max_addr`](Constraints::max_addr) below the top, or
    /// [`exact`](Constraints::exact)) is served from the spans the arena
    /// has: it never imports, since a source chooses where its spans are. Over an importing arena, add or
    /// import the span first (an unwindowed allocation of that size), or
    /// expect `NoSpace`. Alignment, phase and nocross do import.
    pub fn xalloc(&mut self, constraints: &Constraints) -> Result<Addr, ArenaError> {
        self.alloc_constrained(constraints, false).map(|(a, _)| Addr(a))
    }

    /// [`xalloc`](Self::xalloc), hashed or `held`: the address and tag.
    #[inline(never)]
    pub(crate) fn alloc_constrained(
        &mut self,
        constraints: &Constraints,
        held: bool,
    ) -> Result<(usize, u32), ArenaError> {
        let r = match constraints.validate(self.quantum.get()) {
            Ok(mut req) => {
                req.held = held;
                self.alloc_request(&req)
            }
            Err(e) => Err(e),
        };
        self.count_failure(r)
    }

    /// [`alloc`](Self::alloc), hashed or `held`: the address and tag. (The
    /// request is built here, in the arm that uses it, so it stays in
    /// registers.)
    #[inline(always)]
    pub(crate) fn alloc_plain(
        &mut self,
        size: Size,
        policy: Policy,
        held: bool,
    ) -> Result<(usize, u32), ArenaError> {
        let r = match self.quantum.align_up(size.0) {
            Err(e) => Err(e.into()),
            Ok(_) if size.0 == 0 => Err(ArenaError::InvalidArgument("size is zero")),
            Ok(rounded) => {
                let slack = (rounded - size.0) as u32;
                let mut req = Request::plain(rounded, slack, self.quantum.get(), policy);
                req.held = held;
                self.alloc_request(&req)
            }
        };
        self.count_failure(r)
    }

    /// Count `r` in the failure counter if it is an error.
    #[inline]
    pub(crate) fn count_failure<T>(&mut self, r: Result<T, ArenaError>) -> Result<T, ArenaError> {
        if r.is_err() {
            self.counters.failures += 1;
        }
        r
    }

    /// Find, carve and (on a miss) import for `req`: the address and the
    /// allocated segment's tag. Inlined into each entry point, so the
    /// request stays in registers (as a call, the pair cost about 70 more
    /// instructions in the churn bench).
    #[inline(always)]
    pub(crate) fn alloc_request(&mut self, req: &Request) -> Result<(usize, u32), ArenaError> {
        self.gate(ALLOC_TAGS)?;
        if let Some((f, t)) = self.find(req) {
            return self.carve(f, t, req);
        }
        self.import_for(req)
    }

    #[inline(always)]
    fn find(&mut self, req: &Request) -> Option<(u32, usize)> {
        match req.policy {
            Policy::InstantFit => self.find_instant(req),
            Policy::BestFit => self.find_best(req),
            Policy::FirstFit => self.find_first(req),
            Policy::NextFit => self.find_next(req),
        }
    }

    /// The first segment that fits on the lists whose members are all large
    /// enough (just the head of the first non-empty one when unconstrained),
    /// then the lists of segments that may be.
    ///
    /// For an aligned or phased request, "large enough" includes the worst
    /// padding (`align - quantum`): segments too small for it (the fragments
    /// alignment leaves behind) would otherwise be scanned one by one on
    /// every request. They are searched last, so a fit is still always found.
    #[inline(always)]
    fn find_instant(&mut self, req: &Request) -> Option<(u32, usize)> {
        let k = self.lists.instant_list(req.size);
        if req.constrained {
            return self.find_instant_constrained(req, k);
        }
        // Every member of list k and above holds the request: the head of
        // the first non-empty one fits, at its start (or its top).
        if let Some(l) = self.lists.first_at_or_above(k) {
            let i = self.tags.get(self.lists.sentinel(l)).knext;
            self.counters.search_steps += 1;
            let t = self.tags.get(i);
            return Some((i, if req.top { t.end - req.size } else { t.start }));
        }
        self.find_instant_below(req, k)
    }

    /// Instant fit of an aligned, phased, nocross or windowed request: the
    /// lists sure to fit even with the worst padding, then those that may.
    #[inline(never)]
    fn find_instant_constrained(&mut self, req: &Request, k: usize) -> Option<(u32, usize)> {
        let sure = self.lists.instant_list(req.size.saturating_add(req.align - self.quantum.get()));
        if let Some(found) = self.first_in_lists(sure, usize::MAX, req) {
            return Some(found);
        }
        if let Some(found) = self.first_in_lists(k, sure, req) {
            return Some(found);
        }
        self.find_instant_below(req, k)
    }

    /// Nothing on the lists from `k` up fits: search the one list below,
    /// whose members may hold `req.size` (instant fit fails only when
    /// nothing fits).
    #[inline(never)]
    fn find_instant_below(&mut self, req: &Request, k: usize) -> Option<(u32, usize)> {
        let below = self.lists.list_of(req.size);
        if below < k {
            return self.scan_list(below, req, false);
        }
        None
    }

    /// The first segment that fits on the non-empty lists in `[from, to)`.
    #[inline]
    fn first_in_lists(&mut self, from: usize, to: usize, req: &Request) -> Option<(u32, usize)> {
        let mut list = self.lists.first_at_or_above(from);
        while let Some(l) = list.filter(|&l| l < to) {
            let end = self.lists.sentinel(l);
            let mut i = self.tags.get(end).knext;
            while i != end {
                self.counters.search_steps += 1;
                let t = self.tags.get(i);
                if let Some(p) = req.place(t.start, t.end) {
                    return Some((i, p));
                }
                i = t.knext;
            }
            list = self.lists.first_at_or_above(l + 1);
        }
        None
    }

    /// Search list `l` for a segment that fits: the first, or the smallest
    /// when `best`.
    fn scan_list(&mut self, l: usize, req: &Request, best: bool) -> Option<(u32, usize)> {
        let mut found: Option<(u32, usize, usize)> = None;
        let end = self.lists.sentinel(l);
        let mut i = self.tags.get(end).knext;
        while i != end {
            self.counters.search_steps += 1;
            let t = *self.tags.get(i);
            if found.is_none_or(|(_, _, sz)| t.size() < sz) {
                if let Some(p) = req.place(t.start, t.end) {
                    found = Some((i, p, t.size()));
                    if !best || t.size() == req.size {
                        break;
                    }
                }
            }
            i = t.knext;
        }
        found.map(|(i, p, _)| (i, p))
    }

    /// The smallest segment that fits: every member of a list is smaller than
    /// every member of the next, so the first list with a fit holds it.
    fn find_best(&mut self, req: &Request) -> Option<(u32, usize)> {
        let mut list = self.lists.first_at_or_above(self.lists.list_of(req.size));
        while let Some(l) = list {
            if let Some(found) = self.scan_list(l, req, true) {
                return Some(found);
            }
            list = self.lists.first_at_or_above(l + 1);
        }
        None
    }

    /// The lowest-addressed segment that fits (highest when from the top).
    fn find_first(&mut self, req: &Request) -> Option<(u32, usize)> {
        let mut i = self.step(HEAD, req.top);
        while i != HEAD {
            self.counters.search_steps += 1;
            let t = self.tags.get(i);
            if t.kind() == K_FREE {
                if let Some(p) = req.place(t.start, t.end) {
                    return Some((i, p));
                }
            }
            i = self.step(i, req.top);
        }
        None
    }

    /// Next fit: the first placement at or after where the last next-fit
    /// allocation ended (`rotor_addr`), in address order, wrapping round to
    /// the lowest when there is none. The first lap runs from the rotor tag
    /// (where that allocation was, or the tag before it once a free
    /// released it; stepped back to a segment starting at or below
    /// `rotor_addr`) to the end of the address list, searching each segment
    /// from `rotor_addr` on; the second runs from the start over what the
    /// first did not search in full: everything before that tag, and what
    /// begins below `rotor_addr` after it (a fit may straddle it).
    fn find_next(&mut self, req: &Request) -> Option<(u32, usize)> {
        let r = self.rotor_addr;
        // The rotor tag is a hint: other allocations and resizes may have
        // moved its segment's start past `r`; step back to one at or below.
        let mut from = self.rotor;
        while from != HEAD && self.tags.get(from).start > r {
            from = self.tags.get(from).aprev;
            self.counters.search_steps += 1;
        }
        let mut i = from;
        loop {
            let t = self.tags.get(i);
            if t.kind() == K_FREE && t.end > r {
                if let Some(p) = req.place(t.start.max(r), t.end) {
                    return Some((i, p));
                }
            }
            i = t.anext;
            self.counters.search_steps += 1;
            if i == HEAD {
                break;
            }
        }
        // Everything before the rotor, and from it on what begins below `r`.
        let mut past_rotor = from == HEAD;
        i = self.tags.get(HEAD).anext;
        while i != HEAD {
            let t = self.tags.get(i);
            past_rotor |= i == from;
            if past_rotor && t.start >= r {
                break;
            }
            if t.kind() == K_FREE {
                if let Some(p) = req.place(t.start, t.end) {
                    return Some((i, p));
                }
            }
            i = t.anext;
            self.counters.search_steps += 1;
        }
        None
    }

    #[inline]
    fn step(&self, i: u32, back: bool) -> u32 {
        let t = self.tags.get(i);
        if back {
            t.aprev
        } else {
            t.anext
        }
    }

    /// Allocate `[t, t + req.size)` out of free segment `f`, splitting off
    /// what is left on either side, and hash it (or count it held). Needs
    /// two tags, reserved beforehand. Returns `t` and the allocated tag.
    #[inline(always)]
    pub(crate) fn carve(
        &mut self,
        f: u32,
        t: usize,
        req: &Request,
    ) -> Result<(usize, u32), ArenaError> {
        let seg = *self.tags.get(f);
        let end = t + req.size;
        let (left, right) = (t > seg.start, end < seg.end);
        let a = match (left, right) {
            (false, false) => {
                self.lists.remove(self.tags.all_mut(), f);
                f
            }
            (false, true) => {
                let a = self.tags.take()?;
                self.link_after(seg.aprev, a);
                self.lists.resize(self.tags.all_mut(), f, end, seg.end);
                a
            }
            (true, false) => {
                let a = self.tags.take()?;
                self.link_after(f, a);
                self.lists.resize(self.tags.all_mut(), f, seg.start, t);
                a
            }
            (true, true) => {
                let a = self.tags.take()?;
                let g = match self.tags.take() {
                    Ok(g) => g,
                    Err(e) => {
                        self.tags.put(a);
                        return Err(e);
                    }
                };
                self.lists.resize(self.tags.all_mut(), f, seg.start, t);
                self.link_after(f, a);
                self.link_after(a, g);
                let gt = self.tags.get_mut(g);
                gt.start = end;
                gt.end = seg.end;
                gt.set_kind(K_FREE);
                gt.set_imported(false);
                self.lists.insert(self.tags.all_mut(), g);
                a
            }
        };
        {
            let at = self.tags.get_mut(a);
            at.start = t;
            at.end = end;
            at.set_kind(if req.held { K_HELD } else { K_ALLOC });
            at.set_imported(false);
            at.set_kprev(req.slack);
        }
        if req.held {
            self.held += 1;
        } else {
            self.hash.insert(&mut self.tags, a);
        }
        if req.policy == Policy::NextFit {
            self.rotor = a;
            self.rotor_addr = end;
        }
        self.sizes.free.0 -= req.size;
        self.sizes.allocated.0 += req.size;
        self.counters.allocs += 1;
        Ok((t, a))
    }

    /// Import a span big enough for `req` from the source and allocate from
    /// it. Tags for the span and the carve were reserved by the caller; the
    /// source reserves its own before it changes anything.
    fn import_for(&mut self, req: &Request) -> Result<(usize, u32), ArenaError> {
        if req.windowed || !self.call_source(|s| s.can_import()) {
            return Err(ArenaError::NoSpace { size: req.size });
        }
        if self.mtbf.hit() {
            self.counters.injected += 1;
            return Err(ArenaError::Injected);
        }
        // Checked when the arena was made, unless the source could not say
        // then (a `&RefCell` borrowed elsewhere) or has changed since.
        let sq = self.call_source(|s| s.quantum()).0;
        if !sq.is_power_of_two() {
            return Err(ArenaError::InvalidArgument("source quantum is not a power of two"));
        }
        let q = self.quantum.get().max(sq);
        let size = req.phase.checked_add(req.size).ok_or(ArenaError::Overflow)?;
        let size = align::align_up(size, q)?;
        // A block aligned to a power of two at least its size lies within
        // one block of every larger power of two, so `nocross` asks for no
        // more alignment than that (aligning to `nocross` itself would make
        // the source find a whole boundary's worth of room).
        let align = match size.checked_next_power_of_two() {
            Some(p) if req.nocross != 0 && p <= req.nocross => req.align.max(q).max(p),
            _ => req.align.max(q).max(req.nocross),
        };
        // A source that only aligns to its quantum is asked for room to
        // align in: the first multiple of `align` in a quantum-aligned span
        // is at most `align - q` from its base.
        let (size, align) = if align == q || self.call_source(|s| s.imports_aligned()) {
            (size, align)
        } else {
            (size.checked_add(align - q).ok_or(ArenaError::Overflow)?, q)
        };
        let r = self.call_source(|s| s.import(Size(size), Size(align))).map_err(|e| match e {
            ArenaError::NoSpace { .. } => ArenaError::NoSpace { size: req.size },
            e => e,
        })?;
        let ok = r.size().0 == size && r.base().is_aligned(Size(align));
        let made = if ok { self.create_span(r, true) } else { Err(ArenaError::BadImport(r)) };
        let (_, f) = match made {
            Ok(x) => x,
            Err(e) => {
                // Give the range back only if none of it is ours: a broken
                // source that hands out a range it already gave us must not
                // make us release our own live span.
                if self.span_neighbours(r).is_ok() {
                    let _ = self.call_source(|s| s.release(r));
                } else {
                    self.call_source(|s| s.refused(r));
                }
                return Err(match e {
                    ArenaError::SpanOverlap(r) => ArenaError::BadImport(r),
                    e => e,
                });
            }
        };
        self.counters.imports += 1;
        self.sizes.imported.0 += size;
        let seg: Tag = *self.tags.get(f);
        match req.place(seg.start, seg.end) {
            Some(t) => self.carve(f, t, req),
            None => {
                // Unreachable for a source that keeps its contract (the span
                // is aligned and large enough); undo rather than trust it.
                self.destroy_free_span(f);
                Err(ArenaError::BadImport(r))
            }
        }
    }
}
