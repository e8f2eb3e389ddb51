//! Written from the documented contracts by a reviewer outside the project,
//! to break them: quantum-cache statistics at the edges (a slab at address
//! zero, the top of the address space, slab collisions, refused frees
//! through every door and every wrong size, frees of another arena's
//! objects, depot overflow), each checked against values the docs state.

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, Policy, SliceStore};
use vmspace::qcache::{QCacheStats, SlotFlag, DEPOT, OBJECTS, ROUNDS};
use vmspace::sync::{CacheHandle, CpuCaches, SyncArena, Wait};
use vmspace::{Addr, Size};

mod outside_qstats_model;
use outside_qstats_model::{bufs, shared, OneSlot, Shared};

fn is_bad_free<T: std::fmt::Debug>(r: &Result<T, ArenaError>) -> bool {
    matches!(r, Err(ArenaError::BadFree { .. }))
}

fn counters(s: &Shared<'_>) -> vmspace::arena::Counters {
    s.with(|a| a.counters())
}

/// DEFECT. "Add the span `[base, base + size)`, all free. Both ends must be
/// multiples of the quantum" (arena/span.rs): a span at 0 is a span like
/// any other, and "reclaim() returns depot objects to slabs and wholly
/// free slabs to the arena" (README). A slab placed at address 0 is never
/// registered: check() reports corruption after the first allocation, the
/// allocation falls back to the arena, and the slab stays allocated for
/// good.
#[test]
fn a_slab_at_address_zero_is_a_slab_like_any_other() {
    let mut b = bufs();
    let (s, _) = shared(&mut b, 16, 4, 0, 1 << 20);
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(16)).unwrap();
    let st = s.qcache_stats();
    let c = s.check();
    h.free(x, Size(16)).unwrap();
    drop(h);
    s.reclaim();
    let (allocated, end) = (s.with(|a| a.sizes().allocated), s.qcache_stats());
    assert_eq!(c, Ok(()), "check() after the first allocation");
    assert_eq!((st.slabs, st.slabs_created, st.misses), (1, 1, 1), "{st:?}");
    assert!(x.0 < OBJECTS * 16, "{x}: not from the first slab");
    assert_eq!(allocated, Size(0), "a slab stayed allocated: {end:?}");
    assert_eq!(end.slabs_freed, 1, "{end:?}");
}

/// The same through per-CPU caches and the arena's own free: still the
/// slab at 0 must come and go.
#[test]
fn a_slab_at_address_zero_through_cpu_caches() {
    let mut b = bufs();
    let (s, mags) = shared(&mut b, 64, 2, 0, 1 << 16);
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap();
    let xs: Vec<Addr> = (0..3).map(|_| cpu.alloc(Size(64)).unwrap()).collect();
    let c = s.check();
    for &x in &xs {
        s.free(x, Size(64)).unwrap();
    }
    drop(cpu);
    s.reclaim();
    assert_eq!(c, Ok(()));
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{:?}", s.qcache_stats());
    assert_eq!(s.check(), Ok(()));
}

/// DEFECT. `BadFree::allocated`: "The size of the live allocation at
/// `addr`, if there is one" (arena/error.rs:41), and `QCacheStats::bad_frees`:
/// "Frees of a cached object refused: not live (a double free) or live
/// with another size" (qcache/mod.rs:50). A live 16-byte cached object
/// freed with a size of another class (17, 48), zero, or past
/// `qcache_max` is refused (good) but reported as not allocated and
/// counted as the arena's bad free instead of the caches'.
#[test]
fn a_cached_object_freed_with_a_size_of_another_class_reports_its_live_size() {
    let mut b = bufs();
    let (s, mags) = shared(&mut b, 16, 4, 1 << 20, 1 << 20);
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap();
    let mut h = CacheHandle::new(&s);
    let x = h.alloc(Size(16)).unwrap();
    let mut wrong_allocated = vec![];
    let mut uncounted = vec![];
    for wrong in [17usize, 48, 0, 65, 15] {
        for door in 0..3 {
            let q0 = s.qcache_stats().bad_frees;
            let r = match door {
                0 => h.free(x, Size(wrong)),
                1 => cpu.free(x, Size(wrong)),
                _ => s.free(x, Size(wrong)),
            };
            assert!(is_bad_free(&r), "{wrong}: {r:?}");
            if !matches!(r, Err(ArenaError::BadFree { allocated: Some(Size(16)), .. })) {
                wrong_allocated.push((wrong, door, r));
            }
            if s.qcache_stats().bad_frees != q0 + 1 {
                uncounted.push((wrong, door));
            }
            s.check().unwrap();
        }
    }
    // Still live with 16: freed once, exactly.
    h.free(x, Size(16)).unwrap();
    assert!(is_bad_free(&h.free(x, Size(16))));
    drop(h);
    drop(cpu);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    assert!(wrong_allocated.is_empty(), "BadFree without the live size: {wrong_allocated:?}");
    assert!(
        uncounted.is_empty(),
        "refused frees of a cached object not in qcache bad_frees: {uncounted:?}"
    );
}

