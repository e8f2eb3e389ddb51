//! An outside runtime author's block heap on the VM arena and the chunk map,
//! from the README and the module docs, then attacked. Every assertion
//! names the doc line it checks.

use vmspace::arena::{Arena, ArenaError, Policy, Source};
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace::sources::IMPORT_OWNER;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace::{Addr, Pages, Range, Size};
use vmspace_shim::PageOps;
use vmspace_user::MmapBackend;

const MIB: usize = 1 << 20;

fn page() -> Size {
    MmapBackend::new().page_size()
}

#[test]
fn readme_vm_arena_claims() {
    let config = VmArenaConfig::new(Size(64 << 30))
        .zone_shift(20)
        .spare_limit(256)
        .commit_limit(Size(1 << 30));
    let mut arena = VmArena::new(MmapBackend::new(), config).unwrap();
    // README.md:348-349 "64 GiB reserved with nothing allocated maps one
    // 4 KiB page of metadata."
    assert_eq!(arena.metadata_mapped(), Size(4096));
    assert_eq!(arena.committed(), Size(0));
    let req =
        Request::new(Pages(16), Owner(7)).prefer(ZoneSet::single(3)).avoid(ZoneSet::single(4));
    let g = arena.alloc(&req).unwrap();
    assert!(!g.fell_back());
    assert_eq!(arena.zone_of(g.range.base()), 3);
    // README.md:339 "checked: allocated, and to owner 7"
    assert!(matches!(arena.free(g.range, Owner(8)), Err(VmArenaError::WrongOwner { .. })));
    arena.free(g.range, Owner(7)).unwrap();
    assert_eq!(arena.spare(), Size(16 * page().0));
    // README.md:352-353 "freed pages stay committed as spares up to the
    // bound, `purge_spare()` gives them back"
    assert_eq!(arena.purge_spare().unwrap(), 16);
    assert_eq!(arena.spare(), Size(0));
    arena.check().unwrap();
}

#[test]
fn vm_arena_extremes_and_commit_limit() {
    let p = page();
    let config = VmArenaConfig::new(Size(16 * MIB)).spare_limit(4).commit_limit(Size(MIB));
    let mut arena = VmArena::new(MmapBackend::new(), config).unwrap();
    // src/vmarena/request.rs:121 "Pages wanted (non-zero)"; :123 "(not
    // [`Owner::NONE`])"; :125 "a power of two"
    assert!(arena.alloc(&Request::new(Pages(0), Owner(1))).is_err());
    assert!(arena.alloc(&Request::new(Pages(1), Owner::NONE)).is_err());
    assert!(arena.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(0))).is_err());
    assert!(arena.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(3))).is_err());
    assert!(arena.alloc(&Request::new(Pages(usize::MAX), Owner(1))).is_err());
    assert!(arena.alloc(&Request::new(Pages(1), Owner(1)).align(Pages(1 << 62))).is_err());
    // src/vmarena/request.rs:58-59 zone_shift "at least the page shift and
    // below the word size"
    assert!(VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(MIB)).zone_shift(11)).is_err());
    assert!(VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(MIB)).zone_shift(64)).is_err());
    assert!(VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(0))).is_err());
    assert!(VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(usize::MAX))).is_err());
    assert_eq!(arena.committed(), Size(0));
    // README.md:351-352 "Allocations that would pass the commit limit fail"
    let too_big = MIB / p.0;
    assert!(matches!(
        arena.alloc(&Request::new(Pages(too_big), Owner(1))),
        Err(VmArenaError::CommitLimit { .. })
    ));
    let g = arena.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
    // src/vmarena/request.rs:62-64 "Committed bytes (tracts allocated or
    // spare, and the page and allocation tables) never exceed this."
    assert!(arena.committed() <= arena.commit_limit());
    // src/vmarena/ops.rs:268-269 set_commit_limit "refused (and unchanged)
    // if more than `limit` is committed now even without spare pages"
    assert!(arena.set_commit_limit(Size(p.0)).is_err());
    assert_eq!(arena.commit_limit(), Size(MIB));
    // Free a range that is not allocated, is outside, or misaligned.
    let outside = Range::from_size(arena.range().limit(), p).unwrap();
    assert!(arena.free(outside, Owner(1)).is_err());
    let mis = Range::from_size(Addr(g.range.base().0 + 1), p).unwrap();
    assert!(arena.free(mis, Owner(1)).is_err());
    let empty = Range::from_size(g.range.base(), Size(0)).unwrap();
    assert!(arena.free(empty, Owner(1)).is_err());
    let after = Range::from_size(g.range.limit(), p).unwrap();
    assert!(matches!(arena.free(after, Owner(1)), Err(VmArenaError::NotAllocated(_))));
    assert_eq!(arena.allocated(), Size(8 * p.0));
    arena.check().unwrap();
    arena.free(g.range, Owner(1)).unwrap();
    // src/vmarena/ops.rs:71-72 "Up to the spare bound, the pages stay
    // committed for reuse"
    assert_eq!(arena.spare(), Size(4 * p.0));
    arena.check().unwrap();
}

