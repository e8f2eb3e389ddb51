//! Round 25 outside review: the chunk map's documented contract
//! (`src/chunkmap/`).

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace::error::CommonError;
use vmspace_shim::sim::{Placed, SimBackend};
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Range, Size};

const PAGE: usize = 256;
const CHUNK: usize = 512;

fn states<P: PageOps>(m: &ChunkMap<P>) -> Vec<Option<ChunkState>> {
    (0..m.chunks()).map(|c| m.state(Addr(m.space().base().0 + c * CHUNK))).collect()
}

fn chunks(m_base: Addr, lo: usize, hi: usize) -> Range {
    Range::new(Addr(m_base.0 + lo * CHUNK), Addr(m_base.0 + hi * CHUNK)).unwrap()
}

/// Bad arguments: the errors `ChunkMapError::Common` names, nothing
/// changed; `protect`/`unprotect` of a chunk that is not committed is
/// `NotMapped` naming a chunk that is not, nothing changed.
#[test]
fn bad_arguments_and_uncommitted_chunks() {
    let mut buf = Placed::new(2 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    // 600 chunks: three leaves of 256 chunks.
    let m = ChunkMap::new(&sim, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))).unwrap();
    let b = m.space().base();
    m.ensure_mapped(chunks(b, 250, 262)).unwrap();
    m.quarantine(chunks(b, 255, 256)).unwrap(); // mapped: stays mapped
    m.quarantine(chunks(b, 262, 264)).unwrap();
    assert_eq!(m.state(chunks(b, 255, 256).base()), Some(ChunkState::Mapped));
    let before = (states(&m), m.committed_chunks(), m.leaves_present());
    let lim = m.space().limit().0;
    let common = |e: Result<(), ChunkMapError>| match e {
        Err(ChunkMapError::Common(c)) => c,
        other => panic!("{other:?}"),
    };
    for op in 0..2 {
        let f = |r: Range| if op == 0 { m.protect(r) } else { m.unprotect(r) };
        assert!(matches!(common(f(Range::empty(b))), CommonError::InvalidArgument(_)));
        assert!(matches!(
            common(f(Range::from_size(Addr(b.0 + PAGE), Size(CHUNK)).unwrap())),
            CommonError::Misaligned { .. }
        ));
        assert!(matches!(
            common(f(Range::new(Addr(lim - CHUNK), Addr(lim + CHUNK)).unwrap())),
            CommonError::OutOfRange(_)
        ));
        for (lo, hi, bad) in [(250, 264, 262), (249, 252, 249), (261, 300, 262), (0, 1, 0)] {
            let e = f(chunks(b, lo, hi));
            assert_eq!(
                e,
                Err(ChunkMapError::NotMapped { chunk: chunks(b, bad, bad + 1).base() }),
                "op {op} [{lo}, {hi})"
            );
            assert_eq!((states(&m), m.committed_chunks(), m.leaves_present()), before);
        }
    }
    for e in [m.ensure_mapped(Range::empty(b)), m.quarantine(Range::empty(b))] {
        assert!(matches!(common(e), CommonError::InvalidArgument(_)));
    }
    assert!(matches!(
        common(m.ensure_mapped(Range::new(Addr(lim - 1), Addr(lim + 1)).unwrap())),
        CommonError::OutOfRange(_)
    ));
    assert_eq!(m.state(Addr(lim)), None);
    assert_eq!(m.state(Addr(b.0.wrapping_sub(1))), None);
    assert!(!m.is_mapped(Addr(usize::MAX)) && !m.lookup().is_mapped(Addr(0)));
    m.check().unwrap();
    assert_eq!(m.census(), [600 - 12 - 2, 2, 12, 0]);
}