/// The same-class wrong size and the double free: the caches' bad frees,
/// the arena's counters untouched, `allocated` exact.
#[test]
fn same_class_bad_frees_count_in_the_caches_only() {
    let mut b = bufs();
    let (s, mags) = shared(&mut b, 16, 4, 1 << 20, 1 << 20);
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), mags).unwrap();
    let mut h = CacheHandle::new(&s);
    for size in [1usize, 16, 17, 32, 33, 48, 49, 64] {
        let x = cpu.alloc(Size(size)).unwrap();
        let class_lo = (size - 1) / 16 * 16 + 1;
        let other = if size == class_lo { size + 15 } else { class_lo };
        let c0 = counters(&s);
        let q0 = s.qcache_stats();
        for door in 0..3 {
            let r = match door {
                0 => h.free(x, Size(other)),
                1 => cpu.free(x, Size(other)),
                _ => s.free(x, Size(other)),
            };
            assert_eq!(
                r,
                Err(ArenaError::BadFree {
                    addr: x,
                    size: Size(other),
                    allocated: Some(Size(size))
                })
            );
        }
        assert_eq!(s.qcache_stats().bad_frees, q0.bad_frees + 3);
        // A good free, then double frees through every door.
        h.free(x, Size(size)).unwrap();
        for door in 0..3 {
            let r = match door {
                0 => h.free(x, Size(size)),
                1 => cpu.free(x, Size(size)),
                _ => s.free(x, Size(size)),
            };
            assert_eq!(r, Err(ArenaError::BadFree { addr: x, size: Size(size), allocated: None }));
        }
        let q1 = s.qcache_stats();
        assert_eq!(q1.bad_frees, q0.bad_frees + 6);
        assert_eq!(counters(&s), c0, "the arena saw none of it");
        s.check().unwrap();
    }
}

/// "New slabs given straight back because their table slot was taken":
/// a slab whose slot another slab of its class holds. The allocation
/// still succeeds (from the arena), nothing is lost, the counts add up.
#[test]
fn a_slab_collision_falls_back_to_the_arena_and_counts() {
    let mut b = bufs();
    let base = 1 << 20;
    // Class 0 of quantum 16: slabs of 1 KiB on 1 KiB; 32 slots, so bases
    // 32 KiB apart share a slot.
    let (s, _) = shared(&mut b, 16, 1, base, 33 * 1024);
    let blocker =
        s.xalloc(&Constraints::new(Size(31 * 1024)).exact(Addr(base + 1024)), Wait::No).unwrap();
    let mut h = CacheHandle::new(&s);
    let xs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(16)).unwrap()).collect();
    let st = s.qcache_stats();
    assert_eq!(
        (st.slabs, st.slabs_created, st.objects_in_slabs, st.slab_collisions),
        (1, 1, 0, 0),
        "{st:?}"
    );
    // The first slab took one of the two free KiB (slots 0 both).
    let first = xs[0].0 & !1023;
    assert!(first == base || first == base + 32 * 1024, "{first:#x}");
    assert!(xs.iter().all(|x| x.0 & !1023 == first));
    let other = if first == base { base + 32 * 1024 } else { base };
    // The 65th: a new slab at base + 32 KiB collides with the first.
    let y = h.alloc(Size(16)).unwrap();
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!(st.slab_collisions, 1, "{st:?}");
    assert_eq!(st.slabs, 1, "{st:?}");
    assert_eq!(st.slabs as u64, st.slabs_created - st.slabs_freed, "{st:?}");
    assert_eq!(st.misses, 6, "{st:?}"); // 15 + 15 + 15 + 15 + 4, then one more
    assert_eq!(y.0 & !1023, other, "from the arena's only free KiB");
    let c = counters(&s);
    // blocker, slab, collided slab, fallback; the collided slab freed.
    assert_eq!((c.allocs, c.frees), (4, 1), "{c:?}");
    assert_eq!(s.with(|a| a.live()), 3);
    // The fallback is an ordinary allocation: freed by any door once.
    h.free(y, Size(16)).unwrap();
    assert!(is_bad_free(&s.free(y, Size(16))));
    assert_eq!(counters(&s).frees, 2);
    for x in xs {
        h.free(x, Size(16)).unwrap();
    }
    drop(h);
    assert_eq!(s.reclaim(), 1);
    s.free(blocker, Size(31 * 1024)).unwrap();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    let st = s.qcache_stats();
    assert_eq!(
        (st.slabs, st.slabs_freed, st.depot_magazines, st.objects_in_slabs),
        (0, 1, 0, 0),
        "{st:?}"
    );
}

