//! Round 28 (outside reviewer): give-backs that fail part way, at random
//! positions, through both sources over memory (`VmSource` unbatched and
//! batched, `VmArena`): after every step the importer's and the source's
//! `check()` pass, no live allocation overlaps another, and every page of
//! every live allocation is read-write (no inaccessible page handed out).
//! Faults are injected in every backend call (map, protect, unmap) by two
//! stacked injectors, so put-backs fail too (`Stranded`).

use std::cell::RefCell;

use vmspace::arena::{Arena, Policy};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, FaultInjector, FaultShape, PageOps, Range, Size};

mod outside_common;
mod outside_stacked_sources;

use outside_common::Rng;
use outside_stacked_sources::{importer, read_write, stacked, PAGE};

thread_local! {
    /// (part-way failures, export failures, exports) over this thread's runs.
    static TOTALS: RefCell<(u64, u64, u64)> = const { RefCell::new((0, 0, 0)) };
}

fn reached(what: &str) {
    let t = TOTALS.with(|t| *t.borrow());
    println!("{what}: part-way failures {}, export failures {}, exports {}", t.0, t.1, t.2);
    assert!(t.0 > 0 && t.1 > 0 && t.2 > 0, "{what}: the failure paths were not reached: {t:?}");
}

/// `sim`, `inner`, `outer` as `stacked!` makes them, and `src`, a
/// `RefCell` holding a `VmSource` over a `Vm` of `pages` pages reserved
/// through `outer` (on stores of 64 and 16 KiB), with the flush threshold
/// `batch` if given.
macro_rules! vm_source {
    (let $sim:ident, $inner:ident, $outer:ident, $src:ident = $bytes:expr, $offset:expr, $pages:expr, $batch:expr) => {
        stacked!(let $sim, $inner, $outer, mut src = $bytes, $offset, $pages * PAGE, stores 64 << 10, 16 << 10);
        if let Some(batch) = $batch {
            src.set_flush_threshold(batch).unwrap();
        }
        let $src = RefCell::new(src);
    };
}

/// The check of what `cell` holds, for `drive` and `script`: an error if
/// it is borrowed or its `check()` fails.
fn check_in<T, E: std::fmt::Debug>(
    cell: &RefCell<T>,
    check: impl FnOnce(&T) -> Result<(), E>,
) -> Result<(), String> {
    check(&*cell.try_borrow().map_err(|e| format!("{e}"))?).map_err(|e| format!("{e:?}"))
}

/// One run of random traffic over an arena importing from `source`, on a
/// tag store of `tags` bytes (when it is tight, span re-creation after a
/// refused give-back may fail, and the span is then lost, never reissued).
/// `check_source` checks the source between steps.
#[allow(clippy::too_many_arguments)]
fn drive<S: vmspace::arena::Source, A: PageOps, B: PageOps>(
    source: S,
    sim: &SimBackend,
    outer: &FaultInjector<A>,
    inner: &FaultInjector<B>,
    seed: u64,
    steps: usize,
    check_source: &dyn Fn() -> Result<(), String>,
    what: &str,
    tags: usize,
) {
    importer!(let mut a = source, tags, 16 << 10);
    let mut rng = Rng(seed | 1);
    outer.set_shape(FaultShape::PartWay);
    inner.set_shape(FaultShape::PartWay);
    outer.fail_randomly(seed, 120_000);
    inner.fail_randomly(seed.wrapping_mul(31), 60_000);
    let mut live: Vec<(Addr, Size)> = Vec::new();
    let mut deferred = 0usize;
    for step in 0..steps {
        let op = rng.below(10);
        let ctx = format!("{what} seed {seed} step {step} op {op}");
        match op {
            0..=4 => {
                let size = Size(PAGE * (1 + rng.below(12) as usize));
                if let Ok(x) = a.alloc(size, Policy::InstantFit) {
                    let r = Range::from_size(x, size).unwrap();
                    for &(y, s) in &live {
                        let o = Range::from_size(y, s).unwrap();
                        assert!(!o.overlaps(&r), "{ctx}: {r:?} handed out over live {o:?}");
                    }
                    live.push((x, size));
                }
            }
            5..=7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (x, s) = live.swap_remove(i);
                a.free(x, s).unwrap_or_else(|e| panic!("{ctx}: free {e:?}"));
            }
            8 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (x, s) = live.swap_remove(i);
                a.free_deferred(x, s).unwrap_or_else(|e| panic!("{ctx}: free_deferred {e:?}"));
                deferred += 1;
            }
            _ => {
                if deferred > 0 {
                    a.flushed();
                    deferred = 0;
                }
            }
        }
        a.check().unwrap_or_else(|e| panic!("{ctx}: arena check {e:?}"));
        check_source().unwrap_or_else(|e| panic!("{ctx}: source check {e}"));
        for &(y, s) in &live {
            let r = Range::from_size(y, s).unwrap();
            assert!(read_write(sim, r), "{ctx}: live {r:?} not all read-write");
        }
    }
    let c = a.counters();
    TOTALS.with(|t| {
        let mut t = t.borrow_mut();
        t.0 += outer.changed_part_way() + inner.changed_part_way();
        t.1 += c.export_failures;
        t.2 += c.exports;
    });
    outer.clear();
    inner.clear();
    for (x, s) in live.drain(..) {
        a.free(x, s).unwrap();
    }
    a.flushed();
    a.check().unwrap();
    // Drop gives the rest back (release / release_unflushed).
    drop(a);
    check_source().unwrap_or_else(|e| panic!("{what} seed {seed}: source check after drop {e}"));
}

