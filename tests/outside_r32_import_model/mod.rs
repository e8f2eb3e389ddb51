//! The failing source, the shadow model and its comparison for
//! `outside_r32_import_counters.rs` (an importing arena's statistics).

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, ArenaError, Constraints, Counters, Handle, NoSource, Policy, SegmentKind, SegmentKinds,
    SliceStore, Source,
};
use vmspace::{Addr, Range, Size};
use vmspace_shim::ShimError;

use crate::outside_common::Rng;

pub type Parent<'a> = Arena<SliceStore<'a>, NoSource>;

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log {
    pub import_calls: u64,
    pub imports_ok: u64,
    pub releases_ok: u64,
    pub releases_refused: u64,
    pub releases_stranded: u64,
}

pub struct Flaky<'a> {
    pub parent: Parent<'a>,
    pub fail_import: bool,
    /// 0: take it back; 1: refuse (stays with the child); 2: strand.
    pub release_mode: u8,
    pub log: Log,
    /// Ranges the child holds (imported, not given back or stranded).
    pub out: BTreeMap<usize, usize>,
    /// Ranges stranded: kept allocated in the parent for good.
    pub stranded: Vec<Range>,
}

impl Source for Flaky<'_> {
    fn quantum(&self) -> Size {
        self.parent.quantum()
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        self.log.import_calls += 1;
        if self.fail_import {
            return Err(ArenaError::NoSpace { size: size.0 });
        }
        let r = self.parent.import(size, align)?;
        self.log.imports_ok += 1;
        self.out.insert(r.base().0, r.size().0);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        match self.release_mode {
            1 => {
                self.log.releases_refused += 1;
                Err(ArenaError::SourceBusy)
            }
            2 => {
                self.log.releases_stranded += 1;
                assert_eq!(self.out.remove(&range.base().0), Some(range.size().0), "{range:?}");
                self.stranded.push(range);
                Err(ArenaError::Stranded {
                    range,
                    error: ShimError::InvalidArgument("stranded by the test"),
                })
            }
            _ => {
                self.parent.release(range).unwrap();
                self.log.releases_ok += 1;
                assert_eq!(self.out.remove(&range.base().0), Some(range.size().0), "{range:?}");
                Ok(())
            }
        }
    }
}

pub type Child<'a, 'p> = Arena<SliceStore<'a>, Flaky<'p>>;

#[derive(Clone, Copy, Debug)]
pub struct Live {
    pub asked: usize,
    pub handle: Option<Handle>,
}

pub struct Model {
    pub q: usize,
    pub live: BTreeMap<usize, Live>,
    pub unflushed: BTreeMap<usize, usize>,
    pub c: Counters,
}

pub fn round(q: usize, n: usize) -> usize {
    n.div_ceil(q) * q
}

