//! Round 63b outside review: `KeepFree` over a `VmArena` source with a
//! commit limit. Kept spans hold committed tracts; an import that the
//! limit refuses (`CommitLimit`, which the VM arena's source turns into
//! `NoSpace`) must make `KeepFree` give its kept spans back and ask again
//! (src/sources/keep.rs docs, "Import"), and the VM arena must then
//! purge what became spare to fit. Also under random faults: every layer's
//! check holds and live allocations stay read-write with their contents.

mod outside_r63b_common;

use outside_r63b_common::seeds;
use std::collections::BTreeMap;
use vmspace_workload::Rng;

use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::sources::KeepFree;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Protection};

const PAGE: usize = 64;

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
}

#[test]
fn commit_limit_makes_keep_free_give_back_and_retry() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    // Commit limit: 80 pages (tracts + the arena's table pages).
    let cfg = VmArenaConfig::new(Size(1024 * PAGE)).spare_limit(1000).commit_limit(Size(80 * PAGE));
    let mut va = VmArena::new(&sim, cfg).unwrap();
    let keep: KeepFree<_, 4> = KeepFree::new(&mut va, Size(16 * PAGE));
    let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut heap = Arena::new(
        "heap",
        Size(16),
        SliceStore::new(bytes(&mut t)),
        SliceStore::new(bytes(&mut h)),
        keep,
    )
    .unwrap();
    // Three spans of 16 pages, each used wholly, then all freed: kept.
    let xs: Vec<Addr> =
        (0..3).map(|_| heap.alloc(Size(16 * PAGE), Policy::InstantFit).unwrap()).collect();
    for x in xs {
        heap.free(x, Size(16 * PAGE)).unwrap();
    }
    assert_eq!(heap.source().kept().len(), 3);
    // 48 pages kept committed; 40 more do not fit under 80 unless the kept
    // spans go back (and their spare tracts are purged).
    let y = heap.alloc(Size(40 * PAGE), Policy::InstantFit);
    heap.check().unwrap();
    heap.source().check().unwrap();
    assert!(y.is_ok(), "import refused by the commit limit with 48 pages kept: {y:?}");
    assert!(heap.source().kept().is_empty());
    drop(heap);
    va.check().unwrap();
}

fn run(seed: u64) {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let cfg = VmArenaConfig::new(Size(2048 * PAGE))
        .spare_limit(seed as usize % 50)
        .commit_limit(Size((200 + seed as usize % 300) * PAGE));
    let mut va = VmArena::new(&fi, cfg).unwrap();
    let base = va.base().0;
    {
        let keep: KeepFree<_, 3> = KeepFree::new(&mut va, Size(4 * PAGE));
        let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(16),
            SliceStore::new(bytes(&mut t)),
            SliceStore::new(bytes(&mut h)),
            keep,
        )
        .unwrap();
        let mut live: BTreeMap<usize, (usize, u8)> = BTreeMap::new();
        let mut rng = Rng::new(seed | 1);
        fi.set_shape(FaultShape::PartWay);
        fi.fail_randomly(seed, 150_000);
        for step in 0..500 {
            if rng.below(2) == 0 || live.is_empty() {
                let big = rng.below(4) == 0;
                let size = 16 * (1 + rng.below(if big { 200 } else { 8 }));
                if let Ok(a) = heap.alloc(Size(size), Policy::InstantFit) {
                    for p in (a.0..a.0 + size).step_by(PAGE).chain([a.0 + size - 1]) {
                        assert_eq!(
                            sim.protection(Addr(p & !(PAGE - 1))),
                            Some(Protection::ReadWrite),
                            "seed {seed} step {step}"
                        );
                    }
                    let tag = (step % 250) as u8 + 1;
                    // SAFETY: read-write (checked).
                    unsafe { std::ptr::write_bytes(a.0 as *mut u8, tag, size) };
                    live.insert(a.0, (size, tag));
                }
            } else {
                let k = rng.below(live.len());
                let (&a, &(s, _)) = live.iter().nth(k).unwrap();
                heap.free(Addr(a), Size(s)).unwrap();
                live.remove(&a);
            }
            heap.check().unwrap_or_else(|e| panic!("seed {seed} step {step}: heap {e:?}"));
            heap.source().check().unwrap_or_else(|e| panic!("seed {seed} step {step}: keep {e:?}"));
            heap.source()
                .inner()
                .check()
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: vmarena {e:?}"));
            for (&a, &(s, tag)) in &live {
                assert!(a >= base);
                for p in (a..a + s).step_by(PAGE).chain([a + s - 1]) {
                    assert_eq!(
                        sim.protection(Addr(p & !(PAGE - 1))),
                        Some(Protection::ReadWrite),
                        "seed {seed} step {step}: live {a:#x}"
                    );
                }
                // SAFETY: read-write (checked).
                let sl = unsafe { std::slice::from_raw_parts(a as *const u8, s) };
                assert!(
                    sl.iter().all(|&b| b == tag),
                    "seed {seed} step {step}: live {a:#x} contents changed"
                );
            }
            let c = heap.source().inner().committed();
            assert!(
                c <= heap.source().inner().commit_limit(),
                "seed {seed} step {step}: over the commit limit"
            );
        }
        fi.clear();
        for (&a, &(s, _)) in &live {
            heap.free(Addr(a), Size(s)).unwrap();
        }
    }
    va.check().unwrap();
}

#[test]
fn keep_over_vmarena_random_faults() {
    for seed in seeds(30) {
        run(seed * 0x5DEECE66D);
    }
}
