//! Outside review of round 41b's `KeepFree` over the sources of this
//! crate on the simulated backend: a `VmSource` (batched, with injected
//! faults), a `VmArena` with a commit limit, a `&SyncArena`, and arenas
//! over one borrowed adapter in turn, with every `check()` after each step.
//!
//! Tests marked "was a DEFECT" failed on the code reviewed and pass since
//! the fixes; the others check contracts that held.

use std::cell::RefCell;

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKinds, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, PageOps, Size};

mod outside_common;
mod outside_keep_common;
use outside_common::Rng41 as Rng;
use outside_keep_common::{vmsource, Vs};

const PAGE: usize = 4096;

/// The adapter's books against its `VmSource`: each kept span is one
/// import of it, mapped, whole quanta, none overlapping another.
fn kept_books<P: PageOps, const N: usize>(k: &KeepFree<Vs<P>, N>) {
    k.check().unwrap();
    k.inner().check().unwrap();
    for r in k.kept() {
        assert_eq!(k.inner().space().lookup(r.base()).map(|l| l.0), Some(*r), "{r} not one import");
        assert!(k.inner().vm().is_mapped(r.base()), "kept {r} not mapped");
        assert!(r.is_aligned(k.quantum()));
    }
}

/// Was a DEFECT (fixed). The same as `outside_r41b_contract`'s unflushed second
/// give-back, over a `VmSource`: a span kept and then given back again
/// unflushed is unmapped by the `VmSource` (which still lists it as
/// handed out) while it stays kept, and the adapter's next import hands
/// out the unmapped range.
///
/// Expected: keep.rs:28-29 (a range that "overlaps a kept one (given back
/// twice), is refused with `ArenaError::BadFree`, changing nothing") and
/// keep.rs:36-37 ("A kept span is as its last user left it: over a
/// `VmSource`, still mapped").
/// Actual: `release_unflushed` returns `Ok`, the kept span is unmapped,
/// and the next import of its size returns it unmapped.
#[test]
fn defect_vmsource_unflushed_second_give_back_unmaps_a_kept_span() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut k = KeepFree::<_, 2>::new(vmsource(&sim, 64), Size(PAGE));
    let a = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap();
    let second = k.release_unflushed(a);
    let still_mapped = k.inner().vm().is_mapped(a.base());
    let again = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let again_mapped = k.inner().vm().is_mapped(again.base());
    eprintln!(
        "second give-back {second:?}; kept span still mapped {still_mapped}; \
         next import {again}, mapped {again_mapped}"
    );
    assert!(matches!(second, Err(ArenaError::BadFree { .. })), "second give-back: {second:?}");
    assert!(again_mapped, "import {again} handed out unmapped");
}

