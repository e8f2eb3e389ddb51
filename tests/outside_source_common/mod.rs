//! Shared helpers of the outside source review (tests/outside_source_*.rs):
//! a scriptable, recording `Source` and arena builders. Written from the
//! public documentation only.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use vmspace::arena::{Arena, ArenaError, SegmentKind, SegmentKinds, SliceStore, Source, Store};
use vmspace::{Addr, Range, Size};

/// Everything a recording source saw.
#[derive(Default, Debug)]
pub struct Log {
    /// (size, align) of every import call.
    pub calls: Vec<(Size, Size)>,
    /// Every range `import` returned (Ok).
    pub returned: Vec<Range>,
    /// Every range `release` received, and whether it was accepted.
    pub releases: Vec<(Range, bool)>,
    /// Every range `refused` received.
    pub refused: Vec<Range>,
    /// Ranges currently owned by the arena (returned, not released, not refused).
    pub out: Vec<Range>,
}

/// What the script does to the honest answer of an import.
pub type Script = Box<dyn FnMut(usize, Size, Size, Range) -> Result<Range, ArenaError>>;

/// A source that computes an honest range (bump allocator above `next`) and
/// lets a script bend it. Records everything in a shared log.
pub struct Evil {
    pub q: Size,
    pub aligned: bool,
    pub next: usize,
    pub script: Script,
    pub log: Rc<RefCell<Log>>,
    /// Refuse a release when this returns true (called with the release index).
    pub fail_release: Box<dyn FnMut(usize) -> bool>,
}

impl Evil {
    pub fn honest(q: usize, base: usize) -> (Evil, Rc<RefCell<Log>>) {
        Self::scripted(q, base, Box::new(|_, _, _, r| Ok(r)))
    }
    pub fn scripted(q: usize, base: usize, script: Script) -> (Evil, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (
            Evil {
                q: Size(q),
                aligned: true,
                next: base,
                script,
                log: log.clone(),
                fail_release: Box::new(|_| false),
            },
            log,
        )
    }
}

impl Source for Evil {
    fn quantum(&self) -> Size {
        self.q
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        let n = self.log.borrow().calls.len();
        self.log.borrow_mut().calls.push((size, align));
        let a = if self.aligned { align.0.max(self.q.0) } else { self.q.0 };
        let base =
            self.next.checked_add(a - 1).ok_or(ArenaError::NoSpace { size: size.0 })? & !(a - 1);
        let honest = Range::from_size(Addr(base), size).map_err(|_| ArenaError::Overflow)?;
        let r = (self.script)(n, size, align, honest)?;
        if r == honest {
            self.next = honest.limit().0;
        }
        let mut log = self.log.borrow_mut();
        log.returned.push(r);
        log.out.push(r);
        Ok(r)
    }
    fn release(&mut self, range: Range) -> Result<(), ArenaError> {
        let n = self.log.borrow().releases.len();
        let fail = (self.fail_release)(n);
        let mut log = self.log.borrow_mut();
        log.releases.push((range, !fail));
        if fail {
            return Err(ArenaError::InvalidArgument("test source refuses this release"));
        }
        match log.out.iter().position(|r| *r == range) {
            Some(i) => {
                log.out.swap_remove(i);
                Ok(())
            }
            None => panic!("release of {range:?}, which is not out (returned {:?})", log.returned),
        }
    }
    fn imports_aligned(&self) -> bool {
        self.aligned
    }
    fn refused(&mut self, range: Range) {
        let mut log = self.log.borrow_mut();
        log.refused.push(range);
        if let Some(i) = log.out.iter().position(|r| *r == range) {
            log.out.swap_remove(i);
        }
    }
}

/// Leak `b` for the rest of the run, its address kept in a static list so
/// that LeakSanitizer (`make sanitize`) sees it reachable, not lost.
pub fn keep<T: ?Sized>(b: Box<T>) -> &'static mut T {
    static KEPT: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let r = Box::leak(b);
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(r as *mut T as *mut u8 as usize);
    r
}

/// A leaked buffer: the arenas in these tests borrow their stores for 'static.
pub fn buf(bytes: usize) -> &'static mut [u8] {
    keep(vec![0u8; bytes].into_boxed_slice())
}

pub type A<I> = Arena<SliceStore<'static>, I>;

pub fn arena<I: Source>(name: &'static str, q: usize, source: I) -> A<I> {
    Arena::new(name, Size(q), SliceStore::new(buf(1 << 18)), SliceStore::new(buf(1 << 16)), source)
        .expect("arena")
}

/// `check()` plus the statistics against a walk.
pub fn consistent<S: Store, I: Source>(a: &Arena<S, I>, what: &str) {
    if let Err(e) = a.check() {
        panic!("{what}: check() failed: {e:?}");
    }
    let s = a.sizes();
    let (mut alloc, mut free, mut unfl, mut total, mut imported, mut spans, mut live) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for seg in a.walk(SegmentKinds::ALL) {
        match seg.kind {
            SegmentKind::Span => {
                spans += 1;
                total += seg.range.size().0;
                if seg.imported {
                    imported += seg.range.size().0;
                }
            }
            SegmentKind::Free => free += seg.range.size().0,
            SegmentKind::Allocated => {
                alloc += seg.range.size().0;
                live += 1;
            }
            SegmentKind::Unflushed => unfl += seg.range.size().0,
        }
    }
    assert_eq!(s.allocated.0, alloc, "{what}: sizes().allocated vs walk");
    assert_eq!(s.free.0, free, "{what}: sizes().free vs walk");
    assert_eq!(s.unflushed.0, unfl, "{what}: sizes().unflushed vs walk");
    assert_eq!(s.total.0, total, "{what}: sizes().total vs walk");
    assert_eq!(s.imported.0, imported, "{what}: sizes().imported vs walk");
    assert_eq!(s.total.0, alloc + free + unfl, "{what}: total = allocated + free + unflushed");
    assert_eq!(a.span_count(), spans, "{what}: span_count vs walk");
    assert_eq!(a.live(), live, "{what}: live vs walk");
}

/// The imported spans of `a`, from a walk.
pub fn imported_spans<S: Store, I: Source>(a: &Arena<S, I>) -> Vec<Range> {
    a.walk(SegmentKinds::SPANS).filter(|s| s.imported).map(|s| s.range).collect()
}

/// What the arena holds from the source must be exactly what the log says is out.
pub fn spans_match_log<S: Store, I: Source>(a: &Arena<S, I>, log: &Log, what: &str) {
    let mut spans = imported_spans(a);
    let mut out = log.out.clone();
    spans.sort_by_key(|r| r.base().0);
    out.sort_by_key(|r| r.base().0);
    assert_eq!(spans, out, "{what}: imported spans of the arena vs ranges out of the source");
}

/// Every accepted release was of a returned range, each at most once.
pub fn releases_sane(log: &Log, what: &str) {
    let mut seen: Vec<Range> = Vec::new();
    for (r, ok) in &log.releases {
        assert!(log.returned.contains(r), "{what}: release of {r:?}, never returned");
        assert!(!log.refused.contains(r), "{what}: release of {r:?}, which the arena refused");
        if *ok {
            assert!(
                !seen.contains(r)
                    || log.returned.iter().filter(|x| *x == r).count()
                        > seen.iter().filter(|x| *x == r).count(),
                "{what}: {r:?} released twice"
            );
            seen.push(*r);
        }
    }
}
