//! Batched give-backs: seeded import/give-back/flush sequences on a batched
//! [`VmSource`], checked against a model of what is live and what waits for
//! its flush (the freed-but-not-flushed state).
//!
//! The invariant under test is the one the BPF arena once broke: a range
//! given back is not handed out again until its unmap has been flushed. The
//! model knows which ranges wait; every import must miss them unless a flush
//! happened first (at the threshold, on [`VmSource::flush`], or because the
//! import found no room). The backend checks it too: the simulated one
//! refuses to map an unflushed page; the kernel's flushes first and counts
//! it as a forced flush, which its KUnit suite asserts never happens.

use core::fmt;

use vmspace_shim::{PageOps, Range, Size};

use super::Rng;
use vmspace::arena::{ArenaError, SegmentKinds, Source, Store};
use vmspace::sources::VmSource;

/// Live imports the model tracks at most.
pub const SLOTS: usize = 64;
/// Give-backs waiting for their flush the model tracks at most: when this
/// many wait, the driver flushes before the next give-back.
pub const WAITING: usize = 256;

/// One step of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchedOp {
    /// Import `pages` pages aligned to `2^align_log` pages.
    Import {
        /// Size in pages.
        pages: usize,
        /// Alignment, as a power of two of pages.
        align_log: u32,
    },
    /// Give back the live import in slot `slot % live`.
    GiveBack {
        /// Which live import.
        slot: usize,
    },
    /// Give back a range that is not a live import (must be refused).
    BadGiveBack {
        /// Which live import to misname (its size doubled), or a waiting
        /// range when `waiting` is set (a give-back of what was given back).
        slot: usize,
        /// Misname a range that waits for its flush instead.
        waiting: bool,
    },
    /// [`VmSource::flush`].
    Flush,
}

/// What a driven sequence did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Imports that succeeded.
    pub imports: usize,
    /// Give-backs that succeeded.
    pub give_backs: usize,
    /// Bad give-backs refused.
    pub refused: usize,
    /// Operations the backend failed (fault injection), nothing changed.
    pub backend_failures: usize,
    /// Flushes the source made (threshold, call or import).
    pub flushes: u64,
    /// Most pages waiting for a flush at once.
    pub max_waiting_pages: usize,
    /// Imports that found their room only after a flush.
    pub import_flushes: usize,
}

/// How a driven sequence went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunError {
    /// The step at which it went wrong.
    pub step: usize,
    /// What disagreed.
    pub what: &'static str,
    /// The source's error, when there was one.
    pub error: Option<ArenaError>,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.step, self.what)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// A small fixed set of ranges.
#[derive(Clone, Copy)]
struct RangeSet<const N: usize> {
    items: [Range; N],
    len: usize,
}

impl<const N: usize> RangeSet<N> {
    const EMPTY: Self = RangeSet { items: [Range::empty(vmspace_shim::Addr(0)); N], len: 0 };

    fn push(&mut self, r: Range) -> bool {
        if self.len == N {
            return false;
        }
        self.items[self.len] = r;
        self.len += 1;
        true
    }

    fn take(&mut self, i: usize) -> Range {
        let r = self.items[i];
        self.items[i] = self.items[self.len - 1];
        self.len -= 1;
        r
    }

    fn as_slice(&self) -> &[Range] {
        &self.items[..self.len]
    }

    fn overlaps(&self, r: &Range) -> bool {
        self.as_slice().iter().any(|x| x.overlaps(r))
    }

    fn bytes(&self) -> usize {
        self.as_slice().iter().map(|r| r.size().0).sum()
    }
}

/// The generator: mostly imports and give-backs, some flushes and bad
/// give-backs, sizes of 1 to 16 pages.
pub struct BatchedOpGen {
    rng: Rng,
}

impl BatchedOpGen {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        BatchedOpGen { rng: Rng::new(seed) }
    }

    /// The next operation, given how many imports are live.
    pub fn next_op(&mut self, live: usize) -> BatchedOp {
        let r = self.rng.below(100);
        match r {
            _ if live == 0 || (r < 45 && live < SLOTS) => BatchedOp::Import {
                pages: if self.rng.chance(300) { 16 } else { self.rng.between(1, 8) },
                align_log: if self.rng.chance(200) { self.rng.below(4) as u32 } else { 0 },
            },
            0..=84 => BatchedOp::GiveBack { slot: self.rng.below(SLOTS) },
            85..=91 => BatchedOp::Flush,
            _ => BatchedOp::BadGiveBack {
                slot: self.rng.below(SLOTS),
                waiting: self.rng.chance(500),
            },
        }
    }
}

