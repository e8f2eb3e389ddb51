//! Outside review: what an arena asks of an honest source for constrained
//! requests, and how imported spans behave next to added ones, deferred
//! frees, fault injection and tag exhaustion. From the public docs only.
//!
//! Source::imports_aligned: "[...] so a constrained request imports what it
//! needs either way."

mod outside_source_common;

use outside_source_common::*;
use vmspace::arena::{
    Arena, ArenaError, Constraints, Policy, SliceStore, Source, MIN_TAGS, TAG_BYTES,
};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;

/// An honest source whose next answer starts at `base` (aligned up as
/// asked), so a test can place imports where they hurt most.
fn honest_at(
    base: usize,
    aligned: bool,
) -> (Evil, std::rc::Rc<std::cell::RefCell<outside_source_common::Log>>) {
    let (mut s, log) = Evil::honest(Q, base);
    s.aligned = aligned;
    (s, log)
}

fn alloc_free_one(what: &str, c: Constraints, base: usize, aligned: bool) {
    let (src, log) = honest_at(base, aligned);
    let mut a = arena("c", Q, src);
    let x = match a.xalloc(&c) {
        Ok(x) => x,
        Err(e) => panic!(
            "{what}: an honest source, an unconstrained window, yet {e:?}; asked {:?}",
            log.borrow().calls
        ),
    };
    let r = c.validate(Q).unwrap();
    assert!(r.fits(x), "{what}: {x:?} breaks the constraints");
    consistent(&a, what);
    spans_match_log(&a, &log.borrow(), what);
    a.free(x, c.size()).unwrap();
    consistent(&a, what);
    assert_eq!(a.sizes().total, Size(0), "{what}");
    assert!(log.borrow().out.is_empty(), "{what}: lost {:?}", log.borrow().out);
}

trait Fits {
    fn fits(&self, x: Addr) -> bool;
}
impl Fits for vmspace::arena::Request {
    fn fits(&self, x: Addr) -> bool {
        let x = x.0;
        x % self.align().0 == self.phase().0
            && x >= self.min().0
            && (x as u128 + self.size().0 as u128)
                <= self.max().0 as u128 + if self.max().0 == usize::MAX { 1 } else { 0 }
            && (self.nocross().0 == 0
                || x / self.nocross().0 == (x + self.size().0 - 1) / self.nocross().0)
    }
}

#[test]
fn phase_with_an_aligned_source() {
    for aligned in [true, false] {
        alloc_free_one(
            "phase",
            Constraints::new(Size(Q)).align(Size(1 << 20)).phase(Size(Q)),
            1 << 30,
            aligned,
        );
        alloc_free_one(
            "phase 2^62",
            Constraints::new(Size(Q)).align(Size(1 << 63)).phase(Size(1 << 62)),
            1 << 40,
            aligned,
        );
    }
}

#[test]
fn nocross_with_an_aligned_source() {
    // The source's next range starts 3 quanta past a 4-quantum boundary:
    // a 2-quantum import there straddles it.
    for aligned in [true, false] {
        alloc_free_one(
            "nocross",
            Constraints::new(Size(2 * Q)).nocross(Size(4 * Q)),
            (1 << 30) + 3 * Q,
            aligned,
        );
        alloc_free_one(
            "nocross 2^63",
            Constraints::new(Size(1 << 62)).nocross(Size(1 << 63)),
            // An unaligned source is asked for size + nocross - Q at Q
            // (documented), which only fits from low down.
            if aligned { (1 << 63) - Q } else { Q },
            aligned,
        );
    }
}

