//! Written from the documented contracts by a reviewer outside the project,
//! to break them: three-level import chains arena over arena
//! over arena, with quantum mismatches in every direction, checked after
//! every step: each level's allocations are exactly the imported spans of
//! the level below, no wholly free imported span is kept, a failure is
//! NoSpace only when no level could have supplied the space, and dropping
//! the child gives everything back.

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, NoSource, Policy, SegmentKind, SegmentKinds,
    SliceStore, Source, Store,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng;

fn up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

fn frees<S: Store, I: Source>(a: &Arena<S, I>) -> Vec<(usize, usize)> {
    a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect()
}

fn imported_spans<S: Store, I: Source>(a: &Arena<S, I>) -> Vec<(usize, usize)> {
    a.walk(SegmentKinds::SPANS)
        .filter(|s| s.imported)
        .map(|s| (s.range.base().0, s.range.limit().0))
        .collect()
}

/// Whether some free segment of `free` holds `size` at a multiple of `align`
/// (plus `phase`) without crossing `nocross` (brute force by `step`).
fn any_fit(
    free: &[(usize, usize)],
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    step: usize,
) -> bool {
    let _ = step;
    free.iter().any(|&(s, e)| {
        let first =
            if s % align <= phase { s - s % align + phase } else { s - s % align + align + phase };
        (first..e)
            .step_by(align)
            .any(|t| t + size <= e && (nocross == 0 || t / nocross == (t + size - 1) / nocross))
    })
}

/// Invariants between an importing arena and its source arena.
fn check_pair<S: Store, I: Source, S2: Store, I2: Source>(
    child: &Arena<S, I>,
    parent: &Arena<S2, I2>,
    parent_direct: &BTreeMap<usize, usize>,
    what: &str,
) {
    child.check().unwrap_or_else(|e| panic!("{what}: child check {e:?}"));
    parent.check().unwrap_or_else(|e| panic!("{what}: parent check {e:?}"));
    let spans = imported_spans(child);
    // The parent's allocations: the child's imported spans and the direct ones.
    let mut want: Vec<(usize, usize)> = spans.clone();
    want.extend(parent_direct.iter().map(|(&a, &s)| (a, a + up(s, parent.quantum().0))));
    want.sort();
    let got: Vec<(usize, usize)> = parent
        .walk(SegmentKinds::ALLOCATED)
        .map(|s| (s.range.base().0, s.range.limit().0))
        .collect();
    assert_eq!(got, want, "{what}: parent's allocations vs child's imported spans");
    let imported: usize = spans.iter().map(|&(s, e)| e - s).sum();
    assert_eq!(child.sizes().imported.0, imported, "{what}: child sizes.imported");
    let c = child.counters();
    assert_eq!(c.imports - c.exports, spans.len() as u64, "{what}: imports - exports");
    // No imported span is wholly free (it would have been given back).
    let all: Vec<_> = child.walk(SegmentKinds::ALL).collect();
    for w in all.windows(2) {
        if w[0].kind == SegmentKind::Span && w[0].imported {
            assert!(
                !(w[1].kind == SegmentKind::Free && w[1].range == w[0].range),
                "{what}: wholly free imported span {:?} kept",
                w[0].range
            );
        }
    }
    let sz = child.sizes();
    assert_eq!(sz.total.0, sz.allocated.0 + sz.free.0 + sz.unflushed.0, "{what}: total");
}

#[derive(Clone, Copy, Debug)]
struct Live {
    size: usize,
    handle: Option<Handle>,
}

