//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the VM arena's decommit on free and purge
//! (unmap plus trim of the VM's mapped-state table), and edges.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace::Pages;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, Protection, Range, Size};

const PAGE: usize = 64;
const TRACTS: usize = 4096;

fn cfg() -> VmArenaConfig {
    VmArenaConfig::new(Size(TRACTS * PAGE)).zone_shift(6)
}

fn idle_state(arena: &VmArena<&SimBackend<'_>>, sim: &SimBackend<'_>, idle_meta: Size) {
    arena.check().unwrap();
    assert_eq!(arena.allocated(), Size(0));
    assert_eq!(arena.committed(), Size(0), "committed");
    assert_eq!(arena.table_pages_mapped(), 0);
    assert_eq!(arena.bit_pages_mapped(), 0);
    assert_eq!(arena.metadata_mapped(), idle_meta, "metadata mapped goes back");
    assert_eq!(sim.stats().mapped_pages * PAGE, idle_meta.0, "backend agrees");
}

#[test]
fn every_free_gives_all_metadata_back_no_spare() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg()).unwrap();
    let idle = arena.metadata_mapped();
    idle_state(&arena, &sim, idle);
    // runs at many places, of many lengths, incl. the whole arena
    for (pages, align) in
        [(1, 1), (7, 1), (513, 512), (1, 2048), (TRACTS, 1), (TRACTS - 1, 1), (600, 1)]
    {
        let g = arena.alloc(&Request::new(Pages(pages), Owner(3)).align(Pages(align))).unwrap();
        arena.check().unwrap();
        assert_eq!(arena.allocated(), Size(pages * PAGE));
        arena.free(g.range, Owner(3)).unwrap();
        idle_state(&arena, &sim, idle);
    }
    // Fill it all one page at a time, free in odd order.
    let mut gs = Vec::new();
    for _ in 0..TRACTS {
        gs.push(arena.alloc(&Request::new(Pages(1), Owner(1))).unwrap().range);
    }
    assert!(arena.alloc(&Request::new(Pages(1), Owner(1))).is_err());
    arena.check().unwrap();
    for i in (0..TRACTS).step_by(2).chain((1..TRACTS).step_by(2)) {
        arena.free(gs[i], Owner(1)).unwrap();
    }
    idle_state(&arena, &sim, idle);
}

#[test]
fn purge_gives_all_metadata_back() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg().spare_limit(TRACTS)).unwrap();
    let idle = arena.metadata_mapped();
    let mut gs = Vec::new();
    for i in 0..40 {
        let g = arena.alloc(&Request::new(Pages(1 + i * 7 % 150), Owner(2))).unwrap();
        gs.push(g.range);
    }
    arena.check().unwrap();
    let total: usize = gs.iter().map(|r| r.size().0).sum();
    for r in &gs {
        arena.free(*r, Owner(2)).unwrap();
        arena.check().unwrap();
    }
    assert_eq!(arena.spare(), Size(total));
    assert_eq!(arena.committed(), Size(total));
    let purged = arena.purge_spare().unwrap();
    assert_eq!(purged * PAGE, total);
    assert_eq!(arena.spare(), Size(0));
    idle_state(&arena, &sim, idle);
    // And re-allocate after the purge: fresh pages read zero.
    let g = arena.alloc(&Request::new(Pages(TRACTS), Owner(4))).unwrap();
    let p = g.range.base().0 as *const u8;
    for i in 0..TRACTS * PAGE {
        // SAFETY: the arena just committed the whole grant read-write in
        // the simulated backend's buffer, and nothing else touches it.
        assert_eq!(unsafe { *p.add(i) }, 0, "byte {i}");
    }
    arena.free(g.range, Owner(4)).unwrap();
    arena.set_spare_limit(0).unwrap();
    idle_state(&arena, &sim, idle);
}