/// A small xorshift for the step sequences.
/// Passes. Arenas of quanta 16, 4096 and 64 KiB over one borrowed adapter
/// in turn, over a batched `VmSource`, with random backend faults armed
/// for each step: every operation works or fails, the arena's, the
/// adapter's and the VM source's `check()` hold after each step, kept
/// spans stay mapped imports, every arena import is counted once
/// (imported or reused), and arenas dropped with deferred frees leave
/// nothing unflushed kept. At the end, dropped, nothing stays mapped.
#[test]
fn holds_arenas_in_turn_over_a_borrowed_adapter_with_faults() {
    let mut buf = vec![0u8; 24 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let inj = FaultInjector::new(&sim);
    let mut vs = vmsource(&inj, 1024);
    vs.set_flush_threshold(8).unwrap();
    let mut k = KeepFree::<_, 3>::new(vs, Size(2 * PAGE));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut arena_imports = 0u64;
    for round in 0..24u64 {
        let quantum = [16usize, PAGE, 64 << 10][round as usize % 3];
        let mut heap = Arena::on_pages("heap", Size(quantum), &sim, 4096, &mut k).unwrap();
        let mut live: Vec<(Addr, usize)> = Vec::new();
        let mut deferred = false;
        for step in 0..150u64 {
            inj.fail_randomly(round << 32 | step, 150_000);
            let pick = rng.index(10);
            let ok = if pick < 5 || live.is_empty() {
                let size = [16, 200, PAGE, 3 * PAGE, 40 << 10][rng.index(5)];
                let size = size.next_multiple_of(quantum);
                match heap.alloc(Size(size), Policy::InstantFit) {
                    Ok(a) => {
                        live.push((a, size));
                        true
                    }
                    Err(_) => false,
                }
            } else if pick < 9 || round % 2 == 1 {
                let (a, s) = live.swap_remove(rng.index(live.len()));
                match heap.free(a, Size(s)) {
                    Ok(()) => true,
                    Err(_) => {
                        live.push((a, s));
                        false
                    }
                }
            } else {
                let (a, s) = live.swap_remove(rng.index(live.len()));
                heap.free_deferred(a, Size(s)).unwrap();
                deferred = true;
                true
            };
            inj.clear();
            let _ = ok;
            heap.check().unwrap();
            kept_books(heap.source());
            if step % 37 == 36 && !deferred {
                heap.source_mut().trim();
                kept_books(heap.source());
            }
        }
        arena_imports += heap.counters().imports;
        // Odd rounds drop the arena with whatever is live (and even rounds
        // with deferred frees not flushed); the rest go back.
        let unflushed: Vec<_> = heap.walk(SegmentKinds::UNFLUSHED).map(|s| s.range).collect();
        if round % 4 == 0 {
            for (a, s) in live.drain(..) {
                heap.free(a, Size(s)).unwrap();
            }
        }
        drop(heap);
        kept_books(&k);
        for u in unflushed {
            assert!(!k.kept().iter().any(|r| r.overlaps(&u)), "unflushed {u} kept");
        }
    }
    let c = k.counts();
    eprintln!("{c:?}, {} faults injected", inj.injected());
    assert!(inj.injected() > 20);
    assert_eq!(c.imported + c.reused, arena_imports, "every arena import counted once");
    drop(k);
    // Spans dropped with live allocations went back too (the arena's
    // drop gives every imported span back), unmapped.
    assert_eq!(sim.stats().mapped_pages, 0, "pages left mapped");
}

/// Passes. Over a `VmArena` whose commit limit the kept spans fill: an
/// import of another size fails `NoSpace` below, so the kept spans go
/// back and the import is asked once more (keep.rs:23-26).
#[test]
fn holds_vmarena_commit_limit_gives_kept_spans_back() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let cfg = VmArenaConfig::new(Size(256 * PAGE)).spare_limit(0).commit_limit(Size(12 * PAGE));
    let mut va = VmArena::new(&sim, cfg).unwrap();
    let mut k = KeepFree::<_, 4>::new(&mut va, Size(PAGE));
    let a = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    let b = k.import(Size(4 * PAGE), Size(PAGE)).unwrap();
    k.release(a).unwrap();
    k.release(b).unwrap();
    let c = k.import(Size(6 * PAGE), Size(PAGE));
    let n = k.counts();
    eprintln!("{c:?} {n:?} kept {:?}", k.kept());
    assert!(c.is_ok(), "{c:?}");
    assert!(k.kept().is_empty());
    assert_eq!((n.imported, n.kept, n.released, n.release_failures), (3, 2, 2, 0));
    k.release(c.unwrap()).unwrap();
    drop(k);
    va.check().unwrap();
}

type Shared<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, vmspace::arena::NoSource>;

/// Passes. Two arenas alive at once over one `&RefCell<KeepFree<&SyncArena>>`:
/// a span one gives back is the one the other imports next; `check()`
/// holds after each step, and on drop everything is back in the parent.
#[test]
fn holds_two_arenas_sharing_an_adapter_over_a_sync_arena() {
    let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    let mut p = Arena::new(
        "parent",
        Size(PAGE),
        SliceStore::new(&mut t),
        SliceStore::new(&mut h),
        vmspace::arena::NoSource,
    )
    .unwrap();
    p.add(Addr(1 << 30), Size(64 * PAGE)).unwrap();
    let s: Shared = SyncArena::new(p);
    let k = RefCell::new(KeepFree::<_, 2>::new(&s, Size(4 * PAGE)));
    {
        let (mut t1, mut h1) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut x =
            Arena::new("x", Size(16), SliceStore::new(&mut t1), SliceStore::new(&mut h1), &k)
                .unwrap();
        let mut y =
            Arena::new("y", Size(64), SliceStore::new(&mut t2), SliceStore::new(&mut h2), &k)
                .unwrap();
        for _ in 0..50 {
            let a = x.alloc(Size(16), Policy::InstantFit).unwrap();
            x.free(a, Size(16)).unwrap();
            let kept = k.borrow().kept().to_vec();
            let b = y.alloc(Size(64), Policy::InstantFit).unwrap();
            assert!(kept.iter().any(|r| r.contains_addr(b)), "{b} not from the kept {kept:?}");
            x.check().unwrap();
            y.check().unwrap();
            k.borrow().check().unwrap();
            s.check().unwrap();
            y.free(b, Size(64)).unwrap();
        }
        let c = k.borrow().counts();
        assert_eq!((c.imported, c.reused, c.kept, c.released), (1, 99, 100, 0));
    }
    drop(k);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}
