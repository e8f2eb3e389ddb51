//! Round 47a outside review: chunk map geometries at their edges (one
//! chunk, page-sized chunks, full and partial last leaves, huge chunk
//! sizes), the top chunk and addresses outside the space.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{Addr, Range, Size};

const PAGE: usize = 64;

#[test]
fn geometries() {
    for (chunks, chunk) in [
        (1usize, PAGE),
        (1, 4 * PAGE),
        (64, PAGE),
        (65, PAGE),
        (128, 2 * PAGE),
        (4097, PAGE),
        (8193, PAGE),
    ] {
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let mut m =
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(chunks * chunk), Size(chunk))).unwrap();
        let what = format!("{chunks} chunks of {chunk}");
        let s = m.space();
        assert_eq!(m.chunks(), chunks, "{what}");
        let top = Range::new(Addr(s.limit().0 - 1), s.limit()).unwrap();
        m.ensure_mapped(top).unwrap();
        assert!(m.is_mapped(top.base()) && m.lookup().is_mapped(top.base()), "{what}");
        assert!(!m.is_mapped(s.limit()) && !m.is_mapped(Addr(usize::MAX)) && !m.is_mapped(Addr(0)));
        assert_eq!(m.state(s.limit()), None);
        assert!(m
            .ensure_mapped(Range::new(Addr(s.limit().0 - 1), Addr(s.limit().0 + 1)).unwrap())
            .is_err());
        let last = Range::new(Addr(s.limit().0 - chunk), s.limit()).unwrap();
        m.protect(last).unwrap();
        assert_eq!(
            sim.page_state(last.base()),
            Some(PageState::Mapped(vmspace_shim::Protection::None))
        );
        m.quarantine(s).unwrap();
        let census = m.census();
        assert_eq!(census, [0, chunks - 1, 0, 1], "{what}");
        m.check().unwrap();
        m.unprotect(last).unwrap();
        m.ensure_mapped(s).unwrap();
        assert_eq!(m.census(), [0, 0, chunks, 0], "{what}");
        assert_eq!(m.committed_chunks(), chunks);
        m.unmap(s).unwrap();
        assert_eq!(m.census(), [chunks, 0, 0, 0], "{what}");
        let leaves = m.leaves_present();
        assert_eq!(m.trim().unwrap(), leaves, "{what}");
        assert_eq!(m.leaves_present(), 0);
        m.check().unwrap();
        assert_eq!(m.state(s.base()), Some(ChunkState::Unmapped));
        assert_eq!(m.metadata_mapped().0, chunks.div_ceil(PAGE).div_ceil(PAGE) * PAGE, "{what}");
    }
}

#[test]
fn absurd_configs_fail_cleanly() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for (space, chunk) in [
        (1usize << 63, 1usize << 63),
        (usize::MAX & !(PAGE - 1), PAGE),
        (1 << 62, PAGE),
        (0, PAGE),
        (PAGE, PAGE / 2),
        (3 * PAGE, 2 * PAGE),
        (PAGE, 0),
    ] {
        assert!(
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(space), Size(chunk))).is_err(),
            "{space:#x} {chunk:#x}"
        );
    }
    assert_eq!(sim.stats().reservations, 0);
}

/// A directory of three pages: ranges straddling the leaves on either side
/// of a directory-page boundary (leaf 63 and 64: chunks 4095 and 4096).
#[test]
fn multi_page_directory() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let chunks = 64 * 64 * 2 + 5;
    let mut m = ChunkMap::new(&sim, ChunkMapConfig::new(Size(chunks * PAGE), Size(PAGE))).unwrap();
    let b = m.space().base().0;
    let r = Range::new(Addr(b + 4090 * PAGE + 7), Addr(b + 4100 * PAGE)).unwrap();
    m.ensure_mapped(r).unwrap();
    assert_eq!(m.leaves_present(), 2);
    for c in 4085..4105 {
        let want = (4090..4100).contains(&c);
        assert_eq!(m.is_mapped(Addr(b + c * PAGE)), want, "chunk {c}");
        let st = sim.page_state(Addr(b + c * PAGE)).unwrap();
        assert_eq!(matches!(st, PageState::Mapped(_)), want, "chunk {c}");
    }
    let r2 = Range::new(Addr(b + 8190 * PAGE), Addr(b + chunks * PAGE)).unwrap();
    m.quarantine(r2).unwrap();
    assert_eq!(m.census(), [chunks - 10 - (chunks - 8190), chunks - 8190, 10, 0]);
    m.check().unwrap();
    m.protect(Range::new(Addr(b + 4095 * PAGE), Addr(b + 4097 * PAGE)).unwrap()).unwrap();
    assert!(!m.is_mapped(Addr(b + 4096 * PAGE)) && m.is_mapped(Addr(b + 4097 * PAGE)));
    m.unmap(Range::new(Addr(b), Addr(b + chunks * PAGE)).unwrap()).unwrap();
    assert_eq!(m.committed_chunks(), 0);
    assert_eq!(m.trim().unwrap(), 4); // leaves 63, 64, 127, 128
    m.check().unwrap();
    assert_eq!(sim.stats().mapped_pages, 3, "only the directory stays mapped");
}
