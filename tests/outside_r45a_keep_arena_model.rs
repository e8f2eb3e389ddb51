//! Outside review, round 45a: a heap `Arena` importing from a parent arena
//! at the top of the address space through `KeepFree`, driven by random
//! operations (alloc, xalloc, handles, free, deferred frees and flushes,
//! resize, free_part, bad frees) against a brute-force model of the
//! ranges owned; every `check()` after each step, and the books of the
//! three layers cross-checked.

use vmspace::arena::{
    Arena, ArenaError, Constraints, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore,
};
use vmspace::sources::KeepFree;
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const HQ: usize = 16;

fn rng(r: &mut u64) -> usize {
    *r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*r >> 33) as usize
}

fn up(x: usize, q: usize) -> usize {
    x.div_ceil(q) * q
}

#[derive(Clone, Copy, Debug)]
struct Live {
    base: usize,
    asked: usize,
    handle: Option<Handle>,
}

impl Live {
    fn range(&self) -> Range {
        Range::from_size(Addr(self.base), Size(up(self.asked, HQ))).unwrap()
    }
}

type Parent<'a> = Arena<SliceStore<'a>, NoSource>;

fn cross_check<const N: usize>(
    heap: &Arena<SliceStore<'_>, &mut KeepFree<&mut Parent<'_>, N>>,
    live: &[Live],
    unflushed: &[Range],
    step: usize,
    what: &str,
) {
    let ctx = |m: &str| format!("step {step} ({what}): {m}");
    heap.check().unwrap_or_else(|e| panic!("{}", ctx(&format!("heap check {e:?}"))));
    let keep: &KeepFree<&mut Parent<'_>, N> = heap.source();
    keep.check().unwrap_or_else(|e| panic!("{}", ctx(&format!("keep check {e:?}"))));
    let parent: &Parent<'_> = keep.inner();
    parent.check().unwrap_or_else(|e| panic!("{}", ctx(&format!("parent check {e:?}"))));

    // Model: live ranges are pairwise disjoint, none overlapping unflushed.
    for (i, a) in live.iter().enumerate() {
        for b in &live[..i] {
            assert!(!a.range().overlaps(&b.range()), "{}", ctx(&format!("{a:?} overlaps {b:?}")));
        }
        for u in unflushed {
            assert!(!a.range().overlaps(u), "{}", ctx(&format!("{a:?} overlaps unflushed {u:?}")));
        }
        // The heap agrees.
        let (seg, asked) = heap
            .lookup(Addr(a.base))
            .or_else(|| a.handle.and_then(|h| heap.lookup_handle(h)))
            .unwrap_or_else(|| panic!("{}", ctx(&format!("{a:?} not live in the heap"))));
        assert_eq!(asked, Size(a.asked), "{}", ctx(&format!("{a:?} vs {seg:?}")));
    }
    let walked: Vec<_> = heap.walk(SegmentKinds::ALL).collect();
    let n_alloc = walked.iter().filter(|s| s.kind == SegmentKind::Allocated).count();
    assert_eq!(n_alloc, live.len(), "{}", ctx("allocated segments vs model"));
    let unfl: usize =
        walked.iter().filter(|s| s.kind == SegmentKind::Unflushed).map(|s| s.range.size().0).sum();
    let model_unfl: usize = unflushed.iter().map(|r| r.size().0).sum();
    assert_eq!(unfl, model_unfl, "{}", ctx("unflushed bytes vs model"));

    // Spans: every imported heap span and every kept span is allocated in
    // the parent exactly; none overlaps another; the parent holds nothing
    // else.
    let spans: Vec<Range> = walked
        .iter()
        .filter(|s| s.kind == SegmentKind::Span && s.imported)
        .map(|s| s.range)
        .collect();
    let mut owned: Vec<Range> = spans.clone();
    owned.extend_from_slice(keep.kept());
    for (i, a) in owned.iter().enumerate() {
        for b in &owned[..i] {
            assert!(!a.overlaps(b), "{}", ctx(&format!("span {a:?} owned twice ({b:?})")));
        }
        assert_eq!(
            parent.lookup(a.base()),
            Some((*a, a.size())),
            "{}",
            ctx(&format!("span {a:?} not allocated in the parent"))
        );
    }
    // Counts balance: every import the heap made was one the keep served,
    // and every give-back the heap made was kept or released (the kept
    // ones either still kept, reused, or released by a trim).
    let (c, hc) = (keep.counts(), heap.counters());
    assert_eq!(hc.imports, c.imported + c.reused, "{}", ctx(&format!("imports {c:?} {hc:?}")));
    assert_eq!(c.release_failures, 0, "{}", ctx("release failures"));
    assert_eq!(
        hc.exports + hc.export_failures,
        c.released + keep.kept().len() as u64 + c.reused,
        "{}",
        ctx(&format!("exports {c:?} {hc:?}"))
    );
    let total: usize = owned.iter().map(|r| r.size().0).sum();
    assert_eq!(parent.sizes().allocated, Size(total), "{}", ctx("parent allocated vs spans+kept"));
    assert_eq!(
        heap.sizes().imported,
        Size(spans.iter().map(|r| r.size().0).sum()),
        "{}",
        ctx("imported")
    );
}

