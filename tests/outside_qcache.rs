//! Written from the documented contracts by a reviewer outside the project,
//! to break them: quantum caches: configuration limits, class
//! boundaries, frees through the wrong class, slab exhaustion, reclaim,
//! statistics, check() after every step, against a model of live objects.

use std::collections::BTreeMap;

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore};
use vmspace::qcache::{QCacheConfig, MAX_CLASSES, MAX_QUANTUM, OBJECTS, ROUNDS};
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::{Addr, Size};

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, NoSource>;

mod outside_common;
use outside_common::XorshiftStar as Rng;

struct Bufs {
    tags: Vec<u8>,
    hash: Vec<u8>,
    qc: Vec<u8>,
}
fn bufs() -> Bufs {
    Bufs { tags: vec![0; 1 << 18], hash: vec![0; 1 << 16], qc: vec![0; 1 << 18] }
}

fn arena<'a>(
    b: &'a mut Bufs,
    quantum: usize,
    base: usize,
    span: usize,
) -> (Arena<SliceStore<'a>, NoSource>, SliceStore<'a>) {
    let mut a = Arena::new(
        "q",
        Size(quantum),
        SliceStore::new(&mut b.tags),
        SliceStore::new(&mut b.hash),
        NoSource,
    )
    .unwrap();
    a.add(Addr(base), Size(span)).unwrap();
    (a, SliceStore::new(&mut b.qc))
}

#[test]
fn config_limits_are_errors() {
    for classes in [0, MAX_CLASSES + 1, usize::MAX] {
        let mut b = bufs();
        let (a, qc) = arena(&mut b, 16, 1 << 24, 1 << 20);
        let r: Result<Shared<'_>, _> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, qc));
        assert!(
            matches!(r.map_err(ArenaError::from), Err(ArenaError::InvalidArgument(_))),
            "classes {classes}"
        );
    }
    // Store too small for the tables.
    for len in [0usize, 8, 64, 4096] {
        let mut b = bufs();
        let mut small = vec![0u8; len];
        let (a, _) = arena(&mut b, 16, 1 << 24, 1 << 20);
        let r: Result<Shared<'_>, _> = SyncArena::with_quantum_caches(
            a,
            QCacheConfig::new(MAX_CLASSES, SliceStore::new(&mut small)),
        );
        assert!(r.is_err(), "store of {len} bytes");
    }
    // Quantum too large.
    {
        let mut b = bufs();
        let (a, qc) = arena(&mut b, MAX_QUANTUM * 2, 1 << 40, 1 << 30);
        let r: Result<Shared<'_>, _> = SyncArena::with_quantum_caches(a, QCacheConfig::new(1, qc));
        assert!(r.is_err());
    }
    // The largest quantum and class count work.
    {
        let mut b = bufs();
        b.qc = vec![0; 1 << 20];
        let q = MAX_QUANTUM;
        let (a, qc) = arena(&mut b, q, 1 << 40, 1 << 36);
        let s: Shared<'_> =
            SyncArena::with_quantum_caches(a, QCacheConfig::new(MAX_CLASSES, qc)).unwrap();
        assert_eq!(s.qcache_max(), Size(q * MAX_CLASSES));
        let mut h = CacheHandle::new(&s);
        for size in [1, q, q + 1, q * MAX_CLASSES, q * MAX_CLASSES + 1] {
            let x = h.alloc(Size(size)).unwrap();
            s.check().unwrap();
            h.free(x, Size(size)).unwrap();
        }
        drop(h);
        s.reclaim();
        s.check().unwrap();
        assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    }
}

fn all_consistent(s: &Shared<'_>, live_cached: usize, ctx: &str) {
    s.check().unwrap_or_else(|e| panic!("{ctx}: check: {e}"));
    let st = s.qcache_stats();
    assert_eq!(st.slabs as u64, st.slabs_created - st.slabs_freed, "{ctx}: slab counts {st:?}");
    let _ = live_cached;
    assert!(
        st.objects_in_slabs + st.depot_magazines * ROUNDS <= st.slabs * OBJECTS,
        "{ctx}: {st:?}"
    );
    // Held segments in the arena are exactly the slabs.
    let held = s.with(|a| a.walk(SegmentKinds::ALLOCATED).filter(|g| g.held).count());
    assert_eq!(held, st.slabs, "{ctx}: held segments vs slabs");
}

