//! `vmspace_workload::pages`: the checks catch what they claim to.

use super::*;

// HOLDS: the page checks themselves: `chunks_agree` and `tracts_agree`
// pass on agreeing pages, fail on a chunk or tract recorded more open
// than one of its pages (or mapped pages under an unmapped chunk), and
// accept pages more open than an inaccessible record (the stated rule),
// which `tracts_agree(exact)` refuses.
#[test]
pub(crate) fn the_page_checks_catch_what_they_claim_to() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let probe = |a| prot(&sim, a);
    let map = ChunkMap::new(&sim, chunk_config()).unwrap();
    let space = map.space();
    map.ensure_mapped(sub(space, 0, 8, PAGE)).unwrap();
    map.protect(sub(space, 4, 4, PAGE)).unwrap();
    pages::chunks_agree(&map, CHUNKS, &probe).unwrap();
    // The last page of mapped chunk 0 made read-only behind the map's back.
    let p = sub(space, 3, 1, PAGE);
    // SAFETY: a mapped page of the map's reservation; nothing reads it.
    unsafe { sim.protect(p, Protection::Read) }.unwrap();
    assert!(pages::chunks_agree(&map, CHUNKS, &probe).is_err());
    // ... but not when only chunk 0 is left out of the check's window.
    assert!(pages::chunks_agree(&map, 0, &probe).is_ok());
    // SAFETY: as above.
    unsafe { sim.protect(p, Protection::ReadWrite) }.unwrap();
    // Protected chunk 1 with a read-write page: allowed.
    let q = sub(space, 7, 1, PAGE);
    // SAFETY: as above.
    unsafe { sim.protect(q, Protection::ReadWrite) }.unwrap();
    pages::chunks_agree(&map, CHUNKS, &probe).unwrap();
    // A page mapped under unmapped chunk 5.
    let u = sub(space, 21, 1, PAGE);
    // SAFETY: an unmapped page of the map's reservation.
    unsafe { sim.map(u) }.unwrap();
    assert!(pages::chunks_agree(&map, CHUNKS, &probe).is_err());
    // SAFETY: mapped just now.
    unsafe { sim.unmap(u) }.unwrap();
    pages::chunks_agree(&map, CHUNKS, &probe).unwrap();
    drop(map);

    let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10);
    let mut arena = VmArena::new(&sim, config).unwrap();
    let g = arena.alloc(&Request::new(Pages(3), Owner(1))).unwrap().range;
    pages::tracts_agree(&arena, true, &probe).unwrap();
    let last = sub(g, 2, 1, PAGE);
    // SAFETY: an allocated, mapped tract; nothing reads it.
    unsafe { sim.protect(last, Protection::Read) }.unwrap();
    assert!(pages::tracts_agree(&arena, false, &probe).is_err());
    arena.protect(last, Owner(1), Protection::None).unwrap();
    // SAFETY: as above.
    unsafe { sim.protect(last, Protection::ReadWrite) }.unwrap();
    pages::tracts_agree(&arena, false, &probe).unwrap();
    assert!(pages::tracts_agree(&arena, true, &probe).is_err());
    // SAFETY: as above.
    unsafe { sim.unmap(last) }.unwrap();
    assert!(pages::tracts_agree(&arena, false, &probe).is_err());
    // SAFETY: unmapped just now.
    unsafe { sim.map(last) }.unwrap();
    // SAFETY: as above.
    unsafe { sim.protect(last, Protection::None) }.unwrap();
    pages::tracts_agree(&arena, true, &probe).unwrap();
}
