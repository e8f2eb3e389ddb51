//! Round 29 (outside reviewer): `Arena` is `Send` when its stores and
//! source are. Arenas over a `VmSource` (page stores of the mmap backend)
//! and over slice stores move between threads with live handles, are
//! checked and written on the threads they reach, and are dropped there; a
//! `SyncArena` with quantum caches over a `VmSource` is shared by threads
//! whose refused handle frees (a forged slab handle, parts naming no
//! handle) each count once in `bad_frees`.

use std::sync::mpsc;
use std::thread;

use vmspace::arena::{Arena, Handle, NoSource, PageStore, SegmentKinds, SliceStore};
use vmspace::qcache::QCacheConfig;
use vmspace::sources::VmSource;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::vm::Vm;
use vmspace::{Addr, ArenaError, Policy, Size};
use vmspace_user::{MmapBackend, UserArena};

fn is_send<T: Send>(_: &T) {}

type Heap = Arena<PageStore<MmapBackend>, VmSource<MmapBackend, PageStore<MmapBackend>>>;

fn heap() -> Heap {
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(64 << 20), Size(2 << 20)).unwrap();
    let store = || PageStore::new(be, Size(1 << 20)).unwrap();
    let source = VmSource::new(vm, store(), store()).unwrap();
    Arena::on_pages("heap", Size(64), be, 1 << 14, source).unwrap()
}

/// Stamp every 8-byte word of `[a, a + size)` with `v`.
fn stamp(a: Addr, size: Size, v: u64) {
    // SAFETY: the caller passes an allocation of its own over mapped,
    // read-write pages, 8-byte aligned (quantum 64).
    unsafe { std::slice::from_raw_parts_mut(a.0 as *mut u64, size.0 / 8).fill(v) };
}

fn stamped(a: Addr, size: Size, v: u64) -> bool {
    // SAFETY: as for `stamp`.
    unsafe { std::slice::from_raw_parts(a.0 as *const u64, size.0 / 8).iter().all(|w| *w == v) }
}

#[test]
fn an_arena_over_a_vm_source_moves_with_live_handles() {
    let (tx, rx) = mpsc::channel::<(Heap, Vec<(Handle, Size, u64)>)>();
    let t1 = thread::spawn(move || {
        let mut h = heap();
        is_send(&h);
        let mut live = Vec::new();
        for i in 0..500u64 {
            let size = Size(64 * (1 + (i as usize * 13) % 200));
            let hd = h.alloc_handle(size, Policy::InstantFit).unwrap();
            stamp(hd.addr(), size, i);
            live.push((hd, size, i));
        }
        h.check().unwrap();
        tx.send((h, live)).unwrap();
    });
    let (mut h, mut live) = rx.recv().unwrap();
    t1.join().unwrap();
    // On the second thread: the handles still name their allocations (the
    // fingerprint comes from the tag table's store, which did not move).
    for (hd, size, v) in &live {
        assert!(stamped(hd.addr(), *size, *v), "memory followed the arena");
        assert_eq!(h.lookup_handle(*hd).map(|x| x.1), Some(*size));
    }
    let half = live.split_off(live.len() / 2);
    for (hd, size, _) in half {
        assert_eq!(h.free_handle(hd), Ok(size));
    }
    h.check().unwrap();
    h.source().check().unwrap();
    // Dropped on a third thread, with allocations still live (the leak
    // path gives every import back).
    let t3 = thread::spawn(move || {
        for (hd, size, v) in &live {
            assert!(stamped(hd.addr(), *size, *v));
            assert_eq!(h.free_handle(*hd), Ok(*size));
        }
        h.check().unwrap();
        let n = h.counters();
        assert_eq!(n.imports, n.exports, "every import given back once all is free");
        assert!(h.source().vm().mapped().is_zero());
        drop(h);
    });
    t3.join().unwrap();
}