fn chain(qs: [usize; 3], seed: u64, steps: usize) {
    let [qc, qp, qg] = qs;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut bufs: Vec<Vec<u8>> =
        (0..6).map(|i| vec![0u8; if i % 2 == 0 { 1 << 18 } else { 1 << 14 }]).collect();
    let (b01, rest) = bufs.split_at_mut(2);
    let (b23, b45) = rest.split_at_mut(2);
    let (tg, hg) = b01.split_at_mut(1);
    let (tp, hp) = b23.split_at_mut(1);
    let (tc, hc) = b45.split_at_mut(1);
    let mut g = Arena::new(
        "g",
        Size(qg),
        SliceStore::new(&mut tg[0]),
        SliceStore::new(&mut hg[0]),
        NoSource,
    )
    .unwrap();
    // The grandparent: two spans, a few hundred KiB in all.
    let unit = qg.max(qp).max(qc).max(4096);
    g.add(Addr(unit * 16), Size(unit * (8 + rng.below(40) as usize))).unwrap();
    g.add(Addr(unit * 128), Size(unit * (4 + rng.below(20) as usize))).unwrap();
    let g_total = g.sizes().total;
    let mut p =
        Arena::new("p", Size(qp), SliceStore::new(&mut tp[0]), SliceStore::new(&mut hp[0]), &mut g)
            .unwrap();
    // The parent also has a span of its own, sometimes.
    let own = rng.chance(2);
    if own {
        p.add(Addr(unit * 1024), Size(unit * 2)).unwrap();
    }
    let mut c =
        Arena::new("c", Size(qc), SliceStore::new(&mut tc[0]), SliceStore::new(&mut hc[0]), &mut p)
            .unwrap();
    let mut live: BTreeMap<usize, Live> = BTreeMap::new();
    let mut p_direct: BTreeMap<usize, usize> = BTreeMap::new();
    let no_direct = BTreeMap::new();
    let mut oks = 0;
    let mut imports_seen = 0;
    for step in 0..steps {
        let what = format!("qs {qs:?} seed {seed} step {step}");
        let r = rng.below(12);
        if r < 4 && !live.is_empty() {
            let k = rng.below(live.len() as u64) as usize;
            let (&x, &l) = live.iter().nth(k).unwrap();
            match l.handle {
                None => c.free(Addr(x), Size(l.size)).unwrap(),
                Some(h) => assert_eq!(c.free_handle(h), Ok(Size(l.size))),
            }
            live.remove(&x);
        } else if r == 4 {
            // A direct allocation from the parent, or its free.
            let p = &mut **c.source_mut();
            if !p_direct.is_empty() && rng.chance(2) {
                let (&x, &s) = p_direct.iter().next().unwrap();
                p.free(Addr(x), Size(s)).unwrap();
                p_direct.remove(&x);
            } else if let Ok(x) =
                p.alloc(Size(1 + rng.below(3 * qp as u64) as usize), Policy::FirstFit)
            {
                let s = p.lookup(x).unwrap().1 .0;
                p_direct.insert(x.0, s);
            }
        } else {
            let big = rng.chance(3);
            let size = 1 + rng.below(if big { 20 * qc as u64 } else { 3 * qc as u64 }) as usize;
            let mut k = Constraints::new(Size(size))
                .policy(Policy::ALL[rng.below(4) as usize])
                .from_top(rng.chance(3));
            let mut align = qc;
            let mut phase = 0;
            let mut nocross = 0;
            if rng.chance(2) {
                align = qc << rng.below(14);
                k = k.align(Size(align));
                if rng.chance(2) {
                    phase = qc * rng.below((align / qc) as u64) as usize;
                    k = k.phase(Size(phase));
                }
            }
            if rng.chance(4) {
                nocross = (qc << rng.below(14)).max(qc);
                k = k.nocross(Size(nocross));
            }
            let Ok(req) = k.validate(qc) else {
                assert!(c.xalloc(&k).is_err());
                continue;
            };
            let rs = req.size().0;
            let before = (c.sizes(), c.walk(SegmentKinds::ALL).collect::<Vec<_>>());
            let pbefore = c.source().sizes();
            let gbefore = c.source().source().sizes();
            let imp = c.counters().imports;
            let held = rng.chance(3);
            let got = if held {
                c.xalloc_handle(&k).map(|h| (h.addr(), Some(h)))
            } else {
                c.xalloc(&k).map(|x| (x, None))
            };
            match got {
                Ok((x, h)) => {
                    assert_eq!(x.0 % align, phase % align, "{what}: align/phase");
                    assert_eq!(
                        x.0.checked_div(nocross),
                        (x.0 + rs - 1).checked_div(nocross),
                        "{what}: nocross"
                    );
                    live.insert(x.0, Live { size, handle: h });
                    oks += 1;
                    if c.counters().imports > imp {
                        imports_seen += 1;
                        // An import only when the child itself had no fit.
                        assert!(
                            !any_fit(
                                &frees_of_before(&before.1),
                                rs,
                                req.align().0,
                                req.phase().0,
                                nocross,
                                qc
                            ),
                            "{what}: imported although the child had a fit"
                        );
                    }
                }
                Err(e) => {
                    assert!(matches!(e, ArenaError::NoSpace { .. }), "{what}: {e:?} for {k:?}");
                    assert_eq!(c.sizes(), before.0, "{what}: failed xalloc changed the child");
                    assert_eq!(c.walk(SegmentKinds::ALL).collect::<Vec<_>>(), before.1);
                    assert_eq!(
                        c.source().sizes(),
                        pbefore,
                        "{what}: failed xalloc changed the parent"
                    );
                    assert_eq!(c.source().source().sizes(), gbefore, "{what}: ... the grandparent");
                    // Nothing anywhere could have given the space.
                    let (ra, rp) = (req.align().0, req.phase().0);
                    assert!(
                        !any_fit(&frees(&c), rs, ra, rp, nocross, qc),
                        "{what}: NoSpace with a fit in the child"
                    );
                    let qi = qc.max(qp);
                    let isize = up(rp + rs, qi);
                    let ialign = ra.max(qi).max(nocross);
                    let p = c.source();
                    assert!(
                        !any_fit(&frees(&**p), isize, ialign, 0, 0, qp),
                        "{what}: NoSpace although the parent could supply {isize:#x} at {ialign:#x}"
                    );
                    let qj = qp.max(qg);
                    let jsize = up(isize, qj);
                    let jalign = ialign.max(qj);
                    let g = p.source();
                    assert!(
                        !any_fit(&frees(&**g), jsize, jalign, 0, 0, qg),
                        "{what}: NoSpace although the grandparent could supply {jsize:#x} at {jalign:#x}"
                    );
                }
            }
        }
        check_pair(&c, &**c.source(), &p_direct, &format!("{what} (c/p)"));
        let p = &**c.source();
        check_pair(p, &**p.source(), &no_direct, &format!("{what} (p/g)"));
        assert_eq!(p.source().sizes().total, g_total, "{what}: grandparent total");
    }
    assert!(oks > steps / 10, "{qs:?} seed {seed}: only {oks} successes");
    assert!(imports_seen > 0 && c.counters().imports > 0, "{qs:?} seed {seed}: no imports");
    eprintln!(
        "{qs:?} seed {seed}: oks {oks} imports {} failures {}",
        c.counters().imports,
        c.counters().failures
    );
    // Free everything in the child: every imported span goes back up the
    // chain.
    for (x, l) in std::mem::take(&mut live) {
        match l.handle {
            None => c.free(Addr(x), Size(l.size)).unwrap(),
            Some(h) => assert_eq!(c.free_handle(h), Ok(Size(l.size))),
        }
    }
    assert_eq!(c.sizes().total, Size(0), "child holds nothing");
    assert_eq!(imported_spans(&c).len(), 0);
    for (x, s) in std::mem::take(&mut p_direct) {
        c.source_mut().free(Addr(x), Size(s)).unwrap();
    }
    let pr = &**c.source();
    assert_eq!(pr.sizes().allocated, Size(0));
    assert_eq!(pr.sizes().imported, Size(0), "parent gave its imports back");
    assert_eq!(pr.source().sizes().allocated, Size(0), "grandparent has nothing allocated");
    c.check().unwrap();
    drop(c);
    p.check().unwrap();
    assert_eq!(p.span_count(), usize::from(own));
    drop(p);
    assert_eq!(g.sizes().total, g_total);
    assert_eq!(g.sizes().free, g_total);
    g.check().unwrap();
}

