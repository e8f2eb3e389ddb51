//! Arena operation traces: a line-oriented text format, its parser, and a
//! generator for the benchmarks' churn workload.
//!
//! ```text
//! # comments and blank lines are ignored
//! add 0x100000 0x80000000           # add a span: base, size
//! alloc a1 4096 best                # allocate: id, size, [policy]
//! xalloc a2 100 align=64 nocross=4096 min=0x200000 max=0x300000 policy=first top
//! free a1                           # free what id a1 got
//! ```
//!
//! Numbers are decimal or `0x` hex. Policies are `instant` (the default),
//! `best`, `first` and `next`; `xalloc` also takes `phase=`, `exact=` and
//! `top` (allocate from the top of the chosen segment). An id names one live
//! allocation at a time.

use vmspace::arena::{Constraints, Policy};
use vmspace::{Addr, Size};
use vmspace_workload::Churn;

/// One traced operation.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceOp {
    /// Add the span `[base, base + size)`.
    Add { base: usize, size: usize },
    /// Allocate under `constraints`, naming the result `id`.
    Alloc { id: String, constraints: Constraints },
    /// Free what `id` got.
    Free { id: String },
}

/// A trace line that cannot be understood: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.what)
    }
}

fn number(s: &str) -> Result<usize, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a number"))
}

fn policy(s: &str) -> Result<Policy, String> {
    match s {
        "instant" => Ok(Policy::InstantFit),
        "best" => Ok(Policy::BestFit),
        "first" => Ok(Policy::FirstFit),
        "next" => Ok(Policy::NextFit),
        _ => Err(format!("unknown policy {s:?} (instant, best, first, next)")),
    }
}

/// Parse one line (without its comment); `None` for a blank one.
fn parse_line(text: &str) -> Result<Option<TraceOp>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else { return Ok(None) };
    let op = match (verb, args) {
        ("add", [base, size]) => TraceOp::Add { base: number(base)?, size: number(size)? },
        ("alloc", [id, size, rest @ ..]) if rest.len() <= 1 => {
            let p = rest.first().map_or(Ok(Policy::InstantFit), |p| policy(p))?;
            let constraints = Constraints::new(Size(number(size)?)).policy(p);
            TraceOp::Alloc { id: id.to_string(), constraints }
        }
        ("xalloc", [id, size, rest @ ..]) => {
            let mut c = Constraints::new(Size(number(size)?));
            for word in rest {
                c = match word.split_once('=') {
                    Some(("align", v)) => c.align(Size(number(v)?)),
                    Some(("phase", v)) => c.phase(Size(number(v)?)),
                    Some(("nocross", v)) => c.nocross(Size(number(v)?)),
                    Some(("min", v)) => c.min_addr(Addr(number(v)?)),
                    Some(("max", v)) => c.max_addr(Addr(number(v)?)),
                    Some(("exact", v)) => c.exact(Addr(number(v)?)),
                    Some(("policy", v)) => c.policy(policy(v)?),
                    None if *word == "top" => c.from_top(true),
                    _ => return Err(format!("unknown xalloc constraint {word:?}")),
                };
            }
            TraceOp::Alloc { id: id.to_string(), constraints: c }
        }
        ("free", [id]) => TraceOp::Free { id: id.to_string() },
        ("add" | "alloc" | "xalloc" | "free", _) => {
            return Err(format!("wrong arguments for {verb} (see `vmspace --help`)"))
        }
        _ => return Err(format!("unknown operation {verb:?}")),
    };
    Ok(Some(op))
}

/// Parse a whole trace: every operation with its line number.
pub fn parse(text: &str) -> Result<Vec<(usize, TraceOp)>, TraceError> {
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        match parse_line(code) {
            Ok(Some(op)) => ops.push((n + 1, op)),
            Ok(None) => {}
            Err(what) => return Err(TraceError { line: n + 1, what }),
        }
    }
    Ok(ops)
}

/// The benchmarks' churn workload (`vmspace_workload::Churn`) as a trace:
/// one span of 2^31 units at 1 MiB, `live` allocations, then `steps` steps
/// of freeing one and allocating another in its place.
pub fn churn(live: usize, steps: usize) -> String {
    let mut c = Churn::new(live);
    let mut out = format!(
        "# churn: {} live allocations, {steps} steps (vmspace_workload::Churn)\nadd 0x100000 0x80000000\n",
        c.live()
    );
    let mut slot_ids = Vec::with_capacity(c.live());
    while let Some(size) = c.initial() {
        let id = slot_ids.len();
        out.push_str(&format!("alloc s{id} {size}\n"));
        slot_ids.push(id);
    }
    for next in slot_ids.len()..slot_ids.len() + steps {
        let (slot, size) = c.step();
        out.push_str(&format!("free s{}\nalloc s{next} {size}\n", slot_ids[slot]));
        slot_ids[slot] = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operation() {
        let text = "# a trace\n\nadd 0x1000 4096\nalloc a 16\nalloc b 0x20 best # comment\n\
                    xalloc c 8 align=64 phase=8 nocross=0x1000 min=0x1000 max=0x2000 policy=next top\n\
                    xalloc d 8 exact=0x1800\nfree a\n";
        let ops = parse(text).unwrap();
        assert_eq!(ops.len(), 6);
        assert_eq!(ops[0], (3, TraceOp::Add { base: 0x1000, size: 4096 }));
        let want = Constraints::new(Size(0x20)).policy(Policy::BestFit);
        assert_eq!(ops[2].1, TraceOp::Alloc { id: "b".into(), constraints: want });
        let want = Constraints::new(Size(8))
            .align(Size(64))
            .phase(Size(8))
            .nocross(Size(0x1000))
            .min_addr(Addr(0x1000))
            .max_addr(Addr(0x2000))
            .policy(Policy::NextFit)
            .from_top(true);
        assert_eq!(ops[3], (6, TraceOp::Alloc { id: "c".into(), constraints: want }));
        assert_eq!(ops[5], (8, TraceOp::Free { id: "a".into() }));
    }

    #[test]
    fn bad_lines_name_their_number() {
        for (text, line, what) in [
            ("add 1 2\nalloc a\n", 2, "wrong arguments"),
            ("alloc a 12x\n", 1, "not a number"),
            ("\n\nalloc a 1 fastest\n", 3, "unknown policy"),
            ("xalloc a 1 align=\n", 1, "not a number"),
            ("xalloc a 1 colour=red\n", 1, "unknown xalloc constraint"),
            ("map 1 2\n", 1, "unknown operation"),
            ("free\n", 1, "wrong arguments"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.what.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn churn_trace_parses_and_frees_only_live_ids() {
        let ops = parse(&churn(10, 50)).unwrap();
        assert_eq!(ops.len(), 1 + 10 + 2 * 50);
        let mut live = std::collections::HashSet::new();
        for (_, op) in ops {
            match op {
                TraceOp::Add { .. } => {}
                TraceOp::Alloc { id, .. } => assert!(live.insert(id)),
                TraceOp::Free { id } => assert!(live.remove(&id)),
            }
        }
        assert_eq!(live.len(), 10);
    }
}