impl BatchedOp {
    /// Decode one operation from the front of `bytes` (for fuzzing): two
    /// bytes an operation, `None` when fewer are left.
    pub fn decode(bytes: &mut &[u8]) -> Option<BatchedOp> {
        let &[a, b, ref rest @ ..] = *bytes else { return None };
        *bytes = rest;
        let (a, b) = (usize::from(a), usize::from(b));
        Some(match a % 8 {
            0..=2 => BatchedOp::Import { pages: b % 16 + 1, align_log: (a >> 3) as u32 % 4 },
            3..=5 => BatchedOp::GiveBack { slot: b },
            6 => BatchedOp::Flush,
            _ => BatchedOp::BadGiveBack { slot: b, waiting: a & 8 != 0 },
        })
    }
}

/// Applies operations to a batched [`VmSource`] and to the model side by
/// side, checking after every step (see [`run`]).
pub struct BatchedDriver {
    salt: usize,
    step: usize,
    live: RangeSet<SLOTS>,
    waiting: RangeSet<WAITING>,
    stats: RunStats,
}

impl BatchedDriver {
    /// A driver for a source with nothing imported; `salt` varies the
    /// stamps written into imports.
    pub fn new(salt: u64) -> Self {
        BatchedDriver {
            salt: salt as usize,
            step: 0,
            live: RangeSet::EMPTY,
            waiting: RangeSet::EMPTY,
            stats: RunStats::default(),
        }
    }

    /// Live imports now.
    pub fn live(&self) -> usize {
        self.live.len
    }

    /// What the steps so far did.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// Apply `op` to `source` and the model; then check that they agree.
    pub fn step<P: PageOps, S: Store>(
        &mut self,
        source: &mut VmSource<P, S>,
        op: BatchedOp,
    ) -> Result<(), RunError> {
        let step = self.step;
        self.step += 1;
        let fail = |what, error| RunError { step, what, error };
        let page = source.vm().page_size();
        let flushes = source.space().counters().flushes;
        let (live, waiting, stats) = (&mut self.live, &mut self.waiting, &mut self.stats);
        match op {
            BatchedOp::Import { pages, align_log } => {
                let align = Size(page.0 << align_log);
                match source.import(Size(pages * page.0), align) {
                    Ok(r) => {
                        if source.space().counters().flushes != flushes {
                            *waiting = RangeSet::EMPTY;
                            stats.import_flushes += 1;
                        }
                        if live.overlaps(&r) {
                            return Err(fail("an import overlaps a live import", None));
                        }
                        if waiting.overlaps(&r) {
                            return Err(fail("an import reissued a range before its flush", None));
                        }
                        if !r.base().is_aligned(align) || r.size().0 != pages * page.0 {
                            return Err(fail("an import has the wrong size or alignment", None));
                        }
                        if !live.push(r) {
                            // The model is full: give it straight back.
                            source.release(r).map_err(|e| fail("give-back of a spare", Some(e)))?;
                            *waiting = RangeSet::EMPTY;
                            source.flush();
                        } else {
                            // SAFETY: `r` was just imported: mapped
                            // read-write in the VM and handed to us alone.
                            unsafe {
                                (r.base().0 as *mut usize).write_volatile(r.base().0 ^ self.salt)
                            };
                            stats.imports += 1;
                        }
                    }
                    Err(ArenaError::NoSpace { .. }) => {
                        if source.space().counters().flushes != flushes {
                            *waiting = RangeSet::EMPTY;
                        }
                    }
                    Err(ArenaError::Vm(_) | ArenaError::Backing(_)) => stats.backend_failures += 1,
                    Err(e) => return Err(fail("an import failed", Some(e))),
                }
            }
            BatchedOp::GiveBack { slot } if live.len > 0 => {
                if waiting.len == WAITING {
                    source.flush();
                    *waiting = RangeSet::EMPTY;
                }
                let r = live.items[slot % live.len];
                // SAFETY: `r` is a live import, mapped read-write.
                let word = unsafe { (r.base().0 as *const usize).read_volatile() };
                if word != r.base().0 ^ self.salt {
                    return Err(fail("an import lost its stamp", None));
                }
                match source.release(r) {
                    Ok(()) => {
                        live.take(slot % live.len);
                        stats.give_backs += 1;
                        if source.space().counters().flushes != flushes {
                            *waiting = RangeSet::EMPTY;
                        } else if !waiting.push(r) {
                            return Err(fail("more waiting ranges than the model holds", None));
                        }
                    }
                    Err(ArenaError::Vm(_) | ArenaError::Backing(_)) => {
                        // Still ours and read-write, but a failed unmap
                        // may have decommitted it (`PageOps` allows that):
                        // stamped anew.
                        // SAFETY: `r` is still a live import, mapped
                        // read-write (the source put back what the failed
                        // unmap changed).
                        unsafe {
                            (r.base().0 as *mut usize).write_volatile(r.base().0 ^ self.salt)
                        };
                        stats.backend_failures += 1
                    }
                    Err(e) => return Err(fail("a give-back failed", Some(e))),
                }
            }
            BatchedOp::GiveBack { .. } => {}
            BatchedOp::BadGiveBack { slot, waiting: w } => {
                let bad = if w && waiting.len > 0 {
                    Some(waiting.items[slot % waiting.len])
                } else if live.len > 0 {
                    let r = live.items[slot % live.len];
                    Range::from_size(r.base(), Size(r.size().0 * 2)).ok()
                } else {
                    None
                };
                if let Some(bad) = bad {
                    if source.release(bad).is_ok() {
                        return Err(fail("a bad give-back was accepted", None));
                    }
                    stats.refused += 1;
                }
            }
            BatchedOp::Flush => {
                source.flush();
                *waiting = RangeSet::EMPTY;
            }
        }
        stats.max_waiting_pages = stats.max_waiting_pages.max(waiting.bytes() / page.0);
        stats.flushes = source.space().counters().flushes;
        agree(source, live, waiting).map_err(|w| fail(w, None))?;
        source.check().map_err(|e| fail("check failed", Some(e)))
    }

