//! The `vmspace` program's trace commands, end to end: `vmspace trace`
//! piped into `vmspace replay - --check`, the exit codes of mistakes, the
//! conventions of the command line (help, version, one-line usage errors),
//! and the defects of issue 12 item 7.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn vmspace(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmspace");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write the trace");
    child.wait_with_output().expect("wait for vmspace")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_generated_churn_trace_replays_with_check() {
    let trace = vmspace(&["trace", "--live", "50", "--steps", "500"], "");
    assert!(trace.status.success(), "{}", text(&trace.stderr));
    let out = vmspace(&["replay", "-", "--check"], &text(&trace.stdout));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("replayed 1051 operations"), "{stdout}");
    assert!(
        stdout.contains("allocations 550 ok, 0 without space, 0 refused; frees 500,"),
        "{stdout}"
    );
    assert!(stdout.contains("end: ") && stdout.contains(" in 50 allocations"), "{stdout}");
}

#[test]
fn constrained_allocations_and_failures_are_reported() {
    let trace = "add 0x1000 0x1000\nxalloc a 100 align=256 nocross=512 policy=best\n\
                 alloc b 0x2000\nfree b\nxalloc c 16 exact=0x1800 top\nfree a\nfree c\n";
    let out = vmspace(&["replay", "-", "--quantum", "16", "--check"], trace);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("allocations 2 ok, 1 without space, 0 refused; frees 2,"), "{stdout}");
    assert!(stdout.contains("1 skipped"), "{stdout}");
    assert!(stdout.contains("line 3: alloc b 0x2000: no free segment"), "{stdout}");
    assert!(stdout.contains("end: 0 B live in 0 allocations"), "{stdout}");
}

