//! Round 63a (outside reviewer): the interval model of outside_r63a_model.rs
//! over several added spans that grow (`extend` up, down, and bridging two
//! spans into one) while allocations, deferred frees, partial frees and
//! resizes go on: free segments must coalesce across every seam `extend`
//! makes and never across spans.
//!
//! Each case runs twice: as it is, and with the arena's fault injection on
//! (`set_mtbf(seed, 3)`): every injected failure (`ArenaError::Injected`)
//! must leave the arena exactly as the model (unchanged), check() passing.
//! (Round 63a wrote the second as a copy of this file; one run serves.)
//!
//! Original header: a brute-force interval model of one arena
//! driven through every by-address and by-handle operation together (alloc,
//! xalloc with constraints, free, free_part, resize, free_deferred,
//! free_handle_deferred, flushed, wrong-size and interior frees), comparing
//! sizes, lookups, largest_free and the walk with the model and calling
//! check() after every step.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vmspace::arena::{Constraints, Handle, NoSource, PageStore, SegmentKind, SegmentKinds};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;
type A = Arena<MStore, NoSource>;

const Q: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Addr,
    Held(Handle),
    Unflushed,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    end: usize, // rounded end
    asked: usize,
    kind: Kind,
}

struct Model {
    base: usize,
    limit: usize,
    spans: Vec<(usize, usize)>,
    segs: BTreeMap<usize, Seg>, // non-free segments by start
    /// Where the last next-fit allocation ended (0: none yet).
    rotor: usize,
}

impl Model {
    fn overlaps(&self, s: usize, e: usize) -> bool {
        self.segs.range(..e).next_back().is_some_and(|(&b, g)| b < e && g.end > s)
    }
    fn gaps(&self) -> Vec<(usize, usize)> {
        let mut v = vec![];
        for &(b, l) in &self.spans {
            let mut at = b;
            for (&s, g) in self.segs.range(b..l) {
                if s > at {
                    v.push((at, s));
                }
                at = g.end;
            }
            if l > at {
                v.push((at, l));
            }
        }
        v
    }
    fn total(&self) -> usize {
        self.spans.iter().map(|(b, l)| l - b).sum()
    }
    fn span_of(&self, x: usize) -> (usize, usize) {
        *self.spans.iter().find(|(b, l)| *b <= x && x < *l).unwrap()
    }
    fn sum(&self, f: impl Fn(&Kind) -> bool) -> usize {
        self.segs.iter().filter(|(_, g)| f(&g.kind)).map(|(&s, g)| g.end - s).sum()
    }
}

fn round(x: usize) -> usize {
    x.div_ceil(Q) * Q
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize, u8, bool),
    Xalloc {
        size: usize,
        align_log: u8,
        phase_q: usize,
        nocross_log: u8,
        min: usize,
        max: usize,
        top: bool,
        policy: u8,
    },
    Free(usize),
    FreeWrong(usize, usize),
    FreeInterior(usize),
    FreePart(usize, usize, usize),
    Resize(usize, usize),
    Deferred(usize),
    Flush,
    ExtendUp(usize),
    ExtendDown(usize),
    AddAbove(usize, usize),
    Bridge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..200, 0u8..4, any::<bool>()).prop_map(|(s, p, h)| Op::Alloc(s, p, h)),
        2 => (1usize..200, 0u8..9, 0usize..16, 0u8..10, 0usize..0x1000, 0usize..0x1000, any::<bool>(), 0u8..4)
            .prop_map(|(size, align_log, phase_q, nocross_log, min, max, top, policy)| Op::Xalloc { size, align_log, phase_q, nocross_log, min, max, top, policy }),
        3 => any::<usize>().prop_map(Op::Free),
        1 => (any::<usize>(), 1usize..40).prop_map(|(i, d)| Op::FreeWrong(i, d)),
        1 => any::<usize>().prop_map(Op::FreeInterior),
        2 => (any::<usize>(), 0usize..16, 1usize..260).prop_map(|(i, o, s)| Op::FreePart(i, o, s)),
        3 => (any::<usize>(), 1usize..300).prop_map(|(i, s)| Op::Resize(i, s)),
        2 => any::<usize>().prop_map(Op::Deferred),
        1 => Just(Op::Flush),
        1 => (1usize..8).prop_map(Op::ExtendUp),
        1 => (1usize..8).prop_map(Op::ExtendDown),
        1 => (1usize..8, 1usize..16).prop_map(|(g, l)| Op::AddAbove(g, l)),
        1 => Just(Op::Bridge),
    ]
}

