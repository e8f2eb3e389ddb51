//! The driver that checks an arena against the reference model step by
//! step.

use core::fmt;

use vmspace_shim::{align, Addr, Range, Size};

mod frees;
mod resize;

use super::model::{highest_in, lowest_in, ArenaModel, Fits, Taken, Want};
use super::target::ArenaTarget;
use super::ArenaOp;
use vmspace::arena::{ArenaError, Constraints, Policy, SegmentKind, SegmentKinds};

/// What a driven sequence did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaRunStats {
    /// Operations that succeeded.
    pub succeeded: usize,
    /// Operations rejected, as the model predicted.
    pub rejected: usize,
    /// Operations that failed for want of tags, source space or an injected
    /// fault, leaving the arena unchanged.
    pub resource_failures: usize,
    /// First-fit and best-fit choices verified exactly against the model.
    pub exact_fits: usize,
    /// Allocations satisfied by importing from the source.
    pub imported: usize,
    /// Allocations held by handles.
    pub held: usize,
    /// Allocations freed through their handles.
    pub handle_frees: usize,
    /// Bad handles refused.
    pub bad_handles: usize,
    /// Partial frees that left part of their allocation live.
    pub partial_frees: usize,
    /// Resizes done in place (grown or shrunk).
    pub resizes: usize,
    /// Frees into the freed-but-not-flushed state.
    pub deferred_frees: usize,
    /// Flushes that made ranges free again.
    pub flushes: usize,
}

/// How a driven sequence went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaRunError {
    /// The step at which it went wrong.
    pub step: usize,
    /// What disagreed.
    pub what: &'static str,
    /// The operation.
    pub op: ArenaOp,
    /// The arena's error, when there was one.
    pub error: Option<ArenaError>,
}

impl fmt::Display for ArenaRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {} in {:?}", self.step, self.what, self.op)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Everything observable about an arena that a failed operation must not
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    sizes: vmspace::arena::Sizes,
    live: usize,
    spans: usize,
    allocs: u64,
    frees: u64,
    digest: u64,
}

impl Snapshot {
    fn of<A: ArenaTarget>(a: &A) -> Snapshot {
        let digest = a.walk(SegmentKinds::ALL).fold(0xcbf2_9ce4_8422_2325u64, |h, s| {
            let k = s.kind as u64 + (u64::from(s.imported) << 2) + (u64::from(s.held) << 3);
            let x = h ^ (s.range.base().0 as u64).rotate_left(17) ^ s.range.limit().0 as u64 ^ k;
            x.wrapping_mul(0x100_0000_01b3)
        });
        let c = a.counters();
        Snapshot {
            sizes: a.sizes(),
            live: a.live(),
            spans: a.span_count(),
            allocs: c.allocs,
            frees: c.frees,
            digest,
        }
    }
}

/// Whether an error is a resource failure rather than a verdict on the
/// arguments: allowed in place of success, provided nothing changed.
fn is_resource(e: &ArenaError) -> bool {
    matches!(
        e,
        ArenaError::TagsExhausted
            | ArenaError::Backing(_)
            | ArenaError::Vm(_)
            | ArenaError::Injected
            | ArenaError::SourceBusy
            | ArenaError::BadImport(_)
    )
}

/// An operation's outcome: whether the model expected it to succeed, and
/// what the arena said.
type Outcome = (bool, Result<(), ArenaError>);

/// Applies [`ArenaOp`]s to an arena and to an [`ArenaModel`] side by side.
///
/// It takes about `24 * N + 16 * M` bytes and never copies its model, so on
/// a kernel stack keep `N` and `M` small (64 and 16 take under 2 KiB).
#[derive(Debug, Clone)]
pub struct ArenaDriver<const N: usize, const M: usize> {
    model: ArenaModel<N, M>,
    stats: ArenaRunStats,
    step: usize,
}

impl<const N: usize, const M: usize> Default for ArenaDriver<N, M> {
    fn default() -> Self {
        ArenaDriver { model: ArenaModel::default(), stats: ArenaRunStats::default(), step: 0 }
    }
}

impl<const N: usize, const M: usize> ArenaDriver<N, M> {
    /// A driver for an arena that has no spans and no allocations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model.
    pub fn model(&self) -> &ArenaModel<N, M> {
        &self.model
    }

    /// What the steps so far did.
    pub fn stats(&self) -> ArenaRunStats {
        // The deferred frees and flushes are the model's own counts.
        let (deferred_frees, flushes) = (self.model.deferred_frees, self.model.flushes);
        ArenaRunStats {
            deferred_frees: deferred_frees as usize,
            flushes: flushes as usize,
            ..self.stats
        }
    }

