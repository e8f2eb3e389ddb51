//! Allocate/free/protect/purge sequences for a [`VmArena`], with the spare
//! bound and the commit limit changed on the way, checked against a
//! per-tract model that also predicts placement, spare pages, the commit
//! limit and which page-table pages are mapped.

use core::fmt;
use vmspace::CommonError;

use vmspace_shim::{PageOps, Pages, Protection, Range, Size};

use super::Rng;
use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaError, ZoneSet};

mod model;
pub use model::{Expect, VmArenaModel};

/// One operation on a VM arena, in tract units relative to its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmArenaOp {
    /// [`VmArena::alloc`].
    Alloc {
        /// Pages (zero is a bad request).
        pages: usize,
        /// Owner (zero is a bad request).
        owner: u32,
        /// Alignment in pages (not a power of two is a bad request).
        align: usize,
        /// Preferred zones.
        prefer: u64,
        /// Avoided zones.
        avoid: u64,
    },
    /// [`VmArena::free`] of tracts `[first, first + pages)`.
    Free {
        /// First tract.
        first: usize,
        /// Pages.
        pages: usize,
        /// Owner claimed.
        owner: u32,
    },
    /// [`VmArena::protect`] of tracts `[first, first + pages)`.
    Protect {
        /// First tract.
        first: usize,
        /// Pages.
        pages: usize,
        /// Owner claimed.
        owner: u32,
        /// Read-write when false, read-only when true.
        read_only: bool,
    },
    /// [`VmArena::purge_spare`].
    Purge,
    /// [`VmArena::set_spare_limit`].
    SetSpareLimit {
        /// The new bound, in pages.
        pages: usize,
    },
    /// [`VmArena::set_commit_limit`] to `pages` pages (`usize::MAX`: no
    /// limit; refused below what is committed without spare pages).
    SetCommitLimit {
        /// The new limit, in pages.
        pages: usize,
    },
}

impl VmArenaOp {
    /// Decode one operation from the front of `bytes` (for fuzzing), for an
    /// arena of `tracts` tracts; `None` when the bytes run out.
    pub fn decode(bytes: &mut &[u8], tracts: usize) -> Option<VmArenaOp> {
        let (&[k, a, b, c], rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        let tracts = tracts.max(1);
        let first = (usize::from(a) << 8 | usize::from(b)) % tracts.saturating_add(2);
        let owner = u32::from(c % 4);
        Some(match k % 8 {
            0..=2 => {
                let pages = usize::from(b % 64);
                let zone = |x: u8| match x % 4 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1u64 << (x / 4 % 64),
                    _ => u64::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                };
                VmArenaOp::Alloc {
                    pages,
                    owner,
                    align: 1 << (k / 8 % 4),
                    prefer: zone(a),
                    avoid: zone(c / 4),
                }
            }
            3..=5 => VmArenaOp::Free { first, pages: usize::from(c / 4 % 16), owner },
            6 => VmArenaOp::Protect {
                first,
                pages: usize::from(c / 4 % 16),
                owner,
                read_only: k & 0x80 != 0,
            },
            _ => match k / 8 % 4 {
                0 | 1 => VmArenaOp::Purge,
                2 => VmArenaOp::SetSpareLimit { pages: usize::from(c % 24) },
                _ if c == u8::MAX => VmArenaOp::SetCommitLimit { pages: usize::MAX },
                _ => VmArenaOp::SetCommitLimit { pages: usize::from(c) },
            },
        })
    }
}

/// Generates [`VmArenaOp`]s for an arena of `tracts` tracts, aimed at what
/// the model has allocated so most frees and protects are valid.
#[derive(Debug, Clone)]
pub struct VmArenaOpGen {
    rng: Rng,
    tracts: usize,
}

