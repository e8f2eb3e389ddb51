//! Outside review: chains of the crate's own sources (arena over arena,
//! over a shared `&SyncArena` with quantum caches, over a `VmSource` and a
//! `VmArena`), several levels deep, with constraints at each level and the
//! largest values the types hold. Every level must come back to where it
//! started once everything is freed. From the public documentation only.

mod outside_source_common;

use outside_source_common::*;
use vmspace::arena::{Constraints, NoSource, Policy, SliceStore, Source};
use vmspace::qcache::{table_store_bytes, QCacheConfig};
use vmspace::sources::VmSource;
use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
use vmspace::vm::Vm;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;

type Shared<I> = SyncArena<SpinLock, NoWait, SliceStore<'static>, I>;

fn shared_with_caches<I: Source>(a: A<I>, classes: usize) -> Shared<I> {
    let store = SliceStore::new(buf(table_store_bytes(classes) + 4096));
    SyncArena::with_quantum_caches(a, QCacheConfig::new(classes, store)).expect("caches")
}

/// A seeded mix of constrained requests, all freed at the end, with a
/// consistency check of `a` after every step.
fn churn<I: Source>(a: &mut A<I>, q: usize, seed: u64, steps: usize, what: &str) {
    let mut x = seed;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut held: Vec<(Addr, Size)> = Vec::new();
    for _ in 0..steps {
        let r = rnd();
        if r % 3 == 0 && !held.is_empty() {
            let (p, s) = held.swap_remove((r as usize / 3) % held.len());
            a.free(p, s).unwrap_or_else(|e| panic!("{what}: free {p:?} {s:?}: {e:?}"));
        } else {
            let size = Size(q * (1 + (r >> 8) as usize % 9) - (r >> 20) as usize % q);
            let mut c = Constraints::new(size).policy(Policy::ALL[(r >> 4) as usize % 4]);
            match (r >> 12) % 5 {
                1 => c = c.align(Size(q << ((r >> 24) % 6))),
                2 => c = c.align(Size(q << 4)).phase(Size(q * ((r >> 24) as usize % 16))),
                3 => c = c.nocross(Size(q << (4 + (r >> 24) % 3))),
                4 => c = c.from_top(true),
                _ => {}
            }
            if let Ok(p) = a.xalloc(&c) {
                assert!(c.validate(q).is_ok());
                held.push((p, size));
            }
        }
        consistent(a, what);
    }
    for (p, s) in held {
        a.free(p, s).unwrap();
    }
    consistent(a, what);
    assert_eq!(a.sizes().total, Size(0), "{what}: imported spans kept after everything was freed");
    let c = a.counters();
    assert_eq!(c.imports, c.exports, "{what}: imports vs exports");
}

#[test]
fn four_levels_over_a_vm_source_with_quantum_caches() {
    let mut mem = vec![0u8; 80 << 20];
    let sim = SimBackend::new(&mut mem, 4096).unwrap();
    let base_mapped = sim.stats().mapped_pages;
    let vm = Vm::reserve(&sim, Size(64 << 20), Size(4096)).unwrap();
    let mut vs =
        VmSource::new(vm, SliceStore::new(buf(1 << 16)), SliceStore::new(buf(1 << 14))).unwrap();
    let mapped0 = vs.vm().mapped();
    {
        // Level 1: page quantum, shared, quantum caches for 1..8 pages.
        let l1 = shared_with_caches(arena("l1", 4096, &mut vs), 8);
        {
            // Level 2: imports from &l1 with a 64 KiB quantum... the arena's quantum
            // is its own: 16, importing in l1's page quantum.
            let mut l2 = arena("l2", 16, &l1);
            {
                let mut l3 = arena("l3", 16, &mut l2);
                churn(&mut l3, 16, 0x9e3779b97f4a7c15, 400, "l3");
                consistent(l3.source(), "l2 under l3");
            }
            churn(&mut l2, 16, 42, 300, "l2");
            // Objects through the caches while l2 is idle.
            let mut cache = CacheHandle::new(&l1);
            let objs: Vec<_> =
                (1..=8).map(|k| (cache.alloc(Size(4096 * k)).unwrap(), Size(4096 * k))).collect();
            l1.check().unwrap();
            for (p, s) in objs {
                cache.free(p, s).unwrap();
            }
            drop(cache);
        }
        l1.reclaim();
        l1.check().unwrap();
        let (s, c) = l1.with(|a| (a.sizes(), a.counters()));
        assert_eq!(s.allocated, Size(0), "l1 allocated after reclaim");
        assert_eq!(s.total, Size(0), "l1 keeps imported spans after reclaim");
        assert_eq!(c.imports, c.exports, "l1 imports vs exports");
        let q = l1.qcache_stats();
        assert_eq!(q.slabs, 0);
        assert_eq!(q.slabs_created, q.slabs_freed);
    }
    vs.check().unwrap();
    assert_eq!(vs.space().sizes().allocated, Size(0), "VmSource still hands out");
    assert_eq!(vs.vm().mapped(), mapped0, "pages left mapped in the VM");
    let c = vs.space().counters();
    assert_eq!(c.allocs, c.frees);
    drop(vs);
    assert_eq!(sim.stats().mapped_pages, base_mapped, "sim pages left mapped");
}

