//! Helpers shared by the tests that call the C API from Rust (`mod common;`):
//! readers of an arena's statistics, a sendable arena pointer, a small
//! random generator, a thread held on one CPU, and the trees of arenas of
//! the wait tests (rounds 33 and 34).

// Each test binary uses some of these.
#![allow(dead_code)]

use core::ffi::c_int;

use vmspace_capi::ctypes::{
    vmem_t, vmspace_addr_t, vmspace_arena_t, vmspace_counters, vmspace_params, vmspace_size_t,
    vmspace_sizes, VMSPACE_WAIT,
};
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_timed, vmspace_arena_check, vmspace_arena_counters,
    vmspace_arena_create_ex, vmspace_arena_destroy, vmspace_arena_free, vmspace_arena_sizes,
    vmspace_arena_xalloc,
};
use vmspace_capi_user::vmspace_vmem_api::vmem_alloc;

/// The arena's counters (`vmspace_arena_counters`).
pub fn counters(a: *mut vmspace_arena_t) -> vmspace_counters {
    let mut c = vmspace_counters::default();
    // SAFETY: a live arena, a writable structure.
    assert_eq!(unsafe { vmspace_arena_counters(a, &mut c) }, 0);
    c
}

/// `vmem_alloc` as a `Result`: the address, or the (positive) errno.
pub fn valloc(vm: *mut vmem_t, size: usize, flags: c_int) -> Result<usize, c_int> {
    let mut a = 0;
    // SAFETY: a live arena (the caller's); `a` writable.
    match unsafe { vmem_alloc(vm, size, flags, &mut a) } {
        0 => Ok(a),
        e => Err(e),
    }
}

/// A vmem(9) arena's `check` passes (`vmspace_arena_check`).
pub fn vcheck(vm: *mut vmem_t) {
    // SAFETY: a live arena (the caller's).
    assert_eq!(unsafe { vmspace_arena_check(vm.cast()) }, 0);
}

/// The arena's sizes (`vmspace_arena_sizes`).
pub fn sizes(a: *mut vmspace_arena_t) -> vmspace_sizes {
    let mut s = vmspace_sizes::default();
    // SAFETY: a live arena, a writable structure.
    assert_eq!(unsafe { vmspace_arena_sizes(a, &mut s) }, 0);
    s
}

/// An arena pointer that may cross threads (the C API is thread-safe:
/// "Functions may be called from any thread, concurrently, on the same
/// arena").
#[derive(Clone, Copy)]
pub struct P(pub *mut vmspace_arena_t);
// SAFETY: the C API's arenas are used from any thread.
unsafe impl Send for P {}
// SAFETY: as above.
unsafe impl Sync for P {}

/// xorshift64.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The quantum of the wait tests' arenas.
pub const Q: usize = 4096;
/// `ETIMEDOUT`.
pub const ETIMEDOUT: c_int = 110;
/// The liveness bound of a waiting allocation.
pub const BOUND_NS: u64 = 20_000_000_000;

/// An arena of one span (none if `size` is 0) with quantum `Q`, caches up
/// to `qcache_max`, importing from `parent` (or none).
pub fn create(
    base: vmspace_addr_t,
    size: vmspace_size_t,
    qcache_max: vmspace_size_t,
    parent: *mut vmspace_arena_t,
) -> *mut vmspace_arena_t {
    let p = vmspace_params {
        name: c"r33-r34".as_ptr(),
        base,
        size,
        quantum: Q,
        qcache_max,
        flags: 0,
        reserved: 0,
        max_tags: 0,
        parent,
    };
    let mut a = core::ptr::null_mut();
    // SAFETY: valid parameters, a writable out pointer.
    assert_eq!(unsafe { vmspace_arena_create_ex(&p, &mut a) }, 0);
    assert!(!a.is_null());
    a
}

/// `size` units, or the error.
pub fn alloc(a: *mut vmspace_arena_t, size: vmspace_size_t) -> Result<vmspace_addr_t, c_int> {
    alloc_flags(a, size, 0)
}

