//! The replay itself: a trace's operations on a fresh arena, with the
//! bookkeeping that answers the report's questions (peak, extent, failures).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use vmspace::arena::Store;
use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SegmentKind, SegmentKinds};
use vmspace::{Addr, Size};

use vmspace_user::trace::{shown_id, TraceOp};

/// How to replay.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Every allocation's policy, whatever the trace says.
    pub policy: Option<Policy>,
    /// Run `check()` after every operation.
    pub check: bool,
    /// Clip every added span to this many bytes.
    pub span_limit: Option<usize>,
    /// Stop after this many operations (to look at the arena then).
    pub stop_after: Option<usize>,
}

/// What happened to the operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    /// Operations run.
    pub ops: usize,
    /// Allocations that succeeded.
    pub allocs: usize,
    /// Allocations refused for want of space.
    pub no_space: usize,
    /// Allocations refused otherwise (bad constraints, ...).
    pub refused: usize,
    /// Frees of everything an ID held.
    pub frees: usize,
    /// Partial frees that succeeded.
    pub partial_frees: usize,
    /// Resizes done in place.
    pub resized_in_place: usize,
    /// Resizes that moved the allocation (it could not grow in place).
    pub moved: usize,
    /// Frees and resizes of IDs whose allocation had failed (skipped).
    pub skipped: usize,
    /// Operations that failed (listed in the failures).
    pub failed: usize,
}

/// One failed operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// Its trace line.
    pub line: usize,
    /// The operation (as a trace line; in the JSON report).
    pub op: String,
    /// The operation as the text report shows it ([`TraceOp::shown`]: a
    /// long or unprintable name quoted and cut).
    #[serde(skip)]
    pub shown: String,
    /// Why it failed.
    pub reason: String,
}

/// The arena at one moment, as the report and the pictures need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moment {
    /// The trace line of the operation just done (0: before any).
    pub line: usize,
    /// Bytes allocated (rounded to the quantum).
    pub live: usize,
    /// Live allocations.
    pub segments: usize,
    /// Lowest start and highest end of the live allocations.
    pub extent: Option<(usize, usize)>,
    /// Bytes of the extent inside spans (the rest lies between spans and
    /// can never be allocated, so it is no hole).
    pub extent_in_spans: usize,
}

/// Where each piece of an ID is.
#[derive(Debug, Clone)]
struct Id {
    /// The address offsets in `free ID OFFSET SIZE` count from.
    base: usize,
    /// The pieces still live: start to size asked (a map, so that a
    /// `free ID OFFSET SIZE` finds its piece in log time however many
    /// pieces earlier ones left).
    pieces: BTreeMap<usize, usize>,
    /// The constraints of its allocation (a move keeps them, with the new
    /// size).
    constraints: Constraints,
}

/// A replay in progress over `arena`.
pub struct Replay<'t, S: Store> {
    pub arena: Arena<S, NoSource>,
    setup: Setup,
    ids: HashMap<&'t str, Id>,
    failed_ids: HashSet<&'t str>,
    /// Every live piece: start to end (rounded).
    live: BTreeMap<usize, usize>,
    /// Every span added: start to end.
    spans: BTreeMap<usize, usize>,
    /// The trace line of the last operation done (0: none yet).
    pub last_line: usize,
    pub outcomes: Outcomes,
    pub failures: Vec<Failure>,
    /// The moment of the most live bytes.
    pub peak: Moment,
    /// Operations done at that moment.
    pub peak_at: usize,
    /// The most live allocations at once, and the line where.
    pub peak_segments: (usize, usize),
    /// Time spent inside the arena's calls.
    pub busy: Duration,
}

impl<'t, S: Store> Replay<'t, S> {
    /// A replay on `arena` (empty).
    pub fn new(arena: Arena<S, NoSource>, setup: Setup) -> Self {
        Replay {
            arena,
            setup,
            ids: HashMap::new(),
            failed_ids: HashSet::new(),
            live: BTreeMap::new(),
            spans: BTreeMap::new(),
            last_line: 0,
            outcomes: Outcomes::default(),
            failures: Vec::new(),
            peak: Moment::default(),
            peak_at: 0,
            peak_segments: (0, 0),
            busy: Duration::ZERO,
        }
    }

    /// Run `ops`, calling `tick` with the number done now and then. A
    /// mistake in the trace itself (an ID freed that was never allocated,
    /// allocated while live) or a failed check ends it with the line.
    pub fn run(
        &mut self,
        ops: &'t [(usize, TraceOp)],
        tick: &mut dyn FnMut(usize),
    ) -> Result<(), String> {
        let stop = self.setup.stop_after.unwrap_or(usize::MAX);
        for (n, (line, op)) in ops.iter().enumerate().take(stop) {
            self.step(*line, op).map_err(|e| format!("trace line {line}: {e}"))?;
            self.outcomes.ops += 1;
            self.last_line = *line;
            self.observe(*line);
            if self.setup.check {
                let r = self.arena.check();
                r.map_err(|e| format!("trace line {line}: check failed: {e}"))?;
            }
            if n % 4096 == 4095 {
                tick(n + 1);
            }
        }
        tick(ops.len().min(stop));
        Ok(())
    }

