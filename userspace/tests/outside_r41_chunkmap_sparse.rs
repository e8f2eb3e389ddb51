//! Outside review, round 41: the chunk map over huge sparse spaces on the
//! mmap backend (2^46 bytes in page-sized chunks: 2^34 chunks, 2^22 leaf
//! pages; and a space that is a single chunk), touched only at its two
//! ends and across a leaf boundary.
//!
//! Contracts relied on (README.md "The chunk map", src/chunkmap/mod.rs,
//! src/chunkmap/ops.rs): leaf pages are "mapped the first time one of
//! their chunks is used"; `census` counts chunks in each state (so the
//! counts sum to `chunks()`); `state` is `None` outside the space;
//! `trim` "Unmap[s] the leaf pages whose chunks are all unmapped";
//! `quarantine` sets aside unmapped chunks, "other chunks keep their
//! state"; `check()` verifies the tables.
//!
//! Result on the code reviewed: holds.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::MmapBackend;

fn map(space: usize, chunk: usize) -> Option<ChunkMap<MmapBackend>> {
    // The space may not fit under a limit of the machine: skip then.
    ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(space), Size(chunk))).ok()
}

/// Contract check: 2^34 page-sized chunks, used at both ends and across
/// a leaf boundary.
#[test]
fn huge_sparse_space_at_its_edges() {
    let page = 4096usize;
    let Some(mut m) = map(1 << 46, page) else {
        eprintln!("skipped: cannot reserve 2^46 bytes here");
        return;
    };
    assert_eq!(m.chunks(), 1 << 34);
    let base = m.space().base().0;
    let last = Range::from_size(Addr(m.space().limit().0 - page), Size(page)).unwrap();
    let first = Range::from_size(Addr(base), Size(page)).unwrap();
    // A range across the boundary of leaf 0 and leaf 1 (4096 chunks a leaf).
    let seam = Range::from_size(Addr(base + (page - 1) * page), Size(2 * page)).unwrap();
    assert_eq!(m.leaves_present(), 0);
    m.ensure_mapped(last).unwrap();
    m.ensure_mapped(first).unwrap();
    m.quarantine(seam).unwrap();
    assert_eq!(m.leaves_present(), 3, "leaf 0, leaf 1 and the last leaf");
    assert!(m.is_mapped(last.base()) && m.is_mapped(first.base()));
    assert!(!m.is_mapped(m.space().limit()), "past the space");
    assert_eq!(m.state(m.space().limit()), None);
    assert_eq!(m.state(Addr(base + (page - 1) * page)), Some(ChunkState::Quarantined));
    assert_eq!(m.state(Addr(base + page * page)), Some(ChunkState::Quarantined));
    // Quarantining a mapped chunk leaves it mapped.
    m.quarantine(first).unwrap();
    assert_eq!(m.state(first.base()), Some(ChunkState::Mapped));
    m.protect(last).unwrap();
    assert_eq!(m.state(last.base()), Some(ChunkState::Protected));
    let c = m.census();
    assert_eq!(c, [(1 << 34) - 4, 2, 1, 1], "{c:?}");
    assert_eq!(c.iter().sum::<usize>(), m.chunks());
    assert_eq!(m.committed_chunks(), 2);
    m.check().unwrap();
    // Unmap everything but the first chunk; trim gives back the other leaves.
    m.unmap(seam).unwrap();
    m.unmap(last).unwrap();
    assert_eq!(m.trim().unwrap(), 2);
    assert_eq!(m.leaves_present(), 1);
    assert_eq!(m.census(), [(1 << 34) - 1, 0, 1, 0]);
    m.check().unwrap();
    m.unmap(first).unwrap();
    assert_eq!(m.trim().unwrap(), 1);
    assert_eq!((m.leaves_present(), m.committed_chunks()), (0, 0));
    m.check().unwrap();
}

/// Contract check: a space that is one chunk of 2^40 bytes.
#[test]
fn a_single_huge_chunk() {
    let Some(mut m) = map(1 << 40, 1 << 40) else {
        eprintln!("skipped: cannot reserve 2^40 bytes here");
        return;
    };
    assert_eq!(m.chunks(), 1);
    let space = m.space();
    assert_eq!(space.base().0 % (1 << 40), 0, "aligned to the chunk size");
    // Any byte of it quarantines the whole chunk.
    let one = Range::from_size(Addr(space.limit().0 - 1), Size(1)).unwrap();
    m.quarantine(one).unwrap();
    assert_eq!(m.state(space.base()), Some(ChunkState::Quarantined));
    assert_eq!(m.census(), [0, 1, 0, 0]);
    // protect needs chunk-aligned ranges, and committed chunks.
    assert!(m.protect(one).is_err());
    m.unmap(space).unwrap();
    assert_eq!(m.census(), [1, 0, 0, 0]);
    assert_eq!(m.trim().unwrap(), 1);
    m.check().unwrap();
}
