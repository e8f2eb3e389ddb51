//! Outside review, round 64c: the `vmspace` program's new behaviour,
//! checked end to end. Five tests here were DEFECTS (fixed): an `mremap` to
//! 0 bytes became an allocation (twice: with and without
//! `MREMAP_DONTUNMAP`), import-strace's new warning printed the file name's
//! control characters, and usage errors left out clap's similar value and
//! any hint for an option of another command (clap gives none there; the
//! program now names the command: `vmspace replay --json`).

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
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for vmspace")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Allocation lines of an imported trace with size 0 (which the replay
/// refuses, and which no kernel call made).
fn zero_allocs(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3 && w[0] == "alloc" && w[2] == "0x0"
        })
        .map(str::to_string)
        .collect()
}

/// The round notes an `mmap` of 0 bytes instead of importing it as an
/// allocation the replay refuses. An `mremap` to 0 bytes (which the kernel
/// refuses with EINVAL, as it does such an `mmap`) still becomes one.
#[test]
fn an_mremap_to_zero_bytes_is_not_an_allocation() {
    let log = "\
mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
mremap(0x7f0000010000, 8192, 0, MREMAP_MAYMOVE) = 0x7f0000020000
";
    let out = vmspace(&["import-strace", "-"], log);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert_eq!(zero_allocs(&t), Vec::<String>::new(), "{t}");
    // And so the replay of the import reports a failure no call made.
    let r = vmspace(&["replay", "-"], &t);
    let rep = text(&r.stdout);
    assert!(!rep.contains("operations failed"), "{rep}");
}

/// The same through `MREMAP_DONTUNMAP` (its own branch).
#[test]
fn an_mremap_dontunmap_to_zero_bytes_is_not_an_allocation() {
    let log = "\
mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000010000
mremap(0x7f0000010000, 8192, 0, MREMAP_MAYMOVE|MREMAP_DONTUNMAP) = 0x7f0000020000
";
    let out = vmspace(&["import-strace", "-"], log);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert_eq!(zero_allocs(&t), Vec::<String>::new(), "{t}");
}

/// The new "no call became an operation" warning names the input file as
/// it is: a file name holding an escape sequence reaches the terminal,
/// the very thing the round stops trace names from doing.
#[test]
fn the_no_call_warning_does_not_print_control_characters() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("outside_r64c_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x\u{1b}]0;pwned\u{7}\u{1b}[2J.strace");
    std::fs::write(&file, "hello\n").unwrap();
    let out = vmspace(&["import-strace", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("warning: no mmap"), "{err}");
    assert!(!err.contains('\u{1b}'), "an escape sequence reached stderr: {err:?}");
}

/// Help and version that cannot be written: exit 1 (the round's claim).
#[test]
fn help_and_version_into_a_full_device_fail() {
    for flag in ["--help", "--version"] {
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
        let out = Command::new(env!("CARGO_BIN_EXE_vmspace"))
            .arg(flag)
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", text(&out.stderr));
    }
}

/// A long, control-holding name in the failure list is shown quoted and
/// cut (the round's claim).
#[test]
fn failure_list_names_are_shown_cut() {
    let name = format!("\u{1b}[31m{}", "n".repeat(5000));
    let trace = format!("add 0 0x100\nalloc {name} 0x1000\n");
    let out = vmspace(&["replay", "-"], &trace);
    let rep = text(&out.stdout);
    assert!(!rep.contains('\u{1b}') && rep.len() < 4000, "{rep:?}");
}

/// The round keeps "the option or command clap suggests" on the one line.
/// clap's other suggestions are still dropped: the similar value of an
/// option (`--policy bes`: "a similar value exists: 'best'") and the
/// subcommand's option given before the subcommand (`vmspace --json`:
/// "'replay --json' exists"); both lines read as if clap had no idea.
#[test]
fn usage_errors_keep_the_similar_value() {
    let out = vmspace(&["replay", "-", "--policy", "bes"], "");
    assert_eq!(out.status.code(), Some(2));
    let first = text(&out.stderr).lines().next().unwrap_or("").to_string();
    assert!(first.contains("'best'"), "no suggestion kept: {first}");
}

/// The second half of the above: `vmspace --json` (an option of `replay`).
#[test]
fn usage_errors_keep_the_subcommand_option_tip() {
    let out = vmspace(&["--json"], "");
    assert_eq!(out.status.code(), Some(2));
    let first = text(&out.stderr).lines().next().unwrap_or("").to_string();
    assert!(first.contains("replay --json"), "no suggestion kept: {first}");
}
