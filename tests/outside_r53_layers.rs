//! Round 53: `into_source` over layered sources: a parent arena through a
//! `&RefCell` (borrowed: `SourceBusy`), `KeepFree` keeping spans, a
//! `VmSource` given back to its VM, a `SyncArena` with quantum caches.

mod outside_r53_common;

use std::cell::RefCell;

use outside_r53_common::{bytes, cached, cached_buffers, Model, PAGE};
use vmspace::arena::{Arena, ArenaError, PageStore, Policy, SliceStore};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::sync::CacheHandle;
use vmspace::vm::Vm;
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;

#[test]
fn a_child_of_a_borrowed_parent_comes_back_then_goes() {
    let m = Model::new();
    let (mut pt, mut ph) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let parent = RefCell::new(
        Arena::new(
            "p",
            Size(PAGE),
            SliceStore::new(bytes(&mut pt)),
            SliceStore::new(bytes(&mut ph)),
            m.clone(),
        )
        .unwrap(),
    );
    let (mut ct, mut ch) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut c = Arena::new(
        "c",
        Size(16),
        SliceStore::new(bytes(&mut ct)),
        SliceStore::new(bytes(&mut ch)),
        &parent,
    )
    .unwrap();
    let x = c.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
    let y = c.alloc(Size(3 * PAGE), Policy::InstantFit).unwrap();
    let z = c.alloc(Size(PAGE), Policy::InstantFit).unwrap();
    assert_eq!(parent.borrow().sizes().allocated.0, 12 * PAGE);
    let g = parent.borrow();
    c.free(x, Size(8 * PAGE)).unwrap();
    c.free(y, Size(3 * PAGE)).unwrap();
    c.check().unwrap();
    assert_eq!(c.sizes().imported.0, 12 * PAGE, "both refused as busy, kept");
    // z live: back at once, not even asking the parent.
    let f0 = c.counters().export_failures;
    let mut c = c.into_source().err().expect("z live").into_inner();
    assert_eq!(c.counters().export_failures, f0);
    c.free(z, Size(PAGE)).unwrap();
    let f1 = c.counters().export_failures;
    // Everything free but the parent borrowed: offered, refused, kept.
    let c = c.into_source().err().expect("the parent is borrowed").into_inner();
    c.check().unwrap();
    assert_eq!(c.sizes().imported.0, 12 * PAGE);
    assert_eq!(c.sizes().free, c.sizes().total);
    assert!(c.counters().export_failures >= f1 + 3, "each span offered");
    assert_eq!(g.sizes().allocated.0, 12 * PAGE, "the parent untouched");
    drop(g);
    let c2 = c.into_source();
    let p = c2.unwrap_or_else(|_| panic!("the parent free to take them"));
    let p = p.borrow();
    p.check().unwrap();
    assert_eq!(p.sizes().allocated.0, 0);
    assert_eq!(m.outstanding(), 0, "the parent gave its spans back at the frees");
    assert_eq!(m.bogus(), 0);
}

#[test]
fn keep_free_below_comes_back_with_its_kept_spans() {
    let m = Model::new();
    let kf: KeepFree<Model, 4> = KeepFree::new(m.clone(), Size(PAGE));
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut a = Arena::new(
        "k",
        Size(64),
        SliceStore::new(bytes(&mut t)),
        SliceStore::new(bytes(&mut h)),
        kf,
    )
    .unwrap();
    let xs: Vec<_> = (1..=6)
        .map(|p| (a.alloc(Size(p * PAGE), Policy::InstantFit).unwrap(), Size(p * PAGE)))
        .collect();
    assert_eq!(m.outstanding(), 21 * PAGE);
    for &(x, s) in &xs[..5] {
        a.free(x, s).unwrap();
    }
    let kept = a.source().kept_size();
    assert!(kept.0 > 0, "KeepFree keeps some");
    assert_eq!(a.sizes().imported.0, 6 * PAGE, "the arena gave back what was free");
    let mut a = a.into_source().err().expect("the 6-page allocation live").into_inner();
    assert_eq!(a.source().kept_size(), kept, "untouched");
    a.free(xs[5].0, xs[5].1).unwrap();
    a.check().unwrap();
    let kf = a.into_source().unwrap_or_else(|_| panic!("all free"));
    assert_eq!(m.outstanding(), kf.kept_size().0, "the model holds out only what KeepFree keeps");
    let back = kf.into_inner().unwrap_or_else(|_| panic!("kept spans taken"));
    assert_eq!((back.outstanding(), back.bogus()), (0, 0));
}

