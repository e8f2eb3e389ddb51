//! The quantum-cache hit pair (allocate and free 32 units, warm) timed
//! through a per-thread `CacheHandle` and through per-CPU `CpuCaches`
//! pinned by restartable sequences (`RseqPin`), by `SchedPin`, and by a pin
//! that does nothing (one slot, this thread alone: what the per-CPU layout
//! costs without any pinning). Rounds of each in turn, the minimum of each
//! reported: on a shared machine the minimum of interleaved rounds is what
//! reproduces.
//!
//! ```sh
//! taskset -c 1 cargo run --release -p vmspace-user --example qcache_pair -- 40 2000000
//! cargo run --release -p vmspace-user --example qcache_pair -- --threads 30
//! ```
//!
//! Arguments: rounds (default 40) and pairs a round (default 2,000,000).
//!
//! With `--threads`, throughput instead: one and then two threads, each
//! held on a CPU of its own (0, then 0 and 1) with `sched_setaffinity`,
//! run the churn of `benches/qcache.rs` (32 allocations live, one replaced a
//! step, sizes of 1 to 8 quanta, 20,000 steps, 25 times) through one
//! shared `CpuCaches` with `RseqPin`, and through a `CacheHandle` each,
//! timed from a barrier all threads pass once on their CPU to the last
//! one's end; the best of the rounds, in pairs a second, and two threads'
//! over one's;
//! and the caches' hits and misses over all rounds (how often a thread
//! took the shared lock).

use std::sync::Barrier;
use std::time::{Duration, Instant};
use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::{CacheHandle, CpuCaches};
use vmspace::{Addr, Size};

use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches};
use vmspace_workload::Rng;

/// One slot, no exclusion: only for one thread alone, as here.
struct NoPin;

// SAFETY: one slot, and every `CpuCaches` over this pin is used by this
// program's main thread alone, so no two pins of slot 0 ever overlap.
unsafe impl CpuPin for NoPin {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        0
    }
    unsafe fn unpin(&self, _: usize) {}
}

type Store = PageStore<MmapBackend>;

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `n` pairs through `caches`: CPU time per pair.
#[inline(never)]
fn per_cpu<P: CpuPin>(caches: &UserCpuCaches<'_, Store, NoSource, P>, n: usize) -> f64 {
    let t = cpu_ns();
    for _ in 0..n {
        let a = caches.alloc(std::hint::black_box(Size(32))).expect("alloc");
        caches.free(a, Size(32)).expect("free");
    }
    (cpu_ns() - t) as f64 / n as f64
}

type Shared = UserArena<Store, NoSource>;

/// An arena of quantum 16 with caches for 1 to 8 quanta.
fn shared() -> Shared {
    let mut a =
        Arena::on_pages("pairs", Size(16), MmapBackend::new(), 1 << 20, NoSource).expect("arena");
    a.add(Addr(1 << 30), Size(1 << 31)).expect("span");
    let slabs = PageStore::new(MmapBackend::new(), Size(1 << 20)).expect("store");
    UserArena::with_quantum_caches(a, QCacheConfig::new(8, slabs)).expect("caches")
}

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).expect("store")
}

/// Hold the calling thread on `cpu`.
fn hold_on(cpu: usize) {
    if let Err(e) = vmspace_user::run_only_on(cpu) {
        eprintln!("qcache_pair: cannot hold a thread on CPU {cpu} ({e}); it runs anywhere");
    }
}

/// `benches/qcache.rs`' churn: 32 live, one replaced a step.
fn churn(
    sizes: &[usize],
    mut alloc: impl FnMut(usize) -> usize,
    mut free: impl FnMut(usize, usize),
) {
    const WINDOW: usize = 32;
    let mut live: Vec<(usize, usize)> = sizes[..WINDOW].iter().map(|&s| (alloc(s), s)).collect();
    for (i, &s) in sizes.iter().enumerate() {
        let (a, old) = live[i % WINDOW];
        free(a, old);
        live[i % WINDOW] = (alloc(s), s);
    }
    for (a, s) in live {
        free(a, s);
    }
}

