//! Threads racing `ensure_mapped` on overlapping ranges: every chunk is
//! mapped exactly once (counted by the simulated backend), every leaf page
//! once, and `is_mapped` readers running alongside never see a chunk go
//! from mapped back to unmapped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};
use vmspace_workload::Rng;

const PAGE: usize = 256;
const CHUNK: usize = 1024;
const CHUNKS: usize = 2048;

fn race(threads: usize, seed: u64) {
    let mut buf = vec![0u8; 3 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let map = ChunkMap::new(&sim, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
    let base = map.space().base().0;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..threads {
            let map = &map;
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (t as u64 * 0x9E37));
                // Overlapping ranges in the first half, then everything.
                for _ in 0..300 {
                    let first = rng.below(CHUNKS / 2);
                    let n = rng.between(1, 40).min(CHUNKS - first);
                    let skew = rng.below(CHUNK);
                    let r =
                        Range::from_size(Addr(base + first * CHUNK + skew), Size(n * CHUNK - skew))
                            .unwrap();
                    map.ensure_mapped(r).unwrap();
                    assert!(map.is_mapped(r.base()) && map.is_mapped(Addr(r.limit().0 - 1)));
                }
                map.ensure_mapped(map.space()).unwrap();
            });
        }
        // A reader: once seen mapped, a chunk stays mapped.
        let (map, done) = (&map, &done);
        s.spawn(move || {
            let mut seen = vec![false; CHUNKS];
            while !done.load(Ordering::Relaxed) {
                for (c, was) in seen.iter_mut().enumerate() {
                    let now = map.is_mapped(Addr(base + c * CHUNK));
                    assert!(now || !*was, "chunk {c} went back to unmapped");
                    *was = now;
                }
                if seen.iter().all(|&m| m) {
                    break;
                }
            }
        });
        // Stop the reader once the writers are done (scope joins them first
        // only at the end, so poll the map).
        while map.committed_chunks() < CHUNKS {
            std::thread::yield_now();
        }
        done.store(true, Ordering::Relaxed);
    });
    map.check().unwrap();
    assert_eq!(map.committed_chunks(), CHUNKS);
    let s = sim.stats();
    let leaves = CHUNKS / PAGE;
    let pages_per_chunk = (CHUNK / PAGE) as u64;
    // Directory (1 page) + each leaf once + each chunk once.
    assert_eq!(s.pages_mapped_total, 1 + leaves as u64 + CHUNKS as u64 * pages_per_chunk);
    assert_eq!(s.refused[Op::Map as usize], 0, "no chunk was mapped twice");
    assert_eq!(map.leaves_present(), leaves);
}

#[test]
fn two_threads_map_each_chunk_once() {
    for seed in 0..4 {
        race(2, seed);
    }
}

#[test]
fn four_threads_map_each_chunk_once() {
    for seed in 0..4 {
        race(4, seed);
    }
}

