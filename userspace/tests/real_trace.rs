//! A real program's trace end to end: the `strace` output of CPython
//! churning buffers (`userspace/traces/python-churn.strace`), converted by
//! `vmspace import-strace` and replayed: peak, extent, fragmentation and
//! per-line failures in the text, valid JSON, an SVG written, `--compare`
//! with every policy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn traces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

fn vmspace(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vmspace")).args(args).output().expect("run vmspace");
    assert!(
        out.status.success(),
        "vmspace {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn trace() -> String {
    traces().join("python-churn.trace").to_str().expect("UTF-8 path").to_string()
}

#[test]
fn the_committed_trace_is_the_conversion_of_the_recording() {
    let strace = traces().join("python-churn.strace");
    let out = vmspace(&["import-strace", strace.to_str().expect("UTF-8 path")]);
    let committed = std::fs::read_to_string(trace()).expect("read the committed trace");
    assert_eq!(stdout(&out), committed, "re-run import-strace and commit the result");
    // It has every kind of operation a real trace needs.
    for op in ["\nalloc ", "\nfree m", "\nresize m", "MAP_FIXED inside live mappings"] {
        assert!(committed.contains(op), "{op:?}");
    }
    // Every strace line was understood: strace pads short calls before
    // their `=`, and an importer that missed it dropped 85 of the 85
    // munmaps, then read the kernel's reuse of their addresses as partial
    // unmaps (round 19).
    assert!(!committed.contains("not a system call"), "{committed}");
}

#[test]
fn replay_reports_peak_extent_fragmentation_and_failures() {
    let out = stdout(&vmspace(&["replay", &trace(), "--check"]));
    assert!(out.contains("(quantum 4096, policy trace, check() after each)"), "{out}");
    assert!(out.contains("peak (line ") && out.contains(" live in "), "{out}");
    assert!(out.contains("extent [0x10000, ") && out.contains("live/extent 0."), "{out}");
    assert!(out.contains("fragmentation ") && out.contains("1 - largest free / all free"), "{out}");
    assert!(out.contains("resizes ") && out.contains(" moved;"), "{out}");
    assert!(out.contains("no operation failed"), "{out}");
    // In 16 MiB of address space some mappings find no room: each is listed
    // with its line and reason.
    let out =
        stdout(&vmspace(&["replay", &trace(), "--span-limit", "0x1000000", "--failures", "2"]));
    let listed: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("line ")).collect();
    assert_eq!(listed.len(), 2, "{out}");
    for l in listed {
        let op = l.contains(": alloc m") || l.contains(": resize m");
        assert!(op && l.contains("no free segment"), "{l}");
    }
    assert!(out.contains("operations failed:") && out.contains("... and "), "{out}");
}

#[test]
fn json_svg_and_compare() {
    let dir = std::env::temp_dir().join(format!("vmspace-real-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let svg = dir.join("churn.svg");
    let out = vmspace(&["replay", &trace(), "--json", "--svg", svg.to_str().expect("path")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(v["peak"]["live_bytes"].as_u64().expect("peak") > 20 << 20, "{v}");
    assert!(v["peak"]["extent_bytes"].as_u64() >= v["peak"]["live_bytes"].as_u64());
    assert!(v["fragmentation_per_mille"].is_u64() && v["free_histogram"].is_array());
    assert_eq!(v["outcomes"]["failed"], 0);
    assert!(v["definitions"]["fragmentation"].as_str().expect("defined").contains("largest free"));
    let picture = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(picture.starts_with("<svg") && picture.contains("at peak (line "));
    assert!(picture.contains("at the end") && picture.contains("free segments by size"));
    std::fs::remove_dir_all(&dir).ok();

    let out = stdout(&vmspace(&["replay", &trace(), "--compare"]));
    let header = out.lines().nth(1).expect("the table's header");
    for p in ["instant", "best", "first", "next"] {
        assert!(header.contains(p), "{out}");
    }
    for row in ["peak live/extent", "fragmentation", "moved on resize", "peak extent"] {
        assert!(out.contains(row), "{out}");
    }
    let out = vmspace(&["replay", &trace(), "--compare", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(4));
}
