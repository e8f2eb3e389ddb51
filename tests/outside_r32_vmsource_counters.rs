//! Outside review, round 32: an arena importing from a `VmSource`, its
//! counters and sizes held to the docs with a backend fault injected at
//! every call position of a fixed sequence (cleanly, part way, and with
//! the put-back protect failing too, so give-backs are refused or
//! stranded).
//!
//! Contracts: `Counters` (src/arena/stats.rs:29) "They only ever
//! increase", `allocs` "Successful allocations", `frees` "Successful
//! frees", `failures` (failed alloc, xalloc, ... calls), `bad_frees`
//! "Frees refused as bad", `imports` "Spans imported from the source",
//! `exports` "Imported spans given back", `export_failures` "Give-backs the
//! source refused (the span stayed, free), or could neither take nor put
//! back (Stranded: the span was dropped, left with the source)";
//! `Sizes::imported` "In imported spans"; README: "one the source can
//! neither take nor put back (`ArenaError::Stranded`) is dropped from the
//! arena and stays with the source, never handed out again";
//! `VmSource::check` "that what is mapped is exactly what is handed out".
//! So after every step: the child's own counters move exactly as its
//! calls succeed or fail; imports - exports is the number of ranges the
//! source still has handed out (the child's imported spans plus the
//! stranded ones, which the source keeps); every imported span of the
//! child is one of those ranges, exactly; `sizes().imported` is their sum;
//! both `check()`s pass.

use std::collections::BTreeMap;

use vmspace::arena::{ArenaError, Counters, Policy, SegmentKinds};
use vmspace::Size;
use vmspace_shim::{FaultShape, Op};

mod outside_stacked_sources;
use outside_stacked_sources::{importer, stacked, PAGE};

#[derive(Clone, Copy, Debug)]
enum Step {
    Alloc(usize, Policy),
    Free(usize),
    FreeDeferred(usize),
    FreePart(usize),
    Flushed,
    BadFree(usize),
    SourceFlush,
}

fn script() -> Vec<Step> {
    let mut r = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    (0..90)
        .map(|_| match next() % 12 {
            0..=4 => Step::Alloc(
                1 + (next() % (6 * PAGE as u64)) as usize,
                [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit]
                    [(next() % 4) as usize],
            ),
            5 | 6 => Step::Free(next() as usize),
            7 => Step::FreeDeferred(next() as usize),
            8 => Step::FreePart(next() as usize),
            9 => Step::Flushed,
            10 => Step::BadFree(next() as usize),
            _ => Step::SourceFlush,
        })
        .collect()
}