#[test]
fn mistakes_exit_non_zero_with_the_line() {
    let out = vmspace(&["replay", "-"], "add 0 4096\nalloc a 10\nfree nobody\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 3: id nobody is not live (never allocated"));
    // A double free is not "never allocated".
    let out = vmspace(&["replay", "-"], "add 0 4096\nalloc a 10\nfree a\nfree a\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 4: id a is not live (never allocated, or freed"));
    // A very long token is cut in the one-line error.
    let long = format!("add 0 4096\nalloc a {}\n", "9".repeat(100_000));
    let out = vmspace(&["replay", "-"], &long);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.len() < 200 && err.contains("(100000 bytes) is too large"), "{err}");
    let out = vmspace(&["replay", "-"], "add 0 4096\nalloc a ten\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 2"));
    let out = vmspace(&["replay"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = vmspace(&["trace", "--live"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// A usage error: exit 2, nothing on standard output, one line and a hint
/// on standard error.
fn usage_error(args: &[&str], what: &str) {
    let out = vmspace(args, "");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{args:?}: {err}");
    assert!(lines[0].starts_with("vmspace: ") && lines[0].contains(what), "{args:?}: {err}");
    assert!(lines[1].starts_with("hint: "), "{args:?}: {err}");
}

#[test]
fn usage_errors_are_one_line_and_a_hint() {
    usage_error(&["replay"], "<FILE>");
    usage_error(&["trace", "--live"], "--live");
    usage_error(&["trace", "--live", "0"], "must be 1 to 2147483648");
    // Not a panic on the capacity (it was exit 101).
    usage_error(&["trace", "--live", "18446744073709551615"], "must be 1 to 2147483648");
    usage_error(&["trace", "--live", "2147483649"], "must be 1 to 2147483648");
    usage_error(&["--size-gib", "17179869184"], "out of range");
    usage_error(&["--size-gib", "17179869185"], "out of range");
    usage_error(&["--size-gib", "0"], "out of range");
    usage_error(&["--seed=x"], "not a number");
    usage_error(&["replay", "-", "--quantum", "24"], "not a power of two");
    usage_error(&["replay", "-", "--policy", "fastest"], "fastest");
    usage_error(&["replay", "-", "--compare", "--policy", "best"], "--policy");
    usage_error(&["replay", "-", "--compare", "--svg", "x.svg"], "--svg");
    usage_error(&["frobnicate"], "frobnicate");
    usage_error(&["--nonsense"], "--nonsense");
}

#[test]
fn help_and_version_go_to_standard_output() {
    for args in [&["--help"][..], &["help"], &["help", "replay"], &["replay", "--help"], &["-V"]] {
        let out = vmspace(args, "");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    let out = text(&vmspace(&["--version"], "").stdout);
    assert_eq!(out.trim(), concat!("vmspace ", env!("CARGO_PKG_VERSION")));
    let out = text(&vmspace(&["help", "replay"], "").stdout);
    assert!(out.contains("resize ID SIZE") && out.contains("--compare"), "{out}");
    let out = text(&vmspace(&["help", "import-strace"], "").stdout);
    assert!(out.contains("strace -f -e trace=mmap,munmap,mremap"), "{out}");
}

#[test]
fn options_take_equals_and_hex() {
    let trace = vmspace(&["trace", "--live=0x10", "--steps=0x20"], "");
    assert!(trace.status.success(), "{}", text(&trace.stderr));
    let out = vmspace(&["replay", "-", "--quantum=0x10", "--check"], &text(&trace.stdout));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("replayed 81 operations from - (quantum 16"));
}

/// Issue 12.7: a free segment in the top size class panicked a debug build
/// (`1 << 64` in the histogram label) and printed `[8192 PiB, 1 B)` in release.
#[test]
fn a_top_size_class_segment_is_labelled() {
    let out = vmspace(&["replay", "-"], "add 0 0xffffffffffffffff\n");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("free segments by size: [8 EiB, 16 EiB): 1"), "{stdout}");
}

/// Issue 12.7: `vmspace trace | head` panicked on the broken pipe (exit 101).
#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(["trace", "--live", "100000", "--steps", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmspace");
    let mut first = [0u8; 64];
    std::io::Read::read_exact(child.stdout.as_mut().expect("stdout"), &mut first).expect("read");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for vmspace");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// Issue 12.7: a trace that is not UTF-8 gave no line number.
#[test]
fn a_non_utf8_trace_names_its_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmspace");
    child.stdin.take().expect("stdin").write_all(b"add 0 16\nalloc a \xff\n").expect("write");
    let out = child.wait_with_output().expect("wait for vmspace");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("trace line 2: not UTF-8"), "{}", text(&out.stderr));
}

/// Issue 12.7: `--quantum 0x10` was refused although trace numbers take hex;
/// `--size-gib` wrapped (2^34 to 0, 2^34 + 1 to 1 GiB): see
/// `usage_errors_are_one_line_and_a_hint` for the refusals.
#[test]
fn quantum_takes_hex() {
    let out = vmspace(&["replay", "-", "--quantum", "0x10"], "add 0 0x100\nalloc a 1\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(quantum 16,"), "{}", text(&out.stdout));
}