#[test]
fn arena_over_a_vm_arena() {
    let mut mem = vec![0u8; 24 << 20];
    let sim = SimBackend::new(&mut mem, 4096).unwrap();
    let mut va = VmArena::new(&sim, VmArenaConfig::new(Size(16 << 20)).spare_limit(0)).unwrap();
    {
        let mut l1 = arena("l1", 4096, &mut va);
        {
            let mut l2 = arena("l2", 64, &mut l1);
            churn(&mut l2, 64, 7, 300, "l2 over l1 over vmarena");
        }
        churn(&mut l1, 4096, 99, 300, "l1 over vmarena");
        // The largest alignment the VM arena can honour through an import.
        let x = l1.xalloc(&Constraints::new(Size(4096)).align(Size(8 << 20))).unwrap();
        assert_eq!(x.0 % (8 << 20), 0);
        l1.free(x, Size(4096)).unwrap();
    }
    va.check().unwrap();
    assert_eq!(va.allocated(), Size(0), "tracts left with IMPORT_OWNER");
    assert_eq!(va.committed(), Size(0));
}

#[test]
fn largest_values_three_levels() {
    // Root: [2^63, 2^64 - 2^27), quantum 2^27 (the largest). No span may
    // hold the top quantum.
    let mut root = arena("root", 1 << 27, NoSource);
    root.add(Addr(1 << 63), Size((1 << 63) - (1 << 27))).unwrap();
    let root_sizes = root.sizes();
    {
        // Quantum caches take quanta up to MAX_QUANTUM (2^22), documented.
        let shared = shared_with_caches(arena("mid", 1 << 22, &mut root), 8);
        {
            let mut leaf = arena("leaf", 1 << 20, &shared);
            // The top first: phase 2^62, up to 2^64 - 2^27. (Asked the other
            // way round this fails: an aligned source is asked for size +
            // phase at the alignment, and the padding [2^63, 3*2^62) would
            // be taken -- see the friction notes of the report.)
            let top_size = (1 << 62) - (1 << 27);
            let b = leaf
                .xalloc(&Constraints::new(Size(top_size)).align(Size(1 << 63)).phase(Size(1 << 62)))
                .unwrap();
            assert_eq!(b, Addr(3 << 62));
            // size 2^62 at align 2^63: [2^63, 2^63 + 2^62)
            let a = leaf.xalloc(&Constraints::new(Size(1 << 62)).align(Size(1 << 63))).unwrap();
            assert_eq!(a, Addr(1 << 63));
            consistent(&leaf, "leaf");
            // Nothing left: ending at 2^64 would need the top quantum.
            let e = leaf.xalloc(&Constraints::new(Size(1 << 20)).from_top(true));
            assert!(e.is_err(), "{e:?}");
            // A request too large for any span: an error, not a panic.
            assert!(leaf.alloc(Size(usize::MAX), Policy::InstantFit).is_err());
            assert!(leaf
                .xalloc(&Constraints::new(Size(usize::MAX - (1 << 20))).align(Size(1 << 63)))
                .is_err());
            consistent(&leaf, "leaf");
            leaf.free(a, Size(1 << 62)).unwrap();
            leaf.free(b, Size(top_size)).unwrap();
            consistent(&leaf, "leaf");
            assert_eq!(leaf.sizes().total, Size(0));
            // nocross 2^62 with size 2^61, twice. (2^62 with nocross 2^63
            // fits once: a second would need the top quantum.)
            let mut xs = Vec::new();
            for _ in 0..2 {
                let c =
                    Constraints::new(Size(1 << 61)).nocross(Size(1 << 62)).policy(Policy::BestFit);
                xs.push(leaf.xalloc(&c).unwrap());
            }
            consistent(&leaf, "leaf");
            for x in xs {
                leaf.free(x, Size(1 << 61)).unwrap();
            }
            churn(&mut leaf, 1 << 20, 5, 200, "leaf near the top");
        }
        // Quantum-cache objects of 8 * 2^22 through the mid level.
        let mut cache = CacheHandle::new(&shared);
        let o = cache.alloc(Size(8 << 22)).unwrap();
        cache.free(o, Size(8 << 22)).unwrap();
        drop(cache);
        shared.reclaim();
        shared.check().unwrap();
        let s = shared.with(|a| a.sizes());
        assert_eq!(s.total, Size(0), "mid keeps spans");
        let big = shared.alloc(Size((1 << 63) - (1 << 27)), Policy::InstantFit, Wait::No).unwrap();
        assert_eq!(big, Addr(1 << 63));
        shared.free(big, Size((1 << 63) - (1 << 27))).unwrap();
        shared.check().unwrap();
    }
    consistent(&root, "root");
    assert_eq!(root.sizes(), root_sizes, "root not back to its initial sizes");
    let c = root.counters();
    assert_eq!(c.allocs, c.frees);
}

#[test]
fn chain_release_sees_exactly_the_imports() {
    // A recording source under two arena levels: at the end, the bottom
    // source has had exactly what it handed out back, each range once.
    let (src, log) = Evil::honest(1 << 16, 1 << 40);
    {
        let mut l1 = arena("l1", 4096, src);
        {
            let l2s = shared_with_caches(arena("l2", 4096, &mut l1), 4);
            {
                let mut l3 = arena("l3", 64, &l2s);
                churn(&mut l3, 64, 1234, 500, "l3 over shared over recorder");
            }
            let mut cache = CacheHandle::new(&l2s);
            let objs: Vec<_> =
                (0..200).map(|i| cache.alloc(Size(4096 * (1 + i % 4))).unwrap()).collect();
            for (i, o) in objs.into_iter().enumerate() {
                cache.free(o, Size(4096 * (1 + i % 4))).unwrap();
            }
            drop(cache);
            l2s.reclaim();
            l2s.check().unwrap();
            assert_eq!(l2s.with(|a| a.sizes().total), Size(0));
        }
        consistent(&l1, "l1");
        spans_match_log(&l1, &log.borrow(), "l1");
        assert_eq!(l1.sizes().total, Size(0));
    }
    let l = log.borrow();
    assert!(l.out.is_empty(), "not released: {:?}", l.out);
    releases_sane(&l, "chain");
    assert_eq!(l.releases.len(), l.returned.len());
}
