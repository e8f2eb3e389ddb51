//! The model the arena is compared with after every step.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Live {
    pub(crate) asked: usize,
    pub(crate) rounded: usize,
    pub(crate) handle: Option<Handle>,
}

pub(crate) struct Model {
    pub(crate) q: usize,
    pub(crate) spans: Vec<(usize, usize)>,
    pub(crate) live: BTreeMap<usize, Live>,
    pub(crate) allocs: u64,
    pub(crate) frees: u64,
    pub(crate) failures: u64,
    pub(crate) bad_frees: u64,
    pub(crate) rotor: usize,
    pub(crate) unflushed: BTreeMap<usize, usize>,
    pub(crate) injected: u64,
    pub(crate) dead_handles: Vec<Handle>,
    pub(crate) deferred: u64,
    pub(crate) flushes: u64,
}

impl Model {
    pub(crate) fn total(&self) -> usize {
        self.spans.iter().map(|(s, e)| e - s).sum()
    }
    pub(crate) fn allocated(&self) -> usize {
        self.live.values().map(|l| l.rounded).sum()
    }
    pub(crate) fn span_of(&self, a: usize) -> (usize, usize) {
        *self.spans.iter().find(|(s, e)| *s <= a && a < *e).unwrap()
    }
    /// The end of the free room right after `[a, end)`.
    pub(crate) fn room_after(&self, end: usize) -> usize {
        let (_, se) = self.span_of(end - 1);
        let next = self.live.range(end..).next().map_or(usize::MAX, |(&k, _)| k);
        let un = self.unflushed.range(end..).next().map_or(usize::MAX, |(&k, _)| k);
        se.min(next).min(un)
    }

    pub(crate) fn compare(&self, a: &A<'_>, ctx: &str) {
        a.check().unwrap_or_else(|e| panic!("{ctx}: check failed: {e:?}"));
        let walked: Vec<(usize, usize, usize, bool)> = a
            .walk(SegmentKinds::ALLOCATED)
            .map(|s| (s.range.base().0, s.range.size().0, s.requested.0, s.held))
            .collect();
        let model: Vec<(usize, usize, usize, bool)> =
            self.live.iter().map(|(&k, l)| (k, l.rounded, l.asked, l.handle.is_some())).collect();
        assert_eq!(walked, model, "{ctx}: allocated segments");
        let s = a.sizes();
        assert_eq!(s.total.0, self.total(), "{ctx}: total");
        assert_eq!(s.allocated.0, self.allocated(), "{ctx}: allocated");
        let unf: usize = self.unflushed.values().sum();
        assert_eq!(s.unflushed.0, unf, "{ctx}: unflushed");
        assert_eq!(s.free.0, self.total() - self.allocated() - unf, "{ctx}: free");
        let walked_unf: Vec<(usize, usize)> =
            a.walk(SegmentKinds::UNFLUSHED).map(|s| (s.range.base().0, s.range.size().0)).collect();
        assert_eq!(
            walked_unf,
            self.unflushed.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>(),
            "{ctx}: unflushed segments"
        );
        assert_eq!(a.unflushed_segments(), self.unflushed.len(), "{ctx}: unflushed_segments");
        assert_eq!(
            (a.counters().deferred_frees, a.counters().flushes),
            (self.deferred, self.flushes),
            "{ctx}: deferred counters"
        );
        assert_eq!(a.counters().injected, self.injected, "{ctx}: injected");
        let mut spans_walk: Vec<(usize, usize)> =
            a.walk(SegmentKinds::SPANS).map(|s| (s.range.base().0, s.range.limit().0)).collect();
        spans_walk.sort();
        assert_eq!(spans_walk, self.spans, "{ctx}: spans");
        assert_eq!(a.span_count(), self.spans.len(), "{ctx}: span_count");
        assert_eq!(a.live(), self.live.len(), "{ctx}: live");
        let c = a.counters();
        assert_eq!(
            (c.allocs, c.frees, c.failures, c.bad_frees),
            (self.allocs, self.frees, self.failures, self.bad_frees),
            "{ctx}: counters (allocs, frees, failures, bad_frees)"
        );
        let free = free_segments(a);
        for &(fs, fe) in &free {
            assert!(
                self.spans.iter().any(|&(s, e)| s <= fs && fe <= e),
                "{ctx}: free segment {fs:#x}..{fe:#x} outside the spans {:x?}",
                self.spans
            );
        }
        let largest = free.iter().map(|(s, e)| e - s).max().unwrap_or(0);
        assert_eq!(a.largest_free().0, largest, "{ctx}: largest_free");
        let mut hist = [0usize; 64];
        for (s, e) in &free {
            hist[(e - s).ilog2() as usize] += 1;
        }
        assert_eq!(a.free_histogram(), hist, "{ctx}: free_histogram");
        let fsum: usize = free.iter().map(|(s, e)| e - s).sum();
        if fsum > 0 {
            let exact = 1000.0 * (1.0 - largest as f64 / fsum as f64);
            let f = a.fragmentation() as f64;
            assert!((f - exact).abs() < 1.0, "{ctx}: fragmentation {f} vs {exact}");
        } else {
            assert_eq!(a.fragmentation(), 0, "{ctx}");
        }
        let all = a.walk(SegmentKinds::ALL).count();
        assert_eq!(
            a.tags_in_use().0 as usize,
            vmspace::arena::BASE_TAGS + all,
            "{ctx}: tags_in_use"
        );
        for (&k, l) in &self.live {
            let want = if l.handle.is_some() { None } else { Some((k, l.rounded, l.asked)) };
            let got = a.lookup(Addr(k)).map(|(r, s)| (r.base().0, r.size().0, s.0));
            assert_eq!(got, want, "{ctx}: lookup {k:#x}");
            if let Some(h) = l.handle {
                let got = a.lookup_handle(h).map(|(r, s)| (r.base().0, r.size().0, s.0));
                assert_eq!(got, Some((k, l.rounded, l.asked)), "{ctx}: lookup_handle");
            }
            let inner = k + self.q;
            if inner < k + l.rounded && !self.live.contains_key(&inner) {
                assert_eq!(a.lookup(Addr(inner)), None, "{ctx}");
            }
        }
        for (i, &(s, e)) in self.spans.iter().enumerate() {
            assert!(a.contains(Addr(s), Size(e - s)), "{ctx}: contains span");
            assert!(a.contains(Addr(e - 1), Size(1)), "{ctx}");
            assert!(!a.contains(Addr(s), Size(e - s + 1)), "{ctx}: contains past the span's end");
            if s > 0 && (i == 0 || self.spans[i - 1].1 != s) {
                assert!(!a.contains(Addr(s - 1), Size(1)), "{ctx}: contains before the span");
            }
        }
    }
}