    /// The arena now.
    pub fn moment(&self, line: usize) -> Moment {
        let extent = self.live.first_key_value().zip(self.live.last_key_value());
        let extent = extent.map(|((&lo, _), (_, &hi))| (lo, hi));
        Moment {
            line,
            live: self.arena.sizes().allocated.0,
            segments: self.arena.live(),
            extent,
            extent_in_spans: extent.map_or(0, |(lo, hi)| self.in_spans(lo, hi)),
        }
    }

    /// Bytes of `[lo, hi)` inside spans.
    fn in_spans(&self, lo: usize, hi: usize) -> usize {
        let first = self.spans.range(..=lo).next_back().map_or(lo, |(&s, _)| s);
        let spans = self.spans.range(first..hi);
        spans.map(|(&s, &e)| e.min(hi).saturating_sub(s.max(lo))).sum()
    }

    /// Every allocated and free segment in address order: start, end,
    /// allocated.
    pub fn segments(&self) -> Vec<(usize, usize, bool)> {
        let kinds = SegmentKinds::FREE.union(SegmentKinds::ALLOCATED);
        let walk = self.arena.walk(kinds);
        walk.map(|s| (s.range.base().0, s.range.limit().0, s.kind == SegmentKind::Allocated))
            .collect()
    }

    fn observe(&mut self, line: usize) {
        let live = self.arena.sizes().allocated.0;
        if live > self.peak.live {
            self.peak = self.moment(line);
            self.peak_at = self.outcomes.ops;
        }
        let n = self.arena.live();
        if n > self.peak_segments.0 {
            self.peak_segments = (n, line);
        }
    }

    /// Time one arena call.
    fn timed<T>(&mut self, f: impl FnOnce(&mut Arena<S, NoSource>) -> T) -> T {
        let t0 = Instant::now();
        let r = f(&mut self.arena);
        self.busy += t0.elapsed();
        r
    }

    fn fail(&mut self, line: usize, op: &TraceOp, reason: String) {
        self.outcomes.failed += 1;
        self.failures.push(Failure { line, op: op.to_string(), shown: op.shown(), reason });
    }

    fn step(&mut self, line: usize, op: &'t TraceOp) -> Result<(), String> {
        match op {
            TraceOp::Add { base, size } => {
                let size = self.setup.span_limit.map_or(*size, |l| l.min(*size));
                match self.timed(|a| a.add(Addr(*base), Size(size))) {
                    Ok(()) => {
                        // Its end fits: the arena checked.
                        self.spans.insert(*base, *base + size);
                    }
                    Err(e) => self.fail(line, op, e.to_string()),
                }
            }
            TraceOp::Alloc { id, constraints } => self.alloc(line, op, id, constraints)?,
            TraceOp::Free { id } => {
                let Some(x) = self.take(id)? else { return Ok(()) };
                for (a, asked) in x.pieces {
                    // Our own record of the allocation: a refusal is a bug.
                    self.timed(|ar| ar.free(Addr(a), Size(asked))).map_err(|e| e.to_string())?;
                    self.live.remove(&a);
                }
                self.outcomes.frees += 1;
            }
            TraceOp::FreePart { id, offset, size } => {
                let Some(x) = self.take(id)? else { return Ok(()) };
                self.free_part(line, op, id, x, *offset, *size);
            }
            TraceOp::Resize { id, size } => {
                let Some(x) = self.take(id)? else { return Ok(()) };
                self.resize(line, op, id, x, *size);
            }
        }
        Ok(())
    }

    /// Take out what `id` holds now (the caller puts back what stays);
    /// `None` (skipped) when its allocation failed.
    fn take(&mut self, id: &str) -> Result<Option<Id>, String> {
        if let Some(x) = self.ids.remove(id) {
            return Ok(Some(x));
        }
        if self.failed_ids.contains(id) {
            self.outcomes.skipped += 1;
            return Ok(None);
        }
        Err(format!("id {} is not live (never allocated, or freed already)", shown_id(id)))
    }

    fn alloc(
        &mut self,
        line: usize,
        op: &TraceOp,
        id: &'t str,
        c: &Constraints,
    ) -> Result<(), String> {
        if self.ids.contains_key(id) {
            return Err(format!("id {} is already live", shown_id(id)));
        }
        self.failed_ids.remove(id);
        let c = self.setup.policy.map_or(*c, |p| c.policy(p));
        match self.timed(|a| a.xalloc(&c)) {
            Ok(a) => {
                let q = self.arena.quantum().0;
                self.live.insert(a.0, a.0 + c.size().0.next_multiple_of(q));
                let pieces = BTreeMap::from([(a.0, c.size().0)]);
                self.ids.insert(id, Id { base: a.0, pieces, constraints: c });
                self.outcomes.allocs += 1;
            }
            Err(e) => {
                if matches!(e, ArenaError::NoSpace { .. }) {
                    self.outcomes.no_space += 1;
                } else {
                    self.outcomes.refused += 1;
                }
                self.failed_ids.insert(id);
                self.fail(line, op, e.to_string());
            }
        }
        Ok(())
    }

