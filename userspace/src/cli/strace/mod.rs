//! `vmspace import-strace`: turn the `mmap`, `munmap` and `mremap` calls of
//! a real program, as strace prints them, into a replay trace.

mod importer;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::args::ImportArgs;
use crate::input::parse_number;
use importer::{Call, Importer};

/// The end of the 47-bit user address space: the end of the trace's span.
const USER_END: usize = 0x8000_0000_0000;

/// The span the trace gives the arena, base and size: the 47-bit user
/// address space less its first 64 KiB, or its first page when pages are
/// larger (both ends a multiple of `page`, a power of two up to 2^27).
fn span(page: usize) -> (usize, usize) {
    let base = page.max(0x10000);
    (base, USER_END - base)
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

/// `name(args) = result`, with any spaces before the `=` (strace pads
/// short calls to line their results up: `munmap(0x7f.., 33699)     = 0`).
fn parse_call(text: &str) -> Option<Call<'_>> {
    let (name, rest) = text.split_once('(')?;
    let name = name.trim();
    let (args, result) = rest.rsplit_once('=')?;
    let args = args.trim_end().strip_suffix(')')?;
    let args = args.split(',').map(str::trim).collect();
    let result = result.split_whitespace().next().and_then(|r| parse_number(r).ok());
    Some(Call { name, args, result })
}

/// The start of the call `name` that a `<... name resumed>` line of `pid`
/// finishes, and its line, taken out of `pending` (unfinished calls by
/// pid). Its own
/// pid's, if of that call; else, as strace prefixes lines with `[pid N]`
/// only while it traces more than one process, an unprefixed resume takes
/// the one unfinished call of that name of any pid, and a prefixed one the
/// unprefixed call of that name.
fn take_started(
    pending: &mut HashMap<String, (String, usize)>,
    pid: &str,
    name: &str,
) -> Option<(String, usize)> {
    let named = |head: &str| head.split('(').next().is_some_and(|n| n.trim() == name);
    let key = if pending.get(pid).is_some_and(|(head, _)| named(head)) {
        pid.to_string()
    } else {
        let mut others = pending
            .iter()
            .filter(|(p, (head, _))| (pid.is_empty() || p.is_empty()) && named(head))
            .map(|(p, _)| p.clone());
        let only = others.next()?;
        if others.next().is_some() {
            return None;
        }
        only
    };
    pending.remove(&key)
}

/// Convert strace output into a trace (the tests' view of it: the command
/// writes the two parts of [`convert_parts`] without joining them).
#[cfg(test)]
pub fn convert(text: &str, page: usize) -> String {
    let (head, body, _) = convert_parts(text, page).unwrap();
    head + &body
}

