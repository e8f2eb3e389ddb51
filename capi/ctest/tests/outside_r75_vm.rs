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

use core::ffi::{c_int, CStr};
use std::process::Command;
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

/// Run the test `name` alone in a child process (this binary, filtered to
/// it, with `R75_CHILD=name`): true in the child, which then runs the body;
/// false in the parent, after checking the child passed.
fn in_child(name: &str) -> bool {
    if std::env::var("R75_CHILD").as_deref() == Ok(name) {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("R75_CHILD", name)
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

// ---------------------------------------------------------------------------
// Create.

#[test]
fn create_refusals_store_null_and_have_the_documented_errno() {
    let page = os_page();
    // -EINVAL: size 0, bad grains, unknown flags.
    assert_eq!(try_create(0, 0, 0), Err(-EINVAL));
    assert_eq!(try_create(0, page, 0), Err(-EINVAL));
    for grain in [1, 3, page / 2, page + 1, 3 * page, usize::MAX, (1 << 63) + page] {
        assert_eq!(try_create(page, grain, 0), Err(-EINVAL), "grain {grain:#x}");
    }
    for flags in [1, 2, 0x100, -1, c_int::MIN, c_int::MAX] {
        assert_eq!(try_create(page, 0, flags), Err(-EINVAL), "flags {flags:#x}");
    }
    // A NULL out pointer.
    // SAFETY: NULL is refused before anything is written.
    assert_eq!(unsafe { vmspace_vm_create(page, 0, 0, null_mut()) }, -EINVAL);
    // -EOVERFLOW: the size rounded up to the grain does not fit.
    assert_eq!(try_create(usize::MAX, 0, 0), Err(-EOVERFLOW));
    assert_eq!(try_create(usize::MAX - page + 2, 0, 0), Err(-EOVERFLOW));
    assert_eq!(try_create((1 << 63) + 1, 1 << 63, 0), Err(-EOVERFLOW));
    // -ENOMEM: sizes and grains that fit an address but no address space.
    assert_eq!(try_create(1, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 63, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create((1 << 40) + 1, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 62, 0, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 63, 0, 0), Err(-ENOMEM));
}

#[test]
fn create_at_the_top_of_size_is_overflow_or_nomem_never_success() {
    // The size itself fits once rounded, but with its bookkeeping it does
    // not: the header names -EOVERFLOW for "the size rounded up to the
    // grain ... does not fit", and -ENOMEM for "no address space to
    // reserve"; either is a refusal that stores NULL.
    let page = os_page();
    for size in [usize::MAX - page + 1, usize::MAX - (1 << 40) + 1, usize::MAX / 2 + page] {
        let e = try_create(size, 0, 0).unwrap_err();
        assert!(e == -EOVERFLOW || e == -ENOMEM, "size {size:#x}: {e}");
    }
}

#[test]
fn create_rounds_to_grain_and_info_is_consistent() {
    let page = os_page();
    for (size, grain) in [
        (1, 0),
        (page, 0),
        (page + 1, 0),
        (1, 1 << 16),
        ((3 << 16) + 1, 1 << 16),
        (5 * page, 1 << 21),
        (1, 1 << 30),
        (page, 1 << 40),
    ] {
        let vm = create(size, grain);
        let (b, s, g, p, m, r, md) = info(vm);
        let want_grain = if grain == 0 { page } else { grain };
        assert_eq!(p, page);
        assert_eq!(g, want_grain, "grain for ({size:#x}, {grain:#x})");
        assert_eq!(s, size.div_ceil(want_grain) * want_grain, "size for ({size:#x}, {grain:#x})");
        assert_eq!(b % g, 0, "base {b:#x} not a multiple of grain {g:#x}");
        assert_eq!((b + s) % g, 0);
        assert_eq!(m, 0);
        assert!(r >= s, "reserved {r:#x} < size {s:#x}");
        assert!(md <= r - s, "metadata {md:#x} beyond the bookkeeping reserved {:#x}", r - s);
        assert_eq!(md % page, 0);
        assert_eq!(check(vm), 0);
        assert_eq!(is_mapped(vm, b, s), 0);
        assert_eq!(page_states(vm, (s / p).min(4096)).iter().filter(|&&x| x != 0).count(), 0);
        destroy(vm);
    }
}

// ---------------------------------------------------------------------------
// Handles.

#[test]
fn null_handles_and_null_out_pointers_are_einval() {
    let mut i = vmspace_vm_info::default();
    // SAFETY: NULL handles are refused before anything is read.
    unsafe {
        assert_eq!(vmspace_vm_destroy(null_mut()), -EINVAL);
        assert_eq!(vmspace_vm_map(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_unmap(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_mapped(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_info(null_mut(), &mut i), -EINVAL);
        assert_eq!(vmspace_vm_trim(null_mut()), -EINVAL);
        assert_eq!(vmspace_vm_check(null_mut()), -EINVAL);
    }
    let vm = create(1 << 20, 0);
    // SAFETY: a live VM, a NULL out pointer.
    assert_eq!(unsafe { vmspace_vm_info(vm, null_mut()) }, -EINVAL);
    destroy(vm);
}

#[test]
fn an_arena_is_not_a_vm_and_a_vm_is_not_an_arena() {
    let page = os_page();
    let vm = create(1 << 20, 1 << 16);
    let b = base(vm);
    assert_eq!(map(vm, b, page), 0);
    fill(b, page, 0x5a);
    let before = info(vm);
    // SAFETY: a valid arena over the VM's range.
    let arena =
        unsafe { vmspace_arena_create(c"r75".as_ptr(), b, 1 << 20, page, 0, VMSPACE_INSTANTFIT) };
    assert!(!arena.is_null());
    let av = arena.cast::<vmspace_vm_t>();
    let mut i = vmspace_vm_info::default();
    // SAFETY: an arena passed as a VM: the first word is readable.
    unsafe {
        assert_eq!(vmspace_vm_map(av, b + page, page), -EBADF);
        assert_eq!(vmspace_vm_unmap(av, b, page), -EBADF);
        assert_eq!(vmspace_vm_mapped(av, b, page), -EBADF);
        assert_eq!(vmspace_vm_info(av, &mut i), -EBADF);
        assert_eq!(vmspace_vm_trim(av), -EBADF);
        assert_eq!(vmspace_vm_check(av), -EBADF);
        assert_eq!(vmspace_vm_destroy(av), -EBADF);
    }
    // The arena is untouched.
    // SAFETY: a live arena.
    unsafe {
        assert_eq!(vmspace_arena_check(arena), 0);
        let mut a = 0;
        assert_eq!(vmspace_arena_alloc(arena, page, VMSPACE_INSTANTFIT, &mut a), 0);
        assert_eq!(vmspace_arena_free(arena, a, page), 0);
    }
    // A VM passed as an arena.
    let va = vm.cast::<vmspace_arena_t>();
    // SAFETY: a VM passed as an arena: the first word is readable.
    unsafe {
        let mut a = 0;
        assert_eq!(vmspace_arena_check(va), -EBADF);
        assert_eq!(vmspace_arena_alloc(va, page, VMSPACE_INSTANTFIT, &mut a), -EBADF);
        assert_eq!(vmspace_arena_free(va, b, page), -EBADF);
        assert_eq!(vmspace_arena_destroy(va), -EBADF);
    }
    // The VM is untouched.
    assert_eq!(info(vm), before);
    assert_eq!(is_mapped(vm, b, page), 1);
    assert!(all(b, page, 0x5a));
    assert_eq!(check(vm), 0);
    // SAFETY: a live arena nobody else uses.
    assert_eq!(unsafe { vmspace_arena_destroy(arena) }, 0);
    destroy(vm);
}

#[test]
fn storage_that_is_not_a_vm_is_ebadf() {
    // Zeroed storage, storage holding some other VM's magic-like word, and
    // a misaligned pointer into a live VM object.
    let zero = [0usize; 8];
    let zp = zero.as_ptr() as *mut vmspace_vm_t;
    let vm = create(1 << 20, 0);
    let mut copy = [0usize; 64];
    // A copy of a live VM's first bytes, elsewhere: its magic word is tied
    // to its own address, so the copy is not a VM.
    // SAFETY: the VM object is at least one word long and readable.
    copy[0] = unsafe { (vm as *const usize).read() };
    let cp = copy.as_mut_ptr() as *mut vmspace_vm_t;
    let misaligned = (vm as usize + 1) as *mut vmspace_vm_t;
    let mut i = vmspace_vm_info::default();
    for p in [zp, cp, misaligned] {
        // SAFETY: each points to readable storage of at least a word (or
        // is misaligned, which is refused before reading).
        unsafe {
            assert_eq!(vmspace_vm_map(p, base(vm), 4096), -EBADF, "{p:?}");
            assert_eq!(vmspace_vm_mapped(p, base(vm), 4096), -EBADF);
            assert_eq!(vmspace_vm_info(p, &mut i), -EBADF);
            assert_eq!(vmspace_vm_trim(p), -EBADF);
            assert_eq!(vmspace_vm_check(p), -EBADF);
            assert_eq!(vmspace_vm_destroy(p), -EBADF);
        }
    }
    assert_eq!(check(vm), 0);
    destroy(vm);
}

// ---------------------------------------------------------------------------
// Bad ranges: the documented errno, and nothing changes.

#[test]
fn every_bad_range_is_refused_and_changes_nothing() {
    let page = os_page();
    let vm = create(64 * page, 0);
    let (b, s, ..) = info(vm);
    let limit = b + s;
    // Pages 4..8 and 20 mapped and written.
    assert_eq!(map(vm, b + 4 * page, 4 * page), 0);
    assert_eq!(map(vm, b + 20 * page, page), 0);
    fill(b + 4 * page, 4 * page, 0xc3);
    fill(b + 20 * page, page, 0x3c);
    let before = info(vm);
    let states = page_states(vm, 64);
    let same = |what: &str| {
        assert_eq!(info(vm), before, "info changed after {what}");
        assert_eq!(page_states(vm, 64), states, "mapped pages changed after {what}");
        assert!(all(b + 4 * page, 4 * page, 0xc3), "contents changed after {what}");
        assert!(all(b + 20 * page, page, 0x3c), "contents changed after {what}");
        assert_eq!(check(vm), 0, "check after {what}");
    };
    // (addr, size, errno for map, for unmap, for mapped)
    let cases: Vec<(usize, usize, c_int, c_int, c_int, &str)> = vec![
        (b, 0, -EINVAL, -EINVAL, -EINVAL, "size 0"),
        (b + 30 * page, 0, -EINVAL, -EINVAL, -EINVAL, "size 0 inside"),
        (b + 1, page, -EINVAL, -EINVAL, -EINVAL, "misaligned addr"),
        (b, page + 1, -EINVAL, -EINVAL, -EINVAL, "misaligned size"),
        (b, 1, -EINVAL, -EINVAL, -EINVAL, "size 1"),
        (b + page / 2, page / 2, -EINVAL, -EINVAL, -EINVAL, "half pages"),
        (b - page, page, -ERANGE, -ERANGE, -ERANGE, "below base"),
        (b - page, 2 * page, -ERANGE, -ERANGE, -ERANGE, "straddling base"),
        (limit, page, -ERANGE, -ERANGE, -ERANGE, "at the limit (bookkeeping)"),
        (limit - page, 2 * page, -ERANGE, -ERANGE, -ERANGE, "straddling the limit"),
        (b, s + page, -ERANGE, -ERANGE, -ERANGE, "the VM and one page more"),
        (0, page, -ERANGE, -ERANGE, -ERANGE, "page 0"),
        (usize::MAX - page + 1 - page, page, -ERANGE, -ERANGE, -ERANGE, "near the top"),
        (usize::MAX - page + 1, page, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "end at 2^64"),
        (b, usize::MAX - page + 1, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "huge size"),
        (b + 30 * page, usize::MAX - page + 1, -EOVERFLOW, -EOVERFLOW, -EOVERFLOW, "huge size 2"),
        // A mapped page in the range / an unmapped page in the range.
        (b + 2 * page, 4 * page, -EEXIST, -ENOENT, 0, "overlapping the run's start"),
        (b + 7 * page, 2 * page, -EEXIST, -ENOENT, 0, "overlapping the run's end"),
        (b, 64 * page, -EEXIST, -ENOENT, 0, "the whole VM"),
        (b + 19 * page, 3 * page, -EEXIST, -ENOENT, 0, "around page 20"),
        (b + 4 * page, 4 * page, -EEXIST, 1, 1, "exactly the run (map only)"),
        (b + 30 * page, 2 * page, 0, -ENOENT, 0, "unmapped (unmap only)"),
    ];
    for &(addr, size, emap, eunmap, emapped, what) in &cases {
        if emap != 0 {
            assert_eq!(map(vm, addr, size), emap, "map: {what}");
            same(what);
        }
        if eunmap != 1 {
            assert_eq!(unmap(vm, addr, size), eunmap, "unmap: {what}");
            same(what);
        }
        assert_eq!(is_mapped(vm, addr, size), emapped, "mapped: {what}");
        same(what);
    }
    destroy(vm);
}

// ---------------------------------------------------------------------------
// Contents.

#[test]
fn contents_are_zero_after_map_kept_across_calls_and_zero_after_remap() {
    let page = os_page();
    let bpp = page * 8; // client pages one bit-table page records
                        // Three bit-table pages' worth, so trims have something to give back.
    let vm = create(3 * bpp * page, 0);
    let b = base(vm);
    let a = b + 5 * page;
    assert_eq!(map(vm, a, 3 * page), 0);
    assert!(all(a, 3 * page, 0));
    fill(a, 3 * page, 0x77);
    // Other calls around it.
    let far = b + (bpp + 7) * page;
    let farther = b + (2 * bpp + 1) * page;
    assert_eq!(map(vm, far, page), 0);
    assert!(all(far, page, 0));
    fill(far, page, 0x11);
    assert_eq!(map(vm, farther, 2 * page), 0);
    assert_eq!(map(vm, a - page, page), 0);
    assert_eq!(map(vm, a + 3 * page, page), 0);
    assert!(all(a - page, page, 0) && all(a + 3 * page, page, 0));
    assert_eq!(unmap(vm, a - page, page), 0);
    assert_eq!(unmap(vm, farther, 2 * page), 0);
    assert_eq!(trim(vm), 1, "the third bit-table page records nothing now");
    assert_eq!(trim(vm), 0);
    assert_eq!(check(vm), 0);
    assert!(all(a, 3 * page, 0x77), "contents lost across other calls");
    assert!(all(far, page, 0x11));
    assert!(all(a + 3 * page, page, 0));
    // Unmap the middle page and map it again: zero; the others kept.
    assert_eq!(unmap(vm, a + page, page), 0);
    assert_eq!(map(vm, a + page, page), 0);
    assert!(all(a + page, page, 0), "a remapped page does not read zero");
    assert!(all(a, page, 0x77) && all(a + 2 * page, page, 0x77));
    // Unmap everything in that table page, trim it away, map again: zero.
    assert_eq!(unmap(vm, a, 4 * page), 0);
    assert_eq!(trim(vm), 1);
    assert_eq!(map(vm, a, 4 * page), 0);
    assert!(all(a, 4 * page, 0));
    assert!(all(far, page, 0x11));
    assert_eq!(mapped_bytes(vm), 5 * page);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn trim_with_pages_mapped_gives_back_only_empty_bookkeeping() {
    let page = os_page();
    let bpp = page * 8;
    let vm = create(4 * bpp * page, 0);
    let b = base(vm);
    let md0 = metadata(vm);
    assert_eq!(trim(vm), 0, "a fresh VM has no table page to give back");
    // One page in each of the four table pages' ranges, the first and the
    // last page of the VM among them.
    let pages = [0, bpp + 3, 2 * bpp + bpp / 2, 4 * bpp - 1];
    for (n, &i) in pages.iter().enumerate() {
        assert_eq!(map(vm, b + i * page, page), 0);
        fill(b + i * page, page, n as u8 + 1);
    }
    assert_eq!(metadata(vm), md0 + 4 * page);
    assert_eq!(trim(vm), 0, "trim gave back a table page that records mapped pages");
    assert_eq!(mapped_bytes(vm), 4 * page);
    for (n, &i) in pages.iter().enumerate() {
        assert_eq!(is_mapped(vm, b + i * page, page), 1);
        assert!(all(b + i * page, page, n as u8 + 1), "page {i} changed by trim");
    }
    assert_eq!(unmap(vm, b + pages[1] * page, page), 0);
    assert_eq!(unmap(vm, b + pages[2] * page, page), 0);
    assert_eq!(trim(vm), 2);
    assert_eq!(metadata(vm), md0 + 2 * page);
    assert_eq!(is_mapped(vm, b, page), 1);
    assert_eq!(is_mapped(vm, b + pages[3] * page, page), 1);
    assert!(all(b, page, 1) && all(b + pages[3] * page, page, 4));
    assert_eq!(check(vm), 0);
    // Unmapped pages in trimmed-away table pages read as unmapped.
    assert_eq!(is_mapped(vm, b + pages[1] * page, page), 0);
    assert_eq!(is_mapped(vm, b + bpp * page, 2 * bpp * page), 0);
    assert_eq!(unmap(vm, b + pages[2] * page, page), -ENOENT);
    destroy(vm);
}

#[test]
fn a_range_across_bit_table_pages_and_the_whole_vm() {
    let page = os_page();
    let bpp = page * 8;
    let vm = create((2 * bpp + 1) * page, 0);
    let (b, s, ..) = info(vm);
    assert_eq!(s, (2 * bpp + 1) * page);
    let md0 = metadata(vm);
    // Two pages either side of the first table-page boundary.
    let r = b + (bpp - 1) * page;
    assert_eq!(map(vm, r, 2 * page), 0);
    assert_eq!(metadata(vm), md0 + 2 * page);
    assert_eq!(is_mapped(vm, r, 2 * page), 1);
    assert_eq!(is_mapped(vm, r - page, 2 * page), 0);
    assert_eq!(is_mapped(vm, r + page, 2 * page), 0);
    assert_eq!(unmap(vm, r, 2 * page), 0);
    assert_eq!(trim(vm), 2);
    assert_eq!(metadata(vm), md0);
    // The last page alone (the only page of the third table page).
    assert_eq!(map(vm, b + s - page, page), 0);
    fill(b + s - page, page, 0xee);
    assert_eq!(unmap(vm, b + s - page, page), 0);
    // The whole VM, at once.
    assert_eq!(map(vm, b, s), 0);
    assert_eq!(mapped_bytes(vm), s);
    assert_eq!(is_mapped(vm, b, s), 1);
    assert!(all(b + s - page, page, 0));
    assert_eq!(map(vm, b + s - page, page), -EEXIST);
    assert_eq!(trim(vm), 0);
    assert_eq!(check(vm), 0);
    assert_eq!(unmap(vm, b, s), 0);
    assert_eq!(mapped_bytes(vm), 0);
    assert_eq!(is_mapped(vm, b, s), 0);
    assert_eq!(trim(vm), 3);
    assert_eq!(metadata(vm), md0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

// ---------------------------------------------------------------------------
// Many VMs.

#[test]
fn many_vms_at_once_are_disjoint_and_independent() {
    let page = os_page();
    let n = 200;
    let vms: Vec<_> =
        (0..n).map(|i| create((i % 7 + 1) * page, if i % 3 == 0 { 1 << 16 } else { 0 })).collect();
    let mut ranges: Vec<(usize, usize)> = vms
        .iter()
        .map(|&vm| {
            let (b, _, _, _, _, r, _) = info(vm);
            (b, b + r)
        })
        .collect();
    for (i, &vm) in vms.iter().enumerate() {
        let b = base(vm);
        assert_eq!(map(vm, b, page), 0);
        fill(b, page, i as u8);
    }
    for (i, &vm) in vms.iter().enumerate() {
        assert!(all(base(vm), page, i as u8), "VM {i}'s page changed");
        assert_eq!(mapped_bytes(vm), page);
        assert_eq!(check(vm), 0);
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "reservations overlap: {w:x?}");
    }
    // Destroy every other one; the rest are untouched.
    for (i, &vm) in vms.iter().enumerate() {
        if i % 2 == 0 {
            destroy(vm);
        }
    }
    for (i, &vm) in vms.iter().enumerate() {
        if i % 2 == 1 {
            assert!(all(base(vm), page, i as u8));
            assert_eq!(check(vm), 0);
            destroy(vm);
        }
    }
}

// ---------------------------------------------------------------------------
// Destroy.

/// Whether any mapping of this process overlaps `[lo, hi)`, and whether
/// mappings cover it entirely.
fn maps_over(lo: usize, hi: usize) -> (bool, bool) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut v: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|l| {
            let r = l.split_whitespace().next()?;
            let (a, b) = r.split_once('-')?;
            Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
        })
        .filter(|&(a, b)| a < hi && b > lo)
        .collect();
    v.sort_unstable();
    let mut at = lo;
    for &(a, b) in &v {
        if a > at {
            break;
        }
        at = at.max(b);
    }
    (!v.is_empty(), at >= hi)
}

#[test]
fn destroy_with_pages_mapped_releases_the_whole_reservation() {
    if !in_child("destroy_with_pages_mapped_releases_the_whole_reservation") {
        return;
    }
    let page = os_page();
    let bpp = page * 8;
    let vm = create(3 * bpp * page, 1 << 20);
    let (b, _, _, _, _, r, _) = info(vm);
    assert_eq!(map(vm, b, 5 * page), 0);
    assert_eq!(map(vm, b + (2 * bpp + 3) * page, 2 * page), 0);
    fill(b, 5 * page, 0x99);
    assert_eq!(maps_over(b, b + r), (true, true), "the reservation is not all mapped");
    destroy(vm);
    assert!(!maps_over(b, b + r).0, "destroy left part of the reservation mapped");
}

// ---------------------------------------------------------------------------
// Concurrency.

#[derive(Clone, Copy)]
struct Vm(usize);
// SAFETY: the VM is meant to be called from any thread.
unsafe impl Send for Vm {}
impl Vm {
    fn p(self) -> *mut vmspace_vm_t {
        self.0 as *mut vmspace_vm_t
    }
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn racing_maps_and_unmaps_of_the_same_pages_have_one_winner_each() {
    let page = os_page();
    let n = 512;
    let threads = 4;
    let vm = Vm(create(n * page, 0) as usize);
    let b = base(vm.p());
    let wins = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let barrier = Arc::new(Barrier::new(threads));
    let run = |unmapping: bool| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (wins, barrier) = (wins.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for k in 0..n {
                        // Half the threads go up, half go down.
                        let i = if t % 2 == 0 { k } else { n - 1 - k };
                        let a = b + i * page;
                        let e =
                            if unmapping { unmap(vm.p(), a, page) } else { map(vm.p(), a, page) };
                        match e {
                            0 => {
                                wins[i].fetch_add(1, Ordering::Relaxed);
                            }
                            e if !unmapping && e == -EEXIST => {}
                            e if unmapping && e == -ENOENT => {}
                            e => panic!("page {i}: {e}"),
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    };
    run(false);
    for (i, w) in wins.iter().enumerate() {
        assert_eq!(w.swap(0, Ordering::Relaxed), 1, "map of page {i}: not exactly one winner");
    }
    assert_eq!(mapped_bytes(vm.p()), n * page);
    assert_eq!(is_mapped(vm.p(), b, n * page), 1);
    assert_eq!(check(vm.p()), 0);
    run(true);
    for (i, w) in wins.iter().enumerate() {
        assert_eq!(w.load(Ordering::Relaxed), 1, "unmap of page {i}: not exactly one winner");
    }
    assert_eq!(mapped_bytes(vm.p()), 0);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

#[test]
fn overlapping_maps_from_many_threads_never_share_a_page() {
    // Threads map random ranges of 1 to 4 pages in a small VM; a map that
    // wins owns its pages until its unmap: it writes them, yields, and
    // finds them still its own and still mapped. Meanwhile other threads
    // read info, trim and check. Nothing is lost: mapped adds up.
    let page = os_page();
    let pages = 64;
    let threads = 4;
    let vm = Vm(create(pages * page, 0) as usize);
    let b = base(vm.p());
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let held = held.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let (mut wins, mut losses) = (0, 0);
                for _ in 0..3000 {
                    let i = (rng(&mut seed) % pages as u64) as usize;
                    let len = (1 + rng(&mut seed) % 4) as usize;
                    let len = len.min(pages - i);
                    let a = b + i * page;
                    match map(vm.p(), a, len * page) {
                        0 => {
                            wins += 1;
                            held.fetch_add(len, Ordering::SeqCst);
                            assert!(all(a, len * page, 0), "a freshly mapped range is not zero");
                            fill(a, len * page, t as u8 + 1);
                            std::thread::yield_now();
                            assert_eq!(is_mapped(vm.p(), a, len * page), 1);
                            assert!(
                                all(a, len * page, t as u8 + 1),
                                "another thread wrote my pages"
                            );
                            held.fetch_sub(len, Ordering::SeqCst);
                            assert_eq!(unmap(vm.p(), a, len * page), 0);
                        }
                        e if e == -EEXIST => losses += 1,
                        e => panic!("map: {e}"),
                    }
                }
                (wins, losses)
            })
        })
        .collect();
    let watchers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (_, s, _, p, m, r, md) = info(vm.p());
                    assert!(m <= s && m % p == 0 && md <= r - s);
                    if w == 0 {
                        assert!(trim(vm.p()) >= 0);
                    } else {
                        assert_eq!(check(vm.p()), 0);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total_wins = 0;
    for h in workers {
        let (w, _) = h.join().unwrap();
        total_wins += w;
    }
    stop.store(true, Ordering::Relaxed);
    for h in watchers {
        h.join().unwrap();
    }
    assert!(total_wins > 0);
    assert_eq!(held.load(Ordering::SeqCst), 0);
    assert_eq!(mapped_bytes(vm.p()), 0, "pages left mapped");
    assert_eq!(is_mapped(vm.p(), b, page), 0);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

#[test]
fn disjoint_threads_account_exactly() {
    let page = os_page();
    let threads = 4;
    let per = 8 * page * 8; // each thread gets several table pages' worth
    let vm = Vm(create(threads * per * page, 0) as usize);
    let b = base(vm.p());
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let lo = b + t * per * page;
                let mut seed = 77 + t as u64;
                let mut mine = vec![false; 256];
                for _ in 0..2000 {
                    let i = (rng(&mut seed) % 256) as usize;
                    let a = lo + i * (per / 256) * page;
                    if mine[i] {
                        assert!(all(a, page, t as u8 + 1));
                        assert_eq!(unmap(vm.p(), a, page), 0);
                    } else {
                        assert_eq!(map(vm.p(), a, page), 0);
                        fill(a, page, t as u8 + 1);
                    }
                    mine[i] = !mine[i];
                    if i % 17 == 0 {
                        assert!(trim(vm.p()) >= 0);
                    }
                }
                mine.iter().filter(|&&m| m).count()
            })
        })
        .collect();
    let held: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(mapped_bytes(vm.p()), held * page);
    assert_eq!(check(vm.p()), 0);
    destroy(vm.p());
}

// ---------------------------------------------------------------------------
// strerror.

#[test]
fn strerror_texts_fit_the_vm_meanings() {
    let text = |e: c_int| {
        // SAFETY: vmspace_strerror returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(vmspace_strerror(e)) }.to_str().unwrap().to_owned()
    };
    for e in [EBADF, ENOENT, EEXIST, ERANGE, EUCLEAN] {
        let t = text(-e);
        assert!(t.contains("VM"), "strerror(-{e}) = {t:?} says nothing of a VM");
        assert_eq!(t, text(e));
    }
    let t = text(-ENOMEM);
    assert!(t.contains("address space") && t.contains("pages"), "{t:?}");
    assert!(text(-EOVERFLOW).contains("overflow"));
    assert!(text(-EINVAL).contains("invalid"));
}

// ---------------------------------------------------------------------------
// Failures of the OS (child processes).

fn data_kb() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmData:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_map_refused_under_rlimit_data_is_enomem_and_maps_nothing() {
    if !in_child("a_map_refused_under_rlimit_data_is_enomem_and_maps_nothing") {
        return;
    }
    let page = os_page();
    let vm = create(1 << 30, 0);
    let b = base(vm);
    let before = info(vm);
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on this (child) process.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_DATA, &mut old), 0) };
    let lim = ((data_kb() + 32 * 1024) * 1024) as libc::rlim_t;
    let new = libc::rlimit { rlim_cur: lim.min(old.rlim_max), rlim_max: old.rlim_max };
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_DATA, &new), 0) };
    let e = map(vm, b, 512 << 20);
    let after = info(vm);
    let first = is_mapped(vm, b, page);
    let t = trim(vm);
    let small = map(vm, b + (600 << 20), page);
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_DATA, &old), 0) };
    assert_eq!(e, -ENOMEM, "a map RLIMIT_DATA refuses");
    assert_eq!(after, before, "a failed map changed the VM");
    assert_eq!(first, 0, "a failed map mapped a page");
    assert_eq!(t, 0, "a failed map left a bit-table page behind");
    assert_eq!(small, 0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

fn max_map_count() -> Option<usize> {
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

/// What a map the OS refused for want of mappings left behind.
struct Refused {
    /// The page whose map was refused.
    at: usize,
    err: c_int,
    before: Info,
    after: Info,
    state: c_int,
    trimmed: c_int,
}

/// Map every other page of `vm` from page `from` on until the OS refuses
/// one (at `vm.max_map_count`).
fn exhaust_mappings(vm: *mut vmspace_vm_t, from: usize) -> Option<Refused> {
    let (b, s, _, page, ..) = info(vm);
    let mut i = from;
    while i < s / page {
        let before = info(vm);
        let e = map(vm, b + i * page, page);
        if e != 0 {
            let after = info(vm);
            let state = is_mapped(vm, b + i * page, page);
            let trimmed = trim(vm);
            return Some(Refused { at: i, err: e, before, after, state, trimmed });
        }
        i += 2;
    }
    None
}

/// Unmap what `exhaust_mappings` mapped.
fn give_back_mappings(vm: *mut vmspace_vm_t, from: usize, to: usize) {
    let (b, _, _, page, ..) = info(vm);
    for k in (from..to).step_by(2) {
        assert_eq!(unmap(vm, b + k * page, page), 0);
    }
}

#[test]
fn a_map_refused_at_the_vma_limit_is_enomem_and_changes_nothing() {
    if !in_child("a_map_refused_at_the_vma_limit_is_enomem_and_changes_nothing") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    let vm = create((2 * max + 64) * page, 0);
    let r = exhaust_mappings(vm, 0);
    let r = r.expect("max_map_count never reached");
    give_back_mappings(vm, 0, r.at);
    eprintln!("map refused at page {} with {}", r.at, r.err);
    assert_eq!(r.err, -ENOMEM, "a map the OS refuses for want of mappings");
    assert_eq!(r.after, r.before, "a refused map changed the VM's info");
    assert_eq!(r.state, 0, "a refused map mapped its page");
    assert_eq!(r.trimmed, 0, "a refused map left a bit-table page behind");
    assert_eq!(mapped_bytes(vm), 0);
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn an_unmap_refused_at_the_vma_limit_leaves_the_page_mapped_and_writable() {
    // Round 75 found the page's contents dropped by such a failure, where
    // the header then said "a failing call changes nothing". The backend
    // drops pages before it makes them inaccessible (it cannot know a
    // range's old protection to put it back), so the header now says what
    // is kept: the page stays mapped, recorded and read-write (the C API
    // puts the protection back), its contents may be gone.
    if !in_child("an_unmap_refused_at_the_vma_limit_leaves_the_page_mapped_and_writable") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    let vm = create((2 * max + 64) * page, 0);
    let b = base(vm);
    // A run of three pages, the middle one written.
    assert_eq!(map(vm, b, 3 * page), 0);
    fill(b + page, page, 0xab);
    let r = exhaust_mappings(vm, 10).expect("max_map_count never reached");
    // Now the unmap of the middle page, which needs two more VMAs.
    let before = info(vm);
    let e = unmap(vm, b + page, page);
    let after = info(vm);
    let state = is_mapped(vm, b + page, page);
    let held =
        if e != 0 { Some(all(b + page, page, 0xab) || all(b + page, page, 0)) } else { None };
    if e != 0 {
        // Writable (a fault here is the failure), and keeps what is written.
        fill(b + page, page, 0xcd);
        assert!(all(b + page, page, 0xcd));
    }
    // Give the VMAs back before asserting (a panic needs memory).
    give_back_mappings(vm, 10, r.at);
    eprintln!("map refused at page {} with {}; unmap returned {e}", r.at, r.err);
    if e == 0 {
        assert_eq!(state, 0);
    } else {
        assert_eq!(e, -12, "refused for want of a mapping: -ENOMEM");
        assert_eq!(after, before, "a failed unmap changed the VM's info");
        assert_eq!(state, 1, "a failed unmap left its page unrecorded");
        assert_eq!(held, Some(true), "the page holds neither what was written nor zero");
    }
    // The neighbours were not touched.
    assert!(all(b, page, 0) && all(b + 2 * page, page, 0));
    assert_eq!(check(vm), 0);
    destroy(vm);
}

#[test]
fn a_destroy_refused_at_the_vma_limit_keeps_the_vm() {
    // A VM whose reservation shares a kernel mapping with a neighbour (an
    // inaccessible anonymous mapping of the caller's, put right after it,
    // which the kernel merges with it), the process then at
    // vm.max_map_count (alternate pages of a second VM mapped until the OS
    // refuses), and the first VM destroyed: its munmap needs a split the
    // OS refuses. The header: "If the OS refuses the release (-ENOMEM
    // where it has no mapping left to split, -EIO otherwise), the VM is as
    // it was."
    if !in_child("a_destroy_refused_at_the_vma_limit_keeps_the_vm") {
        return;
    }
    let Some(max) = max_map_count() else { return };
    let page = os_page();
    // A grain larger than the page: the reservation's padding, trimmed,
    // leaves room either side.
    let a = create(16 * page, 1 << 20);
    let (ab, _, _, _, _, ar, _) = info(a);
    // Neighbours right before and right after the reservation, where the
    // address space is free (a munmap at the limit fails only where it
    // splits a mapping in the middle).
    let mut neighbours = Vec::new();
    for at in [ab + ar, ab - page] {
        // SAFETY: MAP_FIXED_NOREPLACE maps only where nothing is.
        let p = unsafe {
            libc::mmap(
                at as *mut core::ffi::c_void,
                page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p as usize == at {
            neighbours.push(at);
        }
    }
    let pages = 2 * max + 64;
    let c = create(pages * page, 0);
    assert_eq!(map(a, ab, 2 * page), 0);
    fill(ab, 2 * page, 0x42);
    let r = exhaust_mappings(c, 0).expect("max_map_count never reached");
    let before = info(a);
    // SAFETY: a live VM nobody else uses.
    let e = unsafe { vmspace_vm_destroy(a) };
    let state = if e != 0 {
        Some((info(a), is_mapped(a, ab, 2 * page), all(ab, 2 * page, 0x42), check(a)))
    } else {
        None
    };
    give_back_mappings(c, 0, r.at);
    eprintln!("neighbours {neighbours:x?}; map refused at page {}; destroy returned {e}", r.at);
    if let Some((i, m, kept, chk)) = state {
        assert_eq!((i, m, kept, chk), (before, 1, true, 0), "a refused destroy changed the VM");
        assert!(e == -12 || e == -5, "a refused release is -ENOMEM or -EIO: {e}");
        destroy(a);
    }
    destroy(c);
    for at in neighbours {
        // SAFETY: our own mapping, which nothing uses.
        assert_eq!(unsafe { libc::munmap(at as *mut core::ffi::c_void, page) }, 0);
    }
}
