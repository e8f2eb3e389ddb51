//! What a replay found, as numbers (JSON) and as text; human-readable
//! sizes and the free-size histogram's labels.

use serde::Serialize;
use vmspace::arena::Store;
use vmspace_user::trace::shown_text;

use super::engine::{Failure, Moment, Outcomes, Replay};
use crate::out::outln;
use crate::sizes::{bins, histogram_line, human, Bin};

/// The live allocations at one moment, and how tightly they are packed.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Trace line of the operation just done.
    pub line: usize,
    /// Bytes allocated.
    pub live_bytes: usize,
    /// Live allocations.
    pub segments: usize,
    /// Lowest start of a live allocation.
    pub extent_start: Option<usize>,
    /// Highest end of one.
    pub extent_end: Option<usize>,
    /// `extent_end - extent_start`.
    pub extent_bytes: usize,
    /// `live_bytes / extent_bytes` (1: no holes).
    pub live_over_extent: f64,
    /// Free bytes inside the extent: the extent's bytes inside spans less
    /// `live_bytes` (addresses between spans are no holes: nothing can be
    /// allocated there).
    pub holes_bytes: usize,
}

impl From<&Moment> for Snapshot {
    fn from(m: &Moment) -> Snapshot {
        let extent = m.extent.map_or(0, |(lo, hi)| hi - lo);
        Snapshot {
            line: m.line,
            live_bytes: m.live,
            segments: m.segments,
            extent_start: m.extent.map(|e| e.0),
            extent_end: m.extent.map(|e| e.1),
            extent_bytes: extent,
            live_over_extent: if extent == 0 { 0.0 } else { m.live as f64 / extent as f64 },
            holes_bytes: m.extent_in_spans.saturating_sub(m.live),
        }
    }
}

/// What the report's derived numbers mean (in the JSON, for its readers).
#[derive(Debug, Clone, Serialize)]
pub struct Definitions {
    /// Of `extent_bytes`.
    pub extent: &'static str,
    /// Of `live_over_extent`.
    pub live_over_extent: &'static str,
    /// Of `holes_bytes`.
    pub holes: &'static str,
    /// Of `fragmentation_per_mille`.
    pub fragmentation: &'static str,
}

const DEFINITIONS: Definitions = Definitions {
    extent: "highest end minus lowest start of the live allocations (bytes)",
    live_over_extent: "live bytes / extent bytes: 1 when the live allocations leave no holes",
    holes: "free bytes inside the extent: extent bytes inside spans - live (addresses between \
            spans are not counted)",
    fragmentation: "1000 * (1 - largest free segment / all free bytes), rounded up: 0 only \
                    when the free space is one segment, near 1000 when it is splintered",
};

/// Everything `vmspace replay` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The trace file.
    pub trace: String,
    /// The policy every allocation used, or "trace" (each line's own).
    pub policy: String,
    /// The arena's quantum.
    pub quantum: usize,
    /// Whether check() ran after every operation.
    pub checked: bool,
    /// The `--span-limit` every added span was clipped to (null: none).
    pub span_limit: Option<usize>,
    /// What happened to the operations.
    pub outcomes: Outcomes,
    /// The moment of the most live bytes.
    pub peak: Snapshot,
    /// The most live allocations at once (the arena's: an ID split by
    /// partial frees counts once a piece).
    pub peak_segments: usize,
    /// The line where that was reached.
    pub peak_segments_line: usize,
    /// The end.
    pub end: Snapshot,
    /// Bytes in spans at the end.
    pub total_bytes: usize,
    /// Free bytes at the end.
    pub free_bytes: usize,
    /// The largest free segment at the end.
    pub largest_free: usize,
    /// `1000 * (1 - largest_free / free_bytes)` at the end, rounded up.
    pub fragmentation_per_mille: u32,
    /// Free segments by size class at the end.
    pub free_histogram: Vec<Bin>,
    /// Failed operations (all of them).
    pub failures: Vec<Failure>,
    /// Mean wall time inside the arena's calls, per operation.
    pub ns_per_op: f64,
    /// Search steps the arena counted.
    pub search_steps: u64,
    /// Bytes of arena metadata committed.
    pub metadata_bytes: usize,
    /// What the derived numbers mean.
    pub definitions: Definitions,
}

