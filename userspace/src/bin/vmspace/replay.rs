//! `vmspace replay`: run an arena operation trace (see `trace.rs`) on a
//! fresh arena and report what happened and how the arena ends up.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource};
use vmspace::{Addr, Size};
use vmspace_user::MmapBackend;

use crate::arena_demo::histogram;
use crate::trace::{self, TraceOp};

/// What `vmspace replay` was asked to do.
pub struct ReplayOptions {
    /// The trace file (`-`: standard input).
    pub file: String,
    /// The arena's quantum.
    pub quantum: usize,
    /// Run `check()` after every operation.
    pub check: bool,
}

/// What a replay counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Operations run.
    pub ops: usize,
    /// Allocations that succeeded.
    pub allocs: usize,
    /// Allocations refused for want of space.
    pub no_space: usize,
    /// Allocations refused otherwise (bad constraints, ...).
    pub refused: usize,
    /// Frees.
    pub frees: usize,
    /// Frees of ids whose allocation had failed (skipped).
    pub skipped_frees: usize,
    /// Allocations still live at the end.
    pub live: usize,
}

fn read(file: &str) -> Result<String, String> {
    if file == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("reading standard input: {e}"))
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))
    }
}

/// Replay the trace text on `arena`; errors name the trace line.
pub fn replay<S: vmspace::arena::Store>(
    arena: &mut Arena<S, NoSource>,
    ops: &[(usize, TraceOp)],
    check: bool,
) -> Result<(Tally, Duration), String> {
    let mut tally = Tally::default();
    let mut live: HashMap<&str, (Addr, Size)> = HashMap::new();
    let mut failed: HashSet<&str> = HashSet::new();
    let mut busy = Duration::ZERO;
    for (line, op) in ops {
        let at = |e: &dyn std::fmt::Display| format!("trace line {line}: {e}");
        // Time the arena call alone, not the replay's own bookkeeping.
        let mut timed = |f: &mut dyn FnMut() -> Result<(), ArenaError>| {
            let t0 = Instant::now();
            let r = f();
            busy += t0.elapsed();
            r
        };
        match op {
            TraceOp::Add { base, size } => {
                timed(&mut || arena.add(Addr(*base), Size(*size))).map_err(|e| at(&e))?;
            }
            TraceOp::Alloc { id, constraints } => {
                if live.contains_key(id.as_str()) {
                    return Err(at(&format!("id {id} is already live")));
                }
                failed.remove(id.as_str());
                let mut got = Addr(0);
                match timed(&mut || arena.xalloc(constraints).map(|a| got = a)).map(|()| got) {
                    Ok(a) => {
                        live.insert(id, (a, constraints.size()));
                        tally.allocs += 1;
                    }
                    Err(e) => {
                        if matches!(e, ArenaError::NoSpace { .. }) {
                            tally.no_space += 1;
                        } else {
                            tally.refused += 1;
                        }
                        failed.insert(id);
                    }
                }
            }
            TraceOp::Free { id } => {
                if let Some((a, s)) = live.remove(id.as_str()) {
                    // Our own record of the allocation: a refusal is a bug.
                    timed(&mut || arena.free(a, s)).map_err(|e| at(&e))?;
                    tally.frees += 1;
                } else if failed.remove(id.as_str()) {
                    tally.skipped_frees += 1;
                } else {
                    return Err(at(&format!("id {id} was never allocated")));
                }
            }
        }
        tally.ops += 1;
        if check {
            arena.check().map_err(|e| at(&format!("check failed: {e}")))?;
        }
    }
    tally.live = live.len();
    Ok((tally, busy))
}

/// `vmspace replay`.
pub fn run(o: &ReplayOptions) -> Result<(), String> {
    let ops = trace::parse(&read(&o.file)?).map_err(|e| e.to_string())?;
    let allocs = ops.iter().filter(|(_, op)| matches!(op, TraceOp::Alloc { .. })).count();
    let spans = ops.len() - allocs;
    // Worst case: every allocation live and splitting a free segment in
    // two, every span with its marker.
    let max_tags = (2 * allocs + 2 * spans + 1024).min(1 << 27);
    let mut arena =
        Arena::on_pages("replay", Size(o.quantum), MmapBackend::new(), max_tags, NoSource)
            .map_err(|e| format!("creating the arena: {e}"))?;
    let (t, busy) = replay(&mut arena, &ops, o.check)?;
    arena.check().map_err(|e| format!("check at the end: {e}"))?;
    println!(
        "replayed {} operations from {}{}",
        t.ops,
        o.file,
        if o.check { ", check() after each" } else { "" }
    );
    println!(
        "  allocations {} ok, {} without space, {} refused; frees {} (+{} of failed allocations skipped)",
        t.allocs, t.no_space, t.refused, t.frees, t.skipped_frees
    );
    println!(
        "  {:.0} ns an operation (wall time inside the arena calls alone)",
        busy.as_nanos() as f64 / t.ops.max(1) as f64
    );
    let s = arena.sizes();
    println!("  live {}: allocated {}, free {}, total {}", t.live, s.allocated, s.free, s.total);
    let c = arena.counters();
    println!(
        "  counters: {} allocs, {} frees, {} failures, {} search steps, {} lookups",
        c.allocs, c.frees, c.failures, c.search_steps, c.lookups
    );
    println!("  free segments by size: {}", histogram(&arena.free_histogram()));
    println!(
        "  largest free {}, fragmentation {} per mille",
        arena.largest_free(),
        arena.fragmentation()
    );
    println!("  metadata {} bytes committed", arena.metadata_bytes());
    // The trace's live allocations are left to the arena's teardown.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmspace::arena::SliceStore;

    fn run_text(text: &str) -> Result<Tally, String> {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
        let mut a =
            Arena::new("t", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
                .map_err(|e| e.to_string())?;
        let ops = trace::parse(text).map_err(|e| e.to_string())?;
        let r = replay(&mut a, &ops, true).map(|(t, _)| t);
        a.check().map_err(|e| e.to_string())?;
        r
    }

    #[test]
    fn counts_successes_failures_and_skips() {
        let t = run_text(
            "add 0 100\nalloc a 60\nalloc b 60\nfree b\nxalloc c 10 align=3\nfree a\nalloc d 10\n",
        )
        .unwrap();
        let want = Tally {
            ops: 7,
            allocs: 2,
            no_space: 1,
            refused: 1,
            frees: 1,
            skipped_frees: 1,
            live: 1,
        };
        assert_eq!(t, want);
    }

    #[test]
    fn churn_trace_replays_to_its_live_count() {
        let t = run_text(&trace::churn(20, 200)).unwrap();
        assert_eq!((t.allocs, t.frees, t.live, t.no_space + t.refused), (220, 200, 20, 0));
    }

    #[test]
    fn trace_mistakes_name_their_line() {
        let e = run_text("add 0 100\nalloc a 10\nalloc a 10\n").unwrap_err();
        assert!(e.starts_with("trace line 3:") && e.contains("already live"), "{e}");
        let e = run_text("add 0 100\nfree z\n").unwrap_err();
        assert!(e.starts_with("trace line 2:") && e.contains("never allocated"), "{e}");
        let e = run_text("add 0 100\nadd 50 100\n").unwrap_err();
        assert!(e.starts_with("trace line 2:"), "{e}");
    }
}