/// Threads mixing `ensure_mapped`, `quarantine`, `protect` and `unprotect`
/// on overlapping ranges: afterwards the map is consistent and agrees with
/// the backend's page states chunk by chunk.
#[test]
fn mixed_operations_race_consistently() {
    use vmspace::chunkmap::{ChunkMapError, ChunkState};
    use vmspace_shim::sim::PageState;
    use vmspace_shim::Protection;
    for seed in 0..4u64 {
        let mut buf = vec![0u8; 3 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let map =
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
        let base = map.space().base().0;
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(seed * 16 + t);
                    for _ in 0..400 {
                        let first = rng.below(600);
                        let n = rng.between(1, 24);
                        let r =
                            Range::from_size(Addr(base + first * CHUNK), Size(n * CHUNK)).unwrap();
                        let result = match rng.below(4) {
                            0 => map.ensure_mapped(r),
                            1 => map.quarantine(r),
                            2 => map.protect(r),
                            _ => map.unprotect(r),
                        };
                        match result {
                            Ok(()) | Err(ChunkMapError::NotMapped { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        map.check().unwrap();
        for c in 0..CHUNKS {
            let a = Addr(base + c * CHUNK);
            let want = match map.state(a).unwrap() {
                ChunkState::Unmapped | ChunkState::Quarantined => PageState::Reserved,
                ChunkState::Mapped => PageState::Mapped(Protection::ReadWrite),
                ChunkState::Protected => PageState::Mapped(Protection::None),
            };
            assert_eq!(sim.page_state(a), Some(want), "chunk {c}");
        }
        assert_eq!(sim.stats().refused, [0; 5], "no call broke the backend's contract");
    }
}

/// The same race on real mmap: 4 threads ensure overlapping ranges of a
/// 64 GiB space of 1 MiB chunks are mapped and, at once, write to them;
/// every write lands in mapped memory and is counted exactly once.
#[test]
fn threads_race_on_mmap() {
    use std::sync::atomic::AtomicU64;
    use vmspace_user::MmapBackend;
    const MIB: usize = 1 << 20;
    let map =
        ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(64 << 30), Size(MIB))).unwrap();
    let base = map.space().base().0;
    let counter = |c: usize| {
        // SAFETY: only called for chunks the caller has just ensured are
        // mapped; the first word of each chunk is used only atomically.
        unsafe { AtomicU64::from_ptr(Addr(base + c * MIB).as_ptr()) }
    };
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let map = &map;
            s.spawn(move || {
                let mut rng = Rng::new(100 + t);
                for _ in 0..200 {
                    let first = rng.below(256);
                    let n = rng.between(1, 16);
                    let r = Range::from_size(Addr(base + first * MIB), Size(n * MIB)).unwrap();
                    map.ensure_mapped(r).unwrap();
                    counter(first + rng.below(n)).fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    map.check().unwrap();
    let total: u64 = (0..272)
        .filter(|&c| map.is_mapped(Addr(base + c * MIB)))
        .map(|c| counter(c).load(Ordering::Relaxed))
        .sum();
    assert_eq!(total, 4 * 200);
}

/// A backend whose `map` of a chunk holds its caller until some waiter has
/// called `relax` three times: the chunk map must let a waiter relax through
/// the backend (a kernel yields there), not just spin.
struct HeldMap<'a> {
    sim: &'a SimBackend<'a>,
    chunk: usize,
    in_map: AtomicBool,
    relaxed: AtomicUsize,
    chunk_maps: AtomicUsize,
}

// SAFETY: forwards every call to the simulated backend, which upholds the
// contract; holding a `map` call back for a while changes nothing it does.
unsafe impl PageOps for HeldMap<'_> {
    fn page_size(&self) -> Size {
        self.sim.page_size()
    }
    fn name(&self) -> &'static str {
        "held map"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.sim.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `release`'s contract.
        unsafe { self.sim.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        if range.size().0 == self.chunk {
            self.chunk_maps.fetch_add(1, Ordering::Relaxed);
            self.in_map.store(true, Ordering::Release);
            // Give up after a while (and let the test fail on the count)
            // rather than hang a waiter that never relaxes. A liveness
            // bound only: on a loaded machine the waiter may be slow to run.
            let t0 = std::time::Instant::now();
            while self.relaxed.load(Ordering::Acquire) < 3 && t0.elapsed().as_secs() < 30 {
                std::thread::yield_now();
            }
        }
        // SAFETY: the caller upholds `map`'s contract.
        unsafe { self.sim.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { self.sim.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `protect`'s contract.
        unsafe { self.sim.protect(range, prot) }
    }
    fn relax(&self) {
        self.relaxed.fetch_add(1, Ordering::AcqRel);
        std::thread::yield_now();
    }
}

#[test]
fn a_waiter_relaxes_through_the_backend_while_the_claimant_maps() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let held = HeldMap {
        sim: &sim,
        chunk: CHUNK,
        in_map: AtomicBool::new(false),
        relaxed: AtomicUsize::new(0),
        chunk_maps: AtomicUsize::new(0),
    };
    let map = ChunkMap::new(&held, ChunkMapConfig::new(Size(64 * CHUNK), Size(CHUNK))).unwrap();
    let chunk = Range::from_size(map.space().base(), Size(CHUNK)).unwrap();
    std::thread::scope(|s| {
        let claimant = s.spawn(|| map.ensure_mapped(chunk));
        while !held.in_map.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // The claimant is inside `map` with the chunk claimed: this waits.
        map.ensure_mapped(chunk).unwrap();
        claimant.join().unwrap().unwrap();
    });
    assert!(
        held.relaxed.load(Ordering::Relaxed) >= 3,
        "the waiter never relaxed through the backend"
    );
    assert!(map.is_mapped(chunk.base()));
    assert_eq!(held.chunk_maps.load(Ordering::Relaxed), 1, "the chunk was mapped once");
    assert_eq!(map.committed_chunks(), 1);
}
