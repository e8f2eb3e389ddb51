//! Round 63b outside review: the chunk map under random faults, several
//! per operation (so rollbacks fail too), part-way shape, with several
//! chunk and page sizes. After every step: `check()` holds; a plain
//! `Backend` failure left every chunk as it was; after a
//! `RollbackFailed`, chunks outside `lost` are as they were; and always
//! the documented promise holds that no chunk is recorded more open than
//! its pages are (Mapped: every page read-write; Protected: every page
//! committed; Unmapped/Quarantined: no page committed). Ranges run over
//! the end of the space too (refused, changing nothing).

mod outside_r63b_common;

use outside_r63b_common::seeds;
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Protection, Range, Size};
use vmspace_workload::Rng;

fn run(seed: u64, page: usize, chunk_pages: usize, chunks: usize, rate: u32) {
    let mut buf = vec![0u8; 6 << 20];
    let sim = SimBackend::new(&mut buf, page).unwrap();
    let fi = FaultInjector::new(&sim);
    let chunk = page * chunk_pages;
    let mut m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(chunks * chunk), Size(chunk))).unwrap();
    let base = m.space().base().0;
    let states = |m: &ChunkMap<_>| -> Vec<ChunkState> {
        (0..chunks).map(|c| m.state(Addr(base + c * chunk)).unwrap()).collect()
    };
    let mut rng = Rng::new(seed | 1);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_randomly(seed, rate);
    for step in 0..1000 {
        let before = states(&m);
        let c0 = rng.below(chunks);
        let c1 = (c0 + 1 + rng.below(6)).min(chunks + 1); // may pass the end
        let exact = rng.below(2) == 0;
        let (lo, hi) = if exact {
            (base + c0 * chunk, base + c1 * chunk)
        } else {
            let lo = base + c0 * chunk + rng.below(chunk);
            (lo, (lo + 1 + rng.below((c1 - c0) * chunk)).max(lo + 1))
        };
        let range = Range::new(Addr(lo), Addr(hi)).unwrap();
        let past_end = hi > base + chunks * chunk;
        let what = rng.below(7);
        let r = match what {
            0 | 1 => m.ensure_mapped(range),
            2 => m.quarantine(range),
            3 => m.protect(range),
            4 => m.unprotect(range),
            5 => m.unmap(range),
            _ => m.trim().map(|_| ()),
        };
        if let Err(e) = m.check() {
            panic!("seed {seed} step {step}: check after {r:?}: {e:?}");
        }
        let after = states(&m);
        if past_end && what != 6 {
            assert!(r.is_err(), "seed {seed} step {step}: range past the end accepted");
            assert_eq!(after, before, "seed {seed} step {step}: refused range changed states");
        }
        match r {
            Ok(()) => {
                let (a, b) = ((lo - base) / chunk, (hi - base - 1) / chunk + 1);
                let mut expect = before.clone();
                if what != 6 {
                    for c in a..b {
                        expect[c] = match (what, before[c]) {
                            (0 | 1, _) => ChunkState::Mapped,
                            (2, ChunkState::Unmapped) => ChunkState::Quarantined,
                            (2, s) => s,
                            (3, ChunkState::Mapped | ChunkState::Protected) => ChunkState::Protected,
                            (4, ChunkState::Mapped | ChunkState::Protected) => ChunkState::Mapped,
                            (3 | 4, s) => panic!("seed {seed} step {step}: (un)protect of a {s:?} chunk {c} succeeded"),
                            (5, _) => ChunkState::Unmapped,
                            _ => unreachable!(),
                        };
                    }
                }
                assert_eq!(after, expect, "seed {seed} step {step}: op {what} on chunks {a}..{b}");
            }
            Err(ChunkMapError::RollbackFailed { lost, .. }) => {
                for c in 0..chunks {
                    let a = Addr(base + c * chunk);
                    if !lost.contains_addr(a) {
                        assert_eq!(
                            after[c], before[c],
                            "seed {seed} step {step} chunk {c} outside lost {lost:?}"
                        );
                    }
                }
            }
            Err(ref e) => {
                assert_eq!(after, before, "seed {seed} step {step}: failed ({e:?}) yet changed")
            }
        }
        // No chunk recorded more open than its pages.
        for (c, state) in after.iter().enumerate().take(chunks) {
            for p in 0..chunk_pages {
                let a = Addr(base + c * chunk + p * page);
                let st = sim.page_state(a).unwrap();
                let ok = match state {
                    ChunkState::Mapped => st == PageState::Mapped(Protection::ReadWrite),
                    ChunkState::Protected => matches!(st, PageState::Mapped(_)),
                    ChunkState::Unmapped | ChunkState::Quarantined => {
                        !matches!(st, PageState::Mapped(_))
                    }
                };
                assert!(ok, "seed {seed} step {step} chunk {c} page {p}: recorded {state:?}, page {st:?} (after {r:?})");
            }
        }
        let lk = m.lookup();
        for (c, &state) in after.iter().enumerate().take(chunks) {
            let a = Addr(base + c * chunk + rng.below(chunk));
            assert_eq!(
                m.is_mapped(a),
                state == ChunkState::Mapped,
                "seed {seed} step {step} chunk {c}: is_mapped"
            );
            assert_eq!(
                lk.is_mapped(a),
                state == ChunkState::Mapped,
                "seed {seed} step {step} chunk {c}: lookup"
            );
            assert_eq!(m.state(a), Some(state));
        }
        let census = m.census();
        for (i, st) in [
            ChunkState::Unmapped,
            ChunkState::Quarantined,
            ChunkState::Mapped,
            ChunkState::Protected,
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                census[i],
                after.iter().filter(|s| *s == st).count(),
                "seed {seed} step {step}: census {i}"
            );
        }
        let committed = after
            .iter()
            .filter(|s| matches!(s, ChunkState::Mapped | ChunkState::Protected))
            .count();
        assert_eq!(m.committed_chunks(), committed, "seed {seed} step {step}");
    }
    eprintln!("seed {seed}: injected {} part-way {}", fi.injected(), fi.changed_part_way());
    assert!(fi.injected() > 0);
    fi.clear();
    let all = m.space();
    m.unmap(all).unwrap();
    m.trim().unwrap();
    m.check().unwrap();
    assert_eq!(m.committed_chunks(), 0);
    assert_eq!(m.leaves_present(), 0);
}

#[test]
fn chunkmap_random_faults_small_chunks() {
    for seed in seeds(40) {
        run(seed * 0xDEAD_BEEF, 64, 1, 300, 300_000);
    }
}

#[test]
fn chunkmap_random_faults_multi_page_chunks() {
    for seed in seeds(40) {
        run(seed * 0x1357_9BDF, 64, 4, 200, 300_000);
    }
}

#[test]
fn chunkmap_random_faults_big_pages() {
    for seed in seeds(20) {
        run(seed * 0x2468, 256, 2, 600, 80_000);
    }
}