#[test]
fn spare_interleaved_with_allocated_then_purge_and_commit_limit() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg().spare_limit(100)).unwrap();
    let idle = arena.metadata_mapped();
    let mut gs = Vec::new();
    for _ in 0..200 {
        gs.push(arena.alloc(&Request::new(Pages(3), Owner(5))).unwrap().range);
    }
    // free every other: spare pages interleave with allocated ones
    for r in gs.iter().step_by(2) {
        arena.free(*r, Owner(5)).unwrap();
        arena.check().unwrap();
    }
    assert_eq!(arena.spare(), Size(100 * PAGE));
    arena.purge_spare().unwrap();
    arena.check().unwrap();
    assert_eq!(arena.spare(), Size(0));
    // Commit limit set to exactly what is committed now.
    let c = arena.committed();
    arena.set_commit_limit(c).unwrap();
    assert!(arena.alloc(&Request::new(Pages(1), Owner(5))).is_err());
    arena.check().unwrap();
    assert!(arena.set_commit_limit(Size(c.0 - 1)).is_err());
    assert_eq!(arena.commit_limit(), c);
    arena.set_commit_limit(Size(usize::MAX)).unwrap();
    for r in gs.iter().skip(1).step_by(2) {
        arena.free(*r, Owner(5)).unwrap();
        arena.check().unwrap();
    }
    arena.purge_spare().unwrap();
    idle_state(&arena, &sim, idle);
}

#[test]
fn protected_free_decommits_and_trims() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg().spare_limit(TRACTS)).unwrap();
    let idle = arena.metadata_mapped();
    let g = arena.alloc(&Request::new(Pages(1000), Owner(9))).unwrap();
    let piece = Range::from_size(Addr(g.range.base().0 + 10 * PAGE), Size(PAGE)).unwrap();
    arena.protect(piece, Owner(9), Protection::None).unwrap();
    arena.check().unwrap();
    arena.free(g.range, Owner(9)).unwrap();
    assert_eq!(arena.spare(), Size(0));
    idle_state(&arena, &sim, idle);
}

#[test]
fn bad_requests_are_errors() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg()).unwrap();
    let idle = arena.metadata_mapped();
    for req in [
        Request::new(Pages(0), Owner(1)),
        Request::new(Pages(1), Owner(0)),
        Request::new(Pages(1), Owner(1)).align(Pages(0)),
        Request::new(Pages(1), Owner(1)).align(Pages(3)),
        Request::new(Pages(TRACTS + 1), Owner(1)),
        Request::new(Pages(usize::MAX), Owner(1)),
        Request::new(Pages(usize::MAX / 2), Owner(1)),
        Request::new(Pages(1), Owner(1)).align(Pages(1 << 63)),
        Request::new(Pages(2), Owner(1)).align(Pages(1 << 40)),
    ] {
        assert!(arena.alloc(&req).is_err(), "{req:?}");
        idle_state(&arena, &sim, idle);
    }
    // Zone requests that can not be met fall back, never fail while room.
    let g = arena
        .alloc(&Request::new(Pages(TRACTS), Owner(1)).prefer(ZoneSet::EMPTY).avoid(ZoneSet::ALL))
        .unwrap();
    arena.check().unwrap();
    // Bad frees.
    let b = arena.base().0;
    for range in [
        Range::empty(arena.base()),
        Range::from_size(Addr(b + 1), Size(PAGE)).unwrap(),
        Range::from_size(Addr(b), Size(PAGE + 1)).unwrap(),
        Range::from_size(Addr(b), Size((TRACTS + 1) * PAGE)).unwrap(),
        Range::new(Addr(usize::MAX - 2 * PAGE + 1), Addr(usize::MAX - PAGE + 1)).unwrap(),
    ] {
        assert!(arena.free(range, Owner(1)).is_err(), "{range:?}");
    }
    assert!(arena.free(g.range, Owner(2)).is_err());
    assert!(arena.set_client(Addr(usize::MAX), 1).is_err());
    assert!(arena.set_client(Addr(0), 1).is_err());
    arena.check().unwrap();
    arena.free(g.range, Owner(1)).unwrap();
    idle_state(&arena, &sim, idle);
}

