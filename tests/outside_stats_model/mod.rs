//! The outside reviewer's brute-force model of an arena for
//! `outside_stats.rs`: live allocations, unflushed ranges, spans and
//! counters as the docs define them, compared with the arena after every
//! step; and where each policy must place an allocation.
#![allow(dead_code)]

use std::collections::BTreeMap;

use vmspace::arena::{
    Arena, Handle, NoSource, Policy, SegmentKind, SegmentKinds, SliceStore, BASE_TAGS,
};
use vmspace::{Addr, Size};

pub type A<'a> = Arena<SliceStore<'a>, NoSource>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Live {
    pub asked: usize,
    pub rounded: usize,
    pub handle: Option<Handle>,
}

#[derive(Clone, Default, Debug, PartialEq)]
pub struct Counts {
    pub allocs: u64,
    pub frees: u64,
    pub failures: u64,
    pub bad_frees: u64,
    pub deferred_frees: u64,
    pub flushes: u64,
    pub injected: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub q: usize,
    /// Spans, in address order (adjacent ones stay separate unless an
    /// `extend` joined them).
    pub spans: Vec<(usize, usize)>,
    pub live: BTreeMap<usize, Live>,
    /// Freed but not flushed: start -> whole segment size.
    pub unflushed: BTreeMap<usize, usize>,
    pub c: Counts,
    /// Where the last next-fit allocation ended (0 before any).
    pub rotor: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum K {
    Span,
    Free,
    Alloc(usize, bool),
    Unfl,
}

pub fn up(x: usize, q: usize) -> Option<usize> {
    x.checked_add(q - 1).map(|v| v & !(q - 1))
}

impl Model {
    /// Every span and segment in address order: (kind, start, end).
    pub fn walk(&self) -> Vec<(K, usize, usize)> {
        let mut out = Vec::new();
        for &(s, e) in &self.spans {
            out.push((K::Span, s, e));
            let mut items: Vec<(usize, usize, K)> = self
                .live
                .range(s..e)
                .map(|(&a, l)| (a, a + l.rounded, K::Alloc(l.asked, l.handle.is_some())))
                .collect();
            items.extend(self.unflushed.range(s..e).map(|(&a, &z)| (a, a + z, K::Unfl)));
            items.sort_by_key(|x| x.0);
            let mut cur = s;
            for (a, b, k) in items {
                assert!(a >= cur && b <= e, "model overlap");
                if a > cur {
                    out.push((K::Free, cur, a));
                }
                out.push((k, a, b));
                cur = b;
            }
            if cur < e {
                out.push((K::Free, cur, e));
            }
        }
        out
    }

    pub fn free_segments(&self) -> Vec<(usize, usize)> {
        self.walk().into_iter().filter(|x| x.0 == K::Free).map(|x| (x.1, x.2)).collect()
    }

