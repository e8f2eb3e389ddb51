//! Round 61 outside review: a failed `ChunkMap::unmap` over a sparse
//! range walks every chunk of the absent leaves before it.
//!
//! src/chunkmap/ops.rs: `unmap`'s own passes skip absent leaves
//! (`past_absent_leaf`), so unmapping a huge, mostly untouched range is
//! cheap. Its rollback `undo_unmap(c0, c)` does not: it steps through
//! `[c0, c)` with `state_mut` and `run_end`, and for an absent leaf
//! `run_end` loads the directory once per chunk. With the one mapped
//! chunk at the top of the space, a failed unmap of the whole space
//! costs a directory load per chunk of the space, where the successful
//! unmap costs one per leaf: measured 610 ms against 0.6 ms for a
//! 2^38-byte space of 4 KiB chunks (debug build), linear in the chunks,
//! so minutes for a 2^46-byte space of 4 KiB chunks (2^34 chunks).
//!
//! Was a DEFECT (fixed: `undo_unmap` skips absent leaves as `unmap`'s
//! passes do). The reviewer's test compared the failed unmap's time with
//! the successful one's; the project asserts no times, so this one fails
//! the unmap of a 2^44-byte space in page-sized chunks with only its top
//! chunk mapped (minutes chunk by chunk, well under a second now) and
//! checks that nothing changed, then that the unmap goes through.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Range, Size};
use vmspace_user::MmapBackend;

/// A failed, then a successful unmap of a `2^shift`-byte space with only
/// its top chunk mapped.
fn unmap_twice(shift: u32) {
    let page = MmapBackend::new().page_size();
    let fi = FaultInjector::new(MmapBackend::new());
    let mut m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(1 << shift), page)).unwrap();
    let space = m.space();
    let top = Addr(space.limit().0 - page.0);
    m.ensure_mapped(Range::from_size(top, page).unwrap()).unwrap();
    fi.only(&[Op::Unmap]);
    fi.fail_nth(1);
    let r = m.unmap(space);
    fi.clear();
    assert!(matches!(r, Err(ChunkMapError::Backend { op: Op::Unmap, .. })), "{r:?}");
    assert_eq!(m.state(top), Some(ChunkState::Mapped));
    assert_eq!(m.committed_chunks(), 1);
    m.check().unwrap();
    m.unmap(space).unwrap();
    assert_eq!(m.committed_chunks(), 0);
    m.check().unwrap();
}

#[test]
fn failed_unmap_of_a_sparse_range() {
    unmap_twice(44);
}
