//! Arena operation traces: a line-oriented text format, its parser, and a
//! generator for the benchmarks' churn workload. `vmspace help replay`
//! describes the format; the `vmspace` program replays traces, and the
//! fuzz target `trace_parser` feeds the parser arbitrary bytes.

use std::fmt;

use vmspace::arena::{Constraints, Policy};
use vmspace::{Addr, Size};

mod churn;
mod shown;

pub use churn::{churn, churn_span, churn_text, CHURN_MAX_LIVE};
pub use shown::{quoted, shown_id, shown_text};

/// A number as traces write them: decimal or `0x` hex digits, `_` allowed
/// between them; no sign (Rust's own parsers take a leading `+`).
pub fn parse_number(s: &str) -> Result<usize, String> {
    let not_a_number = || format!("{} is not a number (decimal or 0x hex)", quoted(s));
    let (written, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let between = !written.starts_with('_') && !written.ends_with('_');
    let digits = written.replace('_', "");
    if !between || digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(not_a_number());
    }
    usize::from_str_radix(&digits, radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => {
            format!("{} is too large (at most {})", quoted(s), usize::MAX)
        }
        _ => not_a_number(),
    })
}

use parse_number as number;

/// One traced operation.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceOp {
    /// Add the span `[base, base + size)`.
    Add {
        /// The span's first unit.
        base: usize,
        /// Its size.
        size: usize,
    },
    /// Allocate under `constraints`, naming the result `id`.
    Alloc {
        /// The name later lines use for the allocation.
        id: String,
        /// Size, policy and placement constraints.
        constraints: Constraints,
    },
    /// Free all that `id` still holds.
    Free {
        /// The allocation's name.
        id: String,
    },
    /// Free `[offset, offset + size)` of what `id` got.
    FreePart {
        /// The allocation's name.
        id: String,
        /// Where the freed piece starts, from the allocation's start.
        offset: usize,
        /// The piece's size.
        size: usize,
    },
    /// Resize `id` to `size`, in place or by moving it.
    Resize {
        /// The allocation's name.
        id: String,
        /// The new size.
        size: usize,
    },
}

/// Whether `id` reads back as one name from a trace line: not empty, no
/// white space (the parser splits a line there) and no `#` (a comment
/// starts there). Every name [`parse`] gives is one, and a [`TraceOp`]
/// prints as a line that parses back to it exactly when its name is one.
pub fn is_trace_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c == '#')
}

impl TraceOp {
    /// The operation's name (none for `add`).
    pub fn id(&self) -> Option<&str> {
        match self {
            TraceOp::Add { .. } => None,
            TraceOp::Alloc { id, .. }
            | TraceOp::Free { id }
            | TraceOp::FreePart { id, .. }
            | TraceOp::Resize { id, .. } => Some(id),
        }
    }

    /// The operation as a message shows it: as [`Display`](fmt::Display)
    /// writes it, but with its name as [`shown_id`] shows it.
    pub fn shown(&self) -> String {
        let Some(std::borrow::Cow::Owned(shown)) = self.id().map(shown_id) else {
            return self.to_string();
        };
        let mut op = self.clone();
        if let Some(id) = op.id_mut() {
            *id = shown;
        }
        op.to_string()
    }

    fn id_mut(&mut self) -> Option<&mut String> {
        match self {
            TraceOp::Add { .. } => None,
            TraceOp::Alloc { id, .. }
            | TraceOp::Free { id }
            | TraceOp::FreePart { id, .. }
            | TraceOp::Resize { id, .. } => Some(id),
        }
    }
}

/// The operation as a trace line that parses back to it, when its name is
/// a trace name ([`is_trace_id`]; another prints as a line that does not
/// parse, or parses as something else): `alloc` when only a size and a
/// policy are set, else `xalloc` with every constraint set; numbers in hex.
impl fmt::Display for TraceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceOp::Add { base, size } => write!(f, "add {base:#x} {size:#x}"),
            TraceOp::Alloc { id, constraints } => write_alloc(f, id, constraints),
            TraceOp::Free { id } => write!(f, "free {id}"),
            TraceOp::FreePart { id, offset, size } => write!(f, "free {id} {offset:#x} {size:#x}"),
            TraceOp::Resize { id, size } => write!(f, "resize {id} {size:#x}"),
        }
    }
}

