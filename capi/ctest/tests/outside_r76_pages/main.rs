//! Written by a reviewer outside the project (round 76), from the header:
//! `vmspace_arena_set_vm` and `vmspace_arena_vm_info` in
//! `capi/include/vmspace.h` ("An arena whose spans are pages") and what
//! the header says of imports, replacements, limits, parents, quantum
//! caches, deferred frees, handles, destroy and waits, over an arena of
//! pages. Every allocation's memory is probed without faulting (written to
//! a pipe and read back from it: `EFAULT` rather than `SIGSEGV` for a page
//! that is not mapped read-write), so a defect fails a test instead of
//! killing the binary. Leaks of mappings and the release of a destroyed
//! arena's VM are checked in a child process (this binary, filtered to one
//! test), where nothing else maps or unmaps meanwhile.

#[path = "../common/mod.rs"]
mod common;
mod lifecycle;
mod mapping;
mod threads;

use common::{alloc_flags as alloc, counters, in_child, sizes, xalloc, Rng, P};
use core::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::*;
use vmspace_capi_user::vmspace_vmem_api::*;

const ENOENT: c_int = 2;
const EBADF: c_int = 9;
const ENOMEM: c_int = 12;
const EFAULT: c_int = 14;
const EBUSY: c_int = 16;
const EINVAL: c_int = 22;
const EOVERFLOW: c_int = 75;

/// The few libc calls used (no libc crate among the dev-dependencies).
mod libc {
    use core::ffi::{c_int, c_long, c_void};
    pub const SC_PAGESIZE: c_int = 30;
    extern "C" {
        pub fn sysconf(name: c_int) -> c_long;
        pub fn pipe(fds: *mut c_int) -> c_int;
        pub fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
        pub fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
        pub fn close(fd: c_int) -> c_int;
        pub fn __errno_location() -> *mut c_int;
    }
}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::SC_PAGESIZE) as usize }
}

/// Whether `[addr, addr + len)` is mapped readable and writable, found
/// without touching it from user space: each chunk is written to a pipe
/// (the kernel reads it: `EFAULT` if unreadable) and read back into place
/// (the kernel writes it: `EFAULT` if unwritable), so contents are kept.
fn accessible(addr: usize, len: usize) -> bool {
    let mut fds = [0 as c_int; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut ok = true;
    let mut at = addr;
    let end = addr + len;
    while at < end {
        let n = (end - at).min(4096);
        // SAFETY: the kernel checks the range and fails with EFAULT.
        let w = unsafe { libc::write(fds[1], at as *const c_void, n) };
        if w != n as isize {
            // SAFETY: the thread's errno.
            assert_eq!(unsafe { *libc::__errno_location() }, EFAULT);
            ok = false;
            break;
        }
        // SAFETY: as above.
        let r = unsafe { libc::read(fds[0], at as *mut c_void, n) };
        if r != n as isize {
            ok = false;
            break;
        }
        at += n;
    }
    // SAFETY: our descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    ok
}

/// Whether no byte of `[addr, addr + len)` page by page is readable.
fn inaccessible(addr: usize, len: usize) -> bool {
    let p = page();
    let mut at = addr & !(p - 1);
    while at < addr + len {
        if accessible(at, 1) {
            return false;
        }
        at += p;
    }
    true
}

/// Fill an allocation with a stamp (it must be accessible).
fn fill(addr: usize, len: usize, stamp: u8) {
    assert!(accessible(addr, len), "allocation {addr:#x}+{len:#x} not mapped read-write");
    // SAFETY: mapped read-write (just checked), ours (allocated).
    unsafe { core::ptr::write_bytes(addr as *mut u8, stamp, len) };
}

/// Check an allocation still holds its stamp.
fn holds(addr: usize, len: usize, stamp: u8) -> bool {
    assert!(accessible(addr, len), "allocation {addr:#x}+{len:#x} no longer mapped");
    // SAFETY: as above.
    let s = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    s.iter().all(|&b| b == stamp)
}

fn all_zero(addr: usize, len: usize) -> bool {
    holds(addr, len, 0)
}

fn vm_info(a: *mut vmspace_arena_t) -> Result<vmspace_vm_info, c_int> {
    let mut i = vmspace_vm_info::default();
    // SAFETY: a live arena (the caller's), a writable structure.
    match unsafe { vmspace_arena_vm_info(a, &mut i) } {
        0 => Ok(i),
        e => Err(e),
    }
}

fn mapped(a: *mut vmspace_arena_t) -> usize {
    vm_info(a).expect("arena has a VM").mapped
}

fn check(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_check(a) }, 0);
}

/// The header's invariant: what is mapped is what is imported.
fn consistent(a: *mut vmspace_arena_t) {
    check(a);
    assert_eq!(mapped(a), sizes(a).imported, "info.mapped != sizes.imported");
}

fn arena(name: &str, quantum: usize, qcache_max: usize, flags: c_int) -> *mut vmspace_arena_t {
    let name = std::ffi::CString::new(name).unwrap();
    let p =
        vmspace_params { name: name.as_ptr(), quantum, qcache_max, flags, ..Default::default() };
    let mut a = null_mut();
    // SAFETY: valid params and out pointer.
    assert_eq!(unsafe { vmspace_arena_create_ex(&p, &mut a) }, 0);
    a
}

fn child(parent: *mut vmspace_arena_t, quantum: usize, qcache_max: usize) -> *mut vmspace_arena_t {
    let p = vmspace_params { quantum, qcache_max, parent, ..Default::default() };
    let mut a = null_mut();
    // SAFETY: valid params, a live parent.
    assert_eq!(unsafe { vmspace_arena_create_ex(&p, &mut a) }, 0);
    a
}

fn set_vm(a: *mut vmspace_arena_t, size: usize) -> c_int {
    // SAFETY: a live arena.
    unsafe { vmspace_arena_set_vm(a, size, 0) }
}

fn free(a: *mut vmspace_arena_t, addr: usize, size: usize) {
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_free(a, addr, size) }, 0, "free {addr:#x}+{size:#x}");
}

fn destroy(a: *mut vmspace_arena_t) {
    // SAFETY: a live arena nobody else uses.
    assert_eq!(unsafe { vmspace_arena_destroy(a) }, 0);
}

/// Lines of /proc/self/maps (mappings of the process).
fn maps_lines() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// Whether any mapping of /proc/self/maps covers `addr`.
fn in_maps(addr: usize) -> bool {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().any(|l| {
        let range = l.split_whitespace().next().unwrap();
        let (s, e) = range.split_once('-').unwrap();
        let (s, e) = (usize::from_str_radix(s, 16).unwrap(), usize::from_str_radix(e, 16).unwrap());
        s <= addr && addr < e
    })
}

/// One live allocation of the tests: how it is freed and what it holds.
#[derive(Clone, Copy, Debug)]
enum How {
    Addr,
    Handle(vmspace_handle),
}

#[derive(Clone, Copy, Debug)]
struct Live {
    addr: usize,
    size: usize,
    how: How,
    stamp: u8,
}

fn release(a: *mut vmspace_arena_t, l: Live) {
    match l.how {
        How::Addr => free(a, l.addr, l.size),
        How::Handle(h) => {
            let mut s = 0;
            // SAFETY: a live arena, the handle as written.
            assert_eq!(unsafe { vmspace_arena_free_handle(a, h, &mut s) }, 0);
            assert!(s >= l.size);
        }
    }
}
