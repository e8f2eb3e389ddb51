//! Outside review, round 32: the chunk map's census and counts as a
//! documented contract while threads race transitions under injected
//! backend faults (clean and part way), including `RollbackFailed`.
//!
//! Contracts (src/chunkmap/): `census` (ops.rs:225) "Chunks in each
//! state: [unmapped, quarantined, mapped, protected]" — every chunk is in
//! exactly one state, so a census read at any time adds up to `chunks()`;
//! `committed_chunks` (mod.rs:222) "Chunks committed (mapped or
//! protected)"; `leaves_present` (mod.rs:227) "Leaf pages mapped";
//! `metadata_mapped` (mod.rs:232) "Bytes of table mapped: the directory
//! and the present leaves"; `check` (check.rs:12) "the committed-chunk and
//! present-leaf counts right" (called with no other thread changing the
//! map); README: after `RollbackFailed` "the chunks it could not restore
//! are recorded in the state the backend left them in, or protected where
//! a protect left their pages mixed (never more open than the pages
//! are)". So once the threads are joined: committed = census mapped +
//! protected; the backend's mapped pages are the directory, the present
//! leaves and the committed chunks' pages; a chunk recorded mapped has
//! every page read-write, one recorded unmapped or quarantined has none
//! mapped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Protection, Range, Size};

mod outside_common;
use outside_common::Rng;

const PAGE: usize = 256;
const CHUNK: usize = 512;
const CHUNKS: usize = 1000;

fn range(rng: &mut Rng, base: usize, aligned: bool) -> Range {
    let c = rng.below(CHUNKS as u64) as usize;
    let n = 1 + rng.below(40) as usize;
    let hi = (c + n).min(CHUNKS);
    if aligned {
        Range::new(Addr(base + c * CHUNK), Addr(base + hi * CHUNK)).unwrap()
    } else {
        let lo = base + c * CHUNK + rng.below(CHUNK as u64) as usize;
        Range::new(Addr(lo), Addr((base + hi * CHUNK).max(lo + 1))).unwrap()
    }
}

fn settle(map: &ChunkMap<&FaultInjector<&SimBackend<'_>>>, sim: &SimBackend<'_>, what: &str) {
    map.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
    let census = map.census();
    assert_eq!(census.iter().sum::<usize>(), CHUNKS, "{what}: census {census:?}");
    assert_eq!(map.committed_chunks(), census[2] + census[3], "{what}: committed vs {census:?}");
    let base = map.space().base().0;
    let res = map.reservation();
    // Table pages mapped in the backend, past the space.
    let tables = (res.limit().0 - map.space().limit().0) / PAGE;
    let table_mapped = (0..tables)
        .filter(|i| {
            matches!(
                sim.page_state(Addr(map.space().limit().0 + i * PAGE)),
                Some(PageState::Mapped(_))
            )
        })
        .count();
    assert_eq!(
        map.metadata_mapped(),
        Size(table_mapped * PAGE),
        "{what}: metadata_mapped vs the backend's table pages"
    );
    let dir = CHUNKS.div_ceil(PAGE).div_ceil(PAGE);
    assert_eq!(map.leaves_present() + dir, table_mapped, "{what}: leaves_present");
    let mut committed_pages = 0;
    for c in 0..CHUNKS {
        let a = base + c * CHUNK;
        let st = map.state(Addr(a)).unwrap();
        let pages: Vec<_> =
            (0..CHUNK / PAGE).map(|p| sim.page_state(Addr(a + p * PAGE)).unwrap()).collect();
        let mapped = pages.iter().filter(|p| matches!(p, PageState::Mapped(_))).count();
        match st {
            ChunkState::Mapped => assert!(
                pages.iter().all(|p| *p == PageState::Mapped(Protection::ReadWrite)),
                "{what}: chunk {c} recorded mapped over {pages:?}"
            ),
            ChunkState::Unmapped | ChunkState::Quarantined => {
                assert_eq!(mapped, 0, "{what}: chunk {c} recorded {st:?} over {pages:?}")
            }
            ChunkState::Protected => {
                assert_eq!(mapped, pages.len(), "{what}: chunk {c} protected over {pages:?}")
            }
        }
        if matches!(st, ChunkState::Mapped | ChunkState::Protected) {
            committed_pages += CHUNK / PAGE;
        }
    }
    assert_eq!(
        sim.stats().mapped_pages,
        table_mapped + committed_pages,
        "{what}: the backend's mapped pages are the tables and the committed chunks"
    );
}