#[test]
fn window_and_exact_requests_lose_nothing() {
    // A window or an exact address the source cannot be told about: the
    // arena may import or not, may succeed or fail, but whatever it imports
    // must be in its spans or given back, and the result must obey.
    let cases = [
        Constraints::new(Size(Q)).min_addr(Addr(1 << 50)),
        Constraints::new(Size(Q)).max_addr(Addr(1 << 20)),
        Constraints::new(Size(Q)).exact(Addr(1 << 45)),
        Constraints::new(Size(Q)).min_addr(Addr(1 << 30)).max_addr(Addr((1 << 30) + 4 * Q)),
    ];
    for c in cases {
        let (src, log) = honest_at(1 << 30, true);
        let mut a = arena("w", Q, src);
        match a.xalloc(&c) {
            Ok(x) => {
                assert!(c.validate(Q).unwrap().fits(x), "{c:?}: {x:?}");
                a.free(x, c.size()).unwrap();
            }
            Err(e) => assert!(matches!(e, ArenaError::NoSpace { .. }), "{c:?}: {e:?}"),
        }
        consistent(&a, "window");
        spans_match_log(&a, &log.borrow(), "window");
        assert!(log.borrow().out.is_empty(), "{c:?}: kept {:?}", log.borrow().out);
    }
}

#[test]
fn import_next_to_an_added_span_stays_separate_through_extend() {
    // add [B, B+4Q); the source hands out [B+8Q, B+12Q); extend fills the
    // gap [B+4Q, B+8Q). "extend: the span below grows up, the span above
    // grows down, or, when it fills the gap between two, they merge into
    // one" -- but the span above is imported: merging would make the
    // arena give back (or keep) the wrong range.
    const B: usize = 1 << 30;
    let (src, log) = Evil::scripted(Q, B + 8 * Q, Box::new(|_, _, _, r| Ok(r)));
    let mut a = arena("ext", Q, src);
    a.add(Addr(B), Size(4 * Q)).unwrap();
    let x = a.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
    assert_eq!(y, Addr(B + 8 * Q));
    // Touching the imported span only: NotAdjacent.
    let e = a.extend(Addr(B + 12 * Q), Size(Q));
    assert!(matches!(e, Err(ArenaError::NotAdjacent(_))), "{e:?}");
    consistent(&a, "ext");
    a.extend(Addr(B + 4 * Q), Size(4 * Q)).unwrap();
    consistent(&a, "ext");
    assert_eq!(imported_spans(&a), vec![Range::from_size(Addr(B + 8 * Q), Size(4 * Q)).unwrap()]);
    // An add overlapping the import: SpanOverlap.
    let e = a.add(Addr(B + 10 * Q), Size(4 * Q));
    assert!(matches!(e, Err(ArenaError::SpanOverlap(_))), "{e:?}");
    // Nothing may straddle the seam between the added and the imported span.
    let z = a.xalloc(
        &Constraints::new(Size(4 * Q)).min_addr(Addr(B + 6 * Q)).max_addr(Addr(B + 10 * Q)),
    );
    assert!(z.is_err(), "allocation across an added/imported seam: {z:?}");
    a.free(y, Size(4 * Q)).unwrap();
    assert!(log.borrow().out.is_empty());
    assert_eq!(
        log.borrow().releases,
        vec![(Range::from_size(Addr(B + 8 * Q), Size(4 * Q)).unwrap(), true)]
    );
    a.free(x, Size(4 * Q)).unwrap();
    consistent(&a, "ext");
    assert_eq!(a.sizes().total, Size(8 * Q));
    assert_eq!(a.sizes().imported, Size(0));
}

#[test]
fn resize_does_not_grow_into_the_next_import() {
    let (src, log) = Evil::honest(Q, 1 << 30);
    let mut a = arena("rs", Q, src);
    let x = a.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    assert_eq!(y.0, x.0 + 2 * Q, "two touching imports");
    a.free(y, Size(2 * Q)).unwrap(); // released: nothing right after x now
    let w = a.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
    assert_eq!(w.0, x.0 + 4 * Q);
    let e = a.resize(x, Size(2 * Q), Size(3 * Q));
    assert!(matches!(e, Err(ArenaError::NoSpace { .. })), "grew across a span: {e:?}");
    consistent(&a, "resize");
    // free_part of a whole-span allocation leaving two pieces, then both freed:
    a.free_part(w, Size(0), Size(Q)).unwrap();
    consistent(&a, "free_part");
    a.free(Addr(w.0 + Q), Size(Q)).unwrap();
    a.free(x, Size(2 * Q)).unwrap();
    consistent(&a, "resize");
    assert!(log.borrow().out.is_empty(), "lost {:?}", log.borrow().out);
    assert_eq!(a.counters().imports, a.counters().exports);
}

