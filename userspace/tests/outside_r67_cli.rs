//! Round 67 (outside reviewer): `vmspace` run as a subprocess, its numbers
//! checked against values computed by hand, text against `--json`, exit
//! codes against README.md:48-50 ("a usage error is one line and a hint on
//! standard error with exit code 2, a runtime error exits 1"), and
//! `import-strace` on odd strace input (help.rs:60-99).

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// Run vmspace with `stdin` as standard input: exit code, stdout, stderr.
fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmspace");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().expect("exited, not killed by a signal");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (code, text(&out.stdout), text(&out.stderr))
}

fn ok(args: &[&str], stdin: &str) -> String {
    let (code, out, err) = run(args, stdin.as_bytes());
    assert_eq!(code, 0, "vmspace {args:?} failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn json(args: &[&str], stdin: &str) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a, stdin)).expect("valid JSON")
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
}

/// Free [0,3) and [4,10) of a 10-byte span: largest 6 of 9 free, so
/// 1000 * (1 - 6/9) = 333.3, rounded up 334 (help: "in per mille rounded
/// up"); histogram [2,4): 1 and [4,8): 1.
#[test]
fn fragmentation_and_histogram_of_a_hand_computed_arena() {
    let t = "add 0 10\nxalloc x 1 exact=3\n";
    let text = ok(&["replay", "-"], t);
    assert!(line_with(&text, "fragmentation").contains("fragmentation 334 per mille"), "{text}");
    assert!(line_with(&text, "free at the end").contains("9 B of 10 B in spans; largest free 6 B"));
    assert!(line_with(&text, "free segments by size").ends_with("[2 B, 4 B): 1  [4 B, 8 B): 1"));
    let j = json(&["replay", "-"], t);
    assert_eq!(j["fragmentation_per_mille"], 334);
    assert_eq!(j["free_bytes"], 9);
    assert_eq!(j["largest_free"], 6);
    assert_eq!(j["total_bytes"], 10);
    let bins: Vec<(u64, u64, u64)> = j["free_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (b["from"].as_u64().unwrap(), b["to"].as_u64().unwrap(), b["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(bins, [(2, 4, 1), (4, 8, 1)]);
}

/// Two spans [0,0x10) and [0x100,0x110), allocations [8,0xc) and
/// [0x104,0x108): extent [8,0x108) = 256 bytes, of which 16 lie inside
/// spans, so holes = 16 - 8 = 8 (help: "addresses between spans are no
/// holes"), live/extent = 8/256.
#[test]
fn holes_leave_out_addresses_between_spans() {
    let t = "add 0 0x10\nadd 0x100 0x10\nxalloc a 4 exact=0x8\nxalloc b 4 exact=0x104\n";
    let text = ok(&["replay", "-"], t);
    assert!(
        line_with(&text, "extent [")
            .contains("extent [0x8, 0x108) = 256 B: live/extent 0.031, holes 8 B"),
        "{text}"
    );
    let j = json(&["replay", "-"], t);
    for k in ["peak", "end"] {
        assert_eq!(j[k]["extent_start"], 8);
        assert_eq!(j[k]["extent_end"], 0x108);
        assert_eq!(j[k]["extent_bytes"], 256);
        assert_eq!(j[k]["holes_bytes"], 8);
        assert_eq!(j[k]["live_over_extent"], 0.03125);
        assert_eq!(j[k]["segments"], 2);
    }
}

/// A partial free splits `a` in two pieces that count as two allocations
/// (help: "an ID a partial free split into pieces counts once a piece");
/// `c` fills the hole under first fit; `b` grows in place.
const SPLIT: &str = "quantum 4096\nadd 0x10000 0x100000\nalloc a 0x3000\nalloc b 0x1000\n\
                     free a 0x1000 0x1000\nresize b 0x2000\nalloc c 0x1000\n";

#[test]
fn split_ids_count_once_a_piece_and_text_agrees_with_json() {
    let text = ok(&["replay", "-", "--policy", "first"], SPLIT);
    assert!(line_with(&text, "peak (line").contains("peak (line 7): 20 KiB live in 4 allocations"));
    assert!(line_with(&text, "most allocations").contains("4 (line 7)"));
    assert!(line_with(&text, "allocations 3 ok")
        .contains("partial frees 1; resizes 1 in place, 0 moved"));
    let j = json(&["replay", "-", "--policy", "first"], SPLIT);
    assert_eq!(j["peak"]["live_bytes"], 0x5000);
    assert_eq!(j["peak"]["segments"], 4);
    assert_eq!(j["peak_segments"], 4);
    assert_eq!(j["end"]["extent_start"], 0x10000);
    assert_eq!(j["end"]["extent_end"], 0x15000);
    assert_eq!(j["end"]["holes_bytes"], 0);
    assert_eq!(j["free_bytes"], 0x100000 - 0x5000);
    assert_eq!(j["outcomes"]["failed"], 0);
}

/// Under next fit `c` goes after the rotor, not into the hole: the extent
/// grows to 24 KiB with a 4 KiB hole. `--compare --json` and `--policy
/// next --json` must say the same.
#[test]
fn compare_json_agrees_with_a_single_policy_run() {
    let all = json(&["replay", "-", "--compare"], SPLIT);
    let all = all.as_array().expect("an array under --compare");
    assert_eq!(all.len(), 4);
    let next = all.iter().find(|r| r["policy"] == "next").expect("a next-fit report");
    let single = json(&["replay", "-", "--policy", "next"], SPLIT);
    for k in
        ["peak", "end", "outcomes", "largest_free", "fragmentation_per_mille", "free_histogram"]
    {
        assert_eq!(next[k], single[k], "{k}");
    }
    assert_eq!(single["end"]["extent_bytes"], 0x6000);
    assert_eq!(single["end"]["holes_bytes"], 0x1000);
    let table = ok(&["replay", "-", "--compare"], SPLIT);
    let holes = line_with(&table, "peak holes");
    assert!(holes.trim_end().ends_with("4 KiB"), "{holes}");
}

/// A resize that cannot grow in place moves; later offsets count from the
/// new place (help: "OFFSET counts from where ID was allocated or last
/// resized"). a [0,0x2000) moves to [0x3000,0x7000) past b; freeing its
/// last page leaves [0x2000,0x6000) live; free [0,0x2000)+[0x6000,0x10000):
/// largest 40 of 48 KiB, 1000/6 = 166.7 -> 167.
#[test]
fn a_moved_allocation_takes_offsets_from_its_new_place() {
    let t = "quantum 4096\nadd 0 0x10000\nalloc a 0x2000\nalloc b 0x1000\nresize a 0x4000\n\
             free a 0x3000 0x1000\n";
    let j = json(&["replay", "-", "--policy", "first"], t);
    assert_eq!(j["outcomes"]["moved"], 1);
    assert_eq!(j["outcomes"]["partial_frees"], 1);
    assert_eq!(j["peak"]["line"], 5);
    assert_eq!(j["peak"]["live_bytes"], 0x5000);
    assert_eq!(j["peak"]["extent_end"], 0x7000);
    assert_eq!(j["end"]["live_bytes"], 0x4000);
    assert_eq!(j["end"]["extent_start"], 0x2000);
    assert_eq!(j["end"]["extent_end"], 0x6000);
    assert_eq!(j["largest_free"], 0xa000);
    assert_eq!(j["free_bytes"], 0xc000);
    assert_eq!(j["fragmentation_per_mille"], 167);
}

/// u64::MAX sizes and addresses: refused or counted, never a panic, and
/// the report's numbers are the full 64-bit values.
#[test]
fn sizes_at_the_top_of_the_address_space() {
    let j = json(&["replay", "-"], "add 0 0xffffffffffffffff\nalloc a 0xffffffffffffffff\n");
    assert_eq!(j["peak"]["live_bytes"], u64::MAX);
    assert_eq!(j["end"]["extent_end"], u64::MAX);
    assert_eq!(j["free_bytes"], 0);
    // Rounding the size up to the quantum overflows: refused, listed.
    let t = "quantum 4096\nadd 0 0xfffffffffffff000\nalloc a 0xfffffffffffff001\nfree a\n";
    let j = json(&["replay", "-"], t);
    assert_eq!(j["outcomes"]["refused"], 1);
    assert_eq!(j["outcomes"]["skipped"], 1);
    assert_eq!(j["failures"][0]["line"], 3);
    // A span whose end is 2^64, a part free of u64::MAX bytes.
    let t = "add 0xffffffffffffffff 1\nadd 0 0x100\nalloc a 16\nfree a 8 0xffffffffffffffff\n\
             free a 0xffffffffffffffff 2\nresize a 0xffffffffffffffff\n";
    let j = json(&["replay", "-"], t);
    let lines: Vec<u64> =
        j["failures"].as_array().unwrap().iter().map(|f| f["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 4, 5, 6]);
    assert_eq!(j["outcomes"]["failed"], 4);
    assert_eq!(j["end"]["live_bytes"], 16);
    // The SVG of an arena spanning all of it.
    let dir = std::env::temp_dir().join(format!("r67-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("top.svg");
    let t = "add 0 0xffffffffffffffff\nxalloc a 1 exact=0xfffffffffffffffe\nxalloc b 1 exact=0\n";
    ok(&["replay", "-", "--svg", svg.to_str().unwrap()], t);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") || drawn.starts_with("<?xml"), "{drawn:.80}");
    assert!(!drawn.contains("NaN") && !drawn.contains("inf"), "{drawn}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exit codes (README.md:49-50): runtime errors 1, usage errors 2 with a
/// hint, an empty trace (/dev/null) a report of nothing.
#[test]
fn exit_codes_follow_the_readme() {
    let (code, out, _) = run(&["replay", "/dev/null"], b"");
    assert_eq!(code, 0);
    assert!(out.starts_with("replayed 0 operations"), "{out}");
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    for args in [vec!["replay", d], vec!["replay", "/nonexistent/r67"], vec!["import-strace", d]] {
        let (code, _, err) = run(&args, b"");
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // --svg into a directory: a runtime error, and nothing half-printed.
    let (code, _, err) = run(&["replay", "-", "--svg", d], b"add 0 16\nalloc a 1\n");
    assert_eq!(code, 1, "{err}");
    for args in [
        vec!["help", "nosuch"],
        vec!["replay", "-", "--compare", "--failures", "3"],
        vec!["replay", "-", "--quantum", "3"],
        vec!["replay", "-", "--quantum", "4096", "--span-limit", "0x1001"],
        vec!["replay", "-", "--failures=-1"],
        vec!["trace", "--live", "0"],
        vec!["import-strace", "-", "--page", "1000"],
    ] {
        let (code, _, err) = run(&args, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 2, "{args:?}: {err}");
        assert!(err.lines().nth(1).unwrap().starts_with("hint: "), "{err}");
    }
    // The trace's own quantum is known only once read: a runtime error.
    let (code, _, err) = run(&["replay", "-", "--span-limit", "0x1001"], b"quantum 4096\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a multiple of the quantum 0x1000"), "{err}");
}

/// strace lines: a call resumed across another pid's, a signal, a failed
/// resumed munmap (help: "Failed calls ... become comments"), CRLF endings
/// and a non-UTF-8 line.
#[test]
fn import_strace_odd_lines() {
    let st = "100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>\r\n\
              101 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000\r\n\
              100 <... mmap resumed>) = 0x7f0000000000\r\n\
              100 --- SIGSEGV {si_signo=SIGSEGV} ---\r\n\
              \u{1}\r\n\
              101 munmap(0x7f0000000000, 4096 <unfinished ...>\r\n\
              101 <... munmap resumed>) = -1 EINVAL (Invalid argument)\r\n";
    let mut bytes = st.as_bytes().to_vec();
    bytes.extend_from_slice(b"\xff\xfe not text\n");
    let (code, trace, err) = run(&["import-strace", "-"], &bytes);
    assert_eq!(code, 0, "{err}");
    let ops: Vec<&str> = trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        ops,
        ["quantum 4096", "add 0x10000 0x7fffffff0000", "alloc m0 0x2000", "alloc m1 0x1000"]
    );
    assert!(line_with(&trace, "alloc m1").contains("# strace line 3"), "{trace}");
    assert!(trace.contains("# strace line 1: a call resumed on line 3"), "{trace}");
    assert!(trace.contains("# strace line 7: failed munmap skipped"), "{trace}");
    let j = json(&["replay", "-"], &trace);
    assert_eq!(j["end"]["live_bytes"], 0x3000);
    assert_eq!(j["outcomes"]["failed"], 0);
}

/// mremap of the first page of a mapping an earlier munmap holed: not the
/// whole mapping, so its page is freed and the new size is a new mapping;
/// the replay ends with the last page of m0 and all of m1 live (12 KiB).
#[test]
fn import_strace_remap_of_part_of_a_holed_mapping() {
    let st = "mmap(NULL, 12288, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n\
              munmap(0x7f0000001000, 4096) = 0\n\
              mremap(0x7f0000000000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f0000100000\n\
              munmap(0x7f0000002000, 4096) = 0\n\
              munmap(0x7f0000002000, 4096) = 0\n";
    let trace = ok(&["import-strace", "-"], st);
    let ops: Vec<&str> = trace
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        ops[2..],
        [
            "alloc m0 0x3000",
            "free m0 0x1000 0x1000",
            "free m0 0x0 0x1000",
            "alloc m1 0x2000",
            "free m0"
        ]
    );
    assert!(trace.contains("# strace line 5: munmap of a range mapped before tracing"), "{trace}");
    let j = json(&["replay", "-", "--check"], &trace);
    assert_eq!(j["end"]["live_bytes"], 0x2000);
    assert_eq!(j["peak"]["live_bytes"], 0x3000);
    assert_eq!(j["outcomes"]["frees"], 1);
    assert_eq!(j["outcomes"]["partial_frees"], 2);
}

/// Round 67's two ID questions, now in `vmspace help replay`: every
/// operation on an ID whose allocation was refused is skipped, however
/// many, until the ID is allocated again; part frees of all an ID holds
/// free it, so it may be allocated again and a whole free of it stops the
/// replay as freed already.
#[test]
fn refused_ids_skip_every_operation_and_part_frees_end_an_id() {
    let t = "add 0 0x1000\nalloc a 0x2000\nfree a\nfree a\nresize a 0x10\nalloc a 0x10\nfree a\n";
    let j = json(&["replay", "-"], t);
    assert_eq!(j["outcomes"]["skipped"], 3, "{j}");
    let t = "add 0 0x1000\nalloc b 0x20\nfree b 0 0x10\nfree b 0x10 0x10\nalloc b 0x20\nfree b\n";
    let j = json(&["replay", "-"], t);
    assert_eq!(j["end"]["live_bytes"], 0, "{j}");
    assert_eq!(j["outcomes"]["partial_frees"], 2, "{j}");
    let t = "add 0 0x1000\nalloc b 0x20\nfree b 0 0x10\nfree b 0x10 0x10\nfree b\n";
    let (code, _, err) = run(&["replay", "-"], t.as_bytes());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 5") && err.contains("freed already"), "{err}");
}
