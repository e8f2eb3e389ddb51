//! `vmspace replay --compare`: one trace under every policy, side by side.

use vmspace::arena::Policy;
use vmspace_user::trace::shown_text;

use super::engine::Setup;
use super::replay;
use super::report::Report;
use crate::args::ReplayArgs;
use crate::out::{self, outln};
use crate::sizes::human;
use vmspace_user::trace::{policy_name, Trace};

/// Replay under each policy; print one table (or a JSON array).
pub fn run(
    o: &ReplayArgs,
    name: &str,
    trace: &Trace,
    quantum: usize,
    setup: Setup,
) -> Result<(), String> {
    let mut reports = Vec::new();
    for p in Policy::ALL {
        let s = Setup { policy: Some(p), ..setup };
        let r = replay(trace, quantum, s, policy_name(p))?;
        reports.push(Report::of(&r, name, policy_name(p), o.check, o.span_limit));
    }
    if o.json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
        out::text(&(text + "\n"));
        return Ok(());
    }
    outln!(
        "replayed {} operations from {} under every policy (quantum {quantum}{}{})",
        reports[0].outcomes.ops,
        shown_text(name),
        reports[0].limit_note(),
        if o.check { ", check() after each" } else { "" }
    );
    print_table(&reports);
    outln!(
        "  live/extent: live bytes over the span of addresses they occupy (1.000: no holes, one span); \
         fragmentation: 1 - largest free / all free, per mille rounded up"
    );
    Ok(())
}

/// A row of the table: its label and how to get a report's cell.
type Row = (&'static str, fn(&Report) -> String);

fn print_table(reports: &[Report]) {
    let rows: [Row; 14] = [
        ("allocations ok", |r| r.outcomes.allocs.to_string()),
        ("failed operations", |r| r.outcomes.failed.to_string()),
        ("moved on resize", |r| r.outcomes.moved.to_string()),
        ("peak live", |r| human(r.peak.live_bytes as u128)),
        ("peak extent", |r| human(r.peak.extent_bytes as u128)),
        ("peak live/extent", |r| format!("{:.3}", r.peak.live_over_extent)),
        ("peak holes", |r| human(r.peak.holes_bytes as u128)),
        ("end live", |r| human(r.end.live_bytes as u128)),
        ("end extent", |r| human(r.end.extent_bytes as u128)),
        ("end live/extent", |r| format!("{:.3}", r.end.live_over_extent)),
        ("largest free", |r| human(r.largest_free as u128)),
        ("fragmentation", |r| format!("{} per mille", r.fragmentation_per_mille)),
        ("search steps", |r| r.search_steps.to_string()),
        ("ns per operation", |r| format!("{:.0}", r.ns_per_op)),
    ];
    let mut head = format!("  {:<20}", "");
    for r in reports {
        head.push_str(&format!(" {:>16}", r.policy));
    }
    outln!("{head}");
    for (label, cell) in rows {
        let mut line = format!("  {label:<20}");
        for r in reports {
            line.push_str(&format!(" {:>16}", cell(r)));
        }
        outln!("{line}");
    }
}
