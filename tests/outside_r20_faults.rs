//! Round 20, an outside reviewer's tests of today's `FaultShape::PartWay`
//! (`shim/src/fault.rs`) and `vmspace_workload::pages`, and of the chunk
//! map and the VM arena driven through them.
//!
//! Each test is marked `// DEFECT:` (failed when written, because of a
//! defect; fixed in the commit that added this file, so it now guards the
//! fix) or `// HOLDS:` (passed: a claim checked and found true).

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkMapError, ChunkState};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::{PageState, SimBackend};
use vmspace_shim::{
    Addr, FaultInjector, FaultShape, PageOps, Pages, Protection, Range, ShimError, Size,
};
use vmspace_user::MmapBackend;
use vmspace_workload::pages;
use vmspace_workload::Rng;

const PAGE: usize = 256;

/// The sim's protection of the page at `a` (`None`: not mapped).
fn prot(sim: &SimBackend<'_>, a: Addr) -> Option<Protection> {
    match sim.page_state(a) {
        Some(PageState::Mapped(p)) => Some(p),
        _ => None,
    }
}

/// The pages of `r`, each `Some(protection)` or `None`.
fn prots(sim: &SimBackend<'_>, r: Range, page: usize) -> Vec<Option<Protection>> {
    (0..r.size().0 / page).map(|i| prot(sim, Addr(r.base().0 + i * page))).collect()
}

fn sub(r: Range, first: usize, n: usize, page: usize) -> Range {
    Range::from_size(Addr(r.base().0 + first * page), Size(n * page)).unwrap()
}

