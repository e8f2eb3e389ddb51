//! `capi_pairs KIND N`: run N allocate+free pairs of one kind, for
//! instruction counts under cachegrind (`capi/scripts/pair-counts.sh`, which
//! subtracts a run of 0 pairs so setup does not count). Kinds: `rust-addr`,
//! `c-addr` (by address, no caches), `rust-qcache`, `c-qcache` (per-CPU
//! quantum caches, 32 units), `rust-handle`, `c-handle` (by handle),
//! `vmem-nowait`, `vmem-waitok` (vmem(9)'s `vmem_alloc` and `vmem_free` of
//! 32 bytes, a cached size, with `M_NOWAIT` or `M_WAITOK`); the arenas are
//! the benchmark's (`benches/capi.rs`).

use std::hint::black_box;

use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_capi::ctypes::{vmem_t, vmspace_arena_t, vmspace_handle, M_NOWAIT, M_WAITOK};
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_handle, vmspace_arena_create, vmspace_arena_free,
    vmspace_arena_free_handle,
};
use vmspace_capi_user::vmspace_vmem_api::{vmem_alloc, vmem_create, vmem_free};
use vmspace_user::{MmapBackend, SchedPin, UserArena};

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

fn vmem_arena() -> *mut vmem_t {
    // SAFETY: a NUL-terminated name; the rest are values. Quantum caches up
    // to 8 quanta (128 bytes), as `c_arena(128)`'s.
    let vm = unsafe { vmem_create(c"pairs".as_ptr(), 1 << 30, 1 << 30, 16, 8 * 16, 0) };
    assert!(!vm.is_null());
    vm
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
    let c = CArenas { plain: c_arena(0), cached: c_arena(128), vmem: vmem_arena() };
    // Warm: one pair of each.
    for k in KINDS {
        run(k, 1, &plain, &caches, &c);
    }
    run(kind, n, &plain, &caches, &c);
}

const KINDS: [&str; 8] = [
    "rust-addr",
    "c-addr",
    "rust-qcache",
    "c-qcache",
    "rust-handle",
    "c-handle",
    "vmem-nowait",
    "vmem-waitok",
];

/// The C API's arenas: by address without caches, with caches, and vmem(9).
struct CArenas {
    plain: *mut vmspace_arena_t,
    cached: *mut vmspace_arena_t,
    vmem: *mut vmem_t,
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
    c: &CArenas,
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
                let (arena, size) = if kind == "c-addr" { (c.plain, 100) } else { (c.cached, 32) };
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
                    assert_eq!(vmspace_arena_alloc_handle(c.plain, 100, 0, &mut h), 0);
                    assert_eq!(
                        vmspace_arena_free_handle(c.plain, black_box(h), core::ptr::null_mut()),
                        0
                    );
                }
            }
            "vmem-nowait" | "vmem-waitok" => {
                let flags = if kind == "vmem-nowait" { M_NOWAIT } else { M_WAITOK };
                let mut a = 0;
                // SAFETY: a live arena and a valid out pointer; the address
                // freed is the one allocated, with its size.
                unsafe {
                    assert_eq!(vmem_alloc(c.vmem, 32, flags, &mut a), 0);
                    vmem_free(c.vmem, black_box(a), 32);
                }
            }
            _ => panic!("unknown kind {kind}"),
        }
    }
}
