//! Written from the documentation by a reviewer outside the project, to
//! break the `vmspace` program: bad arguments and
//! malformed inputs end with a clear one-line error and a non-zero status
//! (README: "a usage error is one line and a hint on standard error with
//! exit code 2, a runtime error exits 1"), never a panic, hang or crash.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn vmspace(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut i = child.stdin.take().unwrap();
        let _ = i.write_all(stdin);
    }
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("vmspace {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch file in a directory of its own, removed with the directory
/// when the value drops (tests run in parallel, so no two share one).
struct Scratch {
    dir: std::path::PathBuf,
    file: String,
}

impl std::ops::Deref for Scratch {
    type Target = str;
    fn deref(&self) -> &str {
        &self.file
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tmp(name: &str, body: &[u8]) -> Scratch {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vmspace-outside-cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    Scratch { file: p.to_string_lossy().into_owned(), dir }
}

fn no_panic(what: &str, r: &(Option<i32>, String, String)) {
    assert!(r.0.is_some(), "{what}: killed by a signal");
    assert_ne!(r.0, Some(101), "{what}: exit 101 (panic): {}", r.2);
    assert!(!r.2.contains("panicked"), "{what}: panicked:\n{}", r.2);
}

fn usage_error(args: &[&str]) {
    let r = vmspace(args, b"");
    no_panic(&format!("{args:?}"), &r);
    assert_eq!(r.0, Some(2), "{args:?}: {}", r.2);
    assert!(r.2.starts_with("vmspace: "), "{args:?}: {}", r.2);
}

fn runtime_error(args: &[&str], stdin: &[u8]) {
    let r = vmspace(args, stdin);
    no_panic(&format!("{args:?}"), &r);
    assert_eq!(r.0, Some(1), "{args:?}: {}", r.2);
    assert!(r.2.starts_with("vmspace: ") && r.2.lines().count() == 1, "{args:?}: {}", r.2);
}

fn clean(args: &[&str], stdin: &[u8]) -> String {
    let r = vmspace(args, stdin);
    no_panic(&format!("{args:?}"), &r);
    assert_eq!(r.0, Some(0), "{args:?}: {}", r.2);
    r.1
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["--steps", "99999999999999999999999"][..],
        &["--steps", "-1"],
        &["--steps", ""],
        &["--steps", "0x"],
        &["--size-gib", "0"],
        &["--size-gib", "17179869184"],
        &["--size-gib", "18446744073709551616"],
        &["--seed", "-5"],
        &["--frobnicate"],
        &["frob"],
        &["replay"],
        &["replay", "a", "b"],
        &["replay", "x", "--quantum", "0"],
        &["replay", "x", "--quantum", "3"],
        &["replay", "x", "--quantum", "0x10000000"],
        &["replay", "x", "--policy", "worst"],
        &["replay", "x", "--span-limit", "0"],
        &["replay", "x", "--failures", "-1"],
        &["trace", "--live", "0"],
        &["trace", "--live", "2147483649"],
        &["trace", "--steps", "18446744073709551616"],
        &["import-strace", "x", "--page", "0"],
        &["import-strace", "x", "--page", "12288"],
        &["help", "frob"],
    ] {
        usage_error(args);
    }
}

#[test]
fn help_and_version() {
    assert!(clean(&["--help"], b"").contains("replay"));
    assert!(clean(&["help", "replay"], b"").contains("resize ID SIZE"));
    assert!(clean(&["replay", "--help"], b"").contains("--span-limit"));
    assert!(!clean(&["--version"], b"").is_empty());
}

#[test]
fn malformed_traces_are_runtime_errors() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for (name, body) in [
        ("garbage", garbage.as_slice()),
        ("trunc", b"add 0x1000 0x10000\nalloc a 16\nalloc b 0x".as_slice()),
        ("ovf", b"add 0x1000 0x10000\nalloc a 99999999999999999999999\n"),
        ("q0", b"quantum 0\n"),
        ("q3", b"quantum 3\n"),
        ("qhuge", b"quantum 0x8000000000000000\n"),
        ("lateq", b"add 0x1000 0x1000\nquantum 16\n"),
        ("extra", b"add 0x1000 0x1000 7\n"),
        ("unknown", b"munmap 1 2\n"),
        ("nul", b"add\0 1 2\n"),
        ("utf8", b"\xff\xfe\n"),
        ("dup", b"add 0x1000 0x10000\nalloc a 16\nalloc a 16\n"),
        ("underscore", b"alloc a _\n"),
    ] {
        let p = tmp(name, body);
        runtime_error(&["replay", &p], b"");
        runtime_error(&["replay", "-"], body);
        runtime_error(&["replay", &p, "--json", "--check"], b"");
    }
    runtime_error(&["replay", "/nonexistent/trace"], b"");
    runtime_error(&["replay", "/"], b"");
}

/// Operations the arena refuses (overflowing spans, offsets, sizes, bad
/// constraints) are reported failures, not crashes, under every option.
#[test]
fn refused_operations_are_reported() {
    let body = b"add 0xffffffffffffffff 0x10\nadd 0xfffffffffffff000 0x1000\nadd 0 0\n\
add 0x1000 0x10000\nadd 0x1000 0x10000\nalloc a 16\nfree a 0xffffffffffffffff 0x10\n\
free a 8 0xfffffffffffffff8\nresize a 0xffffffffffffffff\nresize a 0\nalloc z 0\n\
xalloc b 16 align=3\nxalloc c 16 align=0x8000000000000000 phase=0xffffffffffffffff\n\
xalloc d 16 min=0xffffffffffffffff max=0\nxalloc e 16 exact=0xfffffffffffffff8\n\
xalloc f 16 nocross=1\nxalloc g 0xffffffffffffffff top\nfree a\n";
    let p = tmp("refused", body);
    let svg = tmp("x.svg", b"");
    for opts in [
        &[][..],
        &["--check"],
        &["--json"],
        &["--compare"],
        &["--compare", "--json"],
        &["--svg", &svg],
        &["--span-limit", "1"],
        &["--span-limit", "18446744073709551615"],
        &["--failures", "0"],
        &["--policy", "next", "--check"],
        &["--quantum", "0x8000000"],
    ] {
        let mut args = vec!["replay", &*p];
        args.extend_from_slice(opts);
        let out = clean(&args, b"");
        assert!(!out.is_empty());
    }
    // The whole 64-bit range in one allocation, drawn.
    clean(
        &["replay", "-", "--svg", &svg],
        b"add 0 0xffffffffffffffff\nalloc a 0xffffffffffffffff\n",
    );
    clean(&["replay", "-"], b"");
}

/// A closed pipe or a full disk on standard output.
#[test]
fn output_errors() {
    let f = std::fs::OpenOptions::new().write(true).open("/dev/full");
    if let Ok(f) = f {
        let out = Command::new(env!("CARGO_BIN_EXE_vmspace"))
            .args(["trace", "--live", "10", "--steps", "10"])
            .stdout(f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

/// `import-strace` of strace lines whose mapping ends past the top of the
/// address space (malformed or hostile input): a skipped line with a
/// note, not a panic (debug) or a wrapped mapping (release), as it was.
#[test]
fn import_strace_mapping_past_the_top_does_not_panic() {
    for line in [
        "1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0xfffffffffffff000\n",
        "1 mmap(NULL, 0xffffffffffffffff, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1000\n",
        "1 mremap(0x1000, 4096, 8192, MREMAP_MAYMOVE) = 0xfffffffffffff000\n",
    ] {
        let p = tmp("top.strace", line.as_bytes());
        let r = vmspace(&["import-strace", &p], b"");
        no_panic(line, &r);
        assert_eq!(r.0, Some(0), "{line}: {}", r.2);
        assert!(r.1.contains("past the top of the address space skipped"), "{line}: {}", r.1);
        assert!(!r.1.contains("alloc m"), "{line}: {}", r.1);
        clean(&["replay", "-", "--check"], r.1.as_bytes());
    }
    // Nothing is left of the skipped mapping for a later unmap to cut.
    let p = tmp(
        "top2.strace",
        b"1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0xfffffffffffff000\n\
          1 munmap(0xfffffffffffff000, 4096) = 0\n",
    );
    let out = clean(&["import-strace", &p], b"");
    assert!(!out.contains("free m0"), "{out}");
}

/// Malformed strace text of other kinds converts without a panic, and the
/// result replays.
#[test]
fn import_strace_malformed_lines() {
    let garbage: Vec<u8> =
        (0..20000u32).map(|i| (i.wrapping_mul(2246822519) >> 11) as u8).collect();
    let weird = b"[pid\n<... resumed>\n<unfinished ...>\n()= \n(\n) = \nmmap() = 1\n\
1 mmap(NULL, 0, PROT_READ, MAP_PRIVATE, -1, 0) = 0x1000\n\
1 mmap(NULL, 0, PROT_READ, MAP_PRIVATE, -1, 0) = 0x1000\n\
1 munmap(0x1000, 4096) = 0\n1 mremap(0x1000, 4096, 0, 0) = 0x1000\n\
1 mremap(0x1000, 4096, 0xffffffffffffffff, MREMAP_MAYMOVE) = 0x2000\n";
    for body in [garbage.as_slice(), weird.as_slice(), b"".as_slice()] {
        let p = tmp("m.strace", body);
        let trace = clean(&["import-strace", &p], b"");
        clean(&["replay", "-", "--check"], trace.as_bytes());
    }
}
