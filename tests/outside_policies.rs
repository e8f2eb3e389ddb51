//! Written from the documented contracts by a reviewer outside the project,
//! to break them: every policy's documented choice checked
//! against a brute-force reference over small arenas with several random
//! spans, by address and by handle, with sizes, counters, walks, histogram,
//! largest free and fragmentation compared with a model after every step.

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::{Addr, Size};

mod outside_common;
use outside_common::Rng;

type A<'a> = Arena<SliceStore<'a>, NoSource>;

/// The free list an arena keeps a segment of `quanta` quanta on (64-bit).
fn list_of(quanta: usize) -> usize {
    if quanta < 32 {
        quanta - 1
    } else {
        (quanta.ilog2() as usize + 26).min(63)
    }
}

/// Whether every member of list `l` holds `quanta` quanta.
fn list_all_hold(l: usize, quanta: usize) -> bool {
    if l < 31 {
        l + 1 >= quanta
    } else {
        (1usize << (l - 26)) >= quanta
    }
}

#[derive(Clone, Copy, Debug)]
struct Live {
    asked: usize,
    rounded: usize,
    handle: Option<Handle>,
}

struct Model {
    spans: Vec<(usize, usize)>,
    live: BTreeMap<usize, Live>,
    allocs: u64,
    frees: u64,
    failures: u64,
    bad_frees: u64,
    /// NextFit's rotor: where the last next-fit allocation ended (0 before
    /// the first), whether or not it is still live.
    rotor: usize,
}

impl Model {
    fn free_segments(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for &(s, e) in &self.spans {
            let mut cur = s;
            for (&a, l) in self.live.range(s..e) {
                if a > cur {
                    out.push((cur, a));
                }
                cur = a + l.rounded;
            }
            if cur < e {
                out.push((cur, e));
            }
        }
        out
    }
}

