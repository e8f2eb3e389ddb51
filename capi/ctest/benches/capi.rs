//! The cost of the C API: one allocate+free pair through `libvmspace`'s C
//! functions beside the same pair through the Rust API of the same kind of
//! arena (a `UserArena` on the mmap backend, quantum 16, instant fit), in
//! one run:
//! - by address, warm (the same size allocated and freed again), no caches;
//! - by address through per-CPU quantum caches (`CpuCaches` with `SchedPin`
//!   in Rust, an arena created with `qcache_max` in C), warm;
//! - by handle, warm;
//! - by address, churning: 1,024 live allocations of random sizes (16 B to
//!   4 KiB), each step frees one and allocates another.
//!
//! The C functions are called through `extern "C"` declarations, as a C
//! program links them: no inlining across the boundary.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use core::ffi::{c_char, c_int};

use criterion::{criterion_group, criterion_main, Criterion};
use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_capi::ctypes::{vmspace_arena_t, vmspace_handle};
use vmspace_user::{MmapBackend, SchedPin, UserArena};

// Keep the library linked (its symbols are what the declarations name).
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
    fn vmspace_arena_destroy(arena: *mut vmspace_arena_t) -> c_int;
    fn vmspace_arena_alloc(
        arena: *mut vmspace_arena_t,
        size: usize,
        flags: c_int,
        addrp: *mut usize,
    ) -> c_int;
    fn vmspace_arena_free(arena: *mut vmspace_arena_t, addr: usize, size: usize) -> c_int;
    fn vmspace_arena_alloc_handle(
        arena: *mut vmspace_arena_t,
        size: usize,
        flags: c_int,
        handlep: *mut vmspace_handle,
    ) -> c_int;
    fn vmspace_arena_free_handle(
        arena: *mut vmspace_arena_t,
        handle: vmspace_handle,
        sizep: *mut usize,
    ) -> c_int;
}

const QUANTUM: usize = 16;
const BASE: usize = 1 << 30;
const SPAN: usize = 1 << 30;
const LIVE: usize = 1024;

type Ours = UserArena<PageStore<MmapBackend>, NoSource>;

fn rust_arena(classes: usize) -> Ours {
    let mut a =
        Arena::on_pages("bench", Size(QUANTUM), MmapBackend::new(), 1 << 20, NoSource).unwrap();
    a.add(Addr(BASE), Size(SPAN)).unwrap();
    if classes == 0 {
        return UserArena::new(a);
    }
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store)).unwrap()
}

/// A C arena like [`rust_arena`].
struct CArena(*mut vmspace_arena_t);

impl CArena {
    fn new(qcache_max: usize) -> Self {
        // SAFETY: a NUL-terminated name; the rest are values.
        let a =
            unsafe { vmspace_arena_create(c"bench".as_ptr(), BASE, SPAN, QUANTUM, qcache_max, 0) };
        assert!(!a.is_null());
        CArena(a)
    }

    fn alloc(&self, size: usize) -> usize {
        let mut addr = 0;
        // SAFETY: a live arena and a valid out pointer.
        let e = unsafe { vmspace_arena_alloc(self.0, size, 0, &mut addr) };
        debug_assert_eq!(e, 0);
        addr
    }

    fn free(&self, addr: usize, size: usize) {
        // SAFETY: a live arena.
        let e = unsafe { vmspace_arena_free(self.0, addr, size) };
        debug_assert_eq!(e, 0);
    }
}

impl Drop for CArena {
    fn drop(&mut self) {
        // SAFETY: a live arena, used by nobody after this.
        assert_eq!(unsafe { vmspace_arena_destroy(self.0) }, 0);
    }
}

/// Sizes for the churn: random 16 B to 4 KiB (a fixed generator).
fn sizes(n: usize) -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            16 + (x % 4080) as usize
        })
        .collect()
}

/// Keep `LIVE` allocations, replace one per iteration.
fn churn(
    c: &mut Criterion,
    name: &str,
    mut alloc: impl FnMut(usize) -> usize,
    mut free: impl FnMut(usize, usize),
) {
    let sz = sizes(1 << 16);
    let mut live: Vec<(usize, usize)> = sz[..LIVE].iter().map(|&s| (alloc(s), s)).collect();
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            let slot = (i * 7919) % LIVE;
            let (a, s) = live[slot];
            free(a, s);
            let n = sz[i % sz.len()];
            live[slot] = (alloc(n), n);
            i += 1;
        })
    });
    for (a, s) in live {
        free(a, s);
    }
}

fn bench(c: &mut Criterion) {
    // By address, warm, no caches.
    let ours = rust_arena(0);
    c.bench_function("capi_pair/rust: SyncArena alloc+free", |b| {
        b.iter(|| {
            let a = ours.alloc(Size(100), Policy::InstantFit, Wait::No).unwrap();
            ours.free(a, Size(100)).unwrap();
        })
    });
    let theirs = CArena::new(0);
    c.bench_function("capi_pair/c: vmspace_arena_alloc+free", |b| {
        b.iter(|| {
            let a = theirs.alloc(100);
            theirs.free(a, 100);
        })
    });

    // Per-CPU quantum caches, warm.
    let cached = rust_arena(8);
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let caches = CpuCaches::new(&cached, SchedPin::new(), store).unwrap();
    c.bench_function("capi_pair/rust: CpuCaches alloc+free (32)", |b| {
        b.iter(|| {
            let a = caches.alloc(Size(32)).unwrap();
            caches.free(a, Size(32)).unwrap();
        })
    });
    drop(caches);
    let c_cached = CArena::new(8 * QUANTUM);
    c.bench_function("capi_pair/c: vmspace_arena_alloc+free, quantum caches (32)", |b| {
        b.iter(|| {
            let a = c_cached.alloc(32);
            c_cached.free(a, 32);
        })
    });

    // By handle, warm.
    c.bench_function("capi_pair/rust: alloc_handle+free_handle_parts", |b| {
        b.iter(|| {
            let h = ours.with(|a| a.alloc_handle(Size(100), Policy::InstantFit)).unwrap();
            ours.free_handle_parts(h.addr(), h.tag()).unwrap();
        })
    });
    c.bench_function("capi_pair/c: vmspace_arena_alloc_handle+free_handle", |b| {
        b.iter(|| {
            let mut h = vmspace_handle::default();
            // SAFETY: a live arena and valid pointers.
            unsafe {
                vmspace_arena_alloc_handle(theirs.0, 100, 0, &mut h);
                vmspace_arena_free_handle(theirs.0, h, core::ptr::null_mut());
            }
        })
    });

    // Churn with 1,024 live allocations.
    churn(
        c,
        "capi_churn/rust: SyncArena, 1024 live",
        |s| ours.alloc(Size(s), Policy::InstantFit, Wait::No).unwrap().0,
        |a, s| ours.free(Addr(a), Size(s)).unwrap(),
    );
    churn(
        c,
        "capi_churn/c: vmspace_arena, 1024 live",
        |s| theirs.alloc(s),
        |a, s| theirs.free(a, s),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
