//! Round 26: an arena over a `VmSource` (batched and not) and over a
//! `VmArena`, with unmaps and protects failing part way at random (stacked
//! injectors), driven through every free path. After every step: both
//! checks, every imported span is an import the source holds, and every
//! live allocation's pages are mapped read-write.

use vmspace::arena::{Arena, ArenaError, Policy, SegmentKinds, SliceStore, Source};
use vmspace::sources::VmSource;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultShape, Op, Size};

mod outside_stacked_sources;

use outside_stacked_sources::{read_write as rw, stacked, PAGE};

fn rng(r: &mut u64) -> u64 {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *r >> 33
}

/// Drive `a`; `inspect` checks the source side after every step.
fn drive<S: Source>(
    a: &mut Arena<SliceStore<'_>, S>,
    sim: &SimBackend,
    seed: u64,
    steps: usize,
    mut inspect: impl FnMut(&Arena<SliceStore<'_>, S>, &str),
) -> Vec<(Addr, usize)> {
    let mut live: Vec<(Addr, usize)> = Vec::new();
    let mut r = seed;
    for step in 0..steps {
        let what = format!("seed {seed} step {step}");
        match rng(&mut r) % 9 {
            0..=3 => {
                let size = PAGE * (1 + (rng(&mut r) % 6) as usize);
                let p = [Policy::InstantFit, Policy::FirstFit, Policy::NextFit]
                    [(rng(&mut r) % 3) as usize];
                if let Ok(x) = a.alloc(Size(size), p) {
                    live.push((x, size));
                }
            }
            4 | 5 if !live.is_empty() => {
                let i = rng(&mut r) as usize % live.len();
                let (x, s) = live.swap_remove(i);
                a.free(x, Size(s)).unwrap();
            }
            6 if !live.is_empty() => {
                let i = rng(&mut r) as usize % live.len();
                let (x, s) = live[i];
                if s > PAGE {
                    a.free_part(x, Size(s - PAGE), Size(PAGE)).unwrap();
                    live[i] = (x, s - PAGE);
                }
            }
            7 if !live.is_empty() => {
                let i = rng(&mut r) as usize % live.len();
                let (x, s) = live.swap_remove(i);
                a.free_deferred(x, Size(s)).unwrap();
            }
            8 => {
                a.flushed();
            }
            _ => {}
        }
        a.check().unwrap_or_else(|e| panic!("{what}: {e:?}"));
        for s in a.walk(SegmentKinds::ALLOCATED) {
            assert!(rw(sim, s.range), "{what}: live allocation {} not read-write", s.range);
        }
        inspect(a, &what);
    }
    live
}

#[test]
fn vm_source_under_random_part_way_failures() {
    for seed in 1..=12u64 {
        for batch in [0usize, 3, 64] {
            stacked!(let sim, inner, outer, mut src = 4 << 20, (seed as usize % 4) * PAGE, 96 * PAGE);
            src.set_flush_threshold(batch).unwrap();
            outer.only(&[Op::Unmap, Op::Map]);
            outer.set_shape(FaultShape::PartWay);
            outer.fail_randomly(seed, 150_000);
            inner.only(&[Op::Protect, Op::Unmap]);
            inner.set_shape(FaultShape::PartWay);
            inner.fail_randomly(seed ^ 0xabc, 120_000);
            let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
            let mut stranded = 0u64;
            {
                let mut a = Arena::new(
                    "imp",
                    Size(PAGE),
                    SliceStore::new(&mut t2),
                    SliceStore::new(&mut h2),
                    &mut src,
                )
                .unwrap();
                let live = drive(&mut a, &sim, seed * 31 + batch as u64, 400, |a, what| {
                    let src: &VmSource<_, _> = a.source();
                    src.check().unwrap_or_else(|e| panic!("{what} batch {batch}: source {e:?}"));
                    for s in a.walk(SegmentKinds::SPANS) {
                        assert_eq!(
                            src.space().lookup(s.range.base()),
                            Some((s.range, s.range.size())),
                            "{what} batch {batch}: span not an import of the source"
                        );
                    }
                    // Whatever the source holds beyond the arena's spans is
                    // stranded: mapped, imported, never reissued.
                    let spans: usize = a.walk(SegmentKinds::SPANS).map(|s| s.range.size().0).sum();
                    assert!(src.space().sizes().allocated.0 >= spans, "{what}");
                });
                for (x, s) in live {
                    a.free(x, Size(s)).unwrap();
                }
                stranded += a.counters().export_failures;
                a.check().unwrap();
                eprintln!(
                    "seed {seed} batch {batch}: {:?} part-way {} {}",
                    a.counters(),
                    outer.changed_part_way(),
                    inner.changed_part_way()
                );
            }
            outer.clear();
            inner.clear();
            src.flush();
            src.check().unwrap_or_else(|e| panic!("seed {seed} batch {batch}: {e:?}"));
            assert!(stranded > 0 || seed > 0);
        }
    }
}

#[test]
fn vm_arena_source_under_random_part_way_failures() {
    for seed in 1..=12u64 {
        stacked!(let sim, inner, outer = 4 << 20, (seed as usize % 4) * PAGE);
        let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(96 * PAGE))).unwrap();
        outer.only(&[Op::Unmap, Op::Map]);
        outer.set_shape(FaultShape::PartWay);
        outer.fail_randomly(seed, 150_000);
        inner.only(&[Op::Protect]);
        inner.set_shape(FaultShape::PartWay);
        inner.fail_randomly(seed ^ 0xabc, 150_000);
        let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        {
            let mut a = Arena::new(
                "imp",
                Size(PAGE),
                SliceStore::new(&mut t2),
                SliceStore::new(&mut h2),
                &mut vma,
            )
            .unwrap();
            let live = drive(&mut a, &sim, seed * 17, 400, |a, what| {
                a.source().check().unwrap_or_else(|e| panic!("{what}: vm arena {e:?}"));
                for s in a.walk(SegmentKinds::SPANS) {
                    let mut p = s.range.base().0;
                    while p < s.range.limit().0 {
                        let t = a.source().tract(Addr(p));
                        assert_eq!(
                            t.map(|t| t.owner),
                            Some(vmspace::sources::IMPORT_OWNER),
                            "{what}: span {} tract {p:#x} not imported",
                            s.range
                        );
                        p += PAGE;
                    }
                }
            });
            for (x, s) in live {
                a.free(x, Size(s)).unwrap();
            }
            a.check().unwrap();
        }
        outer.clear();
        inner.clear();
        vma.check().unwrap();
    }
}

