//! `vmspace replay`: run an arena operation trace (see `trace.rs`) on a
//! fresh arena and report what a user of address space wants to know: the
//! peak, its extent, fragmentation, every failure; as text, JSON, a table
//! of every policy side by side, and an SVG picture.

mod compare;
pub mod engine;
pub mod report;

use std::path::Path;

use indicatif::ProgressBar;
use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::Size;
use vmspace_user::MmapBackend;

use crate::args::ReplayArgs;
use crate::out::{self, outln};
use engine::{Replay, Setup};
use report::Report;
use vmspace_user::trace::{self, policy_name, Trace};

/// Operations from which a replay shows a progress bar (a fifth of it with
/// `--check`, which costs a walk of the arena per operation).
const PROGRESS_FROM: usize = 200_000;

/// The arena a replay runs on, with room for every tag `trace` can need.
pub type ReplayArena = Arena<PageStore<MmapBackend>, NoSource>;

/// A fresh arena for `trace`.
pub fn arena_for(trace: &Trace, quantum: usize) -> Result<ReplayArena, String> {
    // Worst case: every allocation live and splitting a free segment in
    // two, every partial free adding a piece, every span with its marker.
    let ops = trace.ops.len();
    let max_tags = (2 * ops + 1024).min(1 << 27);
    Arena::on_pages("replay", Size(quantum), MmapBackend::new(), max_tags, NoSource)
        .map_err(|e| format!("creating the arena: {e}"))
}

fn progress(ops: usize, check: bool, what: &str) -> ProgressBar {
    let long = if check { ops >= PROGRESS_FROM / 5 } else { ops >= PROGRESS_FROM };
    crate::progress::bar(ops, long, what, "ops")
}

/// Replay `trace` under `setup`, with a progress bar where it is long.
pub fn replay<'t>(
    trace: &'t Trace,
    quantum: usize,
    setup: Setup,
    what: &str,
) -> Result<Replay<'t, PageStore<MmapBackend>>, String> {
    let mut r = Replay::new(arena_for(trace, quantum)?, setup);
    let bar = progress(trace.ops.len(), setup.check, what);
    let result = r.run(&trace.ops, &mut |n| bar.set_position(n as u64));
    bar.finish_and_clear();
    result?;
    if setup.stop_after.is_none() {
        r.arena.check().map_err(|e| format!("check at the end: {e}"))?;
    }
    Ok(r)
}

/// `vmspace replay`.
pub fn run(o: &ReplayArgs) -> Result<(), String> {
    let name = o.file.display().to_string();
    let trace = trace::parse_bytes(&crate::input::read(&o.file)?).map_err(|e| e.to_string())?;
    let quantum = o.quantum.or(trace.quantum).unwrap_or(1);
    if let Some(limit) = o.span_limit {
        crate::args::check_span_limit(limit, quantum)?;
    }
    let setup = Setup {
        policy: o.policy.map(Policy::from),
        check: o.check,
        span_limit: o.span_limit,
        stop_after: None,
    };
    if o.compare {
        return compare::run(o, &name, &trace, quantum, setup);
    }
    let r = replay(&trace, quantum, setup, "replay")?;
    let policy = setup.policy.map_or("trace", policy_name);
    let report = Report::of(&r, &name, policy, o.check, o.span_limit);
    if let Some(svg) = &o.svg {
        draw(svg, &name, &trace, quantum, setup, &r, &report)?;
    }
    if o.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        out::text(&(text + "\n"));
    } else {
        report.print(o.failures);
        if let Some(svg) = &o.svg {
            outln!("  picture: {}", crate::input::shown(svg));
        }
    }
    // The trace's live allocations are left to the arena's teardown.
    Ok(())
}

/// Draw the arena at its peak (replayed again up to there) and at the end.
fn draw(
    svg: &Path,
    name: &str,
    trace: &Trace,
    quantum: usize,
    setup: Setup,
    end: &Replay<'_, PageStore<MmapBackend>>,
    report: &Report,
) -> Result<(), String> {
    let at_peak = Setup { stop_after: Some(end.peak_at), check: false, ..setup };
    let peak = replay(trace, quantum, at_peak, "peak")?;
    let maps = [
        crate::svg::Map {
            title: format!(
                "at peak (line {}): {} live",
                report.peak.line,
                crate::sizes::human(report.peak.live_bytes as u128)
            ),
            segments: peak.segments(),
        },
        crate::svg::Map {
            title: format!(
                "at the end: {} live",
                crate::sizes::human(report.end.live_bytes as u128)
            ),
            segments: end.segments(),
        },
    ];
    let title = format!("vmspace replay {name} (policy {}, quantum {quantum})", report.policy);
    crate::svg::write(svg, &title, &maps, &report.free_histogram)
}

#[cfg(test)]
mod tests;