fn frees_of_before(walk: &[vmspace::arena::Segment]) -> Vec<(usize, usize)> {
    walk.iter()
        .filter(|s| s.kind == SegmentKind::Free)
        .map(|s| (s.range.base().0, s.range.limit().0))
        .collect()
}

#[test]
fn chains_with_quantum_mismatches() {
    let combos = [
        [16, 256, 4096],
        [4096, 256, 16],
        [64, 64, 64],
        [1, 4096, 16],
        [4096, 1, 4096],
        [256, 16, 1],
    ];
    for (i, qs) in combos.into_iter().enumerate() {
        for seed in 0..12 {
            chain(qs, 1000 * i as u64 + seed, 250);
        }
    }
}

/// Dropping a child with live allocations gives every imported span back.
#[test]
fn dropping_the_child_releases_its_imports_up_the_chain() {
    let (mut tg, mut hg) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let (mut tp, mut hp) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let (mut tc, mut hc) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut g =
        Arena::new("g", Size(4096), SliceStore::new(&mut tg), SliceStore::new(&mut hg), NoSource)
            .unwrap();
    g.add(Addr(1 << 20), Size(1 << 20)).unwrap();
    {
        let mut p =
            Arena::new("p", Size(256), SliceStore::new(&mut tp), SliceStore::new(&mut hp), &mut g)
                .unwrap();
        {
            let mut c = Arena::new(
                "c",
                Size(16),
                SliceStore::new(&mut tc),
                SliceStore::new(&mut hc),
                &mut p,
            )
            .unwrap();
            for i in 0..50 {
                let k = Constraints::new(Size(16 + 100 * i)).align(Size(64 << (i % 8)));
                c.xalloc(&k).unwrap();
                c.alloc_handle(Size(4000), Policy::BestFit).unwrap();
            }
            c.check().unwrap();
            assert!(c.counters().imports > 0);
        }
        assert_eq!(p.sizes().allocated, Size(0), "child's drop freed its imports in p");
        assert_eq!(p.sizes().total, Size(0), "and p gave its own back");
        p.check().unwrap();
    }
    assert_eq!(g.sizes().allocated, Size(0));
    g.check().unwrap();
}

