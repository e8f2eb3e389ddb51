//! Sequences of chunk-map operations, checked against a per-chunk model.

use core::fmt;
use vmspace::CommonError;

use vmspace_shim::{Addr, PageOps, Range, Size};

use super::Rng;
use vmspace::chunkmap::{ChunkMap, ChunkMapError, ChunkState};

/// The kind of a [`ChunkOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOpKind {
    /// [`ChunkMap::ensure_mapped`].
    EnsureMapped,
    /// [`ChunkMap::quarantine`].
    Quarantine,
    /// [`ChunkMap::protect`].
    Protect,
    /// [`ChunkMap::unprotect`].
    Unprotect,
    /// [`ChunkMap::unmap`].
    Unmap,
    /// [`ChunkMap::trim`] (the range is ignored).
    Trim,
}

/// One operation, in chunk units relative to the space's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOp {
    /// What to do.
    pub kind: ChunkOpKind,
    /// First chunk.
    pub first: usize,
    /// Chunks (zero makes an empty, bad range).
    pub chunks: usize,
    /// Bytes added to the base, below the chunk size (non-zero: misaligned).
    pub skew: usize,
}

impl ChunkOp {
    /// Decode one operation from the front of `bytes` (for fuzzing), for a
    /// window of `window` chunks of `chunk` bytes; `None` when the bytes run out.
    pub fn decode(bytes: &mut &[u8], window: usize, chunk: Size) -> Option<ChunkOp> {
        let (&[k, a, b], rest) = bytes.split_first_chunk::<3>()?;
        *bytes = rest;
        let kind = match k % 16 {
            0..=4 => ChunkOpKind::EnsureMapped,
            5..=6 => ChunkOpKind::Quarantine,
            7..=9 => ChunkOpKind::Protect,
            10..=11 => ChunkOpKind::Unprotect,
            12..=14 => ChunkOpKind::Unmap,
            _ => ChunkOpKind::Trim,
        };
        let skew = if k & 0x80 != 0 { usize::from(b) % chunk.0.max(1) } else { 0 };
        let first = (usize::from(a) << 4 | usize::from(k >> 4 & 7)) % window.saturating_add(2);
        Some(ChunkOp { kind, first, chunks: usize::from(b % 32), skew })
    }

    /// The byte range the operation names in a map at `base` with `chunk`-byte chunks.
    pub fn range(&self, base: Addr, chunk: Size) -> Option<Range> {
        let off = self.first.checked_mul(chunk.0)?.checked_add(self.skew)?;
        let size = self.chunks.checked_mul(chunk.0)?;
        Range::from_size(Addr(base.0.checked_add(off)?), Size(size)).ok()
    }
}

/// The reference model: the states of the first `N` chunks (the window the
/// generated operations stay in) of a space of `chunks` chunks.
#[derive(Debug, Clone)]
pub struct ChunkModel<const N: usize> {
    states: [ChunkState; N],
    window: usize,
    chunks: usize,
}

impl<const N: usize> ChunkModel<N> {
    /// All unmapped, a space of `chunks` chunks.
    pub fn new(chunks: usize) -> Self {
        ChunkModel { states: [ChunkState::Unmapped; N], window: chunks.min(N), chunks }
    }

    /// Chunks modelled.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The state of chunk `c` of the window.
    pub fn state(&self, c: usize) -> ChunkState {
        self.states.get(c).copied().unwrap_or(ChunkState::Unmapped)
    }

    /// Committed chunks.
    pub fn committed(&self) -> usize {
        self.states[..self.window].iter().filter(|s| s.is_committed()).count()
    }

    /// Take the states of the window from `map`.
    pub fn resync<P: PageOps>(&mut self, map: &ChunkMap<P>) {
        let (base, chunk) = (map.space().base().0, map.chunk_size().0);
        for c in 0..self.window {
            self.states[c] = map.state(Addr(base + c * chunk)).unwrap_or(ChunkState::Unmapped);
        }
    }

