//! `vmspace import-strace`: turn the `mmap`, `munmap` and `mremap` calls of
//! a real program, as strace prints them, into a replay trace.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::args::ImportArgs;
use crate::input::parse_number;

/// The end of the 47-bit user address space: the end of the trace's span.
const USER_END: usize = 0x8000_0000_0000;

/// The span the trace gives the arena, base and size: the 47-bit user
/// address space less its first 64 KiB, or its first page when pages are
/// larger (both ends a multiple of `page`, a power of two up to 2^27).
fn span(page: usize) -> (usize, usize) {
    let base = page.max(0x10000);
    (base, USER_END - base)
}

/// One mapping piece the importer follows: its end and its ID.
#[derive(Debug, Clone, Copy)]
struct Piece {
    end: usize,
    id: usize,
}

/// The importer's view of the traced process's mappings.
struct Importer {
    page: usize,
    /// Live pieces by start address.
    pieces: BTreeMap<usize, Piece>,
    /// Each ID's base (offsets count from it) and live piece count.
    ids: HashMap<usize, (usize, usize)>,
    next_id: usize,
    out: String,
    /// Calls turned into operations, and calls skipped.
    used: usize,
    skipped: usize,
}

/// One system call: name, arguments, result (`None`: failed).
struct Call<'a> {
    name: &'a str,
    args: Vec<&'a str>,
    result: Option<usize>,
}

/// Strip strace's prefixes (pid, timestamps) from a line.
fn strip_prefix(mut s: &str) -> (&str, &str) {
    let mut pid = "";
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("[pid") {
            let Some((p, rest)) = rest.split_once(']') else { return (pid, s) };
            pid = p.trim();
            s = rest;
            continue;
        }
        let token = s.split_whitespace().next().unwrap_or("");
        let numeric = !token.is_empty()
            && token.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '.')
            && s.len() > token.len();
        if !numeric {
            return (pid, s);
        }
        if pid.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            pid = token;
        }
        s = &s[token.len()..];
    }
}

fn parse_call(text: &str) -> Option<Call<'_>> {
    let (name, rest) = text.split_once('(')?;
    let name = name.trim();
    let (args, result) = rest.rsplit_once(") = ").or_else(|| rest.rsplit_once(")= "))?;
    let args = args.split(',').map(str::trim).collect();
    let result = result.split_whitespace().next().and_then(|r| parse_number(r).ok());
    Some(Call { name, args, result })
}

impl Importer {
    fn round(&self, n: usize) -> usize {
        n.checked_next_multiple_of(self.page).unwrap_or(usize::MAX - self.page + 1)
    }

    fn emit(&mut self, op: String, line: usize) {
        let _ = writeln!(self.out, "{op:<32} # strace line {line}");
    }

    fn note(&mut self, what: &str, line: usize) {
        let _ = writeln!(self.out, "# strace line {line}: {what}");
        self.skipped += 1;
    }

    /// Pieces overlapping `[a, b)`, by start.
    fn overlapping(&self, a: usize, b: usize) -> Vec<(usize, Piece)> {
        let first = self.pieces.range(..a).next_back().filter(|(_, p)| p.end > a);
        let rest = self.pieces.range(a..b);
        first.into_iter().chain(rest).map(|(&s, &p)| (s, p)).collect()
    }

    /// Unmap `[a, b)`: one free line per piece it touches. Returns whether
    /// it touched any.
    fn unmap(&mut self, a: usize, b: usize, line: usize) -> bool {
        let hit = self.overlapping(a, b);
        for &(s, p) in &hit {
            let (lo, hi) = (s.max(a), p.end.min(b));
            let (base, count) = self.ids[&p.id];
            if lo == s && hi == p.end && count == 1 {
                self.emit(format!("free m{}", p.id), line);
            } else {
                self.emit(format!("free m{} {:#x} {:#x}", p.id, lo - base, hi - lo), line);
            }
            self.pieces.remove(&s);
            let mut count = count - 1;
            if s < lo {
                self.pieces.insert(s, Piece { end: lo, id: p.id });
                count += 1;
            }
            if hi < p.end {
                self.pieces.insert(hi, Piece { end: p.end, id: p.id });
                count += 1;
            }
            if count == 0 {
                self.ids.remove(&p.id);
            } else {
                self.ids.insert(p.id, (base, count));
            }
        }
        !hit.is_empty()
    }

