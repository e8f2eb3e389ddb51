//! `capi_pairs KIND N`: run N allocate+free pairs of one kind, for
//! instruction counts under cachegrind (`capi/scripts/pair-counts.sh`, which
//! subtracts a run of 0 pairs so setup does not count). Kinds: `rust-addr`,
//! `c-addr` (by address, no caches), `rust-qcache`, `c-qcache` (per-CPU
//! quantum caches, 32 units), `rust-handle`, `c-handle` (by handle); the
//! arenas are the benchmark's (`benches/capi.rs`).

use core::ffi::{c_char, c_int};
use std::hint::black_box;

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_capi::ctypes::{vmspace_arena_t, vmspace_handle};
use vmspace_user::{MmapBackend, SchedPin, UserArena};

use vmspace_capi_ctest as _;

extern "C" {
    fn vmspace_arena_create(
        name: *const c_char,
        base: usize,
        size: usize,
        quantum: usize,
        qcache_max: usize,
        flags: c_int,
    ) -> *mut vmspace_arena_t;
    fn vmspace_arena_alloc(
        a: *mut vmspace_arena_t,
        size: usize,
        flags: c_int,
        addrp: *mut usize,
    ) -> c_int;
    fn vmspace_arena_free(a: *mut vmspace_arena_t, addr: usize, size: usize) -> c_int;
    fn vmspace_arena_alloc_handle(
        a: *mut vmspace_arena_t,
        size: usize,
        flags: c_int,
        h: *mut vmspace_handle,
    ) -> c_int;
    fn vmspace_arena_free_handle(
        a: *mut vmspace_arena_t,
        h: vmspace_handle,
        sizep: *mut usize,
    ) -> c_int;
}

fn rust_arena(classes: usize) -> UserArena<PageStore<MmapBackend>, NoSource> {
    let mut a = Arena::on_pages("pairs", Size(16), MmapBackend::new(), 1 << 20, NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 30)).unwrap();
    if classes == 0 {
        return UserArena::new(a);
    }
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store)).unwrap()
}

fn c_arena(qcache_max: usize) -> *mut vmspace_arena_t {
    // SAFETY: a NUL-terminated name; the rest are values.
    let a = unsafe { vmspace_arena_create(c"pairs".as_ptr(), 1 << 30, 1 << 30, 16, qcache_max, 0) };
    assert!(!a.is_null());
    a
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, n) = match args.as_slice() {
        [_, k, n] => (k.as_str(), n.parse::<usize>().expect("N")),
        _ => panic!("usage: capi_pairs KIND N"),
    };
    // Every arena of every kind, so runs differ only in the pairs.
    let plain = rust_arena(0);
    let cached = rust_arena(8);
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let caches = CpuCaches::new(&cached, SchedPin::new(), store).unwrap();
    let (c_plain, c_cached) = (c_arena(0), c_arena(128));
    // Warm: one pair of each.
    for k in ["rust-addr", "c-addr", "rust-qcache", "c-qcache", "rust-handle", "c-handle"] {
        run(k, 1, &plain, &caches, c_plain, c_cached);
    }
    run(kind, n, &plain, &caches, c_plain, c_cached);
}

type Caches<'a> = CpuCaches<
    'a,
    vmspace_user::ParkingLock,
    vmspace_user::CondvarWaiter,
    PageStore<MmapBackend>,
    NoSource,
    SchedPin,
>;

fn run(
    kind: &str,
    n: usize,
    plain: &UserArena<PageStore<MmapBackend>, NoSource>,
    caches: &Caches<'_>,
    c_plain: *mut vmspace_arena_t,
    c_cached: *mut vmspace_arena_t,
) {
    for _ in 0..n {
        match kind {
            "rust-addr" => {
                let a = plain.alloc(Size(100), Policy::InstantFit, Wait::No).unwrap();
                plain.free(black_box(a), Size(100)).unwrap();
            }
            "rust-qcache" => {
                let a = caches.alloc(Size(32)).unwrap();
                caches.free(black_box(a), Size(32)).unwrap();
            }
            "rust-handle" => {
                let h = plain.with(|a| a.alloc_handle(Size(100), Policy::InstantFit)).unwrap();
                plain.free_handle_parts(black_box(h.addr()), h.tag()).unwrap();
            }
            "c-addr" | "c-qcache" => {
                let (arena, size) = if kind == "c-addr" { (c_plain, 100) } else { (c_cached, 32) };
                let mut a = 0;
                // SAFETY: a live arena and a valid out pointer.
                unsafe {
                    assert_eq!(vmspace_arena_alloc(arena, size, 0, &mut a), 0);
                    assert_eq!(vmspace_arena_free(arena, black_box(a), size), 0);
                }
            }
            "c-handle" => {
                let mut h = vmspace_handle::default();
                // SAFETY: a live arena and valid pointers.
                unsafe {
                    assert_eq!(vmspace_arena_alloc_handle(c_plain, 100, 0, &mut h), 0);
                    assert_eq!(
                        vmspace_arena_free_handle(c_plain, black_box(h), core::ptr::null_mut()),
                        0
                    );
                }
            }
            _ => panic!("unknown kind {kind}"),
        }
    }
}