    /// Record what the arena holds now at `addr` (a piece of `x`), if
    /// anything.
    fn repiece(&mut self, x: &mut Id, addr: usize) {
        if let Some((r, asked)) = self.arena.lookup(Addr(addr)) {
            x.pieces.insert(addr, asked.0);
            self.live.insert(addr, r.limit().0);
        }
    }

    fn free_part(
        &mut self,
        line: usize,
        op: &TraceOp,
        id: &'t str,
        mut x: Id,
        off: usize,
        size: usize,
    ) {
        let Some(at) = x.base.checked_add(off) else {
            self.ids.insert(id, x);
            return self.fail(line, op, "offset overflows".into());
        };
        let piece = x.pieces.range(..=at).next_back().map(|(&a, &s)| (a, s));
        let Some((a, _)) = piece.filter(|&(a, s)| at - a < s) else {
            self.ids.insert(id, x);
            return self.fail(
                line,
                op,
                format!("{} holds nothing at offset {off:#x}", shown_id(id)),
            );
        };
        match self.timed(|ar| ar.free_part(Addr(a), Size(at - a), Size(size))) {
            Ok(()) => {
                x.pieces.remove(&a);
                let end = self.live.remove(&a).unwrap_or(a);
                self.repiece(&mut x, a);
                // The tail, if the piece freed ended before the old end.
                let q = self.arena.quantum().0;
                if let Some(b) = at.checked_add(size).and_then(|b| b.checked_next_multiple_of(q)) {
                    if b < end {
                        self.repiece(&mut x, b);
                    }
                }
                self.outcomes.partial_frees += 1;
                if !x.pieces.is_empty() {
                    self.ids.insert(id, x);
                }
            }
            Err(e) => {
                self.ids.insert(id, x);
                let reason = match e {
                    ArenaError::BadFree { allocated: Some(asked), .. } => {
                        // In the ID's offsets, as the trace wrote them.
                        let q = self.arena.quantum().0;
                        let held_end = (off - (at - a)).saturating_add(asked.0);
                        format!("{} ({e})", bad_piece(off, size, held_end, q))
                    }
                    e => e.to_string(),
                };
                self.fail(line, op, reason)
            }
        }
    }

    fn resize(&mut self, line: usize, op: &TraceOp, id: &'t str, mut x: Id, size: usize) {
        let (n, first) = (x.pieces.len(), x.pieces.first_key_value().map(|(&a, &s)| (a, s)));
        let (Some((a, old)), 1) = (first, n) else {
            self.ids.insert(id, x);
            return self.fail(line, op, format!("{} is partly freed ({n} pieces)", shown_id(id)));
        };
        match self.timed(|ar| ar.resize(Addr(a), Size(old), Size(size))) {
            Ok(()) => {
                self.live.remove(&a);
                x.pieces.clear();
                // Offsets count from the resized piece, as after a move
                // (the piece a partial free left may not start at the base).
                x.base = a;
                self.repiece(&mut x, a);
                self.ids.insert(id, x);
                self.outcomes.resized_in_place += 1;
            }
            Err(ArenaError::NoSpace { .. }) => {
                // Move: allocate the new size under the allocation's own
                // constraints (an `xalloc`'s window, alignment, ...), then
                // free the old.
                let mut parts = x.constraints.parts();
                parts.size = Size(size);
                let c = Constraints::from(parts);
                match self.timed(|ar| ar.xalloc(&c)) {
                    Ok(b) => {
                        let freed = self.timed(|ar| ar.free(Addr(a), Size(old)));
                        if let Err(e) = freed {
                            self.ids.insert(id, x);
                            return self.fail(line, op, format!("freeing the old place: {e}"));
                        }
                        self.live.remove(&a);
                        x.pieces.clear();
                        x.base = b.0;
                        self.repiece(&mut x, b.0);
                        self.ids.insert(id, x);
                        self.outcomes.moved += 1;
                    }
                    Err(e) => {
                        self.ids.insert(id, x);
                        self.fail(line, op, format!("cannot grow in place or move: {e}"))
                    }
                }
            }
            Err(e) => {
                self.ids.insert(id, x);
                self.fail(line, op, e.to_string())
            }
        }
    }
}

/// What is wrong with the piece `[offset, offset + size)` of an ID whose
/// allocation there (offsets from the ID's start) ends at `held_end`, which
/// the arena refused to free (it says only the allocation's size).
fn bad_piece(offset: usize, size: usize, held_end: usize, quantum: usize) -> String {
    match offset.checked_add(size) {
        _ if size == 0 => "the piece is empty".into(),
        _ if offset % quantum != 0 => {
            format!("the piece's offset {offset:#x} is not a multiple of the quantum {quantum:#x}")
        }
        Some(end) if end <= held_end => format!(
            "the piece ends at {end:#x}, neither a multiple of the quantum {quantum:#x} \
             nor the end of the allocation there, {held_end:#x}"
        ),
        _ => format!("the piece runs past the end of the allocation there, {held_end:#x}"),
    }
}
