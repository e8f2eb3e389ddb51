//! Round 63b outside review: an arena importing from a `VmArena`,
//! dropped with deferred frees not yet flushed. The VM arena's
//! `release_unflushed` (src/sources/vmarena.rs) promises: "its tracts are
//! freed and every page of them unmapped (none kept spare)". With a spare
//! bound that would keep them, and with other spans freed normally.

use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Size};
use vmspace_shim::sim::SimBackend;

const PAGE: usize = 64;

fn bytes(v: &mut [u64]) -> &mut [u8] {
    let len = v.len() * 8;
    // SAFETY: u64 storage viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
}

#[test]
fn dropped_importer_with_unflushed_frees_leaves_no_spare_for_those_spans() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let mut va =
        VmArena::new(&sim, VmArenaConfig::new(Size(1024 * PAGE)).spare_limit(1000)).unwrap();
    let base = va.base().0;
    let (span_a, span_b);
    {
        let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
        let mut heap = Arena::new(
            "heap",
            Size(PAGE),
            SliceStore::new(bytes(&mut t)),
            SliceStore::new(bytes(&mut h)),
            &mut va,
        )
        .unwrap();
        let a = heap.alloc(Size(8 * PAGE), Policy::InstantFit).unwrap();
        let b = heap.alloc(Size(4 * PAGE), Policy::InstantFit).unwrap();
        span_a = a;
        span_b = b;
        heap.free_deferred(a, Size(8 * PAGE)).unwrap();
        heap.free_deferred(b, Size(4 * PAGE)).unwrap();
        heap.check().unwrap();
        // dropped with both unflushed
    }
    va.check().unwrap();
    assert_eq!(va.allocated(), Size(0));
    assert_eq!(va.spare(), Size(0), "release_unflushed kept pages spare");
    assert_eq!(va.committed(), Size(0));
    for r in [(span_a, 8), (span_b, 4)] {
        for p in 0..r.1 {
            let a = Addr(r.0 .0 + p * PAGE);
            assert!(a.0 >= base);
            assert_eq!(sim.protection(a), None, "page of an unflushed span still mapped");
        }
    }
}

/// The same under random faults (part-way shape): after each importer is
/// dropped, the VM arena checks, and pages mapped in the simulator are
/// exactly its allocated and spare tracts.
#[test]
fn dropped_importers_under_random_faults_leave_the_vm_arena_consistent() {
    use vmspace_shim::{FaultInjector, FaultShape};
    for seed in 1..40u64 {
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let fi = FaultInjector::new(&sim);
        let mut va =
            VmArena::new(&fi, VmArenaConfig::new(Size(1024 * PAGE)).spare_limit(seed as usize * 3))
                .unwrap();
        let base = va.base().0;
        fi.set_shape(FaultShape::PartWay);
        fi.fail_randomly(seed * 0xABCD, 120_000);
        for round in 0..5u64 {
            {
                let (mut t, mut h) = (vec![0u64; 1 << 12], vec![0u64; 1 << 10]);
                let Ok(mut heap) = Arena::new(
                    "heap",
                    Size(PAGE),
                    SliceStore::new(bytes(&mut t)),
                    SliceStore::new(bytes(&mut h)),
                    &mut va,
                ) else {
                    continue;
                };
                let mut got = vec![];
                for i in 0..12u64 {
                    let n = 1 + ((i * 5 + round + seed) % 9) as usize;
                    if let Ok(a) = heap.alloc(Size(n * PAGE), Policy::InstantFit) {
                        got.push((a, n));
                    }
                }
                for (k, &(a, n)) in got.iter().enumerate() {
                    let r = match k % 3 {
                        0 => heap.free(a, Size(n * PAGE)),
                        _ => heap.free_deferred(a, Size(n * PAGE)),
                    };
                    r.unwrap();
                }
                heap.check().unwrap();
            }
            va.check().unwrap_or_else(|e| panic!("seed {seed} round {round}: {e:?}"));
            let mapped =
                (0..1024).filter(|t| sim.protection(Addr(base + t * PAGE)).is_some()).count();
            assert_eq!(
                mapped * PAGE,
                va.allocated().0 + va.spare().0,
                "seed {seed} round {round}: sim mapped tracts != allocated + spare"
            );
        }
    }
}