/// Parent exhaustion: the child's allocation fails with NoSpace and no
/// level changes; windowed requests never import (README: "does not import
/// (only unconstrained windows import)").
#[test]
fn parent_exhaustion_and_windowed_requests() {
    let (mut tp, mut hp) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let (mut tc, mut hc) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let mut p =
        Arena::new("p", Size(4096), SliceStore::new(&mut tp), SliceStore::new(&mut hp), NoSource)
            .unwrap();
    p.add(Addr(0x10_0000), Size(0x4000)).unwrap();
    let mut c =
        Arena::new("c", Size(16), SliceStore::new(&mut tc), SliceStore::new(&mut hc), &mut p)
            .unwrap();
    let a = c.alloc(Size(0x3000), Policy::InstantFit).unwrap();
    assert_eq!(c.counters().imports, 1);
    // 0x1000 left in the parent: 0x1001 cannot be had.
    let before = (c.sizes(), c.source().sizes());
    assert_eq!(c.alloc(Size(0x1001), Policy::BestFit), Err(ArenaError::NoSpace { size: 0x1010 }));
    assert_eq!((c.sizes(), c.source().sizes()), before);
    // Aligned past what the parent's free room offers.
    let k = Constraints::new(Size(16)).align(Size(0x8000));
    assert!(matches!(c.xalloc(&k), Err(ArenaError::NoSpace { .. })));
    assert_eq!((c.sizes(), c.source().sizes()), before);
    // A window over the parent's free room: never imports.
    let k = Constraints::new(Size(16)).min_addr(Addr(0x10_3000)).max_addr(Addr(0x10_4000));
    assert!(matches!(c.xalloc(&k), Err(ArenaError::NoSpace { .. })));
    assert_eq!(c.counters().imports, 1);
    // An exact address in the parent's free room: windowed too.
    let k = Constraints::new(Size(16)).exact(Addr(0x10_3000));
    assert!(matches!(c.xalloc(&k), Err(ArenaError::NoSpace { .. })));
    // min_addr(0) and max_addr(usize::MAX) are no window: they import.
    let k = Constraints::new(Size(16)).min_addr(Addr(0)).max_addr(Addr(usize::MAX));
    let x = c.xalloc(&k).unwrap();
    assert_eq!(c.counters().imports, 2);
    c.free(x, Size(16)).unwrap();
    assert_eq!(c.counters().exports, 1);
    c.free(a, Size(0x3000)).unwrap();
    assert_eq!(c.sizes().total, Size(0));
    c.check().unwrap();
    assert_eq!(c.source().sizes().allocated, Size(0));
}
