//! Written by a reviewer outside the project (round 75), from the header:
//! the VM layer section of `capi/include/vmspace.h` ("The VM layer",
//! `struct vmspace_vm_info`, `vmspace_vm_*`) is the contract. Checks every
//! error the header lists and that a failing call changes nothing (info,
//! mapped state and page contents before and after), the largest sizes and
//! grains, a VM handle where an arena is expected and the reverse, many VMs
//! at once, concurrent calls on one VM (disjoint, racing for the same page,
//! overlapping ranges), page contents (zero after map, kept across other
//! calls, zero after unmap and map), trim with pages mapped, destroy with
//! pages mapped (the reservation gone from /proc/self/maps), the
//! `vmspace_strerror` texts, and two failures the OS makes: a map refused by
//! `RLIMIT_DATA` and an unmap refused at `vm.max_map_count` (both run in a
//! child process, which alone changes those limits).

#[path = "../common/mod.rs"]
mod common;
mod create;
mod os;
mod ranges;
mod threads;

use common::{in_child, max_map_count};
use core::ffi::{c_int, CStr};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api::*;

const ENOENT: c_int = 2;
const EBADF: c_int = 9;
const ENOMEM: c_int = 12;
const EEXIST: c_int = 17;
const EINVAL: c_int = 22;
const ERANGE: c_int = 34;
const EOVERFLOW: c_int = 75;
const EUCLEAN: c_int = 117;

/// The few libc calls used (no libc crate among the dev-dependencies);
/// Linux values.
mod libc {
    use core::ffi::{c_int, c_long};
    pub const SC_PAGESIZE: c_int = 30;
    pub const RLIMIT_DATA: c_int = 2;
    pub const PROT_NONE: c_int = 0;
    pub const MAP_PRIVATE: c_int = 0x02;
    pub const MAP_ANONYMOUS: c_int = 0x20;
    pub const MAP_NORESERVE: c_int = 0x4000;
    pub const MAP_FIXED_NOREPLACE: c_int = 0x10_0000;
    #[allow(non_camel_case_types)]
    pub type rlim_t = u64;
    #[repr(C)]
    #[derive(Clone, Copy)]
    #[allow(non_camel_case_types)]
    pub struct rlimit {
        pub rlim_cur: rlim_t,
        pub rlim_max: rlim_t,
    }
    extern "C" {
        pub fn sysconf(name: c_int) -> c_long;
        pub fn getrlimit(resource: c_int, rlim: *mut rlimit) -> c_int;
        pub fn setrlimit(resource: c_int, rlim: *const rlimit) -> c_int;
        pub fn mmap(
            addr: *mut core::ffi::c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: i64,
        ) -> *mut core::ffi::c_void;
        pub fn munmap(addr: *mut core::ffi::c_void, len: usize) -> c_int;
    }
}

fn os_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::SC_PAGESIZE) as usize }
}

/// `vmspace_vm_create`, checking `*vmp` is NULL on failure (it starts as
/// garbage) and non-NULL on success.
fn try_create(size: usize, grain: usize, flags: c_int) -> Result<*mut vmspace_vm_t, c_int> {
    let mut vm = 0x40 as *mut vmspace_vm_t;
    // SAFETY: `vm` is writable.
    let e = unsafe { vmspace_vm_create(size, grain, flags, &mut vm) };
    if e == 0 {
        assert!(!vm.is_null());
        Ok(vm)
    } else {
        assert!(e < 0, "create returned {e}");
        assert!(vm.is_null(), "create({size:#x}, {grain:#x}, {flags}) = {e} left *vmp = {vm:?}");
        Err(e)
    }
}

fn create(size: usize, grain: usize) -> *mut vmspace_vm_t {
    try_create(size, grain, 0).unwrap()
}

fn destroy(vm: *mut vmspace_vm_t) {
    // SAFETY: a live VM nobody else uses.
    assert_eq!(unsafe { vmspace_vm_destroy(vm) }, 0);
}

type Info = (usize, usize, usize, usize, usize, usize, usize);

fn info(vm: *mut vmspace_vm_t) -> Info {
    let mut i = vmspace_vm_info::default();
    // SAFETY: a live VM; `i` is writable.
    assert_eq!(unsafe { vmspace_vm_info(vm, &mut i) }, 0);
    (i.base, i.size, i.grain, i.page_size, i.mapped, i.reserved, i.metadata)
}

fn base(vm: *mut vmspace_vm_t) -> usize {
    info(vm).0
}

fn mapped_bytes(vm: *mut vmspace_vm_t) -> usize {
    info(vm).4
}

fn metadata(vm: *mut vmspace_vm_t) -> usize {
    info(vm).6
}

fn map(vm: *mut vmspace_vm_t, addr: usize, size: usize) -> c_int {
    // SAFETY: a live VM (or a handle the test means to be refused).
    unsafe { vmspace_vm_map(vm, addr, size) }
}

fn unmap(vm: *mut vmspace_vm_t, addr: usize, size: usize) -> c_int {
    // SAFETY: as for `map`; nothing touches the range until it is mapped.
    unsafe { vmspace_vm_unmap(vm, addr, size) }
}

fn is_mapped(vm: *mut vmspace_vm_t, addr: usize, size: usize) -> c_int {
    // SAFETY: as for `map`.
    unsafe { vmspace_vm_mapped(vm, addr, size) }
}

fn check(vm: *mut vmspace_vm_t) -> c_int {
    // SAFETY: as for `map`.
    unsafe { vmspace_vm_check(vm) }
}

fn trim(vm: *mut vmspace_vm_t) -> c_int {
    // SAFETY: as for `map`.
    unsafe { vmspace_vm_trim(vm) }
}

/// Fill `[addr, addr + size)` (mapped) with `b`.
fn fill(addr: usize, size: usize, b: u8) {
    // SAFETY: the caller mapped the range and owns it.
    unsafe { std::ptr::write_bytes(addr as *mut u8, b, size) }
}

/// Whether every byte of `[addr, addr + size)` (mapped) is `b`.
fn all(addr: usize, size: usize, b: u8) -> bool {
    // SAFETY: the caller mapped the range and nothing writes it meanwhile.
    let s = unsafe { std::slice::from_raw_parts(addr as *const u8, size) };
    s.iter().all(|&x| x == b)
}

/// The page-state of each of the first `n` pages, as `vmspace_vm_mapped`
/// reports it.
fn page_states(vm: *mut vmspace_vm_t, n: usize) -> Vec<c_int> {
    let (b, _, _, p, ..) = info(vm);
    (0..n).map(|i| is_mapped(vm, b + i * p, p)).collect()
}
