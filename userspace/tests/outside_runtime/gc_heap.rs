//! A GC heap: a chunk map for a huge sparse heap shared by mutator
//! threads, and a VM arena for segregated pools with zones.

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace::{Addr, Pages, Range, Size};
use vmspace_user::MmapBackend;

use crate::prot_at;
use crate::releases::Releases;

const CHUNK: usize = 1 << 20;

#[test]
fn chunk_heap_eight_mutators() {
    let be = Releases::default();
    let map = ChunkMap::new(&be, ChunkMapConfig::new(Size(1 << 40), Size(CHUNK))).unwrap();
    let base = map.space().base().0;
    let res = map.reservation();
    std::thread::scope(|s| {
        for t in 0..8usize {
            let map = &map;
            s.spawn(move || {
                for i in 0..64usize {
                    // Overlapping ranges between threads, unaligned.
                    let off = ((i * 3 + t) % 96) * CHUNK + 123;
                    let r = Range::from_size(Addr(base + off), Size(2 * CHUNK)).unwrap();
                    map.ensure_mapped(r).unwrap();
                    assert!(map.is_mapped(r.base()));
                    // SAFETY: ensured mapped read-write; bytes written by
                    // racing threads are just bytes.
                    unsafe { r.base().as_ptr::<u8>().write(t as u8) };
                }
            });
        }
    });
    map.check().unwrap();
    let census = map.census();
    assert_eq!(census[2], map.committed_chunks());
    assert_eq!(census.iter().sum::<usize>(), map.chunks());
    // Read barrier: protect one chunk.
    let c = Range::from_size(Addr(base), Size(CHUNK)).unwrap();
    map.protect(c).unwrap();
    assert_eq!(map.state(Addr(base)), Some(ChunkState::Protected));
    assert_eq!(prot_at(base).as_deref(), Some("---p"));
    assert!(!map.is_mapped(Addr(base)));
    map.unprotect(c).unwrap();
    // SAFETY: read-write again, contents kept.
    unsafe { Addr(base).as_ptr::<u8>().write(1) };
    let mut map = map;
    let whole = Range::from_size(Addr(base), Size(128 * CHUNK)).unwrap();
    map.unmap(whole).unwrap();
    assert_eq!(map.committed_chunks(), 0);
    assert_eq!(map.trim().unwrap(), 1);
    assert_eq!(map.leaves_present(), 0);
    map.check().unwrap();
    drop(map);
    // (Asked of the backend: another test's thread may map into the hole
    // before /proc/self/maps is read; see `releases.rs`.)
    assert_eq!(be.released(), [res], "the reservation, released on drop");
}

#[test]
fn chunk_quarantine_then_protect_is_not_mapped() {
    let map =
        ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(1 << 34), Size(CHUNK))).unwrap();
    let base = map.space().base().0;
    let c = Range::from_size(Addr(base), Size(CHUNK)).unwrap();
    map.quarantine(c).unwrap();
    assert_eq!(map.state(Addr(base)), Some(ChunkState::Quarantined));
    let e = map.protect(c).unwrap_err();
    assert_eq!(e, ChunkMapError::NotMapped { chunk: Addr(base) });
    assert_eq!(map.state(Addr(base)), Some(ChunkState::Quarantined));
    map.ensure_mapped(c).unwrap();
    assert_eq!(map.census()[2], 1);
    map.check().unwrap();
}

#[test]
fn pools_in_zones() {
    let be = MmapBackend::new();
    let cfg = VmArenaConfig::new(Size(64 << 20)).zone_shift(16).spare_limit(32);
    let mut va = VmArena::new(be, cfg).unwrap();
    let (young, old) = (Owner(10), Owner(11));
    let yz = ZoneSet::single(1).union(ZoneSet::single(2));
    let mut grants = Vec::new();
    for i in 0..40 {
        let (o, z) = if i % 2 == 0 { (young, yz) } else { (old, yz.complement()) };
        let g = va.alloc(&Request::new(Pages(4), o).prefer(z)).unwrap();
        if g.placement == Placement::Preferred {
            assert!(z.contains(va.zone_of(g.range.base())));
        }
        grants.push((g, o));
    }
    let before = va.allocated();
    assert_eq!(before, Size(40 * 4 * 4096));
    // Wrong owner refused, nothing changes.
    let (g0, _) = grants[0];
    assert!(matches!(va.free(g0.range, old), Err(VmArenaError::WrongOwner { .. })));
    assert_eq!(va.allocated(), before);
    for (g, o) in grants {
        va.free(g.range, o).unwrap();
    }
    assert_eq!(va.allocated(), Size(0));
    assert_eq!(va.spare(), Size(32 * 4096));
    assert_eq!(va.table_pages_mapped(), 0);
    va.check().unwrap();
}
