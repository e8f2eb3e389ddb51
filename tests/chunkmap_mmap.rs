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

/// The mmap backend seen through 2 MiB pages: every range it is given is
/// a multiple of 2 MiB, so of the real pages too.
struct BigPages(MmapBackend);

const BIG: Size = Size(2 << 20);

// SAFETY: every call goes to the mmap backend, whose contract holds for
// ranges of whole 2 MiB pages (checked before each is forwarded), and
// reservations are aligned to at least 2 MiB.
unsafe impl PageOps for BigPages {
    fn page_size(&self) -> Size {
        BIG
    }
    fn name(&self) -> &'static str {
        "mmap, 2 MiB pages"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, vmspace_shim::ShimError> {
        let align = vmspace_shim::check_reserve_args(size, align, BIG)?;
        self.0.reserve(size, align)
    }
    unsafe fn release(&self, r: Range) -> Result<(), vmspace_shim::ShimError> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.release(r) }
    }
    unsafe fn map(&self, r: Range) -> Result<(), vmspace_shim::ShimError> {
        vmspace_shim::check_page_range(r, BIG)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.map(r) }
    }
    unsafe fn unmap(&self, r: Range) -> Result<(), vmspace_shim::ShimError> {
        vmspace_shim::check_page_range(r, BIG)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.unmap(r) }
    }
    unsafe fn protect(
        &self,
        r: Range,
        p: vmspace_shim::Protection,
    ) -> Result<(), vmspace_shim::ShimError> {
        vmspace_shim::check_page_range(r, BIG)?;
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.protect(r, p) }
    }
}

/// Chunks of 2^43 bytes on 2 MiB pages: the chunk and leaf shifts add up
/// to 64, the word's width. The lookup shifted by their sum once, which
/// wrapped to no shift at all and read far outside the directory (a
/// SIGSEGV in release builds, an overflow panic in debug ones). Found by a
/// test written outside the project.
#[test]
fn chunk_and_page_shifts_that_add_up_to_the_word() {
    let map = ChunkMap::new(
        BigPages(MmapBackend::new()),
        ChunkMapConfig::new(Size(1 << 44), Size(1 << 43)),
    )
    .expect("16 TiB of address space");
    let base = map.space().base().0;
    let first = Range::from_size(Addr(base), BIG).unwrap();
    map.ensure_mapped(first).unwrap();
    let lookup = map.lookup();
    for off in [0, 1 << 20, (1 << 42) + 5, (1 << 43) - 1] {
        assert!(map.is_mapped(Addr(base + off)), "{off:#x}");
        assert!(lookup.is_mapped(Addr(base + off)), "{off:#x}");
    }
    for off in [1 << 43, (1 << 44) - 1] {
        assert!(!map.is_mapped(Addr(base + off)), "{off:#x}");
        assert!(!lookup.is_mapped(Addr(base + off)), "{off:#x}");
    }
    assert!(!map.is_mapped(Addr(base + (1 << 44))));
    assert!(!map.is_mapped(Addr(base.wrapping_sub(1))));
    map.check().unwrap();
}