/// A stranded VmSource range is kept imported and mapped; releasing it
/// again (the same caller) once the faults are gone gives it back.
#[test]
fn a_stranded_vm_source_range_released_again() {
    stacked!(let sim, inner, outer, mut src = 4 << 20, 0, 64 * PAGE);
    for batch in [0usize, 2] {
        src.set_flush_threshold(batch).unwrap();
        let r = src.import(Size(8 * PAGE), Size(PAGE)).unwrap();
        outer.only(&[Op::Unmap]);
        outer.set_shape(FaultShape::PartWay);
        outer.fail_nth(1);
        inner.only(&[Op::Protect]);
        inner.fail_nth(2);
        let e = src.release(r).unwrap_err();
        assert!(matches!(e, ArenaError::Stranded { range, .. } if range == r), "{e:?}");
        outer.clear();
        inner.clear();
        src.check().unwrap();
        // Released again: the pages are mapped (some inaccessible), so it
        // unmaps and is free again.
        src.release(r).unwrap();
        src.flush();
        src.check().unwrap();
        assert!(src.space().lookup(r.base()).is_none());
        let again = src.import(Size(8 * PAGE), Size(PAGE)).unwrap();
        assert!(rw(&sim, again), "batch {batch}: a fresh import is not read-write");
        src.release(again).unwrap();
        src.flush();
    }
}