fn throughput(rounds: usize) {
    const STEPS: usize = 20_000;
    const REPEAT: usize = 25;
    let traces: Vec<Vec<usize>> = (0..2u64)
        .map(|t| {
            let mut r = Rng::new(7 + t);
            (0..STEPS).map(|_| 16 * r.between(1, 8)).collect()
        })
        .collect();
    let (per_cpu, own) = (shared(), shared());
    let caches = CpuCaches::new(&per_cpu, RseqPin::new(), store()).expect("caches");
    // best[kind][threads - 1]
    let mut best = [[Duration::MAX; 2]; 2];
    for _ in 0..rounds {
        for threads in [1usize, 2] {
            for (kind, row) in best.iter_mut().enumerate() {
                // Timed from when every thread is on its CPU and ready (a
                // barrier) to when the last one is done, so that spawning
                // and moving threads is not counted.
                let ready = Barrier::new(threads);
                let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
                    let workers: Vec<_> = traces
                        .iter()
                        .enumerate()
                        .take(threads)
                        .map(|(t, trace)| {
                            let (caches, own, ready) = (&caches, &own, &ready);
                            s.spawn(move || {
                                hold_on(t);
                                ready.wait();
                                let start = Instant::now();
                                for _ in 0..REPEAT {
                                    if kind == 0 {
                                        churn(
                                            trace,
                                            |s| caches.alloc(Size(s)).expect("alloc").0,
                                            |a, s| caches.free(Addr(a), Size(s)).expect("free"),
                                        );
                                    } else {
                                        let h = std::cell::RefCell::new(CacheHandle::new(own));
                                        churn(
                                            trace,
                                            |s| h.borrow_mut().alloc(Size(s)).expect("alloc").0,
                                            |a, s| {
                                                h.borrow_mut().free(Addr(a), Size(s)).expect("free")
                                            },
                                        );
                                    }
                                }
                                (start, Instant::now())
                            })
                        })
                        .collect();
                    workers.into_iter().map(|w| w.join().expect("worker")).collect()
                });
                let first = spans.iter().map(|s| s.0).min().expect("a thread");
                let last = spans.iter().map(|s| s.1).max().expect("a thread");
                row[threads - 1] = row[threads - 1].min(last - first);
            }
        }
    }
    drop(caches); // its hits are added to the arena's counters at drop
    for (arena, name) in [(&per_cpu, "CpuCaches"), (&own, "handles")] {
        let st = arena.qcache_stats();
        println!("{name}, all rounds: {} hits, {} misses", st.hits, st.misses);
    }
    for (row, name) in best.iter().zip(["CpuCaches with RseqPin", "a CacheHandle a thread"]) {
        let pairs = (STEPS * REPEAT) as f64 / 1e6;
        let one = pairs / row[0].as_secs_f64();
        let two = 2.0 * pairs / row[1].as_secs_f64();
        println!(
            "{name}: 1 thread {one:.1} M pairs/s, 2 threads {two:.1} M pairs/s: {:.2}x",
            two / one
        );
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = all.iter().filter_map(|a| a.parse().ok()).collect();
    if all.first().is_some_and(|a| a == "--threads") {
        throughput(args.first().copied().unwrap_or(30));
        return;
    }
    let rounds = args.first().copied().unwrap_or(40);
    let n = args.get(1).copied().unwrap_or(2_000_000);
    let arena = shared();
    let rseq = RseqPin::new().uses_rseq();
    let mut best = [f64::MAX; 4];
    for _ in 0..rounds {
        let mut h = CacheHandle::new(&arena);
        let t = cpu_ns();
        for _ in 0..n {
            let x = h.alloc(std::hint::black_box(Size(32))).expect("alloc");
            h.free(x, Size(32)).expect("free");
        }
        let times = [
            (cpu_ns() - t) as f64 / n as f64,
            per_cpu(&CpuCaches::new(&arena, RseqPin::new(), store()).expect("caches"), n),
            per_cpu(&CpuCaches::new(&arena, SchedPin::new(), store()).expect("caches"), n),
            per_cpu(&CpuCaches::new(&arena, NoPin, store()).expect("caches"), n),
        ];
        for (b, t) in best.iter_mut().zip(times) {
            *b = b.min(t);
        }
    }
    println!(
        "ns a pair, minimum of {rounds} rounds of {n}: CacheHandle {:.2}, CpuCaches with \
         RseqPin {:.2}{}, with SchedPin {:.2}, with no pin {:.2}",
        best[0],
        best[1],
        if rseq { "" } else { " (no rseq here: SchedPin)" },
        best[2],
        best[3]
    );
}