impl VmArenaOpGen {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64, tracts: usize) -> Self {
        VmArenaOpGen { rng: Rng::new(seed), tracts: tracts.max(1) }
    }

    /// The next operation.
    pub fn next_op<const N: usize>(&mut self, model: &VmArenaModel<N>) -> VmArenaOp {
        let r = &mut self.rng;
        let owner = r.between(1, 3) as u32;
        match r.below(100) {
            0..=44 => {
                let pages = if r.chance(900) { r.between(1, 12) } else { r.between(13, 80) };
                let zones = |r: &mut Rng| match r.below(4) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1u64 << r.below(64),
                    _ => r.next_u64(),
                };
                let prefer = if r.chance(500) { u64::MAX } else { zones(r) };
                let avoid = if r.chance(500) { 0 } else { zones(r) };
                let align = match r.below(10) {
                    0 => 4,
                    1 => 3,
                    _ => 1,
                };
                let (pages, owner) = match r.below(40) {
                    0 => (0, owner),
                    1 => (pages, 0),
                    _ => (pages, owner),
                };
                VmArenaOp::Alloc { pages, owner, align, prefer, avoid }
            }
            45..=94 => {
                // Usually a piece of a run the model has allocated.
                let from = r.below(self.tracts);
                let found = (from..self.tracts).chain(0..from).find(|&i| model.owner(i) != 0);
                let (first, pages, owner) = match found {
                    Some(first) if r.chance(900) => {
                        let o = model.owner(first);
                        let end = (first..self.tracts)
                            .find(|&i| model.owner(i) != o)
                            .unwrap_or(self.tracts);
                        let owner = if r.chance(950) { o } else { o % 3 + 1 };
                        (first, r.between(1, end - first), owner)
                    }
                    _ => (r.below(self.tracts.saturating_add(2)), r.between(0, 6), owner),
                };
                if r.chance(200) {
                    VmArenaOp::Protect { first, pages, owner, read_only: r.chance(700) }
                } else {
                    VmArenaOp::Free { first, pages, owner }
                }
            }
            95..=97 => VmArenaOp::Purge,
            98 => VmArenaOp::SetSpareLimit { pages: r.below(20) },
            _ => {
                // Around what is committed, seldom looser than the limit
                // now (a tight limit stays tight), now and then none.
                let committed = model.committed();
                let ceiling = model.commit_limit().min(committed + 64) + 8;
                let pages = if model.commit_limit() > self.tracts * 2 && r.chance(300) {
                    usize::MAX
                } else {
                    r.between(committed.saturating_sub(4), ceiling.max(committed))
                };
                VmArenaOp::SetCommitLimit { pages }
            }
        }
    }
}

/// How a driven sequence went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmArenaRunError {
    /// The step at which it went wrong.
    pub step: usize,
    /// The operation.
    pub op: VmArenaOp,
    /// What disagreed.
    pub what: &'static str,
    /// The arena's error, when there was one.
    pub error: Option<VmArenaError>,
}

impl fmt::Display for VmArenaRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} ({:?}): {}", self.step, self.op, self.what)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// What a driven sequence did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmArenaRunStats {
    /// Operations that succeeded.
    pub succeeded: usize,
    /// Operations refused, as the model predicted.
    pub rejected: usize,
    /// Operations the backend failed (fault injection), leaving the arena unchanged.
    pub backend_failures: usize,
    /// Allocations that fell back from their preferred zones.
    pub fell_back: usize,
    /// Changes of the spare bound or the commit limit that succeeded.
    pub limit_changes: usize,
}

/// Apply one operation to the arena.
pub fn apply<P: PageOps>(
    arena: &mut VmArena<P>,
    op: &VmArenaOp,
) -> Result<Option<(usize, Placement)>, VmArenaError> {
    let page = arena.page_size().0;
    let range = |first: usize, pages: usize| {
        let base = first.checked_mul(page).and_then(|o| o.checked_add(arena.base().0));
        let size = pages.checked_mul(page);
        match (base, size) {
            (Some(b), Some(s)) => {
                Range::from_size(vmspace_shim::Addr(b), Size(s)).map_err(VmArenaError::from)
            }
            _ => Err(VmArenaError::Common(CommonError::Overflow)),
        }
    };
    match *op {
        VmArenaOp::Alloc { pages, owner, align, prefer, avoid } => {
            let req = Request::new(Pages(pages), Owner(owner))
                .align(Pages(align))
                .prefer(ZoneSet(prefer))
                .avoid(ZoneSet(avoid));
            let g = arena.alloc(&req)?;
            Ok(Some(((g.range.base().0 - arena.base().0) / page, g.placement)))
        }
        VmArenaOp::Free { first, pages, owner } => {
            arena.free(range(first, pages)?, Owner(owner)).map(|()| None)
        }
        VmArenaOp::Protect { first, pages, owner, read_only } => {
            let prot = if read_only { Protection::Read } else { Protection::ReadWrite };
            arena.protect(range(first, pages)?, Owner(owner), prot).map(|()| None)
        }
        VmArenaOp::Purge => arena.purge_spare().map(|_| None),
        VmArenaOp::SetSpareLimit { pages } => arena.set_spare_limit(pages).map(|()| None),
        VmArenaOp::SetCommitLimit { pages } => {
            arena.set_commit_limit(Size(pages.saturating_mul(page))).map(|()| None)
        }
    }
}

/// The model after a [`VmArena::purge_spare`] that failed part-way. The
/// purge gives spare runs back in address order and keeps what it gave back
/// before the failing call, so every spare tract below the first one the
/// arena still has committed is decommitted, and everything else is as
/// before. Compare the arena with the result exactly: a tract decommitted
/// out of that order, or any other change, is a difference.
pub fn after_partial_purge<P: PageOps, const N: usize>(
    arena: &VmArena<P>,
    before: &VmArenaModel<N>,
) -> VmArenaModel<N> {
    let mut m = before.clone();
    let page = arena.page_size().0;
    for i in 0..arena.tracts() {
        let spare = before.owner(i) == 0 && before.is_committed(i);
        if !spare {
            continue;
        }
        if arena.vm().is_mapped(vmspace_shim::Addr(arena.base().0 + i * page)) {
            break;
        }
        m.set_committed(i, false);
    }
    m
}

