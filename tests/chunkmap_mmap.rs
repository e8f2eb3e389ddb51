//! A chunk map over a 47-bit-sized space of 4 MiB chunks on the real mmap
//! backend: the space is one real reservation (2^47 bytes when the kernel
//! grants it; user space on x86-64 is 2^47 bytes in all, so it falls back to
//! 2^46, and to 2^45 where a sanitizer's shadow leaves less than 2^46 in one
//! hole: about 69 TiB under AddressSanitizer), the directory is a page or
//! two, and leaves appear only where chunks are used.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace_shim::{Addr, Op, PageOps, Range, Size};
use vmspace_user::MmapBackend;

/// The smallest space the test accepts: still a thousand times any machine's
/// memory, and sparse only if the map is.
const LEAST: usize = 1 << 45;

fn big_map() -> ChunkMap<MmapBackend> {
    let chunk = ChunkMapConfig::DEFAULT.chunk;
    let sizes = [ChunkMapConfig::DEFAULT.space, Size(1 << 46), Size(LEAST)];
    let mut refused = None;
    for size in sizes {
        match ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(size, chunk)) {
            Ok(m) => return m,
            Err(e @ ChunkMapError::Backend { op: Op::Reserve, .. }) => refused = Some(e),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no hole of {LEAST:#x} bytes: {}", refused.expect("a size was tried"))
}

#[test]
fn a_huge_sparse_space_on_mmap() {
    let mut map = big_map();
    let page = MmapBackend::new().page_size().0;
    let chunk = map.chunk_size().0;
    assert_eq!(chunk, 4 << 20);
    assert!(map.space().size().0 >= LEAST);
    let idle = map.metadata_mapped();
    assert!(idle.0 <= 2 * page, "directory only: {idle}");
    let base = map.space().base().0;
    let places = [0, map.space().size().0 / 2 + 12344, map.space().size().0 - 3 * chunk];
    for &off in &places {
        let r = Range::from_size(Addr(base + off), Size(2 * chunk)).unwrap();
        map.ensure_mapped(r).unwrap();
        // SAFETY: the map just mapped the chunks holding `r` read-write.
        unsafe {
            r.base().as_ptr::<u64>().write_volatile(0xfeed);
            assert_eq!(r.base().as_ptr::<u64>().read_volatile(), 0xfeed);
        }
        assert!(map.is_mapped(r.base()) && map.is_mapped(Addr(r.limit().0 - 1)));
    }
    // Three places, each two or three chunks, in three leaves.
    assert_eq!(map.leaves_present(), 3);
    assert_eq!(map.metadata_mapped().0, idle.0 + 3 * page);
    map.check().unwrap();
    let first = Range::from_size(Addr(base), Size(chunk)).unwrap();
    map.protect(first).unwrap();
    assert_eq!(map.state(first.base()), Some(ChunkState::Protected));
    map.unprotect(first).unwrap();
    // SAFETY: read-write again; the data survived the protection change.
    assert_eq!(unsafe { first.base().as_ptr::<u64>().read_volatile() }, 0xfeed);
    map.unmap(map.space()).unwrap();
    assert_eq!(map.committed_chunks(), 0);
    assert_eq!(map.trim().unwrap(), 3);
    assert_eq!(map.metadata_mapped(), idle);
    map.check().unwrap();
}