#[test]
fn a_slice_store_arena_moves_and_refuses_foreign_handles() {
    let mut tags = vec![0u8; 1 << 16];
    let mut hash = vec![0u8; 1 << 16];
    let mut a =
        Arena::new("s", Size(16), SliceStore::new(&mut tags), SliceStore::new(&mut hash), NoSource)
            .unwrap();
    a.add(Addr(1 << 20), Size(1 << 16)).unwrap();
    let hd = a.alloc_handle(Size(32), Policy::BestFit).unwrap();
    let x = a.alloc(Size(48), Policy::BestFit).unwrap();
    let a = thread::scope(|s| {
        s.spawn(move || {
            let mut a = a;
            assert_eq!(a.free_handle(hd), Ok(Size(32)));
            assert!(matches!(a.free_handle(hd), Err(ArenaError::BadHandle { .. })));
            a.free(x, Size(48)).unwrap();
            a.check().unwrap();
            a
        })
        .join()
        .unwrap()
    });
    assert_eq!(a.counters().bad_frees, 1);
    assert!(a.sizes().allocated.is_zero());
}

#[test]
fn a_shared_arena_with_caches_counts_each_refused_handle_free_once() {
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(64 << 20), Size(2 << 20)).unwrap();
    let store = || PageStore::new(be, Size(1 << 20)).unwrap();
    let source = VmSource::new(vm, store(), store()).unwrap();
    let heap = Arena::on_pages("heap", Size(64), be, 1 << 14, source).unwrap();
    let s: UserArena<_, _> =
        UserArena::with_quantum_caches(heap, QCacheConfig::new(4, store())).unwrap();
    const THREADS: usize = 2;
    const REFUSED: u64 = 200;
    let bad = |s: &UserArena<_, _>| s.with(|a| a.counters().bad_frees) + s.qcache_stats().bad_frees;
    let before = bad(&s);
    thread::scope(|sc| {
        for t in 0..THREADS {
            let s = &s;
            sc.spawn(move || {
                let mut h = CacheHandle::new(s);
                let mut objs = Vec::new();
                for i in 0..400u64 {
                    let size = Size(64 * (1 + (i as usize + t) % 4));
                    let o = h.alloc(size).unwrap();
                    stamp(o, size, i);
                    objs.push((o, size, i));
                }
                // Slabs are held allocations; a handle forged for one is
                // refused (each try counted once) and frees nothing.
                let slabs: Vec<Addr> = s.with(|a| {
                    a.walk(SegmentKinds::ALLOCATED)
                        .filter(|g| g.held)
                        .map(|g| g.range.base())
                        .collect()
                });
                assert!(!slabs.is_empty());
                let mut refused = 0;
                for k in 0..REFUSED / 2 {
                    let slab = slabs[k as usize % slabs.len()];
                    for tag in 1..2048u32 {
                        let Some(hd) = s.with(|a| a.handle_from_parts(slab, tag)) else { continue };
                        if s.with(|a| a.lookup_handle(hd)).is_some() {
                            let r = if k % 2 == 0 {
                                s.free_handle(hd)
                            } else {
                                s.free_handle_deferred(hd)
                            };
                            assert!(matches!(r, Err(ArenaError::BadHandle { .. })), "{r:?}");
                            refused += 1;
                            break;
                        }
                    }
                    // Parts naming no handle: tag 0.
                    let r = s.free_handle_parts(slab, 0);
                    assert!(matches!(r, Err(ArenaError::BadHandle { .. })), "{r:?}");
                    refused += 1;
                }
                assert_eq!(refused, REFUSED, "every forged slab handle found");
                for (o, size, v) in objs {
                    assert!(stamped(o, size, v), "a refused slab free kept the objects");
                    h.free(o, size).unwrap();
                }
            });
        }
    });
    let after = bad(&s);
    assert_eq!(after - before, THREADS as u64 * REFUSED, "each refused free counted once");
    s.check().unwrap();
    let big = s.alloc(Size(1 << 20), Policy::InstantFit, Wait::No).unwrap();
    stamp(big, Size(1 << 20), 9);
    s.free(big, Size(1 << 20)).unwrap();
    s.with(|a| {
        a.check().unwrap();
        a.source().check().unwrap();
    });
}