/// `size` units with `flags` (`vmspace_arena_alloc`), or the (negative)
/// errno.
pub fn alloc_flags(
    a: *mut vmspace_arena_t,
    size: vmspace_size_t,
    flags: c_int,
) -> Result<vmspace_addr_t, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc(a, size, flags, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

/// `vmspace_arena_xalloc` without an exact address: the start, or the
/// (negative) errno.
#[allow(clippy::too_many_arguments)]
pub fn xalloc(
    a: *mut vmspace_arena_t,
    size: vmspace_size_t,
    align: vmspace_size_t,
    phase: vmspace_size_t,
    nocross: vmspace_size_t,
    min: vmspace_addr_t,
    max: vmspace_addr_t,
    flags: c_int,
) -> Result<vmspace_addr_t, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe {
        vmspace_arena_xalloc(a, size, align, phase, nocross, min, max, 0, flags, &mut x)
    } {
        0 => Ok(x),
        e => Err(e),
    }
}

/// `size` units, waiting at most `ns` nanoseconds, or the error.
pub fn timed(a: P, size: vmspace_size_t, ns: u64) -> Result<vmspace_addr_t, c_int> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc_timed(a.0, size, VMSPACE_WAIT, ns, &mut x) } {
        0 => Ok(x),
        e => Err(e),
    }
}

/// Free `[x, x + size)`, which must succeed.
pub fn free(a: *mut vmspace_arena_t, x: vmspace_addr_t, size: vmspace_size_t) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_free(a, x, size) }, 0);
}

/// Check the arena, then destroy it.
pub fn check_and_destroy(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena, destroyed once, not used after.
    unsafe {
        assert_eq!(vmspace_arena_check(a), 0);
        assert_eq!(vmspace_arena_destroy(a), 0);
    }
}

/// A parent with one span, all of it allocated, and a child with caches
/// for 1 to 4 quanta importing from it.
pub fn full_tree(
    span: vmspace_size_t,
) -> (*mut vmspace_arena_t, *mut vmspace_arena_t, vmspace_addr_t) {
    let parent = create(1 << 40, span, 0, core::ptr::null_mut());
    let all = alloc(parent, span).unwrap();
    let child = create(0, 0, 4 * Q, parent);
    (parent, child, all)
}

/// Run `f` on a thread held on one CPU (so every call uses that CPU's
/// slot; no other thread uses its arena).
pub fn on_one_cpu(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let cpus = vmspace_user::allowed_cpus().unwrap();
        vmspace_user::run_only_on(cpus[0]).unwrap();
        f();
    })
    .join()
    .unwrap();
}

/// Run the test whose path ends with `name` alone in a child process (this
/// binary, filtered to it, with `VMSPACE_TEST_CHILD=name`): true in the
/// child, which then runs the body; false in the parent, after checking
/// that the child ran exactly that test and passed. For tests that change
/// limits of the whole process (`vm.max_map_count` reached, rlimits).
pub fn in_child(name: &str) -> bool {
    if std::env::var("VMSPACE_TEST_CHILD").as_deref() == Ok(name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--nocapture", "--test-threads=1"])
        .env("VMSPACE_TEST_CHILD", name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child {name} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "child {name} ran nothing");
    false
}

/// `vm.max_map_count`, when a test can reach it (at most 2^20 mappings);
/// `None`, said on stderr, when it is too high to use up.
pub fn max_map_count() -> Option<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if max > 1 << 20 {
        eprintln!("vm.max_map_count {max}: too high to reach; skipped");
        return None;
    }
    Some(max)
}

/// Whether the byte at `addr` can be read, and whether it can be written
/// (the byte it holds written back), copied through a pipe so that a
/// forbidden access is `EFAULT`, not a fault.
pub fn access(addr: usize) -> (bool, bool) {
    let mut fd = [0; 2];
    let mut c = 0u8;
    let p = addr as *mut u8;
    // SAFETY: a writable array for the pipe; the kernel copies from and
    // into `p` or fails with EFAULT; `c` is ours.
    unsafe {
        assert_eq!(libc::pipe(fd.as_mut_ptr()), 0);
        let read = libc::write(fd[1], p.cast(), 1) == 1;
        if read {
            assert_eq!(libc::read(fd[0], (&mut c as *mut u8).cast(), 1), 1);
        } else {
            assert_eq!(*libc::__errno_location(), libc::EFAULT);
        }
        // What the page holds, or anything when it cannot be read (and so
        // cannot be written either: no write-only pages here).
        assert_eq!(libc::write(fd[1], (&c as *const u8).cast(), 1), 1);
        let written = libc::read(fd[0], p.cast(), 1) == 1;
        libc::close(fd[0]);
        libc::close(fd[1]);
        (read, written)
    }
}