#[test]
fn deferred_free_in_an_import_then_flushed_gives_it_back() {
    let (src, log) = Evil::honest(Q, 1 << 30);
    let mut a = arena("def", Q, src);
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    a.free_deferred(x, Size(Q)).unwrap();
    consistent(&a, "deferred");
    assert_eq!(log.borrow().releases.len(), 0, "an unflushed range went back to the source");
    let y = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    assert_ne!(y, x);
    a.free(y, Size(Q)).unwrap();
    assert_eq!(a.flushed(), Size(Q));
    consistent(&a, "deferred");
    // "gives an imported span back as soon as it is wholly free again"
    assert!(
        log.borrow().out.is_empty(),
        "wholly free after flushed(), still held: {:?}",
        log.borrow().out
    );
}

#[test]
fn unflushed_import_is_not_released_at_drop() {
    let (src, log) = Evil::honest(Q, 1 << 30);
    let mut a = arena("def", Q, src);
    let x = a.alloc(Size(Q), Policy::InstantFit).unwrap();
    let y = a.alloc(Size(8 * Q), Policy::InstantFit).unwrap();
    a.free_deferred(x, Size(Q)).unwrap();
    let _ = y; // live at drop: its span is given back
    drop(a);
    let l = log.borrow();
    assert_eq!(l.out.len(), 1, "the unflushed span stays with the source, taken: {:?}", l.out);
    assert!(l.out[0].contains(&Range::from_size(x, Size(Q)).unwrap()));
}

#[test]
fn injected_faults_lose_no_import() {
    let (src, log) = Evil::honest(Q, 1 << 30);
    let mut a = arena("mtbf", Q, src);
    a.set_mtbf(7, 3);
    let mut held = Vec::new();
    for i in 0..300usize {
        let c = Constraints::new(Size(Q * (1 + i % 5)))
            .align(Size(Q << (i % 4)))
            .policy(Policy::ALL[i % 4]);
        if let Ok(x) = a.xalloc(&c) {
            held.push((x, c.size()));
        }
        if i % 3 == 0 && !held.is_empty() {
            let (x, s) = held.swap_remove((i * 7) % held.len());
            a.free(x, s).unwrap();
        }
        consistent(&a, "mtbf");
        spans_match_log(&a, &log.borrow(), "mtbf");
    }
    assert!(a.counters().injected > 0);
    for (x, s) in held {
        a.free(x, s).unwrap();
    }
    a.set_mtbf(0, 0);
    consistent(&a, "mtbf");
    assert!(log.borrow().out.is_empty(), "lost {:?}", log.borrow().out);
    assert_eq!(
        a.counters().imports,
        log.borrow().returned.len() as u64 - log.borrow().releases.len() as u64
            + a.counters().exports,
        "imports counter vs the source's view"
    );
}