impl Report {
    /// The report of a finished replay.
    pub fn of<S: Store>(
        r: &Replay<'_, S>,
        trace: &str,
        policy: &str,
        checked: bool,
        span_limit: Option<usize>,
    ) -> Report {
        let a = &r.arena;
        let s = a.sizes();
        Report {
            trace: trace.into(),
            policy: policy.into(),
            quantum: a.quantum().0,
            checked,
            span_limit,
            outcomes: r.outcomes.clone(),
            peak: Snapshot::from(&r.peak),
            peak_segments: r.peak_segments.0,
            peak_segments_line: r.peak_segments.1,
            end: Snapshot::from(&r.moment(r.last_line)),
            total_bytes: s.total.0,
            free_bytes: s.free.0,
            largest_free: a.largest_free().0,
            fragmentation_per_mille: a.fragmentation(),
            free_histogram: bins(&a.free_histogram()),
            failures: r.failures.clone(),
            ns_per_op: r.busy.as_nanos() as f64 / r.outcomes.ops.max(1) as f64,
            search_steps: a.counters().search_steps,
            metadata_bytes: a.metadata_bytes(),
            definitions: DEFINITIONS,
        }
    }

    /// `, spans clipped to N` when a span limit applied, else nothing.
    pub fn limit_note(&self) -> String {
        match self.span_limit {
            Some(l) => format!(", spans clipped to {} ({l:#x})", human(l as u128)),
            None => String::new(),
        }
    }

    /// Print it as text, listing the first `failures` failed operations.
    pub fn print(&self, failures: usize) {
        let o = &self.outcomes;
        outln!(
            "replayed {} operations from {} (quantum {}, policy {}{}{})",
            o.ops,
            shown_text(&self.trace),
            self.quantum,
            self.policy,
            self.limit_note(),
            if self.checked { ", check() after each" } else { "" }
        );
        outln!(
            "  allocations {} ok, {} without space, {} refused; frees {}, partial frees {}; \
             resizes {} in place, {} moved; {} skipped (their allocation had failed)",
            o.allocs,
            o.no_space,
            o.refused,
            o.frees,
            o.partial_frees,
            o.resized_in_place,
            o.moved,
            o.skipped
        );
        let p = &self.peak;
        outln!(
            "  peak (line {}): {} live in {} allocations",
            p.line,
            human(p.live_bytes as u128),
            p.segments
        );
        print_extent("   ", p);
        outln!(
            "  most allocations live at once: {} (line {})",
            self.peak_segments,
            self.peak_segments_line
        );
        let e = &self.end;
        outln!("  end: {} live in {} allocations", human(e.live_bytes as u128), e.segments);
        print_extent("   ", e);
        outln!(
            "  free at the end: {} of {} in spans; largest free {}",
            human(self.free_bytes as u128),
            human(self.total_bytes as u128),
            human(self.largest_free as u128)
        );
        outln!(
            "  fragmentation {} per mille (1 - largest free / all free, rounded up: 0 = one \
             free segment, near 1000 = splintered)",
            self.fragmentation_per_mille
        );
        outln!("  free segments by size: {}", histogram_line(&self.free_histogram));
        outln!(
            "  {:.0} ns an operation inside the arena, {} search steps, {} of metadata",
            self.ns_per_op,
            self.search_steps,
            human(self.metadata_bytes as u128)
        );
        self.print_failures(failures);
    }

    fn print_failures(&self, n: usize) {
        if self.failures.is_empty() {
            outln!("  no operation failed");
            return;
        }
        outln!("  {} operations failed:", self.failures.len());
        for f in self.failures.iter().take(n) {
            outln!("    line {}: {}: {}", f.line, f.shown, f.reason);
        }
        if self.failures.len() > n {
            outln!(
                "    ... and {} more (--failures N lists more, --json all)",
                self.failures.len() - n
            );
        }
    }
}

fn print_extent(indent: &str, s: &Snapshot) {
    if let (Some(lo), Some(hi)) = (s.extent_start, s.extent_end) {
        outln!(
            "{indent} extent [{lo:#x}, {hi:#x}) = {}: live/extent {:.3}, holes {}",
            human(s.extent_bytes as u128),
            s.live_over_extent,
            human(s.holes_bytes as u128)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_reach_the_top_class() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(1536 << 10), "1.50 MiB");
        assert_eq!(human(1 << 63), "8 EiB");
        assert_eq!(human(1 << 64), "16 EiB");
        assert_eq!(human(u64::MAX as u128), "15.99 EiB");
    }

    #[test]
    fn the_top_size_class_has_a_label() {
        let mut h = [0usize; vmspace::arena::FREE_LISTS];
        h[63] = 1;
        h[0] = 2;
        let b = bins(&h);
        assert_eq!(histogram_line(&b), "[1 B, 2 B): 2  [8 EiB, 16 EiB): 1");
    }
}