fn write_alloc(f: &mut fmt::Formatter<'_>, id: &str, c: &Constraints) -> fmt::Result {
    let p = c.parts();
    let plain = Constraints::new(p.size).policy(p.policy);
    if *c == plain {
        write!(f, "alloc {id} {:#x}", p.size.0)?;
        if p.policy != Policy::InstantFit {
            write!(f, " {}", policy_name(p.policy))?;
        }
        return Ok(());
    }
    write!(f, "xalloc {id} {:#x}", p.size.0)?;
    let sizes = [("align", p.align), ("phase", p.phase), ("nocross", p.nocross)];
    for (name, Size(v)) in sizes {
        if v != 0 {
            write!(f, " {name}={v:#x}")?;
        }
    }
    for (name, addr) in [("min", p.min), ("max", p.max), ("exact", p.exact)] {
        if let Some(Addr(v)) = addr {
            write!(f, " {name}={v:#x}")?;
        }
    }
    if p.policy != Policy::InstantFit {
        write!(f, " policy={}", policy_name(p.policy))?;
    }
    if p.top {
        write!(f, " top")?;
    }
    Ok(())
}

/// A parsed trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// The quantum its `quantum` line asks for.
    pub quantum: Option<usize>,
    /// Every operation with its line number.
    pub ops: Vec<(usize, TraceOp)>,
}

/// A trace line that cannot be understood: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.what)
    }
}

/// A policy by its trace name.
pub fn policy(s: &str) -> Result<Policy, String> {
    match s {
        "instant" => Ok(Policy::InstantFit),
        "best" => Ok(Policy::BestFit),
        "first" => Ok(Policy::FirstFit),
        "next" => Ok(Policy::NextFit),
        _ => Err(format!("unknown policy {} (instant, best, first, next)", quoted(s))),
    }
}

/// A policy's trace name.
pub fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::InstantFit => "instant",
        Policy::BestFit => "best",
        Policy::FirstFit => "first",
        Policy::NextFit => "next",
    }
}

/// What one line says: an operation, a quantum, or nothing.
enum Line {
    Op(TraceOp),
    Quantum(usize),
    Blank,
}

fn parse_line(text: &str) -> Result<Line, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else { return Ok(Line::Blank) };
    let op = match (verb, args) {
        ("quantum", [q]) => {
            let q = number(q)?;
            if !q.is_power_of_two() || q > 1 << 27 {
                return Err(format!("quantum {q} is not a power of two from 1 to 2^27"));
            }
            return Ok(Line::Quantum(q));
        }
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
                    _ => return Err(format!("unknown xalloc constraint {}", quoted(word))),
                };
            }
            TraceOp::Alloc { id: id.to_string(), constraints: c }
        }
        ("free", [id]) => TraceOp::Free { id: id.to_string() },
        ("free", [id, offset, size]) => {
            TraceOp::FreePart { id: id.to_string(), offset: number(offset)?, size: number(size)? }
        }
        ("resize", [id, size]) => TraceOp::Resize { id: id.to_string(), size: number(size)? },
        ("add" | "alloc" | "xalloc" | "free" | "resize" | "quantum", _) => {
            return Err(format!("wrong arguments for {verb} (see `vmspace help replay`)"))
        }
        _ => return Err(format!("unknown operation {}", quoted(verb))),
    };
    Ok(Line::Op(op))
}

/// Parse a whole trace given as bytes: every line must be UTF-8 text. A
/// trace whose operations do not fit in memory is an error (naming the
/// line where they stopped fitting).
pub fn parse_bytes(bytes: &[u8]) -> Result<Trace, TraceError> {
    let mut trace = Trace::default();
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = n + 1;
        let text = std::str::from_utf8(raw).map_err(|e| TraceError {
            line,
            what: format!("not UTF-8 text (invalid byte at column {})", e.valid_up_to() + 1),
        })?;
        let code = text.split('#').next().unwrap_or("");
        match parse_line(code).map_err(|what| TraceError { line, what })? {
            Line::Op(op) => {
                // A trace too large for memory is refused, not an abort:
                // the operations' table is what grows past it first (about
                // 120 bytes an operation against 7 for the shortest line).
                trace.ops.try_reserve(1).map_err(|_| TraceError {
                    line,
                    what: format!("out of memory after {} operations", trace.ops.len()),
                })?;
                trace.ops.push((line, op))
            }
            Line::Quantum(_) if !trace.ops.is_empty() => {
                let what = "quantum must come before the first operation".into();
                return Err(TraceError { line, what });
            }
            Line::Quantum(_) if trace.quantum.is_some() => {
                let what = "quantum given twice".into();
                return Err(TraceError { line, what });
            }
            Line::Quantum(q) => trace.quantum = Some(q),
            Line::Blank => {}
        }
    }
    Ok(trace)
}

