//! Round 63a (outside reviewer): an importing child arena (quantum 16) over
//! a parent arena (quantum 4096), driven through allocs, constrained
//! xallocs, handles, free, free_part, resize, deferred frees and flushes at
//! once, with a brute-force model of the child's live and unflushed
//! segments. After every step: both arenas' check(), the child's walk equals
//! the model, the parent's allocated bytes equal the child's imported bytes,
//! and no imported span of the child is wholly free (every whole free and
//! every flush gives such a span back; partial frees and shrinks never
//! empty a span). Finally everything is freed and flushed and into_source
//! must hand back a parent with nothing allocated.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vmspace::arena::{Constraints, Handle, NoSource, PageStore, SegmentKind, SegmentKinds};
use vmspace::{Addr, Arena, ArenaError, Policy, Size};
use vmspace_user::MmapBackend;

type MStore = PageStore<MmapBackend>;
type P = Arena<MStore, NoSource>;
type C = Arena<MStore, P>;

const Q: usize = 16;

fn mstore() -> MStore {
    PageStore::new(MmapBackend::new(), Size(1 << 20)).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Addr,
    Held(Handle),
    Unflushed,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    end: usize,
    asked: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize, u8, bool),
    Xalloc(usize, u8, usize, u8, bool, bool),
    Free(usize),
    FreePart(usize, usize, usize),
    Resize(usize, usize),
    Deferred(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..9000, 0u8..4, any::<bool>()).prop_map(|(s, p, h)| Op::Alloc(s, p, h)),
        2 => (1usize..5000, 0u8..13, 0usize..64, 0u8..6, any::<bool>(), any::<bool>())
            .prop_map(|(s, al, ph, nc, top, h)| Op::Xalloc(s, al, ph, nc, top, h)),
        4 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), 0usize..300, 1usize..5000).prop_map(|(i, o, s)| Op::FreePart(i, o, s)),
        2 => (any::<usize>(), 1usize..9000).prop_map(|(i, s)| Op::Resize(i, s)),
        2 => any::<usize>().prop_map(Op::Deferred),
        1 => Just(Op::Flush),
    ]
}

fn round(x: usize) -> usize {
    x.div_ceil(Q) * Q
}

fn pick(m: &BTreeMap<usize, Seg>, i: usize, f: impl Fn(&Kind) -> bool) -> Option<(usize, Seg)> {
    let v: Vec<(usize, Seg)> =
        m.iter().filter(|(_, g)| f(&g.kind)).map(|(&s, g)| (s, *g)).collect();
    (!v.is_empty()).then(|| v[i % v.len()])
}

fn compare(c: &C, m: &BTreeMap<usize, Seg>) {
    c.check().unwrap();
    c.source().check().unwrap();
    let got: Vec<(usize, usize, bool)> = c
        .walk(SegmentKinds::ALLOCATED.union(SegmentKinds::UNFLUSHED))
        .map(|g| (g.range.base().0, g.range.limit().0, g.kind == SegmentKind::Unflushed))
        .collect();
    let want: Vec<(usize, usize, bool)> =
        m.iter().map(|(&s, g)| (s, g.end, g.kind == Kind::Unflushed)).collect();
    assert_eq!(got, want);
    let s = c.sizes();
    assert_eq!(s.total, s.imported, "only imported spans");
    assert_eq!(c.source().sizes().allocated, s.imported, "parent allocated == child imported");
    // No imported span wholly free.
    let all: Vec<_> = c.walk(SegmentKinds::ALL).collect();
    for (k, g) in all.iter().enumerate() {
        if g.kind == SegmentKind::Span {
            let next = all.get(k + 1).expect("a span has segments");
            assert!(
                !(next.kind == SegmentKind::Free && next.range == g.range),
                "imported span {:?} wholly free and kept",
                g.range
            );
        }
    }
}