/// A new slab whose address maps to a taken record is placed again where
/// a free record maps, when the arena has room there: no collision, no
/// fallback, every object from a slab (`SyncArena::free_deferred` refuses
/// them all).
#[test]
fn a_slab_that_would_collide_is_placed_on_a_free_record() {
    let mut b = bufs();
    let base = 1 << 20;
    let k = 1024;
    // Class 0 of quantum 16: slabs of 1 KiB on 1 KiB, 32 records, so
    // bases 32 KiB apart map to the same record.
    let (s, _) = shared(&mut b, 16, 1, base, 128 * k);
    let exact = |at: usize, size: usize| {
        s.xalloc(&Constraints::new(Size(size)).exact(Addr(at)), Wait::No).unwrap()
    };
    let low = exact(base, 32 * k);
    let mut h = CacheHandle::new(&s);
    let mut xs: Vec<Addr> = (0..OBJECTS).map(|_| h.alloc(Size(16)).unwrap()).collect();
    let first = xs[0].0 & !(k - 1);
    assert_eq!(first, base + 32 * k, "the first slab at the start of the free space");
    // Now the first fit for a slab is `base + 64 KiB`: the first's record.
    let mid = exact(base + 33 * k, 31 * k);
    xs.extend((0..OBJECTS).map(|_| h.alloc(Size(16)).unwrap()));
    s.check().unwrap();
    let st = s.qcache_stats();
    assert_eq!((st.slabs, st.slabs_created, st.slab_collisions), (2, 2, 0), "{st:?}");
    let slabs: Vec<usize> = s.with(|a| {
        a.walk(vmspace::arena::SegmentKinds::ALLOCATED)
            .filter(|seg| seg.held)
            .map(|seg| seg.range.base().0)
            .collect()
    });
    assert_eq!(slabs.len(), 2, "{slabs:x?}");
    assert_ne!((slabs[0] / k) % 32, (slabs[1] / k) % 32, "{slabs:x?}: one record");
    for &x in &xs {
        assert!(slabs.iter().any(|&b| (b..b + k).contains(&x.0)), "{x}: not in a slab");
        assert!(is_bad_free(&s.free_deferred(x, Size(16))), "{x}: a slab's part freed deferred");
    }
    assert_eq!(s.with(|a| a.sizes().unflushed), Size(0));
    for x in xs {
        h.free(x, Size(16)).unwrap();
    }
    drop(h);
    assert_eq!(s.reclaim(), 2);
    s.free(low, Size(32 * k)).unwrap();
    s.free(mid, Size(31 * k)).unwrap();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// Frees of another SyncArena's objects, through every door of this one:
/// refused, this arena's caches not charged, the other arena untouched
/// and its object still freeable once.
#[test]
fn objects_of_another_arena_are_refused_by_every_door() {
    for same_range in [false, true] {
        let (mut ba, mut bb) = (bufs(), bufs());
        let (a, _) = shared(&mut ba, 16, 4, 1 << 20, 1 << 20);
        let base_b = if same_range { 1 << 20 } else { 1 << 24 };
        let (bsh, mags) = shared(&mut bb, 16, 4, base_b, 1 << 20);
        let bcpu = CpuCaches::new(&bsh, OneSlot(SlotFlag::new()), mags).unwrap();
        let mut ah = CacheHandle::new(&a);
        let mut bh = CacheHandle::new(&bsh);
        // B holds a slab of each class too (objects cached, none live).
        for size in [16usize, 32, 48, 64] {
            let y = bh.alloc(Size(size)).unwrap();
            bh.free(y, Size(size)).unwrap();
        }
        for size in [16usize, 17, 32, 48, 64, 65, 4096] {
            let x = ah.alloc(Size(size)).unwrap();
            let (qa, ca) = (a.qcache_stats(), counters(&a));
            let (qb, cb) = (bsh.qcache_stats(), counters(&bsh));
            let mut refused = 0;
            for door in 0..3 {
                let r = match door {
                    0 => bh.free(x, Size(size)),
                    1 => bcpu.free(x, Size(size)),
                    _ => bsh.free(x, Size(size)),
                };
                assert!(
                    is_bad_free(&r),
                    "same range {same_range}, size {size}, door {door}: {r:?}"
                );
                refused += 1;
            }
            assert_eq!((a.qcache_stats(), counters(&a)), (qa, ca), "A changed");
            let (qb2, cb2) = (bsh.qcache_stats(), counters(&bsh));
            // Refused either as a cached object of B's (a slab of B's there)
            // or by B's arena: once each, in one of the two.
            assert_eq!(qb2.bad_frees - qb.bad_frees + cb2.bad_frees - cb.bad_frees, refused);
            assert_eq!((qb2.hits, qb2.misses, qb2.slabs), (qb.hits, qb.misses, qb.slabs));
            bsh.check().unwrap();
            a.check().unwrap();
            ah.free(x, Size(size)).unwrap();
            assert!(is_bad_free(&ah.free(x, Size(size))));
        }
        drop((ah, bh, bcpu));
        a.reclaim();
        bsh.reclaim();
        assert_eq!(a.with(|a| a.sizes().allocated), Size(0));
        assert_eq!(bsh.with(|a| a.sizes().allocated), Size(0));
    }
}

/// Without quantum caches every door goes to the arena: no statistics,
/// `qcache_max` zero, the arena's counters exact.
#[test]
fn without_quantum_caches_every_door_is_the_arena() {
    let mut b = bufs();
    let mut a = Arena::new(
        "plain",
        Size(16),
        SliceStore::new(&mut b.tags),
        SliceStore::new(&mut b.hash),
        NoSource,
    )
    .unwrap();
    a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    let s: Shared<'_> = SyncArena::new(a);
    assert_eq!(s.qcache_max(), Size(0));
    let cpu = CpuCaches::new(&s, OneSlot(SlotFlag::new()), SliceStore::new(&mut b.mags)).unwrap();
    let mut h = CacheHandle::new(&s);
    let mut n = 0u64;
    for size in [1usize, 16, 17, 64, 65] {
        let xs = [h.alloc(Size(size)).unwrap(), cpu.alloc(Size(size)).unwrap()];
        n += 2;
        assert_eq!(counters(&s).allocs, n);
        assert_eq!(s.with(|a| a.live()), 2);
        h.free(xs[1], Size(size)).unwrap();
        cpu.free(xs[0], Size(size)).unwrap();
        assert!(is_bad_free(&s.free(xs[0], Size(size))));
    }
    drop((h, cpu));
    assert_eq!(s.reclaim(), 0);
    assert_eq!(s.qcache_stats(), QCacheStats::default());
    let c = counters(&s);
    assert_eq!((c.allocs, c.frees, c.bad_frees, c.failures), (10, 10, 5, 0));
    s.check().unwrap();
}

/// Depot bounds: a handle freeing many objects fills the depot to exactly
/// DEPOT magazines, the rest going back to the slabs; a second handle
/// then takes whole magazines out of it (one miss per ROUNDS).
#[test]
fn the_depot_holds_at_most_depot_magazines_per_class() {
    let mut b = bufs();
    let (s, _) = shared(&mut b, 16, 2, 1 << 20, 1 << 20);
    let n = (DEPOT + 4) * ROUNDS + 40;
    let mut h = CacheHandle::new(&s);
    let xs: Vec<Addr> = (0..n).map(|_| h.alloc(Size(32)).unwrap()).collect();
    let st = s.qcache_stats();
    let slabs = n.div_ceil(OBJECTS);
    assert_eq!(st.slabs, slabs, "{st:?}");
    for &x in &xs {
        h.free(x, Size(32)).unwrap();
    }
    drop(h);
    let st = s.qcache_stats();
    assert_eq!(st.depot_magazines, DEPOT, "{st:?}");
    assert_eq!(st.objects_in_slabs + st.depot_magazines * ROUNDS, st.slabs * OBJECTS, "{st:?}");
    let mut h2 = CacheHandle::new(&s);
    let m0 = st.misses;
    for k in 0..DEPOT * ROUNDS {
        h2.alloc(Size(32)).unwrap();
        let st = s.qcache_stats();
        assert_eq!(st.depot_magazines, DEPOT - k / ROUNDS - 1, "alloc {k}: {st:?}");
        assert_eq!(st.misses, m0 + (k / ROUNDS) as u64 + 1, "alloc {k}: {st:?}");
    }
    s.check().unwrap();
}

/// reclaim() with nothing to do still counts, and returns 0; the arena's
/// failing allocation reclaims (and counts) once, with Wait::No as with a
/// timeout under NoWait.
#[test]
fn reclaims_count_every_run() {
    let mut b = bufs();
    let (s, _) = shared(&mut b, 16, 2, 1 << 20, 4096);
    assert_eq!(s.reclaim(), 0);
    assert_eq!(s.qcache_stats().reclaims, 1);
    let big = s.alloc(Size(4096), Policy::InstantFit, Wait::No).unwrap();
    for (i, w) in [Wait::No, Wait::Timeout(std::time::Duration::from_millis(5)), Wait::Forever]
        .into_iter()
        .enumerate()
    {
        let r = s.alloc(Size(16), Policy::BestFit, w);
        assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{r:?}");
        assert_eq!(s.qcache_stats().reclaims, 2 + i as u64);
        assert_eq!(counters(&s).failures, 1 + i as u64);
        assert_eq!(s.waiting(), 0);
    }
    s.free(big, Size(4096)).unwrap();
    s.check().unwrap();
}
