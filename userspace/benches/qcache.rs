//! Quantum caches and thread-safe arenas, side by side in one run:
//! - the quantum-cache hit path: one allocate+free pair through a warm
//!   `CacheHandle`, and through warm per-CPU `CpuCaches`, pinned by
//!   restartable sequences (`RseqPin`, the default) or by `SchedPin`
//!   (`sched_getcpu` and a try-lock around each operation);
//! - throughput of random small allocate/free traffic with 1 and 2 threads:
//!   our `SyncArena` through per-thread `CacheHandle`s, through one shared
//!   set of per-CPU caches (`RseqPin`), the same arena with no caches (every
//!   call takes the one lock), and the `vmem` crate with its mutex.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena};
use vmspace_workload::Rng;

const QUANTUM: usize = 16;
const CLASSES: usize = 8;
/// Allocations each thread keeps live while it churns.
const WINDOW: usize = 32;
/// Operations (allocate+free pairs) per thread per measured batch.
const PAIRS: usize = 20_000;

type Ours = UserArena<PageStore<MmapBackend>, NoSource>;

fn ours(classes: usize) -> Ours {
    let mut a =
        Arena::on_pages("bench", Size(QUANTUM), MmapBackend::new(), 1 << 20, NoSource).unwrap();
    a.add(Addr(1 << 30), Size(1 << 31)).unwrap();
    if classes == 0 {
        return UserArena::new(a);
    }
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store)).unwrap()
}

struct Tags;

// SAFETY: fresh, correctly sized and aligned blocks from the global allocator;
// frees only what it handed out.
unsafe impl vmem::Allocator for Tags {
    fn allocate(&self) -> Option<NonNull<vmem::Bt>> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { std::alloc::alloc(std::alloc::Layout::new::<vmem::Bt>()) }.cast())
    }
    unsafe fn deallocate(&self, ptr: NonNull<vmem::Bt>) {
        // SAFETY: `ptr` came from `allocate` with this layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr().cast(), std::alloc::Layout::new::<vmem::Bt>()) }
    }
}

type Theirs = vmem::Arena<'static, 'static, Tags, std::sync::Mutex<()>>;

fn theirs() -> Theirs {
    let a = vmem::Arena::create("bench", QUANTUM, None, Tags).unwrap();
    a.add_span(1 << 30, 1 << 31).unwrap();
    a
}

fn sizes(seed: u64) -> Vec<usize> {
    let mut r = Rng::new(seed);
    (0..PAIRS).map(|_| QUANTUM * r.between(1, CLASSES)).collect()
}

/// One thread's churn: keep `WINDOW` live, replace one per step.
fn churn(
    sizes: &[usize],
    mut alloc: impl FnMut(usize) -> usize,
    mut free: impl FnMut(usize, usize),
) {
    let mut live: Vec<(usize, usize)> = sizes[..WINDOW].iter().map(|&s| (alloc(s), s)).collect();
    for (i, &s) in sizes.iter().enumerate() {
        let slot = i % WINDOW;
        let (a, old) = live[slot];
        free(a, old);
        live[slot] = (alloc(s), s);
    }
    for (a, s) in live {
        free(a, s);
    }
}

/// Time `threads` threads each running `work(thread)` once.
fn timed(threads: usize, work: impl Fn(usize) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || work(t));
        }
    });
    start.elapsed()
}

fn hit_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("qcache_hit");
    g.throughput(Throughput::Elements(1)).measurement_time(Duration::from_secs(2));
    let arena = ours(CLASSES);
    let mut h = CacheHandle::new(&arena);
    let warm = h.alloc(Size(32)).unwrap();
    h.free(warm, Size(32)).unwrap();
    g.bench_function("alloc+free pair", |b| {
        b.iter(|| {
            let a = h.alloc(std::hint::black_box(Size(32))).unwrap();
            h.free(a, Size(32)).unwrap();
        })
    });
    drop(h);
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let pin = RseqPin::new();
    assert!(pin.uses_rseq() || !cfg!(target_arch = "x86_64"), "no rseq here: glibc 2.35+?");
    let cpu = CpuCaches::new(&arena, pin, store).unwrap();
    let warm = cpu.alloc(Size(32)).unwrap();
    cpu.free(warm, Size(32)).unwrap();
    g.bench_function("per-CPU caches pair", |b| {
        b.iter(|| {
            let a = cpu.alloc(std::hint::black_box(Size(32))).unwrap();
            cpu.free(a, Size(32)).unwrap();
        })
    });
    drop(cpu);
    let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
    let cpu = CpuCaches::new(&arena, SchedPin::new(), store).unwrap();
    let warm = cpu.alloc(Size(32)).unwrap();
    cpu.free(warm, Size(32)).unwrap();
    g.bench_function("per-CPU caches pair, SchedPin", |b| {
        b.iter(|| {
            let a = cpu.alloc(std::hint::black_box(Size(32))).unwrap();
            cpu.free(a, Size(32)).unwrap();
        })
    });
    drop(cpu);
    let locked = ours(0);
    g.bench_function("single-lock arena pair", |b| {
        b.iter(|| {
            let a =
                locked.alloc(std::hint::black_box(Size(32)), Policy::InstantFit, Wait::No).unwrap();
            locked.free(a, Size(32)).unwrap();
        })
    });
    let v = theirs();
    g.bench_function("vmem crate pair", |b| {
        b.iter(|| {
            let a = v.alloc(std::hint::black_box(32), vmem::AllocPolicy::InstantFit).unwrap();
            v.free(a).unwrap();
        })
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("qcache_throughput");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let traces: Vec<Vec<usize>> = (0..2).map(|t| sizes(7 + t)).collect();
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((threads * PAIRS) as u64));
        let cached = ours(CLASSES);
        g.bench_function(BenchmarkId::new("ours qcache", threads), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed(threads, |t| {
                            let mut h = CacheHandle::new(&cached);
                            let h = std::cell::RefCell::new(&mut h);
                            churn(
                                &traces[t],
                                |s| h.borrow_mut().alloc(Size(s)).unwrap().0,
                                |a, s| h.borrow_mut().free(Addr(a), Size(s)).unwrap(),
                            );
                        })
                    })
                    .sum()
            })
        });
        let shared = ours(CLASSES);
        let store = PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap();
        let cpu = CpuCaches::new(&shared, RseqPin::new(), store).unwrap();
        g.bench_function(BenchmarkId::new("ours per-CPU caches", threads), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed(threads, |t| {
                            churn(
                                &traces[t],
                                |s| cpu.alloc(Size(s)).unwrap().0,
                                |a, s| cpu.free(Addr(a), Size(s)).unwrap(),
                            );
                        })
                    })
                    .sum()
            })
        });
        drop(cpu);
        let locked = ours(0);
        g.bench_function(BenchmarkId::new("ours single lock", threads), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed(threads, |t| {
                            churn(
                                &traces[t],
                                |s| locked.alloc(Size(s), Policy::InstantFit, Wait::No).unwrap().0,
                                |a, s| locked.free(Addr(a), Size(s)).unwrap(),
                            );
                        })
                    })
                    .sum()
            })
        });
        let v = theirs();
        g.bench_function(BenchmarkId::new("vmem crate", threads), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        timed(threads, |t| {
                            churn(
                                &traces[t],
                                |s| v.alloc(s, vmem::AllocPolicy::InstantFit).unwrap(),
                                |a, _| v.free(a).unwrap(),
                            );
                        })
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hit_path, throughput);
criterion_main!(benches);