/// "A failing operation leaves every chunk as it was, and its error names
/// the address and size of the failed call": an `ensure_mapped` over
/// three leaves failed at each of its map calls in turn. Leaf pages it
/// mapped for nothing go back (the directory says nothing is present that
/// records nothing).
#[test]
fn failed_ensure_mapped_changes_no_chunk_and_names_the_call() {
    let mut buf = Placed::new(2 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))).unwrap();
    let b = m.space().base();
    m.ensure_mapped(chunks(b, 258, 259)).unwrap(); // leaf 1 present
    m.quarantine(chunks(b, 300, 301)).unwrap();
    let target = chunks(b, 200, 520);
    let before = (states(&m), m.committed_chunks(), m.leaves_present(), m.metadata_mapped());
    let mut n = 1;
    loop {
        fi.only(&[Op::Map]);
        fi.fail_nth(n);
        let r = m.ensure_mapped(target);
        fi.clear();
        let Err(e) = r else { break };
        match e {
            ChunkMapError::Backend { op: Op::Map, range, .. } => {
                assert!(!range.is_empty());
                assert!(
                    target.contains(&range) || !m.space().contains(&range),
                    "names a call of the operation: {range}"
                );
            }
            other => panic!("map call {n}: {other:?}"),
        }
        let now = (states(&m), m.committed_chunks(), m.leaves_present(), m.metadata_mapped());
        assert_eq!(now, before, "map call {n} failed");
        m.check().unwrap();
        n += 1;
    }
    assert!(n >= 4, "{n}");
    assert_eq!(m.committed_chunks(), 320);
    m.check().unwrap();
}

/// `unmap`: "return every chunk in it to unmapped", quarantined and
/// protected included; `trim` gives back leaves all of whose chunks are
/// unmapped, and "if the backend fails, the leaf pages given back before
/// the failure stay given back".
#[test]
fn unmap_and_trim() {
    let mut buf = Placed::new(2 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut m = ChunkMap::new(&fi, ChunkMapConfig::new(Size(600 * CHUNK), Size(CHUNK))).unwrap();
    let b = m.space().base();
    m.ensure_mapped(chunks(b, 0, 10)).unwrap();
    m.protect(chunks(b, 2, 4)).unwrap();
    m.quarantine(chunks(b, 10, 12)).unwrap();
    m.ensure_mapped(chunks(b, 300, 301)).unwrap();
    m.ensure_mapped(chunks(b, 599, 600)).unwrap();
    assert_eq!(m.leaves_present(), 3);
    m.unmap(chunks(b, 0, 600)).unwrap();
    assert_eq!(m.committed_chunks(), 0);
    assert!(states(&m).iter().all(|s| *s == Some(ChunkState::Unmapped)));
    assert_eq!(m.census(), [600, 0, 0, 0]);
    fi.only(&[Op::Unmap]);
    fi.fail_nth(2);
    assert!(m.trim().is_err());
    fi.clear();
    assert_eq!(m.leaves_present(), 2, "the first leaf stays given back");
    assert_eq!(m.metadata_mapped(), Size(3 * PAGE), "directory and two leaves");
    m.check().unwrap();
    assert_eq!(m.trim().unwrap(), 2);
    assert_eq!(m.leaves_present(), 0);
    m.check().unwrap();
}

/// Geometry at the extremes is refused with an error, not a panic.
#[test]
fn config_extremes_are_errors() {
    let mut buf = Placed::new(2 << 20, 0);
    let sim = SimBackend::new(buf.bytes(), PAGE).unwrap();
    for (space, chunk) in [
        (0, CHUNK),
        (CHUNK, 0),
        (CHUNK, 3 * PAGE),
        (CHUNK, PAGE / 2),
        (CHUNK + PAGE, CHUNK),
        (usize::MAX & !(CHUNK - 1), CHUNK),
        (1 << 63, 1 << 63),
        (usize::MAX, 1 << 63),
        (1 << 62, 1 << 62),
        (usize::MAX & !(PAGE - 1), PAGE),
    ] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ChunkMap::new(&sim, ChunkMapConfig::new(Size(space), Size(chunk))).map(|_| ())
        }));
        assert!(matches!(r, Ok(Err(_))), "({space:#x}, {chunk:#x}): {r:?}");
    }
    assert_eq!(sim.stats().reservations, 0);
}
