//! Fuzz the chunk map: the input's first byte says whether the backend
//! injects faults and whether a failed protect or unmap fails part way;
//! the rest decodes into `ChunkOp`s, each applied to the map and to the
//! per-chunk model, with every chunk's state, the committed count and
//! `check()` compared after every step, and with faults every chunk's pages
//! against its state.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Size};
use vmspace_workload::chunkmap_ops::{step_checked, ChunkModel, ChunkOp, ChunkRunStats};
use vmspace_workload::pages::chunks_agree;

const PAGE: usize = 256;
const CHUNK: usize = 1024;
const CHUNKS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let faults = head & 1 != 0;
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut map =
        ChunkMap::new(&faulty, ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))).unwrap();
    if faults {
        faulty.fail_randomly(u64::from(head), 100_000);
    }
    if head & 2 != 0 {
        faulty.set_shape(FaultShape::PartWay);
    }
    let probe = |a| sim.protection(a);
    let mut model = ChunkModel::<CHUNKS>::new(CHUNKS);
    let mut stats = ChunkRunStats::default();
    while let Some(op) = ChunkOp::decode(&mut ops, CHUNKS, Size(CHUNK)) {
        step_checked(&mut map, &mut model, &op, faults, &mut stats)
            .unwrap_or_else(|(what, e)| panic!("{op:?}: {what} ({e:?})"));
        if faults {
            chunks_agree(&map, CHUNKS, &probe).unwrap_or_else(|what| panic!("{op:?}: {what}"));
        }
    }
});