fn policy(p: u8) -> Policy {
    Policy::ALL[p as usize % 4]
}

fn compare(a: &A, m: &Model) {
    a.check().unwrap();
    let s = a.sizes();
    let alloc = m.sum(|k| *k != Kind::Unflushed);
    let unfl = m.sum(|k| *k == Kind::Unflushed);
    assert_eq!(s.allocated.0, alloc, "allocated");
    assert_eq!(s.unflushed.0, unfl, "unflushed");
    assert_eq!(s.total.0, m.total(), "total");
    assert_eq!(s.free.0, m.total() - alloc - unfl, "free");
    assert_eq!(a.span_count(), m.spans.len(), "spans");
    let spans: Vec<(usize, usize)> =
        a.walk(SegmentKinds::SPANS).map(|g| (g.range.base().0, g.range.limit().0)).collect();
    assert_eq!(spans, m.spans, "span list");
    let gaps = m.gaps();
    let largest = gaps.iter().map(|(s, e)| e - s).max().unwrap_or(0);
    assert_eq!(a.largest_free().0, largest, "largest_free");
    let free: Vec<(usize, usize)> =
        a.walk(SegmentKinds::FREE).map(|g| (g.range.base().0, g.range.limit().0)).collect();
    assert_eq!(free, gaps, "free segments");
    let others: Vec<(usize, usize, bool)> = a
        .walk(SegmentKinds::ALLOCATED.union(SegmentKinds::UNFLUSHED))
        .map(|g| (g.range.base().0, g.range.limit().0, g.kind == SegmentKind::Unflushed))
        .collect();
    let want: Vec<(usize, usize, bool)> =
        m.segs.iter().map(|(&s, g)| (s, g.end, g.kind == Kind::Unflushed)).collect();
    assert_eq!(others, want, "allocated/unflushed segments");
    assert_eq!(
        a.unflushed_segments(),
        m.segs.values().filter(|g| g.kind == Kind::Unflushed).count()
    );
    assert_eq!(a.live(), m.segs.values().filter(|g| g.kind != Kind::Unflushed).count());
    for (&s, g) in &m.segs {
        match g.kind {
            Kind::Addr => assert_eq!(
                a.lookup(Addr(s)).map(|(r, z)| (r.limit().0, z.0)),
                Some((g.end, g.asked))
            ),
            Kind::Held(h) => assert_eq!(
                a.lookup_handle(h).map(|(r, z)| (r.limit().0, z.0)),
                Some((g.end, g.asked))
            ),
            Kind::Unflushed => assert_eq!(a.lookup(Addr(s)), None),
        }
    }
}

fn continue_after(a: &A, m: &Model) {
    compare(a, m);
}

fn pick(m: &Model, i: usize, f: impl Fn(&Kind) -> bool) -> Option<(usize, Seg)> {
    let v: Vec<(usize, Seg)> =
        m.segs.iter().filter(|(_, g)| f(&g.kind)).map(|(&s, g)| (s, *g)).collect();
    if v.is_empty() {
        None
    } else {
        Some(v[i % v.len()])
    }
}