pub fn compare(a: &Child<'_, '_>, m: &Model, last: &mut Counters, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: child check {e:?}"));
    let src = a.source();
    src.parent.check().unwrap_or_else(|e| panic!("{what}: parent check {e:?}"));
    let c = a.counters();
    // Monotonic, field by field.
    let pairs = [
        ("allocs", c.allocs, last.allocs),
        ("frees", c.frees, last.frees),
        ("failures", c.failures, last.failures),
        ("bad_frees", c.bad_frees, last.bad_frees),
        ("search_steps", c.search_steps, last.search_steps),
        ("lookups", c.lookups, last.lookups),
        ("imports", c.imports, last.imports),
        ("exports", c.exports, last.exports),
        ("export_failures", c.export_failures, last.export_failures),
        ("injected", c.injected, last.injected),
        ("deferred_frees", c.deferred_frees, last.deferred_frees),
        ("flushes", c.flushes, last.flushes),
    ];
    for (name, now, before) in pairs {
        assert!(now >= before, "{what}: {name} went down {before} -> {now}");
    }
    *last = c;
    let l = src.log;
    let got = (c.allocs, c.frees, c.failures, c.bad_frees, c.injected, c.deferred_frees, c.flushes);
    let want = (
        m.c.allocs,
        m.c.frees,
        m.c.failures,
        m.c.bad_frees,
        m.c.injected,
        m.c.deferred_frees,
        m.c.flushes,
    );
    assert_eq!(
        got, want,
        "{what}: (allocs, frees, failures, bad_frees, injected, deferred_frees, flushes)"
    );
    assert_eq!(
        (c.imports, c.exports, c.export_failures),
        (l.imports_ok, l.releases_ok, l.releases_refused + l.releases_stranded),
        "{what}: (imports, exports, export_failures) against the source's log {l:?}"
    );
    // The walk, exactly.
    let walk: Vec<_> = a.walk(SegmentKinds::ALL).collect();
    let spans: BTreeMap<usize, (usize, bool)> = walk
        .iter()
        .filter(|s| s.kind == SegmentKind::Span)
        .map(|s| (s.range.base().0, (s.range.size().0, s.imported)))
        .collect();
    let imported_spans: BTreeMap<usize, usize> =
        spans.iter().filter(|(_, v)| v.1).map(|(&k, v)| (k, v.0)).collect();
    assert_eq!(imported_spans, src.out, "{what}: imported spans are what the source handed out");
    let allocated: BTreeMap<usize, (usize, usize, bool)> = walk
        .iter()
        .filter(|s| s.kind == SegmentKind::Allocated)
        .map(|s| (s.range.base().0, (s.range.size().0, s.requested.0, s.held)))
        .collect();
    let want_alloc: BTreeMap<usize, (usize, usize, bool)> = m
        .live
        .iter()
        .map(|(&a, l)| (a, (round(m.q, l.asked), l.asked, l.handle.is_some())))
        .collect();
    assert_eq!(allocated, want_alloc, "{what}: allocated segments");
    let unfl: BTreeMap<usize, usize> = walk
        .iter()
        .filter(|s| s.kind == SegmentKind::Unflushed)
        .map(|s| (s.range.base().0, s.range.size().0))
        .collect();
    let unfl_total: usize = unfl.values().sum();
    let want_unfl: usize = m.unflushed.values().sum();
    assert_eq!(unfl_total, want_unfl, "{what}: unflushed segments {unfl:?} vs {:?}", m.unflushed);
    let free_total: usize =
        walk.iter().filter(|s| s.kind == SegmentKind::Free).map(|s| s.range.size().0).sum();
    let z = a.sizes();
    let span_total: usize = spans.values().map(|v| v.0).sum();
    let alloc_total: usize = want_alloc.values().map(|v| v.0).sum();
    assert_eq!(z.allocated.0, alloc_total, "{what}: sizes().allocated {z:?}");
    assert_eq!(z.unflushed.0, want_unfl, "{what}: sizes().unflushed {z:?}");
    assert_eq!(z.free.0, free_total, "{what}: sizes().free {z:?}");
    assert_eq!(z.total.0, span_total, "{what}: sizes().total {z:?}");
    assert_eq!(z.total.0, z.allocated.0 + z.free.0 + z.unflushed.0, "{what}: {z:?}");
    assert_eq!(z.imported.0, src.out.values().sum::<usize>(), "{what}: sizes().imported {z:?}");
    assert_eq!(a.live(), m.live.len(), "{what}: live()");
    assert_eq!(a.span_count(), spans.len(), "{what}: span_count()");
    // The parent: its allocations are the child's imports and the
    // stranded ranges, nothing else.
    let pz = src.parent.sizes();
    let stranded: usize = src.stranded.iter().map(|r| r.size().0).sum();
    assert_eq!(
        pz.allocated.0,
        src.out.values().sum::<usize>() + stranded,
        "{what}: parent allocated {pz:?}"
    );
    let pc = src.parent.counters();
    assert_eq!(
        (pc.allocs, pc.frees),
        (l.imports_ok, l.releases_ok),
        "{what}: parent allocs and frees against the source's log"
    );
}

pub fn size(rng: &mut Rng, q: usize) -> usize {
    match rng.below(24) {
        0 => 0,
        1 => usize::MAX,
        2 => usize::MAX - (q - 1) + (q > 1) as usize, // rounds past the top
        3 => 1 << 40,                                 // more than the parent holds
        4 => q,
        _ => 1 + rng.below(40 * q as u64) as usize,
    }
}

pub fn policy(rng: &mut Rng) -> Policy {
    match rng.below(4) {
        0 => Policy::InstantFit,
        1 => Policy::BestFit,
        2 => Policy::FirstFit,
        _ => Policy::NextFit,
    }
}

pub fn constraints(rng: &mut Rng, q: usize) -> Constraints {
    let s = size(rng, q);
    let mut c = Constraints::new(Size(s)).policy(policy(rng));
    match rng.below(7) {
        0 => c = c.align(Size(q << rng.below(8))),
        1 => c = c.align(Size(q << rng.below(4))).phase(Size(q * rng.below(2) as usize)),
        2 => c = c.nocross(Size(q << (4 + rng.below(6)))),
        3 => c = c.align(Size(3 * q)), // not a power of two: invalid
        4 => c = c.min_addr(Addr(1 << 20)).max_addr(Addr((1 << 20) + 16 * q)),
        5 => c = c.exact(Addr(q * (1 + rng.below(1 << 12) as usize))),
        _ => {}
    }
    c
}