/// Compare the arena with the model: allocation map, owners, and (without
/// faults) committed memory, spare pages and mapped page-table pages, which
/// must equal the pages describing at least one allocated tract.
pub fn compare<P: PageOps, const N: usize>(
    arena: &VmArena<P>,
    model: &VmArenaModel<N>,
    exact: bool,
) -> Result<(), &'static str> {
    let page = arena.page_size().0;
    for i in 0..arena.tracts() {
        let a = vmspace_shim::Addr(arena.base().0 + i * page);
        let owner = arena.tract(a).map_or(0, |t| t.owner.0);
        if owner != model.owner(i) {
            return Err("a tract's owner differs from the model");
        }
    }
    if arena.allocated().0 != model.allocated() * page {
        return Err("allocated() differs from the model");
    }
    if exact {
        if arena.spare().0 != model.spare() * page {
            return Err("spare() differs from the model");
        }
        if arena.table_pages_mapped() != model.table_pages_in_use() {
            return Err("mapped page-table pages != pages describing an allocated tract");
        }
        if arena.committed().0 != model.committed() * page {
            return Err("committed() differs from the model");
        }
    }
    Ok(())
}

/// Apply `steps` generated operations to `arena` and the model side by side,
/// comparing after every step and running `check()`. With `faults` (the
/// backend injects failures), a backend failure must leave the allocation
/// map unchanged, and spare pages are resynchronised from the arena.
pub fn run<P: PageOps, const N: usize>(
    arena: &mut VmArena<P>,
    seed: u64,
    steps: usize,
    faults: bool,
) -> Result<VmArenaRunStats, VmArenaRunError> {
    let mut model = VmArenaModel::<N>::new(arena).ok_or(VmArenaRunError {
        step: 0,
        op: VmArenaOp::Purge,
        what: "the arena is too large for the model or not empty",
        error: None,
    })?;
    let mut gen = VmArenaOpGen::new(seed, arena.tracts());
    let mut stats = VmArenaRunStats::default();
    for step in 0..steps {
        let op = gen.next_op(&model);
        step_checked(arena, &mut model, &op, faults, &mut stats)
            .map_err(|(what, error)| VmArenaRunError { step, op, what, error })?;
    }
    Ok(stats)
}

/// Apply `op` to the arena and the model, then compare them and run
/// `check()`; the step of [`run`], for drivers with their own operations
/// (fuzzing, KUnit).
pub fn step_checked<P: PageOps, const N: usize>(
    arena: &mut VmArena<P>,
    model: &mut VmArenaModel<N>,
    op: &VmArenaOp,
    faults: bool,
    stats: &mut VmArenaRunStats,
) -> Result<(), (&'static str, Option<VmArenaError>)> {
    // Kept only when a failure may have to be undone (the model is 6N
    // bytes, and kernel stacks are small).
    let before = if faults { Some(model.clone()) } else { None };
    let expected = model.apply(op);
    let result = apply(arena, op);
    // A metadata page whose unmap failed stays mapped, counted in
    // `committed()`, until the retry an operation makes first gives it
    // back (the vmarena module docs); the model does not count it, so
    // when that retry failed too (the page is still there after the
    // operation) the arena may find the commit limit passed where the
    // model does not.
    let stale = faults
        && matches!(result, Err(VmArenaError::CommitLimit { .. }))
        && arena.stale_pages() > 0;
    match (expected, result) {
        (Expect::Ok(p), Ok(got)) => {
            if p != got {
                return Err(("allocation placed differently from the model", None));
            }
            stats.fell_back += usize::from(got.is_some_and(|(_, pl)| pl != Placement::Preferred));
            stats.limit_changes += usize::from(matches!(
                op,
                VmArenaOp::SetSpareLimit { .. } | VmArenaOp::SetCommitLimit { .. }
            ));
            stats.succeeded += 1;
        }
        (Expect::Ok(_), Err(e)) if before.is_some() && e.backend().is_some() => {
            if let Some(b) = before {
                *model = b;
            }
            stats.backend_failures += 1;
        }
        (Expect::Ok(_), Err(VmArenaError::CommitLimit { .. })) if stale => {
            if let Some(b) = before {
                *model = b;
            }
            stats.rejected += 1;
        }
        (Expect::Ok(_), Err(e)) => return Err(("a valid operation was refused", Some(e))),
        (Expect::Err, Ok(_)) => return Err(("an invalid operation succeeded", None)),
        (Expect::Err, Err(_)) => stats.rejected += 1,
    }
    if faults {
        let page = arena.page_size().0;
        for i in 0..arena.tracts() {
            model.set_committed(
                i,
                arena.vm().is_mapped(vmspace_shim::Addr(arena.base().0 + i * page)),
            );
        }
    }
    compare(arena, model, !faults).map_err(|w| (w, None))?;
    arena.check().map_err(|e| ("check() failed", Some(e)))
}