#[test]
fn arena_over_vm_source_random_part_way_faults() {
    for batch in [0usize, 1, 8, 64] {
        for seed in 1..=40u64 {
            let what = format!("VmSource batch {batch}");
            vm_source!(let sim, inner, outer, src = 4 << 20, (seed as usize % 3) * PAGE, 256, Some(batch));
            let check = || check_in(&src, |x| x.check());
            drive(&src, &sim, &outer, &inner, seed, 300, &check, &what, 64 << 10);
            // Whatever the source still holds imported is mapped read-write
            // or stranded; nothing it holds free is mapped.
            let s = src.borrow();
            s.check().unwrap();
        }
    }
    reached("VmSource");
}

#[test]
fn arena_over_vm_arena_random_part_way_faults() {
    for spare in [0usize, 4, 64] {
        for seed in 1..=40u64 {
            let what = format!("VmArena spare {spare}");
            stacked!(let sim, inner, outer = 4 << 20, (seed as usize % 3) * PAGE);
            let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(256 * PAGE))).unwrap();
            vma.set_spare_limit(spare).unwrap();
            let vma = RefCell::new(vma);
            let check = || check_in(&vma, |x| x.check());
            drive(&vma, &sim, &outer, &inner, seed, 300, &check, &what, 64 << 10);
        }
    }
    reached("VmArena");
}

