//! Written by a reviewer outside the project (round 70). Checks
//! `VmSource`'s trim slack (src/sources/vm.rs) through the layers that
//! give back to it: an `Arena` importing from it dropped with unflushed
//! segments (`release_unflushed`, "taken the batched way"), a `KeepFree`
//! over it trimming what it keeps, and random backend faults (clean
//! failures of map and unmap): "no more than the slack stays mapped for
//! nothing", "An import whose map fails trims what the failure left", a
//! refused give-back changes nothing, and `metadata_trimmable()` agrees
//! with the simulated backend after every step.

use vmspace::arena::{Arena, Policy, SliceStore, Source};
use vmspace::sources::KeepFree;
use vmspace::{Range, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, Op};
use vmspace_workload::Rng;

mod outside_r70_common;
use outside_r70_common::*;

/// An arena importing spans of several bit-table pages, freeing some
/// deferred and dropped with them unflushed: each span goes back through
/// `release` or `release_unflushed`, and the bound holds after the drop.
#[test]
fn an_arena_dropped_with_unflushed_segments_keeps_the_bound() {
    for batch in [0, 1, 700] {
        for slack in [0, 1, 3] {
            let mut buf = vec![0u8; 8 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
            let mut src = source(&sim, 24 * PER + 5, &mut t, &mut h);
            src.set_flush_threshold(batch).unwrap();
            src.set_trim_slack(slack);
            let mut rng = Rng::new(0x0007_270a + batch as u64 * 7 + slack as u64);
            for round in 0..4 {
                let (mut at, mut ah) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
                let mut heap = Arena::new(
                    "heap",
                    Size(PAGE),
                    SliceStore::new(&mut at),
                    SliceStore::new(&mut ah),
                    &mut src,
                )
                .unwrap();
                let mut got = vec![];
                for _ in 0..12 {
                    let size = rng.between(1, 3 * PER) * PAGE;
                    if let Ok(a) = heap.alloc(Size(size), Policy::InstantFit) {
                        got.push((a, size));
                    }
                }
                for &(a, s) in &got {
                    if rng.chance(500) {
                        heap.free_deferred(a, Size(s)).unwrap();
                    } else {
                        heap.free(a, Size(s)).unwrap();
                    }
                }
                drop(heap);
                let ctx = format!("batch {batch} slack {slack} round {round}");
                src.check().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                assert_eq!(src.vm().mapped(), Size(0), "{ctx}");
                assert_eq!(true_empty(src.vm(), &sim), trimmable(&src), "{ctx}");
                assert!(trimmable(&src) <= slack, "{ctx}: {} record nothing", trimmable(&src));
            }
            let left = trimmable(&src);
            assert_eq!(src.trim(), Ok(left));
        }
    }
}

/// A `KeepFree` over the source: what it keeps is imported (its pages
/// mapped); its `trim` gives them back through `release`, each of which
/// keeps the bound.
#[test]
fn keep_free_trim_gives_back_within_the_slack() {
    for slack in [0, 2] {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
        let mut src = source(&sim, 16 * PER, &mut t, &mut h);
        src.set_trim_slack(slack);
        let mut keep: KeepFree<_, 8> = KeepFree::new(src, Size(PAGE));
        let mut got = vec![];
        for i in 0..8 {
            got.push(keep.import(Size((PER + 3 * i) * PAGE), Size(PAGE)).unwrap());
        }
        for r in got {
            keep.release(r).unwrap();
        }
        assert_eq!(trimmable(keep.inner()), 0, "all kept: still mapped");
        keep.trim();
        keep.check().unwrap();
        keep.inner().check().unwrap();
        assert_eq!(keep.inner().vm().mapped(), Size(0));
        assert_eq!(true_empty(keep.inner().vm(), &sim), trimmable(keep.inner()));
        assert!(trimmable(keep.inner()) <= slack, "slack {slack}: {}", trimmable(keep.inner()));
    }
}

/// "An import whose map fails trims what the failure left": at every
/// fault position of an import spanning fresh bit-table pages.
#[test]
fn a_failed_import_leaves_nothing_recording_nothing() {
    for n in 1..=5u64 {
        for kinds in [&[Op::Map][..], &[Op::Map, Op::Unmap]] {
            let mut buf = vec![0u8; 8 << 20];
            let sim = SimBackend::new(&mut buf, PAGE).unwrap();
            let faulty = FaultInjector::new(&sim);
            let (mut t, mut h) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
            let mut src = source(&faulty, 8 * PER, &mut t, &mut h);
            src.set_trim_slack(usize::MAX);
            faulty.only(kinds);
            faulty.fail_nth(n);
            let res = src.import(Size(3 * PER * PAGE), Size(PAGE));
            let injected = faulty.injected() as usize;
            faulty.clear();
            src.check().unwrap();
            assert_eq!(true_empty(src.vm(), &sim), trimmable(&src));
            let ctx = format!("n {n} kinds {kinds:?}");
            match res {
                Ok(_) => assert_eq!(injected, 0, "{ctx}"),
                Err(_) => {
                    assert_eq!(src.vm().mapped(), Size(0), "{ctx}");
                    // Only a page whose give-back itself failed may stay.
                    let unmap_failed = usize::from(kinds.len() == 2 && injected == 1 && n > 1);
                    assert!(trimmable(&src) <= unmap_failed, "{ctx}: {}", trimmable(&src));
                }
            }
        }
    }
}

/// Random imports and give-backs with clean random faults of map and
/// unmap: a refused give-back (or import) leaves what is mapped and what
/// records nothing as it was but for pages whose own unmap failed, and
/// the VM's count agrees with the backend after every step.
#[test]
fn random_faults_keep_the_count_exact() {
    for seed in 0..6u64 {
        let mut buf = vec![0u8; 8 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let faulty = FaultInjector::new(&sim);
        let (mut t, mut h) = (vec![0u8; 256 << 10], vec![0u8; 64 << 10]);
        let mut src = source(&faulty, 12 * PER + 100, &mut t, &mut h);
        let mut rng = Rng::new(0x0727_0f00 + seed);
        src.set_flush_threshold([0, 2, 50][seed as usize % 3]).unwrap();
        src.set_trim_slack([0, 1, 4][seed as usize % 3]);
        let mut live: Vec<Range> = vec![];
        for step in 0..300 {
            let ctx = format!("seed {seed} step {step}");
            faulty.only(&[Op::Map, Op::Unmap]);
            faulty.fail_randomly(seed << 20 | step, 150_000);
            let before = (src.vm().mapped(), trimmable(&src), faulty.injected());
            if live.is_empty() || rng.chance(500) {
                let size = rng.between(1, 2 * PER) * PAGE;
                match src.import(Size(size), Size(PAGE)) {
                    Ok(r) => live.push(r),
                    Err(_) => {
                        let failed = (faulty.injected() - before.2) as usize;
                        assert_eq!(src.vm().mapped(), before.0, "{ctx}");
                        assert!(trimmable(&src) <= before.1 + failed.saturating_sub(1), "{ctx}");
                    }
                }
            } else {
                let i = rng.below(live.len());
                let r = live[i];
                let res = if rng.chance(300) {
                    Source::release_unflushed(&mut src, r)
                } else {
                    src.release(r)
                };
                if res.is_ok() {
                    live.swap_remove(i);
                } else {
                    assert_eq!((src.vm().mapped(), trimmable(&src)), (before.0, before.1), "{ctx}");
                }
            }
            faulty.clear();
            src.check().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
            assert_eq!(true_empty(src.vm(), &sim), trimmable(&src), "{ctx}");
        }
        for r in live {
            src.release(r).unwrap();
        }
        let left = trimmable(&src);
        assert_eq!(src.trim(), Ok(left));
        let vm = src.into_vm().unwrap_or_else(|_| panic!("into_vm"));
        assert_eq!(vm.metadata_trimmable(), Size(0));
        vm.check().unwrap();
    }
}
