//! Loom model of the chunk map's claim/publish protocol, on the real code
//! compiled against loom's atomics (`make loom`): two threads racing
//! `ensure_mapped` over overlapping chunks (one sharing a leaf page with
//! the other's) map each chunk and each leaf page exactly once, whatever
//! the interleaving, and a reader never sees a chunk go from mapped back to
//! unmapped.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};

const PAGE: usize = 256;
const CHUNK: usize = 1024;

/// The simulated backend, with waits that yield to loom's scheduler (a
/// waiter spinning without yielding would never let the claimant run).
struct Yielding(&'static SimBackend<'static>);

// SAFETY: every call is forwarded to the simulated backend, which keeps the
// contract; only `relax` differs, and it has no contract.
unsafe impl PageOps for Yielding {
    fn page_size(&self) -> Size {
        self.0.page_size()
    }
    fn name(&self) -> &'static str {
        "sim (loom)"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.0.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `release`'s contract.
        unsafe { self.0.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `map`'s contract.
        unsafe { self.0.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `unmap`'s contract.
        unsafe { self.0.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: the caller upholds `protect`'s contract.
        unsafe { self.0.protect(range, prot) }
    }
    fn relax(&self) {
        thread::yield_now();
    }
}

#[test]
fn racing_for_a_new_leaf_maps_it_and_each_chunk_once() {
    race(false);
}

#[test]
fn racing_for_chunks_of_a_present_leaf_maps_each_once() {
    race(true);
}

/// Two threads: `ensure_mapped` of chunks 0..2 and of chunks 1..3. With
/// `leaf_present`, chunk 10 (in the same leaf page) is mapped first, so the
/// threads race for the chunks alone; otherwise for the leaf page too (the
/// first claims it, the other waits for it to be published).
fn race(leaf_present: bool) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.max_branches = 1_000_000;
    b.check(move || {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; 1 << 18].into_boxed_slice());
        let buf_ptr = buf as *mut [u8];
        let sim: &'static SimBackend<'static> =
            Box::leak(Box::new(SimBackend::new(buf, PAGE).unwrap()));
        // 64 chunks of 1 KiB; a leaf page (256 bytes) covers all of them.
        let config = ChunkMapConfig::new(Size(64 * CHUNK), Size(CHUNK));
        let map = Arc::new(ChunkMap::new(Yielding(sim), config).unwrap());
        let base = map.space().base().0;
        let chunks = move |first: usize, n: usize| {
            Range::from_size(Addr(base + first * CHUNK), Size(n * CHUNK)).unwrap()
        };
        if leaf_present {
            map.ensure_mapped(chunks(10, 1)).unwrap();
        }
        let maps_before = sim.stats().calls[Op::Map as usize];
        let t = {
            let map = map.clone();
            thread::spawn(move || map.ensure_mapped(chunks(0, 2)).unwrap())
        };
        map.ensure_mapped(chunks(1, 2)).unwrap();
        // Chunk 1, claimed by both, is mapped and stays so while the other
        // thread may still be working on chunk 0.
        assert!(map.is_mapped(Addr(base + CHUNK)));
        t.join().unwrap();
        for c in 0..3 {
            assert!(map.is_mapped(Addr(base + c * CHUNK)), "chunk {c} not mapped");
        }
        assert!(!map.is_mapped(Addr(base + 3 * CHUNK)));
        assert_eq!(map.committed_chunks(), 3 + usize::from(leaf_present));
        assert_eq!(map.leaves_present(), 1, "the leaf page mapped once");
        // The leaf page, then the chunks in at most one call per run each
        // thread claimed: never a chunk twice (the simulated backend
        // refuses mapping what is mapped, which would have failed above).
        let maps = sim.stats().calls[Op::Map as usize] - maps_before;
        assert!((1..=4).contains(&maps), "{maps} map calls");
        let chunks_mapped = 3 + usize::from(leaf_present);
        assert_eq!(
            sim.stats().mapped_pages * PAGE,
            chunks_mapped * CHUNK + map.metadata_mapped().0
        );
        map.check().unwrap();
        drop(map);
        // SAFETY: leaked above; the map using them is gone.
        unsafe {
            drop(Box::from_raw(sim as *const SimBackend<'static> as *mut SimBackend<'static>));
            drop(Box::from_raw(buf_ptr));
        }
    });
}