/// Random traffic through two handles and the shared arena, sizes around
/// every class boundary, frees with wrong sizes (same class, other class,
/// uncached), double frees and deferred frees of cached objects; check()
/// and statistics after every step; at the end reclaim returns everything.
fn random_qcache(quantum: usize, classes: usize, span: usize, seed: u64) {
    let mut b = bufs();
    let (a, qc) = arena(&mut b, quantum, 1 << 30, span);
    let s: Shared<'_> = SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, qc)).unwrap();
    let max = s.qcache_max().0;
    assert_eq!(max, quantum * classes);
    let mut rng = Rng(seed | 1);
    let mut h = [CacheHandle::new(&s), CacheHandle::new(&s)];
    // addr -> (size asked, through a handle?)
    let mut live: BTreeMap<usize, usize> = BTreeMap::new();
    let mut freed: Vec<(usize, usize)> = vec![];
    let mut bad = 0u64;
    let sizes: Vec<usize> = (1..=classes + 1)
        .flat_map(|c| [c * quantum - 1, c * quantum, c * quantum + 1])
        .filter(|&x| x > 0)
        .chain([1, max, max + 1, 3 * max])
        .collect();
    for step in 0..1500 {
        let ctx = format!("q {quantum} classes {classes} seed {seed} step {step}");
        let k = rng.below(2);
        match rng.below(12) {
            0..=4 => {
                let size = sizes[rng.below(sizes.len())];
                let res = if rng.below(5) == 0 {
                    s.alloc(Size(size), Policy::InstantFit, Wait::No)
                } else {
                    h[k].alloc(Size(size))
                };
                match res {
                    Ok(x) => {
                        let rounded = size.div_ceil(quantum) * quantum;
                        for (&y, &t) in live.range(..x.0 + rounded).rev().take(1) {
                            assert!(y + t <= x.0, "{ctx}: {x} overlaps live {y:#x}+{t:#x}");
                        }
                        if let Some((&y, _)) = live.range(x.0..).next() {
                            assert!(x.0 + size <= y, "{ctx}: {x}+{size:#x} overlaps live {y:#x}");
                        }
                        live.insert(x.0, size);
                    }
                    Err(ArenaError::NoSpace { .. }) => {}
                    Err(e) => panic!("{ctx}: alloc({size:#x}): {e}"),
                }
            }
            5..=7 if !live.is_empty() => {
                let (&x, &size) = live.iter().nth(rng.below(live.len())).unwrap();
                let res = match rng.below(3) {
                    0 => s.free(Addr(x), Size(size)),
                    _ => h[k].free(Addr(x), Size(size)),
                };
                res.unwrap_or_else(|e| panic!("{ctx}: free({x:#x}, {size:#x}): {e}"));
                live.remove(&x);
                freed.push((x, size));
            }
            8 if !live.is_empty() => {
                // Wrong sizes: same class, another class, too big, zero.
                let (&x, &size) = live.iter().nth(rng.below(live.len())).unwrap();
                for wrong in [size + 1, size.saturating_sub(1), size + quantum, size * 2 + max, 0] {
                    if wrong == size
                        || wrong.div_ceil(quantum) == size.div_ceil(quantum) && size > max
                    {
                        // Larger sizes go to the arena, which checks the
                        // size asked exactly too.
                    }
                    if wrong == size {
                        continue;
                    }
                    let st0 = s.with(|a| a.sizes());
                    let res = if rng.below(2) == 0 {
                        s.free(Addr(x), Size(wrong))
                    } else {
                        h[k].free(Addr(x), Size(wrong))
                    };
                    assert!(
                        matches!(res, Err(ArenaError::BadFree { .. })),
                        "{ctx}: free({x:#x}, {wrong:#x}) of a live {size:#x}: {res:?}"
                    );
                    assert_eq!(s.with(|a| a.sizes()), st0, "{ctx}: bad free changed the arena");
                    bad += 1;
                }
                // Deferred free of a live object: fine for arena
                // allocations, a bad free for cached objects.
            }
            9 if !freed.is_empty() => {
                let (x, size) = freed[rng.below(freed.len())];
                if !live.contains_key(&x) {
                    let res = if rng.below(2) == 0 {
                        s.free(Addr(x), Size(size))
                    } else {
                        h[k].free(Addr(x), Size(size))
                    };
                    assert!(
                        matches!(res, Err(ArenaError::BadFree { .. })),
                        "{ctx}: double free {x:#x}: {res:?}"
                    );
                    bad += 1;
                }
            }
            10 => {
                if rng.below(2) == 0 {
                    h[k].flush();
                } else {
                    s.reclaim();
                }
            }
            _ => {}
        }
        all_consistent(&s, live.len(), &ctx);
        // Every live object is really distinct memory we can write.
    }
    let _ = bad;
    for (x, size) in std::mem::take(&mut live) {
        h[0].free(Addr(x), Size(size)).unwrap();
    }
    drop(h);
    s.reclaim();
    let st = s.qcache_stats();
    assert_eq!(st.slabs, 0, "reclaim left slabs: {st:?}");
    assert_eq!(st.depot_magazines, 0);
    assert_eq!(st.slabs_created, st.slabs_freed);
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    assert_eq!(s.with(|a| a.live()), 0);
}

