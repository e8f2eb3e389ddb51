//! The importer's model of the traced program's mappings, and the trace
//! lines each call becomes.
//!
//! Mappings are followed at the program's own page, at their real
//! addresses, so that an `munmap` finds what it unmaps, and a `MAP_FIXED`
//! mapping inside a live one is recognised as such, whatever `--page`
//! says (the kernel rounded to its page, not the trace's); the trace is
//! written in pages of `--page`. With a larger trace
//! page, each mapping becomes an allocation of its length rounded up to
//! whole trace pages, and a partial unmap frees the trace pages of the
//! mapping it leaves without any live byte: a model of the same program
//! on a system with larger pages, where no two mappings share a page.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::input::parse_number;

/// The traced program's page: the kernel rounded its mappings to it.
const PROGRAM_PAGE: usize = 4096;

/// `mmap`'s `MAP_FIXED` (Linux, every architecture).
const MAP_FIXED: usize = 0x10;
/// `mremap`'s `MREMAP_DONTUNMAP`.
const MREMAP_DONTUNMAP: usize = 4;

/// Whether the flags argument `field` has the flag `name` (whose value is
/// `bit`), as strace writes flags: by name (`MAP_PRIVATE|MAP_FIXED`, the
/// default), as a number (`-X raw`: `0x12`), or both (`-X verbose`:
/// `0x12 /* MAP_PRIVATE|MAP_FIXED */`, the number read); bits strace has no
/// name for follow the names as a number (`MAP_PRIVATE|0x40000`). A term
/// that is not a name or a number alone is neither: `21<<MAP_HUGE_SHIFT`
/// (a huge page size) has no flag bits of its own.
fn has_flag(field: &str, name: &str, bit: usize) -> bool {
    let value = field.split("/*").next().unwrap_or("");
    value
        .split('|')
        .map(str::trim)
        .any(|t| t == name || parse_number(t).is_ok_and(|n| n & bit != 0))
}

/// One mapping piece the importer follows: its end and its ID.
#[derive(Debug, Clone, Copy)]
struct Piece {
    end: usize,
    id: usize,
}

/// What an ID names: a mapping as allocated or last resized.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    /// Its address; the trace's offsets count from it.
    base: usize,
    /// Live pieces.
    pieces: usize,
}

/// One system call: name, arguments, result (`None`: failed).
pub struct Call<'a> {
    pub name: &'a str,
    pub args: Vec<&'a str>,
    pub result: Option<usize>,
}

/// The importer's view of the traced process's mappings.
pub struct Importer {
    /// The trace's page: every length and offset written is whole pages.
    page: usize,
    /// The granularity mappings are followed at: the program's page.
    unit: usize,
    /// Live pieces by start address.
    pieces: BTreeMap<usize, Piece>,
    ids: HashMap<usize, Mapping>,
    next_id: usize,
    /// The trace's operations, with comments.
    pub out: String,
    /// Calls turned into operations, and lines skipped.
    pub used: usize,
    pub skipped: usize,
    /// Calls split over two lines (`<unfinished ...>`, then resumed).
    pub split: usize,
    /// The strace line whose trace line found no memory: nothing is
    /// written from there on.
    pub out_of_memory: Option<usize>,
}

impl Importer {
    /// An importer writing pages of `page` bytes (a power of two).
    pub fn new(page: usize) -> Self {
        Importer {
            page,
            unit: PROGRAM_PAGE,
            pieces: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            out: String::new(),
            used: 0,
            skipped: 0,
            split: 0,
            out_of_memory: None,
        }
    }

    /// Append a line of the trace, for strace line `line`. The trace is
    /// some 25 times a log of short lines: a line that finds no memory
    /// stops the writing (and the command says so), where growing the
    /// text infallibly would abort the process.
    fn write(&mut self, text: fmt::Arguments<'_>, line: usize) {
        if self.out_of_memory.is_some() {
            return;
        }
        let text = fmt::format(text);
        if self.out.try_reserve(text.len() + 1).is_err() {
            self.out_of_memory = Some(line);
            return;
        }
        self.out.push_str(&text);
        self.out.push('\n');
    }

    /// `n` rounded up to `to`, or the largest multiple of `to` when that
    /// overflows.
    fn round(n: usize, to: usize) -> usize {
        n.checked_next_multiple_of(to).unwrap_or(usize::MAX - to + 1)
    }

    fn emit(&mut self, op: String, line: usize) {
        self.write(format_args!("{op:<32} # strace line {line}"), line);
    }

    /// A comment for a line that becomes no operation.
    pub fn note(&mut self, what: &str, line: usize) {
        self.write(format_args!("# strace line {line}: {what}"), line);
        self.skipped += 1;
    }

