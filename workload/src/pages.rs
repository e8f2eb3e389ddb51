//! The pages under a structure against what the structure records: the
//! one property every put-back after a failed backend call must keep,
//! whatever else failed. A record is never more open than its pages (a
//! chunk or tract recorded read-write is read-write; one recorded
//! inaccessible may be anything mapped).
//!
//! The pages are read through a probe, so that the same checks serve the
//! simulated backend (`SimBackend::page_state`) and anything else that can
//! say how a page is mapped.

use vmspace::chunkmap::{ChunkMap, ChunkState};
use vmspace::vmarena::VmArena;
use vmspace_shim::{Addr, PageOps, Protection};

/// How a page is mapped: `Some(protection)`, or `None` when it is not.
pub type Probe<'a> = &'a dyn Fn(Addr) -> Option<Protection>;

/// How much a protection allows: none < read < read-write.
pub const fn openness(p: Protection) -> u8 {
    match p {
        Protection::None => 0,
        Protection::Read => 1,
        Protection::ReadWrite => 2,
    }
}

/// Each page of `[addr, addr + bytes)` (of `page` bytes) through `probe`.
fn each_page(
    addr: Addr,
    bytes: usize,
    page: usize,
    probe: Probe<'_>,
) -> impl Iterator<Item = Option<Protection>> + '_ {
    (0..bytes / page).map(move |i| probe(Addr(addr.0 + i * page)))
}

/// The first `chunks` chunks of `map` against their pages: mapped chunks
/// read-write, protected ones mapped (in any protection), unmapped and
/// quarantined ones not mapped.
pub fn chunks_agree<P: PageOps>(
    map: &ChunkMap<P>,
    chunks: usize,
    probe: Probe<'_>,
) -> Result<(), &'static str> {
    let page = map.ops().page_size().0;
    let chunk = map.chunk_size().0;
    for c in 0..chunks.min(map.chunks()) {
        let a = Addr(map.space().base().0 + c * chunk);
        let state = map.state(a).ok_or("a chunk has no state")?;
        for real in each_page(a, chunk, page, probe) {
            let ok = match state {
                ChunkState::Mapped => real == Some(Protection::ReadWrite),
                ChunkState::Protected => real.is_some(),
                ChunkState::Unmapped | ChunkState::Quarantined => real.is_none(),
            };
            if !ok {
                return Err("a chunk's pages are not as its state says");
            }
        }
    }
    Ok(())
}

/// Every allocated tract of `arena` against its pages: mapped, at least as
/// open as recorded; with `exact`, exactly as recorded.
pub fn tracts_agree<P: PageOps>(
    arena: &VmArena<P>,
    exact: bool,
    probe: Probe<'_>,
) -> Result<(), &'static str> {
    let page = arena.page_size().0;
    for t in 0..arena.tracts() {
        let a = Addr(arena.base().0 + t * page);
        let Some(info) = arena.tract(a) else { continue };
        for real in each_page(a, page, page, probe) {
            let Some(real) = real else { return Err("an allocated tract is not mapped") };
            if openness(real) < openness(info.prot) {
                return Err("a tract is recorded more open than its page");
            }
            if exact && real != info.prot {
                return Err("a tract's page is not as recorded");
            }
        }
    }
    Ok(())
}
