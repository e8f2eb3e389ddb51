//! Round 19, an outside reviewer's end-to-end tests of the `vmspace`
//! program, written from README.md and `vmspace help ...`.
//!
//! Each test is marked `// DEFECT:` (failed when written, because of a
//! defect; fixed since, in the commit that added this file, so each now
//! guards its fix) or `// HOLDS:` (passed: a claim checked and found true).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod cli_run;

use cli_run::{ok, vmspace};

fn json(args: &[&str], stdin: &str) -> serde_json::Value {
    serde_json::from_str(&ok(args, stdin)).expect("valid JSON")
}

/// The trace's operation lines (comments and blanks dropped, a line's own
/// comment cut off, whitespace squeezed).
fn op_lines(trace: &str) -> Vec<String> {
    trace
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn traces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

// ---------------------------------------------------------------------------
// import-strace
// ---------------------------------------------------------------------------

// DEFECT: strace pads short calls so that their results line up
// (`munmap(0x7f97df0b8000, 33699)     = 0`: several spaces before `=`;
// every munmap of `strace -f -e trace=mmap,munmap,mremap ls` looks so).
// import-strace only accepts `) = ` or `)= ` and turns every such munmap
// into "# not a system call strace line": the mapping stays live for ever.
// Cause: userspace/src/cli/strace.rs:77 (parse_call).
#[test]
fn import_strace_reads_munmap_lines_strace_pads() {
    let strace = "\
11709 mmap(NULL, 33699, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f97df0b8000
11709 munmap(0x7f97df0b8000, 33699)     = 0
";
    let trace = ok(&["import-strace", "-"], strace);
    assert!(!trace.contains("not a system call"), "{trace}");
    assert_eq!(
        op_lines(&trace),
        ["quantum 4096", "add 0x10000 0x7fffffff0000", "alloc m0 0x9000", "free m0"],
        "{trace}"
    );
}

// DEFECT: the same on strace run for real, when it is installed: every
// munmap of `ls` is dropped.
#[test]
fn import_strace_of_a_real_strace_run_keeps_its_munmaps() {
    let dir = std::env::temp_dir().join(format!("vmspace-r19-strace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ls.strace");
    let st = Command::new("strace")
        .args(["-f", "-e", "trace=mmap,munmap,mremap", "-o"])
        .arg(&file)
        .args(["ls", "/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("strace is not installed or cannot trace here: skipped");
        return;
    }
    let raw = std::fs::read_to_string(&file).expect("strace output");
    let _ = std::fs::remove_dir_all(&dir);
    let munmaps =
        raw.lines().filter(|l| l.contains("munmap(") && l.trim_end().ends_with("= 0")).count();
    if munmaps == 0 {
        eprintln!("ls made no munmap here: skipped");
        return;
    }
    let trace = ok(&["import-strace", "-"], &raw);
    let dropped: Vec<&str> = trace.lines().filter(|l| l.contains("not a system call")).collect();
    assert!(dropped.is_empty(), "{} of {munmaps} munmaps dropped: {dropped:?}", dropped.len());
}

// DEFECT: the recorded CPython trace shipped in userspace/traces/ (the one
// README.md and userspace/traces/README.md tell users to replay) lost all
// 85 of its munmap calls to the same bug; addresses the kernel then reused
// show up instead as invented partial frees of the "still live" mappings
// (`free m1 0x2000 0x7000  # strace line 23` comes from an mmap).
#[test]
fn the_committed_python_trace_keeps_every_munmap() {
    let strace = std::fs::read_to_string(traces().join("python-churn.strace")).expect("read");
    let trace = std::fs::read_to_string(traces().join("python-churn.trace")).expect("read");
    let munmaps = strace.lines().filter(|l| l.contains(" munmap(")).count();
    let dropped = trace.lines().filter(|l| l.contains("not a system call strace line")).count();
    assert_eq!(dropped, 0, "{dropped} of the {munmaps} munmap lines were dropped");
}

// DEFECT: the header's counts. `MAP_FIXED` calls inside live mappings are
// counted both as "calls as operations" and as "lines skipped": for three
// calls it says 3 operations and 1 skipped, though only 2 operations were
// written. Cause: userspace/src/cli/strace.rs:172-175 (the note without
// `self.used -= 1`, which the other skip paths do).
#[test]
fn import_strace_counts_each_call_once() {
    let strace = "\
1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7f0000000000
1 mmap(0x7f0000001000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000) = 0x7f0000001000
1 munmap(0x7f0000000000, 16384) = 0
";
    let trace = ok(&["import-strace", "-"], strace);
    let ops = op_lines(&trace)
        .iter()
        .filter(|l| !l.starts_with("quantum") && !l.starts_with("add"))
        .count();
    assert_eq!(ops, 2, "{trace}");
    let head = trace.lines().next().expect("a header");
    assert!(
        head.contains(": 2 calls as operations, 1 lines skipped"),
        "3 calls: 2 written as operations, 1 skipped; the header says: {head}"
    );
}

// DEFECT: `--page` larger than the traced program's pages. Mappings keep
// their real (4 KiB-aligned) addresses but their lengths are rounded to the
// large page, so two adjacent 4 KiB mappings overlap in the importer's
// view: the second mmap is written as a partial unmap of the first
// (`free m0 0x1000 0x1ff000`), with an offset that is not whole pages,
// which the replay then refuses. Round 18 fixed only the span.
// Cause: userspace/src/cli/strace.rs:163-180 and 139 (addresses not
// rounded to the page, lengths rounded).
#[test]
fn import_strace_with_large_pages_keeps_adjacent_mappings_apart() {
    let strace = "\
1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000
1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000002000
1 munmap(0x7f0000001000, 4096) = 0
1 munmap(0x7f0000002000, 4096) = 0
";
    let trace = ok(&["import-strace", "-", "--page", "0x200000"], strace);
    let ops: Vec<String> = op_lines(&trace).into_iter().skip(2).collect();
    assert_eq!(
        ops,
        ["alloc m0 0x200000", "alloc m1 0x200000", "free m0", "free m1"],
        "two mappings, both live until their munmap:\n{trace}"
    );
    let out = ok(&["replay", "-"], &trace);
    assert!(out.contains("no operation failed"), "{out}");
}

// HOLDS: with 4 KiB pages the same calls import and replay cleanly.
#[test]
fn import_strace_with_small_pages_keeps_adjacent_mappings_apart() {
    let strace = "\
1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000
1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000002000
1 munmap(0x7f0000001000, 4096) = 0
1 munmap(0x7f0000002000, 4096) = 0
";
    let trace = ok(&["import-strace", "-"], strace);
    let ops: Vec<String> = op_lines(&trace).into_iter().skip(2).collect();
    assert_eq!(ops, ["alloc m0 0x1000", "alloc m1 0x1000", "free m0", "free m1"]);
    let out = ok(&["replay", "-", "--check"], &trace);
    assert!(out.contains("no operation failed"), "{out}");
}

// DEFECT: after a `resize` done in place, `free ID OFFSET SIZE` counts from
// the wrong base. When the head of a mapping was unmapped and the rest
// then grown in place by mremap, import-strace (rightly) counts later
// offsets from the mremap's address, and so does the replay when the
// resize moves; but when it grows in place the replay keeps the old,
// freed base, and the next partial free fails with "m0 holds nothing at
// offset 0x0". Cause: userspace/src/cli/replay/engine.rs:330-336 (the
// in-place branch of `resize` never sets `x.base = a`; the move branch
// sets `x.base = b.0`).
#[test]
fn offsets_after_an_in_place_resize_count_from_the_resized_piece() {
    let strace = "\
1 mmap(NULL, 12288, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000
1 munmap(0x7f0000000000, 4096) = 0
1 mremap(0x7f0000001000, 8192, 12288, MREMAP_MAYMOVE) = 0x7f0000001000
1 munmap(0x7f0000001000, 4096) = 0
1 munmap(0x7f0000002000, 8192) = 0
";
    let trace = ok(&["import-strace", "-"], strace);
    assert_eq!(
        op_lines(&trace).into_iter().skip(2).collect::<Vec<_>>(),
        [
            "alloc m0 0x3000",
            "free m0 0x0 0x1000",
            "resize m0 0x3000",
            "free m0 0x0 0x1000",
            "free m0"
        ],
        "{trace}"
    );
    let out = ok(&["replay", "-", "--check"], &trace);
    assert!(out.contains("resizes 1 in place"), "{out}");
    assert!(out.contains("no operation failed"), "{out}");
    assert!(out.contains("end: 0 B live"), "{out}");
}

// ---------------------------------------------------------------------------
// replay's report
// ---------------------------------------------------------------------------

// DEFECT: "holes: free bytes inside the extent (extent - live)"
// (`vmspace help replay`; README: "the holes in the extent"). With two
// spans far apart, both full, the report says 1020 KiB of holes though
// "free at the end: 0 B": the gap between spans, which belongs to no span
// and can never be allocated, is counted as free holes. JSON the same
// (`holes_bytes` 1044480 with `free_bytes` 0).
// Cause: userspace/src/cli/replay/report.rs:43 (extent - live).
#[test]
fn holes_are_free_bytes_not_addresses_outside_every_span() {
    let trace = "add 0 0x1000\nadd 0x100000 0x1000\nalloc a 0x1000\nalloc b 0x1000\n";
    let v = json(&["replay", "-", "--json"], trace);
    assert_eq!(v["free_bytes"], 0, "{v}");
    let holes = v["peak"]["holes_bytes"].as_u64().expect("holes");
    assert!(
        holes <= v["free_bytes"].as_u64().expect("free"),
        "holes {holes:#x} = free bytes inside the extent, but no byte is free"
    );
}

// DEFECT (minor): the JSON's `end.line` is documented as "Trace line of
// the operation just done" but is always 0; the end snapshot is taken with
// line 0. Cause: userspace/src/cli/replay/report.rs:135 (`r.moment(0)`).
#[test]
fn the_end_snapshot_names_the_last_line() {
    let v = json(&["replay", "-", "--json"], "add 0 0x100\nalloc a 0x10\n# end\n");
    assert_eq!(v["end"]["line"], 2, "{v}");
}

// HOLDS: peak, extent, live/extent, holes, fragmentation and histogram by
// hand on a tiny trace, text and JSON agreeing.
#[test]
fn a_tiny_trace_reports_the_numbers_worked_by_hand() {
    // Quantum 16, span [0x100, 0x200): a=0x100..0x120, b=0x120..0x130,
    // c=0x130..0x170; free b: peak 0x70 live in 3 at line 5; end: a and c,
    // extent 0x100..0x170 = 0x70, live 0x60, holes 0x10; free: 0x10 at
    // 0x120 and 0x90 at 0x170 = 0xa0, largest 0x90: fragmentation
    // 1000 * (1 - 0x90/0xa0) = 100.
    let trace = "quantum 16\nadd 0x100 0x100\nalloc a 0x20 first\nalloc b 0x10 first\n\
                 alloc c 0x40 first\nfree b\n";
    let v = json(&["replay", "-", "--json"], trace);
    assert_eq!(v["peak"]["live_bytes"], 0x70);
    assert_eq!(v["peak"]["line"], 5);
    assert_eq!(v["peak"]["segments"], 3);
    assert_eq!(v["peak"]["extent_bytes"], 0x70);
    assert_eq!(v["end"]["live_bytes"], 0x60);
    assert_eq!(v["end"]["extent_start"], 0x100);
    assert_eq!(v["end"]["extent_end"], 0x170);
    assert_eq!(v["end"]["holes_bytes"], 0x10);
    assert_eq!(v["free_bytes"], 0xa0);
    assert_eq!(v["largest_free"], 0x90);
    assert_eq!(v["fragmentation_per_mille"], 100);
    let bins: Vec<(u64, u64)> = v["free_histogram"]
        .as_array()
        .expect("bins")
        .iter()
        .map(|b| (b["from"].as_u64().unwrap(), b["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(bins, [(16, 1), (128, 1)]);
    let text = ok(&["replay", "-"], trace);
    assert!(text.contains("peak (line 5): 112 B live in 3 allocations"), "{text}");
    assert!(
        text.contains("extent [0x100, 0x170) = 112 B: live/extent 0.857, holes 16 B"),
        "{text}"
    );
    assert!(text.contains("fragmentation 100 per mille"), "{text}");
    assert!(text.contains("free segments by size: [16 B, 32 B): 1  [128 B, 256 B): 1"), "{text}");
}

// HOLDS: comments, blank lines, CRLF line endings, `_` in numbers and
// unicode IDs are read as documented.
#[test]
fn crlf_comments_blank_lines_and_unicode_ids() {
    let trace = "# a trace\r\nquantum 0x10\r\n\r\nadd 0x1_000 0x1_000 # span\r\n\
                 alloc é 0x10 best\r\nalloc 名前 16\r\nfree é\r\nresize 名前 0x20\r\n";
    let v = json(&["replay", "-", "--json", "--check"], trace);
    assert_eq!(v["quantum"], 16);
    assert_eq!(v["outcomes"]["allocs"], 2);
    assert_eq!(v["outcomes"]["frees"], 1);
    assert_eq!(v["outcomes"]["failed"], 0, "{v}");
    assert_eq!(v["end"]["live_bytes"], 0x20);
}

// HOLDS: --compare --json is an array of one report per policy, each
// carrying the span limit; --failures 0 lists none and counts them.
#[test]
fn compare_json_and_failures_zero() {
    let trace = "quantum 0x1000\nadd 0x100000 0x100000\nalloc a 0x2000\nalloc b 0x4000\nfree a\n";
    let v = json(&["replay", "-", "--compare", "--json", "--span-limit", "0x3000"], trace);
    let a = v.as_array().expect("an array");
    let policies: Vec<&str> = a.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(policies, ["instant", "best", "first", "next"]);
    for r in a {
        assert_eq!(r["span_limit"], 0x3000, "{r}");
        assert_eq!(r["total_bytes"], 0x3000);
        assert_eq!(r["outcomes"]["failed"], 1, "b does not fit in 12 KiB");
    }
    let out = ok(&["replay", "-", "--span-limit", "0x3000", "--failures", "0"], trace);
    assert!(out.contains("1 operations failed:"), "{out}");
    assert!(out.contains("... and 1 more"), "{out}");
    assert!(!out.contains("line 4:"), "{out}");
}

// HOLDS (round 18, item 8): the largest --size-gib the parser takes fails
// with a message naming the option; one more is a usage error.
#[test]
fn the_largest_demo_size_names_the_option() {
    let (code, _, err) = vmspace(&["--size-gib", "17179869183", "--steps", "1"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--size-gib 17179869183") && err.contains("smaller --size-gib"), "{err}");
    let (code, _, err) = vmspace(&["--size-gib", "17179869184"], "");
    assert_eq!(code, Some(2), "{err}");
}

// DEFECT (judgement: the help promises no more than "move it", but an
// allocation made under constraints is expected to keep them): a `resize`
// that has to move an `xalloc`ed allocation re-allocates it with its size
// and policy only, dropping `align`, `nocross`, `min`, `max`, ...: here `a`
// must end at or below 0x100 (`max=0x100`), and after the move it lies at
// 0x120..0x140. Cause: userspace/src/cli/replay/engine.rs:339 (the move's
// `Constraints::new(Size(size)).policy(x.policy)`; `Id` keeps only the
// policy).
#[test]
fn a_moved_xalloc_keeps_its_constraints() {
    let trace = "quantum 16\nadd 0 0x10000\nxalloc a 0x10 max=0x100 policy=first\n\
                 alloc b 0x10 first\nalloc c 0x100 first\nresize a 0x20\n";
    let v = json(&["replay", "-", "--json"], trace);
    // b at 0x10..0x20 and c at 0x20..0x120 stay; a, 0x20 bytes, has room
    // below 0x100 only at 0x0..0x10 (too small): the move must fail (a
    // failure listed) rather than break `max`.
    let end = v["end"]["extent_end"].as_u64().expect("an extent");
    assert!(end <= 0x120, "a moved past its max=0x100: extent now ends at {end:#x}");
}

// DEFECT (small): the hint of a refused `--span-limit` must name limits
// that are whole quanta. For 0xffffffffffffffff with quantum 16 it says
// "try 0xfffffffffffffff0 or 0xffffffffffffffff": the second is the very
// value just refused (the round-up saturates). It should offer only
// 0xfffffffffffffff0 (no larger multiple fits). Cause:
// userspace/src/cli/replay/mod.rs:109 (`down.saturating_add(quantum)`).
#[test]
fn the_span_limit_hint_names_only_whole_quanta() {
    let trace = "quantum 16\nadd 0 0x100\n";
    let (code, _, err) = vmspace(&["replay", "-", "--span-limit", "0xffffffffffffffff"], trace);
    assert_eq!(code, Some(1), "{err}");
    let hint = err.split("(try ").nth(1).expect("a hint");
    for word in hint.split([' ', ')']).filter(|w| w.starts_with("0x")) {
        let n = u64::from_str_radix(&word[2..], 16).expect("hex");
        assert_eq!(n % 16, 0, "the hint offers {word}, which is not whole quanta: {err}");
    }
}

// DEFECT (small): `replay --compare --check` says nothing of the checks in
// its text header, though a single replay's header says ", check() after
// each" and the JSON of the same run has `"checked": true`. Cause:
// userspace/src/cli/replay/compare.rs:32-37 (the header omits it).
#[test]
fn compare_text_says_when_check_ran() {
    let trace = "add 0 0x100\nalloc a 0x10\n";
    let single = ok(&["replay", "-", "--check"], trace);
    assert!(single.lines().next().unwrap().contains("check() after each"), "{single}");
    let v = json(&["replay", "-", "--check", "--compare", "--json"], trace);
    assert_eq!(v[0]["checked"], true);
    let table = ok(&["replay", "-", "--check", "--compare"], trace);
    assert!(table.lines().next().unwrap().contains("check() after each"), "{table}");
}

// DEFECT (undocumented limitation, judgement): `import-strace` takes
// `strace -f` output ("Accepts strace's pid prefixes (-f)", and
// record-strace.sh always passes -f) but merges every process into one
// address space and never frees what a process that exits had mapped
// (exit unmaps without a munmap call). `strace -f sh -c 'ls; ls; ls'`
// replays as three `ls` address spaces live at once (peak 11 MiB where no
// more than ~6 MiB ever existed together), and nothing in the trace or the
// help says so. Expected at least a warning comment when several pids
// appear (pids alone cannot tell threads, which share the address space,
// from processes). Cause: userspace/src/cli/strace.rs:219-262 (`convert`
// uses the pid only to pair <unfinished ...> lines).
#[test]
fn import_strace_warns_when_several_processes_are_merged() {
    let dir = std::env::temp_dir().join(format!("vmspace-r19-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("multi.strace");
    let st = Command::new("strace")
        .args(["-f", "-e", "trace=mmap,munmap,mremap", "-o"])
        .arg(&file)
        .args(["sh", "-c", "ls / >/dev/null; ls / >/dev/null; ls / >/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("strace is not installed or cannot trace here: skipped");
        return;
    }
    let raw = std::fs::read_to_string(&file).expect("strace output");
    let _ = std::fs::remove_dir_all(&dir);
    let pids: std::collections::HashSet<&str> =
        raw.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(pids.len() >= 4, "sh and three ls: {pids:?}");
    let trace = ok(&["import-strace", "-"], &raw);
    let warned = trace.lines().any(|l| l.starts_with('#') && l.contains("process"));
    assert!(warned, "{} pids merged into one address space without a word", pids.len());
}