    /// A comment for the first line of a call strace split over two: what
    /// it does is written where it ends, on line `resumed` (so a line is
    /// named by an operation or a comment, whichever way strace wrote it).
    pub fn split(&mut self, line: usize, resumed: usize) {
        self.write(format_args!("# strace line {line}: a call resumed on line {resumed}"), line);
        self.split += 1;
    }

    /// Pieces overlapping `[a, b)`, by start.
    fn overlapping(&self, a: usize, b: usize) -> Vec<(usize, Piece)> {
        let first = self.pieces.range(..a).next_back().filter(|(_, p)| p.end > a);
        let rest = self.pieces.range(a..b);
        first.into_iter().chain(rest).map(|(&s, &p)| (s, p)).collect()
    }

    /// Unmap `[a, b)`: for each mapping it touches, a `free` of the whole
    /// (its last piece gone) or of the trace pages it leaves without a
    /// live byte. Returns the lines written, or `None` when it touched no
    /// mapping (an empty range touches none).
    fn unmap(&mut self, a: usize, b: usize, line: usize) -> Option<usize> {
        if a >= b {
            return None;
        }
        let hit = self.overlapping(a, b);
        let mut freed: Vec<(usize, usize, usize)> = Vec::new();
        for &(s, p) in &hit {
            let (lo, hi) = (s.max(a), p.end.min(b));
            let m = self.ids.get_mut(&p.id).expect("a live piece's ID is live");
            self.pieces.remove(&s);
            m.pieces -= 1;
            if s < lo {
                self.pieces.insert(s, Piece { end: lo, id: p.id });
                m.pieces += 1;
            }
            if hi < p.end {
                self.pieces.insert(hi, Piece { end: p.end, id: p.id });
                m.pieces += 1;
            }
            freed.push((p.id, lo, hi));
        }
        let mut done = BTreeSet::new();
        let mut lines = 0;
        for &(id, _, _) in &freed {
            if done.insert(id) {
                lines += self.free_pages(id, &freed, line);
            }
        }
        (!hit.is_empty()).then_some(lines)
    }