    /// Give everything back (retrying give-backs the backend failed) and
    /// flush; the source must then hold nothing.
    pub fn finish<P: PageOps, S: Store>(
        &mut self,
        source: &mut VmSource<P, S>,
    ) -> Result<RunStats, RunError> {
        let fail = |what, error| RunError { step: self.step, what, error };
        let mut failures = 0;
        while self.live.len > 0 {
            match source.release(self.live.items[0]) {
                Ok(()) => drop(self.live.take(0)),
                // A backend failure changed nothing: try again.
                Err(ArenaError::Vm(_) | ArenaError::Backing(_)) if failures < 64 => failures += 1,
                Err(e) => return Err(fail("final give-back", Some(e))),
            }
        }
        self.stats.backend_failures += failures;
        source.flush();
        self.waiting = RangeSet::EMPTY;
        agree(source, &self.live, &self.waiting).map_err(|w| fail(w, None))?;
        source.check().map_err(|e| fail("final check", Some(e)))?;
        Ok(self.stats)
    }
}

/// Drive `steps` operations generated from `seed` on `source` (batched,
/// with nothing imported) and the model side by side, then
/// [`finish`](BatchedDriver::finish).
///
/// After every step: each outcome matches the model (a backend failure is
/// allowed in place of success and must change nothing); no import
/// overlaps a live import or, unless the source flushed during it, a range
/// waiting for its flush; the source's inner arena shows exactly the
/// waiting ranges as unflushed (walk and sizes) and the live ones as
/// allocated; the VM maps exactly the live imports; and `check()` passes.
/// Every import's first word is stamped and read back at its give-back (and
/// stamped again after a give-back that failed, which may have decommitted
/// it).
pub fn run<P: PageOps, S: Store>(
    source: &mut VmSource<P, S>,
    seed: u64,
    steps: usize,
) -> Result<RunStats, RunError> {
    let mut gen = BatchedOpGen::new(seed);
    let mut driver = BatchedDriver::new(seed);
    for _ in 0..steps {
        let op = gen.next_op(driver.live());
        driver.step(source, op)?;
    }
    driver.finish(source)
}

/// The source's inner arena and VM agree with the model.
fn agree<P: PageOps, S: Store>(
    source: &VmSource<P, S>,
    live: &RangeSet<SLOTS>,
    waiting: &RangeSet<WAITING>,
) -> Result<(), &'static str> {
    let space = source.space();
    if space.sizes().unflushed.0 != waiting.bytes() {
        return Err("unflushed size differs from the waiting ranges");
    }
    if space.sizes().allocated.0 != live.bytes() || source.vm().mapped().0 != live.bytes() {
        return Err("imported or mapped size differs from the live imports");
    }
    let mut n = 0;
    for s in space.walk(SegmentKinds::UNFLUSHED) {
        if !waiting.as_slice().contains(&s.range) {
            return Err("an unflushed segment is not a waiting range");
        }
        n += 1;
    }
    if n != waiting.len {
        return Err("a waiting range is not an unflushed segment");
    }
    for r in live.as_slice() {
        if space.lookup(r.base()).map(|l| l.0) != Some(*r) {
            return Err("a live import is not allocated in the source");
        }
    }
    Ok(())
}
