//! Outside review, round 47b: the demo (`vmspace`, `vmspace demo`), its
//! numbers checked against each other and against what README.md:19-21
//! says it does ("reserve a 64 GiB VM, map, touch and unmap pieces of it,
//! run a seeded workload checked against a model, and print
//! reserved/mapped/resident and VMAs"), and its options.
//!
//! All tests here held.

mod cli_run;

use cli_run::{ok, vmspace};

/// The mapped column of the VM report line whose label starts `label`.
fn column(out: &str, label: &str, col: &str) -> String {
    let line = out.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| {
        panic!("no line {label:?} in\n{out}");
    });
    let rest = &line[line.find(col).unwrap_or_else(|| panic!("{col} in {line}")) + col.len()..];
    let w: Vec<&str> = rest.split_whitespace().take(2).collect();
    w.join(" ")
}

#[test]
fn default_demo_numbers_hold_together() {
    let out = ok(&[], "");
    // The default is the demo: same seed, same workload (addresses differ
    // from run to run, and with them the arena's search steps).
    let wl = |s: &str| s.lines().find(|l| l.contains("workload:")).unwrap().to_string();
    assert_eq!(wl(&out), wl(&ok(&["demo"], "")));
    assert!(out.contains("VM ["), "{out}");
    for l in ["reserve", "map+touch 16 MiB", "map+touch 4 MiB", "map+touch 1 MiB"] {
        assert_eq!(column(&out, l, "reserved"), "64.00 GiB", "{l}");
    }
    assert_eq!(column(&out, "reserve ", "mapped"), "0 B");
    assert_eq!(column(&out, "map+touch 16 MiB", "mapped"), "16 MiB");
    assert_eq!(column(&out, "map+touch 4 MiB", "mapped"), "20 MiB");
    assert_eq!(column(&out, "map+touch 1 MiB", "mapped"), "21 MiB");
    assert_eq!(column(&out, "unmap 8 MiB", "mapped"), "13 MiB");
    assert_eq!(column(&out, "unmap everything", "mapped"), "0 B");
    assert!(out.contains("map again (refused as it should be)"), "{out}");
    // The workload's outcomes add up to its steps.
    let w = out.lines().find(|l| l.contains("workload:")).unwrap();
    let nums: Vec<u64> = w.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(nums[0] + nums[1], 20000, "{w}");
    assert!(out.contains("20000 seeded map/unmap operations"), "{out}");
    // Trim gives back table pages: the metadata shrinks by that many pages.
    let trim = out.lines().find(|l| l.contains("trim (")).unwrap();
    let k: u64 =
        trim.split("trim (").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let before = column(&out, "20000 seeded", "metadata");
    let after = column(&out, "trim (", "metadata");
    let kib = |s: &str| s.trim_end_matches(" KiB").parse::<u64>().unwrap();
    assert_eq!(kib(&before) - kib(&after), 4 * k, "{before} {after} {k}");
    // The arena part: 2000 allocations, every other one freed, counters.
    assert!(out.contains("counters: 2002 allocs, 2002 frees, 2 bad frees"), "{out}");
    assert!(
        out.contains("all freed                          allocated        0 B  free      1 GiB")
    );
    let hist = out.lines().find(|l| l.contains("free segments by size:")).unwrap();
    let total: u64 = hist
        .split("): ")
        .skip(1)
        .map(|p| p.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 1000, "1000 holes: {hist}");
}

#[test]
fn demo_options_are_used() {
    let a = ok(&["--size-gib", "1", "--steps", "100", "--seed", "7"], "");
    assert!(a.contains("reserved  1.00 GiB") || a.contains("reserved     1 GiB"), "{a}");
    assert!(a.contains("100 seeded map/unmap operations"), "{a}");
    let w = a.lines().find(|l| l.contains("workload:")).unwrap();
    let nums: Vec<u64> = w.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert_eq!(nums[0] + nums[1], 100, "{w}");
    let b = ok(&["demo", "--size-gib", "1", "--steps", "100", "--seed", "8"], "");
    let wl = |s: &str| s.lines().find(|l| l.contains("workload:")).unwrap().to_string();
    assert_ne!(wl(&a), wl(&b), "--seed changes the workload");
    let c = ok(&["demo", "--size-gib=1", "--steps=0x64", "--seed=7"], "");
    assert_eq!(wl(&a), wl(&c), "same seed, same workload");
}

#[test]
fn demo_svg_draws_the_arena() {
    let path = std::env::temp_dir().join(format!("r47b-demo-{}.svg", std::process::id()));
    let p = path.to_str().unwrap();
    let out = ok(&["--steps", "10", "--svg", p], "");
    assert!(out.contains(&format!("picture: {p}")), "{out}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.contains("allocated: 2000") && svg.contains("allocated: 1000"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn too_large_a_vm_is_a_runtime_error() {
    let (code, _, err) = vmspace(&["--size-gib", "17179869183", "--steps", "10"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a smaller --size-gib fits"), "{err}");
    let (code, _, err) = vmspace(&["--size-gib", "1048576", "--steps", "10"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