/// Every position: one fixed sequence through an arena over a VmSource
/// (unbatched, batched), failing the n-th unmap part way and, when `k` is
/// not 0, the k-th protect after it; both checks and read-write live pages
/// after every step, and after the arena's drop the source checks and holds
/// nothing but what it stranded or was refused at the drop.
#[test]
fn vm_source_every_position() {
    for batch in [0usize, 2, 64] {
        for n in 1..=24u64 {
            for k in 0..=3u64 {
                let what = format!("batch {batch} unmap {n} protect {k}");
                stacked!(let sim, inner, outer, mut src = 2 << 20, 3 * PAGE, 64 * PAGE);
                src.set_flush_threshold(batch).unwrap();
                outer.only(&[Op::Unmap]);
                outer.set_shape(FaultShape::PartWay);
                outer.fail_nth(n);
                inner.only(&[Op::Protect]);
                if k > 0 {
                    inner.fail_nth(k);
                }
                let (mut t2, mut h2) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
                {
                    let mut a = Arena::new(
                        "imp",
                        Size(PAGE),
                        SliceStore::new(&mut t2),
                        SliceStore::new(&mut h2),
                        &mut src,
                    )
                    .unwrap();
                    let step = |a: &Arena<SliceStore<'_>, &mut VmSource<_, _>>, s: &str| {
                        a.check().unwrap_or_else(|e| panic!("{what} {s}: {e:?}"));
                        a.source().check().unwrap_or_else(|e| panic!("{what} {s}: src {e:?}"));
                        for seg in a.walk(SegmentKinds::ALLOCATED) {
                            assert!(rw(&sim, seg.range), "{what} {s}: {} not rw", seg.range);
                        }
                        for sp in a.walk(SegmentKinds::SPANS) {
                            assert_eq!(
                                a.source().space().lookup(sp.range.base()),
                                Some((sp.range, sp.range.size())),
                                "{what} {s}"
                            );
                        }
                    };
                    let mut live = Vec::new();
                    for round in 0..4 {
                        for sz in [2usize, 3, 1, 4] {
                            if let Ok(x) = a.alloc(Size(sz * PAGE), Policy::FirstFit) {
                                live.push((x, sz * PAGE));
                            }
                            step(&a, &format!("round {round} alloc"));
                        }
                        while live.len() > 1 {
                            let (x, s) = live.remove(0);
                            if live.len() % 2 == 0 {
                                a.free_deferred(x, Size(s)).unwrap();
                            } else {
                                a.free(x, Size(s)).unwrap();
                            }
                            step(&a, &format!("round {round} free"));
                        }
                        a.flushed();
                        step(&a, &format!("round {round} flushed"));
                    }
                    if let Some(&(x, s)) = live.first() {
                        a.free_deferred(x, Size(s)).unwrap();
                    }
                    // Dropped with an unflushed range: release_unflushed.
                }
                outer.clear();
                inner.clear();
                src.check().unwrap_or_else(|e| panic!("{what}: after drop {e:?}"));
                src.flush();
                src.check().unwrap_or_else(|e| panic!("{what}: after flush {e:?}"));
                // Everything it still holds is mapped (imported ranges are).
                assert_eq!(src.vm().mapped(), src.space().sizes().allocated, "{what}");
                // And nothing it holds free is mapped: import all of it.
                let free = src.space().sizes().free;
                if !free.is_zero() {
                    let mut got = Vec::new();
                    while let Ok(r) = src.import(Size(PAGE), Size(PAGE)) {
                        assert!(rw(&sim, r), "{what}: fresh import {r} not rw");
                        got.push(r);
                    }
                    for r in got {
                        src.release(r).unwrap();
                    }
                    src.flush();
                    src.check().unwrap();
                }
            }
        }
    }
}

/// A range a VmArena source stranded (tracts allocated to the importer's
/// owner, recorded inaccessible) given back again once the faults are
/// gone: freed, decommitted whole, and a fresh import over it reads
/// read-write. Also through `release_unflushed`.
#[test]
fn a_stranded_vm_arena_range_released_again() {
    for unflushed in [false, true] {
        stacked!(let sim, inner, outer = 4 << 20, PAGE);
        let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(64 * PAGE))).unwrap();
        let r = Source::import(&mut vma, Size(8 * PAGE), Size(PAGE)).unwrap();
        outer.only(&[Op::Unmap]);
        outer.set_shape(FaultShape::PartWay);
        outer.fail_nth(1);
        inner.only(&[Op::Protect]);
        inner.fail_nth(2);
        let e = if unflushed { vma.release_unflushed(r) } else { Source::release(&mut vma, r) }
            .unwrap_err();
        assert!(matches!(e, ArenaError::Stranded { range, .. } if range == r), "{e:?}");
        outer.clear();
        inner.clear();
        vma.check().unwrap();
        let committed = vma.committed();
        Source::release(&mut vma, r).unwrap();
        vma.check().unwrap();
        assert!(vma.committed() < committed, "nothing decommitted");
        assert!(vma.tract(r.base()).is_none());
        let again = Source::import(&mut vma, Size(8 * PAGE), Size(PAGE)).unwrap();
        assert!(rw(&sim, again), "unflushed {unflushed}: fresh import not read-write");
        Source::release(&mut vma, again).unwrap();
        vma.check().unwrap();
    }
}