// DEFECT: `FaultShape::PartWay` says a failing `unmap` changes its first
// k pages "to Protection::None, pages decommitted but still mapped"; the
// injector only protects them (`change_part` calls `inner.protect`), so
// their contents survive: the sim, which poisons what it decommits, still
// holds what was written there. A layer that wrongly counts on a failed
// unmap keeping its data (as the mmap backend's `madvise` then
// `mprotect` does not) cannot be caught with this shape.
#[test]
fn part_way_unmap_decommits_the_prefix_it_changes() {
    let mut buf = vec![0u8; 64 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    let res = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
    // SAFETY: the sim's own reservation; only this test touches it.
    unsafe { f.map(res) }.unwrap();
    // SAFETY: mapped read-write just now, 8 pages.
    unsafe { core::ptr::write_bytes(res.base().as_ptr::<u8>(), 0xAB, 8 * PAGE) };
    f.set_shape(FaultShape::PartWay);
    f.fail_nth(1);
    // SAFETY: mapped; nothing reads it until it is mapped again.
    let e = unsafe { f.unmap(res) };
    assert!(matches!(e, Err(ShimError::Injected { .. })));
    let got = prots(&sim, res, PAGE);
    let k = got.iter().take_while(|p| **p == Some(Protection::None)).count();
    assert!((1..8).contains(&k), "{got:?}");
    // SAFETY: the sim's buffer is ordinary memory, readable whatever the
    // simulated protection.
    let first = unsafe { core::slice::from_raw_parts(res.base().as_ptr::<u8>(), PAGE) };
    assert!(
        first.iter().any(|&b| b != 0xAB),
        "the {k} pages a part-way unmap changed still hold their data: not decommitted"
    );
}

// DEFECT: `fail_randomly`: "the same seed gives the same failures for the
// same sequence of calls". Under `PartWay` the number of pages changed
// is drawn from the same generator (`change_part` calls `next_random`),
// so every part-way failure shifts the stream: the same calls with the
// same seed fail at other places than under `Clean`. (Harmless for one
// run; it means a shape cannot be compared with the other on the same
// failures, e.g. the model tests' `part_way in any::<bool>()` with one
// `fault_seed`.)
#[test]
fn same_seed_same_calls_same_failures_whatever_the_shape() {
    let mut runs = Vec::new();
    for shape in [FaultShape::Clean, FaultShape::PartWay] {
        let mut buf = vec![0u8; 64 * PAGE];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let res = f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap();
        // SAFETY: the sim's own reservation, unused.
        unsafe { f.map(res) }.unwrap();
        f.set_shape(shape);
        f.fail_randomly(42, 300_000);
        let failed: Vec<bool> = (0..64)
            .map(|i| {
                let p = if i % 2 == 0 { Protection::Read } else { Protection::ReadWrite };
                // SAFETY: mapped, and nothing accesses it.
                unsafe { f.protect(res, p) }.is_err()
            })
            .collect();
        runs.push(failed);
    }
    assert!(runs[0].iter().any(|&b| b));
    assert_eq!(runs[0], runs[1], "the same seed and calls failed elsewhere under PartWay");
}

// HOLDS: one injector under four threads, each on its own 8 pages,
// failing at random part way: every failed protect or unmap of n pages
// changed a prefix of 1..n pages (none for one page), the rest as they
// were; failed maps and deferred unmaps changed nothing.
#[test]
fn part_way_from_threads_changes_a_prefix_never_all() {
    let mut buf = vec![0u8; 128 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    f.set_shape(FaultShape::PartWay);
    let regions: Vec<Range> =
        (0..4).map(|_| f.reserve(Size(8 * PAGE), Size(PAGE)).unwrap()).collect();
    f.fail_randomly(7, 400_000);
    std::thread::scope(|s| {
        for (t, &r) in regions.iter().enumerate() {
            let (f, sim) = (&f, &sim);
            s.spawn(move || {
                let mut rng = Rng::new(t as u64 + 1);
                let rw = Some(Protection::ReadWrite);
                // SAFETY: this thread's own reservation in the sim (here
                // and below); nothing reads or writes it.
                while unsafe { f.map(r) }.is_err() {
                    assert!(prots(sim, r, PAGE).iter().all(Option::is_none));
                }
                for _ in 0..300 {
                    let n = 1 + rng.below(8);
                    let part = sub(r, 0, n, PAGE);
                    let kind = rng.below(3);
                    let e = match kind {
                        // SAFETY: as above; `part` is mapped.
                        0 => unsafe { f.protect(part, Protection::Read) },
                        // SAFETY: as above.
                        1 => unsafe { f.unmap(part) },
                        // SAFETY: as above.
                        _ => unsafe { f.unmap_deferred(part) },
                    };
                    let got = prots(sim, r, PAGE);
                    match e {
                        Err(_) => {
                            let want = if kind == 0 { Protection::Read } else { Protection::None };
                            let k = got.iter().take_while(|p| **p == Some(want)).count();
                            let ok = match (kind, n) {
                                (2, _) | (_, 1) => k == 0,
                                _ => (1..n).contains(&k),
                            };
                            assert!(ok, "kind {kind}, {n} pages: {got:?}");
                            assert!(got[k..].iter().all(|p| *p == rw), "{got:?}");
                        }
                        Ok(()) if kind == 0 => {}
                        Ok(()) => {
                            assert!(got[..n].iter().all(Option::is_none), "{got:?}");
                            f.flush();
                            // SAFETY: as above; `part` is unmapped, flushed.
                            while let Err(e) = unsafe { f.map(part) } {
                                assert!(matches!(e, ShimError::Injected { .. }), "{e}");
                            }
                        }
                    }
                    // SAFETY: as above; all of `r` is mapped.
                    while unsafe { f.protect(r, Protection::ReadWrite) }.is_err() {}
                    assert!(prots(sim, r, PAGE).iter().all(|p| *p == rw));
                }
            });
        }
    });
    assert!(f.changed_part_way() > 100, "{}", f.changed_part_way());
}

/// Chunk map over the sim: 64 chunks of 4 pages.
const CHUNK: usize = 4 * PAGE;
const CHUNKS: usize = 64;

fn chunk_config() -> ChunkMapConfig {
    ChunkMapConfig::new(Size(CHUNKS * CHUNK), Size(CHUNK))
}

fn states<P: PageOps>(map: &ChunkMap<P>) -> Vec<ChunkState> {
    (0..CHUNKS).map(|c| map.state(Addr(map.space().base().0 + c * CHUNK)).unwrap()).collect()
}

/// Every chunk's pages exactly as its state says (protected: none).
fn chunks_exact<P: PageOps>(map: &ChunkMap<P>, sim: &SimBackend<'_>) -> Result<(), String> {
    for (c, s) in states(map).into_iter().enumerate() {
        let r = sub(map.space(), c * 4, 4, PAGE);
        let want = match s {
            ChunkState::Mapped => Some(Protection::ReadWrite),
            ChunkState::Protected => Some(Protection::None),
            _ => None,
        };
        let got = prots(sim, r, PAGE);
        if got.iter().any(|p| *p != want) {
            return Err(format!("chunk {c} {s:?}: {got:?}"));
        }
    }
    Ok(())
}

/// A random range of whole chunks (or, `loose`, of bytes) in the space.
fn chunk_range(rng: &mut Rng, base: Addr, loose: bool) -> Range {
    let c = rng.below(CHUNKS);
    let n = 1 + rng.below((CHUNKS - c).min(12));
    if loose {
        let off = rng.below(CHUNK);
        let len = 1 + rng.below(n * CHUNK - off);
        Range::from_size(Addr(base.0 + c * CHUNK + off), Size(len)).unwrap()
    } else {
        Range::from_size(Addr(base.0 + c * CHUNK), Size(n * CHUNK)).unwrap()
    }
}

// HOLDS: random operations on a chunk map over random part-way faults:
// `check()` and `chunks_agree` after every step; an error other than
// `RollbackFailed` leaves every chunk's state as it was and, until the
// first `RollbackFailed`, every chunk's pages exactly as its state says.
#[test]
fn chunk_map_backend_errors_restore_exactly() {
    let mut rollbacks = 0;
    let mut backend = 0;
    for seed in 1..=12u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let mut map = ChunkMap::new(&f, chunk_config()).unwrap();
        f.set_shape(FaultShape::PartWay);
        f.fail_randomly(seed * 31, 250_000);
        let mut rng = Rng::new(seed);
        let mut exact = true;
        let base = map.space().base();
        for step in 0..250 {
            let before = states(&map);
            let kind = rng.below(6);
            let r = chunk_range(&mut rng, base, kind < 2);
            let res = match kind {
                0 => map.ensure_mapped(r),
                1 => map.quarantine(r),
                2 => map.protect(r),
                3 => map.unprotect(r),
                4 => map.unmap(r),
                _ => map.trim().map(drop),
            };
            let what = format!("seed {seed} step {step} kind {kind} {r}: {res:?}");
            map.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            pages::chunks_agree(&map, CHUNKS, &|a| prot(&sim, a))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            match res {
                Err(ChunkMapError::RollbackFailed { .. }) => {
                    rollbacks += 1;
                    exact = false;
                }
                Err(e) => {
                    backend += usize::from(matches!(e, ChunkMapError::Backend { .. }));
                    assert_eq!(states(&map), before, "{what}");
                }
                Ok(()) => {}
            }
            if exact {
                chunks_exact(&map, &sim).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    assert!(backend > 100 && rollbacks > 5, "{backend} backend errors, {rollbacks} rollbacks");
}

// HOLDS: four threads on one chunk map (`ensure_mapped`, `quarantine`,
// `protect`, `unprotect` take `&self`) over one injector failing part
// way at random: afterwards `check()` passes, every chunk's pages agree
// with its state, and exactly so when no thread saw `RollbackFailed`.
#[test]
fn chunk_map_threads_under_part_way_faults() {
    for seed in 1..=6u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let map = ChunkMap::new(&f, chunk_config()).unwrap();
        f.set_shape(FaultShape::PartWay);
        f.fail_randomly(seed, 200_000);
        let rollbacks: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let map = &map;
                    s.spawn(move || {
                        let mut rng = Rng::new(seed * 100 + t);
                        let mut rollbacks = 0;
                        for _ in 0..400 {
                            let kind = rng.below(4);
                            let r = chunk_range(&mut rng, map.space().base(), kind < 2);
                            let res = match kind {
                                0 => map.ensure_mapped(r),
                                1 => map.quarantine(r),
                                2 => map.protect(r),
                                _ => map.unprotect(r),
                            };
                            rollbacks += usize::from(matches!(
                                res,
                                Err(ChunkMapError::RollbackFailed { .. })
                            ));
                        }
                        rollbacks
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        f.clear();
        map.check().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        pages::chunks_agree(&map, CHUNKS, &|a| prot(&sim, a))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if rollbacks == 0 {
            chunks_exact(&map, &sim).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert!(f.changed_part_way() > 10, "seed {seed}: {}", f.changed_part_way());
    }
}

// HOLDS: the same over the mmap backend (4 KiB pages, part-way faults
// injected above it): after every step every chunk recorded mapped is
// read and written in every page (a chunk recorded more open than its
// pages would kill the test with SIGSEGV).
#[test]
fn chunk_map_over_mmap_mapped_chunks_are_writable() {
    let mmap = MmapBackend::new();
    let page = mmap.page_size().0;
    let f = FaultInjector::new(mmap);
    let chunk = 4 * page;
    let mut map =
        ChunkMap::new(&f, ChunkMapConfig::new(Size(CHUNKS * chunk), Size(chunk))).unwrap();
    f.set_shape(FaultShape::PartWay);
    f.fail_randomly(99, 250_000);
    let mut rng = Rng::new(5);
    let base = map.space().base();
    for step in 0..400 {
        let c = rng.below(CHUNKS);
        let n = 1 + rng.below((CHUNKS - c).min(8));
        let r = Range::from_size(Addr(base.0 + c * chunk), Size(n * chunk)).unwrap();
        let res = match rng.below(5) {
            0 | 1 => map.ensure_mapped(r),
            2 => map.protect(r),
            3 => map.unprotect(r),
            _ => map.unmap(r),
        };
        map.check().unwrap_or_else(|e| panic!("step {step}: {res:?}: {e}"));
        for c in 0..CHUNKS {
            let a = base.0 + c * chunk;
            if map.state(Addr(a)) == Some(ChunkState::Mapped) {
                for p in 0..4 {
                    let ptr = Addr(a + p * page).as_ptr::<u8>();
                    // SAFETY: the map records the chunk read-write: its
                    // pages are committed and writable (what we check).
                    unsafe { ptr.write_volatile(ptr.read_volatile().wrapping_add(1)) };
                }
            }
        }
    }
    assert!(f.changed_part_way() > 10);
}

/// The recorded tract of each tract of `arena` (`None`: free).
fn tracts<P: PageOps>(arena: &VmArena<P>) -> Vec<Option<(Owner, Protection)>> {
    let page = arena.page_size().0;
    (0..arena.tracts())
        .map(|t| arena.tract(Addr(arena.base().0 + t * page)).map(|x| (x.owner, x.prot)))
        .collect()
}

// HOLDS: random operations on a VM arena (allocate, free, protect part
// of a grant, purge, change the spare bound) over random part-way faults:
// `check()` and `tracts_agree` after every step; an error other than
// `RollbackFailed` leaves every tract's record as it was and, until the
// first `RollbackFailed`, every allocated tract's page exactly as
// recorded.
#[test]
fn vm_arena_backend_errors_restore_exactly() {
    let mut rollbacks = 0;
    let mut backend = 0;
    for seed in 1..=12u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(256 * PAGE)).zone_shift(10).spare_limit(8);
        let mut arena = VmArena::new(&f, config).unwrap();
        f.set_shape(FaultShape::PartWay);
        f.fail_randomly(seed * 77, 250_000);
        let mut rng = Rng::new(seed);
        let mut grants: Vec<(Range, Owner)> = Vec::new();
        let mut exact = true;
        let probe = |a| prot(&sim, a);
        for step in 0..300 {
            let before = tracts(&arena);
            let kind = if grants.is_empty() { 0 } else { rng.below(6) };
            let res = match kind {
                0 | 1 => {
                    let owner = Owner(1 + rng.below(3) as u32);
                    let req = Request::new(Pages(1 + rng.below(8)), owner);
                    arena.alloc(&req).map(|g| grants.push((g.range, owner)))
                }
                2 => {
                    let i = rng.below(grants.len());
                    let (r, o) = grants[i];
                    let res = arena.free(r, o);
                    if res.is_ok() {
                        grants.swap_remove(i);
                    }
                    res
                }
                3 | 4 => {
                    let (r, o) = grants[rng.below(grants.len())];
                    let n = r.size().0 / PAGE;
                    let first = rng.below(n);
                    let len = 1 + rng.below(n - first);
                    let p =
                        [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)];
                    arena.protect(sub(r, first, len, PAGE), o, p)
                }
                _ if rng.below(2) == 0 => arena.purge_spare().map(drop),
                _ => arena.set_spare_limit(rng.below(10)),
            };
            let what = format!("seed {seed} step {step} kind {kind}: {res:?}");
            arena.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            pages::tracts_agree(&arena, false, &probe).unwrap_or_else(|e| panic!("{what}: {e}"));
            match res {
                Err(VmArenaError::RollbackFailed { .. }) => {
                    rollbacks += 1;
                    exact = false;
                }
                Err(e) => {
                    backend += usize::from(e.backend().is_some());
                    assert_eq!(tracts(&arena), before, "{what}");
                }
                Ok(()) => {}
            }
            if exact {
                pages::tracts_agree(&arena, true, &probe).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    assert!(backend > 50 && rollbacks > 3, "{backend} backend errors, {rollbacks} rollbacks");
}

// HOLDS: the page checks themselves: `chunks_agree` and `tracts_agree`
// pass on agreeing pages, fail on a chunk or tract recorded more open
// than one of its pages (or mapped pages under an unmapped chunk), and
// accept pages more open than an inaccessible record (the stated rule),
// which `tracts_agree(exact)` refuses.
#[test]
fn the_page_checks_catch_what_they_claim_to() {
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

/// The chunks of `map` outside `named` whose state differs from `before`.
fn changed_outside<P: PageOps>(
    map: &ChunkMap<P>,
    before: &[ChunkState],
    named: Range,
) -> Vec<(usize, ChunkState, ChunkState)> {
    let now = states(map);
    (0..CHUNKS)
        .filter(|&c| !named.contains(&sub(map.space(), c * 4, 4, PAGE)))
        .filter(|&c| now[c] != before[c])
        .map(|c| (c, before[c], now[c]))
        .collect()
}

// DEFECT: `ChunkMapError::RollbackFailed`: "[`range` is] the address range
// [the failed operation] was applied to ... every chunk not named here is
// as it was". When the call that fails is not the first, and undoing an
// earlier call fails too, the chunks that changed are the earlier ones,
// outside `range`:
// 1. `ensure_mapped` of 2 unmapped then 2 protected chunks: the map of
//    the first two succeeds, the unprotect of the others fails (and is
//    put back), the unmap undoing the map fails: chunks 0-1 end mapped,
//    `range` names chunks 2-3, which are as they were
//    (`transition`, src/chunkmap/claim.rs:84-89, names the failed run).
// 2. `unmap` of 2 mapped then 2 protected chunks: the first unmap
//    succeeds, the second fails, the map undoing the first fails: chunks
//    0-1 end unmapped, `range` names chunks 2-3 (src/chunkmap/ops.rs:93-96).
// Two injectors stacked pick the calls that fail.
#[test]
fn rollback_failed_names_the_chunks_that_changed() {
    let mut wrong = Vec::new();
    for case in 0..2 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let inner = FaultInjector::new(&sim);
        let outer = FaultInjector::new(&inner);
        let mut map = ChunkMap::new(&outer, chunk_config()).unwrap();
        let space = map.space();
        let (first, second, all) =
            (sub(space, 0, 8, PAGE), sub(space, 8, 8, PAGE), sub(space, 0, 16, PAGE));
        let res = if case == 0 {
            map.ensure_mapped(second).unwrap();
            map.protect(second).unwrap();
            let before = states(&map);
            outer.only(&[vmspace_shim::Op::Protect]);
            outer.fail_nth(1);
            inner.only(&[vmspace_shim::Op::Unmap]);
            inner.fail_nth(1);
            (map.ensure_mapped(all), before)
        } else {
            map.ensure_mapped(all).unwrap();
            map.protect(second).unwrap();
            let before = states(&map);
            outer.only(&[vmspace_shim::Op::Unmap]);
            outer.fail_nth(2);
            inner.only(&[vmspace_shim::Op::Map]);
            inner.fail_nth(1);
            (map.unmap(all), before)
        };
        let (res, before) = res;
        outer.clear();
        inner.clear();
        map.check().unwrap();
        // (The maintainers' adaptation to the fix: `range` keeps naming
        // the failed call, and the new field `lost` names every chunk that
        // may have changed; the test now holds `lost` to the doc's "every
        // chunk outside `lost` is as it was".)
        let Err(ChunkMapError::RollbackFailed { range, lost, .. }) = res else {
            panic!("case {case}: {res:?}")
        };
        assert_eq!(range, second, "case {case}");
        assert!(lost.contains(&first), "case {case}: lost {lost} must hold chunks 0-1");
        let changed = changed_outside(&map, &before, lost);
        if !changed.is_empty() {
            wrong.push(format!("case {case}: (chunk, was, is) {changed:?}"));
        }
    }
    assert!(wrong.is_empty(), "chunks outside RollbackFailed's `lost` changed: {wrong:?}");
}

// DEFECT: `VmArenaError`: "A failing operation leaves the arena as it was
// before the call: ... the same pages committed; except after
// `RollbackFailed`". An allocation over fresh, spare, fresh tracts maps
// the first fresh run, fails to map the second, and then fails to unmap
// the first again (`commit_tracts`, src/vmarena/ops.rs:352-353, then
// `uncommit_marked`, ops.rs:373-381: the pages "stay committed, free:
// spare"): one more page is committed and spare, yet
// the error is the plain `Vm(Backend)` of the failed map, not
// `RollbackFailed`.
#[test]
fn a_failed_alloc_that_keeps_pages_committed_says_rollback_failed() {
    let mut wrong = Vec::new();
    for n in 1..=6 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let inner = FaultInjector::new(&sim);
        let outer = FaultInjector::new(&inner);
        let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(1);
        let mut arena = VmArena::new(&outer, config).unwrap();
        let o = Owner(1);
        let keep = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t0
        let x = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t1
        let y = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t2
        let z = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t3
        arena.free(y, o).unwrap(); // spare
        arena.free(x, o).unwrap(); // decommitted: the spare bound is 1
        arena.free(z, o).unwrap();
        assert_eq!(arena.spare().0, PAGE);
        let (committed, spare) = (arena.committed(), arena.spare());
        outer.only(&[vmspace_shim::Op::Map]);
        outer.fail_nth(n);
        inner.only(&[vmspace_shim::Op::Unmap]);
        inner.fail_nth(1);
        let res = arena.alloc(&Request::new(Pages(3), o));
        outer.clear();
        inner.clear();
        arena.check().unwrap();
        let changed = (arena.committed(), arena.spare()) != (committed, spare);
        match res {
            Err(VmArenaError::RollbackFailed { .. }) | Ok(_) => {}
            Err(e) if changed => wrong.push(format!(
                "map {n} failing: {e:?}, committed {committed} -> {}, spare {spare} -> {}",
                arena.committed(),
                arena.spare()
            )),
            Err(_) => {}
        }
        let _ = keep;
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// HOLDS: a VM arena over the mmap backend with part-way faults injected
// above it: after every step every allocated tract recorded read-write is
// written, and every one recorded read-only is read (a tract recorded
// more open than its page would kill the test with SIGSEGV).
#[test]
fn vm_arena_over_mmap_tracts_are_as_open_as_recorded() {
    let mmap = MmapBackend::new();
    let page = mmap.page_size().0;
    let f = FaultInjector::new(mmap);
    let config =
        VmArenaConfig::new(Size(256 * page)).zone_shift(page.trailing_zeros() + 2).spare_limit(8);
    let mut arena = VmArena::new(&f, config).unwrap();
    f.set_shape(FaultShape::PartWay);
    f.fail_randomly(1234, 250_000);
    let mut rng = Rng::new(77);
    let mut grants: Vec<Range> = Vec::new();
    let o = Owner(1);
    for step in 0..400 {
        let kind = if grants.is_empty() { 0 } else { rng.below(5) };
        let res = match kind {
            0 | 1 => arena.alloc(&Request::new(Pages(1 + rng.below(8)), o)).map(|g| {
                grants.push(g.range);
            }),
            2 => {
                let i = rng.below(grants.len());
                let res = arena.free(grants[i], o);
                if res.is_ok() {
                    grants.swap_remove(i);
                }
                res
            }
            3 => {
                let r = grants[rng.below(grants.len())];
                let p = [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)];
                arena.protect(r, o, p)
            }
            _ => arena.purge_spare().map(drop),
        };
        arena.check().unwrap_or_else(|e| panic!("step {step}: {res:?}: {e}"));
        for t in 0..arena.tracts() {
            let a = Addr(arena.base().0 + t * page);
            let ptr = a.as_ptr::<u8>();
            match arena.tract(a).map(|x| x.prot) {
                // SAFETY: recorded read-write: committed and writable
                // (what we check); the arena's client memory is ours.
                Some(Protection::ReadWrite) => unsafe {
                    ptr.write_volatile(ptr.read_volatile().wrapping_add(1))
                },
                // SAFETY: recorded read-only: readable (what we check).
                Some(Protection::Read) => unsafe {
                    ptr.read_volatile();
                },
                _ => {}
            }
        }
    }
    assert!(f.changed_part_way() > 10, "{}", f.changed_part_way());
}

// HOLDS: `fail_nth` under four threads sharing one injector fails
// exactly one call, and `only` keeps other operations out of the count.
#[test]
fn fail_nth_from_threads_fails_exactly_once() {
    let mut buf = vec![0u8; 64 * PAGE];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let f = FaultInjector::new(&sim);
    f.set_shape(FaultShape::PartWay);
    let regions: Vec<Range> =
        (0..4).map(|_| f.reserve(Size(2 * PAGE), Size(PAGE)).unwrap()).collect();
    for &r in &regions {
        // SAFETY: the sim's own reservation, unused.
        unsafe { f.map(r) }.unwrap();
    }
    f.only(&[vmspace_shim::Op::Protect]);
    f.fail_nth(2500);
    let failures: usize = std::thread::scope(|s| {
        let hs: Vec<_> = regions
            .iter()
            .map(|&r| {
                let f = &f;
                s.spawn(move || {
                    (0..1000)
                        .filter(|i| {
                            let p =
                                if i % 2 == 0 { Protection::Read } else { Protection::ReadWrite };
                            // SAFETY: this thread's own mapped reservation;
                            // nothing accesses it.
                            let e = unsafe { f.protect(r, p) }.is_err();
                            // SAFETY: as above (unmap and map are not counted).
                            unsafe { f.unmap(r) }.unwrap();
                            // SAFETY: as above, unmapped just now.
                            unsafe { f.map(r) }.unwrap();
                            e
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!((failures, f.injected(), f.eligible_calls()), (1, 1, 4000));
    assert_eq!(f.changed_part_way(), 1);
}
