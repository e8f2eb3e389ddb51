//! What the tests that run in a re-executed child share (a process-wide
//! setting such as `mlockall` or an rlimit, or a fork, must not touch the
//! other tests): re-executing this test binary to run one test alone with
//! an environment variable set, and what such a child does to itself
//! (dropping CAP_IPC_LOCK, setting a limit, reading /proc/self/status or
//! /proc/self/maps, with or without allocating). Also one test at a time
//! (`serial`) and ranges (`r`). Used by `outside_r26_mmap_children.rs`,
//! `outside_r27_mmap.rs`, `outside_r28_mmap_*.rs` (through
//! `outside_r28_mmap_common`), `outside_r29_mmap.rs` and `outside_r30_*.rs`
//! (through `outside_r30_common`).

#![allow(dead_code)] // each test file uses part of it

use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};

use vmspace_shim::{Addr, Range, Size};

/// Hold while a test runs: one test of this binary at a time (VMA counts
/// and residency see every mapping of the process).
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The range of `size` bytes at `base`.
pub fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

/// Re-execute this test binary to run the test `name` alone (`--exact`,
/// `--nocapture`, and with `one_thread` also `--test-threads=1`) with `var`
/// set to 1: the child's exit status, and its stdout followed by its
/// stderr.
pub fn run_in_child(name: &str, var: &str, one_thread: bool) -> (ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let mut args = vec!["--exact", name, "--nocapture"];
    if one_thread {
        args.push("--test-threads=1");
    }
    let out = Command::new(exe).args(args).env(var, "1").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// The lines of a child's output worth showing when it failed: those that
/// start with `tag` (what the child printed), panics and assertion sides.
pub fn report_lines<'t>(text: &'t str, tag: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|l| {
            l.starts_with(tag)
                || l.contains("panicked")
                || l.contains("left")
                || l.contains("right")
        })
        .collect()
}

/// Re-execute this binary to run `name` alone, single-threaded, with `var`
/// set; assert it passed, showing the child's `tag` lines if not.
pub fn in_child(name: &str, var: &str, tag: &str) {
    let (status, text) = run_in_child(name, var, true);
    let lines = report_lines(&text, tag);
    assert!(status.success() && text.contains("1 passed"), "{lines:#?}");
}

/// Re-execute this binary to run `name` alone, single-threaded, with `var`
/// set to `val`; print the child's lines that contain `tag`, and assert it
/// passed, showing its whole output if not.
pub fn in_child_echo(name: &str, var: &str, val: &str, tag: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, val)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| l.contains(tag)) {
        println!("{line}");
    }
    assert!(out.status.success() && text.contains("1 passed"), "child output:\n{text}");
}

/// Drop CAP_IPC_LOCK (bit 14) in this process, so RLIMIT_MEMLOCK applies.
pub fn drop_cap_ipc_lock() {
    #[repr(C)]
    struct Hdr {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        eff: u32,
        perm: u32,
        inh: u32,
    }
    let mut hdr = Hdr { version: 0x2008_0522, pid: 0 };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with valid, correctly sized structures.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut hdr, d.as_mut_ptr()), 0);
        d[0].eff &= !(1 << 14);
        d[0].perm &= !(1 << 14);
        let rc = libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr());
        assert_eq!(
            rc,
            0,
            "capset: {} hdr.version {:#x}",
            std::io::Error::last_os_error(),
            hdr.version
        );
    }
}

/// A field of /proc/self/status in bytes (`VmSize:`, `VmLck:`).
pub fn status_bytes(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: usize = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

/// `VmLck` of /proc/self/status, in pages.
pub fn vmlck_pages(page: usize) -> usize {
    status_bytes("VmLck:") / page
}

/// Set the soft limit `res` to `bytes`, at most the hard limit (which
/// this process may not raise).
pub fn set_limit(res: libc::__rlimit_resource_t, bytes: u64) {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls with a valid structure.
    unsafe {
        assert_eq!(libc::getrlimit(res, &mut rl), 0);
        rl.rlim_cur = bytes.min(rl.rlim_max);
        assert_eq!(libc::setrlimit(res, &rl), 0);
    }
}

/// The text of the file `path` read into `buf` without allocating (for a
/// caller under `mlockall(MCL_FUTURE)` and a tight RLIMIT_MEMLOCK, where a
/// heap mmap could fail).
pub fn read_noalloc<'b>(path: &std::ffi::CStr, buf: &'b mut [u8]) -> &'b str {
    // SAFETY: plain calls on our own buffer.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    let mut len = 0;
    loop {
        // SAFETY: reading into the rest of buf.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: ours.
    unsafe { libc::close(fd) };
    std::str::from_utf8(&buf[..len]).unwrap()
}

/// VMAs of /proc/self/maps overlapping `x`, read into `buf` without
/// allocating.
pub fn vmas_over_noalloc(x: Range, buf: &mut [u8]) -> usize {
    read_noalloc(c"/proc/self/maps", buf)
        .lines()
        .filter(|l| {
            let f = l.split(' ').next().unwrap();
            let (a, b) = f.split_once('-').unwrap();
            let (a, b) =
                (usize::from_str_radix(a, 16).unwrap(), usize::from_str_radix(b, 16).unwrap());
            a < x.limit().0 && b > x.base().0
        })
        .count()
}

/// `VmLck` of /proc/self/status in pages, read into `buf` without allocating.
pub fn vmlck_pages_noalloc(buf: &mut [u8], page: usize) -> usize {
    let text = read_noalloc(c"/proc/self/status", buf);
    let line = text.lines().find(|l| l.starts_with("VmLck:")).unwrap();
    let kb: usize = line[6..].trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024 / page
}
