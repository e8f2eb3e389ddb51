//! The freed-but-not-flushed state of the arena itself, against a model.
//!
//! Random sequences of allocations (every policy, aligned, from the top, at
//! exact addresses), frees, deferred frees, flushes and bad frees run on an
//! arena with added spans and on one importing from a source. The model
//! keeps the live allocations and the unflushed ranges; after every step no
//! allocation overlaps either, the walk of unflushed segments is exactly the
//! model's, the sizes and counters agree, and `check()` passes. Imported
//! spans go back to the source only once nothing in them waits. The same
//! sequences run on arenas in the kernel when `VMSPACE_DEVICE` names
//! `/dev/vmspace` (`make kernel-proptest`; skipped otherwise, saying so).

use std::collections::BTreeMap;

use proptest::prelude::*;

use vmspace::arena::{
    Arena, ArenaError, Constraints, NoSource, Policy, SegmentKinds, SliceStore, Source,
};
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_workload::ArenaTarget;

const Q: usize = 16;

#[derive(Debug, Clone)]
enum Op {
    Alloc { quanta: usize, policy: u8, align_log: u32, top: bool },
    Exact { slot: usize, quanta: usize },
    Free { slot: usize },
    FreeDeferred { slot: usize },
    Flush,
    FreeUnflushed { slot: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..24usize, 0..4u8, 0..4u32, any::<bool>())
            .prop_map(|(quanta, policy, align_log, top)| Op::Alloc { quanta, policy, align_log, top }),
        1 => (any::<usize>(), 1..4usize).prop_map(|(slot, quanta)| Op::Exact { slot, quanta }),
        2 => any::<usize>().prop_map(|slot| Op::Free { slot }),
        3 => any::<usize>().prop_map(|slot| Op::FreeDeferred { slot }),
        1 => Just(Op::Flush),
        1 => any::<usize>().prop_map(|slot| Op::FreeUnflushed { slot }),
    ]
}

/// A source handing out 4 KiB spans from a counter and recording give-backs.
#[derive(Default)]
struct Spans {
    next: usize,
    out: BTreeMap<usize, usize>,
}

impl Source for Spans {
    fn quantum(&self) -> Size {
        Size(4096)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        if self.out.len() >= 8 {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        let base = (0x10_0000 + self.next).next_multiple_of(align.0);
        self.next = base - 0x10_0000 + size.0 + 4096;
        self.out.insert(base, size.0);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        match self.out.remove(&range.base().0) {
            Some(s) if s == range.size().0 => Ok(()),
            _ => Err(ArenaError::BadImport(range)),
        }
    }
}

#[derive(Default)]
struct Model {
    /// Live allocations: base -> (asked, rounded size).
    live: BTreeMap<usize, (usize, usize)>,
    /// Unflushed ranges: base -> rounded size.
    unflushed: BTreeMap<usize, usize>,
}

impl Model {
    fn nth<T>(m: &BTreeMap<usize, T>, slot: usize) -> Option<(usize, &T)> {
        (!m.is_empty()).then(|| m.iter().nth(slot % m.len()).map(|(k, v)| (*k, v))).flatten()
    }