/// Parse a whole trace from text.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    parse_bytes(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text_are_shown_safely() {
        assert_eq!(shown_id("m1"), "m1");
        assert_eq!(shown_id("a\u{1b}[2J"), "\"a\\u{1b}[2J\"");
        assert_eq!(shown_id(&"x".repeat(40)), format!("{:?}... (40 bytes)", "x".repeat(32)));
        assert_eq!(shown_text("app.strace"), "app.strace");
        // A bidi override and a zero-width space are escaped, not shown.
        assert_eq!(shown_text("a\u{202e}b"), "\"a\\u{202e}b\"");
        assert_eq!(shown_text("a\u{200b}b"), "\"a\\u{200b}b\"");
        let op = TraceOp::Free { id: "a\u{202e}b".into() };
        assert_eq!(op.shown(), "free \"a\\u{202e}b\"");
        assert_eq!(op.to_string(), "free a\u{202e}b");
    }

    /// One `quantum` line, before the first operation (a second one
    /// replaced the first, silently: round 54).
    #[test]
    fn quantum_once_and_first() {
        assert_eq!(parse("quantum 0x10\nalloc a 0x10\n").unwrap().quantum, Some(16));
        let e = parse("quantum 0x10\nquantum 0x20\n").unwrap_err();
        assert_eq!((e.line, e.what.as_str()), (2, "quantum given twice"));
        let e = parse("alloc a 0x10\nquantum 0x20\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.what.contains("before the first operation"), "{e}");
    }

    #[test]
    fn parses_every_operation() {
        let text = "# a trace\nquantum 0x10\nadd 0x1000 4096\nalloc a 16\nalloc b 0x20 best # c\n\
                    xalloc c 8 align=64 phase=8 nocross=0x1000 min=0x1000 max=0x2000 policy=next top\n\
                    xalloc d 8 exact=0x1800\nfree a\nfree b 0x10 16\nresize c 0x40\n";
        let t = parse(text).unwrap();
        assert_eq!(t.quantum, Some(16));
        let ops = t.ops;
        assert_eq!(ops.len(), 8);
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
        assert_eq!(ops[6].1, TraceOp::FreePart { id: "b".into(), offset: 16, size: 16 });
        assert_eq!(ops[7].1, TraceOp::Resize { id: "c".into(), size: 64 });
    }

    /// A failed operation is reported by its `Display`: it must say what
    /// the line asked, constraints and all (an `xalloc` was once shown as a
    /// bare `alloc`, its hex size in decimal).
    #[test]
    fn operations_print_as_lines_that_parse_back() {
        let text = "add 0x1000 0x100000\nalloc a 0x10\nalloc b 0x20 best\n\
                    xalloc c 0x8 align=0x40 phase=0x8 nocross=0x1000 min=0x1000 max=0x2000 \
                    policy=next top\nxalloc d 0x8 exact=0x1800\nxalloc e 0x8 top\n\
                    xalloc f 0x8 max=0x0\nfree a\nfree b 0x10 0x10\nresize c 0x40\n\
                    xalloc g 0xffffffffffffffff align=0x8000000000000000 policy=first\n";
        let t = parse(text).unwrap();
        let printed: Vec<String> = t.ops.iter().map(|(_, op)| op.to_string()).collect();
        let want: Vec<&str> = text.lines().collect();
        assert_eq!(printed, want);
        for (_, op) in &t.ops {
            let again = parse(&op.to_string()).unwrap();
            assert_eq!(again.ops[0].1, *op, "{op}");
        }
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
            ("free a 1\n", 1, "wrong arguments"),
            ("resize a\n", 1, "wrong arguments"),
            ("quantum 24\n", 1, "not a power of two"),
            ("add 0 16\nquantum 16\n", 2, "before the first operation"),
            ("add 0 0x10000000000000000\n", 1, "too large"),
            ("add +5 1\n", 1, "not a number"),
            ("add 0x+5 1\n", 1, "not a number"),
            ("add 0 0x\n", 1, "not a number"),
            ("add 0 _\n", 1, "not a number"),
            ("add 0 -1\n", 1, "not a number"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.what.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn numbers_are_digits_with_underscores() {
        assert_eq!(parse_number("1_000"), Ok(1000));
        assert_eq!(parse_number("0xFF_ff"), Ok(0xffff));
        assert_eq!(parse_number("0X10"), Ok(16));
        assert_eq!(parse_number(&usize::MAX.to_string()), Ok(usize::MAX));
        assert_eq!(parse_number("1__0"), Ok(10));
        for bad in
            ["+1", "0x+1", "", "0x", "1e3", "0b1", " 1", "1.0", "٣", "_1", "1_", "0x_1", "0_x1"]
        {
            assert!(parse_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn non_utf8_names_its_line() {
        let e = parse_bytes(b"add 0 16\nalloc a 4\nalloc b \xff\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.what.contains("not UTF-8") && e.what.contains("column 9"), "{e}");
    }
}