#[test]
fn the_vm_comes_back_unmapped_through_added_spans_handles_and_flushes() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(256 * PAGE), Size(PAGE)).unwrap();
    let range = vm.range();
    let (t, h) =
        (PageStore::new(&sim, Size(16 * PAGE)).unwrap(), PageStore::new(&sim, Size(PAGE)).unwrap());
    let source = VmSource::new(vm, t, h).unwrap();
    let mut a = Arena::on_pages("vm", Size(64), &sim, 1 << 12, source).unwrap();
    // An added span far from the VM's range, filled first.
    a.add(Addr(range.limit().0 + (1 << 30)), Size(63 * PAGE)).unwrap();
    let in_added = a.alloc(Size(63 * PAGE), Policy::InstantFit).unwrap();
    let big = a.alloc(Size(128 * PAGE), Policy::InstantFit).unwrap();
    let hd = a.alloc_handle(Size(PAGE), Policy::InstantFit).unwrap();
    let d = a.alloc(Size(2 * PAGE), Policy::InstantFit).unwrap();
    assert!(a.source().vm().mapped().0 >= 128 * PAGE);
    a.free(big, Size(128 * PAGE)).unwrap();
    a.free_deferred(d, Size(2 * PAGE)).unwrap();
    a.free_handle(hd).unwrap();
    let mut a = a.into_source().err().expect("live in the added span, and unflushed").into_inner();
    a.free(in_added, Size(63 * PAGE)).unwrap();
    let mut a = a.into_source().err().expect("still unflushed").into_inner();
    assert!(a.sizes().imported.0 > 0, "d's span not given back before its flush");
    a.flushed();
    a.check().unwrap();
    let source = a.into_source().unwrap_or_else(|_| panic!("all free, all flushed"));
    source.check().unwrap();
    assert_eq!(source.vm().mapped(), Size(0));
    let vm = source.into_vm().unwrap_or_else(|_| panic!("nothing imported"));
    vm.check().unwrap();
    assert_eq!((vm.range(), vm.mapped()), (range, Size(0)));
}

#[test]
fn quantum_cache_slabs_keep_the_arena_until_reclaimed() {
    let m = Model::new();
    let (mut t, mut h, mut q) = cached_buffers();
    let s = cached(&m, (&mut t, &mut h, &mut q));
    {
        let mut hd = CacheHandle::new(&s);
        let xs: Vec<_> = (0..40).map(|_| hd.alloc(Size(32)).unwrap()).collect();
        for &x in &xs {
            hd.free(x, Size(32)).unwrap();
        }
    }
    s.check().unwrap();
    assert!(s.qcache_stats().slabs > 0);
    let held = s.with(|a| a.sizes().allocated);
    assert!(held.0 > 0, "slabs are held allocations");
    // Nothing wholly free to give back while the caches hold their slabs.
    let imported = s.with(|a| a.sizes().imported);
    assert_eq!(s.with(|a| a.give_back_free_spans()), Size(0));
    assert_eq!(s.with(|a| a.sizes().imported), imported);
    let freed = s.reclaim();
    assert!(freed > 0);
    s.check().unwrap();
    let left = s.with(|a| a.give_back_free_spans());
    let a = s.into_inner().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
    a.check().unwrap();
    let back = a.into_source().unwrap_or_else(|_| panic!("slabs reclaimed"));
    assert_eq!((back.outstanding(), back.bogus()), (0, 0));
    assert_eq!(left, Size(0), "the reclaim's frees gave the spans back already");
}

#[test]
fn unreclaimed_slabs_make_into_source_refuse() {
    let m = Model::new();
    let (mut t, mut h, mut q) = cached_buffers();
    let s = cached(&m, (&mut t, &mut h, &mut q));
    // `into_inner` reclaims the caches now (round 59b), so a slab stays
    // only while one of its objects is live, and then (round 60a) it
    // refuses: nothing outside the caches could free that slab. Keep one.
    let live = {
        let mut hd = CacheHandle::new(&s);
        let x = hd.alloc(Size(48)).unwrap();
        let live = hd.alloc(Size(48)).unwrap();
        hd.free(x, Size(48)).unwrap();
        live
    };
    assert!(s.qcache_stats().slabs > 0);
    let refused = s.into_inner().err().expect("a slab holds a live object");
    assert!(
        matches!(refused.error(), ArenaError::InUse { what: "quantum-cache slabs with objects out", size } if size.0 > 0),
        "{refused:?}"
    );
    let s = refused.into_inner();
    s.free(live, Size(48)).unwrap();
    let a = s.into_inner().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
    let back = a.into_source().unwrap_or_else(|_| panic!("nothing left allocated"));
    assert_eq!(back.outstanding(), 0);
}