    fn clashes(&self, r: Range) -> bool {
        let hit = |b: usize, s: usize| b < r.limit().0 && r.base().0 < b + s;
        self.live.iter().any(|(b, (_, s))| hit(*b, *s))
            || self.unflushed.iter().any(|(b, s)| hit(*b, *s))
    }
}

/// Whether a span of `a` holds `[addr, addr + Q)`.
fn in_a_span<A: ArenaTarget>(a: &A, addr: usize) -> bool {
    a.walk(SegmentKinds::SPANS).any(|s| s.range.base().0 <= addr && addr + Q <= s.range.limit().0)
}

/// Run `ops` on `a` against the model, checking after every step (the
/// arena's own count of unflushed segments is `check()`'s to hold to its
/// list, which the walk holds to the model).
fn run<A: ArenaTarget>(a: &mut A, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::default();
    let mut frees = 0u64;
    let mut plain_frees = 0u64;
    let mut flushes = 0u64;
    for op in ops {
        match *op {
            Op::Alloc { quanta, policy, align_log, top } => {
                let policy =
                    [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit]
                        [policy as usize];
                let asked = quanta * Q - 3;
                let c = Constraints::new(Size(asked))
                    .align(Size(Q << align_log))
                    .policy(policy)
                    .from_top(top);
                if let Ok(x) = a.xalloc(&c) {
                    let r = Range::from_size(x, Size(quanta * Q)).unwrap();
                    prop_assert!(!m.clashes(r), "{op:?} -> {r} overlaps a live or unflushed range");
                    m.live.insert(x.0, (asked, quanta * Q));
                }
            }
            Op::Exact { slot, quanta } => {
                // Right where something waits for its flush: always refused.
                if let Some((b, _)) = Model::nth(&m.unflushed, slot) {
                    let c = Constraints::new(Size(quanta * Q)).exact(Addr(b));
                    prop_assert!(a.xalloc(&c).is_err(), "exact allocation at unflushed {b:#x}");
                }
            }
            Op::Free { slot } | Op::FreeDeferred { slot } => {
                if let Some((b, &(asked, size))) = Model::nth(&m.live, slot) {
                    let deferred = matches!(op, Op::FreeDeferred { .. });
                    // A wrong size in the same quantum is refused first.
                    prop_assert!(a.free_deferred(Addr(b), Size(asked + 1)).is_err());
                    if deferred {
                        a.free_deferred(Addr(b), Size(asked)).unwrap();
                        m.unflushed.insert(b, size);
                    } else {
                        a.free(Addr(b), Size(asked)).unwrap();
                        plain_frees += 1;
                    }
                    m.live.remove(&b);
                    frees += 1;
                }
            }
            Op::FreeUnflushed { slot } => {
                if let Some((b, &size)) = Model::nth(&m.unflushed, slot) {
                    let before = a.sizes();
                    prop_assert!(a.free(Addr(b), Size(size)).is_err());
                    prop_assert!(a.free_deferred(Addr(b), Size(size)).is_err());
                    prop_assert!(a.lookup(Addr(b)).is_none());
                    prop_assert_eq!(a.sizes(), before);
                }
            }
            Op::Flush => {
                let waiting: usize = m.unflushed.values().sum();
                prop_assert_eq!(a.flushed(), Size(waiting));
                if waiting > 0 {
                    flushes += 1;
                }
                m.unflushed.clear();
            }
        }
        a.check().map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
        let walked: Vec<(usize, usize)> =
            a.walk(SegmentKinds::UNFLUSHED).map(|s| (s.range.base().0, s.range.size().0)).collect();
        let want: Vec<(usize, usize)> = m.unflushed.iter().map(|(b, s)| (*b, *s)).collect();
        prop_assert_eq!(walked, want);
        prop_assert_eq!(a.sizes().unflushed.0, m.unflushed.values().sum::<usize>());
        prop_assert_eq!(a.sizes().allocated.0, m.live.values().map(|v| v.1).sum::<usize>());
        prop_assert_eq!(a.counters().frees, frees);
        prop_assert_eq!(a.counters().flushes, flushes);
        prop_assert_eq!(a.counters().deferred_frees, frees - plain_frees);
        // Every imported span with something unflushed in it is still here.
        for b in m.unflushed.keys() {
            prop_assert!(in_a_span(a, *b), "an unflushed range's span went back");
        }
    }
    Ok(())
}

/// Free everything still live in `a`, after a last flush.
fn empty<A: ArenaTarget>(a: &mut A) {
    a.flushed();
    let live: Vec<Addr> = a.walk(SegmentKinds::ALLOCATED).map(|s| s.range.base()).collect();
    for x in live {
        let asked = a.lookup(x).unwrap().1;
        a.free(x, asked).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn deferred_frees_match_the_model(ops in prop::collection::vec(op(), 1..200)) {
        let (mut tb, mut hb) = (vec![0u8; 64 << 10], vec![0u8; 8 << 10]);
        let mut a = Arena::new("deferred", Size(Q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource).unwrap();
        a.add(Addr(0x1000), Size(64 * Q)).unwrap();
        a.add(Addr(0x8000), Size(256 * Q)).unwrap();
        run(&mut a, &ops)?;
    }

    #[test]
    fn deferred_frees_match_the_model_with_imports(ops in prop::collection::vec(op(), 1..200)) {
        let (mut tb, mut hb) = (vec![0u8; 64 << 10], vec![0u8; 8 << 10]);
        let mut a = Arena::new("deferred", Size(Q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), Spans::default()).unwrap();
        run(&mut a, &ops)?;
        // After the last flush, wholly free spans have all gone back.
        empty(&mut a);
        prop_assert_eq!(a.span_count(), 0);
        prop_assert!(a.source().out.is_empty());
        a.check().unwrap();
    }

    #[test]
    fn deferred_frees_match_the_model_on_the_device(ops in prop::collection::vec(op(), 1..200)) {
        if let Some(dev) = device_for_tests() {
            let mut a = dev.arena(&ArenaConfig::new(Size(Q)).max_tags(1024)).unwrap();
            a.add(Addr(0x1000), Size(64 * Q)).unwrap();
            a.add(Addr(0x8000), Size(256 * Q)).unwrap();
            run(&mut a, &ops)?;
        }
    }

    #[test]
    fn deferred_frees_match_the_model_on_the_device_with_imports(
        ops in prop::collection::vec(op(), 1..200),
    ) {
        if let Some(dev) = device_for_tests() {
            let mut a = dev.arena(&ArenaConfig::new(Size(Q)).import(1 << 20)).unwrap();
            run(&mut a, &ops)?;
            // After the last flush, wholly free spans have all gone back,
            // and the source VM has unmapped them.
            empty(&mut a);
            prop_assert_eq!(a.span_count(), 0);
            let s = a.stats().unwrap();
            prop_assert_eq!((s.imported, s.source_mapped, s.unflushed), (0, 0, 0));
            a.check().unwrap();
        }
    }
}
