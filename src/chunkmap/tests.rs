extern crate std;
use crate::error::CommonError;
use std::vec;

use vmspace_shim::sim::{at_offsets, Placed, SimBackend, OFFSETS};
use vmspace_shim::{Addr, FaultInjector, PageOps, Range, Size};

use super::*;

const PAGE: usize = 256;
const CHUNK: usize = 1024;

/// 256-byte pages hold 256 chunk bytes: 1024 chunks of 1 KiB make 4 leaves.
fn config() -> ChunkMapConfig {
    ChunkMapConfig::new(Size(1024 * CHUNK), Size(CHUNK))
}

fn chunks<P: PageOps>(m: &ChunkMap<P>, first: usize, n: usize) -> Range {
    Range::from_size(Addr(m.space().base().0 + first * CHUNK), Size(n * CHUNK)).unwrap()
}

#[test]
fn states_move_as_asked() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut m = ChunkMap::new(&sim, config()).unwrap();
    assert_eq!(m.metadata_mapped(), Size(PAGE));
    m.ensure_mapped(chunks(&m, 250, 10)).unwrap();
    assert_eq!((m.committed_chunks(), m.leaves_present()), (10, 2));
    m.quarantine(chunks(&m, 255, 10)).unwrap();
    assert_eq!(m.census(), [1024 - 15, 5, 10, 0]);
    m.protect(chunks(&m, 252, 2)).unwrap();
    assert!(!m.is_mapped(chunks(&m, 252, 1).base()));
    assert_eq!(m.state(chunks(&m, 253, 1).base()), Some(ChunkState::Protected));
    assert!(matches!(m.protect(chunks(&m, 258, 4)), Err(ChunkMapError::NotMapped { .. })));
    assert_eq!(m.census(), [1024 - 15, 5, 8, 2]);
    m.ensure_mapped(chunks(&m, 240, 30)).unwrap();
    assert_eq!(m.census(), [1024 - 30, 0, 30, 0]);
    m.check().unwrap();
    m.unmap(chunks(&m, 0, 512)).unwrap();
    assert_eq!(m.committed_chunks(), 0);
    assert_eq!(m.trim().unwrap(), 2);
    assert_eq!(m.metadata_mapped(), Size(PAGE));
    m.check().unwrap();
    let s = sim.stats();
    assert_eq!(s.mapped_pages, 1);
}

#[test]
fn bad_ranges_are_refused() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut m = ChunkMap::new(&sim, config()).unwrap();
    let beyond = Range::from_size(m.space().limit(), Size(1)).unwrap();
    assert_eq!(
        m.ensure_mapped(beyond),
        Err(ChunkMapError::Common(CommonError::OutOfRange(beyond)))
    );
    assert!(m.ensure_mapped(Range::empty(m.space().base())).is_err());
    let skew = Range::from_size(Addr(m.space().base().0 + 1), Size(CHUNK)).unwrap();
    assert!(matches!(m.unmap(skew), Err(ChunkMapError::Common(CommonError::Misaligned { .. }))));
    assert!(!m.is_mapped(Addr(0)) && !m.is_mapped(Addr(usize::MAX)));
    assert_eq!(m.state(Addr(0)), None);
    m.check().unwrap();
}

#[test]
fn every_failing_call_leaves_it_unchanged() {
    at_offsets(OFFSETS.len(), 2 << 20, |_, buf| every_position(buf));
}

/// The test with the simulated backend's buffer at one placement.
fn every_position(buf: &mut Placed) {
    let sim = SimBackend::new(buf.fresh(), PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut m = ChunkMap::new(&faulty, config()).unwrap();
    m.ensure_mapped(chunks(&m, 100, 4)).unwrap();
    m.protect(chunks(&m, 101, 1)).unwrap();
    m.quarantine(chunks(&m, 110, 3)).unwrap();
    for n in 1..12 {
        let before = (m.census(), sim.stats().mapped_pages, m.metadata_mapped());
        faulty.fail_nth(n);
        let r = m.ensure_mapped(chunks(&m, 90, 300));
        faulty.clear();
        m.check().unwrap();
        match r {
            Ok(()) => m.unmap(chunks(&m, 0, 1024)).unwrap(),
            Err(e) => {
                assert!(matches!(e, ChunkMapError::Backend { .. }), "{e}");
                assert_eq!(before, (m.census(), sim.stats().mapped_pages, m.metadata_mapped()));
            }
        }
    }
}

#[test]
fn a_failing_creation_leaves_nothing_behind() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    for n in 1..=2 {
        faulty.fail_nth(n);
        let e = ChunkMap::new(&faulty, config()).unwrap_err();
        assert!(matches!(e, ChunkMapError::Backend { .. }), "{e}");
        assert_eq!(sim.stats().reservations, 0);
    }
    faulty.clear();
    assert!(ChunkMap::new(&sim, ChunkMapConfig::DEFAULT).is_err(), "2^47 bytes do not fit the sim");
}

/// `check()` reports each kind of damage (round 23 found only its claim
/// branch exercised), each on a map that checked clean just before: 1000
/// chunks, so the last leaf holds 24 bytes past the last chunk; chunks
/// mapped in the first and the last leaf.
#[test]
fn check_catches_corruption() {
    use super::state::{BUSY, LEAF_BUSY, MAPPED};
    type Damage = fn(&ChunkMap<&SimBackend<'_>>);
    let cases: [(Damage, &str); 6] = [
        (
            |m| {
                m.committed.fetch_add(1, Ordering::Relaxed);
            },
            "committed chunk count is wrong",
        ),
        (
            |m| {
                m.leaves_present.fetch_sub(1, Ordering::Relaxed);
            },
            "present leaf count is wrong",
        ),
        (
            |m| m.dir(3).store(LEAF_BUSY, Ordering::Relaxed),
            "a leaf page is claimed (operation in progress?)",
        ),
        (
            // SAFETY: chunk 5's leaf is present (mapped below).
            |m| unsafe { m.entry(5) }.store(MAPPED | BUSY, Ordering::Relaxed),
            "a chunk byte is claimed or invalid",
        ),
        (
            // SAFETY: as above.
            |m| unsafe { m.entry(6) }.store(0x40, Ordering::Relaxed),
            "a chunk byte is claimed or invalid",
        ),
        (
            // SAFETY: byte 1010 is in the last leaf, present (mapped below).
            |m| unsafe { m.entry(1010) }.store(MAPPED, Ordering::Relaxed),
            "a state recorded past the last chunk",
        ),
    ];
    for (damage, want) in cases {
        let mut buf = Placed::new(2 << 20, 0);
        let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
        let m = ChunkMap::new(&sim, ChunkMapConfig::new(Size(1000 * CHUNK), Size(CHUNK))).unwrap();
        m.ensure_mapped(chunks(&m, 0, 8)).unwrap();
        m.ensure_mapped(chunks(&m, 990, 10)).unwrap();
        assert_eq!(m.leaves_present(), 2);
        m.check().unwrap();
        damage(&m);
        assert_eq!(m.check(), Err(ChunkMapError::Common(CommonError::Corrupt(want))), "{want}");
    }
}
