use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Range, Size};

const PAGE: usize = 64;
const TOP: usize = usize::MAX;

#[test]
fn config_extremes() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let bad = [
        (0usize, PAGE),
        (PAGE, 0),
        (PAGE, 3 * PAGE),
        (3 * PAGE, 2 * PAGE),
        (PAGE, PAGE / 2),
        (TOP, PAGE),
        (TOP & !(PAGE - 1), PAGE),
        (1 << 63, 1 << 63),
        (1 << 63, PAGE),
        (1 << 62, 1 << 62),
        (PAGE, TOP),
        (PAGE, 1 << 63),
        (1 << 63, 1 << 62),
    ];
    for (s, c) in bad {
        assert!(
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(s), Size(c))).is_err(),
            "{s:#x} {c:#x}"
        );
    }
    assert_eq!(sim.stats().reservations, 0);
    let be = vmspace_user::MmapBackend::new();
    for (s, c) in
        [(1usize << 63, 1usize << 63), (1 << 62, 1 << 62), (1 << 63, 1 << 22), (TOP & !4095, 4096)]
    {
        assert!(
            ChunkMap::new(be, ChunkMapConfig::new(Size(s), Size(c))).is_err(),
            "mmap {s:#x} {c:#x}"
        );
    }
}

/// The last chunk of the space and ranges past it.
#[test]
fn the_last_chunk() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let chunk = 2 * PAGE;
    let n = 200usize;
    let mut map = ChunkMap::new(&sim, ChunkMapConfig::new(Size(n * chunk), Size(chunk))).unwrap();
    let sp = map.space();
    let (b, l) = (sp.base().0, sp.limit().0);
    // The last byte of the space rounds out to the last chunk.
    let last_byte = Range::new(Addr(l - 1), Addr(l)).unwrap();
    map.ensure_mapped(last_byte).unwrap();
    assert_eq!(map.state(Addr(l - chunk)), Some(ChunkState::Mapped));
    assert!(map.is_mapped(Addr(l - 1)));
    assert!(!map.is_mapped(Addr(l)));
    assert!(!map.lookup().is_mapped(Addr(l)));
    for a in [0usize, b.wrapping_sub(1), l, TOP, TOP - 1] {
        assert!(!map.is_mapped(Addr(a)), "{a:#x}");
        assert!(!map.lookup().is_mapped(Addr(a)), "{a:#x}");
        assert_eq!(map.state(Addr(a)), None, "{a:#x}");
    }
    let top = TOP & !(chunk - 1);
    for r in [
        Range::new(Addr(l - 1), Addr(l + 1)).unwrap(),
        Range::new(Addr(l), Addr(l + chunk)).unwrap(),
        Range::new(Addr(l), Addr(TOP)).unwrap(),
        Range::new(Addr(TOP - 1), Addr(TOP)).unwrap(),
        Range::new(Addr(top - chunk), Addr(top)).unwrap(),
        Range::new(Addr(0), Addr(chunk)).unwrap(),
        Range::new(Addr(0), Addr(TOP)).unwrap(),
        Range::empty(Addr(l)),
        Range::empty(Addr(b)),
    ] {
        assert!(map.ensure_mapped(r).is_err(), "{r}");
        assert!(map.quarantine(r).is_err(), "{r}");
        assert!(map.protect(r).is_err(), "{r}");
        assert!(map.unprotect(r).is_err(), "{r}");
        assert!(map.unmap(r).is_err(), "{r}");
        map.check().unwrap();
    }
    let last = Range::new(Addr(l - chunk), Addr(l)).unwrap();
    map.protect(last).unwrap();
    assert_eq!(map.state(Addr(l - 1)), Some(ChunkState::Protected));
    map.unprotect(last).unwrap();
    map.unmap(last).unwrap();
    map.trim().unwrap();
    map.check().unwrap();
    assert_eq!(map.census(), [n, 0, 0, 0]);
    // The whole space, then back.
    map.quarantine(sp).unwrap();
    map.ensure_mapped(sp).unwrap();
    assert_eq!(map.census(), [0, 0, n, 0]);
    map.unmap(sp).unwrap();
    map.trim().unwrap();
    map.check().unwrap();
    assert_eq!(map.committed_chunks(), 0);
    assert_eq!(map.leaves_present(), 0);
}