#[test]
fn random_traffic_roomy() {
    for (q, c) in [(16, 4), (1, MAX_CLASSES), (8, 3), (4096, MAX_CLASSES), (64, 1)] {
        random_qcache(q, c, 64 << 20, 42 + q as u64);
    }
}

#[test]
fn random_traffic_tight_arena_slab_exhaustion() {
    // Spans barely larger than a few slabs: slabs collide, run out, and the
    // arena falls back and fails with NoSpace.
    for (q, c, span) in [(16, 4, 16 << 10), (16, 3, 5008), (1, 8, 700), (4096, 5, 2 << 20)] {
        for seed in 1..=3 {
            random_qcache(q, c, span, seed);
        }
    }
}

#[test]
fn deferred_free_of_a_cached_object_is_refused_and_changes_nothing() {
    let mut b = bufs();
    let (a, qc) = arena(&mut b, 16, 1 << 24, 1 << 20);
    let s: Shared<'_> = SyncArena::with_quantum_caches(a, QCacheConfig::new(4, qc)).unwrap();
    let mut h = CacheHandle::new(&s);
    let xs: Vec<Addr> = (0..70).map(|_| h.alloc(Size(48)).unwrap()).collect();
    for &x in &xs {
        let before = s.qcache_stats();
        let r = s.free_deferred(x, Size(48));
        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{x}: {r:?}");
        assert_eq!(s.with(|a| a.sizes().unflushed), Size(0));
        let after = s.qcache_stats();
        assert_eq!(before.slabs, after.slabs);
        s.check().unwrap();
    }
    // Slab bases by handle parts are refused.
    let slabs: Vec<_> = s.with(|a| {
        a.walk(SegmentKinds::ALLOCATED)
            .filter(|g| g.held && g.kind == SegmentKind::Allocated)
            .map(|g| g.range)
            .collect()
    });
    assert!(!slabs.is_empty());
    for r in slabs {
        for tag in [1u32, 2, 3, 4, 5, 100, u32::MAX] {
            let res = s.free_handle_parts(r.base(), tag);
            assert!(res.is_err(), "freed slab {r} by handle parts, tag {tag}");
        }
        // Freeing the slab by address with its size is refused too.
        assert!(s.free(r.base(), r.size()).is_err());
    }
    s.check().unwrap();
    for x in xs {
        h.free(x, Size(48)).unwrap();
    }
    drop(h);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

/// Statistics when nothing is in front of the depots: every object of every
/// slab is in its slab, in a depot magazine, or live.
#[test]
fn object_accounting_is_exact_after_flush() {
    let mut b = bufs();
    let (a, qc) = arena(&mut b, 32, 1 << 24, 4 << 20);
    let s: Shared<'_> = SyncArena::with_quantum_caches(a, QCacheConfig::new(5, qc)).unwrap();
    let mut rng = Rng(3);
    let mut live = vec![];
    for round in 0..30 {
        {
            let mut h = CacheHandle::new(&s);
            for _ in 0..rng.below(300) {
                let size = 1 + rng.below(5 * 32);
                live.push((h.alloc(Size(size)).unwrap(), size));
            }
            for _ in 0..rng.below(live.len() + 1) {
                let (x, size) = live.swap_remove(rng.below(live.len()));
                h.free(x, Size(size)).unwrap();
            }
        }
        let st = s.qcache_stats();
        assert_eq!(
            st.objects_in_slabs + st.depot_magazines * ROUNDS + live.len(),
            st.slabs * OBJECTS,
            "round {round}: {st:?}"
        );
        assert!(st.hits + st.misses > 0);
        s.check().unwrap();
    }
}