    /// Whether `op` should succeed, and if so apply it.
    pub fn apply(&mut self, op: &ChunkOp) -> bool {
        use ChunkState::*;
        if op.kind == ChunkOpKind::Trim {
            return true;
        }
        let exact =
            matches!(op.kind, ChunkOpKind::Protect | ChunkOpKind::Unprotect | ChunkOpKind::Unmap);
        if op.chunks == 0 || (exact && op.skew != 0) {
            return false;
        }
        let c0 = op.first;
        let c1 =
            match c0.checked_add(op.chunks).and_then(|e| e.checked_add(usize::from(op.skew > 0))) {
                // A skewed range's end lies inside chunk `e - 1`, which must exist.
                Some(e) if e <= self.chunks && e <= self.window => e,
                _ => return false,
            };
        let states = &mut self.states[c0..c1];
        match op.kind {
            ChunkOpKind::EnsureMapped => states.iter_mut().for_each(|s| *s = Mapped),
            ChunkOpKind::Quarantine => {
                states.iter_mut().filter(|s| **s == Unmapped).for_each(|s| *s = Quarantined)
            }
            ChunkOpKind::Protect | ChunkOpKind::Unprotect => {
                if !states.iter().all(|s| s.is_committed()) {
                    return false;
                }
                let to = if op.kind == ChunkOpKind::Protect { Protected } else { Mapped };
                states.iter_mut().for_each(|s| *s = to);
            }
            ChunkOpKind::Unmap => states.iter_mut().for_each(|s| *s = Unmapped),
            ChunkOpKind::Trim => {}
        }
        true
    }
}

/// Generates [`ChunkOp`]s over the first `window` chunks of a space of
/// `chunks` chunks, with a share of bad ones.
#[derive(Debug, Clone)]
pub struct ChunkOpGen {
    rng: Rng,
    window: usize,
    chunks: usize,
    chunk: usize,
}

impl ChunkOpGen {
    /// A generator seeded with `seed`, for chunks of `chunk` bytes.
    pub fn new(seed: u64, window: usize, chunks: usize, chunk: Size) -> Self {
        ChunkOpGen { rng: Rng::new(seed), window: window.max(1), chunks, chunk: chunk.0 }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> ChunkOp {
        let r = &mut self.rng;
        let kind = match r.below(100) {
            0..=34 => ChunkOpKind::EnsureMapped,
            35..=49 => ChunkOpKind::Quarantine,
            50..=64 => ChunkOpKind::Protect,
            65..=74 => ChunkOpKind::Unprotect,
            75..=96 => ChunkOpKind::Unmap,
            _ => ChunkOpKind::Trim,
        };
        let skew =
            if r.chance(150) { r.between(1, self.chunk.saturating_sub(1).max(1)) } else { 0 };
        let (first, chunks) = match r.below(100) {
            0..=2 => (r.below(self.window), 0),
            3..=5 => {
                // Crosses the end of the space.
                let back = r.between(0, 2).min(self.chunks);
                (self.chunks - back, r.between(back + 1, back + 4))
            }
            _ => {
                let n = if r.chance(900) { r.between(1, 6) } else { r.between(7, 64) };
                let n = n.min(self.window.saturating_sub(1)).max(1);
                (r.below(self.window - n), n)
            }
        };
        ChunkOp { kind, first, chunks, skew }
    }
}

/// What a driven sequence did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkRunStats {
    /// Operations that succeeded.
    pub succeeded: usize,
    /// Operations refused, as the model predicted.
    pub rejected: usize,
    /// Operations the backend failed (fault injection), changing nothing.
    pub backend_failures: usize,
}

/// How a driven sequence went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRunError {
    /// The step at which it went wrong.
    pub step: usize,
    /// The operation.
    pub op: ChunkOp,
    /// What disagreed.
    pub what: &'static str,
    /// The map's error, when there was one.
    pub error: Option<ChunkMapError>,
}