#[test]
fn a_vmem_arena_over_a_vm_arena() {
    let p = page();
    let mut tracts = VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(16 * MIB))).unwrap();
    {
        // README.md:353-354 "A vmem arena imports from a VM arena (`VmArena:
        // Source`)."
        let mut heap =
            Arena::on_pages("objs", Size(16), MmapBackend::new(), 4096, &mut tracts).unwrap();
        let a = heap.alloc(Size(3 * p.0 + 1), Policy::BestFit).unwrap();
        // SAFETY: imported tracts are committed read-write
        // (src/vmarena/ops.rs:13-14).
        unsafe { a.as_ptr::<u8>().add(3 * p.0).write(9) };
        assert_eq!(heap.source().allocated(), Size(4 * p.0));
        assert_eq!(heap.source().tract(a).unwrap().owner, IMPORT_OWNER);
        heap.free(a, Size(3 * p.0 + 1)).unwrap();
        assert_eq!(heap.source().allocated(), Size(0));
        heap.check().unwrap();
    }
    // The VM arena's own contract for imports (src/arena/source.rs:46-52).
    assert!(matches!(tracts.import(Size(0), p), Err(ArenaError::Misaligned { .. })));
    assert!(matches!(tracts.import(p, Size(3 * p.0)), Err(ArenaError::InvalidArgument(_))));
    assert!(matches!(tracts.import(Size(32 * MIB), p), Err(ArenaError::NoSpace { .. })));
    // A client pool numbered u32::MAX: src/vmarena/request.rs (`Owner`):
    // "`Owner(u32::MAX)` is IMPORT_OWNER ... a client pool given that
    // number shares its tracts with the imports (a give-back through the
    // source takes them)".
    let g = tracts.alloc(&Request::new(Pages(2), Owner(u32::MAX))).unwrap();
    assert_eq!(tracts.release(g.range), Ok(()), "a client's tracts released as an import");
    tracts.check().unwrap();
}

#[test]
fn chunk_map_extremes() {
    let p = page();
    let chunk = Size(4 * MIB);
    // README.md:382 the README's 2^46-byte space, 4 MiB chunks.
    let map = ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(1 << 46), chunk)).unwrap();
    // src/chunkmap/layout.rs:11-14 "a non-zero multiple of the chunk
    // size", "a power of two, at least the page size"
    for (s, c) in [(0, chunk.0), (1 << 30, 3 << 20), (1 << 30, p.0 / 2), ((1 << 30) + p.0, chunk.0)]
    {
        assert!(ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(s), Size(c))).is_err());
    }
    let space = map.space();
    let r = Range::from_size(space.base(), Size(16 * MIB)).unwrap();
    map.ensure_mapped(r).unwrap();
    assert!(map.is_mapped(space.base()));
    // src/chunkmap/ops.rs:12-13 "Map ... every chunk that `range` touches":
    // one byte touches one chunk.
    let one = Range::from_size(Addr(space.base().0 + 20 * MIB + 5), Size(1)).unwrap();
    map.ensure_mapped(one).unwrap();
    assert_eq!(map.committed_chunks(), 5);
    // Out of the space, empty, straddling the end: errors, nothing changed.
    let past = Range::from_size(space.limit(), chunk).unwrap();
    assert!(map.ensure_mapped(past).is_err());
    let straddle = Range::from_size(Addr(space.limit().0 - chunk.0), Size(2 * chunk.0)).unwrap();
    assert!(map.ensure_mapped(straddle).is_err());
    assert!(map.ensure_mapped(Range::from_size(space.base(), Size(0)).unwrap()).is_err());
    assert!(!map.is_mapped(space.limit()));
    assert!(!map.is_mapped(Addr(usize::MAX)));
    assert!(!map.is_mapped(Addr(0)));
    assert!(map.state(Addr(usize::MAX)).is_none());
    // src/chunkmap/ops.rs:33 protect "(chunk-aligned), all committed"
    assert!(map.protect(one).is_err());
    assert_eq!(map.committed_chunks(), 5);
    map.check().unwrap();
    let mut map = map;
    let all = Range::from_size(space.base(), Size(24 * MIB)).unwrap();
    map.unmap(all).unwrap();
    assert_eq!(map.committed_chunks(), 0);
    map.trim().unwrap();
    map.check().unwrap();
}

#[test]
fn error_messages_of_zero_sized_imports() {
    let mut tracts = VmArena::new(MmapBackend::new(), VmArenaConfig::new(Size(MIB))).unwrap();
    let e = tracts.import(Size(0), page()).unwrap_err();
    // src/arena/source.rs:49-50 "[`ArenaError::Misaligned`] for a size that
    // is not a non-zero multiple of the quantum": the variant is as
    // documented, and so is its message (it said "0x0 is not a multiple",
    // which is false).
    assert!(matches!(e, ArenaError::Misaligned { value: 0, .. }));
    assert_eq!(e.to_string(), format!("0 where a non-zero multiple of {:#x} is needed", page().0));
}

#[test]
fn too_large_reservations_say_why() {
    // README.md "Testing": "2^60 bytes fails with `no room to reserve ...`"
    let e = vmspace::vm::Vm::reserve(MmapBackend::new(), Size(1 << 60), page()).unwrap_err();
    assert!(e.to_string().contains("no room to reserve"), "{e}");
    // README.md:373-374 "`ChunkMap::new` with it fails with
    // `OutOfAddressSpace` there" (x86-64, 4-level paging).
    match ChunkMap::new(MmapBackend::new(), ChunkMapConfig::DEFAULT) {
        Err(e) => assert!(format!("{e:?}").contains("OutOfAddressSpace"), "{e:?}"),
        Ok(_) => eprintln!("a 2^47-byte space fit here (5-level paging?)"),
    }
}