    /// The lines for mapping `id` after the unmaps in `freed`; how many.
    fn free_pages(&mut self, id: usize, freed: &[(usize, usize, usize)], line: usize) -> usize {
        let m = self.ids[&id];
        if m.pieces == 0 {
            self.ids.remove(&id);
            self.emit(format!("free m{id}"), line);
            return 1;
        }
        let page = self.page;
        let touched = |k: usize| {
            let lo = m.base.saturating_add(k * page);
            let hi = lo.saturating_add(page);
            self.overlapping(lo, hi).iter().any(|(_, p)| p.id == id)
        };
        // The trace pages each unmap covers. Those wholly inside it are
        // empty now (the unmap took every byte of them), so only its first
        // and last page are looked up: the work is a few lookups an unmap,
        // however many pages it frees.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for &(_, lo, hi) in freed.iter().filter(|f| f.0 == id) {
            let (k0, k1) = ((lo - m.base) / page, (hi - m.base).div_ceil(page));
            let start = if touched(k0) { k0 + 1 } else { k0 };
            let end = if k1 > start && touched(k1 - 1) { k1 - 1 } else { k1 };
            if start < end {
                spans.push((start, end));
            }
        }
        spans.sort_unstable();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (k0, k1) in spans {
            match runs.last_mut() {
                Some((_, end)) if *end >= k0 => *end = (*end).max(k1),
                _ => runs.push((k0, k1)),
            }
        }
        for &(k0, k1) in &runs {
            self.emit(format!("free m{id} {:#x} {:#x}", k0 * page, (k1 - k0) * page), line);
        }
        runs.len()
    }

    fn map(&mut self, a: usize, len: usize, line: usize) {
        let id = self.next_id;
        self.next_id += 1;
        self.emit(format!("alloc m{id} {:#x}", Self::round(len, self.page)), line);
        self.pieces.insert(a, Piece { end: a + len, id });
        self.ids.insert(id, Mapping { base: a, pieces: 1 });
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

    /// The operations of one call.
    pub fn call(&mut self, c: &Call<'_>, line: usize) {
        let arg = |i: usize| c.args.get(i).and_then(|a| parse_number(a).ok());
        let Some(result) = c.result else {
            return self.note(&format!("failed {} skipped", c.name), line);
        };
        let length = |i: usize| Self::round(arg(i).unwrap_or(0), self.unit);
        self.used += 1;
        match c.name {
            "mmap" | "mmap2" => {
                let len = length(1);
                if len == 0 {
                    // The kernel refuses a mapping of no bytes (EINVAL): a
                    // success is not a real call.
                    self.used -= 1;
                    return self.note("mmap of 0 bytes (or of no readable length)", line);
                }
                let flags = c.args.get(3).copied().unwrap_or("");
                let fixed = has_flag(flags, "MAP_FIXED", MAP_FIXED);
                let Some(b) = self.mapping_end(result, len, line) else { return };
                let covered: usize = self
                    .overlapping(result, b)
                    .iter()
                    .map(|(s, p)| p.end.min(b) - (*s).max(result))
                    .sum();
                if fixed && covered == len {
                    self.used -= 1;
                    let what = "MAP_FIXED inside live mappings: replaces pages, same address space";
                    return self.note(what, line);
                }
                if covered > 0 {
                    self.unmap(result, b, line);
                }
                self.map(result, len, line);
            }
            "munmap" => {
                let (a, len) = (arg(0).unwrap_or(0), length(1));
                let what = match self.unmap(a, a.saturating_add(len), line) {
                    Some(0) => "munmap leaves every page of the trace with a live byte: no free",
                    Some(_) => return,
                    None if len == 0 => "munmap of 0 bytes changes nothing",
                    None => "munmap of a range mapped before tracing (or never)",
                };
                self.used -= 1;
                self.note(what, line);
            }
            "mremap" => {
                let a = arg(0).unwrap_or(0);
                let (old, new) = (length(1), length(2));
                if new == 0 {
                    // Refused by the kernel (EINVAL), as a 0-byte mmap is.
                    self.used -= 1;
                    return self.note("mremap to 0 bytes (or to no readable length)", line);
                }
                let Some(b) = self.mapping_end(result, new, line) else { return };
                let flags = c.args.get(3).copied().unwrap_or("");
                if has_flag(flags, "MREMAP_DONTUNMAP", MREMAP_DONTUNMAP) {
                    // The pages move to a new mapping; the old one stays
                    // mapped (empty), so this maps more address space.
                    self.unmap(result, b, line);
                    return self.map(result, new, line);
                }
                match self.pieces.get(&a).copied() {
                    Some(p) if p.end - a == old && self.ids[&p.id].pieces == 1 => {
                        // What the destination covers goes first (the
                        // kernel unmaps it before the move), so that the
                        // replay never holds both.
                        self.pieces.remove(&a);
                        if self.overlapping(result, b).iter().any(|(_, q)| q.id != p.id) {
                            self.unmap(result, b, line);
                        }
                        let size = Self::round(new, self.page);
                        self.emit(format!("resize m{} {size:#x}", p.id), line);
                        self.pieces.insert(result, Piece { end: b, id: p.id });
                        self.ids.insert(p.id, Mapping { base: result, pieces: 1 });
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

#[cfg(test)]
mod tests {
    use super::has_flag;

    /// Flags by name, raw (`-X raw`) and verbose (`-X verbose`), and
    /// fields that only look alike.
    #[test]
    fn flags_are_read_by_name_and_by_value() {
        for (field, want) in [
            ("MAP_PRIVATE|MAP_FIXED", true),
            ("MAP_FIXED", true),
            ("MAP_PRIVATE|MAP_FIXED_NOREPLACE", false),
            ("MAP_PRIVATE|MAP_ANONYMOUS", false),
            ("0x12", true),
            ("0x22", false),
            ("18", true),
            ("0", false),
            ("0x12 /* MAP_PRIVATE|MAP_FIXED */", true),
            ("0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */", false),
            ("MAP_PRIVATE|0x10", true),
            ("MAP_PRIVATE|0x40000", false),
            ("MAP_PRIVATE|MAP_HUGETLB|21<<MAP_HUGE_SHIFT", false),
            ("MAP_SHARED|MAP_HUGETLB|30<<MAP_HUGE_SHIFT", false),
            ("MAP_PRIVATE|MAP_FIXED|MAP_HUGETLB|21<<MAP_HUGE_SHIFT", true),
            ("0x22 /* MAP_PRIVATE|MAP_ANONYMOUS|0x10 */", false),
            ("", false),
        ] {
            assert_eq!(has_flag(field, "MAP_FIXED", 0x10), want, "{field:?}");
        }
        assert!(has_flag("MREMAP_MAYMOVE|MREMAP_DONTUNMAP", "MREMAP_DONTUNMAP", 4));
        assert!(has_flag("0x5", "MREMAP_DONTUNMAP", 4));
        assert!(!has_flag("0x1", "MREMAP_DONTUNMAP", 4));
    }
}