impl fmt::Display for ChunkRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} ({:?}): {}", self.step, self.op, self.what)?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Apply one operation to the map.
pub fn apply<P: PageOps>(map: &mut ChunkMap<P>, op: &ChunkOp) -> Result<(), ChunkMapError> {
    if op.kind == ChunkOpKind::Trim {
        return map.trim().map(drop);
    }
    let range = op
        .range(map.space().base(), map.chunk_size())
        .ok_or(ChunkMapError::Common(CommonError::Overflow))?;
    match op.kind {
        ChunkOpKind::EnsureMapped => map.ensure_mapped(range),
        ChunkOpKind::Quarantine => map.quarantine(range),
        ChunkOpKind::Protect => map.protect(range),
        ChunkOpKind::Unprotect => map.unprotect(range),
        ChunkOpKind::Unmap => map.unmap(range),
        ChunkOpKind::Trim => Ok(()),
    }
}

/// Compare every modelled chunk's state and the committed count.
pub fn compare<P: PageOps, const N: usize>(
    map: &ChunkMap<P>,
    model: &ChunkModel<N>,
) -> Result<(), &'static str> {
    let base = map.space().base().0;
    let chunk = map.chunk_size().0;
    for c in 0..model.window() {
        let a = Addr(base + c * chunk);
        if map.state(a) != Some(model.state(c)) {
            return Err("a chunk's state differs from the model");
        }
        if map.is_mapped(a) != (model.state(c) == ChunkState::Mapped) {
            return Err("is_mapped() differs from the model");
        }
    }
    if map.committed_chunks() != model.committed() {
        return Err("committed_chunks() differs from the model");
    }
    // The census counts every chunk: those past the window never change.
    let mut census = [0usize; 4];
    census[0] = map.chunks().saturating_sub(model.window());
    for c in 0..model.window() {
        census[census_slot(model.state(c))] += 1;
    }
    if map.census() != census {
        return Err("census() differs from the model");
    }
    Ok(())
}

/// Where [`ChunkMap::census`] counts chunks in `state`.
fn census_slot(state: ChunkState) -> usize {
    match state {
        ChunkState::Unmapped => 0,
        ChunkState::Quarantined => 1,
        ChunkState::Mapped => 2,
        ChunkState::Protected => 3,
    }
}

/// Apply `steps` generated operations to `map` (which must start with
/// nothing mapped) and to the model, comparing after every step and running
/// `check()`. With `faults`, a backend failure must change nothing.
pub fn run<P: PageOps, const N: usize>(
    map: &mut ChunkMap<P>,
    seed: u64,
    steps: usize,
    faults: bool,
) -> Result<ChunkRunStats, ChunkRunError> {
    let mut model = ChunkModel::<N>::new(map.chunks());
    let mut gen = ChunkOpGen::new(seed, model.window(), map.chunks(), map.chunk_size());
    let mut stats = ChunkRunStats::default();
    for step in 0..steps {
        let op = gen.next_op();
        step_checked(map, &mut model, &op, faults, &mut stats)
            .map_err(|(what, error)| ChunkRunError { step, op, what, error })?;
    }
    Ok(stats)
}

/// Apply `op` to the map and the model, then compare them and run
/// `check()`; the step of [`run`], for drivers with their own operations
/// (fuzzing, KUnit).
pub fn step_checked<P: PageOps, const N: usize>(
    map: &mut ChunkMap<P>,
    model: &mut ChunkModel<N>,
    op: &ChunkOp,
    faults: bool,
    stats: &mut ChunkRunStats,
) -> Result<(), (&'static str, Option<ChunkMapError>)> {
    let mut expected = model.clone();
    let ok = expected.apply(op);
    match (ok, apply(map, op)) {
        (true, Ok(())) => {
            *model = expected;
            stats.succeeded += 1;
        }
        (true, Err(ChunkMapError::Backend { .. })) if faults => {
            // One failure changes nothing: the model stays as it was.
            stats.backend_failures += 1;
        }
        (true, Err(ChunkMapError::RollbackFailed { .. })) if faults => {
            // The rollback failed too: the chunks it could not restore keep
            // the state the backend left them in.
            model.resync(map);
            stats.backend_failures += 1;
        }
        (true, Err(e)) => return Err(("a valid operation was refused", Some(e))),
        (false, Ok(())) => return Err(("an invalid operation succeeded", None)),
        (false, Err(_)) => stats.rejected += 1,
    }
    compare(map, model).map_err(|w| (w, None))?;
    map.check().map_err(|e| ("check() failed", Some(e)))
}