/// Counts a worker out when it ends, however it ends.
struct Out<'a>(&'a AtomicUsize);
impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

fn round(seed: u64, part_way: bool) -> (u64, u64) {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let mut map =
        ChunkMap::new(&inj, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
    let base = map.space().base().0;
    if part_way {
        inj.set_shape(FaultShape::PartWay);
    }
    let mut rollback_failed = 0;
    for r in 0..6u64 {
        inj.fail_randomly(seed * 100 + r, 60_000);
        let done = AtomicBool::new(false);
        let left = AtomicUsize::new(2);
        let bad = Mutex::new(Vec::<String>::new());
        let rf = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            let (map, done, bad, rf) = (&map, &done, &bad, &rf);
            let left = &left;
            let workers: Vec<_> = (0..2u64)
                .map(|t| {
                    s.spawn(move || {
                        let mut rng = Rng((seed * 7 + r * 13 + t + 1)
                            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            | 1);
                        // The reader stops when both workers are done, even by a panic.
                        let _out = Out(left);
                        for _ in 0..150 {
                            let res = match rng.below(4) {
                                0 => map.ensure_mapped(range(&mut rng, base, false)),
                                1 => map.quarantine(range(&mut rng, base, false)),
                                2 => map.protect(range(&mut rng, base, true)),
                                _ => map.unprotect(range(&mut rng, base, true)),
                            };
                            if let Err(ChunkMapError::RollbackFailed { .. }) = res {
                                rf.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            let reader = s.spawn(move || loop {
                let fin = done.load(Ordering::Acquire) || left.load(Ordering::Acquire) == 0;
                let c = map.census();
                if c.iter().sum::<usize>() != CHUNKS {
                    bad.lock().unwrap().push(format!("census {c:?} does not add up to {CHUNKS}"));
                }
                if map.committed_chunks() > CHUNKS {
                    bad.lock().unwrap().push(format!("committed {}", map.committed_chunks()));
                }
                if fin {
                    break;
                }
                std::thread::yield_now();
            });
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
            reader.join().unwrap();
        });
        let bad = bad.into_inner().unwrap();
        assert!(bad.is_empty(), "seed {seed} round {r}: {:?}", &bad[..bad.len().min(4)]);
        rollback_failed += rf.into_inner();
        inj.clear();
        if part_way {
            inj.set_shape(FaultShape::PartWay);
        }
        settle(&map, &sim, &format!("seed {seed} round {r} (joined)"));
        // Unmaps and a trim, alone, under faults too.
        inj.fail_randomly(seed * 1000 + r, 100_000);
        let mut rng = Rng((seed + r) | 1);
        for _ in 0..20 {
            let _ = map.unmap(range(&mut rng, base, true));
        }
        let _ = map.trim();
        inj.clear();
        if part_way {
            inj.set_shape(FaultShape::PartWay);
        }
        settle(&map, &sim, &format!("seed {seed} round {r} (unmaps)"));
    }
    (rollback_failed, inj.injected())
}

#[test]
fn census_and_counts_under_racing_faulty_transitions() {
    let (mut rf, mut injected) = (0, 0);
    for seed in 1..=4 {
        for part_way in [false, true] {
            let (a, b) = round(seed, part_way);
            rf += a;
            injected += b;
        }
    }
    assert!(injected > 0, "faults were injected");
    eprintln!("RollbackFailed seen: {rf}, faults injected: {injected}");
}
