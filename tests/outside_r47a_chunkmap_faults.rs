//! Round 47a outside review: the chunk map with a fault at every backend
//! call of every step of a script over several leaves (64-byte pages: 64
//! chunks a leaf, the last leaf partial), ranges straddling chunks and
//! leaves, the top chunk; after each failure the states must be unchanged
//! (outside `lost` for `RollbackFailed`), `check()` must hold, and the
//! simulated pages must agree with the states.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Protection, Range, Size};

const PAGE: usize = 64;
const CHUNK: usize = 256; // 4 pages
const CHUNKS: usize = 300; // 5 leaves, the last partial

#[derive(Clone, Copy, Debug)]
enum Op {
    Ensure(usize, usize), // byte offsets
    Quarantine(usize, usize),
    Protect(usize, usize), // chunk indices
    Unprotect(usize, usize),
    Unmap(usize, usize),
    Trim,
}

fn script() -> Vec<Op> {
    use Op::*;
    let c = CHUNK;
    vec![
        Quarantine(60 * c + 5, 70 * c),
        Ensure(62 * c + 17, 130 * c + 1), // straddles leaves 0..2, mixed states
        Ensure(CHUNKS * c - 3, CHUNKS * c), // the top chunk
        Protect(64, 70),
        Ensure(63 * c, 75 * c), // unprotects 64..70, mixed calls
        Protect(62, 131),
        Unprotect(100, 120),
        Unmap(60, 140),
        Ensure(0, 10 * c),
        Protect(2, 5),
        Unmap(0, 300),
        Trim,
    ]
}

type M<'s> = ChunkMap<&'s FaultInjector<&'s SimBackend<'s>>>;

fn apply(m: &mut M<'_>, op: Op) -> Result<(), ChunkMapError> {
    let b = m.space().base().0;
    let r = |lo: usize, hi: usize| Range::new(Addr(b + lo), Addr(b + hi)).unwrap();
    match op {
        Op::Ensure(lo, hi) => m.ensure_mapped(r(lo, hi)),
        Op::Quarantine(lo, hi) => m.quarantine(r(lo, hi)),
        Op::Protect(lo, hi) => m.protect(r(lo * CHUNK, hi * CHUNK)),
        Op::Unprotect(lo, hi) => m.unprotect(r(lo * CHUNK, hi * CHUNK)),
        Op::Unmap(lo, hi) => m.unmap(r(lo * CHUNK, hi * CHUNK)),
        Op::Trim => m.trim().map(|_| ()),
    }
}

fn states(m: &M<'_>) -> Vec<ChunkState> {
    let b = m.space().base().0;
    (0..CHUNKS).map(|c| m.state(Addr(b + c * CHUNK)).unwrap()).collect()
}

fn pages_agree(m: &M<'_>, sim: &SimBackend<'_>, what: &str, strict: bool) {
    m.check().unwrap_or_else(|e| panic!("{what}: check {e:?}"));
    let b = m.space().base().0;
    let mut committed = 0;
    for (c, s) in states(m).into_iter().enumerate() {
        for p in 0..CHUNK / PAGE {
            let st = sim.page_state(Addr(b + c * CHUNK + p * PAGE)).unwrap();
            match s {
                ChunkState::Unmapped | ChunkState::Quarantined => {
                    assert_eq!(st, PageState::Reserved, "{what}: chunk {c} {s:?} page {p}")
                }
                ChunkState::Mapped => assert_eq!(
                    st,
                    PageState::Mapped(Protection::ReadWrite),
                    "{what}: chunk {c} {s:?} page {p}"
                ),
                ChunkState::Protected => {
                    if strict {
                        assert_eq!(
                            st,
                            PageState::Mapped(Protection::None),
                            "{what}: chunk {c} {s:?} page {p}"
                        )
                    } else {
                        assert!(
                            matches!(st, PageState::Mapped(_)),
                            "{what}: chunk {c} {s:?} page {p}"
                        )
                    }
                }
            }
        }
        committed += usize::from(s.is_committed());
    }
    assert_eq!(committed, m.committed_chunks(), "{what}: committed");
    // Leaves: present exactly as the sim maps them.
    let leaves = CHUNKS.div_ceil(PAGE);
    let leaf0 = b + CHUNKS * CHUNK + leaves.div_ceil(PAGE) * PAGE;
    let mapped = (0..leaves)
        .filter(|l| matches!(sim.page_state(Addr(leaf0 + l * PAGE)), Some(PageState::Mapped(_))))
        .count();
    assert_eq!(mapped, m.leaves_present(), "{what}: leaves present");
}

fn scenario(shape: FaultShape) {
    let ops = script();
    let mut total_failures = 0;
    for k in 0..ops.len() {
        let mut n = 1;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let fi = FaultInjector::new(&sim);
            let mut m =
                ChunkMap::new(&fi, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
            for (j, op) in ops[..k].iter().enumerate() {
                apply(&mut m, *op).unwrap_or_else(|e| panic!("prefix op {j} {op:?}: {e:?}"));
            }
            let before = states(&m);
            fi.set_shape(shape);
            fi.fail_nth(n);
            let res = apply(&mut m, ops[k]);
            let calls = fi.eligible_calls();
            fi.clear();
            let what = format!("{shape:?} op {k} {:?} fail #{n}: {res:?}", ops[k]);
            match res {
                Ok(()) => {
                    pages_agree(&m, &sim, &what, true);
                    if calls < n {
                        break;
                    }
                }
                Err(ChunkMapError::RollbackFailed { lost, .. }) => {
                    total_failures += 1;
                    pages_agree(&m, &sim, &what, false);
                    let b = m.space().base().0;
                    let after = states(&m);
                    for c in 0..CHUNKS {
                        let a = Addr(b + c * CHUNK);
                        if !lost.contains_addr(a) {
                            assert_eq!(after[c], before[c], "{what}: chunk {c} outside lost");
                        }
                    }
                }
                Err(e) => {
                    total_failures += 1;
                    pages_agree(&m, &sim, &what, true);
                    assert_eq!(states(&m), before, "{what}: states changed ({e:?})");
                    apply(&mut m, ops[k]).unwrap_or_else(|e| panic!("{what}: retry {e:?}"));
                    pages_agree(&m, &sim, &format!("{what} (retried)"), true);
                    for (j, op) in ops[k + 1..].iter().enumerate() {
                        apply(&mut m, *op).unwrap_or_else(|e| {
                            panic!("{what}: later op {} {op:?}: {e:?}", k + 1 + j)
                        });
                        pages_agree(&m, &sim, &format!("{what} later op {}", k + 1 + j), true);
                    }
                }
            }
            n += 1;
            assert!(n < 500);
        }
    }
    assert!(total_failures > 20, "{total_failures}");
}

#[test]
fn every_fault_clean() {
    scenario(FaultShape::Clean);
}

#[test]
fn every_fault_part_way() {
    scenario(FaultShape::PartWay);
}
