//! Round 61 outside review: eight threads released together race
//! `ensure_mapped` on the same chunk of a fresh leaf, and on different
//! chunks of one fresh leaf, while the first leaf map (or the first chunk
//! map) fails. Claims: each chunk is mapped once (src/chunkmap/mod.rs:
//! "each chunk is mapped once"), a failing call changes no chunk, and
//! `check()` and the counts are exact afterwards. Sharp; PASSES here.

use std::sync::Barrier;
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Op, Range, Size};

const PAGE: usize = 64;
const CHUNK: usize = 256;
/// Three leaves of 64 chunks.
const CHUNKS: usize = 64 * 3;

fn race(same: bool, fail: u64, round: u64) {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
    let net = |s: vmspace_shim::sim::SimStats| {
        s.calls[Op::Map as usize] as i64 - s.calls[Op::Unmap as usize] as i64
    };
    let net0 = net(sim.stats());
    fi.only(&[Op::Map]);
    fi.fail_nth(fail);
    let b = m.space().base().0;
    let go = Barrier::new(8);
    let errs: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8usize)
            .map(|t| {
                let (m, go) = (&m, &go);
                s.spawn(move || {
                    // Leaf 1 (chunks 64..128); the same chunk, or one each.
                    let c = if same { 64 + 7 } else { 64 + ((t * 9 + round as usize) % 64) };
                    let r = Range::from_size(Addr(b + c * CHUNK + 5), Size(1)).unwrap();
                    go.wait();
                    let mut failed = false;
                    loop {
                        match m.ensure_mapped(r) {
                            Ok(()) => break,
                            Err(_) => failed = true,
                        }
                    }
                    assert!(m.is_mapped(r.base()));
                    failed
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    fi.clear();
    assert_eq!(errs.iter().filter(|&&e| e).count(), 1, "exactly one call saw the fault");
    m.check().unwrap();
    let mapped: Vec<usize> =
        (0..CHUNKS).filter(|&c| m.state(Addr(b + c * CHUNK)) == Some(ChunkState::Mapped)).collect();
    let want = if same { 1 } else { 8 };
    assert_eq!(mapped.len(), want);
    assert!(mapped.iter().all(|&c| (64..128).contains(&c)));
    assert_eq!(m.committed_chunks(), want);
    assert_eq!(m.leaves_present(), 1);
    assert_eq!(m.census(), [CHUNKS - want, 0, want, 0]);
    // Net of unmaps (a failed first map gives its fresh leaf back, and the
    // next thread maps it again): one map per chunk plus the one leaf, and
    // the simulator refused no call (it refuses a double map).
    assert_eq!(net(sim.stats()) - net0, want as i64 + 1, "same={same} fail={fail}");
    assert_eq!(sim.stats().refused, [0; 5], "a call broke the backend's contract");
}

#[test]
fn same_chunk_first_leaf_map_fails() {
    for round in 0..40 {
        race(true, 1, round);
    }
}

#[test]
fn same_chunk_first_chunk_map_fails() {
    for round in 0..40 {
        race(true, 2, round);
    }
}

#[test]
fn different_chunks_one_leaf_fails() {
    for round in 0..40 {
        race(false, 1, round);
        race(false, 2, round);
        race(false, 5, round);
    }
}