    fn map(&mut self, a: usize, len: usize, line: usize) {
        let id = self.next_id;
        self.next_id += 1;
        self.emit(format!("alloc m{id} {len:#x}"), line);
        self.pieces.insert(a, Piece { end: a + len, id });
        self.ids.insert(id, (a, 1));
    }

    /// The end of a mapping the call returned at `start`, or `None` (the
    /// call skipped, with a note) when it would run past the top of the
    /// address space, which no kernel hands out but a trace may say.
    fn mapping_end(&mut self, start: usize, len: usize, line: usize) -> Option<usize> {
        let end = start.checked_add(len);
        if end.is_none() {
            self.used -= 1;
            self.note("a mapping past the top of the address space skipped", line);
        }
        end
    }

    fn call(&mut self, c: &Call<'_>, line: usize) {
        let arg = |i: usize| c.args.get(i).and_then(|a| parse_number(a).ok());
        let Some(result) = c.result else {
            return self.note(&format!("failed {} skipped", c.name), line);
        };
        self.used += 1;
        match c.name {
            "mmap" | "mmap2" => {
                let len = self.round(arg(1).unwrap_or(0));
                let flags = c.args.get(3).copied().unwrap_or("");
                let fixed = flags.split('|').any(|f| f == "MAP_FIXED");
                let Some(b) = self.mapping_end(result, len, line) else { return };
                let covered: usize = self
                    .overlapping(result, b)
                    .iter()
                    .map(|(s, p)| p.end.min(b) - (*s).max(result))
                    .sum();
                if fixed && covered == len {
                    let what = "MAP_FIXED inside live mappings: replaces pages, same address space";
                    return self.note(what, line);
                }
                if covered > 0 {
                    self.unmap(result, b, line);
                }
                self.map(result, len, line);
            }
            "munmap" => {
                let (a, len) = (arg(0).unwrap_or(0), self.round(arg(1).unwrap_or(0)));
                if !self.unmap(a, a.saturating_add(len), line) {
                    self.used -= 1;
                    self.note("munmap of a range mapped before tracing (or never)", line);
                }
            }
            "mremap" => {
                let a = arg(0).unwrap_or(0);
                let (old, new) = (self.round(arg(1).unwrap_or(0)), self.round(arg(2).unwrap_or(0)));
                let Some(b) = self.mapping_end(result, new, line) else { return };
                match self.pieces.get(&a).copied() {
                    Some(p) if p.end - a == old && self.ids[&p.id].1 == 1 && new > 0 => {
                        self.emit(format!("resize m{} {new:#x}", p.id), line);
                        self.pieces.remove(&a);
                        if self.overlapping(result, b).iter().any(|(_, q)| q.id != p.id) {
                            self.unmap(result, b, line);
                        }
                        self.pieces.insert(result, Piece { end: b, id: p.id });
                        self.ids.insert(p.id, (result, 1));
                    }
                    _ => {
                        // Part of a mapping, or several: unmap, map anew.
                        self.unmap(a, a.saturating_add(old), line);
                        self.unmap(result, b, line);
                        self.map(result, new, line);
                    }
                }
            }
            _ => {
                self.used -= 1;
                self.note(&format!("{} is not traced here", c.name), line);
            }
        }
    }
}

