//! Round 63b outside review: a heap over `KeepFree` over a batched or
//! unbatched `VmSource`, dropped with deferred frees not yet flushed, with
//! and without random backend faults. `KeepFree`'s docs: an unflushed
//! give-back is "never kept; it goes to `S`, which must not hand it out
//! before its flush"; `VmSource`'s: such a span is "unmapped at once
//! without a flush ... and unflushed here until this source's next flush
//! ... Nothing of it is handed out before that flush." Afterwards every
//! layer checks, no unflushed range is handed out again before a flush,
//! and with faults off everything comes back to a wholly unmapped VM.

use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace::{Addr, Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape};

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
    let vm = Vm::reserve(&fi, Size(512 * PAGE), Size(PAGE)).unwrap();
    let (mut vt, mut vh) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
    let mut vs =
        VmSource::new(vm, SliceStore::new(bytes(&mut vt)), SliceStore::new(bytes(&mut vh)))
            .unwrap_or_else(|_| panic!("source"));
    vs.set_flush_threshold(threshold).unwrap();
    let mut keep: KeepFree<_, 4> = KeepFree::new(vs, Size(4 * PAGE));
    let mut unflushed: Vec<Range> = vec![];
    let mut flushes_then = 0;
    fi.set_shape(FaultShape::PartWay);
    fi.fail_randomly(seed, rate);
    for round in 0..6 {
        let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(16),
            SliceStore::new(bytes(&mut t)),
            SliceStore::new(bytes(&mut h)),
            &mut keep,
        )
        .unwrap();
        let mut got = vec![];
        for i in 0..20 {
            let size = 16 * (1 + (i * 7 + round) % 40);
            if let Ok(a) = heap.alloc(Size(size), Policy::InstantFit) {
                for r in &unflushed {
                    if sim.stats().flushes != flushes_then {
                        continue; // flushed since: may be handed out again
                    }
                    assert!(
                        !r.contains_addr(a),
                        "seed {seed} round {round}: {a:?} handed out from an unflushed range {r}"
                    );
                }
                got.push((a, size));
            }
        }
        for (k, &(a, s)) in got.iter().enumerate() {
            let r = if k % 3 == 0 { heap.free(a, Size(s)) } else { heap.free_deferred(a, Size(s)) };
            r.unwrap_or_else(|e| panic!("seed {seed} round {round}: free {e:?}"));
        }
        heap.check().unwrap();
        drop(heap);
        keep.check().unwrap_or_else(|e| panic!("seed {seed} round {round}: keep {e:?}"));
        keep.inner()
            .check()
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: vm source {e:?}"));
        // What the VmSource holds unflushed now.
        flushes_then = sim.stats().flushes;
        unflushed = keep
            .inner()
            .space()
            .walk(vmspace::arena::SegmentKinds::UNFLUSHED)
            .map(|s| s.range)
            .collect();
    }
    fi.clear();
    let mut vs = keep.into_inner().unwrap_or_else(|_| panic!("seed {seed}: into_inner"));
    vs.flush();
    vs.check().unwrap();
    if vs.space().sizes().allocated == Size(0) {
        let vm = vs.into_vm().unwrap_or_else(|_| panic!("into_vm"));
        assert_eq!(vm.mapped(), Size(0));
        assert_eq!(sim.stats().unflushed_pages, 0);
    }
    let _ = Addr(0);
}

#[test]
fn keep_over_vm_source_dropped_unflushed_no_faults() {
    run(1, 0, 0);
    run(2, 3, 0);
    run(3, 1000, 0);
}

#[test]
fn keep_over_vm_source_dropped_unflushed_random_faults() {
    for seed in 1..30u64 {
        run(seed * 0x1F2E3D, (seed as usize % 3) * 7, 100_000);
    }
}
