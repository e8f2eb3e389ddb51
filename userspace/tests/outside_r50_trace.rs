//! The edges of `vmspace trace --live N` after the span change
//! (`churn_span`, `churn`, `churn_text`), with small live counts only.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use vmspace_user::trace::{churn, churn_span, churn_text, CHURN_MAX_LIVE};

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

/// The span is a power of two, at least 2^31, holds every live allocation
/// at 255 units, and never shrinks as `live` grows (a sweep of small
/// counts and the thresholds, computed only).
#[test]
fn the_span_is_monotonic_and_holds_the_worst_case() {
    let mut last = 0;
    let edges = [1usize << 23, (1 << 23) + 1, 1 << 24, (1 << 24) + 1, CHURN_MAX_LIVE];
    for live in (1..5000).chain(edges) {
        let span = churn_span(live).unwrap();
        assert!(span.is_power_of_two() && span >= 1 << 31, "{live}: {span:#x}");
        assert!(span >= live * 255, "{live}: {span:#x}");
        assert!(span >= last, "{live}: {span:#x} after {last:#x}");
        last = span;
    }
    // The span fits above the trace's base, 1 MiB, for every live count
    // `churn` accepts.
    let top = churn_span(CHURN_MAX_LIVE).unwrap();
    assert!(top.checked_add(0x10_0000).is_some());
}

/// Out-of-range live counts fail and write nothing.
#[test]
fn out_of_range_live_counts_write_nothing() {
    for live in [0, CHURN_MAX_LIVE + 1, usize::MAX] {
        let mut wrote = String::new();
        assert!(churn(live, 3, &mut |t| wrote.push_str(t)).is_err(), "{live}");
        assert!(wrote.is_empty(), "{live}: wrote {wrote:?}");
    }
}

/// A small churn trace: the span line, `live` initial allocations, then
/// `steps` free-then-alloc pairs, each freeing a live ID, sizes 1 to 255,
/// the live set always `live` strong.
#[test]
fn small_churn_traces_are_well_formed() {
    for (live, steps) in [(1, 0), (1, 7), (3, 20), (64, 200)] {
        let text = churn_text(live, steps).unwrap();
        assert!(text.contains("\nadd 0x100000 0x80000000\n"), "{text}");
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        let (mut allocs, mut frees) = (0, 0);
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w[0] {
                "add" => {}
                "alloc" => {
                    let size: usize = w[2].parse().unwrap();
                    assert!((1..=255).contains(&size), "{line}");
                    assert!(ids.insert(w[1].to_string(), size).is_none(), "{line}: ID reused");
                    allocs += 1;
                    assert!(ids.len() <= live, "{line}: more than {live} live");
                }
                "free" => {
                    assert!(ids.remove(w[1]).is_some(), "{line}: not live");
                    frees += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!((allocs, frees), (live + steps, steps), "{live} {steps}");
        assert_eq!(ids.len(), live);
    }
}

/// Small churn traces replay cleanly with `--check`, at the default
/// quantum and at 16 and 4096.
#[test]
fn small_churn_traces_replay_with_check() {
    let text = churn_text(7, 100).unwrap();
    for q in [None, Some("16"), Some("4096")] {
        let mut args = vec!["replay", "-", "--check"];
        if let Some(q) = q {
            args.extend(["--quantum", q]);
        }
        let out = vmspace(&args, &text);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{q:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("0 without space"), "{q:?}: {stdout}");
    }
    let out = vmspace(&["trace", "--live", "0"], "");
    assert!(!out.status.success());
    let out = vmspace(&["trace", "--live", "2", "--steps", "3"], "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), churn_text(2, 3).unwrap());
}