/// A fixed script (imports, frees giving spans back, deferred frees and a
/// flush, re-imports) with the `n`th backend call of the outer injector
/// failing part way and the `m`th protect of the inner one failing too
/// (put-backs), for every `n` and `m` up to the script's length: the same
/// checks as `drive` after every step.
#[allow(clippy::too_many_arguments)]
fn script<S: vmspace::arena::Source, A: PageOps, B: PageOps>(
    source: S,
    sim: &SimBackend,
    outer: &FaultInjector<A>,
    inner: &FaultInjector<B>,
    n: u64,
    m: u64,
    check_source: &dyn Fn() -> Result<(), String>,
    what: &str,
) -> u64 {
    importer!(let mut a = source, 64 << 10, 16 << 10);
    outer.set_shape(FaultShape::PartWay);
    inner.set_shape(FaultShape::PartWay);
    inner.only(&[vmspace_shim::Op::Protect]);
    outer.fail_nth(n);
    inner.fail_nth(m);
    let mut live: Vec<(Addr, Size)> = Vec::new();
    let sizes = [3usize, 8, 1, 16, 5, 2, 9, 4];
    let ctx = |s: usize| format!("{what} n {n} m {m} step {s}");
    let mut step = 0;
    let after = |a: &mut Arena<_, S>, live: &Vec<(Addr, Size)>, step: &mut usize| {
        *step += 1;
        a.check().unwrap_or_else(|e| panic!("{}: arena check {e:?}", ctx(*step)));
        check_source().unwrap_or_else(|e| panic!("{}: source check {e}", ctx(*step)));
        for (i, &(y, s)) in live.iter().enumerate() {
            let r = Range::from_size(y, s).unwrap();
            assert!(read_write(sim, r), "{}: live {r:?} not all read-write", ctx(*step));
            for &(z, u) in &live[i + 1..] {
                let o = Range::from_size(z, u).unwrap();
                assert!(!o.overlaps(&r), "{}: {r:?} and {o:?} both live", ctx(*step));
            }
        }
    };
    for round in 0..3 {
        for (k, &pages) in sizes.iter().enumerate() {
            if let Ok(x) = a.alloc(Size(pages * PAGE), Policy::InstantFit) {
                live.push((x, Size(pages * PAGE)));
            }
            after(&mut a, &live, &mut step);
            if k % 3 == 2 && !live.is_empty() {
                let (x, s) = live.remove(0);
                if round == 1 {
                    a.free_deferred(x, s).unwrap();
                } else {
                    a.free(x, s).unwrap();
                }
                after(&mut a, &live, &mut step);
            }
        }
        a.flushed();
        after(&mut a, &live, &mut step);
        while let Some((x, s)) = live.pop() {
            a.free(x, s).unwrap();
            after(&mut a, &live, &mut step);
        }
    }
    let calls = outer.eligible_calls();
    outer.clear();
    inner.clear();
    drop(a);
    check_source().unwrap_or_else(|e| panic!("{what} n {n} m {m}: after drop {e}"));
    calls
}

#[test]
fn every_position_vm_source() {
    let mut max = u64::MAX;
    let mut n = 1;
    let mut strandings = 0;
    while n <= max {
        for m in [0u64, 1, 2, 3] {
            for batch in [0usize, 4] {
                let what = format!("VmSource batch {batch}");
                vm_source!(let sim, inner, outer, src = 2 << 20, 0, 128, Some(batch));
                let check = || check_in(&src, |x| x.check());
                let calls = script(&src, &sim, &outer, &inner, n, m, &check, &what);
                if m == 0 && batch == 0 && max == u64::MAX {
                    max = calls + 1;
                }
                strandings += u64::from(src.borrow().vm().mapped() != Size(0));
            }
        }
        n += 1;
    }
    println!(
        "every_position_vm_source: {max} positions, {strandings} runs left pages with the source"
    );
    assert!(max > 20);
}

#[test]
fn every_position_vm_arena() {
    let mut max = u64::MAX;
    let mut n = 1;
    while n <= max {
        for m in [0u64, 1, 2, 3] {
            for spare in [0usize, 8] {
                let what = format!("VmArena spare {spare}");
                stacked!(let sim, inner, outer = 2 << 20, 0);
                let mut vma = VmArena::new(&outer, VmArenaConfig::new(Size(128 * PAGE))).unwrap();
                vma.set_spare_limit(spare).unwrap();
                let vma = RefCell::new(vma);
                let check = || check_in(&vma, |x| x.check());
                let calls = script(&vma, &sim, &outer, &inner, n, m, &check, &what);
                if m == 0 && spare == 0 && max == u64::MAX {
                    max = calls + 1;
                }
            }
        }
        n += 1;
    }
    assert!(max > 20);
}

#[test]
fn tight_tags_vm_source_random_part_way_faults() {
    use vmspace::arena::{MIN_TAGS, TAG_BYTES};
    for tags in [MIN_TAGS * TAG_BYTES, (MIN_TAGS + 2) * TAG_BYTES, (MIN_TAGS + 6) * TAG_BYTES] {
        for seed in 1..=30u64 {
            let what = format!("VmSource tags {tags}");
            vm_source!(let sim, inner, outer, src = 4 << 20, 0, 256, None);
            let check = || check_in(&src, |x| x.check());
            drive(&src, &sim, &outer, &inner, seed, 300, &check, &what, tags);
        }
    }
}