#[test]
fn tags_exhausted_before_the_source_is_called() {
    // "Every operation first reserves the boundary tags it may need (its
    // imports reserve theirs in the source before the source changes)".
    let (src, log) = Evil::honest(Q, 1 << 30);
    let tags = buf(MIN_TAGS * TAG_BYTES);
    let mut a: Arena<SliceStore<'static>, Evil> =
        Arena::new("tiny", Size(Q), SliceStore::new(tags), SliceStore::new(buf(4096)), src)
            .unwrap();
    let mut held = Vec::new();
    let mut failed = false;
    for _ in 0..10 {
        match a.alloc(Size(Q), Policy::InstantFit) {
            Ok(x) => held.push(x),
            Err(e) => {
                assert_eq!(e, ArenaError::TagsExhausted);
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    consistent(&a, "tiny");
    spans_match_log(&a, &log.borrow(), "tiny");
    assert!(log.borrow().releases.is_empty(), "imported then released for lack of tags");
    for x in held {
        a.free(x, Size(Q)).unwrap();
    }
    assert!(log.borrow().out.is_empty());
}

/// A source of the crate used directly: its argument checks.
fn source_checks<I: Source>(what: &str, s: &mut I) {
    let q = s.quantum();
    assert_eq!(
        s.import(Size(0), q),
        Err(ArenaError::Misaligned { value: 0, align: q.0 }),
        "{what}: size 0"
    );
    assert!(
        matches!(s.import(Size(q.0 + 1), q), Err(ArenaError::Misaligned { .. })),
        "{what}: size q+1"
    );
    assert!(
        matches!(s.import(q, Size(3 * q.0)), Err(ArenaError::InvalidArgument(_))),
        "{what}: align 3q"
    );
    if q.0 > 1 {
        assert!(
            matches!(s.import(q, Size(q.0 / 2)), Err(ArenaError::InvalidArgument(_))),
            "{what}: align q/2"
        );
    }
    assert!(matches!(s.import(q, Size(0)), Err(ArenaError::InvalidArgument(_))), "{what}: align 0");
    assert!(s.import(Size(usize::MAX & !(q.0 - 1)), q).is_err(), "{what}: size near 2^64");
}

#[test]
fn crate_arena_as_source_checks_its_arguments() {
    let mut p = arena("p", Q, vmspace::arena::NoSource);
    p.add(Addr(1 << 30), Size(1 << 30)).unwrap();
    source_checks("arena", &mut p);
    consistent(&p, "arena source");
    assert_eq!(p.sizes().allocated, Size(0));
    let r = p.import(Size(Q), Size(1 << 29)).unwrap();
    assert_eq!(r.base().0 % (1 << 29), 0);
    assert_eq!(r.size(), Size(Q));
    // Releasing a piece of what was imported is not what import returned.
    let piece = Range::from_size(r.base(), Size(0)).unwrap();
    assert!(p.release(piece).is_err());
    p.release(r).unwrap();
    assert!(p.release(r).is_err(), "double release accepted");
    consistent(&p, "arena source");
}

// ---------------------------------------------------------------------------
// Was a defect (fixed with tests/import_alignment.rs's nocross test): a
// nocross request imported `size` at alignment `nocross`, far more than it
// needs (an alignment of size rounded up to a power of two never crosses),
// so it failed with NoSpace while the source had plenty of suitable space. ArenaError::NoSpace: "No free segment
// satisfies the request and no import could supply one." Here an import of
// one page at page alignment could.
#[test]
fn nocross_import_asks_for_the_size_aligned() {
    let mut parent = arena("parent", Q, vmspace::arena::NoSource);
    parent.add(Addr(1 << 30), Size(1 << 30)).unwrap();
    let first = parent.alloc(Size(Q), Policy::InstantFit).unwrap(); // takes 2^30
    assert_eq!(first, Addr(1 << 30));
    let c = Constraints::new(Size(Q)).nocross(Size(1 << 30));
    // The parent itself satisfies it at once ...
    let direct = parent.xalloc(&c).expect("parent satisfies nocross directly");
    parent.free(direct, Size(Q)).unwrap();
    // ... a child importing from it does not.
    let mut child = arena("child", Q, &mut parent);
    let r = child.xalloc(&c);
    consistent(&child, "child");
    assert!(r.is_ok(), "child xalloc(4 KiB, nocross 1 GiB) over a parent with ~1 GiB free: {r:?}");
}
