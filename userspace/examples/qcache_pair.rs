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
//! ```
//!
//! Arguments: rounds (default 40) and pairs a round (default 2,000,000).

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::{CacheHandle, CpuCaches};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches};

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

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = args.first().copied().unwrap_or(40);
    let n = args.get(1).copied().unwrap_or(2_000_000);
    let mut a =
        Arena::on_pages("pairs", Size(16), MmapBackend::new(), 1 << 20, NoSource).expect("arena");
    a.add(Addr(1 << 30), Size(1 << 31)).expect("span");
    let slabs = PageStore::new(MmapBackend::new(), Size(1 << 20)).expect("store");
    let arena = UserArena::with_quantum_caches(a, QCacheConfig::new(8, slabs)).expect("caches");
    let store = || PageStore::new(MmapBackend::new(), Size(1 << 20)).expect("store");
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
