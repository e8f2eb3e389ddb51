//! Helpers shared by the round 30 tests: re-executing the test binary as a
//! child, limits, `/proc/self/status` fields, probing placements.
#![allow(dead_code)]

use std::process::Command;

/// Re-execute this binary to run `name` alone with `var` set to `val`;
/// assert it passed.
pub fn in_child(name: &str, var: &str, val: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, val)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| l.contains("r30:")) {
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
        assert_eq!(libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr()), 0);
    }
}

/// A field of /proc/self/status in bytes (`VmSize`, `VmLck`).
pub fn status_bytes(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: usize = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
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

/// Where an unpadded `size` lands now, and whether `size` bytes at the
/// aligned address at or below it are free (checked with
/// `MAP_FIXED_NOREPLACE`, given back at once).
pub fn below_is_free(size: usize, align: usize) -> (usize, bool) {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: fresh anonymous mappings, never replacing one
    // (NOREPLACE), given back at once.
    unsafe {
        let q = libc::mmap(std::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0);
        assert_ne!(q, libc::MAP_FAILED);
        libc::munmap(q, size);
        let at = q as usize & !(align - 1);
        let t = libc::mmap(
            at as *mut _,
            size,
            libc::PROT_NONE,
            flags | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        let free = t as usize == at;
        if t != libc::MAP_FAILED {
            libc::munmap(t, size);
        }
        (q as usize, free)
    }
}
