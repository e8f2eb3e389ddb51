//! Round 20, an outside reviewer's tests of today's `FaultShape::PartWay`
//! (`shim/src/fault.rs`) and `vmspace_workload::pages`, and of the chunk
//! map and the VM arena driven through them.
//!
//! Each test is marked `// DEFECT:` (failed when written, because of a
//! defect; fixed in the commit that added this file, so it now guards the
//! fix) or `// HOLDS:` (passed: a claim checked and found true).

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, PageOps, Pages, Protection, Range, ShimError, Size,
};
use vmspace_user::MmapBackend;
use vmspace_workload::pages;
use vmspace_workload::Rng;

mod chunk_map;
mod injector;
mod page_checks;
mod vm_arena;

use chunk_map::*;

pub(crate) const PAGE: usize = 256;

/// The sim's protection of the page at `a` (`None`: not mapped).
pub(crate) fn prot(sim: &SimBackend<'_>, a: Addr) -> Option<Protection> {
    sim.protection(a)
}

/// The pages of `r`, each `Some(protection)` or `None`.
pub(crate) fn prots(sim: &SimBackend<'_>, r: Range, page: usize) -> Vec<Option<Protection>> {
    (0..r.size().0 / page).map(|i| prot(sim, Addr(r.base().0 + i * page))).collect()
}

pub(crate) fn sub(r: Range, first: usize, n: usize, page: usize) -> Range {
    Range::from_size(Addr(r.base().0 + first * page), Size(n * page)).unwrap()
}