/// [`convert`]'s trace in its two parts, the head (what the import learned,
/// the quantum, the span) and the body (an operation or a comment a line),
/// to be written one after the other: the body is about 25 times the size
/// of a log of short lines, and joining the parts would copy it once more.
/// A trace that does not fit in memory is an error naming the strace line
/// where it stopped fitting. The third part is the number of calls taken
/// as operations.
fn convert_parts(text: &str, page: usize) -> Result<(String, String, usize), String> {
    let mut im = Importer::new(page);
    // Unfinished calls by pid: the text so far and its line.
    let mut pending: HashMap<String, (String, usize)> = HashMap::new();
    let mut pids = HashSet::new();
    for (n, raw) in text.lines().enumerate() {
        let (pid, body) = strip_prefix(raw);
        let body = body.trim_end();
        if body.starts_with("+++") {
            // The process is gone: a call of its still unfinished never
            // will be (and must not take another pid's resume).
            if let Some((_, started)) = pending.remove(pid) {
                let what =
                    format!("call started on line {started} never resumed (its process ended)");
                im.note(&what, n + 1);
            }
            continue;
        }
        if body.starts_with("---") || body.is_empty() {
            continue;
        }
        pids.insert(pid.to_string());
        let joined;
        let call_text = if let Some(head) = body.strip_suffix("<unfinished ...>") {
            let head = (head.trim_end().to_string(), n + 1);
            if let Some((_, started)) = pending.insert(pid.to_string(), head) {
                im.note(&format!("call started on line {started} never resumed"), n + 1);
            }
            continue;
        } else if let Some(rest) = body.strip_prefix("<...") {
            let Some((name, tail)) = rest.split_once("resumed>") else {
                im.note("not a system call strace line", n + 1);
                continue;
            };
            let Some((head, started)) = take_started(&mut pending, pid, name.trim()) else {
                im.note("a resumed call whose start is not in the trace", n + 1);
                continue;
            };
            im.split(started, n + 1);
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
    let mut never: Vec<usize> = pending.into_values().map(|(_, line)| line).collect();
    never.sort_unstable();
    for line in never {
        im.note("call never resumed (the trace ends first)", line);
    }
    let mut head = String::new();
    let _ = writeln!(
        head,
        "# imported by vmspace import-strace: {} calls as operations, {} lines skipped (see comments){}",
        im.used,
        im.skipped,
        match im.split {
            0 => String::new(),
            k => format!("; {k} calls split over two lines (their first lines in comments)"),
        }
    );
    // strace writing to standard error prefixes lines with `[pid N]` only
    // while it traces more than one process: unprefixed lines are one
    // more process when one pid alone is prefixed (another was traced
    // then), and may be one of the prefixed pids or not when there are
    // several.
    let prefixed = pids.iter().filter(|p| !p.is_empty()).count();
    let (n, at_least) = match (prefixed, pids.contains("")) {
        (0, _) => (1, ""),
        (1, true) => (2, ""),
        (p, true) => (p, "at least "),
        (p, false) => (p, ""),
    };
    if n > 1 {
        let _ = writeln!(
            head,
            "# {at_least}{n} pids merged into one address space: right for threads, which \
             share one; for processes (a fork, an exec) their mappings add up as if in one, \
             and what a process had mapped stays live after it exits (exit unmaps with no \
             munmap line). Trace one process (strace without -f) for a faithful replay."
        );
    }
    let (base, size) = span(page);
    let _ = writeln!(head, "quantum {page}\nadd {base:#x} {size:#x}");
    match im.out_of_memory {
        Some(line) => Err(format!("out of memory for the trace at strace line {line}")),
        None => Ok((head, im.out, im.used)),
    }
}

/// `vmspace import-strace`.
pub fn run(o: &ImportArgs) -> Result<(), String> {
    let bytes = crate::input::read(&o.file)?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body, used) = convert_parts(&text, o.page)?;
    if used == 0 {
        // Still a trace (its head, its span), but likely of the wrong file.
        eprintln!(
            "vmspace: warning: no mmap, munmap or mremap call of {} became an operation \
             (the trace's comments say why; is it `strace -e trace=mmap,munmap,mremap` output?)",
            crate::input::shown(&o.file)
        );
    }
    drop(text);
    drop(bytes);
    match &o.output {
        Some(path) => {
            let write = |mut f: std::fs::File| {
                std::io::Write::write_all(&mut f, head.as_bytes())?;
                std::io::Write::write_all(&mut f, body.as_bytes())
            };
            std::fs::File::create(path)
                .and_then(write)
                .map_err(|e| format!("writing {}: {e}", crate::input::shown(path)))
        }
        None => {
            crate::out::text(&head);
            crate::out::text(&body);
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
            // One munmap over both pieces left: one free of the whole.
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

    /// Every line becomes an operation or a comment: a resumed call whose
    /// start is not in the trace, a call started and never resumed (twice
    /// on one pid, or at the end), and a malformed resume each leave a
    /// comment and count as skipped.
    #[test]
    fn unmatched_starts_and_resumes_are_noted() {
        let text = "\
1 <... munmap resumed>) = 0
1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
1 <... mmap resumed>) = 0x7f0000000000
2 munmap(0x7f0000000000, 4096 <unfinished ...>
1 <... garbage
";
        let t = convert(text, 4096);
        let ops: Vec<String> =
            parse(&t).unwrap().ops.into_iter().map(|(_, op)| op.to_string()).collect();
        assert_eq!(ops, ["add 0x10000 0x7fffffff0000", "alloc m0 0x2000"], "{t}");
        for want in [
            "# strace line 1: a resumed call whose start is not in the trace",
            "# strace line 3: call started on line 2 never resumed",
            "# strace line 5: call never resumed (the trace ends first)",
            "# strace line 6: not a system call strace line",
            "1 calls as operations, 4 lines skipped",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    /// `mremap` with `MREMAP_DONTUNMAP` leaves the old mapping mapped: a
    /// new allocation, not a move.
    #[test]
    fn dontunmap_remaps_keep_the_old_mapping() {
        let text = "\
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mremap(0x7f0000000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_DONTUNMAP) = 0x7f0000100000
munmap(0x7f0000000000, 8192) = 0
munmap(0x7f0000100000, 8192) = 0
";
        let t = convert(text, 4096);
        let ops: Vec<String> =
            parse(&t).unwrap().ops.into_iter().map(|(_, op)| op.to_string()).collect();
        let want = [
            "add 0x10000 0x7fffffff0000",
            "alloc m0 0x2000",
            "alloc m1 0x2000",
            "free m0",
            "free m1",
        ];
        assert_eq!(ops, want, "{t}");
    }

    /// A mapping of no bytes is no call the kernel completes (it refuses
    /// one with EINVAL): a comment, not an allocation the replay refuses.
    #[test]
    fn a_zero_length_mmap_is_a_comment() {
        let text = "\
mmap(NULL, 0, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
";
        let t = convert(text, 4096);
        let ops: Vec<String> =
            parse(&t).unwrap().ops.into_iter().map(|(_, op)| op.to_string()).collect();
        assert_eq!(ops, ["add 0x10000 0x7fffffff0000", "alloc m0 0x1000"], "{t}");
        assert!(t.contains("# strace line 1: mmap of 0 bytes"), "{t}");
        assert!(t.contains(": 1 calls as operations, 1 lines skipped"), "{t}");
    }

    /// `strace -X raw` writes flags as numbers: `MAP_FIXED` (0x10) and
    /// `MREMAP_DONTUNMAP` (4) are read from them, and the trace is the
    /// one the flags' names give.
    #[test]
    fn raw_flags_import_as_named_flags_do() {
        let named = "\
mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mmap(0x7f0000000000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
mremap(0x7f0000000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_DONTUNMAP) = 0x7f0000100000
munmap(0x7f0000000000, 8192) = 0
munmap(0x7f0000100000, 8192) = 0
";
        let raw = "\
mmap(0, 0x2000, 0x3, 0x22, -1, 0) = 0x7f0000000000
mmap(0x7f0000000000, 0x1000, 0x1, 0x32, -1, 0) = 0x7f0000000000
mremap(0x7f0000000000, 0x2000, 0x2000, 0x5) = 0x7f0000100000
munmap(0x7f0000000000, 0x2000) = 0
munmap(0x7f0000100000, 0x2000) = 0
";
        let ops = |text: &str| -> Vec<String> {
            let t = convert(text, 4096);
            parse(&t).unwrap().ops.into_iter().map(|(_, op)| op.to_string()).collect()
        };
        let want = [
            "add 0x10000 0x7fffffff0000",
            "alloc m0 0x2000",
            "alloc m1 0x2000",
            "free m0",
            "free m1",
        ];
        assert_eq!(ops(named), want);
        assert_eq!(ops(raw), want);
        assert!(convert(raw, 4096).contains("MAP_FIXED inside live mappings"));
    }

    /// The "pids merged" comment counts what strace's prefixes can tell:
    /// one unprefixed process alone is no merge; unprefixed lines beside
    /// one prefixed pid are a second process (strace prefixes only while
    /// it traces several); beside several, they may be one of them.
    #[test]
    fn merged_pids_are_counted_as_far_as_the_prefixes_tell() {
        let mmap = "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000";
        let line = |pid: &str| match pid {
            "" => format!("{mmap}\n"),
            p => format!("[pid {p}] {mmap}\n"),
        };
        for (pids, want) in [
            (&["", ""][..], None),
            (&["", "7"][..], Some("# 2 pids merged")),
            (&["", "7", "8"][..], Some("# at least 2 pids merged")),
            (&["7", "8", "9"][..], Some("# 3 pids merged")),
            (&["7", "7"][..], None),
        ] {
            let text: String = pids.iter().map(|p| line(p)).collect();
            let t = convert(&text, 4096);
            match want {
                Some(w) => assert!(t.contains(w), "{pids:?}: {w:?} not in\n{t}"),
                None => assert!(!t.contains("pids merged"), "{pids:?}:\n{t}"),
            }
        }
    }

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(strip_prefix("[pid 7] 1.5 mmap(x) = 0").0, "7");
        assert_eq!(strip_prefix("42 12:00:01 munmap(a, b) = 0").1, "munmap(a, b) = 0");
        assert_eq!(strip_prefix("mmap(x) = 0"), ("", "mmap(x) = 0"));
    }
}
