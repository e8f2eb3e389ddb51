//! Outside review (round 19): an arena importing from a parent arena (and
//! from a source that cannot align), held to the `Source` contract with a
//! brute-force oracle. Marked `// HOLDS:` or `// DEFECT:`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore, Source, Store,
};
use vmspace::{Addr, Range, Size};

type P<'a> = Arena<SliceStore<'a>, NoSource>;

fn up(x: usize, q: usize) -> usize {
    x.div_ceil(q) * q
}

/// A source over a parent arena that cannot align: every import is an odd
/// multiple of the parent's quantum (never aligned to twice it).
struct Unaligned<'p, 'a>(&'p RefCell<P<'a>>);

impl Source for Unaligned<'_, '_> {
    fn quantum(&self) -> Size {
        self.0.borrow().quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let mut p = self.0.borrow_mut();
        // Aligned to what is asked (the quantum, as imports_aligned() is
        // false) and never to more.
        let q = align.0;
        let a = p.xalloc(&Constraints::new(size).align(Size(2 * q)).phase(Size(q)))?;
        Ok(Range::from_size(a, size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        self.0.borrow_mut().free(range.base(), range.size())
    }
    fn imports_aligned(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug)]
enum Op {
    X { size: u16, align: u8, phase: u8, nocross: u8, policy: u8, top: bool },
    Free { idx: u16 },
    Part { idx: u16, off: u16 },
    Defer { idx: u16 },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u16..2000, 0u8..14, any::<u8>(), 0u8..16, 0u8..4, any::<bool>())
            .prop_map(|(size, align, phase, nocross, policy, top)| Op::X { size, align, phase, nocross, policy, top }),
        2 => any::<u16>().prop_map(|idx| Op::Free { idx }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(idx, off)| Op::Part { idx, off }),
        1 => any::<u16>().prop_map(|idx| Op::Defer { idx }),
        1 => Just(Op::Flush),
    ]
}

fn check_pair<S: Store, I: Source>(child: &Arena<S, I>, parent: &RefCell<P<'_>>, ctx: &str) {
    child.check().unwrap_or_else(|e| panic!("{ctx}: child check {e:?}"));
    let p = parent.borrow();
    p.check().unwrap_or_else(|e| panic!("{ctx}: parent check {e:?}"));
    let imported: Vec<(usize, usize)> = child
        .walk(SegmentKinds::SPANS)
        .filter(|s| s.imported)
        .map(|s| (s.range.base().0, s.range.limit().0))
        .collect();
    let parent_allocs: Vec<(usize, usize)> =
        p.walk(SegmentKinds::ALLOCATED).map(|s| (s.range.base().0, s.range.limit().0)).collect();
    assert_eq!(
        imported, parent_allocs,
        "{ctx}: child's imported spans are the parent's allocations"
    );
    assert_eq!(child.sizes().imported, p.sizes().allocated, "{ctx}: imported vs parent allocated");
    let (cc, pc) = (child.counters(), p.counters());
    assert_eq!(
        cc.imports - cc.exports,
        imported.len() as u64,
        "{ctx}: imports - exports = imported spans"
    );
    assert_eq!(
        (pc.allocs, pc.frees),
        (cc.imports, cc.exports),
        "{ctx}: parent allocs/frees = child imports/exports"
    );
    assert_eq!(cc.export_failures, 0, "{ctx}: export failures");
    // No wholly free imported span is kept.
    let segs: Vec<_> = child.walk(SegmentKinds::ALL).collect();
    for (i, s) in segs.iter().enumerate() {
        if s.imported {
            let whole_free = segs
                .get(i + 1)
                .is_some_and(|n| n.kind == vmspace::arena::SegmentKind::Free && n.range == s.range);
            assert!(!whole_free, "{ctx}: wholly free imported span {:?} kept", s.range);
        }
    }
}

/// Returns how many allocations failed with `NoSpace`.
fn run(qc: usize, qp: usize, aligned: bool, span: usize, ops: &[Op]) -> usize {
    let (mut ptb, mut phb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 14]);
    let mut parent = Arena::new(
        "parent",
        Size(qp),
        SliceStore::new(&mut ptb),
        SliceStore::new(&mut phb),
        NoSource,
    )
    .unwrap();
    parent.add(Addr(0x10_0000), Size(span)).unwrap();
    let parent = RefCell::new(parent);
    let (mut ctb, mut chb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 14]);
    let nospace = if aligned {
        let child = Arena::new(
            "child",
            Size(qc),
            SliceStore::new(&mut ctb),
            SliceStore::new(&mut chb),
            &parent,
        )
        .unwrap();
        body(child, &parent, qc, ops)
    } else {
        let child = Arena::new(
            "child",
            Size(qc),
            SliceStore::new(&mut ctb),
            SliceStore::new(&mut chb),
            Unaligned(&parent),
        )
        .unwrap();
        body(child, &parent, qc, ops)
    };
    let p = parent.borrow();
    assert_eq!(p.sizes().allocated, Size(0), "child dropped: everything given back");
    p.check().unwrap();
    nospace
}