    /// The span holding `[a, b)`.
    pub fn span_of(&self, a: usize) -> (usize, usize) {
        *self.spans.iter().find(|&&(s, e)| s <= a && a < e).unwrap()
    }
}

pub fn walk_of(a: &A<'_>, kinds: SegmentKinds) -> Vec<(K, usize, usize)> {
    a.walk(kinds)
        .map(|s| {
            let (b, e) = (s.range.base().0, s.range.limit().0);
            let k = match s.kind {
                SegmentKind::Span => {
                    assert!(!s.imported);
                    K::Span
                }
                SegmentKind::Free => K::Free,
                SegmentKind::Allocated => K::Alloc(s.requested.0, s.held),
                SegmentKind::Unflushed => K::Unfl,
            };
            if s.kind != SegmentKind::Allocated {
                assert_eq!(s.requested.0, e - b, "requested of a non-allocated segment");
                assert!(!s.held, "held on a non-allocated segment");
            }
            (k, b, e)
        })
        .collect()
}

pub fn compare(a: &A<'_>, m: &Model, what: &str) {
    a.check().unwrap_or_else(|e| panic!("{what}: check failed {e:?}"));
    let want = m.walk();
    assert_eq!(walk_of(a, SegmentKinds::ALL), want, "{what}: walk");
    let sub = SegmentKinds::FREE.union(SegmentKinds::UNFLUSHED);
    let want_sub: Vec<_> =
        want.iter().copied().filter(|x| matches!(x.0, K::Free | K::Unfl)).collect();
    assert_eq!(walk_of(a, sub), want_sub, "{what}: walk FREE|UNFLUSHED");
    let allocated: usize = m.live.values().map(|l| l.rounded).sum();
    let unflushed: usize = m.unflushed.values().sum();
    let total: usize = m.spans.iter().map(|&(s, e)| e - s).sum();
    let sz = a.sizes();
    assert_eq!(
        (sz.allocated.0, sz.unflushed.0, sz.free.0, sz.total.0, sz.imported.0),
        (allocated, unflushed, total - allocated - unflushed, total, 0),
        "{what}: sizes (allocated, unflushed, free, total, imported)"
    );
    assert_eq!(a.live(), m.live.len(), "{what}: live");
    assert_eq!(a.span_count(), m.spans.len(), "{what}: span_count");
    assert_eq!(a.unflushed_segments(), m.unflushed.len(), "{what}: unflushed_segments");
    let c = a.counters();
    let got = Counts {
        allocs: c.allocs,
        frees: c.frees,
        failures: c.failures,
        bad_frees: c.bad_frees,
        deferred_frees: c.deferred_frees,
        flushes: c.flushes,
        injected: c.injected,
    };
    assert_eq!(got, m.c, "{what}: counters");
    let free = m.free_segments();
    let mut hist = vec![0usize; a.free_histogram().len()];
    for &(s, e) in &free {
        hist[(e - s).ilog2() as usize] += 1;
    }
    assert_eq!(a.free_histogram().to_vec(), hist, "{what}: histogram");
    let largest = free.iter().map(|&(s, e)| e - s).max().unwrap_or(0);
    assert_eq!(a.largest_free().0, largest, "{what}: largest_free");
    let fsum: u128 = free.iter().map(|&(s, e)| (e - s) as u128).sum();
    let frag = (1000 * largest as u128).checked_div(fsum).map_or(0, |d| 1000 - d as u32);
    assert_eq!(a.fragmentation(), frag, "{what}: fragmentation");
    for (&x, l) in &m.live {
        match l.handle {
            None => {
                let r = a.lookup(Addr(x)).unwrap_or_else(|| panic!("{what}: lookup {x:#x}"));
                assert_eq!((r.0.base().0, r.0.size().0, r.1 .0), (x, l.rounded, l.asked), "{what}");
            }
            Some(h) => {
                assert_eq!(a.lookup(Addr(x)), None, "{what}: held is not hashed");
                let r = a.lookup_handle(h).unwrap();
                assert_eq!((r.0.base().0, r.0.size().0, r.1 .0), (x, l.rounded, l.asked), "{what}");
            }
        }
        if l.rounded > m.q {
            assert_eq!(a.lookup(Addr(x + m.q)), None, "{what}: lookup inside an allocation");
        }
    }
    // Docs (`BASE_TAGS`, `tags_in_use`): the arena's own tags, and one for
    // each span marker and segment.
    assert_eq!(a.tags_in_use().0 as usize, BASE_TAGS + want.len(), "{what}: tags_in_use");
    // Docs (`contains`): inside one span, allocated or not.
    for (i, &(s, e)) in m.spans.iter().enumerate() {
        assert!(a.contains(Addr(s), Size(e - s)), "{what}: contains a whole span");
        assert!(a.contains(Addr(e - 1), Size(1)), "{what}: contains the last unit");
        let next_adjacent = m.spans.get(i + 1).is_some_and(|n| n.0 == e);
        assert_eq!(a.contains(Addr(e), Size(1)), next_adjacent, "{what}: contains past the end");
        assert!(!a.contains(Addr(s), Size(e - s + 1)), "{what}: contains across a span end");
        if s > 0 {
            assert!(!a.contains(Addr(s - 1), Size(2)), "{what}: contains across a span start");
        }
    }
    for &x in m.unflushed.keys() {
        assert_eq!(a.lookup(Addr(x)), None, "{what}: lookup of an unflushed segment");
    }
    for &(s, _) in &free {
        assert_eq!(a.lookup(Addr(s)), None, "{what}: lookup of a free segment");
    }
}

/// Whether `[t, t + size)` meets the constraints (brute force, from the
/// `Constraints` docs).
#[derive(Clone, Copy, Debug)]
pub struct Want {
    pub size: usize,
    pub align: usize,
    pub phase: usize,
    pub nocross: usize,
    pub lo: usize,
    pub hi: usize,
    pub exact: Option<usize>,
}

pub fn ok_at(w: &Want, t: usize, seg: (usize, usize)) -> bool {
    let Some(end) = t.checked_add(w.size) else { return false };
    t >= seg.0
        && end <= seg.1
        && t >= w.lo
        && end <= w.hi
        && t % w.align == w.phase
        && w.exact.is_none_or(|x| x == t)
        && (w.nocross == 0 || t / w.nocross == (end - 1) / w.nocross)
}

pub fn any_fit(w: &Want, q: usize, free: &[(usize, usize)]) -> bool {
    free.iter().any(|&seg| (seg.0..seg.1).step_by(q).any(|t| ok_at(w, t, seg)))
}

/// The segment of the model's free list that holds `[t, t + size)`.
/// Where the docs of `Policy` say a request goes: `None` when they leave a
/// choice (instant fit, best-fit ties), else the placement or `Some(None)`
/// for no fit. FirstFit: the lowest fit (highest from the top); BestFit:
/// the smallest segment with a fit, placed low (high from the top);
/// NextFit: the lowest fit at or after the rotor, else the lowest.
pub fn predict(
    w: &Want,
    q: usize,
    pol: Policy,
    top: bool,
    rotor: usize,
    free: &[(usize, usize)],
) -> Option<Option<usize>> {
    let fits = |seg: (usize, usize)| -> Vec<usize> {
        (seg.0..seg.1).step_by(q).filter(|&t| ok_at(w, t, seg)).collect()
    };
    let all: Vec<(usize, usize, Vec<usize>)> =
        free.iter().map(|&s| (s.0, s.1, fits(s))).filter(|x| !x.2.is_empty()).collect();
    let place = |v: &Vec<usize>| if top { *v.last().unwrap() } else { v[0] };
    match pol {
        Policy::InstantFit => None,
        Policy::FirstFit => {
            let seg = if top { all.last() } else { all.first() };
            Some(seg.map(|s| place(&s.2)))
        }
        Policy::BestFit => {
            let Some(min) = all.iter().map(|s| s.1 - s.0).min() else { return Some(None) };
            let best: Vec<_> = all.iter().filter(|s| s.1 - s.0 == min).collect();
            if best.len() > 1 {
                return None;
            }
            Some(Some(place(&best[0].2)))
        }
        Policy::NextFit => {
            if top {
                return None;
            }
            let after = all.iter().flat_map(|s| s.2.iter().copied()).find(|&t| t >= rotor);
            Some(after.or(all.first().map(|s| s.2[0])))
        }
    }
}

pub fn inside_free(m: &Model, t: usize, size: usize) -> bool {
    m.free_segments().iter().any(|&(s, e)| s <= t && t.checked_add(size).is_some_and(|x| x <= e))
}