#[test]
fn the_demo_draws_its_arena() {
    let svg = std::env::temp_dir().join(format!("vmspace-demo-{}.svg", std::process::id()));
    let out =
        vmspace(&["demo", "--size-gib", "1", "--steps", "100", "--svg", svg.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let picture = std::fs::read_to_string(&svg).expect("the demo wrote its picture");
    std::fs::remove_file(&svg).ok();
    assert!(
        picture.contains("after 2000 allocations") && picture.contains("free segments by size")
    );
}

/// Round 18: a failed operation is listed as the line that asked for it,
/// constraints and all, numbers in hex (a failed `xalloc` was listed as a
/// bare `alloc`, its hex size in decimal).
#[test]
fn a_failed_xalloc_is_listed_with_its_constraints() {
    let trace = "add 0x1000 0x1000\nxalloc a 0x100 align=0x800 nocross=0x1000 min=0x1900 \
                 policy=best top\nresize a 0x10000\n";
    let out = vmspace(&["replay", "-", "--quantum", "16"], trace);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    let want = "line 2: xalloc a 0x100 align=0x800 nocross=0x1000 min=0x1900 policy=best top: ";
    assert!(stdout.contains(want), "{stdout}");
    let out = vmspace(&["replay", "-", "--json"], "add 0 0x10\nalloc a 0x20 first\n");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["failures"][0]["op"], "alloc a 0x20 first", "{v}");
}

/// Round 18: `--span-limit` must show in the report (text, JSON, compare),
/// and a limit that is not whole quanta is refused: clipping a span to it
/// made the span unaddable, so a trace that fits was reported as not
/// fitting.
#[test]
fn the_span_limit_is_reported_and_must_be_whole_quanta() {
    let trace = "quantum 0x1000\nadd 0x100000 0x100000\nalloc a 0x2000\nfree a\n";
    let out = vmspace(&["replay", "-", "--span-limit", "0x3000"], trace);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("spans clipped to 12 KiB (0x3000)"), "{stdout}");
    assert!(stdout.contains("no operation failed"), "{stdout}");
    let out = vmspace(&["replay", "-", "--span-limit", "0x3000", "--json"], trace);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["span_limit"], 0x3000, "{v}");
    assert_eq!(v["total_bytes"], 0x3000, "{v}");
    let out = vmspace(&["replay", "-", "--json"], trace);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["span_limit"].is_null(), "{v}");
    let out = vmspace(&["replay", "-", "--span-limit", "0x3000", "--compare"], trace);
    assert!(text(&out.stdout).contains("spans clipped to 12 KiB"), "{}", text(&out.stdout));
    // 0x2800 is not whole pages of 4 KiB: refused, with the limits near it.
    for limit in ["0x2800", "0x800"] {
        let out = vmspace(&["replay", "-", "--span-limit", limit], trace);
        assert_eq!(out.status.code(), Some(1), "{limit}");
        let err = text(&out.stderr);
        assert!(err.contains("not a multiple of the quantum 0x1000"), "{err}");
        assert!(out.stdout.is_empty(), "{limit}");
    }
    let err = text(&vmspace(&["replay", "-", "--span-limit", "0x2800"], trace).stderr);
    assert!(err.contains("try 0x2000 or 0x3000"), "{err}");
    // With `--quantum` overriding the trace's, the override counts.
    let out = vmspace(&["replay", "-", "--span-limit", "0x2800", "--quantum", "0x800"], trace);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Round 18: with pages over 64 KiB the imported span started at 64 KiB,
/// not a multiple of the page, and every replayed operation failed.
#[test]
fn strace_imports_with_large_pages_replay() {
    let strace =
        "1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n\
                  1 munmap(0x7f0000000000, 8192) = 0\n";
    for page in ["0x10000", "0x20000", "0x200000", "0x8000000"] {
        let imported = vmspace(&["import-strace", "-", "--page", page], strace);
        assert!(imported.status.success(), "{}", text(&imported.stderr));
        let out = vmspace(&["replay", "-", "--check"], &text(&imported.stdout));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{page}: {}{}", stdout, text(&out.stderr));
        assert!(stdout.contains("allocations 1 ok") && stdout.contains("no operation failed"));
    }
}

/// Round 18: a demo VM too large for 64-bit arithmetic once rounded to its
/// grain says which option to change.
#[test]
fn a_demo_vm_too_large_names_the_option() {
    let out = vmspace(&["--size-gib", "17179869183"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("--size-gib 17179869183") && err.contains("smaller --size-gib"), "{err}");
}

/// A usage error keeps, on its one line, what clap says below its first:
/// the values an option takes and the option or command meant.
#[test]
fn usage_errors_keep_the_values_and_the_suggestion() {
    let out = vmspace(&["replay", "-", "--policy", "worst"], "");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains("'worst'") && first.contains("(one of: instant, best, first, next)"));
    let out = vmspace(&["replay", "-", "--polcy", "best"], "");
    let first = text(&out.stderr).lines().next().unwrap_or("").to_string();
    assert!(first.ends_with("(did you mean '--policy'?)"), "{first}");
    let out = vmspace(&["replya"], "");
    let first = text(&out.stderr).lines().next().unwrap_or("").to_string();
    assert!(first.contains("(did you mean 'replay'?)"), "{first}");
    assert_eq!(text(&out.stderr).lines().count(), 2, "one line and a hint");
}

/// `import-strace` of something with no call in it (another file given by
/// mistake) still writes a trace, and warns.
#[test]
fn an_import_of_no_call_warns() {
    let out = vmspace(&["import-strace", "-"], "add 0 0x1000\nalloc a 0x10\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("0 calls as operations, 2 lines skipped"));
    assert!(text(&out.stderr).starts_with("vmspace: warning: no mmap, munmap or mremap call"));
    let mmap = "mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000\n";
    let out = vmspace(&["import-strace", "-"], mmap);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", text(&out.stderr));
}