fn check_all(a: &A<'_>, m: &Model, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check failed {e:?}"));
    let free = m.free_segments();
    let got_free: Vec<(usize, usize)> =
        a.walk(SegmentKinds::FREE).map(|s| (s.range.base().0, s.range.limit().0)).collect();
    assert_eq!(got_free, free, "{what}: free segments");
    let got_alloc: Vec<(usize, usize, usize, bool)> = a
        .walk(SegmentKinds::ALLOCATED)
        .map(|s| (s.range.base().0, s.range.size().0, s.requested.0, s.held))
        .collect();
    let want_alloc: Vec<(usize, usize, usize, bool)> =
        m.live.iter().map(|(&x, l)| (x, l.rounded, l.asked, l.handle.is_some())).collect();
    assert_eq!(got_alloc, want_alloc, "{what}: allocations");
    let spans: Vec<(usize, usize, bool)> = a
        .walk(SegmentKinds::SPANS)
        .map(|s| (s.range.base().0, s.range.limit().0, s.imported))
        .collect();
    let want_spans: Vec<(usize, usize, bool)> =
        m.spans.iter().map(|&(s, e)| (s, e, false)).collect();
    assert_eq!(spans, want_spans, "{what}: spans");
    // Whole walk: span markers before their segments, every kind in order.
    let mut last_end = 0;
    for s in a.walk(SegmentKinds::ALL) {
        match s.kind {
            SegmentKind::Span => last_end = s.range.base().0,
            _ => {
                assert_eq!(s.range.base().0, last_end, "{what}: walk not contiguous");
                last_end = s.range.limit().0;
            }
        }
    }
    let allocated: usize = m.live.values().map(|l| l.rounded).sum();
    let total: usize = m.spans.iter().map(|&(s, e)| e - s).sum();
    let sz = a.sizes();
    assert_eq!(sz.allocated.0, allocated, "{what}: sizes.allocated");
    assert_eq!(sz.total.0, total, "{what}: sizes.total");
    assert_eq!(sz.free.0, total - allocated, "{what}: sizes.free");
    assert_eq!(sz.imported.0, 0);
    assert_eq!(sz.unflushed.0, 0);
    assert_eq!(a.live(), m.live.len(), "{what}: live");
    assert_eq!(a.span_count(), m.spans.len());
    let c = a.counters();
    assert_eq!(
        (c.allocs, c.frees, c.failures, c.bad_frees),
        (m.allocs, m.frees, m.failures, m.bad_frees),
        "{what}: counters (allocs, frees, failures, bad_frees)"
    );
    let mut hist = [0usize; 64];
    for &(s, e) in &free {
        hist[(e - s).ilog2() as usize] += 1;
    }
    assert_eq!(a.free_histogram().to_vec(), hist.to_vec(), "{what}: histogram");
    let largest = free.iter().map(|&(s, e)| e - s).max().unwrap_or(0);
    assert_eq!(a.largest_free().0, largest, "{what}: largest_free");
    let fsum: usize = free.iter().map(|&(s, e)| e - s).sum();
    let frag = (1000 * largest).checked_div(fsum).map_or(0, |r| 1000 - r as u32);
    assert_eq!(a.fragmentation(), frag, "{what}: fragmentation");
    for (&x, l) in &m.live {
        match l.handle {
            None => {
                let r = a.lookup(Addr(x)).unwrap_or_else(|| panic!("{what}: lookup {x:#x}"));
                assert_eq!((r.0.base().0, r.0.size().0, r.1 .0), (x, l.rounded, l.asked));
            }
            Some(h) => {
                assert_eq!(a.lookup(Addr(x)), None, "{what}: held is not hashed");
                let r = a.lookup_handle(h).unwrap();
                assert_eq!((r.0.base().0, r.0.size().0, r.1 .0), (x, l.rounded, l.asked));
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Want {
    size: usize,
    align: usize,
    phase: usize,
    nocross: usize,
    lo: usize,
    hi: usize,
    top: bool,
}

fn ok_at(w: &Want, t: usize, seg: (usize, usize)) -> bool {
    let Some(end) = t.checked_add(w.size) else { return false };
    t >= seg.0
        && end <= seg.1
        && t >= w.lo
        && end <= w.hi
        && t % w.align == w.phase
        && (w.nocross == 0 || t / w.nocross == (end - 1) / w.nocross)
}

/// Brute force: the lowest (or highest) fit in `seg`, stepping by the quantum.
fn fit_in(w: &Want, q: usize, seg: (usize, usize)) -> Option<usize> {
    let mut cands = (seg.0..seg.1).step_by(q).filter(|&t| ok_at(w, t, seg));
    if w.top {
        cands.next_back()
    } else {
        cands.next()
    }
}

fn run(q: usize, seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut tb, mut hb) = (vec![0u8; 1 << 18], vec![0u8; 1 << 14]);
    let mut a: A<'_> =
        Arena::new("p", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
            .unwrap();
    // 1 to 4 spans with gaps between them, each 8 to 200 quanta.
    let nspans = 1 + rng.below(4) as usize;
    let mut spans = Vec::new();
    let mut cur = q * (1 + rng.below(100) as usize);
    for _ in 0..nspans {
        cur += q * rng.below(50) as usize; // gap (zero: adjacent, separate spans)
        let len = q * (8 + rng.below(200) as usize);
        spans.push((cur, cur + len));
        cur += len;
    }
    // Add them in a random order: spans are kept in address order.
    let mut order: Vec<usize> = (0..nspans).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for &i in &order {
        let (s, e) = spans[i];
        a.add(Addr(s), Size(e - s)).unwrap();
    }
    let mut m = Model {
        spans: spans.clone(),
        live: BTreeMap::new(),
        allocs: 0,
        frees: 0,
        failures: 0,
        bad_frees: 0,
        rotor: 0,
    };
    check_all(&a, &m, "after adds");
    let lo_addr = spans[0].0;
    let hi_addr = spans.last().unwrap().1;
    for step in 0..steps {
        let what = format!("q {q} seed {seed} step {step}");
        let r = rng.below(10);
        if r < 4 && !m.live.is_empty() {
            // Free a random live allocation through its interface.
            let k = rng.below(m.live.len() as u64) as usize;
            let (&x, &l) = m.live.iter().nth(k).unwrap();
            // First some bad frees that must change nothing.
            if rng.chance(3) {
                match l.handle {
                    None => {
                        let e = a.free(Addr(x), Size(l.asked + 1)).unwrap_err();
                        assert!(matches!(e, ArenaError::BadFree { .. }), "{what}: {e:?}");
                        m.bad_frees += 1;
                        if let Some(h) = a.handle_from_parts(Addr(x), 1 + rng.below(200) as u32) {
                            assert!(a.free_handle(h).is_err(), "{what}: forged handle");
                            m.bad_frees += 1;
                        }
                    }
                    Some(h) => {
                        let e = a.free(Addr(x), Size(l.asked)).unwrap_err();
                        assert!(matches!(e, ArenaError::BadFree { .. }), "{what}: {e:?}");
                        m.bad_frees += 1;
                        let moved = a.handle_from_parts(Addr(x + q), h.tag()).unwrap();
                        assert!(a.free_handle(moved).is_err());
                        m.bad_frees += 1;
                    }
                }
                check_all(&a, &m, &what);
            }
            match l.handle {
                None => a.free(Addr(x), Size(l.asked)).unwrap(),
                Some(h) => assert_eq!(a.free_handle(h), Ok(Size(l.asked)), "{what}"),
            }
            m.live.remove(&x);
            m.frees += 1;
            check_all(&a, &m, &what);
            continue;
        }
        // An allocation.
        let policy = Policy::ALL[rng.below(4) as usize];
        let constrained = rng.chance(2);
        let big = rng.chance(4);
        let size = 1 + rng.below(if big { (40 * q) as u64 } else { (4 * q) as u64 }) as usize;
        let top = rng.chance(3);
        let mut c = Constraints::new(Size(size)).policy(policy).from_top(top);
        if constrained {
            let align = q << rng.below(5);
            let align = if rng.chance(3) { 0 } else { align };
            c = c.align(Size(align));
            if align > q && rng.chance(2) {
                c = c.phase(Size(q * rng.below((align / q) as u64) as usize));
            }
            if rng.chance(3) {
                c = c.nocross(Size(q << (2 + rng.below(5))));
            }
            if rng.chance(4) {
                c = c.min_addr(Addr(lo_addr + rng.below((hi_addr - lo_addr) as u64) as usize));
            }
            if rng.chance(4) {
                c = c.max_addr(Addr(lo_addr + rng.below((hi_addr - lo_addr) as u64) as usize));
            }
            if rng.chance(10) {
                c = c.exact(Addr(
                    (lo_addr + rng.below((hi_addr - lo_addr) as u64) as usize) / q * q,
                ));
            }
        }
        let held = rng.chance(3);
        let req = match c.validate(q) {
            Ok(r) => r,
            Err(e) => {
                let got = if held { a.xalloc_handle(&c).map(|h| h.addr()) } else { a.xalloc(&c) };
                assert_eq!(got, Err(e), "{what}: an invalid request");
                m.failures += 1;
                check_all(&a, &m, &what);
                continue;
            }
        };
        let w = Want {
            size: req.size().0,
            align: req.align().0,
            phase: req.phase().0,
            nocross: req.nocross().0,
            lo: req.min().0,
            hi: req.max().0,
            top,
        };
        assert_eq!(w.size, size.div_ceil(q) * q);
        let free = m.free_segments();
        let fits: Vec<((usize, usize), usize)> =
            free.iter().filter_map(|&s| fit_in(&w, q, s).map(|t| (s, t))).collect();
        let got: Result<(usize, Option<Handle>), ArenaError> = if held {
            a.xalloc_handle(&c).map(|h| (h.addr().0, Some(h)))
        } else if !constrained && !top && rng.chance(2) {
            a.alloc(Size(size), policy).map(|x| (x.0, None))
        } else {
            a.xalloc(&c).map(|x| (x.0, None))
        };
        let (t, h) = match got {
            Err(e) => {
                assert!(fits.is_empty(), "{what}: {e:?} although {c:?} fits in {fits:x?}");
                assert_eq!(e, ArenaError::NoSpace { size: w.size }, "{what}: {c:?}");
                m.failures += 1;
                check_all(&a, &m, &what);
                continue;
            }
            Ok(x) => x,
        };
        // Next fit: the first placement at or after the rotor, in address
        // order, wrapping round to the lowest when there is none.
        let next_fit = fits
            .iter()
            .find_map(|&(s, _)| {
                (s.1 > m.rotor).then(|| fit_in(&w, q, (s.0.max(m.rotor), s.1)).map(|t| (s, t)))?
            })
            .or(fits.first().copied());
        let Some(&(seg, at)) = fits.iter().find(|(s, _)| s.0 <= t && t < s.1) else {
            panic!("{what}: {t:#x} for {c:?} is in no fitting free segment {fits:x?}");
        };
        assert!(ok_at(&w, t, seg), "{what}: {t:#x} breaks {c:?}");
        // (Next fit's own place in its segment is checked below.)
        if policy != Policy::NextFit {
            assert_eq!(
                t,
                at,
                "{what}: {c:?} placed at {t:#x}, not the {} suitable address of segment {seg:x?}",
                if top { "highest" } else { "lowest" }
            );
        }
        match policy {
            Policy::FirstFit => {
                let want = if top { fits.last() } else { fits.first() }.unwrap();
                assert_eq!(
                    seg, want.0,
                    "{what}: first fit chose {seg:x?} for {c:?}, fits {fits:x?}"
                );
            }
            Policy::BestFit => {
                let smallest = fits.iter().map(|(s, _)| s.1 - s.0).min().unwrap();
                assert_eq!(
                    seg.1 - seg.0,
                    smallest,
                    "{what}: best fit chose {seg:x?} for {c:?}, fits {fits:x?}"
                );
            }
            Policy::NextFit => {
                let after = m.rotor;
                assert_eq!(
                    Some((seg, t)),
                    next_fit,
                    "{what}: next fit after {after:#x} placed at {t:#x} for {c:?}, fits {fits:x?}"
                );
            }
            Policy::InstantFit => {
                let unconstrained = !constrained
                    || (w.align == q && w.nocross == 0 && w.lo == 0 && w.hi == usize::MAX);
                if unconstrained {
                    let nq = w.size / q;
                    let lists: Vec<usize> = free
                        .iter()
                        .map(|s| list_of((s.1 - s.0) / q))
                        .filter(|&l| list_all_hold(l, nq))
                        .collect();
                    let got_list = list_of((seg.1 - seg.0) / q);
                    if let Some(&first) = lists.iter().min() {
                        assert_eq!(
                            got_list, first,
                            "{what}: instant fit of {nq} quanta took a segment of list {got_list}, \
                             not the first list whose members all fit ({first}); free {free:x?}"
                        );
                    } else {
                        assert_eq!(got_list, list_of(nq), "{what}: instant fit fallback list");
                    }
                }
            }
        }
        if policy == Policy::NextFit {
            m.rotor = t + w.size;
        }
        m.live.insert(t, Live { asked: size, rounded: w.size, handle: h });
        m.allocs += 1;
        check_all(&a, &m, &what);
    }
    // Drain.
    let live: Vec<(usize, Live)> = m.live.iter().map(|(&x, &l)| (x, l)).collect();
    for (x, l) in live {
        match l.handle {
            None => a.free(Addr(x), Size(l.asked)).unwrap(),
            Some(h) => assert_eq!(a.free_handle(h), Ok(Size(l.asked))),
        }
        m.live.remove(&x);
        m.frees += 1;
        check_all(&a, &m, "drain");
    }
    assert_eq!(a.walk(SegmentKinds::FREE).count(), m.spans.len(), "everything coalesced per span");
}

#[test]
fn policies_match_brute_force_q16() {
    for seed in 1..60 {
        run(16, seed, 300);
    }
}

#[test]
fn policies_match_brute_force_q1() {
    for seed in 100..160 {
        run(1, seed, 300);
    }
}

#[test]
fn policies_match_brute_force_q4096() {
    for seed in 200..230 {
        run(4096, seed, 200);
    }
}