fn run(base: usize, len: usize, ops: &[Op], faults: bool) {
    let mut a: A = Arena::new(
        "m",
        Size(Q),
        PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap(),
        PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap(),
        NoSource,
    )
    .unwrap();
    // The window [base, base + len): the first span starts in its middle
    // and grows both ways.
    let (sb, sl) = (base + len / 4, base + len / 2);
    a.add(Addr(sb), Size(sl - sb)).unwrap();
    let mut m =
        Model { base, limit: base + len, spans: vec![(sb, sl)], segs: BTreeMap::new(), rotor: 0 };
    if faults {
        a.set_mtbf(base as u64 ^ ops.len() as u64, 3);
    }
    let injected = |e: &ArenaError| faults && *e == ArenaError::Injected;
    for op in ops {
        match *op {
            Op::Alloc(size, p, held) => {
                let r = if held {
                    a.alloc_handle(Size(size), policy(p)).map(|h| (h.addr().0, Kind::Held(h)))
                } else {
                    a.alloc(Size(size), policy(p)).map(|x| (x.0, Kind::Addr))
                };
                let fits = m.gaps().iter().any(|(s, e)| e - s >= round(size));
                // Next fit, as documented (src/arena/constraints.rs Policy::NextFit):
                // the first fit at or after the rotor in address order, else
                // wrapping round to the lowest.
                let rs = round(size);
                let next_fit = m
                    .gaps()
                    .iter()
                    .find_map(|&(s, e)| {
                        let x = s.max(m.rotor);
                        (x < e && e - x >= rs).then_some(x)
                    })
                    .or_else(|| m.gaps().iter().find(|(s, e)| e - s >= rs).map(|g| g.0));
                if let (Ok((x, _)), Policy::NextFit) = (&r, policy(p)) {
                    // (Not under faults: an injected failure may have moved
                    // the rotor without an allocation.)
                    if !faults {
                        assert_eq!(Some(*x), next_fit, "{op:?}: next fit from {:#x}", m.rotor);
                    }
                    m.rotor = x + rs;
                }
                match r {
                    Ok((x, kind)) => {
                        assert_eq!(x % Q, 0);
                        let (sb, sl) = m.span_of(x);
                        assert!(x >= sb && x + round(size) <= sl);
                        assert!(!m.overlaps(x, x + round(size)), "{op:?} overlaps at {x:#x}");
                        m.segs.insert(x, Seg { end: x + round(size), asked: size, kind });
                    }
                    Err(e) if injected(&e) => {}
                    Err(e) => {
                        assert!(matches!(e, ArenaError::NoSpace { .. }), "{op:?}: {e:?}");
                        assert!(!fits, "{op:?}: NoSpace though a gap fits");
                    }
                }
            }
            Op::Xalloc { size, align_log, phase_q, nocross_log, min, max, top, policy: p } => {
                let align = Q << align_log;
                let phase = (phase_q * Q) % align;
                let nocross = if nocross_log == 0 { 0 } else { Q << (nocross_log + 2) };
                let (lo, hi) = (base + min.min(max), base + min.max(max) + Q);
                let c = Constraints::new(Size(size))
                    .align(Size(align))
                    .phase(Size(phase))
                    .nocross(Size(nocross))
                    .min_addr(Addr(lo))
                    .max_addr(Addr(hi))
                    .from_top(top)
                    .policy(policy(p));
                let rs = round(size);
                let ok_at = |x: usize| {
                    x % align == phase
                        && x >= lo
                        && x.saturating_add(rs) <= hi
                        && (nocross == 0 || x / nocross == (x + rs - 1) / nocross)
                };
                // Brute force: does any placement exist?
                let mut exists = false;
                for (s, e) in m.gaps() {
                    let mut x = s;
                    while x.saturating_add(rs) <= e {
                        if ok_at(x) {
                            exists = true;
                            break;
                        }
                        x += Q;
                    }
                    if exists {
                        break;
                    }
                }
                match a.xalloc(&c) {
                    Ok(x) => {
                        let x = x.0;
                        if policy(p) == Policy::NextFit {
                            m.rotor = x + rs;
                        }
                        assert!(ok_at(x), "{op:?} -> {x:#x} breaks constraints (align {align:#x} phase {phase:#x} nocross {nocross:#x} lo {lo:#x} hi {hi:#x})");
                        assert!(!m.overlaps(x, x + rs));
                        let (sb, sl) = m.span_of(x);
                        assert!(x >= sb && x + rs <= sl);
                        m.segs.insert(x, Seg { end: x + rs, asked: size, kind: Kind::Addr });
                    }
                    Err(ArenaError::NoSpace { .. }) => {
                        assert!(!exists, "{op:?}: NoSpace though a placement exists (align {align:#x} phase {phase:#x} nocross {nocross:#x} lo {lo:#x} hi {hi:#x})")
                    }
                    Err(ArenaError::OverConstrained(_))
                    | Err(ArenaError::InvalidArgument(_))
                    | Err(ArenaError::Misaligned { .. }) => {
                        assert!(
                            !exists,
                            "{op:?}: refused as over-constrained though a placement exists"
                        );
                    }
                    Err(e) if injected(&e) => {}
                    Err(e) => panic!("{op:?}: {e:?}"),
                }
            }
            Op::Free(i) => {
                if let Some((s, g)) = pick(&m, i, |k| *k != Kind::Unflushed) {
                    match g.kind {
                        Kind::Addr => a.free(Addr(s), Size(g.asked)).unwrap(),
                        Kind::Held(h) => assert_eq!(a.free_handle(h), Ok(Size(g.asked))),
                        Kind::Unflushed => unreachable!(),
                    }
                    m.segs.remove(&s);
                }
            }
            Op::FreeWrong(i, d) => {
                if let Some((s, g)) = pick(&m, i, |_| true) {
                    let bad = g.asked + d;
                    let r = a.free(Addr(s), Size(bad));
                    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                    let r = a.free_deferred(Addr(s), Size(bad));
                    assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                    if g.kind == Kind::Unflushed || matches!(g.kind, Kind::Held(_)) {
                        let r = a.free(Addr(s), Size(g.asked));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                    }
                }
            }
            Op::FreeInterior(i) => {
                if let Some((s, g)) = pick(&m, i, |_| true) {
                    if g.end - s > Q {
                        let r = a.free(Addr(s + Q), Size(g.asked - Q));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                        let r = a.resize(Addr(s + Q), Size(g.asked - Q), Size(1));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                        let r = a.free_part(Addr(s + Q), Size(0), Size(Q));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{r:?}");
                    }
                }
            }
            Op::FreePart(i, oq, size) => {
                if let Some((s, g)) = pick(&m, i, |k| *k == Kind::Addr) {
                    let off = oq * Q;
                    let r = a.free_part(Addr(s), Size(off), Size(size));
                    let Some(pa) = s.checked_add(off) else {
                        continue_after(&a, &m);
                        continue;
                    };
                    let asked_end = s + g.asked;
                    let pbo = pa.checked_add(size);
                    let valid = pbo.is_some_and(|pb| {
                        size > 0 && pb <= asked_end && (pb == asked_end || pb % Q == 0)
                    });
                    let pb = pbo.unwrap_or(usize::MAX);
                    if !valid {
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{op:?}: {r:?}");
                    } else if r.as_ref().is_err_and(injected) {
                    } else {
                        r.unwrap();
                        let pb = if pb == asked_end { g.end } else { pb };
                        m.segs.remove(&s);
                        if pa > s {
                            m.segs.insert(s, Seg { end: pa, asked: pa - s, kind: Kind::Addr });
                        }
                        if pb < g.end {
                            m.segs.insert(
                                pb,
                                Seg { end: g.end, asked: asked_end - pb, kind: Kind::Addr },
                            );
                        }
                    }
                }
            }
            Op::Resize(i, new) => {
                if let Some((s, g)) = pick(&m, i, |k| *k == Kind::Addr) {
                    let r = a.resize(Addr(s), Size(g.asked), Size(new));
                    let ne = s.checked_add(round(new));
                    let sl = m.span_of(s).1;
                    let ok =
                        ne.is_some_and(|ne| ne <= g.end || (ne <= sl && !m.overlaps(g.end, ne)));
                    let ne = ne.unwrap_or(usize::MAX);
                    if r.as_ref().is_err_and(injected) {
                    } else if ok {
                        r.unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
                        m.segs.insert(s, Seg { end: ne, asked: new, kind: Kind::Addr });
                    } else {
                        assert_eq!(r, Err(ArenaError::NoSpace { size: new }), "{op:?}");
                    }
                }
            }
            Op::Deferred(i) => {
                if let Some((s, g)) = pick(&m, i, |k| *k != Kind::Unflushed) {
                    match g.kind {
                        Kind::Addr => a.free_deferred(Addr(s), Size(g.asked)).unwrap(),
                        Kind::Held(h) => assert_eq!(a.free_handle_deferred(h), Ok(Size(g.asked))),
                        Kind::Unflushed => unreachable!(),
                    }
                    m.segs.get_mut(&s).unwrap().kind = Kind::Unflushed;
                }
            }
            Op::ExtendUp(k) => {
                let &(b, l) = m.spans.last().unwrap();
                if l.checked_add(k * Q).is_some_and(|e| e <= m.limit && e != usize::MAX) {
                    match a.extend(Addr(l), Size(k * Q)) {
                        Ok(()) => *m.spans.last_mut().unwrap() = (b, l + k * Q),
                        Err(e) if injected(&e) => {}
                        Err(e) => panic!("{op:?}: {e:?}"),
                    }
                }
            }
            Op::ExtendDown(k) => {
                let (b, l) = m.spans[0];
                // Below the model's base: out of the model, skipped.
                if b >= m.base + k * Q {
                    match a.extend(Addr(b - k * Q), Size(k * Q)) {
                        Ok(()) => m.spans[0] = (b - k * Q, l),
                        Err(e) if injected(&e) => {}
                        Err(e) => panic!("{op:?}: {e:?}"),
                    }
                }
            }
            Op::AddAbove(gq, lq) => {
                let &(_, l) = m.spans.last().unwrap();
                let (nb, nl) = (l.saturating_add(gq * Q), l.saturating_add((gq + lq) * Q));
                if nl <= m.limit && nl != usize::MAX {
                    match a.add(Addr(nb), Size(nl - nb)) {
                        Ok(()) => m.spans.push((nb, nl)),
                        Err(e) if injected(&e) => {}
                        Err(e) => panic!("{op:?}: {e:?}"),
                    }
                    // Not adjacent to anything: extend of a detached range fails.
                    if nl.saturating_add(2 * Q) <= m.limit {
                        let r = a.extend(Addr(nl + Q), Size(Q));
                        assert!(
                            matches!(r, Err(ArenaError::NotAdjacent(_)))
                                || r.as_ref().is_err_and(injected),
                            "{r:?}"
                        );
                    }
                }
            }
            Op::Bridge => {
                let n = m.spans.len();
                if n >= 2 {
                    let (b0, l0) = m.spans[n - 2];
                    let (b1, l1) = m.spans[n - 1];
                    match a.extend(Addr(l0), Size(b1 - l0)) {
                        Ok(()) => {
                            m.spans.truncate(n - 2);
                            m.spans.push((b0, l1));
                        }
                        Err(e) if injected(&e) => {}
                        Err(e) => panic!("{op:?}: {e:?}"),
                    }
                }
            }
            Op::Flush => {
                let want = m.sum(|k| *k == Kind::Unflushed);
                assert_eq!(a.flushed().0, want);
                m.segs.retain(|_, g| g.kind != Kind::Unflushed);
            }
        }
        compare(&a, &m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn spans_model_low(ops in prop::collection::vec(op(), 1..150)) {
        run(0x10000, 0x1000, &ops, false);
    }

    #[test]
    fn faults_model_low(ops in prop::collection::vec(op(), 1..150)) {
        run(0x10000, 0x1000, &ops, true);
    }

    /// The same at the very top of the address space (the span ends at
    /// 2^64 - 16, the highest quantum-aligned end).
    #[test]
    fn spans_model_top(ops in prop::collection::vec(op(), 1..120)) {
        let len = 0x1000;
        run(usize::MAX - Q + 1 - len, len, &ops, false);
    }

    #[test]
    fn faults_model_top(ops in prop::collection::vec(op(), 1..120)) {
        let len = 0x1000;
        run(usize::MAX - Q + 1 - len, len, &ops, true);
    }
}