#[test]
fn config_edges_are_errors() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    for c in [
        VmArenaConfig::new(Size(0)),
        VmArenaConfig::new(Size(usize::MAX)),
        VmArenaConfig::new(Size(usize::MAX - PAGE + 1)),
        VmArenaConfig::new(Size(usize::MAX / 2)),
        VmArenaConfig::new(Size(PAGE)).zone_shift(5),
        VmArenaConfig::new(Size(PAGE)).zone_shift(64),
        VmArenaConfig::new(Size(PAGE)).zone_shift(u32::MAX),
    ] {
        assert!(VmArena::new(&sim, c).is_err(), "{c:?}");
    }
    assert_eq!(sim.stats().reservations, 0);
    // zone shift 63 is allowed
    let mut a = VmArena::new(&sim, VmArenaConfig::new(Size(PAGE * 8)).zone_shift(63)).unwrap();
    let g = a.alloc(&Request::new(Pages(8), Owner(1)).prefer(ZoneSet::single(1))).unwrap();
    a.check().unwrap();
    a.free(g.range, Owner(1)).unwrap();
    a.check().unwrap();
}

#[test]
fn faults_during_free_and_purge_keep_check_passing() {
    for n in 1..60u64 {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let mut arena = VmArena::new(&fi, cfg().spare_limit(50)).unwrap();
        let mut live = Vec::new();
        for i in 0..30 {
            if let Ok(g) = arena.alloc(&Request::new(Pages(1 + (i * 37) % 200), Owner(1))) {
                live.push(g.range);
            }
        }
        fi.fail_nth(n);
        let mut kept = Vec::new();
        for r in live.drain(..) {
            if arena.free(r, Owner(1)).is_err() {
                kept.push(r);
            }
            arena.check().unwrap();
        }
        let _ = arena.purge_spare();
        arena.check().unwrap();
        fi.clear();
        for r in kept {
            arena.free(r, Owner(1)).unwrap();
            arena.check().unwrap();
        }
        arena.purge_spare().unwrap();
        arena.check().unwrap();
        assert_eq!(arena.committed(), Size(0));
        // A failed trim may leave VM table pages; a full trim path must
        // leave only the summary once the arena is idle (next op retries).
        let g = arena.alloc(&Request::new(Pages(1), Owner(1))).unwrap();
        arena.free(g.range, Owner(1)).unwrap();
        arena.check().unwrap();
    }
}

#[test]
fn commit_limit_exactly_reached_with_spare_reuse() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut arena = VmArena::new(&sim, cfg().spare_limit(64)).unwrap();
    let idle = arena.metadata_mapped();
    // Find how much one 16-page run costs with its tables.
    let g = arena.alloc(&Request::new(Pages(16), Owner(1))).unwrap();
    let one = arena.committed();
    arena.free(g.range, Owner(1)).unwrap();
    arena.purge_spare().unwrap();
    arena.set_commit_limit(one).unwrap();
    let g = arena.alloc(&Request::new(Pages(16), Owner(1))).unwrap();
    arena.check().unwrap();
    assert!(arena.alloc(&Request::new(Pages(1), Owner(1))).is_err());
    arena.check().unwrap();
    arena.free(g.range, Owner(1)).unwrap();
    arena.check().unwrap();
    assert_eq!(arena.spare(), Size(16 * PAGE));
    // the whole run again: reuses the spare pages, and needs its tables
    let g = arena.alloc(&Request::new(Pages(16), Owner(2))).unwrap();
    arena.check().unwrap();
    arena.free(g.range, Owner(2)).unwrap();
    // somewhere else: must purge the spare to fit (room for a run
    // straddling table pages: up to 3 page-table and 2 allocation-table pages)
    arena.set_commit_limit(Size(one.0 + 2 * PAGE)).unwrap();
    assert_eq!(arena.spare(), Size(16 * PAGE));
    let g = arena
        .alloc(&Request::new(Pages(16), Owner(3)).align(Pages(1024)).prefer(ZoneSet::single(5)))
        .unwrap();
    arena.check().unwrap();
    arena.free(g.range, Owner(3)).unwrap();
    arena.set_spare_limit(0).unwrap();
    idle_state(&arena, &sim, idle);
}
