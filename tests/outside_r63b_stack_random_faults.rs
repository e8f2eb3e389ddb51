//! Round 63b outside review: a heap arena over `KeepFree` over a
//! `VmSource` (batched or not) over a faulty backend (random faults, part-
//! way shape, so put-backs fail too). After every step every layer's
//! `check()` holds, every live allocation is on read-write pages in the
//! simulator with its contents intact (a failed give-back below must not
//! touch live memory), and nothing handed out overlaps. At the end, with
//! faults off, everything comes back and the VM is wholly unmapped.

mod outside_r63b_common;

use outside_r63b_common::seeds;
use std::collections::BTreeMap;
use vmspace_workload::Rng;

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Protection};

const PAGE: usize = 64;

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
}

fn run(seed: u64, threshold: usize, rate: u32) {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let vm = Vm::reserve(&fi, Size(3000 * PAGE), Size(PAGE)).unwrap();
    let (mut vt, mut vh) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut vs =
        VmSource::new(vm, SliceStore::new(bytes(&mut vt)), SliceStore::new(bytes(&mut vh)))
            .unwrap_or_else(|_| panic!("source"));
    vs.set_flush_threshold(threshold).unwrap();
    let keep: KeepFree<_, 3> = KeepFree::new(vs, Size(4 * PAGE));
    let (mut ht, mut hh) = (vec![0u64; 1 << 13], vec![0u64; 1 << 11]);
    let mut heap = Arena::new(
        "heap",
        Size(16),
        SliceStore::new(bytes(&mut ht)),
        SliceStore::new(bytes(&mut hh)),
        keep,
    )
    .unwrap();
    let mut live: BTreeMap<usize, (usize, u8)> = BTreeMap::new();
    let mut rng = Rng::new(seed | 1);
    fi.set_shape(FaultShape::PartWay);
    fi.fail_randomly(seed, rate);
    let mut stranded = 0;
    for step in 0..600 {
        let what = rng.below(10);
        let r: Result<(), ArenaError> = if what < 5 || live.is_empty() {
            let big = rng.below(4) == 0;
            let size = 16 * (1 + rng.below(if big { 64 } else { 8 }));
            match heap.alloc(Size(size), Policy::InstantFit) {
                Ok(a) => {
                    for (&l, &(s, _)) in &live {
                        assert!(
                            l + s <= a.0 || a.0 + size <= l,
                            "seed {seed} step {step}: overlap"
                        );
                    }
                    let tag = (step % 251) as u8 + 1;
                    for p in (a.0..a.0 + size).step_by(PAGE).chain([a.0 + size - 1]) {
                        let pr = sim.protection(Addr(p & !(PAGE - 1)));
                        assert_eq!(
                            pr,
                            Some(Protection::ReadWrite),
                            "seed {seed} step {step}: fresh allocation not RW"
                        );
                    }
                    // SAFETY: the allocation is mapped read-write (checked).
                    unsafe { std::ptr::write_bytes(a.0 as *mut u8, tag, size) };
                    live.insert(a.0, (size, tag));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if what < 9 {
            let k = rng.below(live.len());
            let (&a, &(s, _)) = live.iter().nth(k).unwrap();
            let r = heap.free(Addr(a), Size(s));
            match r {
                Ok(()) => {
                    live.remove(&a);
                }
                Err(ref e) => {
                    panic!("seed {seed} step {step}: heap free of a live allocation failed: {e:?}")
                }
            }
            r
        } else {
            let t = heap.source_mut().trim();
            let _ = t;
            Ok(())
        };
        if let Err(ArenaError::Stranded { .. }) = r {
            stranded += 1;
        }
        heap.check()
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: heap check {e:?} after {r:?}"));
        heap.source()
            .check()
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: keep check {e:?}"));
        heap.source().inner().check().unwrap_or_else(|e| {
            panic!("seed {seed} step {step}: vm source check {e:?} after {r:?}")
        });
        for (&a, &(s, tag)) in &live {
            for p in (a..a + s).step_by(PAGE).chain([a + s - 1]) {
                let pr = sim.protection(Addr(p & !(PAGE - 1)));
                assert_eq!(
                    pr,
                    Some(Protection::ReadWrite),
                    "seed {seed} step {step}: live allocation at {a:#x} page not RW after {r:?}"
                );
            }
            // SAFETY: read-write (checked just above).
            let sl = unsafe { std::slice::from_raw_parts(a as *const u8, s) };
            assert!(
                sl.iter().all(|&b| b == tag),
                "seed {seed} step {step}: live allocation {a:#x} contents changed after {r:?}"
            );
        }
    }
    fi.clear();
    for (&a, &(s, _)) in &live {
        heap.free(Addr(a), Size(s)).unwrap();
    }
    heap.check().unwrap();
    let fails = heap.source().counts().release_failures;
    let keep = heap
        .into_source()
        .unwrap_or_else(|r| panic!("seed {seed}: heap into_source refused: {:?}", r.error()));
    let vs = keep.into_inner().unwrap_or_else(|_| panic!("seed {seed}: keep into_inner refused"));
    vs.check().unwrap();
    if stranded == 0 && fails == 0 {
        let imported = vs.space().sizes().allocated;
        assert_eq!(imported, Size(0), "seed {seed}: imports left with nothing stranded");
        let vm = vs.into_vm().unwrap_or_else(|_| panic!("seed {seed}: into_vm"));
        assert_eq!(vm.mapped(), Size(0));
        vm.check().unwrap();
    }
}

#[test]
fn stack_random_faults_unbatched() {
    for seed in seeds(25) {
        run(seed * 0x9E37_79B9_7F4A, 0, 150_000);
    }
}

#[test]
fn stack_random_faults_batched() {
    for seed in seeds(25) {
        run(seed * 0x7F4A_7C15, 1 + (seed as usize % 40), 150_000);
    }
}
