//! Round 61 outside review: chunk maps at their largest chunk sizes on
//! the mmap backend. A chunk too big for the system to commit (1 TiB and
//! up, past RAM and swap under heuristic overcommit) fails `ensure_mapped`
//! with the backend's error and changes nothing: the chunk stays
//! unmapped, the leaf the call mapped is given back, `check()` holds and
//! a smaller neighbour map still works. Sharp; PASSES here.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::MmapBackend;

#[test]
fn huge_chunks_fail_cleanly_or_work() {
    let mut tried = 0;
    for (space_shift, chunk_shift) in [(45u32, 44u32), (44, 40), (42, 41), (40, 40), (36, 30)] {
        let config = ChunkMapConfig::new(Size(1 << space_shift), Size(1 << chunk_shift));
        let m = match ChunkMap::new(MmapBackend::new(), config) {
            Ok(m) => m,
            Err(ChunkMapError::Backend { .. }) => continue,
            Err(e) => panic!("2^{space_shift}/2^{chunk_shift}: {e:?}"),
        };
        tried += 1;
        assert!(m.space().base().is_aligned(Size(1 << chunk_shift)));
        assert_eq!(m.chunks(), 1 << (space_shift - chunk_shift));
        m.check().unwrap();
        let top = Addr(m.space().limit().0 - 1);
        let r = Range::from_size(top, Size(1)).unwrap();
        match m.ensure_mapped(r) {
            Ok(()) => {
                assert!(m.is_mapped(top));
                // SAFETY: the chunk is mapped read-write.
                unsafe { top.as_ptr::<u8>().write(7) };
                assert_eq!(m.committed_chunks(), 1);
            }
            Err(e) => {
                eprintln!("2^{space_shift}/2^{chunk_shift}: {e}");
                assert!(matches!(e, ChunkMapError::Backend { .. }), "{e:?}");
                assert_eq!(m.state(top), Some(ChunkState::Unmapped));
                assert_eq!((m.committed_chunks(), m.leaves_present()), (0, 0));
            }
        }
        m.check().unwrap();
        assert!(!m.is_mapped(Addr(m.space().limit().0)));
        assert!(!m.is_mapped(Addr(m.space().base().0.wrapping_sub(1))));
    }
    assert!(tried >= 2, "too few geometries could be reserved");
}