/// Runs the script with the `n`th backend call failing (0: none) in the
/// given way; returns the eligible calls the run made, and whether
/// anything was stranded or refused.
fn run(n: u64, mode: u8, batch: usize) -> (u64, u64, u64, bool) {
    stacked!(let sim, inner, outer, mut src = 4 << 20, 0, 96 * PAGE);
    src.set_flush_threshold(batch).unwrap();
    match mode {
        1 => outer.set_shape(FaultShape::PartWay),
        2 => {
            outer.set_shape(FaultShape::PartWay);
            inner.only(&[Op::Protect]);
            inner.fail_randomly(n, 500_000);
        }
        _ => {}
    }
    outer.fail_nth(n);
    importer!(let mut a = &mut src, 1 << 16, 1 << 12);
    let mut live: BTreeMap<usize, usize> = BTreeMap::new();
    let mut m = Counters::default();
    let mut last = Counters::default();
    let mut stranded = false;
    for (i, step) in script().into_iter().enumerate() {
        let what = format!("fault {n} mode {mode} batch {batch} step {i} {step:?}");
        let pick = |k: usize, live: &BTreeMap<usize, usize>| {
            (!live.is_empty()).then(|| {
                let (&x, &s) = live.iter().nth(k % live.len()).unwrap();
                (x, s)
            })
        };
        match step {
            Step::Alloc(s, p) => match a.alloc(Size(s), p) {
                Ok(x) => {
                    m.allocs += 1;
                    live.insert(x.0, s);
                }
                Err(ArenaError::BadFree { .. }) => panic!("{what}"),
                Err(_) => m.failures += 1,
            },
            Step::Free(k) | Step::FreeDeferred(k) => {
                if let Some((x, s)) = pick(k, &live) {
                    let deferred = matches!(step, Step::FreeDeferred(_));
                    let r = if deferred {
                        a.free_deferred(vmspace::Addr(x), Size(s))
                    } else {
                        a.free(vmspace::Addr(x), Size(s))
                    };
                    assert_eq!(r, Ok(()), "{what}: a free never fails for its source's sake");
                    live.remove(&x);
                    m.frees += 1;
                    if deferred {
                        m.deferred_frees += 1;
                    }
                }
            }
            Step::FreePart(k) => {
                if let Some((x, s)) = pick(k, &live) {
                    if s > PAGE {
                        // The tail page(s) past the first: a partial free.
                        match a.free_part(vmspace::Addr(x), Size(PAGE), Size(s - PAGE)) {
                            Ok(()) => {
                                live.insert(x, PAGE);
                            }
                            Err(ArenaError::BadFree { .. }) => panic!("{what}"),
                            Err(_) => m.failures += 1,
                        }
                    }
                }
            }
            Step::Flushed => {
                if !a.flushed().is_zero() {
                    m.flushes += 1;
                }
            }
            Step::BadFree(k) => {
                if let Some((x, s)) = pick(k, &live) {
                    assert!(a.free(vmspace::Addr(x), Size(s + PAGE)).is_err(), "{what}");
                    m.bad_frees += 1;
                }
            }
            Step::SourceFlush => {
                a.source_mut().flush();
            }
        }
        a.check().unwrap_or_else(|e| panic!("{what}: child check {e:?}"));
        let src = &**a.source();
        src.check().unwrap_or_else(|e| panic!("{what}: source check {e:?}"));
        let c = a.counters();
        assert_eq!(
            (c.allocs, c.frees, c.failures, c.bad_frees, c.deferred_frees, c.flushes),
            (m.allocs, m.frees, m.failures, m.bad_frees, m.deferred_frees, m.flushes),
            "{what}: (allocs, frees, failures, bad_frees, deferred_frees, flushes)"
        );
        for (name, now, was) in [
            ("imports", c.imports, last.imports),
            ("exports", c.exports, last.exports),
            ("export_failures", c.export_failures, last.export_failures),
            ("search_steps", c.search_steps, last.search_steps),
            ("lookups", c.lookups, last.lookups),
        ] {
            assert!(now >= was, "{what}: {name} went down {was} -> {now}");
        }
        last = c;
        let imported: BTreeMap<usize, usize> = a
            .walk(SegmentKinds::SPANS)
            .filter(|s| s.imported)
            .map(|s| (s.range.base().0, s.range.size().0))
            .collect();
        let handed: BTreeMap<usize, usize> = src
            .space()
            .walk(SegmentKinds::ALLOCATED)
            .map(|s| (s.range.base().0, s.range.size().0))
            .collect();
        for (b, s) in &imported {
            assert_eq!(handed.get(b), Some(s), "{what}: imported span {b:#x} not handed out whole");
        }
        assert_eq!(
            c.imports - c.exports,
            handed.len() as u64,
            "{what}: imports - exports vs ranges the source has out ({} the child's, the rest stranded) {c:?}",
            imported.len()
        );
        assert_eq!(
            a.sizes().imported.0,
            imported.values().sum::<usize>(),
            "{what}: sizes().imported"
        );
        assert_eq!(a.span_count(), imported.len(), "{what}: span_count()");
        stranded |= handed.len() > imported.len();
        let alloc: usize = live.values().map(|s| s.div_ceil(PAGE) * PAGE).sum();
        assert_eq!(a.sizes().allocated.0, alloc, "{what}: sizes().allocated");
        assert_eq!(a.live(), live.len(), "{what}: live()");
    }
    let stranded_or_refused = a.counters().export_failures;
    drop(a);
    let _ = sim;
    (outer.eligible_calls(), stranded_or_refused, outer.injected(), stranded)
}

#[test]
fn a_fault_at_every_position_keeps_the_counters_exact() {
    for batch in [0usize, 3] {
        let (calls, _, _, _) = run(0, 0, batch);
        assert!(calls > 20, "the script makes backend calls: {calls}");
        let mut export_failures = 0;
        let mut injected = 0;
        let mut any_stranded = false;
        for n in 1..=calls {
            for mode in 0..3 {
                let (_, e, i, st) = run(n, mode, batch);
                any_stranded |= st;
                export_failures += e;
                injected += i;
            }
        }
        assert!(injected > calls, "faults were injected: {injected}");
        assert!(export_failures > 0, "some give-back failed (batch {batch})");
        assert!(any_stranded, "some give-back was stranded (batch {batch})");
    }
}
