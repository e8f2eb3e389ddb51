//! Fault injection at every position: for each step of a generated
//! sequence, each backend call the step makes is failed once in turn. A
//! failing operation must leave every chunk as it was, both in the map and
//! in the simulated backend's page states; `check()` must pass.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_shim::sim::{at_offsets, PageState, Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, FaultShape, PageOps, Protection, Size};
use vmspace_workload::chunkmap_ops::{self, ChunkModel, ChunkOpGen};

const PAGE: usize = 256;
const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;
const STEPS: usize = 250;

fn config() -> ChunkMapConfig {
    ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))
}

/// Every chunk's pages in the backend agree with its state in the map.
fn backend_agrees<P: PageOps>(map: &ChunkMap<P>, sim: &SimBackend<'_>) {
    for c in 0..CHUNKS {
        let a = Addr(map.space().base().0 + c * CHUNK);
        let want = match map.state(a).unwrap() {
            ChunkState::Unmapped | ChunkState::Quarantined => PageState::Reserved,
            ChunkState::Mapped => PageState::Mapped(Protection::ReadWrite),
            ChunkState::Protected => PageState::Mapped(Protection::None),
        };
        for p in 0..CHUNK / PAGE {
            assert_eq!(sim.page_state(Addr(a.0 + p * PAGE)), Some(want), "chunk {c}");
        }
    }
}

#[test]
fn every_failing_call_position_leaves_the_map_unchanged() {
    at_offsets(4, 2 << 20, |off, buf| every_position(off, buf, FaultShape::Clean));
}

/// The same with every protect and unmap failing part way (a prefix of its
/// range changed first, as Linux's `mprotect` may): the map must put the
/// prefix back, so the pages still agree with the unchanged map.
#[test]
fn every_call_position_failing_part_way_leaves_the_map_unchanged() {
    at_offsets(2, 2 << 20, |off, buf| every_position(off, buf, FaultShape::PartWay));
}

/// The test with the simulated backend's buffer at one placement.
fn every_position(off: usize, buf: &mut Placed, shape: FaultShape) {
    let mut positions = 0;
    let mut part_way = 0;
    for k in 0..STEPS {
        let mut n = 1;
        loop {
            let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
            let faulty = FaultInjector::new(&sim);
            let mut map = ChunkMap::new(&faulty, config()).unwrap();
            let mut model = ChunkModel::<CHUNKS>::new(CHUNKS);
            let mut gen = ChunkOpGen::new(77, CHUNKS, CHUNKS, Size(CHUNK));
            for _ in 0..k {
                let op = gen.next_op();
                model.apply(&op);
                let _ = chunkmap_ops::apply(&mut map, &op);
            }
            let op = gen.next_op();
            let leaves = map.leaves_present();
            faulty.set_shape(shape);
            faulty.fail_nth(n);
            let result = chunkmap_ops::apply(&mut map, &op);
            let injected = faulty.injected() > 0;
            part_way += faulty.changed_part_way();
            faulty.clear();
            map.check().unwrap_or_else(|e| panic!("offset {off} step {k} call {n}: {e}"));
            backend_agrees(&map, &sim);
            if !injected {
                break;
            }
            positions += 1;
            match result {
                Err(e) => {
                    chunkmap_ops::compare(&map, &model).unwrap_or_else(|w| {
                        panic!("offset {off} step {k} call {n} ({op:?}, {e}): {w}")
                    });
                    assert!(map.leaves_present() <= leaves.max(map.leaves_present()));
                }
                Ok(()) => {
                    panic!("offset {off} step {k}: {op:?} succeeded although call {n} failed")
                }
            }
            n += 1;
        }
    }
    assert!(positions > 40, "offset {off}: only {positions} call positions exercised");
    if shape == FaultShape::PartWay {
        assert!(part_way > 20, "offset {off}: only {part_way} calls failed part way");
    }
}