fn run(ops: &[Op]) {
    let mut parent: P = Arena::new("p", Size(4096), mstore(), mstore(), NoSource).unwrap();
    parent.add(Addr(1 << 32), Size(1 << 26)).unwrap();
    let mut c: C = Arena::new("c", Size(Q), mstore(), mstore(), parent).unwrap();
    let mut m: BTreeMap<usize, Seg> = BTreeMap::new();
    for op in ops {
        match *op {
            Op::Alloc(size, p, held) => {
                let pol = Policy::ALL[p as usize % 4];
                let (x, kind) = if held {
                    let h =
                        c.alloc_handle(Size(size), pol).unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
                    (h.addr().0, Kind::Held(h))
                } else {
                    (
                        c.alloc(Size(size), pol).unwrap_or_else(|e| panic!("{op:?}: {e:?}")).0,
                        Kind::Addr,
                    )
                };
                let e = x + round(size);
                assert!(
                    m.range(..e).next_back().is_none_or(|(_, g)| g.end <= x),
                    "{op:?} overlaps"
                );
                m.insert(x, Seg { end: e, asked: size, kind });
            }
            Op::Xalloc(size, al, ph, nc, top, held) => {
                let align = Q << al;
                let phase = (ph * Q) % align;
                let nocross = if nc == 0 { 0 } else { 4096 << nc };
                let cs = Constraints::new(Size(size))
                    .align(Size(align))
                    .phase(Size(phase))
                    .nocross(Size(nocross))
                    .from_top(top)
                    .policy(Policy::BestFit);
                let r = if held {
                    c.xalloc_handle(&cs).map(|h| (h.addr().0, Kind::Held(h)))
                } else {
                    c.xalloc(&cs).map(|x| (x.0, Kind::Addr))
                };
                match r {
                    Ok((x, kind)) => {
                        let rs = round(size);
                        assert_eq!(x % align, phase, "{op:?}");
                        if let (Some(a), Some(b)) =
                            (x.checked_div(nocross), (x + rs - 1).checked_div(nocross))
                        {
                            assert_eq!(a, b, "{op:?}");
                        }
                        assert!(m.range(..x + rs).next_back().is_none_or(|(_, g)| g.end <= x));
                        m.insert(x, Seg { end: x + rs, asked: size, kind });
                    }
                    Err(ArenaError::OverConstrained(_)) => {
                        assert!(nocross != 0 && (phase % nocross) + round(size) > nocross, "{op:?}")
                    }
                    Err(e) => panic!("{op:?}: {e:?}"),
                }
            }
            Op::Free(i) => {
                if let Some((s, g)) = pick(&m, i, |k| *k != Kind::Unflushed) {
                    match g.kind {
                        Kind::Addr => c.free(Addr(s), Size(g.asked)).unwrap(),
                        Kind::Held(h) => assert_eq!(c.free_handle(h), Ok(Size(g.asked))),
                        _ => unreachable!(),
                    }
                    m.remove(&s);
                }
            }
            Op::FreePart(i, oq, size) => {
                if let Some((s, g)) = pick(&m, i, |k| *k == Kind::Addr) {
                    let off = oq * Q;
                    let r = c.free_part(Addr(s), Size(off), Size(size));
                    let (pa, pb, ae) = (s + off, s + off + size, s + g.asked);
                    if pb <= ae && (pb == ae || pb % Q == 0) {
                        r.unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
                        let pb = if pb == ae { g.end } else { pb };
                        m.remove(&s);
                        if pa > s {
                            m.insert(s, Seg { end: pa, asked: pa - s, kind: Kind::Addr });
                        }
                        if pb < g.end {
                            m.insert(pb, Seg { end: g.end, asked: ae - pb, kind: Kind::Addr });
                        }
                    } else {
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{op:?}: {r:?}");
                    }
                }
            }
            Op::Resize(i, new) => {
                if let Some((s, g)) = pick(&m, i, |k| *k == Kind::Addr) {
                    let r = c.resize(Addr(s), Size(g.asked), Size(new));
                    let ne = s + round(new);
                    match r {
                        Ok(()) => {
                            assert!(
                                ne <= g.end || m.range(g.end..ne).next().is_none(),
                                "{op:?} grew over a segment"
                            );
                            m.insert(s, Seg { end: ne, asked: new, kind: Kind::Addr });
                        }
                        Err(ArenaError::NoSpace { .. }) => {
                            assert!(ne > g.end, "{op:?}: a shrink failed")
                        }
                        Err(e) => panic!("{op:?}: {e:?}"),
                    }
                }
            }
            Op::Deferred(i) => {
                if let Some((s, g)) = pick(&m, i, |k| *k != Kind::Unflushed) {
                    match g.kind {
                        Kind::Addr => c.free_deferred(Addr(s), Size(g.asked)).unwrap(),
                        Kind::Held(h) => assert_eq!(c.free_handle_deferred(h), Ok(Size(g.asked))),
                        _ => unreachable!(),
                    }
                    m.get_mut(&s).unwrap().kind = Kind::Unflushed;
                }
            }
            Op::Flush => {
                let want: usize = m
                    .iter()
                    .filter(|(_, g)| g.kind == Kind::Unflushed)
                    .map(|(&s, g)| g.end - s)
                    .sum();
                assert_eq!(c.flushed().0, want);
                m.retain(|_, g| g.kind != Kind::Unflushed);
            }
        }
        compare(&c, &m);
    }
    // Teardown: free everything, flush, hand the parent back.
    for (s, g) in std::mem::take(&mut m) {
        match g.kind {
            Kind::Addr => c.free(Addr(s), Size(g.asked)).unwrap(),
            Kind::Held(h) => {
                c.free_handle(h).unwrap();
            }
            Kind::Unflushed => {}
        }
    }
    c.flushed();
    compare(&c, &m);
    assert_eq!(c.sizes().total, Size(0));
    let p = c.into_source().unwrap_or_else(|r| panic!("{:?}", r.error()));
    p.check().unwrap();
    assert_eq!(p.sizes().allocated, Size(0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn importing_child_model(ops in prop::collection::vec(op(), 1..100)) {
        run(&ops);
    }
}