    /// The model's fits for `r` in the arena's spans minus the live
    /// allocations.
    fn fits<A: ArenaTarget>(&self, a: &A, r: &Want) -> Option<Fits> {
        let mut f: Option<Fits> = None;
        let m = &self.model;
        for span in a.walk(SegmentKinds::SPANS) {
            let (sb, se) = (span.range.base().0, span.range.limit().0);
            let mut cursor = sb;
            let mut i = m.position(sb);
            loop {
                let gap_end =
                    if i < m.ntaken && m.taken[i].addr < se { m.taken[i].addr } else { se };
                if gap_end > cursor {
                    if let (Some(lo), Some(hi)) =
                        (lowest_in(r, cursor, gap_end), highest_in(r, cursor, gap_end))
                    {
                        let size = gap_end - cursor;
                        f = Some(match f {
                            None => Fits { lowest: lo, highest: hi, smallest: size },
                            Some(f) => Fits {
                                lowest: f.lowest.min(lo),
                                highest: f.highest.max(hi),
                                smallest: f.smallest.min(size),
                            },
                        });
                    }
                }
                if gap_end == se {
                    break;
                }
                cursor = m.taken[i].end;
                i += 1;
            }
        }
        f
    }

    /// Apply `op` to `arena` and the model, then check that they agree.
    // The error carries the operation for the report; there is no heap to box it in.
    #[allow(clippy::result_large_err)]
    pub fn step<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        op: &ArenaOp,
    ) -> Result<(), ArenaRunError> {
        let step = self.step;
        self.step += 1;
        let fail = |what, error| ArenaRunError { step, what, op: *op, error };
        let before = Snapshot::of(arena);
        let q = arena.quantum().0;
        let (valid, result): Outcome = match *op {
            ArenaOp::Add { base, size } => {
                let valid = size > 0
                    && align::is_aligned(base | size, q)
                    && base.checked_add(size).is_some()
                    && !arena
                        .walk(SegmentKinds::SPANS)
                        .any(|s| s.range.base().0 < base + size && base < s.range.limit().0);
                // A full span table has no room for one more: a good add
                // is skipped then, as an allocation is when the model is
                // full (the arena takes any number of spans).
                if valid && self.model.nspans == M {
                    return Ok(());
                }
                let r = arena.add(Addr(base), Size(size));
                if r.is_ok() && !self.model.add_span(base, base + size) {
                    return Err(fail("model span table full", None));
                }
                (valid, r)
            }
            ArenaOp::Extend { base, size } => {
                let end = base.checked_add(size);
                let clear = size > 0
                    && align::is_aligned(base | size, q)
                    && end.is_some()
                    && !arena
                        .walk(SegmentKinds::SPANS)
                        .any(|s| s.range.base().0 < base + size && base < s.range.limit().0);
                // No clone of the model: kernel stacks are small.
                let valid = clear && self.model.touches(base, base + size);
                let r = arena.extend(Addr(base), Size(size));
                if r.is_ok() && valid {
                    self.model.extend(base, base + size);
                }
                (valid, r)
            }
            ArenaOp::Alloc { size, policy, held } => {
                let c = Constraints::new(Size(size)).policy(policy);
                self.allocate(arena, &c, true, held)?
            }
            ArenaOp::XAlloc { constraints, held } => {
                self.allocate(arena, &constraints, false, held)?
            }
            ArenaOp::Free { pick, deferred } => match self.free(arena, pick, deferred) {
                Ok(Some(outcome)) => outcome,
                Ok(None) => return Ok(()),
                Err(what) => return Err(fail(what, None)),
            },
            ArenaOp::Flush => self.flush(arena).map_err(|what| fail(what, None))?,
            ArenaOp::FreePart { .. } | ArenaOp::Resize { .. } => match self.reshape(arena, op) {
                Some(outcome) => outcome,
                None => return Ok(()),
            },
            ArenaOp::BadFree { addr, size } => self.bad_free(arena, addr, size),
            ArenaOp::BadHandle { pick, tag_of, offset } => {
                match self.bad_handle(arena, pick, tag_of, offset)? {
                    Some(outcome) => outcome,
                    None => return Ok(()),
                }
            }
        };
        match (valid, result) {
            (true, Ok(())) => self.stats.succeeded += 1,
            (false, Ok(())) => return Err(fail("an invalid operation succeeded", None)),
            (valid, Err(e)) => {
                if is_resource(&e) {
                    self.stats.resource_failures += 1;
                } else if !valid {
                    self.stats.rejected += 1;
                } else {
                    return Err(fail("a valid operation was refused", Some(e)));
                }
                if Snapshot::of(arena) != before {
                    return Err(fail("a failed operation changed the arena", Some(e)));
                }
            }
        }
        self.compare(arena).map_err(|(what, e)| fail(what, e))
    }

    /// xalloc (or alloc) against the model. Returns (valid, result) where a
    /// `NoSpace` failure with no fit in the model counts as a valid rejection.
    // The error carries the operation for the report; there is no heap to box it in.
    #[allow(clippy::result_large_err)]
    fn allocate<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        c: &Constraints,
        plain: bool,
        held: bool,
    ) -> Result<Outcome, ArenaRunError> {
        let step = self.step - 1;
        let op = if plain {
            ArenaOp::Alloc { size: c.size().0, policy: c.chosen_policy(), held }
        } else {
            ArenaOp::XAlloc { constraints: *c, held }
        };
        let fail = |what, error| ArenaRunError { step, what, op, error };
        let q = arena.quantum().0;
        let req = match c.validate(q) {
            Ok(r) => Want::from(&r),
            Err(e) => {
                return match Self::call_alloc(arena, c, plain, held) {
                    Err(g) if g == e => Ok((false, Err(g))),
                    Err(g) => Err(fail("rejected with a different error", Some(g))),
                    Ok(_) => Err(fail("an invalid request succeeded", None)),
                };
            }
        };
        if self.model.ntaken == N {
            return Ok((true, Ok(())));
        }
        let fits = self.fits(arena, &req);
        let imports = arena.counters().imports;
        let (t, tag) = match Self::call_alloc(arena, c, plain, held) {
            Ok(x) => x,
            Err(e @ ArenaError::NoSpace { .. }) if fits.is_none() => return Ok((false, Err(e))),
            Err(e) => return Ok((true, Err(e))),
        };
        let imported = arena.counters().imports > imports;
        let end = t + req.size;
        if !(t >= req.lo
            && end <= req.hi
            && align::align_up_with_phase(t, req.align, req.phase) == Ok(t)
            && (req.nocross == 0 || !align::crosses_boundary(t, req.size, req.nocross)))
        {
            return Err(fail("allocation breaks its constraints", None));
        }
        match self.model.overlapping(t, end) {
            Some(l) if l.unflushed => {
                return Err(fail("allocation reissued a range freed but not flushed", None))
            }
            Some(_) => return Err(fail("allocation overlaps a live one", None)),
            None => {}
        }
        if !arena
            .walk(SegmentKinds::SPANS)
            .any(|s| s.range.base().0 <= t && end <= s.range.limit().0)
        {
            return Err(fail("allocation outside every span", None));
        }
        match (fits, imported) {
            (None, false) => return Err(fail("allocated where the model has no room", None)),
            (Some(_), true) => return Err(fail("imported although a fit existed", None)),
            (Some(f), false) => match req.policy {
                Policy::FirstFit => {
                    if t != if req.top { f.highest } else { f.lowest } {
                        return Err(fail("first fit did not take the first fit", None));
                    }
                    self.stats.exact_fits += 1;
                }
                Policy::BestFit => {
                    let i = self.model.position(t);
                    let lo = if i > 0 { self.model.taken[i - 1].end } else { 0 };
                    let hi =
                        if i < self.model.ntaken { self.model.taken[i].addr } else { usize::MAX };
                    let span = arena
                        .walk(SegmentKinds::SPANS)
                        .find(|s| s.range.base().0 <= t && t < s.range.limit().0)
                        .map(|s| (s.range.base().0, s.range.limit().0))
                        .unwrap_or((0, 0));
                    if hi.min(span.1) - lo.max(span.0) != f.smallest {
                        return Err(fail("best fit did not take the smallest fit", None));
                    }
                    self.stats.exact_fits += 1;
                }
                _ => {}
            },
            (None, true) => self.stats.imported += 1,
        }
        let asked = c.size().0;
        let range =
            Some((Range::new(Addr(t), Addr(end)).unwrap_or(Range::empty(Addr(t))), Size(asked)));
        let found = match arena.handle_from_parts(Addr(t), tag) {
            Some(h) => (arena.lookup_handle(h), arena.lookup(Addr(t))),
            None => (None, arena.lookup(Addr(t))),
        };
        if found != if held { (range, None) } else { (None, range) } {
            return Err(fail("lookup of the new allocation disagrees", None));
        }
        self.stats.held += usize::from(held);
        if !self.model.insert(Taken::allocation(t, end, asked, tag)) {
            return Err(fail("model full", None));
        }
        self.model.allocs += 1;
        Ok((true, Ok(())))
    }

    /// The allocation `op` asks for, through the interface it names: the
    /// address and the handle's tag (0 when allocated by address).
    fn call_alloc<A: ArenaTarget>(
        arena: &mut A,
        c: &Constraints,
        plain: bool,
        held: bool,
    ) -> Result<(usize, u32), ArenaError> {
        let handle = |h: A::Handle| {
            let (addr, tag) = A::handle_parts(h);
            (addr.0, tag)
        };
        match (plain, held) {
            (true, false) => arena.alloc(c.size(), c.chosen_policy()).map(|a| (a.0, 0)),
            (false, false) => arena.xalloc(c).map(|a| (a.0, 0)),
            (true, true) => arena.alloc_handle(c.size(), c.chosen_policy()).map(handle),
            (false, true) => arena.xalloc_handle(c).map(handle),
        }
    }

    /// [`ArenaOp::BadHandle`]: valid only when the handle names the held
    /// allocation at its address. `None` when the handle would have tag 0
    /// (no handle can: nothing to do).
    // The error carries the operation for the report; there is no heap to box it in.
    #[allow(clippy::result_large_err)]
    fn bad_handle<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        pick: usize,
        tag_of: usize,
        offset: u32,
    ) -> Result<Option<Outcome>, ArenaRunError> {
        let m = &self.model;
        let n = m.ntaken.max(1);
        // With nothing live: address 0 (in no span) and tag 1 (plus offset).
        let (addr, i) =
            if m.ntaken == 0 { (0, usize::MAX) } else { (m.taken[pick % n].addr, pick % n) };
        let whose = if tag_of == usize::MAX { i } else { tag_of % n };
        let tag = if whose < m.ntaken { m.taken[whose].tag } else { 1 };
        let Some(h) = arena.handle_from_parts(Addr(addr), tag.wrapping_add(offset)) else {
            return Ok(None);
        };
        let valid = i < m.ntaken
            && m.taken[i].tag != 0
            && !m.taken[i].unflushed
            && m.taken[i].tag == A::handle_parts(h).1;
        let step = self.step - 1;
        let fail = |what| ArenaRunError {
            step,
            what,
            op: ArenaOp::BadHandle { pick, tag_of, offset },
            error: None,
        };
        let r = self.free_held(arena, h, valid.then_some(i)).map_err(fail)?;
        if matches!(r, Err(ArenaError::BadHandle { .. })) && !valid {
            self.model.bad_frees += 1;
            self.stats.bad_handles += 1;
        }
        Ok(Some((valid, r)))
    }

    /// Compare the arena's observable state with the model and run `check()`.
    fn compare<A: ArenaTarget>(&self, a: &A) -> Result<(), (&'static str, Option<ArenaError>)> {
        let m = &self.model;
        let sizes = a.sizes();
        if a.live() != m.live() || sizes.allocated.0 != m.allocated() {
            return Err(("live allocations differ from the model", None));
        }
        if sizes.total.0 - sizes.imported.0 != m.span_total() {
            return Err(("added span total differs from the model", None));
        }
        let mut added = a.walk(SegmentKinds::SPANS).filter(|s| !s.imported);
        for &(b, e) in &m.spans[..m.nspans] {
            match added.next() {
                Some(s) if s.range.base().0 == b && s.range.limit().0 == e => {}
                _ => return Err(("added spans differ from the model", None)),
            }
        }
        if added.next().is_some() {
            return Err(("arena has an added span the model lacks", None));
        }
        let mut allocated = a.walk(SegmentKinds::ALLOCATED);
        for l in m.allocations() {
            match allocated.next() {
                Some(s)
                    if s.kind == SegmentKind::Allocated
                        && s.held == (l.tag != 0)
                        && s.range.base().0 == l.addr
                        && s.range.limit().0 == l.end
                        && s.requested.0 == l.asked => {}
                _ => return Err(("allocated segments differ from the model", None)),
            }
        }
        if allocated.next().is_some() {
            return Err(("arena has an allocated segment the model lacks", None));
        }
        self.compare_unflushed(a)?;
        let c = a.counters();
        if c.allocs != m.allocs || c.frees != m.frees || c.bad_frees != m.bad_frees {
            return Err(("counters differ from the model", None));
        }
        if c.deferred_frees != m.deferred_frees || c.flushes != m.flushes {
            return Err(("deferred-free counters differ from the model", None));
        }
        a.check().map_err(|e| ("check() failed", Some(e)))
    }
}