fn body<S: Store, I: Source>(
    mut child: Arena<S, I>,
    parent: &RefCell<P<'_>>,
    qc: usize,
    ops: &[Op],
) -> usize {
    let mut nospace = 0;
    let mut live: BTreeMap<usize, usize> = BTreeMap::new();
    for (step, o) in ops.iter().enumerate() {
        let ctx = format!("step {step} {o:?}");
        match *o {
            Op::X { size, align, phase, nocross, policy, top } => {
                let size = size as usize;
                let align = if align == 0 { 0 } else { 1usize << (align - 1) };
                let al = align.max(qc);
                let phase = (phase as usize % (al / qc)) * qc;
                let r = up(size, qc);
                let nocross = if nocross == 0 {
                    0
                } else {
                    let mut n = (1usize << nocross).max(qc);
                    while phase % n + r > n {
                        n *= 2;
                    }
                    n
                };
                let c = Constraints::new(Size(size))
                    .align(Size(align))
                    .phase(Size(phase))
                    .nocross(Size(nocross))
                    .policy(Policy::ALL[policy as usize % 4])
                    .from_top(top);
                let parent_room = parent.borrow().largest_free().0;
                match child.xalloc(&c) {
                    Ok(t) => {
                        let t = t.0;
                        assert_eq!(t % al, phase, "{ctx}: align/phase of {t:#x}");
                        assert!(
                            nocross == 0 || t / nocross == (t + r - 1) / nocross,
                            "{ctx}: {t:#x} crosses {nocross:#x}"
                        );
                        live.insert(t, size);
                    }
                    Err(e) => {
                        assert!(matches!(e, ArenaError::NoSpace { .. }), "{ctx}: {e:?}");
                        nospace += 1;
                        // Enough room in the parent for any import this needs.
                        let qp = parent.borrow().quantum().0;
                        let need = up(phase + r, qp.max(qc))
                            + 2 * al.max(nocross).max(qp.max(qc))
                            + 2 * qp;
                        assert!(parent_room < need, "{ctx}: NoSpace though the parent has {parent_room:#x} free (need at most {need:#x})");
                    }
                }
            }
            Op::Free { idx } => {
                if live.is_empty() {
                    continue;
                }
                let (&a, &s) = live.iter().nth(idx as usize % live.len()).unwrap();
                child.free(Addr(a), Size(s)).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                live.remove(&a);
            }
            Op::Defer { idx } => {
                if live.is_empty() {
                    continue;
                }
                let (&a, &s) = live.iter().nth(idx as usize % live.len()).unwrap();
                child.free_deferred(Addr(a), Size(s)).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                live.remove(&a);
            }
            Op::Flush => {
                let before = child.sizes().unflushed;
                assert_eq!(child.flushed(), before, "{ctx}");
                assert_eq!(child.sizes().unflushed, Size(0), "{ctx}");
            }
            Op::Part { idx, off } => {
                if live.is_empty() {
                    continue;
                }
                let (&a, &s) = live.iter().nth(idx as usize % live.len()).unwrap();
                // Free the front or the back piece at a quantum boundary.
                let cut = (off as usize % (s + 1)) / qc * qc;
                if cut == 0 || cut >= s {
                    continue;
                }
                child
                    .free_part(Addr(a), Size(0), Size(cut))
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                live.remove(&a);
                live.insert(a + cut, s - cut);
            }
        }
        check_pair(&child, parent, &ctx);
    }
    for (a, s) in std::mem::take(&mut live) {
        child.free(Addr(a), Size(s)).unwrap();
    }
    child.flushed();
    check_pair(&child, parent, "freed all");
    assert_eq!(child.span_count(), 0, "every import given back when empty");
    assert_eq!(child.sizes().total, Size(0));
    nospace
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("R19_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150), failure_persistence: None, .. ProptestConfig::default() })]

    // HOLDS: imports from a parent arena (aligned source) and from one that
    // cannot align (imports_aligned false): constraints met, NoSpace only
    // when the parent is short, imported spans == the parent's
    // allocations, wholly free imports given back, everything back on drop.
    #[test]
    // (Round 23: with only a 256 KiB parent no case ever reached NoSpace,
    // so "only when the parent is short" was never checked; parents of 2
    // and 16 KiB reach it, as the test below shows.)
    #[test]
    fn imports_against_parent(qc in 0usize..6, qp in 0usize..8, aligned in any::<bool>(), span in prop_oneof![Just(0x800usize), Just(0x4000), Just(0x4_0000)], ops in proptest::collection::vec(op(), 1..50)) {
        run(1 << qc, 1 << qp, aligned, span, &ops);
    }
}

/// The NoSpace branch above is reached: the parent's 2 KiB hold one
/// 2000-byte allocation and not a second, under either kind of source.
#[test]
fn a_short_parent_says_no_space() {
    let x = Op::X { size: 2000, align: 0, phase: 0, nocross: 0, policy: 0, top: false };
    for aligned in [true, false] {
        assert_eq!(
            run(16, 16, aligned, 0x800, &[x.clone(), x.clone()]),
            1,
            "aligned source {aligned}"
        );
    }
}