/// Convert strace output into a trace.
pub fn convert(text: &str, page: usize) -> String {
    let mut im = Importer {
        page,
        pieces: BTreeMap::new(),
        ids: HashMap::new(),
        next_id: 0,
        out: String::new(),
        used: 0,
        skipped: 0,
    };
    let mut pending: HashMap<String, String> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let (pid, body) = strip_prefix(raw);
        let body = body.trim_end();
        if body.starts_with("+++") || body.starts_with("---") || body.is_empty() {
            continue;
        }
        let joined;
        let call_text = if let Some(head) = body.strip_suffix("<unfinished ...>") {
            pending.insert(pid.to_string(), head.trim_end().to_string());
            continue;
        } else if let Some(rest) = body.strip_prefix("<...") {
            let Some((_, tail)) = rest.split_once("resumed>") else { continue };
            let Some(head) = pending.remove(pid) else { continue };
            joined = format!("{head}{tail}");
            joined.as_str()
        } else {
            body
        };
        match parse_call(call_text) {
            Some(c) => im.call(&c, n + 1),
            None => im.note("not a system call strace line", n + 1),
        }
    }
    let mut head = String::new();
    let _ = writeln!(
        head,
        "# imported by vmspace import-strace: {} calls as operations, {} lines skipped (see comments)",
        im.used, im.skipped
    );
    let (base, size) = span(page);
    let _ = writeln!(head, "quantum {page}\nadd {base:#x} {size:#x}");
    head + &im.out
}

/// `vmspace import-strace`.
pub fn run(o: &ImportArgs) -> Result<(), String> {
    let bytes = crate::input::read(&o.file)?;
    let text = String::from_utf8_lossy(&bytes);
    let trace = convert(&text, o.page);
    match &o.output {
        Some(path) => {
            std::fs::write(path, trace).map_err(|e| format!("writing {}: {e}", path.display()))
        }
        None => {
            crate::out::text(&trace);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmspace_user::trace::{parse, TraceOp};

    const SAMPLE: &str = "\
1234  mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
1234  mmap(NULL, 20000, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7f0000010000
1234  mmap(0x7f0000011000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000) = 0x7f0000011000
1234  munmap(0x7f0000011000, 4096) = 0
[pid  1235] 12:00:00.000001 mremap(0x7f0000000000, 8192, 16384, MREMAP_MAYMOVE <unfinished ...>
1234  mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)
[pid  1235] 12:00:00.000002 <... mremap resumed>) = 0x7f0000020000
1234  munmap(0x7e0000000000, 4096) = 0
1234  munmap(0x7f0000010000, 0x5000) = 0
+++ exited with 0 +++
";

    #[test]
    fn converts_maps_partial_unmaps_and_remaps() {
        let t = convert(SAMPLE, 4096);
        let ops: Vec<TraceOp> = parse(&t).unwrap().ops.into_iter().map(|(_, op)| op).collect();
        let want = [
            "add 0x10000 0x7fffffff0000",
            "alloc m0 0x2000",
            "alloc m1 0x5000",
            "free m1 0x1000 0x1000",
            "resize m0 0x4000",
            "free m1 0x0 0x1000",
            "free m1",
        ];
        let got: Vec<String> = ops.iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "{t}");
        assert!(t.contains("quantum 4096"));
        assert!(t.contains("MAP_FIXED inside live mappings"));
        assert!(t.contains("failed mmap skipped"));
        assert!(t.contains("mapped before tracing"));
    }

    /// The span must suit the arena's quantum, the page: with pages over
    /// 64 KiB it was `add 0x10000 0x7fffffff0000`, and every replayed
    /// operation failed.
    #[test]
    fn the_span_is_whole_pages_for_every_page_size() {
        for shift in 0..=27 {
            let page = 1usize << shift;
            let (base, size) = span(page);
            assert_eq!((base % page, size % page), (0, 0), "page {page:#x}");
            assert!(base >= 0x10000 && base + size == USER_END);
            let t = convert(SAMPLE, page);
            let trace = parse(&t).unwrap();
            assert_eq!(trace.quantum, Some(page));
            let TraceOp::Add { base: b, size: s } = trace.ops[0].1 else { panic!("{t}") };
            assert_eq!((b, s), (base, size));
        }
    }

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(strip_prefix("[pid 7] 1.5 mmap(x) = 0").0, "7");
        assert_eq!(strip_prefix("42 12:00:01 munmap(a, b) = 0").1, "munmap(a, b) = 0");
        assert_eq!(strip_prefix("mmap(x) = 0"), ("", "mmap(x) = 0"));
    }
}
