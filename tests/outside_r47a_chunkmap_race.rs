//! Round 47a outside review: four threads racing `ensure_mapped`,
//! `quarantine`, `protect` and `unprotect` on overlapping ranges across
//! leaves (and the top chunk) of a shared chunk map, with random backend
//! faults (clean and part way); afterwards `check()` must hold, the
//! committed count must match the states, and the pages must agree.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Protection, Range, Size};

const PAGE: usize = 64;
const CHUNK: usize = 128;
const CHUNKS: usize = 200;

fn run(seed: u64, shape: FaultShape, rate: u32) {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
    fi.set_shape(shape);
    fi.fail_randomly(seed, rate);
    let b = m.space().base().0;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = &m;
            s.spawn(move || {
                let mut x = seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for _ in 0..400 {
                    let c0 = if next() % 5 == 0 {
                        CHUNKS - 1 - (next() % 3) as usize
                    } else {
                        (next() % CHUNKS as u64) as usize
                    };
                    let c1 = (c0 + 1 + (next() % 80) as usize).min(CHUNKS);
                    let off = (next() % CHUNK as u64) as usize;
                    let lo = b + c0 * CHUNK + off.min(CHUNK - 1);
                    let hi = b + c1 * CHUNK - (next() % 2) as usize * (off / 2);
                    let r = Range::new(Addr(lo), Addr(hi.max(lo + 1))).unwrap();
                    let exact = Range::new(Addr(b + c0 * CHUNK), Addr(b + c1 * CHUNK)).unwrap();
                    let res = match next() % 4 {
                        0 => m.ensure_mapped(r),
                        1 => m.quarantine(r),
                        2 => m.protect(exact),
                        _ => m.unprotect(exact),
                    };
                    match res {
                        Ok(())
                        | Err(ChunkMapError::NotMapped { .. })
                        | Err(ChunkMapError::Backend { .. })
                        | Err(ChunkMapError::RollbackFailed { .. }) => {}
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            });
        }
    });
    fi.clear();
    let what = format!("seed {seed:#x} {shape:?}");
    m.check().unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let mut committed = 0;
    for c in 0..CHUNKS {
        let s = m.state(Addr(b + c * CHUNK)).unwrap();
        committed += usize::from(s.is_committed());
        for p in 0..CHUNK / PAGE {
            let st = sim.page_state(Addr(b + c * CHUNK + p * PAGE)).unwrap();
            match s {
                ChunkState::Unmapped | ChunkState::Quarantined => {
                    assert_eq!(st, PageState::Reserved, "{what}: chunk {c} {s:?}")
                }
                ChunkState::Mapped => {
                    assert_eq!(st, PageState::Mapped(Protection::ReadWrite), "{what}: chunk {c}")
                }
                ChunkState::Protected => {
                    assert!(matches!(st, PageState::Mapped(_)), "{what}: chunk {c}")
                }
            }
        }
        assert_eq!(m.is_mapped(Addr(b + c * CHUNK)), s == ChunkState::Mapped);
    }
    assert_eq!(committed, m.committed_chunks(), "{what}");
    assert_eq!(m.census().iter().sum::<usize>(), CHUNKS, "{what}");
}

#[test]
fn racing_with_faults() {
    for s in 0..6u64 {
        run(0x1357_9bdf_2468_ace1 ^ s, FaultShape::Clean, 30_000);
        run(0x2468_ace1_1357_9bdf ^ s, FaultShape::PartWay, 30_000);
    }
}