fn run<const N: usize>(seed: u64, steps: usize, parent_pages: usize, at_top: bool, keep_q: usize) {
    let (mut pt, mut ph) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut parent: Parent<'_> =
        Arena::new("parent", Size(Q), SliceStore::new(&mut pt), SliceStore::new(&mut ph), NoSource)
            .unwrap();
    let top = usize::MAX & !(Q - 1);
    let base = if at_top { top - parent_pages * Q } else { 1 << 30 };
    parent.add(Addr(base), Size(parent_pages * Q)).unwrap();
    let mut keep = KeepFree::<_, N>::new(&mut parent, Size(keep_q));
    let (mut ht, mut hh) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let mut heap =
        Arena::new("heap", Size(HQ), SliceStore::new(&mut ht), SliceStore::new(&mut hh), &mut keep)
            .unwrap();
    let mut r = seed;
    let mut live: Vec<Live> = Vec::new();
    let mut unflushed: Vec<Range> = Vec::new();
    let policies = [Policy::InstantFit, Policy::BestFit, Policy::FirstFit];
    for step in 0..steps {
        let op = rng(&mut r) % 100;
        let size = match rng(&mut r) % 4 {
            0 => 1 + rng(&mut r) % 64,
            1 => 1 + rng(&mut r) % (2 * Q),
            2 => Q * (1 + rng(&mut r) % 4) - HQ * (rng(&mut r) % 2),
            _ => 1 + rng(&mut r) % (6 * Q),
        };
        let policy = policies[rng(&mut r) % 3];
        let sizes_before = heap.sizes();
        let what: String;
        match op {
            0..=24 => {
                what = format!("alloc {size:#x} {policy:?}");
                match heap.alloc(Size(size), policy) {
                    Ok(a) => live.push(Live { base: a.0, asked: size, handle: None }),
                    Err(ArenaError::NoSpace { .. }) => assert_eq!(heap.sizes(), sizes_before),
                    Err(e) => panic!("step {step} {what}: {e:?}"),
                }
            }
            25..=34 => {
                let align = HQ << (rng(&mut r) % 10);
                let phase =
                    if rng(&mut r) % 3 == 0 { (rng(&mut r) % (align / HQ)) * HQ } else { 0 };
                let nocross = if rng(&mut r) % 3 == 0 { (2 * Q) << (rng(&mut r) % 3) } else { 0 };
                let from_top = rng(&mut r) % 2 == 0;
                let mut c = Constraints::new(Size(size))
                    .align(Size(align))
                    .phase(Size(phase))
                    .policy(policy)
                    .from_top(from_top);
                if nocross != 0 {
                    c = c.nocross(Size(nocross));
                }
                what = format!("xalloc {size:#x} align {align:#x} phase {phase:#x} nocross {nocross:#x} top {from_top}");
                match heap.xalloc(&c) {
                    Ok(a) => {
                        assert_eq!(
                            (a.0.wrapping_sub(phase)) % align,
                            0,
                            "step {step} {what}: {a:?}"
                        );
                        assert_eq!(
                            a.0.checked_div(nocross),
                            (a.0 + size - 1).checked_div(nocross),
                            "step {step} {what}: {a:?} crosses"
                        );
                        live.push(Live { base: a.0, asked: size, handle: None })
                    }
                    Err(ArenaError::NoSpace { .. } | ArenaError::OverConstrained(_)) => {
                        assert_eq!(heap.sizes(), sizes_before)
                    }
                    Err(e) => panic!("step {step} {what}: {e:?}"),
                }
            }
            35..=44 => {
                what = format!("alloc_handle {size:#x}");
                match heap.alloc_handle(Size(size), policy) {
                    Ok(h) => live.push(Live { base: h.addr().0, asked: size, handle: Some(h) }),
                    Err(ArenaError::NoSpace { .. }) => assert_eq!(heap.sizes(), sizes_before),
                    Err(e) => panic!("step {step} {what}: {e:?}"),
                }
            }
            45..=64 if !live.is_empty() => {
                let i = rng(&mut r) % live.len();
                let l = live[i];
                let deferred = rng(&mut r) % 3 == 0;
                what = format!("free {l:?} deferred {deferred}");
                let res = match (l.handle, deferred) {
                    (Some(h), false) => heap.free_handle(h).map(|s| assert_eq!(s, Size(l.asked))),
                    (Some(h), true) => {
                        heap.free_handle_deferred(h).map(|s| assert_eq!(s, Size(l.asked)))
                    }
                    (None, false) => heap.free(Addr(l.base), Size(l.asked)),
                    (None, true) => heap.free_deferred(Addr(l.base), Size(l.asked)),
                };
                res.unwrap_or_else(|e| panic!("step {step} {what}: {e:?}"));
                live.swap_remove(i);
                if deferred {
                    unflushed.push(l.range());
                }
                // A second free of the same thing is refused, changing nothing.
                let s2 = heap.sizes();
                let again = match l.handle {
                    Some(h) => heap.free_handle(h).map(|_| ()),
                    None => heap.free(Addr(l.base), Size(l.asked)),
                };
                assert!(again.is_err(), "step {step} {what}: double free taken");
                assert_eq!(heap.sizes(), s2);
            }
            65..=71 => {
                what = "flushed".into();
                heap.flushed();
                unflushed.clear();
            }
            72..=81 if live.iter().any(|l| l.handle.is_none()) => {
                let cands: Vec<usize> =
                    (0..live.len()).filter(|&i| live[i].handle.is_none()).collect();
                let i = cands[rng(&mut r) % cands.len()];
                let l = live[i];
                let new = 1 + rng(&mut r) % (l.asked * 2 + 2 * Q);
                what = format!("resize {l:?} -> {new:#x}");
                match heap.resize(Addr(l.base), Size(l.asked), Size(new)) {
                    Ok(()) => live[i].asked = new,
                    Err(ArenaError::NoSpace { .. }) => {
                        assert_eq!(heap.sizes(), sizes_before, "step {step} {what}")
                    }
                    Err(e) => panic!("step {step} {what}: {e:?}"),
                }
            }
            82..=91 if live.iter().any(|l| l.handle.is_none() && l.asked > HQ) => {
                let cands: Vec<usize> = (0..live.len())
                    .filter(|&i| live[i].handle.is_none() && live[i].asked > HQ)
                    .collect();
                let i = cands[rng(&mut r) % cands.len()];
                let l = live[i];
                let qs = l.asked.div_ceil(HQ);
                let off = (rng(&mut r) % qs) * HQ;
                let end = if rng(&mut r) % 2 == 0 {
                    l.asked
                } else {
                    (off + HQ * (1 + rng(&mut r) % qs)).min(l.asked)
                };
                let end = if end % HQ != 0 && end != l.asked { up(end, HQ) } else { end };
                let end = end.min(l.asked);
                let piece = end - off;
                what = format!("free_part {l:?} off {off:#x} size {piece:#x}");
                if piece == 0 {
                    continue;
                }
                match heap.free_part(Addr(l.base), Size(off), Size(piece)) {
                    Ok(()) => {
                        live.swap_remove(i);
                        if off > 0 {
                            live.push(Live { base: l.base, asked: off, handle: None });
                        }
                        if end < l.asked {
                            live.push(Live {
                                base: l.base + end,
                                asked: l.asked - end,
                                handle: None,
                            });
                        }
                    }
                    Err(ArenaError::TagsExhausted) => assert_eq!(heap.sizes(), sizes_before),
                    Err(e) => panic!("step {step} {what}: {e:?}"),
                }
            }
            92..=95 if !live.is_empty() => {
                let l = live[rng(&mut r) % live.len()];
                what = format!("bad frees of {l:?}");
                let bads = [
                    (l.base, l.asked + HQ),
                    (l.base + HQ, l.asked),
                    (l.base.wrapping_sub(HQ), l.asked),
                    (usize::MAX - 15, 16),
                    (0, l.asked),
                ];
                for (a, s) in bads {
                    if a == l.base && s == l.asked {
                        continue;
                    }
                    if live.iter().any(|x| x.handle.is_none() && x.base == a && x.asked == s) {
                        continue;
                    }
                    assert!(
                        heap.free(Addr(a), Size(s)).is_err(),
                        "step {step}: bad free ({a:#x},{s:#x}) taken"
                    );
                    assert!(
                        heap.free_deferred(Addr(a), Size(s)).is_err(),
                        "step {step}: bad free_deferred taken"
                    );
                    assert_eq!(heap.sizes(), sizes_before);
                }
                if let Some(h) = l.handle {
                    assert!(
                        heap.free(Addr(l.base), Size(l.asked)).is_err(),
                        "step {step}: free by address of a handle's allocation taken"
                    );
                    let forged = Handle::from_parts(h.addr(), h.tag() ^ 1, h.arena());
                    if let Some(f) = forged {
                        assert!(heap.free_handle(f).is_err(), "step {step}: forged handle taken");
                    }
                }
            }
            _ => {
                what = "trim".into();
                // Trim the keep between ops (through the importer's source).
                heap.source_mut().trim();
            }
        }
        cross_check(&heap, &live, &unflushed, step, &what);
    }
    // Tear down: free everything, flush; every import must be gone back.
    for l in live.drain(..) {
        match l.handle {
            Some(h) => heap.free_handle(h).map(|_| ()).unwrap(),
            None => heap.free(Addr(l.base), Size(l.asked)).unwrap(),
        }
    }
    heap.flushed();
    unflushed.clear();
    cross_check(&heap, &live, &unflushed, steps, "teardown");
    assert_eq!(heap.sizes().imported, Size(0), "seed {seed}");
    eprintln!("seed {seed} N {N}: keep {:?} heap {:?}", heap.source().counts(), heap.counters());
    drop(heap);
    keep.check().unwrap();
    assert!(keep.kept().len() <= N);
    let parent = keep.into_inner().expect("the parent takes every kept span");
    parent.check().unwrap();
    assert_eq!(parent.sizes().allocated, Size(0), "seed {seed}");
    assert_eq!(parent.sizes().free, Size(parent_pages * Q), "seed {seed}");
}

#[test]
fn model_at_the_top_n0() {
    for seed in 0..6 {
        run::<0>(seed, 500, 48, true, Q);
    }
}

#[test]
fn model_at_the_top_n1() {
    for seed in 0..6 {
        run::<1>(seed + 100, 500, 48, true, Q);
    }
}

#[test]
fn model_at_the_top_n3_quantum_8k() {
    for seed in 0..6 {
        run::<3>(seed + 200, 500, 48, true, 2 * Q);
    }
}

#[test]
fn model_low_n4_small_parent() {
    for seed in 0..6 {
        run::<4>(seed + 300, 500, 20, false, Q);
    }
}

#[test]
fn model_at_the_top_n8_tight() {
    for seed in 0..6 {
        run::<8>(seed + 400, 500, 16, true, Q);
    }
}
